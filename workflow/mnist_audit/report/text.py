"""The report's text: the README (verdicts, the claim audit in full, origins, port
versus original, plots, parameters, timing, budgets, fidelity notes, provenance), the
verdict rule and interval notes, and the one-line verdict summary and compact verdict
table that the README, the HTML summary and the audit status open with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from .. import audit as stats
from .. import registry
from ..config import original_of, starts_from_port
from ..data import MNIST_FILES
from ..recipes import ORIGINAL_KINDS
from ..tables import AUDIT_MD, PORT_MD, budget_detail, date_span, groups, isnan, markdown_table, md, order_rows
from ..runs import label as model_label

TOLERANCE = stats.TOLERANCE
NO_ORIGINALS = "No originals among these runs (opt-in: config key `originals`)."

VERDICT_RULE = (
    "Verdict rule (per architecture and variant, on the **author's measure**: the split and the "
    "reading the author used, one value per seed; the threshold is the claim's lower bound, the "
    "one threshold of the report, also used for k/n, time to the bound and the plots): "
    "**no claim** if the tutorial states no figure (a figure cited from elsewhere is shown as a "
    "reference, never judged), or if the row's recipe is not the one the claim sentence came from; "
    "**inconclusive (scaled budget)** / **inconclusive (overridden recipe)** if any run of the row "
    "departs from the published recipe (budget_scale != 1, a train or eval subset, or recipe "
    "overrides): such a row is never 'reproduced'; "
    "**inconclusive (n<2)** with fewer than 2 seeds; "
    "**reproduced** if the lower end of the 95% interval of the mean is >= the claim's lower bound; "
    "**not reproduced** if its upper end is < the claim's lower bound; "
    "**inconclusive** otherwise (the interval straddles the bound). "
    f"Bounds are compared with a tolerance of {TOLERANCE:g} (float32 rounding of accuracies)."
)
CI_NOTE = (
    "The 95% interval covers both sources of error, seeds and test images: var(mean) = s^2/n "
    "(s: the sd over seeds of the runs' accuracies on the shared evaluation set) + the variance "
    "over evaluation images of the runs' mean correctness / number of images (from each run's "
    "per-image predictions: the runs are paired on the same images); Student's t with "
    "Welch-Satterthwaite degrees of freedom (scipy.stats.t), bounded to [0, 100]%. For a "
    "best-epoch reading (no per-image record per epoch) the image term is the binomial "
    "p(1-p)/n_images. On 1,000 simulated audits with a known true accuracy it covered the truth "
    "93-96% of the time (tests/test_audit.py). k/n counts the runs that individually reach the "
    "claim's lower bound; the 95% prediction interval for one new run is mean +- t(0.975, n-1) "
    "* sd * sqrt(1 + 1/n). The seed-only Student-t interval of the test accuracy "
    "(scipy.stats.t.interval) is in claim_audit.csv (test_t_low_pct, test_t_high_pct)."
)
PORT_NOTE = (
    "The original of a TF1-era tutorial is the author's program written in TensorFlow 1's graph API "
    "(`mnist_audit.originals`: placeholders, feed_dict, a session, the v1 initialisers, losses and "
    "optimizers), fed the same batches in the same order from the same prepared data; the original "
    "of a Keras tutorial is the author's script itself, run as written on the same data "
    "(`mnist_audit.originals.scripts`). Final "
    "full-test-set accuracy per seed. A pair is a port run and an original run of the same seed, "
    "CPU kind and platform (pairs per CPU kind: that column; rows pool the kinds' pairs; in the "
    "published audit a port partner on another CPU kind than audit/runs' comes from "
    "`audit/platforms/{cpu}/default/`). A run that repeats another CPU kind's run of the same seed and "
    "platform to the last bit (test accuracy and loss) is the same computation, not another sample: it is "
    "counted once (repeats: how many runs of both sides, or for the port's draw how many pairs, were such "
    "repeats; Intel's default gives AMD's bits for most ports). The verdict rests on the t-tests alone: a "
    "t-test and its 95% interval of the difference (Welch's for the **own draw** rows, the sides' runs being independent "
    "draws; paired, on the per-pair differences, for **the port's draw** rows, where both sides share "
    "each seed's initial weights and data order, so the seed spread is common to both); equivalence by "
    "TOST (two one-sided t-tests of the same kind) with a margin of 0.2 points (about twice the test "
    "set's binomial standard error at 99% and above the seed spread, well inside any claim's rounding). "
    "Verdict: **equivalent** when TOST rejects at 5% on 5 pairs or more (with fewer, a rejecting row is "
    "**inconclusive (n<5)**: a difference counts test images, so a few pairs can agree to the image and "
    "leave a sd of 0, and a t-test on them says nothing); **different** when TOST does not reject and the "
    "t-test rejects; **inconclusive** otherwise. Pairs needed: the fewest pairs (for own-draw rows, runs a "
    "side) with which TOST has 80% power at 5% if the true difference is 0, at the spread measured "
    "here (sd of a difference: of the per-pair differences; for own-draw rows the two-sample analogue, "
    "sqrt(sd_port^2 + sd_original^2), and the power that of Welch's test itself), exact by quadrature "
    "over the estimated variances' chi-squares (`mnist_audit.portpower`); a point estimate, as uncertain "
    "as a sd measured on a few seeds; never below 5, the verdict's floor (where the power alone asks "
    "fewer, that figure follows in brackets). A row that is not equivalent lacks **runs** (fewer pairs run than "
    "needed) or **agreement** (enough pairs, yet the interval is not inside the margin; or the t-test "
    "rejects: different). McNemar's exact test is run within each pair (one test set, two trained "
    "networks: the pairs with p < 0.05 are counted, and the pairs' p-values combined by Fisher's "
    "method); it asks whether those two networks differ on these images, not whether the programs do "
    "(two runs of one program differ too), and no verdict uses it. McNemar pooled over the pairs' "
    "images (port_vs_original.csv: mcnemar_pooled_p) treats the images of different runs as "
    "independent draws; it is kept for reference only. Images/s: each side's steady training images "
    "per second in its own jobs (for a side-by-side speed figure see `snakemake bench`). **Full "
    "budget** rows come first; **behaviour check** rows, below them, compare both sides at one stated, "
    "equal reduced budget (the budget column; in the published audit `audit/portcheck/`, budget x0.02, "
    "for thomas, cnn_tutorial and zaccone): early in training, they check the programs' behaviour, "
    "never the regime a claim is about. Initial weights: the two programs draw from the same "
    "distributions but from different random streams, so by default (**own draw**) a pair of runs "
    "with the same seed shares its data order, not its initial weights; **the port's draw** rows "
    "start the original from the port's initial weights for that seed (variant "
    "`original_from_port`), which leaves only what the programs compute (and their dropout masks) "
    "between the two sides. A Keras script draws the port's own initial weights and dropout seeds "
    "(same layers, same order, same seed); its own draw is its data order (fit's shuffle), and its "
    "`original_from_port` runs train in the port's data order, one fit call per epoch."
)


def verdict_summary(audit_table: pd.DataFrame) -> str:
    """One line: "3 reproduced, 1 not reproduced, 2 no claim, ..." (rows per verdict)."""
    counts = audit_table["verdict"].value_counts()
    order = [stats.REPRODUCED, stats.NOT_REPRODUCED, stats.INCONCLUSIVE, stats.NO_CLAIM]
    keys = sorted(counts.index, key=lambda v: (next((i for i, o in enumerate(order) if v.startswith(o)), 9), v))
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def run_counts(runs: pd.DataFrame, audit_table: pd.DataFrame) -> str:
    """"115 training runs: 60 in the 12 verdict rows, 55 of the authors' own programs (35 in
    TF1's graph API, 20 Keras scripts; ...)"."""
    is_original = [original_of(v) is not None for v in runs["variant"]]
    originals = int(sum(is_original))
    text = f"{len(runs)} training runs: {len(runs) - originals} in the {len(audit_table)} verdict rows"
    if originals:
        tf1_graph, keras_script = ORIGINAL_KINDS
        kinds = [registry.get_architecture(a).original for a in runs.loc[is_original, "architecture"]]
        counts = ((kinds.count(tf1_graph), "in TF1's graph API"), (kinds.count(keras_script), "Keras scripts"))
        what = ", ".join(f"{n} {label}" for n, label in counts if n)
        text += (f", {originals} of the authors' own programs ({what}; compared with their ports under Port "
                 "versus the author's program, in no verdict row)")
    return text


