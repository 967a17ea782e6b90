"""Port versus original: each port's accuracies against its author's program (TF1 graph or Keras script).

Welch's t-test and TOST equivalence at a stated margin on the runs' test accuracies,
McNemar's test on the images of matched seeds, and training speed both ways; one row
per original in the runs table (``port_vs_original``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .audit import INCONCLUSIVE, correctness
from .config import original_of, starts_from_port
from .runs import label as model_label
from .tables import budget_detail, groups, pct

# Equivalence margin for a port against its original, in accuracy (0.2 points): about
# twice the binomial standard error of one 10,000-image evaluation at 99% (0.1 point)
# and above the seed-to-seed spread of these models (0.05-0.15 points), yet well inside
# any claim's rounding (a "99%" claim's bound is 0.5 points below it).
EQUIVALENCE_MARGIN = 0.002
EQUIVALENT, DIFFERENT = "equivalent", "different"


def compare_port_original(port: Sequence[float], original: Sequence[float], margin: float = EQUIVALENCE_MARGIN,
                          alpha: float = 0.05, paired: bool = False) -> dict:
    """The original's accuracies against the port's: a t-test with the 95% interval of the
    difference, TOST equivalence (two one-sided t-tests at +-margin), and a verdict
    (equivalent / different / inconclusive).

    Welch's tests by default: the two sides' runs are independent draws. ``paired``: the
    i-th original shares the i-th port run's initial weights and data order (an original
    started from the port's draw), so the seed-to-seed spread is common to both sides and
    the tests are on the per-seed differences (paired t-tests)."""
    from scipy import stats

    a, b = np.asarray(original, float), np.asarray(port, float)
    if paired and len(a) != len(b):
        raise ValueError(f"paired comparison needs matched runs: {len(b)} port, {len(a)} original")
    out = {"n_port": len(b), "n_original": len(a), "mean_port": float(b.mean()) if len(b) else math.nan,
           "mean_original": float(a.mean()) if len(a) else math.nan, "t_test": "paired" if paired else "Welch"}
    out["difference"] = out["mean_original"] - out["mean_port"]
    if len(a) and len(b):
        spread = float((a - b).std()) if paired else max(float(a.std()), float(b.std()))
    else:
        spread = 0.0
    if len(a) < 2 or len(b) < 2 or spread == 0:
        same = len(a) and len(b) and abs(out["difference"]) < margin and spread == 0
        return {**out, "diff_low": math.nan, "diff_high": math.nan, "t_test_p": math.nan, "tost_p": math.nan,
                "verdict": EQUIVALENT if same and len(a) >= 2 else f"{INCONCLUSIVE} (n<2)"
                if min(len(a), len(b)) < 2 else INCONCLUSIVE}
    if paired:
        d = a - b
        test = stats.ttest_1samp(d, 0.0)
        lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue  # diff > -margin
        upper = stats.ttest_1samp(d, margin, alternative="less").pvalue  # diff < +margin
    else:
        test = stats.ttest_ind(a, b, equal_var=False)
        lower = stats.ttest_ind(a, b - margin, equal_var=False, alternative="greater").pvalue  # diff > -margin
        upper = stats.ttest_ind(a, b + margin, equal_var=False, alternative="less").pvalue  # diff < +margin
    ci = test.confidence_interval(1 - alpha)
    tost = float(max(lower, upper))
    if tost < alpha:
        verdict = EQUIVALENT
    elif test.pvalue < alpha:
        verdict = DIFFERENT
    else:
        verdict = INCONCLUSIVE
    return {**out, "diff_low": float(ci.low), "diff_high": float(ci.high), "t_test_p": float(test.pvalue),
            "tost_p": tost, "verdict": verdict}


def mcnemar(port_correct: np.ndarray, original_correct: np.ndarray) -> dict:
    """McNemar's exact test on matched seeds, the discordant images pooled over the
    seeds: b = the original right where the port is wrong, c = the reverse."""
    from scipy import stats

    p, o = np.asarray(port_correct, bool), np.asarray(original_correct, bool)
    b, c = int((o & ~p).sum()), int((p & ~o).sum())
    pvalue = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {"original_only": b, "port_only": c, "mcnemar_p": pvalue}


# ---------------------------------------------------------------------------
# The claim audit of a runs table
# ---------------------------------------------------------------------------


# How the original's initial weights were drawn (the table's "start" column)
OWN_DRAW = "own draw"
PORT_DRAW = "the port's draw"
PORT_COLUMNS = ["architecture", "variant", "original_variant", "model", "budget_scale", "budget", "start", "n_port",
                "n_original", "port_mean_pct", "original_mean_pct", "difference_pt", "diff_low_pt", "diff_high_pt",
                "t_test", "t_test_p", "tost_p", "matched_seeds", "original_only_right", "port_only_right", "mcnemar_p",
                "port_images_per_s", "original_images_per_s", "verdict"]


def port_vs_original(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per original run in ``runs``, against its port at the same budget:
    n per side, means, the difference with its 95% interval (Welch's; paired for an
    original started from the port's draw), TOST at the stated margin, McNemar on
    matched seeds, training images/s both ways, and a verdict."""
    rows, order = [], {}
    for (arch, variant), g_all in groups(runs):
        of = original_of(variant)
        if not of:
            continue
        from_port = starts_from_port(variant)
        for scale in sorted(set(g_all["budget_scale"].astype(float)), reverse=True):
            row = _port_row(runs, arch, of, g_all[g_all["budget_scale"].astype(float) == scale], paired=from_port)
            rows.append({**row, "original_variant": variant, "start": PORT_DRAW if from_port else OWN_DRAW,
                         "_order": order.setdefault((arch, of), len(order))})
    # the original's own draw first, then from the port's initial weights, per model and budget
    rows.sort(key=lambda r: (r["_order"], -r["budget_scale"], r["start"] != OWN_DRAW))
    return pd.DataFrame(rows, columns=PORT_COLUMNS)


