"""The report stage: aggregation, claim audit (numbers and verdicts), tables, plots, README,
the HTML report and the aggregate MLflow run.

Unit tests use made-up metrics (no training, no Keras); the end-to-end tests read the
shared tiny workflow run (``tiny_run``)."""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_arg, snakemake_cmd, start_logged, wait_ok
from scipy import stats

from mnist_audit import registry, report, tracking
from mnist_audit.audit import claim_audit, verdict
from mnist_audit.plots import PLOT_FILES
from mnist_audit.report import text as text_
from mnist_audit.report.text import compact_verdicts, verdict_summary
from mnist_audit.tables import OVERRIDDEN_BANNER, SCALED_BANNER, markdown_table, order_rows, write_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TABLES = ("claim_audit", "timing", "parameters", "layers", "port_vs_original", "variance", "platform_verdicts")


# ---------------------------------------------------------------------------
# Made-up runs
# ---------------------------------------------------------------------------


def fake_metrics(arch, seed, acc, variant="default", budget_scale=1.0, train_subset=None, eval_subset=None,
                 overrides=None, reached_at=None, device="cpu", val=None, val_peak=0.0):
    """A metrics.json shaped like a run record's (mnist_audit.runs), with only the fields the report reads."""
    claim = registry.get_architecture(arch).claim
    full = budget_scale == 1.0 and not train_subset and not eval_subset
    return {
        "arch": arch, "variant": variant, "seed": seed, "baseline": registry.get_architecture(arch).baseline,
        "backend": "tensorflow", "device": {"kind": device, "name": f"test {device}"},
        "overrides": overrides or {}, "budget_scale": budget_scale, "train_subset": train_subset,
        "eval_subset": eval_subset, "n_train": train_subset or 55000, "n_val": eval_subset or 5000,
        "n_test": eval_subset or 10000, "total_steps": int(1000 * budget_scale), "published_steps": 1000,
        "steps_per_epoch": 550, "full_budget": full, "published_recipe": full and not overrides,
        "claim": claim.as_dict(), "test_accuracy": acc,
        "val_accuracy": acc + 0.001 if val is None else val, "_val_peak": val_peak, "test_loss": 0.1,
        "val_loss": 0.1, "best_epoch_test_accuracy_optimistic": acc + 0.002,
        "timing": {
            "total_train_seconds": 10.0 + seed, "total_eval_seconds": 1.0, "wall_seconds": 12.0 + seed,
            "first_epoch_seconds": 3.0, "first_epoch_overhead_seconds": 1.0, "steady_epoch_seconds": 2.0,
            "steady_state_measured": True, "train_images_per_second": 5000.0, "eval_images_per_second": 20000.0,
            "target_accuracy": claim.value,
            "target_reached": None if claim.value is None else reached_at is not None,
            "time_to_target_seconds": reached_at, "time_to_target_epoch": 2 if reached_at else None,
        },
        "provenance": {"git_commit": "abc123", "packages": {"keras": "3.15.1"}},
        "result_id": f"{arch}-{seed}",
    }


def write_runs(tmp_path, metrics_list):
    """Write each run's metrics.json and a 3-epoch history.csv; return (metrics paths, history paths)."""
    mpaths, hpaths = [], []
    for m in metrics_list:
        d = tmp_path / "results" / "runs" / m["arch"] / m["variant"] / f"seed{m['seed']}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(m))
        acc = m["test_accuracy"]
        pd.DataFrame({
            "epoch": [1, 2, 3], "steps": [550, 1100, 1650], "epochs_seen": [1.0, 2.0, 3.0],
            "train_seconds": [3.0, 2.0, 2.0], "eval_seconds": [0.5] * 3,
            "wall_seconds": [3.5 + m["seed"], 6.0 + m["seed"], 8.5 + m["seed"]],
            "train_loss": [0.5, 0.3, 0.2], "train_accuracy": [0.9, 0.95, 0.97],
            "val_loss": [0.4, 0.3, 0.2],
            "val_accuracy": [m["val_accuracy"] - 0.02, m["val_accuracy"] + m.get("_val_peak", 0.0),
                             m["val_accuracy"]],
            "test_loss": [0.4, 0.3, 0.2], "test_accuracy": [acc - 0.02, acc - 0.01, acc],
        }).to_csv(d / "history.csv", index=False)
        mpaths.append(d / "metrics.json")
        hpaths.append(d / "history.csv")
    return mpaths, hpaths


