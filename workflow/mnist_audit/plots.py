"""The report's plots (seaborn on matplotlib's Agg backend), written atomically as PNG.

Every title carries the scaled-run banner when the report's runs are scaled
(``tables.is_scaled``, computed once per report and passed in as ``scaled``); the
claim's lower bound, the report's one threshold, is drawn the same way everywhere.

Every plot is drawn to be read at the width the pages show it, min(its natural width,
``COLUMN_PX``): no text smaller than ``MIN_TEXT_PX`` on screen there (``smallest_text_px``;
``LEGIBILITY`` records each plot's), and every entry is named as a reader knows it
(``entry_name``: "Andy Thomas: CNN tutorial"), never by its registry id.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from . import audit as stats
from . import registry
from .config import original_of
from .files import atomic_write_bytes
from .portcheck import DIFFERENT, EQUIVALENCE_MARGIN, EQUIVALENT, FULL_BUDGET, PORT_DRAW, sides
from .tables import SCALED_BANNER, isnan

PLOT_FILES = {
    "port_vs_original": "Port versus the author's program (TF1 graph or Keras script): full-budget learning curves, "
                        "then every row's difference (behaviour checks below)",
    "forest": "Every claim's row: mean and 95% interval on the author's measure against the claim's bound",
    "accuracy_per_seed": "Final full-test-set accuracy of every seed, with the claim's lower bound",
    "learning_curves_epoch": "Held-out accuracy vs epochs (mean and sd band over seeds)",
    "learning_curves_wall": "Held-out accuracy vs wall-clock seconds (mean and sd band over seeds)",
    "accuracy_vs_params": "Final test accuracy (mean and range over seeds) vs trainable parameters (log x)",
    "accuracy_vs_time": "Final test accuracy (mean and range over seeds) vs training time (log x)",
    "variance": "Seed, platform and test-set spreads of every architecture, in points of accuracy",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


DPI = 150
COLUMN_PX = 880  # the width a page shows a plot at, at most (GitHub's content column)
MIN_TEXT_PX = 11  # the smallest text a reader must read, in pixels on screen
# The smallest font (points) any plot here writes. A figure W inches wide shows a p-point
# text at p / 72 * COLUMN_PX / W pixels: 10 pt stays >= 11 px up to 11.1 inches, so
# every multi-panel plot is at most three panels (about 10 inches) wide.
FONT = 10
# The smallest text of every plot written in this process, in pixels on screen at the width
# the pages show it (min(natural width, COLUMN_PX)): the tests hold every plot to MIN_TEXT_PX.
LEGIBILITY: dict[str, float] = {}


def smallest_text_px(fig, width_px: int) -> float:
    """The smallest visible text of ``fig`` in on-screen pixels when its PNG (``width_px``
    wide at ``DPI``) is shown at min(width_px, COLUMN_PX). Text of a hidden panel (an
    unused cell of a grid) is not shown, so it does not count."""
    from matplotlib.text import Text

    def shown(t) -> bool:
        return (t.get_visible() and bool(t.get_text().strip())
                and (t.axes is None or t.axes.get_visible()))

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if shown(t)]
    return min(sizes, default=math.inf) * DPI / 72 * min(1.0, COLUMN_PX / width_px)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    data = buf.getvalue()
    LEGIBILITY[Path(path).name] = smallest_text_px(fig, int.from_bytes(data[16:20], "big"))  # PNG IHDR width
    plt.close(fig)
    atomic_write_bytes(Path(path), data)


CLAIM_STYLE = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.4}
LOWER_STYLE = {"color": "#c0392b", "linestyle": ":", "linewidth": 1.4}


def claim_label(arch: str, variant: str = "default") -> str:
    """"claim 99%, bound 98.5% (dotted)" where the row is judged against a claim, else ""."""
    claim = registry.get_architecture(arch).claim
    if not claim.judges(variant):
        return ""
    return f"claim {100 * claim.value:g}%, bound {100 * claim.lower:g}% (dotted)"


def _claim_lines(ax, arch: str, variant: str = "default") -> str:
    """The claim's lower bound (the report's one threshold), dotted; returns its label, which
    goes in the panel's title (a label on the line would sit under the points)."""
    label = claim_label(arch, variant)
    if label:
        ax.axhline(100 * registry.get_architecture(arch).claim.lower, **LOWER_STYLE)
    return label


def entry_name(arch: str, variant: str = "default", width: int = 40) -> str:
    """A row as a reader knows it (``report.names.name``: "Andy Thomas: CNN tutorial"), the
    tutorial on one line and the variant ("as printed in the README") on the next, each
    wrapped at ``width`` characters."""
    from .report import names

    full, display = names.name(arch, variant), registry.get_architecture(arch).display
    parts = [f"{display},", full[len(display) + 2:]] if full.startswith(f"{display}, ") else [full]
    return "\n".join(textwrap.fill(p, width, break_long_words=False) for p in parts)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width, break_long_words=False) for line in text.split("\n"))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(n / cols), cols


