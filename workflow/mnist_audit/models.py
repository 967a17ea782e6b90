"""Keras 3 builders for the registry's architectures, their optimizers, and accounting.

Only Keras 3 layers and ``keras.ops`` are used (no ``tf.*``), so the same code runs
on the TensorFlow backend and on JAX (``KERAS_BACKEND=jax``).

Every model maps a (batch, 28, 28, 1) float32 image in [0, 1] to (batch, 10) LOGITS;
the tutorials' final softmax is folded into the loss (see ``compile_model``). Every
conv and pool states ``padding="same"`` explicitly (Keras defaults to "valid", which
would silently change the flatten sizes). Initialisers and dropout layers get no
fixed seed: they draw from Keras's global seed, so call
``keras.utils.set_random_seed(seed)`` before ``build_model``.
"""

from __future__ import annotations

import contextlib
import random

import keras
import numpy as np
from keras import initializers as init
from keras import layers, ops

from . import registry
from .registry import Recipe

__all__ = [
    "CUSTOM_OBJECTS",
    "AlwaysOnDropout",
    "TF1RMSprop",
    "TF1Adam",
    "WeightBiasConv2D",
    "build_model",
    "compile_model",
    "layer_table",
    "macs_per_image",
    "make_optimizer",
    "param_count",
]

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
_PACKAGE = "mnist_audit"


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


# ---------------------------------------------------------------------------
# TF1 RMSProp
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TF1RMSprop(keras.optimizers.Optimizer):
    """TF1 ``tf.train.RMSPropOptimizer`` (non-centered), in keras.ops.

    Per variable, with ``ms`` starting at ``initial_accumulator`` (TF1: 1.0) and
    ``mom`` at 0::

        ms  = rho * ms + (1 - rho) * g**2
        mom = momentum * mom + lr * g / sqrt(ms + epsilon)
        var -= mom

    Keras's own RMSprop starts ``ms`` at 0 and defaults to epsilon 1e-7.
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-10,
        initial_accumulator=1.0,
        fused=False,
        name="tf1_rmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.fused = bool(fused)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.initial_accumulator = float(initial_accumulator)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._ms, self._mom = self.add_optimizer_variables(
            var_list,
            ["ms", "mom"],
            initializer=[init.Constant(self.initial_accumulator), "zeros"],
        )

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        i = self._get_variable_index(variable)
        ms, mom = self._ms[i], self._mom[i]
        if self.fused and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # TF1's own kernel, one pass per variable: ms += (g^2 - ms) * (1 - rho), ...
            tf.raw_ops.ResourceApplyRMSProp(
                var=variable.handle, ms=ms.handle, mom=mom.handle, lr=lr,
                rho=ops.cast(self.rho, variable.dtype), momentum=ops.cast(self.momentum, variable.dtype),
                epsilon=ops.cast(self.epsilon, variable.dtype), grad=g)
            return
        self.assign(ms, ops.add(ops.multiply(self.rho, ms), ops.multiply(1.0 - self.rho, ops.square(g))))
        step = ops.divide(ops.multiply(lr, g), ops.sqrt(ops.add(ms, self.epsilon)))
        self.assign(mom, ops.add(ops.multiply(self.momentum, mom), step))
        self.assign_sub(variable, mom)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "initial_accumulator": self.initial_accumulator,
                "fused": self.fused,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TF1Adam(keras.optimizers.Optimizer):
    """TF1 ``tf.train.AdamOptimizer``: on TensorFlow, its own fused kernel.

    Per variable, one ``ResourceApplyAdam`` (the op the tutorials' programs ran)::

        lr_t = lr * sqrt(1 - beta2_power) / (1 - beta1_power)
        m += (g - m) * (1 - beta1);  v += (g^2 - v) * (1 - beta2)
        var -= lr_t * m / (sqrt(v) + epsilon)

    with ``beta1_power``/``beta2_power`` held as variables that start at beta1/beta2 and
    are multiplied by them after each step, as TF1 did. Keras's ``Adam`` computes the
    same update (bias-corrected "epsilon hat") in several element-wise passes per
    variable: about 13 ms a step on thomas's 3.2M parameters on one CPU thread, against
    one fused pass (issue "Train at least as fast as the tutorial's own program").
    On another backend the same formulas run in ``keras.ops``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, name="tf1_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
        self._beta1_power = self.add_variable((), initializer=init.Constant(self.beta_1), name="beta1_power")
        self._beta2_power = self.add_variable((), initializer=init.Constant(self.beta_2), name="beta2_power")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        super()._backend_update_step(grads, trainable_variables, learning_rate)
        # After every variable's update (TF1's _finish): the powers for the next step.
        self._beta1_power.assign(ops.multiply(self._beta1_power, self.beta_1))
        self._beta2_power.assign(ops.multiply(self._beta2_power, self.beta_2))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr, g = ops.cast(learning_rate, dtype), ops.cast(gradient, dtype)
        i = self._get_variable_index(variable)
        m, v = self._m[i], self._v[i]
        b1p, b2p = ops.cast(self._beta1_power, dtype), ops.cast(self._beta2_power, dtype)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p, lr=lr,
                beta1=ops.cast(self.beta_1, dtype), beta2=ops.cast(self.beta_2, dtype),
                epsilon=ops.cast(self.epsilon, dtype), grad=g)
            return
        lr_t = lr * ops.sqrt(1.0 - b2p) / (1.0 - b1p)
        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1.0 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1.0 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(lr_t, m), ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


