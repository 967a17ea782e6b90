"""The tracking store and the experiment: set up once, before anything logs; one retry
policy for every call to the store; the runs table's saved view.

With MLflow 3 and a fresh sqlite store, several processes that open it at the same
moment race on the schema migration (``duplicate column name``); one ``init_tracking``
job removes the race. A sweep (the runs one configuration asks for,
``config.sweep_key``) is one MLflow run, ``sweep <id>``, made here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import credentials, retry

log = logging.getLogger(__name__)

TAG = "mnist_audit"  # tag prefix


class TrackingError(RuntimeError):
    pass


def fast_fail_http() -> None:
    """MLflow's own HTTP retries wait minutes; we retry (and explain) ourselves."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def with_retries(fn: Callable, what: str, uri: str, attempts: int = 3, backoff_s: float = 2.0):
    """``fn()`` under the retry policy of ``mnist_audit.retry``: a store that is down or
    answers 5xx is tried ``attempts`` times in all; an error that cannot pass (a 4xx, a
    bad value) fails at once, a credential the server refuses (401, 403) with the
    variables to set. The store's errors end in a TrackingError that says nothing
    measured is lost; an error of our own code is raised as it is, after one try."""
    shown = credentials.without_credentials(uri)
    try:
        return retry.call(fn, retry.Policy(attempts=attempts, backoff_s=backoff_s), what)
    except retry.RetryError as e:
        last = e.last
        if not e.retryable and not _from_the_store(last):
            raise last from None  # a bug of ours, not the store's answer: its traceback says more
        status = auth_status(last)
        if status is not None:
            head = f"{what}: {credentials.auth_failure(status, uri)}; not retried, as trying again cannot help"
        elif e.retryable:
            head = (f"{what}: the MLflow tracking store at {shown} could not be reached after "
                    f"{e.attempts} attempt{'s' if e.attempts != 1 else ''} ({retry.describe(last)})")
        else:
            head = (f"{what}: the MLflow tracking store at {shown} refused the request "
                    f"({retry.describe(last)}); not retried, as trying again cannot help")
        again = ("rerunning the pipeline once the credentials are right logs them" if status is not None else
                 "rerunning the pipeline logs them once the store is back (or set mlflow.tracking_uri / "
                 "MLFLOW_TRACKING_URI to a reachable one)")
        raise TrackingError(
            f"{head}. Nothing measured is lost: the job's results are on disk, and {again}, without "
            "training again."
        ) from last


def auth_status(exc: BaseException) -> int | None:
    """401 or 403 when the tracking server refused the credentials (an MLflow error or an
    HTTP error with that status, anywhere in the cause chain), else None."""
    seen = set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        code = None
        status = getattr(e, "get_http_status_code", None)  # mlflow.exceptions.MlflowException
        if callable(status):
            try:
                code = int(status())
            except (TypeError, ValueError):
                code = None
        response = getattr(e, "response", None)  # requests.HTTPError
        if code is None and getattr(response, "status_code", None) is not None:
            code = response.status_code
        if code in (401, 403):
            return code
        e = e.__cause__ or e.__context__
    return None


