"""Port versus original: each port's accuracies against its author's program (TF1 graph or Keras script).

Welch's or the paired t-test and TOST equivalence at a stated margin on the runs' test
accuracies (the verdict), the pairs TOST's power asks for (``portpower``), McNemar's test
within each seed pair, and training speed both ways; one row per original variant and
budget in the runs table (``port_vs_original``). A pair is a port run and an original run
of the same seed, CPU kind and platform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .audit import INCONCLUSIVE, correctness
from .config import original_of, starts_from_port
from .portpower import N_MAX, pairs_needed
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
    """McNemar's exact test on the discordant images of the runs given (one pair, or
    several pooled): b = the original right where the port is wrong, c = the reverse."""
    from scipy import stats

    p, o = np.asarray(port_correct, bool), np.asarray(original_correct, bool)
    b, c = int((o & ~p).sum()), int((p & ~o).sum())
    pvalue = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {"original_only": b, "port_only": c, "mcnemar_p": pvalue}


def mcnemar_per_pair(port_correct: np.ndarray, original_correct: np.ndarray, alpha: float = 0.05) -> dict:
    """McNemar's exact test within each seed pair (row i of both: pairs x images), where
    its premise holds (one image, two classifiers); the pairs' p-values combined by
    Fisher's method (the pairs are independent), the pairs with p < ``alpha`` counted.
    Pooling the pairs' images into one test would treat the images of different runs as
    independent draws: that figure is kept (``pooled_p``) but speaks for no verdict."""
    from scipy import stats

    p, o = np.atleast_2d(np.asarray(port_correct, bool)), np.atleast_2d(np.asarray(original_correct, bool))
    each = [mcnemar(a, b)["mcnemar_p"] for a, b in zip(p, o)]
    pooled = mcnemar(p, o)
    return {"pairs": len(each), "pairs_below": int(sum(v < alpha for v in each)),
            "fisher_p": float(stats.combine_pvalues(each, method="fisher").pvalue) if each else math.nan,
            "original_only": pooled["original_only"], "port_only": pooled["port_only"],
            "pooled_p": pooled["mcnemar_p"]}


# ---------------------------------------------------------------------------
# The port-versus-original table of a runs table
# ---------------------------------------------------------------------------


# How the original's initial weights were drawn (the table's "start" column)
OWN_DRAW = "own draw"
PORT_DRAW = "the port's draw"
# What a row is for: the published budget, or a check of the programs' behaviour at a reduced one
FULL_BUDGET, BEHAVIOUR_CHECK = "full budget", "behaviour check"
# What a row that is not "equivalent" lacks
LACKS_RUNS, LACKS_AGREEMENT = "runs", "agreement"
# The fewest pairs (own-draw rows: runs a side) a verdict of equivalence rests on: the issue's
# floor, and a guard against a few pairs that agree to the image (a sd of 0 and a degenerate t-test).
MIN_PAIRS = 5
DEFAULT_PLATFORM = "default"
PORT_COLUMNS = ["architecture", "variant", "original_variant", "model", "row_kind", "budget_scale", "budget",
                "start", "n_port", "n_original", "pairs", "pairs_by_kind", "repeats", "port_mean_pct",
                "original_mean_pct", "difference_pt", "diff_low_pt", "diff_high_pt", "t_test", "t_test_p", "tost_p",
                "sd_diff_pt", "n_needed", "pairs_needed", "original_only_right", "port_only_right", "mcnemar_pairs",
                "mcnemar_pairs_p05", "mcnemar_fisher_p", "mcnemar_pooled_p", "port_images_per_s",
                "original_images_per_s", "verdict", "lacks"]


def needed_label(n: float) -> str:
    """The pairs a row needs, as the table says it: the 80%-power figure ``n``
    (``portpower.pairs_needed``), never below the verdict's floor of ``MIN_PAIRS`` (the power
    figure then in brackets: with fewer pairs no row is equivalent, whatever its power)."""
    n = float(n)
    if math.isnan(n):
        return "n/a"
    if math.isinf(n):
        return f"> {N_MAX:,}"
    n = int(n)
    return f"{n:,}" if n >= MIN_PAIRS else f"{MIN_PAIRS} ({n} by power)"


def platforms(runs: pd.DataFrame) -> pd.Series:
    """Each run's platform (``default`` where the runs table has no such column, or none recorded)."""
    if "platform" not in runs.columns:
        return pd.Series(DEFAULT_PLATFORM, index=runs.index)
    return runs["platform"].fillna(DEFAULT_PLATFORM).astype(str)


def run_keys(runs: pd.DataFrame) -> pd.Series:
    """Each run's pairing key: (seed, CPU kind, platform)."""
    return pd.Series(list(zip(runs["seed"].astype(int), runs["cpu_kind"].fillna("unknown").astype(str),
                              platforms(runs))), index=runs.index)


