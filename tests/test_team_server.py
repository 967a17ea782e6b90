"""A team's tracking server: MLflow's own basic authentication (``mlflow server --app-name
basic-auth``) on PostgreSQL (sqlite where PostgreSQL is absent), its users made through
MLflow's auth API. Only its users read or write; the tiny workflow logs with a user's
credentials, fails at once without them or with a wrong password (results kept, a rerun
logs them without retraining); and no credential is written anywhere: the workspace, the
MLflow database and artifacts, the server's log and a published copy hold none."""

import base64
import contextlib
import gzip
import json
import os
import secrets
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from conftest import copy_workspace, mirror_arg, mnist_source, needs_mnist, snakemake_cmd
from engines import AuthMlflowServer, Postgres, missing_postgres

from mnist_audit import publish, tracking

TINY_JOBS = sorted(f"{a}/default/seed{s}" for a in ("thomas", "softmax_regression") for s in (0, 1))
CREDENTIAL_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                   "MLFLOW_TRACKING_TOKEN")


class Team:
    """The server, its backend, and its users' passwords (fresh random strings: a hit in
    the final search can only come from this test's credentials)."""

    def __init__(self, root: Path):
        self.root = root
        self.passwords = {u: f"{u}-{secrets.token_hex(12)}" for u in ("admin", "alice", "bob", "mallory")}
        self.wrong = f"wrong-{secrets.token_hex(12)}"
        self.token = f"token-{secrets.token_hex(12)}"
        self.flask_key = f"flask-{secrets.token_hex(12)}"

    def secrets(self) -> dict[str, bytes]:
        """Every secret, as it could be written: plain, and as a basic-auth header's base64."""
        out = {f"password of {u}": p.encode() for u, p in self.passwords.items()}
        out |= {"the wrong password": self.wrong.encode(), "the token": self.token.encode(),
                "the server's Flask key": self.flask_key.encode()}
        for u, p in [*self.passwords.items(), ("alice", self.wrong)]:
            out[f"{u}'s basic-auth header"] = base64.b64encode(f"{u}:{p}".encode())
        return out

    def env(self, user: str | None = None, password: str | None = None, **extra) -> dict:
        """The environment of a client process: no MLflow credentials but these."""
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
        if user:
            env["MLFLOW_TRACKING_USERNAME"] = user
            env["MLFLOW_TRACKING_PASSWORD"] = password if password is not None else self.passwords[user]
        return {**env, **extra}

    @contextlib.contextmanager
    def as_user(self, user: str | None, password: str | None = None):
        """This process's MLflow client as ``user`` (None: no credentials)."""
        saved = {k: os.environ.get(k) for k in CREDENTIAL_VARS[1:]}
        for k in CREDENTIAL_VARS[1:]:
            os.environ.pop(k, None)
        if user:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password if password is not None else self.passwords[user]
        try:
            yield
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The basic-auth server with an admin (password set for the first start: MLflow has no
    default) and three users made through MLflow's auth API: alice logs, bob is granted
    READ on what alice logs, mallory is granted nothing (default_permission NO_PERMISSIONS)."""
    from mlflow.server import get_app_client

    root = tmp_path_factory.mktemp("team")
    team = Team(root)
    with contextlib.ExitStack() as stack:
        if missing_postgres():
            if os.environ.get("CI", "").lower() == "true":
                pytest.skip(str(missing_postgres()))  # CI=true turns this into a failure (conftest)
            team.pg, team.backend = None, f"sqlite:///{root / 'store.db'}"
        else:
            team.pg = stack.enter_context(Postgres())
            team.backend = team.pg.uri
        team.server = stack.enter_context(AuthMlflowServer(
            team.backend, root / "artifacts", root / "auth", team.passwords["admin"], team.flask_key))
        team.uri = team.server.uri
        print(f"basic-auth server at {team.uri} on {'PostgreSQL' if team.pg else 'sqlite'}")
        with team.as_user("admin"):
            auth = get_app_client("basic-auth", tracking_uri=team.uri)
            for user in ("alice", "bob", "mallory"):
                auth.create_user(user, team.passwords[user])
        yield team


def _grant(team, user, experiment_id, permission):
    from mlflow.server import get_app_client

    with team.as_user("admin"):
        get_app_client("basic-auth", tracking_uri=team.uri).grant_user_permission(
            user, "experiment", experiment_id, permission)


@needs_mnist
@pytest.mark.slow
def test_only_the_teams_users_read_or_write(team, tiny_run, tmp_path):
    """MLflow's permissions, exercised for real: alice logs a run (she created the
    experiment: MANAGE); bob, granted READ, reads it but cannot log; mallory, granted
    nothing, finds no run and cannot fetch one; without credentials or with a wrong
    password nothing is read. Each refusal is one request, and its error names the
    variables; the run folder is untouched."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    work, _ = tiny_run
    run_dir = tmp_path / "run"
    shutil.copytree(work / "results" / "runs" / "thomas" / "default" / "seed0", run_dir)
    manifest = work / "results" / "data" / "mnist" / "manifest.json"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with team.as_user("alice"):
        sweep = tracking.init_tracking(team.uri, "team-permissions", None, {"id": "s1", "key": "k1"}, {"a": 1})
        logged = tracking.log_run(sweep, run_dir, manifest)
    exp = sweep["experiment_id"]
    _grant(team, "bob", exp, "READ")

    def runs_seen_by(user, password=None):
        with team.as_user(user, password):
            return [r.info.run_id for r in MlflowClient(team.uri).search_runs(
                [exp], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")]

    assert runs_seen_by("alice") == [logged["run_id"]]
    assert runs_seen_by("bob") == [logged["run_id"]]
    assert runs_seen_by("mallory") == []  # MLflow leaves out what she may not read
    with team.as_user("mallory"), pytest.raises(MlflowException, match="403"):
        MlflowClient(team.uri).get_run(logged["run_id"])
    for user, password in ((None, None), ("alice", team.wrong)):
        with team.as_user(user, password), pytest.raises(MlflowException, match="401"):
            MlflowClient(team.uri).get_run(logged["run_id"])

    # logging as each user who may not: one request, then the message
    cases = [(None, None, "asks for credentials \\(HTTP 401\\) and none were given: set MLFLOW_TRACKING_USERNAME "
                          "and MLFLOW_TRACKING_PASSWORD"),
             ("alice", team.wrong, "did not accept user 'alice' \\(HTTP 401\\): check MLFLOW_TRACKING_USERNAME"),
             ("bob", None, "does not let user 'bob' do this \\(HTTP 403\\)"),
             ("mallory", None, "does not let user 'mallory' do this \\(HTTP 403\\)")]
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    m = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**m, "result_id": "retrained"}))  # would replace alice's run
    for user, password, expect in cases:
        t0 = time.monotonic()
        with team.as_user(user, password), pytest.raises(tracking.TrackingError, match=expect) as e:
            tracking.log_run(sweep, other, manifest, attempts=3)
        assert "not retried" in str(e.value) and "Nothing measured is lost" in str(e.value)
        assert time.monotonic() - t0 < 30  # no retry, no backoff (3 attempts would wait 2 + 4 s)
        assert team.wrong not in str(e.value) and all(p not in str(e.value) for p in team.passwords.values())
    assert runs_seen_by("alice") == [logged["run_id"]]  # nobody replaced it
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def _snakemake(work, team, env, *config, timeout=1200):
    t0 = time.monotonic()
    proc = subprocess.run(snakemake_cmd(work, "--config", mirror_arg(mnist_source()[0]), *config, cores=8),
                          capture_output=True, text=True, env=env, timeout=timeout)
    return proc, proc.stdout + proc.stderr, time.monotonic() - t0