FAKE_PARAMS = pd.DataFrame({
    "architecture": ["thomas", "singhal", "jerkic", "softmax_regression", "cnn_tutorial", "softmax_regression"],
    "variant": ["default"] * 5 + ["book"], "params": [3199106, 105506, 817354, 7850, 3274634, 7850],
    "macs_per_image": [1, 2, 3, 4, 5, 4],
})

THOMAS = [0.9912, 0.9905, 0.9921, 0.9899, 0.9917]
SINGHAL = [0.9861, 0.9880, 0.9852]


def runs_frame(tmp_path, metrics_list):
    mpaths, _ = write_runs(tmp_path, metrics_list)
    return report.aggregate_runs(mpaths, FAKE_PARAMS)


# ---------------------------------------------------------------------------
# Unit tests
# ---------------------------------------------------------------------------


def test_aggregate_is_one_tidy_row_per_run(tmp_path):
    ms = [fake_metrics("thomas", s, a) for s, a in enumerate(THOMAS)] + [
        fake_metrics("softmax_regression", 0, 0.92, budget_scale=0.5, overrides={"learning_rate": 0.1})]
    runs = runs_frame(tmp_path, ms)
    assert len(runs) == 6
    assert list(runs["architecture"]) == ["thomas"] * 5 + ["softmax_regression"]  # registry order
    r = runs.iloc[-1]
    assert r["recipe_kind"] == "overridden, scaled" and r["overridden"] and not r["full_budget"]
    assert set(runs.loc[runs["architecture"] == "thomas", "recipe_kind"]) == {"published"}
    assert r["params"] == 7850 and r["device"] == "test cpu" and r["total_train_seconds"] == 10.0
    for col in ("architecture", "variant", "seed", "budget_scale", "train_subset", "eval_subset", "device",
                "backend", "test_accuracy", "val_accuracy", "total_train_seconds", "params", "macs_per_image"):
        assert col in runs.columns
    with pytest.raises(ValueError, match="duplicate"):
        report.aggregate_runs([tmp_path / "results/runs/thomas/default/seed0/metrics.json"] * 2)


def test_audit_numbers_equal_direct_computation(tmp_path):
    ms = [fake_metrics("thomas", s, a) for s, a in enumerate(THOMAS)]
    ms += [fake_metrics("singhal", s, a) for s, a in enumerate(SINGHAL)]
    audit = claim_audit(runs_frame(tmp_path, ms)).set_index("model")
    for name, accs in (("thomas", THOMAS), ("singhal", SINGHAL)):
        x = 100 * np.array(accs)
        row = audit.loc[name]
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(len(x)))
        assert row["n_seeds"] == len(x)
        assert row["test_mean_pct"] == pytest.approx(x.mean())
        assert row["test_sd_pct"] == pytest.approx(x.std(ddof=1))
        assert row["test_min_pct"] == pytest.approx(x.min()) and row["test_max_pct"] == pytest.approx(x.max())
        assert row["test_t_low_pct"] == pytest.approx(lo) and row["test_t_high_pct"] == pytest.approx(hi)
        # seeds and images (no predictions here: the binomial image term), Welch-Satterthwaite df
        p, v_seed = x.mean() / 100, (x / 100).var(ddof=1) / len(x)
        v_img = p * (1 - p) / 1e4
        df = (v_seed + v_img) ** 2 / (v_seed**2 / (len(x) - 1) + v_img**2 / 1e6)
        half = 100 * stats.t.ppf(0.975, df) * math.sqrt(v_seed + v_img)
        assert row["test_ci_low_pct"] == pytest.approx(x.mean() - half)
        assert row["test_ci_high_pct"] == pytest.approx(x.mean() + half)
        claim = registry.get_architecture(name).claim
        assert row["claim_lower_pct"] == pytest.approx(100 * claim.lower)
        assert row["claim_where"] == claim.where
        assert row["binomial_se_pct"] == pytest.approx(100 * math.sqrt(x.mean() / 100 * (1 - x.mean() / 100) / 1e4))
    # thomas: the author's measure is the final test accuracy
    t = audit.loc["thomas"]
    assert (t["measure"], t["reading"]) == ("test", "final") and t["mean_pct"] == pytest.approx(t["test_mean_pct"])
    assert t["verdict"] == "reproduced" and t["runs_reaching"] == 5
    x = 100 * np.array(THOMAS)
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) * math.sqrt(1 + 1 / 5)
    assert t["pi_low_pct"] == pytest.approx(x.mean() - half) and t["pi_high_pct"] == pytest.approx(x.mean() + half)
    # singhal: validation, best epoch (here the last epoch, acc + 0.1 pt); the interval straddles 98.5
    g = audit.loc["singhal"]
    assert (g["measure"], g["reading"]) == ("val", "best epoch")
    assert g["mean_pct"] == pytest.approx(100 * np.mean(SINGHAL) + 0.1)
    assert g["verdict"] == "inconclusive"


