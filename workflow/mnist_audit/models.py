"""Keras 3 builders for the registry's architectures, compilation, and accounting.

Only Keras 3 layers and ``keras.ops`` are used (no ``tf.*``), so the same code runs
on the TensorFlow backend and on JAX (``KERAS_BACKEND=jax``).

Every model maps a (batch, 28, 28, 1) float32 image in [0, 1] to (batch, 10) LOGITS;
the tutorials' final softmax is folded into the loss (see ``compile_model``). Every
conv and pool of the TF1 tutorials states ``padding="same"`` explicitly (Keras defaults
to "valid", which would silently change the flatten sizes); the Keras programs keep
Keras's defaults, as their authors did. Initialisers and dropout layers get no
fixed seed: they draw from Keras's global seed, so call
``keras.utils.set_random_seed(seed)`` before ``build_model``. The optimizers and
losses the recipes name are in ``mnist_audit.optimizers``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import keras
import numpy as np
from keras import initializers as init
from keras import layers, ops

from . import optimizers, registry
from .data import IMAGE_SHAPE, NUM_CLASSES
from .optimizers import make_loss, make_optimizer
from .recipes import Recipe, RegistryError

__all__ = [
    "CUSTOM_OBJECTS",
    "AlwaysOnDropout",
    "WeightBiasConv2D",
    "build_model",
    "builder",
    "compile_model",
    "layer_table",
    "macs_per_image",
    "param_count",
]

INPUT_SHAPE = IMAGE_SHAPE
_PACKAGE = optimizers.PACKAGE


# ---------------------------------------------------------------------------
# Custom layers (the printed cnn_tutorial bugs)
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightBiasConv2D(layers.Conv2D):
    """Conv2D that adds its bias to the KERNEL, as printed: ``conv2d(x, w + b)``.

    ``b`` has one value per output channel and broadcasts over the kernel's last
    (out-channel) axis; no bias is added to the output. Same variables, parameter
    count and MACs as a plain Conv2D with bias.
    """

    def call(self, inputs):
        kernel = self.kernel
        if self.use_bias:
            kernel = ops.add(kernel, self.bias)  # (kh, kw, cin, cout) + (cout,)
        outputs = self.convolution_op(inputs, kernel)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlwaysOnDropout(layers.Dropout):
    """Dropout that is active at evaluation too (the printed constant keep_rate)."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


# What keras.saving.load_model needs to load a saved model: these layers, and the
# optimizers and losses of mnist_audit.optimizers.
CUSTOM_OBJECTS = {**optimizers.custom_objects(WeightBiasConv2D, AlwaysOnDropout), **optimizers.CUSTOM_OBJECTS}


# ---------------------------------------------------------------------------
# Builders: one readable layer list per architecture
# ---------------------------------------------------------------------------

_BUILDERS: dict[str, Callable[[str], list]] = {}  # architecture -> variant -> its layers


def builder(name: str):
    """Register the decorated function as the layer list of registry architecture ``name``."""
    registry.get_architecture(name)  # RegistryError for a name the registry does not have

    def register(fn: Callable[[str], list]) -> Callable[[str], list]:
        if name in _BUILDERS:
            raise RegistryError(f"two builders for architecture {name!r}")
        _BUILDERS[name] = fn
        return fn

    return register


def _weights(kernel_init, bias_init) -> dict:
    """A layer's weight arguments: no bias at all when ``bias_init`` is None."""
    return {
        "use_bias": bias_init is not None,
        "kernel_initializer": kernel_init,
        "bias_initializer": bias_init if bias_init is not None else "zeros",
    }


def _conv(name, filters, k, *, kernel_init, bias_init=None, activation=None, cls=layers.Conv2D):
    return cls(filters, k, strides=1, padding="same", activation=activation, name=name,
               **_weights(kernel_init, bias_init))


def _pool(name):
    return layers.MaxPooling2D(pool_size=2, strides=2, padding="same", name=name)


def _dense(name, units, *, kernel_init, bias_init=None, activation=None):
    return layers.Dense(units, activation=activation, name=name, **_weights(kernel_init, bias_init))


@builder("jerkic")
def _jerkic(variant):
    W = lambda: init.TruncatedNormal(stddev=0.1)  # noqa: E731  (fresh per layer)
    b = lambda: init.Zeros()  # noqa: E731
    return [
        _conv("conv1", 16, 5, kernel_init=W(), bias_init=b(), activation="relu"),
        _pool("pool1"),
        _conv("conv2", 16, 5, kernel_init=W(), bias_init=b(), activation="relu"),
        _pool("pool2"),
        layers.Flatten(name="flatten"),  # 7*7*16 = 784
        _dense("fc1", 1024, kernel_init=W(), bias_init=b(), activation="relu"),
        layers.Dropout(0.5, name="dropout1"),
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=b()),
    ]


