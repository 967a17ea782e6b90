"""MLflow: the store and experiment set-up (once), and one run per training result.

Three rules matter here:

* The store and the experiment are created by one job before anything logs.
  With MLflow 3 and a fresh sqlite store, several processes that open it at the
  same moment race on the schema migration (``duplicate column name``); one
  ``init_tracking`` job removes the race.
* A run is logged once. Its identity is what produced it (architecture, variant,
  seed, resolved recipe, overrides, budget, subsets, backend, the data's payload
  checksums), kept in the tag ``mnist_audit.identity``; logging finds an existing run
  by that tag, whatever sweep logged it. The same results (``mnist_audit.results``,
  the job's result_id) are not logged again; new results for the same identity (a
  retrained job) replace the old run, which is deleted; a half-logged run is deleted
  and logged again.
* A sweep (the runs one configuration asks for, ``config.sweep_key``) is one MLflow
  run, ``sweep <id>``; it groups its runs without copying them: each run lists the
  sweeps it belongs to in the tag ``mnist_audit.sweeps``, and the sweep's
  ``mnist_audit.sweep`` tag is what to search for
  (``tags.`mnist_audit.sweeps` LIKE '%<id>%'``).

Logging is a separate step that reads the training job's local outputs
(metrics.json, history.csv, ...): a tracking server that is down fails that step
with a clear message, the measured results stay on disk, and a rerun logs them. So does
a server that refuses the credentials (401, 403), at once, naming the variables to set;
a tracking URI with a secret in it is refused before anything connects
(``mnist_audit.credentials``).
The model is stored once, in the run folder. MLflow gets a *logged model* for it (the
Models tab, linked to its run as an output, with the final metrics attached): an
external model in MLflow 3's sense, whose MLmodel file carries the input/output
signature, the weights' path and SHA-256 (``model.path``, ``model.sha256``), not a
second copy of the weights.

The report is logged as one more run (``log_report``), a child of the sweep's run, with
the report's tables and plots as its artifacts.

The modules, one job each:

    store         the store and the experiment (``init_tracking``), the retry policy, the runs view
    record        what one run logs: identity, description, params and tags, datasets, system metrics
    logged_model  the run's model as an external MLflow logged model
    runlog        logging one job's outputs as one run, once (``log_run``, ``log_run_job``)
    report_run    the report's run (``log_report``)
"""

from .logged_model import MODEL_IS_EXTERNAL, model_signature
from .record import (DATA_SPLITS, IDENTITY_KEYS, SOURCE_NAME, dataset_inputs, description, provenance_record,
                     run_identity, run_payload, system_metrics)
from .report_run import log_report, write_log_report
from .runlog import log_run, log_run_job
from .store import RUNS_VIEW, RUNS_VIEW_KEY, TAG, TrackingError, init_tracking, runs_view_url, with_retries

__all__ = ["DATA_SPLITS", "IDENTITY_KEYS", "MODEL_IS_EXTERNAL", "RUNS_VIEW", "RUNS_VIEW_KEY", "SOURCE_NAME", "TAG",
           "TrackingError", "dataset_inputs", "description", "init_tracking", "log_report", "log_run", "log_run_job",
           "model_signature", "provenance_record", "run_identity", "run_payload", "runs_view_url", "system_metrics",
           "with_retries", "write_log_report"]
