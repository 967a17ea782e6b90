"""One audited program as a TF1 graph: placeholders, the author's loss and v1 optimizer.

``TRAINING`` holds each program's training constants as its author wrote them
(optimizer, learning rate, batch size, budget, data order, loss), typed from docs/benchmark.md
section 2 and the seeds, not read from the registry: tests/test_originals.py checks
that the registry's recipes say the same. ``build`` assembles the graph of
``nets.NETS[arch]`` with the author's loss and a ``tf.compat.v1.train`` optimizer at
its own defaults, seeded by ``tf.compat.v1.set_random_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from .. import registry
from . import nets

v1 = tf.compat.v1

LOSSES = ("softmax_xent", "clipped_binary_xent")
CLIP = (1e-10, 0.9999999)  # the mlp author's clip_by_value bounds


@dataclass(frozen=True)
class Training:
    """How the author's program trained (docs/benchmark.md)."""

    optimizer: str  # "GradientDescent" | "Adam" | "RMSProp": the tf.train class
    learning_rate: float
    batch_size: int
    budget: int
    budget_unit: str  # "steps" | "epochs"
    shuffle: bool  # mnist.train.next_batch (reshuffled every epoch) or a fixed order
    drop_last: bool  # zaccone's zip(range(0, n, b), range(b, n + 1, b)) drops the rest
    loss: str = "softmax_xent"

    def make_optimizer(self) -> v1.train.Optimizer:
        """The v1 optimizer as the author called it: every other argument at TF1's default."""
        if self.optimizer == "GradientDescent":
            return v1.train.GradientDescentOptimizer(self.learning_rate)
        if self.optimizer == "Adam":  # beta1 0.9, beta2 0.999, epsilon 1e-8
            return v1.train.AdamOptimizer(self.learning_rate)
        if self.optimizer == "RMSProp":  # zaccone: RMSPropOptimizer(0.001, 0.9); ms starts at 1.0
            return v1.train.RMSPropOptimizer(self.learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10)
        raise ValueError(f"unknown optimizer {self.optimizer!r}")


_NEXT_BATCH = {"shuffle": True, "drop_last": False}
_BOOK_SOFTMAX = Training("GradientDescent", 0.01, 100, 25, "epochs", **_NEXT_BATCH)
TRAINING: dict[tuple[str, str], Training] = {
    ("jerkic", "default"): Training("GradientDescent", 0.01, 128, 2001, "steps", **_NEXT_BATCH),
    # the cited Deep MNIST tutorial's 20,000 steps of next_batch(50)
    ("cnn_tutorial", "default"): Training("Adam", 1e-4, 50, 20000, "steps", **_NEXT_BATCH),
    ("cnn_tutorial", "printed"): Training("Adam", 1e-4, 50, 20000, "steps", **_NEXT_BATCH),
    ("singhal", "default"): Training("Adam", 1e-4, 100, 100, "epochs", **_NEXT_BATCH),
    ("thomas", "default"): Training("Adam", 1e-4, 50, 10, "epochs", **_NEXT_BATCH),
    ("zaccone", "default"): Training("RMSProp", 1e-3, 128, 100, "epochs", shuffle=False, drop_last=True),
    ("softmax_regression", "default"): Training("GradientDescent", 0.5, 100, 1000, "steps", **_NEXT_BATCH),
    ("softmax_regression", "book"): _BOOK_SOFTMAX,
    ("mlp", "default"): Training("GradientDescent", 0.5, 100, 10, "epochs", **_NEXT_BATCH,
                                 loss="clipped_binary_xent"),
    ("mlp", "softmax_xent"): Training("GradientDescent", 0.5, 100, 10, "epochs", **_NEXT_BATCH),
}
ORIGINALS = tuple(TRAINING)


