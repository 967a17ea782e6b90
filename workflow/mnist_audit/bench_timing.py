"""Timing side by side: calls interleaved (A B, then B A, ...) so that drift in machine
load hits all alike, and ratios read within one repetition, then their median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(calls: Mapping[str, Callable[[int], object]], repeats: int,
                warm_up: bool = True) -> dict[str, list[float]]:
    """Seconds of each call in each of ``repeats`` repetitions, timed side by side.

    Every repetition times each call once, alternating the order (A B C, then C B A,
    ...), so drift in machine load hits all alike. A call gets the repetition's
    number (1, 2, ...); with ``warm_up`` each is first called once with 0, untimed
    (tracing and compilation).
    """
    if warm_up:
        for fn in calls.values():
            fn(0)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(repeats):
        for name in (list(calls) if rep % 2 == 0 else list(calls)[::-1]):
            times[name].append(_time(lambda: calls[name](rep + 1)))
    return times


def ratios(times: Mapping[str, list[float]], fast: str, slow: str) -> list[float]:
    """How many times faster ``fast`` ran than ``slow``, within each repetition."""
    return [s / f for s, f in zip(times[slow], times[fast])]


def median_ratio(times: Mapping[str, list[float]], fast: str, slow: str) -> float:
    """The median over repetitions of ``ratios``: robust to a repetition hit by load."""
    return statistics.median(ratios(times, fast, slow))