def test_verdict_on_the_authors_split_can_differ_from_the_test_set(tmp_path):
    """singhal: validation peak well above the bound, final test accuracy well below it."""
    ms = [fake_metrics("singhal", s, 0.975 + s * 1e-4, val=0.990, val_peak=0.004 + s * 1e-4) for s in range(5)]
    row = claim_audit(runs_frame(tmp_path, ms)).iloc[0]
    assert row["mean_pct"] == pytest.approx(99.4 + 0.02, abs=1e-6)  # best epoch, not the last
    assert row["verdict"] == "reproduced" and row["test_verdict"] == "not reproduced"
    assert row["runs_reaching"] == 5 and row["test_runs_reaching"] == 0
    assert "validation, best epoch" in row["note"] and "not reproduced" in row["note"]


def test_interval_uses_the_per_image_predictions(tmp_path):
    """With predictions.npz the interval has both variance components (seeds and paired images),
    and it is bounded: runs at 100% give [100, 100], never more."""
    from mnist_audit.runs import write_predictions

    ms = [fake_metrics("softmax_regression", s, 1.0, variant="book") for s in range(3)]
    mpaths, _ = write_runs(tmp_path, ms)
    y = np.arange(10000) % 10
    for p in mpaths:
        write_predictions(p.parent / "predictions.npz", y[:5000], y[:5000], y, y)
    row = claim_audit(report.aggregate_runs(mpaths)).iloc[0]
    assert row["interval_method"] == "seeds + paired images (per-image predictions)"
    assert row["ci_low_pct"] == 100 and row["ci_high_pct"] == 100 and row["verdict"] == "reproduced"


def test_one_threshold_for_verdict_and_time_to_bound(tmp_path):
    """The claim's lower bound decides the verdict, k/n and the time to the bound alike:
    a run whose last epoch sits between the bound (98.5) and the claim (99) reaches it."""
    ms = [fake_metrics("thomas", s, 0.9870 + s * 1e-4) for s in range(5)]
    runs = runs_frame(tmp_path, ms)
    row = claim_audit(runs).iloc[0]
    assert row["runs_reaching"] == 5
    timing = report.timing_table(runs).iloc[0]
    assert timing["runs_reached_bound"] == 5 and timing["bound_pct"] == pytest.approx(98.5)


def test_rows_without_an_authors_figure_get_no_claim(tmp_path):
    ms = [fake_metrics("cnn_tutorial", s, 0.995) for s in range(3)] + [
        fake_metrics("softmax_regression", s, 0.93) for s in range(3)]
    audit = claim_audit(runs_frame(tmp_path, ms)).set_index("model")
    assert audit.loc["cnn_tutorial", "verdict"] == "no claim"
    assert "99.2%" in audit.loc["cnn_tutorial", "reference"] and "keep 0.5" in audit.loc["cnn_tutorial", "reference"]
    # softmax_regression's claim sentence is the book's: its default (TF beginners) row is a reference
    assert audit.loc["softmax_regression", "verdict"] == "no claim (not the claim's recipe)"
    assert audit.loc["softmax_regression", "claim_recipe"] == "book"
    compact = compact_verdicts(claim_audit(runs_frame(tmp_path / "b", ms)))
    assert len(compact.columns) <= 8 and list(compact["verdict"]) == [
        "no claim", "no claim (not the claim's recipe)"]
    assert compact.loc[1, "claim"] == "92% is softmax_regression:book's"
    assert verdict_summary(audit.reset_index()) == "1 no claim, 1 no claim (not the claim's recipe)"


