"""The published audit: its statistics, publishing, the report rebuilt from the committed
records alone, and the reproducibility of what is published."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, needs_mnist, start_logged, wait_ok
from scipy import stats

from mnist_audit import audit, portcheck, publish
from mnist_audit.devices import cpu_info
from mnist_audit.runs import read_predictions

AUDIT = ROOT / "audit"
PUBLISHED = publish.published_metrics(AUDIT / "runs")
STUDY = publish.published_metrics(AUDIT / publish.PORTCHECK_DIR)  # port versus original at budget x0.02
PLATFORM_STUDY = publish.platform_metrics(AUDIT)  # the same seeds on other platforms and CPU kinds
needs_audit = pytest.mark.skipif(not PUBLISHED, reason="no published runs in audit/runs")


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def test_interval_covers_the_truth_on_simulated_audits():
    """1,000 simulated 5-seed audits with a known true accuracy: the 95% interval
    (seeds + paired images) covers it 93-97% of the time."""
    coverage = audit.simulate_coverage(simulations=1000, n_images=1000)
    print(f"coverage over 1000 simulated audits: {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97


def test_seed_only_interval_undercovers_on_the_same_simulations():
    """The check can fail: Student's t over seeds alone misses the test set's own error."""
    truth = audit.true_accuracy(0.99, 1.0, 0.3)
    rng = np.random.default_rng(5)
    hits = sum(
        (lambda lo_hi: lo_hi[0] <= truth <= lo_hi[1])(audit.t_interval(c.mean(axis=1)))
        for c in (audit.simulate_audit(rng, 5, 1000, 0.99, 1.0, 0.3) for _ in range(300)))
    assert hits / 300 < 0.9


def test_two_way_interval_equals_its_formula_and_is_bounded():
    rng = np.random.default_rng(0)
    c = rng.random((4, 500)) < 0.9
    acc = c.mean(axis=1)
    v_seed, v_img = acc.var(ddof=1) / 4, c.mean(axis=0).var(ddof=1) / 500
    df = (v_seed + v_img) ** 2 / (v_seed**2 / 3 + v_img**2 / 499)
    half = stats.t.ppf(0.975, df) * math.sqrt(v_seed + v_img)
    assert audit.two_way_interval(c) == pytest.approx((acc.mean() - half, acc.mean() + half))
    ones = np.ones((3, 100), bool)
    ones[0, 0] = False  # one mistake in 300: the raw interval would pass 100%
    lo, hi = audit.two_way_interval(ones)
    assert hi == 1.0 and 0.98 < lo < 1.0
    assert math.isnan(audit.two_way_interval(ones[:1])[0])  # one run: no interval


def test_prediction_interval_and_k_of_n():
    x = [0.985, 0.990, 0.987, 0.992, 0.984]
    lo, hi = audit.prediction_interval(x)
    half = stats.t.ppf(0.975, 4) * np.std(x, ddof=1) * math.sqrt(1.2)
    assert (lo, hi) == pytest.approx((np.mean(x) - half, np.mean(x) + half))
    assert audit.runs_reaching(x, 0.985) == 4  # 0.984 misses, 0.985 is at the bound
    assert audit.runs_reaching(x, None) is None
    assert audit.prediction_interval([0.999, 1.0, 1.0])[1] == 1.0  # bounded


@pytest.mark.parametrize(
    ("n", "lo", "hi", "bound", "status", "expected"),
    [
        (5, 0.985, 0.990, 0.985, "published", "reproduced"),
        (5, 0.9849, 0.990, 0.985, "published", "inconclusive"),
        (5, 0.980, 0.9849, 0.985, "published", "not reproduced"),
        (5, 0.999, 1.0, None, "published", "no claim"),
        (1, math.nan, math.nan, 0.985, "published", "inconclusive (n<2)"),
        (5, 0.999, 1.0, 0.985, "scaled budget", "inconclusive (scaled budget)"),
    ],
)
def test_verdict_rule_edges(n, lo, hi, bound, status, expected):
    assert audit.verdict(n, lo, hi, bound, status) == expected


# ---------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------


def _fake_run(tmp_path, src: Path, **changes) -> Path:
    """A results/ run folder made from a published record (plus a stand-in model file)."""
    d = tmp_path / "results" / "runs" / src.parts[-3] / src.parts[-2] / src.name
    d.mkdir(parents=True)
    for name in publish.RECORD_FILES:
        shutil.copyfile(src / name, d / name)
    m = json.loads((src / "metrics.json").read_text())
    m.update(changes)
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "model.keras").write_bytes(b"not really a model")
    return d


@needs_audit
def test_publish_accepts_published_recipes_once_and_never_overwrites(tmp_path):
    src = PUBLISHED[0].parent
    run = _fake_run(tmp_path, src)
    dest = tmp_path / "audit" / "runs"
    assert publish.publish_runs([run], dest) == {"published": [str(run)], "unchanged": []}
    out = dest / src.parts[-3] / src.parts[-2] / src.name
    pub = json.loads((out / "publication.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted([*publish.RECORD_FILES, "publication.json"])
    assert pub["model_sha256"] and set(pub["files_sha256"]) == set(publish.RECORD_FILES)
    assert publish.publish_runs([run], dest)["unchanged"] == [str(run)]  # same numbers: nothing changes
    changed = _fake_run(tmp_path / "b", src, test_accuracy=0.5)
    with pytest.raises(publish.PublishError, match=r"already published .* test_accuracy .* 0\.5 now"):
        publish.publish_run(changed, dest)
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] != 0.5  # not overwritten


@needs_audit
@pytest.mark.parametrize(("changes", "reason"), [
    ({"budget_scale": 0.5}, "budget_scale is 0.5"),
    ({"train_subset": 500}, "train_subset is 500"),
    ({"eval_subset": 500, "n_test": 500}, "eval_subset is 500"),
    ({"overrides": {"learning_rate": 0.1}}, "recipe overrides"),
    ({"provenance": {"git_commit": "abc-dirty"}}, "not a commit"),
    ({"initial_weights": "given"}, "weights given by hand"),
])
def test_publish_refuses_anything_but_a_published_recipe(tmp_path, changes, reason):
    run = _fake_run(tmp_path, PUBLISHED[0].parent, **changes)
    with pytest.raises(publish.PublishError, match=reason):
        publish.publish_runs([run], tmp_path / "audit" / "runs")
    assert not (tmp_path / "audit").exists()  # nothing half-published


@needs_audit
def test_publish_study_takes_only_the_stated_reduced_budget_and_keeps_it_apart(tmp_path):
    src = PUBLISHED[0].parent
    study = _fake_run(tmp_path / "s", src, budget_scale=publish.PORTCHECK_SCALE)
    full = _fake_run(tmp_path / "f", src)
    dest = tmp_path / "audit" / publish.PORTCHECK_DIR
    with pytest.raises(publish.PublishError, match=r"budget_scale is 1.0 \(publish --study needs 0.02\)"):
        publish.publish_runs([full], dest, study=True)
    with pytest.raises(publish.PublishError, match="budget_scale is 0.02 \\(publish needs 1.0\\)"):
        publish.publish_runs([study], tmp_path / "audit" / "runs")
    assert not (tmp_path / "audit").exists()
    for changes, reason in (({"train_subset": 500}, "train_subset"), ({"overrides": {"batch_size": 2}}, "overrides")):
        bad = _fake_run(tmp_path / reason, src, budget_scale=publish.PORTCHECK_SCALE, **changes)
        with pytest.raises(publish.PublishError, match=reason):
            publish.publish_runs([bad], dest, study=True)
    assert publish.publish_runs([study], dest, study=True)["published"] == [str(study)]


def test_the_full_split_a_run_must_have_is_its_recipes():
    """A published run trains and validates on its recipe's data split: TF1's 55,000 / 5,000
    (also for a record older than the field), Keras's validation_split=0.1 54,000 / 6,000,
    the quickstart's 60,000 / 0; anything else is refused with the numbers."""
    from mnist_audit import registry

    def record(arch, **counts):
        return {"arch": arch, "variant": "default", "seed": 0, "budget_scale": 1.0, "overrides": {},
                "recipe": registry.resolve_recipe(arch).as_dict(), "provenance": {"git_commit": "abc"}, **counts}

    assert publish.full_split(record("thomas")) == {"n_train": 55_000, "n_val": 5_000, "n_test": 10_000}
    assert publish.full_split({"recipe": {}}) == publish.full_split(record("thomas"))
    assert publish.full_split(record("keras_convnet")) == {"n_train": 54_000, "n_val": 6_000, "n_test": 10_000}
    assert publish.full_split(record("tf_quickstart")) == {"n_train": 60_000, "n_val": 0, "n_test": 10_000}
    ok = record("keras_convnet", n_train=54_000, n_val=6_000, n_test=10_000)
    assert not [r for r in publish.why_not_publishable(ok, Path("."), False) if r.startswith("n_")]
    bad = record("keras_convnet", n_train=55_000, n_val=5_000, n_test=10_000)
    assert [r for r in publish.why_not_publishable(bad, Path("."), False) if r.startswith("n_")] == [
        "n_train is 55000, not 54000", "n_val is 5000, not 6000"]


