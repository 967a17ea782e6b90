"""Snakemake: one seed of one of your scripts or notebooks (config key scripts; logic: mnist_audit.check)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import check, job

# fast_exit: its outputs are closed, skip TensorFlow's teardown
with job.step(snakemake, fast_exit=True):
    settings = snakemake.params.settings
    check.check_run(
        snakemake.input.program,
        snakemake.input.data,
        Path(snakemake.output.metrics).parent,
        int(snakemake.wildcards.seed),
        budget_scale=settings["budget_scale"],
        eval_batch_size=settings["eval_batch_size"],
        threads=snakemake.threads,
        name=snakemake.wildcards.name,
        config=dict(snakemake.config),
    )
