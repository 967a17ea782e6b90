"""The report's landing page in a real browser (headless Chromium), as a reader opens it
from the filesystem: the published audit's and a fresh tiny workspace's. Every image
loads with a size, every local link reaches a file or folder, no Markdown or placeholder
is left in the text. A screenshot of each is left under results/browser/ to look at."""

import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browser import needs_chromium, render, screenshot
from conftest import ROOT

from mnist_audit.tables import SCALED_BANNER

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert {"README.md", "claim_audit.csv", "runs.csv", "runs"} <= targets
    assert SCALED_BANNER not in seen["text"]


@needs_chromium
def test_a_tiny_workspaces_landing_page_in_a_browser(tiny_run, tmp_path):
    work, _ = tiny_run
    seen = check_page(work / "results" / "report" / "summary.html", tmp_path, "tiny-summary")
    assert SCALED_BANNER in seen["text"]  # the red banner of a scaled run
