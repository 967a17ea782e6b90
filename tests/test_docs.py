"""The README and the pages under docs/: every relative link leads somewhere, every page is
one link from the README, and the README stays a short page with the commands CI runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks, inline code spans blanked."""
    return re.sub(r"`[^`\n]*`", "code", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: ...


def test_the_link_parser_sees_links_and_headings(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A `b` c's\n\n## A `b` c's\n\n[x](q.md#a-b-cs) [`y`](r/) ![i](s.png)\n"
                    "<https://e.org> [z](https://e.org)\n\n```\n# not a heading [n](n.md)\n```\n")
    assert relative_links(page) == ["q.md#a-b-cs", "r/"]
    assert anchors(page) == {"a-b-cs", "a-b-cs-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: {dest.name} has no heading with anchor #{fragment}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_one_link_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_readme_is_a_short_page():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < 300, f"README.md has {lines} lines: move method and measurements to docs/"


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] in re.findall(r"```bash\n(.*?)\n```", readme), \
        f".ci/run's command {ci[-1]!r} is not one of the README's commands"
    assert ci[-1].endswith("&& pytest")


def test_the_audit_status_opens_the_readme():
    """The generated status block comes before the instructions (Quick start)."""
    readme = (ROOT / "README.md").read_text()
    start, end = readme.find("<!-- audit-status"), readme.find("<!-- /audit-status -->")
    assert 0 < start < end < readme.find("## Quick start")
