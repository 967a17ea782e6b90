"""One training job of the port: an architecture, a recipe variant and a seed, on its budget.

``train_run`` reads as the job's steps: load the arrays, plan the budget, build the
model (or resume it from the checkpoint), train chunk by chunk (one epoch's steps
each, then the validation and test sets are evaluated: monitoring only, nothing is
selected on them), predict every evaluation image, save the model, write the record.
The parts live in ``loops`` (data order, plan, compiled loop, evaluation sets),
``checkpoint`` and ``runs`` (the record).

The primary number is accuracy on the full 10,000-image test set after the whole
budget (docs/benchmark.md).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

from . import data as mdata
from . import registry, runs, sysmetrics
from .checkpoint import Checkpoint, save_keras, signature
from .loops import DataOrder, EvalSet, Feeder, images_seen, plan, resolve_steps_per_execution
from .settings import TrainSettings

log = logging.getLogger(__name__)


def train_run(
    data_path: str | Path,
    out_dir: str | Path,
    arch: str,
    variant: str = "default",
    seed: int = 0,
    *,
    device: dict | None = None,
    config: dict | None = None,
    stop_after_chunks: int | None = None,
    initial_weights: list | None = None,
    platform=None,
    **settings,
) -> dict:
    """Train one job: write metrics.json, history.csv, model.keras, confusion.csv, predictions.npz.

    ``settings``: the other fields of ``settings.TrainSettings`` (overrides, budget_scale,
    subsets, evaluation batch, speed levers), each with its default there.
    ``stop_after_chunks`` ends the process's work early (as a kill would), leaving the
    checkpoint for a resume; tests use it. ``initial_weights`` (``model.get_weights()``
    order): start from these instead of this backend's draw for the seed (a run on JAX
    paired with the TensorFlow port's draw). ``platform``: the job's
    ``platforms.Session``, whose record goes into the run's. Returns the metrics dict.
    """
    import keras

    from . import models

    t_start_job = time.perf_counter()
    s = TrainSettings(arch=arch, variant=variant, **settings)
    out_dir = Path(out_dir)
    arch_info = registry.get_architecture(arch)
    recipe = registry.resolve_recipe(arch, variant, s.overrides or {})
    backend = keras.backend.backend()

    t = time.perf_counter()
    d = mdata.training_arrays(Path(data_path), s.train_subset, s.eval_subset, recipe.data_split)
    data_seconds = time.perf_counter() - t
    out_dir.mkdir(parents=True, exist_ok=True)  # after the data: a bad --data leaves nothing behind

    n_train = len(d["x_train"])
    p = plan(recipe, n_train, s.budget_scale)
    order = DataOrder.of(recipe, n_train, seed)
    ckpt = Checkpoint(out_dir, signature({
        "arch": arch, "variant": variant, "seed": seed, "recipe": recipe.as_dict(),
        "budget_scale": s.budget_scale, "train_subset": s.train_subset, "eval_subset": s.eval_subset,
        "backend": backend, "plan": p, "jit_compile": s.jit_compile, "steps_per_execution": s.steps_per_execution,
    }))
    # Resolved before the seed is set: it builds a throw-away model to count MACs.
    spe = resolve_steps_per_execution(s.steps_per_execution, arch, variant, recipe.batch_size,
                                      (device or {}).get("kind", "cpu"))

    keras.utils.set_random_seed(seed)
    restored = ckpt.load(models.CUSTOM_OBJECTS)
    if restored:
        model, state = restored
        history, start_chunk = state["history"], state["chunk"] + 1
        wall_offset, resumed_from = state["wall_seconds"], state["chunk"] + 1
        log.info("resuming %s/%s seed %d after chunk %d of %d", arch, variant, seed, start_chunk, p["n_chunks"])
    else:
        model = models.compile_model(models.build_model(arch, variant), recipe, jit_compile=s.jit_compile,
                                     steps_per_execution=spe)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        history, start_chunk, wall_offset, resumed_from = [], 0, 0.0, None

    feeder = Feeder(d["x_train"], d["y_train"], s.resident_data)
    val_set = EvalSet(d["x_val"], d["y_val"], s.eval_batch_size, s.resident_data)
    test_set = EvalSet(d["x_test"], d["y_test"], s.eval_batch_size, s.resident_data)
    t_train_start = time.perf_counter() - wall_offset
    load: list[float] = []  # 1-minute load average after each chunk: how busy the machine was
    sampler = sysmetrics.Sampler(offset_s=wall_offset)  # CPU and memory while it trains
    with sampler:
        for chunk in range(start_chunk, p["n_chunks"]):
            first = chunk * p["steps_per_epoch"]
            n_steps = min(p["steps_per_epoch"], p["total_steps"] - first)
            t = time.perf_counter()
            fit = feeder.fit(model, order.batch_indices(first, n_steps), recipe.batch_size, recipe.partial_batch)
            train_seconds = time.perf_counter() - t
            t = time.perf_counter()
            val_loss, val_acc = val_set.evaluate(model)  # (None, None) with no validation set
            test_loss, test_acc = test_set.evaluate(model)
            history.append({
                "epoch": chunk + 1, "steps": first + n_steps,
                "epochs_seen": images_seen(recipe, n_train, first + n_steps) / n_train,
                "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - t,
                "wall_seconds": time.perf_counter() - t_train_start,
                "train_loss": fit["loss"], "train_accuracy": fit["accuracy"],
                "val_loss": val_loss, "val_accuracy": val_acc, "test_loss": test_loss, "test_accuracy": test_acc,
            })
            load.append(os.getloadavg()[0])
            log.info("%s/%s seed %d: epoch %d/%d steps %d train %.2fs loss %.4f val %.4f test %.4f",
                     arch, variant, seed, chunk + 1, p["n_chunks"], first + n_steps, train_seconds,
                     fit["loss"], float("nan") if val_acc is None else val_acc, test_acc)
            if chunk + 1 < p["n_chunks"]:
                ckpt.save(model, chunk,
                          {"chunk": chunk, "history": history, "wall_seconds": history[-1]["wall_seconds"]})
                if stop_after_chunks is not None and chunk + 1 - start_chunk >= stop_after_chunks:
                    log.warning("stopping early after chunk %d as asked (checkpoint kept)", chunk + 1)
                    return {"stopped_after_chunk": chunk + 1}

    # Every validation and test image's predicted class after the whole budget.
    t = time.perf_counter()
    y_pred = test_set.predict(model).argmax(axis=1)
    val_pred = val_set.predict(model).argmax(axis=1)
    predict_seconds = time.perf_counter() - t

    t = time.perf_counter()
    save_keras(model, out_dir / "model.keras")
    save_seconds = time.perf_counter() - t
    metrics = {
        "arch": arch, "variant": variant, "seed": seed, "baseline": arch_info.baseline, "backend": backend,
        "device": device or {}, "recipe": recipe.as_dict(), "overrides": s.overrides or {},
        "budget_scale": s.budget_scale, "train_subset": s.train_subset, "eval_subset": s.eval_subset,
        "speed": {"jit_compile": s.jit_compile, "jit_compile_used": bool(getattr(model, "jit_compile", False)),
                  "steps_per_execution": s.steps_per_execution, "steps_per_execution_used": spe,
                  "resident_data": s.resident_data, "resident_data_used": feeder.resident,
                  # resident: each chunk is one compiled call; else model.fit, spe steps a call
                  "training_loop": "compiled loop over resident data" if feeder.resident else "model.fit",
                  "eval_batch_size": s.eval_batch_size},
        "n_train": n_train, "n_val": int(len(d["y_val"])), "n_test": int(len(d["y_test"])),
        **p,
        **runs.budget_flags(s.budget_scale, s.train_subset, s.eval_subset, s.overrides),
        "claim": arch_info.claim.as_dict(),
        # the one threshold: the claim's lower bound (docs/benchmark.md)
        **runs.results(history, y_pred, d["y_test"], arch_info.claim.lower, recipe.batch_size,
                       p["steps_per_epoch"], len(d["y_val"]) + len(d["y_test"]), load),
        "resumed_from_epoch": resumed_from,
        "data_seconds": data_seconds, "predict_seconds": predict_seconds, "save_seconds": save_seconds,
        "job_seconds": time.perf_counter() - t_start_job,
        "provenance": runs.provenance(Path(data_path)),
        "config": config or {},
        "result_id": uuid.uuid4().hex,  # lets the logger tell these results from older ones
    }
    if initial_weights is not None:
        metrics["initial_weights"] = f"the TensorFlow port's (seed {seed})"
    if platform is not None:
        metrics["platform"] = platform.record(backend)
    runs.write_run(out_dir, metrics, history, d["y_val"], val_pred, d["y_test"], y_pred, sampler.table())
    ckpt.clear()
    return metrics
