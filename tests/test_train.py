"""Training jobs: data order, budgets, determinism, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_audit import registry
from mnist_audit.loops import DataOrder, plan

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- data order

class TF1NextBatch:
    """A transcription of TF1's DataSet.next_batch (shuffle=True) for index arrays."""

    def __init__(self, n, rng_for_epoch):
        self.n, self.rng_for_epoch = n, rng_for_epoch
        self.epoch, self.pos, self.perm = 0, 0, None

    def next_batch(self, b):
        if self.perm is None:
            self.perm = self.rng_for_epoch(0)
        start = self.pos
        if start + b > self.n:
            rest = self.perm[start:]
            self.epoch += 1
            self.perm = self.rng_for_epoch(self.epoch)
            self.pos = b - len(rest)
            return np.concatenate([rest, self.perm[: self.pos]])
        self.pos += b
        return self.perm[start : self.pos]


def test_shuffled_order_matches_tf1_next_batch_across_epoch_boundaries():
    n, b, seed = 55, 8, 3  # 55 is not a multiple of 8: batches straddle epochs
    order = DataOrder(n, b, shuffle=True, drop_last=False, seed=seed)
    ref = TF1NextBatch(n, order.epoch_order)
    expected = np.concatenate([ref.next_batch(b) for _ in range(40)])
    np.testing.assert_array_equal(order.batch_indices(0, 40), expected)
    # any window of the stream is the same slice, so a resumed job sees the same batches
    np.testing.assert_array_equal(order.batch_indices(13, 9), expected[13 * b : 22 * b])
    # every epoch is a permutation; epochs differ; seeds differ
    assert sorted(order.epoch_order(2)) == list(range(n))
    assert not np.array_equal(order.epoch_order(0), order.epoch_order(1))
    assert not np.array_equal(order.epoch_order(0), DataOrder(n, b, True, False, seed + 1).epoch_order(0))


def test_fixed_order_drops_last_partial_batch():
    order = DataOrder(10, 4, shuffle=False, drop_last=True, seed=0)
    np.testing.assert_array_equal(order.batch_indices(0, 4), [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7])


