"""The two install paths list the same pinned packages."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):  # -r / -e . are not packages
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)", line)
        assert m, f"not pinned exactly: {line!r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_requirements_and_environment_yml_agree():
    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    dev = pins((ROOT / "requirements-dev.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pip = pins(pip_section)
    assert {**req, **dev} == conda_pip
    assert "-e ." in pip_section and "-e ." in (ROOT / "requirements.txt").read_text()
    for needed in ("snakemake", "tensorflow-cpu", "keras", "mlflow[auth]", "pandas", "seaborn"):
        assert needed in req, needed  # mlflow's auth extra: the basic-auth server of docs/mlflow.md
    assert "pytest" in dev


def test_installed_versions_match_the_pins():
    """What the tests run on is what the files pin (catches a stale environment)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    for name, version in req.items():
        pin = Requirement(f"{name}=={version}")
        assert md.version(pin.name) == version, name
        for extra in pin.extras:  # an extra's packages are installed too (mlflow[auth]: Flask-WTF)
            needs = [Requirement(r) for r in md.requires(pin.name) or ()]
            needs = [r for r in needs if r.marker is not None and r.marker.evaluate({"extra": extra})]
            assert needs, f"{pin.name} has no extra {extra!r}"
            for r in needs:
                try:
                    installed = md.version(r.name)
                except md.PackageNotFoundError:
                    raise AssertionError(f"{name}: {r.name} is not installed (pip install -r requirements.txt)")
                assert r.specifier.contains(installed, prereleases=True), f"{name}: {r.name} {installed}"