@pytest.mark.parametrize(
    ("n", "lo", "hi", "lower", "status", "expected"),
    [
        (5, 0.985, 0.990, 0.985, "published", "reproduced"),  # exactly at the bound
        (5, 0.9849999, 0.990, 0.985, "published", "reproduced"),  # float32 rounding of the same value
        (5, 0.9849, 0.990, 0.985, "published", "inconclusive"),  # one test image below: straddles
        (5, 0.980, 0.985, 0.985, "published", "inconclusive"),  # upper end exactly at the bound
        (5, 0.980, 0.9849, 0.985, "published", "not reproduced"),  # upper end just below
        (1, math.nan, math.nan, 0.985, "published", "inconclusive (n<2)"),
        (1, 0.999, 0.999, 0.985, "published", "inconclusive (n<2)"),
        (0, math.nan, math.nan, 0.985, "published", "inconclusive (n<2)"),
        (5, 0.999, 0.9995, None, "published", "no claim"),
        (1, math.nan, math.nan, None, "scaled budget", "no claim"),
        (5, 0.999, 0.9995, 0.985, "scaled budget", "inconclusive (scaled budget)"),
        (5, 0.970, 0.975, 0.985, "scaled budget", "inconclusive (scaled budget)"),
        (1, math.nan, math.nan, 0.985, "scaled budget", "inconclusive (scaled budget)"),
        (5, 0.999, 0.9995, 0.985, "overridden recipe", "inconclusive (overridden recipe)"),
    ],
)
def test_verdict_edges(n, lo, hi, lower, status, expected):
    assert verdict(n, lo, hi, lower, status) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"budget_scale": 0.5}, "inconclusive (scaled budget)"),
        ({"train_subset": 1000}, "inconclusive (scaled budget)"),
        ({"eval_subset": 1000}, "inconclusive (scaled budget)"),
        ({"overrides": {"learning_rate": 0.001}}, "inconclusive (overridden recipe)"),
        ({"overrides": {"batch_size": 64}, "budget_scale": 0.1}, "inconclusive (overridden recipe, scaled budget)"),
    ],
)
def test_a_scaled_or_overridden_run_is_never_reproduced(tmp_path, kwargs, expected):
    ms = [fake_metrics("thomas", s, 0.9990 + s * 1e-4, **kwargs) for s in range(5)]
    audit = claim_audit(runs_frame(tmp_path, ms))
    assert audit.loc[0, "verdict"] == expected
    assert audit.loc[0, "ci_low_pct"] > 98.5  # the numbers alone would say "reproduced"


def test_one_scaled_seed_taints_the_row(tmp_path):
    ms = [fake_metrics("thomas", s, 0.995) for s in range(4)] + [fake_metrics("thomas", 4, 0.995, budget_scale=0.9)]
    assert claim_audit(runs_frame(tmp_path, ms)).loc[0, "verdict"] == "inconclusive (scaled budget)"


def test_no_claim_and_single_seed_rows(tmp_path):
    ms = [fake_metrics("jerkic", s, 0.98) for s in range(3)] + [fake_metrics("thomas", 0, 0.995)]
    audit = claim_audit(runs_frame(tmp_path, ms)).set_index("model")
    assert audit.loc["jerkic", "verdict"] == "no claim" and math.isnan(audit.loc["jerkic", "claim_pct"])
    assert audit.loc["thomas", "verdict"] == "inconclusive (n<2)"
    assert math.isnan(audit.loc["thomas", "sd_pct"]) and math.isnan(audit.loc["thomas", "ci_low_pct"])


def test_an_authors_timing_claim_stands_beside_our_seconds(tmp_path):
    """keras_mnist_cnn's "16 seconds per epoch on a GRID K520 GPU" (registry timing_claim): one
    line under the timing table with our steady seconds per epoch per row, no verdict; the
    rows and the verdicts are the same as without it, and entries without one add nothing."""
    ms = [fake_metrics("keras_mnist_cnn", s, 0.992, variant=v) for s in (0, 1) for v in ("default", "as_written")]
    params = pd.DataFrame({"architecture": ["keras_mnist_cnn"] * 2, "variant": ["default", "as_written"],
                           "params": [1_199_882] * 2, "macs_per_image": [11_992_448] * 2})
    timing = report.timing_table(report.aggregate_runs(write_runs(tmp_path, ms)[0], params))
    lines = text_.timing_claims(timing)
    assert lines == ['Timing claim of keras_mnist_cnn (shown, not judged: other hardware): "16 seconds per epoch '
                     'on a GRID K520 GPU". Ours, steady seconds per epoch: keras_mnist_cnn 2.0 s on test cpu '
                     '(2 runs); keras_mnist_cnn:as_written 2.0 s on test cpu (2 runs).', ""]
    assert set(timing["time_to_bound"]) == {"not reached (0/2 runs)"}  # both rows judged (>= 99.245%)
    assert text_.timing_claims(report.timing_table(runs_frame(tmp_path / "t", [fake_metrics("thomas", 0, 0.99)]))) == []


