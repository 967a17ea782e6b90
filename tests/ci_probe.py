"""Probe tests for tests/test_ci_skips.py (not collected by the suite: the name has no
test_ prefix; that test runs this file by name in a subprocess)."""

import pytest
from browser import NO_CHROMIUM


@pytest.mark.parametrize("reason", ["no local MNIST copy at /nowhere", NO_CHROMIUM,
                                    "another CPU kind than the published run's"])
def test_probe(reason):
    pytest.skip(reason)
