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
with a clear message, the measured results stay on disk, and a rerun logs them.
The model is stored once, in the run folder. MLflow gets a *logged model* for it (the
Models tab, linked to its run as an output, with the final metrics attached): an
external model in MLflow 3's sense, whose MLmodel file carries the input/output
signature, the weights' path and SHA-256 (``model.path``, ``model.sha256``), not a
second copy of the weights.

The report is logged as one more run (``log_report``), a child of the sweep's run, with
the report's tables and plots as its artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import retry, runs
from .splits import recipe_split

log = logging.getLogger(__name__)

TAG = "mnist_audit"  # tag prefix


class TrackingError(RuntimeError):
    pass


def _fast_fail_http() -> None:
    """MLflow's own HTTP retries wait minutes; we retry (and explain) ourselves."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def with_retries(fn: Callable, what: str, uri: str, attempts: int = 3, backoff_s: float = 2.0):
    """``fn()`` under the retry policy of ``mnist_audit.retry``: a store that is down or
    answers 5xx is tried ``attempts`` times in all; an error that cannot pass (a 4xx, a
    bad value) fails at once. The store's errors end in a TrackingError that says nothing
    measured is lost; an error of our own code is raised as it is, after one try."""
    try:
        return retry.call(fn, retry.Policy(attempts=attempts, backoff_s=backoff_s), what)
    except retry.RetryError as e:
        last = e.last
        if not e.retryable and not _from_the_store(last):
            raise last from None  # a bug of ours, not the store's answer: its traceback says more
        if e.retryable:
            head = (f"{what}: the MLflow tracking store at {uri} could not be reached after "
                    f"{e.attempts} attempt{'s' if e.attempts != 1 else ''} ({retry.describe(last)})")
        else:
            head = (f"{what}: the MLflow tracking store at {uri} refused the request "
                    f"({retry.describe(last)}); not retried, as trying again cannot help")
        raise TrackingError(
            f"{head}. Nothing measured is lost: the job's results are on disk, and rerunning "
            "the pipeline logs them once the store is back (or set mlflow.tracking_uri / "
            "MLFLOW_TRACKING_URI to a reachable one)."
        ) from last


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
    _fast_fail_http()
    from mlflow import MlflowClient

    def go():
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            exp_id = client.create_experiment(
                experiment,
                artifact_location=artifact_location if uri.startswith("sqlite:") else None,
                tags={"mlflow.note.content": "Audit of five TensorFlow MNIST CNN tutorials' accuracy claims."},
            )
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


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


IDENTITY_KEYS = ("arch", "variant", "seed", "recipe", "overrides", "budget_scale", "train_subset",
                 "eval_subset", "total_steps", "n_train", "n_val", "n_test", "backend")


def run_identity(metrics: Mapping, manifest: Mapping | None = None) -> str:
    """What produced a run, as a SHA-256: IDENTITY_KEYS of its metrics and the data's payload
    checksums (the split file's own hash is left out: it is a zip with time stamps, while
    the payloads fix its content). Speed levers, threads, the device and where the data
    was downloaded from change no number and are not in it."""
    prov = metrics.get("provenance") or {}
    data = (manifest or {}).get("payload_sha256") or prov.get("data_payload_sha256") or {}
    ident = {k: metrics.get(k) for k in IDENTITY_KEYS}
    ident["data_payload_sha256"] = dict(sorted(data.items()))
    platform = runs.RunRecord(metrics).platform
    if platform != "default":  # a default run's identity stays what it was before platforms
        ident["platform"] = platform
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def description(metrics: Mapping) -> str:
    """The run's one-line result: "thomas s0: 99.05% test, 8.1 min; claim 99% (bound 98.5%)"
    ("thomas s0 [avx2]: ..." on a platform other than the default)."""
    label = runs.label(metrics["arch"], metrics["variant"])
    platform = runs.RunRecord(metrics).platform
    where = "" if platform == "default" else f" [{platform}]"
    claim = metrics.get("claim") or {}
    secs = float((metrics.get("timing") or {}).get("total_train_seconds") or 0)
    took = f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.1f} s"
    said = (f"claim {100 * claim['value']:g}% (bound {100 * claim['lower']:g}%)" if claim.get("value") is not None
            else "no claim")
    kind = "" if metrics.get("published_recipe") else " [not the published recipe]"
    return f"{label} s{metrics['seed']}{where}: {100 * metrics['test_accuracy']:.2f}% test, {took}; {said}{kind}"


def provenance_record(metrics: Mapping, manifest: Mapping | None) -> dict:
    """What produced the run (one JSON artifact): code, packages, machine, data checksums."""
    prov = dict(metrics.get("provenance") or {})
    if manifest:
        prov["data_payload_sha256"] = manifest.get("payload_sha256", prov.get("data_payload_sha256"))
        prov["data_split_sha256"] = manifest.get("split_sha256", prov.get("data_split_sha256"))
    return {"provenance": prov, "device": metrics.get("device") or {}, "config": metrics.get("config") or {}}


DATA_SPLITS = (("train", "training", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "images 5,000-59,999 of the training file"),
               ("validation", "validation", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "images 0-4,999 of the training file"),
               ("test", "test", ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"), "the t10k files"))


def dataset_inputs(metrics: Mapping, manifest: Mapping | None) -> list:
    """MNIST as MLflow dataset inputs, one per split: the digest is from the payload
    SHA-256s (and the subset, if any), the source names the files and their checksums."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sums = (manifest or {}).get("payload_sha256") or (metrics.get("provenance") or {}).get("data_payload_sha256") or {}
    recipe = metrics.get("recipe") or {}
    rows = _split_rows(recipe)
    out = []
    for name, context, files, which in DATA_SPLITS:
        if name in rows:  # another data split than TF1's read_data_sets: its own rows
            which = rows[name]
            if which is None:
                continue  # no validation set
        subset = metrics.get("train_subset") if name == "train" else metrics.get("eval_subset")
        part = {"split": name, "subset": subset}
        if "data_split" in recipe:
            part["data_split"] = recipe["data_split"]
        key = json.dumps({f: sums.get(f, "") for f in files} | part, sort_keys=True)
        source = {"files": {f: sums.get(f, "") for f in files}, "rows": which, "subset": subset}
        out.append(DatasetInput(
            Dataset(name=f"mnist-{name}" + (f"-first{subset}" if subset else ""),
                    digest=hashlib.sha256(key.encode()).hexdigest()[:32], source_type="local",
                    source=json.dumps(source, sort_keys=True)),
            tags=[InputTag("mlflow.data.context", context)]))
    return out


