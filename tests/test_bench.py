"""Speed levers change no result; the benchmark harness measures what it says."""

import json
import shutil

import numpy as np
import pytest
from test_train import _finish, _train, _weights

SCALE = 0.008  # jerkic: 16 steps on 512 images (4 epochs of 4 steps), with dropout


PLAIN = ["--jit-compile", "off", "--steps-per-execution", "1", "--no-resident-data"]


@pytest.mark.slow
@pytest.mark.parametrize("arch, scale, fast, spe_used, loop", [
    # model.fit path: 4 steps per epoch in calls of 3 steps (full and partial calls), with dropout
    ("jerkic", SCALE, ["--steps-per-execution", "3", "--no-resident-data"], 3, "model.fit"),
    # the defaults on TensorFlow: resident data, each epoch one compiled loop; dropout
    ("jerkic", SCALE, [], 1, "compiled loop over resident data"),
    # the defaults for the MLP: "auto" picks 20 steps per call on a CPU (the model.fit path, evaluation)
    ("mlp", 0.3, [], 20, "compiled loop over resident data"),
])
def test_speed_levers_change_nothing(split_path, tmp_path, arch, scale, fast, spe_used, loop):
    """The fast paths (resident data in a compiled loop, resident evaluation sets, several
    steps per call) train bit for bit the same model as one step per call from NumPy
    copies: same batches, same order, same numbers."""
    import keras

    if keras.backend.backend() != "tensorflow" and "--no-resident-data" not in fast:
        loop = "model.fit"  # resident data is TensorFlow's lever
    procs = [_train(split_path, tmp_path / "plain", arch, 0, scale, PLAIN),
             _train(split_path, tmp_path / "fast", arch, 0, scale, ["--jit-compile", "off", *fast])]
    for proc in procs:
        _finish(proc)
    a = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    b = json.loads((tmp_path / "fast" / "metrics.json").read_text())
    assert a["speed"]["steps_per_execution_used"] == 1 and a["speed"]["resident_data_used"] is False
    assert a["speed"]["training_loop"] == "model.fit"
    assert b["speed"]["steps_per_execution_used"] == spe_used
    assert b["speed"]["training_loop"] == loop
    assert b["speed"]["resident_data_used"] is (loop != "model.fit")
    assert a["total_steps"] == b["total_steps"] > a["steps_per_epoch"], "several epochs, so several calls"
    for k in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
              "test_accuracy_predict"):
        assert a[k] == b[k], k
    ha = (tmp_path / "plain" / "history.csv").read_text().splitlines()
    hb = (tmp_path / "fast" / "history.csv").read_text().splitlines()
    assert [r.split(",")[6:] for r in ha] == [r.split(",")[6:] for r in hb]  # every epoch's losses and accuracies
    assert (tmp_path / "plain" / "confusion.csv").read_text() == (tmp_path / "fast" / "confusion.csv").read_text()
    for wa, wb in zip(_weights(tmp_path / "plain" / "model.keras"), _weights(tmp_path / "fast" / "model.keras")):
        np.testing.assert_array_equal(wa, wb)


