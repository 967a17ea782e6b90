"""The authors' programs in TF1 graph mode (mnist_audit.originals) against the Keras ports.

The originals are written from the tutorials and SPEC, not from models.py; here they
must agree with the ports where they can be made to see the same thing: the same
parameter counts, the same weights after the same steps on the same batches from the
same initial weights (dropout off), the same run record. The expected initialisers
and training constants below are typed from SPEC.md section 2.
"""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from mnist_audit import loops, models, registry, runs, train  # noqa: E402
from mnist_audit import originals as orig  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")

IDS = [f"{a}-{v}" for a, v in orig.ORIGINALS]


@pytest.fixture(scope="module", autouse=True)
def _restore_determinism():
    """build() turns on op determinism process-wide; leave the session as it was."""
    from tensorflow.python.framework import config

    before = config.is_op_determinism_enabled()
    yield
    if not before:
        config.disable_op_determinism()


def _patterned(n, rng):
    """Images whose class is a bright band's position (learnable), as uint8, and labels."""
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 70, (n, 28, 28))
    for i, c in enumerate(y):
        x[i, 2 + 2 * c: 6 + 2 * c, 4:24] += 180
    return x.astype(np.uint8), y.astype(np.uint8)


def _np_loss(kind, logits, y):
    """The authors' losses in float64 NumPy (fine enough to see a plateau move)."""
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    onehot = np.eye(10)[y]
    if kind == "softmax_xent":
        return float(-(onehot * logp).sum(1).mean())
    p = np.clip(np.exp(logp), 1e-10, 0.9999999)
    return float(-(onehot * np.log(p) + (1 - onehot) * np.log(1 - p)).sum(1).mean())


def _port_without_dropout(arch, variant):
    model = models.build_model(arch, variant)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0  # read when train_step is traced: no dropout on the port's side
    return models.compile_model(model, registry.resolve_recipe(arch, variant))


# ---------------------------------------------------------------------------
# What the programs are
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("arch,variant", orig.ORIGINALS, ids=IDS)
def test_parameter_count_is_the_ports(arch, variant):
    assert orig.trainable_parameter_count(arch, variant) == models.param_count(arch, variant)


TF1_ERA = [a for a in registry.list_models() if registry.get_architecture(a).original == "tf1 graph"]


def test_every_registry_variant_has_an_original():
    """A TF1 program for every variant of the TF1-era tutorials; the Keras tutorials' original
    is the author's script (tests/test_keras_originals.py)."""
    assert set(orig.ORIGINALS) == {(a, v) for a in TF1_ERA for v in registry.list_variants(a)}
    scripts = [a for a in registry.list_models() if a not in TF1_ERA]
    assert scripts and all(orig.scripts.script_path(a).exists() for a in scripts)
    with pytest.raises(registry.RegistryError, match="unknown variant"):
        orig.build("thomas", "nope")


# SPEC section 2 -> (registry optimizer, lr, batch, budget, unit, shuffle, drop_last, loss)
SPEC_TRAINING = {
    ("jerkic", "default"): ("sgd", 0.01, 128, 2001, "steps", True, False, "softmax_xent"),
    ("cnn_tutorial", "default"): ("adam", 1e-4, 50, 20000, "steps", True, False, "softmax_xent"),
    ("cnn_tutorial", "printed"): ("adam", 1e-4, 50, 20000, "steps", True, False, "softmax_xent"),
    ("singhal", "default"): ("adam", 1e-4, 100, 100, "epochs", True, False, "softmax_xent"),
    ("thomas", "default"): ("adam", 1e-4, 50, 10, "epochs", True, False, "softmax_xent"),
    ("zaccone", "default"): ("rmsprop_tf1", 1e-3, 128, 100, "epochs", False, True, "softmax_xent"),
    ("softmax_regression", "default"): ("sgd", 0.5, 100, 1000, "steps", True, False, "softmax_xent"),
    ("softmax_regression", "book"): ("sgd", 0.01, 100, 25, "epochs", True, False, "softmax_xent"),
    ("mlp", "default"): ("sgd", 0.5, 100, 10, "epochs", True, False, "clipped_binary_xent"),
    ("mlp", "softmax_xent"): ("sgd", 0.5, 100, 10, "epochs", True, False, "softmax_xent"),
}


