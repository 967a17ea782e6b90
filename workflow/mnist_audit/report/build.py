"""The report's build: the timing table and ``build_report``, the entry point that writes
every table, plot and page of the report (the package's docstring lists the modules)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import audit as stats
from .. import registry, variance
from ..plots import make_plots
from ..portcheck import platforms, port_vs_original
from . import pages, site
from .text import claim_audit_markdown, port_markdown
from .landing import landing_rst
from ..tables import TIMING_MD, is_scaled, isnan, md, order_rows, read_runs, write_csv, write_text
from ..runtable import load_histories

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Histories and timing
# ---------------------------------------------------------------------------


def _median_or_nan(values) -> float:
    vals = [float(v) for v in values if not isnan(v)]
    return float(np.median(vals)) if vals else math.nan


def timing_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, variant, device, backend): cost of training and time to the bound.

    Time to the bound: wall-clock seconds until the author's measure after an epoch first
    reached the claim's lower bound (the report's one threshold), median over the runs
    that reached it. Steady s/epoch is left empty ("n/a") where no run had a steady state
    to measure (one epoch or less): it is never extrapolated from a compiling epoch.
    """
    rows = []
    keys = ["architecture", "variant", "model", "device_kind", "device", "backend"]
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        arch, variant = key[0], key[1]
        claim = registry.get_architecture(arch).claim
        judged = claim.judges(variant)
        n = len(g)
        train = g["total_train_seconds"].astype(float)
        steady = g["steady_state_measured"].astype(str).str.lower().eq("true")
        reached = g[g["bound_reached"].astype(str).str.lower() == "true"]
        k = len(reached)
        median_ttb = _median_or_nan(reached["time_to_bound_seconds"])
        if not judged:
            text = "no claim"
        elif k == 0:
            text = f"not reached (0/{n} runs)"
        else:
            text = f"{median_ttb:.1f} s ({k}/{n} runs)"
        load = pd.to_numeric(g["load_average"], errors="coerce")
        rows.append({
            **dict(zip(keys, key)), "n_runs": n,
            "train_seconds_mean": float(train.mean()),
            "train_seconds_sd": float(train.std(ddof=1)) if n > 1 else math.nan,
            "first_epoch_overhead_seconds": float(g.loc[steady, "first_epoch_overhead_seconds"].astype(float).mean())
            if steady.any() else math.nan,
            "steady_epoch_seconds": float(g.loc[steady, "steady_epoch_seconds"].astype(float).mean())
            if steady.any() else math.nan,
            "steady_measured": f"{int(steady.sum())}/{n}",
            "train_images_per_second": float(g["train_images_per_second"].astype(float).mean()),
            "eval_images_per_second": float(g["eval_images_per_second"].astype(float).mean()),
            "wall_seconds_mean": float(g["wall_seconds"].astype(float).mean()),
            "load_average_median": float(load.median()) if load.notna().any() else math.nan,
            "bound_pct": 100 * claim.lower if judged else math.nan,
            "runs_reached_bound": k if judged else math.nan,
            "time_to_bound_seconds_median": median_ttb,
            "time_to_bound": text,
        })
    return order_rows(pd.DataFrame(rows), ["device", "backend"])


# ---------------------------------------------------------------------------
# The entry point of the report_tables_plots rule
# ---------------------------------------------------------------------------