def test_publish_sanitises_local_paths():
    m = {"config": {"mirrors": ["/home/me/mnist", "file:///x/", {"url": "/y", "canonical": False},
                                "https://example.org/mnist/"]}}
    assert publish.sanitise(m)["config"]["mirrors"] == [publish.LOCAL] * 3 + ["https://example.org/mnist/"]


# ---------------------------------------------------------------------------
# The published records and their report
# ---------------------------------------------------------------------------


# cnn_tutorial:printed keeps the README's dropout at evaluation (registry fidelity notes)
RANDOM_AT_EVALUATION = {("cnn_tutorial", "printed")}


@needs_audit
def test_published_records_are_complete_and_consistent():
    """Every published run (and every run of the port-versus-original and platform studies):
    its files, no weights, no local path, and per-image predictions whose correctness sums
    to its reported accuracies; a platform study run lies where its platform and CPU kind say."""
    for path in PUBLISHED + STUDY + PLATFORM_STUDY:
        d = path.parent
        assert sorted(p.name for p in d.iterdir()) == sorted([*publish.RECORD_FILES, "publication.json"]), d
        m = json.loads(path.read_text())
        assert not publish.why_not_publishable(m, d, study=path in STUDY), d
        if path in PLATFORM_STUDY:  # audit/platforms/{cpu}/{platform}/{arch}/{variant}/seed{n}
            cpu, platform = path.parts[-6], path.parts[-5]
            assert (m.get("platform") or {}).get("name", "default") == platform, d
            assert publish.cpu_slug(m["provenance"]["cpu"]["kind"]) == cpu, d
        text = path.read_text()
        assert "/work/" not in text and "/home/" not in text and "/root/" not in text, d
        p = read_predictions(d / "predictions.npz")
        assert p["test_correct"].sum() == round(m["test_accuracy_predict"] * m["n_test"]), d
        if (m["arch"], m["variant"]) in RANDOM_AT_EVALUATION:
            continue  # predictions are another random draw than the evaluation's
        assert p["test_correct"].sum() == round(m["test_accuracy"] * m["n_test"]), d
        if m["n_val"]:  # a recipe without a validation set (tf_quickstart) has no val_accuracy
            assert p["val_correct"].sum() == round(m["val_accuracy"] * m["n_val"]), d
        else:
            assert m["val_accuracy"] is None and len(p["val_correct"]) == 0, d


