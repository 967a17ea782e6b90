"""The report: a tidy table of runs, the claim audit, parameter and timing tables,
plots, a README, and one aggregate MLflow run.

Everything here reads what the training jobs wrote (metrics.json, history.csv) and
the registry; nothing is recomputed from a model except the parameter and MAC
accounting, which imports ``mnist_audit.models`` (and so Keras) lazily. Every file
is written atomically (temporary name beside it, then ``os.replace``).

The claim audit (one row per architecture and variant):

* the statistic is the final test accuracy of each run (after the whole budget);
* the interval is the Student-t 95% interval of the mean over seeds: it covers
  seed-to-seed training randomness on the one fixed test set, *not* the sampling
  error of the test set itself (binomial SE at 99% on 10,000 images ~ 0.1 pt);
* the verdict follows ``verdict`` below (stated in the README and the captions).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import registry
from .data import MNIST_FILES, atomic_write_bytes, atomic_write_csv, atomic_write_json

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
# Accuracies are float32 counts/n: a CI bound "exactly at" a claim's bound may differ
# from it by ~1e-7. One test image is 1e-4 (10k) or more, so 1e-6 changes no real case.
TOLERANCE = 1e-6
PUBLISHED = "published"
SCALED = "scaled budget"
OVERRIDDEN = "overridden recipe"
SCALED_BANNER = "SCALED RUN: not a reproduction of the published recipes"
OVERRIDDEN_BANNER = "OVERRIDDEN RECIPE: not a reproduction of the published recipes"

VERDICT_RULE = (
    "Verdict rule (per architecture and variant; accuracy = final full-test-set accuracy "
    "after the whole budget, one value per seed): "
    "**no claim** if the tutorial states no figure; "
    "**inconclusive (scaled budget)** / **inconclusive (overridden recipe)** if any run of the row "
    "departs from the published recipe (budget_scale != 1, a train or eval subset, or recipe "
    "overrides): such a row is never 'reproduced'; "
    "**inconclusive (n<2)** with fewer than 2 seeds; "
    "**reproduced** if the lower end of the 95% t-interval of the mean is >= the claim's lower bound; "
    "**not reproduced** if its upper end is < the claim's lower bound; "
    "**inconclusive** otherwise (the interval straddles the bound). "
    f"Bounds are compared with a tolerance of {TOLERANCE:g} (float32 rounding of accuracies)."
)
CI_NOTE = (
    "The 95% interval is the Student-t interval of the mean over seeds "
    "(mean +- t(0.975, n-1) * sd / sqrt(n), sd with ddof=1): it covers seed-to-seed training "
    "randomness on the one fixed test set, not the sampling error of the test set itself "
    "(binomial SE of one evaluation, sqrt(p(1-p)/n_test): about 0.1 pt at 99% on 10,000 images; "
    "column binomial_se_pct)."
)

PLOT_FILES = {
    "accuracy_per_seed": "Final test accuracy of every seed, with the claim and its lower bound",
    "learning_curves_epoch": "Held-out accuracy vs epochs (mean and sd band over seeds)",
    "learning_curves_wall": "Held-out accuracy vs wall-clock seconds (mean and sd band over seeds)",
    "accuracy_vs_params": "Final test accuracy vs trainable parameters (log x)",
    "accuracy_vs_time": "Final test accuracy vs training time (log x)",
}


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def model_label(arch: str, variant: str) -> str:
    """``thomas`` for the default variant, ``cnn_tutorial:printed`` otherwise."""
    return arch if variant == "default" else f"{arch}:{variant}"


def _order_key(arch: str, variant: str) -> tuple[int, int, str]:
    names = registry.list_models()
    a = names.index(arch) if arch in names else len(names)
    try:
        v = registry.list_variants(arch).index(variant)
    except (registry.RegistryError, ValueError):
        v = 99
    return a, v, variant


def _sorted(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    key = df.apply(lambda r: _order_key(r["architecture"], r["variant"]), axis=1)
    out = df.assign(_k=key).sort_values(["_k", *extra], kind="stable").drop(columns="_k")
    return out.reset_index(drop=True)


def _isnan(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


write_csv = atomic_write_csv  # one atomic CSV writer for the whole package


def _fmt(v, spec: str | None) -> str:
    if _isnan(v):
        return ""
    if spec and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return format(v, spec)
    return str(v)


def markdown_table(df: pd.DataFrame, formats: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> str:
    """A GitHub Markdown table (numbers right-aligned); no dependency on tabulate."""
    formats, headers = dict(formats or {}), dict(headers or {})

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    cols = list(df.columns)
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    lines = [
        "| " + " | ".join(cell(headers.get(c, c)) for c in cols) + " |",
        "|" + "|".join("---:" if numeric[c] else "---" for c in cols) + "|",
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(_fmt(v, formats.get(c))) for c, v in zip(cols, row)) + " |")
    return "\n".join(lines) + "\n"


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean; (nan, nan) with fewer than 2 values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    mean, se = float(x.mean()), float(x.std(ddof=1)) / math.sqrt(n)
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    return mean - q * se, mean + q * se


# ---------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------


def verdict(n: int, ci_low: float | None, ci_high: float | None, claim_lower: float | None,
            budget_status: str, tol: float = TOLERANCE) -> str:
    """The claim audit's verdict (pure). Accuracies as fractions.

    ``budget_status`` is ``"published"`` when every run of the row used the published
    recipe on the full data, else a description such as ``"scaled budget"``.
    """
    if _isnan(claim_lower):
        return "no claim"
    if budget_status != PUBLISHED:
        return f"inconclusive ({budget_status})"
    if n < 2 or _isnan(ci_low) or _isnan(ci_high):
        return "inconclusive (n<2)" if n < 2 else "inconclusive"
    if ci_low >= claim_lower - tol:
        return "reproduced"
    if ci_high < claim_lower - tol:
        return "not reproduced"
    return "inconclusive"


def budget_status(runs: pd.DataFrame) -> str:
    """"published", or which departures (overridden recipe, scaled budget) the runs have."""
    parts = []
    if runs["overridden"].astype(bool).any():
        parts.append(OVERRIDDEN)
    if (~runs["full_budget"].astype(bool)).any():
        parts.append(SCALED)
    return ", ".join(parts) or PUBLISHED


def _uniq(runs: pd.DataFrame, col: str) -> list:
    return sorted({v for v in runs[col] if not _isnan(v)})


def budget_detail(runs: pd.DataFrame) -> str:
    """Human-readable budget settings of a group of runs."""
    def uniq(col):
        return _uniq(runs, col)

    parts = []
    scales = uniq("budget_scale")
    steps, published = uniq("total_steps"), uniq("published_steps")
    steps_txt = f"{'/'.join(f'{int(s):,}' for s in steps)} of {'/'.join(f'{int(s):,}' for s in published)} steps"
    if scales != [1.0]:
        parts.append(f"budget x{'/'.join(f'{s:g}' for s in scales)} ({steps_txt})")
    else:
        parts.append(f"full budget ({steps_txt})")
    if uniq("train_subset"):
        parts.append(f"train subset {'/'.join(str(int(v)) for v in uniq('train_subset'))} images")
    if uniq("eval_subset"):
        parts.append(f"eval subset {'/'.join(str(int(v)) for v in uniq('eval_subset'))} images "
                     "(validation and test)")
    overrides = sorted({o for o in runs["overrides"] if not _isnan(o) and o not in ("{}", "")})
    if overrides:
        parts.append("overrides " + "; ".join(overrides))
    return "; ".join(parts)


def settings_summary(runs: pd.DataFrame) -> str:
    """The sweep's departures from the published budgets, in one sentence (for the banner)."""
    def uniq(col):
        return _uniq(runs, col)

    parts = []
    scales = uniq("budget_scale")
    if scales != [1.0]:
        parts.append(f"budget_scale {'/'.join(f'{s:g}' for s in scales)} (that fraction of each published "
                     "training budget)")
    if uniq("train_subset"):
        n = "/".join(str(int(v)) for v in uniq("train_subset"))
        parts.append(f"train_subset {n} (only the first {n} training images)")
    if uniq("eval_subset"):
        n = "/".join(str(int(v)) for v in uniq("eval_subset"))
        parts.append(f"eval_subset {n} (validation and test accuracy on the first {n} images only)")
    if runs["overridden"].astype(bool).any():
        parts.append("recipe overrides for " + ", ".join(sorted(set(runs.loc[runs["overridden"].astype(bool),
                                                                               "model"]))))
    return "; ".join(parts) or "the published recipes on the full data"


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------


