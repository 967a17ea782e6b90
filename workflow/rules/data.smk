rule download_mnist:
    output:
        archive=f"{DATA_DIR}/raw/{{file}}",
        source=f"{DATA_DIR}/raw/{{file}}.source.json",
    params:
        mirrors=config["mirrors"],
        timeout_s=config["download"]["timeout_s"],
        retries=config["download"]["retries"],
    conda:
        ENV
    log:
        "results/logs/download_mnist/{file}.log",
    script:
        "../scripts/download_mnist.py"


rule prepare_mnist:
    input:
        archives=expand(f"{DATA_DIR}/raw/{{file}}", file=list(MNIST_FILES)),
        sources=expand(f"{DATA_DIR}/raw/{{file}}.source.json", file=list(MNIST_FILES)),
    output:
        split=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    conda:
        ENV
    log:
        "results/logs/prepare_mnist.log",
    script:
        "../scripts/prepare_mnist.py"
