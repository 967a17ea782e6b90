"""The seven networks as their authors wrote them, in TensorFlow 1's graph API.

Written from the tutorials' text and docs/benchmark.md (recipes, pitfalls), in the
authors' own idiom: ``tf.Variable`` of an initial tensor (``truncated_normal``,
``random_normal``, ``zeros``, ``constant``), ``tf.nn.conv2d`` and ``max_pool`` with
``SAME`` padding, ``tf.nn.dropout`` with a keep probability fed through a placeholder,
and matmuls. Nothing here uses Keras: this is the independent side of the comparison
with ``mnist_audit.models``.

Each builder takes the image placeholder (``x``, shaped as that author's program
declared it) and the variant, and returns a ``Net``: the logits, the trainable
variables in layer order (kernel then bias, which is also the order of the port's
``model.trainable_weights``; both use HWIO conv kernels and (in, out) dense kernels),
and the keep-probability placeholders with their training and evaluation values.

Input placeholders: the authors who fed ``mnist.train.next_batch`` images flat used
``[None, 784]`` and reshaped to ``[-1, 28, 28, 1]``; jerkic and zaccone declared
``[.., 28, 28, 1]`` (jerkic with the fixed batch size 128, here ``None`` so that the
evaluation can use other batch sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import tensorflow as tf

v1 = tf.compat.v1
NUM_CLASSES = 10
FLAT = (784,)
IMAGE = (28, 28, 1)


@dataclass
class Net:
    """What a builder returns."""

    logits: tf.Tensor
    variables: list  # trainable variables, layer order, kernel before bias
    keep: dict = field(default_factory=dict)  # keep-prob placeholder -> (training, evaluation) value


@dataclass(frozen=True)
class NetSpec:
    build: Callable[[tf.Tensor, str], Net]
    input_shape: tuple[int, ...]  # one image as the author's placeholder holds it


# ---------------------------------------------------------------------------
# The authors' helpers
# ---------------------------------------------------------------------------


def truncated_normal(shape, stddev, name):
    return v1.Variable(v1.truncated_normal(shape, stddev=stddev), name=name)


def random_normal(shape, stddev, name):
    return v1.Variable(v1.random_normal(shape, stddev=stddev), name=name)


def constant(shape, value, name):
    return v1.Variable(tf.constant(value, shape=shape, dtype=tf.float32), name=name)


def zeros(shape, name):
    return v1.Variable(tf.zeros(shape), name=name)


def conv2d(x, w):
    return tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME")


def max_pool_2x2(x):
    return tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def keep_prob(name):
    """A keep-probability placeholder (a scalar), as the tutorials declared it."""
    return v1.placeholder(tf.float32, shape=[], name=name)


def dropout(x, keep):
    """TF1's ``tf.nn.dropout(x, keep_prob)``: TF2 spells it with ``rate = 1 - keep_prob``."""
    return tf.nn.dropout(x, rate=1.0 - keep)


def to_image(x):
    return tf.reshape(x, [-1, 28, 28, 1])


# ---------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------


def jerkic(x, variant):
    """000: two 5x5x16 conv layers (+b, ReLU, pool), FC 1024 ReLU, dropout 0.5, FC 10.

    The author's ``generate_weights_biases``: truncated_normal sd 0.1, biases zeros.
    """
    w1, b1 = truncated_normal([5, 5, 1, 16], 0.1, "weights_conv1"), zeros([16], "biases_conv1")
    h = max_pool_2x2(tf.nn.relu(conv2d(x, w1) + b1))
    w2, b2 = truncated_normal([5, 5, 16, 16], 0.1, "weights_conv2"), zeros([16], "biases_conv2")
    h = max_pool_2x2(tf.nn.relu(conv2d(h, w2) + b2))
    w3, b3 = truncated_normal([7 * 7 * 16, 1024], 0.1, "weights_fully1"), zeros([1024], "biases_fully1")
    h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 7 * 7 * 16]), w3) + b3)
    keep = keep_prob("keep_prob")
    h = dropout(h, keep)
    w4, b4 = truncated_normal([1024, NUM_CLASSES], 0.1, "weights_fully2"), zeros([NUM_CLASSES], "biases_fully2")
    return Net(tf.matmul(h, w4) + b4, [w1, b1, w2, b2, w3, b3, w4, b4], {keep: (0.5, 1.0)})


