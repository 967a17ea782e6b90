"""The same model and training code on the JAX backend (the GPU machines' backend)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, start_logged, wait_ok

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")

# On one worker, one after another: they share JAX's compilation cache (below).
pytestmark = pytest.mark.xdist_group(name="jax")


@pytest.fixture(scope="module")
def jax_env(tmp_path_factory):
    """The environment of a JAX process: KERAS_BACKEND=jax, and one persistent compilation
    cache for the module (every entry kept), so a step compiled once, for a seed or a test,
    loads as the same executable elsewhere instead of compiling again. The checks do not
    lean on it: a same-seed pair compares two runs whichever executable each loaded."""
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}

CODE = """
import json, sys
sys.path.insert(0, {lib!r})
from mnist_audit import devices
device = devices.configure_backend(1)
import keras, numpy as np
from mnist_audit import registry, models
from mnist_audit.train import train_run
out = {{"backend": keras.backend.backend(), "runs": {{}}}}
for arch, variant in {pairs!r}:
    # 6 optimizer steps on 256 images, whatever the recipe's batch and budget
    scale = 6 / registry.resolve_recipe(arch, variant).total_steps(256)
    res = []
    seeds = (3, 3, 4) if (arch, variant) in {other!r} else (3, 3)  # the same seed twice, then another
    for i, seed in enumerate(seeds):
        d = {tmp!r} + f"/{{arch}}-{{variant}}-{{i}}"
        m = train_run({data!r}, d, arch, variant, seed=seed, budget_scale=scale, train_subset=256,
                      eval_subset=100, device=device)
        w = keras.saving.load_model(d + "/model.keras", custom_objects=models.CUSTOM_OBJECTS).get_weights()
        res.append([m["test_loss"], m["train_loss"], float(sum(np.abs(x).sum() for x in w)), m["total_steps"]])
    out["runs"][f"{{arch}}:{{variant}}"] = {{"runs": res, "device": m["device"]["kind"], "backend": m["backend"]}}