def test_timing_table_time_to_target(tmp_path):
    ms = [fake_metrics("thomas", 0, 0.991, reached_at=30.0), fake_metrics("thomas", 1, 0.991, reached_at=50.0),
          fake_metrics("thomas", 2, 0.98), fake_metrics("singhal", 0, 0.97), fake_metrics("jerkic", 0, 0.97)]
    timing = report.timing_table(runs_frame(tmp_path, ms)).set_index("model")
    # the history reaches the bound (98.5%) at its last epoch: 8.5 s + seed
    assert timing.loc["thomas", "time_to_bound"] == "9.0 s (2/3 runs)"
    assert timing.loc["thomas", "time_to_bound_seconds_median"] == 9.0
    assert timing.loc["thomas", "train_seconds_mean"] == pytest.approx(11.0)
    assert timing.loc["thomas", "train_seconds_sd"] == pytest.approx(1.0)
    assert timing.loc["singhal", "time_to_bound"] == "not reached (0/1 runs)"
    assert timing.loc["jerkic", "time_to_bound"] == "no claim"


def test_markdown_table_escapes_and_aligns():
    df = pd.DataFrame({"name": ["a|b", None], "value": [1.23456, math.nan]})
    md = markdown_table(df, formats={"value": ".2f"}, headers={"value": "value %"})
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in md.splitlines()]
    assert rows[0] == ["name", "value %"]
    assert re.fullmatch(r":-+", rows[1][0]) and re.fullmatch(r"-+:", rows[1][1])  # numbers right-aligned
    assert rows[2:] == [["a\\|b", "1.23"], ["n/a", "n/a"]]  # formatted, escaped, missing values as n/a


def test_rows_follow_the_registry_order():
    names = registry.list_models()
    df = pd.DataFrame({"architecture": [names[2], "unknown", names[0], names[0], names[0]],
                       "variant": ["default", "default", "zz_unknown", "default", "original"], "seed": [0, 0, 1, 0, 0]})
    out = order_rows(df, ["seed"])
    assert list(zip(out["architecture"], out["variant"])) == [
        (names[0], "default"), (names[0], "original"), (names[0], "zz_unknown"), (names[2], "default"),
        ("unknown", "default")]


def _outputs(base: Path) -> dict:
    out = {"readme": base / "README.md", "summary_html": base / "summary.html"}
    for t in ("claim_audit", "timing"):
        out[f"{t}_csv"] = base / "tables" / f"{t}.csv"
        out[f"{t}_md"] = base / "tables" / f"{t}.md"
    for p in PLOT_FILES:
        out[p] = base / "plots" / f"{p}.png"
    return {k: str(v) for k, v in out.items()}


def assert_png(path):
    from matplotlib.image import imread

    data = Path(path).read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE, path
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, (path, img.shape)


