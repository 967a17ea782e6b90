"""The tiny workflow on real engines: a SLURM cluster, and an MLflow server on PostgreSQL."""

import contextlib
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, copy_workspace, mirror_arg, snakemake_cmd
from engines import MlflowServer, Postgres, SlurmCluster, free_port, missing_postgres, missing_slurm

TINY_JOBS = sorted(f"{a}/default/seed{s}" for a in ("thomas", "softmax_regression") for s in (0, 1))


def _env():
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def _runs(uri, experiment="tiny-test"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")
    return client, {r.data.tags["mnist_audit.job"]: r for r in runs}


def _check_logged(uri, work):
    with contextlib.chdir(work):  # a local store's artifact paths are relative to the workspace
        _check_logged_here(uri, work)


def _check_logged_here(uri, work):
    client, runs = _runs(uri)
    assert sorted(runs) == TINY_JOBS
    for job, run in runs.items():
        metrics = json.loads((work / "results" / "runs" / job / "metrics.json").read_text())
        assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
        history = client.get_metric_history(run.info.run_id, "epoch.val_accuracy")
        assert len(history) == metrics["n_chunks"]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "history.csv", "confusion.csv"} <= names
        assert run.data.tags["model.sha256"] and "model.keras" not in names  # stored once, in the run folder


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_slurm()), reason=str(missing_slurm()))
def test_tiny_workflow_through_slurm(tmp_path, mnist_dir):
    """The shipped SLURM profile, unchanged but for fast status checks, on a one-node
    cluster with two (fake) GPUs: every training job asks for and gets one GPU. A tracking
    server's credentials, in the Snakemake process's environment, are on no submitted
    job's command line (read back from SLURM) and nowhere in the workspace."""
    work = tmp_path / "work"
    secret = {"MLFLOW_TRACKING_USERNAME": "slurm-user", "MLFLOW_TRACKING_PASSWORD": f"pw-{secrets.token_hex(12)}",
              "MLFLOW_TRACKING_TOKEN": f"token-{secrets.token_hex(12)}"}  # the local store ignores them
    with SlurmCluster():
        t0 = time.monotonic()
        proc = subprocess.run(
            snakemake_cmd(work, "--workflow-profile", str(ROOT / "workflow" / "profiles" / "slurm"),
                          "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                          "--config", mirror_arg(mnist_dir), cores=None),
            capture_output=True, text=True, env={**_env(), **secret}, timeout=1200)
        wall = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        ids = re.findall(r"SLURM jobid (\d+)", out)
        scripts = [subprocess.run(["scontrol", "write", "batch_script", i, "-"], capture_output=True, text=True,
                                  check=True).stdout for i in ids]
    assert proc.returncode == 0, out[-5000:]
    print(f"tiny workflow through SLURM: {wall:.1f} s")
    assert scripts and all("-m snakemake" in s for s in scripts)  # what each job ran
    for value in (secret["MLFLOW_TRACKING_PASSWORD"], secret["MLFLOW_TRACKING_TOKEN"]):
        assert not any(value in s for s in scripts)
        found = [f for f in work.rglob("*") if f.is_file() and value.encode() in f.read_bytes()]
        assert found == [] and value not in out
    submits = [line for line in out.splitlines() if "SLURM jobid" in line]
    train_submits = [line for line in submits if "rule_train_model" in line]
    assert len(train_submits) == 4, out[-3000:]
    # the bookkeeping (download, split, MLflow logging, report) stays in the Snakemake process
    assert len(submits) == len(train_submits) + 1 and "rule_model_accounting" in "".join(submits), submits
    for job in TINY_JOBS:
        arch, variant, seed = job.split("/")
        d = work / "results" / "runs" / job
        m = json.loads((d / "metrics.json").read_text())
        assert m["device"]["assigned_gpus"] in ("0", "1")  # SLURM's choice, not a lease
        # one task per GPU job: the script ran once (a second task would log a second start)
        slurm_logs = list((work / "results" / "logs" / "slurm" / "rule_train_model").rglob("*.log"))
        assert slurm_logs
        log = (work / "results" / "logs" / "train_model" / arch / variant / f"{seed}.log").read_text()
        assert log.count("epoch 1/") == 1
    _check_logged(f"sqlite:///{work}/results/mlflow/mlflow.db", work)


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_postgres()), reason=str(missing_postgres()))
def test_postgres_backed_server(tiny_run, tmp_path, mnist_dir):
    """The tiny run, logged to an MLflow server on PostgreSQL: a new store is a new sweep,
    so every run and the report are logged there, and nothing is trained again."""
    work = copy_workspace(tiny_run[0], tmp_path / "work")
    trained = {d: (d / "metrics.json").stat().st_mtime for d in (work / "results" / "runs").glob("*/*/seed*")}
    with Postgres() as pg:
        server = MlflowServer(pg.uri, tmp_path / "artifacts")
        with server:
            t0 = time.monotonic()
            first = subprocess.run(
                snakemake_cmd(work, "--config", mirror_arg(mnist_dir), f"mlflow={{'tracking_uri': '{server.uri}'}}", cores=8),
                capture_output=True, text=True, env=_env(), timeout=1200)
            print(f"tiny workflow against the PostgreSQL-backed server: {time.monotonic() - t0:.1f} s")
            assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
            _check_logged(server.uri, work)
    assert {d: (d / "metrics.json").stat().st_mtime for d in trained} == trained  # nothing retrained
    # The server going down mid-run is the same code path on any backend: the sqlite-backed
    # server below checks it everywhere, without PostgreSQL.