def _split_rows(recipe: Mapping) -> dict:
    """Which training-file images a recipe with its own data split trains and validates
    on (``{}`` for TF1's read_data_sets: DATA_SPLITS says it); None: no such set."""
    if "data_split" not in recipe:
        return {}
    split = recipe_split(recipe)
    n_train, n_val = split.sizes()
    first_val = 0 if split.at == "start" else n_train
    first_train = n_val if split.at == "start" else 0
    return {"train": f"images {first_train:,}-{first_train + n_train - 1:,} of the training file",
            "validation": f"images {first_val:,}-{first_val + n_val - 1:,} of the training file" if n_val else None}


_DATASETS_LOCK = threading.Lock()


def _dataset_collision(e: BaseException) -> bool:
    return any(k in str(e) for k in ("UNIQUE", "IntegrityError", "duplicate key"))


def _log_datasets(client, run_id: str, datasets: list, attempts: int = 3) -> None:
    """``log_inputs``, safe when runs log at once: the store creates a dataset shared by
    runs on first use, and two first uses at once collide on its unique key (sqlite:
    IntegrityError). Threads of one process take turns; a collision with another
    process is tried again (the one retry policy), and then finds the dataset made."""

    def log_inputs():
        with _DATASETS_LOCK:
            client.log_inputs(run_id, datasets=datasets)

    try:
        retry.call(log_inputs, retry.Policy(attempts=attempts, backoff_s=0.2), "log the datasets",
                   judge=_dataset_collision)
    except retry.RetryError as e:
        raise e.last from None