def _figure(mean, lo, hi) -> str:
    if isnan(mean):
        return ""
    if isnan(lo):
        return f"{mean:.2f}%"
    return f"{mean:.2f}% [{lo:.2f}, {hi:.2f}]"


def compact_verdicts(audit_table: pd.DataFrame) -> pd.DataFrame:
    """The table the report opens with (6 columns)."""
    rows = []
    for r in audit_table.itertuples(index=False):
        if r.claim_text == "(none stated)":
            claim = "none" + (f" (reference: {r.reference.split(':')[0]})" if r.reference else "")
        elif r.verdict.startswith(stats.NO_CLAIM):
            claim = f"{r.claim_pct:g}% is {model_label(r.architecture, r.claim_recipe)}'s"
        else:
            claim = f"{r.claim_pct:g}% (>= {r.claim_lower_pct:g}%)"
        k = "" if isnan(r.runs_reaching) else f"{int(r.runs_reaching)}/{r.n_seeds}"
        rows.append({
            "architecture": r.model,
            "claim": claim,
            "author's measure": f"{'validation' if r.measure == 'val' else 'test'}, {r.reading}",
            "our figure, 95% interval": _figure(r.mean_pct, r.ci_low_pct, r.ci_high_pct),
            "runs reaching": k,
            "verdict": r.verdict,
        })
    return pd.DataFrame(rows)


