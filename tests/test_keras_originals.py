"""The Keras tutorials against their authors' own scripts (mnist_audit.originals.scripts).

Their original is the author's program itself, run by runpy with only the data path
changed. Here: the script draws the port's initial weights and dropout seeds for the same
seed; from the same draws and the same batches the two end with the same weights after a
few hundred steps; the run record is the port's; a script that departs from the registry's
recipe is refused with the difference named; the data split is Keras's own slicing.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import runpy  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from mnist_audit import data as mdata  # noqa: E402
from mnist_audit import models, registry, runs, splits, train  # noqa: E402
from mnist_audit import originals as orig  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")

PROGRAMS = [a for a in registry.list_models() if registry.get_architecture(a).original == "keras script"]


@pytest.fixture(scope="module", autouse=True)
def _restore_determinism():
    """Op determinism on for both sides, as in every training job (the runner turns it on
    process-wide; a port trained before it without would differ run to run); leave the
    session as it was."""
    from tensorflow.python.framework import config

    before = config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not before:
        config.disable_op_determinism()


@pytest.fixture(scope="module")
def patterned_split(tmp_path_factory):
    """A learnable synthetic split (a bright band's position is the class): 1,000 training,
    200 validation, 300 test images, as the prepared split's arrays."""
    rng = np.random.default_rng(5)
    arrays = {}
    for part, n in (("train", 1000), ("val", 200), ("test", 300)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 70, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 + 2 * c: 6 + 2 * c, 4:24] += 180
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x.astype(np.uint8), y.astype(np.uint8)
    path = tmp_path_factory.mktemp("keras-originals") / "mnist.npz"
    np.savez(path, **arrays)
    return path


class _Stop(Exception):
    pass


@pytest.mark.parametrize("arch", PROGRAMS)
def test_the_script_draws_the_ports_initial_weights_and_dropout_seeds(arch, patterned_split):
    """Same layers built in the same order after keras.utils.set_random_seed(seed): the same
    initial weights and the same dropout seed, for any seed (and other ones for another)."""
    split = mdata.load_split(patterned_split)
    data = (mdata.training_file(split), (split["x_test"], split["y_test"]))

    def seeds(model):
        return [np.asarray(g.state.value) for layer in model.layers for g in getattr(layer, "_seed_generators", [])]

    drawn = {}
    for seed in (0, 7):
        keras.utils.set_random_seed(seed)
        port = models.build_model(arch)
        got = {}

        def fit(model, *args, **kwargs):
            got.update(weights=[w.numpy() for w in model.trainable_weights], seeds=seeds(model))
            raise _Stop

        with mock.patch.object(keras.datasets.mnist, "load_data", lambda *a, **k: data), \
                mock.patch.object(keras.Model, "fit", fit), pytest.raises(_Stop):
            keras.utils.set_random_seed(seed)
            runpy.run_path(str(orig.scripts.script_path(arch)), run_name="__main__")
        assert len(got["weights"]) == len(port.trainable_weights) and len(got["seeds"]) == len(seeds(port)) >= 1
        for a, b in zip(got["weights"], port.trainable_weights, strict=True):
            np.testing.assert_array_equal(a, b.numpy())
        for a, b in zip(got["seeds"], seeds(port), strict=True):
            np.testing.assert_array_equal(a, b)
        drawn[seed] = got["weights"][0]
    assert not np.array_equal(drawn[0], drawn[7])


def _final_weights(monkeypatch):
    """The script's model's weights after its last epoch (the runner keeps no model file)."""
    seen = []
    epoch_end = orig.scripts.Recorder.epoch_end

    def keep(self, model, epoch, logs):
        epoch_end(self, model, epoch, logs)
        seen[:] = [w.numpy() for w in model.trainable_weights]

    monkeypatch.setattr(orig.scripts.Recorder, "epoch_end", keep)
    return seen


# a few hundred steps each, every epoch ending with its partial batch: keras_convnet trains
# on 1,080 of the 1,200 training-file images (validation_split=0.1), 9 steps an epoch, 30
# epochs; tf_quickstart on all 1,200, 38 steps an epoch, 7.5 epochs; keras_mnist_cnn (a
# 1.2M-parameter model, Adadelta at lr 1.0) on all 1,200, 10 steps an epoch, its 12 epochs
SCALE = {"keras_convnet": 2.0, "tf_quickstart": 1.5, "keras_mnist_cnn": 1.0}
STEPS = {"keras_convnet": 270, "tf_quickstart": 285, "keras_mnist_cnn": 120}


@pytest.mark.slow
@pytest.mark.parametrize("arch", PROGRAMS)
def test_from_the_ports_draw_the_script_ends_with_the_ports_weights(arch, patterned_split, tmp_path, monkeypatch):
    """The port, and the author's script started from the port's draw (its initial weights
    and dropout seeds are the port's anyway; original_from_port adds the port's data order):
    the same weights after a few hundred steps, to float32 tolerance, and the same losses and
    predictions. The script's own data order (variant original) ends elsewhere."""
    kw = dict(arch=arch, seed=2, budget_scale=SCALE[arch], eval_batch_size=100)
    port = train.train_run(patterned_split, tmp_path / "port", **kw)
    assert port["total_steps"] == STEPS[arch] and port["n_train"] == {"keras_convnet": 1080}.get(arch, 1200)
    port_w = [w for w in keras.saving.load_model(tmp_path / "port" / "model.keras", compile=False,
                                                 custom_objects=models.CUSTOM_OBJECTS).get_weights()]
    final = _final_weights(monkeypatch)
    same = orig.train_original(patterned_split, tmp_path / "same", **kw, from_port=True)
    same_w = list(final)
    own = orig.train_original(patterned_split, tmp_path / "own", **kw)
    assert (same["variant"], same["initial_weights"]) == ("original_from_port", "the port's (seed 2)")
    assert same["total_steps"] == own["total_steps"] == port["total_steps"]
    assert len(same_w) == len(port_w)
    for a, b in zip(same_w, port_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(port_w[0] - np.asarray(final[0])).max() > 1e-3  # the script's own order: elsewhere
    for key in ("train_loss", "test_loss"):
        assert same[key] == pytest.approx(port[key], rel=1e-5), key
    p, s = (runs.read_predictions(tmp_path / d / "predictions.npz")["test_pred"] for d in ("port", "same"))
    assert (p == s).all()
    assert port["test_accuracy"] > 0.5  # it learned the bands


def test_the_run_record_is_the_ports(patterned_split, tmp_path):
    """tf_quickstart's script at a tenth of its budget: the port's keys and files (no model),
    the registry's data split (no validation set), the script named with its SHA-256."""
    kw = dict(arch="tf_quickstart", seed=1, budget_scale=0.1, eval_batch_size=100)
    m = orig.train_original(patterned_split, tmp_path / "orig", config={"k": 1}, **kw)
    port = train.train_run(patterned_split, tmp_path / "port", **kw)
    assert set(m) == set(port) | {"implementation", "original_of", "initial_weights", "script"}
    assert (m["variant"], m["implementation"], m["initial_weights"]) == ("original", "keras script",
                                                                         "own initialisers")
    assert m["script"]["file"] == "tf_quickstart.py" and len(m["script"]["sha256"]) == 64
    assert (m["n_train"], m["n_val"], m["n_test"]) == (port["n_train"], port["n_val"], port["n_test"]) == (1200, 0, 300)
    assert m["total_steps"] == port["total_steps"] == 19 and m["n_chunks"] == 1  # half of one 38-step epoch
    assert m["val_accuracy"] is None and m["config"] == {"k": 1}
    for f in ("metrics.json", "history.csv", "confusion.csv", "predictions.npz"):
        assert (tmp_path / "orig" / f).exists()
    assert not (tmp_path / "orig" / "model.keras").exists()
    import pandas as pd

    hist = pd.read_csv(tmp_path / "orig" / "history.csv")
    assert list(hist.columns) == runs.HISTORY_COLUMNS and list(hist["steps"]) == [19]
    assert hist["val_accuracy"].isna().all()
    pred = runs.read_predictions(tmp_path / "orig" / "predictions.npz")
    assert len(pred["val_pred"]) == 0
    assert pred["test_correct"].mean() == pytest.approx(m["test_accuracy"]) == m["test_accuracy_predict"]


def test_keras_mnist_cnn_runs_on_keras_2s_adadelta_and_as_written_on_todays(patterned_split, tmp_path,
                                                                            monkeypatch):
    """The same unchanged script: its default original compiles Adadelta() with Keras 2's
    defaults (lr 1.0; keras_defaults, recorded), the as_written original with today's
    (0.001); both are the registry's recipe. fit's validation_data is the test set: the
    record keeps no validation numbers, the test numbers are the runner's own evaluation."""
    rates = []
    compile_ = keras.Model.compile

    def spy(model, *args, **kwargs):
        compile_(model, *args, **kwargs)
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))

    monkeypatch.setattr(keras.Model, "compile", spy)
    kw = dict(arch="keras_mnist_cnn", seed=0, budget_scale=0.25, eval_batch_size=100)  # 30 steps
    k2 = orig.train_original(patterned_split, tmp_path / "k2", **kw)
    today = orig.train_original(patterned_split, tmp_path / "today", variant="as_written", **kw)
    assert rates == [1.0, pytest.approx(0.001)]
    assert (k2["variant"], today["variant"]) == ("original", "original_as_written")
    assert k2["script"]["keras_defaults"] == {"Adadelta": {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-7}}
    assert "keras_defaults" not in today["script"] and k2["script"]["sha256"] == today["script"]["sha256"]
    assert k2["total_steps"] == today["total_steps"] == 30 and (k2["n_train"], k2["n_val"]) == (1200, 0)
    assert k2["val_accuracy"] is None and k2["claim"]["lower"] == 0.99245
    assert k2["test_accuracy"] > 0.5 > today["test_accuracy"]  # lr 1.0 learns the bands in 30 steps; 0.001 not
    assert float(keras.optimizers.Adadelta().learning_rate.numpy()) == pytest.approx(0.001)  # nothing leaks out


