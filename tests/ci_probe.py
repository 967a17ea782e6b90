"""Probe tests for tests/test_ci_skips.py (not collected by the suite: the name has no
test_ prefix; that test runs this file by name in a subprocess)."""

import pytest
from browser import NO_CHROMIUM
from conftest import NO_MNIST


@pytest.mark.parametrize("reason", [f"{NO_MNIST}: set MNIST_AUDIT_LOCAL_MIRROR", NO_CHROMIUM,
                                    "another CPU kind than the published run's"])
def test_probe(reason):
    pytest.skip(reason)