def cnn_tutorial(x, variant):
    """001: conv 5x5x32, conv 5x5x64 (ReLU, pool), FC 1024 ReLU, dropout keep 0.6, FC 10.

    ``weight_variable``: truncated_normal sd 0.1; ``bias_variable``: constant 0.1.
    Default (corrected, as the TensorFlow Deep MNIST tutorial it follows): the bias is
    added to the convolution's output and the keep probability is fed, 0.6 in training
    and 1.0 at evaluation. ``printed``: the README's ``conv2d(x_image, w_conv1 +
    b_conv1)`` (the bias broadcast over the kernel's out-channel axis) and dropout with
    the constant ``keep_rate`` 0.6, so also at evaluation.
    """
    printed = variant == "printed"

    def weight_variable(shape, name):
        return truncated_normal(shape, 0.1, name)

    def bias_variable(shape, name):
        return constant(shape, 0.1, name)

    w_conv1, b_conv1 = weight_variable([5, 5, 1, 32], "w_conv1"), bias_variable([32], "b_conv1")
    w_conv2, b_conv2 = weight_variable([5, 5, 32, 64], "w_conv2"), bias_variable([64], "b_conv2")
    w_fc1, b_fc1 = weight_variable([7 * 7 * 64, 1024], "w_fc1"), bias_variable([1024], "b_fc1")
    w_fc2, b_fc2 = weight_variable([1024, NUM_CLASSES], "w_fc2"), bias_variable([NUM_CLASSES], "b_fc2")

    def conv_layer(h, w, b):
        return tf.nn.relu(conv2d(h, w + b) if printed else conv2d(h, w) + b)

    h_pool1 = max_pool_2x2(conv_layer(to_image(x), w_conv1, b_conv1))
    h_pool2 = max_pool_2x2(conv_layer(h_pool1, w_conv2, b_conv2))
    fc = tf.nn.relu(tf.matmul(tf.reshape(h_pool2, [-1, 7 * 7 * 64]), w_fc1) + b_fc1)
    keep = keep_prob("keep_prob")
    logits = tf.matmul(dropout(fc, keep), w_fc2) + b_fc2
    variables = [w_conv1, b_conv1, w_conv2, b_conv2, w_fc1, b_fc1, w_fc2, b_fc2]
    return Net(logits, variables, {keep: (0.6, 0.6 if printed else 1.0)})


def singhal(x, variant):
    """002: conv 5x5x6 +b, pool, ReLU; conv 5x5x16 +b, pool, ReLU; FC 128 ReLU; FC 10.

    Weights truncated_normal sd 0.05, biases constant 0.05 (the author's gist).
    """
    w1, b1 = truncated_normal([5, 5, 1, 6], 0.05, "W_conv1"), constant([6], 0.05, "b_conv1")
    h = tf.nn.relu(max_pool_2x2(conv2d(to_image(x), w1) + b1))
    w2, b2 = truncated_normal([5, 5, 6, 16], 0.05, "W_conv2"), constant([16], 0.05, "b_conv2")
    h = tf.nn.relu(max_pool_2x2(conv2d(h, w2) + b2))
    w3, b3 = truncated_normal([7 * 7 * 16, 128], 0.05, "W_fc1"), constant([128], 0.05, "b_fc1")
    h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 7 * 7 * 16]), w3) + b3)
    w4, b4 = truncated_normal([128, NUM_CLASSES], 0.05, "W_fc2"), constant([NUM_CLASSES], 0.05, "b_fc2")
    return Net(tf.matmul(h, w4) + b4, [w1, b1, w2, b2, w3, b3, w4, b4])


