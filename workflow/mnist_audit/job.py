"""The scripts' runtime: how a Snakemake job (or a command) logs, fails and ends.

Every script under ``workflow/scripts`` is a few lines around one ``with job.step(snakemake):``
block, which logs to the job's log file, turns an error into one logged message and
exit status 1, and (for training) ends the process without TensorFlow's teardown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


def setup_logging(log_path: str | Path | None = None, level=logging.INFO) -> None:
    """Log to ``log_path`` when given (a Snakemake job: its log file, which Snakemake shows
    when the job fails), else to standard error (the command line)."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers: list[logging.Handler] = [logging.FileHandler(log_path, mode="w")]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def is_ours(e: BaseException) -> bool:
    """An error this package raises on purpose (a failed download, a tracking store that
    is down, a bad value): its message says everything, a traceback adds nothing."""
    return type(e).__module__.startswith("mnist_audit.")


def error_text(e: BaseException) -> str:
    """What to log for an error, with its message once: ours as ``Class: message``, anything
    else as its traceback (whose last line is the message)."""
    if is_ours(e):
        return f"{type(e).__name__}: {e}"
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


@contextlib.contextmanager
def logged_errors():
    """A Snakemake script's body: an error is written to the log once, then the process
    ends with status 1. Nothing prints it a second time (no interpreter traceback on
    standard error); Snakemake shows the job's log when it fails (show-failed-logs)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001  (reported, then the job fails)
        logging.getLogger("mnist_audit").error("%s", error_text(e))
        logging.shutdown()
        raise SystemExit(1) from None


def exit_now(code: int = 0) -> None:
    """End a training process without the interpreter's teardown.

    Tearing down TensorFlow (thread pools, graphs, the arrays) takes a noticeable part
    of a short job's time and does nothing for us: every output is already written, closed and
    renamed into place. Logs and standard streams are flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def training_job(data: str | Path, out_dir: str | Path, seed: int, settings: dict, threads: int | None,
                 jobs_per_gpu: int = 1, memory_growth: bool = True, config: dict | None = None,
                 stop_after_chunks: int | None = None) -> dict:
    """Apply the run's platform, take a GPU (if any), set up the backend, train. The body
    of the ``train_model`` rule and of the ``train`` command.

    The platform (``settings["platform"]``, default "default") is applied first, before
    TensorFlow or Keras is imported: its kernel settings only take effect then, and a
    platform this machine cannot honour fails here, before any training
    (``mnist_audit.platforms``). The run's record says what actually ran.
    """
    from . import devices, platforms

    session = platforms.Session(settings.get("platform", platforms.DEFAULT), threads)
    session.apply()
    threads = session.threads
    devices.lean_imports()  # this process only trains: skip Keras's unused optional imports
    with contextlib.ExitStack() as stack:
        stack.callback(session.close)  # the standard output back, however the job ends
        gpus = devices.detect_gpus()
        lease = None
        if gpus and not devices.scheduler_assigned_gpus():
            import time

            t0 = time.time()
            lease = stack.enter_context(devices.gpu_lease(gpus, jobs_per_gpu))
            waited = time.time() - t0
            logging.getLogger(__name__).info("GPU lease: GPU %s slot %d (waited %.1f s)", lease.gpu, lease.slot, waited)
        device = devices.configure_backend(threads, memory_growth)
        if lease:
            device["gpu_slot"] = lease.slot
            device["gpu_lease"] = {"gpu": lease.gpu, "slot": lease.slot, "of_gpus": ",".join(gpus),
                                   "jobs_per_gpu": jobs_per_gpu, "acquired_at": t0 + waited,
                                   "waited_seconds": waited}
        if settings.get("original"):  # the author's program (TF1 graph API, or its Keras script)
            from .originals import train_original
            from .settings import ORIGINAL

            return train_original(data, out_dir, settings["arch"], settings["variant"], seed, threads=threads or 1,
                                  device=device, config=config, from_port=bool(settings.get("from_port")),
                                  platform=session, **{k: settings[k] for k in ORIGINAL})
        from .train import train_run

        run = {k: v for k, v in settings.items() if k != "platform"}
        if session.platform.backend == "jax":  # the seed paired with the TensorFlow port's draw
            run["initial_weights"] = platforms.tensorflow_initial_weights(run["arch"], run.get("variant", "default"),
                                                                          seed)
        return train_run(data, out_dir, seed=seed, device=device, config=config,
                         stop_after_chunks=stop_after_chunks, platform=session, **run)


@contextlib.contextmanager
def step(snakemake, fast_exit: bool = False) -> Iterator[None]:
    """The body of a Snakemake script: log to its log file; an error is logged once and
    fails the job. ``fast_exit``: end the process at once when the body succeeds (its
    outputs are written and closed; see ``exit_now``)."""
    setup_logging(snakemake.log[0])
    with logged_errors():
        yield
    if fast_exit:
        exit_now(0)