def how_sure(r) -> str:
    """One line per verdict row: where its 95% interval lies against the claim's bound,
    and how many runs reach the bound on their own (``r``: a claim-audit row)."""
    k = "" if isnan(r.runs_reaching) else f"; {int(r.runs_reaching)}/{r.n_seeds} runs reach it"
    lo, hi, bound = r.ci_low_pct, r.ci_high_pct, r.claim_lower_pct
    if r.verdict.startswith(stats.NO_CLAIM):
        why = ("the tutorial states no figure, so there is nothing to reproduce" if r.claim_text == "(none stated)"
               else f"the claim's figure belongs to {model_label(r.architecture, r.claim_recipe)}; "
                    "this row is shown for reference")
        text = f"{why}; our figure {_figure(r.mean_pct, lo, hi)}"
    elif r.verdict == stats.REPRODUCED:
        text = f"the whole 95% interval is above the bound {bound:g}% (its lower end by {lo - bound:.2f} points){k}"
    elif r.verdict == stats.NOT_REPRODUCED:
        text = f"the whole 95% interval is below the bound {bound:g}% (its upper end by {bound - hi:.2f} points){k}"
    elif r.verdict == stats.INCONCLUSIVE:
        text = (f"the 95% interval [{lo:.2f}, {hi:.2f}] contains the bound {bound:g}% "
                f"(the mean is {r.mean_pct - bound:+.2f} points from it){k}")
    else:  # inconclusive (scaled budget / overridden recipe / n<2)
        text = f"not judged: {r.verdict.split('(', 1)[-1].rstrip(')')}{k}"
    return f"{r.model}: {r.verdict}: {text}."


def claim_audit_markdown(audit: pd.DataFrame) -> str:
    """claim_audit.md: the summary line, the compact table, the full table and the rules."""
    return (f"**{verdict_summary(audit)}.**\n\n" + markdown_table(compact_verdicts(audit)) + "\n"
            + md(audit, AUDIT_MD) + "\n" + VERDICT_RULE + "\n\n" + CI_NOTE + "\n")


def port_markdown(pvo: pd.DataFrame) -> str:
    """port_vs_original.md: the table and its note, or the sentence saying there is none."""
    return (md(pvo, PORT_MD) + "\n" + PORT_NOTE + "\n") if len(pvo) else NO_ORIGINALS + "\n"


def provenance_sections(runs: pd.DataFrame, manifest: Mapping | None) -> list[str]:
    out = ["## Provenance", ""]
    commits = runs["git_commit"].fillna("unknown").value_counts()
    out.append("**Code (git commit of the training jobs):** " + ", ".join(
        f"`{c}` ({k} run{'s' if k > 1 else ''})" for c, k in commits.items()))
    if any(str(c).endswith("-dirty") for c in commits.index):
        out.append("")
        out.append("> Some runs were trained from a checkout with uncommitted changes (`-dirty`).")
    out += ["", "**Devices:**", ""]
    dev = runs.groupby(["device_kind", "device", "backend"], sort=False).size().reset_index(name="runs")
    out.append(markdown_table(dev, headers={"device_kind": "kind"}))
    versions: dict[str, set] = {}
    for text in runs["packages"].dropna():
        for k, v in json.loads(text).items():
            versions.setdefault(k, set()).add(v)
    if versions:
        pk = pd.DataFrame([{"package": k, "version": ", ".join(sorted(v))} for k, v in sorted(versions.items())])
        out += ["**Package versions (as recorded by the training jobs):**", "", markdown_table(pk)]
    if manifest:
        rows = []
        for name, digest in sorted((manifest.get("payload_sha256") or {}).items()):
            src = (manifest.get("sources") or {}).get(name, {})
            spec = MNIST_FILES.get(name)
            rows.append({"file": name, "payload SHA-256": digest,
                         "matches the benchmark": "yes" if spec and spec.payload_sha256 == digest else "NO",
                         "canonical archive": {True: "yes", False: "no"}.get(src.get("archive_canonical"), ""),
                         "mirror": src.get("mirror", "")})
        out += ["**Data (MNIST; integrity = SHA-256 of each decompressed IDX payload):**", "",
                markdown_table(pd.DataFrame(rows))]
        counts = manifest.get("counts") or {}
        out.append(f"Split: {manifest.get('split', '')}; counts {json.dumps(counts)}; "
                   f"split file SHA-256 `{manifest.get('split_sha256', '')}`.")
        out.append("")
    return out


