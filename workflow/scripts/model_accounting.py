"""Snakemake: parameter and per-layer tables of the configured models (logic: mnist_audit.accounting)."""
import os
import sys
from pathlib import Path

# Building the models needs no accelerator: keep this job off the GPUs the training jobs use
# (set before anything imports Keras).
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit import accounting, job

with job.step(snakemake):
    accounting.write_model_accounting(snakemake.params.models, dict(snakemake.output.items()))