def _server_down_mid_run(backend_uri: str, tmp_path: Path, port: int, logged_before: int,
                         archs: tuple[str, ...], mnist_dir: Path) -> None:
    """The tracking server goes down while the jobs train: the workflow fails on logging,
    every result stays on disk, and the same command with the server back logs them all
    without retraining anything."""
    work2 = tmp_path / "work2"
    cmd = snakemake_cmd(work2, "--config", mirror_arg(mnist_dir), "seeds=[5,6]", f"architectures=[{','.join(archs)}]",
                        f"mlflow={{'tracking_uri': 'http://127.0.0.1:{port}', 'retries': 1}}", cores=8)
    server2 = MlflowServer(backend_uri, tmp_path / "artifacts", port=port).start()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    sweep = work2 / "results" / "mlflow" / "sweep.json"
    deadline = time.monotonic() + 300
    while not sweep.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sweep.exists(), proc.communicate()[0][-3000:]
    server2.stop()  # mid-run: training has started, nothing has been logged yet
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode != 0, out[-3000:]
    runs = [work2 / "results" / "runs" / a / "default" / f"seed{s}" for a in archs for s in (5, 6)]
    assert all((d / "metrics.json").exists() and (d / "model.keras").exists() for d in runs)
    assert not any((d / "mlflow_run.json").exists() for d in runs)
    stamps = {d: (d / "metrics.json").stat().st_mtime for d in runs}

    with MlflowServer(backend_uri, tmp_path / "artifacts", port=port) as server:
        again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=1200)
        assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
        client, logged = _runs(server.uri)
        for d in runs:
            assert (d / "metrics.json").stat().st_mtime == stamps[d]  # not retrained
            marker = json.loads((d / "mlflow_run.json").read_text())
            run = client.get_run(marker["run_id"])
            assert run.data.metrics["test_accuracy"] == pytest.approx(
                json.loads((d / "metrics.json").read_text())["test_accuracy"])
        assert len(logged) == logged_before + len(runs)  # counted in the store: each run once


@pytest.mark.slow
def test_sqlite_backed_server_down_mid_run(tmp_path, mnist_dir):
    """An `mlflow server` over sqlite (runs everywhere, no PostgreSQL) goes down mid-run."""
    _server_down_mid_run(f"sqlite:///{tmp_path}/store.db", tmp_path, free_port(), logged_before=0,
                         archs=("softmax_regression",), mnist_dir=mnist_dir)
