"""The report's plots, drawn from the published records (audit/): legible at the width the
pages show them, every entry named as a reader knows it, and none of the defects a reader
met (look-alike colours, seeds on top of each other, a hidden line, an interval off its
axis, a panel squeezed into a stripe, a point on the frame)."""

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from mnist_audit import audit as stats
from mnist_audit import plots, registry, variance
from mnist_audit.config import original_of
from mnist_audit.portcheck import port_vs_original
from mnist_audit.report import names
from mnist_audit.runtable import load_histories
from mnist_audit.tables import is_scaled, read_runs

REPORT = ROOT / "audit" / "report"
TUTORIALS = ("tf_quickstart", "keras_mnist_cnn", "softmax_regression")  # one variant, two, and a short curve


@pytest.fixture(scope="module")
def published():
    runs = read_runs(REPORT / "runs.csv")
    runs = runs[runs["platform"].eq("default")].assign(run_dir=lambda d: [str(ROOT / p) for p in d["run_dir"]])
    runs = runs.reset_index(drop=True)
    study = read_runs(REPORT / "portcheck_runs.csv").assign(run_dir=lambda d: [str(ROOT / p) for p in d["run_dir"]])
    hist = load_histories(runs, [Path(d) / "history.csv" for d in runs["run_dir"]])
    pvo_hist = pd.concat([hist, load_histories(study, [Path(d) / "history.csv" for d in study["run_dir"]])],
                         ignore_index=True)
    platform_runs = read_runs(REPORT / "platform_runs.csv")
    return {"runs": runs, "audit": stats.claim_audit(runs), "hist": hist, "pvo_hist": pvo_hist,
            "pvo": port_vs_original(pd.concat([runs, study], ignore_index=True)),
            "spreads": variance.variance_table(variance.study_runs(runs, platform_runs)), "scaled": is_scaled(runs)}


@pytest.fixture(scope="module")
def drawn(published, tmp_path_factory):
    """Every plot of the report (and three tutorials' page plots), drawn from the published
    records: {file name: (figure, PNG width in pixels)}."""
    out = tmp_path_factory.mktemp("plots")
    figures, save = {}, plots._save

    def keep(fig, path):
        save(fig, path)
        data = Path(path).read_bytes()
        figures[Path(path).name] = (fig, int.from_bytes(data[16:20], "big"))

    p = published
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", keep)
        plots.make_plots(p["runs"], p["audit"], p["hist"], p["pvo"], {k: out / f"{k}.png" for k in plots.PLOT_FILES},
                         p["scaled"], p["pvo_hist"])
        variance.plot_variance(p["spreads"], out / "variance.png", p["scaled"])
        for arch in TUTORIALS:
            plots.plot_tutorial(arch, p["runs"], p["audit"], p["hist"], out / f"tutorial_{arch}.png", p["scaled"])
    return figures


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())]


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def _on_screen(fig, width_px: int) -> float:
    """Screen pixels per figure inch at the width the page shows the PNG."""
    return plots.DPI * min(1.0, plots.COLUMN_PX / width_px)


def test_every_plot_is_legible_at_the_width_the_page_shows_it(drawn):
    assert set(drawn) >= {f"{k}.png" for k in plots.PLOT_FILES} | {f"tutorial_{a}.png" for a in TUTORIALS}
    for name, (fig, width) in drawn.items():
        px = plots.smallest_text_px(fig, width)
        assert px >= plots.MIN_TEXT_PX, f"{name}: smallest text {px:.1f} px on screen at {min(width, 880)} px"
        assert plots.LEGIBILITY[name] == pytest.approx(px)


def test_smallest_text_counts_only_what_is_shown():
    plt, _ = plots._pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.8, 3))
    a.set_title("shown", fontsize=12)
    b.set_title("hidden", fontsize=4)
    b.set_visible(False)
    a.tick_params(labelsize=12)
    a.set_xlabel("x", fontsize=12)
    a.set_ylabel("y", fontsize=12)
    assert plots.smallest_text_px(fig, 1320) == pytest.approx(12 * 150 / 72 * 880 / 1320)
    assert plots.smallest_text_px(fig, 600) == pytest.approx(12 * 150 / 72)  # shown at its own width
    plt.close(fig)


