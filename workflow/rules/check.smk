# Your own Keras MNIST scripts and notebooks (opt-in: config key scripts), each run as
# written once per seed on the verified MNIST and judged against its claim, as
# `mnist-audit check` does (logic: mnist_audit.check). Each run is logged to MLflow like
# the pipeline's runs; each file's report is results/check/<name>/report.md and
# report.html, beside the pipeline's report (target: check).


rule check_file:
    wildcard_constraints:
        name=CHECK_NAME,
    input:
        program=check_path,
        data=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        metrics=f"{CHECK_RUN_DIR}/metrics.json",
        history=f"{CHECK_RUN_DIR}/history.csv",
        confusion=f"{CHECK_RUN_DIR}/confusion.csv",
        predictions=f"{CHECK_RUN_DIR}/predictions.npz",
    params:
        settings=lambda wildcards: audit_config.check_settings(config, wildcards.name),
    conda:
        ENV
    log:
        "results/logs/check/{name}/seed{seed}.log",
    benchmark:
        "results/benchmarks/check/{name}/seed{seed}.tsv"
    threads: 1
    script:
        "../scripts/check_file.py"


# As log_run: inside the Snakemake process, each run logged once (found by its identity).
rule log_check_run:
    wildcard_constraints:
        name=CHECK_NAME,
    input:
        sweep=rules.init_tracking.output.sweep,
        metrics=f"{CHECK_RUN_DIR}/metrics.json",
        history=f"{CHECK_RUN_DIR}/history.csv",
        confusion=f"{CHECK_RUN_DIR}/confusion.csv",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        marker=f"{CHECK_RUN_DIR}/mlflow_run.json",
    log:
        "results/logs/log_run/check/{name}/seed{seed}.log",
    localrule: True
    run:
        tracking.log_run_job(
            input.sweep,
            Path(input.metrics).parent,
            input.manifest,
            output.marker,
            log[0],
            attempts=config["mlflow"]["retries"],
        )


rule check_report:
    wildcard_constraints:
        name=CHECK_NAME,
    input:
        metrics=lambda wildcards: check_run_files(wildcards, "metrics.json"),
        predictions=lambda wildcards: check_run_files(wildcards, "predictions.npz"),
    output:
        markdown=f"{CHECK_DIR}/report.md",
        html=f"{CHECK_DIR}/report.html",
        verdict=f"{CHECK_DIR}/check.json",
    params:
        claim=lambda wildcards: config["scripts"][wildcards.name]["claim"],
        path=check_path,
    conda:
        ENV
    log:
        "results/logs/check/{name}/report.log",
    script:
        "../scripts/check_report.py"


rule check:
    input:
        check_targets(),