@needs_audit
def test_audit_report_rebuilds_byte_identical_and_matches_the_readme(tmp_path):
    work = tmp_path / "audit"
    shutil.copytree(AUDIT / "runs", work / "runs")
    if STUDY:
        shutil.copytree(AUDIT / publish.PORTCHECK_DIR, work / publish.PORTCHECK_DIR)
    if PLATFORM_STUDY:
        shutil.copytree(AUDIT / publish.PLATFORMS_DIR, work / publish.PLATFORMS_DIR)
    publish.build_audit_report(work)
    first = {p.relative_to(work): p.read_bytes() for p in (work / "report").rglob("*") if p.is_file()}
    publish.build_audit_report(work)
    second = {p.relative_to(work): p.read_bytes() for p in (work / "report").rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for name in first:  # every file: tables, pages, HTML and plots
        assert first[name] == second[name], name
    # the committed report is the one these records give, and so is the README's table
    committed = AUDIT / "report"
    pages = [p.relative_to(work / "report").as_posix() for p in (work / "report").rglob("*")
             if p.suffix in (".md", ".html") and p.parent.name != "tables"]
    assert {"README.md", "summary.html", "method.md", "tutorials/thomas.md"} <= set(pages)
    for name in ("tables/claim_audit.csv", "tables/timing.csv", "tables/port_vs_original.csv", "runs.csv",
                 "tables/variance.csv", "tables/platform_verdicts.csv", "status.md", *pages,
                 *(["portcheck_runs.csv"] if STUDY else []), *(["platform_runs.csv"] if PLATFORM_STUDY else [])):
        generated = (work / "report" / name).read_text().replace(str(work), "audit")
        assert generated == (committed / name).read_text(), f"audit/report/{name} is stale: run audit_report"
    status = (committed / "status.md").read_text()
    assert publish.readme_status(ROOT / "README.md") == status, \
        "README's 'Status of the audit' differs from audit/report/status.md: run snakemake --cores 1 audit_report"


@needs_audit
def test_the_published_report_reads_plainly():
    """No placeholder in the report's words; its run counts add up (the TF1 originals are in
    no verdict row); a span of dates is only given when the runs span days."""
    import re

    import pandas as pd

    from mnist_audit.config import original_of

    report = AUDIT / "report"
    text = (report / "README.md").read_text()
    assert "?." not in text and ": ?" not in text
    m = re.search(r"^(\d+) training runs: (\d+) in the (\d+) verdict rows(?:, (\d+) of the authors' own programs)?",
                  text, re.M)
    assert m, text[:400]
    total, in_rows, rows, originals = (int(g or 0) for g in m.groups())
    runs = pd.read_csv(report / "runs.csv")
    assert total == len(runs) == in_rows + originals and rows == len(pd.read_csv(report / "tables" / "claim_audit.csv"))
    assert originals == sum(original_of(v) is not None for v in runs["variant"])
    trained = re.search(r"trained (\S+(?: to \S+)?) on ", (report / "status.md").read_text()).group(1)
    first, _, last = trained.partition(" to ")
    assert first != last, trained


# ---------------------------------------------------------------------------
# Reproducibility: re-run cheap published runs at full budget
# ---------------------------------------------------------------------------

RERUNS = [("jerkic", "default", 1), ("softmax_regression", "book", 3), ("mlp", "default", 2)]


def _why_not_rerun(published: dict | None) -> str | None:
    """Why a published run cannot be re-run exactly here (None: it can)."""
    if published is None:
        return "not published yet"
    kind, here = published["provenance"]["cpu"]["kind"], cpu_info()["kind"]
    if kind != here:
        return f"published on {kind}, this machine is {here}: exact equality holds per CPU kind only"
    if published["n_train"] != 55_000:
        return "no real MNIST split here"
    return None


def _record_of_this_kind(arch: str, variant: str, seed: int) -> Path:
    """The published default-platform record of a run trained on this machine's CPU kind
    (the claim audit's, or the platform study's of this kind), else the claim audit's."""
    tail = Path(arch) / variant / f"seed{seed}" / "metrics.json"
    here = cpu_info()["kind"]
    for record in [AUDIT / "runs" / tail, *sorted((AUDIT / publish.PLATFORMS_DIR).glob(f"*/default/{tail}"))]:
        if record.exists() and json.loads(record.read_text())["provenance"]["cpu"]["kind"] == here:
            return record
    return AUDIT / "runs" / tail


@pytest.fixture(scope="module")
def reruns(split_path, tmp_path_factory):
    """Every re-run that can be compared here, started at once (one thread each, as
    published: a job's numbers do not depend on what runs beside it); each test waits
    for its own. Returns {(arch, variant, seed): why it cannot be re-run here, or
    (published metrics, out dir, process, log)}."""
    import subprocess
    import sys

    started = {}
    for arch, variant, seed in RERUNS:
        record = _record_of_this_kind(arch, variant, seed)
        published = json.loads(record.read_text()) if record.exists() else None
        why = _why_not_rerun(published)
        if why:
            started[(arch, variant, seed)] = why
            continue
        out = tmp_path_factory.mktemp(f"rerun-{arch}-{variant}-{seed}")
        log = out / "train.log"
        proc = start_logged([sys.executable, "-m", "mnist_audit.cli", "train", "--arch", arch, "--variant", variant,
                             "--seed", str(seed), "--data", str(split_path), "--out", str(out / "run"),
                             "--threads", str(published["device"]["threads"])], log, stdout=subprocess.DEVNULL,
                            cwd=ROOT)
        started[(arch, variant, seed)] = (published, out / "run", proc, log)
    yield started
    for run in started.values():
        if not isinstance(run, str) and run[2].poll() is None:
            run[2].kill()


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize(("arch", "variant", "seed"), RERUNS)
def test_published_run_reproduces_exactly_on_its_cpu_kind(arch, variant, seed, reruns):
    run = reruns[(arch, variant, seed)]
    if isinstance(run, str):
        pytest.skip(f"{arch}:{variant} seed {seed}: {run}")
    published, out, proc, log = run
    wait_ok(proc, log)
    record = _record_of_this_kind(arch, variant, seed)
    again = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "val_accuracy", "train_loss"):
        assert again[key] == published[key], (
            f"{arch}:{variant} seed {seed}: {key} {again[key]!r} here, {published[key]!r} published")
    a, b = read_predictions(out / "predictions.npz"), read_predictions(record.parent / "predictions.npz")
    assert np.array_equal(a["test_pred"], b["test_pred"]), f"{arch}:{variant} seed {seed}: predictions differ"


