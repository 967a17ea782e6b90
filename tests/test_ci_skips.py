"""Under CI=true a skip for a missing prerequisite fails the run (conftest's hook); other
skips stay skips. Checked on probe tests (tests/ci_probe.py), run by a real pytest in a
subprocess."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize(("ci", "outcome"), [("true", "2 failed, 1 skipped"), ("", "3 skipped")])
def test_missing_prerequisites_fail_only_under_ci(ci, outcome):
    env = {**os.environ, "CI": ci}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "ci_probe.py")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    out = proc.stdout + proc.stderr
    assert outcome in out, out[-2000:]
    assert (proc.returncode != 0) == (ci == "true"), out[-2000:]
    if ci:
        assert "CI=true: a prerequisite is missing, so this test cannot be skipped" in out and "MNIST is not available" in out
        assert "chromium is not installed" in out  # the browser tests' engine, like the others
