"""The recipes' optimizers and losses, in Keras 3: TF1's Adam and RMSProp, Keras's own
Adam and Adadelta, the mlp author's clipped binary cross-entropy and a Keras program's
softmax output with categorical cross-entropy.

Only Keras 3 and ``keras.ops`` (plus TF1's own fused kernels where the backend is
TensorFlow), so the same code runs on TensorFlow and on JAX. tests/test_optimizers.py
checks the TF1 optimizers against ``tf.compat.v1.train``.
"""

from __future__ import annotations

import keras
from keras import initializers as init
from keras import ops

from .recipes import OPTIMIZER_ARGS, OPTIMIZERS, Recipe, RegistryError

__all__ = [
    "CUSTOM_OBJECTS",
    "ClippedBinaryCrossentropy",
    "SoftmaxOutputCrossentropy",
    "TF1Adam",
    "TF1RMSprop",
    "custom_objects",
    "make_loss",
    "make_optimizer",
]

PACKAGE = "mnist_audit"  # registered names are "mnist_audit>TF1Adam", ...: saved models record them


def custom_objects(*classes) -> dict:
    """``custom_objects`` for keras.saving.load_model: each class by its own and its registered name."""
    return {name: cls for cls in classes for name in (cls.__name__, f"{PACKAGE}>{cls.__name__}")}


# ---------------------------------------------------------------------------
# TF1 optimizers
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class TF1Adam(keras.optimizers.Optimizer):
    """TF1 ``tf.train.AdamOptimizer``: on TensorFlow, its own fused kernel.

    Per variable, one ``ResourceApplyAdam`` (the op the tutorials' programs ran)::

        lr_t = lr * sqrt(1 - beta2_power) / (1 - beta1_power)
        m += (g - m) * (1 - beta1);  v += (g^2 - v) * (1 - beta2)
        var -= lr_t * m / (sqrt(v) + epsilon)

    with ``beta1_power``/``beta2_power`` held as variables that start at beta1/beta2 and
    are multiplied by them after each step, as TF1 did. Keras's ``Adam`` computes the
    same update (bias-corrected "epsilon hat") in several element-wise passes per
    variable, against one fused pass here (issue "Train at least as fast as the
    tutorial's own program"; results/bench has the measured difference). On another
    backend the same formulas run in ``keras.ops``.
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


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    """The recipe's optimizer, with its defaults for any argument the recipe omits."""
    if recipe.optimizer not in OPTIMIZER_ARGS:
        raise RegistryError(
            f"unknown optimizer {recipe.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
        )
    args = {**OPTIMIZER_ARGS[recipe.optimizer], **recipe.optimizer_args}
    lr = float(recipe.learning_rate)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=args["momentum"], nesterov=args["nesterov"])
    if recipe.optimizer == "keras_adam":  # what optimizer="adam" gives a Keras program
        return keras.optimizers.Adam(learning_rate=lr, beta_1=args["beta_1"], beta_2=args["beta_2"],
                                     epsilon=args["epsilon"], amsgrad=args["amsgrad"])
    if recipe.optimizer == "keras_adadelta":  # keras.optimizers.Adadelta; the rate is the recipe's
        return keras.optimizers.Adadelta(learning_rate=lr, rho=args["rho"], epsilon=args["epsilon"])
    on_tf = keras.backend.backend() == "tensorflow"
    if recipe.optimizer == "adam":
        # TensorFlow: TF1's own fused kernel (the op the authors ran, and faster: see
        # results/bench); elsewhere Keras's Adam, the same update in keras.ops.
        cls = TF1Adam if on_tf else keras.optimizers.Adam
        return cls(learning_rate=lr, beta_1=args["beta_1"], beta_2=args["beta_2"], epsilon=args["epsilon"])
    return TF1RMSprop(learning_rate=lr, fused=on_tf, **args)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftmaxOutputCrossentropy(keras.losses.Loss):
    """A Keras program's ``Dense(10, activation="softmax")`` + ``loss="categorical_crossentropy"``,
    on the port's logits and integer labels: the softmax the author's last layer applied
    (``keras.activations.softmax``), then ``keras.losses.categorical_crossentropy`` on the
    one-hot labels. Keras computes that from the softmax's own logits where it can (on
    TensorFlow: ``softmax_cross_entropy_with_logits``), else from the probabilities, clipped
    to [1e-7, 1 - 1e-7]: the same choice as in the author's program, on every backend.
    """

    def __init__(self, name="softmax_output_xent", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(y, keras.activations.softmax(y_pred))


def make_loss(recipe: Recipe) -> keras.losses.Loss:
    """The recipe's training loss on the model's logits."""
    if recipe.loss == "clipped_binary_xent":
        return ClippedBinaryCrossentropy()
    if recipe.loss == "softmax_output_xent":
        return SoftmaxOutputCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# What keras.saving.load_model needs for the classes above (models.CUSTOM_OBJECTS adds the layers).
CUSTOM_OBJECTS = custom_objects(TF1RMSprop, TF1Adam, ClippedBinaryCrossentropy, SoftmaxOutputCrossentropy)