print(json.dumps(out))
"""


# Another seed gives other numbers: checked where the seed reaches each kind of random
# state: initial weights and dropout (jerkic), initial weights alone (mlp), only the data
# order (softmax_regression: zero initial weights).
OTHER_SEED = {("jerkic", "default"), ("mlp", "default"), ("softmax_regression", "default")}


@pytest.mark.slow
def test_every_architecture_trains_deterministically_on_jax(split_path, tmp_path, jax_env):
    """Every architecture and variant, trained twice with one seed on JAX (6 steps each):
    the same losses and weights; and another seed gives other ones (OTHER_SEED, below)."""
    from mnist_audit import models, registry

    env = jax_env
    # two processes of one thread side by side, the variants dealt out by cost: each
    # process starts JAX once; the checks are the same as in one process
    pairs = sorted(((a, v) for a in registry.list_models() for v in registry.list_variants(a)),
                   key=lambda p: models.macs_per_image(p[0]), reverse=True)
    logs = [tmp_path / f"part{k}.log" for k in range(2)]
    procs = [start_logged([sys.executable, "-c", CODE.format(lib=str(ROOT / "workflow"), data=str(split_path),
                                                             tmp=str(tmp_path), pairs=pairs[k::2], other=OTHER_SEED)],
                          logs[k], stdout=subprocess.PIPE, env=env) for k in range(2)]
    out = {"runs": {}}
    for proc, log in zip(procs, logs):
        stdout = wait_ok(proc, log)
        part = json.loads(stdout.strip().splitlines()[-1])
        assert part["backend"] == "jax"
        out["runs"].update(part["runs"])
    assert len(out["runs"]) == sum(len(registry.list_variants(a)) for a in registry.list_models())
    for name, r in out["runs"].items():
        first, again, *other = r["runs"]
        assert r["backend"] == "jax" and first[3] == 6, name
        assert first == again, name  # same seed, same numbers and weights
        assert len(other) == (tuple(name.split(":")) in OTHER_SEED), name
        assert all(first[2] != o[2] for o in other), name  # another seed: other initial weights or order
        assert first[0] == first[0], name  # not NaN


RESUME_CODE = """
import json, sys
sys.path.insert(0, {lib!r})
from mnist_audit import devices
device = devices.configure_backend(2)
import pandas as pd
from mnist_audit.train import train_run
out = {{}}
for arch in ("jerkic", "zaccone"):  # dropout RNG state and the TF1 RMSProp state on JAX
    # 12 steps on 512 images: 3 chunks of 4 steps
    kw = dict(seed=2, budget_scale={{"jerkic": 12 / 2001, "zaccone": 12 / 400}}[arch], train_subset=512,
              eval_subset=100, device=device)
    a = train_run({data!r}, {tmp!r} + f"/{{arch}}-whole", arch, **kw)
    stopped = train_run({data!r}, {tmp!r} + f"/{{arch}}-resumed", arch, stop_after_chunks=1, **kw)
    b = train_run({data!r}, {tmp!r} + f"/{{arch}}-resumed", arch, **kw)
    cols = ["steps", "train_loss", "val_loss", "test_loss", "test_accuracy"]
    ha = pd.read_csv({tmp!r} + f"/{{arch}}-whole/history.csv")[cols].values.tolist()
    hb = pd.read_csv({tmp!r} + f"/{{arch}}-resumed/history.csv")[cols].values.tolist()
    out[arch] = {{"stopped": stopped.get("stopped_after_chunk"), "resumed_from": b["resumed_from_epoch"],
                  "chunks": a["n_chunks"], "same": [a["test_loss"], a["train_loss"]] == [b["test_loss"], b["train_loss"]],
                  "history_same": ha == hb}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_resume_is_bit_identical_on_jax(split_path, tmp_path, jax_env):
    env = jax_env
    proc = subprocess.run([sys.executable, "-c", RESUME_CODE.format(lib=str(ROOT / "workflow"),
                                                                    data=str(split_path), tmp=str(tmp_path))],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for arch, r in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        assert r["chunks"] >= 3 and r["stopped"] == 1 and r["resumed_from"] == 1, (arch, r)  # after chunk 1
        assert r["same"] and r["history_same"], arch


SPE_CODE = """
import json, sys
sys.path.insert(0, {lib!r})
from mnist_audit import devices
device = devices.configure_backend(2)
import keras
from mnist_audit.models import CUSTOM_OBJECTS
from mnist_audit.train import train_run
out = {{}}
for spe in (1, 4):  # 6 steps per epoch: calls of 4 and of 2 steps
    m = train_run({data!r}, {tmp!r} + f"/spe{{spe}}", "jerkic", seed=1, budget_scale=0.006, train_subset=700,
                  eval_subset=100, steps_per_execution=spe, device=device)
    w = keras.saving.load_model({tmp!r} + f"/spe{{spe}}/model.keras", custom_objects=CUSTOM_OBJECTS).get_weights()
    out[spe] = {{"loss": m["test_loss"], "train_loss": m["train_loss"], "steps": m["total_steps"],
                "used": m["speed"]["steps_per_execution_used"], "resident": m["speed"]["resident_data_used"],
                "weights": [x.ravel()[:50].tolist() + [float(abs(x).sum())] for x in w]}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_steps_per_execution_changes_nothing_on_jax(split_path, tmp_path, jax_env):
    env = jax_env
    proc = subprocess.run([sys.executable, "-c", SPE_CODE.format(lib=str(ROOT / "workflow"), data=str(split_path),
                                                                 tmp=str(tmp_path))],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, four = out["1"], out["4"]
    assert one["used"] == 1 and four["used"] == 4 and one["steps"] == four["steps"] == 12
    assert one["resident"] is False and four["resident"] is False  # resident data is TensorFlow's lever
    assert one["loss"] == four["loss"] and one["train_loss"] == four["train_loss"]
    assert one["weights"] == four["weights"]


@pytest.mark.slow
def test_the_workflow_runs_on_jax(tmp_path, jax_env, mnist_dir):
    """KERAS_BACKEND=jax snakemake: the tiny pipeline end to end, every run recorded as JAX."""
    from conftest import mirror_arg, snakemake_cmd

    env = {k: v for k, v in jax_env.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(tmp_path, "--config", mirror_arg(mnist_dir),
                                        "architectures=[softmax_regression, jerkic]", "seeds=[0]", cores=2),
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for arch in ("softmax_regression", "jerkic"):
        m = json.loads((tmp_path / "results" / "runs" / arch / "default" / "seed0" / "metrics.json").read_text())
        assert m["backend"] == "jax" and m["speed"]["training_loop"] == "model.fit", arch
    assert (tmp_path / "results" / "report" / "README.md").exists()
