"""The report: a tidy table of runs, the claim audit, parameter and timing tables,
plots, a README and an HTML summary (and one aggregate MLflow run, ``tracking.log_report``).

Everything here reads what the training jobs wrote (metrics.json, history.csv) and
the registry; nothing is recomputed from a model except the parameter and MAC
accounting (``accounting``). Every file is written atomically (temporary name beside
it, then ``os.replace``).

The modules of the report, by job:

* ``report.build``: the timing table and ``build_report``, the entry point that writes
  every table, plot and page;
* ``runtable``: the runs (metrics.json -> runs.csv) and their histories;
* ``audit``: the statistics and verdicts (the claim audit, port versus original);
* ``accounting``: parameters, layers and MACs (builds the Keras models);
* ``plots``: every plot; ``report.text``: the report's text; ``report.landing``: the HTML page;
* ``tables``: labels, the registry's row order, Markdown tables and the recipe status.

The claim audit (one row per architecture and variant):

* the statistic is the final test accuracy of each run (after the whole budget);
* the interval is the 95% interval of the mean over seeds and test images (``audit``);
  the seed-only Student-t interval is beside it (``test_t_low_pct``, ``test_t_high_pct``);
* the verdict follows ``audit.verdict`` (stated in the README and the captions).
"""

from .build import build_report, timing_table
from ..runtable import aggregate_runs, load_histories, load_run, write_runs

__all__ = ["aggregate_runs", "build_report", "load_histories", "load_run", "timing_table", "write_runs"]
