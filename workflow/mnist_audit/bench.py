"""Benchmarks: the pipeline's training path against a plain ``model.fit`` loop.

Everything is measured side by side on one machine, interleaved (``bench_timing``:
A B, then B A, ...) so that drift in machine load hits both, and reported as the
median of the repetitions. Speeds are training images per second in the steady
state (the first call of each configuration, which traces and compiles, is not
timed). The compute floor reads each figure against the machine's own large
matrix multiply: MACs per image x 3 (forward, and backward for inputs and
weights) x images per second / measured MAC/s.

This module runs the benchmark and writes its tables; the levers are measured in
``bench_levers`` (in this process) and ``bench_processes`` (in worker processes).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import data as mdata
from . import files
from .bench_levers import compare, eval_levers
from .bench_processes import import_lever, job_overhead, thread_levers
from .bench_timing import interleaved, median_ratio, ratios

__all__ = ["compare", "eval_levers", "import_lever", "interleaved", "job_overhead", "machine", "matmul_peak_macs",
           "median_ratio", "ratios", "run", "thread_levers"]

log = logging.getLogger(__name__)


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
