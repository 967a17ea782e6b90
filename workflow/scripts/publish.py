"""Snakemake: copy the finished runs into the published audit (logic: mnist_audit.publish)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job, publish

with job.step(snakemake):
    done = publish.publish_runs([Path(p).parent for p in snakemake.input.metrics], snakemake.params.runs)
    print(json.dumps({k: len(v) for k, v in done.items()}))
