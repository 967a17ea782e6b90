"""mnist-audit check: any Keras MNIST script or notebook against its claim (mnist_audit.check,
mnist_audit.programs).

The claim's parsing and the pixel map are unit-tested here; the rest runs the real thing
on the prepared split at tiny budgets: the project's two Keras scripts through the
``check`` command give the numbers of their registry runs (``mnist-audit original``) of
the same seed and budget; a notebook of the TF quickstart's cells gives the numbers of
the same code run as a script; each bad file fails with its own message and leaves only
the log; a file that seeds itself is one run, whatever the seeds; the Snakemake form
(config key ``scripts``) resumes after a kill and logs each run once.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, mirror_arg, snakemake_cmd

from mnist_audit import check, data, recipes, runs
from mnist_audit import config as audit_config
from mnist_audit.programs import Program, ProgramError

NOTEBOOK = ROOT / "tests" / "data" / "tf_quickstart.ipynb"
KERAS_SCRIPTS = ROOT / "workflow" / "mnist_audit" / "originals" / "keras_scripts"
SCALE = 0.002  # keras_convnet: 13 steps of 6,330; tf_quickstart: 19 of 9,375 (one epoch each)


def cli(*args, cwd=None, timeout=900) -> subprocess.CompletedProcess:
    """The real mnist-audit command (this checkout's package) in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "mnist_audit.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


# ------------------------------------------------------------------ the claim


@pytest.mark.parametrize("text, value, lower", [
    ("99%", 0.99, 0.985), ("99.25%", 0.9925, 0.99245), ("~98%", 0.98, 0.975), ("roughly 99%", 0.99, 0.985),
    ("about 92 %", 0.92, 0.915), ("97-98%", 0.975, 0.965), ("99.9%", 0.999, 0.9985), ("100%", 1.0, 0.995),
])
def test_a_claim_parses_to_its_value_and_its_bound_by_the_rounding_rule(text, value, lower):
    c = recipes.parse_claim(text)
    assert (c.value, c.lower, c.text) == (pytest.approx(value), pytest.approx(lower, abs=1e-12), text.strip())


def test_the_registrys_claims_have_the_bounds_their_text_parses_to():
    from mnist_audit import registry

    for arch in ("singhal", "keras_convnet", "tf_quickstart"):
        claim = registry.get_architecture(arch).claim
        figure = re.search(r"~?\d+%", claim.text).group(0)
        assert recipes.parse_claim(figure).lower == pytest.approx(claim.lower)


@pytest.mark.parametrize("text, message", [
    ("abc", "'abc' is not a percentage"), ("1.5", "no percent sign: for 1.5% write '1.5%'"),
    ("99", "no percent sign"), ("150%", "150% is not an accuracy"), ("98-97%", "a range goes from"),
    ("", "is not a percentage"),
])
def test_a_claim_that_is_not_a_percentage_is_refused_naming_it(text, message):
    with pytest.raises(recipes.ClaimError, match=re.escape(message)):
        recipes.parse_claim(text)


# -------------------------------------------------------------- the pixel map


def _images(n, seed):
    rng = np.random.default_rng(seed)  # MNIST-like: mostly background (0), a fifth of the pixels ink
    x = (rng.random((n, 28, 28)) < 0.2) * rng.integers(1, 256, (n, 28, 28))
    x = x.astype(np.uint8)
    x[0, 0, :] = np.arange(28) * 9  # every value somewhere
    x[1, :, 0] = 255 - np.arange(28)
    x[2].flat[:256] = np.arange(256)
    return x


def test_the_pixel_map_is_the_files_own_scaling_whatever_the_shape_order_or_subset():
    train, test = _images(600, 1), _images(100, 2)
    cases = {  # what a file does to the served images -> the test images prepared the same way
        "x / 255": lambda a: (a / 255.0),
        "float32 / 255, channel": lambda a: (a.astype("float32") / 255)[..., None],
        "standardised, flat": lambda a: ((a - 33.3) / 78.6).reshape(-1, 784).astype("float32"),
        "as served": lambda a: a,
    }
    for what, prep in cases.items():
        x = prep(train)
        order = np.random.default_rng(0).permutation(500)  # a shuffled subset
        m = check.learn_pixel_map(x[order], train, test)
        np.testing.assert_array_equal(m.apply(test), prep(test), err_msg=what)
        assert (m.from_train, m.from_test, m.other, m.exact) == (500, 0, 0, True), what
    m = check.learn_pixel_map(np.concatenate([train[:300], test[:50]]) / 255.0, train, test)
    assert (m.from_train, m.from_test) == (300, 50) and m.describe() == "pixels / 255 (0 to 1)"


def test_images_that_are_no_pixel_by_pixel_map_of_the_served_ones_are_refused():
    train, test = _images(300, 3), _images(50, 4)
    x = train / 255.0
    with pytest.raises(check.NotPixelwise, match="different numbers"):
        check.learn_pixel_map(x + np.random.default_rng(0).normal(0, 0.01, x.shape) * (train > 0), train, test)
    with pytest.raises(check.NotPixelwise, match="served images"):
        check.learn_pixel_map(_images(300, 9) / 255.0, train, test)
    with pytest.raises(check.NotPixelwise, match="not 784 pixels"):
        check.learn_pixel_map(np.zeros((300, 32, 32)), train, test)


# ---------------------------------------------------------------- programs


def test_a_notebooks_code_cells_run_in_order_without_its_ipython_lines():
    p = Program.read(NOTEBOOK)
    assert p.kind == "notebook" and len(p.cells) == 10
    assert p.skipped == ("code cell 1, line 1: !pip install -q tensorflow",
                         "code cell 1, line 3: %matplotlib inline", "code cell 8, line 1: %%time")
    name, source = p.cells[0]
    assert name.endswith("tf_quickstart.ipynb [code cell 1]")
    assert source.splitlines()[2] == "pass" and source.splitlines()[1] == "import tensorflow as tf"


def test_a_file_that_is_not_python_is_refused_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import keras\nmodel.fit(x y)\n")
    with pytest.raises(ProgramError, match=r"bad.py, line 2: not valid Python"):
        Program.read(bad)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ProgramError, match=r"not a Python script \(.py\) or a Jupyter notebook"):
        Program.read(tmp_path / "x.txt")
    (tmp_path / "nb.ipynb").write_text("{not json")
    with pytest.raises(ProgramError, match="not a Jupyter notebook nbformat can read"):
        Program.read(tmp_path / "nb.ipynb")


