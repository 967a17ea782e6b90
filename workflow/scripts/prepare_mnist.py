"""Snakemake: build the verified train/validation/test split (logic: mnist_audit.data)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import data, job

with job.step(snakemake):
    raw = {Path(p).name: Path(p) for p in snakemake.input.archives}
    prov = {Path(p).name[: -len(".source.json")]: json.loads(Path(p).read_text()) for p in snakemake.input.sources}
    data.prepare_split(raw, snakemake.output.split, snakemake.output.manifest, prov)
