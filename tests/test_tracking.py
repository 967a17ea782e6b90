"""MLflow logging: idempotent, recovers half-logged runs, fails clearly when the store is down."""

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
    sweep = tracking.init_tracking(uri, "t", (tmp_path / "art").as_uri(), {"id": "s1"}, {"a": 1})
    return dst, manifest, sweep


def test_logging_twice_is_idempotent(one_run):
    run_dir, manifest, sweep = one_run
    first = tracking.log_run(sweep, run_dir, manifest)
    again = tracking.log_run(sweep, run_dir, manifest)
    assert not first["already_logged"] and again["already_logged"]
    assert again["run_id"] == first["run_id"]


def test_half_logged_run_is_replaced(one_run):
    from mlflow import MlflowClient

    run_dir, manifest, sweep = one_run
    client = MlflowClient(sweep["tracking_uri"])
    half = client.create_run(sweep["experiment_id"], tags={"mnist_audit.job": "thomas/default/seed0",
                                                             "mnist_audit.sweep": sweep["sweep_id"]})
    res = tracking.log_run(sweep, run_dir, manifest)
    assert res["run_id"] != half.info.run_id
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(res["run_id"]).info.status == "FINISHED"


def test_unreachable_server_gives_clear_error(one_run):
    run_dir, manifest, sweep = one_run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    dead = {**sweep, "tracking_uri": "http://127.0.0.1:9"}
    with pytest.raises(tracking.TrackingError, match="could not be reached after 2 attempts.*Nothing measured is lost"):
        tracking.log_run(dead, run_dir, manifest, attempts=2)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_payload_marks_scaled_runs(one_run):
    run_dir, manifest, _ = one_run
    m = json.loads((run_dir / "metrics.json").read_text())
    p = tracking.run_payload(m, [], json.loads(manifest.read_text()))
    assert p["tags"]["recipe"] == "scaled x0.02" and p["params"]["budget_scale"] == 0.02
