"""The training loop's parts: the data order, the budget, the compiled epoch loop, the evaluation sets.

The data order follows TF1's ``mnist.train.next_batch``: the training stream is the
concatenation of one permutation of the training set per epoch (drawn from the
seed and the epoch number), cut into consecutive batches, so a step budget that
does not divide into epochs carries over epoch boundaries exactly as the
tutorials did. Recipes with a fixed order (zaccone) use the identity order,
recipes that drop the last partial batch truncate each epoch, and the Keras programs'
recipes (``partial_batch``) cut each epoch into batches on its own, as ``fit`` does, its
last batch partial.

Training runs in *chunks* of one epoch's worth of steps (the last may be shorter);
``plan`` gives the steps and chunks of a budget. The port's ``Feeder`` trains one
chunk (a compiled loop over resident data on TensorFlow, else ``model.fit``) and
``EvalSet`` evaluates and predicts a validation or test set. The authors' programs
(``mnist_audit.originals``) use the same order and plan.
"""

from __future__ import annotations

import math

import numpy as np

from . import registry


def stream_positions(order_fn, epoch_len: int, start: int, stop: int) -> np.ndarray:
    """Indices of training examples at stream positions [start, stop)."""
    first, last = start // epoch_len, (stop - 1) // epoch_len
    stream = np.concatenate([order_fn(e) for e in range(first, last + 1)])
    offset = first * epoch_len
    return stream[start - offset : stop - offset]