def _title(scaled: bool, text: str) -> str:
    return f"{text}\n[{SCALED_BANNER}]" if scaled else text


def _hide_unused(axes, used: int) -> None:
    for ax in list(axes.flat)[used:]:
        ax.set_visible(False)


def _fit_ylim(ax, values, min_span: float, pad: float = 0.15) -> None:
    """The y axis spans ``values`` (NaN ignored) and at least ``min_span``, with ``pad`` of
    its span free above and below: no point sits on the frame."""
    v = np.asarray([x for x in values if not isnan(x)], float)
    if not len(v):
        return
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    room = pad * (hi - lo)
    ax.set_ylim(lo - room, hi + room)


def _header(fig, title: str, handles: list, ncol: int) -> None:
    """Above every panel (call after the layout): one legend that serves them all, and the
    title above it."""
    ncol = ncol if fig.get_figwidth() >= 6 else min(ncol, 2)  # one panel: two columns, not a legend wider than it
    leg = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, frameon=False,
                     fontsize=FONT + 1)
    height = leg.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
    fig.suptitle(title, y=1.0 + height + 0.1 / fig.get_figheight(), va="bottom", fontsize=12)


def _mean_sd(rows: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y`` (a fraction) in percent at each ``x``: mean and sd (ddof 1) over the rows there."""
    g = (100 * rows[y].astype(float)).groupby(rows[x].astype(float)).agg(["mean", "std"]).dropna(subset=["mean"])
    return g.index.to_numpy(float), g["mean"].to_numpy(float), g["std"].to_numpy(float)


# A panel of a grid, three to a row (about 10 inches), and the characters its title's lines hold
PANEL_W = 3.3
TITLE_CHARS = 40
# Beyond this many points a curve is a line without markers (they would hide the other line)
MANY_POINTS = 20
TEST_STYLE = {"color": "#1f77b4", "linestyle": "-", "linewidth": 1.8, "zorder": 3}
VAL_STYLE = {"color": "#ff7f0e", "linestyle": "--", "linewidth": 1.6, "zorder": 2}


def plot_accuracy_per_seed(runs: pd.DataFrame, audit: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    """Every seed's final test accuracy, one panel per row of the audit, each panel's y axis
    fitted to its own runs, interval and bound (a shared axis would flatten the tutorials
    near 99% into one stripe beside a row far below its claim)."""
    plt, _ = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    nrow, ncol = _grid(len(audit))
    fig, axes = plt.subplots(nrow, ncol, figsize=(PANEL_W * ncol, 3.15 * nrow), squeeze=False)
    for i, (ax, a) in enumerate(zip(axes.flat, audit.itertuples(index=False))):
        g = runs[runs["model"] == a.model]
        acc = 100 * g["test_accuracy"].astype(float)
        ax.scatter(g["seed"], acc, s=40, color="#2c7fb8", zorder=3, linewidths=0)
        lo_x, hi_x = g["seed"].min() - 0.5, g["seed"].max() + 0.5
        ax.hlines(a.test_mean_pct, lo_x, hi_x, color="black", linewidth=1.2)
        if not isnan(a.test_ci_low_pct):
            ax.fill_between([lo_x, hi_x], a.test_ci_low_pct, a.test_ci_high_pct, color="grey", alpha=0.25,
                            linewidth=0)
        label = _claim_lines(ax, a.architecture, variant=a.variant)
        claim = registry.get_architecture(a.architecture).claim
        _fit_ylim(ax, [*acc, a.test_mean_pct, a.test_ci_low_pct, a.test_ci_high_pct]
                  + ([100 * claim.lower] if label else []), min_span=0.3)
        ax.set_xlim(lo_x, hi_x)
        ax.set_xticks(sorted(g["seed"].unique()))
        ax.set_title(entry_name(a.architecture, a.variant, TITLE_CHARS) + "\n"
                     + _wrap(f"full test set: {a.test_verdict}", TITLE_CHARS) + (f"\n{label}" if label else ""),
                     fontsize=FONT)
        ax.set_xlabel("seed", fontsize=FONT)
        ax.set_ylabel("final test accuracy (%)" if i % ncol == 0 else "", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    _hide_unused(axes, len(audit))
    fig.tight_layout()
    handles = [
        Line2D([], [], marker="o", color="#2c7fb8", linestyle="", label="one run (seed)"),
        Line2D([], [], color="black", label="mean over seeds"),
        Patch(color="grey", alpha=0.25, label="95% interval (seeds x images)"),
        Line2D([], [], **LOWER_STYLE, label="claim's lower bound"),
    ]
    _header(fig, _title(scaled, "Final test accuracy per seed, with each tutorial's claim\n"
                                "(each panel's y axis fits its own runs, interval and bound: read its ticks)"),
            handles, ncol=4)
    _save(fig, path)


def plot_learning_curves(hist: pd.DataFrame, path: str | Path, x: str, scaled: bool) -> None:
    """Held-out accuracy vs ``x`` ("epochs_seen" or "wall_seconds_mean"), one panel per model:
    test solid (on top), validation dashed, each the mean over seeds with a +-1 sd band;
    markers only where a curve has few points, every panel's x axis from 0.

    When every run is shorter than one epoch (tiny runs), epochs become training images
    seen, so the curve is not a lone dot at a fraction of an epoch.
    """
    plt, _ = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    images_axis = x == "epochs_seen" and float(hist["epochs_seen"].max()) < 1
    if images_axis:
        hist = hist.assign(images_seen=hist["epochs_seen"] * hist["n_train"])
        x = "images_seen"
    if x == "images_seen":
        short, long_label, what = "images seen", "training images seen (every run is shorter than an epoch)", \
            "images seen"
    elif x == "epochs_seen":
        short, long_label, what = "epochs", "epochs = passes over the training images", "epochs"
    else:
        short, long_label, what = ("wall-clock s", "wall-clock seconds since training start (training + per-epoch "
                                   "evaluation),\neach epoch at its mean over seeds", "wall-clock time")
    models = list(dict.fromkeys(hist["model"]))
    nrow, ncol = _grid(len(models))
    fig, axes = plt.subplots(nrow, ncol, figsize=(PANEL_W * ncol, 2.9 * nrow), squeeze=False)
    for i, (ax, model) in enumerate(zip(axes.flat, models)):
        h = hist[hist["model"] == model]
        arch, variant = h["architecture"].iloc[0], h["variant"].iloc[0]
        few = h[x].nunique() <= MANY_POINTS
        for col, style in (("val_accuracy", VAL_STYLE), ("test_accuracy", TEST_STYLE)):
            if col not in h or h[col].isna().all():
                continue
            xs, m, sd = _mean_sd(h, x, col)
            ax.plot(xs, m, **style, marker="o" if few else None, markersize=3.5)
            ax.fill_between(xs, m - sd, m + sd, color=style["color"], alpha=0.18, linewidth=0)
        label = _claim_lines(ax, arch, variant)
        ax.set_xlim(left=0)
        lo, hi = ax.get_ylim()
        _fit_ylim(ax, [lo, hi], min_span=2.0, pad=0)  # two points at least: a short curve reads
        ax.set_title(entry_name(arch, variant, TITLE_CHARS) + (f"\n{label}" if label else ""), fontsize=FONT)
        ax.set_xlabel(short, fontsize=FONT)
        ax.set_ylabel("held-out accuracy (%)" if i % ncol == 0 else "", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    _hide_unused(axes, len(models))
    fig.supxlabel(long_label, fontsize=FONT + 1)
    fig.tight_layout()
    handles = [Line2D([], [], **{k: v for k, v in TEST_STYLE.items() if k != "zorder"}, marker="o", markersize=3.5,
                      label="test set"),
               Line2D([], [], **{k: v for k, v in VAL_STYLE.items() if k != "zorder"}, marker="o", markersize=3.5,
                      label="validation set"),
               Patch(color="grey", alpha=0.3, label="+-1 sd over seeds"),
               Line2D([], [], **LOWER_STYLE, label="claim's lower bound")]
    _header(fig, _title(scaled, f"Learning curves vs {what}: mean over seeds, band = +-1 sd\n"
                                "(markers only where a curve has few points)"), handles, ncol=4)
    _save(fig, path)


# One colour and one marker per entry (14 colours that stay apart on screen, tab10's and
# four more; 13 markers, so that colour and marker together stay unique up to 182 entries)
ENTRY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#000000", "#882255", "#332288", "#f6a600")
ENTRY_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">", "p", "d")
ACCURACY_TICKS = (50, 70, 80, 90, 95, 97, 98, 99, 99.5, 99.8, 99.9, 99.95)


def _error_forward(y):
    return -np.log10(np.clip(100.0 - np.asarray(y, float), 1e-3, None))


def _error_inverse(v):
    return 100.0 - 10.0 ** (-np.asarray(v, float))


def _error_axis(ax, lo: float, hi: float) -> None:
    """y: accuracy (%), spaced by its error (100 - accuracy) on a log scale, so that 99.2%
    and 98.9% stand as far apart as 92% and 89%: the entries near 99% do not pile up."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    ax.set_yscale("function", functions=(_error_forward, _error_inverse))
    a, b = float(_error_forward(lo)), float(_error_forward(hi))
    room = 0.08 * max(b - a, 0.05)
    bottom, top = float(_error_inverse(a - room)), float(_error_inverse(b + room))
    ax.set_ylim(bottom, top)
    ticks = [t for t in ACCURACY_TICKS if bottom <= t <= top]
    if len(ticks) < 3:
        ticks = [t for t in MaxNLocator(5).tick_values(bottom, top) if bottom <= t <= top]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_locator(NullLocator())


def _dodge(xs: np.ndarray, near: float = 0.03, step: float = 0.05) -> np.ndarray:
    """Factors that set entries at (almost) the same x on a log axis side by side: within
    ``near`` decades of each other, ``step`` decades apart, centred on where they were."""
    logs = np.log10(xs)
    clusters: list[list[int]] = []
    for i in np.argsort(logs, kind="stable"):
        if clusters and logs[i] - logs[clusters[-1][-1]] < near:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    factors = np.ones(len(xs))
    for c in clusters:
        for j, i in enumerate(c):
            factors[i] = 10 ** ((j - (len(c) - 1) / 2) * step)
    return factors


def plot_accuracy_vs(runs: pd.DataFrame, path: str | Path, x: str, xlabel: str, title: str,
                     scaled: bool) -> None:
    """Every entry's final test accuracy against ``x`` (log scale): the mean over its seeds,
    bars over the seeds' range (on x too where x varies); each entry its own colour and
    marker (baselines hollow), named in the legend below. Entries that share an x (one
    architecture's variants) are set side by side."""
    plt, _ = _pyplot()
    from matplotlib.lines import Line2D

    d = runs.assign(acc=100 * runs["test_accuracy"].astype(float), _x=runs[x].astype(float))
    keys = ["architecture", "variant"] + (["device_kind"] if d["device_kind"].nunique() > 1 else [])
    rows = []
    for key, g in d.groupby(keys, sort=False):
        label = entry_name(key[0], key[1], 42) + (f" ({key[2]})" if len(key) > 2 else "")
        rows.append({"label": label, "baseline": bool(g["baseline"].astype(bool).any()),
                     "x": float(g["_x"].mean()), "x_lo": float(g["_x"].min()), "x_hi": float(g["_x"].max()),
                     "y": float(g["acc"].mean()), "y_lo": float(g["acc"].min()), "y_hi": float(g["acc"].max())})
    s = pd.DataFrame(rows)
    fixed_x = bool((s["x_hi"] == s["x_lo"]).all())  # parameters: one x per entry, so side by side
    shown_x = s["x"] * (_dodge(s["x"].to_numpy()) if fixed_x else 1.0)
    fig, ax = plt.subplots(figsize=(9.0, 5.2))
    for i, (r, sx) in enumerate(zip(s.itertuples(index=False), shown_x)):
        color, marker = ENTRY_COLORS[i % len(ENTRY_COLORS)], ENTRY_MARKERS[i % len(ENTRY_MARKERS)]
        ax.errorbar([sx], [r.y], yerr=[[r.y - r.y_lo], [r.y_hi - r.y]],
                    xerr=None if fixed_x else [[r.x - r.x_lo], [r.x_hi - r.x]],
                    fmt=marker, color=color, markerfacecolor="white" if r.baseline else color,
                    markeredgecolor=color, markeredgewidth=1.6, markersize=8, elinewidth=1.3, capsize=3,
                    label=r.label, zorder=3)
    ax.set_xscale("log")
    lo, hi = float(d["_x"].min()), float(d["_x"].max())
    if fixed_x:
        lo, hi = float(shown_x.min()), float(shown_x.max())
    ax.set_xlim(lo / 10 ** (0.06 * max(np.log10(hi / lo), 1)), hi * 10 ** (0.06 * max(np.log10(hi / lo), 1)))
    if lo > 0 and hi / lo < 30:  # less than ~1.5 decades: label the ticks plainly (1.2, not 1.2x10^0)
        from matplotlib.ticker import FuncFormatter

        plain = FuncFormatter(lambda v, _: f"{v:,.3g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=FONT)
    _error_axis(ax, float(s["y_lo"].min()), float(s["y_hi"].max()))
    ax.set_xlabel(xlabel + ("\n(an architecture's variants side by side)" if fixed_x and len(s) > 1 else ""))
    ax.set_ylabel("final test accuracy (%)\n(spaced by the error, 100 - accuracy, on a log scale)")
    ax.set_title(_title(scaled, title) + "\nmarker: the mean over seeds; bars: the seeds' range; hollow: baselines",
                 fontsize=12)
    handles = [Line2D([], [], linestyle="", marker=ENTRY_MARKERS[i % len(ENTRY_MARKERS)], markersize=8,
                      color=ENTRY_COLORS[i % len(ENTRY_COLORS)], markeredgewidth=1.6,
                      markerfacecolor="white" if r.baseline else ENTRY_COLORS[i % len(ENTRY_COLORS)], label=r.label)
               for i, r in enumerate(s.itertuples(index=False))]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2 if fixed_x else -0.16), ncol=2,
              frameon=False, fontsize=FONT, handletextpad=0.3, columnspacing=1.5, labelspacing=0.7)
    _save(fig, path)


