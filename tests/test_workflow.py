"""The real Snakemake workflow, end to end on the tiny configuration, with a real MLflow store."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, mirror_arg, needs_mnist, snakemake_cmd
from engines import free_port

TINY_RUNS = [(a, s) for a in ("thomas", "softmax_regression") for s in (0, 1)]
RUN_FILES = ("metrics.json", "history.csv", "model.keras", "confusion.csv", "predictions.npz", "mlflow_run.json")


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _client(work):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{work}/results/mlflow/mlflow.db")


def test_tiny_run_outputs(tiny_run, mnist_dir):
    work, proc = tiny_run
    for arch, seed in TINY_RUNS:
        d = work / "results" / "runs" / arch / "default" / f"seed{seed}"
        for name in RUN_FILES:
            assert (d / name).stat().st_size > 0, d / name
        assert (work / "results" / "benchmarks" / "train_model" / arch / "default" / f"seed{seed}.tsv").exists()
        assert (work / "results" / "logs" / "train_model" / arch / "default" / f"seed{seed}.log").exists()
        m = json.loads((d / "metrics.json").read_text())
        assert m["n_test"] == 500 and m["budget_scale"] == 0.02 and m["published_recipe"] is False
        assert m["config"]["seeds"] == [0, 1]  # the resolved config travels with the run
        assert not (d / "checkpoint").exists()
    manifest = json.loads((work / "results" / "data" / "mnist" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 55000, "val": 5000, "test": 10000}
    assert all(s["mirror"] == str(mnist_dir) for s in manifest["sources"].values())
    assert "Shell command: None" not in proc.stdout + proc.stderr  # no shell rules, no noise


def _planned(out: str) -> dict:
    """The "Job stats" table Snakemake prints: rule -> jobs planned."""
    stats = out[out.index("Job stats:"):] if "Job stats:" in out else ""
    table = stats.split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_mirror_or_download_change_reruns_nothing_and_keeps_the_data(tiny_run, mnist_dir):
    """The same folder written as a file:// URL, other download and GPU-sharing settings:
    nothing to do.
    Offline, with a changed mirror that cannot be reached, the verified files stay, even
    when the download is forced to rerun, and nothing downstream reruns."""
    work, _ = tiny_run
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    raw = work / "results" / "data" / "mnist" / "raw"
    def state():  # inode and content: a file deleted, or rewritten by a rename, would show
        return {p.name: (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest()) for p in raw.iterdir()}

    stamps = state()
    assert len(stamps) == 8
    moved = [f"mirrors=[{mnist_dir.as_uri() + '/'!r}]", "download={'timeout_s': 5, 'retries': 0}",
             "gpu={'jobs_per_gpu': 1, 'memory_growth': false}"]
    dry = subprocess.run(snakemake_cmd(work, "-n", "--config", *moved), capture_output=True, text=True, env=env,
                         timeout=300)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    assert _planned(dry.stdout + dry.stderr) == {}

    dead = [f"mirrors=['http://127.0.0.1:{free_port()}/']", "download={'timeout_s': 2, 'retries': 0}"]
    offline = subprocess.run(snakemake_cmd(work, "--config", *dead), capture_output=True, text=True, env=env,
                             timeout=300)
    assert offline.returncode == 0 and "Nothing to be done" in offline.stdout + offline.stderr
    forced = subprocess.run(snakemake_cmd(work, "--forcerun", "download_mnist", "--config", *dead),
                            capture_output=True, text=True, env=env, timeout=300)
    out = forced.stdout + forced.stderr
    assert forced.returncode == 0, out[-3000:]
    assert _planned(out).get("download_mnist") == 4 and not {"prepare_mnist", "train_model"} & set(_planned(out))
    assert state() == stamps  # never deleted nor rewritten (Snakemake only touches a job's outputs)
    log = (work / "results" / "logs" / "download_mnist" / "t10k-labels-idx1-ubyte.gz.log").read_text()
    assert "already in place and verified" in log and "127.0.0.1" not in log  # no mirror was asked


@needs_mnist
@pytest.mark.slow
def test_more_seeds_log_each_run_once(tmp_path, mnist_dir):
    """seeds [0], then [0, 1]: the second invocation trains and logs only the new seed;
    MLflow holds one active run per architecture, variant and seed; both sweeps list s0."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    archs = "architectures=[softmax_regression]"
    for seeds in ("[0]", "[0,1]"):
        proc = subprocess.run(snakemake_cmd(tmp_path, "--config", archs, mirror_arg(mnist_dir),
                                            f"seeds={seeds}"), capture_output=True,
                              text=True, env=env, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert _planned(proc.stdout + proc.stderr)["train_model"] == 1  # seed 1 only
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("tiny-test").experiment_id
    runs = client.search_runs([exp], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")
    jobs = sorted(r.data.tags["mnist_audit.job"] for r in runs)
    assert jobs == [f"softmax_regression/default/seed{s}" for s in (0, 1)]
    sweeps = client.search_runs([exp], filter_string="tags.`mnist_audit.kind` = 'sweep'", order_by=["start_time ASC"])
    assert len(sweeps) == 2
    first, second = (r.data.tags["mnist_audit.sweep"] for r in sweeps)
    for r in runs:
        expected = [first, second] if r.data.tags["seed"] == "0" else [second]
        assert r.data.tags["mnist_audit.sweeps"].split() == expected, r.data.tags["mnist_audit.job"]
    # a mirror spelled another way and other download settings: still nothing to do
    dry = subprocess.run(snakemake_cmd(tmp_path, "-n", "--config", archs, "seeds=[0,1]",
                                       f"mirrors=[{mnist_dir.as_uri()!r}]", "download={'retries': 5}"),
                         capture_output=True, text=True, env=env, timeout=300)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]


@needs_mnist
def test_variants_and_recipe_overrides_end_to_end(tmp_path, mnist_dir):
    """config variants and recipe_overrides through the workflow: the variant trains, the
    override reaches the recipe the job used, the report has a row for each and marks the
    overridden one (banner, never reproduced), and MLflow tags and params say so."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(
        tmp_path, "--config", "architectures=[softmax_regression,mlp]", "seeds=[0]",
        mirror_arg(mnist_dir), "variants={softmax_regression: [default, book]}",
        "recipe_overrides={mlp: {learning_rate: 0.25, batch_size: 50}}"),
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert _planned(proc.stdout + proc.stderr)["train_model"] == 3
    runs_dir = tmp_path / "results" / "runs"
    book = json.loads((runs_dir / "softmax_regression" / "book" / "seed0" / "metrics.json").read_text())
    mlp = json.loads((runs_dir / "mlp" / "default" / "seed0" / "metrics.json").read_text())
    default = json.loads((runs_dir / "softmax_regression" / "default" / "seed0" / "metrics.json").read_text())
    assert book["variant"] == "book" and book["recipe"] != default["recipe"]  # the book's own recipe
    assert mlp["overrides"] == {"learning_rate": 0.25, "batch_size": 50}
    assert (mlp["recipe"]["learning_rate"], mlp["recipe"]["batch_size"]) == (0.25, 50)
    report = tmp_path / "results" / "report"
    rows = pd.read_csv(report / "runs.csv")
    assert sorted(zip(rows["architecture"], rows["variant"])) == [
        ("mlp", "default"), ("softmax_regression", "book"), ("softmax_regression", "default")]
    audit = pd.read_csv(report / "tables" / "claim_audit.csv").set_index("model")
    assert set(audit.index) == {"mlp", "softmax_regression", "softmax_regression:book"}
    assert 'overrides {"batch_size": 50, "learning_rate": 0.25}' in audit.loc["mlp", "budget"]
    assert audit.loc["mlp", "verdict"] == "inconclusive (overridden recipe, scaled budget)"
    assert audit.loc["softmax_regression:book", "verdict"] == "inconclusive (scaled budget)"
    assert "OVERRIDDEN RECIPE" in (report / "README.md").read_text()
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("tiny-test").experiment_id
    logged = {r.data.tags["mnist_audit.job"]: r for r in
              client.search_runs([exp], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")}
    assert sorted(logged) == ["mlp/default/seed0", "softmax_regression/book/seed0", "softmax_regression/default/seed0"]
    m = logged["mlp/default/seed0"]
    assert m.data.tags["recipe"] == "overridden, scaled x0.02"
    assert (m.data.params["override.learning_rate"], m.data.params["recipe.learning_rate"]) == ("0.25", "0.25")
    assert logged["softmax_regression/book/seed0"].data.tags["variant"] == "book"
    assert logged["softmax_regression/default/seed0"].data.tags["recipe"] == "scaled x0.02"


@pytest.mark.slow
@needs_mnist
def test_the_keras_tutorials_and_their_scripts_end_to_end(tmp_path, mnist_dir):
    """keras_convnet and tf_quickstart on the tiny config through the workflow: each port
    (train_model) and its author's script (train_original, config key originals) trains on
    its own data split, is logged to MLflow, and has its row in the claim audit and in the
    port-versus-original table."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(
        tmp_path, "--config", "architectures=[keras_convnet,tf_quickstart]", "seeds=[0]",
        mirror_arg(mnist_dir), "originals={keras_convnet: [default], tf_quickstart: [default]}"),
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    planned = _planned(proc.stdout + proc.stderr)
    assert (planned["train_model"], planned["train_original"]) == (2, 2)
    runs_dir = tmp_path / "results" / "runs"
    n_val = {"keras_convnet": (500, 56), "tf_quickstart": (0, 0)}  # port's validation set, the script's
    for arch in ("keras_convnet", "tf_quickstart"):
        port = json.loads((runs_dir / arch / "default" / "seed0" / "metrics.json").read_text())
        script = json.loads((runs_dir / arch / "original" / "seed0" / "metrics.json").read_text())
        assert (runs_dir / arch / "default" / "seed0" / "model.keras").exists()
        assert not (runs_dir / arch / "original" / "seed0" / "model.keras").exists()
        assert script["implementation"] == "keras script" and script["script"]["file"] == f"{arch}.py"
        assert port["n_train"] == script["n_train"] == 500 and port["total_steps"] == script["total_steps"]
        assert (port["n_val"], script["n_val"]) == n_val[arch]
        assert port["recipe"]["data_split"] == script["recipe"]["data_split"] != "read_data_sets"
    report = tmp_path / "results" / "report"
    audit = pd.read_csv(report / "tables" / "claim_audit.csv").set_index("model")
    assert set(audit.index) == {"keras_convnet", "tf_quickstart"}
    assert (audit.loc["keras_convnet", "claim_lower_pct"], audit.loc["tf_quickstart", "claim_lower_pct"]) == (98.5, 97.5)
    pvo = pd.read_csv(report / "tables" / "port_vs_original.csv")
    assert sorted(pvo["architecture"]) == ["keras_convnet", "tf_quickstart"]
    client = _client(tmp_path)
    exp = client.get_experiment_by_name("tiny-test").experiment_id
    logged = {r.data.tags["mnist_audit.job"] for r in
              client.search_runs([exp], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")}
    assert logged == {f"{a}/{v}/seed0" for a in ("keras_convnet", "tf_quickstart") for v in ("default", "original")}


def test_the_readmes_ui_link_shows_the_training_runs_best_first(tiny_run, tmp_path):
    """``mlflow ui`` started as the README starts it; through its REST API, the saved view
    the README's URL opens (filter, order) returns the training runs, best test accuracy first."""
    import urllib.parse
    import urllib.request

    from decimal import Decimal

    from engines import MlflowServer

    from mnist_audit import runs, tracking

    work, _ = tiny_run
    db = f"sqlite:///{work}/results/mlflow/mlflow.db"
    with MlflowServer(db, tmp_path / "artifacts", ui=True) as ui:
        def get(path, **query):
            with urllib.request.urlopen(f"{ui.uri}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}") as r:
                return json.loads(r.read())

        def post(path, body):
            req = urllib.request.Request(f"{ui.uri}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                return json.loads(r.read())

        exp = get("experiments/get-by-name", experiment_name="tiny-test")["experiment"]
        tags = {t["key"]: t["value"] for t in exp["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"  # the runs table, not GenAI
        view = json.loads(tags[f"mlflow.sharedViewState.{tracking.RUNS_VIEW_KEY}"])
        assert "metrics.`test_accuracy`" in view["selectedColumns"] and view["runsHiddenMode"] == "SHOW_ALL"
        assert "attributes.`Models`" in view["selectedColumns"]  # the logged model, linked
        direction = "ASC" if view["orderByAsc"] else "DESC"
        found = post("runs/search", {"experiment_ids": [exp["experiment_id"]], "filter": view["searchFilter"],
                                     "order_by": [f"{view['orderByKey']} {direction}"]})["runs"]
        accuracy = [{m["key"]: m["value"] for m in r["data"]["metrics"]}["test_accuracy"] for r in found]
        names = [r["info"]["run_name"] for r in found]
        assert sorted(names) == sorted(f"{a} s{s}" for a, s in TINY_RUNS)  # no sweep or report run
        assert accuracy == sorted(accuracy, reverse=True) and len(set(accuracy)) > 1
        # every number as a reader reads it: an accuracy is its count of correct images over
        # the test set, exactly (no float32 digits); the logged model has the run's words and data
        models = post("logged-models/search", {"experiment_ids": [exp["experiment_id"]]})["models"]
        model_of = {m["info"]["source_run_id"]: m for m in models}
        for r in found:
            job = next(t["value"] for t in r["data"]["tags"] if t["key"] == "mnist_audit.job")
            record = runs.RunRecord.read(work / "results" / "runs" / job)
            correct = int(runs.read_predictions(work / "results" / "runs" / job / "predictions.npz")["test_correct"].sum())
            value = {m["key"]: m["value"] for m in r["data"]["metrics"]}["test_accuracy"]
            assert Decimal(repr(value)) == Decimal(correct) / Decimal(record.metrics["n_test"]), (job, value, correct)
            model = model_of[r["info"]["run_id"]]
            mtags = {t["key"]: t["value"] for t in model["info"]["tags"]}
            rtags = {t["key"]: t["value"] for t in r["data"]["tags"]}
            assert mtags["mlflow.note.content"].startswith(rtags["mlflow.note.content"])  # its description
            used = {(m["dataset_name"], m["dataset_digest"]) for m in model["data"]["metrics"] if m.get("dataset_name")}
            inputs = {(d["dataset"]["name"], d["dataset"]["digest"]) for d in r["inputs"]["dataset_inputs"]}
            assert used == inputs and len(used) == 3, (used, inputs)  # its datasets are the run's
        url = tracking.runs_view_url(ui.uri, exp["experiment_id"])
        assert f"viewStateShareKey={tracking.RUNS_VIEW_KEY}" in url and "workflowType=machine_learning" in url
        with urllib.request.urlopen(url.split("#")[0]) as r:  # the page itself is served
            assert r.status == 200 and b"<html" in r.read().lower()
    readme = (ROOT / "README.md").read_text()
    assert tracking.runs_view_url("http://127.0.0.1:5000", "1") in readme


def test_a_copied_workspace_serves_every_runs_artifacts_after_the_original_is_gone(tiny_run, tmp_path):
    """The store keeps its artifact folder relative to the workspace: a copy of the workspace,
    the original deleted, and ``mlflow ui`` started in the copy as the README starts it
    serves every run's artifacts, byte for byte, from the copy."""
    import shutil
    import urllib.parse
    import urllib.request

    from engines import MlflowServer

    work, _ = tiny_run
    original, moved = tmp_path / "original", tmp_path / "moved"
    # the workspace without the MNIST files and the weights (no artifacts of MLflow's)
    shutil.copytree(work, original, symlinks=True, ignore=shutil.ignore_patterns("data", "*.keras"))
    shutil.copytree(original, moved, symlinks=True)
    shutil.rmtree(original)
    with MlflowServer("sqlite:///results/mlflow/mlflow.db", tmp_path / "served", ui=True, cwd=moved) as ui:
        def get(endpoint, **query):
            with urllib.request.urlopen(f"{ui.uri}/{endpoint}?{urllib.parse.urlencode(query)}") as r:
                return r.read()

        exp = json.loads(get("api/2.0/mlflow/experiments/get-by-name", experiment_name="tiny-test"))["experiment"]
        assert exp["artifact_location"] == "results/mlflow/artifacts"  # relative: it moves with the workspace
        req = urllib.request.Request(f"{ui.uri}/api/2.0/mlflow/runs/search", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"experiment_ids": [exp["experiment_id"]]}).encode())
        with urllib.request.urlopen(req) as r:
            found = json.loads(r.read())["runs"]
        assert len(found) >= len(TINY_RUNS) + 2  # the training runs, the sweep's and the report's

        def files(run_id, path=""):
            listed = json.loads(get("api/2.0/mlflow/artifacts/list", run_id=run_id, path=path)).get("files", [])
            for f in listed:
                yield from files(run_id, f["path"]) if f["is_dir"] else [f["path"]]

        served = 0
        for run in found:
            rid = run["info"]["run_id"]
            names = list(files(rid))
            assert names, f"run {run['info']['run_name']}: no artifacts served"
            for name in names:
                on_disk = moved / run["info"]["artifact_uri"] / name
                assert get("get-artifact", path=name, run_uuid=rid) == on_disk.read_bytes(), name
                served += 1
        assert served >= 5 * len(TINY_RUNS)


@pytest.mark.slow
def test_a_killed_workflow_resumes_its_training_job_bit_for_bit(tmp_path, mnist_dir):
    """Snakemake itself killed (SIGKILL, the whole process group) while a job trains: after
    ``--unlock``, the same command reruns the incomplete job (rerun-incomplete in the
    profile), which resumes from its checkpoint and ends with the numbers, history,
    weights and predictions of the same job trained without a break."""
    import signal
    import time

    from test_train import _assert_same_run

    work = tmp_path / "killed"
    # 5 chunks of 10 steps: a checkpoint after each of the first four
    cmd = snakemake_cmd(work, "--config", mirror_arg(mnist_dir), "architectures=[thomas]",
                        "seeds=[0]", "budget_scale=0.5", cores=1)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    run = work / "results" / "runs" / "thomas" / "default" / "seed0"
    state = run / "checkpoint" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.exists(), "no checkpoint appeared before the workflow ended"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()
    done = json.loads(state.read_text())["chunk"] + 1
    unlock = subprocess.run(snakemake_cmd(work, "--unlock", cores=None), capture_output=True, text=True, env=env)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    log = (work / "results" / "logs" / "train_model" / "thomas" / "default" / "seed0.log").read_text()
    assert "resuming thomas/default seed 0" in log
    assert json.loads((run / "metrics.json").read_text())["resumed_from_epoch"] == done

    whole = tmp_path / "whole"  # the same job, never interrupted (one thread, as the workflow's jobs)
    ref = subprocess.run([sys.executable, "-m", "mnist_audit.cli", "train", "--arch", "thomas", "--seed", "0",
                          "--budget-scale", "0.5", "--train-subset", "500", "--eval-subset", "500", "--threads", "1",
                          "--data", str(work / "results" / "data" / "mnist" / "mnist.npz"), "--out", str(whole)],
                         capture_output=True, text=True, cwd=ROOT / "workflow", timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    _assert_same_run(whole, run)


def test_every_run_is_in_mlflow_with_per_epoch_metrics(tiny_run, monkeypatch):
    work, _ = tiny_run
    monkeypatch.chdir(work)  # the store's artifact paths are relative to the workspace
    sweep = json.loads((work / "results" / "mlflow" / "sweep.json").read_text())
    client = _client(work)
    runs = client.search_runs([sweep["experiment_id"]], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")
    by_job = {r.data.tags["mnist_audit.job"]: r for r in runs}
    assert sorted(by_job) == sorted(f"{a}/default/seed{s}" for a, s in TINY_RUNS)
    for job, run in by_job.items():
        arch, _, seed = job.split("/")
        d = work / "results" / "runs" / arch / "default" / seed
        history = pd.read_csv(d / "history.csv")
        metrics = json.loads((d / "metrics.json").read_text())
        assert run.info.status == "FINISHED"
        assert sweep["sweep_id"] in run.data.tags["mnist_audit.sweeps"].split()  # grouped, not copied
        assert "mlflow.parentRunId" not in run.data.tags  # flat in the UI's runs table
        assert run.data.tags["architecture"] == arch and run.data.tags["seed"] == seed[4:]
        # a few tags; the commit where MLflow shows it; a one-line description
        assert len([t for t in run.data.tags if not t.startswith("mlflow.")]) <= 12, sorted(run.data.tags)
        assert run.data.tags["mlflow.source.git.commit"] == metrics["provenance"]["git_commit"]
        assert run.data.tags["mlflow.source.name"] == "workflow/scripts/train_model.py"  # the UI's Source
        from mnist_audit import registry

        name = registry.get_architecture(arch).display  # the tutorial as a reader knows it, then the run
        assert run.data.tags["mlflow.note.content"].startswith(f"{name} ({arch} s{seed[4:]}): ")
        assert f"{100 * metrics['test_accuracy']:.2f}% test" in run.data.tags["mlflow.note.content"]
        # versions and checksums in one JSON artifact
        dst = work / "downloads" / job.replace("/", "-")
        dst.mkdir(parents=True)
        local = client.download_artifacts(run.info.run_id, "provenance.json", str(dst))
        prov = json.loads(Path(local).read_text())["provenance"]
        assert prov["packages"]["keras"] and prov["data_payload_sha256"]["t10k-labels-idx1-ubyte.gz"].startswith("ff7bcfd4")
        # MNIST as dataset inputs, one per split, the subset in the name and the digest
        inputs = {d.dataset.name: d for d in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs) == {"mnist-train-first500", "mnist-validation-first500", "mnist-test-first500"}
        test_source = json.loads(inputs["mnist-test-first500"].dataset.source)
        assert test_source["files"]["t10k-labels-idx1-ubyte.gz"].startswith("ff7bcfd4") and test_source["subset"] == 500
        assert len({d.dataset.digest for d in inputs.values()}) == 3
        assert {t.value for d in inputs.values() for t in d.tags} == {"training", "validation", "test"}
        assert run.data.params["recipe.batch_size"] == str(metrics["recipe"]["batch_size"])
        # how it was trained: the default profile's 1 thread per job, the resident compiled loop
        assert run.data.params["threads"] == "1" == str(metrics["device"]["threads"])
        assert run.data.params["speed.training_loop"] == metrics["speed"]["training_loop"]
        assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
        series = client.get_metric_history(run.info.run_id, "epoch.test_accuracy")
        assert [m.step for m in series] == list(history["epoch"])
        assert [m.value for m in series] == pytest.approx(list(history["test_accuracy"]))
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "history.csv", "confusion.csv"} <= artifacts
        # the model is stored once, in the run folder; MLflow has its path and SHA-256
        assert "model.keras" not in artifacts
        assert run.data.tags["model.sha256"] == hashlib.sha256((d / "model.keras").read_bytes()).hexdigest()
    assert not list((work / "results" / "mlflow").rglob("model.keras"))


@needs_mnist
@pytest.mark.slow
def test_tracking_down_loses_nothing_and_a_rerun_logs(tmp_path, mnist_dir):
    """Server unreachable: training still writes its results, the logging jobs fail
    with a clear message; a rerun logs the runs without retraining."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    one = ["architectures=[softmax_regression]", "seeds=[0]", mirror_arg(mnist_dir)]
    dead = subprocess.run(
        snakemake_cmd(tmp_path, "--config", *one, f"mlflow={{'tracking_uri': 'http://127.0.0.1:{free_port()}', 'retries': 1}}"),
        capture_output=True, text=True, env=env, timeout=600)
    assert dead.returncode != 0
    assert (dead.stdout + dead.stderr).count("could not be reached") == 1  # said once, in the log shown
    run_dir = tmp_path / "results" / "runs" / "softmax_regression" / "default" / "seed0"
    assert (run_dir / "metrics.json").exists() and (run_dir / "model.keras").exists()
    assert not (run_dir / "mlflow_run.json").exists()
    log = (tmp_path / "results" / "logs" / "init_tracking.log").read_text()
    assert "could not be reached" in log and "Nothing measured is lost" in log, log
    trained_at = (run_dir / "metrics.json").stat().st_mtime

    ok = subprocess.run(snakemake_cmd(tmp_path, "--config", *one), capture_output=True, text=True, env=env,
                        timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert (run_dir / "metrics.json").stat().st_mtime == trained_at  # not retrained
    marker = json.loads((run_dir / "mlflow_run.json").read_text())
    run = _client(tmp_path).get_run(marker["run_id"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["test_accuracy"])


@pytest.mark.slow
def test_training_jobs_take_gpu_leases(tmp_path, mnist_dir):
    """Inside real training jobs: with two (placeholder) GPUs and gpu.jobs_per_gpu=1, four
    jobs started at once each lease one GPU, set CUDA_VISIBLE_DEVICES to it, and never
    share a GPU at the same time. (The CPU build of TensorFlow then trains on the CPU.)"""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(CUDA_VISIBLE_DEVICES="0,1", TMPDIR=str(tmp_path / "tmp"))  # TMPDIR: the lease files
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "work"
    targets = [f"results/runs/{a}/default/seed{s}/metrics.json" for a in ("thomas", "softmax_regression")
               for s in (0, 1)]
    proc = subprocess.run(snakemake_cmd(work, "--config", mirror_arg(mnist_dir),
                                        "gpu={jobs_per_gpu: 1, memory_growth: true}", "--", *targets, cores=4),
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    leases = []
    for t in targets:
        path = work / t
        m = json.loads(path.read_text())
        lease = m["device"]["gpu_lease"]
        assert lease["of_gpus"] == "0,1" and lease["jobs_per_gpu"] == 1 and lease["slot"] == 0, t
        assert m["device"]["assigned_gpus"] == lease["gpu"], t  # CUDA_VISIBLE_DEVICES set to the leased GPU
        assert m["device"]["kind"] == "cpu", t
        # held from acquisition at least through training (Snakemake touches outputs later,
        # so a file's mtime is no end time)
        leases.append((lease["gpu"], lease["acquired_at"], lease["acquired_at"] + m["job_seconds"]))
    assert {g for g, _, _ in leases} == {"0", "1"}  # spread over both GPUs
    for i, (g1, s1, e1) in enumerate(leases):
        for g2, s2, e2 in leases[i + 1:]:
            if g1 == g2:
                assert e1 <= s2 or e2 <= s1, "two jobs held the same GPU at once"
    assert any(lease_waited for lease_waited in (
        json.loads((work / t).read_text())["device"]["gpu_lease"]["waited_seconds"] > 0.2 for t in targets))


def _last_lines(out: str, n: int = 12) -> str:
    return "\n".join(out.strip().splitlines()[-n:])


def test_an_offline_run_fails_fast_starts_nothing_else_and_ends_with_the_fix(tmp_path):
    """Mirrors that refuse the connection (a loopback port nobody listens on): the four
    downloads fail, nothing else starts (keep-going notwithstanding: no tracking store, no
    report table, no training job), and the fix is printed once, in the last lines."""
    import time

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    dead = [f"mirrors=['http://127.0.0.1:{free_port()}/']", "download={'timeout_s': 5, 'retries': 1}"]
    t0 = time.monotonic()
    proc = subprocess.run(snakemake_cmd(tmp_path, "--config", *dead, cores=2), capture_output=True, text=True,
                          env=env, timeout=300)
    wall = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    print(f"offline run: failed in {wall:.1f} s; last lines:\n{_last_lines(out)}")
    assert proc.returncode != 0
    assert wall < 15, f"the offline run took {wall:.1f} s to fail"
    started = set(re.findall(r"^(?:local)?rule (\w+):", out, re.M))
    assert started == {"download_mnist"}, started
    tail = _last_lines(out)
    assert "MNIST could not be downloaded" in tail and "mirrors=[\"/path/to/mnist\"]" in tail, tail
    assert out.count("point the pipeline at a local copy") == 1, out[-4000:]
    left = sorted(str(p.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("*") if p.is_file())
    assert all(p.startswith("logs/download_mnist/") for p in left), left


def test_a_local_mirror_that_is_not_there_is_refused_by_a_dry_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    for spec in ("/nonexistent/mnist", "file:///nonexistent/mnist/"):
        proc = subprocess.run(snakemake_cmd(tmp_path, "-n", "--config", f"mirrors=['{spec}']", cores=2),
                              capture_output=True, text=True, env=env, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"config key mirrors[0]: the local mirror {spec} is not a folder that exists" in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_a_bad_local_mirror_names_the_missing_and_the_truncated_file(tmp_path, synthetic_mnist):
    """A local folder without one file and with another cut short: the last lines say which
    file is missing and which is not the MNIST file, and nothing about reaching mirrors."""
    folder, _, _ = synthetic_mnist  # not MNIST: every file fails the SPEC's checksums
    (folder / "train-images-idx3-ubyte.gz").unlink()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(snakemake_cmd(tmp_path / "work", "--config", mirror_arg(folder), cores=2),
                          capture_output=True, text=True, env=env, timeout=300)
    tail = _last_lines(proc.stdout + proc.stderr, 16)
    assert proc.returncode != 0
    assert f"The local mirror {folder} has no train-images-idx3-ubyte.gz" in tail, tail
    assert f"The local mirror's t10k-labels-idx1-ubyte.gz ({folder}) is not the MNIST file" in tail, tail
    assert "cannot reach" not in tail