def run_payload(metrics: Mapping, history_rows: list[Mapping], manifest: Mapping | None) -> dict:
    """Params, tags and metrics for one run, from the job's local outputs."""
    arch, variant, seed = metrics["arch"], metrics["variant"], metrics["seed"]
    record = runs.RunRecord(metrics)
    platform = record.platform
    on = "" if platform == "default" else f" [{platform}]"
    recipe_kind = record.recipe_kind + (f" x{metrics['budget_scale']:g}" if record.scaled else "")
    device = metrics.get("device") or {}
    params = {
        "arch": arch, "variant": variant, "seed": seed,
        "budget_scale": metrics["budget_scale"], "train_subset": metrics["train_subset"],
        "eval_subset": metrics["eval_subset"], "total_steps": metrics["total_steps"],
        "published_steps": metrics["published_steps"], "steps_per_epoch": metrics["steps_per_epoch"],
        **{f"recipe.{k}": v for k, v in _flatten(metrics["recipe"]).items()},
        **{f"override.{k}": v for k, v in _flatten(metrics["overrides"]).items()},
        # how it was trained (none changes the numbers; they explain the timings)
        **{f"speed.{k}": v for k, v in _flatten(metrics.get("speed") or {}).items()},
        "threads": device.get("threads"),
        "backend": metrics["backend"],
        "baseline": str(metrics["baseline"]).lower(),
        "cpu_kind": device.get("cpu_kind") or ((metrics.get("provenance") or {}).get("cpu") or {}).get("kind"),
        "platform": platform,
        **{f"platform.{k}": v for k, v in _flatten((metrics.get("platform") or {}).get("settings") or {}).items()},
    }
    prov = metrics.get("provenance") or {}
    # A few tags a reader filters and groups by; versions and checksums are in the
    # run's provenance.json artifact, the data in its dataset inputs.
    tags = {
        "architecture": arch, "variant": variant, "seed": str(seed), "recipe": recipe_kind, "platform": platform,
        "device": device.get("name", "unknown"),
        "mlflow.source.git.commit": prov.get("git_commit", "unknown"),
        # the UI's Source: what trained it (the Snakemake rule's script; the CLI runs the same code)
        "mlflow.source.name": SOURCE_NAME, "mlflow.source.type": "JOB",
        "mlflow.note.content": description(metrics),
        f"{TAG}.job": ("" if platform == "default" else f"platforms/{platform}/") + f"{arch}/{variant}/seed{seed}",
        f"{TAG}.identity": run_identity(metrics, manifest),
    }
    final = {
        "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
        "val_accuracy": metrics["val_accuracy"], "val_loss": metrics["val_loss"],
        "best_epoch_test_accuracy_optimistic": metrics["best_epoch_test_accuracy_optimistic"],
        **{f"timing.{k}": v for k, v in metrics["timing"].items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }
    per_epoch = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                 "train_seconds", "wall_seconds"]
    series = [(f"epoch.{k}", float(r[k]), int(r["epoch"])) for r in history_rows for k in per_epoch
              if r[k] is not None and math.isfinite(float(r[k]))]  # no validation set: no val_* series
    return {"params": params, "tags": tags, "final": final, "series": series,
            "run_name": f"{runs.label(arch, variant)} s{seed}{on}"}


SOURCE_NAME = "workflow/scripts/train_model.py"
MODEL_IS_EXTERNAL = "mlflow.external"  # MLflow 3's tag for a model whose weights live elsewhere


