"""Snakemake: log one finished training job to MLflow (logic: mnist_audit.tracking)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import data, tracking
from mnist_audit.cli import logged_errors, setup_logging

setup_logging(snakemake.log[0])
with logged_errors():
    sweep = json.loads(Path(snakemake.input.sweep).read_text())
    result = tracking.log_run(
        sweep, Path(snakemake.input.metrics).parent, snakemake.input.manifest,
        attempts=snakemake.params.retries,
    )
    data.atomic_write_json(snakemake.output.marker, result)
