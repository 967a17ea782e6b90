"""Snakemake: train one (architecture, variant, seed) job (logic: mnist_audit.train)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from mnist_audit.devices import lean_imports

lean_imports()  # this process only trains: skip Keras's unused optional imports (2-3 s)
from mnist_audit.cli import exit_now, logged_errors, setup_logging, training_job  # noqa: E402

setup_logging(snakemake.log[0])
with logged_errors():
    training_job(
        snakemake.input.data,
        Path(snakemake.output.metrics).parent,
        seed=int(snakemake.wildcards.seed),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
        jobs_per_gpu=snakemake.params.jobs_per_gpu,
        memory_growth=snakemake.params.memory_growth,
        config=dict(snakemake.config),
    )
exit_now(0)  # outputs are written and closed: skip TensorFlow's slow teardown
