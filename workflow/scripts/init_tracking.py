"""Snakemake: create the MLflow store, experiment and sweep run once (logic: mnist_audit.tracking)."""
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import data, tracking
from mnist_audit.cli import logged_errors, setup_logging

setup_logging(snakemake.log[0])
with logged_errors():
    # One sweep per execution of this job: it groups the runs it logs as children.
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sweep = {"id": f"{stamp}-{snakemake.params.config_hash[:8]}", "config_hash": snakemake.params.config_hash}
    info = tracking.init_tracking(
        snakemake.params.uri, snakemake.params.experiment, snakemake.params.artifact_root,
        sweep, dict(snakemake.config), attempts=snakemake.params.retries,
    )
    data.atomic_write_json(snakemake.output.sweep, info)
