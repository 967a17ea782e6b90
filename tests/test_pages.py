"""The report's pages: the answer is generated from the records (a flipped verdict in a copy
of the published audit changes its sentences), a new registry entry gets its page with no
change to the report's code, every page has its HTML and every link of the published site
resolves, and the main page reads in a few minutes."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from test_report import FAKE_PARAMS, fake_metrics, write_runs

from mnist_audit import publish, registry, report
from mnist_audit.plots import PLOT_FILES
from mnist_audit.report import names, pages, site
from mnist_audit.runs import read_predictions, write_predictions
from mnist_audit.tables import write_csv

AUDIT = ROOT / "audit"
PUBLISHED = AUDIT / "report"
needs_audit = pytest.mark.skipif(not (AUDIT / "runs").exists(), reason="no published audit in this checkout")


# ---------------------------------------------------------------------------
# The answer is generated
# ---------------------------------------------------------------------------


def answer_of(status: str) -> str:
    """The answer paragraph of a status block (its first paragraph)."""
    return status.split("\n\n", 1)[0]


def hold_up(answer: str) -> str:
    """The first sentence: which tutorials hold up."""
    return answer.split(". ", 1)[0]


def flip(run_dir: Path, accuracy: float) -> None:
    """Change one published run's test accuracy: its record and its per-image predictions
    (the first images wrong, the rest right; the validation images as they were)."""
    m = json.loads((run_dir / "metrics.json").read_text())
    p = read_predictions(run_dir / "predictions.npz")
    right = np.ones(len(p["test_pred"]), dtype=bool)
    right[:int(round(len(right) * (1 - accuracy)))] = False
    labels = np.where(right, p["test_pred"], (p["test_pred"].astype(int) + 1) % 10)
    val_labels = np.where(p["val_correct"], p["val_pred"], (p["val_pred"].astype(int) + 1) % 10)
    write_predictions(run_dir / "predictions.npz", p["val_pred"], val_labels, p["test_pred"], labels)
    m["test_accuracy"] = m["test_accuracy_predict"] = float(right.mean())
    (run_dir / "metrics.json").write_text(json.dumps(m))


@needs_audit
@pytest.mark.slow
def test_a_flipped_verdict_changes_the_answer(tmp_path):
    """Two tutorials of the published audit, as published and with one run of the Keras
    convnet at 90%: its verdict flips from reproduced, and the answer's sentences follow."""
    work = tmp_path / "audit"
    for arch in ("keras_convnet", "tf_quickstart"):
        shutil.copytree(AUDIT / "runs" / arch / "default", work / "runs" / arch / "default")
    before = publish.build_audit_report(work)
    run = work / "runs" / "keras_convnet" / "default" / "seed0"
    flip(run, 0.90)
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] == pytest.approx(0.90)
    after = publish.build_audit_report(work)
    verdict = {a: dict(zip(r["audit"]["model"], r["audit"]["verdict"])) for a, r in (("before", before),
                                                                                       ("after", after))}
    assert verdict["before"]["keras_convnet"] == "reproduced" != verdict["after"]["keras_convnet"]
    name = registry.get_architecture("keras_convnet").display
    first, second = answer_of(before["status"]), answer_of(after["status"])
    assert first != second
    assert "and 1 of those holds up: [" + name in hold_up(first)
    assert "and none of those holds up" in hold_up(second) and name not in hold_up(second)
    assert name in second.split(". ", 1)[1]  # now among the borderline or the not reproduced
    # the README's status and the report's main page open with the same sentences
    main = (work / "report" / "README.md").read_text()
    assert hold_up(second).replace("audit/report/", "") in main


# ---------------------------------------------------------------------------
# A new registry entry gets its page
# ---------------------------------------------------------------------------


def test_a_new_registry_entry_gets_its_page(tmp_path, monkeypatch):
    """An entry the report's code has never seen: its page, its plot, its row linked by
    name on the main page, all from the registry."""
    import dataclasses

    new = dataclasses.replace(registry.get_architecture("thomas"), name="toy_cnn", short="Ada Lovelace: a toy CNN",
                              url="https://example.org/toy-cnn", title="A toy CNN for MNIST")
    monkeypatch.setitem(registry.ARCHITECTURES, "toy_cnn", new)
    ms = [fake_metrics("toy_cnn", s, 0.990 + s / 1000) for s in range(3)]
    mpaths, hpaths = write_runs(tmp_path, ms)
    base = tmp_path / "results" / "report"
    base.mkdir(parents=True)
    params = pd.concat([FAKE_PARAMS, pd.DataFrame({"architecture": ["toy_cnn"], "variant": ["default"],
                                                   "params": [1000], "macs_per_image": [9]})])
    write_csv(base / "runs.csv", report.aggregate_runs(mpaths, params))
    params.assign(model=params["architecture"], layers="x", baseline="no", layers_with_weights=2) \
        .to_csv(base / "parameters.csv", index=False)
    (base / "layers.md").write_text("| layer |\n|---|\n| x |\n")
    outputs = {k: v for k, v in publish.report_outputs(base).items() if k not in ("portcheck_runs", "platform_runs")}
    report.build_report({"runs": base / "runs.csv", "parameters": base / "parameters.csv",
                         "layers_md": base / "layers.md", "histories": hpaths, "manifest": None}, outputs)
    page = (base / "tutorials" / "toy_cnn.md").read_text()
    assert page.startswith("# Ada Lovelace: a toy CNN") and "(https://example.org/toy-cnn)" in page
    assert "A toy CNN for MNIST" in page and (base / "tutorials" / "toy_cnn.png").exists()
    main = (base / "README.md").read_text()
    assert "[Ada Lovelace: a toy CNN](tutorials/toy_cnn.md) [↗](https://example.org/toy-cnn)" in main
    assert 'href="tutorials/toy_cnn.html"' in (base / "summary.html").read_text()
    assert (base / "tutorials" / "toy_cnn.html").exists()


