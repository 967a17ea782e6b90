"""The audit's answer in plain words, and the verdict table that follows it.

A few sentences, in the words a reader of the tutorials uses: how many tutorials state a
figure, which hold up, which are borderline and why, what the machine does to the
numbers, and what a run costs. Every number and name comes from the records (the claim
audit, the platform study, the runs) and the registry; nothing is typed here. The
README's status block, the report's main page and summary.html open with them.
"""

from __future__ import annotations

import pandas as pd

from .. import audit as stats
from ..tables import isnan, markdown_table
from . import names

HOLDS = stats.REPRODUCED


def _join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def hours(seconds: float) -> str:
    """A duration as a person reads it: "4 s", "12 min", "2.3 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def judged(audit: pd.DataFrame) -> pd.DataFrame:
    """The rows with a verdict on a claim (not "no claim ...")."""
    return audit[~audit["verdict"].str.startswith(stats.NO_CLAIM)]


def why(r, prefix: str = "", named: bool = True) -> str:
    """One judged row's verdict and why, in one clause (``r``: a claim-audit row), after its
    linked name and figure (``named``) or after the figure alone."""
    who = f"{names.link(r.architecture, r.variant, prefix, source=False)} (\"{names.figure(r.architecture)}\")" \
        if named else f"\"{names.figure(r.architecture)}\""
    bound = r.claim_lower_pct
    if r.verdict == stats.REPRODUCED:
        return f"{who}: mean {r.mean_pct:.2f}%, its whole 95% interval above {bound:g}%"
    if r.verdict == stats.NOT_REPRODUCED:
        return f"{who}: mean {r.mean_pct:.2f}%, its whole 95% interval below {bound:g}%"
    if r.verdict == stats.INCONCLUSIVE:
        return f"{who}: mean {r.mean_pct:.2f}%, interval {r.ci_low_pct:.2f} to {r.ci_high_pct:.2f}% around {bound:g}%"
    return f"{who}: not judged ({r.verdict})"


def claims_sentences(audit: pd.DataFrame, prefix: str = "") -> list[str]:
    """Which tutorials state a figure, which hold up, which are borderline and why; then
    the baselines."""
    out = []
    tutorials = audit[~audit["baseline"].astype(bool)]
    stating = judged(tutorials)
    seeds = sorted(set(int(n) for n in audit["n_seeds"]))
    times = f"{seeds[0]} times" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]} times"
    held = stating[stating["verdict"] == HOLDS]
    n_stating = stating["architecture"].nunique()
    head = (f"Of {_plural(tutorials['architecture'].nunique(), 'tutorial')}, each trained {times} with its "
            f"author's own recipe, {n_stating} {'states' if n_stating == 1 else 'state'} an accuracy figure")
    if len(stating):
        count = "none" if len(held) == 0 else str(len(held))
        head += f", and {count} of those {'hold' if len(held) > 1 else 'holds'} up" + (": " + _join(
            [names.link(r.architecture, r.variant, prefix, source=False) for r in held.itertuples(index=False)])
            if len(held) else "")
    out.append(head + ".")
    for verdict, word in ((stats.INCONCLUSIVE, "Borderline, the least figure the claim rounds from inside "
                                               "our 95% interval"),
                          (stats.NOT_REPRODUCED, "Not reproduced")):
        rows = stating[stating["verdict"] == verdict]
        if len(rows):
            out.append(f"{word}: " + "; ".join(why(r, prefix) for r in rows.itertuples(index=False)) + ".")
    other = stating[~stating["verdict"].isin([HOLDS, stats.INCONCLUSIVE, stats.NOT_REPRODUCED])]
    if len(other):
        out.append("Not judged: " + "; ".join(why(r, prefix) for r in other.itertuples(index=False)) + ".")
    baselines = judged(audit[audit["baseline"].astype(bool)])
    if len(baselines):
        parts = []
        for r in baselines.itertuples(index=False):
            word = {stats.REPRODUCED: "holds up", stats.NOT_REPRODUCED: "is not reproduced",
                    stats.INCONCLUSIVE: "is borderline"}.get(r.verdict, f"is {r.verdict}")
            who = names.name(r.architecture, r.variant).removeprefix("Baseline: ")
            parts.append(f"[{names.md_escape(who)}]({names.page(r.architecture, prefix)}) {word}")
        n_base = audit.loc[audit["baseline"].astype(bool), "architecture"].nunique()
        out.append(f"Of the {_plural(n_base, 'baseline')}, " + _join(parts) + ".")
    return out


def machine_sentence(spreads: pd.DataFrame | None, verdicts: pd.DataFrame | None) -> str | None:
    """What the machine does to the numbers (the platform study), or None without one."""
    if spreads is None or spreads.empty:
        return None
    moved = pd.to_numeric(spreads["platform_diff_max_pt"], errors="coerce")
    platform_sd = pd.to_numeric(spreads["platform_sd_pt"], errors="coerce").fillna(0)
    seed_sd = pd.to_numeric(spreads["seed_sd_pt"], errors="coerce").fillna(0)
    n_where = len({w for text in spreads["platforms"] for w in str(text).split(", ")} | set(spreads["reference"]))
    less = bool((platform_sd <= seed_sd).all())
    text = ("The machine matters less than the seed: " if less else "") + (
        f"on {n_where} platforms (CPU kinds, kernel settings, JAX) a run moved by at most {moved.max():.2f} points")
    if not less:
        text = text[0].upper() + text[1:] + ", more than the seeds differ for " + _join(
            [names.name(r.architecture, r.variant) for r in spreads[platform_sd > seed_sd].itertuples(index=False)])
    if verdicts is not None and len(verdicts):
        flips = verdicts[verdicts["holds_everywhere"] == "no"]
        text += ("; the verdict changes for " + _join([f"{names.name(r.architecture, r.variant)} (on {r.flips_on})"
                                                      for r in flips.itertuples(index=False)])
                 if len(flips) else ", and no verdict changed")
    return text + "."


def cost_sentence(runs: pd.DataFrame, timing: pd.DataFrame, audit: pd.DataFrame) -> str | None:
    """What a run costs (the verdict rows' mean training time) and the whole audit's compute."""
    rows = timing.merge(audit[["architecture", "variant"]], on=["architecture", "variant"])
    rows = rows[rows["train_seconds_mean"].notna()]
    if rows.empty:
        return None
    cheap = rows.loc[rows["train_seconds_mean"].idxmin()]
    dear = rows.loc[rows["train_seconds_mean"].idxmax()]
    threads = runs["threads"].fillna(1).astype(float) if "threads" in runs else 1.0
    seconds = "job_seconds" if "job_seconds" in runs else "wall_seconds"
    cpu_hours = float((runs[seconds].astype(float) * threads).sum()) / 3600
    return (f"A run trains in {hours(cheap['train_seconds_mean'])} to {hours(dear['train_seconds_mean'])} on one CPU "
            f"core; the {len(runs)} runs took {cpu_hours:.1f} CPU-hours.")


def answer(audit: pd.DataFrame, runs: pd.DataFrame, timing: pd.DataFrame, spreads: pd.DataFrame | None = None,
           verdicts: pd.DataFrame | None = None, prefix: str = "") -> str:
    """The answer as one Markdown paragraph (``prefix``: the report folder relative to the
    page it opens, for the links to the tutorials' pages)."""
    sentences = claims_sentences(audit, prefix)
    sentences += [s for s in (machine_sentence(spreads, verdicts), cost_sentence(runs, timing, audit)) if s]
    return " ".join(sentences)


# --------------------------------------------------------------------- the verdict table

def _claim_cell(r) -> str:
    if r.claim_text == "(none stated)":
        ref = str(r.reference).split(":")[0] if isinstance(r.reference, str) and r.reference else ""
        return f"none (cited {ref})" if ref else "none"
    if r.verdict.startswith(stats.NO_CLAIM):
        return "see " + ("the author's recipe" if r.claim_recipe == "default" else
                         names.variant_label(r.architecture, r.claim_recipe))
    return names.figure(r.architecture)


def verdict_word(v: str) -> str:
    """A verdict in the tables: "no claim (not the claim's recipe)" reads "no claim" (the claim
    column says whose recipe the claim is)."""
    return stats.NO_CLAIM if v.startswith(stats.NO_CLAIM) else v


def verdict_table(audit: pd.DataFrame, prefix: str = "") -> str:
    """The table under the answer: one row per entry and variant, named and linked to its
    page ("↗": where the author published it; a variant's row, under its entry's, "↳ what it
    is"); four columns, narrow enough for GitHub's column."""
    rows = []
    for r in audit.itertuples(index=False):
        if r.variant == "default":
            who = names.link(r.architecture, r.variant, prefix)
        else:
            who = f"↳ [{names.md_escape(names.variant_label(r.architecture, r.variant))}]({names.page(r.architecture, prefix)})"
        figure = "" if isnan(r.mean_pct) else (
            f"{r.mean_pct:.2f}%" + ("" if isnan(r.ci_low_pct) else f" [{r.ci_low_pct:.2f}, {r.ci_high_pct:.2f}]"))
        rows.append({"tutorial": who, "claim": _claim_cell(r), "mean [95% interval]": figure,
                     "verdict": verdict_word(r.verdict)})
    # the cells are Markdown already (links): markdown_table escapes "|" only
    return markdown_table(pd.DataFrame(rows))
