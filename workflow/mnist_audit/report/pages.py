"""The report's pages, in Markdown: the main page (the answer first), one page per
tutorial, how a verdict is made, and one page per cross-tutorial table (port versus
original, platforms, cost), and where the runs came from.

Every page is generated from the records and the registry: a new registry entry gets its
page with no change here. Tables are narrow enough for GitHub's content column (880 px):
a wide table is split into a few narrow ones, each under a sentence that says what it
shows, and the raw CSVs are linked. Plots are links to themselves (click for full size).
``site`` renders the same pages as HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import audit as stats
from .. import registry, variance
from ..config import original_of, starts_from_port
from ..portcheck import EQUIVALENCE_MARGIN, EQUIVALENT, FULL_BUDGET, OWN_DRAW, PORT_DRAW
from ..tables import OVERRIDDEN_BANNER, SCALED_BANNER, isnan, markdown_table, order_rows, rel, settings_summary
from . import answer, names
from .text import (CI_NOTE, PORT_NOTE, VERDICT_RULE, budget_table, origin_table, provenance_sections, run_counts,
                   timing_claims)

# The pages beside the main one (README.md): file name -> title
PAGES = {
    "method.md": "How a verdict is made",
    "port-vs-original.md": "Port versus the author's program",
    "platforms.md": "How much the machine moves the answer",
    "cost.md": "What it costs",
    "provenance.md": "Where the runs came from",
}


@dataclass
class Report:
    """Everything the pages are made of (``build.build_report`` fills it)."""

    runs: pd.DataFrame  # the claim audit's runs (ports and originals, the default platform)
    audit: pd.DataFrame
    params: pd.DataFrame
    timing: pd.DataFrame
    pvo: pd.DataFrame
    spreads: pd.DataFrame
    verdicts: pd.DataFrame
    hist: pd.DataFrame  # the ports' histories
    paths: Mapping[str, str]  # the report's files (report_outputs / the rule's outputs)
    scaled: bool
    manifest: Mapping | None = None
    cpu_kinds: list = field(default_factory=list)  # every CPU kind of the runs and the platform study
    records: list = field(default_factory=list)  # the folders of the run records

    @property
    def base(self) -> Path:
        return Path(self.paths["readme"]).parent

    def link(self, key: str, page: Path | str | None = None) -> str:
        """The report file ``key`` relative to ``page`` (default: the main page)."""
        return rel(self.paths[key], Path(page).parent if page else self.base)

    def plain(self, text: str) -> str:
        return variance.plain_where(text, self.cpu_kinds)


# where an original starts, as the pages write it
DRAWS = {OWN_DRAW: "own draw", PORT_DRAW: "port's draw"}


def figure_md(src: str, alt: str) -> str:
    """A plot that opens at full size when clicked (on GitHub and in the HTML pages)."""
    return f"[![{alt}]({src})]({src})"


def _pct(v, digits: int = 2) -> str:
    return "" if isnan(v) else f"{v:.{digits}f}%"


def _interval(lo, hi) -> str:
    return "" if isnan(lo) else f"{lo:.2f} to {hi:.2f}%"


def banners(rep: Report) -> list[str]:
    out = []
    if rep.scaled:
        out += [f"> **⚠️ {SCALED_BANNER}.** Settings: {settings_summary(rep.runs)}. No claim can be reproduced or "
                "refuted from these numbers; they exercise the pipeline only.", ""]
    if rep.runs["overridden"].astype(bool).any():
        out += [f"> **⚠️ {OVERRIDDEN_BANNER}.** Some runs changed the published recipe; those rows are never "
                "'reproduced'.", ""]
    return out


def definitions() -> list[str]:
    """The words the pages use, one line each."""
    return [f"- **{d.split(':', 1)[0]}**:{d.split(':', 1)[1]}" for d in
            (names.PORT, names.ORIGINAL, names.OWN_DRAW, names.PORT_DRAW, names.PLATFORM, names.KERNELS)] + [""]


# --------------------------------------------------------------------- the main page

def main_page(rep: Report) -> str:
    page = rep.base / "README.md"
    lines = ["# Do the MNIST tutorials' accuracy claims hold up?", ""] + banners(rep)
    lines += [answer.answer(rep.audit, rep.runs, rep.timing, rep.spreads, rep.verdicts), "",
              answer.verdict_table(rep.audit),
              "Each name opens the tutorial's page (its recipe, every run, the verdict's reasons); ↗ opens the "
              "tutorial where its author published it; ↳ is a variant of the entry above it. The mean is over the "
              "runs, on the author's own measure; its 95% interval counts the seeds and the test images alike: "
              "[how a verdict is made](method.md).", ""]
    if "forest" in rep.paths:
        lines += [figure_md(rep.link("forest", page), "each claim's mean and 95% interval against its bound"), ""]
    lines += ["## How sure", ""]
    lines += [f"- {how_sure(r)}" for r in rep.audit.itertuples(index=False)] + [""]
    lines += ["## The tutorials", ""]
    for arch in dict.fromkeys(rep.audit["architecture"]):
        a = registry.get_architecture(arch)
        what = "a baseline" if a.baseline else "a tutorial"
        lines.append(f"- {names.link(arch)}: {what}, {a.layers.split(';')[0].split(',')[0]} ...; "
                     f"{_page_verdicts(rep, arch)}")
    lines += ["", "## Words used here", ""] + definitions()
    lines += ["## Read further", ""]
    leads = {"method.md": "plain words first, then the statistics and every row in full",
             "port-vs-original.md": port_lead(rep), "platforms.md": platforms_lead(rep),
             "cost.md": cost_lead(rep), "provenance.md": "commits, machines, packages and data checksums"}
    lines += [f"- [{title}]({page_}): {leads[page_]}" for page_, title in PAGES.items()]
    lines += [f"- The data: {_csv_links(rep, page)}."]
    lines += ["- Run records: " + ", ".join(f"[{Path(d).as_posix()}/]({rel(d, rep.base)}/)" for d in rep.records)
              + " (one folder per run: metrics, history, confusion matrix, per-image predictions)."] if rep.records else []
    lines += [""]
    lines.append(f"{run_counts(rep.runs, rep.audit)}; seeds {' '.join(str(s) for s in sorted(set(rep.runs['seed'])))}.")
    return "\n".join(lines).rstrip() + "\n"


def _csv_links(rep: Report, page: Path) -> str:
    keys = [("runs", "every run, one row each"), ("claim_audit_csv", "the claim audit"),
            ("port_vs_original_csv", "port versus original"), ("variance_csv", "the platforms' spreads"),
            ("platform_verdicts_csv", "the verdicts per platform"), ("timing_csv", "timing"),
            ("parameters_csv", "parameters")]
    return ", ".join(f"[{label}]({rep.link(k, page)})" for k, label in keys if k in rep.paths)


def _page_verdicts(rep: Report, arch: str) -> str:
    rows = rep.audit[rep.audit["architecture"] == arch]
    return "; ".join(f"{names.variant_label(arch, r.variant)}: "
                     f"{answer.verdict_word(r.verdict)}" for r in rows.itertuples(index=False))


def how_sure(r) -> str:
    """One line per verdict row, by name: where its interval lies against the claim's bound."""
    who = names.name(r.architecture, r.variant)
    k = "" if isnan(r.runs_reaching) else f"; {int(r.runs_reaching)} of {r.n_seeds} runs reach it"
    lo, hi, bound = r.ci_low_pct, r.ci_high_pct, r.claim_lower_pct
    if r.verdict.startswith(stats.NO_CLAIM):
        text = ("states no figure" if r.claim_text == "(none stated)" else
                f"the claim belongs to {names.name(r.architecture, r.claim_recipe)}")
        return f"{who}: no claim ({text}); our mean {_pct(r.mean_pct)}."
    if r.verdict == stats.REPRODUCED:
        return f"{who}: reproduced; the whole 95% interval is above {bound:g}% (its lower end by {lo - bound:.2f} points){k}."
    if r.verdict == stats.NOT_REPRODUCED:
        return f"{who}: not reproduced; the whole 95% interval is below {bound:g}% (its upper end by {bound - hi:.2f} points){k}."
    if r.verdict == stats.INCONCLUSIVE:
        return (f"{who}: inconclusive; the 95% interval, {lo:.2f} to {hi:.2f}%, contains {bound:g}% "
                f"(the mean is {r.mean_pct - bound:+.2f} points from it){k}.")
    return f"{who}: {r.verdict}{k}."