def test_compiled_loop_takes_whole_batches_only():
    import keras

    from mnist_audit.loops import Feeder

    x, y = np.zeros((10, 28, 28), np.float32), np.zeros(10, np.int32)
    f = Feeder(x, y, resident=True)
    if not f.resident:
        pytest.skip("resident data is TensorFlow's lever")
    with pytest.raises(ValueError, match="not whole batches of 4"):
        f.fit(keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)]), np.arange(6), 4)


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
    """The whole harness on one small architecture: its tables say what they measured."""
    import subprocess
    import sys

    import pandas as pd

    from conftest import ROOT

    from mnist_audit import data as mdata

    # a tenth of the split, beside the split's manifest (the job logs its checksums):
    # every call trains on 5,000 images instead of 55,000
    small = tmp_path / "small" / "mnist.npz"
    small.parent.mkdir()
    shutil.copy(split_path.parent / "manifest.json", small.parent)
    np.savez(small, **{k: v[: 5000 if k.endswith("_train") else 1000] for k, v in mdata.load_split(split_path).items()})
    code = f"""
import sys, json; sys.path.insert(0, {str(ROOT / 'workflow')!r})
from mnist_audit import devices; device = devices.configure_backend(2)
from mnist_audit import bench
bench.matmul_peak_macs = lambda: 1e10  # the large matmul takes seconds; its figure is not checked here
# one fresh process per process-start figure: the tables' structure and arithmetic are checked, not the figures
bench.run({str(small)!r}, {str(tmp_path / 'bench')!r}, ['softmax_regression'], 2, 2, device, process_repeats=1)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tp = pd.read_csv(tmp_path / "bench" / "throughput.csv").iloc[0]
    assert tp["pipeline_images_per_s"] > 0 and tp["reference_images_per_s"] > 0
    assert tp["images_per_call"] % tp["batch_size"] == 0
    # every figure follows from the raw timed calls (timings.csv), recomputed here
    t = pd.read_csv(tmp_path / "bench" / "timings.csv")
    secs = {c: g.sort_values("repetition")["seconds"].to_numpy() for c, g in t.groupby("configuration")}
    assert len(secs) == 6 and all(len(v) == 2 for v in secs.values())  # incl. the TF1 original
    original = next(c for c in secs if c.startswith("original"))
    n = tp["images_per_call"]
    assert tp["pipeline_images_per_s"] == pytest.approx(n / np.median(secs["pipeline"]))
    assert tp["original_images_per_s"] == pytest.approx(n / np.median(secs[original]))
    assert tp["ratio"] == pytest.approx(np.median(secs["reference"] / secs["pipeline"]))
    assert tp["ratio_to_original"] == pytest.approx(np.median(secs[original] / secs["pipeline"]))
    assert tp["ratio_best"] == pytest.approx(secs["reference"].min() / secs["pipeline"].min())
    assert tp["steps_per_execution"] == 64  # "auto" for softmax regression on a CPU
    lv = pd.read_csv(tmp_path / "bench" / "levers.csv")
    for lever in ("resident data", "lean imports", "steps_per_execution", "evaluation batch",
                  "resident evaluation", "2 threads per job", "2 jobs of 1 thread at once"):
        assert lv["lever"].str.startswith(lever).any(), lever
    assert (lv["on"] > 0).all() and (lv["off"] > 0).all()
    o = pd.read_csv(tmp_path / "bench" / "overhead.csv").iloc[0]
    assert 0 < o["mlflow_logging_seconds"] < o["fixed_overhead_seconds"] < o["train_job_wall_seconds"] + 60
    md = (tmp_path / "bench" / "bench.md").read_text()
    assert "softmax_regression" in md and "aa_ratio" in md
    assert json.loads((tmp_path / "bench" / "machine.json").read_text())["device"]["kind"] == "cpu"


def test_matmul_peak_is_measured():
    from mnist_audit import bench

    assert bench.matmul_peak_macs(256, 2) > 1e8


def test_interleaved_alternates_the_order_and_times_every_call():
    from mnist_audit import bench

    seen = []
    times = bench.interleaved({name: (lambda k, name=name: seen.append((name, k))) for name in "abc"}, 3)
    assert seen == [("a", 0), ("b", 0), ("c", 0),  # warm-up, untimed
                    ("a", 1), ("b", 1), ("c", 1), ("c", 2), ("b", 2), ("a", 2), ("a", 3), ("b", 3), ("c", 3)]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)
    seen.clear()
    bench.interleaved({"a": lambda k: seen.append(k)}, 2, warm_up=False)
    assert seen == [1, 2]
    assert bench.ratios({"fast": [1.0, 2.0], "slow": [3.0, 8.0]}, "fast", "slow") == [3.0, 4.0]
    assert bench.median_ratio({"fast": [1.0, 2.0], "slow": [3.0, 8.0]}, "fast", "slow") == 3.5


@pytest.mark.slow
def test_profile_sums_the_kernels_of_both_sides(split_path):
    """The profiler's trace is read back: the same matmul kernels on the pipeline's step
    and on the author's TF1 step, none of the executor's own events."""
    from mnist_audit.profiling import profile

    table, totals = profile("softmax_regression", split_path, steps=3, warmup=1, repeats=2)
    kernels = set(table["kernel"])
    matmul = {k for k in kernels if "MatMul" in k}
    assert matmul, sorted(kernels)
    rows = table.set_index("kernel").loc[sorted(matmul)]
    assert (rows["pipeline_ms_per_step"] > 0).any() and (rows["original_ms_per_step"] > 0).any()
    assert not any("::" in k or " " in k for k in kernels)  # only TF ops
    assert 0 < totals["pipeline"] < 1e4 and 0 < totals["original"] < 1e4