def model_signature():
    """What every model takes and gives: a batch of 28x28x1 float32 images in [0, 1],
    and 10 class scores per image (argmax = the predicted digit)."""
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from .data import IMAGE_SHAPE, NUM_CLASSES

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, *IMAGE_SHAPE), "image")]),
                          outputs=Schema([TensorSpec(np.dtype("float32"), (-1, NUM_CLASSES), "scores")]))


def _log_model(client, experiment_id: str, rid: str, payload: Mapping, model: Path, sha256: str, step: int,
               final_ms: list) -> str:
    """Register the run folder's model.keras as an external MLflow logged model: its MLmodel
    (signature, path, SHA-256, a pyfunc loader) is the only artifact; the final metrics and
    the run link to it."""
    import tempfile

    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    tags = payload["tags"]
    name = f"{tags['architecture']}-{tags['variant']}-seed{tags['seed']}"
    lm = client.create_logged_model(
        experiment_id, name=name, source_run_id=rid, model_type="keras",
        tags={MODEL_IS_EXTERNAL: "true", "model.sha256": sha256, "model.path": str(model.resolve()),
              "architecture": tags["architecture"], "variant": tags["variant"], "recipe": tags["recipe"],
              f"{TAG}.identity": tags[f"{TAG}.identity"]},
        params={k: str(v) for k, v in payload["params"].items() if k.startswith("recipe.")})
    spec = Model(artifact_path=lm.artifact_location, model_uuid=lm.model_id, model_id=lm.model_id, run_id=rid,
                 signature=model_signature(),
                 metadata={MODEL_IS_EXTERNAL: True, "format": "keras", "path": str(model.resolve()),
                           "sha256": sha256})
    # mlflow.pyfunc.load_model works: the loader reads path and SHA-256 above (mlflow_model)
    add_to_model(spec, loader_module="mnist_audit.mlflow_model")
    with tempfile.TemporaryDirectory() as tmp:
        spec.save(str(Path(tmp) / "MLmodel"))
        client.log_model_artifacts(lm.model_id, tmp)
    client.log_batch(rid, metrics=[Metric(m.key, m.value, m.timestamp, m.step, model_id=lm.model_id)
                                   for m in final_ms if m.key in ("test_accuracy", "test_loss", "val_accuracy")])
    client.log_outputs(rid, [LoggedModelOutput(lm.model_id, step)])
    client.finalize_logged_model(lm.model_id, "READY")
    return lm.model_id


def _delete_logged_models(client, experiment_id: str, run_id: str) -> None:
    """The logged models whose source is ``run_id`` (a run being deleted)."""
    for lm in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'"):
        client.delete_logged_model(lm.model_id)


def system_metrics(run_dir: Path, t0_ms: int) -> list:
    """The job's sampled system metrics as MLflow's ``system/<name>`` metrics (step = sample)."""
    from mlflow.entities import Metric

    from . import sysmetrics

    table = sysmetrics.read(run_dir)
    if table is None:
        return []
    out = []
    for i, row in enumerate(table.to_dict("records")):
        ts = t0_ms + int(1000 * row["wall_seconds"])
        out += [Metric(f"system/{k}", float(v), ts, i) for k, v in row.items()
                if k != "wall_seconds" and v == v]
    return out


def _add_sweep(client, run, sweep_id: str) -> str:
    """Add ``sweep_id`` to the run's ``mnist_audit.sweeps`` tag (space-separated, oldest first)."""
    sweeps = run.data.tags.get(f"{TAG}.sweeps", "").split()
    if sweep_id not in sweeps:
        sweeps.append(sweep_id)
        while len(" ".join(sweeps)) > 7000:  # MLflow caps tag values (8,000 characters): oldest out
            sweeps.pop(0)
        client.set_tag(run.info.run_id, f"{TAG}.sweeps", " ".join(sweeps))
    return " ".join(sweeps)


