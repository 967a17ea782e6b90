"""docs/command-line.md, as a reader runs it: each command of its first block from an empty
folder, the maintainers' block parsed; what the command line says when something is missing."""

import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

DOC = ROOT / "docs" / "command-line.md"
CLI = [sys.executable, "-m", "mnist_audit.cli"]


def _blocks() -> list[list[str]]:
    """The commands of each ```bash block of the page (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    return [[line.split("  #")[0].strip() for line in b.splitlines() if line.strip()] for b in blocks]


def _env(tmp_path):
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "HOME": str(tmp_path / "home")}


def test_every_command_of_the_page_parses():
    from mnist_audit import cli

    commands = [c for b in _blocks() for c in b]
    assert len(commands) >= 7
    for c in commands:
        words = shlex.split(c)
        assert words[0] == "mnist-audit", c
        cli.parser().parse_args(words[1:])  # exits (fails the test) on a bad option


@pytest.mark.slow
def test_the_pages_commands_run_as_written_from_an_empty_folder(tmp_path, mnist_dir):
    """Each command of the first block, verbatim, in a folder outside the repository; only
    the download gets the test's MNIST copy as its mirror (no public mirror is reached here)."""
    here = tmp_path / "somewhere"
    here.mkdir()
    for c in _blocks()[0]:
        words = shlex.split(c)
        if words[1] == "download":
            words += ["--mirror", str(mnist_dir)]
        done = subprocess.run(CLI + words[1:], cwd=here, capture_output=True, text=True, env=_env(tmp_path),
                              timeout=600)
        assert done.returncode == 0, f"{c}\n{done.stderr[-3000:]}"
        assert "absl::InitializeLog" not in done.stderr and "oneDNN custom operations" not in done.stderr, c
    assert (here / "mnist" / "mnist.npz").exists()
    for run in ("thomas-s0", "mlp-s0"):
        assert (here / run / "metrics.json").exists(), run


def test_a_missing_split_says_how_to_make_it(tmp_path):
    done = subprocess.run(CLI + ["train", "--arch", "thomas", "--out", "x", "--budget-scale", "0.01"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 1
    assert "results/data/mnist/mnist.npz: no prepared split here. Make it with `mnist-audit download --out " \
           "results/data/mnist`" in done.stderr, done.stderr
    assert "delete it" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_importing_tensorflow_after_the_package_prints_none_of_its_start_up_lines(tmp_path):
    """Without the package, TensorFlow's import writes absl's preamble and oneDNN's notice to
    standard error; after it, nothing; a warning written at import still passes."""
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
                           env=_env(tmp_path), timeout=300)
    assert "oneDNN custom operations" in plain.stderr  # the noise is real (else this test proves nothing)
    ours = subprocess.run([sys.executable, "-c", "import mnist_audit, tensorflow as tf; print(tf.__version__)"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr


def test_only_tensorflows_info_lines_are_dropped():
    from mnist_audit.quiet import without_noise

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796626216.887392   12783 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1796626256.879980   13506 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.\n"
            "W0000 00:00:1796626256.9   13506 gpu_device.cc:1] Cannot dlopen some GPU libraries.\n"
            "E0000 00:00:1796626257.0   13506 cuda.cc:2] failed call to cuInit\n"
            "/x.py:3: UserWarning: something that matters\n")
    assert without_noise(text) == ("W0000 00:00:1796626256.9   13506 gpu_device.cc:1] Cannot dlopen some GPU libraries.\n"
                                   "E0000 00:00:1796626257.0   13506 cuda.cc:2] failed call to cuInit\n"
                                   "/x.py:3: UserWarning: something that matters\n")
