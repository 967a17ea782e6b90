"""What the report's modules share: row labels and the registry's row order, the runs
table's reader, the recipe status of a group of runs (and its banners), the Markdown
tables (pandas ``DataFrame.to_markdown``) and the column formats of the main tables.

Nothing here imports the report, the plots or MLflow, so every other report module
(and ``tracking``) can import it without a cycle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import registry
from .files import atomic_write_bytes, atomic_write_csv

PUBLISHED = "published"
SCALED = "scaled budget"
OVERRIDDEN = "overridden recipe"
SCALED_BANNER = "SCALED RUN: not a reproduction of the published recipes"
OVERRIDDEN_BANNER = "OVERRIDDEN RECIPE: not a reproduction of the published recipes"


# ---------------------------------------------------------------------------
# Labels, order, small values
# ---------------------------------------------------------------------------


def _variant_rank(arch: str, variant: str) -> int:
    try:
        return registry.list_variants(arch).index(variant)
    except (registry.RegistryError, ValueError):
        return 99  # an original or an unknown variant: after the registry's variants


def order_rows(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` in the registry's order: architectures as an ordered Categorical of
    ``registry.list_models()`` (unknown ones last), then the architecture's variants in
    registry order, then the variant's name, then ``extra``; a fresh index."""
    if df.empty:
        return df.reset_index(drop=True)
    arch = pd.Categorical(df["architecture"], categories=registry.list_models(), ordered=True)
    rank = [_variant_rank(a, v) for a, v in zip(df["architecture"], df["variant"])]
    keys = ["_arch", "_rank", "variant", *extra]
    out = df.assign(_arch=arch, _rank=rank).sort_values(keys, kind="stable", na_position="last")
    return out.drop(columns=["_arch", "_rank"]).reset_index(drop=True)


def groups(runs: pd.DataFrame):
    """((architecture, variant), its runs) in the registry's order."""
    keys = order_rows(runs[["architecture", "variant"]].drop_duplicates())
    for arch, variant in zip(keys["architecture"], keys["variant"]):
        yield (arch, variant), runs[(runs["architecture"] == arch) & (runs["variant"] == variant)]


