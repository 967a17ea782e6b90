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
<iframe id="page" src="{url}" style="width:1400px;height:1000px"></iframe><pre id="record">not loaded</pre>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var d = this.contentDocument;
  document.getElementById("record").textContent = JSON.stringify({{
    images: Array.from(d.images).map(function (i) {{
      return {{src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}};
    }}),
    links: Array.from(d.querySelectorAll("a[href]")).map(function (a) {{
      return {{href: a.getAttribute("href"), url: a.href}};
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
    """{"images": [{src, complete, width, height}], "links": [{href, url}], "text": str} of ``page``."""
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