def test_entries_are_named_as_readers_know_them(drawn, published):
    """No registry id ("cnn_tutorial:printed", "jerkic", "mlp:softmax_xent") in any text of
    the plots written here (the variance plot is variance.py's), and the names are there."""
    entries = set(zip(published["runs"]["architecture"], published["runs"]["variant"]))
    readable = [names.name(a, v) for a, v in entries]
    ids = {m for m in published["runs"]["model"]} | {a for a, _ in entries}
    ids = {i for i in ids if not any(i in r for r in readable)}  # "cnn_tutorial" is its README's name
    assert {"jerkic", "cnn_tutorial:printed", "mlp:softmax_xent", "thomas"} <= ids
    pattern = re.compile(r"(?<![\w:.])(" + "|".join(map(re.escape, sorted(ids, key=len, reverse=True)))
                         + r")(?![\w:])")
    for name, (fig, _) in drawn.items():
        if name == "variance.png":
            continue
        found = {m for t in _texts(fig) for m in pattern.findall(t)}
        assert not found, f"{name} names entries by registry id: {sorted(found)}"
    forest = " ".join(_texts(drawn["forest.png"][0]))
    for arch, variant in [("thomas", "default"), ("mlp", "softmax_xent"), ("keras_mnist_cnn", "as_written")]:
        assert " ".join(plots.entry_name(arch, variant).split()) in " ".join(forest.split())


def test_entry_name_puts_the_variant_on_its_own_line():
    assert plots.entry_name("thomas") == "Andy Thomas: CNN tutorial"
    assert plots.entry_name("keras_mnist_cnn", "as_written") == \
        "Keras 2 examples: mnist_cnn.py,\nas written, on today's Keras"
    assert all(len(line) <= 20 for line in plots.entry_name("mlp", "softmax_xent", 20).split("\n"))


def _lab(color) -> np.ndarray:
    """CIE L*a*b* (D65) of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
    f = np.cbrt(xyz / [0.95047, 1.0, 1.08883])
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("plot", ["accuracy_vs_params.png", "accuracy_vs_time.png"])
def test_each_entry_stands_apart_and_its_seeds_do_not_hide_each_other(drawn, published, plot):
    fig, _ = drawn[plot]
    ax = _panels(fig)[0]
    entries = published["runs"].pipe(lambda d: d[[original_of(v) is None for v in d["variant"]]])
    n = len(entries.groupby(["architecture", "variant"]))
    handles = ax.get_legend().legend_handles
    assert len(handles) == n
    styles = [(h.get_color(), h.get_marker(), h.get_markerfacecolor()) for h in handles]
    assert len(set(styles)) == n  # no two entries look alike
    colours = [h.get_color() for h in handles]
    assert len(set(colours)) == n and len({h.get_marker() for h in handles}) >= min(n, len(plots.ENTRY_MARKERS))
    assert min(np.linalg.norm(_lab(a) - _lab(b)) for a, b in itertools.combinations(colours, 2)) >= 20
    # one marker per entry (its mean over seeds), its seeds' range as a bar: never a pile of seeds
    bars = ax.containers
    assert len(bars) == n and all(len(c.lines[0].get_xdata()) == 1 for c in bars)
    if plot == "accuracy_vs_params.png":  # one x per entry: the entries that share one stand side by side
        at = np.array([ax.transData.transform((c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0])) for c in bars])
        gaps = [np.linalg.norm(a - b) / fig.dpi for a, b in itertools.combinations(at, 2)]
        assert min(gaps) >= 0.08  # inches: markers 8 pt wide do not cover each other


def _inside(ax, xs) -> bool:
    """Every finite x in ``xs`` lies inside the axis, 1% of its width clear of the frame
    (measured on screen: a symlog axis's margin is thin far out)."""
    xs = np.asarray([x for x in xs if np.isfinite(x)], float)
    at = ax.transData.transform(np.c_[xs, np.zeros_like(xs)])[:, 0]
    box = ax.get_window_extent()
    room = 0.01 * box.width
    return bool(((at >= box.x0 + room) & (at <= box.x1 - room)).all())


def _data_lines(ax):
    return [line for line in ax.lines if line.get_transform() == ax.transData]


def test_every_interval_fits_its_axis(drawn):
    forest = _panels(drawn["forest.png"][0])[0]
    pvo = drawn["port_vs_original.png"][0]
    difference = next(ax for ax in _panels(pvo) if ax.get_title().startswith("Every row of the table"))
    for ax in (forest, difference):
        lines = _data_lines(ax)
        assert len(lines) > 10
        for line in lines:
            assert _inside(ax, line.get_xdata()), (ax.get_title(), line.get_xdata(), ax.get_xlim())
        lo, hi = ax.get_xlim()
        assert len([t for t in ax.get_xticks() if lo <= t <= hi]) >= 3


def test_the_port_is_drawn_over_the_original_in_every_panel_and_one_legend_serves_them(drawn):
    fig, _ = drawn["port_vs_original.png"]
    curves = [ax for ax in _panels(fig) if ax.get_xlabel() == "epochs"]
    assert len(curves) >= 10
    for ax in curves:
        assert ax.get_legend() is None  # the figure's legend, above every panel, names the sides
        original, port = _data_lines(ax)[:2]
        assert port.get_zorder() > original.get_zorder()
        assert port.get_linestyle() != original.get_linestyle()
        assert port.get_linewidth() < original.get_linewidth()  # the original shows around the port
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("port") for label in labels) and any(label.startswith("original") for label in labels)


