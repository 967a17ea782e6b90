"""mnist_audit: the library behind the MNIST tutorial-claims benchmark.

Modules:
    registry  architectures, published recipes, claims and fidelity notes (pure data)
    models    Keras 3 builders for the registry, optimizers, parameter/MAC accounting
    data      MNIST download from ordered mirrors, checksum verification, IDX parsing, split
    config    config loading helpers shared by the Snakefile and the CLI
    train     one training job: deterministic, timed, resumable
    devices   GPU detection and per-GPU leases
    tracking  MLflow store set-up and run logging
    report    aggregation, the claim audit, tables and plots
"""

__version__ = "0.1.0"
