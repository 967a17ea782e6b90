"""MLflow logging: a run is logged once (found by its identity), recovers half-logged runs,
replaces older results, fails clearly when the store is down."""

import hashlib
import json
import shutil

import pytest

from mnist_audit import tracking


@pytest.fixture
def one_run(tiny_run, tmp_path):
    work, _ = tiny_run
    src = work / "results" / "runs" / "thomas" / "default" / "seed0"
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    manifest = work / "results" / "data" / "mnist" / "manifest.json"
    uri = f"sqlite:///{tmp_path}/store.db"
    sweep = tracking.init_tracking(uri, "t", (tmp_path / "art").as_uri(), {"id": "s1", "key": "k1"}, {"a": 1})
    return dst, manifest, sweep


def _active(sweep, job="thomas/default/seed0"):
    from mlflow import MlflowClient

    client = MlflowClient(sweep["tracking_uri"])
    return client.search_runs([sweep["experiment_id"]], filter_string=f"tags.`mnist_audit.job` = '{job}'")


def test_logging_twice_is_idempotent(one_run):
    run_dir, manifest, sweep = one_run
    first = tracking.log_run(sweep, run_dir, manifest)
    again = tracking.log_run(sweep, run_dir, manifest)
    assert not first["already_logged"] and again["already_logged"]
    assert again["run_id"] == first["run_id"]
    assert [r.info.run_id for r in _active(sweep)] == [first["run_id"]]


def test_a_new_sweep_logs_nothing_new_and_groups_the_run(one_run):
    """Another sweep (e.g. one more seed) finds the run by its identity and only tags it."""
    run_dir, manifest, sweep = one_run
    first = tracking.log_run(sweep, run_dir, manifest)
    uri = sweep["tracking_uri"]
    sweep2 = tracking.init_tracking(uri, "t", None, {"id": "s2", "key": "k2"}, {"a": 2})
    assert sweep2["parent_run_id"] != sweep["parent_run_id"]
    again = tracking.log_run(sweep2, run_dir, manifest)
    assert again == {**first, "already_logged": True}
    (run,) = _active(sweep)
    assert run.info.run_id == first["run_id"] and run.data.tags["mnist_audit.sweeps"] == "s1 s2"
    # the same key again is the same sweep: no second sweep run
    same = tracking.init_tracking(uri, "t", None, {"id": "s3", "key": "k2"}, {"a": 2})
    assert same["sweep_id"] == "s2" and same["parent_run_id"] == sweep2["parent_run_id"]


def test_new_results_replace_the_old_run(one_run):
    """The job was retrained (a new result_id): the old run is deleted, one stays."""
    from mlflow import MlflowClient

    run_dir, manifest, sweep = one_run
    first = tracking.log_run(sweep, run_dir, manifest)
    m = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**m, "result_id": "retrained"}))
    second = tracking.log_run(sweep, run_dir, manifest)
    assert not second["already_logged"] and second["identity"] == first["identity"]
    assert [r.info.run_id for r in _active(sweep)] == [second["run_id"]]
    client = MlflowClient(sweep["tracking_uri"])
    assert client.get_run(first["run_id"]).info.lifecycle_stage == "deleted"
    # and so is its logged model: the Models tab shows the retrained one only
    models = client.search_logged_models([sweep["experiment_id"]])
    assert [lm.source_run_id for lm in models] == [second["run_id"]]
    # another budget is another run: kept beside it
    (run_dir / "metrics.json").write_text(json.dumps({**m, "budget_scale": 0.5, "result_id": "other"}))
    third = tracking.log_run(sweep, run_dir, manifest)
    assert third["identity"] != first["identity"]
    assert sorted(r.info.run_id for r in _active(sweep)) == sorted([second["run_id"], third["run_id"]])


