"""The report: a tidy table of runs, the claim audit, parameter and timing tables,
plots, a README and an HTML summary (and one aggregate MLflow run, ``tracking.log_report``).

Everything here reads what the training jobs wrote (metrics.json, history.csv) and
the registry; nothing is recomputed from a model except the parameter and MAC
accounting (``accounting``). Every file is written atomically (temporary name beside
it, then ``os.replace``).

The modules of the report, by job:

* ``report`` (here): the runs (metrics.json -> runs.csv), the histories, the timing
  table, and ``build_report``, the entry point that writes every table, plot and text;
* ``audit``: the statistics and verdicts (the claim audit, port versus original);
* ``accounting``: parameters, layers and MACs (builds the Keras models);
* ``plots``: every plot; ``readme``: the README's text; ``summary_html``: the HTML page;
* ``tables``: labels, the registry's row order, Markdown tables and the recipe status.

The claim audit (one row per architecture and variant):

* the statistic is the final test accuracy of each run (after the whole budget);
* the interval is the 95% interval of the mean over seeds and test images (``audit``);
  the seed-only Student-t interval is beside it (``test_t_low_pct``, ``test_t_high_pct``);
* the verdict follows ``audit.verdict`` (stated in the README and the captions).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import audit as stats
from . import registry, variance
from .config import original_of
from .plots import make_plots
from .portcheck import platforms, port_vs_original
from .runs import RunRecord
from .readme import claim_audit_markdown, port_markdown, readme
from .summary_html import html_summary, landing_rst
from .tables import TIMING_MD, is_scaled, isnan, md, order_rows, read_runs, rel, write_csv, write_text
from .runs import label as model_label

log = logging.getLogger(__name__)

TOLERANCE = stats.TOLERANCE


# ---------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------


def load_run(metrics_path: str | Path) -> dict:
    """One tidy row from one run's metrics.json."""
    path = Path(metrics_path)
    record = RunRecord.read(path)
    m = record.metrics
    timing = m.get("timing") or {}
    device = m.get("device") or {}
    prov = m.get("provenance") or {}
    overrides = m.get("overrides") or {}
    full, kind = record.full_budget, record.recipe_kind
    row = {
        "architecture": m["arch"], "variant": m["variant"], "model": model_label(m["arch"], m["variant"]),
        "seed": int(m["seed"]), "platform": record.platform, "baseline": bool(m.get("baseline")),
        "recipe_kind": kind, "published_recipe": bool(m.get("published_recipe")), "full_budget": bool(full),
        "overridden": bool(overrides), "overrides": json.dumps(overrides, sort_keys=True),
        "budget_scale": float(m["budget_scale"]), "train_subset": m.get("train_subset"),
        "eval_subset": m.get("eval_subset"),
        "n_train": m.get("n_train"), "n_val": m.get("n_val"), "n_test": m.get("n_test"),
        "total_steps": m.get("total_steps"), "published_steps": m.get("published_steps"),
        "steps_per_epoch": m.get("steps_per_epoch"),
        "device_kind": device.get("kind", "unknown"), "device": _device_name(device),
        "cpu_kind": device.get("cpu_kind") or ((prov.get("cpu") or {}).get("kind")) or "unknown",
        "threads": device.get("threads"),
        "load_average": (m.get("load_average") or {}).get("median"),
        "logical_cpus": (m.get("load_average") or {}).get("logical_cpus") or device.get("logical_cpus"),
        "trained_at": _trained_at(path),
        "backend": m.get("backend", "unknown"),
        "onednn_isa": ((m.get("platform") or {}).get("ran") or {}).get("onednn", {}).get("isa"),
        "initial_weights": m.get("initial_weights"),
        "test_accuracy": m["test_accuracy"], "val_accuracy": m.get("val_accuracy"),
        "test_loss": m.get("test_loss"), "val_loss": m.get("val_loss"),
        "best_epoch_test_accuracy_optimistic": m.get("best_epoch_test_accuracy_optimistic"),
    }
    row.update(_history_readings(path.parent, m))
    for key in ("total_train_seconds", "total_eval_seconds", "wall_seconds", "first_epoch_seconds",
                "first_epoch_overhead_seconds", "steady_epoch_seconds", "steady_state_measured",
                "train_images_per_second", "eval_images_per_second", "target_accuracy", "target_reached",
                "time_to_target_seconds", "time_to_target_epoch"):
        row[key] = timing.get(key)
    row.update({
        "job_seconds": m.get("job_seconds"),
        "git_commit": prov.get("git_commit", "unknown"),
        "packages": json.dumps(prov.get("packages") or {}, sort_keys=True),
        "result_id": m.get("result_id"),
        "run_dir": str(path.parent),
    })
    return row