@pytest.mark.parametrize("arch, n, scale, steps, per_epoch", [
    ("jerkic", 55000, 1.0, 2001, 430),            # 2001 steps as published, ~4.7 epochs
    ("cnn_tutorial", 55000, 1.0, 20000, 1100),    # the cited tutorial's 20,000 steps
    ("singhal", 55000, 1.0, 55000, 550),          # 100 epochs x 550 steps
    ("thomas", 55000, 1.0, 11000, 1100),          # 10 epochs x 1100 steps
    ("zaccone", 55000, 1.0, 42900, 429),          # 100 epochs x 429 full batches (last dropped)
    ("softmax_regression", 55000, 1.0, 1000, 550),
    ("mlp", 55000, 1.0, 5500, 550),
    ("thomas", 55000, 0.1, 1100, 1100),           # a scaled budget
])
def test_plan(arch, n, scale, steps, per_epoch):
    p = plan(registry.resolve_recipe(arch), n, scale)
    assert (p["total_steps"], p["steps_per_epoch"]) == (steps, per_epoch)
    assert p["n_chunks"] == -(-steps // per_epoch)


# ----------------------------------------------------------------- real training (subprocesses)

def _train(split_path, out, arch, seed, scale, extra=()):
    """The CLI in a fresh process, as the pipeline runs it (2 threads)."""
    cmd = [sys.executable, "-m", "mnist_audit.cli", "train", "--arch", arch, "--seed", str(seed),
           "--data", str(split_path), "--out", str(out), "--train-subset", "512", "--eval-subset", "500",
           "--budget-scale", str(scale), "--threads", "2", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _weights(path):
    import keras

    from mnist_audit.models import CUSTOM_OBJECTS

    return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS).get_weights()


# jerkic: 512 images / 128 = 4 steps per epoch; 2001 * 0.008 = 16 steps = 4 epochs. Has dropout.
ARCH, SCALE = "jerkic", 0.008


@pytest.fixture(scope="module")
def reference_run(split_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    _finish(_train(split_path, out, ARCH, 0, SCALE))
    return out


@pytest.mark.slow
def test_same_seed_same_numbers_and_weights(split_path, reference_run, tmp_path):
    _finish(_train(split_path, tmp_path / "again", ARCH, 0, SCALE))
    a = json.loads((reference_run / "metrics.json").read_text())
    b = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert a["total_steps"] == 16 and a["n_chunks"] == 4
    for k in ("test_accuracy", "test_loss", "val_accuracy", "train_loss"):
        assert a[k] == b[k], k
    for wa, wb in zip(_weights(reference_run / "model.keras"), _weights(tmp_path / "again" / "model.keras")):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.slow
def test_different_seeds_differ(split_path, reference_run, tmp_path):
    _finish(_train(split_path, tmp_path / "s1", ARCH, 1, SCALE))
    a = json.loads((reference_run / "metrics.json").read_text())
    b = json.loads((tmp_path / "s1" / "metrics.json").read_text())
    assert a["test_loss"] != b["test_loss"]
    wa, wb = _weights(reference_run / "model.keras"), _weights(tmp_path / "s1" / "model.keras")
    assert any(not np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(split_path, reference_run, tmp_path):
    out = tmp_path / "killed"
    proc = _train(split_path, out, ARCH, 0, SCALE, ["--stop-after-epochs", "99"])
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.exists(), "no checkpoint appeared"
    proc.send_signal(signal.SIGKILL)  # no clean-up handlers run
    proc.wait()
    assert not (out / "metrics.json").exists()
    done_before = json.loads(state.read_text())["chunk"] + 1
    assert 1 <= done_before <= 3  # killed mid-run: at least one chunk checkpointed, one still to go
    log = _finish(_train(split_path, out, ARCH, 0, SCALE))
    assert "resuming" in log
    _assert_same_run(reference_run, out)
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == done_before
    assert not (out / "checkpoint").exists()


RESULT_COLUMNS = ["epoch", "steps", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                  "test_accuracy"]


def _assert_same_run(ref, out):
    """Same numbers, every epoch's history row, weights and predictions as the reference."""
    import pandas as pd

    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    for k in ("test_accuracy", "test_loss", "val_accuracy", "train_loss"):
        assert a[k] == b[k], k
    ha, hb = (pd.read_csv(d / "history.csv")[RESULT_COLUMNS] for d in (ref, out))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    for wa, wb in zip(_weights(ref / "model.keras"), _weights(out / "model.keras")):
        np.testing.assert_array_equal(wa, wb)
    assert (ref / "predictions.npz").read_bytes() == (out / "predictions.npz").read_bytes()


@pytest.mark.slow
def test_stop_early_then_resume_matches_uninterrupted(split_path, reference_run, tmp_path):
    """The early-stop branch (--stop-after-epochs 2): the process ends after two chunks
    with the checkpoint kept; the rerun resumes from chunk 3 and ends identical."""
    out = tmp_path / "stopped"
    log = _finish(_train(split_path, out, ARCH, 0, SCALE, ["--stop-after-epochs", "2"]))
    assert '"stopped_after_chunk": 2' in log and not (out / "metrics.json").exists()
    assert json.loads((out / "checkpoint" / "state.json").read_text())["chunk"] == 1
    _finish(_train(split_path, out, ARCH, 0, SCALE))
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == 2
    _assert_same_run(reference_run, out)


@pytest.mark.slow
def test_checkpoint_from_other_settings_is_not_resumed(split_path, reference_run, tmp_path):
    """A checkpoint left by other settings (here another seed) is discarded, not resumed:
    the run starts afresh and ends as an uninterrupted one with its own settings."""
    out = tmp_path / "mismatch"
    _finish(_train(split_path, out, ARCH, 1, SCALE, ["--stop-after-epochs", "2"]))
    assert (out / "checkpoint" / "state.json").exists()
    log = _finish(_train(split_path, out, ARCH, 0, SCALE))
    assert "different settings; starting afresh" in log and "resuming" not in log
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] is None
    _assert_same_run(reference_run, out)


@pytest.mark.slow
def test_outputs_and_timing_fields(reference_run):
    m = json.loads((reference_run / "metrics.json").read_text())
    t = m["timing"]
    assert t["steady_state_measured"] and t["train_images_per_second"] > 0 and t["first_epoch_seconds"] > 0
    assert m["published_recipe"] is False and m["budget_scale"] == SCALE  # a scaled run says so
    assert m["device"]["kind"] == "cpu" and m["device"]["threads"] == 2
    assert m["provenance"]["packages"]["keras"] and m["provenance"]["data_split_sha256"]
    import pandas as pd

    h = pd.read_csv(reference_run / "history.csv")
    assert list(h["epoch"]) == [1, 2, 3, 4] and list(h["steps"]) == [4, 8, 12, 16]
    assert (h["wall_seconds"].diff().dropna() > 0).all()
    cm = pd.read_csv(reference_run / "confusion.csv")
    assert cm.drop(columns="true").to_numpy().sum() == 500


@pytest.mark.slow
def test_predictions_match_the_reported_accuracy(reference_run):
    """predictions.npz holds every evaluation image's class; its correctness sums to
    the reported accuracy (the audit's per-image statistics rest on it)."""
    from mnist_audit.runs import read_predictions

    m = json.loads((reference_run / "metrics.json").read_text())
    p = read_predictions(reference_run / "predictions.npz")
    assert p["test_pred"].dtype == np.uint8 and len(p["test_pred"]) == m["n_test"]
    assert len(p["val_pred"]) == m["n_val"] and p["val_pred"].max() <= 9
    assert p["test_correct"].sum() / m["n_test"] == pytest.approx(m["test_accuracy"], abs=0.5 / m["n_test"])
    assert p["val_correct"].sum() / m["n_val"] == pytest.approx(m["val_accuracy"], abs=0.5 / m["n_val"])
    cm = __import__("pandas").read_csv(reference_run / "confusion.csv").drop(columns="true").to_numpy()
    assert np.trace(cm) == p["test_correct"].sum()  # rows true, columns predicted
    assert np.bincount(p["test_pred"], minlength=10).tolist() == cm.sum(axis=0).tolist()


def test_cpu_kind_from_cpuinfo():
    from mnist_audit.devices import cpu_info

    amd = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma avx512f avx512_bf16 avx512_vnni\n\nvendor_id : other\n"
    intel = "vendor_id : GenuineIntel\ncpu family : 6\nmodel : 143\nmodel name : Intel Xeon\nflags : avx2 avx512f amx_tile amx_bf16\n"
    a, i = cpu_info(amd), cpu_info(intel)
    assert a["kind"] == "AuthenticAMD 25/17 avx512+bf16" and a["model_name"] == "AMD EPYC"
    assert i["kind"] == "GenuineIntel 6/143 avx512+amx" and "amx_tile" in i["isa"]
    assert a["kind"] != i["kind"]
    assert "caches" not in a  # a text given: no machine to read


def test_cpu_caches_as_the_kernel_reports_them(tmp_path):
    from mnist_audit.devices import cpu_caches, cpu_info

    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "107520K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(f"{value}\n")
    assert cpu_caches(tmp_path) == {"L1d": "48K", "L1i": "32K", "L2": "2048K", "L3": "107520K"}
    assert cpu_caches(tmp_path / "absent") == {}
    here = cpu_info()
    if Path("/sys/devices/system/cpu/cpu0/cache").is_dir():  # Linux: this machine's, read for real
        assert {"L1d", "L2"} <= set(here["caches"]) and all(v[:-1].isdigit() for v in here["caches"].values())


@pytest.mark.slow
def test_eval_batch_size_changes_no_result(split_path, reference_run, tmp_path):
    """eval_batch_size changes no trained weight, no accuracy and no prediction; the
    evaluation losses are means summed in another order, equal to float32 rounding
    (this test found that a first, stronger README sentence was wrong)."""
    import pandas as pd

    out = tmp_path / "eval100"
    _finish(_train(split_path, out, ARCH, 0, SCALE, ["--eval-batch-size", "100"]))
    a = json.loads((reference_run / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert b["speed"]["eval_batch_size"] == 100
    for k in ("test_accuracy", "val_accuracy", "train_loss"):
        assert a[k] == b[k], k
    for k in ("test_loss", "val_loss"):
        assert b[k] == pytest.approx(a[k], rel=1e-6), k
    ha, hb = (pd.read_csv(d / "history.csv") for d in (reference_run, out))
    for col in ("steps", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy"):
        assert ha[col].tolist() == hb[col].tolist(), col
    for wa, wb in zip(_weights(reference_run / "model.keras"), _weights(out / "model.keras")):
        np.testing.assert_array_equal(wa, wb)
    assert (reference_run / "predictions.npz").read_bytes() == (out / "predictions.npz").read_bytes()


def test_saved_models_load_without_the_project_except_the_printed_layers(tmp_path):
    """The README's claim: plain keras.saving.load_model(path, compile=False), in a process
    that never imports mnist_audit, loads the models (for prediction) of every variant but
    cnn_tutorial:printed, whose custom layers need the project."""
    from mnist_audit import models
    from mnist_audit.checkpoint import save_keras

    cases = [(a, "default") for a in registry.list_models()] + [("cnn_tutorial", "printed")]
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    expected = {}
    for arch, variant in cases:
        model = models.compile_model(models.build_model(arch, variant), registry.resolve_recipe(arch, variant))
        save_keras(model, tmp_path / f"{arch}-{variant}.keras")
        expected[f"{arch}-{variant}"] = model.predict(x, verbose=0).argmax(axis=1).tolist()
    np.save(tmp_path / "x.npy", x)
    code = f"""
import json, sys, numpy as np, keras
assert "mnist_audit" not in sys.modules
out = {{}}
x = np.load({str(tmp_path / 'x.npy')!r})
for name in {sorted(expected)!r}:
    try:
        m = keras.saving.load_model({str(tmp_path)!r} + "/" + name + ".keras", compile=False)
        out[name] = m.predict(x, verbose=0).argmax(axis=1).tolist()
    except Exception as e:
        out[name] = type(e).__name__
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for arch in registry.list_models():
        assert got[f"{arch}-default"] == expected[f"{arch}-default"], arch
    assert got["cnn_tutorial-printed"] == "TypeError"  # its custom layers: load with models.CUSTOM_OBJECTS


def test_a_trained_model_reevaluates_to_its_reported_accuracy_without_the_project(tiny_run):
    """The tiny run's saved models, loaded by plain Keras in a process that never imports
    mnist_audit, classify the run's test images (the first eval_subset of the split) with
    exactly the accuracy the run reported."""
    work, _ = tiny_run
    runs = sorted((work / "results" / "runs").glob("*/default/seed0"))
    assert {d.parent.parent.name for d in runs} == {"thomas", "softmax_regression"}
    code = f"""
import json, sys, numpy as np, keras
assert "mnist_audit" not in sys.modules
split = np.load({str(work / "results" / "data" / "mnist" / "mnist.npz")!r})
out = {{}}
for d in {[str(d) for d in runs]!r}:
    n = json.load(open(d + "/metrics.json"))["n_test"]
    x = (split["x_test"][:n].astype(np.float32) / np.float32(255.0))[..., None]
    m = keras.saving.load_model(d + "/model.keras", compile=False)
    out[d] = float((m.predict(x, batch_size=1000, verbose=0).argmax(axis=1) == split["y_test"][:n]).mean())
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for d, acc in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        m = json.loads((Path(d) / "metrics.json").read_text())
        assert acc == m["test_accuracy_predict"] and acc == pytest.approx(m["test_accuracy"], abs=1e-6), d
