"""The audited programs as their authors wrote them: TF1's graph API, or the author's Keras script.

For the TF1-era tutorials, an independent implementation of each architecture in
``mnist_audit.registry``, written from the tutorials and docs/benchmark.md,
not from the Keras ports: a ``tf.compat.v1`` graph with placeholders and ``feed_dict``, a session,
``tf.nn.conv2d``/``max_pool2d``/``dropout`` with keep probabilities fed through
placeholders, the authors' initialisers, losses and v1 optimizers at their defaults.
Trained on the same prepared split and the same batches as the port, it checks the
port (tests/test_originals.py) and gives the audit a second number per run.

Modules:
    nets     the seven networks (logits, variables, keep-probability placeholders)
    program  the authors' training constants, losses, optimizers; ``build``
    run      ``train_original`` (the port's run record) and ``images_per_second``
    scripts  the Keras tutorials' original: the author's own script (``keras_scripts/``),
             run as written; ``train_original`` dispatches to it by the registry's
             ``original`` field

Importing this package imports TensorFlow. ``build`` (and so everything here)
enables TensorFlow's op determinism for the whole process.
"""

from .program import (
    ORIGINALS,
    TRAINING,
    Program,
    Training,
    build,
    get_training,
    one_hot,
    trainable_parameter_count,
)
from . import scripts
from ..models import port_initial_weights
from .run import IMPLEMENTATION, evaluate, images_per_second, train_original

__all__ = [
    "IMPLEMENTATION",
    "ORIGINALS",
    "TRAINING",
    "Program",
    "Training",
    "build",
    "evaluate",
    "get_training",
    "images_per_second",
    "one_hot",
    "port_initial_weights",
    "scripts",
    "train_original",
    "trainable_parameter_count",
]
