"""Snakemake: log the report as one MLflow run under the sweep's parent run (logic: mnist_audit.tracking)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job, tracking

with job.step(snakemake):
    tracking.write_log_report(
        snakemake.input.sweep,
        {"": [snakemake.input.readme, snakemake.input.runs],
         "tables": list(snakemake.input.tables), "plots": list(snakemake.input.plots)},
        snakemake.input.audit, snakemake.input.runs, list(snakemake.input.markers), snakemake.output.marker,
        attempts=snakemake.params.retries,
    )