def test_the_config_key_scripts_is_checked_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("")
    base = {"architectures": [], "seeds": [0]}
    audit_config.check_config({**base, "scripts": {"a": {"path": "a.py", "claim": "99%"}}})
    with pytest.raises(audit_config.ConfigError, match=r"scripts\.a\.claim: claim '99' is not a percentage"):
        audit_config.check_config({**base, "scripts": {"a": {"path": "a.py", "claim": "99"}}})
    with pytest.raises(audit_config.ConfigError, match=r"scripts\.b\.path: no file 'b.py'"):
        audit_config.check_config({**base, "scripts": {"b": {"path": "b.py", "claim": "99%"}}})


# ------------------------------------------------------------ real runs


def _history(run_dir: Path) -> list[dict]:
    import pandas as pd

    h = pd.read_csv(run_dir / "history.csv")
    h = h[[c for c in h.columns if "seconds" not in c]].astype(object)
    return h.where(h.notna(), None).to_dict("records")  # no validation set: None (NaN is no number to compare)


def _same_numbers(a: Path, b: Path) -> None:
    """Two run folders with the same numbers: every epoch's, the predictions, the plan."""
    ma, mb = (runs.RunRecord.read(d).metrics for d in (a, b))
    for k in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "val_accuracy", "val_loss",
              "total_steps", "published_steps", "n_train", "n_test", "test_accuracy_predict"):
        assert ma[k] == mb[k], k
    assert _history(a) == _history(b)
    pa, pb = (runs.read_predictions(d / "predictions.npz") for d in (a, b))
    np.testing.assert_array_equal(pa["test_pred"], pb["test_pred"])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["keras_convnet", "tf_quickstart"])
