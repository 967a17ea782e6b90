rule init_tracking:
    # after the data: a run whose download failed starts nothing else (keep-going or not)
    input:
        manifest=ancient(f"{DATA_DIR}/manifest.json"),
    output:
        sweep="results/mlflow/sweep.json",
    # Rerun (a new sweep) only when the store or the set of runs changes: the sweep key
    # leaves out the mirrors, the download and the tracking settings (config.sweep_key).
    params:
        uri=audit_config.tracking_uri(config),
        experiment=config["mlflow"]["experiment"],
        artifact_root=audit_config.artifact_root(),
        sweep_key=audit_config.sweep_key(config),
    conda:
        ENV
    log:
        "results/logs/init_tracking.log",
    priority: 100
    script:
        "../scripts/init_tracking.py"


rule train_model:  # a port (Keras 3); the TF1 originals are train_original below
    wildcard_constraints:
        variant=r"(?!original)[a-z0-9_]+",
    input:
        data=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        model=f"{RUN_DIR}/model.keras",
        confusion=f"{RUN_DIR}/confusion.csv",
        predictions=f"{RUN_DIR}/predictions.npz",
    # What the run computes. How jobs share a GPU (config key gpu) is read from the
    # config by the script, so changing it reruns nothing.
    params:
        settings=train_params,
    conda:
        ENV
    log:
        "results/logs/train_model/{arch}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/{arch}/{variant}/seed{seed}.tsv"
    priority: train_priority  # longest job first (its MACs); see mnist_audit.config
    threads: 1  # per job on the CPU; see the default profile
    resources:
        gpu=1,
    script:
        "../scripts/train_model.py"


# A port on another platform (config key platforms: oneDNN capped, Eigen kernels, two
# threads, JAX): the same job, its settings applied before TensorFlow is imported.
use rule train_model as train_model_on_platform with:
    output:
        metrics=f"{PLATFORM_RUN_DIR}/metrics.json",
        history=f"{PLATFORM_RUN_DIR}/history.csv",
        model=f"{PLATFORM_RUN_DIR}/model.keras",
        confusion=f"{PLATFORM_RUN_DIR}/confusion.csv",
        predictions=f"{PLATFORM_RUN_DIR}/predictions.npz",
    params:
        settings=platform_train_params,
    log:
        "results/logs/train_model/platforms/{platform}/{arch}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/platforms/{platform}/{arch}/{variant}/seed{seed}.tsv"
    threads: platform_threads


# The author's program in TensorFlow 1's graph API (opt-in: config key originals); the
# same record as a port's run, without a model file.
rule train_original:
    wildcard_constraints:
        variant=r"original(_[a-z0-9_]+)?",
    input:
        data=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        confusion=f"{RUN_DIR}/confusion.csv",
        predictions=f"{RUN_DIR}/predictions.npz",
    params:
        settings=train_params,
    conda:
        ENV
    log:
        "results/logs/train_model/{arch}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/{arch}/{variant}/seed{seed}.tsv"
    priority: train_priority
    threads: 1
    resources:
        gpu=1,
    script:
        "../scripts/train_model.py"


# Runs inside the Snakemake process (force-use-threads in the profiles): MLflow is
# imported once per workflow, not once per job. Without that flag Snakemake spawns
# a process per run: job, which is slower but logs the same. A run is logged once: a
# rerun for a new sweep finds it by its identity and only adds the sweep to its tags.
# No params: mlflow.retries is read from the config, so changing it reruns nothing.
rule log_run:
    input:
        sweep=rules.init_tracking.output.sweep,
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        model=run_model,
        confusion=f"{RUN_DIR}/confusion.csv",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        marker=f"{RUN_DIR}/mlflow_run.json",
    log:
        "results/logs/log_run/{arch}/{variant}/seed{seed}.log",
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


use rule log_run as log_run_on_platform with:
    input:
        sweep=rules.init_tracking.output.sweep,
        metrics=f"{PLATFORM_RUN_DIR}/metrics.json",
        history=f"{PLATFORM_RUN_DIR}/history.csv",
        model=f"{PLATFORM_RUN_DIR}/model.keras",
        confusion=f"{PLATFORM_RUN_DIR}/confusion.csv",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        marker=f"{PLATFORM_RUN_DIR}/mlflow_run.json",
    log:
        "results/logs/log_run/platforms/{platform}/{arch}/{variant}/seed{seed}.log",