@pytest.mark.parametrize("arch,variant", orig.ORIGINALS, ids=IDS)
def test_training_constants_and_v1_optimizer_defaults_are_the_registrys(arch, variant):
    t, r = orig.get_training(arch, variant), registry.resolve_recipe(arch, variant)
    fields = ("learning_rate", "batch_size", "budget", "budget_unit", "shuffle", "drop_last", "loss")
    assert SPEC_TRAINING[arch, variant] == (r.optimizer, *(getattr(r, f) for f in fields))
    assert all(getattr(t, f) == getattr(r, f) for f in fields)
    with tf.Graph().as_default():
        opt = t.make_optimizer()  # the v1 optimizer's own defaults vs the recipe's arguments
    if r.optimizer == "sgd":
        assert isinstance(opt, tf.compat.v1.train.GradientDescentOptimizer) and not r.optimizer_args  # momentum 0
    elif r.optimizer == "adam":
        assert (opt._beta1, opt._beta2, opt._epsilon) == tuple(r.optimizer_args[k] for k in
                                                                ("beta_1", "beta_2", "epsilon"))
    else:  # TF1 RMSProp; its accumulator starts at 1.0 (checked through the weights below)
        assert (opt._decay, opt._momentum, opt._epsilon) == tuple(r.optimizer_args[k] for k in
                                                                  ("rho", "momentum", "epsilon"))
        assert r.optimizer_args["initial_accumulator"] == 1.0


# (kind, sd or value) per variable, layer order, from SPEC section 2
T, N, C, Z = "truncated", "normal", "constant", "zeros"
SPEC_INIT = {
    "jerkic": [(T, 0.1), (Z, 0)] * 4,
    "cnn_tutorial": [(T, 0.1), (C, 0.1)] * 4,
    "singhal": [(T, 0.05), (C, 0.05)] * 4,
    "thomas": [(T, 0.03), (T, 1.0), (T, 0.03), (T, 1.0), (T, 0.03), (T, 0.01), (T, 0.03), (T, 0.01)],
    "zaccone": [(N, 0.01)] * 5,
    "softmax_regression": [(Z, 0), (Z, 0)],
    "mlp": [(N, 0.03), (N, 1.0), (N, 0.03), (N, 1.0)],
}


@pytest.mark.parametrize("arch", TF1_ERA)
def test_initialisers_are_specs_and_seeded(arch):
    p = orig.build(arch, seed=3)
    with contextlib.closing(p.session()) as sess:
        ws = p.get_weights(sess)
    for w, (kind, s) in zip(ws, SPEC_INIT[arch], strict=True):
        if kind in (C, Z):
            np.testing.assert_array_equal(w, np.full_like(w, s))
        elif kind == T:  # re-drawn beyond 2 sd: sd of the truncated normal is 0.88 sd
            assert np.abs(w).max() <= 2 * s and (w.size < 500 or abs(w.std() / s - 0.880) < 0.05)
        else:
            assert w.size < 500 or abs(w.std() / s - 1) < 0.05
    p2 = orig.build(arch, seed=3)
    with contextlib.closing(p2.session()) as sess:
        for a, b in zip(ws, p2.get_weights(sess)):
            np.testing.assert_array_equal(a, b)  # same seed, same graph: same numbers


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("arch,variant", orig.ORIGINALS, ids=IDS)
def test_a_few_steps_lower_the_loss(arch, variant):
    x, y = _patterned(20, np.random.default_rng(0))
    x = x.astype(np.float32) / 255
    p = orig.build(arch, variant)
    steps = 30 if arch == "zaccone" else 5  # zaccone sits on its plateau (ln 10) for ~150 steps
    with contextlib.closing(p.session()) as sess:
        before = sess.run([p.loss, p.logits], p.feed(x, y))
        for _ in range(steps):
            sess.run(p.train_op, p.feed(x, y, training=True))
        after = sess.run([p.loss, p.logits], p.feed(x, y))
    if variant != "printed":  # there dropout is on at evaluation: a random reading
        for loss, logits in (before, after):  # the graph's loss is the author's formula
            assert loss == pytest.approx(_np_loss(p.training.loss, logits, y), rel=1e-5)
    assert _np_loss(p.training.loss, after[1], y) < _np_loss(p.training.loss, before[1], y)