def isnan(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def pct(v) -> float:
    return math.nan if isnan(v) else 100 * float(v)


def uniq(runs: pd.DataFrame, col: str) -> list:
    return sorted({v for v in runs[col] if not isnan(v)})


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def date_span(dates: Sequence[str], none: str = "unknown") -> str:
    """Sorted dates as "2026-11-30 to 2026-12-01", one date when all fall on the same day."""
    if not dates:
        return none
    return dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"


def write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


write_csv = atomic_write_csv  # one atomic CSV writer for the whole package


def rel(path: str | Path, start: str | Path) -> str:
    return Path(os.path.relpath(Path(path), Path(start))).as_posix()


def read_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv (one row per run) with its flags as booleans."""
    runs = pd.read_csv(path)
    for col in ("baseline", "published_recipe", "full_budget", "overridden"):
        runs[col] = runs[col].astype(bool)
    runs["overrides"] = runs["overrides"].fillna("{}").astype(str)
    return runs


# ---------------------------------------------------------------------------
# The recipe status of a group of runs
# ---------------------------------------------------------------------------


def is_scaled(runs: pd.DataFrame) -> bool:
    """Whether any run has a scaled budget or a subset (the report's one "scaled" flag)."""
    return bool((~runs["full_budget"].astype(bool)).any())


def budget_status(runs: pd.DataFrame) -> str:
    """"published", or which departures (overridden recipe, scaled budget) the runs have."""
    parts = []
    if runs["overridden"].astype(bool).any():
        parts.append(OVERRIDDEN)
    if is_scaled(runs):
        parts.append(SCALED)
    return ", ".join(parts) or PUBLISHED


def budget_detail(runs: pd.DataFrame) -> str:
    """Human-readable budget settings of a group of runs."""
    parts = []
    scales = uniq(runs, "budget_scale")
    steps, published = uniq(runs, "total_steps"), uniq(runs, "published_steps")
    steps_txt = f"{'/'.join(f'{int(s):,}' for s in steps)} of {'/'.join(f'{int(s):,}' for s in published)} steps"
    if scales != [1.0]:
        parts.append(f"budget x{'/'.join(f'{s:g}' for s in scales)} ({steps_txt})")
    else:
        parts.append(f"full budget ({steps_txt})")
    if uniq(runs, "train_subset"):
        parts.append(f"train subset {'/'.join(str(int(v)) for v in uniq(runs, 'train_subset'))} images")
    if uniq(runs, "eval_subset"):
        parts.append(f"eval subset {'/'.join(str(int(v)) for v in uniq(runs, 'eval_subset'))} images "
                     "(validation and test)")
    overrides = sorted({o for o in runs["overrides"] if not isnan(o) and o not in ("{}", "")})
    if overrides:
        parts.append("overrides " + "; ".join(overrides))
    return "; ".join(parts)


def settings_summary(runs: pd.DataFrame) -> str:
    """The sweep's departures from the published budgets, in one sentence (for the banner)."""
    parts = []
    scales = uniq(runs, "budget_scale")
    if scales != [1.0]:
        parts.append(f"budget_scale {'/'.join(f'{s:g}' for s in scales)} (that fraction of each published "
                     "training budget)")
    if uniq(runs, "train_subset"):
        n = "/".join(str(int(v)) for v in uniq(runs, "train_subset"))
        parts.append(f"train_subset {n} (only the first {n} training images)")
    if uniq(runs, "eval_subset"):
        n = "/".join(str(int(v)) for v in uniq(runs, "eval_subset"))
        parts.append(f"eval_subset {n} (validation and test accuracy on the first {n} images only)")
    if runs["overridden"].astype(bool).any():
        parts.append("recipe overrides for " + ", ".join(sorted(set(runs.loc[runs["overridden"].astype(bool),
                                                                               "model"]))))
    return "; ".join(parts) or "the published recipes on the full data"


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def fmt(v, spec: str | None) -> str:
    """One cell as text: "n/a" for a missing value, numbers with ``spec``."""
    if isnan(v):
        return "n/a"
    if spec and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return format(v, spec)
    return str(v)


def markdown_table(df: pd.DataFrame, formats: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> str:
    """A GitHub Markdown table (``DataFrame.to_markdown``, numeric columns right-aligned):
    the cells are formatted as text first (``formats``: column -> format spec)."""
    formats, headers = dict(formats or {}), dict(headers or {})

    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    cols = list(df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols]
    text = pd.DataFrame({cell(headers.get(c, c)): [cell(fmt(v, formats.get(c))) for v in df[c]] for c in cols})
    return text.to_markdown(index=False, disable_numparse=True,
                            colalign=["right" if n else "left" for n in numeric]) + "\n"


def md(df: pd.DataFrame, spec: Mapping) -> str:
    """``df``'s columns named in ``spec`` as a Markdown table with its formats and headers."""
    return markdown_table(df[spec["columns"]], spec["formats"], spec["headers"])


AUDIT_MD = {
    "columns": ["model", "n_seeds", "measure", "reading", "mean_pct", "sd_pct", "ci_low_pct", "ci_high_pct",
                "runs_reaching", "pi_low_pct", "pi_high_pct", "verdict", "test_mean_pct", "test_ci_low_pct",
                "test_ci_high_pct", "test_min_pct", "test_max_pct", "test_verdict", "claim_lower_pct",
                "budget_status"],
    "formats": {"mean_pct": ".2f", "sd_pct": ".3f", "ci_low_pct": ".2f", "ci_high_pct": ".2f",
                "runs_reaching": ".0f", "pi_low_pct": ".2f", "pi_high_pct": ".2f", "test_mean_pct": ".2f",
                "test_ci_low_pct": ".2f", "test_ci_high_pct": ".2f", "test_min_pct": ".2f",
                "test_max_pct": ".2f", "claim_lower_pct": "g"},
    "headers": {"model": "architecture", "n_seeds": "n", "measure": "author's split", "reading": "reading",
                "mean_pct": "mean %", "sd_pct": "sd (pt)", "ci_low_pct": "95% low", "ci_high_pct": "95% high",
                "runs_reaching": "k runs >= bound", "pi_low_pct": "one run: 95% PI low",
                "pi_high_pct": "PI high", "verdict": "verdict", "test_mean_pct": "full test %",
                "test_ci_low_pct": "test 95% low", "test_ci_high_pct": "test 95% high",
                "test_min_pct": "test min %", "test_max_pct": "test max %", "test_verdict": "verdict on full test",
                "claim_lower_pct": "bound %", "budget_status": "budget"},
}
CLAIMS_MD = {
    "columns": ["model", "claim_text", "claim_where", "reference", "claim_recipe"],
    "formats": {},
    "headers": {"model": "architecture", "claim_text": "claim (author's words)",
                "claim_where": "the original measured on", "reference": "reference (not judged)",
                "claim_recipe": "the claim's recipe"},
}
TIMING_MD = {
    "columns": ["model", "device", "backend", "n_runs", "load_average_median", "train_seconds_mean",
                "train_seconds_sd", "first_epoch_overhead_seconds", "steady_epoch_seconds", "steady_measured",
                "train_images_per_second", "eval_images_per_second", "time_to_bound"],
    "formats": {"train_seconds_mean": ",.1f", "train_seconds_sd": ",.1f", "first_epoch_overhead_seconds": ".2f",
                "steady_epoch_seconds": ",.2f", "train_images_per_second": ",.0f",
                "eval_images_per_second": ",.0f", "load_average_median": ".1f"},
    "headers": {"model": "architecture", "n_runs": "runs", "load_average_median": "machine load (median)",
                "train_seconds_mean": "train s (mean)",
                "train_seconds_sd": "train s (sd)", "first_epoch_overhead_seconds": "1st-epoch overhead s",
                "steady_epoch_seconds": "steady s / epoch", "steady_measured": "steady measured",
                "train_images_per_second": "train img/s",
                "eval_images_per_second": "eval img/s", "time_to_bound": "time to the claim's bound (median)"},
}
PORT_MD = {
    "columns": ["model", "row_kind", "budget", "start", "n_port", "n_original", "pairs_by_kind", "repeats",
                "port_mean_pct",
                "original_mean_pct", "difference_pt", "diff_low_pt", "diff_high_pt", "t_test", "tost_p", "t_test_p",
                "sd_diff_pt", "pairs", "pairs_needed", "mcnemar_pairs_p05", "mcnemar_fisher_p", "port_images_per_s",
                "original_images_per_s", "verdict", "lacks"],
    "formats": {"port_mean_pct": ".2f", "original_mean_pct": ".2f", "difference_pt": "+.3f", "diff_low_pt": "+.3f",
                "diff_high_pt": "+.3f", "tost_p": ".3g", "t_test_p": ".3g", "sd_diff_pt": ".3f",
                "mcnemar_pairs_p05": ".0f", "mcnemar_fisher_p": ".3g",
                "port_images_per_s": ",.0f", "original_images_per_s": ",.0f"},
    "headers": {"model": "architecture", "row_kind": "row", "start": "original's initial weights",
                "n_port": "n port", "n_original": "n original", "pairs_by_kind": "pairs per CPU kind",
                "repeats": "repeats (counted once)",
                "port_mean_pct": "port %", "original_mean_pct": "original %",
                "difference_pt": "original - port (pt)", "diff_low_pt": "95% low", "diff_high_pt": "95% high",
                "t_test": "t-tests", "tost_p": "TOST p (+-0.2 pt)", "t_test_p": "t-test p",
                "sd_diff_pt": "sd of a difference (pt)", "pairs": "pairs run", "pairs_needed": "pairs needed (80% power, 5 at least)",
                "mcnemar_pairs_p05": "pairs McNemar p<0.05", "mcnemar_fisher_p": "McNemar per pair, Fisher p",
                "port_images_per_s": "port img/s", "original_images_per_s": "original img/s", "lacks": "lacks"},
}
