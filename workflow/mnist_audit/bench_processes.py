"""The levers measured across processes: threads per job and jobs per machine (worker
processes, whose thread pools are set once each), a training process's start-up, and
the fixed overhead of one whole pipeline job."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import data as mdata
from . import files, registry
from .bench_levers import fresh_model, images_per_call
from .bench_timing import interleaved, median_ratio
from .runs import RunRecord


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
    steps = images_per_call(arch, b, len(x)) // b
    order = DataOrder(len(x), b, recipe.shuffle, recipe.drop_last, seed=0)
    model = fresh_model(arch, recipe, steps_per_execution=resolve_steps_per_execution("auto", arch, "default", b))
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
        return subprocess.Popen([sys.executable, "-m", "mnist_audit.bench_processes", "worker", arch, str(data_path), str(t)],
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


if __name__ == "__main__":  # the thread lever's worker processes
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        _thread_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
