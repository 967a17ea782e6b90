"""Snakemake: fetch and verify one MNIST file (logic: mnist_audit.data).

The mirrors and the download settings come from the config, not from the rule's params:
where a file comes from is not part of its identity (see workflow/rules/data.smk).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import download, files, job

with job.step(snakemake):
    out, source = Path(snakemake.output.archive), Path(snakemake.output.source)
    settings = snakemake.config.get("download") or {}
    record = download.download_file(
        out.name, out, snakemake.config["mirrors"],
        timeout=settings.get("timeout_s", 30), retries=settings.get("retries", 2), record=source,
    )
    files.write_json_if_changed(source, record)