CUSTOM_OBJECTS = {
    "WeightBiasConv2D": WeightBiasConv2D,
    "AlwaysOnDropout": AlwaysOnDropout,
    "TF1RMSprop": TF1RMSprop,
    "TF1Adam": TF1Adam,
    f"{_PACKAGE}>TF1Adam": TF1Adam,
    f"{_PACKAGE}>WeightBiasConv2D": WeightBiasConv2D,
    f"{_PACKAGE}>AlwaysOnDropout": AlwaysOnDropout,
    f"{_PACKAGE}>TF1RMSprop": TF1RMSprop,
}


# ---------------------------------------------------------------------------
# Builders: one readable layer list per architecture
# ---------------------------------------------------------------------------


def _conv(name, filters, k, *, kernel_init, bias_init=None, activation=None, cls=layers.Conv2D):
    return cls(
        filters,
        k,
        strides=1,
        padding="same",
        activation=activation,
        use_bias=bias_init is not None,
        kernel_initializer=kernel_init,
        bias_initializer=bias_init if bias_init is not None else "zeros",
        name=name,
    )


def _pool(name):
    return layers.MaxPooling2D(pool_size=2, strides=2, padding="same", name=name)


def _dense(name, units, *, kernel_init, bias_init=None, activation=None):
    return layers.Dense(
        units,
        activation=activation,
        use_bias=bias_init is not None,
        kernel_initializer=kernel_init,
        bias_initializer=bias_init if bias_init is not None else "zeros",
        name=name,
    )


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


def _softmax_regression(variant):
    return [
        layers.Flatten(name="flatten"),
        _dense("logits", NUM_CLASSES, kernel_init=init.Zeros(), bias_init=init.Zeros()),
    ]


def _mlp(variant):
    W = lambda: init.RandomNormal(stddev=0.03)  # noqa: E731
    b = lambda: init.RandomNormal(stddev=1.0)  # noqa: E731  (tf.random_normal default)
    return [
        layers.Flatten(name="flatten"),
        _dense("fc1", 300, kernel_init=W(), bias_init=b(), activation="relu"),
        _dense("logits", NUM_CLASSES, kernel_init=W(), bias_init=b()),
    ]


_BUILDERS = {
    "jerkic": _jerkic,
    "cnn_tutorial": _cnn_tutorial,
    "singhal": _singhal,
    "thomas": _thomas,
    "zaccone": _zaccone,
    "softmax_regression": _softmax_regression,
    "mlp": _mlp,
}
assert list(_BUILDERS) == registry.list_models(), "models.py and registry.py disagree"


def _check(name: str, variant: str) -> None:
    arch = registry.get_architecture(name)  # RegistryError for unknown names
    if variant not in arch.variants:
        raise registry.RegistryError(
            f"unknown variant {variant!r} of architecture {name!r}; {name} has: {', '.join(arch.variants)}"
        )


def build_model(name: str, variant: str = "default") -> keras.Model:
    """A fresh, built model: (batch, 28, 28, 1) float32 -> (batch, 10) logits."""
    _check(name, variant)
    model_name = name if variant == "default" else f"{name}_{variant}"
    return keras.Sequential(
        [keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image"), *_BUILDERS[name](variant)],
        name=model_name,
    )


# ---------------------------------------------------------------------------
# Optimizers and compilation
# ---------------------------------------------------------------------------


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    """The recipe's optimizer, with TF1's defaults for any argument the recipe omits."""
    if recipe.optimizer not in registry.OPTIMIZER_ARGS:
        raise registry.RegistryError(
            f"unknown optimizer {recipe.optimizer!r}; allowed: {', '.join(registry.OPTIMIZERS)}"
        )
    args = {**registry.OPTIMIZER_ARGS[recipe.optimizer], **recipe.optimizer_args}
    lr = float(recipe.learning_rate)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=args["momentum"], nesterov=args["nesterov"])
    on_tf = keras.backend.backend() == "tensorflow"
    if recipe.optimizer == "adam":
        # TensorFlow: TF1's own fused kernel (the op the authors ran, and 1.13x faster a
        # step on thomas); elsewhere Keras's Adam, the same update in keras.ops.
        cls = TF1Adam if on_tf else keras.optimizers.Adam
        return cls(learning_rate=lr, beta_1=args["beta_1"], beta_2=args["beta_2"], epsilon=args["epsilon"])
    return TF1RMSprop(learning_rate=lr, fused=on_tf, **args)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClippedBinaryCrossentropy(keras.losses.Loss):
    """The mlp author's loss, on logits and integer labels::

        p = clip(softmax(logits), 1e-10, 0.9999999)
        loss = -mean_over_batch(sum_over_classes(y * log(p) + (1 - y) * log(1 - p)))

    a per-class binary cross-entropy of the softmax outputs (y one-hot).
    """

    def __init__(self, low=1e-10, high=0.9999999, name="clipped_binary_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.low, self.high = float(low), float(high)

    def call(self, y_true, y_pred):
        p = ops.clip(ops.softmax(y_pred, axis=-1), self.low, self.high)
        y = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1], dtype=p.dtype)
        return -ops.sum(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p), axis=-1)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


CUSTOM_OBJECTS.update({"ClippedBinaryCrossentropy": ClippedBinaryCrossentropy,
                       f"{_PACKAGE}>ClippedBinaryCrossentropy": ClippedBinaryCrossentropy})


def make_loss(recipe: Recipe) -> keras.losses.Loss:
    """The recipe's training loss on the model's logits."""
    if recipe.loss == "clipped_binary_xent":
        return ClippedBinaryCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


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