def test_the_projects_keras_scripts_through_check_give_their_registry_runs_numbers(arch, split_path, tmp_path):
    """The script as shipped, through `mnist-audit check` (one seed, budget x0.002), and
    its registry original (`mnist-audit original`, same seed and budget): the same steps,
    history, losses, accuracies and per-image predictions."""
    out = tmp_path / "check"
    proc = cli("check", KERAS_SCRIPTS / f"{arch}.py", "--claim", "99%", "--seeds", 1, "--budget-scale", SCALE,
               "--data", split_path, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:] + (out / "check.log").read_text()[-3000:]
    reg = cli("original", "--arch", arch, "--seed", 0, "--budget-scale", SCALE, "--threads", 1, "--data",
              split_path, "--out", tmp_path / "original")
    assert reg.returncode == 0, reg.stderr[-3000:]
    _same_numbers(out / "runs" / "seed0", tmp_path / "original")
    m = runs.RunRecord.read(out / "runs" / "seed0").metrics
    assert m["total_steps"] == max(1, round(m["published_steps"] * SCALE)) and m["n_chunks"] == 1
    fit = m["fits"][0]
    assert (fit["optimizer"], fit["optimizer_args"]["learning_rate"]) == ("Adam", 0.001)
    assert fit["batch_size"] == {"keras_convnet": 128, "tf_quickstart": 32}[arch]
    assert fit["pixels"] == "pixels / 255 (0 to 1)" and fit["images"]["test_file"] == 0


@pytest.fixture(scope="module")
def quickstart_script_run(split_path, tmp_path_factory):
    """The quickstart as a script (the project's copy) through check_run, seed 1, budget x0.002."""
    out = tmp_path_factory.mktemp("quickstart-script")
    check.check_run(KERAS_SCRIPTS / "tf_quickstart.py", split_path, out, 1, budget_scale=SCALE)
    return out


@pytest.mark.slow
def test_a_notebook_gives_the_numbers_of_the_same_code_run_as_a_script(quickstart_script_run, split_path, tmp_path):
    m = check.check_run(NOTEBOOK, split_path, tmp_path, 1, budget_scale=SCALE)
    _same_numbers(tmp_path, quickstart_script_run)
    assert m["file"]["kind"] == "notebook" and len(m["file"]["skipped"]) == 3
    assert m["recipe"]["file"] == "tf_quickstart.ipynb" and m["fits"][0]["epochs"] == 5


BAD_FILES = {
    "no_mnist": ("import numpy as np, keras\n"
                 "x, y = np.random.rand(64, 28, 28).astype('float32'), np.random.randint(0, 10, 64)\n"
                 "model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])\n"
                 "model.compile('adam', 'sparse_categorical_crossentropy')\nmodel.fit(x, y, epochs=1)\n",
                 "calls fit before loading MNIST through keras.datasets.mnist.load_data"),
    "tfds": ("import tensorflow_datasets as tfds\nds = tfds.load('mnist', split='train', as_supervised=True)\n",
             "imports tensorflow_datasets: MNIST comes only from keras.datasets.mnist.load_data"),
    "get_file": ("import keras, numpy as np\npath = keras.utils.get_file('mnist.npz', "
                 "origin='https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz')\n"
                 "x = np.load(path)['x_train']\n",
                 "downloads https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz with "
                 "keras.utils.get_file"),
    "url": ("import urllib.request\nurllib.request.urlretrieve("
            "'https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz', 'train.gz')\n",
            "opens a network connection (to ossci-datasets.s3.amazonaws.com)"),
    "no_fit": ("import keras\n(x, y), (xt, yt) = keras.datasets.mnist.load_data()\n"
               "model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])\n"
               "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
               "print(model.evaluate(xt[:100] / 255, yt[:100], verbose=0))\n",
               "never calls fit on a Keras model: nothing was trained to evaluate"),
    "tape_loop": ("import keras, tensorflow as tf\n(x, y), _ = keras.datasets.mnist.load_data()\n"
                  "model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])\n"
                  "opt = keras.optimizers.SGD(0.1)\nloss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)\n"
                  "for i in range(3):\n    with tf.GradientTape() as tape:\n"
                  "        value = loss(y[:32], model(x[:32] / 255))\n"
                  "    opt.apply_gradients(zip(tape.gradient(value, model.trainable_weights), model.trainable_weights))\n",
                  "a custom training loop (tf.GradientTape) or another library's model is not supported"),
    "raises": ("import keras\n(x, y), _ = keras.datasets.mnist.load_data()\nx = x.reshape(-1, 785)\n",
               "raises.py raised ValueError: cannot reshape array"),
}