@pytest.mark.parametrize("scaled", [False, True])
def test_build_report_writes_every_output(tmp_path, scaled):
    kw = {"budget_scale": 0.1} if scaled else {}
    ms = [fake_metrics("thomas", s, a, **kw) for s, a in enumerate(THOMAS[:3])]
    ms += [fake_metrics("softmax_regression", s, 0.92 + s / 1000, variant="book", **kw) for s in range(3)]
    mpaths, hpaths = write_runs(tmp_path, ms)
    base = tmp_path / "results" / "report"
    base.mkdir(parents=True)
    write_csv(base / "runs.csv", report.aggregate_runs(mpaths, FAKE_PARAMS))
    params = FAKE_PARAMS.assign(model=FAKE_PARAMS["architecture"] + np.where(FAKE_PARAMS["variant"] == "book",
                                                                               ":book", ""),
                                layers="x", baseline="no",
                                layers_with_weights=2)
    params.to_csv(base / "parameters.csv", index=False)
    (base / "layers.md").write_text("| layer |\n")
    outputs = _outputs(base)
    result = report.build_report({"runs": base / "runs.csv", "parameters": base / "parameters.csv",
                                  "layers_md": base / "layers.md", "histories": hpaths, "manifest": None},
                                 outputs)
    for key, path in outputs.items():
        assert Path(path).stat().st_size > 0, key
        if path.endswith(".png"):
            assert_png(path)
    assert not list(base.rglob(".*.part"))  # atomic writes leave no temporary files
    text = Path(outputs["readme"]).read_text()
    assert (SCALED_BANNER in text) is scaled
    # the main page: the answer, then the verdict table by name, linked to each tutorial's page
    assert text.startswith("# Do the MNIST tutorials' accuracy claims hold up?")
    name = registry.get_architecture("thomas").display
    assert re.search(rf"^\| \[{re.escape(name)}\]\(tutorials/thomas\.md\)", text, re.M)
    assert text.index("Of 1 tutorial") < text.index("| tutorial ")
    pages = {p.relative_to(base).as_posix() for p in base.rglob("*.md")}
    assert {"README.md", "method.md", "port-vs-original.md", "platforms.md", "cost.md", "provenance.md",
            "tutorials/thomas.md", "tutorials/softmax_regression.md"} <= pages
    for page_ in pages - {"README.md"}:
        assert (base / page_).with_suffix(".html").exists(), page_  # every page has its HTML (layers.md too)
    assert (base / "tutorials" / "thomas.png").exists()
    assert "Verdict rule" in (base / "method.md").read_text()
    assert "../plots/learning_curves_wall.png" not in (base / "cost.md").read_text()
    assert "(plots/learning_curves_wall.png)" in (base / "cost.md").read_text()
    verdicts = dict(zip(result["audit"]["model"], result["audit"]["verdict"]))
    if scaled:
        assert set(verdicts.values()) == {"inconclusive (scaled budget)"}
    else:
        assert verdicts["thomas"] == "reproduced"
    audit_md = Path(outputs["claim_audit_md"]).read_text()
    assert "Welch-Satterthwaite" in audit_md and "Verdict rule" in audit_md
    assert audit_md.startswith("**") and re.search(r"\| our figure, 95% interval +\|", audit_md)  # compact table first
    page = Path(outputs["summary_html"]).read_text()  # the main page's HTML
    assert "<table" in page and re.search(r"<th[^>]*>verdict</th>", page) and (SCALED_BANNER in page) is scaled
    assert 'href="tutorials/thomas.html"' in page and ".md\"" not in page


def test_log_report_is_one_child_run_per_sweep(tmp_path):
    """Logged twice (a rerun): one active report run under the sweep's parent, with the artifacts."""
    from mlflow import MlflowClient

    ms = [fake_metrics("thomas", s, a) for s, a in enumerate(THOMAS[:2])]
    mpaths, _ = write_runs(tmp_path, ms)
    runs_csv = tmp_path / "runs.csv"
    runs = report.aggregate_runs(mpaths, FAKE_PARAMS)
    write_csv(runs_csv, runs)
    audit_csv = tmp_path / "claim_audit.csv"
    write_csv(audit_csv, claim_audit(runs))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = tracking.init_tracking(uri, "report-test", (tmp_path / "artifacts").as_uri(), {"id": "s1"}, {})
    artifacts = {"": [runs_csv], "tables": [audit_csv]}
    first = tracking.log_report(sweep, artifacts, audit_csv, runs_csv)
    second = tracking.log_report(sweep, artifacts, audit_csv, runs_csv)
    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([sweep["experiment_id"]], filter_string="tags.`mnist_audit.kind` = 'report'")
    assert [r.info.run_id for r in found] == [second["run_id"]] != [first["run_id"]]
    run = found[0]
    assert run.data.tags["mlflow.parentRunId"] == sweep["parent_run_id"]
    assert run.info.run_name == "report s1" and run.info.status == "FINISHED"
    assert run.data.metrics["mean_test_accuracy.thomas"] == pytest.approx(np.mean(THOMAS[:2]))
    assert run.data.tags["verdict.thomas"] == "reproduced"
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"runs.csv", "tables", "training_runs.json"} <= paths


# ---------------------------------------------------------------------------
# The tiny end-to-end run (shared fixture: the whole workflow once per session)
# ---------------------------------------------------------------------------


def _tiny_metrics(work):
    return [json.loads(p.read_text()) for p in sorted((work / "results" / "runs").glob("*/*/seed*/metrics.json"))]


