"""How much the machine moves each answer: seed, platform and test-set spreads side by side.

Three sources of variation of one architecture's accuracy (docs/benchmark.md), each in
points of accuracy on the full test set after the whole budget:

- the **seed** spread: the sd over seeds on one platform (the claim audit's runs);
- the **platform** spread: the same seeds on other platforms (kernels, backend, CPU
  kind; ``mnist_audit.platforms``): each run's difference from the same seed on the
  reference platform, their sd and the largest, and the sd over platforms at a fixed
  seed (pooled over the seeds) in the same unit as the seed spread;
- the **test-set** sampling error: the binomial standard error of one evaluation on the
  n test images at the reference mean, which no number of seeds or platforms reduces.

A platform here is a named setting on one CPU kind ("avx2 on Intel 6/167"): the same
setting on another kind runs other kernels. The reference is the claim audit's own runs
(the default platform). ``platform_verdicts`` re-judges each claim on every platform's
runs alone, so a reader sees whether a verdict could flip on another machine.

Pure functions of the runs table: the report's variance section and plot read them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from .audit import claim_audit
from .config import original_of
from .platforms import DROPOUT_DIFFERS
from .tables import groups

REFERENCE = "reference"
VARIANCE_COLUMNS = [
    "architecture", "variant", "model", "reference", "n_seeds", "seed_sd_pt", "platforms", "n_platforms",
    "n_pairs", "platform_diff_mean_pt", "platform_diff_sd_pt", "platform_diff_max_pt", "platform_sd_pt",
    "test_se_pt", "largest", "unchanged_on", "changed_on", "across_cpu_kinds", "same_across_kinds",
]


def cpu_short(kind: str) -> str:
    """"AuthenticAMD 25/17 avx512+bf16" -> "AMD 25/17"; "GenuineIntel 6/167 ..." -> "Intel 6/167"."""
    parts = str(kind).split()
    if not parts:
        return "unknown CPU"
    vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(parts[0], parts[0])
    return f"{vendor} {parts[1]}" if len(parts) > 1 else vendor


# CPU kinds by the names their makers sell them under: (vendor, family, lowest model, highest
# model) -> name. AMD family 25 (0x19) models 0x10-0x1F are Zen 4 (EPYC 9004, "Genoa").
CPU_NAMES = (("AuthenticAMD", 25, 0x10, 0x1F, "AMD EPYC (Zen 4)"), ("AuthenticAMD", 25, 0x00, 0x0F, "AMD EPYC (Zen 3)"))


def cpu_plain(kind: str) -> str:
    """A CPU kind as a reader knows it: "AuthenticAMD 25/17 avx512+bf16" -> "AMD EPYC (Zen 4)";
    an Intel kind with AMX (only Xeons have it) -> "Intel Xeon (AMX)"; else ``cpu_short``."""
    parts = str(kind).split()
    if len(parts) > 1 and "/" in parts[1]:
        family, _, model = parts[1].partition("/")
        if family.isdigit() and model.isdigit():
            for vendor, fam, lo, hi, name in CPU_NAMES:
                if parts[0] == vendor and int(family) == fam and lo <= int(model) <= hi:
                    return name
        if parts[0] == "GenuineIntel" and "amx" in (parts[2] if len(parts) > 2 else "").split("+"):
            return "Intel Xeon (AMX)"
    return cpu_short(kind)


def plain_where(text: str, kinds) -> str:
    """``text`` (a platform's name, or a list of them) with every CPU kind of ``kinds`` by its
    plain name: "avx2 on AMD 25/17" -> "avx2 on AMD EPYC (Zen 4)"."""
    for kind in sorted(set(kinds), key=lambda k: -len(cpu_short(k))):
        text = str(text).replace(cpu_short(kind), cpu_plain(kind))
    return text


def where(platform: str, cpu_kind: str) -> str:
    """A platform as the study names it: the setting and the CPU kind it ran on."""
    return f"{platform} on {cpu_short(cpu_kind)}"


def study_runs(reference: pd.DataFrame, others: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ports' full runs of every platform, each row tagged with ``where`` and whether
    it is a reference run (the claim audit's): ``reference`` holds the claim audit's runs,
    ``others`` the platform study's (any platform and CPU kind)."""
    frames = [reference.assign(_ref=True)]
    if others is not None and len(others):
        frames.append(others.assign(_ref=False))
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[[not original_of(v) for v in runs["variant"]]].copy()
    if "platform" not in runs:
        runs["platform"] = "default"
    runs["platform"] = runs["platform"].fillna("default")
    runs["where"] = [where(p, k) for p, k in zip(runs["platform"], runs["cpu_kind"])]
    return runs


def _reference_where(g: pd.DataFrame) -> str | None:
    ref = g[g["_ref"]]
    if ref.empty:
        return None
    return ref["where"].value_counts().sort_index().idxmax()  # the kind with most reference runs


def across_cpu_kinds(g: pd.DataFrame) -> list[tuple[str, int, int, float]]:
    """The same setting on two CPU kinds, seed by seed: for every platform run on more than
    one kind, (platform, seeds with the same test accuracy and loss to the last bit on every
    kind, seeds run on every kind, the largest difference in points). It tells the CPU kind's
    share of the platform spread from the setting's."""
    out = []
    for platform, gp in g.groupby("platform", sort=True):
        n_kinds = gp["cpu_kind"].nunique()
        if n_kinds < 2:
            continue
        on_all = [gs for _, gs in gp.groupby("seed") if gs["cpu_kind"].nunique() == n_kinds]
        if not on_all:
            continue
        same = sum(len(set(zip(gs["test_accuracy"].astype(float), gs["test_loss"].astype(float)))) == 1
                   for gs in on_all)
        largest = max(100 * float(gs["test_accuracy"].astype(float).agg(np.ptp)) for gs in on_all)
        out.append((str(platform), same, len(on_all), largest))
    return out


def _kinds_text(compared: list[tuple[str, int, int, float]]) -> str:
    """"default 5/5; avx2 2/5, largest 0.12 pt"."""
    return "; ".join(f"{p} {same}/{n}" + (f", largest {largest:.2f} pt" if same < n else "")
                     for p, same, n, largest in compared)


def variance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per port (architecture, variant) with runs on more than one platform."""
    rows = []
    for (arch, variant), g in groups(runs):
        ref_where = _reference_where(g)
        if ref_where is None or g["where"].nunique() < 2:
            continue
        ref_runs = g[g["where"] == ref_where].set_index("seed")
        ref = ref_runs["test_accuracy"].astype(float)
        others = g[g["where"] != ref_where]
        diffs, changed = [], set()  # (where, seed, difference in points); where any number moved
        for r in others.itertuples(index=False):
            if r.seed in ref.index:
                diffs.append((r.where, int(r.seed), 100 * (float(r.test_accuracy) - float(ref[r.seed]))))
                if (float(r.test_accuracy), float(r.test_loss)) != (
                        float(ref[r.seed]), float(ref_runs.loc[r.seed, "test_loss"])):
                    changed.add(r.where)
        d = np.array([x for _, _, x in diffs])
        # the sd over platforms at a fixed seed, pooled over the seeds measured on 2+ platforms
        by_seed = g.groupby("seed")["test_accuracy"].agg(lambda v: list(v.astype(float)))
        within = [(len(v) - 1, np.var(np.asarray(v) * 100, ddof=1)) for v in by_seed if len(v) > 1]
        dof = sum(k for k, _ in within)
        platform_sd = math.sqrt(sum(k * v for k, v in within) / dof) if dof else math.nan
        n_test = int(g["n_test"].iloc[0])
        p = float(ref.mean())
        unchanged = sorted({w for w, _, _ in diffs} - changed)
        largest = max(diffs, key=lambda t: abs(t[2])) if diffs else None
        compared = across_cpu_kinds(g)
        rows.append({
            "architecture": arch, "variant": variant, "model": g["model"].iloc[0], "reference": ref_where,
            "n_seeds": len(ref), "seed_sd_pt": 100 * float(ref.std(ddof=1)) if len(ref) > 1 else math.nan,
            "platforms": ", ".join(sorted(set(others["where"]))), "n_platforms": int(g["where"].nunique()),
            "n_pairs": len(d),
            "platform_diff_mean_pt": float(d.mean()) if len(d) else math.nan,
            "platform_diff_sd_pt": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            "platform_diff_max_pt": float(np.abs(d).max()) if len(d) else math.nan,
            "platform_sd_pt": platform_sd,
            "test_se_pt": 100 * math.sqrt(p * (1 - p) / n_test) if n_test else math.nan,
            "largest": f"{largest[2]:+.2f} pt ({largest[0]}, seed {largest[1]})" if largest else "",
            "unchanged_on": ", ".join(unchanged), "changed_on": ", ".join(sorted(changed)),
            "across_cpu_kinds": _kinds_text(compared),
            # whether every setting gave the same bits on every CPU kind (None: none compared)
            "same_across_kinds": all(same == n for _, same, n, _ in compared) if compared else None,
        })
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


VERDICT_COLUMNS = ["architecture", "variant", "model", "claim", "reference_verdict", "holds_everywhere",
                   "judged_on", "other_platforms", "verdicts", "flips_on", "too_few_seeds_on"]
MIN_SEEDS = 2  # with fewer seeds a verdict is no verdict (audit.claim_audit: "n<2"), so never a flip


def platform_verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per judged claim: its verdict on each platform's runs alone (of the seeds the
    reference platform ran), side by side, and whether the reference verdict holds on every
    platform measured.

    A verdict moves with the machine, never with the number of seeds: a platform flips only
    where its verdict differs from the reference's on the same seeds (all of the reference's,
    or the subset it has, two or more), and it is judged ("yes") only with all of them; with
    fewer it is "not yet" (a verdict on fewer seeds may differ for the number of seeds alone),
    with the number of other platforms on which it is judged and holds, where any:
    "not yet (holds on 4 of 7 other platforms)"."""
    rows = []
    for (arch, variant), g in groups(runs):
        ref_where = _reference_where(g)
        if ref_where is None or g["where"].nunique() < 2:
            continue
        # every platform is judged on the reference's seeds only (mlp's 35 seeds on Intel: 0-4)
        ref = g[g["where"] == ref_where]
        ref_seeds = set(ref["seed"])

        def verdict(runs_: pd.DataFrame):
            audit = claim_audit(runs_.drop(columns=["_ref"]))
            return (audit["verdict"].iloc[0], int(audit["n_seeds"].iloc[0]), audit["claim_lower_pct"].iloc[0]) \
                if len(audit) else None

        @functools.cache
        def ref_on(seeds: frozenset):  # the reference's verdict on these seeds, each set judged once
            return verdict(ref[ref["seed"].isin(seeds)])

        per, ref_on_same = {}, {}
        for w, gw in g.groupby("where", sort=True):
            same = gw[gw["seed"].isin(ref_seeds)]
            if same.empty:
                per[w] = ("no seed of the reference's", 0, math.nan)
                continue
            seeds = frozenset(same["seed"])
            judged = ref_on(seeds) if w == ref_where else verdict(same)
            if judged:
                per[w], ref_on_same[w] = judged, ref_on(seeds)
        if ref_where not in per or per[ref_where][0].startswith("no claim"):
            continue  # no claim to judge (or the claim is another recipe's)
        ref_verdict, n_ref = per[ref_where][0], per[ref_where][1]
        few = [w for w, (_, n, _) in per.items() if n < n_ref]
        flips = [w for w, (v, n, _) in per.items() if n >= MIN_SEEDS and ref_on_same.get(w)
                 and v != ref_on_same[w][0]]
        order = [ref_where] + sorted(w for w in per if w != ref_where)
        others = len(per) - 1  # the reference aside
        judged = others - len(few)  # of them, those with all of the reference's seeds
        rows.append({
            "architecture": arch, "variant": variant, "model": g["model"].iloc[0],
            "claim": f">= {per[ref_where][2]:g}%", "reference_verdict": ref_verdict,
            # yes: the same verdict on every platform, each on all of the reference's seeds;
            # not yet: no platform disagrees on the seeds it has, but some lack some of them
            # (and on how many of the other platforms it is judged and holds, where some)
            "holds_everywhere": "no" if flips else ("yes" if not few else _not_yet(judged, others)),
            "judged_on": judged, "other_platforms": others,
            "verdicts": "; ".join(f"{w}: {per[w][0].replace(' (n<2)', '')} (n={per[w][1]})" for w in order),
            "flips_on": ", ".join(flips),
            "too_few_seeds_on": ", ".join(sorted(few)),
        })
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _not_yet(judged: int, others: int) -> str:
    """"not yet", and on how many of the ``others`` platforms (the reference's aside) the
    verdict is judged, with all of the reference's seeds, and holds, where on any."""
    return f"not yet (holds on {judged} of {others} other platforms)" if judged else "not yet"


def spreads_long(table: pd.DataFrame) -> pd.DataFrame:
    """The three spreads of every row in long form, for the plot."""
    names = {"seed_sd_pt": "seeds (sd, one platform)", "platform_sd_pt": "platforms (sd, same seed)",
             "test_se_pt": "test images (binomial se)"}
    out = table.melt(id_vars=["model"], value_vars=list(names), var_name="source", value_name="points")
    out["source"] = out["source"].map(names)
    return out


# --------------------------------------------------------------------- the report's section

VARIANCE_MD = {
    "columns": ["model", "reference", "n_seeds", "seed_sd_pt", "n_platforms", "n_pairs", "platform_sd_pt",
                "platform_diff_sd_pt", "platform_diff_max_pt", "test_se_pt", "largest", "unchanged_on",
                "across_cpu_kinds"],
    "formats": {"seed_sd_pt": ".3f", "platform_sd_pt": ".3f", "platform_diff_sd_pt": ".3f",
                "platform_diff_max_pt": ".3f", "test_se_pt": ".3f"},
    "headers": {"model": "architecture", "reference": "reference platform", "n_seeds": "seeds",
                "seed_sd_pt": "seed sd (pt)", "n_platforms": "platforms", "n_pairs": "pairs",
                "platform_sd_pt": "platform sd, same seed (pt)", "platform_diff_sd_pt": "sd of differences (pt)",
                "platform_diff_max_pt": "largest |difference| (pt)", "test_se_pt": "test-set se (pt)",
                "largest": "largest difference", "unchanged_on": "bit-identical on",
                "across_cpu_kinds": "same setting, other CPU kind: seeds bit-identical"},
}
VERDICTS_MD = {
    "columns": ["model", "claim", "reference_verdict", "holds_everywhere", "verdicts"],
    "formats": {},
    "headers": {"model": "architecture", "reference_verdict": "verdict (reference)",
                "holds_everywhere": "holds on every platform", "verdicts": "verdict per platform (seeds)"},
}
VARIANCE_NOTE = (
    "Seed sd: the sd of the final full-test-set accuracy over the seeds of the reference platform (the claim "
    "audit's runs). Platform sd: the sd over platforms of one seed's accuracy, pooled over the seeds run on two "
    "or more platforms; the differences are each platform's run minus the same seed's reference run (their sd "
    "and the largest). Test-set se: the binomial standard error of one evaluation on the test images at the "
    "reference mean, the same for every run on this test set. A platform is a setting on one CPU kind "
    "(`mnist_audit.platforms`): oneDNN capped to an instruction set (avx2, avx512_core, ...), oneDNN's "
    "operations off (eigen), two threads (threads2), Keras on JAX (jax: the TensorFlow port's initial weights "
    "and batches; its dropout masks are JAX's own, so for " + ", ".join(DROPOUT_DIFFERS) + " a jax pair differs "
    "by more than kernels). Bit-identical: the same test accuracy and test loss, to the last bit, for every seed. "
    "Same setting, other CPU kind: per setting run on two CPU kinds, how many of the seeds run on both gave the "
    "same bits on both (and the largest difference where some did not): where they all did, the CPU kind moved "
    "nothing and the setting's spread is the kernels'.")


VERDICTS_NOTE = (
    "Each platform is judged with the claim audit's method on its runs of the reference platform's seeds "
    "(n: how many it has), so that a verdict can change with the machine, never with the number of seeds: a "
    "platform flips where its verdict differs from the reference's on the same seeds, and is judged only on all "
    "of them (with fewer, it is not yet judged: a verdict on fewer seeds may differ for that alone; \"not yet "
    "(holds on 4 of 7 other platforms)\": the reference's verdict on the 4 other platforms that have all of its "
    "seeds).")


ONE_PLATFORM = ("One platform only: no platform spread to measure (config key platforms, e.g. "
                "[default, avx2, eigen, jax]).")


def variance_markdown(table: pd.DataFrame) -> str:
    from .tables import md

    return md(table, VARIANCE_MD) + "\n" + VARIANCE_NOTE + "\n" if len(table) else ONE_PLATFORM + "\n"


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    from .tables import md

    return md(verdicts, VERDICTS_MD) + "\n" + VERDICTS_NOTE + "\n" if len(verdicts) else ONE_PLATFORM + "\n"


def plot_variance(table: pd.DataFrame, path, scaled: bool) -> None:
    """The three spreads of every architecture on one axis (points of accuracy)."""
    from .plots import _pyplot, _save, _title, entry_name

    plt, sns = _pyplot()
    long = spreads_long(table)
    # each row as a reader knows it, from the table's own architecture and variant
    shown = {r.model: entry_name(r.architecture, r.variant, width=34) for r in table.itertuples(index=False)}
    long["model"] = long["model"].map(shown)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(3, len(table)) + 1.2))
    if long.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, ONE_PLATFORM.replace(": ", ":\n", 1), ha="center", va="center")
    else:
        sns.pointplot(data=long, y="model", x="points", hue="source", dodge=0.45, linestyle="none",
                      markers=["o", "s", "D"], ax=ax, errorbar=None)
        ax.set_xlabel("points of accuracy (full test set)")
        ax.set_ylabel("")
        ax.set_xlim(left=-0.02 * max(float(long["points"].max()), 0.01))  # a zero spread's marker shows whole
        ax.legend(title=None, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=10, frameon=False)
    ax.set_title(_title(scaled, "Seed, platform and test-set spreads, per architecture"))
    _save(fig, path)


