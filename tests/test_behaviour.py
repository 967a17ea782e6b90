"""Behaviour is preserved bit for bit: a tiny run of every architecture and variant
hashes (metrics, history, weights, predictions; never timings) to the values recorded
before the package's redesign. Exact equality holds per CPU kind, so the comparison
runs where this machine's kind was recorded and says so elsewhere.

To record a new CPU kind (after checking the numbers are otherwise right):
``python tests/fingerprint.py --split results/data/mnist/mnist.npz --record``. A case
added to the registry after a kind was recorded is compared where it is recorded (every
case must be recorded on at least one kind); recording again there adds it.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_mnist, start_logged, wait_ok

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import fingerprint  # noqa: E402


def test_fingerprint_sees_behaviour_and_ignores_timings(split_path, tmp_path):
    """A timing column may change; one weight or one prediction may not."""
    import keras
    import numpy as np

    from mnist_audit import models
    from mnist_audit.train import train_run

    run = tmp_path / "run"
    train_run(split_path, run, "softmax_regression", seed=0, **fingerprint.SETTINGS)
    first = fingerprint.fingerprint(run)

    hist = run / "history.csv"
    rows = list(csv.DictReader(hist.open()))
    for r in rows:
        r["train_seconds"] = "12345"
    with hist.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert fingerprint.fingerprint(run) == first, "a timing changed the fingerprint"

    original = dict(np.load(run / "predictions.npz"))
    changed = dict(original, test_pred=original["test_pred"].copy())
    changed["test_pred"][0] = (changed["test_pred"][0] + 1) % 10
    np.savez(run / "predictions.npz", **changed)
    assert fingerprint.fingerprint(run) != first, "a changed prediction left the fingerprint alone"
    np.savez(run / "predictions.npz", **original)
    assert fingerprint.fingerprint(run) == first
    model = keras.models.load_model(run / "model.keras", custom_objects=models.CUSTOM_OBJECTS, compile=False)
    w = model.get_weights()
    w[0] = w[0] + np.float32(1e-7)
    model.set_weights(w)
    model.save(run / "model.keras")
    assert fingerprint.fingerprint(run) != first, "a weight 1e-7 away left the fingerprint alone"


@pytest.mark.slow
@needs_mnist
def test_tiny_runs_match_the_recorded_fingerprints(split_path, tmp_path):
    from mnist_audit.devices import cpu_info

    recorded = json.loads(fingerprint.RECORDED.read_text())
    here = cpu_info()["kind"]
    if here not in recorded:
        pytest.skip(f"fingerprints recorded on {', '.join(recorded)}; this machine is {here}: "
                    "exact equality holds per CPU kind only")
    assert recorded[here]["settings"] == fingerprint.SETTINGS, "the fingerprint settings changed: record again"
    # two one-thread processes side by side, each training every other case from scratch
    logs = [tmp_path / f"part{k}.log" for k in range(2)]
    procs = [start_logged([sys.executable, str(ROOT / "tests" / "fingerprint.py"), "--split", str(split_path),
                           "--part", f"{k}/2"], logs[k], stdout=subprocess.PIPE, cwd=ROOT) for k in range(2)]
    now = {}
    for proc, log in zip(procs, logs):
        out = wait_ok(proc, log)
        now.update(json.loads(out)[here])
    want = recorded[here]["hashes"]
    assert set(want) <= set(now), f"recorded cases gone: {sorted(set(want) - set(now))}"
    # a registry entry added after this kind was recorded: it must be recorded on some kind
    anywhere = {case for kind in recorded.values() for case in kind["hashes"]}
    unrecorded = sorted(set(now) - anywhere)
    assert not unrecorded, f"cases with no fingerprint on any CPU kind: {unrecorded}; record them " \
                           "(python tests/fingerprint.py --split ... --record)"
    changed = sorted(k for k in want if now[k] != want[k])
    assert not changed, f"behaviour changed on {here} for: {', '.join(changed)}"
