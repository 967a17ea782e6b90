"""The run record: what one training run leaves behind, written and read here only.

A run directory holds ``metrics.json`` (the record: settings, plan, results, timing,
machine, provenance), ``history.csv`` (one row per chunk of one epoch's steps),
``confusion.csv``, ``predictions.npz`` (every validation and test image's class) and,
for a port, ``model.keras``. The port (``train``) and the authors' programs
(``originals``) write the same record through ``write_run``; the report, the
tracking and the publication read it through ``RunRecord``, which alone decides
what kind of recipe a run had ("published", "overridden", "scaled") and how it is
labelled (``label``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import statistics
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import files

HISTORY_COLUMNS = [
    "epoch",  # chunk number, 1-based: one epoch's worth of optimizer steps
    "steps",  # optimizer steps completed
    "epochs_seen",  # training images seen / training set size
    "train_seconds",  # training time of this chunk (no evaluation)
    "eval_seconds",  # evaluation time after this chunk
    "wall_seconds",  # wall-clock seconds since training started (training + evaluation)
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
]


def label(arch: str, variant: str) -> str:
    """The one spelling of a row: ``thomas``, ``cnn_tutorial:printed``."""
    return arch if variant == "default" else f"{arch}:{variant}"


def budget_flags(budget_scale: float, train_subset, eval_subset, overrides) -> dict:
    """``full_budget``: the whole budget on the whole split; ``published_recipe``: that,
    with the recipe as published (no overrides). Only such runs can be published."""
    full = budget_scale == 1.0 and not train_subset and not eval_subset
    return {"full_budget": full, "published_recipe": full and not overrides}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run's ``metrics.json``, and what every consumer asks of it."""

    metrics: Mapping
    path: Path | None = None

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """From a run directory or its ``metrics.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / "metrics.json"
        return cls(json.loads(path.read_text()), path)

    @property
    def label(self) -> str:
        return label(self.metrics["arch"], self.metrics["variant"])

    @property
    def platform(self) -> str:
        """Where it ran (``mnist_audit.platforms``): "default" for a record older than platforms."""
        return (self.metrics.get("platform") or {}).get("name", "default")

    @property
    def overridden(self) -> bool:
        return bool(self.metrics.get("overrides"))

    @property
    def full_budget(self) -> bool:
        full = self.metrics.get("full_budget")
        if full is None:  # a record older than the field
            m = self.metrics
            full = budget_flags(m["budget_scale"], m.get("train_subset"), m.get("eval_subset"), None)["full_budget"]
        return bool(full)

    @property
    def scaled(self) -> bool:
        return not self.full_budget

    @property
    def published(self) -> bool:
        return bool(self.metrics.get("published_recipe"))

    @property
    def recipe_kind(self) -> str:
        """"published", or the departures: "overridden", "scaled", "overridden, scaled"."""
        return ", ".join(k for k, on in (("overridden", self.overridden), ("scaled", self.scaled)) if on) or "published"


# --------------------------------------------------------------------- results


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = 10) -> np.ndarray:
    return np.bincount(y_true.astype(np.int64) * n + y_pred, minlength=n * n).reshape(n, n)


def timing_summary(history: list[dict], batch_size: int, steps_per_epoch: int, eval_images: int,
                   target: float | None) -> dict:
    """First epoch (tracing and compilation) apart from the steady state."""
    first = history[0]
    steps = [history[0]["steps"]] + [b["steps"] - a["steps"] for a, b in zip(history, history[1:])]
    steady = [(r["train_seconds"], s) for r, s in zip(history[1:], steps[1:])]
    if steady:
        secs, n = sum(t for t, _ in steady), sum(s for _, s in steady)
        per_step = statistics.median(t / s for t, s in steady)
    else:  # a one-epoch run has no steady state: its only epoch includes compilation
        secs, n, per_step = first["train_seconds"], steps[0], first["train_seconds"] / steps[0]
    # the author's measure is judged by the report; here the test set after each epoch
    reached = next((r for r in history if target is not None and r["test_accuracy"] >= target), None)
    eval_secs = [r["eval_seconds"] for r in history[1:]] or [first["eval_seconds"]]
    return {
        "total_train_seconds": sum(r["train_seconds"] for r in history),
        "total_eval_seconds": sum(r["eval_seconds"] for r in history),
        "wall_seconds": history[-1]["wall_seconds"],
        "first_epoch_seconds": first["train_seconds"],
        "first_epoch_overhead_seconds": max(0.0, first["train_seconds"] - per_step * steps[0]),
        "steady_epoch_seconds": per_step * steps_per_epoch,
        "steady_state_measured": bool(steady),
        "train_images_per_second": n * batch_size / secs if secs > 0 else None,
        "eval_images_per_second": eval_images / statistics.median(eval_secs) if eval_secs else None,
        "target_accuracy": target,
        "time_to_target_seconds": reached["wall_seconds"] if reached else None,
        "time_to_target_epoch": reached["epoch"] if reached else None,
        "target_reached": None if target is None else reached is not None,
    }


def results(history: list[dict], y_pred, y_test, target: float | None, batch_size: int,
            steps_per_epoch: int, eval_images: int, load: list[float]) -> dict:
    """The record's results: the last chunk's numbers (the full test set after the whole
    budget), the predicted accuracy, timing, and how busy the machine was (the median
    1-minute load average over the chunks, against the logical CPUs)."""
    last = history[-1]
    return {
        **{k: last[k] for k in ("test_accuracy", "test_loss", "val_accuracy", "val_loss",
                                "train_loss", "train_accuracy")},
        "test_accuracy_predict": float(np.mean(np.asarray(y_pred) == np.asarray(y_test))),
        "best_epoch_test_accuracy_optimistic": max(r["test_accuracy"] for r in history),
        "timing": timing_summary(history, batch_size, steps_per_epoch, eval_images, target),
        "load_average": {"median": statistics.median(load) if load else None, "max": max(load, default=None),
                         "logical_cpus": os.cpu_count()},
    }


def provenance(data_path: Path) -> dict:
    """What produced the run: code, packages, machine, data checksums."""
    from . import provenance as prov

    manifest = Path(data_path).parent / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    return {
        "git_commit": prov.git_commit(),
        "packages": prov.package_versions(),
        **prov.platform_info(),
        "data_payload_sha256": data.get("payload_sha256", {}),
        "data_split_sha256": data.get("split_sha256") or files.sha256_file(data_path),
    }


# --------------------------------------------------------------------- files


def history_table(history):
    import pandas as pd

    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def confusion_table(cm):
    import pandas as pd

    df = pd.DataFrame(cm, index=pd.Index(range(10), name="true"), columns=[f"pred_{i}" for i in range(10)])
    return df.reset_index()


def write_predictions(path: Path, val_pred, y_val, test_pred, y_test) -> None:
    """Every evaluation image's predicted class after the whole budget, and whether it is right.

    ``{val,test}_pred``: uint8 classes in the split's order; ``{val,test}_correct``: the
    same images' correctness as packed bits (``np.unpackbits(..., count=n)``), so the
    audit's per-image statistics (intervals paired over test images, McNemar) need no labels.
    About 15 KB per run.
    """
    arrays = {}
    for split, pred, true in (("val", val_pred, y_val), ("test", test_pred, y_test)):
        pred = np.asarray(pred, dtype=np.uint8)
        arrays[f"{split}_pred"] = pred
        arrays[f"{split}_correct"] = np.packbits(pred == np.asarray(true))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    files.atomic_write_bytes(path, buf.getvalue())


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """``write_predictions``'s arrays, with ``*_correct`` unpacked to booleans."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    for split in ("val", "test"):
        n = len(out[f"{split}_pred"])
        out[f"{split}_correct"] = np.unpackbits(out[f"{split}_correct"], count=n).astype(bool)
    return out


def write_run(out_dir: Path, metrics: dict, history: list[dict], y_val, val_pred, y_test, test_pred,
              system=None) -> None:
    """The run's files; ``metrics.json`` last, so its presence means the run is complete.
    ``system``: the system metrics sampled while it trained (``sysmetrics``), if any."""
    out_dir = Path(out_dir)
    if system is not None:
        from . import sysmetrics

        files.atomic_write_csv(out_dir / sysmetrics.FILE, system)
    files.atomic_write_csv(out_dir / "history.csv", history_table(history))
    files.atomic_write_csv(out_dir / "confusion.csv", confusion_table(confusion_matrix(y_test, test_pred)))
    write_predictions(out_dir / "predictions.npz", val_pred, y_val, test_pred, y_test)
    files.atomic_write_json(out_dir / "metrics.json", metrics)