def findings(table: pd.DataFrame, verdicts: pd.DataFrame) -> list[str]:
    """The study's answers in sentences: how many claims keep their verdict on every
    platform (and which flip where), and which architectures no platform moved."""
    out = []
    if len(verdicts):
        flips = verdicts[verdicts["holds_everywhere"] == "no"]
        held = verdicts[verdicts["holds_everywhere"] == "yes"]
        waiting = verdicts[~verdicts["holds_everywhere"].isin(["yes", "no"])]  # "not yet ..."
        partly = waiting[waiting["judged_on"].astype(int) > 0]
        out.append(f"Of {len(verdicts)} judged claims, {len(held)} keep their verdict on every platform measured "
                   "(each on all of the reference's seeds)" + (": " + ", ".join(held["model"]) if len(held) else "")
                   + "; " + (f"{len(flips)} flip: " + "; ".join(f"{r.model} on {r.flips_on}" for r in flips.itertuples())
                             if len(flips) else "none flips")
                   + f"; {len(waiting)} not yet judged on every platform"
                   + (" (holding on the other platforms with all of the reference's seeds: " + ", ".join(
                       f"{r.model} on {r.judged_on} of {r.other_platforms}" for r in partly.itertuples()) + ")"
                      if len(partly) else "") + ".")
        open_ = verdicts[verdicts["too_few_seeds_on"] != ""]
        if len(open_):
            out.append("Not yet judged on all of the reference's seeds: " + "; ".join(
                f"{r.model} on {r.too_few_seeds_on}" for r in open_.itertuples()) + ".")
    same = table[table["changed_on"] == ""]
    if len(same):
        out.append("Bit-identical on every platform measured: " + ", ".join(same["model"]) + ".")
    compared = table[table["same_across_kinds"].notna()]
    if len(compared):
        held = compared[compared["same_across_kinds"].astype(bool)]
        moved = compared[~compared["same_across_kinds"].astype(bool)]
        out.append("The same setting on another CPU kind gave the same bits on every seed run on both for "
                   + (", ".join(held["model"]) if len(held) else "no architecture")
                   + ("; other bits for " + "; ".join(f"{r.model} ({r.across_cpu_kinds})" for r in moved.itertuples())
                      if len(moved) else "") + ".")
    return out


