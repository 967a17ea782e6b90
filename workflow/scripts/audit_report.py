"""Snakemake: rebuild the published report and the README's status from audit/runs alone
(logic: mnist_audit.publish)."""
import os
import sys
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # model accounting builds the models: no accelerator needed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import job, publish

with job.step(snakemake):
    result = publish.build_audit_report(Path(snakemake.output.readme).parents[1])  # audit/
    publish.update_readme(snakemake.params.readme, result["status"])
