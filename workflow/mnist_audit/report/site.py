"""The report's pages as a site to open from the filesystem: every Markdown page rendered
to HTML beside it (markdown-it-py, GitHub's tables) in one Jinja2 template, with GitHub's
heading anchors, links between pages pointing at the HTML versions, and the main page's
HTML as summary.html, the page a reader opens first.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

MAIN = "README.md"
LANDING = "summary.html"
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def slug(text: str, seen: dict[str, int]) -> str:
    """GitHub's anchor of a heading (lower case, punctuation dropped, spaces to hyphens;
    a repeat gets -1, -2, ...)."""
    base = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    n = seen.get(base, 0)
    seen[base] = n + 1
    return base if n == 0 else f"{base}-{n}"


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def html_target(href: str, page: Path, base: Path) -> str:
    """A link of a Markdown page as its HTML page links it: another page of the report (a
    .md file under ``base``) becomes its .html version, the main page summary.html."""
    if SCHEME.match(href) or href.startswith("#"):
        return href
    path, sep, fragment = href.partition("#")
    if not path.endswith(".md"):
        return href
    target = (page.parent / path).resolve()
    if target == (base / MAIN).resolve():
        path = path[: -len(MAIN)] + LANDING
    else:
        path = path[:-3] + ".html"
    return path + sep + fragment


def render(text: str, page: Path, base: Path) -> str:
    """A page's Markdown as HTML (its body)."""
    md = _markdown()
    tokens = md.parse(text)
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            tok.attrSet("id", slug(tokens[i + 1].content, seen))
        for child in tok.children or ():
            if child.type == "link_open":
                child.attrSet("href", html_target(child.attrGet("href"), page, base))
    return md.renderer.render(tokens, md.options, {})


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("mnist_audit.report", "templates"), autoescape=select_autoescape(),
                      keep_trailing_newline=True)
    return env.get_template("page.html")


def title_of(text: str) -> str:
    m = re.search(r"^# (.+)$", text, re.M)
    return m.group(1) if m else "MNIST tutorial audit"


def html_path(page: Path, base: Path) -> Path:
    return base / LANDING if page.resolve() == (base / MAIN).resolve() else page.with_suffix(".html")


def page_html(text: str, page: Path, base: Path) -> str:
    from markupsafe import Markup

    home = None if page.resolve() == (base / MAIN).resolve() else \
        Path(__import__("os").path.relpath(base / LANDING, page.parent)).as_posix()
    return _template().render(title=title_of(text), body=Markup(render(text, page, base)), home=home)


def write_site(pages, base: Path, write) -> list[Path]:
    """The HTML of every page (paths of Markdown files under ``base``), written with
    ``write(path, text)``; returns the HTML files."""
    out = []
    for page in pages:
        page = Path(page)
        target = html_path(page, base)
        write(target, page_html(page.read_text(), page, base))
        out.append(target)
    return out
