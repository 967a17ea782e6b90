"""Snakemake: one checked file's verdict and report (logic: mnist_audit.check)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import check, job, recipes

with job.step(snakemake):
    check.write_report(
        [Path(m).parent for m in snakemake.input.metrics],
        recipes.parse_claim(snakemake.params.claim),
        snakemake.wildcards.name,
        snakemake.params.path,
        Path(snakemake.output.markdown).parent,
    )
