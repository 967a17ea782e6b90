"""TensorFlow's start-up lines, kept out of the logs and the terminal.

Importing TensorFlow 2.21 writes, straight to file descriptor 2 and before its log level
is read (so TF_CPP_MIN_LOG_LEVEL cannot stop them), absl's preamble ("All log messages
before absl::InitializeLog() is called are written to STDERR"), oneDNN's notice and the
CPU feature guard's, all at level INFO. ``install`` (called when the package is imported)
makes the first ``import tensorflow`` of the process run with descriptor 2 captured; what
it wrote is then passed on without those INFO lines. Warnings and errors (absl's W/E/F
lines, Python's warnings) pass unchanged and in order.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# absl's INFO lines ("I1207 06:50:12.434 ..." or "I0000 00:00:...") and what goes with them
INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")
NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # the CPU feature guard's second line
)


def is_noise(line: str) -> bool:
    return bool(INFO.match(line)) or line.startswith(NOISE)


def without_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                sys.stderr.write(without_noise(captured.read().decode(errors="replace")))
                sys.stderr.flush()


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first ``import tensorflow``, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    if "tensorflow" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