def log_run(sweep: Mapping, run_dir: Path, manifest_path: Path | None, attempts: int = 3) -> dict:
    """Log one finished training job (its directory of outputs) as one MLflow run, once.

    The run is found by its identity (``run_identity``) in the whole experiment: the
    same results already logged are only added to this sweep; other results of the same
    identity (the job was retrained) and half-logged runs are deleted, then the run is
    logged. Returns the run id and whether it was already logged.
    """
    _fast_fail_http()
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from .files import sha256_file

    run_dir = Path(run_dir)
    metrics = runs.RunRecord.read(run_dir).metrics
    history = pd.read_csv(run_dir / "history.csv").to_dict("records")
    manifest = json.loads(Path(manifest_path).read_text()) if manifest_path else None
    payload = run_payload(metrics, history, manifest)
    uri = sweep["tracking_uri"]
    digest = metrics.get("result_id") or str(os.path.getmtime(run_dir / "metrics.json"))
    job = payload["tags"][f"{TAG}.job"]
    identity = payload["tags"][f"{TAG}.identity"]
    model = run_dir / "model.keras"
    model_tags = {"model.sha256": sha256_file(model)} if model.exists() else {}
    if model.exists():
        payload["params"]["model.path"] = str(model.resolve())

    def go():
        client = MlflowClient(tracking_uri=uri)
        exp = [sweep["experiment_id"]]
        found = client.search_runs(exp, filter_string=f"tags.`{TAG}.identity` = '{identity}'")
        # Runs logged before identities existed: the same results under the same job.
        found += [r for r in client.search_runs(
            exp, filter_string=f"tags.`{TAG}.results` = '{digest}' and tags.`{TAG}.job` = '{job}'")
            if f"{TAG}.identity" not in r.data.tags]
        keep = next((r for r in found if r.info.status == "FINISHED"
                     and r.data.tags.get(f"{TAG}.results") == digest), None)

        def delete_others():
            for run in found:
                if run is not keep:
                    why = ("half-logged" if run.info.status != "FINISHED" else
                           "the same results, logged twice" if run.data.tags.get(f"{TAG}.results") == digest
                           else "older results of the same run, replaced")
                    log.info("%s: deleting MLflow run %s (%s)", job, run.info.run_id, why)
                    _delete_logged_models(client, sweep["experiment_id"], run.info.run_id)
                    client.delete_run(run.info.run_id)

        if keep is not None:
            delete_others()
            if f"{TAG}.identity" not in keep.data.tags:
                client.set_tag(keep.info.run_id, f"{TAG}.identity", identity)
            _add_sweep(client, keep, sweep["sweep_id"])
            log.info("%s already logged as run %s", job, keep.info.run_id)
            return {"run_id": keep.info.run_id, "already_logged": True}
        t_end_ms = int(os.path.getmtime(run_dir / "metrics.json") * 1000)
        wall = metrics["timing"]["wall_seconds"]
        t0_ms = t_end_ms - int(wall * 1000)
        run = client.create_run(
            sweep["experiment_id"], start_time=t0_ms, run_name=payload["run_name"],
            # Grouped by tags, not nested under the sweep run: MLflow's UI folds child runs
            # away, and a flat table of "thomas s0", "thomas s1", ... is what people read.
            tags={**payload["tags"], **model_tags, f"{TAG}.sweeps": sweep["sweep_id"]},
        )
        rid = run.info.run_id
        try:
            params = [Param(k, str(v)) for k, v in payload["params"].items()]
            wall_at = {int(r["epoch"]): float(r["wall_seconds"]) for r in history}
            ms = [Metric(k, v, t0_ms + int(1000 * wall_at[step]), step) for k, v, step in payload["series"]]
            ms += system_metrics(run_dir, t0_ms)
            final_step = int(history[-1]["epoch"])
            ms += [Metric(k, float(v), t_end_ms, final_step) for k, v in payload["final"].items()
                   if v is not None and math.isfinite(float(v))]
            for i in range(0, len(params), 100):
                client.log_batch(rid, params=params[i : i + 100])
            for i in range(0, len(ms), 1000):
                client.log_batch(rid, metrics=ms[i : i + 1000])
            # The small records; the model stays in the run folder (its path a param, its SHA-256 a tag).
            for name in ("metrics.json", "history.csv", "confusion.csv", "predictions.npz", "system_metrics.csv"):
                if (run_dir / name).exists():
                    client.log_artifact(rid, str(run_dir / name))
            client.log_dict(rid, provenance_record(metrics, manifest), "provenance.json")
            _log_datasets(client, rid, dataset_inputs(metrics, manifest))
            if model.exists():
                _log_model(client, sweep["experiment_id"], rid, payload, model, model_tags["model.sha256"],
                           final_step, [m for m in ms if m.step == final_step and m.key in payload["final"]])
            client.log_batch(rid, tags=[RunTag(f"{TAG}.results", digest)])
            client.set_terminated(rid, "FINISHED", end_time=t_end_ms)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: a rerun deletes it otherwise
                _delete_logged_models(client, sweep["experiment_id"], rid)
                client.delete_run(rid)
            raise
        keep = run
        delete_others()  # only now: a failure above never loses the run logged before
        return {"run_id": rid, "already_logged": False}

    result = with_retries(go, f"log_run {job}", uri, attempts)
    return {**result, "job": job, "identity": identity, "experiment_id": sweep["experiment_id"],
            "tracking_uri": uri}


