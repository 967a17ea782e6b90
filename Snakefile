# mnist-audit: does each tutorial's "roughly 99% on MNIST" hold up, how much does it
# vary by seed, and what does it cost to train?  See README.md.
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# The HTML report's landing page: once the report is built, its banner and verdicts
# (results/report/landing.rst, written by report_tables_plots); before, the description.
LANDING = os.path.abspath("results/report/landing.rst")


report: LANDING if os.path.exists(LANDING) else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/check.smk"


# On a cluster (the SLURM profile) only the training jobs and the model accounting are
# submitted; the rest is bookkeeping that runs in the Snakemake process: the downloads
# (login nodes reach the internet where compute nodes often do not), the split, MLflow
# logging (imported once per workflow) and the report.
localrules:
    all,
    download_mnist,
    prepare_mnist,
    init_tracking,
    log_run,
    aggregate_runs,
    report_tables_plots,
    log_report,
    publish,
    audit_report,
    check_report,
    check,


onerror:
    report_failed_download()


rule all:
    input:
        all_targets(),
    default_target: True