def _active_runs(team, experiment="tiny-test"):
    from mlflow import MlflowClient

    with team.as_user("alice"):
        client = MlflowClient(team.uri)
        exp = client.get_experiment_by_name(experiment)
        return [r for r in client.search_runs([exp.experiment_id], filter_string="tags.`mnist_audit.job` LIKE '%seed%'")]


def _files(root: Path):
    for f in sorted(root.rglob("*")) if root.is_dir() else [root]:
        if f.is_file() and not f.is_symlink():
            yield f


def _contents(f: Path):
    """The file's bytes, and those of each member of a zip (npz, keras) or a gzip file."""
    data = f.read_bytes()
    yield str(f), data
    if zipfile.is_zipfile(f):
        with zipfile.ZipFile(f) as z:
            for name in z.namelist():
                yield f"{f}!{name}", z.read(name)
    elif data[:2] == b"\x1f\x8b":
        yield f"{f}!gunzip", gzip.decompress(data)


def find_secrets(places: dict[str, Path | bytes], found_in: dict[str, bytes]) -> tuple[list[str], int]:
    """Where any secret occurs in ``places`` (folders, files, or bytes such as a database
    dump); also the number of files and members read."""
    hits, n = [], 0
    for label, place in places.items():
        items = [(label, place)] if isinstance(place, bytes) else (
            item for f in _files(place) for item in _contents(f))
        for where, data in items:
            n += 1
            hits += [f"{where}: {what}" for what, s in found_in.items() if s in data]
    return hits, n


