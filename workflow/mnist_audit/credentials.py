"""Credentials for the tracking store: never in the tracking URI, always in the environment.

The tracking URI is recorded: in every run record (the resolved config in
``metrics.json``), the sweep's ``config.json`` and each run's ``provenance.json`` in
MLflow, the Snakemake metadata of the ``init_tracking`` rule, ``sweep.json`` and the
``mlflow_run.json`` markers, the logs, and (given with ``--config``) the command line of
every job Snakemake submits to a cluster, which ``ps`` shows to every user of a node. So
a URI that carries a secret (``http://user:secret@host:5000``,
``postgresql://user:secret@host/db``, ``...?password=secret``) is refused where the
URI is resolved (``config.tracking_uri``) and where the store is opened
(``tracking.init_tracking``), with a message that shows the URI without it and says
where the credentials go instead: MLflow's own variables ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD`` (``MLFLOW_TRACKING_TOKEN`` for a bearer token), or the
database's own password file or variable for a database URI. This module never reads
a password; it names the variables and, in an error, the user name.
"""

from __future__ import annotations

import os
import urllib.parse

USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"
TOKEN_VAR = "MLFLOW_TRACKING_TOKEN"

# query parameters that carry a secret (libpq and SQLAlchemy take ?password=...)
_SECRET_WORDS = ("password", "passwd", "secret", "token")
_SECRET_NAMES = {"pwd", "api_key", "apikey", "sig"}

# where a database URI's password goes instead (the store's own means)
_DB_PASSWORD = {
    "postgresql": "PostgreSQL's ~/.pgpass file (mode 600) or the PGPASSWORD variable",
    "mysql": "the read_default_file option pointing to a MySQL option file (mode 600)",
}


class CredentialsInUri(ValueError):
    """A tracking URI with a password or token in it."""


def _secret_query_keys(query: str) -> list[str]:
    keys = [k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)]
    return [k for k in keys if k.lower() in _SECRET_NAMES or any(w in k.lower() for w in _SECRET_WORDS)]


def embedded_secret(uri: str) -> str | None:
    """Where ``uri`` carries a secret ("a password in its user part", "the query parameter
    'password'"), or None when it carries none. A user name alone is no secret."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is not None:
        return "a password in its user part (user:password@)"
    keys = _secret_query_keys(parts.query)
    if keys:
        return "the query parameter" + ("s " if len(keys) > 1 else " ") + ", ".join(repr(k) for k in keys)
    return None


def without_credentials(uri: str) -> str:
    """``uri`` as it may be shown: scheme, host, port and path, without the user part and
    without the query parameters that carry a secret."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.netloc and not parts.query:
        return uri  # sqlite:///path, file:..., a plain path: nothing to hide
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    secret = set(_secret_query_keys(parts.query))
    query = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                                    if k not in secret])
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_uri(uri: str, where: str = "the tracking URI") -> str:
    """``uri`` unchanged when it carries no secret; else CredentialsInUri, whose message
    shows it without the secret and says where the credentials go."""
    secret = embedded_secret(uri)
    if secret is None:
        return uri
    shown = without_credentials(uri)
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0].lower()
    if scheme in ("http", "https"):
        instead = (f"give the URI without it ({shown}) and the credentials in the environment of the "
                   f"Snakemake process: export {USERNAME_VAR}=<user> {PASSWORD_VAR}=<password> "
                   f"(or {TOKEN_VAR} for a server that takes a bearer token)")
    else:
        own = _DB_PASSWORD.get(scheme, "the database's own password file or variable")
        instead = (f"give the URI without it ({shown}) and the password by {own}; or run an MLflow "
                   f"server on that database and give its users' credentials in {USERNAME_VAR} / "
                   f"{PASSWORD_VAR}")
    raise CredentialsInUri(
        f"{where} ({shown}, shown without it) has {secret}; refused, because the tracking URI is "
        "recorded (in every run record, MLflow's params, the logs and a cluster job's command "
        f"line): {instead}. See docs/mlflow.md, 'A tracking server for a team or a cluster'.")


def auth_failure(status: int, uri: str, environ=None) -> str:
    """What to say when the tracking server answers 401 (who are you?) or 403 (not
    allowed): which variables to set, with the user name that was sent, if any."""
    environ = os.environ if environ is None else environ
    user = environ.get(USERNAME_VAR)
    shown = without_credentials(uri)
    if status == 401:
        if not user and not environ.get(TOKEN_VAR):
            return (f"the MLflow tracking server at {shown} asks for credentials (HTTP 401) and none were "
                    f"given: set {USERNAME_VAR} and {PASSWORD_VAR} in the environment of the Snakemake "
                    "process to your user on that server")
        who = f"user {user!r}" if user else f"the token in {TOKEN_VAR}"
        return (f"the MLflow tracking server at {shown} did not accept {who} (HTTP 401): check "
                f"{USERNAME_VAR} and {PASSWORD_VAR} in the environment of the Snakemake process")
    who = f"user {user!r}" if user else "this user"
    return (f"the MLflow tracking server at {shown} does not let {who} do this (HTTP 403): ask the server's "
            "admin for MANAGE permission on the experiment (logging replaces and deletes runs), or set "
            f"{USERNAME_VAR} and {PASSWORD_VAR} to a user who has it")
