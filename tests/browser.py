"""A page as a reader sees it: Debian's Chromium, headless, on a file:// page.

``render`` loads the page in a frame of a probe page and reads, once it has loaded, what
the browser made of it: every image (loaded, natural size), every link (as the browser
resolved it) and the visible text; ``--dump-dom`` returns the probe page with that
record in it. ``screenshot`` writes the page as a PNG for a person to look at.
"""

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
NO_CHROMIUM = "chromium is not installed (Debian's package chromium; .ci/run installs it)"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)

# Headless on a machine without a desktop session or a network (no background connections)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

PROBE = """<!DOCTYPE html><html><body>
<iframe id="page" src="{url}" style="width:1400px;height:900px;border:0"></iframe><pre id="record">not loaded</pre>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var d = this.contentDocument;
  document.getElementById("record").textContent = JSON.stringify({{
    images: Array.from(d.images).map(function (i) {{
      return {{src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}};
    }}),
    links: Array.from(d.querySelectorAll("a[href]")).map(function (a) {{
      return {{href: a.getAttribute("href"), url: a.href, inTable: !!a.closest("table")}};
    }}),
    tables: Array.from(d.querySelectorAll("table")).map(function (t) {{
      var box = t.getBoundingClientRect();
      return {{width: t.scrollWidth, shown: t.clientWidth, top: box.top, bottom: box.bottom,
               rows: t.querySelectorAll("tbody tr").length,
               firstLinks: Array.from(t.querySelectorAll("tbody tr")).map(function (r) {{
                 var a = r.querySelector("td a"); return a ? a.href : null; }})}};
    }}),
    paragraphs: Array.from(d.querySelectorAll("p")).map(function (p) {{
      var box = p.getBoundingClientRect();
      return {{text: p.innerText, top: box.top, bottom: box.bottom}};
    }}),
    text: d.body.innerText
  }});
}});
</script></body></html>
"""


def _chromium(args: list[str], profile: Path, timeout: float = 90) -> str:
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def render(page: Path, tmp: Path) -> dict:
    """What a reader sees of ``page`` in a 1400 x 900 window: {"images": [{src, complete,
    width, height}], "links": [{href, url, inTable}], "tables": [{width (its content's),
    shown (the box's), top, bottom (px from the window's top), rows, firstLinks (each body
    row's first link)}], "paragraphs": [{text, top, bottom}], "text": str}."""
    probe = tmp / "probe.html"
    probe.write_text(PROBE.format(url=Path(page).resolve().as_uri()))
    # file:// pages may read a file:// frame only with this flag; the probe never leaves the machine
    dom = _chromium(["--allow-file-access-from-files", "--dump-dom", probe.as_uri()], tmp / "profile")
    start = dom.index('<pre id="record">') + len('<pre id="record">')
    text = html.unescape(dom[start:dom.index("</pre>", start)])
    assert text != "not loaded", f"{page} did not load in the browser"
    return json.loads(text)


def screenshot(page: Path, out: Path, tmp: Path, size: tuple[int, int] = (1400, 2600)) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _chromium([f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", Path(page).resolve().as_uri()],
              tmp / "profile-shot")
    return out


# GitHub's Markdown: its content column (880 px in a 1,280 px window), its fonts and its
# tables, which are as wide as their content but scroll inside the column when wider
GITHUB_CSS = """body{margin:0} .markdown-body{box-sizing:border-box;width:880px;margin:0 16px;
font-family:-apple-system,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5}
.markdown-body table{border-spacing:0;border-collapse:collapse;display:block;width:max-content;max-width:100%;
overflow:auto} .markdown-body td,.markdown-body th{padding:6px 13px;border:1px solid #d1d9e0}
.markdown-body img{max-width:100%}"""


def as_github(markdown: Path, tmp: Path) -> Path:
    """``markdown`` rendered as GitHub renders it (markdown-it-py, GitHub's tables and CSS), as
    an HTML file in ``tmp`` whose relative links and images resolve beside ``markdown``."""
    from markdown_it import MarkdownIt

    markdown = Path(markdown).resolve()
    body = MarkdownIt("commonmark").enable("table").render(markdown.read_text())
    out = tmp / f"github-{markdown.parent.name}-{markdown.stem}.html"
    out.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><base href='{markdown.parent.as_uri()}/'>"
                   f"<style>{GITHUB_CSS}</style></head><body><article class='markdown-body'>{body}</article>"
                   "</body></html>")
    return out


def page_text(url: str, tmp: Path, wait_ms: int = 25000) -> str:
    """What a single-page application shows at ``url`` once its scripts have run (Chromium's
    virtual time, ``wait_ms``): the rendered DOM's text, whitespace collapsed."""
    import re

    dom = _chromium([f"--virtual-time-budget={wait_ms}", "--dump-dom", url], tmp / "profile-spa", timeout=180)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))