def _trained_at(metrics_path: Path) -> str:
    """When the run finished: publication.json's record, else the metrics file's time (UTC)."""
    pub = metrics_path.parent / "publication.json"
    if pub.exists():
        return json.loads(pub.read_text()).get("trained_at") or "unknown"
    import datetime as dt

    return dt.datetime.fromtimestamp(metrics_path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _device_name(device: Mapping) -> str:
    """"AMD EPYC, 1 thread" (CPU) or the GPU's model name, from what the job recorded."""
    if device.get("kind") == "cpu" and device.get("cpu_model"):
        n = device.get("threads") or device.get("logical_cpus")
        return f"{device['cpu_model']}, {n} thread{'' if n == 1 else 's'}" if n else device["cpu_model"]
    return device.get("name", "unknown")


def _history_readings(run_dir: Path, m: Mapping) -> dict:
    """From history.csv: the best epoch on validation, and the wall-clock time until the
    author's measure first reached the claim's lower bound (the one threshold)."""
    out = {"best_epoch_val_accuracy": math.nan, "time_to_bound_seconds": math.nan,
           "time_to_bound_epoch": math.nan, "bound_reached": None}
    path = run_dir / "history.csv"
    if not path.exists():
        return out
    h = pd.read_csv(path)
    out["best_epoch_val_accuracy"] = float(h["val_accuracy"].max())
    claim = registry.get_architecture(m["arch"]).claim
    if claim.lower is None:
        return out
    hit = h[h[f"{claim.split}_accuracy"] >= claim.lower - TOLERANCE]
    out["bound_reached"] = not hit.empty
    if not hit.empty:
        out["time_to_bound_seconds"] = float(hit["wall_seconds"].iloc[0])
        out["time_to_bound_epoch"] = int(hit["epoch"].iloc[0])
    return out


def aggregate_runs(metrics_paths: Sequence[str | Path], parameters: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy table: one row per run (with params and MACs when ``parameters`` is given)."""
    runs = pd.DataFrame([load_run(p) for p in metrics_paths])
    if runs.empty:
        raise ValueError("no runs to aggregate")
    key = ["architecture", "variant", "platform", "cpu_kind", "seed"]  # one run per seed and platform
    dup = runs.duplicated(key)
    if dup.any():
        raise ValueError(f"duplicate runs ({', '.join(key)}): {runs.loc[dup, key].values.tolist()}")
    if parameters is not None:
        runs["_pv"] = [original_of(v) or v for v in runs["variant"]]  # an original counts as its port
        runs = runs.merge(parameters[["architecture", "variant", "params", "macs_per_image"]]
                          .rename(columns={"variant": "_pv"}),
                          on=["architecture", "_pv"], how="left", validate="many_to_one").drop(columns="_pv")
        missing = runs["params"].isna()
        if missing.any():
            raise ValueError(f"no parameter count for {sorted(set(runs.loc[missing, 'model']))}")
        runs["params"] = runs["params"].astype(int)
        runs["macs_per_image"] = runs["macs_per_image"].astype(int)
    return order_rows(runs, ["seed"])


def write_runs(metrics_paths: Sequence[str | Path], parameters_csv: str | Path, out: str | Path) -> pd.DataFrame:
    runs = aggregate_runs(metrics_paths, pd.read_csv(parameters_csv))
    write_csv(out, runs)
    log.info("aggregated %d runs into %s", len(runs), out)
    return runs


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
        judged = claim.lower is not None and variant == (claim.recipe_variant or "default")
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


def load_histories(runs: pd.DataFrame, history_paths: Sequence[str | Path]) -> pd.DataFrame:
    """All runs' history.csv rows, tagged with model, seed, CPU kind and platform (matched by run folder)."""
    by_dir = {str(Path(p).parent): p for p in history_paths}
    frames = []
    for r, platform in zip(runs.itertuples(index=False), platforms(runs)):
        path = by_dir.get(str(Path(r.run_dir)))
        if path is None:
            raise ValueError(f"no history.csv for run {r.run_dir}")
        h = pd.read_csv(path)
        h.insert(0, "platform", platform)
        h.insert(0, "cpu_kind", r.cpu_kind)
        h.insert(0, "budget_scale", r.budget_scale)
        h.insert(0, "n_train", r.n_train)
        h.insert(0, "seed", r.seed)
        h.insert(0, "model", r.model)
        h.insert(0, "variant", r.variant)
        h.insert(0, "architecture", r.architecture)
        frames.append(h)
    hist = pd.concat(frames, ignore_index=True)
    hist["wall_seconds_mean"] = hist.groupby(["model", "epoch"])["wall_seconds"].transform("mean")
    return hist


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
    if "summary_html" in outputs:
        records = sorted({Path(d).parents[2].as_posix() for d in pd.concat([runs, pvo_runs])["run_dir"]
                          if d not in set(platform_runs["run_dir"])}  # .../runs/ARCH/VARIANT/seedN
                         | {next(p for p in Path(d).parents if p.name == "platforms").as_posix()
                            for d in platform_runs["run_dir"]})  # the platform study's folder
        plot = rel(outputs["variance"], Path(outputs["summary_html"]).parent) if "variance" in outputs else None
        write_text(outputs["summary_html"], html_summary(runs, audit, timing, pvo, scaled, links, records,
                                                         variance.html_section(spreads, verdicts, plot)))
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
    plot = rel(outputs["variance"], Path(outputs["readme"]).parent) if "variance" in outputs else None
    write_text(outputs["readme"], readme(runs, audit, params, timing, pvo, manifest, links, scaled,
                                         variance.section(spreads, verdicts, plot)))
    log.info("report: %d runs, %d audit rows, scaled=%s", len(runs), len(audit), scaled)
    return {"audit": audit, "timing": timing, "scaled": scaled}