def sides(port: pd.DataFrame, original: pd.DataFrame, paired: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The port's and the original's runs (or history rows) that one row compares.

    ``paired``: the pairs, a port run and an original run of the same seed, CPU kind and
    platform. Otherwise (independent draws) every original, and the port's runs on the CPU
    kinds and platforms the originals ran on."""
    pk, ok = run_keys(port), run_keys(original)
    if paired:
        common = set(pk) & set(ok)
        return port[pk.map(common.__contains__).astype(bool)], original[ok.map(common.__contains__).astype(bool)]
    kinds = {k[1:] for k in ok}
    return port[pk.map(lambda k: k[1:] in kinds).astype(bool)], original


def _by_key(runs: pd.DataFrame, what: str) -> pd.DataFrame:
    """``runs`` sorted by key (column ``_key``); an error naming them if two runs share one."""
    keys = run_keys(runs)
    dup = keys[keys.duplicated(keep=False)]
    if len(dup):
        raise ValueError(f"{what}: more than one run for the same seed, CPU kind and platform "
                         f"{sorted(set(dup))}: {sorted(runs.loc[dup.index, 'run_dir'].astype(str))}; "
                         "keep one run per seed on each machine (audit/runs or audit/platforms, not both)")
    return runs.assign(_key=keys).sort_values("_key", key=lambda c: c.map(str), kind="stable")


def _numbers(runs: pd.DataFrame) -> pd.Series:
    """Each run's seed, platform and final numbers (test accuracy and loss, to the last bit)."""
    return pd.Series(list(zip(runs["seed"].astype(int), platforms(runs), runs["test_accuracy"].astype(float),
                              runs["test_loss"].astype(float))), index=runs.index)


def distinct(port: pd.DataFrame, original: pd.DataFrame, paired: bool) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Both sides (sorted by key) without the runs that repeat another CPU kind's run of the
    same seed and platform to the last bit: the same computation, not another sample (Intel's
    default gives AMD's bits for most ports, and a Keras script's too). ``paired``: a pair is
    a repeat when both its runs are (the pair is dropped whole); otherwise each side's runs
    are checked alone. Returns the sides kept and how many runs of both sides (pairs, if
    paired) were repeats."""
    if paired:
        p_num, o_num = _numbers(port).set_axis(port["_key"]), _numbers(original).set_axis(original["_key"])
        seen, dropped = set(), []
        for key in [k for k in port["_key"] if k in set(original["_key"])]:
            signature = (p_num[key], o_num[key])
            if signature in seen:
                dropped.append(key)
            seen.add(signature)
        keep = lambda d: d[~d["_key"].isin(dropped)]  # noqa: E731
        return keep(port), keep(original), len(dropped)
    kept = [d[~_numbers(d).duplicated()] for d in (port, original)]
    return kept[0], kept[1], len(port) + len(original) - len(kept[0]) - len(kept[1])


def kind_label(cpu_kind: str, platform: str = DEFAULT_PLATFORM) -> str:
    """"AMD", "Intel 6/167", "Intel (avx2)": a CPU kind by its vendor (and family/model if asked)."""
    vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(cpu_kind.split(" ")[0], cpu_kind.split(" ")[0])
    return vendor + ("" if platform == DEFAULT_PLATFORM else f" ({platform})")


def pairs_by_kind(keys) -> str:
    """"AMD 5, Intel 3": the pairs per CPU kind (and platform); kinds of one vendor are
    told apart by family/model."""
    kinds = sorted({k[1:] for k in keys})
    vendors = [kind_label(c, p) for c, p in kinds]
    names = {k: v if vendors.count(v) == 1 else f"{v} {' '.join(k[0].split(' ')[1:2])}"
             for k, v in zip(kinds, vendors)}
    counts: dict[str, int] = {}
    for k in keys:
        counts[names[k[1:]]] = counts.get(names[k[1:]], 0) + 1
    return ", ".join(f"{n} {c}" for n, c in counts.items())


def port_vs_original(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per original variant (TF1 graph or Keras script) and budget in ``runs``, against its port at the same
    budget: n per side, means, the difference with its 95% interval (Welch's; paired, seed by
    seed on one CPU kind and platform, for an original started from the port's draw), TOST at
    the stated margin, the pairs its power asks for, McNemar per pair, training images/s both
    ways, a verdict and what a row that is not "equivalent" lacks. Full-budget rows first,
    then the behaviour checks (reduced budget)."""
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
    # full budget first; per model the original's own draw, then from the port's initial weights
    rows.sort(key=lambda r: (r["row_kind"] != FULL_BUDGET, r["_order"], -r["budget_scale"], r["start"] != OWN_DRAW))
    return pd.DataFrame(rows, columns=PORT_COLUMNS)


def _port_row(runs: pd.DataFrame, arch: str, of: str, g: pd.DataFrame, paired: bool = False) -> dict:
    """One original's runs ``g`` (one budget) against the port ``of`` at that budget
    (``paired``: pair by pair, the original having started from each seed's port draw)."""
    port = runs[(runs["architecture"] == arch) & (runs["variant"] == of)]
    same_budget = port[port["budget_scale"].isin(set(g["budget_scale"]))
                       & port["n_train"].isin(set(g["n_train"])) & port["n_test"].isin(set(g["n_test"]))]
    what = f"{model_label(arch, of)} at budget x{float(g['budget_scale'].iloc[0]):g}"
    port_all, orig_all = _by_key(same_budget, f"{what}, port"), _by_key(g, f"{what}, original")
    # each side's runs on the originals' CPU kinds and platforms (paired: some may have no partner),
    # a run that repeats another kind's to the last bit counted once
    port_s, orig_s, repeats = distinct(*sides(port_all, orig_all, paired=False), paired=False)
    n_port, n_original = len(port_s), len(orig_s)
    if paired:
        port_s, orig_s, repeats = distinct(*sides(port_all, orig_all, paired=True), paired=True)
    matched = set(port_s["_key"]) & set(orig_s["_key"])  # the pairs (same seed, CPU kind and platform)
    port_m, orig_m = (d[d["_key"].map(matched.__contains__).astype(bool)] for d in (port_s, orig_s))
    acc_p, acc_o = port_s["test_accuracy"].to_numpy(float), orig_s["test_accuracy"].to_numpy(float)
    r = compare_port_original(acc_p, acc_o, paired=paired)
    if paired:  # the sd of the per-pair differences; n = the pairs
        n = len(matched)
        sds = (float(np.std(acc_o - acc_p, ddof=1)) if n > 1 else math.nan, None)
        sd_diff = sds[0]
    else:  # two independent samples: n runs a side; the sd of one original minus one port run
        n = min(len(acc_p), len(acc_o))
        sds = tuple(float(np.std(a, ddof=1)) if len(a) > 1 else math.nan for a in (acc_o, acc_p))
        sd_diff = math.hypot(*sds)
    needed = pairs_needed(*sds, EQUIVALENCE_MARGIN)
    verdict = r["verdict"]
    if verdict == EQUIVALENT and n < MIN_PAIRS:  # a few pairs may agree to the image: sd 0, no evidence
        verdict = f"{INCONCLUSIVE} (n<{MIN_PAIRS})"
    if verdict == EQUIVALENT:
        lacks = ""
    elif verdict == DIFFERENT or n >= max(needed, MIN_PAIRS):
        lacks = LACKS_AGREEMENT
    else:
        lacks = LACKS_RUNS
    mc = {"pairs": 0, "pairs_below": math.nan, "fisher_p": math.nan, "original_only": math.nan,
          "port_only": math.nan, "pooled_p": math.nan}
    if matched:
        po, oo = correctness(port_m, "test"), correctness(orig_m, "test")
        if po is not None and oo is not None and po.shape == oo.shape:
            mc = mcnemar_per_pair(po, oo)
    return {
        "architecture": arch, "variant": of, "model": model_label(arch, of),
        "row_kind": FULL_BUDGET if g["full_budget"].astype(bool).all() else BEHAVIOUR_CHECK,
        "budget_scale": float(g["budget_scale"].iloc[0]),
        "budget": budget_detail(g), "n_port": n_port, "n_original": n_original,
        "pairs": n, "pairs_by_kind": pairs_by_kind(list(orig_m["_key"])), "repeats": repeats,
        "port_mean_pct": 100 * r["mean_port"], "original_mean_pct": 100 * r["mean_original"],
        "difference_pt": 100 * r["difference"], "diff_low_pt": pct(r["diff_low"]),
        "diff_high_pt": pct(r["diff_high"]), "t_test": r["t_test"], "t_test_p": r["t_test_p"],
        "tost_p": r["tost_p"], "sd_diff_pt": pct(sd_diff), "n_needed": needed,
        "pairs_needed": needed_label(needed),
        "original_only_right": mc["original_only"], "port_only_right": mc["port_only"],
        "mcnemar_pairs": mc["pairs"], "mcnemar_pairs_p05": mc["pairs_below"], "mcnemar_fisher_p": mc["fisher_p"],
        "mcnemar_pooled_p": mc["pooled_p"],
        "port_images_per_s": float(port_s["train_images_per_second"].astype(float).median())
        if len(port_s) else math.nan,
        "original_images_per_s": float(orig_s["train_images_per_second"].astype(float).median()),
        "verdict": verdict, "lacks": lacks,
    }