def one_hot(labels) -> np.ndarray:
    """Integer labels -> the float one-hot rows ``read_data_sets(one_hot=True)`` gave."""
    return np.eye(nets.NUM_CLASSES, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def example_loss(kind: str, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Each example's loss, as the author's code computed it (the batch loss is its mean).

    ``softmax_xent``: ``softmax_cross_entropy_with_logits`` on one-hot labels. The
    programs that wrote ``-sum(y * log(softmax))`` (cnn_tutorial's README, the beginners'
    tutorial and the book's logistic regression) get this stable form of the same
    function. ``clipped_binary_xent`` (the mlp author): the softmax clipped to
    [1e-10, 0.9999999], then ``-sum(y log p + (1 - y) log(1 - p))`` over the classes.
    """
    if kind == "softmax_xent":
        return tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
    if kind == "clipped_binary_xent":
        y_clipped = tf.clip_by_value(tf.nn.softmax(logits), *CLIP)
        return -tf.reduce_sum(y * v1.log(y_clipped) + (1 - y) * v1.log(1 - y_clipped), axis=1)
    raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")


def session_config(threads: int = 1) -> v1.ConfigProto:
    """``threads`` for each op, one op at a time: a job's CPU share, as the port's jobs get."""
    return v1.ConfigProto(intra_op_parallelism_threads=int(threads), inter_op_parallelism_threads=1)


def deterministic() -> None:
    """Deterministic kernels, so one seed gives one result (process-wide, as in TF)."""
    tf.config.experimental.enable_op_determinism()  # idempotent


@dataclass
class Program:
    """One author's program: its graph, feeds, loss, train op and variables."""

    arch: str
    variant: str  # the registry variant it implements
    seed: int
    training: Training
    recipe: registry.Recipe  # the registry's recipe of that variant (the port's)
    graph: tf.Graph
    x: tf.Tensor  # image placeholder, [None, *input_shape]
    y: tf.Tensor  # one-hot label placeholder, [None, 10]
    logits: tf.Tensor
    example_loss: tf.Tensor  # [batch]
    loss: tf.Tensor  # the batch mean: what the optimizer minimises
    predictions: tf.Tensor  # argmax of the logits
    n_correct: tf.Tensor  # correct predictions in the batch
    train_op: tf.Operation
    init_op: tf.Operation
    variables: list  # trainable, layer order (the port's trainable_weights order)
    train_keep: dict  # keep-probability placeholder -> value in training
    eval_keep: dict  # ... at evaluation
    input_shape: tuple[int, ...]
    _assign: tuple | None = field(default=None, repr=False)

    @property
    def batch_size(self) -> int:
        return self.training.batch_size

    def feed(self, images, labels=None, training: bool = False) -> dict:
        """A feed_dict: images (any shape holding 784 pixels each) and one-hot labels."""
        out = {self.x: np.asarray(images, dtype=np.float32).reshape((-1, *self.input_shape))}
        if labels is not None:
            labels = np.asarray(labels)
            out[self.y] = labels if labels.ndim == 2 else one_hot(labels)
        out.update(self.train_keep if training else self.eval_keep)
        return out

    def session(self, threads: int = 1) -> v1.Session:
        """A session on this graph, variables initialised (``global_variables_initializer``).

        Close it with ``contextlib.closing``: ``with session:`` also makes this graph the
        default one for the block, and Keras code run inside it (a port beside the
        original, as in the tests) would then build into it.
        """
        sess = v1.Session(graph=self.graph, config=session_config(threads))
        sess.run(self.init_op)
        return sess

    def parameter_count(self) -> int:
        return int(sum(np.prod(v.shape.as_list()) for v in self.variables))

    def get_weights(self, sess: v1.Session) -> list[np.ndarray]:
        return sess.run(self.variables)

    def set_weights(self, sess: v1.Session, values) -> None:
        """Assign each variable (layer order, kernel before bias) a value of its shape."""
        if self._assign is None:
            with self.graph.as_default():
                phs = [v1.placeholder(v.dtype.base_dtype, v.shape) for v in self.variables]
                self._assign = (phs, [v.assign(p) for v, p in zip(self.variables, phs)])
        phs, ops = self._assign
        values = list(values)
        if len(values) != len(phs):
            raise ValueError(f"{self.arch}: {len(values)} values for {len(phs)} variables")
        sess.run(ops, {p: np.asarray(w, dtype=np.float32).reshape(p.shape.as_list())
                       for p, w in zip(phs, values)})


def get_training(arch: str, variant: str = "default") -> Training:
    registry.resolve_recipe(arch, variant)  # RegistryError for an unknown name or variant
    try:
        return TRAINING[arch, variant]
    except KeyError:
        raise registry.RegistryError(
            f"no original program for {arch}/{variant}; originals: "
            + ", ".join(f"{a}/{v}" for a, v in ORIGINALS)) from None


def build(arch: str, variant: str = "default", seed: int = 0) -> Program:
    """The author's program for one registry variant, in a fresh graph seeded with ``seed``."""
    training = get_training(arch, variant)
    recipe = registry.resolve_recipe(arch, variant)
    spec = nets.NETS[arch]
    deterministic()
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        x = v1.placeholder(tf.float32, [None, *spec.input_shape], name="x")
        y = v1.placeholder(tf.float32, [None, nets.NUM_CLASSES], name="y")
        net = spec.build(x, variant)
        per_example = example_loss(training.loss, net.logits, y)
        loss = tf.reduce_mean(per_example)
        train_op = training.make_optimizer().minimize(loss)  # all trainable variables
        predictions = tf.argmax(net.logits, 1)
        n_correct = tf.reduce_sum(tf.cast(tf.equal(predictions, tf.argmax(y, 1)), tf.int32))
        init_op = v1.global_variables_initializer()
        trainable = v1.trainable_variables()
    if {id(v) for v in trainable} != {id(v) for v in net.variables} or len(trainable) != len(net.variables):
        raise AssertionError(f"{arch}: the net's variable list is not the graph's trainable variables")
    return Program(
        arch=arch, variant=variant, seed=seed, training=training, recipe=recipe, graph=graph,
        x=x, y=y, logits=net.logits, example_loss=per_example, loss=loss, predictions=predictions,
        n_correct=n_correct, train_op=train_op, init_op=init_op, variables=list(net.variables),
        train_keep={k: train for k, (train, _) in net.keep.items()},
        eval_keep={k: ev for k, (_, ev) in net.keep.items()},
        input_shape=spec.input_shape,
    )


def trainable_parameter_count(arch: str, variant: str = "default") -> int:
    """Trainable parameters of the original program (its graph's trainable variables)."""
    return build(arch, variant).parameter_count()
