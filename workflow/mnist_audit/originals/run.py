"""Train an original program on the prepared split and write the port's record of a run.

The loop is the tutorials' own: one ``sess.run(train_op, feed_dict=...)`` per step.
The batches are the port's (``loops.DataOrder``: TF1 ``next_batch`` emulated from the
seed, or zaccone's fixed order), so both sides see the same images in the same order;
the chunking (one epoch's steps), the evaluation after each chunk, the history, the
timing summary, the confusion matrix and the per-image predictions are the port's
too (``mnist_audit.loops`` and ``mnist_audit.runs``), so a run of an original reads like a run of the port,
marked ``"variant": "original"``, ``"implementation": "tf1 graph"`` and
``"original_of"``: the registry variant it implements.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from .. import data as mdata
from .. import loops, registry, runs
from ..config import original_variant
from ..settings import ORIGINAL, for_original
from . import program as prog
from . import scripts

log = logging.getLogger(__name__)

IMPLEMENTATION = "tf1 graph"
TRAINING_LOOP = "sess.run(train_op, feed_dict) per step (TF1 graph)"
# The recipe fields the original program fixes itself: the registry must agree.
_CHECKED = ("batch_size", "budget", "budget_unit", "shuffle", "drop_last", "loss", "learning_rate")


def check_recipe(p: prog.Program) -> None:
    """The registry's recipe must say what the author's program does (batches, budget, loss)."""
    wrong = [f"{k}: registry {getattr(p.recipe, k)!r}, original {getattr(p.training, k)!r}"
             for k in _CHECKED if getattr(p.recipe, k) != getattr(p.training, k)]
    if wrong:
        raise registry.RegistryError(f"{p.arch}/{p.variant}: the recipe is not the original's: " + "; ".join(wrong))


def evaluate(p: prog.Program, sess, x, y, batch_size: int) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and predicted classes over a set, in batches, dropout off."""
    loss_sum, preds = 0.0, []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        losses, pred = sess.run([p.example_loss, p.predictions], p.feed(xb, yb))
        loss_sum += float(np.sum(losses, dtype=np.float64))
        preds.append(pred)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    return loss_sum / max(1, len(x)), float(np.mean(pred == y)) if len(y) else float("nan"), pred


def train_chunk(p: prog.Program, sess, x, y1h, batches) -> dict:
    """The steps of one chunk (``batches``: [steps, batch] indices): the chunk's mean
    training loss and accuracy, from each step's own forward pass (as Keras's fit reports)."""
    loss_sum, correct = 0.0, 0
    for idx in batches:
        _, loss, n_correct = sess.run([p.train_op, p.loss, p.n_correct],
                                      feed_dict=p.feed(x[idx], y1h[idx], training=True))
        loss_sum += float(loss)
        correct += int(n_correct)
    return {"loss": loss_sum / len(batches), "accuracy": correct / batches.size}