def test_keras_defaults_fill_only_what_the_script_leaves_out():
    """While active, Adadelta() takes Keras 2's rate, by class or by name; an explicit rate stays
    the script's; outside, today's defaults; a wrong class or argument is named."""
    with orig.scripts.keras_defaults("Adadelta", {"learning_rate": 1.0, "rho": 0.95}):
        assert float(keras.optimizers.Adadelta().learning_rate.numpy()) == 1.0
        assert float(keras.optimizers.get("adadelta").learning_rate.numpy()) == 1.0
        assert float(keras.optimizers.Adadelta(0.5).learning_rate.numpy()) == 0.5
        assert float(keras.optimizers.Adadelta(learning_rate=0.25).learning_rate.numpy()) == 0.25
    assert float(keras.optimizers.Adadelta().learning_rate.numpy()) == pytest.approx(0.001)
    with pytest.raises(registry.RegistryError, match="no Keras optimizer, layer or loss named 'Adadelt'"):
        orig.scripts.keras_defaults("Adadelt", {})
    with pytest.raises(registry.RegistryError, match="Adadelta has no argument lr; it takes learning_rate"):
        orig.scripts.keras_defaults("Adadelta", {"lr": 1.0})


def test_a_script_that_is_not_the_registrys_recipe_is_refused(patterned_split, tmp_path):
    """A copy of the author's file with another batch size and another Adam rate: the runner
    names both differences before it trains (the registry must say what the script does)."""
    text = orig.scripts.script_path("keras_convnet").read_text()
    changed = text.replace("batch_size = 128", "batch_size = 64").replace(
        'optimizer="adam"', "optimizer=keras.optimizers.Adam(3e-4)")
    assert changed != text
    script = tmp_path / "mnist_convnet.py"
    script.write_text(changed)
    with pytest.raises(registry.RegistryError, match=r"batch_size: registry 128, script 64.*optimizer"):
        orig.train_original(patterned_split, tmp_path / "run", "keras_convnet", budget_scale=0.1, script=script)
    assert not (tmp_path / "run" / "metrics.json").exists()
    # keras_mnist_cnn's file validating on other images than the test set, or with another rho
    text = orig.scripts.script_path("keras_mnist_cnn").read_text()
    changed = text.replace("validation_data=(x_test, y_test)", "validation_data=(x_train[:300], y_train[:300])")
    changed = changed.replace("keras.optimizers.Adadelta()", "keras.optimizers.Adadelta(rho=0.9)")
    assert changed.count("x_train[:300]") == 1 and "rho=0.9" in changed
    script.write_text(changed)
    with pytest.raises(registry.RegistryError, match=r"optimizer: registry keras Adadelta \(1\.0, 0\.95, 1e-07\), "
                       r"script Adadelta \(1\.0, 0\.9, 1e-07\); validation_data: .*other than the test set"):
        orig.train_original(patterned_split, tmp_path / "run", "keras_mnist_cnn", budget_scale=0.1, script=script)
    with pytest.raises(registry.RegistryError, match="not a script"):
        orig.train_original(patterned_split, tmp_path / "tf1", "mlp", script=script)


def test_the_splits_are_kerass_own_slicing():
    """validation_split=0.1 keeps what Keras's own train_validation_split keeps (the first
    floor(n * 0.9)), for the full file and for odd sizes; a subset handed to the script
    comes with just the held-out images that leave the port's training images."""
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    rule, none = splits.DATA_SPLITS["validation_split_0.1"], splits.DATA_SPLITS["no_validation"]
    assert rule.sizes() == (54_000, 6_000) and none.sizes() == (60_000, 0)
    assert splits.DATA_SPLITS["read_data_sets"].sizes() == (55_000, 5_000)
    for n in (60_000, 1_200, 557, 11):
        x = np.arange(n)
        (k_train,), (k_val,) = train_validation_split((x,), validation_split=0.1)
        ours = rule.cut(x)
        np.testing.assert_array_equal(ours[0], k_train)
        np.testing.assert_array_equal(ours[1], k_val)
    for n_train in (500, 1_000, 54_000):
        held = rule.holdout_for(n_train)
        assert rule.n_train(n_train + held) == n_train and rule.n_train(n_train + held - 1) < n_train
    assert none.holdout_for(500) == 0