def test_an_entry_without_a_short_name_reads_by_its_title(monkeypatch):
    import dataclasses

    bare = dataclasses.replace(registry.get_architecture("thomas"), name="bare", short=None, url=None)
    monkeypatch.setitem(registry.ARCHITECTURES, "bare", bare)
    assert names.name("bare") == bare.title
    assert names.link("bare") == f"[{names.md_escape(bare.title)}](tutorials/bare.md)"  # no source to link
    assert names.name("bare", "original_from_port") == f"{bare.title}: the author's program, from the port's draw"


def test_the_claims_figure_is_the_authors():
    assert [names.figure(a) for a in ("thomas", "zaccone", "mlp", "keras_convnet", "jerkic")] == \
        ["99%", "about 99%", "97-98%", "~99%", None]


def test_every_entry_has_a_name_and_an_address_or_says_why_not():
    for name, a in registry.ARCHITECTURES.items():
        assert a.short and len(a.short) <= 45, name  # fits a table's first column
        assert a.url or a.seed_file or a.source, name
        assert set(a.variant_names) == set(a.variants) - {"default"}, name


def test_the_rule_lists_every_page():
    rule = (ROOT / "workflow" / "rules" / "report.smk").read_text()
    listed = re.search(r"^REPORT_PAGES = \[(.*?)\]", rule, re.M).group(1)
    assert [p.strip(' "') for p in listed.split(",")] == [p.removesuffix(".md") for p in pages.PAGES]


# ---------------------------------------------------------------------------
# The published site
# ---------------------------------------------------------------------------

LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def published_html() -> list[Path]:
    return sorted(PUBLISHED.rglob("*.html"))


@needs_audit
def test_every_tutorial_has_its_page():
    audit = pd.read_csv(PUBLISHED / "tables" / "claim_audit.csv")
    for arch in dict.fromkeys(audit["architecture"]):
        for ext in ("md", "html", "png"):
            assert (PUBLISHED / "tutorials" / f"{arch}.{ext}").exists(), (arch, ext)
    main = (PUBLISHED / "README.md").read_text()
    for arch in set(audit["architecture"]):
        assert f"](tutorials/{arch}.md)" in main, arch


@needs_audit
def test_every_link_of_the_published_site_resolves_and_none_opens_markdown():
    pages_ = published_html()
    assert PUBLISHED / "summary.html" in pages_ and len(pages_) >= 6 + len(list((PUBLISHED / "tutorials").glob("*.md")))
    broken = []
    for page in pages_:
        for href in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", href) or href.startswith("#"):
                continue
            path = href.partition("#")[0]
            if path.endswith(".md"):
                broken.append(f"{page.name}: {href} opens raw Markdown")
            elif not (page.parent / path).exists():
                broken.append(f"{page.name}: {href} goes nowhere")
    assert not broken, "\n".join(broken)


@needs_audit
def test_every_plot_is_placed_and_opens_at_full_size():
    text = "\n".join(p.read_text() for p in PUBLISHED.rglob("*.md") if p.parent.name != "tables")
    for plot in PLOT_FILES:
        src = f"plots/{plot}.png"
        assert re.search(rf"\[!\[[^\]]*\]\((?:\.\./)?{re.escape(src)}\)\]\((?:\.\./)?{re.escape(src)}\)", text), plot


@needs_audit
def test_the_main_page_reads_in_five_minutes():
    words = len((PUBLISHED / "README.md").read_text().split())
    assert words < 2500, words


def test_a_markdown_link_becomes_the_html_pages(tmp_path):
    base = tmp_path
    page = base / "tutorials" / "x.md"
    assert site.html_target("../README.md#how-sure", page, base) == "../summary.html#how-sure"
    assert site.html_target("../method.md", page, base) == "../method.html"
    assert site.html_target("https://e.org/a.md", page, base) == "https://e.org/a.md"
    assert site.html_target("../plots/a.png", page, base) == "../plots/a.png"
    html = site.render("## How sure\n\n[m](method.md) [![p](p.png)](p.png)\n", base / "README.md", base)
    assert '<h2 id="how-sure">' in html and 'href="method.html"' in html and '<a href="p.png"><img' in html