def test_every_panel_of_the_seeds_reads(drawn, published):
    """Each panel fits its own runs: no point on the frame, and the mean, its band and the
    bound stand apart on screen (one shared range flattened tf_quickstart into one stripe)."""
    fig, width = drawn["accuracy_per_seed.png"]
    panels = _panels(fig)
    assert len(panels) == len(published["audit"])
    for ax, a in zip(panels, published["audit"].itertuples(index=False)):
        lo, hi = ax.get_ylim()
        px_per_point = ax.get_position().height * fig.get_figheight() * _on_screen(fig, width) / (hi - lo)
        ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())
                             and c.get_offsets().shape[1] == 2 and type(c).__name__ == "PathCollection"])
        assert len(ys) == a.n_seeds
        margin = 0.05 * (hi - lo)
        assert ((ys > lo + margin) & (ys < hi - margin)).all(), (a.model, ys, (lo, hi))
        assert (a.test_ci_high_pct - a.test_ci_low_pct) * px_per_point >= 10, a.model  # a band, not a stripe
        claim = registry.get_architecture(a.architecture).claim
        if claim.judges(a.variant):
            bound = 100 * claim.lower
            assert lo < bound < hi
            if abs(a.test_mean_pct - bound) >= 0.05:
                assert abs(a.test_mean_pct - bound) * px_per_point >= 4, a.model


@pytest.mark.parametrize("plot", ["learning_curves_epoch.png", "learning_curves_wall.png"])
def test_learning_curves_read_short_and_long(drawn, plot):
    fig, _ = drawn[plot]
    panels = _panels(fig)
    assert len(panels) >= 10
    for ax in panels:
        lo, hi = ax.get_ylim()
        assert hi - lo >= 2.0 - 1e-9, ax.get_title()  # two points at least: softmax regression's two evaluations read
        assert ax.get_xlim()[0] == 0
        for line in _data_lines(ax):
            if len(line.get_xdata()) > plots.MANY_POINTS:  # a marker every epoch would hide the other line
                assert line.get_marker() in (None, "None", "", " ")
    test_on_top = [ax for ax in panels if len(_data_lines(ax)) >= 2]
    assert test_on_top and all(_data_lines(ax)[1].get_zorder() > _data_lines(ax)[0].get_zorder()
                               for ax in test_on_top)
    assert len(fig.legends) == 1
