"""Statistics of the claim audit: intervals over seeds and test images, k/n, verdicts.

A row of the audit is one architecture and variant: n runs (seeds), each with every
evaluation image's correctness (``predictions.npz``). Its accuracy has two sources of
error (docs/benchmark.md):

* seed-to-seed training randomness: one run's accuracy varies with its seed;
* the sampling of the test images: every run is evaluated on the same 10,000 images,
  so this error does not shrink with more seeds (about 0.1 point at 99%).

``two_way_interval`` covers both. The variance of the mean accuracy is the sum of a
seed term, s^2/n (s: the sd of the runs' accuracies on the shared test set), and an
image term, the variance over test images of the runs' mean correctness divided by the
number of images (from ``predictions.npz``: the runs are paired on the same images).
The interval is Student's t with Welch-Satterthwaite degrees of freedom, bounded to
[0, 1]. Its coverage of a known true accuracy on simulated audits (``simulate_coverage``:
seed-dominated, image-dominated and mixed cases, 3 to 10 runs) is checked by
tests/test_audit.py; a percentile bootstrap over seeds and images was tried first and
over-covered with few seeds once widened enough for seed-dominated cases, so the
analytic form was kept.

The second half applies them to the runs table (one row per run, ``report.aggregate_runs``):
``claim_audit`` (one row per architecture and variant, on the author's measure and on the
full test set) and ``port_vs_original`` (each original against its port).

Everything is a pure function of its inputs, so the report's tables are byte-identical
from run to run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import registry
from .config import original_of
from .tables import budget_detail, budget_status, groups, isnan, pct
from .runs import label as model_label

CONFIDENCE = 0.95
# Accuracies are float32 counts/n: a bound "exactly at" a claim's bound may differ from
# it by ~1e-7. One test image is 1e-4 (10k) or more, so 1e-6 changes no real case.
TOLERANCE = 1e-6

NO_CLAIM = "no claim"
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"


def two_way_interval(correct: np.ndarray | None = None, confidence: float = CONFIDENCE,
                     per_run: Sequence[float] | None = None, image_var: float | None = None) -> tuple[float, float]:
    """Student-t interval of the mean accuracy with both variance components, in [0, 1].

    var(mean) = s^2 / n (seeds: the runs' accuracies on the shared test set) + v_img (the
    test images: the variance over images of the runs' mean correctness, / n_images),
    with Welch-Satterthwaite degrees of freedom (scipy.stats.t). ``per_run`` with
    ``image_var`` instead of ``correct``: for readings with no per-image record.
    """
    from scipy import stats

    if correct is not None:
        c = np.asarray(correct, dtype=np.float64)
        n, n_images = c.shape
        acc = c.mean(axis=1)
        v_img = float(c.mean(axis=0).var(ddof=1)) / n_images
        df_img = n_images - 1
    else:
        acc = np.asarray(per_run, dtype=np.float64)
        n, v_img, df_img = len(acc), float(image_var or 0.0), 10**6
    if n < 2:
        return math.nan, math.nan
    v_seed = float(acc.var(ddof=1)) / n
    v = v_seed + v_img
    mean = float(acc.mean())
    if v == 0:
        return mean, mean
    df = v**2 / (v_seed**2 / (n - 1) + v_img**2 / df_img)
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * math.sqrt(v)
    return max(0.0, mean - half), min(1.0, mean + half)


def prediction_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where one new run's accuracy should fall (same test set): mean +- t * sd * sqrt(1 + 1/n),
    bounded to [0, 1]; (nan, nan) with fewer than 2 runs."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(x.std(ddof=1)) * math.sqrt(1 + 1 / n)
    return max(0.0, float(x.mean()) - half), min(1.0, float(x.mean()) + half)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean over seeds alone (scipy); (nan, nan) below 2 values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if float(x.std(ddof=1)) == 0.0:
        return float(x.mean()), float(x.mean())
    lo, hi = stats.t.interval(confidence, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(lo), float(hi)


def runs_reaching(values: Sequence[float], bound: float | None, tol: float = TOLERANCE) -> int | None:
    """How many runs individually reach the claim's bound (None without a claim)."""
    if bound is None or (isinstance(bound, float) and math.isnan(bound)):
        return None
    return int(sum(v >= bound - tol for v in values))


def verdict(n: int, low: float | None, high: float | None, bound: float | None, status: str,
            tol: float = TOLERANCE, published: str = "published") -> str:
    """The verdict of one row against one threshold, the claim's lower bound (pure).

    ``status`` is ``published`` when every run of the row used the published recipe on
    the full data, else what departs ("scaled budget", "overridden recipe"): such a row
    is never reproduced.
    """
    if isnan(bound):
        return NO_CLAIM
    if status != published:
        return f"{INCONCLUSIVE} ({status})"
    if n < 2 or isnan(low) or isnan(high):
        return f"{INCONCLUSIVE} (n<2)" if n < 2 else INCONCLUSIVE
    if low >= bound - tol:
        return REPRODUCED
    if high < bound - tol:
        return NOT_REPRODUCED
    return INCONCLUSIVE


# ---------------------------------------------------------------------------
# Simulated audits with a known truth (for the coverage check)
# ---------------------------------------------------------------------------


def simulate_audit(rng: np.random.Generator, n_runs: int, n_images: int, mean: float,
                   concentration: float, seed_sd_logit: float) -> np.ndarray:
    """One simulated audit: a (runs x images) correctness matrix.

    Each test image has a difficulty q ~ Beta(mean * c, (1 - mean) * c) drawn from an
    infinite population; each run shifts every image's log-odds by its own seed effect
    ~ N(0, seed_sd_logit); a run gets an image right with that probability.
    """
    a, b = mean * concentration, (1 - mean) * concentration
    q = np.clip(rng.beta(a, b, n_images), 1e-9, 1 - 1e-9)
    logit = np.log(q / (1 - q))
    shift = rng.normal(0.0, seed_sd_logit, n_runs)
    p = 1.0 / (1.0 + np.exp(-(logit[None, :] + shift[:, None])))
    return rng.random((n_runs, n_images)) < p


def true_accuracy(mean: float, concentration: float, seed_sd_logit: float, draws: int = 2_000_000,
                  seed: int = 0) -> float:
    """The simulated population's expected accuracy over images and seeds (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    a, b = mean * concentration, (1 - mean) * concentration
    q = np.clip(rng.beta(a, b, draws), 1e-9, 1 - 1e-9)
    logit = np.log(q / (1 - q)) + rng.normal(0.0, seed_sd_logit, draws)
    return float(np.mean(1.0 / (1.0 + np.exp(-logit))))


def simulate_coverage(simulations: int = 1000, n_runs: int = 5, n_images: int = 2000, mean: float = 0.99,
                      concentration: float = 1.0, seed_sd_logit: float = 0.3, seed: int = 1) -> float:
    """Fraction of simulated audits whose ``two_way_interval`` covers the truth."""
    truth = true_accuracy(mean, concentration, seed_sd_logit)
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(simulations):
        c = simulate_audit(rng, n_runs, n_images, mean, concentration, seed_sd_logit)
        lo, hi = two_way_interval(c)
        hits += lo <= truth <= hi
    return hits / simulations


def author_values(g: pd.DataFrame, claim: registry.Claim) -> np.ndarray:
    """Each run's value on the author's measure (split and reading)."""
    if claim.reading == "best epoch":
        col = "best_epoch_val_accuracy" if claim.split == "val" else "best_epoch_test_accuracy_optimistic"
    else:
        col = f"{claim.split}_accuracy"
    return g[col].to_numpy(dtype=float)


def correctness(g: pd.DataFrame, split: str) -> np.ndarray | None:
    """The runs' per-image correctness on one split (runs x images), or None when a run
    has no predictions.npz (trained by an older version) or the runs saw other images."""
    from .runs import read_predictions

    rows = []
    for d in g["run_dir"]:
        p = Path(d) / "predictions.npz"
        if not p.exists():
            return None
        rows.append(read_predictions(p)[f"{split}_correct"])
    if len({len(r) for r in rows}) != 1:
        return None
    return np.vstack(rows)


def interval(g: pd.DataFrame, values: np.ndarray, split: str, reading: str) -> tuple[float, float, str]:
    """The row's 95% interval over seeds and images, and the method used."""
    c = correctness(g, split) if reading == "final" else None
    if c is not None:
        lo, hi = two_way_interval(c)
        return lo, hi, "seeds + paired images (per-image predictions)"
    n_images = int(g[f"n_{split}"].iloc[0])
    p = float(np.mean(values)) if len(values) else math.nan
    var = max(p * (1 - p), 0.0) / n_images if n_images else 0.0
    lo, hi = two_way_interval(None, per_run=values, image_var=var)
    return lo, hi, "seeds + binomial image error"


def _sd(x: np.ndarray) -> float:
    return 100 * float(x.std(ddof=1)) if len(x) > 1 else math.nan


def claim_audit(runs: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (architecture, variant): the verdict on the author's measure with its
    interval, k/n and prediction interval, and the full-test-set figures beside it (in %)."""
    rows = []
    for (arch, variant), g in groups(runs):
        if original_of(variant):
            continue  # the originals check the ports: never part of a verdict
        a = registry.get_architecture(arch)
        claim = a.claim
        claim_recipe = claim.recipe_variant or "default"
        judged = claim.judges(variant)
        bound = claim.lower if judged else None
        status = budget_status(g)
        n = len(g)

        # the author's measure
        vals = author_values(g, claim)
        lo, hi, method = interval(g, vals, claim.split, claim.reading)
        pi_lo, pi_hi = prediction_interval(vals, confidence)
        # the generalisation number: full test set after the whole budget
        test = g["test_accuracy"].to_numpy(dtype=float)
        if claim.split == "test" and claim.reading == "final":
            t_lo, t_hi = lo, hi
        else:
            t_lo, t_hi, _ = interval(g, test, "test", "final")
        st_lo, st_hi = t_interval(test, confidence)
        row_verdict = verdict(n, lo, hi, bound, status)
        test_verdict = verdict(n, t_lo, t_hi, bound, status)
        if claim.lower is not None and not judged:  # a claim exists, but for another recipe
            row_verdict = test_verdict = f"{NO_CLAIM} (not the claim's recipe)"
        note = ""
        if judged and row_verdict != test_verdict:
            note = (f"On the author's measure ({claim.measure}) the claim is {row_verdict}; on the full "
                    f"test set after the whole budget it is {test_verdict}.")
        elif claim.lower is not None and not judged:
            note = (f"The claim sentence came from the '{claim_recipe}' recipe; this row's recipe is "
                    "shown for reference.")
        n_tests = sorted({int(v) for v in g["n_test"] if not isnan(v)})
        n_test = n_tests[0] if len(n_tests) == 1 else None
        mean_test = float(test.mean())
        rows.append({
            "architecture": arch, "variant": variant, "model": model_label(arch, variant),
            "baseline": a.baseline, "n_seeds": n, "seeds": " ".join(str(int(s)) for s in sorted(g["seed"])),
            "measure": claim.split, "reading": claim.reading,
            "claim_text": claim.text or "(none stated)",
            "claim_pct": pct(claim.value), "claim_lower_pct": pct(claim.lower),
            "reference": claim.reference or "", "claim_recipe": claim_recipe,
            "mean_pct": 100 * float(vals.mean()), "sd_pct": _sd(vals),
            "ci_low_pct": pct(lo), "ci_high_pct": pct(hi),
            "runs_reaching": runs_reaching(vals, bound) if bound is not None else math.nan,
            "pi_low_pct": pct(pi_lo), "pi_high_pct": pct(pi_hi),
            "verdict": row_verdict,
            "test_mean_pct": 100 * mean_test, "test_sd_pct": _sd(test),
            "test_min_pct": 100 * float(test.min()), "test_max_pct": 100 * float(test.max()),
            "test_ci_low_pct": pct(t_lo), "test_ci_high_pct": pct(t_hi),
            "test_t_low_pct": pct(st_lo), "test_t_high_pct": pct(st_hi),
            "test_runs_reaching": runs_reaching(test, bound) if bound is not None else math.nan,
            "test_verdict": test_verdict,
            "note": note,
            "n_test": n_test if n_test is not None else "/".join(map(str, n_tests)),
            "binomial_se_pct": 100 * math.sqrt(mean_test * (1 - mean_test) / n_test) if n_test else math.nan,
            "claim_where": claim.where,
            "budget_status": status,
            "budget": budget_detail(g),
            "interval_method": method,
        })
    return pd.DataFrame(rows)
