"""The report in a real browser (headless Chromium), as a reader opens it from the
filesystem: the published audit's and a fresh tiny workspace's. Every image loads with a
size, every local link reaches a file or folder, no Markdown or placeholder is left in the
text; the first 1400 x 900 screen of the landing page holds the answer and the whole verdict
table, each row linked to its tutorial's page; no table is wider than its column, as GitHub
renders the Markdown pages; no page a link reaches shows raw Markdown. Screenshots are left
under results/browser/ to look at."""

import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import re

from browser import as_github, needs_chromium, render, screenshot
from conftest import ROOT

from mnist_audit.tables import SCALED_BANNER

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_published = pytest.mark.skipif(not (ROOT / "audit" / "report" / "summary.html").exists(),
                                     reason="no published report yet")


def check_page(page: Path, tmp: Path, shot: str) -> dict:
    seen = render(page, tmp)
    assert seen["images"], f"{page}: no image (the forest plot belongs on the landing page)"
    for img in seen["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, f"{page}: image not loaded: {img}"
    local = [a for a in seen["links"] if a["url"].startswith("file:")]
    assert local, f"{page}: no links to the report, the tables or the records"
    for a in local:
        target = Path(urllib.request.url2pathname(urllib.parse.urlparse(a["url"]).path))
        assert target.exists(), f"{page}: the link {a['href']!r} goes nowhere ({target})"
    for literal in ("**", "?."):
        assert literal not in seen["text"], f"{page}: {literal!r} in the text: raw Markdown or a placeholder"
    assert "How sure" in seen["text"] and "Read further" in seen["text"]
    out = screenshot(page, ROOT / "results" / "browser" / f"{shot}.png", tmp)
    assert out.read_bytes()[:8] == PNG_SIGNATURE and out.stat().st_size > 10_000
    return seen


@needs_chromium
def test_the_published_landing_page_in_a_browser(tmp_path):
    page = ROOT / "audit" / "report" / "summary.html"
    if not page.exists():
        pytest.skip("no published report yet")
    seen = check_page(page, tmp_path, "audit-summary")
    targets = {Path(urllib.parse.urlparse(a["url"]).path).name for a in seen["links"]}
    assert {"method.html", "claim_audit.csv", "runs.csv", "runs"} <= targets
    assert SCALED_BANNER not in seen["text"]


def local_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


@needs_chromium
@needs_published
def test_the_first_screen_holds_the_answer_and_the_verdict_table(tmp_path):
    import pandas as pd

    page = ROOT / "audit" / "report" / "summary.html"
    seen = render(page, tmp_path)
    answer = (ROOT / "audit" / "report" / "status.md").read_text().split("\n\n", 1)[0]
    answer = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", answer)  # the link texts, as a reader reads them
    answer = re.sub(r"\\([\\`*_{}\[\]()#+.!|-])", r"\1", answer)  # Markdown's escapes, as rendered
    first = next(p for p in seen["paragraphs"] if p["text"].startswith(answer[:40]))
    assert first["text"] == answer and first["bottom"] <= 900
    table = seen["tables"][0]
    rows = len(pd.read_csv(ROOT / "audit" / "report" / "tables" / "claim_audit.csv"))
    assert table["rows"] == rows and table["bottom"] <= 900, table
    screenshot(page, ROOT / "results" / "browser" / "audit-first-screen.png", tmp_path, size=(1400, 900))
    # every row links to its tutorial's page, and the page is there
    assert all(table["firstLinks"]), table["firstLinks"]
    for url in table["firstLinks"]:
        target = local_path(url)
        assert target.parent.name == "tutorials" and target.suffix == ".html" and target.exists(), url


def report_pages() -> list[Path]:
    base = ROOT / "audit" / "report"
    return [base / "README.md", *(base / f"{p}.md" for p in ("method", "port-vs-original", "platforms", "cost",
                                                           "provenance")),
            *sorted((base / "tutorials").glob("*.md"))]


@needs_chromium
@needs_published
def test_no_table_is_wider_than_its_column(tmp_path):
    """Every page's Markdown as GitHub renders it (an 880 px column), and the repository's
    README: each table fits its column (GitHub would scroll it otherwise)."""
    wide = []
    for md in [ROOT / "README.md", *report_pages()]:
        seen = render(as_github(md, tmp_path), tmp_path)
        for i, t in enumerate(seen["tables"]):
            if t["width"] > t["shown"]:
                wide.append(f"{md.relative_to(ROOT)}: table {i + 1} is {t['width']} px in a {t['shown']} px column")
    assert not wide, "\n".join(wide)


@needs_chromium
@needs_published
def test_no_page_a_link_reaches_shows_raw_markdown(tmp_path):
    """From summary.html, every local page two links deep: each is HTML, and no Markdown
    syntax is left in what the browser shows."""
    start = ROOT / "audit" / "report" / "summary.html"
    seen_pages, queue = set(), [(start, 0)]
    while queue:
        page, depth = queue.pop()
        if page in seen_pages:
            continue
        seen_pages.add(page)
        assert page.suffix == ".html", f"a link opens {page.name}, not an HTML page"
        seen = render(page, tmp_path)
        for literal in ("**", "|:--", "](", "![", "\n# "):
            assert literal not in seen["text"], f"{page.name}: {literal!r} in the text: raw Markdown"
        for img in seen["images"]:
            assert img["complete"] and img["width"] > 0, f"{page.name}: image not loaded: {img}"
        if depth < 2:
            for a in seen["links"]:
                target = local_path(a["url"]) if a["url"].startswith("file:") else None
                if target and target.suffix in (".html", ".md") and target.exists():
                    queue.append((target, depth + 1))
    assert len(seen_pages) >= 7, sorted(p.name for p in seen_pages)


@needs_chromium
def test_a_tiny_workspaces_landing_page_in_a_browser(tiny_run, tmp_path):
    work, _ = tiny_run
    seen = check_page(work / "results" / "report" / "summary.html", tmp_path, "tiny-summary")
    assert SCALED_BANNER in seen["text"]  # the red banner of a scaled run


@needs_chromium
def test_mlflows_run_page_shows_timings_as_a_person_reads_them(tiny_run, tmp_path):
    """A training run's page in MLflow's UI (``mlflow ui``, as the README starts it), in
    Chromium: the timings read to the millisecond (``timing.first_epoch_seconds 0.519``), not
    with the float's 16 digits MLflow shows for whatever was logged."""
    import json as json_
    import shutil

    from browser import page_text
    from engines import MlflowServer

    work, _ = tiny_run
    served = tmp_path / "work"
    shutil.copytree(work, served, symlinks=True, ignore=shutil.ignore_patterns("data", "*.keras"))
    with MlflowServer("sqlite:///results/mlflow/mlflow.db", tmp_path / "served", ui=True, cwd=served) as ui:
        with urllib.request.urlopen(f"{ui.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny-test") as r:
            exp = json_.loads(r.read())["experiment"]["experiment_id"]
        req = urllib.request.Request(f"{ui.uri}/api/2.0/mlflow/runs/search", headers={"Content-Type": "application/json"},
                                     data=json_.dumps({"experiment_ids": [exp], "max_results": 50}).encode())
        with urllib.request.urlopen(req) as r:
            runs = json_.loads(r.read())["runs"]
        run = next(r for r in runs if any(m["key"].startswith("timing.") for m in r["data"].get("metrics", [])))
        text = page_text(f"{ui.uri}/#/experiments/{exp}/runs/{run['info']['run_id']}?workflowType=machine_learning",
                         tmp_path)
    shown = re.findall(r"(timing\.\w+) (-?\d+(?:\.\d+)?(?:e-?\d+)?)", text)
    assert len(shown) >= 5, text[:2000]  # the run's metrics table, as the browser shows it
    long = [(k, v) for k, v in shown if len(v.partition(".")[2]) > 3]
    assert not long, f"timings shown with more than 3 decimals: {long}"