# --------------------------------------------------------------------- how a verdict is made

def method_page(rep: Report) -> str:
    page = rep.base / "method.md"
    a = rep.audit
    lines = ["# How a verdict is made", ""] + banners(rep) + [
        "## In plain words", "",
        "1. We train the tutorial's network with the recipe its author ran (optimizer, learning rate, batch, "
        "budget, data order, initial weights), several times with different random seeds.",
        "2. A claim is read as the least figure it rounds from, half a unit of its last stated digit below it: "
        "\"99%\" is at least 98.5%, \"about 92%\" at least 91.5%, \"97-98%\" at least 96.5%, and the two-decimal "
        "\"99.25%\" at least 99.245%. That one threshold serves everywhere.",
        "3. Each run is measured the way the author measured: on the test set after training, or, where the "
        "author read a validation curve, on the validation set at its best epoch. The full test set after the "
        "whole budget is always shown too.",
        "4. The runs' mean gets a 95% interval that counts two kinds of luck: the seed (training noise) and "
        "the test images (another 10,000 images would score a little differently).",
        "5. **Reproduced**: the whole interval is at or above the threshold. **Not reproduced**: all of it is "
        "below. **Inconclusive**: the interval straddles the threshold (more runs would not fix the test "
        "images' share). **No claim**: the tutorial states no figure, or the row's recipe is not the one "
        "the claim came from. A run that departs from the published recipe (a scaled budget, a subset, an "
        "override) is never reproduced.",
        "",
        "## The statistics", "", VERDICT_RULE, "", CI_NOTE, "",
        "## Every row in full", "",
        "On the author's measure (its split and reading), one value per run:", "",
    ]
    first = pd.DataFrame({
        "tutorial": [names.link(r.architecture, r.variant, source=False) for r in a.itertuples(index=False)],
        "measure": [f"{'validation' if m == 'val' else 'test'}, {rd}" for m, rd in zip(a["measure"], a["reading"])],
        "n": a["n_seeds"],
        "mean": [_pct(v) for v in a["mean_pct"]],
        "sd (pt)": [("" if isnan(v) else f"{v:.3f}") for v in a["sd_pct"]],
        "95% interval": [_interval(lo, hi) for lo, hi in zip(a["ci_low_pct"], a["ci_high_pct"])],
        "verdict": [answer.verdict_word(v) for v in a["verdict"]],
    })
    lines += [markdown_table(first)]
    lines += ["What one new run would give (95% prediction interval), and the full test set after the whole "
              "budget (the same as above where the author measured that):", ""]
    second = pd.DataFrame({
        "tutorial": [names.link(r.architecture, r.variant, source=False) for r in a.itertuples(index=False)],
        "one new run": [_interval(lo, hi) for lo, hi in zip(a["pi_low_pct"], a["pi_high_pct"])],
        "full test: mean": [_pct(v) for v in a["test_mean_pct"]],
        "its 95% interval": [_interval(lo, hi) for lo, hi in zip(a["test_ci_low_pct"], a["test_ci_high_pct"])],
        "lowest, highest": [f"{lo:.2f}, {hi:.2f}%" for lo, hi in zip(a["test_min_pct"], a["test_max_pct"])],
        "verdict": [answer.verdict_word(v) for v in a["test_verdict"]],
    })
    lines += [markdown_table(second)]
    notes = [(r.architecture, r.variant, r.note) for r in a.itertuples(index=False) if r.note]
    lines += [f"- {names.name(arch, v)}: {n}" for arch, v, n in notes] + ([""] if notes else [])
    lines += ["## The claims", "", "Each claim in its author's words, and where the author measured it:", ""]
    claims = []
    for arch in dict.fromkeys(a["architecture"]):
        arch_ = registry.get_architecture(arch)
        c = arch_.claim
        claims.append({"tutorial": names.link(arch, source=False),
                       "claim": f"\"{c.text}\"" if c.text else "none stated" + (
                           f" (cited: {c.reference.split(':')[0]})" if c.reference else ""),
                       "least figure": "" if c.lower is None else f"{100 * c.lower:g}%",
                       "measured on": c.where})
    lines += [markdown_table(pd.DataFrame(claims))]
    for key, alt in (("forest", "each claim's mean and 95% interval against its bound"),
                     ("accuracy_per_seed", "every seed's final test accuracy, with the claim's bound")):
        if key in rep.paths:
            lines += [figure_md(rep.link(key, page), alt), ""]
    lines += [f"The table as data: [claim_audit.csv]({rep.link('claim_audit_csv', page)}) (every column, the "
              "seed-only Student-t interval among them).", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------- port versus original

def port_lead(rep: Report) -> str:
    """The finding of the port-versus-original comparison in one sentence."""
    pvo = rep.pvo
    if pvo.empty:
        return "no originals among these runs (opt-in: config key `originals`)"
    full = pvo[pvo["row_kind"] == FULL_BUDGET]
    checks = pvo[pvo["row_kind"] != FULL_BUDGET]
    eq = full[full["verdict"] == EQUIVALENT]
    text = (f"{len(eq)} of {len(full)} full-budget comparisons find the port and the author's program equivalent "
            f"(within ±{100 * EQUIVALENCE_MARGIN:g} points)") if len(full) else "no full-budget comparison"
    other = full[full["verdict"] != EQUIVALENT]
    if len(other):
        text += "; not yet for " + ", ".join(
            f"{names.name(r.architecture, r.variant)} ({r.verdict})" for r in other.itertuples(index=False))
    if len(checks):
        verdicts = checks["verdict"].value_counts()
        text += (f"; the {len(checks)} reduced-budget behaviour checks: "
                 + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
    return text


def _port_tables(rep: Report, rows: pd.DataFrame, page: Path) -> list[str]:
    who = [names.link(r.architecture, r.variant, source=False) for r in rows.itertuples(index=False)]
    first = pd.DataFrame({
        "tutorial": who,
        "original starts from": [DRAWS.get(s, s) for s in rows["start"]],
        "port": [_pct(v) for v in rows["port_mean_pct"]],
        "original": [_pct(v) for v in rows["original_mean_pct"]],
        "difference (pt)": [("" if isnan(d) else f"{d:+.3f}") for d in rows["difference_pt"]],
        "verdict": rows["verdict"],
    })
    second = pd.DataFrame({
        "tutorial": who,
        "start": [DRAWS.get(s, s) for s in rows["start"]],
        "pairs (per CPU)": [rep.plain(str(p)).replace("AMD EPYC (Zen 4)", "AMD").replace("Intel Xeon (AMX)", "Intel")
                            for p in rows["pairs_by_kind"]],
        "difference: 95% interval (pt)": [("" if isnan(lo) else f"{lo:+.3f} to {hi:+.3f}")
                                          for lo, hi in zip(rows["diff_low_pt"], rows["diff_high_pt"])],
        "TOST p": [("" if isnan(v) else f"{v:.3g}") for v in rows["tost_p"]],
        "pairs needed": rows["pairs_needed"],
    })
    third = pd.DataFrame({
        "tutorial": who,
        "start": [DRAWS.get(s, s) for s in rows["start"]],
        "McNemar: pairs p<0.05": [("" if isnan(v) else f"{v:.0f}") for v in rows["mcnemar_pairs_p05"]],
        "Fisher p": [("" if isnan(v) else f"{v:.3g}") for v in rows["mcnemar_fisher_p"]],
        "port img/s": [("" if isnan(v) else f"{v:,.0f}") for v in rows["port_images_per_s"]],
        "original img/s": [("" if isnan(v) else f"{v:,.0f}") for v in rows["original_images_per_s"]],
    })
    return [markdown_table(first), "The tests behind each verdict (pairs per CPU kind: AMD EPYC (Zen 4), "
            "Intel Xeon (AMX)):", "", markdown_table(second),
            "McNemar's test within each pair (for reference; no verdict uses it) and the training speed of each "
            "side:", "", markdown_table(third)]


def port_page(rep: Report) -> str:
    page = rep.base / "port-vs-original.md"
    lines = ["# Port versus the author's program", ""] + banners(rep)
    if rep.pvo.empty:
        return "\n".join(lines + [port_lead(rep) + "."]) + "\n"
    lines += [f"**{port_lead(rep)[0].upper()}{port_lead(rep)[1:]}.** The port is our Keras 3 re-implementation of "
              "each tutorial; its original is the author's own program (TensorFlow 1's graph API for the older "
              "tutorials, the author's Keras script for the newer), run on the same data in the same order. A "
              "pair is one seed of each on one CPU kind; \"equivalent\" means the 95% interval of the "
              f"difference lies within ±{100 * EQUIVALENCE_MARGIN:g} points, on 5 pairs or more.", ""]
    lines += ["Words: **own draw**: the original starts from its own random initial weights; **port's draw**: "
              "it starts from the port's initial weights for that seed, which leaves only what the programs "
              "compute between the two sides.", ""]
    for kind, title in ((FULL_BUDGET, "At the full budget"), ("behaviour check", "Behaviour checks at a reduced budget")):
        rows = rep.pvo[rep.pvo["row_kind"] == kind]
        if len(rows):
            lines += [f"## {title}", ""] + _port_tables(rep, rows, page)
    if "port_vs_original" in rep.paths:
        lines += [figure_md(rep.link("port_vs_original", page), "port versus original: learning curves and every "
                                                                  "row's difference"), ""]
    lines += ["## How these rows are judged", "", PORT_NOTE, "",
              f"The table as data: [port_vs_original.csv]({rep.link('port_vs_original_csv', page)}).", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------- platforms

def platforms_lead(rep: Report) -> str:
    s = answer.machine_sentence(rep.spreads, rep.verdicts)
    return (s or "one platform only: no platform spread to measure").rstrip(".")


def _verdict_bullets(rep: Report) -> list[str]:
    out = []
    for r in rep.verdicts.itertuples(index=False):
        by: dict[str, list[str]] = {}
        for part in str(r.verdicts).split("; "):
            w, _, rest = part.rpartition(": ")
            by.setdefault(rest, []).append(rep.plain(w))
        out.append(f"- {names.name(r.architecture, r.variant)} (at least {r.claim.lstrip('>= ')}): "
                   + "; ".join(f"{v.replace('(n=', '(').replace(')', ' seeds)')} on {', '.join(ws)}"
                               for v, ws in by.items())
                   + f". Holds on every platform: {r.holds_everywhere}.")
    return out


def platforms_page(rep: Report) -> str:
    page = rep.base / "platforms.md"
    lines = ["# How much the machine moves the answer", ""] + banners(rep)
    if rep.spreads.empty:
        return "\n".join(lines + [variance.ONE_PLATFORM]) + "\n"
    lines += [f"**{platforms_lead(rep)}.** A platform is where a run computes: a CPU kind "
              f"({', '.join(sorted({variance.cpu_plain(k) for k in rep.cpu_kinds}))}) with one kernel setting "
              "(default oneDNN; oneDNN capped at AVX2; Eigen instead of oneDNN), or Keras on JAX. The same "
              "seeds ran on each, so a difference is the machine's alone.", ""]
    s = rep.spreads
    who = [names.link(r.architecture, r.variant, source=False) for r in s.itertuples(index=False)]
    lines += ["## The three spreads", "",
              "In points of accuracy on the full test set: between seeds on one platform, between platforms at "
              "one seed, and the test set's own sampling error:", ""]
    lines += [markdown_table(pd.DataFrame({
        "tutorial": who, "seeds": s["n_seeds"],
        "seed sd": [f"{v:.3f}" for v in s["seed_sd_pt"]],
        "platform sd": [("" if isnan(v) else f"{v:.3f}") for v in s["platform_sd_pt"]],
        "largest move": [("" if isnan(v) else f"{v:.2f}") for v in s["platform_diff_max_pt"]],
        "test-set se": [f"{v:.3f}" for v in s["test_se_pt"]],
    }))]
    lines += ["Where the largest move happened, and on which platforms every seed gave the same bits as the "
              "reference (the claim audit's own runs):", ""]
    lines += [markdown_table(pd.DataFrame({
        "tutorial": who,
        "reference": [rep.plain(w) for w in s["reference"]],
        "largest move": [rep.plain(w) for w in s["largest"]],
        "bit-identical on": [rep.plain(w) or "none" for w in s["unchanged_on"]],
    }))]
    lines += ["The same setting on the other CPU kind, seed by seed (seeds with the same bits on both, of the "
              "seeds run on both):", ""]
    lines += [markdown_table(pd.DataFrame({"tutorial": who, "same setting, other CPU kind": s["across_cpu_kinds"]}))]
    if len(rep.verdicts):
        lines += ["## Each claim's verdict on each platform", ""] + _verdict_bullets(rep) + [""]
        lines += [variance.VERDICTS_NOTE, ""]
    lines += ["## Findings", ""] + [f"- {rep.plain(x)}" for x in variance.findings(rep.spreads, rep.verdicts)] + [""]
    if "variance" in rep.paths:
        lines += [figure_md(rep.link("variance", page), "seed, platform and test-set spreads of every entry"), ""]
    lines += ["## How the spreads are measured", "", variance.VARIANCE_NOTE, "",
              f"The tables as data: [variance.csv]({rep.link('variance_csv', page)}), "
              f"[platform_verdicts.csv]({rep.link('platform_verdicts_csv', page)}); the platforms' CPU kinds by "
              "family and model are on [where the runs came from](provenance.md).", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------- cost

def cost_lead(rep: Report) -> str:
    s = answer.cost_sentence(rep.runs, rep.timing, rep.audit)
    return (s or "no timing").rstrip(".")


def cost_page(rep: Report) -> str:
    page = rep.base / "cost.md"
    t = order_rows(rep.timing)
    lines = ["# What it costs", ""] + banners(rep) + [f"**{cost_lead(rep)}.**", ""]
    who = [names.link(r.architecture, r.variant, source=False) for r in t.itertuples(index=False)]
    lines += ["## Training time", "",
              "Means over each row's runs, on one CPU core (train time: the epochs' training, no evaluation; "
              "steady: after the first epoch's compilation):", ""]
    lines += [markdown_table(pd.DataFrame({
        "tutorial": who, "runs": t["n_runs"],
        "train time": [_duration(m) + ("" if isnan(sd) else f" ± {_duration(sd)}")
                       for m, sd in zip(t["train_seconds_mean"], t["train_seconds_sd"])],
        "steady s/epoch": [("n/a" if isnan(v) else f"{v:,.2f}") for v in t["steady_epoch_seconds"]],
        "train img/s": [("n/a" if isnan(v) else f"{v:,.0f}") for v in t["train_images_per_second"]],
        "to the claim's figure": t["time_to_bound"],
    }))]
    lines += timing_claims(t)
    lines += ["Where they ran, how loaded the machine was (median 1-minute load average), the first epoch's "
              "compilation overhead and the evaluation speed:", ""]
    lines += [markdown_table(pd.DataFrame({
        "tutorial": who, "machine": [rep.plain(d) for d in t["device"]],
        "load": [("n/a" if isnan(v) else f"{v:.1f}") for v in t["load_average_median"]],
        "1st-epoch overhead": [("n/a" if isnan(v) else f"{v:.2f} s") for v in t["first_epoch_overhead_seconds"]],
        "eval img/s": [("n/a" if isnan(v) else f"{v:,.0f}") for v in t["eval_images_per_second"]],
    }))]
    for key, alt in (("accuracy_vs_time", "final test accuracy against training time"),
                     ("learning_curves_wall", "held-out accuracy against wall-clock time"),
                     ("learning_curves_epoch", "held-out accuracy against epochs")):
        if key in rep.paths:
            lines += [figure_md(rep.link(key, page), alt), ""]
    lines += ["## Size", "", "Trainable parameters and multiply-accumulates of one forward pass of one image "
              "(from the Keras models):", ""]
    p = rep.params
    lines += [markdown_table(pd.DataFrame({
        "tutorial": [names.link(a_, v, source=False) for a_, v in zip(p["architecture"], p["variant"])],
        "layers with weights": p["layers_with_weights"],
        "parameters": [f"{int(v):,}" for v in p["params"]],
        "MACs / image": [f"{int(v):,}" for v in p["macs_per_image"]],
    }))]
    if "accuracy_vs_params" in rep.paths:
        lines += [figure_md(rep.link("accuracy_vs_params", page), "final test accuracy against parameters"), ""]
    lines += [f"Per layer: [layers.md]({rep.link('layers_md', page)}). The tables as data: "
              f"[timing.csv]({rep.link('timing_csv', page)}), [parameters.csv]({rep.link('parameters_csv', page)}).",
              ""]
    return "\n".join(lines).rstrip() + "\n"


def _duration(seconds) -> str:
    if isnan(seconds):
        return "n/a"
    return answer.hours(float(seconds))


# --------------------------------------------------------------------- provenance

def provenance_page(rep: Report) -> str:
    lines = ["# Where the runs came from", ""] + banners(rep)
    origin = origin_table(rep.runs)
    origin.insert(0, "tutorial", [names.link(a_, original_of(v) or v, source=False) + (
        "" if original_of(v) is None else (" (original" + (", port's draw)" if starts_from_port(v) else ")")))
        for a_, v in _keys(rep.runs)])
    lines += ["Per row: how many runs, the code's commit, the CPU and the dates:", "",
              markdown_table(origin[["tutorial", "runs", "commits", "trained"]]),
              "The machines (CPU kind: vendor, family/model and instruction sets), and how loaded they were:", "",
              markdown_table(origin[["tutorial", "CPU kind", "load (median of runs)"]].assign(
                  **{"CPU kind": [f"{variance.cpu_plain(k)} ({k})" for k in origin["CPU kind"]]}))]
    budgets = budget_table(rep.runs)
    budgets.insert(0, "tutorial", origin["tutorial"])
    lines += ["The recipe and the budget each row ran:", "",
              markdown_table(budgets[["tutorial", "published recipe", "budget as run"]])]
    lines += provenance_sections(rep.runs, rep.manifest)[2:]
    return "\n".join(lines).rstrip() + "\n"


def _keys(runs: pd.DataFrame) -> list[tuple[str, str]]:
    keys = order_rows(runs[["architecture", "variant"]].drop_duplicates())
    return list(zip(keys["architecture"], keys["variant"]))


# --------------------------------------------------------------------- a tutorial's page

def _recipe_rows(arch: str) -> pd.DataFrame:
    a = registry.get_architecture(arch)
    rows = []
    for variant in a.variants:
        r = registry.resolve_recipe(arch, variant)
        rows.append({
            "recipe": names.variant_label(arch, variant),
            "optimizer": f"{r.optimizer}, lr {r.learning_rate:g}",
            "batch": r.batch_size,
            "budget": f"{r.budget:,} {r.budget_unit}",
            "data order": ("fixed order" if not r.shuffle else "reshuffled each epoch")
            + (", last batch dropped" if r.drop_last else ""),
            "loss": r.loss,
        })
    return pd.DataFrame(rows)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def tutorial_page(rep: Report, arch: str) -> str:
    """One tutorial's page (``tutorials/<arch>.md``)."""
    a = registry.get_architecture(arch)
    up = "../"
    rows = rep.audit[rep.audit["architecture"] == arch]
    lines = [f"# {a.display}", ""] + banners(rep)
    # the verdict first
    for r in rows.itertuples(index=False):
        lines.append(f"**{_sentence(names.variant_label(arch, r.variant))}:"
                     f" {answer.verdict_word(r.verdict)}.** {_why(r)}"
                     # a variant the claim also judges (the file as a reader runs it today): what it is
                     + (f" Why: this is {a.variants[r.variant].rstrip('.')}." if a.claim.judges(r.variant)
                        and r.variant != "default" and r.variant in a.variants else ""))
        lines.append("")
    plot = Path(rep.base / names.TUTORIALS_DIR / f"{arch}.png")
    if plot.exists():
        lines += [figure_md(plot.name, f"{a.display}: every run and its test accuracy while training"), ""]
    # what it is
    lines += ["## The tutorial", ""]
    kind = ("A baseline: a simple model the tutorials cite, trained the same way. " if a.baseline else "")
    lines += [f"{kind}**{names.source(arch)}**, by {a.author}. "
              + (f"Its code was read at {a.source}. " if a.source and a.url else "")
              + f"The network: {a.layers}.", ""]
    c = a.claim
    if c.text:
        lines += [f"The claim, in the author's words: *\"{c.text}\"*, measured on {c.where}. We read it as at least "
                  f"{100 * c.lower:g}%, the least figure that rounds to it"
                  + (f"; it belongs to the recipe {a.variant_names.get(c.recipe_variant, c.recipe_variant)}"
                     if c.recipe_variant else "") + ".", ""]
    else:
        lines += [f"The tutorial states no accuracy figure ({c.where})"
                  + (f"; it cites {c.reference}" if c.reference else "") + ". Our runs are shown for reference.", ""]
    # the recipe
    lines += ["## The recipe as the author ran it", ""]
    recipes = _recipe_rows(arch)
    recipes = recipes[[v in set(rows["variant"]) or v == "default" for v in a.variants]] if len(rows) else recipes
    lines += [markdown_table(recipes.set_index("recipe").T.reset_index().rename(columns={"index": "setting"})),
              f"Initial weights: {a.recipe.kernel_init}; biases: {a.recipe.bias_init or 'none'}; dropout rates: "
              f"{', '.join(f'{d:g}' for d in a.recipe.dropout) or 'none'}. What each variant is: "
              + "; ".join(f"{names.variant_label(arch, v)}: {d}"
                          for v, d in a.variants.items()) + ".", ""]
    # our runs
    lines += ["## Our runs", "", "Every run's final accuracy on the full test set (and on the author's measure "
              "where that differs), one row per seed:", ""]
    lines += [markdown_table(_seed_table(rep, arch))]
    # port versus original
    lines += ["## The port against the author's program", ""]
    lines += _port_section(rep, arch)
    # the machine
    lines += ["## On other machines", "", _machine_sentence(rep, arch), ""]
    # cost and fidelity
    lines += ["## What it costs", "", _cost_sentence(rep, arch), ""]
    lines += ["## Fidelity notes", "", "What the port does differently from the author's code, and why:", ""]
    lines += [f"- {line}" for line in a.fidelity] + [""]
    lines += [f"Back to [the report]({up}README.md); how verdicts are made: [method]({up}method.md).", ""]
    return "\n".join(lines).rstrip() + "\n"


def _why(r) -> str:
    if r.verdict.startswith(stats.NO_CLAIM):
        return (f"The tutorial states no figure; our mean is {_pct(r.mean_pct)} ({_interval(r.ci_low_pct, r.ci_high_pct)})."
                if r.claim_text == "(none stated)" else
                f"The claim's figure belongs to another recipe ({names.name(r.architecture, r.claim_recipe)}); "
                f"this one's mean is {_pct(r.mean_pct)}, shown for reference.")
    return "The claim " + answer.why(r, "../", named=False) + "."


def _seed_table(rep: Report, arch: str) -> pd.DataFrame:
    runs = rep.runs[(rep.runs["architecture"] == arch) & rep.runs["variant"].map(lambda v: original_of(v) is None)]
    a = registry.get_architecture(arch)
    claim = a.claim
    out = pd.DataFrame({"seed": sorted(set(int(s) for s in runs["seed"]))})
    for variant in [v for v in a.variants if v in set(runs["variant"])]:
        g = runs[runs["variant"] == variant].set_index("seed")
        label = names.variant_label(arch, variant)
        out[f"{label}: test"] = [_pct(100 * float(g.loc[s, "test_accuracy"])) if s in g.index else ""
                                 for s in out["seed"]]
        if claim.lower is not None and (claim.split, claim.reading) != ("test", "final"):
            col = "best_epoch_val_accuracy" if claim.split == "val" else "best_epoch_test_accuracy_optimistic"
            out[f"{label}: {claim.measure}"] = [_pct(100 * float(g.loc[s, col])) if s in g.index else ""
                                                for s in out["seed"]]
    return out


def _port_section(rep: Report, arch: str) -> list[str]:
    rows = rep.pvo[rep.pvo["architecture"] == arch] if len(rep.pvo) else rep.pvo
    if rows is None or rows.empty:
        return ["The author's program has not been run beside this port.", ""]
    full = rows[rows["row_kind"] == FULL_BUDGET]
    eq = full[full["verdict"] == EQUIVALENT]
    if len(full):
        head = (f"At the full budget the port and the author's program agree: {len(eq)} of {len(full)} comparisons "
                f"are equivalent within ±{100 * EQUIVALENCE_MARGIN:g} points." if len(eq) == len(full) else
                f"At the full budget {len(eq)} of {len(full)} comparisons are equivalent within "
                f"±{100 * EQUIVALENCE_MARGIN:g} points.")
    else:
        head = "Only reduced-budget behaviour checks compare the port with the author's program here."
    several = rows["variant"].nunique() > 1  # then each row says which variant it compares
    table = pd.DataFrame({
        "comparison": [(f"{names.variant_label(arch, v)}: " if several else "")
                       + f"{'full budget' if k == FULL_BUDGET else 'behaviour check'}, {DRAWS.get(s, s)}"
                       for v, k, s in zip(rows["variant"], rows["row_kind"], rows["start"])],
        "pairs": rows["pairs"],
        "port": [_pct(v) for v in rows["port_mean_pct"]],
        "original": [_pct(v) for v in rows["original_mean_pct"]],
        "difference (pt)": [(("0, every pair identical" if d == 0 else f"{d:+.2f}") if isnan(lo)
                             else f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]")
                            for d, lo, hi in zip(rows["difference_pt"], rows["diff_low_pt"], rows["diff_high_pt"])],
        "verdict": rows["verdict"],
    })
    return [head + " (Own draw: the original starts from its own initial weights; port's draw: from the port's.)",
            "", markdown_table(table), "All the tests: [port versus the author's program](../port-vs-original.md).", ""]


def _machine_sentence(rep: Report, arch: str) -> str:
    s = rep.spreads[rep.spreads["architecture"] == arch] if len(rep.spreads) else rep.spreads
    if s is None or s.empty:
        return "This tutorial ran on one platform only."
    parts = []
    for r in s.itertuples(index=False):
        who = "" if r.variant == "default" else f"{names.name(arch, r.variant).split(', ')[-1]}: "
        move = ("no run moved by a single test image" if not r.platform_diff_max_pt else
                f"a run moved by at most {r.platform_diff_max_pt:.2f} points ({rep.plain(r.largest)}), against a "
                f"seed sd of {r.seed_sd_pt:.2f}")
        parts.append(f"{who}on {r.n_platforms} platforms, {move}")
    v = rep.verdicts[rep.verdicts["architecture"] == arch] if len(rep.verdicts) else rep.verdicts
    text = _sentence("; ".join(parts))
    if v is not None and len(v):
        holds = "; ".join(f"{'the verdict holds on every platform' if r.holds_everywhere == 'yes' else 'the verdict flips on ' + r.flips_on if r.holds_everywhere == 'no' else 'the verdict holds so far, ' + r.holds_everywhere}"
                          for r in v.itertuples(index=False))
        text += f"; {holds}"
    return text + ". Details: [how much the machine moves the answer](../platforms.md)."


def _machine(rep: Report, arch: str, variant: str, device: str) -> str:
    """A device as a reader knows it: the CPU kind's plain name and the threads ("AMD EPYC
    (Zen 4), 1 thread"), from the runs of that row."""
    kinds = rep.runs.loc[(rep.runs["architecture"] == arch) & (rep.runs["variant"] == variant), "cpu_kind"].dropna()
    threads = str(device).rpartition(", ")[2] if ", " in str(device) else ""
    return ", ".join(x for x in (" and ".join(sorted({variance.cpu_plain(k) for k in kinds})), threads) if x) or device


def _cost_sentence(rep: Report, arch: str) -> str:
    t = rep.timing[rep.timing["architecture"] == arch]
    t = t[[original_of(v) is None for v in t["variant"]]]
    p = rep.params[rep.params["architecture"] == arch]
    parts = []
    for r in t.itertuples(index=False):
        parts.append(f"{names.variant_label(arch, r.variant)}: {_duration(r.train_seconds_mean)} of training a run ({r.n_runs} runs, "
                     f"{_machine(rep, arch, r.variant, r.device)})")
    size = (f" The network has {int(p['params'].iloc[0]):,} parameters and takes "
            f"{int(p['macs_per_image'].iloc[0]):,} multiply-accumulates per image." if len(p) else "")
    return _sentence("; ".join(parts)) + "." + size + " All entries: [what it costs](../cost.md)."


# --------------------------------------------------------------------- writing them

def write_pages(rep: Report, write) -> dict[str, Path]:
    """Every page, written with ``write(path, text)``; returns {name: path} of the written pages."""
    from ..plots import plot_tutorial

    out = {"README.md": rep.base / "README.md"}
    tutorials = rep.base / names.TUTORIALS_DIR
    tutorials.mkdir(parents=True, exist_ok=True)
    for arch in dict.fromkeys(rep.audit["architecture"]):
        plot_tutorial(arch, rep.runs[[original_of(v) is None for v in rep.runs["variant"]]], rep.audit, rep.hist,
                      tutorials / f"{arch}.png", rep.scaled)
        out[f"tutorials/{arch}.md"] = tutorials / f"{arch}.md"
        write(out[f"tutorials/{arch}.md"], tutorial_page(rep, arch))
    makers = {"method.md": method_page, "port-vs-original.md": port_page, "platforms.md": platforms_page,
              "cost.md": cost_page, "provenance.md": provenance_page}
    for name, make in makers.items():
        out[name] = rep.base / name
        write(out[name], make(rep))
    write(out["README.md"], main_page(rep))
    return out


