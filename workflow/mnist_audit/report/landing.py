"""The report's landing page (summary.html) and the landing page of Snakemake's HTML
report (landing.rst).

summary.html is the page a reader opens first, from the filesystem, no server: the
banners, the verdict line and table, one "how sure" line per verdict, the forest plot,
links to the full report, the tables and the run records, then the main tables in full.
Tables are pandas ``DataFrame.to_html`` (headers aligned with their text); the report's
Markdown prose is rendered by markdown-it-py.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .text import CI_NOTE, PORT_NOTE, VERDICT_RULE, compact_verdicts, how_sure, run_counts, verdict_summary
from ..tables import AUDIT_MD, OVERRIDDEN_BANNER, PORT_MD, SCALED_BANNER, TIMING_MD, isnan, rel, settings_summary

BANNER_STYLE = "background:#fde2e1;border:2px solid #c0392b;padding:.6em;font-weight:bold;margin-bottom:1em"
STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px;line-height:1.4} table.t{border-collapse:collapse;"
         "font-size:13px;margin:.5em 0 1.5em} table.t td,table.t th{border:1px solid #ccc;padding:3px 6px;"
         "text-align:left;vertical-align:top} table.t th{background:#f2f2f2} "
         f".banner{{{BANNER_STYLE}}} img.plot{{max-width:min(100%,1000px);height:auto}} ul.sure li{{margin:.2em 0}} "
         "code{background:#f4f4f4;padding:0 .2em}")

# What the page links to, in order: (label, key of the report's paths); those present are shown
LINKS = (("the full report (Markdown)", "readme"), ("claim audit table (CSV)", "claim_audit_csv"),
         ("claim audit (Markdown)", "claim_audit_md"), ("timing (CSV)", "timing_csv"),
         ("port versus original (CSV)", "port_vs_original_csv"),
         ("seed, platform and test-set spreads (CSV)", "variance_csv"),
         ("each claim's verdict per platform (CSV)", "platform_verdicts_csv"), ("parameters (Markdown)", "parameters_md"),
         ("layers (Markdown)", "layers_md"), ("every run, one row each (runs.csv)", "runs"))


def prose(text: str) -> str:
    """The report's Markdown prose (bold, code) as HTML."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(text)


def _table(df: pd.DataFrame, spec: Mapping | None = None) -> str:
    fmt = {}
    if spec:
        df = df[spec["columns"]].rename(columns=spec["headers"])
        fmt = {spec["headers"].get(k, k): (lambda f: (lambda v: "n/a" if isnan(v) else format(v, f)))(f)
               for k, f in spec["formats"].items()}
    return df.to_html(index=False, formatters=fmt, na_rep="n/a", border=0, classes="t", escape=True,
                      justify="left")


def _links(links: Mapping[str, str], base: Path, records: list[str]) -> str:
    items = [f"<li><a href='{html.escape(rel(links[key], base))}'>{html.escape(label)}</a></li>"
             for label, key in LINKS if links.get(key)]
    items += [f"<li><a href='{html.escape(rel(d, base))}/'>run records: {html.escape(Path(d).as_posix())}/</a> "
              "(one folder per run: metrics, history, confusion matrix, predictions)</li>" for d in records]
    return "<ul>" + "".join(items) + "</ul>"


def html_summary(runs: pd.DataFrame, audit_table: pd.DataFrame, timing: pd.DataFrame, pvo: pd.DataFrame,
                 scaled: bool, links: Mapping[str, str] | None = None, records: list[str] = (),
                 platform_section: str = "") -> str:
    """The landing page. ``pvo``: the port-versus-original table; ``links``: the report's
    paths (summary_html, readme, forest, the tables, runs), for the plot and the links;
    ``records``: the folders of the run records; ``platform_section``: the platform
    study's HTML (``variance.html_section``), if any."""
    links = links or {}
    base = Path(links["summary_html"]).parent if links.get("summary_html") else Path(".")
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>MNIST tutorial audit</title>"
             f"<style>{STYLE}</style></head><body>", "<h1>MNIST tutorial audit</h1>"]
    if scaled:
        parts.append(f"<p class='banner'>&#9888; {html.escape(SCALED_BANNER)}. Settings: "
                     f"{html.escape(settings_summary(runs))}. No claim can be reproduced or refuted from these "
                     "numbers.</p>")
    if runs["overridden"].any():
        parts.append(f"<p class='banner'>&#9888; {html.escape(OVERRIDDEN_BANNER)}.</p>")
    parts += [f"<p><b>{html.escape(verdict_summary(audit_table))}</b> ({html.escape(run_counts(runs, audit_table))})."
              "</p>",
              "<h2>Verdicts</h2>", _table(compact_verdicts(audit_table)),
              "<h3>How sure</h3><ul class='sure'>"
              + "".join(f"<li>{html.escape(how_sure(r))}</li>" for r in audit_table.itertuples(index=False))
              + "</ul>"]
    notes = [f"<li>{html.escape(m)}: {html.escape(n)}</li>" for m, n in zip(audit_table["model"], audit_table["note"])
             if n]
    if notes:
        parts.append("<ul>" + "".join(notes) + "</ul>")
    if links.get("forest"):
        parts.append(f"<p><img class='plot' src='{html.escape(rel(links['forest'], base))}' "
                     "alt=\"each row's mean and 95% interval on the author's measure against the claim's bound\"></p>")
    if platform_section:
        parts.append(platform_section)
    parts += ["<h2>Read further</h2>", _links(links, base, list(records)),
              "<h2>Claim audit in full</h2>", _table(audit_table, AUDIT_MD), prose(VERDICT_RULE), prose(CI_NOTE),
              "<h2>Timing</h2>", _table(timing, TIMING_MD)]
    if len(pvo):
        parts += ["<h2>Port versus the author's program</h2>", _table(pvo, PORT_MD), prose(PORT_NOTE)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# The static description (the landing page before any run has finished)
WORKFLOW_RST = Path(__file__).resolve().parents[2] / "report" / "workflow.rst"


def _raw_banner(text: str) -> list[str]:
    """The red banner of summary.html in Snakemake's landing page: raw HTML with its style
    inline (the page has no style of its own for reStructuredText's admonitions)."""
    return [".. raw:: html", "", f"   <p class=\"banner\" style=\"{BANNER_STYLE}\">&#9888; {html.escape(text)}</p>", ""]


def landing_rst(runs: pd.DataFrame, audit_table: pd.DataFrame, scaled: bool) -> str:
    """The landing page of Snakemake's HTML report (``report:`` in the Snakefile, once the
    report has been built): the banner, the verdict line and table, then the description."""
    from tabulate import tabulate

    lines = []
    if scaled:
        lines += _raw_banner(f"{SCALED_BANNER}. Settings: {settings_summary(runs)}. No claim can be reproduced or "
                             "refuted from these numbers.")
    if runs["overridden"].any():
        lines += _raw_banner(f"{OVERRIDDEN_BANNER}.")
    # three columns: Snakemake's page draws the DAG beside the text (the full table is in
    # "0. Read me first")
    verdicts = compact_verdicts(audit_table)[["architecture", "our figure, 95% interval", "verdict"]]
    lines += [f"**{verdict_summary(audit_table)}** ({run_counts(runs, audit_table)}).", "",
              tabulate(verdicts.to_numpy().tolist(), headers=list(verdicts.columns), tablefmt="grid",
                       disable_numparse=True), "", WORKFLOW_RST.read_text()]
    return "\n".join(lines)
