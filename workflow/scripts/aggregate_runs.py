"""Snakemake: every run's metrics.json -> one tidy table, runs.csv (logic: mnist_audit.report)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import report
from mnist_audit.cli import logged_errors, setup_logging

setup_logging(snakemake.log[0])
with logged_errors():
    report.write_runs(snakemake.input.metrics, snakemake.input.parameters, snakemake.output.runs)
