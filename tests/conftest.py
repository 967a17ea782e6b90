"""Shared fixtures. The library is imported from workflow/ (also when not pip-installed)."""

import functools
import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

# MNIST, for the tests that read the real files, the way the pipeline gets it: a local copy
# when one is given (MNIST_AUDIT_LOCAL_MIRROR, else ../shared/data/mnist beside the checkout),
# else the project's own downloader from the default public mirrors into a user cache
# (checksummed, kept across runs). Every test that reads MNIST asks for the `mnist_dir`
# fixture (or carries `needs_mnist`), which skips with one reason naming what to set when
# neither works; under CI=true that skip is a failure (MISSING_PREREQUISITE below).
MIRROR_VARIABLE = "MNIST_AUDIT_LOCAL_MIRROR"
BESIDE = ROOT.parent / "shared" / "data" / "mnist"
MNIST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-audit" / "mnist"
NO_MNIST = "MNIST is not available"


def _complete(folder: Path) -> bool:
    from mnist_audit.data import MNIST_FILES

    return all((folder / n).is_file() for n in MNIST_FILES)


@functools.cache
def mnist_source() -> tuple[Path | None, str]:
    """(the folder of the four MNIST .gz files, "") or (None, why there is none).

    A folder the user named is taken as it is, even incomplete (the pipeline then says
    which file is missing): never silently replaced by a download. The cache is filled one
    file at a time by ``download.download_file`` (verified, renamed into place); the first
    file that no mirror serves ends the attempt, so an offline machine gives up at once."""
    from mnist_audit import download
    from mnist_audit.data import MNIST_FILES

    named = os.environ.get(MIRROR_VARIABLE)
    if named:
        missing = [n for n in MNIST_FILES if not (Path(named) / n).is_file()]
        if missing:
            return None, (f"{NO_MNIST}: {MIRROR_VARIABLE}={named} has no {', '.join(missing)}; "
                          f"set {MIRROR_VARIABLE} to a folder with the four MNIST .gz files")
        return Path(named), ""
    if _complete(BESIDE):
        return BESIDE, ""
    try:
        for name in MNIST_FILES:
            download.download_file(name, MNIST_CACHE / name, download.PUBLIC_MIRRORS, timeout=20, retries=1)
    except download.DataError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        return None, (f"{NO_MNIST}: no local copy, and the public mirrors failed ({first}). "
                      f"Set {MIRROR_VARIABLE} to a folder with the four .gz files "
                      f"(`{MIRROR_VARIABLE}=/path/to/mnist pytest`), or run once where the mirrors "
                      f"can be reached: the tests keep a verified copy in {MNIST_CACHE}")
    return MNIST_CACHE, ""


def have_local_mirror() -> bool:
    """MNIST can be had (a local copy, or the cache of the public mirrors'): asks once."""
    return mnist_source()[0] is not None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of the four MNIST .gz files (see ``mnist_source``); skips when there is none."""
    folder, why = mnist_source()
    if folder is None:
        pytest.skip(why)
    return folder


def mirror_arg(folder: Path) -> str:
    """The --config item that points the workflow at ``folder``."""
    return f"mirrors=[{str(folder)!r}]"


needs_mnist = pytest.mark.usefixtures("mnist_dir")


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_gz(path: Path, payload: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture
def synthetic_mnist(tmp_path):
    """Four small IDX .gz files shaped like MNIST, and their payload checksums."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(30) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(12) % 10,
    }
    folder = tmp_path / "synthetic"
    sums = {name: write_gz(folder / name, idx_bytes(a)) for name, a in arrays.items()}
    return folder, sums, arrays


@pytest.fixture(scope="session")
def split_path(tmp_path_factory):
    """A prepared split: the real MNIST when the local copy exists, else a synthetic one."""
    from mnist_audit import data, download

    out = tmp_path_factory.mktemp("split")
    folder, _ = mnist_source()
    if folder is not None:
        raw = {}
        for name in data.MNIST_FILES:
            raw[name] = out / "raw" / name
            download.download_file(name, raw[name], [folder.as_uri()])
        data.prepare_split(raw, out / "mnist.npz", out / "manifest.json")
    else:
        rng = np.random.default_rng(1)
        arrays = {
            "train-images-idx3-ubyte.gz": rng.integers(0, 256, (1600, 28, 28)),
            "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 1600),
            "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (500, 28, 28)),
            "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 500),
        }
        sums = {n: write_gz(out / "raw" / n, idx_bytes(a)) for n, a in arrays.items()}
        data.prepare_split({n: out / "raw" / n for n in arrays}, out / "mnist.npz", out / "manifest.json",
                           n_validation=500, expected_payload=sums)
    return out / "mnist.npz"