def thomas(x, variant):
    """003: ``create_new_conv_layer`` twice (5x5, 32 then 64), FC 1000 ReLU, FC 10.

    Conv weights truncated_normal sd 0.03 and conv biases ``truncated_normal([n])``
    with no stddev (TF1's default 1.0); dense weights sd 0.03, dense biases sd 0.01.
    """

    def create_new_conv_layer(h, in_channels, filters, name):
        weights = truncated_normal([5, 5, in_channels, filters], 0.03, name + "_W")
        bias = v1.Variable(v1.truncated_normal([filters]), name=name + "_b")  # stddev 1.0
        out = tf.nn.relu(conv2d(h, weights) + bias)
        return max_pool_2x2(out), [weights, bias]

    layer1, v_1 = create_new_conv_layer(to_image(x), 1, 32, "layer1")
    layer2, v_2 = create_new_conv_layer(layer1, 32, 64, "layer2")
    flattened = tf.reshape(layer2, [-1, 7 * 7 * 64])
    wd1, bd1 = truncated_normal([7 * 7 * 64, 1000], 0.03, "wd1"), truncated_normal([1000], 0.01, "bd1")
    dense1 = tf.nn.relu(tf.matmul(flattened, wd1) + bd1)
    wd2, bd2 = truncated_normal([1000, NUM_CLASSES], 0.03, "wd2"), truncated_normal([NUM_CLASSES], 0.01, "bd2")
    return Net(tf.matmul(dense1, wd2) + bd2, [*v_1, *v_2, wd1, bd1, wd2, bd2])


def zaccone(x, variant):
    """004: three 3x3 conv layers (32, 64, 128; ReLU, pool), FC 625 ReLU, FC 10, no biases.

    ``init_weights``: random_normal sd 0.01. Dropout ``p_keep_conv`` (0.8) after pools 1
    and 2 and after the flatten, ``p_keep_hidden`` (0.5) after FC 625; both 1.0 at
    evaluation. ReLU before the third pool (the author's code; the printed article pools ``conv3``).
    """
    w = random_normal([3, 3, 1, 32], 0.01, "w")
    w2 = random_normal([3, 3, 32, 64], 0.01, "w2")
    w3 = random_normal([3, 3, 64, 128], 0.01, "w3")
    w4 = random_normal([128 * 4 * 4, 625], 0.01, "w4")
    w_o = random_normal([625, NUM_CLASSES], 0.01, "w_o")
    p_keep_conv, p_keep_hidden = keep_prob("p_keep_conv"), keep_prob("p_keep_hidden")

    conv1 = dropout(max_pool_2x2(tf.nn.relu(conv2d(x, w))), p_keep_conv)
    conv2 = dropout(max_pool_2x2(tf.nn.relu(conv2d(conv1, w2))), p_keep_conv)
    conv3 = max_pool_2x2(tf.nn.relu(conv2d(conv2, w3)))  # 7x7 -> 4x4 (SAME)
    fc_layer = dropout(tf.reshape(conv3, [-1, w4.get_shape().as_list()[0]]), p_keep_conv)
    output_layer = dropout(tf.nn.relu(tf.matmul(fc_layer, w4)), p_keep_hidden)
    result = tf.matmul(output_layer, w_o)
    return Net(result, [w, w2, w3, w4, w_o], {p_keep_conv: (0.8, 1.0), p_keep_hidden: (0.5, 1.0)})


def softmax_regression(x, variant):
    """TensorFlow's 'MNIST for beginners' and the book's Chapter 4: ``x W + b``, W and b zeros."""
    W, b = zeros([784, NUM_CLASSES], "W"), zeros([NUM_CLASSES], "b")
    return Net(tf.matmul(x, W) + b, [W, b])


def mlp(x, variant):
    """The three-layer network of 003's author: 784 -> 300 ReLU -> 10.

    Weights ``random_normal(..., stddev=0.03)``, biases ``random_normal([n])`` (sd 1.0).
    """
    W1, b1 = random_normal([784, 300], 0.03, "W1"), v1.Variable(v1.random_normal([300]), name="b1")
    hidden_out = tf.nn.relu(tf.add(tf.matmul(x, W1), b1))
    W2, b2 = random_normal([300, NUM_CLASSES], 0.03, "W2"), v1.Variable(v1.random_normal([NUM_CLASSES]), name="b2")
    return Net(tf.add(tf.matmul(hidden_out, W2), b2), [W1, b1, W2, b2])


NETS: dict[str, NetSpec] = {
    "jerkic": NetSpec(jerkic, IMAGE),
    "cnn_tutorial": NetSpec(cnn_tutorial, FLAT),
    "singhal": NetSpec(singhal, FLAT),
    "thomas": NetSpec(thomas, FLAT),
    "zaccone": NetSpec(zaccone, IMAGE),
    "softmax_regression": NetSpec(softmax_regression, FLAT),
    "mlp": NetSpec(mlp, FLAT),
}