def model_accounting(model_keys: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per-layer parameters and MACs of each (architecture, variant); builds the Keras models."""
    from . import models  # Keras: imported only here

    rows = []
    for arch, variant in dict.fromkeys(tuple(k) for k in model_keys):
        table = models.layer_table(arch, variant)
        trainable = models.param_count(arch, variant)
        total = sum(r["params"] for r in table)
        if total != trainable:
            raise ValueError(f"{arch}/{variant}: layer parameters sum to {total}, trainable {trainable}")
        for i, r in enumerate(table):
            rows.append({
                "architecture": arch, "variant": variant, "model": model_label(arch, variant),
                "index": i, "layer": r["layer"], "kind": r["kind"],
                "output_shape": "x".join(str(d) for d in r["output_shape"]),
                "params": int(r["params"]), "macs": int(r["macs"]),
            })
    return _sorted(pd.DataFrame(rows), ["index"]) if rows else pd.DataFrame(
        columns=["architecture", "variant", "model", "index", "layer", "kind", "output_shape", "params", "macs"])


def parameter_table(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, variant): trainable parameters and MACs per image (sums of the layers)."""
    out = (layers.groupby(["architecture", "variant", "model"], sort=False)
           .agg(layers_with_weights=("layer", "size"), params=("params", "sum"), macs_per_image=("macs", "sum"))
           .reset_index())
    out.insert(3, "layers", [registry.get_architecture(a).layers for a in out["architecture"]])
    out.insert(3, "baseline", ["yes" if registry.get_architecture(a).baseline else "no" for a in out["architecture"]])
    return _sorted(out)


def load_run(metrics_path: str | Path) -> dict:
    """One tidy row from one run's metrics.json."""
    path = Path(metrics_path)
    m = json.loads(path.read_text())
    timing = m.get("timing") or {}
    device = m.get("device") or {}
    prov = m.get("provenance") or {}
    overrides = m.get("overrides") or {}
    full = m.get("full_budget")
    if full is None:
        full = m["budget_scale"] == 1.0 and not m.get("train_subset") and not m.get("eval_subset")
    kind = ", ".join(k for k, on in (("overridden", bool(overrides)), ("scaled", not full)) if on) or "published"
    row = {
        "architecture": m["arch"], "variant": m["variant"], "model": model_label(m["arch"], m["variant"]),
        "seed": int(m["seed"]), "baseline": bool(m.get("baseline")),
        "recipe_kind": kind, "published_recipe": bool(m.get("published_recipe")), "full_budget": bool(full),
        "overridden": bool(overrides), "overrides": json.dumps(overrides, sort_keys=True),
        "budget_scale": float(m["budget_scale"]), "train_subset": m.get("train_subset"),
        "eval_subset": m.get("eval_subset"),
        "n_train": m.get("n_train"), "n_val": m.get("n_val"), "n_test": m.get("n_test"),
        "total_steps": m.get("total_steps"), "published_steps": m.get("published_steps"),
        "steps_per_epoch": m.get("steps_per_epoch"),
        "device_kind": device.get("kind", "unknown"), "device": device.get("name", "unknown"),
        "backend": m.get("backend", "unknown"),
        "test_accuracy": m["test_accuracy"], "val_accuracy": m.get("val_accuracy"),
        "test_loss": m.get("test_loss"), "val_loss": m.get("val_loss"),
        "best_epoch_test_accuracy_optimistic": m.get("best_epoch_test_accuracy_optimistic"),
    }
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


def aggregate_runs(metrics_paths: Sequence[str | Path], parameters: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy table: one row per run (with params and MACs when ``parameters`` is given)."""
    runs = pd.DataFrame([load_run(p) for p in metrics_paths])
    if runs.empty:
        raise ValueError("no runs to aggregate")
    dup = runs.duplicated(["architecture", "variant", "seed"])
    if dup.any():
        raise ValueError(f"duplicate runs: {runs.loc[dup, ['architecture', 'variant', 'seed']].values.tolist()}")
    if parameters is not None:
        runs = runs.merge(parameters[["architecture", "variant", "params", "macs_per_image"]],
                          on=["architecture", "variant"], how="left", validate="many_to_one")
        missing = runs["params"].isna()
        if missing.any():
            raise ValueError(f"no parameter count for {sorted(set(runs.loc[missing, 'model']))}")
        runs["params"] = runs["params"].astype(int)
        runs["macs_per_image"] = runs["macs_per_image"].astype(int)
    return _sorted(runs, ["seed"])


def read_runs(path: str | Path) -> pd.DataFrame:
    runs = pd.read_csv(path)
    for col in ("baseline", "published_recipe", "full_budget", "overridden"):
        runs[col] = runs[col].astype(bool)
    runs["overrides"] = runs["overrides"].fillna("{}").astype(str)
    return runs


def _groups(runs: pd.DataFrame):
    keys = sorted({(a, v) for a, v in zip(runs["architecture"], runs["variant"])}, key=lambda k: _order_key(*k))
    for arch, variant in keys:
        yield (arch, variant), runs[(runs["architecture"] == arch) & (runs["variant"] == variant)]


def claim_audit(runs: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (architecture, variant): seed statistics (in %), the claim and the verdict."""
    rows = []
    for (arch, variant), g in _groups(runs):
        a = registry.get_architecture(arch)
        acc = g["test_accuracy"].to_numpy(dtype=float)
        n = len(acc)
        mean = float(acc.mean())
        sd = float(acc.std(ddof=1)) if n > 1 else math.nan
        lo, hi = t_interval(acc, confidence)
        status = budget_status(g)
        n_tests = sorted({int(v) for v in g["n_test"] if not _isnan(v)})
        n_test = n_tests[0] if len(n_tests) == 1 else None
        val = g["val_accuracy"].to_numpy(dtype=float)
        rows.append({
            "architecture": arch, "variant": variant, "model": model_label(arch, variant),
            "baseline": a.baseline, "n_seeds": n, "seeds": " ".join(str(int(s)) for s in sorted(g["seed"])),
            "mean_pct": 100 * mean, "sd_pct": 100 * sd,
            "min_pct": 100 * float(acc.min()), "max_pct": 100 * float(acc.max()),
            "ci_low_pct": 100 * lo, "ci_high_pct": 100 * hi,
            "n_test": n_test if n_test is not None else "/".join(map(str, n_tests)),
            "binomial_se_pct": 100 * math.sqrt(mean * (1 - mean) / n_test) if n_test else math.nan,
            "val_mean_pct": 100 * float(np.nanmean(val)) if np.isfinite(val).any() else math.nan,
            "claim_text": a.claim.text or "(none stated)",
            "claim_pct": 100 * a.claim.value if a.claim.value is not None else math.nan,
            "claim_lower_pct": 100 * a.claim.lower if a.claim.lower is not None else math.nan,
            "claim_where": a.claim.where,
            "budget_status": status,
            "budget": budget_detail(g),
            "verdict": verdict(n, lo, hi, a.claim.lower, status),
        })
    return pd.DataFrame(rows)


def _median_or_nan(values) -> float:
    vals = [float(v) for v in values if not _isnan(v)]
    return float(np.median(vals)) if vals else math.nan


def timing_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, variant, device, backend): cost of training and time to the claimed figure."""
    rows = []
    keys = ["architecture", "variant", "model", "device_kind", "device", "backend"]
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        arch = key[0]
        claim = registry.get_architecture(arch).claim
        n = len(g)
        train = g["total_train_seconds"].astype(float)
        reached = g[g["target_reached"].astype(str).str.lower() == "true"]
        k = len(reached)
        median_ttt = _median_or_nan(reached["time_to_target_seconds"])
        if claim.value is None:
            text = "no claim"
        elif k == 0:
            text = f"not reached (0/{n} seeds)"
        else:
            text = f"{median_ttt:.1f} s ({k}/{n} seeds)"
        rows.append({
            **dict(zip(keys, key)), "n_runs": n,
            "train_seconds_mean": float(train.mean()),
            "train_seconds_sd": float(train.std(ddof=1)) if n > 1 else math.nan,
            "first_epoch_overhead_seconds": float(g["first_epoch_overhead_seconds"].astype(float).mean()),
            "steady_epoch_seconds": float(g["steady_epoch_seconds"].astype(float).mean()),
            "steady_measured": f"{int(g['steady_state_measured'].astype(str).str.lower().eq('true').sum())}/{n}",
            "train_images_per_second": float(g["train_images_per_second"].astype(float).mean()),
            "eval_images_per_second": float(g["eval_images_per_second"].astype(float).mean()),
            "wall_seconds_mean": float(g["wall_seconds"].astype(float).mean()),
            "target_pct": 100 * claim.value if claim.value is not None else math.nan,
            "seeds_reached_target": k if claim.value is not None else math.nan,
            "time_to_target_seconds_median": median_ttt,
            "time_to_target": text,
        })
    return _sorted(pd.DataFrame(rows), ["device", "backend"])


def load_histories(runs: pd.DataFrame, history_paths: Sequence[str | Path]) -> pd.DataFrame:
    """All runs' history.csv rows, tagged with model and seed (matched by run folder)."""
    by_dir = {str(Path(p).parent): p for p in history_paths}
    frames = []
    for r in runs.itertuples(index=False):
        path = by_dir.get(str(Path(r.run_dir)))
        if path is None:
            raise ValueError(f"no history.csv for run {r.run_dir}")
        h = pd.read_csv(path)
        h.insert(0, "seed", r.seed)
        h.insert(0, "model", r.model)
        h.insert(0, "variant", r.variant)
        h.insert(0, "architecture", r.architecture)
        frames.append(h)
    hist = pd.concat(frames, ignore_index=True)
    hist["wall_seconds_mean"] = hist.groupby(["model", "epoch"])["wall_seconds"].transform("mean")
    return hist


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


CLAIM_STYLE = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.4}
LOWER_STYLE = {"color": "#c0392b", "linestyle": ":", "linewidth": 1.4}