@contextlib.contextmanager
def _thread_log(path: str | Path):
    """Copy this thread's ``mnist_audit`` log records (and any error) to ``path``.

    ``log_run_job`` runs in a thread of the Snakemake process beside other jobs, so
    the handler keeps only the records of the thread that opened it.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    me = threading.get_ident()
    handler.addFilter(lambda record: record.thread == me)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mnist_audit")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    except Exception as e:
        from .job import error_text

        # The reason goes to the log once (Snakemake shows a failed job's log); what
        # Snakemake prints of the exception itself only points there.
        log.error("%s", error_text(e))
        raise TrackingError(f"failed; the reason is in {path}") from None
    finally:
        root.removeHandler(handler)
        handler.close()


def log_run_job(sweep_path: str | Path, run_dir: str | Path, manifest_path: str | Path | None,
                marker_path: str | Path, log_path: str | Path, attempts: int = 3) -> dict:
    """The ``log_run`` rule: log one job, then write its marker (temp, then rename).

    It runs inside the Snakemake process (a ``run:`` rule with ``force-use-threads``
    in the profiles), so MLflow is imported once per workflow instead of once per
    job: logging a run then costs only its API calls.
    """
    from .files import atomic_write_json

    with _thread_log(log_path):
        t = time.perf_counter()
        sweep = json.loads(Path(sweep_path).read_text())
        result = log_run(sweep, Path(run_dir), manifest_path, attempts=attempts)
        result["log_seconds"] = time.perf_counter() - t
        log.info("logged %s as run %s in %.2f s", result["job"], result["run_id"], result["log_seconds"])
        atomic_write_json(marker_path, result)
    return result


# ---------------------------------------------------------------------------
# The report's run: one per sweep, with the report's tables and plots as artifacts
# ---------------------------------------------------------------------------


def _metric_key(arch: str, variant: str) -> str:
    return arch if variant == "default" else f"{arch}.{variant}"


def log_report(sweep: Mapping, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
               runs_csv: str | Path, run_markers: Sequence[str | Path] = (), attempts: int = 3) -> dict:
    """Log the report (report.smk's log_report rule) as ONE MLflow run, a child of the sweep's parent run.

    ``artifacts`` maps an artifact folder ("" for the root) to local files. An earlier
    report run of the same sweep (stale, or half-logged by a failed attempt) is deleted.
    """
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from .audit import CONFIDENCE
    from .tables import AUDIT_MD, SCALED_BANNER, is_scaled, isnan, md, read_runs

    _fast_fail_http()
    tag = TAG
    audit = pd.read_csv(audit_csv)
    runs = read_runs(runs_csv)
    markers = [json.loads(Path(p).read_text()) for p in run_markers]
    uri, exp, sweep_id, parent = (sweep["tracking_uri"], sweep["experiment_id"], sweep["sweep_id"],
                                  sweep["parent_run_id"])
    scaled = is_scaled(runs)
    # The run's description in the MLflow UI: the banner and the audit table (tag values are capped).
    note_text = ((f"**{SCALED_BANNER}.**\n\n" if scaled else "") + md(audit, AUDIT_MD))[:7000]

    def go():
        client = MlflowClient(tracking_uri=uri)
        old = client.search_runs(
            [exp], filter_string=f"tags.`{tag}.kind` = 'report' and tags.`{tag}.sweep` = '{sweep_id}'")
        for r in old:
            log.info("deleting the earlier report run %s of sweep %s", r.info.run_id, sweep_id)
            client.delete_run(r.info.run_id)
        run = client.create_run(exp, run_name=f"report {sweep_id}", tags={
            "mlflow.parentRunId": parent, f"{tag}.kind": "report", f"{tag}.sweep": sweep_id,
            f"{tag}.sweep_run": parent, "scaled": str(scaled).lower(),
            "mlflow.note.content": note_text,
        })
        rid = run.info.run_id
        params = [Param("n_runs", str(len(runs))), Param("confidence", str(CONFIDENCE)),
                  Param("seeds", " ".join(str(s) for s in sorted(set(runs["seed"])))),
                  Param("budget_scale", "/".join(f"{s:g}" for s in sorted(set(runs["budget_scale"]))))]
        now = int(time.time() * 1000)
        metrics, tags = [], [RunTag("git_commit", ", ".join(sorted(set(runs["git_commit"].astype(str)))))]
        for a in audit.itertuples(index=False):
            key = _metric_key(a.architecture, a.variant)
            for name, value in (("mean_test_accuracy", a.test_mean_pct), ("sd_test_accuracy", a.test_sd_pct),
                                ("ci_low_test_accuracy", a.test_ci_low_pct),
                                ("ci_high_test_accuracy", a.test_ci_high_pct),
                                ("mean_authors_measure", a.mean_pct), ("ci_low_authors_measure", a.ci_low_pct),
                                ("ci_high_authors_measure", a.ci_high_pct)):
                if not isnan(value):
                    metrics.append(Metric(f"{name}.{key}", float(value) / 100, now, 0))
            metrics.append(Metric(f"n_seeds.{key}", float(a.n_seeds), now, 0))
            tags.append(RunTag(f"verdict.{key}", str(a.verdict)))
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        n = 0
        for folder, paths in artifacts.items():
            for p in paths:
                client.log_artifact(rid, str(p), folder or None)
                n += 1
        client.log_dict(rid, {"training_runs": markers}, "training_runs.json")
        client.set_terminated(rid, "FINISHED")
        return {"run_id": rid, "artifacts": n + 1}

    result = with_retries(go, "log_report", uri, attempts)
    return {**result, "experiment_id": exp, "parent_run_id": parent, "sweep_id": sweep_id, "tracking_uri": uri}


def write_log_report(sweep_path: str | Path, artifacts: Mapping[str, Sequence[str | Path]], audit_csv: str | Path,
                     runs_csv: str | Path, run_markers: Sequence[str | Path], out: str | Path,
                     attempts: int = 3) -> dict:
    from .files import atomic_write_json

    sweep = json.loads(Path(sweep_path).read_text())
    result = log_report(sweep, artifacts, audit_csv, runs_csv, run_markers, attempts)
    atomic_write_json(Path(out), result)
    return result
