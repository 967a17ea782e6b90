"""Benchmarks: the pipeline's training path against a plain ``model.fit`` loop.

Everything is measured side by side on one machine, interleaved (``interleaved``:
A B, then B A, ...) so that drift in machine load hits both, and reported as the
median of the repetitions. Speeds are training images per second in the steady
state (the first call of each configuration, which traces and compiles, is not
timed). The compute floor reads each figure against the machine's own large
matrix multiply: MACs per image x 3 (forward, and backward for inputs and
weights) x images per second / measured MAC/s.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from . import data as mdata
from . import files
from . import registry
from .runs import RunRecord

log = logging.getLogger(__name__)

TARGET_MACS = 1e10  # forward MACs per timed call: short calls, so many interleaved pairs


def matmul_peak_macs(n: int = 2048, repeats: int = 5) -> float:
    """MAC/s of a large float32 matrix multiply through the Keras backend: the practical peak."""
    import keras

    a = keras.random.normal((n, n), seed=1)
    b = keras.random.normal((n, n), seed=2)
    np.asarray(keras.ops.matmul(a, b))  # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.asarray(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - t)
    return n**3 / best


def _images_for(arch: str, batch_size: int, n_train: int) -> int:
    from . import models

    n = int(TARGET_MACS / models.macs_per_image(arch))
    return int(min(max(n, 20 * batch_size), n_train) // batch_size * batch_size)


def _fresh(arch, recipe, **compile_kwargs):
    import keras

    from . import models

    keras.utils.set_random_seed(0)
    return models.compile_model(models.build_model(arch), recipe, **compile_kwargs)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(calls: Mapping[str, Callable[[int], object]], repeats: int,
                warm_up: bool = True) -> dict[str, list[float]]:
    """Seconds of each call in each of ``repeats`` repetitions, timed side by side.

    Every repetition times each call once, alternating the order (A B C, then C B A,
    ...), so drift in machine load hits all alike. A call gets the repetition's
    number (1, 2, ...); with ``warm_up`` each is first called once with 0, untimed
    (tracing and compilation).
    """
    if warm_up:
        for fn in calls.values():
            fn(0)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(repeats):
        for name in (list(calls) if rep % 2 == 0 else list(calls)[::-1]):
            times[name].append(_time(lambda: calls[name](rep + 1)))
    return times


def ratios(times: Mapping[str, list[float]], fast: str, slow: str) -> list[float]:
    """How many times faster ``fast`` ran than ``slow``, within each repetition."""
    return [s / f for s, f in zip(times[slow], times[fast])]


def median_ratio(times: Mapping[str, list[float]], fast: str, slow: str) -> float:
    """The median over repetitions of ``ratios``: robust to a repetition hit by load."""
    return statistics.median(ratios(times, fast, slow))


PIPELINE, REFERENCE = "pipeline", "reference"
REFERENCE_AA = "reference, second copy (A/A: the noise floor)"
NUMPY_COPIES = "pipeline, resident data off (model.fit on NumPy copies, steps_per_execution auto)"
ONE_STEP = "pipeline, resident data off, 1 step per call (steps_per_execution off)"
ORIGINAL = "original: the author's program in TF1 (graph, feed_dict, sess.run per step)"


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def _original_loop(arch: str, x, y, b: int, threads: int):
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
    n = _images_for(arch, b, len(x))
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
        PIPELINE: pipeline(_fresh(arch, recipe, steps_per_execution=spe), resident),
        REFERENCE: reference(_fresh(arch, recipe)),
        REFERENCE_AA: reference(_fresh(arch, recipe)),
        NUMPY_COPIES: pipeline(_fresh(arch, recipe, steps_per_execution=spe), copies),
        ONE_STEP: pipeline(_fresh(arch, recipe, steps_per_execution=1), copies),
    }
    closing = None
    if keras_backend() == "tensorflow" and registry.get_architecture(arch).original == "tf1 graph":
        # the TF1 original: TensorFlow only (a Keras program's own loop is model.fit: the reference)
        original_run, closing = _original_loop(arch, x, y, b, threads or 1)
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
    m = _fresh(arch, recipe)
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


def _thread_worker(arch: str, data_path: str, threads: int) -> None:
    """A process training ``arch`` through the pipeline's path with ``threads`` threads.

    Reads ``k`` on stdin, trains the k-th chunk of the stream, writes the images it
    trained on; the parent times the calls, so it can interleave processes whose
    thread pools differ (they are set once per process) and run several at once.
    """
    import sys as _sys

    from . import devices

    devices.configure_backend(threads)
    from .loops import DataOrder, Feeder, resolve_steps_per_execution

    split = mdata.load_split(Path(data_path))
    recipe = registry.resolve_recipe(arch)
    b = recipe.batch_size
    x, y = mdata.as_float(split["x_train"]), split["y_train"].astype(np.int32)
    steps = _images_for(arch, b, len(x)) // b
    order = DataOrder(len(x), b, recipe.shuffle, recipe.drop_last, seed=0)
    model = _fresh(arch, recipe, steps_per_execution=resolve_steps_per_execution("auto", arch, "default", b))
    feeder = Feeder(x, y, resident=True)
    for line in _sys.stdin:
        feeder.fit(model, order.batch_indices(int(line) * steps, steps), b)
        print(steps * b, flush=True)


def thread_levers(arch: str, data_path: Path, threads: int, repeats: int = 5) -> list[dict]:
    """Threads per job and jobs per machine, each through the pipeline's own path.

    Three set-ups train in worker processes (thread pools are set once per process),
    interleaved: one job with all ``threads`` threads, one job with 1 thread (the
    first of the next set-up's workers, timed alone), and ``threads`` jobs of 1
    thread each running at once (packed, as Snakemake runs jobs side by side when
    a job asks for 1 thread). Rows: ``threads`` threads
    against 1 for one job; and the packed jobs' images/s together against one job
    with all the threads: what a sweep of many jobs gets from the same cores.
    """
    if threads < 2:
        return []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def worker(t):
        return subprocess.Popen([sys.executable, "-m", "mnist_audit.bench", "worker", arch, str(data_path), str(t)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=env)

    # "one" is the first packed worker, timed alone: one process fewer to start, the same measurement
    wide, packed = worker(threads), [worker(1) for _ in range(threads)]
    setups = {"wide": [wide], "one": packed[:1], "packed": packed}
    try:
        def call(name, k):  # every worker of the set-up trains chunk k; returns the images of one
            for p in setups[name]:
                p.stdin.write(f"{k}\n")
                p.stdin.flush()
            lines = [p.stdout.readline() for p in setups[name]]
            if not all(lines):
                raise RuntimeError(f"thread-lever worker ({arch}, {name}) ended early")
            return int(lines[0])

        n = [call(name, 0) for name in setups][0]  # warm-up: tracing and compilation, not timed
        times = interleaved({name: (lambda k, name=name: call(name, k)) for name in setups}, repeats,
                            warm_up=False)
    finally:
        for p in (wide, *packed):
            p.stdin.close()
            p.wait(timeout=60)

    wide_ips, one_ips = n / statistics.median(times["wide"]), n / statistics.median(times["one"])
    packed_ips = threads * n / statistics.median(times["packed"])
    return [
        {"arch": arch, "lever": f"{threads} threads per job (off: 1 thread)", "what": "training images/s, one job",
         "on": wide_ips, "off": one_ips, "on_over_off": median_ratio(times, "wide", "one"), "setting": str(threads)},
        {"arch": arch, "lever": f"{threads} jobs of 1 thread at once (off: 1 job of {threads} threads)",
         "what": "training images/s, all jobs together", "on": packed_ips, "off": wide_ips,
         # the packed set-up does `threads` times the work of one call
         "on_over_off": statistics.median(threads * w / p for w, p in zip(times["wide"], times["packed"])),
         "setting": f"{threads} x 1"},
    ]


def import_lever(repeats: int = 3) -> dict:
    """Start-up of a training process: Python + ``import keras``, lean against plain."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    lean = "from mnist_audit.devices import lean_imports; lean_imports(); import keras"
    t = interleaved({name: (lambda rep, code=code: subprocess.run([sys.executable, "-c", code], check=True,
                                                                  env=env, capture_output=True))
                     for name, code in (("lean", lean), ("plain", "import keras"))}, repeats, warm_up=False)
    return {"arch": "(any)", "lever": "lean imports (no scikit-learn, matplotlib, JAX in a training process)",
            "what": "process start + import keras, s", "on": statistics.median(t["lean"]),
            "off": statistics.median(t["plain"]),
            "on_over_off": median_ratio(t, "lean", "plain"), "setting": "on"}


def job_overhead(data_path: Path, threads: int, workdir: Path, repeats: int = 3) -> dict:
    """The median over ``repeats`` fresh jobs of each part of ``one_job_overhead``."""
    runs = [one_job_overhead(data_path, threads, Path(workdir) / f"job{i}") for i in range(repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    once = "mlflow_import_once_per_workflow_seconds"  # only the first import costs anything
    return {**med, once: runs[0][once], "repeats": repeats}


def one_job_overhead(data_path: Path, threads: int, workdir: Path) -> dict:
    """Seconds one pipeline job spends apart from training and evaluation.

    Runs a real one-step training job in a fresh process, as the ``train_model``
    rule does (start, imports, data load, model build, save), then logs it to a
    fresh MLflow store from this process, as the ``log_run`` rule does inside the
    Snakemake process, where MLflow is imported once per workflow (timed apart).
    """
    from . import tracking

    out = Path(workdir) / "overhead-job"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "mnist_audit.cli", "train", "--arch", "softmax_regression", "--seed", "0",
           "--data", str(data_path), "--out", str(out), "--budget-scale", "0.001", "--threads", str(threads)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t
    m = RunRecord.read(out).metrics
    in_training = m["timing"]["total_train_seconds"] + m["timing"]["total_eval_seconds"]
    t = time.perf_counter()
    import mlflow  # noqa: F401  (once per workflow in the Snakemake process)

    mlflow_import = time.perf_counter() - t
    uri = f"sqlite:///{Path(workdir) / 'overhead.db'}"
    sweep_path = Path(workdir) / "sweep.json"
    sweep = tracking.init_tracking(uri, "bench", (Path(workdir) / "art").as_uri(), {"id": "bench"}, {})
    files.atomic_write_json(sweep_path, sweep)
    logged = tracking.log_run_job(sweep_path, out, Path(data_path).parent / "manifest.json",
                                  Path(workdir) / "mlflow_run.json", Path(workdir) / "log_run.log")
    return {"train_job_wall_seconds": wall, "training_and_eval_seconds": in_training,
            "data_load_seconds": m["data_seconds"], "model_save_seconds": m["save_seconds"],
            "process_start_imports_and_exit_seconds": wall - m["job_seconds"],
            "mlflow_logging_seconds": logged["log_seconds"],
            "fixed_overhead_seconds": wall - in_training + logged["log_seconds"],
            "mlflow_import_once_per_workflow_seconds": mlflow_import}


def machine() -> dict:
    import keras

    from . import devices, provenance

    return {"backend": keras.backend.backend(), "cpu_model": devices.cpu_model(), "logical_cpus": os.cpu_count(),
            "gpus": ",".join(devices.detect_gpus()) or "none", **provenance.package_versions()}


def run(data_path: Path, out_dir: Path, archs: list[str], repeats: int, threads: int,
        device: dict | None = None, process_repeats: int = 3) -> dict:
    """Every table of the benchmark for ``archs``: ``repeats`` interleaved calls per
    in-process configuration; ``process_repeats`` fresh processes for what a process
    start costs (imports, a whole job) and the least repetitions of the thread levers."""
    import pandas as pd

    from . import models

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = (device or {}).get("kind", "cpu")
    split = mdata.load_split(Path(data_path))
    peak = matmul_peak_macs()
    rows, lever_rows = [], [import_lever(process_repeats)]
    for arch in archs:
        r, lv = compare(arch, split, repeats, kind, threads=1)
        macs = models.macs_per_image(arch)
        r.update(macs_per_image=macs,
                 pipeline_fraction_of_peak=3 * macs * r["pipeline_images_per_s"] / peak,
                 reference_fraction_of_peak=3 * macs * r["reference_images_per_s"] / peak,
                 floor_images_per_s=peak / (3 * macs))
        log.info("%s: pipeline %.0f img/s, reference %.0f img/s, ratio %.3f (A/A %.3f)", arch,
                 r["pipeline_images_per_s"], r["reference_images_per_s"], r["ratio"], r["aa_ratio"])
        rows.append(r)
        lever_rows += lv + eval_levers(arch, split, max(3, repeats // 2))
        lever_rows += thread_levers(arch, Path(data_path), threads, max(process_repeats, repeats // 2 + 1))
    tp = pd.DataFrame(rows)
    lv = pd.DataFrame(lever_rows)
    with tempfile.TemporaryDirectory() as tmp:
        oh = job_overhead(Path(data_path), threads, Path(tmp), process_repeats)
    info = {**machine(), "device": device or {}, "matmul_peak_gmacs": peak / 1e9, "threads": threads,
            "repeats": repeats}
    _write(out_dir, tp, lv, oh, info)
    return {"throughput": tp, "levers": lv, "overhead": oh, "machine": info}


def _write(out_dir: Path, tp, lv, oh: dict, info: dict) -> None:
    import pandas as pd

    from .tables import markdown_table, write_csv

    raw = [{"arch": r.arch, "configuration": name, "repetition": i, "seconds": t,
            "images": r.images_per_call} for r in tp.itertuples() for name, ts in r.seconds.items()
           for i, t in enumerate(ts)]
    write_csv(out_dir / "timings.csv", pd.DataFrame(raw))  # every timed call, for re-analysis
    tp = tp.drop(columns=["seconds"])
    write_csv(out_dir / "throughput.csv", tp)
    write_csv(out_dir / "levers.csv", lv)
    write_csv(out_dir / "overhead.csv", pd.DataFrame([oh]))
    files.atomic_write_json(out_dir / "machine.json", info)
    show = tp[["arch", "batch_size", "steps_per_execution", "pipeline_images_per_s", "reference_images_per_s",
               "original_images_per_s", "ratio_to_original", "ratio_to_original_min", "ratio_to_original_max",
               "ratio", "ratio_min", "ratio_max", "ratio_best", "aa_ratio", "macs_per_image", "pipeline_fraction_of_peak",
               "reference_fraction_of_peak", "floor_images_per_s"]]
    fmt = {"pipeline_images_per_s": ".0f", "reference_images_per_s": ".0f", "original_images_per_s": ".0f",
           "ratio_to_original": ".3f", "ratio_to_original_min": ".2f", "ratio_to_original_max": ".2f",
           "ratio": ".3f", "ratio_min": ".2f",
           "ratio_max": ".2f", "ratio_best": ".3f", "aa_ratio": ".3f", "pipeline_fraction_of_peak": ".3f",
           "reference_fraction_of_peak": ".3f", "floor_images_per_s": ".0f"}
    lines = [
        "# Training-path benchmark", "",
        f"Machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, GPUs: {info['gpus']}; "
        f"Keras {info.get('keras')} on {info['backend']}; {info['threads']} threads; "
        f"large-matmul peak {info['matmul_peak_gmacs']:.1f} GMAC/s; {info['repeats']} interleaved repetitions.",
        "", "## Steady-state training throughput (images/s) at each recipe's batch size", "",
        markdown_table(show, fmt), "",
        "ratio_to_original = pipeline / the author's program in TF1's graph API (one sess.run with a feed_dict "
        "per step, mnist_audit.originals), same batches, interleaved in the same repetitions (min, max beside it). "
        "ratio = pipeline / plain `model.fit` on NumPy arrays (default settings): the median over repetitions "
        "of the ratio within one repetition (min and max beside it); ratio_best = fastest call over fastest call. aa_ratio = the same for two identical "
        "copies of the plain loop: how far apart two equal loops measure on this machine. fraction of peak = "
        "3 x MACs/image x images/s / large-matmul MAC/s; floor = the images/s at that peak.",
        "", "## Levers (each on and off, side by side)", "",
        markdown_table(lv, {"on": ".2f", "off": ".2f", "on_over_off": ".3f"}), "",
        "The pipeline (TensorFlow) holds the training set as a tensor once per job and runs each chunk of "
        "the stream as one call into a compiled loop that gathers each batch by index: no Python and no "
        "tf.data per step. Its evaluation sets are resident too, with tf.data autotuning off: with it on, "
        "every iterator's tuning thread costs a fixed wait when the iterator is destroyed, once per "
        "fit/evaluate call (the plain loop pays it; the levers table measures it). Packed jobs: `threads` training processes of 1 thread each "
        "at once, against one process with all the threads.",
        "",
        "XLA (`jit_compile`) is not a lever on TensorFlow here: Keras turns it off while op determinism "
        "is on (tests/test_bench.py), and determinism is kept. On JAX every step is XLA-compiled.",
        "", "## Fixed overhead of one pipeline job (seconds)", "",
        markdown_table(pd.DataFrame({"part": list(oh), "seconds": list(oh.values())}), {"seconds": ".2f"}), "",
        "fixed_overhead = the training job's wall time minus its training and evaluation, plus logging the "
        "run (inside the Snakemake process, where MLflow is imported once per workflow: timed apart).", "",
    ]
    files.atomic_write_bytes(out_dir / "bench.md", "\n".join(lines).encode())


if __name__ == "__main__":  # the thread lever's worker processes
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        _thread_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
