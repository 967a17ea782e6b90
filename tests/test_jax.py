"""The same model and training code on the JAX backend (the GPU machines' backend)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")

CODE = """
import json, sys
sys.path.insert(0, {lib!r})
from mnist_audit import devices
device = devices.configure_backend(2)
import keras, numpy as np
from mnist_audit import registry, models
from mnist_audit.train import train_run
out = {{"backend": keras.backend.backend(), "runs": {{}}}}
for arch in registry.list_models():
    for variant in registry.list_variants(arch):
        res = []
        # determinism twice only where the code is our own (custom optimizer, custom layers)
        for i in range(2 if (arch, variant) in (("zaccone", "default"), ("cnn_tutorial", "printed")) else 1):
            m = train_run({data!r}, {tmp!r} + f"/{{arch}}-{{variant}}-{{i}}", arch, variant, seed=3,
                          budget_scale=1e-9, train_subset=256, eval_subset=100, device=device)
            w = keras.saving.load_model({tmp!r} + f"/{{arch}}-{{variant}}-{{i}}/model.keras",
                                        custom_objects=models.CUSTOM_OBJECTS).get_weights()
            res.append((m["test_loss"], float(sum(np.abs(x).sum() for x in w))))
        out["runs"][f"{{arch}}:{{variant}}"] = {{"same": res[0] == res[-1], "twice": len(res) == 2, "loss": res[0][0],
                                                "device": m["device"]["kind"], "backend": m["backend"]}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_every_architecture_trains_deterministically_on_jax(split_path, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", CODE.format(lib=str(ROOT / "workflow"), data=str(split_path),
                                                             tmp=str(tmp_path))],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert len(out["runs"]) == sum(len(__import__("mnist_audit.registry", fromlist=["x"]).list_variants(a))
                                   for a in __import__("mnist_audit.registry", fromlist=["x"]).list_models())
    for name, r in out["runs"].items():
        assert r["backend"] == "jax" and r["same"], name  # same seed, same numbers and weights
        assert r["loss"] == r["loss"], name  # not NaN
    assert out["runs"]["zaccone:default"]["twice"] and out["runs"]["cnn_tutorial:printed"]["twice"]


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
def test_steps_per_execution_changes_nothing_on_jax(split_path, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
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