def section(table: pd.DataFrame, verdicts: pd.DataFrame, plot_link: str | None) -> list[str]:
    """The report README's lines on the platform study ([] with one platform only)."""
    if table.empty:
        return []
    lines = ["## How much the machine moves the answer", "", variance_markdown(table)]
    if len(verdicts):
        lines += [verdicts_markdown(verdicts)]
    for sentence in findings(table, verdicts):
        lines += [sentence, ""]
    if plot_link:
        lines += [f"![seed, platform and test-set spreads]({plot_link})", ""]
    return lines


def html_section(table: pd.DataFrame, verdicts: pd.DataFrame, plot_link: str | None) -> str:
    """The landing page's lines on the platform study ("" with one platform only): the
    plot, the spreads table, each claim's verdicts per platform, the findings."""
    import html

    from .report.landing import _table, prose

    if table.empty:
        return ""
    parts = ["<h2>How much the machine moves the answer</h2>"]
    if plot_link:
        parts.append(f"<p><img class='plot' src='{html.escape(plot_link)}' alt='seed, platform and test-set "
                     "spreads of every architecture, in points of accuracy'></p>")
    parts += [_table(table, VARIANCE_MD), prose(VARIANCE_NOTE)]
    if len(verdicts):
        parts += [_table(verdicts, VERDICTS_MD), prose(VERDICTS_NOTE)]
    parts += [prose(x) for x in findings(table, verdicts)]
    return "\n".join(parts)
