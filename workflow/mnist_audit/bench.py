"""Benchmarks: the pipeline's training path against a plain ``model.fit`` loop.

Everything is measured side by side in one process on one machine, interleaved
(A, B, A, B, ...) so that drift in machine load hits both, and reported as the
median of the repetitions. Speeds are training images per second in the steady
state (the first call of each configuration, which traces and compiles, is not
timed). The compute floor reads each figure against the machine's own large
matrix multiply: MACs per image x 3 (forward, and backward for inputs and
weights) x images per second / measured MAC/s.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import data as mdata
from . import registry

log = logging.getLogger(__name__)

TARGET_MACS = 4e10  # forward MACs per timed call: a couple of seconds on two cores


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


def throughput(arch: str, split: dict, repeats: int = 3) -> dict:
    """Pipeline path vs plain loop for one architecture at its published batch size."""
    from .train import DataOrder, fit_chunk

    recipe = registry.resolve_recipe(arch)
    b = recipe.batch_size
    x, y = mdata.as_float(split["x_train"]), split["y_train"].astype(np.int32)
    n = _images_for(arch, b, len(x))
    order = DataOrder(len(x), b, recipe.shuffle, recipe.drop_last, seed=0)
    pipe, ref = _fresh(arch, recipe), _fresh(arch, recipe)
    xs, ys = x[:n], y[:n]
    steps = n // b
    # warm-up: tracing and compilation, not timed
    fit_chunk(pipe, x, y, order.batch_indices(0, steps), b)
    ref.fit(xs, ys, batch_size=b, epochs=1, verbose=0)
    t_pipe, t_ref = [], []
    for rep in range(repeats):
        first = (rep + 1) * steps
        runs = [("pipe", lambda: fit_chunk(pipe, x, y, order.batch_indices(first, steps), b)),
                ("ref", lambda: ref.fit(xs, ys, batch_size=b, epochs=1, verbose=0))]
        for name, fn in runs if rep % 2 == 0 else runs[::-1]:
            (t_pipe if name == "pipe" else t_ref).append(_time(fn))
    pipe_ips = n / statistics.median(t_pipe)
    ref_ips = n / statistics.median(t_ref)
    return {"arch": arch, "batch_size": b, "images_per_call": n, "repeats": repeats,
            "pipeline_images_per_s": pipe_ips, "reference_images_per_s": ref_ips,
            "ratio": pipe_ips / ref_ips, "pipeline_seconds": t_pipe, "reference_seconds": t_ref}


def levers(arch: str, split: dict, repeats: int = 3, eval_images: int = 10000) -> list[dict]:
    """Each CPU lever on and off, side by side: steps_per_execution, XLA, evaluation batch."""
    from .train import DataOrder, fit_chunk

    recipe = registry.resolve_recipe(arch)
    b = recipe.batch_size
    x, y = mdata.as_float(split["x_train"]), split["y_train"].astype(np.int32)
    n = _images_for(arch, b, len(x))
    steps = n // b
    order = DataOrder(len(x), b, recipe.shuffle, recipe.drop_last, seed=0)
    configs = {
        "baseline (XLA off, 1 step/execution)": {"jit_compile": False},
        "XLA (jit_compile=True)": {"jit_compile": True},
        "steps_per_execution=8": {"jit_compile": False, "steps_per_execution": 8},
    }
    models_ = {name: _fresh(arch, recipe, **kw) for name, kw in configs.items()}
    for m in models_.values():
        fit_chunk(m, x, y, order.batch_indices(0, steps), b)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for rep in range(repeats):
        names = list(configs) if rep % 2 == 0 else list(configs)[::-1]
        for name in names:
            times[name].append(_time(lambda: fit_chunk(models_[name], x, y, order.batch_indices((rep + 1) * steps, steps), b)))
    base = n / statistics.median(times["baseline (XLA off, 1 step/execution)"])
    # Keras turns XLA off on TensorFlow while op determinism is on: say what really ran.
    used = {name: bool(getattr(m, "jit_compile", False)) for name, m in models_.items()}
    rows = [{"arch": arch, "lever": name, "what": "training images/s", "value": n / statistics.median(t),
             "relative_to_off": n / statistics.median(t) / base, "xla_used": used[name]}
            for name, t in times.items()]
    xe = mdata.as_float(split["x_test"][:eval_images])
    ye = split["y_test"][:eval_images].astype(np.int32)
    m = models_["baseline (XLA off, 1 step/execution)"]
    ev = {}
    for bs in (32, 1000):
        m.evaluate(xe, ye, batch_size=bs, verbose=0)
        ev[bs] = len(xe) / statistics.median(_time(lambda: m.evaluate(xe, ye, batch_size=bs, verbose=0)) for _ in range(repeats))
    rows += [{"arch": arch, "lever": f"eval batch {bs}", "what": "evaluation images/s", "value": v,
              "relative_to_off": v / ev[32]} for bs, v in ev.items()]
    return rows


def job_overhead(data_path: Path, threads: int, workdir: Path) -> dict:
    """Seconds one pipeline job spends apart from training and evaluation.

    Runs a real one-step training job in a fresh process (start, imports, data load,
    model build, save) and logs it to a fresh MLflow store (logging).
    """
    from . import tracking

    out = Path(workdir) / "overhead-job"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "mnist_audit.cli", "train", "--arch", "softmax_regression", "--seed", "0",
           "--data", str(data_path), "--out", str(out), "--budget-scale", "0.001", "--threads", str(threads)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    in_training = m["timing"]["total_train_seconds"] + m["timing"]["total_eval_seconds"]
    uri = f"sqlite:///{Path(workdir) / 'overhead.db'}"
    sweep = tracking.init_tracking(uri, "bench", (Path(workdir) / "art").as_uri(), {"id": "bench"}, {})
    # The pipeline logs in a job of its own: time that whole process too.
    code = ("import json, sys; from pathlib import Path; from mnist_audit import tracking; "
            f"tracking.log_run(json.loads({json.dumps(json.dumps(sweep))}), Path({str(out)!r}), "
            f"Path({str(Path(data_path).parent / 'manifest.json')!r}))")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    log_wall = time.perf_counter() - t
    return {"train_job_wall_seconds": wall, "training_and_eval_seconds": in_training,
            "data_load_seconds": m["data_seconds"], "model_save_seconds": m["save_seconds"],
            "process_start_and_imports_seconds": wall - m["job_seconds"],
            "mlflow_logging_job_seconds": log_wall,
            "fixed_overhead_seconds": wall - in_training + log_wall}


def machine() -> dict:
    import keras

    from . import devices, provenance

    return {"backend": keras.backend.backend(), "cpu_model": devices.cpu_model(), "logical_cpus": os.cpu_count(),
            "gpus": ",".join(devices.detect_gpus()) or "none", **provenance.package_versions()}


def run(data_path: Path, out_dir: Path, archs: list[str], repeats: int, threads: int) -> dict:
    import pandas as pd

    from . import models

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = mdata.load_split(Path(data_path))
    peak = matmul_peak_macs()
    rows = []
    for arch in archs:
        r = throughput(arch, split, repeats)
        macs = models.macs_per_image(arch)
        r.update(macs_per_image=macs,
                 pipeline_fraction_of_peak=3 * macs * r["pipeline_images_per_s"] / peak,
                 reference_fraction_of_peak=3 * macs * r["reference_images_per_s"] / peak,
                 floor_images_per_s=peak / (3 * macs))
        log.info("%s: pipeline %.0f img/s, reference %.0f img/s, ratio %.3f", arch,
                 r["pipeline_images_per_s"], r["reference_images_per_s"], r["ratio"])
        rows.append(r)
    tp = pd.DataFrame(rows)
    lever_rows = []
    for arch in archs:
        lever_rows += levers(arch, split, repeats)
    lv = pd.DataFrame(lever_rows)
    with tempfile.TemporaryDirectory() as tmp:
        oh = job_overhead(Path(data_path), threads, Path(tmp))
    info = {**machine(), "matmul_peak_gmacs": peak / 1e9, "threads": threads, "repeats": repeats}
    _write(out_dir, tp, lv, oh, info)
    return {"throughput": tp, "levers": lv, "overhead": oh, "machine": info}


def _write(out_dir: Path, tp, lv, oh: dict, info: dict) -> None:
    import pandas as pd

    from .report import markdown_table, write_csv

    write_csv(out_dir / "throughput.csv", tp.drop(columns=["pipeline_seconds", "reference_seconds"]))
    write_csv(out_dir / "levers.csv", lv)
    write_csv(out_dir / "overhead.csv", pd.DataFrame([oh]))
    mdata.atomic_write_json(out_dir / "machine.json", info)
    show = tp[["arch", "batch_size", "pipeline_images_per_s", "reference_images_per_s", "ratio",
               "macs_per_image", "pipeline_fraction_of_peak", "floor_images_per_s"]]
    fmt = {"pipeline_images_per_s": ".0f", "reference_images_per_s": ".0f", "ratio": ".3f",
           "pipeline_fraction_of_peak": ".3f", "floor_images_per_s": ".0f"}
    lines = [
        "# Training-path benchmark", "",
        f"Machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, GPUs: {info['gpus']}; "
        f"Keras {info.get('keras')} on {info['backend']}; {info['threads']} threads; "
        f"large-matmul peak {info['matmul_peak_gmacs']:.1f} GMAC/s; median of {info['repeats']} interleaved repetitions.",
        "", "## Steady-state training throughput (images/s) at each recipe's batch size", "",
        markdown_table(show, fmt), "",
        "ratio = pipeline / plain `model.fit` on NumPy arrays (default settings). fraction of peak = "
        "3 x MACs/image x images/s / large-matmul MAC/s; floor = the images/s at that peak.",
        "", "## Levers (each on and off, side by side)", "",
        markdown_table(lv, {"value": ".1f", "relative_to_off": ".3f"}), "",
        "## Fixed overhead of one pipeline job (seconds)", "",
        markdown_table(pd.DataFrame({"part": list(oh), "seconds": list(oh.values())}), {"seconds": ".2f"}), "",
    ]
    mdata.atomic_write_bytes(out_dir / "bench.md", "\n".join(lines).encode())
