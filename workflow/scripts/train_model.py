"""Snakemake: train one (architecture, variant, seed) job (logic: mnist_audit.train)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job

# fast_exit: its outputs are closed, skip TensorFlow's teardown (the job applies the run's
# platform and the lean imports itself, before TensorFlow is imported)
with job.step(snakemake, fast_exit=True):
    job.training_job(
        snakemake.input.data,
        Path(snakemake.output.metrics).parent,
        seed=int(snakemake.wildcards.seed),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
        jobs_per_gpu=snakemake.config["gpu"]["jobs_per_gpu"],
        memory_growth=snakemake.config["gpu"]["memory_growth"],
        config=dict(snakemake.config),
    )