def _claim_lines(ax, arch: str, side: str = "right") -> None:
    """The claimed figure (dashed) and its lower bound (dotted), labelled at one end."""
    claim = registry.get_architecture(arch).claim
    if claim.value is None:
        return
    trans = ax.get_yaxis_transform()
    x, ha = (0.99, "right") if side == "right" else (0.01, "left")
    ax.axhline(100 * claim.value, **CLAIM_STYLE)
    ax.axhline(100 * claim.lower, **LOWER_STYLE)
    ax.text(x, 100 * claim.value, f"claim {100 * claim.value:g}%", transform=trans, ha=ha,
            va="bottom", fontsize=8, color=CLAIM_STYLE["color"])
    ax.text(x, 100 * claim.lower, f"lower bound {100 * claim.lower:g}%", transform=trans, ha=ha,
            va="top", fontsize=8, color=LOWER_STYLE["color"])


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(n / cols), cols


def _title(scaled: bool, text: str) -> str:
    return f"{text}\n[{SCALED_BANNER}]" if scaled else text


def plot_accuracy_per_seed(runs: pd.DataFrame, audit: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    plt, sns = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    nrow, ncol = _grid(len(audit))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.4 * nrow + 0.8), squeeze=False)
    for ax, a in zip(axes.flat, audit.itertuples(index=False)):
        g = runs[runs["model"] == a.model].assign(acc=lambda d: 100 * d["test_accuracy"])
        sns.scatterplot(data=g, x="seed", y="acc", ax=ax, s=60, color="#2c7fb8", zorder=3, legend=False)
        lo_x, hi_x = g["seed"].min() - 0.5, g["seed"].max() + 0.5
        ax.hlines(a.mean_pct, lo_x, hi_x, color="black", linewidth=1.2)
        if not _isnan(a.ci_low_pct):
            ax.fill_between([lo_x, hi_x], a.ci_low_pct, a.ci_high_pct, color="grey", alpha=0.25, linewidth=0)
        _claim_lines(ax, a.architecture)
        ax.set_xlim(lo_x, hi_x)
        ax.set_xticks(sorted(g["seed"].unique()))
        ax.set_title(f"{a.model}\n{a.verdict}", fontsize=10)
        ax.set_xlabel("seed")
        ax.set_ylabel("final test accuracy (%)")
    for ax in list(axes.flat)[len(audit):]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], marker="o", color="#2c7fb8", linestyle="", label="one run (seed)"),
        Line2D([], [], color="black", label="mean over seeds"),
        Patch(color="grey", alpha=0.25, label="95% t-interval of the mean"),
        Line2D([], [], **CLAIM_STYLE, label="claimed figure"),
        Line2D([], [], **LOWER_STYLE, label="claim's lower bound"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(_title(scaled, "Final test accuracy per seed, with each tutorial's claim"))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def plot_learning_curves(hist: pd.DataFrame, path: str | Path, x: str, scaled: bool) -> None:
    """Held-out accuracy vs ``x`` ("epochs_seen" or "wall_seconds_mean"), one facet per model."""
    plt, sns = _pyplot()
    long = hist.melt(id_vars=["architecture", "model", "seed", "epoch", x],
                     value_vars=["test_accuracy", "val_accuracy"], var_name="split", value_name="accuracy")
    long["split"] = long["split"].map({"test_accuracy": "test", "val_accuracy": "validation"})
    long["accuracy (%)"] = 100 * long["accuracy"]
    models = list(dict.fromkeys(hist["model"]))
    nrow, ncol = _grid(len(models))
    g = sns.relplot(data=long, kind="line", x=x, y="accuracy (%)", hue="split", hue_order=["test", "validation"],
                    col="model", col_order=models, col_wrap=ncol if len(models) > 1 else None,
                    errorbar="sd", marker="o", markersize=5, height=3.2, aspect=1.25,
                    facet_kws={"sharex": False, "sharey": False})
    g.legend.set_title("held-out set")
    arch_of = dict(zip(hist["model"], hist["architecture"]))
    for name, ax in g.axes_dict.items():
        _claim_lines(ax, arch_of[name], side="left")  # curves rise to the right
    if x == "epochs_seen":
        short, long_label, what = "epochs", "epochs = passes over the training images", "epochs"
    else:
        short, long_label, what = ("wall-clock s", "wall-clock seconds since training start (training + per-epoch "
                                   "evaluation), each epoch at its mean over seeds", "wall-clock time")
    g.set_axis_labels(short, "held-out accuracy (%)")
    g.set_titles("{col_name}")
    g.figure.supxlabel(long_label, y=-0.02, fontsize=10)
    g.figure.suptitle(_title(scaled, f"Learning curves vs {what}: mean over seeds, band = +-1 sd"),
                      y=1.01, va="bottom")
    _save(g.figure, path)


def plot_accuracy_vs(runs: pd.DataFrame, path: str | Path, x: str, xlabel: str, title: str,
                     scaled: bool) -> None:
    plt, sns = _pyplot()
    d = runs.assign(acc=100 * runs["test_accuracy"])
    fig, ax = plt.subplots(figsize=(8, 5))
    sns.scatterplot(data=d, x=x, y="acc", hue="model", style="device_kind", s=70, ax=ax)
    means = d.groupby("model", sort=False)[[x, "acc"]].mean()
    for name, r in means.iterrows():
        ax.annotate(name, (r[x], r["acc"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    lo, hi = float(d[x].min()), float(d[x].max())
    if lo > 0 and hi / lo < 30:  # less than ~1.5 decades: label the ticks plainly (1.2, not 1.2x10^0)
        from matplotlib.ticker import FuncFormatter

        plain = FuncFormatter(lambda v, _: f"{v:,.3g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(_title(scaled, title))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    _save(fig, path)


def make_plots(runs: pd.DataFrame, audit: pd.DataFrame, hist: pd.DataFrame, outputs: Mapping[str, str],
               scaled: bool) -> None:
    plot_accuracy_per_seed(runs, audit, outputs["accuracy_per_seed"], scaled)
    plot_learning_curves(hist, outputs["learning_curves_epoch"], "epochs_seen", scaled)
    plot_learning_curves(hist, outputs["learning_curves_wall"], "wall_seconds_mean", scaled)
    plot_accuracy_vs(runs, outputs["accuracy_vs_params"], "params", "trainable parameters (log scale)",
                     "Final test accuracy vs model size", scaled)
    plot_accuracy_vs(runs, outputs["accuracy_vs_time"], "total_train_seconds",
                     "training time per run (seconds, log scale; excludes evaluation)",
                     "Final test accuracy vs training time", scaled)


# ---------------------------------------------------------------------------
# Markdown tables and the README
# ---------------------------------------------------------------------------

AUDIT_MD = {
    "columns": ["model", "n_seeds", "mean_pct", "sd_pct", "min_pct", "max_pct", "ci_low_pct", "ci_high_pct",
                "binomial_se_pct", "n_test", "claim_text", "claim_pct", "claim_lower_pct", "claim_where",
                "budget_status", "verdict"],
    "formats": {"mean_pct": ".2f", "sd_pct": ".3f", "min_pct": ".2f", "max_pct": ".2f", "ci_low_pct": ".2f",
                "ci_high_pct": ".2f", "binomial_se_pct": ".2f", "claim_pct": "g", "claim_lower_pct": "g"},
    "headers": {"model": "architecture", "n_seeds": "n", "mean_pct": "mean %", "sd_pct": "sd (pt)",
                "min_pct": "min %", "max_pct": "max %", "ci_low_pct": "95% CI low", "ci_high_pct": "95% CI high",
                "binomial_se_pct": "binomial SE (pt)", "n_test": "test images", "claim_text": "claim (author's words)",
                "claim_pct": "claim %",
                "claim_lower_pct": "claim lower %", "claim_where": "original measured on",
                "budget_status": "budget", "verdict": "verdict"},
}
PARAM_MD = {
    "columns": ["model", "baseline", "layers", "layers_with_weights", "params", "macs_per_image"],
    "formats": {"params": ",d", "macs_per_image": ",d"},
    "headers": {"model": "architecture", "layers_with_weights": "layers with weights",
                "params": "trainable params", "macs_per_image": "MACs / image"},
}
LAYER_MD = {
    "columns": ["model", "layer", "kind", "output_shape", "params", "macs"],
    "formats": {"params": ",d", "macs": ",d"},
    "headers": {"model": "architecture", "output_shape": "output shape", "macs": "MACs / image"},
}
TIMING_MD = {
    "columns": ["model", "device", "backend", "n_runs", "train_seconds_mean", "train_seconds_sd",
                "first_epoch_overhead_seconds", "steady_epoch_seconds", "steady_measured", "train_images_per_second",
                "eval_images_per_second", "time_to_target"],
    "formats": {"train_seconds_mean": ",.1f", "train_seconds_sd": ",.1f", "first_epoch_overhead_seconds": ".2f",
                "steady_epoch_seconds": ",.2f", "train_images_per_second": ",.0f",
                "eval_images_per_second": ",.0f"},
    "headers": {"model": "architecture", "n_runs": "runs", "train_seconds_mean": "train s (mean)",
                "train_seconds_sd": "train s (sd)", "first_epoch_overhead_seconds": "1st-epoch overhead s",
                "steady_epoch_seconds": "steady s / epoch", "steady_measured": "steady measured",
                "train_images_per_second": "train img/s",
                "eval_images_per_second": "eval img/s", "time_to_target": "time to claimed figure (median)"},
}


def _md(df: pd.DataFrame, spec: Mapping) -> str:
    return markdown_table(df[spec["columns"]], spec["formats"], spec["headers"])


def _rel(path: str | Path, start: str | Path) -> str:
    return Path(os.path.relpath(Path(path), Path(start))).as_posix()


def provenance_sections(runs: pd.DataFrame, manifest: Mapping | None) -> list[str]:
    out = ["## Provenance", ""]
    commits = runs["git_commit"].fillna("unknown").value_counts()
    out.append("**Code (git commit of the training jobs):** " + ", ".join(
        f"`{c}` ({k} run{'s' if k > 1 else ''})" for c, k in commits.items()))
    if any(str(c).endswith("-dirty") for c in commits.index):
        out.append("")
        out.append("> Some runs were trained from a checkout with uncommitted changes (`-dirty`).")
    out += ["", "**Devices:**", ""]
    dev = runs.groupby(["device_kind", "device", "backend"], sort=False).size().reset_index(name="runs")
    out.append(markdown_table(dev, headers={"device_kind": "kind"}))
    versions: dict[str, set] = {}
    for text in runs["packages"].dropna():
        for k, v in json.loads(text).items():
            versions.setdefault(k, set()).add(v)
    if versions:
        pk = pd.DataFrame([{"package": k, "version": ", ".join(sorted(v))} for k, v in sorted(versions.items())])
        out += ["**Package versions (as recorded by the training jobs):**", "", markdown_table(pk)]
    if manifest:
        rows = []
        for name, digest in sorted((manifest.get("payload_sha256") or {}).items()):
            src = (manifest.get("sources") or {}).get(name, {})
            spec = MNIST_FILES.get(name)
            rows.append({"file": name, "payload SHA-256": digest,
                         "matches SPEC": "yes" if spec and spec.payload_sha256 == digest else "NO",
                         "canonical archive": {True: "yes", False: "no"}.get(src.get("archive_canonical"), ""),
                         "mirror": src.get("mirror", "")})
        out += ["**Data (MNIST; integrity = SHA-256 of each decompressed IDX payload):**", "",
                markdown_table(pd.DataFrame(rows))]
        counts = manifest.get("counts") or {}
        out.append(f"Split: {manifest.get('split', '')}; counts {json.dumps(counts)}; "
                   f"split file SHA-256 `{manifest.get('split_sha256', '')}`.")
        out.append("")
    return out


def budget_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (arch, variant), g in _groups(runs):
        r = registry.resolve_recipe(arch, variant)
        rows.append({
            "architecture": model_label(arch, variant),
            "published recipe": (f"{r.optimizer} lr {r.learning_rate:g}, batch {r.batch_size}, "
                                 f"{r.budget:,} {r.budget_unit}"),
            "seeds": " ".join(str(int(s)) for s in sorted(g["seed"])),
            "recipe kind": ", ".join(sorted(set(g["recipe_kind"]))),
            "budget as run": budget_detail(g),
            "train images": "/".join(str(int(v)) for v in sorted(set(g["n_train"]))),
            "test images": "/".join(str(int(v)) for v in sorted(set(g["n_test"]))),
        })
    return pd.DataFrame(rows)


def fidelity_sections(runs: pd.DataFrame) -> list[str]:
    out = ["## Fidelity notes per architecture", "",
           "What each port does differently from the author's code, and where the original measured "
           "its claim (from the registry, `workflow/mnist_audit/registry.py`).", ""]
    archs = sorted(set(runs["architecture"]), key=lambda a: _order_key(a, "default"))
    for name in archs:
        a = registry.get_architecture(name)
        variants = sorted(set(runs.loc[runs["architecture"] == name, "variant"]), key=lambda v: _order_key(name, v))
        out.append(f"### {name}{' (baseline)' if a.baseline else ''}: {a.title}")
        out.append("")
        out.append(f"- Author: {a.author}; seed file `{a.seed_file}`.")
        out.append(f"- Layers: {a.layers}.")
        claim = f"\"{a.claim.text}\" (value {100 * a.claim.value:g}%, lower bound {100 * a.claim.lower:g}%)" \
            if a.claim.value is not None else "none stated"
        out.append(f"- Claim: {claim}; the original measured on: {a.claim.where}.")
        for v in variants:
            out.append(f"- Variant run: `{v}`: {a.variants.get(v, '?')}.")
        out.append("- Fidelity decisions:")
        out += [f"  - {line}" for line in a.fidelity]
        out.append("")
    return out


def readme(runs: pd.DataFrame, audit: pd.DataFrame, params: pd.DataFrame, timing: pd.DataFrame,
           manifest: Mapping | None, outputs: Mapping[str, str]) -> str:
    base = Path(outputs["readme"]).parent
    scaled = bool((~runs["full_budget"]).any())
    overridden = bool(runs["overridden"].any())
    lines = ["# MNIST tutorial audit: report", ""]
    if scaled:
        lines += [f"> **⚠️ {SCALED_BANNER}.** Settings: {settings_summary(runs)}. "
                  "No claim can be reproduced or refuted from these numbers; they exercise the pipeline only.",
                  ""]
    if overridden:
        lines += [f"> **⚠️ {OVERRIDDEN_BANNER}.** Some runs changed the published recipe "
                  "(see the budget table); those rows are never 'reproduced'.", ""]
    lines += [
        f"{len(runs)} training runs: {len(audit)} architecture/variant rows, seeds "
        f"{' '.join(str(s) for s in sorted(set(runs['seed'])))}. "
        "Primary number: accuracy on the test set (all 10,000 images unless eval_subset is set) after the "
        "whole budget "
        "(best-epoch test accuracy selects on the test set and is optimistic; it is only in runs.csv, "
        "labelled so).",
        "",
        "## Claim audit",
        "",
        _md(audit, AUDIT_MD),
        VERDICT_RULE,
        "",
        CI_NOTE,
        "",
        f"Tables: [claim_audit.csv]({_rel(outputs['claim_audit_csv'], base)}), "
        f"[runs.csv]({_rel(outputs['runs'], base)}) (one row per run).",
        "",
        "## Plots",
        "",
    ]
    for key, caption in PLOT_FILES.items():
        rel = _rel(outputs[key], base)
        lines += [f"- [{caption}]({rel})"]
    lines += ["", f"![accuracy per seed]({_rel(outputs['accuracy_per_seed'], base)})", ""]
    lines += [
        "## Parameters", "",
        "Trainable parameters and multiply-accumulates of one forward pass of one 28x28 image "
        "(conv: H_out*W_out*k*k*C_in*C_out; dense: inputs*units; built from the Keras models).", "",
        _md(params, PARAM_MD),
        f"Per layer: [layers.md]({_rel(outputs['layers_md'], base)}).", "",
        "## Timing", "",
        "Means over the runs of each architecture on each device. Train seconds = sum of the epochs' "
        "training time (no evaluation); first-epoch overhead = first epoch minus its steps at the steady "
        "per-step time (tracing and compilation); steady s/epoch = median steady per-step time x steps "
        "per epoch; images/s over steady epochs; time to the claimed figure = wall-clock seconds until "
        "the first epoch whose test accuracy reached the claimed value, median over the seeds that "
        "reached it.", "",
        _md(timing, TIMING_MD),
        "## Budget settings", "",
        markdown_table(budget_table(runs)),
    ]
    lines += fidelity_sections(runs)
    lines += provenance_sections(runs, manifest)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------
# Entry points (one per Snakemake rule)
# ---------------------------------------------------------------------------


def write_model_accounting(model_keys: Sequence[Sequence[str]], outputs: Mapping[str, str]) -> pd.DataFrame:
    """Parameter and per-layer tables (CSV and Markdown)."""
    layers = model_accounting(model_keys)
    params = parameter_table(layers)
    write_csv(outputs["parameters_csv"], params)
    write_text(outputs["parameters_md"], _md(params, PARAM_MD))
    write_csv(outputs["layers_csv"], layers)
    write_text(outputs["layers_md"], _md(layers, LAYER_MD))
    return params


def write_runs(metrics_paths: Sequence[str | Path], parameters_csv: str | Path, out: str | Path) -> pd.DataFrame:
    runs = aggregate_runs(metrics_paths, pd.read_csv(parameters_csv))
    write_csv(out, runs)
    log.info("aggregated %d runs into %s", len(runs), out)
    return runs


def build_report(inputs: Mapping, outputs: Mapping[str, str]) -> dict:
    """Claim audit and timing tables, plots and README.

    ``inputs``: runs (runs.csv), parameters (parameters.csv), layers_md (linked from the
    README), histories (every run's history.csv), manifest (optional). ``outputs``: the
    paths named in report.smk's report_tables_plots rule.
    """
    runs = read_runs(inputs["runs"])
    params = pd.read_csv(inputs["parameters"])
    manifest = json.loads(Path(inputs["manifest"]).read_text()) if inputs.get("manifest") else None
    audit = claim_audit(runs)
    timing = timing_table(runs)
    hist = load_histories(runs, inputs["histories"])
    scaled = bool((~runs["full_budget"]).any())
    write_csv(outputs["claim_audit_csv"], audit)
    write_text(outputs["claim_audit_md"], _md(audit, AUDIT_MD) + "\n" + VERDICT_RULE + "\n\n" + CI_NOTE + "\n")
    write_csv(outputs["timing_csv"], timing)
    write_text(outputs["timing_md"], _md(timing, TIMING_MD))
    make_plots(runs, audit, hist, outputs, scaled)
    links = {**outputs, "runs": str(inputs["runs"]), "layers_md": str(inputs["layers_md"])}
    write_text(outputs["readme"], readme(runs, audit, params, timing, manifest, links))
    log.info("report: %d runs, %d audit rows, scaled=%s", len(runs), len(audit), scaled)
    return {"audit": audit, "timing": timing, "scaled": scaled}


def _metric_key(arch: str, variant: str) -> str:
    return arch if variant == "default" else f"{arch}.{variant}"


def log_report(sweep: Mapping, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
               runs_csv: str | Path, run_markers: Sequence[str | Path] = (), attempts: int = 3) -> dict:
    """Log the report as ONE MLflow run, a child of the sweep's parent run.

    ``artifacts`` maps an artifact folder ("" for the root) to local files. An earlier
    report run of the same sweep (stale, or half-logged by a failed attempt) is deleted.
    """
    from . import tracking

    tracking._fast_fail_http()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    tag = tracking.TAG
    audit = pd.read_csv(audit_csv)
    runs = read_runs(runs_csv)
    markers = [json.loads(Path(p).read_text()) for p in run_markers]
    uri, exp, sweep_id, parent = (sweep["tracking_uri"], sweep["experiment_id"], sweep["sweep_id"],
                                  sweep["parent_run_id"])
    scaled = bool((~runs["full_budget"]).any())
    # The run's description in the MLflow UI: the banner and the audit table (tag values are capped).
    note_text = ((f"**{SCALED_BANNER}.**\n\n" if scaled else "") + _md(audit, AUDIT_MD))[:7000]

    def go():
        client = MlflowClient(tracking_uri=uri)
        old = client.search_runs(
            [exp], filter_string=f"tags.`{tag}.kind` = 'report' and tags.`{tag}.sweep` = '{sweep_id}'")
        for r in old:
            log.info("deleting the earlier report run %s of sweep %s", r.info.run_id, sweep_id)
            client.delete_run(r.info.run_id)
        run = client.create_run(exp, run_name=f"report {sweep_id}", tags={
            "mlflow.parentRunId": parent, f"{tag}.kind": "report", f"{tag}.sweep": sweep_id,
            f"{tag}.sweep_run": parent, "scaled": str(scaled).lower(),
            "mlflow.note.content": note_text,
        })
        rid = run.info.run_id
        params = [Param("n_runs", str(len(runs))), Param("confidence", str(CONFIDENCE)),
                  Param("seeds", " ".join(str(s) for s in sorted(set(runs["seed"])))),
                  Param("budget_scale", "/".join(f"{s:g}" for s in sorted(set(runs["budget_scale"]))))]
        now = int(time.time() * 1000)
        metrics, tags = [], [RunTag("git_commit", ", ".join(sorted(set(runs["git_commit"].astype(str)))))]
        for a in audit.itertuples(index=False):
            key = _metric_key(a.architecture, a.variant)
            for name, value in (("mean_test_accuracy", a.mean_pct), ("sd_test_accuracy", a.sd_pct),
                                ("ci_low_test_accuracy", a.ci_low_pct), ("ci_high_test_accuracy", a.ci_high_pct)):
                if not _isnan(value):
                    metrics.append(Metric(f"{name}.{key}", float(value) / 100, now, 0))
            metrics.append(Metric(f"n_seeds.{key}", float(a.n_seeds), now, 0))
            tags.append(RunTag(f"verdict.{key}", str(a.verdict)))
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        n = 0
        for folder, paths in artifacts.items():
            for p in paths:
                client.log_artifact(rid, str(p), folder or None)
                n += 1
        client.log_dict(rid, {"training_runs": markers}, "training_runs.json")
        client.set_terminated(rid, "FINISHED")
        return {"run_id": rid, "artifacts": n + 1}

    result = tracking.with_retries(go, "log_report", uri, attempts)
    return {**result, "experiment_id": exp, "parent_run_id": parent, "sweep_id": sweep_id, "tracking_uri": uri}


def write_log_report(sweep_path: str | Path, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
                     runs_csv: str | Path, run_markers: Sequence[str | Path], out: str | Path,
                     attempts: int = 3) -> dict:
    sweep = json.loads(Path(sweep_path).read_text())
    result = log_report(sweep, artifacts, audit_csv, runs_csv, run_markers, attempts)
    atomic_write_json(Path(out), result)
    return result