def test_half_logged_run_is_replaced(one_run):
    from mlflow import MlflowClient

    run_dir, manifest, sweep = one_run
    client = MlflowClient(sweep["tracking_uri"])
    identity = tracking.run_identity(json.loads((run_dir / "metrics.json").read_text()),
                                     json.loads(manifest.read_text()))
    half = client.create_run(sweep["experiment_id"], tags={"mnist_audit.job": "thomas/default/seed0",
                                                             "mnist_audit.identity": identity})
    res = tracking.log_run(sweep, run_dir, manifest)
    assert res["run_id"] != half.info.run_id
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(res["run_id"]).info.status == "FINISHED"


def test_runs_logged_before_identities_are_adopted_not_duplicated(one_run):
    """An older version logged the same results once per sweep; one copy is kept."""
    from mlflow import MlflowClient

    run_dir, manifest, sweep = one_run
    client = MlflowClient(sweep["tracking_uri"])
    result_id = json.loads((run_dir / "metrics.json").read_text())["result_id"]
    old = []
    for _ in range(2):
        r = client.create_run(sweep["experiment_id"], tags={"mnist_audit.job": "thomas/default/seed0",
                                                              "mnist_audit.results": result_id})
        client.set_terminated(r.info.run_id, "FINISHED")
        old.append(r.info.run_id)
    res = tracking.log_run(sweep, run_dir, manifest)
    assert res["already_logged"] and res["run_id"] in old
    (run,) = _active(sweep)  # the other copy is deleted
    assert run.data.tags["mnist_audit.identity"] == res["identity"]


def test_the_model_is_stored_once(one_run, monkeypatch):
    """The run folder keeps model.keras; MLflow records it as an external logged model (its
    signature, path and SHA-256, the final metrics linked), not a copy of the weights."""
    from mlflow import MlflowClient
    from mlflow.models import Model

    run_dir, manifest, sweep = one_run
    res = tracking.log_run(sweep, run_dir, manifest)
    client = MlflowClient(sweep["tracking_uri"])
    run = client.get_run(res["run_id"])
    model = run_dir / "model.keras"
    assert run.data.tags["model.sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert run.data.params["model.path"] == str(model.resolve())
    assert {a.path for a in client.list_artifacts(res["run_id"])} <= {
        "metrics.json", "history.csv", "confusion.csv", "predictions.npz", "provenance.json", "system_metrics.csv"}
    assert "model.keras" not in {a.path for a in client.list_artifacts(res["run_id"])}
    (lm,) = client.search_logged_models([sweep["experiment_id"]])
    assert lm.source_run_id == res["run_id"] and str(lm.status) == "READY" and lm.name == "thomas-default-seed0"
    assert lm.tags["model.sha256"] == run.data.tags["model.sha256"] and lm.tags["mlflow.external"] == "true"
    assert {m.key: m.value for m in lm.metrics}["test_accuracy"] == run.data.metrics["test_accuracy"]
    assert [a.path for a in client.list_logged_model_artifacts(lm.model_id)] == ["MLmodel"]  # no weights
    spec = Model.load(_logged_model_file(client, lm, run_dir.parent))
    sig = spec.signature.to_dict()
    assert json.loads(sig["inputs"]) == [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28, 1]},
                                          "name": "image"}]
    assert json.loads(sig["outputs"])[0]["tensor-spec"]["shape"] == [-1, 10]
    assert spec.metadata["sha256"] == lm.tags["model.sha256"]
    # MLflow's own loader loads it (the weights from the run folder, SHA-256 checked) and
    # predicts what the run recorded
    import mlflow.pyfunc
    import numpy as np

    from mnist_audit import data, runs

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["tracking_uri"])
    loaded = mlflow.pyfunc.load_model(f"models:/{lm.model_id}")
    m = json.loads((run_dir / "metrics.json").read_text())
    x = data.training_arrays(manifest.parent / "mnist.npz", m["train_subset"], m["eval_subset"])["x_test"][:50]
    pred = np.asarray(loaded.predict(x)).argmax(axis=1)
    assert (pred == runs.read_predictions(run_dir / "predictions.npz")["test_pred"][:50]).all()
    # the run lists the model among its outputs (the run page's "Logged models")
    assert [o.model_id for o in client.get_run(res["run_id"]).outputs.model_outputs] == [lm.model_id]


