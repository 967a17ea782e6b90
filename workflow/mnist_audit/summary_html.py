"""The landing page of Snakemake's HTML report (summary.html): the banners, the verdicts
and the main tables as HTML (pandas ``DataFrame.to_html``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .readme import CI_NOTE, PORT_NOTE, VERDICT_RULE, compact_verdicts, verdict_summary
from .tables import AUDIT_MD, OVERRIDDEN_BANNER, PORT_MD, SCALED_BANNER, TIMING_MD, isnan, settings_summary


def html_summary(runs: pd.DataFrame, audit_table: pd.DataFrame, timing: pd.DataFrame, pvo: pd.DataFrame,
                 scaled: bool) -> str:
    """The landing page of the HTML report: the banner, the verdicts and the main tables
    as HTML (Snakemake's report shows .html in the browser; .md and .csv only download).
    ``pvo``: the port-versus-original table."""

    def table(df: pd.DataFrame, spec: Mapping | None = None) -> str:
        if spec:
            df = df[spec["columns"]].rename(columns=spec["headers"])
            fmt = {spec["headers"].get(k, k): (lambda f: (lambda v: "n/a" if isnan(v) else format(v, f)))(f)
                   for k, f in spec["formats"].items()}
        else:
            fmt = {}
        return df.to_html(index=False, formatters=fmt, na_rep="n/a", border=0, classes="t", escape=True)

    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>MNIST tutorial audit</title><style>",
             "body{font-family:sans-serif;margin:1.5em;max-width:1400px} table.t{border-collapse:collapse;"
             "font-size:13px;margin:.5em 0 1.5em} table.t td,table.t th{border:1px solid #ccc;padding:3px 6px}"
             " table.t th{background:#f2f2f2} .banner{background:#fde2e1;border:2px solid #c0392b;padding:.6em;"
             "font-weight:bold}</style></head><body>",
             "<h1>MNIST tutorial audit</h1>"]
    if scaled:
        parts.append(f"<p class='banner'>&#9888; {html.escape(SCALED_BANNER)}. Settings: "
                     f"{html.escape(settings_summary(runs))}. No claim can be reproduced or refuted from these "
                     "numbers.</p>")
    if runs["overridden"].any():
        parts.append(f"<p class='banner'>&#9888; {html.escape(OVERRIDDEN_BANNER)}.</p>")
    parts += [f"<p><b>{html.escape(verdict_summary(audit_table))}</b> ({len(runs)} runs).</p>",
              "<h2>Verdicts</h2>", table(compact_verdicts(audit_table))]
    notes = [f"<li>{html.escape(m)}: {html.escape(n)}</li>" for m, n in zip(audit_table["model"], audit_table["note"])
             if n]
    if notes:
        parts.append("<ul>" + "".join(notes) + "</ul>")
    parts += ["<h2>Claim audit in full</h2>", table(audit_table, AUDIT_MD),
              f"<p>{html.escape(VERDICT_RULE)}</p><p>{html.escape(CI_NOTE)}</p>",
              "<h2>Timing</h2>", table(timing, TIMING_MD)]
    if len(pvo):
        parts += ["<h2>Port versus the author's program</h2>", table(pvo, PORT_MD), f"<p>{html.escape(PORT_NOTE)}</p>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# The static description (the landing page before any run has finished)
WORKFLOW_RST = Path(__file__).resolve().parents[1] / "report" / "workflow.rst"


def landing_rst(runs: pd.DataFrame, audit_table: pd.DataFrame, scaled: bool) -> str:
    """The landing page of Snakemake's HTML report (``report:`` in the Snakefile, once the
    report has been built): the banner, the verdict line and table, then the description."""
    from tabulate import tabulate

    lines = []
    if scaled:
        lines += [f".. warning:: **{SCALED_BANNER}.** Settings: {settings_summary(runs)}. No claim can be "
                  "reproduced or refuted from these numbers.", ""]
    if runs["overridden"].any():
        lines += [f".. warning:: **{OVERRIDDEN_BANNER}.**", ""]
    # three columns: Snakemake's page draws the DAG beside the text (the full table is in
    # "0. Read me first")
    verdicts = compact_verdicts(audit_table)[["architecture", "our figure, 95% interval", "verdict"]]
    lines += [f"**{verdict_summary(audit_table)}** ({len(runs)} runs).", "",
              tabulate(verdicts.to_numpy().tolist(), headers=list(verdicts.columns), tablefmt="grid",
                       disable_numparse=True), "", WORKFLOW_RST.read_text()]
    return "\n".join(lines)