def _port_row(runs: pd.DataFrame, arch: str, of: str, g: pd.DataFrame, paired: bool = False) -> dict:
    """One original's runs ``g`` (one budget) against the port ``of`` at that budget
    (``paired``: seed by seed, the original having started from each seed's port draw)."""
    port = runs[(runs["architecture"] == arch) & (runs["variant"] == of)]
    same_budget = port[port["budget_scale"].isin(set(g["budget_scale"]))
                       & port["n_train"].isin(set(g["n_train"])) & port["n_test"].isin(set(g["n_test"]))]
    matched = sorted(set(g["seed"]) & set(same_budget["seed"]))
    # both sides' runs of the matched seeds, in seed order (paired tests, McNemar)
    port_m, orig_m = (d.set_index("seed").loc[matched].reset_index() for d in (same_budget, g))
    if paired:  # the original started from each seed's port draw: compare seed by seed
        r = compare_port_original(port_m["test_accuracy"].to_numpy(float), orig_m["test_accuracy"].to_numpy(float),
                                  paired=True)
    else:
        r = compare_port_original(same_budget["test_accuracy"].to_numpy(float), g["test_accuracy"].to_numpy(float))
    mc = {"original_only": math.nan, "port_only": math.nan, "mcnemar_p": math.nan}
    if matched:
        po, oo = correctness(port_m, "test"), correctness(orig_m, "test")
        if po is not None and oo is not None and po.shape == oo.shape:
            mc = mcnemar(po, oo)
    return {
        "architecture": arch, "variant": of, "model": model_label(arch, of),
        "budget_scale": float(g["budget_scale"].iloc[0]),
        "budget": budget_detail(g), "n_port": r["n_port"], "n_original": r["n_original"],
        "port_mean_pct": 100 * r["mean_port"], "original_mean_pct": 100 * r["mean_original"],
        "difference_pt": 100 * r["difference"], "diff_low_pt": pct(r["diff_low"]),
        "diff_high_pt": pct(r["diff_high"]), "t_test": r["t_test"], "t_test_p": r["t_test_p"],
        "tost_p": r["tost_p"],
        "matched_seeds": len(matched), "original_only_right": mc["original_only"],
        "port_only_right": mc["port_only"], "mcnemar_p": mc["mcnemar_p"],
        "port_images_per_s": float(same_budget["train_images_per_second"].astype(float).median())
        if len(same_budget) else math.nan,
        "original_images_per_s": float(g["train_images_per_second"].astype(float).median()),
        "verdict": r["verdict"],
    }