def test_tiny_runs_csv_has_one_row_per_run(tiny_run):
    work, _ = tiny_run
    runs = pd.read_csv(work / "results" / "report" / "runs.csv")
    assert len(runs) == 4
    assert sorted(zip(runs["architecture"], runs["seed"])) == sorted(
        (a, s) for a in ("thomas", "softmax_regression") for s in (0, 1))
    assert set(runs["recipe_kind"]) == {"scaled"} and set(runs["budget_scale"]) == {0.02}
    assert set(runs["train_subset"]) == {500} and set(runs["eval_subset"]) == {500}
    by = runs.set_index(["architecture", "seed"])
    for m in _tiny_metrics(work):
        r = by.loc[(m["arch"], m["seed"])]
        assert r["test_accuracy"] == pytest.approx(m["test_accuracy"])
        assert r["val_accuracy"] == pytest.approx(m["val_accuracy"])
        assert r["total_train_seconds"] == pytest.approx(m["timing"]["total_train_seconds"])
    assert by.loc[("thomas", 0), "params"] == 3199106 and by.loc[("softmax_regression", 0), "params"] == 7850


def test_tiny_audit_equals_direct_computation(tiny_run):
    work, _ = tiny_run
    audit = pd.read_csv(work / "results" / "report" / "tables" / "claim_audit.csv").set_index("model")
    accs: dict[str, list[float]] = {}
    for m in _tiny_metrics(work):
        accs.setdefault(m["arch"], []).append(100 * m["test_accuracy"])
    assert sorted(audit.index) == sorted(accs)
    for arch, values in accs.items():
        x = np.array(values)
        half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        row = audit.loc[arch]
        assert row["n_seeds"] == 2
        assert row["test_mean_pct"] == pytest.approx(x.mean())
        assert row["test_sd_pct"] == pytest.approx(x.std(ddof=1))
        assert row["test_t_low_pct"] == pytest.approx(x.mean() - half)
        assert row["test_t_high_pct"] == pytest.approx(x.mean() + half)
        assert 0 <= row["test_ci_low_pct"] <= row["test_mean_pct"] <= row["test_ci_high_pct"] <= 100
        assert row["interval_method"] == "seeds + paired images (per-image predictions)"  # from predictions.npz
        # tiny runs are scaled: never reproduced (softmax_regression's default recipe is not the claim's)
        assert row["verdict"] == ("no claim (not the claim's recipe)" if arch == "softmax_regression"
                                  else "inconclusive (scaled budget)")


def test_tiny_report_files(tiny_run):
    work, _ = tiny_run
    base = work / "results" / "report"
    plots = sorted((base / "plots").glob("*.png"))
    assert {p.stem for p in plots} == set(PLOT_FILES)
    for p in plots:
        assert_png(p)
    for t in TABLES:
        assert (base / "tables" / f"{t}.csv").stat().st_size > 0
        # every table opens with its table; the claim audit with its one-line summary first
        start = {"claim_audit": "**", "port_vs_original": "No originals",  # tiny: no originals,
                 "variance": "One platform only", "platform_verdicts": "One platform only"}.get(t, "| ")  # one platform
        assert (base / "tables" / f"{t}.md").read_text().startswith(start), t
    text = (base / "README.md").read_text()
    assert SCALED_BANNER in text
    # the details on their pages: the method, each tutorial's fidelity notes, the provenance
    assert "Verdict rule" in (base / "method.md").read_text()
    assert all("## Fidelity notes" in p.read_text() for p in (base / "tutorials").glob("*.md"))
    assert "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2" in (base / "provenance.md").read_text()
    every_page = "".join(p.read_text() for p in base.rglob("*.md"))
    # every plot is placed on a page; a tiny run has no originals and one platform: those plots wait
    unplaced = {"port_vs_original", "variance"}
    for p in plots:
        assert (f"plots/{p.name}" in every_page) is (p.stem not in unplaced), p.name


def test_tiny_html_report(tiny_run, mnist_dir):
    work, _ = tiny_run
    html = work / "results" / "report.html"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(work, "--config", mirror_arg(mnist_dir), "--report", str(html)),
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = html.read_text(errors="replace")
    assert html.stat().st_size > 10000 and "accuracy_per_seed.png" in text and "claim_audit" in text
    assert "summary.html" in text and "forest.png" in text  # the verdict table as HTML, the forest plot
    page = (work / "results" / "report" / "summary.html").read_text()
    assert re.search(r"<th[^>]*>verdict</th>", page) and SCALED_BANNER in page
    # the landing page (results/report/landing.rst, the Snakefile's report:): banner and verdicts
    landing = (work / "results" / "report" / "landing.rst").read_text()
    assert landing.startswith(".. raw:: html") and f"{SCALED_BANNER}." in landing.split("\n\n")[1]
    assert "| verdict " in landing
    # Snakemake's page shows the banner as summary.html's red box, not a plain admonition
    assert f"{SCALED_BANNER}." in text and "inconclusive (scaled budget)" in text and "#c0392b" in text