def build_report(inputs: Mapping, outputs: Mapping[str, str]) -> dict:
    """Claim audit and timing tables, plots, README and HTML summary.

    ``inputs``: runs (runs.csv), parameters (parameters.csv), layers_md (linked from the
    README), histories (every run's history.csv), manifest (optional), and optionally
    study_runs and study_histories: a port-versus-original study at a reduced budget, and
    platform_runs and platform_histories: the platform study's runs (the published
    audit's audit/platforms/). The claim audit reads the default platform's runs only; the
    platform study enters the variance section, and its default-platform runs on another
    CPU kind the port-versus-original table (as the port partners of that kind's
    originals). ``outputs``: the paths named in report.smk's report_tables_plots rule.
    """
    runs = read_runs(inputs["runs"])
    # The claim audit, timing and plots read the default platform's runs; the platform
    # study (runs on other platforms, and the published audit's audit/platforms/) its own section.
    elsewhere = runs["platform"].ne("default") if "platform" in runs else pd.Series(False, index=runs.index)
    runs, platform_runs = runs[~elsewhere].reset_index(drop=True), runs[elsewhere]
    histories = list(inputs["histories"])
    if inputs.get("platform_runs"):
        platform_runs = pd.concat([platform_runs, read_runs(inputs["platform_runs"])], ignore_index=True)
        histories += list(inputs["platform_histories"])
    params = pd.read_csv(inputs["parameters"])
    manifest = json.loads(Path(inputs["manifest"]).read_text()) if inputs.get("manifest") else None
    audit = stats.claim_audit(runs)
    timing = timing_table(runs)
    hist = load_histories(runs, inputs["histories"])
    partners = platform_runs[platforms(platform_runs) == "default"]  # the default platform, other CPU kinds
    pvo_runs = pd.concat([runs, partners], ignore_index=True)
    pvo_hist = pd.concat([hist, load_histories(partners, histories)], ignore_index=True) if len(partners) else hist
    if inputs.get("study_runs"):
        study = read_runs(inputs["study_runs"])
        pvo_runs = pd.concat([pvo_runs, study], ignore_index=True)
        pvo_hist = pd.concat([pvo_hist, load_histories(study, inputs["study_histories"])], ignore_index=True)
    pvo = port_vs_original(pvo_runs)
    scaled = is_scaled(runs)
    write_csv(outputs["claim_audit_csv"], audit)
    write_text(outputs["claim_audit_md"], claim_audit_markdown(audit))
    write_csv(outputs["timing_csv"], timing)
    links = {"parameters_csv": str(inputs["parameters"]), **outputs, "runs": str(inputs["runs"]),
             "layers_md": str(inputs["layers_md"])}
    study = variance.study_runs(runs, platform_runs)
    spreads, verdicts = variance.variance_table(study), variance.platform_verdicts(study)
    if "landing" in outputs:
        write_text(outputs["landing"], landing_rst(runs, audit, scaled))
    if "port_vs_original_csv" in outputs:
        write_csv(outputs["port_vs_original_csv"], pvo)
        write_text(outputs["port_vs_original_md"], port_markdown(pvo))
    write_text(outputs["timing_md"], md(timing, TIMING_MD))
    make_plots(runs, audit, hist, pvo, outputs, scaled, pvo_hist)
    if "variance_csv" in outputs:
        write_csv(outputs["variance_csv"], spreads)
        write_text(outputs["variance_md"], variance.variance_markdown(spreads))
        write_csv(outputs["platform_verdicts_csv"], verdicts)
        write_text(outputs["platform_verdicts_md"], variance.verdicts_markdown(verdicts))
    if "variance" in outputs:
        variance.plot_variance(spreads, outputs["variance"], scaled)
    records = sorted({Path(d).parents[2].as_posix() for d in pd.concat([runs, pvo_runs])["run_dir"]
                      if d not in set(platform_runs["run_dir"])}  # .../runs/ARCH/VARIANT/seedN
                     | {next(p for p in Path(d).parents if p.name == "platforms").as_posix()
                        for d in platform_runs["run_dir"]})  # the platform study's folder
    rep = pages.Report(runs=runs, audit=audit, params=params, timing=timing, pvo=pvo, spreads=spreads,
                       verdicts=verdicts, hist=hist, paths=links, scaled=scaled, manifest=manifest,
                       cpu_kinds=sorted(set(runs["cpu_kind"].dropna()) | set(platform_runs["cpu_kind"].dropna())),
                       records=records)
    written = pages.write_pages(rep, write_text)
    # the tables as Markdown (the cost page links layers.md): each has its HTML page too, so that
    # no link and no file a reader opens in the report's folder is raw Markdown
    linked = sorted({Path(p) for k, p in links.items() if str(p).endswith(".md") and Path(p).exists()
                     and (k == "layers_md" or Path(p).parent.name == "tables")})
    site.write_site([*written.values(), *linked], rep.base, write_text)
    log.info("report: %d runs, %d audit rows, scaled=%s", len(runs), len(audit), scaled)
    return {"audit": audit, "timing": timing, "scaled": scaled, "spreads": spreads, "verdicts": verdicts,
            "pages": written}