def _from_the_store(e: BaseException) -> bool:
    """An error MLflow, its HTTP or its database layer raised (not one of our own code)."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in (
        "mlflow", "requests", "urllib3", "sqlalchemy", "sqlite3")


# The README's view of the runs table: training runs only, best test accuracy first, with
# the numbers a reader looks for as columns and every run in the charts. MLflow's UI
# loads it from the experiment tag mlflow.sharedViewState.<key> (its "share view" feature).
RUNS_VIEW_KEY = "mnist-audit-runs"
RUNS_VIEW = {
    "searchFilter": f"tags.`{TAG}.job` LIKE '%seed%'",
    "orderByKey": "metrics.`test_accuracy`",
    "orderByAsc": False,
    "selectedColumns": ["metrics.`test_accuracy`", "metrics.`val_accuracy`", "metrics.`timing.total_train_seconds`",
                        "tags.`architecture`", "tags.`recipe`",
                        # each run's logged model, a link (Dataset and Source: on the run's page)
                        "attributes.`Models`"],
    "runsHiddenMode": "SHOW_ALL",
}


def runs_view_url(ui: str, experiment_id: str) -> str:
    """The UI's runs table in its machine-learning mode, with RUNS_VIEW applied."""
    return (f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?viewStateShareKey={RUNS_VIEW_KEY}&workflowType=machine_learning")


def init_tracking(uri: str, experiment: str, artifact_location: str | None, sweep: Mapping,
                  config: Mapping, attempts: int = 3) -> dict:
    """Create (or find) the store, the experiment and the sweep's run.

    ``sweep`` has an ``id`` and, optionally, a ``key`` (``config.sweep_key``): a sweep
    with the same key already in the experiment is reused, so rerunning the same
    configuration opens no second sweep.
    """
    credentials.check_uri(uri)  # never recorded with a secret in it (sweep.json, the markers, the logs)
    fast_fail_http()
    from mlflow import MlflowClient

    def go():
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            local = uri.startswith("sqlite:")
            exp_id = client.create_experiment(
                experiment,
                artifact_location=artifact_location if local else None,
                tags={"mlflow.note.content": "Audit of five TensorFlow MNIST CNN tutorials' accuracy claims."},
            )
            if local and artifact_location:
                _within_the_workspace(uri, exp_id, artifact_location)
        else:
            exp_id = exp.experiment_id
        # MLflow 3's UI opens an experiment of this kind on its runs table (not the GenAI view),
        # and RUNS_VIEW_KEY names a saved view of it (filter, order, columns: runs_view_url).
        client.set_experiment_tag(exp_id, "mlflow.experimentKind", "custom_model_development")
        client.set_experiment_tag(exp_id, f"mlflow.sharedViewState.{RUNS_VIEW_KEY}", json.dumps(RUNS_VIEW))
        key = sweep.get("key")
        if key:
            for old in client.search_runs(
                    [exp_id], filter_string=f"tags.`{TAG}.kind` = 'sweep' and tags.`{TAG}.sweep_key` = '{key}'"):
                if old.info.status == "FINISHED":
                    log.info("sweep %s: the same runs as sweep run %s; reused",
                             old.data.tags[f"{TAG}.sweep"], old.info.run_id)
                    return {"tracking_uri": uri, "experiment": experiment, "experiment_id": exp_id,
                            "parent_run_id": old.info.run_id, "sweep_id": old.data.tags[f"{TAG}.sweep"]}
                client.delete_run(old.info.run_id)  # half-made
        tags = {f"{TAG}.kind": "sweep", f"{TAG}.sweep": sweep["id"],
                **{f"{TAG}.{'sweep_key' if k == 'key' else k}": str(v) for k, v in sweep.items() if k != "id"}}
        parent = client.create_run(exp_id, run_name=f"sweep {sweep['id']}", tags=tags)
        client.log_dict(parent.info.run_id, dict(config), "config.json")
        client.set_terminated(parent.info.run_id, "FINISHED")
        return {"tracking_uri": uri, "experiment": experiment, "experiment_id": exp_id,
                "parent_run_id": parent.info.run_id, "sweep_id": sweep["id"]}

    return with_retries(go, "init_tracking", uri, attempts)


def _within_the_workspace(uri: str, experiment_id: str, artifact_location: str) -> None:
    """A local store's artifact folder inside the workspace (the current directory, where
    Snakemake runs) is kept as a path relative to it, so the workspace can be copied or
    moved: every run's artifacts are then read from the folder the reader (``mlflow ui``,
    a client) starts in. MLflow resolves a relative location when it creates the
    experiment, so the relative path is written back after, through MLflow's own store."""
    from mlflow.store.tracking.dbmodels.models import SqlExperiment
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.file_utils import local_file_uri_to_path

    path = Path(local_file_uri_to_path(artifact_location)).resolve()
    if not path.is_relative_to(Path.cwd().resolve()):
        return
    relative = path.relative_to(Path.cwd().resolve()).as_posix()
    store = SqlAlchemyStore(uri, relative)
    with store.ManagedSessionMaker() as session:
        session.query(SqlExperiment).filter(SqlExperiment.experiment_id == int(experiment_id)).update(
            {SqlExperiment.artifact_location: relative})
    log.info("experiment %s: artifacts in %s, relative to the workspace", experiment_id, relative)