@pytest.mark.slow
def test_each_bad_file_and_claim_fails_naming_the_problem_and_leaves_only_the_log(split_path, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = {}
    for name, (text, _) in BAD_FILES.items():  # side by side: each is mostly TensorFlow's import
        (tmp_path / f"{name}.py").write_text(text)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "mnist_audit.cli", "check", str(tmp_path / f"{name}.py"), "--claim", "99%",
             "--seeds", "2", "--data", str(split_path), "--out", str(tmp_path / "out" / name)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    (tmp_path / "fine.py").write_text(BAD_FILES["raises"][0])
    for claim, message in (("abc", "claim 'abc' is not a percentage"), ("1.5", "no percent sign")):
        proc = cli("check", tmp_path / "fine.py", "--claim", claim, "--data", split_path, "--out",
                   tmp_path / "out" / f"claim-{claim}")
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert [p.name for p in (tmp_path / "out" / f"claim-{claim}").iterdir()] == ["check.log"]
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        out = tmp_path / "out" / name
        message = BAD_FILES[name][1]
        assert proc.returncode == 1 and message in err, (name, err[-3000:])
        assert [p.name for p in out.iterdir()] == ["check.log"], name
        assert message in (out / "check.log").read_text(), name
        assert "Traceback" not in err, (name, err)  # one message, not ours
    assert 'raises.py", line 3, in <module>\n    x = x.reshape(-1, 785)' in (tmp_path / "out" / "raises" /
                                                                           "check.log").read_text()


SEEDED = """\
import keras
keras.utils.set_random_seed(42)
(x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
x = x.reshape(-1, 784).astype("float32") / 255
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
model.fit(x[:3000], y[:3000], batch_size=100, epochs=2, verbose=0)
model.fit(x[:3000], y[:3000], batch_size=100, epochs=4, initial_epoch=2, verbose=0)
"""


@pytest.mark.slow
def test_a_file_that_seeds_itself_is_one_run_whatever_the_seeds(split_path, tmp_path):
    """Its own keras.utils.set_random_seed(42) overrides the audit's seed: seeds 0 and 1 give
    the same numbers, and the verdict counts one run, saying why. It fits twice: each fit
    at the budget's share of its steps, one history, the last model judged (its compile has
    no accuracy metric: the test accuracy comes from its predictions)."""
    path = tmp_path / "seeded.py"
    path.write_text(SEEDED)
    dirs = [tmp_path / f"seed{s}" for s in (0, 1)]
    ms = [check.check_run(path, split_path, d, s, budget_scale=0.2) for s, d in zip((0, 1), dirs)]
    _same_numbers(*dirs)
    m = ms[0]
    assert m["own_seeds"] == ["keras.utils.set_random_seed(42) at seeded.py, line 2"]
    assert [(f["total_steps"], f["epochs_run"]) for f in m["fits"]] == [(12, 1), (12, 1)]
    assert [(r["epoch"], r["steps"]) for r in _history(dirs[0])] == [(1, 12), (2, 24)]
    assert m["test_accuracy"] == m["test_accuracy_predict"] > 0.5
    v = check.write_report(dirs, recipes.parse_claim("90%"), "seeded", str(path), tmp_path)
    assert v["collapsed"] and v["distinct_runs"] == 1 and v["n_runs"] == 1
    assert v["verdict"] == "inconclusive (scaled budget)"
    text = (tmp_path / "report.md").read_text()
    assert "the file sets its own seed (keras.utils.set_random_seed(42) at seeded.py, line 2)" in text
    assert "all 2 seeds trained the same model" in text and "not 2" in text
    assert "<table>" in (tmp_path / "report.html").read_text()


TINY = """\
from tensorflow import keras
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data(path="elsewhere.npz")
x_train = ((x_train - 33.3) / 78.6).reshape(-1, 784).astype("float32")
model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=6, validation_split=0.1, verbose=2)
"""


@pytest.mark.slow
def test_the_check_command_judges_reports_and_logs_each_run_once(split_path, tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    out = tmp_path / "out"
    for _ in range(2):  # the same check twice: each run logged once (a new result replaces the old)
        proc = cli("check", path, "--claim", "98%", "--seeds", 2, "--budget-scale", 0.005, "--data", split_path,
                   "--out", out)
        assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == 'tiny.py: claim "98%" (at least 97.5%), seeds 0-1, budget x0.005'
    assert re.fullmatch(r"  seed 0: \d+\.\d\d% \([\d,]+ of [\d,]+ test images\), [\d.]+ s", lines[1])
    assert lines[3].startswith("inconclusive (scaled budget): The claim \"98%\" (at least 97.5% by the "
                               "rounding rule) cannot be judged at this budget")
    assert sorted(p.name for p in out.iterdir()) == ["check.json", "check.log", "mlflow", "report.html",
                                                     "report.md", "runs"]
    v = json.loads((out / "check.json").read_text())
    assert v["n_seeds"] == 2 and v["distinct_runs"] == 2 and not v["own_seeds"]
    assert v["runs_reaching"] == sum(s["accuracy"] >= 0.975 for s in v["per_seed"])
    fit = v["fits"][0]
    assert (fit["optimizer"], fit["optimizer_args"]) == ("SGD", {"learning_rate": 0.05, "momentum": 0.9})
    n_file = len(data.training_file(data.load_split(split_path))[0])  # what load_data served
    assert fit["n_train"] == int(n_file * 0.9) and fit["steps_per_epoch"] == -(-fit["n_train"] // 64)
    assert fit["total_steps"] == max(1, round(6 * fit["steps_per_epoch"] * 0.005)) == fit["steps_run"]
    assert fit["pixels"].startswith("pixel 0 -> -0.4237")
    md = (out / "report.md").read_text()
    for part in ("## Each seed", "## The numbers", "## The recipe it ran", "SGD(learning_rate=0.05, momentum=0.9)",
                 "batch size 64, epochs 6", "## Time"):
        assert part in md, part

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mnist-audit-check").experiment_id
    logged = client.search_runs([exp], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")
    assert sorted(r.data.tags["mnist_audit.job"] for r in logged) == ["tiny/check/seed0", "tiny/check/seed1"]
    for r in logged:
        seed = r.data.tags["seed"]
        m = runs.RunRecord.read(out / "runs" / f"seed{seed}").metrics
        assert r.data.tags["mnist_audit.results"] == m["result_id"]  # the second check's results
        assert r.data.metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
        assert r.data.params["recipe.optimizer"] == "SGD" and r.data.tags["mlflow.source.name"] == "tiny.py"


# ------------------------------------------------------------------ Snakemake


SNAKEMAKE_FILE = TINY.replace("epochs=6", "epochs=2")


@pytest.mark.slow
def test_the_snakemake_form_resumes_after_a_kill_and_logs_each_run_once(mnist_dir, tmp_path):
    """Config key scripts: a script and a notebook x seeds 0 and 1 at a tiny budget.
    Snakemake is killed (the whole process group) once a run is logged; after --unlock
    the same command does the rest: the finished runs are not run again, every run is in
    MLflow once, and each file has its report in results/check/<name>/."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.py").write_text(SNAKEMAKE_FILE)
    (work / "quick.ipynb").write_text(NOTEBOOK.read_text())
    scripts = "scripts={mine: {path: mine.py, claim: '97%'}, quick: {path: quick.ipynb, claim: '~98%'}}"
    # --nocolor ends --configfile's list of files, so that "check" is the target
    cmd = snakemake_cmd(work, "--nocolor", "check", "--config", mirror_arg(mnist_dir), scripts, "seeds=[0,1]",
                        "budget_scale=0.002", cores=2)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    check_dir = work / "results" / "check"
    deadline = time.monotonic() + 600
    while not list(check_dir.glob("*/runs/seed*/mlflow_run.json")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    first = list(check_dir.glob("*/runs/seed*/mlflow_run.json"))
    assert first, "no run was logged before the workflow ended"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    logged_before = {p: json.loads(p.read_text())["run_id"] for p in first}
    unlock = subprocess.run(snakemake_cmd(work, "--unlock", cores=None), capture_output=True, text=True, env=env)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    stats = again.stdout + again.stderr
    planned = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats.split("total")[0], re.M)}
    assert planned.get("check_file", 0) <= 4 - len(first)  # a finished run is not run again

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work}/results/mlflow/mlflow.db")
    exp = client.get_experiment_by_name("tiny-test").experiment_id
    logged = client.search_runs([exp], filter_string="tags.`mnist_audit.job` LIKE '%/check/seed%'")
    jobs = sorted(r.data.tags["mnist_audit.job"] for r in logged)
    assert jobs == [f"{n}/check/seed{s}" for n in ("mine", "quick") for s in (0, 1)]  # each once
    for marker, run_id in logged_before.items():
        assert json.loads(marker.read_text())["run_id"] == run_id  # logged before the kill, kept
    for name in ("mine", "quick"):
        v = json.loads((check_dir / name / "check.json").read_text())
        assert v["n_seeds"] == 2 and v["verdict"] == "inconclusive (scaled budget)"
        assert (check_dir / name / "report.html").exists() and "## Each seed" in (
            check_dir / name / "report.md").read_text()
    assert json.loads((check_dir / "quick" / "check.json").read_text())["file"]["kind"] == "notebook"
