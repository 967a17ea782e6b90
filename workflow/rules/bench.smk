# Not part of `all`: run with  snakemake --cores 2 bench
rule bench:
    input:
        data=f"{DATA_DIR}/mnist.npz",
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        throughput="results/bench/throughput.csv",
        levers="results/bench/levers.csv",
        overhead="results/bench/overhead.csv",
        machine="results/bench/machine.json",
        timings="results/bench/timings.csv",
        table="results/bench/bench.md",
    params:
        archs=config["architectures"],
        repeats=15,
    threads: os.cpu_count()  # the whole machine; capped by --cores locally
    conda:
        ENV
    log:
        "results/logs/bench.log",
    script:
        "../scripts/bench.py"
