"""Behaviour fingerprints: what a tiny training run of every architecture and variant produces.

One SHA-256 per run over its numbers, never its timings: the metrics (losses,
accuracies, counts, plan), the history's per-epoch losses and accuracies, the trained
weights and the per-image predictions. A refactor that preserves behaviour leaves
every hash unchanged on the same CPU kind (oneDNN picks other kernels on another kind,
so the hashes are recorded per kind, like the published runs).

    python tests/fingerprint.py --split results/data/mnist.npz            # print this machine's hashes
    python tests/fingerprint.py --split results/data/mnist.npz --record   # store them for this CPU kind

``tests/test_behaviour.py`` recomputes them and compares with the stored ones.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

RECORDED = ROOT / "tests" / "data" / "behaviour-fingerprints.json"
# small enough for CI (a few seconds a run), large enough that every layer, optimizer
# step, dropout mask and evaluation path runs: 10 to 275 steps per architecture
SETTINGS = {"budget_scale": 0.005, "train_subset": 500, "eval_subset": 500}
# what a run records about its timing, machine and identity: not behaviour
_NOT_BEHAVIOUR = ("seconds", "timing", "load_average", "result_id", "provenance", "config", "device", "speed")


def cases() -> list[tuple[str, str]]:
    """Every architecture and variant of the registry (the originals are another program)."""
    from mnist_audit import registry

    return [(a, v) for a in registry.list_models() for v in registry.list_variants(a)]


def _digest(h: "hashlib._Hash", value) -> None:
    h.update(json.dumps(value, sort_keys=True, default=str).encode())


def fingerprint(run_dir: Path) -> str:
    """The hash of one finished run's behaviour (see the module's docstring)."""
    import keras
    import numpy as np

    from mnist_audit import models

    h = hashlib.sha256()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _digest(h, {k: v for k, v in metrics.items() if not any(s in k for s in _NOT_BEHAVIOUR)})
    with open(run_dir / "history.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(f)]
    _digest(h, rows)
    model = keras.models.load_model(run_dir / "model.keras", custom_objects=models.CUSTOM_OBJECTS, compile=False)
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    with np.load(run_dir / "predictions.npz") as p:
        for name in sorted(p.files):
            h.update(name.encode() + np.ascontiguousarray(p[name]).tobytes())
    return h.hexdigest()


def compute(split: Path, seed: int = 0, device: dict | None = None, part: tuple[int, int] = (0, 1)) -> dict[str, str]:
    """Train every case with SETTINGS (one thread, in this process) and hash each run;
    ``part`` (k, n): only every n-th case from the k-th, for n processes side by side."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from mnist_audit.train import train_run

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch, variant in cases()[part[0]::part[1]]:
            run_dir = Path(tmp) / arch / variant
            train_run(split, run_dir, arch, variant, seed=seed, device=device, **SETTINGS)
            out[f"{arch}:{variant}"] = fingerprint(run_dir)
    return out


def main(argv=None) -> int:
    from mnist_audit.devices import cpu_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", type=Path, required=True, help="a prepared split (results/data/mnist.npz)")
    p.add_argument("--record", action="store_true", help=f"store the hashes for this CPU kind in {RECORDED.name}")
    p.add_argument("--part", default="0/1", help="K/N: only every N-th case from the K-th (default: all)")
    args = p.parse_args(argv)
    part = tuple(int(v) for v in args.part.split("/"))
    if args.record and part != (0, 1):
        p.error("--record needs every case (no --part)")
    from mnist_audit.devices import configure_backend

    device = configure_backend(1)
    kind = cpu_info()["kind"]
    hashes = compute(args.split, device=device, part=part)
    print(json.dumps({kind: hashes}, indent=2))
    if args.record:
        stored = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
        stored[kind] = {"settings": SETTINGS, "hashes": hashes}
        from mnist_audit.files import atomic_write_json

        atomic_write_json(RECORDED, stored)
    return 0


if __name__ == "__main__":
    sys.exit(main())
