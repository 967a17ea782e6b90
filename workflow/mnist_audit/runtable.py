"""The runs table: one tidy row per run, read from the run's metrics.json (and its
history.csv for the best epoch and the time to the claim's bound), and every run's
history, tagged, for the learning-curve plots. The report (``report.build_report``) and
publication read these; nothing here computes a statistic.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from . import audit as stats
from . import registry
from .config import original_of
from .portcheck import platforms
from .runs import RunRecord
from .runs import label as model_label
from .tables import order_rows, write_csv

log = logging.getLogger(__name__)

TOLERANCE = stats.TOLERANCE


def load_run(metrics_path: str | Path) -> dict:
    """One tidy row from one run's metrics.json."""
    path = Path(metrics_path)
    record = RunRecord.read(path)
    m = record.metrics
    timing = m.get("timing") or {}
    device = m.get("device") or {}
    prov = m.get("provenance") or {}
    overrides = m.get("overrides") or {}
    full, kind = record.full_budget, record.recipe_kind
    row = {
        "architecture": m["arch"], "variant": m["variant"], "model": model_label(m["arch"], m["variant"]),
        "seed": int(m["seed"]), "platform": record.platform, "baseline": bool(m.get("baseline")),
        "recipe_kind": kind, "published_recipe": bool(m.get("published_recipe")), "full_budget": bool(full),
        "overridden": bool(overrides), "overrides": json.dumps(overrides, sort_keys=True),
        "budget_scale": float(m["budget_scale"]), "train_subset": m.get("train_subset"),
        "eval_subset": m.get("eval_subset"),
        "n_train": m.get("n_train"), "n_val": m.get("n_val"), "n_test": m.get("n_test"),
        "total_steps": m.get("total_steps"), "published_steps": m.get("published_steps"),
        "steps_per_epoch": m.get("steps_per_epoch"),
        "device_kind": device.get("kind", "unknown"), "device": _device_name(device),
        "cpu_kind": device.get("cpu_kind") or ((prov.get("cpu") or {}).get("kind")) or "unknown",
        "threads": device.get("threads"),
        "load_average": (m.get("load_average") or {}).get("median"),
        "logical_cpus": (m.get("load_average") or {}).get("logical_cpus") or device.get("logical_cpus"),
        "trained_at": _trained_at(path),
        "backend": m.get("backend", "unknown"),
        "onednn_isa": ((m.get("platform") or {}).get("ran") or {}).get("onednn", {}).get("isa"),
        "initial_weights": m.get("initial_weights"),
        "test_accuracy": m["test_accuracy"], "val_accuracy": m.get("val_accuracy"),
        "test_loss": m.get("test_loss"), "val_loss": m.get("val_loss"),
        "best_epoch_test_accuracy_optimistic": m.get("best_epoch_test_accuracy_optimistic"),
    }
    row.update(_history_readings(path.parent, m))
    for key in ("total_train_seconds", "total_eval_seconds", "wall_seconds", "first_epoch_seconds",
                "first_epoch_overhead_seconds", "steady_epoch_seconds", "steady_state_measured",
                "train_images_per_second", "eval_images_per_second", "target_accuracy", "target_reached",
                "time_to_target_seconds", "time_to_target_epoch"):
        row[key] = timing.get(key)
    row.update({
        "job_seconds": m.get("job_seconds"),
        "git_commit": prov.get("git_commit", "unknown"),
        "packages": json.dumps(prov.get("packages") or {}, sort_keys=True),
        "result_id": m.get("result_id"),
        "run_dir": str(path.parent),
    })
    return row


