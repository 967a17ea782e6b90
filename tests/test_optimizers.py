"""The TF1 optimizers the tutorials ran, against TensorFlow 1's own graph-mode optimizers;
Keras's Adadelta against Keras 2's update rule (keras_mnist_cnn).

``TF1Adam`` and fused ``TF1RMSprop`` call the same kernels as ``tf.compat.v1.train.
AdamOptimizer`` / ``RMSPropOptimizer``; fed the same gradients they must give the same
weights. A model trained through Keras with them must follow a TF1 graph-mode program
(placeholders, a session, ``minimize``) on the same batches from the same weights.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from mnist_audit import models, optimizers  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")

SHAPES = [(7, 5), (5,), (3, 3, 1, 4)]
STEPS = 100


def _grads(seed=0):
    rng = np.random.default_rng(seed)
    # mixed scales, some exact zeros: where Adam's normalisation is most sensitive
    out = []
    for _ in range(STEPS):
        gs = [rng.normal(size=s).astype(np.float32) * rng.choice([1e-4, 1e-2, 1.0]) for s in SHAPES]
        gs[0][0] = 0.0
        out.append(gs)
    return out


def _init(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.1, size=s).astype(np.float32) for s in SHAPES]


def _tf1_apply(make_opt, init, grads):
    """TF1 graph mode: apply_gradients fed through placeholders, in a session."""
    with tf.Graph().as_default():
        vs = [tf.compat.v1.Variable(w) for w in init]
        phs = [tf.compat.v1.placeholder(tf.float32, s) for s in SHAPES]
        train = make_opt().apply_gradients(list(zip(phs, vs)))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for gs in grads:
                sess.run(train, feed_dict=dict(zip(phs, gs)))
            return sess.run(vs)


def _keras_apply(opt, init, grads):
    vs = [keras.Variable(w) for w in init]

    @tf.function
    def step(gs):
        opt.apply(gs, vs)

    for gs in grads:
        step([tf.constant(g) for g in gs])
    return [v.numpy() for v in vs]


def test_tf1_adam_is_tf1_adamoptimizer_and_close_to_keras_adam():
    init, grads = _init(), _grads()
    ref = _tf1_apply(lambda: tf.compat.v1.train.AdamOptimizer(1e-3), init, grads)  # TF1 defaults
    fused = _keras_apply(optimizers.TF1Adam(1e-3), init, grads)
    for r, f in zip(ref, fused):
        np.testing.assert_allclose(f, r, rtol=0, atol=1e-7)  # same kernel, same beta powers
    keras_adam = _keras_apply(keras.optimizers.Adam(1e-3, epsilon=1e-8), init, grads)
    # Keras's Adam: same formulas in other passes (beta powers by pow, not products)
    for r, k in zip(ref, keras_adam):
        np.testing.assert_allclose(k, r, rtol=0, atol=1e-5)
    assert not np.allclose(ref[0], init[0])  # the updates did something


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_fused_tf1_rmsprop_is_tf1_rmspropoptimizer(momentum):
    init, grads = _init(), _grads(2)
    ref = _tf1_apply(lambda: tf.compat.v1.train.RMSPropOptimizer(1e-3, decay=0.9, momentum=momentum), init, grads)
    fused = _keras_apply(optimizers.TF1RMSprop(1e-3, momentum=momentum, fused=True), init, grads)
    ops_version = _keras_apply(optimizers.TF1RMSprop(1e-3, momentum=momentum), init, grads)
    for r, f, o in zip(ref, fused, ops_version):
        np.testing.assert_allclose(f, r, rtol=0, atol=1e-7)
        np.testing.assert_allclose(o, r, rtol=0, atol=1e-5)


def _keras2_adadelta(init, grads, lr=1.0, rho=0.95, eps=1e-7):
    """Keras 2's Adadelta.get_updates (keras/optimizers.py, 2.1-2.3) in NumPy: per variable
    a = rho a + (1 - rho) g^2; u = g sqrt(d + eps) / sqrt(a + eps); p -= lr u;
    d = rho d + (1 - rho) u^2 (the delta accumulator takes the update before lr scales it)."""
    ps = [w.astype(np.float64) for w in init]
    acc = [np.zeros_like(p) for p in ps]
    dacc = [np.zeros_like(p) for p in ps]
    for gs in grads:
        for i, g in enumerate(gs):
            g = g.astype(np.float64)
            acc[i] = rho * acc[i] + (1 - rho) * g * g
            u = g * np.sqrt(dacc[i] + eps) / np.sqrt(acc[i] + eps)
            ps[i] = ps[i] - lr * u
            dacc[i] = rho * dacc[i] + (1 - rho) * u * u
    return ps


@pytest.mark.parametrize("lr", [1.0, 0.001])
def test_keras_adadelta_is_keras_2s_update_rule(lr):
    """keras_mnist_cnn's optimizer: Keras 3's Adadelta at a given rate computes Keras 2's
    update (lr scales the step, not the delta accumulator), so the recipe's lr 1.0 is Keras
    2's Adadelta() and its 0.001 (as_written) is Keras 3's Adadelta(); 100 steps of mixed-scale
    gradients, float32 against float64."""
    from mnist_audit import registry

    init, grads = _init(), _grads(3)
    variant = "default" if lr == 1.0 else "as_written"
    opt = optimizers.make_optimizer(registry.resolve_recipe("keras_mnist_cnn", variant))
    assert type(opt) is keras.optimizers.Adadelta and (opt.rho, opt.epsilon) == (0.95, 1e-7)
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(lr)
    if lr == 0.001:  # as written on today's Keras: exactly keras.optimizers.Adadelta()
        today = keras.optimizers.Adadelta()
        assert {k: v for k, v in opt.get_config().items() if k != "name"} == \
            {k: v for k, v in today.get_config().items() if k != "name"}
    got = _keras_apply(opt, init, grads)
    ref = _keras2_adadelta(init, grads, lr=lr)
    for r, k in zip(ref, got):
        np.testing.assert_allclose(k, r, rtol=1e-5, atol=1e-7)
    moved = np.abs(ref[0] - init[0]).max()
    assert moved > 1e-3 * lr  # the updates did something
    ref_other = _keras2_adadelta(init, grads, lr=lr * 10)
    assert not np.allclose(ref_other[0], got[0], rtol=1e-5, atol=1e-7)  # and the test can tell the rate


def test_model_trained_with_tf1_adam_follows_a_tf1_program():
    """Softmax regression, 100 Adam steps on the same batches from the same weights:
    a TF1 graph-mode program (minimize, feed_dict) against Keras with TF1Adam."""
    rng = np.random.default_rng(0)
    x = rng.random((100 * 20, 784), dtype=np.float32)
    y = rng.integers(0, 10, len(x)).astype(np.int32)
    w0 = rng.normal(scale=0.05, size=(784, 10)).astype(np.float32)
    b0 = np.full(10, 0.1, np.float32)
    batches = [np.arange(i * 20, (i + 1) * 20) for i in range(100)]

    with tf.Graph().as_default():
        xp, yp = tf.compat.v1.placeholder(tf.float32, [None, 784]), tf.compat.v1.placeholder(tf.int32, [None])
        w, b = tf.compat.v1.Variable(w0), tf.compat.v1.Variable(b0)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yp, logits=xp @ w + b))
        train = tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for i in batches:
                sess.run(train, {xp: x[i], yp: y[i]})
            ref_w, ref_b = sess.run([w, b])

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.set_weights([w0, b0])
    model.compile(optimizer=optimizers.TF1Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for i in batches:
        model.train_on_batch(x[i], y[i])
    kw, kb = model.get_weights()
    np.testing.assert_allclose(kw, ref_w, rtol=0, atol=2e-6)
    np.testing.assert_allclose(kb, ref_b, rtol=0, atol=2e-6)
    assert np.abs(kw - w0).max() > 1e-2


def test_tf1_adam_state_survives_a_save_and_load(tmp_path):
    """The beta powers are optimizer variables: a checkpoint resumes the same update."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizers.TF1Adam(1e-2), loss="mse")
    x, y = np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32)
    for _ in range(3):
        model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", custom_objects=models.CUSTOM_OBJECTS)
    assert float(again.optimizer._beta1_power.numpy()) == pytest.approx(0.9 ** 4)
    model.train_on_batch(x, y)
    again.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
