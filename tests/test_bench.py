"""Speed levers change no result; the benchmark harness measures what it says."""

import json

import numpy as np
import pytest
from test_train import _finish, _train, _weights

SCALE = 0.008  # jerkic: 16 steps on 512 images (4 epochs of 4 steps), with dropout


@pytest.mark.slow
def test_steps_per_execution_changes_nothing(split_path, tmp_path):
    _finish(_train(split_path, tmp_path / "one", "jerkic", 0, SCALE, ["--jit-compile", "off"]))
    _finish(_train(split_path, tmp_path / "spe", "jerkic", 0, SCALE,
                   ["--jit-compile", "off", "--steps-per-execution", "3"]))
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "spe" / "metrics.json").read_text())
    assert b["speed"]["steps_per_execution"] == 3 and a["total_steps"] == b["total_steps"] == 16
    for k in ("test_accuracy", "test_loss", "train_loss"):
        assert a[k] == b[k], k
    for wa, wb in zip(_weights(tmp_path / "one" / "model.keras"), _weights(tmp_path / "spe" / "model.keras")):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.slow
def test_xla_request_under_op_determinism_runs_the_same_computation(split_path, tmp_path):
    """Keras turns XLA off on TensorFlow while op determinism is on; the run records
    that, and its numbers are those of the run without XLA."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow-specific")
    _finish(_train(split_path, tmp_path / "off", "thomas", 0, 0.01, ["--jit-compile", "off"]))
    _finish(_train(split_path, tmp_path / "xla", "thomas", 0, 0.01, ["--jit-compile", "on"]))
    a = json.loads((tmp_path / "off" / "metrics.json").read_text())
    b = json.loads((tmp_path / "xla" / "metrics.json").read_text())
    assert b["speed"]["jit_compile"] is True and b["speed"]["jit_compile_used"] is False
    for k in ("test_accuracy", "test_loss", "train_loss"):
        assert a[k] == b[k], k


@pytest.mark.slow
def test_benchmark_harness_smoke(split_path, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    code = f"""
import sys, json; sys.path.insert(0, {str(ROOT / 'workflow')!r})
from mnist_audit import devices; devices.configure_backend(2)
from mnist_audit import bench, data
split = data.load_split({str(split_path)!r})
r = bench.throughput('softmax_regression', split, repeats=1)
o = bench.job_overhead({str(split_path)!r}, 2, __import__('pathlib').Path({str(tmp_path)!r}))
print(json.dumps({{'r': {{k: v for k, v in r.items() if not isinstance(v, list)}}, 'o': o,
                  'peak': bench.matmul_peak_macs(512, 2)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    r, o = res["r"], res["o"]
    assert r["pipeline_images_per_s"] > 0 and r["reference_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["pipeline_images_per_s"] / r["reference_images_per_s"])
    assert r["images_per_call"] % r["batch_size"] == 0
    assert 0 < o["fixed_overhead_seconds"] < o["train_job_wall_seconds"] + o["mlflow_logging_job_seconds"]
    assert res["peak"] > 1e8