def test_system_metrics_sampled_while_training_reach_the_runs_system_tab(one_run):
    """The job samples CPU and memory while it trains (system_metrics.csv, MLflow's names);
    the run gets them as system/<name> series, one step per sample, in the job's time."""
    from mlflow import MlflowClient

    from mnist_audit import sysmetrics

    run_dir, manifest, sweep = one_run
    table = sysmetrics.read(run_dir)
    assert list(table.columns) == sysmetrics.COLUMNS and len(table) >= 2  # a sample at each end at least
    assert table["wall_seconds"].is_monotonic_increasing and (table["process_memory_rss_megabytes"] > 50).all()
    assert (table["system_memory_usage_percentage"].between(0, 100)).all()
    res = tracking.log_run(sweep, run_dir, manifest)
    client = MlflowClient(sweep["tracking_uri"])
    run = client.get_run(res["run_id"])
    assert {f"system/{c}" for c in sysmetrics.COLUMNS[1:]} <= set(run.data.metrics)
    series = client.get_metric_history(res["run_id"], "system/process_memory_rss_megabytes")
    assert [m.step for m in series] == list(range(len(table)))
    # to a tenth of a megabyte or a percent, as a person reads it (the file keeps every digit)
    assert [m.value for m in series] == [round(v, 1) for v in table["process_memory_rss_megabytes"]]
    timing = {k: v for k, v in run.data.metrics.items() if k.startswith("timing.")}
    assert timing and all(v == round(v, 3) for v in timing.values()), timing
    assert run.info.start_time <= series[0].timestamp <= series[-1].timestamp <= run.info.end_time + 1000


def _logged_model_file(client, lm, where):
    from mlflow.artifacts import download_artifacts

    return download_artifacts(artifact_uri=f"{lm.artifact_location}/MLmodel", dst_path=str(where / "dl"))


def test_unreachable_server_gives_clear_error(one_run):
    run_dir, manifest, sweep = one_run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    dead = {**sweep, "tracking_uri": "http://127.0.0.1:9"}
    with pytest.raises(tracking.TrackingError, match="could not be reached after 2 attempts.*Nothing measured is lost"):
        tracking.log_run(dead, run_dir, manifest, attempts=2)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_mlflow_errors_follow_the_one_retry_policy():
    """A 5xx is retried, a 4xx is not (the same policy as the downloader's)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

    for code, expect_calls, expect in ((INTERNAL_ERROR, 3, "could not be reached after 3 attempts"),
                                       (INVALID_PARAMETER_VALUE, 1, "refused the request.*not retried")):
        calls = []

        def fail(code=code):
            calls.append(1)
            raise MlflowException("no", error_code=code)

        with pytest.raises(tracking.TrackingError, match=expect):
            tracking.with_retries(fail, "test", "sqlite:///x.db", attempts=3, backoff_s=0.01)
        assert len(calls) == expect_calls
    calls = []

    def bug():
        calls.append(1)
        return {}["missing"]

    with pytest.raises(KeyError):  # our own bug: raised as it is, not blamed on the store
        tracking.with_retries(bug, "test", "sqlite:///x.db", attempts=3, backoff_s=0.01)
    assert len(calls) == 1


def test_payload_marks_scaled_runs(one_run):
    run_dir, manifest, _ = one_run
    m = json.loads((run_dir / "metrics.json").read_text())
    p = tracking.run_payload(m, [], json.loads(manifest.read_text()))
    assert p["tags"]["recipe"] == "scaled x0.02" and p["params"]["budget_scale"] == 0.02
    # what produced it, not how fast or from which mirror
    faster = {**m, "speed": {}, "device": {"threads": 8}, "timing": {}}
    assert tracking.run_identity(faster, json.loads(manifest.read_text())) == p["tags"]["mnist_audit.identity"]
