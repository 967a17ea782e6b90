"""A newcomer's first run: the repository cloned into an empty folder (no ../shared beside it,
so no local MNIST copy), the tests run as the README's command runs them, with only the
network this machine has. Every test file is collected; a quick subset runs with nothing
failing, and every test that is skipped says what to set or install to run it."""

import os
import re
import subprocess
import sys

import pytest
from conftest import MIRROR_VARIABLE, ROOT

# What a skip reason names so that a reader can act on it
ACTIONABLE = (MIRROR_VARIABLE, "apt-get install", "pip install", ".ci/run installs")
# The quick subset: the files whose tests read MNIST or start the workflow, and the command line
SUBSET = ["tests/test_data.py", "tests/test_workflow.py", "tests/test_command_line.py", "tests/test_config.py"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    where = tmp_path_factory.mktemp("newcomer") / "mnist-audit"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True, timeout=300)
    home = where.parent / "home"  # an empty home: no MNIST cached by an earlier run
    home.mkdir()
    drop = (MIRROR_VARIABLE, "CI", "MLFLOW_TRACKING_URI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
            "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(home), PYTHONPATH=str(where / "workflow"))
    return where, env


def _pytest(clone, *args, timeout=1500):
    where, env = clone
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=where, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_fresh_clone_collects_every_test_file(clone):
    done = _pytest(clone, "--collect-only", "-q", "-n", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")}
    assert collected == files, files ^ collected
    assert not re.search(r"\berrors?\b", done.stdout.splitlines()[-1]), done.stdout.splitlines()[-1]


@pytest.mark.slow
def test_a_fresh_clone_without_mnist_passes_and_each_skip_says_what_to_set(clone):
    done = _pytest(clone, "-m", "not slow", "-rs", *SUBSET)
    out = done.stdout + done.stderr
    summary = out.strip().splitlines()[-1]
    print(f"fresh clone, no MNIST copy: {summary}")
    assert done.returncode == 0, out[-5000:]
    assert " failed" not in summary and " error" not in summary, summary
    skips = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", out, re.M)
    assert skips, "no test was skipped without MNIST: the subset no longer reads it"
    for reason in skips:
        assert any(a in reason for a in ACTIONABLE), f"a skip that does not say what to set: {reason}"
