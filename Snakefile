# mnist-audit: does each tutorial's "roughly 99% on MNIST" hold up, how much does it
# vary by seed, and what does it cost to train?  See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/audit.smk"


rule all:
    input:
        all_targets(),
    default_target: True