# ---------------------------------------------------------------------------
# Port versus original: the statistics on made-up data with a known answer
# ---------------------------------------------------------------------------


@needs_audit
def test_both_starts_of_an_original_are_compared_with_the_same_port_runs():
    """mlp and jerkic, published from their own draw and from the port's: one row each in
    the port-versus-original table, against the same five port runs."""
    from mnist_audit import report

    runs = report.aggregate_runs(sorted(AUDIT.glob("runs/*/*/seed*/metrics.json")))
    pvo = portcheck.port_vs_original(runs)
    for arch in ("mlp", "jerkic"):
        rows = pvo[pvo["architecture"] == arch].set_index("start")
        assert list(rows.index) == [portcheck.OWN_DRAW, portcheck.PORT_DRAW], arch
        assert list(rows["original_variant"]) == ["original", "original_from_port"]
        assert rows["n_port"].tolist() == [5, 5] and rows["n_original"].tolist() == [5, 5]
        assert rows["port_mean_pct"].nunique() == 1 and rows["pairs"].tolist() == [5, 5]
        assert not rows["original_mean_pct"].duplicated().any()
        started = {json.loads(p.read_text())["initial_weights"]
                   for p in AUDIT.glob(f"runs/{arch}/original_from_port/seed*/metrics.json")}
        assert started == {f"the port's (seed {s})" for s in range(5)}


