"""Snakemake: fetch and verify one MNIST file (logic: mnist_audit.data)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import data
from mnist_audit.cli import logged_errors, setup_logging

setup_logging(snakemake.log[0])
with logged_errors():
    out = Path(snakemake.output.archive)
    record = data.download_file(
        out.name, out, snakemake.params.mirrors,
        timeout=snakemake.params.timeout_s, retries=snakemake.params.retries,
    )
    data.atomic_write_json(snakemake.output.source, record)
