import glob
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The library lives beside the rules; importable even when not pip-installed.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from mnist_audit import config as audit_config
from mnist_audit import tracking
from mnist_audit.data import MNIST_FILES
from mnist_audit.download import check_mirrors
from mnist_audit.platforms import DEFAULT as DEFAULT_PLATFORM, list_platforms
from mnist_audit.registry import list_models

# The schema's architecture enum comes from the registry: one list of names.
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
config.update(
    audit_config.coerce_cli_strings(config, audit_config.resolved_schema(SCHEMA))
)
try:
    validate(config, schema=audit_config.resolved_schema_path(SCHEMA))  # also fills in defaults
except WorkflowError:
    # Snakemake's message dumps the whole schema; ours names the key and what is allowed.
    raise audit_config.ConfigError(
        audit_config.explain_invalid(config, audit_config.resolved_schema(SCHEMA))
    ) from None
audit_config.check_config(config)
check_mirrors(config["mirrors"])  # a local mirror that is not there: refused now, not by a job


wildcard_constraints:
    arch="|".join(list_models()),
    variant=r"[a-z0-9_]+",
    seed=r"\d+",
    platform="|".join(p for p in list_platforms() if p != DEFAULT_PLATFORM),
    file="|".join(name.replace(".", r"\.") for name in MNIST_FILES),


# Every rule runs in the one pinned environment (used with --sdm conda).
ENV = "../../environment.yml"
RUNS = audit_config.run_keys(config)
RUN_DIR = "results/runs/{arch}/{variant}/seed{seed}"
# the same runs on the other platforms of config key platforms (avx2, eigen, jax, ...)
PLATFORM_RUNS = audit_config.platform_run_keys(config)
PLATFORM_RUN_DIR = "results/platforms/{platform}/{arch}/{variant}/seed{seed}"
DATA_DIR = "results/data/mnist"
# A failed download's attempts and fix, as data (read by report_failed_download)
DOWNLOAD_FAILURE = "results/logs/download_mnist/{file}.failed.json"
# your own scripts and notebooks (config key scripts), each with each seed
CHECKS = audit_config.check_keys(config)
CHECK_NAME = r"[A-Za-z0-9_-]+"
CHECK_DIR = "results/check/{name}"
CHECK_RUN_DIR = "results/check/{name}/runs/seed{seed}"


def run_files(name):
    """The file ``name`` of every run folder: the default platform's, then the other platforms'."""
    return [f"{RUN_DIR}/{name}".format(arch=a, variant=v, seed=s) for a, v, s in RUNS] + [
        f"{PLATFORM_RUN_DIR}/{name}".format(platform=p, arch=a, variant=v, seed=s) for p, a, v, s in PLATFORM_RUNS]


def train_params(wildcards):
    return audit_config.train_settings(config, wildcards.arch, wildcards.variant)


def platform_train_params(wildcards):
    return audit_config.train_settings(config, wildcards.arch, wildcards.variant, wildcards.platform)


def platform_threads(wildcards):
    """A platform that sets the thread count (threads2) gets those cores from the scheduler."""
    from mnist_audit.platforms import get_platform

    return get_platform(wildcards.platform).threads or 1


def run_model(wildcards):
    """A port's model file (the TF1 originals write none)."""
    if audit_config.original_of(wildcards.variant):
        return []
    return f"{RUN_DIR}/model.keras".format(**wildcards)


def train_priority(wildcards):
    return audit_config.train_priority(config, wildcards.arch, wildcards.variant)


def check_path(wildcards):
    """The file a checked name stands for (config key scripts)."""
    return config["scripts"][wildcards.name]["path"]


def check_run_files(wildcards, name):
    """The file ``name`` of each seed's run of a checked file."""
    return [f"{CHECK_RUN_DIR}/{name}".format(name=wildcards.name, seed=s) for s in config["seeds"]]


def check_targets():
    """Each checked file's report and its runs logged to MLflow (none without config key scripts)."""
    names = list(config.get("scripts") or {})
    return [f"{CHECK_DIR}/report.md".format(name=n) for n in names] + [
        f"{CHECK_RUN_DIR}/mlflow_run.json".format(name=n, seed=s) for n, s in CHECKS]


def all_targets():
    return (
        [f"{DATA_DIR}/manifest.json"]
        + run_files("mlflow_run.json")
        + ["results/report/README.md", "results/report/landing.rst", "results/report/mlflow_run.json"]
        + check_targets()
    )


def report_failed_download():
    """On a failed run (onerror): if MNIST could not be had, say so once, last, with the
    fix for every file that is still missing (from each failed download's record)."""
    from mnist_audit.download import summarize_failures

    records = []
    for name in MNIST_FILES:
        failed = Path(DOWNLOAD_FAILURE.format(file=name))
        if failed.exists() and not Path(f"{DATA_DIR}/raw/{name}").exists():
            records.append(json.loads(failed.read_text()))
    if records:
        print(f"\n{summarize_failures(records)}\n(Every attempt is logged in {Path(DOWNLOAD_FAILURE).parent}/; "
              "the files that verified are kept and are not fetched again.)", file=sys.stderr)
