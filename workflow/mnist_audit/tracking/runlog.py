"""Logging one finished training job as one MLflow run, once (``log_run``), and the
``log_run`` rule's body (``log_run_job``), which runs in a thread of the Snakemake
process with a log of its own."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .. import runs
from .logged_model import delete_logged_models, log_model
from .record import (dataset_inputs, log_datasets, metric_datasets, provenance_record, run_payload,
                     system_metrics)
from .store import TAG, TrackingError, fast_fail_http, with_retries

log = logging.getLogger(__name__)

def _add_sweep(client, run, sweep_id: str) -> str:
    """Add ``sweep_id`` to the run's ``mnist_audit.sweeps`` tag (space-separated, oldest first)."""
    sweeps = run.data.tags.get(f"{TAG}.sweeps", "").split()
    if sweep_id not in sweeps:
        sweeps.append(sweep_id)
        while len(" ".join(sweeps)) > 7000:  # MLflow caps tag values (8,000 characters): oldest out
            sweeps.pop(0)
        client.set_tag(run.info.run_id, f"{TAG}.sweeps", " ".join(sweeps))
    return " ".join(sweeps)


def log_run(sweep: Mapping, run_dir: Path, manifest_path: Path | None, attempts: int = 3) -> dict:
    """Log one finished training job (its directory of outputs) as one MLflow run, once.

    The run is found by its identity (``run_identity``) in the whole experiment: the
    same results already logged are only added to this sweep; other results of the same
    identity (the job was retrained) and half-logged runs are deleted, then the run is
    logged. Returns the run id and whether it was already logged.
    """
    fast_fail_http()
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from ..files import sha256_file

    run_dir = Path(run_dir)
    metrics = runs.RunRecord.read(run_dir).metrics
    history = pd.read_csv(run_dir / "history.csv").to_dict("records")
    manifest = json.loads(Path(manifest_path).read_text()) if manifest_path else None
    payload = run_payload(metrics, history, manifest)
    uri = sweep["tracking_uri"]
    digest = metrics.get("result_id") or str(os.path.getmtime(run_dir / "metrics.json"))
    job = payload["tags"][f"{TAG}.job"]
    identity = payload["tags"][f"{TAG}.identity"]
    model = run_dir / "model.keras"
    model_tags = {"model.sha256": sha256_file(model)} if model.exists() else {}
    if model.exists():
        payload["params"]["model.path"] = str(model.resolve())

    def go():
        client = MlflowClient(tracking_uri=uri)
        exp = [sweep["experiment_id"]]
        found = client.search_runs(exp, filter_string=f"tags.`{TAG}.identity` = '{identity}'")
        # Runs logged before identities existed: the same results under the same job.
        found += [r for r in client.search_runs(
            exp, filter_string=f"tags.`{TAG}.results` = '{digest}' and tags.`{TAG}.job` = '{job}'")
            if f"{TAG}.identity" not in r.data.tags]
        keep = next((r for r in found if r.info.status == "FINISHED"
                     and r.data.tags.get(f"{TAG}.results") == digest), None)

        def delete_others():
            for run in found:
                if run is not keep:
                    why = ("half-logged" if run.info.status != "FINISHED" else
                           "the same results, logged twice" if run.data.tags.get(f"{TAG}.results") == digest
                           else "older results of the same run, replaced")
                    log.info("%s: deleting MLflow run %s (%s)", job, run.info.run_id, why)
                    delete_logged_models(client, sweep["experiment_id"], run.info.run_id)
                    client.delete_run(run.info.run_id)

        if keep is not None:
            delete_others()
            if f"{TAG}.identity" not in keep.data.tags:
                client.set_tag(keep.info.run_id, f"{TAG}.identity", identity)
            _add_sweep(client, keep, sweep["sweep_id"])
            log.info("%s already logged as run %s", job, keep.info.run_id)
            return {"run_id": keep.info.run_id, "already_logged": True}
        t_end_ms = int(os.path.getmtime(run_dir / "metrics.json") * 1000)
        wall = metrics["timing"]["wall_seconds"]
        t0_ms = t_end_ms - int(wall * 1000)
        run = client.create_run(
            sweep["experiment_id"], start_time=t0_ms, run_name=payload["run_name"],
            # Grouped by tags, not nested under the sweep run: MLflow's UI folds child runs
            # away, and a flat table of "thomas s0", "thomas s1", ... is what people read.
            tags={**payload["tags"], **model_tags, f"{TAG}.sweeps": sweep["sweep_id"]},
        )
        rid = run.info.run_id
        try:
            params = [Param(k, str(v)) for k, v in payload["params"].items()]
            wall_at = {int(r["epoch"]): float(r["wall_seconds"]) for r in history}
            ms = [Metric(k, v, t0_ms + int(1000 * wall_at[step]), step) for k, v, step in payload["series"]]
            ms += system_metrics(run_dir, t0_ms)
            final_step = int(history[-1]["epoch"])
            ms += [Metric(k, float(v), t_end_ms, final_step) for k, v in payload["final"].items()
                   if v is not None and math.isfinite(float(v))]
            for i in range(0, len(params), 100):
                client.log_batch(rid, params=params[i : i + 100])
            for i in range(0, len(ms), 1000):
                client.log_batch(rid, metrics=ms[i : i + 1000])
            # The small records; the model stays in the run folder (its path a param, its SHA-256 a tag).
            for name in ("metrics.json", "history.csv", "confusion.csv", "predictions.npz", "system_metrics.csv"):
                if (run_dir / name).exists():
                    client.log_artifact(rid, str(run_dir / name))
            client.log_dict(rid, provenance_record(metrics, manifest), "provenance.json")
            inputs = dataset_inputs(metrics, manifest)
            log_datasets(client, rid, inputs)
            if model.exists():
                log_model(client, sweep["experiment_id"], rid, payload, model, model_tags["model.sha256"],
                          final_step, [m for m in ms if m.step == final_step and m.key in payload["final"]],
                          metric_datasets(inputs))
            client.log_batch(rid, tags=[RunTag(f"{TAG}.results", digest)])
            client.set_terminated(rid, "FINISHED", end_time=t_end_ms)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: a rerun deletes it otherwise
                delete_logged_models(client, sweep["experiment_id"], rid)
                client.delete_run(rid)
            raise
        keep = run
        delete_others()  # only now: a failure above never loses the run logged before
        return {"run_id": rid, "already_logged": False}

    result = with_retries(go, f"log_run {job}", uri, attempts)
    return {**result, "job": job, "identity": identity, "experiment_id": sweep["experiment_id"],
            "tracking_uri": uri}


