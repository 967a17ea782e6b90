"""How many seed pairs a port-versus-original row needs: the power of its TOST.

TOST at the margin ``portcheck.EQUIVALENCE_MARGIN`` (0.2 points) and level alpha
rejects both one-sided nulls when ``|mean difference| + t(1 - alpha, df) * se_hat <
margin``. With a true difference of 0 and normal runs, the mean difference is normal
(true standard error ``se``) and independent of the sample variances, so the power is
an integral over the sample variances' chi-square distributions:

* paired rows (the port's draw; ``tost_power``): ``se = sd_d / sqrt(n)``, ``df = n - 1``
  (``sd_d`` the sd of the per-pair differences), ``se_hat**2 * df / se**2 ~ chi2(df)``:

      P = integral over x ~ chi2(df) of max(0, 2 Phi(margin / se - t(1 - alpha, df) sqrt(x / df)) - 1),

  adaptive quadrature over the chi-square's quantiles;
* own-draw rows (Welch's test, n runs a side; ``welch_tost_power``): each side's sample
  variance an independent ``sd**2 chi2(n - 1) / (n - 1)``, and the test's
  Welch-Satterthwaite df computed from them, as the test does; a Gauss-Legendre product
  rule over the two chi-squares' quantiles (``NODES`` each: within 1e-5 of adaptive
  two-dimensional quadrature, scipy's dblquad, on the spreads of the published rows tried).

``pairs_needed`` is the smallest n (at least 2) whose power reaches 80%, at the spread
measured from the published runs (a point estimate: five seeds measure a sd to about
+-35%). tests/test_portcheck.py recomputes it by simulation.
"""

from __future__ import annotations

import math

import numpy as np

POWER = 0.8
ALPHA = 0.05
N_MAX = 1_000_000  # beyond this many pairs, "pairs needed" is not a plan (reported as such)


def tost_power(se: float, df: float, margin: float, alpha: float = ALPHA) -> float:
    """The probability that TOST at +-``margin`` rejects when the true difference is 0,
    the difference's true standard error being ``se``, estimated with ``df`` degrees of
    freedom (see the module's docstring)."""
    from scipy import integrate, special  # special's t, chi2 and normal functions: scipy.stats's, faster

    if not se > 0:
        return 1.0 if se == 0 else math.nan
    t_c = float(special.stdtrit(df, 1 - alpha))  # t(1 - alpha, df)
    x_max = df * (margin / (se * t_c)) ** 2  # above it the interval is wider than the margin
    q_max = float(special.chdtr(df, x_max))  # chi2(df).cdf(x_max)
    if q_max <= 0:
        return 0.0

    def integrand(q):
        x = special.chdtri(df, 1 - q)  # chi2(df).ppf(q)
        return max(0.0, 2 * special.ndtr(margin / se - t_c * math.sqrt(x / df)) - 1)

    value, _ = integrate.quad(integrand, 0.0, q_max, limit=200, epsabs=1e-7)
    return float(min(1.0, max(0.0, value)))


NODES = 128


def welch_tost_power(n: int, sd_a: float, sd_b: float, margin: float, alpha: float = ALPHA) -> float:
    """The probability that Welch's TOST at +-``margin`` with ``n`` runs a side rejects when
    the true difference is 0, the sides' sds being ``sd_a`` and ``sd_b`` (see the module)."""
    from scipy import special

    va, vb = sd_a**2 / n, sd_b**2 / n
    if va + vb == 0:
        return 1.0
    k = n - 1.0
    z, w = np.polynomial.legendre.leggauss(NODES)
    x = special.chdtri(k, (1 - z) / 2)  # chi2(k).ppf at the nodes' quantiles (z + 1) / 2
    ea, eb = np.meshgrid(va * x / k, vb * x / k, indexing="ij")  # the sides' estimated variances of the mean
    s2 = ea + eb
    df = s2**2 / (ea**2 / k + eb**2 / k)
    t_c = special.stdtrit(df, 1 - alpha)
    g = np.maximum(0.0, 2 * special.ndtr((margin - t_c * np.sqrt(s2)) / math.sqrt(va + vb)) - 1)
    return float(min(1.0, max(0.0, (w / 2) @ g @ (w / 2))))


def power_at(n: int, sd_a: float, sd_b: float | None, margin: float, alpha: float = ALPHA) -> float:
    """TOST's power with ``n`` pairs when the true difference is 0: paired (``sd_b`` None,
    ``sd_a`` the sd of the per-pair differences), or Welch's with ``n`` runs a side."""
    if sd_b is None:
        return tost_power(sd_a / math.sqrt(n), n - 1.0, margin, alpha)
    return welch_tost_power(n, sd_a, sd_b, margin, alpha)


def _satterthwaite_power(n: int, sd_a: float, sd_b: float, margin: float, alpha: float) -> float:
    """Welch's TOST power approximated in one dimension (df fixed at Satterthwaite's value
    for the true sds): a quick first guess for ``pairs_needed``."""
    va, vb = sd_a**2, sd_b**2
    if va + vb == 0:
        return 1.0
    return tost_power(math.sqrt((va + vb) / n), (n - 1.0) * (va + vb) ** 2 / (va**2 + vb**2), margin, alpha)


def _smallest(power, target: float, lo: int = 2, hi: int = N_MAX) -> float:
    """The smallest n in [lo, hi] with power(n) >= target (power grows with n), by bisection."""
    if power(lo) >= target:
        return lo
    if power(hi) < target:
        return math.inf
    while hi - lo > 1:  # power(lo) < target <= power(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(mid) >= target else (mid, hi)
    return hi


def pairs_needed(sd_a: float, sd_b: float | None, margin: float, alpha: float = ALPHA,
                 power: float = POWER) -> float:
    """The smallest n >= 2 with TOST's power >= ``power`` at these sds (``power_at``; NaN
    when a sd is unknown, inf beyond ``N_MAX``)."""
    if any(s is not None and not np.isfinite(s) for s in (sd_a, sd_b)):
        return math.nan
    exact = lambda n: power_at(n, sd_a, sd_b, margin, alpha)  # noqa: E731
    if sd_b is None:
        return _smallest(exact, power)
    # Welch's: bisect the one-dimensional approximation, then step to the exact answer
    n = _smallest(lambda n: _satterthwaite_power(n, sd_a, sd_b, margin, alpha), power)
    if not np.isfinite(n):
        return _smallest(exact, power)
    n = int(n)
    for _ in range(64):
        if exact(n) < power:
            n += 1
        elif n > 2 and exact(n - 1) >= power:
            n -= 1
        else:
            return n
    return _smallest(exact, power)  # far from the approximation: bisect the exact power