@needs_mnist
@pytest.mark.slow
def test_the_workflow_logs_with_credentials_and_writes_none_down(team, tiny_run, tmp_path):
    """The tiny workflow (trained once, by tiny_run) against the authenticated server:

    1. a password in the tracking URI is refused before any job, the URI shown without it;
    2. without credentials the first MLflow job fails at once (a 401, not retried), saying
       which variables to set; nothing is retrained or lost;
    3. with alice's credentials every run and the report are logged, each run once, and
       nothing is retrained;
    4. two runs' logging undone (their markers removed, their MLflow runs deleted by the
       admin), a wrong password fails those logging jobs at once, with the message, and
       the results stay on disk;
    5. the right password again logs exactly those two, without retraining;
    6. no secret (passwords, the token, as text or in a basic-auth header) is in the
       workspace (results, logs, Snakemake's metadata), the MLflow database (a dump and its
       files), its artifacts, the server's log, or a published copy of the records.
    """
    from mlflow import MlflowClient

    work = copy_workspace(tiny_run[0], tmp_path / "work")
    runs = {job: work / "results" / "runs" / job for job in TINY_JOBS}
    trained = {job: (d / "metrics.json").stat().st_mtime for job, d in runs.items()}
    at = f"mlflow={{'tracking_uri': '{team.uri}', 'retries': 3}}"  # 3 tries for what may pass; 1 for a 401
    host = team.uri.removeprefix("http://")

    # 1. the password in the URI: refused when the Snakefile is read
    proc, out, wall = _snakemake(work, team, team.env(),
                                 f"mlflow={{'tracking_uri': 'http://alice:{team.passwords['alice']}@{host}'}}")
    assert proc.returncode != 0 and "has a password in its user part" in out, out[-3000:]
    assert f"(http://{host}, shown without it)" in out and "MLFLOW_TRACKING_USERNAME" in out
    assert team.passwords["alice"] not in out
    assert not (work / "results" / "mlflow").exists()

    # 2. no credentials
    proc, out, wall = _snakemake(work, team, team.env(), at)
    print(f"without credentials: failed in {wall:.1f} s")
    init_log = (work / "results" / "logs" / "init_tracking.log").read_text()
    assert proc.returncode != 0, out[-3000:]
    assert ("asks for credentials (HTTP 401) and none were given: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD") in init_log, init_log
    assert "retrying" not in init_log and init_log.count("HTTP 401") == 1
    assert not (work / "results" / "mlflow" / "sweep.json").exists()

    # 3. alice: everything logged, each run once (the token is set too, to be searched for later)
    proc, out, wall = _snakemake(work, team, team.env("alice", MLFLOW_TRACKING_TOKEN=team.token), at)
    print(f"with alice's credentials: {wall:.1f} s")
    assert proc.returncode == 0, out[-5000:]
    active = _active_runs(team)
    assert sorted(r.data.tags["mnist_audit.job"] for r in active) == TINY_JOBS
    for run in active:
        m = json.loads((runs[run.data.tags["mnist_audit.job"]] / "metrics.json").read_text())
        assert run.data.metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
    assert json.loads((work / "results" / "report" / "mlflow_run.json").read_text())["run_id"]

    # 4. two runs' logging undone; a wrong password
    undone = TINY_JOBS[:2]
    first_ids = {r.data.tags["mnist_audit.job"]: r.info.run_id for r in active}
    with team.as_user("admin"):
        admin = MlflowClient(team.uri)
        for run in active:
            if run.data.tags["mnist_audit.job"] in undone:
                admin.delete_run(run.info.run_id)
    for job in undone:
        (runs[job] / "mlflow_run.json").unlink()
    proc, out, wall = _snakemake(work, team, team.env("alice", team.wrong), at)
    print(f"with a wrong password: failed in {wall:.1f} s")
    assert proc.returncode != 0, out[-3000:]
    for job in undone:
        text = (work / "results" / "logs" / "log_run" / f"{job}.log").read_text()
        assert ("did not accept user 'alice' (HTTP 401): check MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD") in text, text
        assert "retrying" not in text and "Nothing measured is lost" in text
        assert not (runs[job] / "mlflow_run.json").exists()
        assert (runs[job] / "metrics.json").exists() and (runs[job] / "model.keras").exists()
    assert len(_active_runs(team)) == len(TINY_JOBS) - len(undone)

    # 5. the right password: those two logged again, nothing retrained
    proc, out, wall = _snakemake(work, team, team.env("alice"), at)
    print(f"rerun with alice's credentials: {wall:.1f} s")
    assert proc.returncode == 0, out[-5000:]
    active = _active_runs(team)
    assert sorted(r.data.tags["mnist_audit.job"] for r in active) == TINY_JOBS  # each once
    ids = {r.data.tags["mnist_audit.job"]: r.info.run_id for r in active}
    for job in TINY_JOBS:
        assert json.loads((runs[job] / "mlflow_run.json").read_text())["run_id"] == ids[job]
        assert (ids[job] != first_ids[job]) is (job in undone)  # only those two logged anew
    assert {job: (d / "metrics.json").stat().st_mtime for job, d in runs.items()} == trained  # nothing retrained

    # 6. no secret anywhere
    # team.root: the server's artifacts, its user store, its log (and the sqlite store)
    places = {"the workspace": work, "the server's folder": team.root}
    if team.pg is not None:
        dump = team.pg._as_owner(str(team.pg.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(team.pg.port),
                                 "-U", "postgres", "mlflow").stdout
        assert "mnist_audit.identity" in dump and "tiny-test" in dump  # the runs are in it
        places |= {"the MLflow database (pg_dump)": dump.encode(), "the MLflow database's files and log": team.pg.root}
    # a published copy: what publish.publish_run copies (it refuses these tiny runs as not
    # the published recipe): the record files, the metrics sanitised
    published = tmp_path / "published"
    for job, d in runs.items():
        dest = published / job
        dest.mkdir(parents=True)
        for name in publish.RECORD_FILES:
            shutil.copy2(d / name, dest / name)
        (dest / "metrics.json").write_text(json.dumps(publish.sanitise(json.loads((d / "metrics.json").read_text()))))
    places["a published copy"] = published
    hits, n = find_secrets(places, team.secrets())
    print(f"searched {n} files and members for {len(team.secrets())} secrets: {len(hits)} found")
    assert n > 100
    assert hits == []
    # the search finds a secret where there is one (it is not blind)
    (work / "results" / "logs" / "planted.log").write_text(f"x {team.passwords['bob']} y")
    assert find_secrets({"the workspace": work}, team.secrets())[0] == [
        f"{work / 'results' / 'logs' / 'planted.log'}: password of bob"]
