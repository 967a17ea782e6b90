"""Which device a training job runs on: GPU detection, per-GPU leases, backend set-up.

Snakemake schedules jobs by ``resources: gpu=1`` but does not say *which* GPU a
local job may use (snakemake issue #281), so each job takes a lease: an exclusive
``flock`` on one of ``jobs_per_gpu`` slot files per GPU. The kernel drops the lock
when the process exits, however it exits, so a killed job never holds a slot.
Under SLURM (or wherever CUDA_VISIBLE_DEVICES is already set by a scheduler) the
assignment is the scheduler's and no lease is taken.

Everything here runs before Keras is imported: CUDA_VISIBLE_DEVICES and the
thread settings only take effect if set first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def detect_gpus() -> list[str]:
    """Indices of the NVIDIA GPUs this process may use ([] when there are none)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [g.strip() for g in visible.split(",") if g.strip()]
        return [] if ids in ([], ["-1"]) else ids
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction-set extensions that decide which oneDNN/Eigen kernels run, hence the
# low bits of a result: the same seed gives the same numbers only on the same kind.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU kind: vendor, family/model/stepping, model name and the ISA extensions.

    ``kind`` ("AuthenticAMD 25/17 avx512+bf16", "GenuineIntel 6/143 avx512+amx") is
    the key runs are compared exactly by: the model name alone can be generic ("AMD
    EPYC"). Reads /proc/cpuinfo (or the text given); unknown fields are "unknown".
    Read from this machine, it also gives the caches (``cpu_caches``).
    """
    read_machine = cpuinfo is None
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ISA_FLAGS if f in flags]
    vendor = fields.get("vendor_id", platform.machine() or "unknown")
    family, model = fields.get("cpu family", "unknown"), fields.get("model", "unknown")
    if "avx512f" in flags:
        level = "avx512" + ("+amx" if "amx_tile" in flags else "") + ("+bf16" if "avx512_bf16" in flags else "")
    elif "avx2" in flags:
        level = "avx2"
    else:
        level = "baseline"
    info = {
        "vendor": vendor,
        "family": family,
        "model": model,
        "stepping": fields.get("stepping", "unknown"),
        "model_name": fields.get("model name", platform.processor() or platform.machine()),
        "isa": isa,
        "kind": f"{vendor} {family}/{model} {level}",
    }
    if read_machine:
        info["caches"] = cpu_caches()
    return info


def cpu_caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, str]:
    """The first CPU's caches as the kernel reports them from CPUID ({"L1d": "32K",
    "L1i": "32K", "L2": "1024K", "L3": "32768K"}; {} where unreadable). Not part of the
    kind: Eigen sizes its GEMM blocks from them (TensorFlow's Eigen contractions, the
    ``eigen`` platform's kernels), so they are recorded beside it (docs/platforms.md)."""
    out: dict[str, str] = {}
    for index in sorted(root.glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


@dataclasses.dataclass
class Lease:
    gpu: str
    slot: int
    path: Path


def default_lock_dir() -> Path:
    # Node-local on purpose: a lease is about this machine's GPUs.
    return Path(tempfile.gettempdir()) / f"mnist-audit-gpu-locks-{os.getuid()}"


@contextlib.contextmanager
def gpu_lease(
    gpus: Sequence[str],
    jobs_per_gpu: int = 1,
    lock_dir: Path | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    set_env: bool = True,
) -> Iterator[Lease]:
    """Hold one of ``len(gpus) * jobs_per_gpu`` slots until the block exits.

    Slots fill GPU by GPU in round-robin (slot 0 of every GPU before slot 1), so
    jobs spread over the GPUs before they pack. Blocks while all slots are taken;
    raises TimeoutError after ``timeout_s``. Sets CUDA_VISIBLE_DEVICES to the
    leased GPU when ``set_env``.
    """
    if not gpus:
        raise ValueError("gpu_lease needs at least one GPU id")
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for slot in range(jobs_per_gpu):
            for gpu in gpus:
                path = lock_dir / f"gpu{gpu}.slot{slot}.lock"
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    os.close(fd)
                    if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        continue
                    raise
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                    if set_env:
                        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
                    yield Lease(gpu=str(gpu), slot=slot, path=path)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU slot among {len(gpus)} GPU(s) x {jobs_per_gpu} job(s) "
                f"after {timeout_s} s (locks in {lock_dir})"
            )
        time.sleep(poll_s)


def scheduler_assigned_gpus() -> bool:
    """True when a cluster scheduler already chose this job's GPUs."""
    return bool(os.environ.get("SLURM_JOB_ID")) and "CUDA_VISIBLE_DEVICES" in os.environ


# Packages Keras (or TensorFlow) imports at start-up only for features a training job
# never uses: scikit-learn for Keras's sklearn wrappers, matplotlib for its plotting
# utilities, and JAX for TensorFlow Lite's JAX interop (when the backend is not JAX).
# Each import is optional there (guarded by ``except ImportError``), and together
# they are a large part of the job's start on a small CPU: results/bench/bench.md measures it.
UNUSED_IN_TRAINING = ("sklearn", "matplotlib", "jax")


def lean_imports(backend: str | None = None) -> list[str]:
    """Make the packages in ``UNUSED_IN_TRAINING`` unimportable in this process.

    For the entry point of a training process only, before Keras is imported: a
    ``None`` in ``sys.modules`` makes ``import`` raise ImportError (the documented
    way to block a module), so Keras and TensorFlow skip those optional features.
    A package already imported is left alone. Returns the names blocked.
    """
    import sys

    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    blocked = []
    for name in UNUSED_IN_TRAINING:
        if name == "jax" and backend == "jax":
            continue
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            blocked.append(name)
    return blocked


def configure_backend(threads: int | None, memory_growth: bool = True) -> dict:
    """Set threads, GPU memory behaviour and determinism; import Keras. Call once, early.

    Returns a description of the device the job will run on.
    """
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    gpus = detect_gpus()
    if backend == "jax":
        if memory_growth:
            os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if threads:
            os.environ["XLA_FLAGS"] = (
                os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=true"
                f" intra_op_parallelism_threads={threads}"
            ).strip()
    import keras  # noqa: F401  (after the environment is set)

    visible: list[str] = []  # the GPUs the backend itself sees, by model name
    if backend == "tensorflow":
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        for dev in tf.config.list_physical_devices("GPU"):
            if memory_growth:
                tf.config.experimental.set_memory_growth(dev, True)
            visible.append(tf.config.experimental.get_device_details(dev).get("device_name", dev.name))
        # Same seed, same hardware -> same numbers (at some speed cost on GPU).
        tf.config.experimental.enable_op_determinism()
    elif backend == "jax":
        import jax

        visible = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    cpu = cpu_info()
    device = {"backend": backend, "threads": threads, "cpu_model": cpu_model(), "cpu_kind": cpu["kind"],
              "logical_cpus": os.cpu_count(), "assigned_gpus": ",".join(gpus)}
    if visible:
        device.update(kind="gpu", name=visible[0], gpu_count=len(visible))
    else:
        # A GPU id may be assigned (by a lease or a scheduler) that the backend cannot
        # use, e.g. a CPU-only TensorFlow build: the job then really runs on the CPU.
        n = threads or os.cpu_count()
        device.update(kind="cpu", name=f"{device['cpu_model']} ({n} thread{'s' if n != 1 else ''})")
    return device