def _trained_at(metrics_path: Path) -> str:
    """When the run finished: publication.json's record, else the metrics file's time (UTC)."""
    pub = metrics_path.parent / "publication.json"
    if pub.exists():
        return json.loads(pub.read_text()).get("trained_at") or "unknown"
    import datetime as dt

    return dt.datetime.fromtimestamp(metrics_path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _device_name(device: Mapping) -> str:
    """"AMD EPYC, 1 thread" (CPU) or the GPU's model name, from what the job recorded."""
    if device.get("kind") == "cpu" and device.get("cpu_model"):
        n = device.get("threads") or device.get("logical_cpus")
        return f"{device['cpu_model']}, {n} thread{'' if n == 1 else 's'}" if n else device["cpu_model"]
    return device.get("name", "unknown")


def _history_readings(run_dir: Path, m: Mapping) -> dict:
    """From history.csv: the best epoch on validation, and the wall-clock time until the
    author's measure first reached the claim's lower bound (the one threshold)."""
    out = {"best_epoch_val_accuracy": math.nan, "time_to_bound_seconds": math.nan,
           "time_to_bound_epoch": math.nan, "bound_reached": None}
    path = run_dir / "history.csv"
    if not path.exists():
        return out
    h = pd.read_csv(path)
    out["best_epoch_val_accuracy"] = float(h["val_accuracy"].max())
    claim = registry.get_architecture(m["arch"]).claim
    if claim.lower is None:
        return out
    hit = h[h[f"{claim.split}_accuracy"] >= claim.lower - TOLERANCE]
    out["bound_reached"] = not hit.empty
    if not hit.empty:
        out["time_to_bound_seconds"] = float(hit["wall_seconds"].iloc[0])
        out["time_to_bound_epoch"] = int(hit["epoch"].iloc[0])
    return out


def aggregate_runs(metrics_paths: Sequence[str | Path], parameters: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy table: one row per run (with params and MACs when ``parameters`` is given)."""
    runs = pd.DataFrame([load_run(p) for p in metrics_paths])
    if runs.empty:
        raise ValueError("no runs to aggregate")
    key = ["architecture", "variant", "platform", "cpu_kind", "seed"]  # one run per seed and platform
    dup = runs.duplicated(key)
    if dup.any():
        raise ValueError(f"duplicate runs ({', '.join(key)}): {runs.loc[dup, key].values.tolist()}")
    if parameters is not None:
        runs["_pv"] = [original_of(v) or v for v in runs["variant"]]  # an original counts as its port
        runs = runs.merge(parameters[["architecture", "variant", "params", "macs_per_image"]]
                          .rename(columns={"variant": "_pv"}),
                          on=["architecture", "_pv"], how="left", validate="many_to_one").drop(columns="_pv")
        missing = runs["params"].isna()
        if missing.any():
            raise ValueError(f"no parameter count for {sorted(set(runs.loc[missing, 'model']))}")
        runs["params"] = runs["params"].astype(int)
        runs["macs_per_image"] = runs["macs_per_image"].astype(int)
    return order_rows(runs, ["seed"])


def write_runs(metrics_paths: Sequence[str | Path], parameters_csv: str | Path, out: str | Path) -> pd.DataFrame:
    runs = aggregate_runs(metrics_paths, pd.read_csv(parameters_csv))
    write_csv(out, runs)
    log.info("aggregated %d runs into %s", len(runs), out)
    return runs


def load_histories(runs: pd.DataFrame, history_paths: Sequence[str | Path]) -> pd.DataFrame:
    """All runs' history.csv rows, tagged with model, seed, CPU kind and platform (matched by run folder)."""
    by_dir = {str(Path(p).parent): p for p in history_paths}
    frames = []
    for r, platform in zip(runs.itertuples(index=False), platforms(runs)):
        path = by_dir.get(str(Path(r.run_dir)))
        if path is None:
            raise ValueError(f"no history.csv for run {r.run_dir}")
        h = pd.read_csv(path)
        h.insert(0, "platform", platform)
        h.insert(0, "cpu_kind", r.cpu_kind)
        h.insert(0, "budget_scale", r.budget_scale)
        h.insert(0, "n_train", r.n_train)
        h.insert(0, "seed", r.seed)
        h.insert(0, "model", r.model)
        h.insert(0, "variant", r.variant)
        h.insert(0, "architecture", r.architecture)
        frames.append(h)
    hist = pd.concat(frames, ignore_index=True)
    hist["wall_seconds_mean"] = hist.groupby(["model", "epoch"])["wall_seconds"].transform("mean")
    return hist
