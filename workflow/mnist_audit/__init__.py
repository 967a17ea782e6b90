"""mnist_audit: the library behind the MNIST tutorial-claims benchmark.

Modules:
    registry  architectures, published recipes, claims and fidelity notes (pure data)
    models    Keras 3 builders for the registry, optimizers, parameter/MAC accounting
    originals the authors' programs in TF1 graph mode: an independent check of the ports
    data      MNIST download from ordered mirrors, checksum verification, IDX parsing, split
    config    config helpers shared by the Snakefile and the CLI (schema, coercion, run keys)
    train     one training job: TF1-style data order, deterministic, timed, resumable
    devices   GPU detection, per-GPU leases, backend set-up
    tracking  MLflow store set-up and idempotent run logging
    report    aggregation, the claim audit, tables, plots, the report README
    bench     the training-path benchmark and its levers
    provenance  code version, package versions, platform
    cli       the mnist-audit command
"""

__version__ = "0.1.0"
