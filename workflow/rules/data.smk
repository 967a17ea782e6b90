# A file's identity is its content. The download job reruns only when a file's expected
# checksum changes (its one param): the mirror list and the download settings are read
# from the config inside the job, so changing them (or spelling a folder as a file://
# URL) reruns nothing. update(): when the job does run (forced, or the first time after
# an upgrade), Snakemake keeps the file in place instead of deleting it first, and the job
# keeps a copy that verifies without asking any mirror (offline-safe). ancient(): the
# split depends on the payloads, which the checksums fix, so a rerun of the download
# never cascades into the split and the training jobs.
rule download_mnist:
    output:
        archive=update(f"{DATA_DIR}/raw/{{file}}"),
        source=update(f"{DATA_DIR}/raw/{{file}}.source.json"),
    params:
        payload_sha256=lambda wildcards: MNIST_FILES[wildcards.file].payload_sha256,
        failure=DOWNLOAD_FAILURE,
    conda:
        ENV
    log:
        "results/logs/download_mnist/{file}.log",
    script:
        "../scripts/download_mnist.py"


rule prepare_mnist:
    input:
        archives=[ancient(p) for p in expand(f"{DATA_DIR}/raw/{{file}}", file=list(MNIST_FILES))],
        sources=[ancient(p) for p in expand(f"{DATA_DIR}/raw/{{file}}.source.json", file=list(MNIST_FILES))],
    output:
        split=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    conda:
        ENV
    log:
        "results/logs/prepare_mnist.log",
    script:
        "../scripts/prepare_mnist.py"