def test_port_and_original_from_one_distribution_are_equivalent():
    rng = np.random.default_rng(0)
    port, orig = 0.99 + rng.normal(0, 0.0005, 8), 0.99 + rng.normal(0, 0.0005, 8)
    r = portcheck.compare_port_original(port, orig)
    assert r["verdict"] == "equivalent" and r["tost_p"] < 0.05
    assert r["diff_low"] < r["difference"] < r["diff_high"]
    w = stats.ttest_ind(orig, port, equal_var=False)
    assert r["t_test_p"] == pytest.approx(w.pvalue) and r["t_test"] == "Welch"


def test_a_shifted_original_is_different_and_a_noisy_one_inconclusive():
    rng = np.random.default_rng(1)
    port = 0.99 + rng.normal(0, 0.0005, 5)
    assert portcheck.compare_port_original(port, port - 0.01)["verdict"] == "different"
    noisy = portcheck.compare_port_original(port, 0.99 + rng.normal(0, 0.01, 5))
    assert noisy["verdict"] == "inconclusive" and noisy["tost_p"] >= 0.05
    assert portcheck.compare_port_original(port[:1], port[:1])["verdict"] == "inconclusive (n<2)"


def test_paired_comparison_removes_the_shared_seed_spread():
    """Originals started from each seed's port draw: the seed spread (2 points) is common
    to both sides. Welch's test sees it and cannot conclude; the paired test, on per-seed
    differences of a few hundredths of a point, finds them equivalent. Its interval and p
    are those of a one-sample t-test on the differences."""
    rng = np.random.default_rng(3)
    port = 0.72 + rng.normal(0, 0.02, 5)
    orig = port + rng.normal(0, 0.0003, 5)
    assert portcheck.compare_port_original(port, orig)["verdict"] == "inconclusive"
    r = portcheck.compare_port_original(port, orig, paired=True)
    assert r["verdict"] == "equivalent" and r["t_test"] == "paired" and r["tost_p"] < 0.05
    t = stats.ttest_1samp(orig - port, 0.0)
    assert r["t_test_p"] == pytest.approx(t.pvalue)
    assert (r["diff_low"], r["diff_high"]) == pytest.approx(tuple(t.confidence_interval(0.95)))
    shifted = portcheck.compare_port_original(port, port + 0.01 + rng.normal(0, 0.0003, 5), paired=True)
    assert shifted["verdict"] == "different"
    with pytest.raises(ValueError, match="matched runs"):
        portcheck.compare_port_original(port, orig[:4], paired=True)


def test_mcnemar_counts_discordant_images_on_matched_seeds():
    port = np.array([[1, 1, 0, 0, 1], [1, 0, 1, 1, 1]], bool)
    orig = np.array([[1, 0, 0, 1, 1], [1, 0, 1, 1, 1]], bool)
    r = portcheck.mcnemar(port, orig)
    assert (r["original_only"], r["port_only"]) == (1, 1) and r["mcnemar_p"] == 1.0
    many = portcheck.mcnemar(np.zeros((1, 40), bool), np.ones((1, 40), bool))
    assert many["original_only"] == 40 and many["mcnemar_p"] == pytest.approx(stats.binomtest(40, 40).pvalue)
    assert portcheck.mcnemar(port, port)["mcnemar_p"] == 1.0
