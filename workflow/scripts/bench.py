"""Snakemake: the training-path benchmark (logic: mnist_audit.bench)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job

with job.step(snakemake):
    from mnist_audit import devices

    device = devices.configure_backend(snakemake.threads)
    from mnist_audit import bench

    bench.run(snakemake.input.data, Path(snakemake.output.table).parent, list(snakemake.params.archs),
              snakemake.params.repeats, snakemake.threads, device)