def train_original(
    data_path: str | Path,
    out_dir: str | Path,
    arch: str,
    variant: str = "default",
    seed: int = 0,
    *,
    threads: int = 1,
    device: dict | None = None,
    config: dict | None = None,
    initial_weights: list | None = None,
    from_port: bool = False,
    script: str | Path | None = None,
    platform=None,
    **settings,
) -> dict:
    """Train the original of ``arch``/``variant``; write metrics.json, history.csv,
    confusion.csv and predictions.npz into ``out_dir`` (no model file). Returns the metrics.

    ``settings``: those of ``settings.ORIGINAL`` (budget scale, subsets, evaluation batch),
    defined with their defaults in ``settings.TrainSettings`` like the port's.

    ``initial_weights`` (layer order, kernel before bias): start from these instead of the
    original's own initialisers, e.g. the port's for the same seed, which separates what
    the two programs do from what their random initial draws give (``initial_weights``
    in the record says which). ``from_port``: start from ``port_initial_weights(arch,
    variant, seed)``; the run is then variant ``original_from_port`` (or
    ``original_<variant>_from_port``), compared with the port apart from the original's
    own draws.

    Same data loading, subsets, plan, data order, chunking and evaluation as
    ``train.train_run``; no checkpoint (a killed run starts again).

    An architecture whose registry entry has ``original="keras script"`` runs its
    author's Keras script instead (``originals.scripts.train_script``, same arguments;
    ``script``: a copy of the author's own file to run in place of the project's).
    """
    s = for_original(arch, variant, **settings)
    if registry.get_architecture(arch).original == scripts.IMPLEMENTATION:
        return scripts.train_script(data_path, out_dir, s, seed, threads=threads, device=device, config=config,
                                    initial_weights=initial_weights, from_port=from_port, script=script,
                                    platform=platform)
    budget_scale, train_subset, eval_subset, eval_batch_size = (getattr(s, k) for k in ORIGINAL)
    if script is not None:
        raise registry.RegistryError(f"{arch}: its original is the TF1 program in mnist_audit.originals, "
                                     "not a script (--script is for Keras tutorials)")
    t_start_job = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch_info = registry.get_architecture(arch)

    t0 = time.perf_counter()
    d = mdata.training_arrays(Path(data_path), train_subset, eval_subset)
    x_train, y_train, x_val, y_val, x_test, y_test = (d[k] for k in ("x_train", "y_train", "x_val", "y_val",
                                                                     "x_test", "y_test"))
    y_train_1h = prog.one_hot(y_train)
    data_seconds = time.perf_counter() - t0

    if from_port:
        if initial_weights is not None:
            raise ValueError("give initial_weights or from_port, not both")
        from ..models import port_initial_weights

        initial_weights = port_initial_weights(arch, variant, seed)
    p = prog.build(arch, variant, seed)  # enables op determinism first
    check_recipe(p)
    recipe = p.recipe
    n_train = len(x_train)
    pl = loops.plan(recipe, n_train, budget_scale)
    order = loops.DataOrder(n_train, recipe.batch_size, recipe.shuffle, recipe.drop_last, seed)
    target = arch_info.claim.lower
    history: list[dict] = []
    load: list[float] = []
    with contextlib.closing(p.session(threads)) as sess:
        if initial_weights is not None:
            p.set_weights(sess, initial_weights)
        t_train_start = time.perf_counter()
        for chunk in range(pl["n_chunks"]):
            first = chunk * pl["steps_per_epoch"]
            n_steps = min(pl["steps_per_epoch"], pl["total_steps"] - first)
            batches = order.batch_indices(first, n_steps).reshape(n_steps, recipe.batch_size)
            t = time.perf_counter()
            fit = train_chunk(p, sess, x_train, y_train_1h, batches)
            train_seconds = time.perf_counter() - t
            t = time.perf_counter()
            val_loss, val_acc, _ = evaluate(p, sess, x_val, y_val, eval_batch_size)
            test_loss, test_acc, _ = evaluate(p, sess, x_test, y_test, eval_batch_size)
            eval_seconds = time.perf_counter() - t
            history.append({
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
            })
            load.append(os.getloadavg()[0])
            log.info("original %s/%s seed %d: epoch %d/%d steps %d train %.2fs loss %.4f val %.4f test %.4f",
                     arch, variant, seed, chunk + 1, pl["n_chunks"], first + n_steps, train_seconds,
                     fit["loss"], val_acc, test_acc)
        # Every validation and test image's class after the whole budget (a pass of its
        # own, as the port's predict: it differs from the last evaluation only where
        # dropout stays on at evaluation, cnn_tutorial's printed variant).
        t = time.perf_counter()
        _, _, y_pred = evaluate(p, sess, x_test, y_test, eval_batch_size)
        _, _, val_pred = evaluate(p, sess, x_val, y_val, eval_batch_size)
        predict_seconds = time.perf_counter() - t

    metrics = {
        "arch": arch,
        "variant": original_variant(variant, from_port),
        "original_of": variant,
        "implementation": IMPLEMENTATION,
        "initial_weights": (f"the port's (seed {seed})" if from_port else "given" if initial_weights is not None
                            else "own initialisers"),
        "seed": seed,
        "baseline": arch_info.baseline,
        "backend": "tensorflow",
        "device": device or {},
        "recipe": recipe.as_dict(),
        "overrides": {},
        "budget_scale": budget_scale,
        "train_subset": train_subset,
        "eval_subset": eval_subset,
        "speed": {"jit_compile": False, "jit_compile_used": False, "steps_per_execution": 1,
                  "steps_per_execution_used": 1, "resident_data": False, "resident_data_used": False,
                  "training_loop": TRAINING_LOOP, "eval_batch_size": eval_batch_size, "threads": threads},
        "n_train": n_train,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        **pl,
        **runs.budget_flags(budget_scale, train_subset, eval_subset, None),
        "claim": arch_info.claim.as_dict(),
        **runs.results(history, y_pred, y_test, target, recipe.batch_size, pl["steps_per_epoch"],
                       len(y_val) + len(y_test), load),
        "resumed_from_epoch": None,
        "data_seconds": data_seconds,
        "predict_seconds": predict_seconds,
        "save_seconds": 0.0,  # no model file
        "job_seconds": time.perf_counter() - t_start_job,
        "provenance": runs.provenance(Path(data_path)),
        "config": config or {},
        "result_id": uuid.uuid4().hex,
    }
    if platform is not None:  # the job's platforms.Session: what ran
        metrics["platform"] = platform.record("tensorflow")
    runs.write_run(out_dir, metrics, history, y_val, val_pred, y_test, y_pred)
    return metrics


def images_per_second(arch: str, variant: str = "default", steps: int = 50, threads: int = 1,
                      repeats: int = 3, warmup: int = 5, seed: int = 0) -> float:
    """Steady-state training images per second of the original loop.

    One ``sess.run(train_op, feed_dict=...)`` per step, as the tutorials ran, at the
    recipe's batch size on random images and labels (a few batches, cycled), after
    ``warmup`` steps; the median of ``repeats`` timings of ``steps`` steps. Op
    determinism is on (``build``), as in the port's training jobs
    (``devices.configure_backend``), so the two are timed under the same rules.
    """
    p = prog.build(arch, variant, seed)
    b = p.batch_size
    rng = np.random.default_rng(seed)
    pool = [(rng.random((b, *p.input_shape), dtype=np.float32), prog.one_hot(rng.integers(0, 10, b)))
            for _ in range(4)]
    times = []
    with contextlib.closing(p.session(threads)) as sess:
        for i in range(warmup):
            xb, yb = pool[i % len(pool)]
            sess.run(p.train_op, feed_dict={p.x: xb, p.y: yb, **p.train_keep})
        for _ in range(repeats):
            t = time.perf_counter()
            for i in range(steps):
                xb, yb = pool[i % len(pool)]
                sess.run(p.train_op, feed_dict={p.x: xb, p.y: yb, **p.train_keep})
            times.append(time.perf_counter() - t)
    return steps * b / statistics.median(times)