def budget_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (arch, variant), g in groups(runs):
        r = registry.resolve_recipe(arch, original_of(variant) or variant)
        rows.append({
            "architecture": model_label(arch, variant),
            "published recipe": (f"{r.optimizer} lr {r.learning_rate:g}, batch {r.batch_size}, "
                                 f"{r.budget:,} {r.budget_unit}"),
            "seeds": " ".join(str(int(s)) for s in sorted(g["seed"])),
            "recipe kind": ", ".join(sorted(set(g["recipe_kind"]))),
            "budget as run": budget_detail(g),
            "train images": "/".join(str(int(v)) for v in sorted(set(g["n_train"]))),
            "test images": "/".join(str(int(v)) for v in sorted(set(g["n_test"]))),
        })
    return pd.DataFrame(rows)


def fidelity_sections(runs: pd.DataFrame) -> list[str]:
    out = ["## Fidelity notes per architecture", "",
           "What each port does differently from the author's code, and where the original measured "
           "its claim (from the registry, `workflow/mnist_audit/registry.py`).", ""]
    pairs = order_rows(runs[["architecture", "variant"]].drop_duplicates())
    for name in dict.fromkeys(pairs["architecture"]):
        a = registry.get_architecture(name)
        variants = pairs.loc[pairs["architecture"] == name, "variant"]
        out.append(f"### {name}{' (baseline)' if a.baseline else ''}: {a.title}")
        out.append("")
        out.append(f"- Author: {a.author}; " + (f"seed file `{a.seed_file}`." if a.seed_file else f"source: {a.source}."))
        out.append(f"- Layers: {a.layers}.")
        claim = f"\"{a.claim.text}\" (value {100 * a.claim.value:g}%, lower bound {100 * a.claim.lower:g}%)" \
            if a.claim.value is not None else "none stated"
        out.append(f"- Claim: {claim}; the original measured on: {a.claim.where}.")
        for v in variants:
            out.append(f"- Variant run: `{v}`: {_variant_text(a, v)}.")
        out.append("- Fidelity decisions:")
        out += [f"  - {line}" for line in a.fidelity]
        out.append("")
    return out


def _variant_text(arch, variant: str) -> str:
    """What a run variant is: the registry's words for a port's variant; for a TF1 original,
    the program, the recipe it implements and where its initial weights come from."""
    of = original_of(variant)
    if of is None:
        return arch.variants.get(variant) or "not described in the registry"
    start = ("started from the port's initial weights for each seed (the port's draw)" if starts_from_port(variant)
             else "its own initial draw")
    return (f"the author's program in TensorFlow 1's graph API (`mnist_audit.originals`) with the `{of}` "
            f"variant's recipe, {start}; compared with the port under Port versus the author's program")


def origin_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per row: the commits, machines (CPU kind, threads, load) and dates its runs came from."""
    rows = []
    for (arch, variant), g in groups(runs):
        def joined(col, fmt=str):
            return ", ".join(sorted({fmt(v) for v in g[col] if not isnan(v)})) or "unknown"
        load = pd.to_numeric(g["load_average"], errors="coerce")
        dates = sorted(str(v)[:10] for v in g["trained_at"] if not isnan(v))
        rows.append({
            "architecture": model_label(arch, variant),
            "runs": len(g),
            "commits": joined("git_commit", lambda c: str(c)[:10]),
            "machine": joined("device"),
            "CPU kind": joined("cpu_kind"),
            "load (median of runs)": f"{load.median():.1f} on {joined('logical_cpus')} CPUs"
            if load.notna().any() else "n/a",
            "trained": date_span(dates),
        })
    return pd.DataFrame(rows)


def timing_claims(timing: pd.DataFrame) -> list[str]:
    """One paragraph per architecture whose author also claimed a training time (the
    registry's ``timing_claim``): the claim beside our steady seconds per epoch, each row
    of the timing table, never judged (our hardware is not the author's)."""
    lines = []
    for arch, g in timing.groupby("architecture", sort=False):
        claim = registry.get_architecture(arch).timing_claim
        if not claim:
            continue
        ours = "; ".join(
            f"{r.model} {r.steady_epoch_seconds:.1f} s on {r.device} ({r.n_runs} runs)"
            if not isnan(r.steady_epoch_seconds) else f"{r.model} n/a on {r.device}"
            for r in g.itertuples(index=False))
        lines += [f"Timing claim of {arch} (shown, not judged: other hardware): \"{claim}\". "
                  f"Ours, steady seconds per epoch: {ours}.", ""]
    return lines
