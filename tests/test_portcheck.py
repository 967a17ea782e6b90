"""Port versus original: the power column against a simulation, pairing within a CPU kind
and platform, McNemar per pair, the rows' order and what a row lacks, on made-up runs and
on copies of the published records."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from scipy import stats

from mnist_audit import portcheck, portpower, publish, report

AUDIT = ROOT / "audit"
PUBLISHED = publish.published_metrics(AUDIT / "runs")
needs_audit = pytest.mark.skipif(not PUBLISHED, reason="no published runs in audit/runs")
MARGIN = portcheck.EQUIVALENCE_MARGIN
AMD, INTEL = "AuthenticAMD 25/17 avx512+bf16", "GenuineIntel 6/85 avx512"  # the second: made up for the tests


# ---------------------------------------------------------------------------
# Made-up runs tables (only the columns the table reads)
# ---------------------------------------------------------------------------


def runs_table(port: dict, original: dict, variant: str = "original_from_port", arch: str = "mlp") -> pd.DataFrame:
    """A runs table: ``port`` and ``original`` map (seed, cpu_kind[, platform]) -> test accuracy,
    or (test accuracy, test loss); by default every run's loss is its own (no run repeats another's bits)."""
    rows = []
    for v, side in (("default", port), (variant, original)):
        for key, value in side.items():
            seed, cpu, platform = (*key, "default")[:3]
            acc, loss = value if isinstance(value, tuple) else (value, 0.1 + len(rows) * 1e-6)
            rows.append({"architecture": arch, "variant": v, "seed": seed, "cpu_kind": cpu, "platform": platform,
                         "test_accuracy": acc, "test_loss": loss, "budget_scale": 1.0, "full_budget": True, "n_train": 55000,
                         "n_test": 10000, "total_steps": 5500, "published_steps": 5500, "train_subset": None,
                         "eval_subset": None, "overrides": "{}", "train_images_per_second": 1000.0,
                         "run_dir": f"/nonexistent/{v}/{seed}/{cpu}/{platform}"})
    return pd.DataFrame(rows)


def one_row(runs: pd.DataFrame) -> pd.Series:
    table = portcheck.port_vs_original(runs)
    assert len(table) == 1
    return table.iloc[0]


# ---------------------------------------------------------------------------
# Power: the closed form against simulation
# ---------------------------------------------------------------------------


def simulated_power(n: int, sd_a: float, sd_b: float | None, sims: int, rng) -> float:
    """The share of simulated comparisons (true difference 0, normal runs) in which TOST
    at the margin rejects: the tests of ``compare_port_original`` computed from the
    statistics they read (the mean difference and each side's sample variance), drawn from
    their exact distributions (normal; chi-square), so that any n costs the same."""
    t = stats.t
    if sd_b is None:  # paired: one-sample t on n differences
        d = rng.normal(0, sd_a / math.sqrt(n), sims)
        se = sd_a * np.sqrt(rng.chisquare(n - 1, sims) / (n - 1)) / math.sqrt(n)
        crit = t.ppf(0.95, n - 1)
    else:  # Welch's test, n runs a side, df from the sample variances
        d = rng.normal(0, math.sqrt((sd_a**2 + sd_b**2) / n), sims)
        va = sd_a**2 * rng.chisquare(n - 1, sims) / (n - 1) / n
        vb = sd_b**2 * rng.chisquare(n - 1, sims) / (n - 1) / n
        se = np.sqrt(va + vb)
        crit = t.ppf(0.95, (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (n - 1)))
    return float(np.mean((d - crit * se > -MARGIN) & (d + crit * se < MARGIN)))


def test_tost_power_equals_a_simulation_of_compare_port_original():
    """The package's own decision (``compare_port_original`` on simulated samples) agrees
    with the closed form: 3,000 paired comparisons of 8 pairs, sd 0.15 points (power
    about 0.9), within 4 simulation standard errors (0.022)."""
    rng = np.random.default_rng(0)
    n, sd, sims = 8, 0.0015, 3000
    hits = 0
    for _ in range(sims):
        port = 0.97 + rng.normal(0, 0.002, n)
        hits += portcheck.compare_port_original(port, port + rng.normal(0, sd, n), paired=True)["verdict"] == "equivalent"
    exact = portpower.power_at(n, sd, None, MARGIN)
    assert abs(hits / sims - exact) < 4 * math.sqrt(exact * (1 - exact) / sims), (hits / sims, exact)


def test_pairs_needed_edges():
    assert portpower.pairs_needed(0.0, None, MARGIN) == 2  # no spread: two pairs suffice
    assert portpower.pairs_needed(0.0, 0.0, MARGIN) == 2
    assert math.isnan(portpower.pairs_needed(math.nan, None, MARGIN))
    assert portpower.pairs_needed(1.0, None, MARGIN) == math.inf  # 500 margins of spread: no plan
    n = portpower.pairs_needed(0.002, None, MARGIN)  # sd = margin: 11 pairs (Chow et al.'s table: 11)
    assert n == 11 and portpower.power_at(n, 0.002, None, MARGIN) >= 0.8 > portpower.power_at(n - 1, 0.002, None,
                                                                                                MARGIN)


def test_the_pairs_a_row_needs_never_read_below_the_verdicts_floor():
    floor = portcheck.MIN_PAIRS
    assert portcheck.needed_label(portpower.pairs_needed(0.0, None, MARGIN)) == f"{floor} (2 by power)"
    assert portcheck.needed_label(portpower.pairs_needed(0.002, None, MARGIN)) == "11"
    assert portcheck.needed_label(13_414.0) == "13,414"
    assert portcheck.needed_label(math.inf) == f"> {portpower.N_MAX:,}"
    assert portcheck.needed_label(math.nan) == "n/a"


@needs_audit
def test_power_column_agrees_with_a_simulation_from_the_published_records():
    """For every row of the published table, the pairs needed are recomputed from the
    records' per-seed accuracies (metrics.json, not the table), and a simulation of the
    row's TOST (20,000 comparisons, standard error 0.0028 at 80%) finds power >= 80% at that
    n and < 80% one pair fewer, each within 4 standard errors, and the closed form's power
    within 4 standard errors of the simulated one."""
    table = pd.read_csv(AUDIT / "report" / "tables" / "port_vs_original.csv")
    acc = {}  # (arch, variant, budget_scale) -> {(seed, cpu kind, platform): accuracy}
    bits = {}  # the same, -> (seed, platform, accuracy, loss): a run's numbers, to find repeats by
    for path in sorted([*PUBLISHED, *publish.published_metrics(AUDIT / publish.PORTCHECK_DIR),
                        *publish.platform_metrics(AUDIT)], key=lambda p: json.loads(p.read_text())["device"]["cpu_kind"]):
        m = json.loads(path.read_text())
        key = (m["seed"], m["device"].get("cpu_kind") or m["provenance"]["cpu"]["kind"],
               (m.get("platform") or {}).get("name", "default"))
        row = (m["arch"], m["variant"], float(m["budget_scale"]))
        acc.setdefault(row, {})[key] = m["test_accuracy"]
        bits.setdefault(row, {})[key] = (key[0], key[2], m["test_accuracy"], m["test_loss"])
    rng = np.random.default_rng(29)
    sims, tol = 20_000, 4 * math.sqrt(0.16 / 20_000)
    checked = 0
    for r in table.itertuples(index=False):
        rows = [(r.architecture, v, r.budget_scale) for v in (r.variant, r.original_variant)]
        port, orig = (acc[k] for k in rows)
        port_bits, orig_bits = (bits[k] for k in rows)
        if r.start == portcheck.PORT_DRAW:  # pairs: the same seed, CPU kind and platform, repeats once
            pairs, seen = [], set()
            for k in sorted(set(port) & set(orig), key=lambda k: (k[1], k[0], k[2])):  # AMD's first
                if (port_bits[k], orig_bits[k]) not in seen:
                    pairs.append(k)
                seen.add((port_bits[k], orig_bits[k]))
            sds = (float(np.std([orig[k] - port[k] for k in pairs], ddof=1)), None)
        else:  # every original; the port's runs on the originals' CPU kinds and platforms; repeats once
            kinds = {k[1:] for k in orig}
            orig = {b: a for k, a in orig.items() for b in [orig_bits[k]]}
            ported = list({port_bits[k]: a for k, a in port.items() if k[1:] in kinds}.values())
            sds = (float(np.std(list(orig.values()), ddof=1)), float(np.std(ported, ddof=1)))
            assert r.n_port == len(ported) and r.n_original == len(orig), (r.model, r.start)
        n = portpower.pairs_needed(*sds, MARGIN) if len(pairs if r.start == portcheck.PORT_DRAW else orig) > 1 \
            else math.nan  # one pair: no spread to measure yet
        assert n == r.n_needed or (np.isnan(n) and np.isnan(r.n_needed)), (r.model, r.start, r.budget_scale)
        if not np.isfinite(n):
            continue
        at_n = simulated_power(int(n), *sds, sims, rng)
        assert at_n >= 0.8 - tol, (r.model, r.start, n, at_n)
        assert abs(at_n - portpower.power_at(int(n), *sds, MARGIN)) < tol, (r.model, r.start, n)
        if n > 2:
            assert simulated_power(int(n) - 1, *sds, sims, rng) < 0.8 + tol, (r.model, r.start, n)
        checked += 1
    assert checked == int(np.isfinite(table["n_needed"]).sum()) > 0


# ---------------------------------------------------------------------------
# Pairing, McNemar, what a row lacks, the order of the rows
# ---------------------------------------------------------------------------


def test_sides_pair_within_seed_cpu_kind_and_platform():
    runs = runs_table({(0, AMD): 0.97, (1, AMD): 0.97, (0, INTEL): 0.98, (2, INTEL, "avx2"): 0.97},
                      {(0, INTEL): 0.98, (1, AMD): 0.97, (2, INTEL): 0.97, (3, AMD): 0.97})
    port, orig = runs[runs["variant"] == "default"], runs[runs["variant"] != "default"]
    p, o = portcheck.sides(port, orig, paired=True)
    assert sorted(portcheck.run_keys(p)) == sorted(portcheck.run_keys(o)) == [(0, INTEL, "default"),
                                                                               (1, AMD, "default")]
    p, o = portcheck.sides(port, orig, paired=False)  # independent draws: the originals' kinds and platforms
    assert len(o) == 4 and sorted(portcheck.run_keys(p)) == [(0, AMD, "default"), (0, INTEL, "default"),
                                                             (1, AMD, "default")]
    assert portcheck.pairs_by_kind([(0, INTEL, "default"), (1, AMD, "default"), (2, AMD, "default")]) == "Intel 1, AMD 2"
    assert portcheck.pairs_by_kind([(0, INTEL, "default"), (1, "GenuineIntel 6/167 avx512+amx", "default")]) \
        == "Intel 6/85 1, Intel 6/167 1"


def test_a_run_repeated_on_another_cpu_kind_to_the_last_bit_counts_once():
    """Intel's default gives AMD's bits for most ports: a run (or a pair) that repeats
    another kind's run of the same seed and platform is one sample, not two."""
    amd = {(s, AMD): (0.97 + s / 1e4, 0.1 + s / 1e3) for s in range(5)}
    repeat = {(s, INTEL): amd[(s, AMD)] for s in range(3)}  # seeds 0-2 again, the same bits
    orig = {(s, k): (a + 1e-4, loss + 1e-3) for (s, k), (a, loss) in {**amd, **repeat}.items()}
    row = one_row(runs_table({**amd, **repeat}, orig))
    assert (row["pairs"], row["repeats"], row["pairs_by_kind"]) == (5, 3, "AMD 5")
    orig[(0, INTEL)] = (orig[(0, INTEL)][0], 0.5)  # Intel's original of seed 0 has other bits: another pair
    row = one_row(runs_table({**amd, **repeat}, orig))
    assert (row["pairs"], row["repeats"], row["pairs_by_kind"]) == (6, 2, "AMD 5, Intel 1")
    own_amd = {(s, AMD): (0.975 - s / 1e4, 0.2 + s / 1e3) for s in range(5)}
    own = {**own_amd, **{(s, INTEL): own_amd[(s, AMD)] for s in range(3)}, (9, INTEL): 0.97}
    row = one_row(runs_table({**amd, **repeat}, own, variant="original"))  # each side's repeats once
    assert (row["n_port"], row["n_original"], row["pairs"], row["repeats"]) == (5, 6, 5, 6)


def test_a_runs_table_without_platforms_is_the_default_platform():
    runs = runs_table({(s, AMD): 0.97 + s / 1e4 for s in range(5)}, {(s, AMD): 0.97 + s / 1e4 for s in range(5)})
    row = one_row(runs.drop(columns="platform"))
    assert row["pairs"] == 5 and row["pairs_by_kind"] == "AMD 5" and row["verdict"] == "equivalent"


def test_a_few_pairs_that_agree_to_the_image_are_not_yet_equivalent():
    """Two pairs, each original one test image behind its port: a sd of 0, so the two sides
    agree to the image, yet the row waits for portcheck.MIN_PAIRS pairs (and says it lacks runs); at five it is equivalent."""
    port = {(s, AMD): 0.99 - s / 1e3 for s in range(5)}
    orig = {k: v - 1e-4 for k, v in port.items()}
    two = one_row(runs_table({k: port[k] for k in list(port)[:2]}, {k: orig[k] for k in list(orig)[:2]}))
    assert two["pairs"] == 2 and two["sd_diff_pt"] < 1e-9  # (sd exactly 0: no t-test, equivalent by agreement)
    assert two["verdict"] == f"inconclusive (n<{portcheck.MIN_PAIRS})" and two["lacks"] == "runs"
    five = one_row(runs_table(port, orig))
    assert five["verdict"] == "equivalent" and five["lacks"] == ""


def test_two_runs_of_one_seed_on_one_machine_are_an_error():
    runs = runs_table({(0, AMD): 0.97, (1, AMD): 0.97}, {(0, AMD): 0.97, (1, AMD): 0.97})
    runs = pd.concat([runs, runs.iloc[[0]].assign(run_dir="/elsewhere/default/0")], ignore_index=True)
    with pytest.raises(ValueError, match="more than one run for the same seed, CPU kind and platform"):
        portcheck.port_vs_original(runs)


def test_what_a_row_lacks():
    rng = np.random.default_rng(4)
    base = 0.975 + rng.normal(0, 0.002, 40)
    few = {(s, AMD): a for s, a in enumerate(base[:4])}
    noisy = one_row(runs_table(few, {k: a + rng.normal(0, 0.002) for k, a in few.items()}))
    assert noisy["verdict"] == "inconclusive" and noisy["n_needed"] > 4 and noisy["lacks"] == "runs"
    many = {(s, AMD): a for s, a in enumerate(base)}  # 40 pairs, yet a true difference of 0.2 points
    off = one_row(runs_table(many, {k: a + 0.002 + rng.normal(0, 0.0005) for k, a in many.items()}))
    assert off["verdict"] == "different" and off["lacks"] == "agreement" and off["n_needed"] <= 40
    same = one_row(runs_table(many, {k: a + rng.normal(0, 0.0005) for k, a in many.items()}))
    assert same["verdict"] == "equivalent" and same["lacks"] == "" and same["pairs"] == 40


def test_full_budget_rows_come_before_the_behaviour_checks():
    full = runs_table({(s, AMD): 0.97 for s in range(3)}, {(s, AMD): 0.97 for s in range(3)}, arch="mlp")
    check = runs_table({(s, AMD): 0.9 for s in range(3)}, {(s, AMD): 0.9 for s in range(3)}, arch="jerkic")
    check = check.assign(budget_scale=0.02, full_budget=False)  # jerkic comes before mlp in the registry
    table = portcheck.port_vs_original(pd.concat([check, full], ignore_index=True))
    assert list(table["model"]) == ["mlp", "jerkic"]
    assert list(table["row_kind"]) == [portcheck.FULL_BUDGET, portcheck.BEHAVIOUR_CHECK]


def test_mcnemar_per_pair_sees_what_pooling_hides():
    """Two pairs that disagree on 12 images each, in opposite directions: pooled, the
    discordances cancel (p = 1); within each pair both are significant."""
    port = np.ones((2, 100), bool)
    orig = np.ones((2, 100), bool)
    port[0, :12] = False  # pair 0: the original right where the port is wrong, 12 times
    orig[1, :12] = False  # pair 1: the reverse
    r = portcheck.mcnemar_per_pair(port, orig)
    assert r["pooled_p"] == 1.0 and r["pairs"] == 2 and r["pairs_below"] == 2
    each = stats.binomtest(12, 12).pvalue
    assert r["fisher_p"] == pytest.approx(stats.combine_pvalues([each, each], method="fisher").pvalue)
    assert (r["original_only"], r["port_only"]) == (12, 12)


@pytest.mark.parametrize("with_full_budget", [True, False])
def test_the_plot_draws_full_budget_curves_and_one_panel_of_differences(tmp_path, with_full_budget):
    """A behaviour check alone (a scaled pipeline run with originals) or beside a
    full-budget row: the plot is written either way (PNG), one curve panel per full-budget row."""
    from mnist_audit import plots

    check = runs_table({(s, AMD): 0.7 + s / 100 for s in range(3)}, {(s, AMD): 0.7 + s / 90 for s in range(3)},
                       arch="thomas").assign(budget_scale=0.02, full_budget=False)
    full = runs_table({(s, AMD): 0.97 for s in range(3)}, {(s, AMD): 0.9701 for s in range(3)})
    runs = pd.concat([check, full] if with_full_budget else [check], ignore_index=True)
    hist = pd.concat([runs.assign(epoch=e, epochs_seen=e / 2, test_accuracy=runs["test_accuracy"] - (2 - e) / 100)
                      for e in (1, 2)], ignore_index=True)
    table = portcheck.port_vs_original(runs)
    out = tmp_path / "pvo.png"
    plots.plot_port_vs_original(hist, table, out, scaled=not with_full_budget)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


# ---------------------------------------------------------------------------
# On copies of the published records
# ---------------------------------------------------------------------------


def _copy_runs(tmp_path, archs):
    audit = tmp_path / "audit"
    for arch in archs:
        shutil.copytree(AUDIT / "runs" / arch, audit / "runs" / arch)
    return audit


def _table(audit) -> pd.DataFrame:
    paths = [*publish.published_metrics(audit / "runs"), *publish.platform_metrics(audit)]
    return portcheck.port_vs_original(report.aggregate_runs(paths))


def _edit(path, **changes) -> None:
    m = json.loads(path.read_text())
    for key, value in changes.items():
        target = m
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    path.write_text(json.dumps(m))


@needs_audit
@pytest.mark.parametrize(("arch", "variant"), [("jerkic", "original_from_port"), ("singhal", "original")])
def test_half_a_point_on_one_original_turns_its_rows_verdict(tmp_path, arch, variant):
    """An equivalent full-budget row (jerkic from the port's draw: paired; singhal: Welch)
    stops being equivalent when one published original's accuracy moves by 0.5 points (away
    from the port), in a copy of audit/."""
    audit = _copy_runs(tmp_path, [arch])
    start = portcheck.PORT_DRAW if variant == "original_from_port" else portcheck.OWN_DRAW

    def row():
        t = _table(audit)
        return t[(t["architecture"] == arch) & (t["start"] == start) & (t["row_kind"] == "full budget")].iloc[0]

    before = row()
    assert before["verdict"] == "equivalent" and before["lacks"] == ""
    record = audit / "runs" / arch / variant / "seed2" / "metrics.json"
    acc = json.loads(record.read_text())["test_accuracy"]
    _edit(record, test_accuracy=acc + (0.005 if before["difference_pt"] >= 0 else -0.005))
    after = row()
    assert after["verdict"] != "equivalent" and after["lacks"] in ("runs", "agreement"), after.to_dict()
    assert after["sd_diff_pt"] > before["sd_diff_pt"] and after["pairs"] == before["pairs"]


@needs_audit
def test_a_run_on_another_cpu_kind_pairs_only_with_its_own_kind(tmp_path):
    """In a copy of audit/: an mlp original from the port's draw on another CPU kind (seed
    90) is no pair for the AMD port run of seed 90; its partner in
    audit/platforms/{cpu}/default/ (same seed and kind) makes it one; and a port run of that
    kind for seed 0 is no partner for the AMD original of seed 0."""
    audit = _copy_runs(tmp_path, ["mlp"])

    def row():
        t = _table(audit)
        return t[(t["architecture"] == "mlp") & (t["start"] == portcheck.PORT_DRAW)].iloc[0]

    base = row()

    def clone(src, dest, seed, kind):  # a run of its own (its own loss: no repeat of another's bits)
        shutil.copytree(src, dest)
        _edit(dest / "metrics.json", seed=seed, test_loss=0.3 + seed / 1e3 + (kind == INTEL) / 1e4,
              **{"device.cpu_kind": kind, "provenance.cpu.kind": kind})

    runs = audit / "runs" / "mlp"
    clone(runs / "default" / "seed0", runs / "default" / "seed90", 90, AMD)  # the AMD port of seed 90
    clone(runs / "original_from_port" / "seed0", runs / "original_from_port" / "seed90", 90, INTEL)
    lone = row()
    assert (lone["pairs"], lone["pairs_by_kind"]) == (base["pairs"], base["pairs_by_kind"])
    assert lone["n_original"] == base["n_original"] + 1  # counted, unpaired
    partner = audit / publish.PLATFORMS_DIR / "intel-6-85" / "default" / "mlp" / "default"
    clone(runs / "default" / "seed0", partner / "seed90", 90, INTEL)
    clone(runs / "default" / "seed1", partner / "seed0", 0, INTEL)  # no Intel original of seed 0
    paired = row()

    def counts(label):  # "AMD 5, Intel 1" -> {"AMD": 5, "Intel": 1}
        return {part.rsplit(" ", 1)[0]: int(part.rsplit(" ", 1)[1]) for part in label.split(", ")}

    before, after = counts(base["pairs_by_kind"]), counts(paired["pairs_by_kind"])
    assert paired["pairs"] == base["pairs"] + 1 and paired["n_original"] == base["n_original"] + 1
    assert after["AMD"] == before["AMD"] and sum(after.values()) == sum(before.values()) + 1
    assert after.get("Intel 6/85", after.get("Intel")) == 1  # "Intel 6/85" beside another Intel kind
    assert lone["n_port"] == base["n_port"] + 1  # the AMD port of seed 90 (an original ran on AMD)
    assert paired["n_port"] == base["n_port"] + 3  # and the two port runs of the other kind
    assert paired["mcnemar_pairs"] == base["mcnemar_pairs"] + 1
    # the published report's builder reads that partner too (audit/platforms/: the platform study)
    publish.build_audit_report(audit)
    built = pd.read_csv(audit / "report" / "tables" / "port_vs_original.csv")
    built = built[(built["architecture"] == "mlp") & (built["start"] == portcheck.PORT_DRAW)].iloc[0]
    assert (built["pairs"], built["pairs_by_kind"]) == (paired["pairs"], paired["pairs_by_kind"])
    assert len(pd.read_csv(audit / "report" / "platform_runs.csv")) == 2