class DataOrder:
    """The training stream of a recipe: which example is at which position.

    ``partial_batch``: each epoch is cut into batches on its own, its last batch the
    partial remainder (Keras's ``fit``); the steps of one epoch then hold
    ``ceil(n / batch)`` batches and ``batch_indices`` concatenates them (only an epoch's
    last batch is short)."""

    def __init__(self, n_train: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
                 partial_batch: bool = False):
        self.n, self.batch_size, self.shuffle, self.seed = n_train, batch_size, shuffle, seed
        self.partial_batch = partial_batch
        self.epoch_len = (n_train // batch_size) * batch_size if drop_last else n_train
        if self.epoch_len == 0:
            raise ValueError(f"batch size {batch_size} is larger than the training set ({n_train})")

    @classmethod
    def of(cls, recipe: registry.Recipe, n_train: int, seed: int) -> DataOrder:
        """The order a recipe trains in."""
        return cls(n_train, recipe.batch_size, recipe.shuffle, recipe.drop_last, seed, recipe.partial_batch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.epoch_len)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)[: self.epoch_len]

    def batch_indices(self, first_step: int, n_steps: int) -> np.ndarray:
        b = self.batch_size
        if self.partial_batch:
            per_epoch, out = -(-self.n // b), []
            step, stop = first_step, first_step + n_steps
            while step < stop:  # by runs of one epoch's steps
                epoch, j = divmod(step, per_epoch)
                k = min(stop - step, per_epoch - j)
                out.append(self.epoch_order(epoch)[j * b:(j + k) * b])
                step += k
            return np.concatenate(out)
        return stream_positions(self.epoch_order, self.epoch_len, first_step * b, (first_step + n_steps) * b)


def images_seen(recipe: registry.Recipe, n_train: int, steps: int) -> int:
    """Training images the first ``steps`` steps have seen (an epoch's last batch may be partial)."""
    if not recipe.partial_batch:
        return steps * recipe.batch_size
    epochs, rest = divmod(steps, recipe.steps_per_epoch(n_train))
    return epochs * n_train + min(rest * recipe.batch_size, n_train)


def plan(recipe: registry.Recipe, n_train: int, budget_scale: float) -> dict:
    """Steps, chunking and budget bookkeeping for one run."""
    published = recipe.total_steps(n_train)
    total = max(1, round(published * budget_scale))
    per_chunk = recipe.steps_per_epoch(n_train)
    return {
        "published_steps": published,
        "total_steps": total,
        "steps_per_epoch": per_chunk,
        "n_chunks": math.ceil(total / per_chunk),
    }


def fit_chunk(model, x, y, idx, batch_size):
    """One pass over the chunk's examples in stream order, from NumPy arrays."""
    return model.fit(x[idx], y[idx], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


# Forward multiply-accumulates one call into the compiled training function should
# hold, so that the fixed cost of a call (Python, dispatch)
# is a few percent of it. A GPU does ~100x the arithmetic of a small CPU per second.
MACS_PER_EXECUTION = {"cpu": 5e8, "gpu": 5e10}
MAX_STEPS_PER_EXECUTION = 64


def auto_steps_per_execution(arch: str, variant: str, batch_size: int, device_kind: str = "cpu") -> int:
    """Optimizer steps per call: enough that a call holds ``MACS_PER_EXECUTION`` work.

    It applies where training goes through ``model.fit`` (the JAX backend, or
    ``resident_data`` off; a resident TensorFlow job runs each chunk as one call)
    and to evaluation. On this project's CPU that is 64 for softmax regression, 20
    for the MLP, 7 for singhal, and 1 for the other CNNs, whose steps are already long
    (results/bench/ measures each choice against 1). The steps and their order
    are the same for any value, and so are the numbers (tests/test_bench.py).
    """
    from . import models

    work = models.macs_per_image(arch, variant) * batch_size
    target = MACS_PER_EXECUTION.get(device_kind, MACS_PER_EXECUTION["cpu"])
    return int(max(1, min(MAX_STEPS_PER_EXECUTION, target // work)))


def resolve_steps_per_execution(value: int | str, arch: str, variant: str, batch_size: int,
                                device_kind: str = "cpu") -> int:
    if value == "auto":
        return auto_steps_per_execution(arch, variant, batch_size, device_kind)
    return int(value)


def static_pipeline_options():
    """tf.data options for a pipeline over tensors already in memory: autotuning off.

    With autotuning on, every iterator starts a background tuning thread that its
    destruction waits for, on every ``fit``, ``evaluate`` or ``predict`` call
    (results/bench/ measures it: a second mode in the call times).
    Nothing here needs tuning: the data are resident and the pipelines are one op deep.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class Feeder:
    """Trains the model on one chunk of the training stream (indices, in stream order).

    ``resident=True`` on TensorFlow: the training set becomes a tensor once per job
    (on the GPU when there is one), and each chunk is *one* call into a compiled loop
    (a ``tf.while_loop`` over the chunk's steps, each gathering its batch by index
    inside the graph and running Keras's own ``train_step``). No Python runs per
    step and no ``tf.data`` threads compete with the step's threads.

    Otherwise (``resident=False``, or another backend) the chunk is copied out of the
    NumPy arrays and fed to ``model.fit`` (``fit_chunk``), with the model's
    ``steps_per_execution``.

    The batches, their order and the step function are the same either way, and so
    are the numbers, bit for bit (tests/test_bench.py). ``fit`` returns the chunk's
    mean training loss and accuracy, as ``model.fit``'s history has them.
    """

    def __init__(self, x, y, resident: bool = True):
        self.x, self.y = x, y
        self.resident = _resident_here(resident)
        self._loop, self._loop_model = {}, None  # batch width -> compiled loop, for one model
        if self.resident:
            self._x, self._y = _to_device(x), _to_device(y)

    def fit(self, model, idx, batch_size, partial: bool = False) -> dict:
        """``partial``: the chunk may end with one short batch (a recipe with ``partial_batch``)."""
        if not self.resident:
            h = fit_chunk(model, self.x, self.y, idx, batch_size).history
            return {"loss": float(h["loss"][-1]), "accuracy": float(h["accuracy"][-1])}
        import tensorflow as tf

        idx = np.asarray(idx, dtype=np.int32)
        rest = len(idx) % batch_size
        if rest and not partial:
            raise ValueError(f"a chunk of {len(idx)} examples is not whole batches of {batch_size}")
        model.reset_metrics()  # as fit does at each epoch: the chunk's means
        full = len(idx) - rest
        if full:
            self._compiled_loop(model, batch_size)(tf.constant(idx[:full].reshape(-1, batch_size)))
        if rest:  # the epoch's last, partial batch: a loop of its own width (traced once)
            self._compiled_loop(model, rest)(tf.constant(idx[full:].reshape(1, rest)))
        return {k: float(v) for k, v in model.get_metrics_result().items() if k in ("loss", "accuracy")}

    def _compiled_loop(self, model, batch_size):
        if self._loop_model is not model:
            self._loop, self._loop_model = {}, model
        if batch_size in self._loop:
            return self._loop[batch_size]
        import tensorflow as tf

        x, y = self._x, self._y
        if not self._loop:
            # What model.fit does before its first step: build the optimizer's and the
            # metrics' variables (they cannot be created inside the loop). A private Keras
            # method (pinned Keras; tests/test_bench.py checks the result against model.fit).
            model._symbolic_build(data_batch=(x[:batch_size], y[:batch_size]))
        step = tf.autograph.experimental.do_not_convert(model.train_step)

        # One trace for every chunk length; XLA only where Keras kept it on for the model.
        @tf.function(input_signature=[tf.TensorSpec([None, batch_size], tf.int32)],
                     jit_compile=bool(getattr(model, "jit_compile", False)))
        def run_steps(batches):  # [steps, batch_size] indices
            def body(i):
                step((tf.gather(x, batches[i]), tf.gather(y, batches[i])))
                return (i + 1,)

            tf.while_loop(lambda i: i < tf.shape(batches)[0], body, (tf.constant(0),))

        self._loop[batch_size] = run_steps
        return run_steps


def _resident_here(resident: bool) -> bool:
    """Resident data is TensorFlow's lever: on another backend the NumPy path is used."""
    import keras

    return bool(resident) and keras.backend.backend() == "tensorflow"


def _to_device(a):
    """A NumPy array as a TensorFlow tensor, on the first GPU when TensorFlow sees one."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        return tf.constant(a)
    with tf.device(gpus[0].name):
        return tf.identity(tf.constant(a))  # copied to the GPU once


class EvalSet:
    """One evaluation set (validation or test), held once per job.

    On TensorFlow with ``resident``: a ``tf.data`` pipeline over resident tensors in
    batches of ``batch_size``, autotuning off (``static_pipeline_options``), built once
    and evaluated after every chunk. Otherwise Keras's NumPy path. Same batches,
    same numbers.
    """

    def __init__(self, x, y, batch_size: int, resident: bool = True):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.resident = _resident_here(resident)
        if self.resident:
            import tensorflow as tf

            self.ds = (tf.data.Dataset.from_tensor_slices((_to_device(x), _to_device(y)))
                       .batch(batch_size).with_options(static_pipeline_options()))

    def evaluate(self, model) -> tuple[float | None, float | None]:
        """Mean loss and accuracy; (None, None) for an empty set (a recipe without validation)."""
        if not len(self.y):
            return None, None
        r = self.scores(model)
        return float(r["loss"]), float(r["accuracy"])

    def scores(self, model) -> dict:
        """``model.evaluate``'s dictionary: the loss and each compiled metric."""
        if self.resident:
            return model.evaluate(self.ds, verbose=0, return_dict=True)
        return model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)

    def predict(self, model) -> np.ndarray:
        if not len(self.y):
            return np.zeros((0, 10), np.float32)
        if self.resident:
            return np.asarray(model.predict(self.ds, verbose=0))
        return np.asarray(model.predict(self.x, batch_size=self.batch_size, verbose=0))
