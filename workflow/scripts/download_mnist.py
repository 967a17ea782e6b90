"""Snakemake: fetch and verify one MNIST file (logic: mnist_audit.download).

The mirrors and the download settings come from the config, not from the rule's params:
where a file comes from is not part of its identity (see workflow/rules/data.smk). A
failure is also written as data beside the log (params.failure), from which the workflow
prints one fix for all its files, last (onerror in the Snakefile).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import download, files, job

with job.step(snakemake):
    out, source = Path(snakemake.output.archive), Path(snakemake.output.source)
    failure = Path(snakemake.params.failure)
    failure.unlink(missing_ok=True)
    settings = snakemake.config.get("download") or {}
    try:
        record = download.download_file(
            out.name, out, snakemake.config["mirrors"],
            timeout=settings.get("timeout_s", 30), retries=settings.get("retries", 2), record=source,
        )
    except download.DownloadError as e:
        files.write_json_if_changed(failure, e.record())
        raise e.without_fix() from None
    files.write_json_if_changed(source, record)
