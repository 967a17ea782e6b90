"""The checkpoint of a training job: model, optimizer and dropout RNG state after each chunk.

A killed job resumes from its last completed chunk. Because the data order is a pure
function of (seed, step) and the checkpoint holds the weights, the optimizer state and
the dropout RNG state, a resumed run ends with the same numbers as an uninterrupted
one. A checkpoint from other settings (its signature differs) is discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from . import files

log = logging.getLogger(__name__)


def save_keras(model, path: Path) -> None:
    """model.save through a temporary name (Keras needs the .keras suffix) and a rename."""
    with files.replacing(path, ".keras") as tmp:
        model.save(tmp)


def signature(settings: dict) -> str:
    """A short hash of the settings a checkpoint belongs to."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _seed_generators(model):
    """(layer name, SeedGenerator) for every layer, in a stable order."""
    stack, out = list(model.layers), []
    while stack:
        layer = stack.pop(0)
        out += [(layer.name, sg) for sg in getattr(layer, "_seed_generators", [])]
        stack += list(getattr(layer, "layers", []))
    return out


def rng_state(model) -> dict:
    """Dropout RNG states. Keras 3 does not save SeedGenerator state in .keras files,
    so without this a resumed run would draw different dropout masks."""
    state = {}
    for name, sg in _seed_generators(model):
        state.setdefault(name, []).append(np.asarray(sg.state.value).tolist())
    return state


def set_rng_state(model, state: dict) -> None:
    seen: dict[str, int] = {}
    for name, sg in _seed_generators(model):
        i = seen[name] = seen.get(name, -1) + 1
        sg.state.assign(np.asarray(state[name][i], dtype=sg.state.dtype))


class Checkpoint:
    """Model + progress after the last completed chunk, in ``out_dir/checkpoint``."""

    def __init__(self, out_dir: Path, signature: str):
        self.dir = Path(out_dir) / "checkpoint"
        self.signature = signature

    def load(self, custom_objects):
        state_path = self.dir / "state.json"
        if not state_path.exists():
            return None
        state = json.loads(state_path.read_text())
        if state.get("signature") != self.signature:
            log.warning("checkpoint in %s is from different settings; starting afresh", self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            return None
        import keras

        model = keras.saving.load_model(self.dir / state["model"], custom_objects=custom_objects)
        set_rng_state(model, state["rng"])
        return model, state

    def save(self, model, chunk: int, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"model-{chunk}.keras"
        save_keras(model, self.dir / name)
        files.atomic_write_json(self.dir / "state.json",
                     {**state, "signature": self.signature, "model": name, "rng": rng_state(model)})
        for old in self.dir.glob("model-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