def test_tiny_mlflow_aggregate_run(tiny_run, monkeypatch):
    from mlflow import MlflowClient

    work, _ = tiny_run
    monkeypatch.chdir(work)  # the store's artifact paths are relative to the workspace
    sweep = json.loads((work / "results" / "mlflow" / "sweep.json").read_text())
    marker = json.loads((work / "results" / "report" / "mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri=sweep["tracking_uri"])
    found = client.search_runs([sweep["experiment_id"]], filter_string="tags.`mnist_audit.kind` = 'report'")
    assert [r.info.run_id for r in found] == [marker["run_id"]]
    run = found[0]
    assert run.info.status == "FINISHED" and run.info.run_name == f"report {sweep['sweep_id']}"
    assert run.data.tags["mlflow.parentRunId"] == sweep["parent_run_id"]
    assert run.data.tags["scaled"] == "true"
    runs = pd.read_csv(work / "results" / "report" / "runs.csv")
    for arch, g in runs.groupby("architecture"):
        assert run.data.metrics[f"mean_test_accuracy.{arch}"] == pytest.approx(g["test_accuracy"].mean())
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"README.md", "runs.csv", "tables", "plots", "training_runs.json"} <= top
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {f"{p}.png" for p in PLOT_FILES}
    tables = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "tables")}
    assert tables == {f"{t}.{ext}" for t in TABLES for ext in ("csv", "md")}


@pytest.mark.slow
@pytest.mark.parametrize(("subset", "banner"), [("--train-subset", SCALED_BANNER),
                                                 ("--eval-subset", SCALED_BANNER),
                                                 ("--overrides", OVERRIDDEN_BANNER)])
def test_full_budget_with_a_subset_or_override_is_never_a_reproduction(split_path, tmp_path, subset, banner):
    """Real runs at the full published budget (softmax_regression:book, 13,750 steps) that
    change only one thing: a training subset, an evaluation subset, or one recipe override.
    Their numbers would reach the claim; the report still never calls them reproduced, and
    its README opens with the matching banner."""
    import sys

    value = {"--train-subset": "20000", "--eval-subset": "2000", "--overrides": '{"learning_rate": 0.02}'}[subset]
    mpaths, procs = [], []
    for seed in (0, 1):  # both seeds at once, one thread each
        out = tmp_path / "runs" / f"seed{seed}"
        log = tmp_path / f"seed{seed}.log"
        procs.append((out, log, start_logged(
            [sys.executable, "-m", "mnist_audit.cli", "train", "--arch", "softmax_regression", "--variant", "book",
             "--seed", str(seed), "--data", str(split_path), "--out", str(out), "--threads", "1", subset, value],
            log, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path(report.__file__).parents[1])})))
    for out, log, proc in procs:
        wait_ok(proc, log, timeout=600)
        m = json.loads((out / "metrics.json").read_text())
        assert m["budget_scale"] == 1.0 and m["total_steps"] == m["published_steps"]  # the full budget
        assert m["published_recipe"] is False
        mpaths.append(out / "metrics.json")
    runs = report.aggregate_runs(mpaths)
    row = claim_audit(runs).iloc[0]
    assert row["verdict"].startswith("inconclusive (") and row["verdict"] != "reproduced", row["verdict"]
    base = tmp_path / "report"
    base.mkdir()
    write_csv(base / "runs.csv", report.aggregate_runs(mpaths, FAKE_PARAMS))
    params = FAKE_PARAMS.assign(model=FAKE_PARAMS["architecture"] + np.where(FAKE_PARAMS["variant"] == "book",
                                                                               ":book", ""),
                                layers="x", baseline="no", layers_with_weights=2)
    params.to_csv(base / "parameters.csv", index=False)
    (base / "layers.md").write_text("| layer |\n")
    outputs = _outputs(base)
    report.build_report({"runs": base / "runs.csv", "parameters": base / "parameters.csv",
                         "layers_md": base / "layers.md", "histories": [p.parent / "history.csv" for p in mpaths],
                         "manifest": None}, outputs)
    text = Path(outputs["readme"]).read_text()
    assert banner in text
