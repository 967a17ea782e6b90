"""One training job: an architecture, a recipe variant and a seed, trained on its budget.

The data order follows TF1's ``mnist.train.next_batch``: the training stream is the
concatenation of one permutation of the training set per epoch (drawn from the
seed and the epoch number), cut into consecutive batches, so a step budget that
does not divide into epochs carries over epoch boundaries exactly as the
tutorials did. Recipes with a fixed order (zaccone) use the identity order, and
recipes that drop the last partial batch truncate each epoch.

Training runs in *chunks* of one epoch's worth of steps (the last may be shorter).
After each chunk the job evaluates the validation and test sets (monitoring only:
nothing is selected on them), appends a row to the history and saves a
checkpoint, so a killed job resumes from its last completed chunk. Because the
data order is a pure function of (seed, step) and the checkpoint holds the
weights, the optimizer state and the dropout RNG state, a resumed run ends with
the same numbers as an uninterrupted one.

The primary number is accuracy on the full 10,000-image test set after the whole
budget (SPEC section 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from . import data as mdata
from . import files
from . import registry

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch",  # chunk number, 1-based: one epoch's worth of optimizer steps
    "steps",  # optimizer steps completed
    "epochs_seen",  # training images seen / training set size
    "train_seconds",  # training time of this chunk (no evaluation)
    "eval_seconds",  # evaluation time after this chunk
    "wall_seconds",  # wall-clock seconds since training started (training + evaluation)
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
]


def stream_positions(order_fn, epoch_len: int, start: int, stop: int) -> np.ndarray:
    """Indices of training examples at stream positions [start, stop)."""
    first, last = start // epoch_len, (stop - 1) // epoch_len
    stream = np.concatenate([order_fn(e) for e in range(first, last + 1)])
    offset = first * epoch_len
    return stream[start - offset : stop - offset]


class DataOrder:
    """The training stream of a recipe: which example is at which position."""

    def __init__(self, n_train: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int):
        self.n, self.batch_size, self.shuffle, self.seed = n_train, batch_size, shuffle, seed
        self.epoch_len = (n_train // batch_size) * batch_size if drop_last else n_train
        if self.epoch_len == 0:
            raise ValueError(f"batch size {batch_size} is larger than the training set ({n_train})")

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.epoch_len)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)[: self.epoch_len]

    def batch_indices(self, first_step: int, n_steps: int) -> np.ndarray:
        b = self.batch_size
        return stream_positions(self.epoch_order, self.epoch_len, first_step * b, (first_step + n_steps) * b)


def plan(recipe: registry.Recipe, n_train: int, budget_scale: float) -> dict:
    """Steps, chunking and budget bookkeeping for one run."""
    published = recipe.total_steps(n_train)
    total = max(1, round(published * budget_scale))
    per_chunk = recipe.steps_per_epoch(n_train)
    return {
        "published_steps": published,
        "total_steps": total,
        "steps_per_epoch": per_chunk,
        "n_chunks": math.ceil(total / per_chunk),
    }


def _save_keras(model, path: Path) -> None:
    """model.save through a temporary name (Keras needs the .keras suffix) and a rename."""
    with files.replacing(path, ".keras") as tmp:
        model.save(tmp)


def _signature(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _seed_generators(model):
    """(layer name, SeedGenerator) for every layer, in a stable order."""
    stack, out = list(model.layers), []
    while stack:
        layer = stack.pop(0)
        out += [(layer.name, sg) for sg in getattr(layer, "_seed_generators", [])]
        stack += list(getattr(layer, "layers", []))
    return out


def rng_state(model) -> dict:
    """Dropout RNG states. Keras 3 does not save SeedGenerator state in .keras files,
    so without this a resumed run would draw different dropout masks."""
    state = {}
    for name, sg in _seed_generators(model):
        state.setdefault(name, []).append(np.asarray(sg.state.value).tolist())
    return state


def set_rng_state(model, state: dict) -> None:
    seen: dict[str, int] = {}
    for name, sg in _seed_generators(model):
        i = seen[name] = seen.get(name, -1) + 1
        sg.state.assign(np.asarray(state[name][i], dtype=sg.state.dtype))


class Checkpoint:
    """Model + progress after the last completed chunk, in ``out_dir/checkpoint``."""

    def __init__(self, out_dir: Path, signature: str):
        self.dir = Path(out_dir) / "checkpoint"
        self.signature = signature

    def load(self, custom_objects):
        state_path = self.dir / "state.json"
        if not state_path.exists():
            return None
        state = json.loads(state_path.read_text())
        if state.get("signature") != self.signature:
            log.warning("checkpoint in %s is from different settings; starting afresh", self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            return None
        import keras

        model = keras.saving.load_model(self.dir / state["model"], custom_objects=custom_objects)
        set_rng_state(model, state["rng"])
        return model, state

    def save(self, model, chunk: int, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"model-{chunk}.keras"
        _save_keras(model, self.dir / name)
        files.atomic_write_json(self.dir / "state.json",
                     {**state, "signature": self.signature, "model": name, "rng": rng_state(model)})
        for old in self.dir.glob("model-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def fit_chunk(model, x, y, idx, batch_size):
    """One pass over the chunk's examples in stream order, from NumPy arrays."""
    return model.fit(x[idx], y[idx], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


# Forward multiply-accumulates one call into the compiled training function should
# hold, so that the fixed cost of a call (Python, dispatch: about a millisecond)
# is a few percent of it. A GPU does ~100x the arithmetic of a small CPU per second.
MACS_PER_EXECUTION = {"cpu": 5e8, "gpu": 5e10}
MAX_STEPS_PER_EXECUTION = 64


def auto_steps_per_execution(arch: str, variant: str, batch_size: int, device_kind: str = "cpu") -> int:
    """Optimizer steps per call: enough that a call holds ``MACS_PER_EXECUTION`` work.

    It applies where training goes through ``model.fit`` (the JAX backend, or
    ``resident_data`` off; a resident TensorFlow job runs each chunk as one call)
    and to evaluation. On this project's CPU that is 64 for softmax regression, 20
    for the MLP, 7 for singhal, and 1 for the other CNNs, whose steps are already long
    (results/bench/ measures each choice against 1). The steps and their order
    are the same for any value, and so are the numbers (tests/test_bench.py).
    """
    from . import models

    work = models.macs_per_image(arch, variant) * batch_size
    target = MACS_PER_EXECUTION.get(device_kind, MACS_PER_EXECUTION["cpu"])
    return int(max(1, min(MAX_STEPS_PER_EXECUTION, target // work)))


def resolve_steps_per_execution(value: int | str, arch: str, variant: str, batch_size: int,
                                device_kind: str = "cpu") -> int:
    if value == "auto":
        return auto_steps_per_execution(arch, variant, batch_size, device_kind)
    return int(value)


def static_pipeline_options():
    """tf.data options for a pipeline over tensors already in memory: autotuning off.

    With autotuning on, every iterator starts a background tuning thread that its
    destruction waits for: about 0.15 s per ``fit``, ``evaluate`` or ``predict`` call
    on a small CPU (results/bench/ shows it as a second mode in the call times).
    Nothing here needs tuning: the data are resident and the pipelines are one op deep.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class Feeder:
    """Trains the model on one chunk of the training stream (indices, in stream order).

    ``resident=True`` on TensorFlow: the training set becomes a tensor once per job
    (on the GPU when there is one), and each chunk is *one* call into a compiled loop
    (a ``tf.while_loop`` over the chunk's steps, each gathering its batch by index
    inside the graph and running Keras's own ``train_step``). No Python runs per
    step and no ``tf.data`` threads compete with the step's threads.

    Otherwise (``resident=False``, or another backend) the chunk is copied out of the
    NumPy arrays and fed to ``model.fit`` (``fit_chunk``), with the model's
    ``steps_per_execution``.

    The batches, their order and the step function are the same either way, and so
    are the numbers, bit for bit (tests/test_bench.py). ``fit`` returns the chunk's
    mean training loss and accuracy, as ``model.fit``'s history has them.
    """

    def __init__(self, x, y, resident: bool = True):
        self.x, self.y = x, y
        self.resident = _resident_here(resident)
        self._loop, self._loop_model = None, None
        if self.resident:
            self._x, self._y = _to_device(x), _to_device(y)

    def fit(self, model, idx, batch_size) -> dict:
        if not self.resident:
            h = fit_chunk(model, self.x, self.y, idx, batch_size).history
            return {"loss": float(h["loss"][-1]), "accuracy": float(h["accuracy"][-1])}
        import tensorflow as tf

        idx = np.asarray(idx, dtype=np.int32)
        if len(idx) % batch_size:
            raise ValueError(f"a chunk of {len(idx)} examples is not whole batches of {batch_size}")
        model.reset_metrics()  # as fit does at each epoch: the chunk's means
        self._compiled_loop(model, batch_size)(tf.constant(idx.reshape(-1, batch_size)))
        return {k: float(v) for k, v in model.get_metrics_result().items() if k in ("loss", "accuracy")}

    def _compiled_loop(self, model, batch_size):
        if self._loop_model is model:
            return self._loop
        import tensorflow as tf

        x, y = self._x, self._y
        # What model.fit does before its first step: build the optimizer's and the
        # metrics' variables (they cannot be created inside the loop). A private Keras
        # method (pinned Keras; tests/test_bench.py checks the result against model.fit).
        model._symbolic_build(data_batch=(x[:batch_size], y[:batch_size]))
        step = tf.autograph.experimental.do_not_convert(model.train_step)

        # One trace for every chunk length; XLA only where Keras kept it on for the model.
        @tf.function(input_signature=[tf.TensorSpec([None, batch_size], tf.int32)],
                     jit_compile=bool(getattr(model, "jit_compile", False)))
        def run_steps(batches):  # [steps, batch_size] indices
            def body(i):
                step((tf.gather(x, batches[i]), tf.gather(y, batches[i])))
                return (i + 1,)

            tf.while_loop(lambda i: i < tf.shape(batches)[0], body, (tf.constant(0),))

        self._loop, self._loop_model = run_steps, model
        return run_steps


def _resident_here(resident: bool) -> bool:
    """Resident data is TensorFlow's lever: on another backend the NumPy path is used."""
    import keras

    return bool(resident) and keras.backend.backend() == "tensorflow"


def _to_device(a):
    """A NumPy array as a TensorFlow tensor, on the first GPU when TensorFlow sees one."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        return tf.constant(a)
    with tf.device(gpus[0].name):
        return tf.identity(tf.constant(a))  # copied to the GPU once


class EvalSet:
    """One evaluation set (validation or test), held once per job.

    On TensorFlow with ``resident``: a ``tf.data`` pipeline over resident tensors in
    batches of ``batch_size``, autotuning off (``static_pipeline_options``), built once
    and evaluated after every chunk. Otherwise Keras's NumPy path. Same batches,
    same numbers.
    """

    def __init__(self, x, y, batch_size: int, resident: bool = True):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.resident = _resident_here(resident)
        if self.resident:
            import tensorflow as tf

            self.ds = (tf.data.Dataset.from_tensor_slices((_to_device(x), _to_device(y)))
                       .batch(batch_size).with_options(static_pipeline_options()))

    def evaluate(self, model) -> tuple[float, float]:
        if self.resident:
            r = model.evaluate(self.ds, verbose=0, return_dict=True)
        else:
            r = model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)
        return float(r["loss"]), float(r["accuracy"])

    def predict(self, model) -> np.ndarray:
        if self.resident:
            return np.asarray(model.predict(self.ds, verbose=0))
        return np.asarray(model.predict(self.x, batch_size=self.batch_size, verbose=0))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = 10) -> np.ndarray:
    return np.bincount(y_true.astype(np.int64) * n + y_pred, minlength=n * n).reshape(n, n)


def train_run(
    data_path: str | Path,
    out_dir: str | Path,
    arch: str,
    variant: str = "default",
    seed: int = 0,
    overrides: dict | None = None,
    budget_scale: float = 1.0,
    train_subset: int | None = None,
    eval_subset: int | None = None,
    eval_batch_size: int = 1000,
    jit_compile: bool | str = "auto",
    steps_per_execution: int | str = "auto",
    resident_data: bool = True,
    device: dict | None = None,
    config: dict | None = None,
    stop_after_chunks: int | None = None,
) -> dict:
    """Train one job: write metrics.json, history.csv, model.keras, confusion.csv, predictions.npz.

    ``stop_after_chunks`` ends the process's work early (as a kill would), leaving the
    checkpoint for a resume; tests use it. Returns the metrics dict.
    """
    import keras

    from . import models

    t_start_job = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch_info = registry.get_architecture(arch)
    recipe = registry.resolve_recipe(arch, variant, overrides or {})
    backend = keras.backend.backend()

    t0 = time.perf_counter()
    split = mdata.load_split(Path(data_path))
    x_train, y_train = split["x_train"], split["y_train"]
    if train_subset:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]
    x_val, y_val, x_test, y_test = split["x_val"], split["y_val"], split["x_test"], split["y_test"]
    if eval_subset:
        x_val, y_val = x_val[:eval_subset], y_val[:eval_subset]
        x_test, y_test = x_test[:eval_subset], y_test[:eval_subset]
    x_train, x_val, x_test = map(mdata.as_float, (x_train, x_val, x_test))
    y_train, y_val, y_test = (a.astype(np.int32) for a in (y_train, y_val, y_test))
    data_seconds = time.perf_counter() - t0

    n_train = len(x_train)
    p = plan(recipe, n_train, budget_scale)
    order = DataOrder(n_train, recipe.batch_size, recipe.shuffle, recipe.drop_last, seed)
    settings = {
        "arch": arch, "variant": variant, "seed": seed, "recipe": recipe.as_dict(),
        "budget_scale": budget_scale, "train_subset": train_subset, "eval_subset": eval_subset,
        "backend": backend, "plan": p, "jit_compile": jit_compile, "steps_per_execution": steps_per_execution,
    }
    ckpt = Checkpoint(out_dir, _signature(settings))
    # Resolved before the seed is set: it builds a throw-away model to count MACs.
    spe = resolve_steps_per_execution(steps_per_execution, arch, variant, recipe.batch_size,
                                      (device or {}).get("kind", "cpu"))

    keras.utils.set_random_seed(seed)
    restored = ckpt.load(models.CUSTOM_OBJECTS)
    if restored:
        model, state = restored
        history, start_chunk = state["history"], state["chunk"] + 1
        wall_offset, resumed_from = state["wall_seconds"], state["chunk"] + 1
        log.info("resuming %s/%s seed %d after chunk %d of %d", arch, variant, seed, start_chunk, p["n_chunks"])
    else:
        model = models.compile_model(models.build_model(arch, variant), recipe, jit_compile=jit_compile,
                                     steps_per_execution=spe)
        history, start_chunk, wall_offset, resumed_from = [], 0, 0.0, None

    feeder = Feeder(x_train, y_train, resident_data)
    val_set = EvalSet(x_val, y_val, eval_batch_size, resident_data)
    test_set = EvalSet(x_test, y_test, eval_batch_size, resident_data)
    target = arch_info.claim.lower  # the one threshold: the claim's lower bound (SPEC section 4)
    t_train_start = time.perf_counter() - wall_offset
    load: list[float] = []  # 1-minute load average after each chunk: how busy the machine was
    for chunk in range(start_chunk, p["n_chunks"]):
        first = chunk * p["steps_per_epoch"]
        n_steps = min(p["steps_per_epoch"], p["total_steps"] - first)
        t = time.perf_counter()
        fit = feeder.fit(model, order.batch_indices(first, n_steps), recipe.batch_size)
        train_seconds = time.perf_counter() - t
        t = time.perf_counter()
        val_loss, val_acc = val_set.evaluate(model)
        test_loss, test_acc = test_set.evaluate(model)
        eval_seconds = time.perf_counter() - t
        row = {
            "epoch": chunk + 1,
            "steps": first + n_steps,
            "epochs_seen": (first + n_steps) * recipe.batch_size / n_train,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "wall_seconds": time.perf_counter() - t_train_start,
            "train_loss": fit["loss"],
            "train_accuracy": fit["accuracy"],
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
        }
        history.append(row)
        load.append(os.getloadavg()[0])
        log.info(
            "%s/%s seed %d: epoch %d/%d steps %d train %.2fs loss %.4f val %.4f test %.4f",
            arch, variant, seed, row["epoch"], p["n_chunks"], row["steps"], train_seconds,
            row["train_loss"], val_acc, test_acc,
        )
        if chunk + 1 < p["n_chunks"]:
            ckpt.save(model, chunk, {"chunk": chunk, "history": history, "wall_seconds": row["wall_seconds"]})
            if stop_after_chunks is not None and chunk + 1 - start_chunk >= stop_after_chunks:
                log.warning("stopping early after chunk %d as asked (checkpoint kept)", chunk + 1)
                return {"stopped_after_chunk": chunk + 1}

    # Final evaluation: the full test set after the whole budget (the last row's numbers),
    # and every validation and test image's predicted class (predictions.npz).
    t = time.perf_counter()
    y_pred = test_set.predict(model).argmax(axis=1)
    val_pred = val_set.predict(model).argmax(axis=1)
    predict_seconds = time.perf_counter() - t
    cm = confusion_matrix(y_test, y_pred)
    last = history[-1]
    predicted_accuracy = float((y_pred == y_test).mean())

    t = time.perf_counter()
    _save_keras(model, out_dir / "model.keras")
    save_seconds = time.perf_counter() - t
    metrics = {
        "arch": arch,
        "variant": variant,
        "seed": seed,
        "baseline": arch_info.baseline,
        "backend": backend,
        "device": device or {},
        "recipe": recipe.as_dict(),
        "overrides": overrides or {},
        "budget_scale": budget_scale,
        "train_subset": train_subset,
        "eval_subset": eval_subset,
        "speed": {"jit_compile": jit_compile, "jit_compile_used": bool(getattr(model, "jit_compile", False)),
                  "steps_per_execution": steps_per_execution, "steps_per_execution_used": spe,
                  "resident_data": resident_data, "resident_data_used": feeder.resident,
                  # resident: each chunk is one compiled call; else model.fit, spe steps a call
                  "training_loop": "compiled loop over resident data" if feeder.resident else "model.fit",
                  "eval_batch_size": eval_batch_size},
        "n_train": n_train,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        **p,
        "full_budget": budget_scale == 1.0 and not train_subset and not eval_subset,
        "published_recipe": budget_scale == 1.0 and not train_subset and not eval_subset and not overrides,
        "claim": arch_info.claim.as_dict(),
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "train_loss": last["train_loss"],
        "train_accuracy": last["train_accuracy"],
        "test_accuracy_predict": predicted_accuracy,
        "best_epoch_test_accuracy_optimistic": max(r["test_accuracy"] for r in history),
        "resumed_from_epoch": resumed_from,
        "timing": timing_summary(history, recipe.batch_size, p["steps_per_epoch"], len(y_val) + len(y_test), target),
        # Other work on the machine while this job trained (jobs at once, anything else):
        # the median 1-minute load average over the chunks, against the logical CPUs.
        "load_average": {"median": statistics.median(load) if load else None, "max": max(load, default=None),
                         "logical_cpus": os.cpu_count()},
        "data_seconds": data_seconds,
        "predict_seconds": predict_seconds,
        "save_seconds": save_seconds,
        "job_seconds": time.perf_counter() - t_start_job,
        "provenance": _provenance(Path(data_path)),
        "config": config or {},
        "result_id": uuid.uuid4().hex,  # lets the logger tell these results from older ones
    }
    pd_history = _history_table(history)
    files.atomic_write_csv(out_dir / "history.csv", pd_history)
    files.atomic_write_csv(out_dir / "confusion.csv", _confusion_table(cm))
    write_predictions(out_dir / "predictions.npz", val_pred, y_val, y_pred, y_test)
    files.atomic_write_json(out_dir / "metrics.json", metrics)
    ckpt.clear()
    return metrics


def write_predictions(path: Path, val_pred, y_val, test_pred, y_test) -> None:
    """Every evaluation image's predicted class after the whole budget, and whether it is right.

    ``{val,test}_pred``: uint8 classes in the split's order; ``{val,test}_correct``: the
    same images' correctness as packed bits (``np.unpackbits(..., count=n)``), so the
    audit's per-image statistics (intervals paired over test images, McNemar) need no labels.
    About 15 KB per run.
    """
    import io

    arrays = {}
    for split, pred, true in (("val", val_pred, y_val), ("test", test_pred, y_test)):
        pred = np.asarray(pred, dtype=np.uint8)
        arrays[f"{split}_pred"] = pred
        arrays[f"{split}_correct"] = np.packbits(pred == np.asarray(true))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    files.atomic_write_bytes(path, buf.getvalue())


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """``write_predictions``'s arrays, with ``*_correct`` unpacked to booleans."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    for split in ("val", "test"):
        n = len(out[f"{split}_pred"])
        out[f"{split}_correct"] = np.unpackbits(out[f"{split}_correct"], count=n).astype(bool)
    return out


def _provenance(data_path: Path) -> dict:
    from . import provenance

    manifest = data_path.parent / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    return {
        "git_commit": provenance.git_commit(),
        "packages": provenance.package_versions(),
        **provenance.platform_info(),
        "data_payload_sha256": data.get("payload_sha256", {}),
        "data_split_sha256": data.get("split_sha256") or files.sha256_file(data_path),
    }


def timing_summary(history: list[dict], batch_size: int, steps_per_epoch: int, eval_images: int,
                   target: float | None) -> dict:
    """First epoch (tracing and compilation) apart from the steady state."""
    first = history[0]
    steps = [history[0]["steps"]] + [b["steps"] - a["steps"] for a, b in zip(history, history[1:])]
    steady = [(r["train_seconds"], s) for r, s in zip(history[1:], steps[1:])]
    if steady:
        secs, n = sum(t for t, _ in steady), sum(s for _, s in steady)
        per_step = statistics.median(t / s for t, s in steady)
    else:  # a one-epoch run has no steady state: its only epoch includes compilation
        secs, n, per_step = first["train_seconds"], steps[0], first["train_seconds"] / steps[0]
    # the author's measure is judged by the report; here the test set after each epoch
    reached = next((r for r in history if target is not None and r["test_accuracy"] >= target), None)
    eval_secs = [r["eval_seconds"] for r in history[1:]] or [first["eval_seconds"]]
    return {
        "total_train_seconds": sum(r["train_seconds"] for r in history),
        "total_eval_seconds": sum(r["eval_seconds"] for r in history),
        "wall_seconds": history[-1]["wall_seconds"],
        "first_epoch_seconds": first["train_seconds"],
        "first_epoch_overhead_seconds": max(0.0, first["train_seconds"] - per_step * steps[0]),
        "steady_epoch_seconds": per_step * steps_per_epoch,
        "steady_state_measured": bool(steady),
        "train_images_per_second": n * batch_size / secs if secs > 0 else None,
        "eval_images_per_second": eval_images / statistics.median(eval_secs) if eval_secs else None,
        "target_accuracy": target,
        "time_to_target_seconds": reached["wall_seconds"] if reached else None,
        "time_to_target_epoch": reached["epoch"] if reached else None,
        "target_reached": None if target is None else reached is not None,
    }


def _history_table(history):
    import pandas as pd

    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def _confusion_table(cm):
    import pandas as pd

    df = pd.DataFrame(cm, index=pd.Index(range(10), name="true"), columns=[f"pred_{i}" for i in range(10)])
    return df.reset_index()
