"""How a reader meets an entry: by the tutorial's name, linked to its page.

The names themselves are registry data (``Architecture.short``, ``url``,
``variant_names``); this module only puts them together: a row's name (a port's variant,
or the author's program beside it), a Markdown link to the entry's page in the report, a
link to where the author published the tutorial, and the claim's figure as the author
wrote it. A registry entry without a short name is shown by its title, so a new entry
reads correctly with no change here.
"""

from __future__ import annotations

import re

from .. import registry
from ..config import original_of, starts_from_port

# The one-line definitions of the words the pages use, where a reader first meets them
PORT = "port: our Keras 3 re-implementation of the tutorial's program"
ORIGINAL = "original: the author's own program, run as written on the same data"
OWN_DRAW = "own draw: the original starts from its own random initial weights"
PORT_DRAW = "from the port's draw: the original starts from the port's initial weights for that seed"
PLATFORM = ("platform: where a run computes, a CPU kind with one kernel setting (oneDNN, Eigen) or Keras on "
            "JAX")
KERNELS = "kernels: the low-level routines (matrix products, convolutions) that do the arithmetic"

TUTORIALS_DIR = "tutorials"


def name(arch: str, variant: str = "default") -> str:
    """A row as a reader meets it: "Andy Thomas: CNN tutorial", "..., as printed in the
    README"; an original: "...: the author's program" (", from the port's draw")."""
    a = registry.get_architecture(arch)
    of = original_of(variant)
    if of is None:
        return a.display_variant(variant) if variant in a.variants else f"{a.display}, {variant}"
    start = ", from the port's draw" if starts_from_port(variant) else ""
    return f"{a.display_variant(of)}: the author's program{start}"


def variant_label(arch: str, variant: str) -> str:
    """A variant in a few words, where the tutorial is already named: "as published" (the
    default), "as printed in the README", "as written, on today's Keras"."""
    return "as published" if variant == "default" else registry.get_architecture(arch).variant_names.get(variant, variant)


def page(arch: str, prefix: str = "") -> str:
    """The entry's page in the report (``prefix``: the report folder, relative to the page
    that links it: "" from the report's own pages, "audit/report/" from the repository's README)."""
    return f"{prefix}{TUTORIALS_DIR}/{arch}.md"


def md_escape(text: str) -> str:
    """Text safe inside a Markdown link (a table cell's "|" is escaped by ``tables.markdown_table``)."""
    return re.sub(r"([\\\[\]*_`])", r"\\\1", text)


def link(arch: str, variant: str = "default", prefix: str = "", source: bool = True) -> str:
    """A row's name as a Markdown link to its page, and (``source``) "↗" to where the author
    published the tutorial, when that address is known."""
    text = f"[{md_escape(name(arch, variant))}]({page(arch, prefix)})"
    url = registry.get_architecture(arch).url
    return f"{text} [↗]({url})" if source and url else text


def source(arch: str) -> str:
    """Where the author published the tutorial, as a Markdown link (or the note that no
    public address is recorded, with where its code was read)."""
    a = registry.get_architecture(arch)
    if a.url:
        return f"[{md_escape(a.title)}]({a.url})"
    where = f"; its code was read at {a.source}" if a.source else ""
    return f"{md_escape(a.title)} (no public address recorded{where})"


FIGURE = re.compile(r"(?:about |~)?\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?%")


def figure(arch: str) -> str | None:
    """The claim's figure as the author wrote it ("~99%", "97-98%", "about 92%"), from the
    claim's sentence; None without a claim."""
    claim = registry.get_architecture(arch).claim
    if claim.value is None:
        return None
    m = FIGURE.search(claim.text or "")
    return m.group(0) if m else f"{100 * claim.value:g}%"
