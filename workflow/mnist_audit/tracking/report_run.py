"""The report's run: one per sweep, a child of the sweep's run, with the report's tables
and plots as its artifacts and the audit's figures as its metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .store import TAG, fast_fail_http, with_retries

log = logging.getLogger(__name__)

def _metric_key(arch: str, variant: str) -> str:
    return arch if variant == "default" else f"{arch}.{variant}"


def log_report(sweep: Mapping, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
               runs_csv: str | Path, run_markers: Sequence[str | Path] = (), attempts: int = 3) -> dict:
    """Log the report (report.smk's log_report rule) as ONE MLflow run, a child of the sweep's parent run.

    ``artifacts`` maps an artifact folder ("" for the root) to local files. An earlier
    report run of the same sweep (stale, or half-logged by a failed attempt) is deleted.
    """
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from ..audit import CONFIDENCE
    from ..tables import AUDIT_MD, SCALED_BANNER, is_scaled, isnan, md, read_runs

    fast_fail_http()
    tag = TAG
    audit = pd.read_csv(audit_csv)
    runs = read_runs(runs_csv)
    markers = [json.loads(Path(p).read_text()) for p in run_markers]
    uri, exp, sweep_id, parent = (sweep["tracking_uri"], sweep["experiment_id"], sweep["sweep_id"],
                                  sweep["parent_run_id"])
    scaled = is_scaled(runs)
    # The run's description in the MLflow UI: the banner and the audit table (tag values are capped).
    note_text = ((f"**{SCALED_BANNER}.**\n\n" if scaled else "") + md(audit, AUDIT_MD))[:7000]

    def go():
        client = MlflowClient(tracking_uri=uri)
        old = client.search_runs(
            [exp], filter_string=f"tags.`{tag}.kind` = 'report' and tags.`{tag}.sweep` = '{sweep_id}'")
        for r in old:
            log.info("deleting the earlier report run %s of sweep %s", r.info.run_id, sweep_id)
            client.delete_run(r.info.run_id)
        run = client.create_run(exp, run_name=f"report {sweep_id}", tags={
            "mlflow.parentRunId": parent, f"{tag}.kind": "report", f"{tag}.sweep": sweep_id,
            f"{tag}.sweep_run": parent, "scaled": str(scaled).lower(),
            "mlflow.note.content": note_text,
        })
        rid = run.info.run_id
        params = [Param("n_runs", str(len(runs))), Param("confidence", str(CONFIDENCE)),
                  Param("seeds", " ".join(str(s) for s in sorted(set(runs["seed"])))),
                  Param("budget_scale", "/".join(f"{s:g}" for s in sorted(set(runs["budget_scale"]))))]
        now = int(time.time() * 1000)
        metrics, tags = [], [RunTag("git_commit", ", ".join(sorted(set(runs["git_commit"].astype(str)))))]
        for a in audit.itertuples(index=False):
            key = _metric_key(a.architecture, a.variant)
            for name, value in (("mean_test_accuracy", a.test_mean_pct), ("sd_test_accuracy", a.test_sd_pct),
                                ("ci_low_test_accuracy", a.test_ci_low_pct),
                                ("ci_high_test_accuracy", a.test_ci_high_pct),
                                ("mean_authors_measure", a.mean_pct), ("ci_low_authors_measure", a.ci_low_pct),
                                ("ci_high_authors_measure", a.ci_high_pct)):
                if not isnan(value):
                    metrics.append(Metric(f"{name}.{key}", float(value) / 100, now, 0))
            metrics.append(Metric(f"n_seeds.{key}", float(a.n_seeds), now, 0))
            tags.append(RunTag(f"verdict.{key}", str(a.verdict)))
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        n = 0
        for folder, paths in artifacts.items():
            for p in paths:
                client.log_artifact(rid, str(p), folder or None)
                n += 1
        client.log_dict(rid, {"training_runs": markers}, "training_runs.json")
        client.set_terminated(rid, "FINISHED")
        return {"run_id": rid, "artifacts": n + 1}

    result = with_retries(go, "log_report", uri, attempts)
    return {**result, "experiment_id": exp, "parent_run_id": parent, "sweep_id": sweep_id, "tracking_uri": uri}


def write_log_report(sweep_path: str | Path, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
                     runs_csv: str | Path, run_markers: Sequence[str | Path], out: str | Path,
                     attempts: int = 3) -> dict:
    from ..files import atomic_write_json

    sweep = json.loads(Path(sweep_path).read_text())
    result = log_report(sweep, artifacts, audit_csv, runs_csv, run_markers, attempts)
    atomic_write_json(Path(out), result)
    return result
