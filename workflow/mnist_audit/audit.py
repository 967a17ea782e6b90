"""Statistics of the claim audit: intervals over seeds and test images, k/n, verdicts.

A row of the audit is one architecture and variant: n runs (seeds), each with every
evaluation image's correctness (``predictions.npz``). Its accuracy has two sources of
error (SPEC section 4):

* seed-to-seed training randomness: one run's accuracy varies with its seed;
* the sampling of the test images: every run is evaluated on the same 10,000 images,
  so this error does not shrink with more seeds (about 0.1 point at 99%).

``paired_bootstrap`` covers both: each replicate draws the test images with
replacement (the same draw for every run, so the runs stay paired) and the seeds with
replacement, and takes the mean accuracy. The seed draw's deviations are widened by
``seed_widening`` (sqrt(n/(n-1)) * t(n-1)/z), so that with seeds alone the interval is
Student's t interval (a plain bootstrap over 5 values covers far less than 95%). The
percentile interval is bounded to [0, 1]. Its coverage on simulated audits with a known true accuracy is checked in
tests/test_audit.py (``simulate_coverage``).

Everything is a pure function of its inputs and a fixed random seed, so the report's
tables are byte-identical from run to run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_REPLICATES = 4000
BOOTSTRAP_SEED = 20261201
# Accuracies are float32 counts/n: a bound "exactly at" a claim's bound may differ from
# it by ~1e-7. One test image is 1e-4 (10k) or more, so 1e-6 changes no real case.
TOLERANCE = 1e-6

NO_CLAIM = "no claim"
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"


def paired_bootstrap(correct: np.ndarray, confidence: float = CONFIDENCE, replicates: int = BOOTSTRAP_REPLICATES,
                     seed: int = BOOTSTRAP_SEED, per_run: Sequence[float] | None = None,
                     image_se: float | None = None, widen: bool = True) -> tuple[float, float]:
    """Percentile interval of the mean accuracy over seeds and test images, in [0, 1].

    ``correct``: a (runs x images) boolean matrix, the same images in the same order
    for every run. Alternatively ``per_run`` accuracies with ``image_se``, the standard
    error one evaluation set adds (for readings that have no per-image record, such
    as a best epoch): each replicate then adds one normal draw of that size, shared
    by all runs. (nan, nan) with fewer than 2 runs.
    """
    rng = np.random.default_rng(seed)
    if per_run is None:
        c = np.asarray(correct, dtype=bool)
        n, n_images = c.shape
        if n < 2:
            return math.nan, math.nan
        # Poisson(1) weights per image: the standard fast stand-in for a multinomial draw
        weights = rng.poisson(1.0, size=(replicates, n_images)).astype(np.float64)
        acc = (weights @ c.T.astype(np.float64)) / weights.sum(axis=1, keepdims=True)  # replicates x runs
    else:
        x = np.asarray(per_run, dtype=np.float64)
        n = len(x)
        if n < 2:
            return math.nan, math.nan
        acc = x[None, :] + rng.normal(0.0, image_se or 0.0, size=(replicates, 1))
    pick = rng.integers(0, n, size=(replicates, n))
    centre = acc.mean(axis=1)
    drawn = np.take_along_axis(acc, pick, axis=1).mean(axis=1)
    stat = centre + (seed_widening(n, confidence) if widen else 1.0) * (drawn - centre)
    lo, hi = np.quantile(stat, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(np.clip(lo, 0.0, 1.0)), float(np.clip(hi, 0.0, 1.0))


def seed_widening(n: int, confidence: float = CONFIDENCE) -> float:
    """Factor on the seed draw's deviations: sqrt(n/(n-1)) (the bootstrap's variance is
    biased low by (n-1)/n) times t(n-1)/z, so that with seeds alone the interval is the
    Student-t interval of the mean rather than a too-narrow normal one (n=5: 1.58)."""
    from scipy import stats

    q = 0.5 + confidence / 2
    return math.sqrt(n / (n - 1)) * float(stats.t.ppf(q, n - 1)) / float(stats.norm.ppf(q))


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


def _isnan(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def verdict(n: int, low: float | None, high: float | None, bound: float | None, status: str,
            tol: float = TOLERANCE, published: str = "published") -> str:
    """The verdict of one row against one threshold, the claim's lower bound (pure).

    ``status`` is ``published`` when every run of the row used the published recipe on
    the full data, else what departs ("scaled budget", "overridden recipe"): such a row
    is never reproduced.
    """
    if _isnan(bound):
        return NO_CLAIM
    if status != published:
        return f"{INCONCLUSIVE} ({status})"
    if n < 2 or _isnan(low) or _isnan(high):
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
                      concentration: float = 1.0, seed_sd_logit: float = 0.3, replicates: int = 1000,
                      seed: int = 1, **kwargs) -> float:
    """Fraction of simulated audits whose ``paired_bootstrap`` interval covers the truth."""
    truth = true_accuracy(mean, concentration, seed_sd_logit)
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(simulations):
        c = simulate_audit(rng, n_runs, n_images, mean, concentration, seed_sd_logit)
        lo, hi = paired_bootstrap(c, replicates=replicates, seed=seed * 100_003 + i, **kwargs)
        hits += lo <= truth <= hi
    return hits / simulations
