"""The report's plots (seaborn on matplotlib's Agg backend), written atomically as PNG.

Every title carries the scaled-run banner when the report's runs are scaled
(``tables.is_scaled``, computed once per report and passed in as ``scaled``); the
claim's lower bound, the report's one threshold, is drawn the same way everywhere.
"""

from __future__ import annotations

import io
import math
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
    "accuracy_vs_params": "Final test accuracy vs trainable parameters (log x)",
    "accuracy_vs_time": "Final test accuracy vs training time (log x)",
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
# The smallest text of every plot written in this process, in pixels on screen at the width
# the pages show it (min(natural width, COLUMN_PX)): the tests hold every plot to 11 px.
LEGIBILITY: dict[str, float] = {}


def smallest_text_px(fig, width_px: int) -> float:
    """The smallest visible text of ``fig`` in on-screen pixels when its PNG (``width_px``
    wide at ``DPI``) is shown at min(width_px, COLUMN_PX)."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
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
        ax.hlines(a.test_mean_pct, lo_x, hi_x, color="black", linewidth=1.2)
        if not isnan(a.test_ci_low_pct):
            ax.fill_between([lo_x, hi_x], a.test_ci_low_pct, a.test_ci_high_pct, color="grey", alpha=0.25,
                            linewidth=0)
        label = _claim_lines(ax, a.architecture, variant=a.variant)
        ax.set_xlim(lo_x, hi_x)
        ax.set_xticks(sorted(g["seed"].unique()))
        ax.set_title(f"{a.model}\nfull test set: {a.test_verdict}" + (f"\n{label}" if label else ""), fontsize=9)
        ax.set_xlabel("seed")
        ax.set_ylabel("final test accuracy (%)")
    for ax in list(axes.flat)[len(audit):]:
        ax.set_visible(False)
    span = _one_span([(ax, not a.baseline) for ax, a in zip(axes.flat, audit.itertuples(index=False))])
    handles = [
        Line2D([], [], marker="o", color="#2c7fb8", linestyle="", label="one run (seed)"),
        Line2D([], [], color="black", label="mean over seeds"),
        Patch(color="grey", alpha=0.25, label="95% interval (seeds x images)"),
        Line2D([], [], **LOWER_STYLE, label="claim's lower bound"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(_title(scaled, "Final test accuracy per seed, with each tutorial's claim\n"
                                f"(every panel's y axis spans the same {span:.1f} points; the tutorials' the same range)"))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def _one_span(axes: list[tuple[object, bool]]) -> float:
    """One y span (points of accuracy) for every panel, so that spreads compare by eye: the
    widest panel's, or the range the shared panels (flag True: the tutorials) need
    together; those share that range, the others keep their middle. Returns the span."""
    limits = {ax: ax.get_ylim() for ax, _ in axes}
    shared = [ax for ax, flag in axes if flag]
    together = (min(limits[ax][0] for ax in shared), max(limits[ax][1] for ax in shared)) if shared else None
    span = max([hi - lo for lo, hi in limits.values()] + ([together[1] - together[0]] if together else []))
    for ax, flag in axes:
        lo, hi = together if flag else limits[ax]
        top = min((lo + hi + span) / 2, max(100.0, hi))  # no room above 100% unless the data needs it
        ax.set_ylim(top - span, top)
    return span


def plot_learning_curves(hist: pd.DataFrame, path: str | Path, x: str, scaled: bool) -> None:
    """Held-out accuracy vs ``x`` ("epochs_seen" or "wall_seconds_mean"), one facet per model.

    When every run is shorter than one epoch (tiny runs), epochs become training images
    seen, so the curve is not a lone dot at a fraction of an epoch.
    """
    plt, sns = _pyplot()
    images_axis = x == "epochs_seen" and float(hist["epochs_seen"].max()) < 1
    if images_axis:
        hist = hist.assign(images_seen=hist["epochs_seen"] * hist["n_train"])
        x = "images_seen"
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
    var_of = dict(zip(hist["model"], hist["variant"]))
    g.set_titles("{col_name}")
    for name, ax in g.axes_dict.items():
        label = _claim_lines(ax, arch_of[name], variant=var_of[name])
        if label:
            ax.set_title(f"{name}: {label}", fontsize=9)
    if x == "images_seen":
        short, long_label, what = "images seen", "training images seen (every run is shorter than an epoch)", \
            "images seen"
    elif x == "epochs_seen":
        short, long_label, what = "epochs", "epochs = passes over the training images", "epochs"
    else:
        short, long_label, what = ("wall-clock s", "wall-clock seconds since training start (training + per-epoch "
                                   "evaluation), each epoch at its mean over seeds", "wall-clock time")
    g.set_axis_labels(short, "held-out accuracy (%)")
    g.figure.supxlabel(long_label, y=-0.02, fontsize=10)
    g.figure.suptitle(_title(scaled, f"Learning curves vs {what}: mean over seeds, band = +-1 sd"),
                      y=1.01, va="bottom")
    _save(g.figure, path)


def plot_accuracy_vs(runs: pd.DataFrame, path: str | Path, x: str, xlabel: str, title: str,
                     scaled: bool) -> None:
    plt, sns = _pyplot()
    d = runs.assign(acc=100 * runs["test_accuracy"])
    fig, ax = plt.subplots(figsize=(8, 5))
    # one marker per architecture (baselines hollow), named in the legend, not on the points
    d = d.assign(kind=np.where(d["baseline"].astype(bool), "baseline", "tutorial"))
    style = {"device_kind": None} if d["device_kind"].nunique() < 2 else {"size": "device_kind"}
    sns.scatterplot(data=d, x=x, y="acc", hue="model", style="kind", markers={"tutorial": "o", "baseline": "X"},
                    s=70, ax=ax, **{k: v for k, v in style.items() if v})
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


def plot_forest(audit_table: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    """Every row's mean and 95% interval on its author's measure, against its claim's
    bound, on one shared axis (baselines in grey)."""
    plt, _ = _pyplot()
    d = audit_table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(d) + 1.6))
    ys = np.arange(len(d))[::-1]
    for y, r in zip(ys, d.itertuples(index=False)):
        color = "#7f7f7f" if r.baseline else "#2c7fb8"
        if not isnan(r.ci_low_pct):
            ax.plot([r.ci_low_pct, r.ci_high_pct], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
        ax.plot([r.mean_pct], [y], "o", color=color, markersize=6)
        if not isnan(r.claim_lower_pct) and not r.verdict.startswith(stats.NO_CLAIM):
            ax.plot([r.claim_lower_pct] * 2, [y - 0.35, y + 0.35], color=LOWER_STYLE["color"], linewidth=1.6)
    labels = [f"{r.model} ({'val' if r.measure == 'val' else 'test'}, {r.reading}): {r.verdict}"
              for r in d.itertuples(index=False)]
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel("accuracy on the author's measure (%): mean over seeds and 95% interval (seeds x images)")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], color="#2c7fb8", marker="o", label="tutorial"),
                       Line2D([], [], color="#7f7f7f", marker="o", label="baseline"),
                       Line2D([], [], color=LOWER_STYLE["color"], label="claim's lower bound")],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(_title(scaled, "Each claim against its bound"))
    _save(fig, path)


def plot_port_vs_original(hist: pd.DataFrame, table: pd.DataFrame, path: str | Path, scaled: bool) -> None:
    """Full-budget rows first: test accuracy after each epoch, port and original overlaid
    (mean over the row's runs, +-1 sd); then one shared panel of every row's difference
    (original - port) with its 95% interval against the margin, behaviour checks below."""
    plt, sns = _pyplot()
    from matplotlib.lines import Line2D

    from .portcheck import EQUIVALENCE_MARGIN

    if table.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No originals in these runs (config key originals).", ha="center", va="center")
        _save(fig, path)
        return
    full = table[table["row_kind"] == FULL_BUDGET]
    n_rows, cols = _grid(len(full)) if len(full) else (0, 2)
    forest_height = 0.32 * (len(table) + 2) + 1.3
    fig = plt.figure(figsize=(3.6 * max(cols, 2), 3.1 * n_rows + forest_height + 0.6))
    grid = fig.add_gridspec(n_rows + 1, cols, height_ratios=[3.1] * n_rows + [forest_height], hspace=0.55, top=0.94,
                            wspace=0.3)
    for i, r in enumerate(full.itertuples(index=False)):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        rows = hist[(hist["architecture"] == r.architecture) & (hist["budget_scale"] == r.budget_scale)]
        port, orig = sides(rows[rows["variant"] == r.variant], rows[rows["variant"] == r.original_variant],
                           paired=r.start == PORT_DRAW)
        d = pd.concat([port.assign(side="port"), orig.assign(side="original")], ignore_index=True)
        sns.lineplot(data=d.assign(acc=100 * d["test_accuracy"]), x="epochs_seen", y="acc", hue="side",
                     hue_order=["port", "original"], errorbar="sd", marker="o", markersize=4, ax=ax, legend=i == 0)
        ax.set_title(f"{r.model}, {r.start}\n{r.verdict} ({r.pairs_by_kind})", fontsize=9)
        ax.set_xlabel("epochs")
        ax.set_ylabel("test accuracy (%)")
    _difference_panel(fig.add_subplot(grid[n_rows, :]), table)
    fig.suptitle(_title(scaled, "Port (Keras 3) versus the author's program (TF1 graph or Keras script): "
                                "mean over the row's runs, +-1 sd"),
                 y=0.97 if n_rows else 1.0, va="bottom")
    _save(fig, path)


VERDICT_COLORS = {EQUIVALENT: "#1a9850", DIFFERENT: "#c0392b"}


def _difference_panel(ax, table: pd.DataFrame) -> None:
    """Every row's original - port difference (points) and 95% interval, the +-margin band
    shaded; full-budget rows on top, behaviour checks below a rule, each group under its
    name. The axis is linear within +-0.5 points and logarithmic beyond (symlog) when an
    interval reaches past 2 points."""
    groups_ = list(dict.fromkeys(table["row_kind"]))
    slots = len(table) + len(groups_)  # one line per row, and one per group for its name
    y, ys, trans = slots - 1, [], ax.get_yaxis_transform()
    for kind in groups_:
        rows = table[table["row_kind"] == kind]
        name = kind if kind == FULL_BUDGET else \
            f"{kind}s (budget x{'/'.join(f'{v:g}' for v in sorted(set(rows['budget_scale'])))})"
        if y != slots - 1:
            ax.axhline(y + 0.5, color="black", linewidth=0.8, linestyle="--")
        ax.text(0.005, y, name, transform=trans, fontsize=8, style="italic", va="center", ha="left")
        ys += list(range(y - 1, y - 1 - len(rows), -1))
        y -= len(rows) + 1
    margin = 100 * EQUIVALENCE_MARGIN
    ax.axvspan(-margin, margin, color="#1a9850", alpha=0.12, linewidth=0, label=f"margin +-{margin:g} pt")
    ax.axvline(0, color="black", linewidth=0.8)
    ordered = pd.concat([table[table["row_kind"] == kind] for kind in groups_])
    for y, r in zip(ys, ordered.itertuples(index=False)):
        color = VERDICT_COLORS.get(r.verdict, "#7f7f7f")
        if not isnan(r.diff_low_pt):
            ax.plot([r.diff_low_pt, r.diff_high_pt], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
        ax.plot([r.difference_pt], [y], "o", color=color, markersize=6)
        needed = f", {r.pairs_needed} needed" if np.isfinite(r.n_needed) else ""
        ax.text(1.01, y, f"{r.verdict}: {r.pairs} pairs{needed}", transform=trans, fontsize=8, va="center",
                ha="left", color=VERDICT_COLORS.get(r.verdict, "#4d4d4d"))
    ax.set_yticks(ys, [f"{r.model}, {'port' if r.start == PORT_DRAW else 'own'} draw"
                       for r in ordered.itertuples(index=False)], fontsize=8)
    ax.set_ylim(-0.7, slots - 0.3)
    reach = np.nanmax(np.abs(table[["diff_low_pt", "diff_high_pt", "difference_pt"]].to_numpy(float)))
    if reach > 2:
        ax.set_xscale("symlog", linthresh=0.5, linscale=1.5)
        ticks = [t for t in (-10, -5, -2, -0.5, -0.2, 0, 0.2, 0.5, 2, 5, 10) if abs(t) <= max(reach * 1.1, 0.5)]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        scale = "linear within +-0.5, logarithmic beyond"
    else:
        scale = "linear"
    ax.set_xlabel(f"original - port (points of test accuracy; {scale}): mean and 95% interval; "
                  "pairs needed: for 80% TOST power, 5 at least")
    ax.set_title("Every row of the table: original - port", fontsize=9)
    ax.legend(loc="lower right", fontsize=8, frameon=False)


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
        variant_name = "as published" if r.variant == "default" else \
            registry.get_architecture(arch).variant_names.get(r.variant, r.variant)
        labels[r.variant] = variant_name
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
