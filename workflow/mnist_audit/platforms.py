"""Platforms: the execution settings a run's numbers depend on besides its recipe and seed.

The same program and seed give bit-identical numbers on one CPU kind with one set of
kernels, and other low bits elsewhere (docs/benchmark.md). Most of that is a setting, not
only a chip: oneDNN can be capped to an older instruction set, TensorFlow can run its
own (Eigen) kernels instead of oneDNN's, a job can use two threads (another reduction
order), and Keras can run the same model on JAX (XLA's CPU kernels). A *platform* is one
such named set of settings; with the CPU kind it ran on, it is part of a run's identity,
like its variant (config key ``platforms``; ``default`` changes nothing).

A training job applies its platform before TensorFlow or Keras is imported
(``apply``), refuses one this machine cannot honour (a cap above the CPU's instruction
set, JAX not installed, two threads on one CPU) with a message naming the setting, and
records what actually ran (``Session.record``): the instruction set oneDNN reports, the
oneDNN implementations it created, the backend and the thread count. oneDNN reports
them on its verbose channel (``ONEDNN_VERBOSE=profile_create``: one line per primitive
created, never per step), which is written to the process's standard output: the job
diverts that file descriptor to a file while it trains and reads it at the end.

The JAX platform starts from the TensorFlow port's initial weights for the seed (drawn
by a TensorFlow process: ``tensorflow_initial_weights``) and feeds the same batches in
the same order, so a seed is a pair across backends; its dropout masks come from JAX's
random streams, so for the architectures with dropout the pair differs by more than
kernels (``DROPOUT_DIFFERS``; the report says so).

A TensorFlow run also records a fingerprint of the CPU's reciprocal approximation
(``reciprocal_probe``): TensorFlow's Reciprocal, which is the gradient of Log and Eigen's
``inverse()`` (its Softmax kernel), is the CPU's RCPPS estimate refined by one Newton
step, and RCPPS is specified only to a relative error of 1.5 * 2**-12, so it is a place
where two CPU kinds can give other bits with the same kernels.

Pure standard library at import: the Snakefile reads ``PLATFORMS`` for the config
schema and the wildcard constraint.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

DEFAULT = "default"


class PlatformError(RuntimeError):
    """A platform this machine cannot honour, or settings that contradict it."""


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA), each with the CPU flags it needs
# (/proc/cpuinfo) and the words oneDNN's verbose channel reports when it runs at that cap
# (read off oneDNN 3.7 in TensorFlow 2.21). A cap at or below the CPU's best set is
# honoured; a cap above it makes oneDNN fall back to the best set silently, which is
# why the job checks both before and after it trains.
ISA_CAPS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "AVX2": (("avx2", "fma"), "Intel AVX2"),
    "AVX2_VNNI": (("avx2", "fma", "avx_vnni"), "Intel AVX2 with Intel DL Boost"),
    "AVX512_CORE": (("avx512f", "avx512bw", "avx512vl", "avx512dq"),
                    "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"),
    "AVX512_CORE_VNNI": (("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"),
                         "Intel AVX-512 with Intel DL Boost"),
    "AVX512_CORE_BF16": (("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"),
                         "Intel AVX-512 with Intel DL Boost and bfloat16 support"),
    "AVX512_CORE_FP16": (("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                          "avx512_fp16"), "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support"),
    "AVX512_CORE_AMX": (("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                         "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"),
                        "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with "
                        "bfloat16 and 8-bit integer support"),
    "AVX512_CORE_AMX_FP16": (("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                              "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16"),
                             "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with "
                             "bfloat16, 8-bit integer and float16 support"),
}

# The environment variables that choose kernels: a platform sets them, and a job refuses
# to run under a platform whose name would hide one set by hand.
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")

# Architectures whose dropout masks come from the backend's random streams: on JAX their
# masks differ from TensorFlow's for the same seed (the weights and batches are shared).
DROPOUT_DIFFERS = ("jerkic", "cnn_tutorial", "zaccone")


@dataclasses.dataclass(frozen=True)
class Platform:
    name: str
    description: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # set before TensorFlow is imported
    threads: int | None = None  # None: the job's own thread count
    backend: str | None = None  # None: the environment's (KERAS_BACKEND; TensorFlow if unset)

    @property
    def isa_cap(self) -> str | None:
        return self.env.get("ONEDNN_MAX_CPU_ISA")

    def settings(self) -> dict:
        """What this platform sets, as recorded with every run of it."""
        out: dict = {"env": dict(self.env), "backend": self.backend or "as the environment has it"}
        if self.threads:
            out["threads"] = self.threads
        return out


def _cap(cap: str) -> Platform:
    return Platform(cap.lower(), f"oneDNN capped to {cap} (ONEDNN_MAX_CPU_ISA={cap}): other convolution and "
                                 "matrix-multiply kernels", {"ONEDNN_MAX_CPU_ISA": cap}, backend="tensorflow")


PLATFORMS: Mapping[str, Platform] = {p.name: p for p in (
    Platform(DEFAULT, "the machine as it is: TensorFlow with oneDNN at the CPU's best instruction set, "
                      "the job's threads (one in the default profile)"),
    *(_cap(cap) for cap in ISA_CAPS),
    Platform("eigen", "oneDNN's TensorFlow operations off (TF_ENABLE_ONEDNN_OPTS=0): TensorFlow's own Eigen "
                      "kernels (their matrix multiplies still call oneDNN's sgemm)", {"TF_ENABLE_ONEDNN_OPTS": "0"},
             backend="tensorflow"),
    Platform("threads2", "two threads per job instead of one: another order of the parallel reductions",
             threads=2),
    Platform("jax", "Keras on JAX (XLA's CPU kernels), from the TensorFlow port's initial weights and "
                    "batches for the seed", {"KERAS_BACKEND": "jax"}, backend="jax"),
)}


def list_platforms() -> list[str]:
    return list(PLATFORMS)


def get_platform(name: str) -> Platform:
    try:
        return PLATFORMS[name]
    except (KeyError, TypeError):
        raise PlatformError(f"unknown platform {name!r}; known: {', '.join(PLATFORMS)}") from None


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The first processor's flags in /proc/cpuinfo (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def why_not_honoured(platform: Platform, threads: int | None = None, flags: set[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> str | None:
    """Why this machine cannot run ``platform`` as named (None: it can)."""
    environ = os.environ if environ is None else environ
    flags = cpu_flags() if flags is None else flags
    for var in KERNEL_ENV:
        if var in environ and environ[var] != platform.env.get(var):
            return (f"{var}={environ[var]} is set in the environment, but platform {platform.name} "
                    f"{'sets ' + var + '=' + platform.env[var] if var in platform.env else 'does not set it'}: "
                    f"unset it, or name the platform that sets it")
    asked = environ.get("KERAS_BACKEND")
    if platform.backend and asked and asked != platform.backend and "KERAS_BACKEND" not in platform.env:
        return (f"KERAS_BACKEND={asked} is set in the environment, but platform {platform.name} sets "
                f"TensorFlow's kernels: unset it (platform jax runs Keras on JAX)")
    if platform.isa_cap:
        need, _ = ISA_CAPS[platform.isa_cap]
        missing = [f for f in need if f not in flags]
        if missing:
            from .devices import cpu_info

            return (f"platform {platform.name} sets ONEDNN_MAX_CPU_ISA={platform.isa_cap}, which this CPU "
                    f"({cpu_info()['kind']}) cannot honour: it lacks {', '.join(missing)}, and oneDNN would "
                    "silently run its best instruction set instead; choose a lower cap")
    wanted = platform.threads
    if wanted and (os.cpu_count() or 1) < wanted:
        return (f"platform {platform.name} runs {wanted} threads, but this machine has "
                f"{os.cpu_count()} logical CPU(s)")
    if platform.backend == "jax":
        import importlib.util

        if importlib.util.find_spec("jax") is None:
            return "platform jax needs JAX (pip install jax), which is not installed"
    return None


# --------------------------------------------------------------------- one job


class Session:
    """A training job's platform: applied before TensorFlow is imported, then its record.

    ``apply`` sets the environment and starts listening to oneDNN's verbose channel (the
    process's standard output, diverted to a file); ``record`` stops listening and
    returns what ran. A job runs one session.
    """

    def __init__(self, name: str = DEFAULT, threads: int | None = None):
        self.platform = get_platform(name)
        self.threads = self.platform.threads or threads
        self.backend = self.platform.backend or "tensorflow"  # set by apply
        self._log: Path | None = None
        self._saved_stdout: int | None = None

    def apply(self) -> None:
        reason = why_not_honoured(self.platform, self.threads)
        if reason:
            raise PlatformError(reason)
        for k, v in self.platform.env.items():
            os.environ[k] = v
        self.backend = self.platform.backend or os.environ.get("KERAS_BACKEND", "tensorflow")
        if self.backend == "tensorflow" and "ONEDNN_VERBOSE" not in os.environ:
            os.environ["ONEDNN_VERBOSE"] = "profile_create"  # one line per primitive created
            fd, path = tempfile.mkstemp(prefix="mnist-audit-onednn-", suffix=".log")
            sys.stdout.flush()
            self._saved_stdout = os.dup(1)
            os.dup2(fd, 1)
            os.close(fd)
            self._log = Path(path)

    def _restore(self) -> str:
        if self._saved_stdout is None:
            return ""
        sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(self._saved_stdout, 1)
        os.close(self._saved_stdout)
        self._saved_stdout = None
        text = self._log.read_text(errors="replace")
        self._log.unlink(missing_ok=True)
        # what was not oneDNN's goes where it was headed
        other = "".join(line + "\n" for line in text.splitlines() if not line.startswith("onednn_verbose"))
        if other:
            sys.stdout.write(other)
            sys.stdout.flush()
        return text

    def close(self) -> None:
        """Give the standard output back (an error path; ``record`` does it too)."""
        self._restore()

    def record(self, backend: str) -> dict:
        """What ran: the platform's settings, the backend, threads, and oneDNN's report;
        raises PlatformError if oneDNN did not run at the cap the platform set."""
        ran: dict = {"backend": backend, "threads": self.threads}
        onednn = parse_onednn_verbose(self._restore()) if self._log else None
        if onednn is not None:
            ran["onednn"] = onednn
        if backend == "tensorflow":
            ran["reciprocal"] = reciprocal_probe()
        if backend == "jax":
            import jax

            ran["jax"] = {"version": jax.__version__, "devices": sorted({d.device_kind for d in jax.devices()})}
        self.check(ran)
        return {"name": self.platform.name, "settings": self.platform.settings(), "ran": ran}

    def check(self, ran: Mapping) -> None:
        """The record against the platform: the cap and the oneDNN switch took effect."""
        p, onednn = self.platform, ran.get("onednn") or {}
        if p.backend is not None and p.backend != ran["backend"]:
            raise PlatformError(f"platform {p.name} runs Keras on {p.backend}, but the job ran {ran['backend']}")
        if p.isa_cap and onednn.get("isa") and onednn["isa"] != ISA_CAPS[p.isa_cap][1]:
            raise PlatformError(f"platform {p.name} sets ONEDNN_MAX_CPU_ISA={p.isa_cap}, but oneDNN ran "
                                f"{onednn['isa']!r}: this machine cannot honour the cap")
        if p.env.get("TF_ENABLE_ONEDNN_OPTS") == "0" and onednn.get("primitives"):
            raise PlatformError(f"platform {p.name} turns oneDNN's operations off, but oneDNN created "
                                f"{', '.join(onednn['primitives'])} primitives")


PROBE_SIZE = 4096  # the float32 mantissas 1 + k/4096: RCPPS's 12-bit table, read 4 times over


def reciprocal_probe() -> dict:
    """TensorFlow's Reciprocal of the float32s ``1 + k / PROBE_SIZE`` (k < PROBE_SIZE):
    the digest of its results and how many differ from the correctly rounded ``1 / x``.

    Eigen computes it from the CPU's RCPPS estimate with one Newton step (no FMA): on
    AMD EPYC 25/17 that formula, applied to RCPPS by hand, gives TensorFlow 2.21's results
    on 1,048,576 of 1,048,576 inputs (docs/platforms.md). RCPPS is specified only to a
    relative error of 1.5 * 2**-12, and one step leaves the result within 2 ulp of 1/x,
    its last bit depending on the estimate: a CPU kind with another estimate gives another
    digest. Log's gradient is this op (mlp's loss takes logs; the ports trained on logits
    do not), so where the digests differ such a run cannot repeat bit for bit."""
    import hashlib

    import numpy as np
    import tensorflow as tf

    x = (1 + np.arange(PROBE_SIZE, dtype=np.float32) / np.float32(PROBE_SIZE)).astype(np.float32)
    got = tf.math.reciprocal(tf.constant(x)).numpy()
    exact = np.float32(1) / x
    return {"digest": hashlib.sha256(got.tobytes()).hexdigest()[:16], "inexact": int((got != exact).sum()),
            "of": PROBE_SIZE}


def _flush_c_stdio() -> None:
    """Flush the C library's buffered streams (oneDNN prints with printf)."""
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def parse_onednn_verbose(text: str) -> dict:
    """oneDNN's verbose lines: its version, the instruction set it reports, its thread
    count, and the primitive kinds and implementations it created (sorted, each once)."""
    out: dict = {"version": None, "isa": None, "threads": None, "primitives": [], "implementations": []}
    prims, impls = set(), set()
    for line in text.splitlines():
        if not line.startswith("onednn_verbose"):
            continue
        fields = line.split(",")
        if "info" in fields[:3]:
            rest = ",".join(fields[fields.index("info") + 1:])
            if rest.startswith("oneDNN v"):
                out["version"] = rest.split()[1]
            elif rest.startswith("cpu,isa:"):
                out["isa"] = rest[len("cpu,isa:"):].strip()
            elif rest.startswith("cpu,runtime:"):
                m = re.search(r"nthr:(\d+)", rest)
                out["threads"] = int(m.group(1)) if m else None
        else:
            # onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,brg_conv_fwd:avx512_core,...
            at = next((i for i, f in enumerate(fields[:5]) if f.startswith("create")), None)
            if at is not None and len(fields) > at + 3:
                prims.add(fields[at + 2])
                impls.add(f"{fields[at + 2]} {fields[at + 3]}")
    out["primitives"], out["implementations"] = sorted(prims), sorted(impls)
    return out


