"""Credentials never in the tracking URI: refused where the URI is resolved and where the
store is opened, shown without them; a refused credential (401, 403) is not retried and
says which variables to set. The real authenticated server: tests/test_team_server.py."""

import pytest

from mnist_audit import config as audit_config
from mnist_audit import credentials, tracking

SECRET = "s3cr3t-Pa55word"


@pytest.mark.parametrize("uri, shown, where", [
    (f"http://alice:{SECRET}@mlflow.example.org:5000", "http://mlflow.example.org:5000", "user part"),
    (f"https://alice:{SECRET}@mlflow.example.org/team", "https://mlflow.example.org/team", "user part"),
    (f"http://alice:{SECRET}@[::1]:5000", "http://[::1]:5000", "user part"),
    (f"postgresql://mlflow:{SECRET}@db:5432/mlflow", "postgresql://db:5432/mlflow", "user part"),
    (f"postgresql+psycopg2://db/mlflow?sslmode=require&password={SECRET}", "postgresql+psycopg2://db/mlflow?sslmode=require",
     "'password'"),
    (f"http://mlflow.example.org:5000/?access_token={SECRET}", "http://mlflow.example.org:5000/", "'access_token'"),
])
def test_a_uri_with_a_secret_is_refused_and_shown_without_it(uri, shown, where):
    assert credentials.embedded_secret(uri) and where in credentials.embedded_secret(uri)
    assert credentials.without_credentials(uri) == shown
    with pytest.raises(credentials.CredentialsInUri) as e:
        credentials.check_uri(uri)
    message = str(e.value)
    assert SECRET not in message and "alice" not in message and shown in message
    if uri.startswith("http"):
        assert "MLFLOW_TRACKING_USERNAME" in message and "MLFLOW_TRACKING_PASSWORD" in message
    else:
        assert "the password by" in message  # the database's own means
    assert "docs/mlflow.md" in message


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:5000", "https://mlflow.example.org/team", "postgresql://postgres@127.0.0.1:5432/mlflow",
    "http://alice@mlflow.example.org:5000",  # a user name alone is no secret
    "sqlite:////srv/mlflow/mlflow.db", "sqlite:///results/mlflow/mlflow.db", "file:///tmp/mlruns",
    "postgresql://db/mlflow?sslmode=require&sslkey=/home/a/key.pem",
])
def test_a_uri_without_a_secret_passes_unchanged(uri):
    assert credentials.embedded_secret(uri) is None
    assert credentials.check_uri(uri) == uri


def test_the_config_refuses_a_secret_in_the_tracking_uri_from_either_place(monkeypatch):
    """config key mlflow.tracking_uri and $MLFLOW_TRACKING_URI: a ConfigError before any job
    (check_config runs when the Snakefile is read), naming where the URI came from."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = {"mlflow": {"tracking_uri": f"http://alice:{SECRET}@127.0.0.1:5000"}}
    with pytest.raises(audit_config.ConfigError, match=r"^config key mlflow.tracking_uri \(http://127.0.0.1:5000,") as e:
        audit_config.check_config(cfg)
    assert SECRET not in str(e.value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET}@127.0.0.1:5000")
    with pytest.raises(audit_config.ConfigError, match=r"^\$MLFLOW_TRACKING_URI \(http://127.0.0.1:5000,") as e:
        audit_config.tracking_uri({"mlflow": {"tracking_uri": None}})
    assert SECRET not in str(e.value)
    # the URI in the config wins over the variable: only what is used is checked
    assert audit_config.tracking_uri({"mlflow": {"tracking_uri": "http://127.0.0.1:5000"}}) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice@127.0.0.1:5000")
    assert audit_config.tracking_uri({}) == "http://alice@127.0.0.1:5000"


def test_the_store_is_never_opened_with_a_secret_in_its_uri(tmp_path):
    """init_tracking (whose URI goes into sweep.json, every marker and the logs) refuses it
    before it connects: a store at that address would have been created otherwise."""
    db = tmp_path / "store.db"
    with pytest.raises(credentials.CredentialsInUri):
        tracking.init_tracking(f"sqlite:///{db}?password={SECRET}", "t", None, {"id": "s"}, {})
    assert not db.exists()


@pytest.mark.parametrize("code, status, env, expect", [
    ("UNAUTHENTICATED", 401, {}, "asks for credentials \\(HTTP 401\\) and none were given: set MLFLOW_TRACKING_USERNAME "
                                 "and MLFLOW_TRACKING_PASSWORD"),
    ("UNAUTHENTICATED", 401, {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET},
     "did not accept user 'alice' \\(HTTP 401\\): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
    ("PERMISSION_DENIED", 403, {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET},
     "does not let user 'alice' do this \\(HTTP 403\\): ask the server's admin for MANAGE permission"),
])
def test_a_refused_credential_is_not_retried_and_names_the_variables(monkeypatch, code, status, env, expect):
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    calls = []

    def refused():
        calls.append(1)
        raise MlflowException("no", error_code=getattr(databricks_pb2, code))

    with pytest.raises(tracking.TrackingError, match=expect) as e:
        tracking.with_retries(refused, "log_run thomas/default/seed0", "http://127.0.0.1:5000", attempts=3,
                              backoff_s=0.01)
    assert len(calls) == 1 and tracking.store.auth_status(e.value.__cause__) == status
    assert "not retried" in str(e.value) and "Nothing measured is lost" in str(e.value)
    assert SECRET not in str(e.value)