@pytest.mark.parametrize("arch,variant", orig.ORIGINALS, ids=IDS)
def test_same_weights_and_batches_give_the_ports_weights(arch, variant):
    """From the port's initial weights, dropout off on both sides, 3 steps of 16 images."""
    rng = np.random.default_rng(1)
    x, y = rng.random((48, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 48).astype(np.int32)
    keras.utils.set_random_seed(0)
    model = _port_without_dropout(arch, variant)
    w0 = [w.numpy() for w in model.trainable_weights]
    p = orig.build(arch, variant)
    with contextlib.closing(p.session()) as sess:
        p.set_weights(sess, w0)
        no_dropout = {k: 1.0 for k in p.train_keep}
        if variant != "printed":
            np.testing.assert_allclose(sess.run(p.logits, p.feed(x[:16])), model.predict(x[:16], verbose=0),
                                       rtol=1e-5, atol=1e-6)
        for i in np.arange(48).reshape(3, 16):
            model.train_on_batch(x[i], y[i])
            sess.run(p.train_op, {**p.feed(x[i], y[i]), **no_dropout})
        for k, o in zip(model.trainable_weights, p.get_weights(sess), strict=True):
            np.testing.assert_allclose(o, k.numpy(), rtol=1e-5, atol=1e-6)


def test_softmax_regression_follows_the_port_for_100_steps_of_shuffled_batches():
    """Zero init, no dropout: nothing random but the data order, which both sides share."""
    x, y = _patterned(1000, np.random.default_rng(2))
    x = x.astype(np.float32)[..., None] / 255
    recipe = registry.resolve_recipe("softmax_regression")
    order = loops.DataOrder(len(x), recipe.batch_size, recipe.shuffle, recipe.drop_last, seed=4)
    batches = order.batch_indices(0, 100).reshape(100, recipe.batch_size)  # 10 reshuffled epochs
    model = models.compile_model(models.build_model("softmax_regression"), recipe)
    p = orig.build("softmax_regression")
    with contextlib.closing(p.session()) as sess:
        for idx in batches:
            model.train_on_batch(x[idx], y[idx].astype(np.int32))
            sess.run(p.train_op, p.feed(x[idx], y[idx], training=True))
        w, b = p.get_weights(sess)
    kw, kb = model.get_weights()
    assert np.abs(kw).max() > 0.1  # it learned something
    np.testing.assert_allclose(w, kw, rtol=0, atol=2e-6)
    np.testing.assert_allclose(b, kb, rtol=0, atol=2e-6)


def test_zaccone_port_runs_tf1_rmsprop():
    """The port's initial weights in the original, fixed order, keep 1.0 on both sides: the
    same weights after 20 RMSProp steps. Keras's own RMSprop (accumulator from 0, eps 1e-7)
    would make the first updates ~1000x larger than TF1's (accumulator from 1.0)."""
    x, y = _patterned(128 * 20, np.random.default_rng(3))
    x = x.astype(np.float32)[..., None] / 255
    recipe = registry.resolve_recipe("zaccone")
    order = loops.DataOrder(len(x), recipe.batch_size, recipe.shuffle, recipe.drop_last, seed=0)
    keras.utils.set_random_seed(1)
    model = _port_without_dropout("zaccone", "default")
    w0 = [w.numpy() for w in model.trainable_weights]
    p = orig.build("zaccone")
    with contextlib.closing(p.session()) as sess:
        p.set_weights(sess, w0)
        for idx in order.batch_indices(0, 20).reshape(20, -1):
            model.train_on_batch(x[idx], y[idx].astype(np.int32))
            sess.run(p.train_op, {**p.feed(x[idx], y[idx]), **{k: 1.0 for k in p.train_keep}})
        ws = p.get_weights(sess)
    for k, o, start in zip(model.trainable_weights, ws, w0, strict=True):
        update, port_update = o - start, k.numpy() - start
        assert 0 < np.abs(update).max() < 1e-4  # TF1's small first steps
        np.testing.assert_allclose(port_update, update, rtol=0, atol=1e-3 * np.abs(update).max())


# ---------------------------------------------------------------------------
# The run record
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    rng = np.random.default_rng(5)
    arrays = {}
    for split, n in (("train", 1000), ("val", 200), ("test", 300)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _patterned(n, rng)
    path = tmp_path_factory.mktemp("originals") / "mnist.npz"
    np.savez(path, **arrays)
    return path


def test_train_original_writes_the_ports_record(tiny_split, tmp_path):
    """softmax_regression (nothing random but the shared data order): the original's run
    record has the port's keys, and its numbers are the port's."""
    kw = dict(arch="softmax_regression", seed=1, budget_scale=0.03)  # 30 steps: 3 chunks of 10
    m = orig.train_original(tiny_split, tmp_path / "orig", eval_batch_size=128, config={"k": 1}, **kw)
    port = train.train_run(tiny_split, tmp_path / "port", eval_batch_size=128, **kw)
    assert set(m) == set(port) | {"implementation", "original_of", "initial_weights"}
    assert (m["variant"], m["original_of"], m["implementation"]) == ("original", "default", "tf1 graph")
    assert m["n_chunks"] == 3 and m["total_steps"] == 30 and m["config"] == {"k": 1}
    assert set(m["timing"]) == set(port["timing"])
    for f in ("metrics.json", "history.csv", "confusion.csv", "predictions.npz"):
        assert (tmp_path / "orig" / f).exists()
    assert not (tmp_path / "orig" / "model.keras").exists()
    import pandas as pd

    hist = pd.read_csv(tmp_path / "orig" / "history.csv")
    assert list(hist.columns) == runs.HISTORY_COLUMNS and list(hist["steps"]) == [10, 20, 30]
    assert pd.read_csv(tmp_path / "orig" / "confusion.csv").filter(like="pred_").to_numpy().sum() == 300
    pred = runs.read_predictions(tmp_path / "orig" / "predictions.npz")
    assert pred["test_correct"].sum() / 300 == pytest.approx(m["test_accuracy"]) == m["test_accuracy_predict"]
    assert pred["val_correct"].sum() / 200 == pytest.approx(m["val_accuracy"])
    port_pred = runs.read_predictions(tmp_path / "port" / "predictions.npz")
    assert (pred["test_pred"] == port_pred["test_pred"]).mean() >= 0.99
    assert m["test_accuracy"] == pytest.approx(port["test_accuracy"], abs=1 / 300 + 1e-9)
    assert m["train_loss"] == pytest.approx(port["train_loss"], rel=1e-4)


def test_from_the_ports_initial_weights_mlp_tracks_the_port(tiny_split, tmp_path):
    """mlp (no dropout; random initial weights): its original started from the port's initial
    draw for the seed follows the port over 30 SGD steps, while its own draw does not. What
    remains between the two programs is the initial draw, not what they compute."""
    kw = dict(arch="mlp", seed=3, budget_scale=0.3, eval_batch_size=128)  # 30 steps of 100 images
    port = train.train_run(tiny_split, tmp_path / "port", **kw)
    same = orig.train_original(tiny_split, tmp_path / "same", **kw, from_port=True)
    own = orig.train_original(tiny_split, tmp_path / "own", **kw)
    assert (same["variant"], same["initial_weights"]) == ("original_from_port", "the port's (seed 3)")
    assert (own["variant"], own["initial_weights"]) == ("original", "own initialisers")
    assert same["train_loss"] == pytest.approx(port["train_loss"], rel=1e-4)
    assert abs(own["train_loss"] - port["train_loss"]) > 1e-3 * port["train_loss"]
    p, s_ = (runs.read_predictions(tmp_path / d / "predictions.npz")["test_pred"] for d in ("port", "same"))
    assert (p == s_).all()


def test_images_per_second_is_a_rate():
    assert orig.images_per_second("softmax_regression", steps=3, repeats=1, warmup=1) > 0


def test_the_original_command_trains_from_the_ports_draw(tiny_split, tmp_path):
    """`mnist-audit original --port-init` (the README's command line) writes the run record
    and says which initial weights it used."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mnist_audit.cli", "original", "--arch", "mlp", "--seed", "3",
                           "--budget-scale", "0.1", "--port-init", "--data", str(tiny_split),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["variant"], out["initial_weights"]) == ("original_from_port", "the port's (seed 3)")
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["variant"] == "original_from_port"


@pytest.mark.parametrize("arch", ["mlp", "tf_quickstart"])  # a TF1 original, a Keras script
@pytest.mark.parametrize("setting", [{"overrides": {"learning_rate": 0.1}}, {"jit_compile": True}, {"epochs": 3}])
def test_an_original_refuses_a_setting_it_does_not_read(tmp_path, arch, setting):
    # One definition of the settings (settings.TrainSettings); an author's program reads only
    # settings.ORIGINAL, and says so before touching the data rather than ignoring the rest.
    with pytest.raises(TypeError, match=f"{arch}/default: an author's program takes only .*not {next(iter(setting))}"):
        orig.train_original(tmp_path / "absent.npz", tmp_path / "out", arch, **setting)
    assert not (tmp_path / "out").exists()
