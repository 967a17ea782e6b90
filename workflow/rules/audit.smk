# The published audit (logic: workflow/mnist_audit/publish.py).
#   snakemake --cores 2 publish --config 'seeds=[1]'   train (if needed) and publish those runs
#   snakemake --cores 1 audit_report                   rebuild audit/report/ from audit/runs/ (+ portcheck/) alone
AUDIT_DIR = "audit"
# the published runs, the port-versus-original study at its reduced budget (portcheck/), and
# the platform study (platforms/: the same seeds on other platforms and CPU kinds)
AUDIT_METRICS = sorted(glob.glob(f"{AUDIT_DIR}/runs/*/*/seed*/metrics.json")) + sorted(
    glob.glob(f"{AUDIT_DIR}/portcheck/*/*/seed*/metrics.json")) + sorted(
    glob.glob(f"{AUDIT_DIR}/platforms/*/*/*/*/seed*/metrics.json"))


# Copies finished published-recipe runs into audit/runs/ and refuses anything else (a
# scaled, subset or overridden run; a dirty checkout; a run already published with other
# numbers). No output: it runs whenever it is asked for.
rule publish:
    input:
        metrics=run_files("metrics.json"),
        predictions=run_files("predictions.npz"),
    params:
        runs=f"{AUDIT_DIR}/runs",
    conda:
        ENV
    log:
        "results/logs/publish.log",
    localrule: True
    script:
        "../scripts/publish.py"


# No training, no download: the committed records only. Also refreshes the README's
# "Status of the audit" (between its audit-status markers).
rule audit_report:
    input:
        metrics=AUDIT_METRICS,
        histories=[p.replace("metrics.json", "history.csv") for p in AUDIT_METRICS],
        predictions=[p.replace("metrics.json", "predictions.npz") for p in AUDIT_METRICS],
    output:
        readme=f"{AUDIT_DIR}/report/README.md",
        status=f"{AUDIT_DIR}/report/status.md",
        claim_audit=f"{AUDIT_DIR}/report/tables/claim_audit.csv",
    params:
        readme="README.md",
    conda:
        ENV
    log:
        "results/logs/audit_report.log",
    localrule: True
    script:
        "../scripts/audit_report.py"