@builder("cnn_tutorial")
def _cnn_tutorial(variant):
    W = lambda: init.TruncatedNormal(stddev=0.1)  # noqa: E731
    b = lambda: init.Constant(0.1)  # noqa: E731
    printed = variant == "printed"
    conv_cls = WeightBiasConv2D if printed else layers.Conv2D
    dropout_cls = AlwaysOnDropout if printed else layers.Dropout
    return [
        _conv("conv1", 32, 5, kernel_init=W(), bias_init=b(), activation="relu", cls=conv_cls),
        _pool("pool1"),
        _conv("conv2", 64, 5, kernel_init=W(), bias_init=b(), activation="relu", cls=conv_cls),
        _pool("pool2"),
        layers.Flatten(name="flatten"),  # 7*7*64 = 3136
        _dense("fc1", 1024, kernel_init=W(), bias_init=b(), activation="relu"),
        dropout_cls(0.4, name="dropout1"),  # keep 0.6
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=b()),
    ]


@builder("singhal")
def _singhal(variant):
    W = lambda: init.TruncatedNormal(stddev=0.05)  # noqa: E731
    b = lambda: init.Constant(0.05)  # noqa: E731
    return [
        _conv("conv1", 6, 5, kernel_init=W(), bias_init=b()),
        _pool("pool1"),
        layers.ReLU(name="relu1"),  # conv, pool, then ReLU, as published
        _conv("conv2", 16, 5, kernel_init=W(), bias_init=b()),
        _pool("pool2"),
        layers.ReLU(name="relu2"),
        layers.Flatten(name="flatten"),  # 7*7*16 = 784
        _dense("fc1", 128, kernel_init=W(), bias_init=b(), activation="relu"),
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=b()),
    ]


@builder("thomas")
def _thomas(variant):
    W = lambda: init.TruncatedNormal(stddev=0.03)  # noqa: E731
    conv_b = lambda: init.TruncatedNormal(stddev=1.0)  # noqa: E731
    dense_b = lambda: init.TruncatedNormal(stddev=0.01)  # noqa: E731
    return [
        _conv("conv1", 32, 5, kernel_init=W(), bias_init=conv_b(), activation="relu"),
        _pool("pool1"),
        _conv("conv2", 64, 5, kernel_init=W(), bias_init=conv_b(), activation="relu"),
        _pool("pool2"),
        layers.Flatten(name="flatten"),  # 7*7*64 = 3136
        _dense("fc1", 1000, kernel_init=W(), bias_init=dense_b(), activation="relu"),
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=dense_b()),
    ]


@builder("zaccone")
def _zaccone(variant):
    W = lambda: init.RandomNormal(stddev=0.01)  # noqa: E731
    return [  # no biases anywhere
        _conv("conv1", 32, 3, kernel_init=W(), activation="relu"),
        _pool("pool1"),
        layers.Dropout(0.2, name="dropout1"),  # keep 0.8
        _conv("conv2", 64, 3, kernel_init=W(), activation="relu"),
        _pool("pool2"),
        layers.Dropout(0.2, name="dropout2"),
        _conv("conv3", 128, 3, kernel_init=W(), activation="relu"),
        _pool("pool3"),  # 7 -> 4 with SAME padding
        layers.Flatten(name="flatten"),  # 4*4*128 = 2048
        layers.Dropout(0.2, name="dropout3"),
        _dense("fc1", 625, kernel_init=W(), activation="relu"),
        layers.Dropout(0.5, name="dropout4"),  # keep 0.5
        _dense("logits", NUM_CLASSES, kernel_init=W()),
    ]


@builder("softmax_regression")
def _softmax_regression(variant):
    return [
        layers.Flatten(name="flatten"),
        _dense("logits", NUM_CLASSES, kernel_init=init.Zeros(), bias_init=init.Zeros()),
    ]


@builder("mlp")
def _mlp(variant):
    W = lambda: init.RandomNormal(stddev=0.03)  # noqa: E731
    b = lambda: init.RandomNormal(stddev=1.0)  # noqa: E731  (tf.random_normal default)
    return [
        layers.Flatten(name="flatten"),
        _dense("fc1", 300, kernel_init=W(), bias_init=b(), activation="relu"),
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=b()),
    ]


# The Keras programs: their layers as the authors constructed them, in the same order and
# with Keras's defaults (glorot_uniform kernels, zero biases, "valid" padding), so that
# after keras.utils.set_random_seed the port draws the author's own initial weights and
# dropout seeds (each drawn in construction order from Python's seeded random module).
# Only the last layer's softmax moves into the loss (softmax_output_xent).


