"""What produced a result: code version, package versions, platform."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = ("mnist-audit", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy",
            "mlflow", "snakemake", "pandas", "seaborn")

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> str:
    """HEAD's commit, suffixed '-dirty' when tracked files differ; 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def platform_info() -> dict:
    """Platform, interpreter and the CPU kind (vendor, family/model, ISA): bit-identity
    of a result holds per CPU kind, so every run records it."""
    from .devices import cpu_info

    return {"platform": platform.platform(), "python": platform.python_implementation(), "cpu": cpu_info()}
