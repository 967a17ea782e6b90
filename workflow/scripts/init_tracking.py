"""Snakemake: create the MLflow store, experiment and sweep run once (logic: mnist_audit.tracking)."""
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import files, job, tracking

with job.step(snakemake):
    # One sweep per set of runs the config asks for (config.sweep_key): rerunning the same
    # set, or changing only mirrors, download, tracking or GPU settings, opens no new sweep.
    key = snakemake.params.sweep_key
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    info = tracking.init_tracking(
        snakemake.params.uri, snakemake.params.experiment, snakemake.params.artifact_root,
        {"id": f"{stamp}-{key[:8]}", "key": key}, dict(snakemake.config),
        attempts=snakemake.config["mlflow"]["retries"],
    )
    files.write_json_if_changed(snakemake.output.sweep, info)
