"""Snakemake: claim audit, timing tables, plots and README (logic: mnist_audit.report)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job, report

with job.step(snakemake):
    inputs = {
        "runs": snakemake.input.runs,
        "parameters": snakemake.input.parameters,
        "layers_md": snakemake.input.layers_md,
        "histories": list(snakemake.input.histories),
        "manifest": snakemake.input.manifest,
    }
    report.build_report(inputs, dict(snakemake.output.items()))