@contextlib.contextmanager
def _thread_log(path: str | Path):
    """Copy this thread's ``mnist_audit`` log records (and any error) to ``path``.

    ``log_run_job`` runs in a thread of the Snakemake process beside other jobs, so
    the handler keeps only the records of the thread that opened it.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    me = threading.get_ident()
    handler.addFilter(lambda record: record.thread == me)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mnist_audit")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    except Exception as e:
        from ..job import error_text

        # The reason goes to the log once (Snakemake shows a failed job's log); what
        # Snakemake prints of the exception itself only points there.
        log.error("%s", error_text(e))
        raise TrackingError(f"failed; the reason is in {path}") from None
    finally:
        root.removeHandler(handler)
        handler.close()


def log_run_job(sweep_path: str | Path, run_dir: str | Path, manifest_path: str | Path | None,
                marker_path: str | Path, log_path: str | Path, attempts: int = 3) -> dict:
    """The ``log_run`` rule: log one job, then write its marker (temp, then rename).

    It runs inside the Snakemake process (a ``run:`` rule with ``force-use-threads``
    in the profiles), so MLflow is imported once per workflow instead of once per
    job: logging a run then costs only its API calls.
    """
    from ..files import atomic_write_json

    with _thread_log(log_path):
        t = time.perf_counter()
        sweep = json.loads(Path(sweep_path).read_text())
        result = log_run(sweep, Path(run_dir), manifest_path, attempts=attempts)
        result["log_seconds"] = time.perf_counter() - t
        log.info("logged %s as run %s in %.2f s", result["job"], result["run_id"], result["log_seconds"])
        atomic_write_json(marker_path, result)
    return result