def _measure(r) -> str:
    return f"{'validation' if r.measure == 'val' else 'test'} set, {r.reading}"


def plot_forest(audit_table: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    """Every row's mean and 95% interval on its author's measure, against its claim's
    bound, on one shared axis (baselines in grey); the verdict and the measure beside it."""
    plt, _ = _pyplot()
    from matplotlib.lines import Line2D

    d = audit_table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(5.4, 0.56 * len(d) + 1.0))
    ys = np.arange(len(d))[::-1]
    trans = ax.get_yaxis_transform()
    reach = []
    for y, r in zip(ys, d.itertuples(index=False)):
        color = "#7f7f7f" if r.baseline else "#2c7fb8"
        if not isnan(r.ci_low_pct):
            ax.plot([r.ci_low_pct, r.ci_high_pct], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
            reach += [r.ci_low_pct, r.ci_high_pct]
        ax.plot([r.mean_pct], [y], "o", color=color, markersize=6)
        reach.append(r.mean_pct)
        if not isnan(r.claim_lower_pct) and not r.verdict.startswith(stats.NO_CLAIM):
            ax.plot([r.claim_lower_pct] * 2, [y - 0.35, y + 0.35], color=LOWER_STYLE["color"], linewidth=1.6)
            reach.append(r.claim_lower_pct)
        ax.text(1.03, y, f"{_wrap(r.verdict, 34)}\n{_measure(r)}", transform=trans, fontsize=FONT, va="center",
                ha="left", linespacing=1.15)
    ax.set_yticks(ys, [entry_name(r.architecture, r.variant, 40) for r in d.itertuples(index=False)],
                  fontsize=FONT)
    ax.set_ylim(-0.6, len(d) - 0.4)
    if reach:
        lo, hi = float(np.nanmin(reach)), float(np.nanmax(reach))
        room = 0.05 * max(hi - lo, 0.5)
        ax.set_xlim(lo - room, hi + room)
    ax.tick_params(axis="x", labelsize=FONT + 1)
    ax.set_xlabel("accuracy on the author's measure (%):\nmean over seeds and 95% interval (seeds x images)",
                  fontsize=FONT + 1)
    ax.legend(handles=[Line2D([], [], color="#2c7fb8", marker="o", label="tutorial"),
                       Line2D([], [], color="#7f7f7f", marker="o", label="baseline"),
                       Line2D([], [], color=LOWER_STYLE["color"], label="claim's lower bound")],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=FONT + 1, frameon=False)
    ax.set_title(_title(scaled, "Each claim against its bound"), fontsize=12, pad=34)
    _save(fig, path)


ORIGINAL_STYLE = {"color": "#ff7f0e", "linestyle": "-", "linewidth": 3.2, "alpha": 0.8, "zorder": 2}
PORT_STYLE = {"color": "#1f4e9c", "linestyle": (0, (3.5, 2)), "linewidth": 1.6, "zorder": 3}


def plot_port_vs_original(hist: pd.DataFrame, table: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    """Full-budget rows first: test accuracy after each epoch, port and original overlaid
    (mean over the row's runs, +-1 sd; the original wide and solid, the port dashed on top,
    one legend above every panel); then one shared panel of every row's difference
    (original - port) with its 95% interval against the margin, behaviour checks below."""
    plt, _ = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if table.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No originals in these runs (config key originals).", ha="center", va="center")
        _save(fig, path)
        return
    full = table[table["row_kind"] == FULL_BUDGET]
    n_rows, cols = _grid(len(full)) if len(full) else (0, 3)
    width = PANEL_W * 3  # the difference panel's names, axis and verdicts need three panels' width
    row_h, axes_h = 3.35, 2.05  # each row of curves: the panel, and above it its title and the row above's ticks
    slots = len(table) + len(set(table["row_kind"]))
    diff_h = 0.38 * slots + 0.3
    foot = 1.0  # the difference panel's axis label
    gap = 1.5 if n_rows else 0.6  # the difference panel's title, below the last row's axis label
    height = n_rows * row_h + gap + diff_h + foot
    fig = plt.figure(figsize=(width, height))
    if n_rows:
        grid = fig.add_gridspec(n_rows, cols, left=0.075, right=0.075 + 0.91 * cols / 3, top=1 - 0.95 / height,
                                bottom=(foot + diff_h + gap) / height, hspace=(row_h - axes_h) / axes_h, wspace=0.22)
    for i, r in enumerate(full.itertuples(index=False)):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        rows = hist[(hist["architecture"] == r.architecture) & (hist["budget_scale"] == r.budget_scale)]
        port, orig = sides(rows[rows["variant"] == r.variant], rows[rows["variant"] == r.original_variant],
                           paired=r.start == PORT_DRAW)
        for side, style in ((orig, ORIGINAL_STYLE), (port, PORT_STYLE)):
            if not len(side):
                continue
            xs, m, sd = _mean_sd(side, "epochs_seen", "test_accuracy")
            few = len(xs) <= MANY_POINTS
            ax.plot(xs, m, **style, marker="o" if few and style is PORT_STYLE else None, markersize=3)
            ax.fill_between(xs, m - sd, m + sd, color=style["color"], alpha=0.15, linewidth=0)
        ax.set_xlim(left=0)
        lo, hi = ax.get_ylim()
        _fit_ylim(ax, [lo, hi], min_span=2.0, pad=0)  # two points at least: a short curve reads
        ax.set_title(entry_name(r.architecture, r.variant, TITLE_CHARS) + "\n"
                     + _wrap(f"{r.start}: {r.verdict}", TITLE_CHARS) + f"\n({r.pairs_by_kind})", fontsize=FONT)
        ax.set_xlabel("epochs", fontsize=FONT)
        ax.set_ylabel("test accuracy (%)" if i % cols == 0 else "", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    diff = fig.add_gridspec(1, 1, left=2.95 / width, right=1 - 2.3 / width, top=(foot + diff_h) / height,
                            bottom=foot / height)
    _difference_panel(fig.add_subplot(diff[0, 0]), table)
    handles = [Line2D([], [], **{k: v for k, v in PORT_STYLE.items() if k != "zorder"}, marker="o", markersize=3,
                      label="port (Keras 3), dashed, on top"),
               Line2D([], [], **{k: v for k, v in ORIGINAL_STYLE.items() if k != "zorder"},
                      label="original (the author's program)"),
               Patch(color="grey", alpha=0.3, label="+-1 sd over the row's runs")]
    title = _title(scaled, "Port (Keras 3) versus the author's program (TF1 graph or Keras script):\n"
                           "test accuracy after each epoch, mean over the row's runs")
    if n_rows:
        _header(fig, title, handles, ncol=3)
    else:
        fig.suptitle(title, y=1.0, va="bottom", fontsize=12)
    _save(fig, path)


VERDICT_COLORS = {EQUIVALENT: "#1a9850", DIFFERENT: "#c0392b"}


def _symlog_limits(lo: float, hi: float, linthresh: float, linscale: float) -> tuple[float, float]:
    """``lo``..``hi`` with 5% room either side, measured on the symlog axis."""
    from matplotlib.scale import SymmetricalLogTransform

    t = SymmetricalLogTransform(10, linthresh, linscale)
    a, b = t.transform_non_affine(np.array([lo, hi], float))
    room = 0.05 * (b - a)
    new = t.inverted().transform_non_affine(np.array([a - room, b + room]))
    return float(new[0]), float(new[1])


def _spaced(ticks: list[float], lo: float, hi: float, linthresh: float, linscale: float) -> list[float]:
    """The ``ticks`` (in order of preference) at least 7% of the symlog axis apart, so no
    two labels run into each other."""
    from matplotlib.scale import SymmetricalLogTransform

    t = SymmetricalLogTransform(10, linthresh, linscale)
    a, b = t.transform_non_affine(np.array([lo, hi], float))
    kept: list[tuple[float, float]] = []
    for tick in ticks:
        at = float(t.transform_non_affine(np.array([tick], float))[0])
        if all(abs(at - k) >= 0.07 * (b - a) for _, k in kept):
            kept.append((tick, at))
    return sorted(tick for tick, _ in kept)


def _difference_panel(ax, table: pd.DataFrame) -> None:
    """Every row's original - port difference (points) and 95% interval, the +-margin band
    shaded; full-budget rows on top, behaviour checks below a rule, each group under its
    name. The axis is linear within +-0.5 points and logarithmic beyond (symlog) when an
    interval reaches past 2 points; its limits hold every interval whole."""
    groups_ = list(dict.fromkeys(table["row_kind"]))
    slots = len(table) + len(groups_)  # one line per row, and one per group for its name
    y, ys, trans = slots - 1, [], ax.get_yaxis_transform()
    for kind in groups_:
        rows = table[table["row_kind"] == kind]
        name = kind if kind == FULL_BUDGET else \
            f"{kind}s (budget x{'/'.join(f'{v:g}' for v in sorted(set(rows['budget_scale'])))})"
        if y != slots - 1:
            ax.axhline(y + 0.5, color="black", linewidth=0.8, linestyle="--")
        ax.text(0.01, y, name, transform=trans, fontsize=FONT, style="italic", va="center", ha="left")
        ys += list(range(y - 1, y - 1 - len(rows), -1))
        y -= len(rows) + 1
    margin = 100 * EQUIVALENCE_MARGIN
    ax.axvspan(-margin, margin, color="#1a9850", alpha=0.12, linewidth=0)
    ax.axvline(0, color="black", linewidth=0.8)
    ordered = pd.concat([table[table["row_kind"] == kind] for kind in groups_])
    for y, r in zip(ys, ordered.itertuples(index=False)):
        color = VERDICT_COLORS.get(r.verdict, "#7f7f7f")
        if not isnan(r.diff_low_pt):
            ax.plot([r.diff_low_pt, r.diff_high_pt], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
        ax.plot([r.difference_pt], [y], "o", color=color, markersize=6)
        needed = f", {r.pairs_needed} needed" if np.isfinite(r.n_needed) else ""
        ax.text(1.02, y, f"{r.verdict}\n{r.pairs} pairs{needed}", transform=trans, fontsize=FONT, va="center",
                ha="left", linespacing=1.1, color=VERDICT_COLORS.get(r.verdict, "#4d4d4d"))

    def label(r) -> str:
        name = entry_name(r.architecture, r.variant, 40).split("\n")
        draw = "port's draw" if r.start == PORT_DRAW else "own draw"
        return "\n".join([name[0].rstrip(","), ", ".join(name[1:] + [draw])])

    ax.set_yticks(ys, [label(r) for r in ordered.itertuples(index=False)], fontsize=FONT, linespacing=1.1)
    ax.set_ylim(-0.7, slots - 0.3)
    values = table[["diff_low_pt", "diff_high_pt", "difference_pt"]].to_numpy(float)
    lo, hi = min(np.nanmin(values), -margin), max(np.nanmax(values), margin)
    reach = max(abs(lo), abs(hi))
    if reach > 2:
        ax.set_xscale("symlog", linthresh=0.5, linscale=1.5)
        lo, hi = _symlog_limits(lo, hi, 0.5, 1.5)
        ticks = _spaced([t for t in (0, 0.2, -0.2, 0.5, -0.5, 2, -2, 5, -5, 10, -10, 20, -20, 50, -50)
                         if lo <= t <= hi], lo, hi, 0.5, 1.5)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        scale = "linear within +-0.5, logarithmic beyond"
    else:
        room = 0.05 * (hi - lo)
        lo, hi = lo - room, hi + room
        scale = "linear"
    ax.set_xlim(lo, hi)
    ax.tick_params(axis="x", labelsize=FONT + 1)
    ax.set_xlabel(f"original - port (points of test accuracy; {scale}):\nmean and 95% interval; "
                  "pairs needed: for 80% TOST power, 5 at least", fontsize=FONT + 1)
    ax.set_title(f"Every row of the table: original - port (shaded: the equivalence margin, +-{margin:g} points)",
                 fontsize=FONT + 1)


def make_plots(runs: pd.DataFrame, audit: pd.DataFrame, hist: pd.DataFrame, pvo: pd.DataFrame,
               outputs: Mapping[str, str], scaled: bool, pvo_hist: pd.DataFrame | None = None) -> None:
    """Every plot named in ``outputs`` (``pvo``: the port-versus-original table; ``pvo_hist``:
    its histories, when they include a study's beyond ``hist``). The TF1 originals appear
    only in the port-versus-original plot: the others show the ports, as the claims do."""
    if "port_vs_original" in outputs:
        plot_port_vs_original(hist if pvo_hist is None else pvo_hist, pvo, outputs["port_vs_original"], scaled)
    runs = runs[[original_of(v) is None for v in runs["variant"]]]
    hist = hist[[original_of(v) is None for v in hist["variant"]]]
    plot_accuracy_per_seed(runs, audit, outputs["accuracy_per_seed"], scaled)
    if "forest" in outputs:
        plot_forest(audit, outputs["forest"], scaled)
    plot_learning_curves(hist, outputs["learning_curves_epoch"], "epochs_seen", scaled)
    plot_learning_curves(hist, outputs["learning_curves_wall"], "wall_seconds_mean", scaled)
    plot_accuracy_vs(runs, outputs["accuracy_vs_params"], "params", "trainable parameters (log scale)",
                     "Final test accuracy vs model size", scaled)
    plot_accuracy_vs(runs, outputs["accuracy_vs_time"], "total_train_seconds",
                     "training time per run (seconds, log scale; excludes evaluation)",
                     "Final test accuracy vs training time", scaled)


# Up to four colours that stay apart on screen and in grey (ColorBrewer's Dark2, colour-blind safe)
SERIES_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a")


def plot_tutorial(arch: str, runs: pd.DataFrame, audit: pd.DataFrame, hist: pd.DataFrame, path: str | Path,
                  scaled: bool) -> None:
    """One tutorial's page plot: every seed's final test accuracy per variant (mean and 95%
    interval beside it, the claim's bound dotted), and its test accuracy after each epoch
    (mean over seeds, band +-1 sd). ``runs``, ``audit`` and ``hist``: the whole report's."""
    from .report import names

    plt, _ = _pyplot()
    rows = audit[audit["architecture"] == arch].reset_index(drop=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.8, 3.6), gridspec_kw={"width_ratios": [1, 1.35]})
    labels = {}
    for i, r in enumerate(rows.itertuples(index=False)):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        labels[r.variant] = variant_name = names.variant_label(arch, r.variant)
        g = runs[(runs["architecture"] == arch) & (runs["variant"] == r.variant)].sort_values("seed")
        x0 = i * (len(g) + 2)
        xs = x0 + np.arange(len(g))
        left.scatter(xs, 100 * g["test_accuracy"].astype(float), s=36, color=color, zorder=3, label=variant_name)
        mid = x0 + len(g)
        if not isnan(r.test_ci_low_pct):
            left.errorbar([mid], [r.test_mean_pct], yerr=[[r.test_mean_pct - r.test_ci_low_pct],
                                                        [r.test_ci_high_pct - r.test_mean_pct]],
                          fmt="D", color=color, markersize=6, capsize=4, linewidth=1.6, zorder=3)
        h = hist[(hist["architecture"] == arch) & (hist["variant"] == r.variant)]
        if len(h):
            curve = h.groupby("epochs_seen")["test_accuracy"].agg(["mean", "std"]).reset_index()
            x, m, sd = curve["epochs_seen"], 100 * curve["mean"], 100 * curve["std"].fillna(0)
            right.plot(x, m, color=color, linewidth=1.8, marker="o" if len(curve) <= 20 else None, markersize=4,
                       label=variant_name)
            right.fill_between(x, m - sd, m + sd, color=color, alpha=0.2, linewidth=0)
    bound = claim_label(arch, rows["variant"].iloc[0]) if len(rows) else ""
    claim = registry.get_architecture(arch).claim
    for ax in (left, right):
        if claim.lower is not None:
            ax.axhline(100 * claim.lower, **LOWER_STYLE)
    # each panel's own range, with room above and below (no point on an edge)
    for ax in (left, right):
        lo, hi = ax.get_ylim()
        pad = max(0.08 * (hi - lo), 0.05)
        ax.set_ylim(lo - pad, min(hi + pad, 100.0 + pad))
    if len(hist[hist["architecture"] == arch]):
        finals = hist[hist["architecture"] == arch].groupby(["variant", "epochs_seen"])["test_accuracy"].mean()
        late = 100 * finals[finals.index.get_level_values(1) >= 0.2 * finals.index.get_level_values(1).max()]
        keep = [100 * claim.lower] if claim.lower is not None else []
        low = min([float(late.min())] + keep)
        high = max([float(late.max())] + keep)
        pad = max(0.1 * (high - low), 0.05)
        right.set_ylim(low - pad, high + pad)
    ticks = [i * (len(runs[(runs["architecture"] == arch) & (runs["variant"] == v)]) + 2)
             + len(runs[(runs["architecture"] == arch) & (runs["variant"] == v)]) / 2 - 0.5
             for i, v in enumerate(rows["variant"])]
    left.set_xticks(ticks, [f"{labels[v]}\n(seeds, then mean)" for v in rows["variant"]], fontsize=9)
    left.set_ylabel("final test accuracy (%)", fontsize=10)
    left.set_title("Every run, and the mean with its 95% interval", fontsize=10)
    right.set_xlabel("epochs (passes over the training images)", fontsize=10)
    right.set_ylabel("test accuracy (%)", fontsize=10)
    right.set_title("Test accuracy while training (band: +-1 sd)", fontsize=10)
    if len(rows) > 1:
        right.legend(fontsize=9, frameon=False, loc="lower right")
    for ax in (left, right):
        ax.tick_params(labelsize=9)
    fig.suptitle(_title(scaled, f"{names.name(arch)}" + (f": {bound}" if bound else "")), fontsize=11)
    fig.tight_layout()
    _save(fig, path)