# --------------------------------------------------------------------- JAX's starting point


def tensorflow_initial_weights(arch: str, variant: str, seed: int) -> list:
    """The TensorFlow port's initial weights for ``seed`` (``model.get_weights()`` order),
    drawn in a TensorFlow process as ``train.train_run`` draws them, for a run on another
    backend to start from. Raises PlatformError when TensorFlow is not installed."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="mnist-audit-init-") as tmp:
        out = Path(tmp) / "weights.npz"
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        for var in (*KERNEL_ENV, "ONEDNN_VERBOSE"):
            env.pop(var, None)  # initialisers draw the same numbers whatever the kernels
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                             *filter(None, [env.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "mnist_audit.platforms", "draw", arch, variant, str(seed), str(out)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise PlatformError(f"could not draw the TensorFlow port's initial weights for {arch}/{variant} "
                                f"seed {seed} (platform jax needs TensorFlow installed beside JAX): {tail[0]}")
        with np.load(out) as z:
            return [z[f"w{i}"] for i in range(len(z.files))]


def _draw(arch: str, variant: str, seed: int, out: str) -> None:
    import keras
    import numpy as np

    from . import models

    keras.utils.set_random_seed(seed)
    weights = models.build_model(arch, variant).get_weights()
    np.savez(out, **{f"w{i}": w for i, w in enumerate(weights)})


if __name__ == "__main__":  # python -m mnist_audit.platforms draw ARCH VARIANT SEED OUT.npz
    if len(sys.argv) == 6 and sys.argv[1] == "draw":
        _draw(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: python -m mnist_audit.platforms draw ARCH VARIANT SEED OUT.npz")