@builder("keras_convnet")
def _keras_convnet(variant):
    return [
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", name="conv1"),
        layers.MaxPooling2D(pool_size=(2, 2), name="pool1"),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu", name="conv2"),
        layers.MaxPooling2D(pool_size=(2, 2), name="pool2"),
        layers.Flatten(name="flatten"),  # 5*5*64 = 1600
        layers.Dropout(0.5, name="dropout1"),
        layers.Dense(NUM_CLASSES, name="logits"),  # the author's softmax: in the loss
    ]


@builder("tf_quickstart")
def _tf_quickstart(variant):
    return [
        layers.Flatten(name="flatten"),  # 28*28 = 784
        layers.Dense(128, activation="relu", name="fc1"),
        layers.Dropout(0.2, name="dropout1"),
        layers.Dense(NUM_CLASSES, name="logits"),
    ]


@builder("keras_mnist_cnn")
def _keras_mnist_cnn(variant):  # as_written changes the optimizer's rate only
    return [
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", name="conv1"),  # 26x26
        layers.Conv2D(64, (3, 3), activation="relu", name="conv2"),  # 24x24
        layers.MaxPooling2D(pool_size=(2, 2), name="pool1"),  # 12x12
        layers.Dropout(0.25, name="dropout1"),
        layers.Flatten(name="flatten"),  # 12*12*64 = 9216
        layers.Dense(128, activation="relu", name="fc1"),
        layers.Dropout(0.5, name="dropout2"),
        layers.Dense(NUM_CLASSES, name="logits"),  # the author's softmax: in the loss
    ]


def _check(name: str, variant: str) -> None:
    arch = registry.get_architecture(name)  # RegistryError for unknown names
    if variant not in arch.variants:
        raise RegistryError(
            f"unknown variant {variant!r} of architecture {name!r}; {name} has: {', '.join(arch.variants)}"
        )


def build_model(name: str, variant: str = "default") -> keras.Model:
    """A fresh, built model: (batch, 28, 28, 1) float32 -> (batch, 10) logits."""
    _check(name, variant)
    if name not in _BUILDERS:
        raise RegistryError(f"architecture {name!r} is in the registry but has no @builder in models.py")
    model_name = name if variant == "default" else f"{name}_{variant}"
    return keras.Sequential(
        [keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image"), *_BUILDERS[name](variant)],
        name=model_name,
    )


# ---------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------


def port_initial_weights(arch: str, variant: str = "default", seed: int = 0) -> list:
    """The port's initial trainable weights for ``seed``, as ``train.train_run`` draws them
    (``keras.utils.set_random_seed(seed)``, then the model is built), in the original's
    variable order: what an ``original_from_port`` run starts from."""
    keras.utils.set_random_seed(seed)
    return [w.numpy() for w in build_model(arch, variant).trainable_weights]


def compile_model(model: keras.Model, recipe: Recipe, **compile_kwargs) -> keras.Model:
    """Compile with the recipe's optimizer and loss on logits; returns the model."""
    kwargs = {
        "optimizer": make_optimizer(recipe),
        "loss": make_loss(recipe),
        "metrics": ["accuracy"],
    }
    kwargs.update(compile_kwargs)
    model.compile(**kwargs)
    return model


# ---------------------------------------------------------------------------
# Accounting
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _rng_untouched():
    """Build throw-away models without advancing the global random state."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _shape(tensor) -> tuple:
    return tuple(int(d) for d in tensor.shape[1:])


def _macs(layer) -> int:
    """Multiply-accumulates per image (weights only: no bias adds, activations or pools)."""
    if isinstance(layer, layers.Conv2D):  # includes WeightBiasConv2D
        h_out, w_out, c_out = _shape(layer.output)
        c_in = _shape(layer.input)[-1]
        kh, kw = layer.kernel_size
        return h_out * w_out * kh * kw * c_in * c_out
    if isinstance(layer, layers.Dense):
        return _shape(layer.input)[-1] * layer.units
    raise NotImplementedError(f"no MAC rule for layer {layer.name!r} ({type(layer).__name__})")


def layer_table(name: str, variant: str = "default") -> list[dict]:
    """One row per layer with weights: layer, kind, output_shape, params, macs (per image)."""
    with _rng_untouched():
        model = build_model(name, variant)
    return [
        {
            "layer": layer.name,
            "kind": type(layer).__name__,
            "output_shape": list(_shape(layer.output)),
            "params": int(layer.count_params()),
            "macs": int(_macs(layer)),
        }
        for layer in model.layers
        if layer.weights
    ]


def param_count(name: str, variant: str = "default") -> int:
    """Trainable parameters."""
    with _rng_untouched():
        model = build_model(name, variant)
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def macs_per_image(name: str, variant: str = "default") -> int:
    """Multiply-accumulates of one forward pass of one image (conv and dense layers)."""
    return sum(row["macs"] for row in layer_table(name, variant))
