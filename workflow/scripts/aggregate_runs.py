"""Snakemake: every run's metrics.json -> one tidy table, runs.csv (logic: mnist_audit.report)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job, report

with job.step(snakemake):
    report.write_runs(snakemake.input.metrics, snakemake.input.parameters, snakemake.output.runs)
