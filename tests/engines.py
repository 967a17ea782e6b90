"""Real engines for integration tests: a single-node SLURM cluster, PostgreSQL, an MLflow server.

Each is started from Debian's packages (slurm-wlm, munge, postgresql) in a temporary
folder, bound to this machine only, and stopped afterwards. ``missing_*`` say why an
engine cannot run here, so tests can skip with that reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MARK = "# written by the mnist-audit test suite"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout} s\n{tail}")


# ----------------------------------------------------------------------------- SLURM

def missing_slurm() -> str | None:
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the single-node SLURM cluster needs root (slurmd runs jobs as their user)"
    for path in (SLURM_CONF, GRES_CONF):
        if path.exists() and MARK not in path.read_text():
            return f"{path} belongs to a real cluster; not touching it"
    return None


class SlurmCluster:
    """slurmctld + slurmd on this host with two fake GPUs (GRES), munge on a private socket.

    The config must live at /etc/slurm/slurm.conf: the jobstep executor plugin drops
    every SLURM_* variable (SLURM_CONF included) before its inner ``srun``.
    """

    def __init__(self):
        # munged insists that every folder above its socket is world-executable,
        # which pytest's private temp folders are not.
        self.root = Path(tempfile.mkdtemp(prefix="mnist-audit-slurm-"))

    def __enter__(self):
        r = self.root
        for d in ("state", "spool", "log", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)
        munge = pwd.getpwnam("munge")
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        for p in (r / "munge", key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o600)
        os.chmod(r / "munge", 0o755)
        self.socket = r / "munge" / "munge.socket"
        subprocess.run(
            ["runuser", "-u", "munge", "--", "/usr/sbin/munged", f"--key-file={key}", f"--socket={self.socket}",
             f"--pid-file={r / 'munge' / 'munged.pid'}", f"--log-file={r / 'munge' / 'munged.log'}",
             f"--seed-file={r / 'munge' / 'munge.seed'}"], check=True)
        host = socket.gethostname().split(".")[0]
        self.ctld_port, self.d_port = free_port(), free_port()
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(f"""{MARK}
ClusterName=audit
SlurmctldHost={host}
SlurmctldPort={self.ctld_port}
SlurmdPort={self.d_port}
AuthType=auth/munge
AuthInfo=socket={self.socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
GresTypes=gpu
NodeName={host} CPUs={os.cpu_count()} RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        GRES_CONF.write_text(f"{MARK}\nAutoDetect=off\nNodeName={host} Name=gpu File=/dev/null\n"
                             f"NodeName={host} Name=gpu File=/dev/zero\n")
        subprocess.run(["slurmctld"], check=True)
        subprocess.run(["slurmd"], check=True)
        _wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True,
                                               text=True).stdout, 60, "SLURM", r / "log" / "slurmctld.log")
        return self

    def __exit__(self, *exc):
        subprocess.run(["scancel", "--full", "--user=root"], capture_output=True)
        for pid_file in (self.root / "slurmd.pid", self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(1)
        for path in (SLURM_CONF, GRES_CONF):
            if path.exists() and MARK in path.read_text():
                path.unlink()
        shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------- PostgreSQL + MLflow

def _pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def missing_postgres() -> str | None:
    if _pg_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no 'postgres' user to run the server as"
    return None


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust auth), with database ``mlflow``."""

    def __init__(self):
        # The server runs as 'postgres', which cannot enter pytest's private temp folders.
        self.root, self.bin = Path(tempfile.mkdtemp(prefix="mnist-audit-pg-")), _pg_bin()

    def _as_owner(self, *cmd):
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def __enter__(self):
        self.data = self.root / "pgdata"
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.root, pg.pw_uid, pg.pw_gid)
        os.chmod(self.root, 0o755)
        self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8")
        self.port = free_port()
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w",
                       "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")
        self._as_owner(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"
        return self

    def __exit__(self, *exc):
        try:
            self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` (or, with ``ui=True``, ``mlflow ui``, as the README starts it) on
    127.0.0.1 with a database backend and a local artifact root, ended by its PID; ``cwd``:
    the folder it starts in (a workspace, whose relative artifact paths it reads)."""

    def __init__(self, backend_uri: str, artifacts: Path, port: int | None = None, ui: bool = False,
                 cwd: Path | None = None, app_name: str | None = None, env: dict | None = None):
        self.backend_uri, self.artifacts, self.ui, self.cwd = backend_uri, Path(artifacts), ui, cwd
        self.app_name, self.env = app_name, env or {}
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.log = open(self.artifacts.parent / f"mlflow-server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "ui" if self.ui else "server", "--backend-store-uri", self.backend_uri,
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             *([] if self.ui else ["--workers", "2"]), *(["--app-name", self.app_name] if self.app_name else [])],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd,
            # no job runner: it serves GenAI jobs (none here) and starts 7 processes of 3 CPU-seconds each
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env})

        def healthy():
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait(healthy, 90, "mlflow server", Path(self.log.name))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class AuthMlflowServer(MlflowServer):
    """``mlflow server --app-name basic-auth`` (MLflow's own authentication), its user
    store in ``root`` through MLflow's auth config file (``MLFLOW_AUTH_CONFIG_PATH``):
    the admin's password set for the first start (MLflow has no default), and
    ``default_permission`` NO_PERMISSIONS, so a user reads only what they created or
    were granted. ``admin``: (user, password), to create users with."""

    def __init__(self, backend_uri: str, artifacts: Path, root: Path, admin_password: str,
                 flask_secret: str, **kwargs):
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.auth_db = root / "basic_auth.db"
        ini = root / "basic_auth.ini"
        ini.write_text("[mlflow]\n"
                       "default_permission = NO_PERMISSIONS\n"
                       f"database_uri = sqlite:///{self.auth_db}\n"
                       "admin_username = admin\n"
                       "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        self.admin = ("admin", admin_password)
        super().__init__(backend_uri, artifacts, app_name="basic-auth", env={
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,  # read once, when the user store is created
            "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret,  # one key for both workers (CSRF)
        }, **kwargs)
