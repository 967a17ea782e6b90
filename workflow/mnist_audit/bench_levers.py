"""The in-process levers of the training path: the pipeline against a plain
``model.fit`` loop (and the author's TF1 loop), each lever off, and evaluation,
timed side by side (``bench_timing``)."""

from __future__ import annotations

import math
import statistics

import numpy as np

from . import data as mdata
from . import registry
from .bench_timing import interleaved, median_ratio, ratios

TARGET_MACS = 1e10  # forward MACs per timed call: short calls, so many interleaved pairs


def images_per_call(arch: str, batch_size: int, n_train: int) -> int:
    from . import models

    n = int(TARGET_MACS / models.macs_per_image(arch))
    return int(min(max(n, 20 * batch_size), n_train) // batch_size * batch_size)


def fresh_model(arch, recipe, **compile_kwargs):
    import keras

    from . import models

    keras.utils.set_random_seed(0)
    return models.compile_model(models.build_model(arch), recipe, **compile_kwargs)


PIPELINE, REFERENCE = "pipeline", "reference"
REFERENCE_AA = "reference, second copy (A/A: the noise floor)"
NUMPY_COPIES = "pipeline, resident data off (model.fit on NumPy copies, steps_per_execution auto)"
ONE_STEP = "pipeline, resident data off, 1 step per call (steps_per_execution off)"
ORIGINAL = "original: the author's program in TF1 (graph, feed_dict, sess.run per step)"


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def original_loop(arch: str, x, y, b: int, threads: int):
    """The tutorial's own loop as its author ran it: one ``sess.run(train_op, feed_dict)``
    per step, each batch copied out of NumPy arrays (as ``next_batch`` returned them).
    Returns (run(indices), the session to close)."""
    from . import originals

    p = originals.build(arch, "default", seed=0)
    sess = p.session(threads)
    y1h = originals.one_hot(y)

    def run(idx):
        for i in range(0, len(idx), b):
            sl = idx[i:i + b]
            sess.run(p.train_op, feed_dict=p.feed(x[sl], y1h[sl], training=True))

    return run, sess


def compare(arch: str, split: dict, repeats: int = 15, device_kind: str = "cpu",
            threads: int | None = None) -> tuple[dict, list[dict]]:
    """The pipeline's training path against the plain loop, and each lever off, side by side.

    Five configurations train fresh copies of the model at the recipe's batch size:
    the pipeline exactly as ``train_run`` runs it (on TensorFlow: resident data, one
    compiled loop per call), the plain reference (``model.compile`` + ``model.fit`` on
    NumPy arrays, default settings), a second copy of the reference (an A/A pair: how
    far two identical loops differ here), the pipeline with resident data off
    (``model.fit`` on each chunk's NumPy copies, ``auto`` steps per execution), and
    that again with one step per execution, all timed by ``interleaved``. A ratio is
    the median over repetitions of the ratio *within* one repetition (``median_ratio``);
    ``ratio_best`` reads the fastest call of each instead (interference only ever adds
    time).
    """
    from .loops import DataOrder, Feeder, resolve_steps_per_execution

    recipe = registry.resolve_recipe(arch)
    b = recipe.batch_size
    x, y = mdata.as_float(split["x_train"]), split["y_train"].astype(np.int32)
    n = images_per_call(arch, b, len(x))
    steps = n // b
    order = DataOrder(len(x), b, recipe.shuffle, recipe.drop_last, seed=0)
    spe = resolve_steps_per_execution("auto", arch, "default", b, device_kind)
    resident, copies = Feeder(x, y, resident=True), Feeder(x, y, resident=False)
    xs, ys = x[:n], y[:n]

    def stream(rep):
        return order.batch_indices(rep * steps, steps)

    def reference(m):
        return lambda rep: m.fit(xs, ys, batch_size=b, epochs=1, verbose=0)

    def pipeline(m, feeder):
        return lambda rep: feeder.fit(m, stream(rep), b)

    runs = {
        PIPELINE: pipeline(fresh_model(arch, recipe, steps_per_execution=spe), resident),
        REFERENCE: reference(fresh_model(arch, recipe)),
        REFERENCE_AA: reference(fresh_model(arch, recipe)),
        NUMPY_COPIES: pipeline(fresh_model(arch, recipe, steps_per_execution=spe), copies),
        ONE_STEP: pipeline(fresh_model(arch, recipe, steps_per_execution=1), copies),
    }
    closing = None
    if keras_backend() == "tensorflow" and registry.get_architecture(arch).original == "tf1 graph":
        # the TF1 original: TensorFlow only (a Keras program's own loop is model.fit: the reference)
        original_run, closing = original_loop(arch, x, y, b, threads or 1)
        runs[ORIGINAL] = lambda rep: original_run(stream(rep))
    times = interleaved(runs, repeats)
    if closing is not None:
        closing.close()  # the TF1 session
    original = ORIGINAL in times
    ips = {name: n / statistics.median(t) for name, t in times.items()}
    row = {"arch": arch, "batch_size": b, "steps_per_execution": spe, "images_per_call": n, "repeats": repeats,
           "pipeline_images_per_s": ips[PIPELINE], "reference_images_per_s": ips[REFERENCE],
           "ratio": median_ratio(times, PIPELINE, REFERENCE),
           "ratio_min": min(ratios(times, PIPELINE, REFERENCE)),
           "ratio_max": max(ratios(times, PIPELINE, REFERENCE)),
           "ratio_best": min(times[REFERENCE]) / min(times[PIPELINE]),
           "aa_ratio": median_ratio(times, REFERENCE_AA, REFERENCE),
           "original_images_per_s": ips.get(ORIGINAL, math.nan),
           "ratio_to_original": median_ratio(times, PIPELINE, ORIGINAL) if original else math.nan,
           "ratio_to_original_min": min(ratios(times, PIPELINE, ORIGINAL)) if original else math.nan,
           "ratio_to_original_max": max(ratios(times, PIPELINE, ORIGINAL)) if original else math.nan,
           "seconds": times}
    same = " (= 1: the same configuration twice)" if spe == 1 else ""
    levers = [
        {"arch": arch, "lever": "resident data, one compiled loop per chunk (off: model.fit on NumPy copies)",
         "what": "training images/s", "on": ips[PIPELINE], "off": ips[NUMPY_COPIES],
         "on_over_off": median_ratio(times, PIPELINE, NUMPY_COPIES), "setting": str(resident.resident)},
        {"arch": arch, "lever": f"steps_per_execution auto = {spe}, on the model.fit path{same}",
         "what": "training images/s", "on": ips[NUMPY_COPIES], "off": ips[ONE_STEP],
         "on_over_off": median_ratio(times, NUMPY_COPIES, ONE_STEP), "setting": str(spe)},
    ]
    return row, levers


def eval_levers(arch: str, split: dict, repeats: int = 3, eval_images: int = 10000) -> list[dict]:
    """Evaluation images/s: batch 1000 against Keras's default 32 (both from NumPy),
    and the pipeline's resident evaluation set (``EvalSet``) against NumPy, at 1000."""
    from .loops import EvalSet

    recipe = registry.resolve_recipe(arch)
    m = fresh_model(arch, recipe)
    xe = mdata.as_float(split["x_test"][:eval_images])
    ye = split["y_test"][:eval_images].astype(np.int32)
    sets = {"numpy32": EvalSet(xe, ye, 32, resident=False), "numpy1000": EvalSet(xe, ye, 1000, resident=False),
            "resident1000": EvalSet(xe, ye, 1000, resident=True)}
    t = interleaved({k: (lambda rep, es=es: es.evaluate(m)) for k, es in sets.items()}, repeats)

    def row(lever, on, off, setting):
        return {"arch": arch, "lever": lever, "what": "evaluation images/s",
                "on": len(xe) / statistics.median(t[on]), "off": len(xe) / statistics.median(t[off]),
                "on_over_off": median_ratio(t, on, off), "setting": setting}

    return [row("evaluation batch 1000 (off: Keras's default 32)", "numpy1000", "numpy32", "1000"),
            row("resident evaluation sets, tf.data autotuning off (off: NumPy arrays)", "resident1000", "numpy1000",
                str(sets["resident1000"].resident))]
