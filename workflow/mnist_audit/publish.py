"""The published audit: finished runs copied into the repository, and the report built
from those records alone.

``audit/runs/{arch}/{variant}/seed{seed}/`` holds, per run, what the report needs and
nothing heavier: ``metrics.json`` (numbers, timing, device, provenance, the resolved
config with local paths removed), ``history.csv``, ``confusion.csv``,
``predictions.npz`` and ``publication.json`` (the model's SHA-256, when it was trained
and published, every record file's SHA-256). No weights.

Only published-recipe runs can be published: the full budget (``budget_scale`` 1), the
full training, validation and test sets, no recipe overrides, committed code (no
``-dirty`` commit), and per-image predictions.

One exception, kept apart: ``audit/portcheck/`` holds the port-versus-original study of
the architectures too costly to train twice at full budget (thomas, cnn_tutorial,
zaccone), ports and TF1 originals alike at the one stated budget ``PORTCHECK_SCALE``
(``publish --study``). Those runs feed only the report's port-versus-original section,
never a claim verdict. The platform study's default-platform runs on another CPU kind
(``audit/platforms/{cpu}/default/``) enter that section too, as the port partners of that
kind's originals (a pair is one seed on one CPU kind and platform). Publishing a run whose folder already
holds the same numbers changes nothing; different numbers for the same architecture,
variant and seed are an error that names the run and both figures, never an overwrite.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .files import atomic_write_json, sha256_file
from .runs import RunRecord
from .splits import recipe_split

log = logging.getLogger(__name__)

RECORD_FILES = ("metrics.json", "history.csv", "confusion.csv", "predictions.npz")
TEST_IMAGES = 10_000


def full_split(m: dict) -> dict[str, int]:
    """The images a run on the whole data trains, validates and tests on: its recipe's data
    split of the 60,000 training-file images (55,000 / 5,000 for TF1's read_data_sets), and
    the 10,000 test images."""
    n_train, n_val = recipe_split(m.get("recipe") or {}).sizes()
    return {"n_train": n_train, "n_val": n_val, "n_test": TEST_IMAGES}
# history.csv columns that are results (the others are timings, which differ run to run)
RESULT_COLUMNS = ("epoch", "steps", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                  "test_loss", "test_accuracy")
LOCAL = "<local mirror>"


# The port-versus-original study's one stated budget, the same on both sides (issue 18): 2%
# of each published recipe's steps (thomas 220, cnn_tutorial 400, zaccone 858 of 42,900),
# chosen so that 5 seeds a side of the three costly CNNs fit in about 40 CPU-minutes.
PORTCHECK_SCALE = 0.02
PORTCHECK_DIR = "portcheck"


class PublishError(ValueError):
    """A run that cannot be published, or that contradicts a published one."""


def run_label(m: dict) -> str:
    return f"{m['arch']}:{m['variant']} seed {m['seed']}"


def why_not_publishable(m: dict, run_dir: Path, study: bool = False) -> list[str]:
    """Every reason this run is not a published-recipe run on the full data ([] if none);
    ``study``: a run of the port-versus-original study, at ``PORTCHECK_SCALE`` instead."""
    reasons = []
    scale = PORTCHECK_SCALE if study else 1.0
    if float(m.get("budget_scale", 0)) != scale:
        reasons.append(f"budget_scale is {m.get('budget_scale')} (publish{' --study' if study else ''} "
                       f"needs {scale})")
    for key in ("train_subset", "eval_subset"):
        if m.get(key):
            reasons.append(f"{key} is {m[key]} (publish needs the full sets)")
    if m.get("initial_weights") == "given":
        reasons.append("an original started from weights given by hand (publish takes its own draw, "
                       "or the port's draw: variant original_from_port)")
    if m.get("overrides"):
        reasons.append(f"recipe overrides {json.dumps(m['overrides'], sort_keys=True)}")
    for key, n in full_split(m).items():
        if m.get(key) != n:
            reasons.append(f"{key} is {m.get(key)}, not {n}")
    commit = str((m.get("provenance") or {}).get("git_commit", "unknown"))
    if commit == "unknown" or commit.endswith("-dirty"):
        reasons.append(f"trained from code that is not a commit ({commit}); train from a clean checkout")
    if not (run_dir / "predictions.npz").exists():
        reasons.append("no predictions.npz (trained by an older version); train it again")
    for name in ("history.csv", "confusion.csv"):
        if not (run_dir / name).exists():
            reasons.append(f"no {name}")
    return reasons


def _is_local(value) -> bool:
    text = str(value.get("url", "") if isinstance(value, dict) else value)
    return not text.startswith(("http://", "https://"))


def sanitise(m: dict) -> dict:
    """The metrics with this machine's paths removed (local mirrors become a placeholder)."""
    out = json.loads(json.dumps(m))
    cfg = out.get("config") or {}
    if "mirrors" in cfg:
        cfg["mirrors"] = [LOCAL if _is_local(v) else v for v in cfg["mirrors"]]
    return out


def _same_results(a_dir: Path, b_dir: Path) -> tuple[bool, str]:
    """Whether two run folders hold the same results (numbers, not timings)."""
    a, b = (RunRecord.read(d).metrics for d in (a_dir, b_dir))
    for key in ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss"):
        if a.get(key) != b.get(key):
            return False, f"{key} {b.get(key)!r} published, {a.get(key)!r} now"
    ha, hb = (pd.read_csv(d / "history.csv")[list(RESULT_COLUMNS)] for d in (a_dir, b_dir))
    if not ha.equals(hb):
        return False, "the per-epoch history differs"
    with np.load(a_dir / "predictions.npz") as pa, np.load(b_dir / "predictions.npz") as pb:
        if any(not np.array_equal(pa[k], pb[k]) for k in pa.files):
            return False, "the per-image predictions differ"
    return True, ""


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


PLATFORMS_DIR = "platforms"


def cpu_slug(kind: str) -> str:
    """A CPU kind as a folder name: "GenuineIntel 6/167 avx512+amx+bf16" -> "intel-6-167"."""
    from .variance import cpu_short

    return cpu_short(kind).lower().replace(" ", "-").replace("/", "-")


def _cpu_kind(m: dict) -> str:
    return (m.get("device") or {}).get("cpu_kind") or ((m.get("provenance") or {}).get("cpu") or {}).get("kind", "")


def destination(m: dict, audit_runs: Path) -> Path:
    """Where a run is published. ``audit/runs/{arch}/{variant}/seed{n}`` holds the claim
    audit's runs: the default platform, on one CPU kind per architecture (the kind its
    port was first published from; a TF1 original goes with its port). Every other run
    (another platform, or the default platform on another CPU kind) belongs to the
    platform study, ``audit/platforms/{cpu}/{platform}/{arch}/{variant}/seed{n}``."""
    from .config import original_of

    tail = Path(m["arch"]) / m["variant"] / f"seed{m['seed']}"
    platform, kind = RunRecord(m).platform, _cpu_kind(m)
    study = audit_runs.parent / PLATFORMS_DIR / cpu_slug(kind) / platform / tail
    if platform != "default":
        return study
    port = audit_runs / m["arch"] / (original_of(m["variant"]) or m["variant"])
    published = sorted(port.glob("seed*/metrics.json")) or sorted((audit_runs / m["arch"]).glob("*/seed*/metrics.json"))
    if published and _cpu_kind(RunRecord.read(published[0]).metrics) != kind:
        return study
    return audit_runs / tail


def publish_run(run_dir: str | Path, audit_runs: str | Path, study: bool = False) -> str:
    """Copy one finished run into ``audit_runs`` (or, for a run of the platform study, beside
    it: ``destination``); returns "published" or "unchanged"."""
    run_dir, audit_runs = Path(run_dir), Path(audit_runs)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise PublishError(f"{run_dir}: no metrics.json (the run has not finished)")
    m = dict(RunRecord.read(metrics_path).metrics)
    reasons = why_not_publishable(m, run_dir, study)
    if reasons:
        raise PublishError(f"{run_label(m)} ({run_dir}) is not a {_kind(study)}: " + "; ".join(reasons))
    dest = audit_runs / m["arch"] / m["variant"] / f"seed{m['seed']}" if study else destination(m, audit_runs)
    if (dest / "metrics.json").exists():
        same, diff = _same_results(run_dir, dest)
        if same:
            return "unchanged"
        raise PublishError(
            f"{run_label(m)} is already published in {dest} with other results: {diff}. "
            "Published runs are never overwritten: if the training numerics changed on purpose, "
            f"delete {dest} in the same commit that explains why, then publish again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        atomic_write_json(tmp / "metrics.json", sanitise(m))
        for name in RECORD_FILES[1:]:
            shutil.copyfile(run_dir / name, tmp / name)
        model = run_dir / "model.keras"
        atomic_write_json(tmp / "publication.json", {
            "run": run_label(m),
            "result_id": m.get("result_id"),
            "model_sha256": sha256_file(model) if model.exists() else None,
            "trained_at": _utc(metrics_path.stat().st_mtime),
            "published_at": _utc(dt.datetime.now(dt.timezone.utc).timestamp()),
            "files_sha256": {name: sha256_file(tmp / name) for name in RECORD_FILES},
        })
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return "published"


def _kind(study: bool) -> str:
    return f"port-versus-original study run (budget_scale {PORTCHECK_SCALE})" if study else "published-recipe run"


def publish_runs(run_dirs: Iterable[str | Path], audit_runs: str | Path, study: bool = False) -> dict[str, list[str]]:
    """Publish every run; checks them all first, so one bad run publishes nothing.
    ``study``: runs of the port-versus-original study (into ``audit/portcheck``)."""
    run_dirs = [Path(d) for d in run_dirs]
    problems = []
    for d in run_dirs:
        try:
            m = dict(RunRecord.read(d).metrics)
        except FileNotFoundError:
            problems.append(f"{d}: no metrics.json (the run has not finished)")
            continue
        reasons = why_not_publishable(m, d, study)
        if reasons:
            problems.append(f"{run_label(m)} ({d}): " + "; ".join(reasons))
    if problems:
        what = (f"only port-versus-original study runs at budget_scale {PORTCHECK_SCALE} on the full data"
                if study else "only published-recipe runs on the full data")
        raise PublishError(f"refusing to publish; {what} can be published:\n  " + "\n  ".join(problems))
    done: dict[str, list[str]] = {"published": [], "unchanged": []}
    for d in run_dirs:
        done[publish_run(d, audit_runs, study)].append(str(d))
    where = f"{audit_runs}" if study else f"{audit_runs} and {Path(audit_runs).parent / PLATFORMS_DIR}"
    log.info("published %d runs, %d unchanged, into %s", len(done["published"]), len(done["unchanged"]), where)
    return done


def published_metrics(audit_runs: str | Path) -> list[Path]:
    """Every published run's metrics.json, in a stable order."""
    return sorted(Path(audit_runs).glob("*/*/seed*/metrics.json"))


def platform_metrics(audit_dir: str | Path) -> list[Path]:
    """Every run of the platform study (``audit/platforms/{cpu}/{platform}/...``), in a stable order."""
    return sorted((Path(audit_dir) / PLATFORMS_DIR).glob("*/*/*/*/seed*/metrics.json"))


# ---------------------------------------------------------------------------
# The published report: rebuilt from the committed records alone
# ---------------------------------------------------------------------------

STATUS_START = "<!-- audit-status: generated by `snakemake --cores 1 audit_report`; do not edit -->"
STATUS_END = "<!-- /audit-status -->"
TABLES = ("claim_audit", "timing", "port_vs_original", "variance", "platform_verdicts")


def report_outputs(report_dir: str | Path) -> dict[str, str]:
    """The files of the published report (the same set as the pipeline's report)."""
    from .plots import PLOT_FILES

    base = Path(report_dir)
    out = {"readme": base / "README.md", "status": base / "status.md", "runs": base / "runs.csv",
           "portcheck_runs": base / "portcheck_runs.csv", "platform_runs": base / "platform_runs.csv",
           "summary_html": base / "summary.html",
           "parameters_csv": base / "tables" / "parameters.csv", "parameters_md": base / "tables" / "parameters.md",
           "layers_csv": base / "tables" / "layers.csv", "layers_md": base / "tables" / "layers.md"}
    for t in TABLES:
        out[f"{t}_csv"] = base / "tables" / f"{t}.csv"
        out[f"{t}_md"] = base / "tables" / f"{t}.md"
    for p in PLOT_FILES:
        out[p] = base / "plots" / f"{p}.png"
    return {k: str(v) for k, v in out.items()}


def status_text(runs: pd.DataFrame, audit_table: pd.DataFrame, report_dir: str,
                platform_runs: pd.DataFrame | None = None, n_portcheck: int = 0, timing: pd.DataFrame | None = None,
                spreads: pd.DataFrame | None = None, verdicts: pd.DataFrame | None = None) -> str:
    """The README's "Status of the audit": the answer in plain words and the verdict table
    (``report.answer``, linked to the report's pages), then the machines and the dates; and
    the runs that are in no verdict row (the platform study, the behaviour checks)."""
    from .report import answer
    from .tables import date_span
    from .variance import cpu_plain

    prefix = f"{report_dir}/"
    dates = sorted(str(v)[:10] for v in runs["trained_at"] if isinstance(v, str) and v != "unknown")
    machines = ", ".join(f"{cpu_plain(k)} ({n} runs)" for k, n in runs.groupby("cpu_kind").size().items())
    seeds = sorted(set(int(n) for n in audit_table["n_seeds"]))
    seeds_text = f"{seeds[0]} seeds in every verdict row" if len(seeds) == 1 else \
        f"{seeds[0]} to {seeds[-1]} seeds a verdict row"
    lines = [
        answer.answer(audit_table, runs, timing if timing is not None else pd.DataFrame(
            columns=["architecture", "variant", "train_seconds_mean"]), spreads, verdicts, prefix),
        "",
        answer.verdict_table(audit_table, prefix).rstrip(),
        "",
        f"Each name opens the tutorial's page in the report; ↗ opens the tutorial where its author published it; "
        f"↳ is a variant of the entry above it. {len(runs)} published runs ({seeds_text}), trained "
        f"{date_span(dates, 'on unknown dates')} on {machines}. The full report: "
        f"[{report_dir}/README.md]({report_dir}/README.md), or open `{report_dir}/summary.html` in a browser; how a "
        f"verdict is made: [{report_dir}/method.md]({report_dir}/method.md).",
    ]
    beyond = []
    if platform_runs is not None and len(platform_runs):
        beyond.append(f"{len(platform_runs)} runs of the platform study in `audit/platforms/` "
                      f"([how much the machine moves the answer]({report_dir}/platforms.md))")
    if n_portcheck:
        beyond.append(f"{n_portcheck} runs of reduced-budget behaviour checks in `audit/portcheck/` "
                      f"([port versus the author's program]({report_dir}/port-vs-original.md))")
    if beyond:
        lines += ["", "Beside them, in no verdict row: " + "; ".join(beyond) + "."]
    return "\n".join(lines) + "\n"


def build_audit_report(audit_dir: str | Path = "audit") -> dict:
    """Rebuild ``audit/report/`` from ``audit/runs/`` (and, for the port-versus-original
    table only, the study in ``audit/portcheck/`` and the default platform's runs in
    ``audit/platforms/*/default/``, if any) alone: no training, no download.

    The tables and the status are pure functions of the records (stable order), so two builds give byte-identical files.
    """
    from . import report
    from .accounting import write_model_accounting
    from .tables import read_runs, write_text

    audit_dir = Path(audit_dir)
    runs_dir, report_dir = audit_dir / "runs", audit_dir / "report"
    metrics = published_metrics(runs_dir)
    if not metrics:
        raise PublishError(f"no published runs in {runs_dir}: publish some first (snakemake publish)")
    out = report_outputs(report_dir)
    from .config import original_of

    keys = sorted({(p.parts[-4], p.parts[-3]) for p in metrics if not original_of(p.parts[-3])})
    write_model_accounting(keys, out)
    runs = report.write_runs(metrics, out["parameters_csv"], out["runs"])
    inputs = {"runs": out["runs"], "parameters": out["parameters_csv"], "layers_md": out["layers_md"],
              "histories": [p.parent / "history.csv" for p in metrics], "manifest": None}
    study = published_metrics(audit_dir / PORTCHECK_DIR)
    if study:
        report.write_runs(study, out["parameters_csv"], out["portcheck_runs"])
        inputs |= {"study_runs": out["portcheck_runs"], "study_histories": [p.parent / "history.csv" for p in study]}
    else:
        out.pop("portcheck_runs")
    on_platforms = platform_metrics(audit_dir)
    if on_platforms:
        platform_runs = report.write_runs(on_platforms, out["parameters_csv"], out["platform_runs"])
        inputs |= {"platform_runs": out["platform_runs"],
                   "platform_histories": [p.parent / "history.csv" for p in on_platforms]}
    else:
        out.pop("platform_runs")
    result = report.build_report(inputs, out)
    # the README beside audit/ links the report as audit/report/ (wherever this build runs)
    text = status_text(read_runs(out["runs"]), result["audit"], f"{audit_dir.name}/report",
                       platform_runs if on_platforms else None, len(study), result["timing"], result.get("spreads"),
                       result.get("verdicts"))
    write_text(out["status"], text)
    return {"runs": len(runs), "status": text, **result}


def update_readme(readme: str | Path, status: str) -> bool:
    """Put ``status`` between the README's audit-status markers; True if it changed."""
    path = Path(readme)
    text = path.read_text()
    if STATUS_START not in text or STATUS_END not in text:
        raise PublishError(f"{path} has no audit-status markers ({STATUS_START} ... {STATUS_END})")
    head, rest = text.split(STATUS_START, 1)
    _, tail = rest.split(STATUS_END, 1)
    new = f"{head}{STATUS_START}\n{status}{STATUS_END}{tail}"
    if new != text:
        from .files import atomic_write_bytes

        atomic_write_bytes(path, new.encode())
    return new != text


def readme_status(readme: str | Path) -> str:
    """The text between the README's audit-status markers."""
    text = Path(readme).read_text()
    return text.split(STATUS_START, 1)[1].split(STATUS_END, 1)[0].lstrip("\n")