def snakemake_cmd(workdir: Path, *args: str, cores: int | None = 8) -> list[str]:
    """The real snakemake CLI on this repository's Snakefile, run in ``workdir``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
            str(workdir), *(["--cores", str(cores)] if cores else []),
            "--configfile", str(ROOT / "tests" / "config" / "tiny.yaml"), *args]


def start_logged(cmd: list[str], log: Path, **popen_kwargs):
    """``cmd`` started with its stderr in ``log``: a file, not a pipe, so processes run side
    by side never wait on each other's output. Finish it with ``wait_ok``."""
    import subprocess

    with log.open("w") as err:
        return subprocess.Popen(cmd, stderr=err, text=True, **popen_kwargs)


def wait_ok(proc, log: Path, timeout: float = 900) -> str:
    """Wait for a ``start_logged`` process; fail with its log's tail unless it exited 0.
    Returns its stdout ("" when not piped)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log.read_text()[-4000:]
    return out or ""


def copy_workspace(work: Path, dest: Path) -> Path:
    """A copy of a workflow's working directory (results and Snakemake's metadata, times
    kept), for a test that goes on from the tiny run without changing it for the others.
    Its MLflow store is left out: the copy logs afresh wherever it is pointed."""
    import shutil

    shutil.copytree(work, dest, symlinks=True, ignore=shutil.ignore_patterns("mlflow"))
    return dest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_dir):
    """The tiny configuration through the whole workflow, once per test session.

    8 cores on this 2-core machine: every training and logging job runs at once,
    on a fresh MLflow store. Returns (workdir, completed process).
    """
    import subprocess

    work = tmp_path_factory.mktemp("tiny")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(work, "--config", mirror_arg(mnist_dir)),
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, proc


# The suite runs in worker processes side by side (pytest-xdist, `-n` in pyproject.toml's
# addopts), and a session or module fixture is built once per worker. Tests sharing one
# that is costly, or that must not run twice at once, go to one worker as a group
# (`--dist loadgroup`): the tiny workflow run (built once; one test runs Snakemake in its
# folder, where a second Snakemake would find the folder locked) and the published
# re-runs (started together by their module fixture). test_jax.py groups itself (its
# tests share one compilation cache).
SHARED_ON_ONE_WORKER = ("tiny_run", "reruns")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        shared = [f for f in SHARED_ON_ONE_WORKER if f in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(name=shared[0]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """On a worker, a grouped test fails, before its fixtures are built, if the group did
    not take: pytest-xdist marks a grouped test by a suffix on its node id, which pytest
    9.2 no longer lets it write (pytest-xdist issue #1386); each worker would then build
    the group's costly fixture, and run Snakemake in the tiny run's folder at once."""
    if getattr(item.config.option, "loadgroup", False) and item.get_closest_marker("xdist_group") \
            and "@" not in item.nodeid:
        pytest.fail("pytest-xdist's --dist loadgroup did not group this test: this pytest breaks it "
                    "(pytest-xdist issue #1386). Install the pinned versions (pip install -r requirements-dev.txt) "
                    "or run in one process (pytest -n 0).", pytrace=False)


# In CI (CI=true) a missing prerequisite is a failure, not a quiet skip: the suite would
# otherwise stay green with the data, an engine, root or JAX gone. Skips that say where
# a comparison does not apply (another CPU kind, a backend, a run not yet published) stay.
MISSING_PREREQUISITE = (NO_MNIST, "is not installed", "not installed", "needs root", "not root",
                        "no slurm", "no postgres", "munge", "could not import")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() != "true" or not report.skipped:
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(s in reason.lower() for s in (m.lower() for m in MISSING_PREREQUISITE)):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a prerequisite is missing, so this test cannot be skipped: {reason}"

