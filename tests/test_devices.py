"""GPU leases: exclusive slots across processes, freed when a holder is killed.

The lease is plain file locking, so it is tested here with GPU ids "0" and "1" on a
machine without GPUs: what is under test is which process gets which slot.
"""

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_audit import devices

ROOT = Path(__file__).resolve().parents[1]


def _hold(lock_dir, gpus, per_gpu, hold_s, out):
    with devices.gpu_lease(gpus, per_gpu, lock_dir, poll_s=0.02) as lease:
        start = time.monotonic()
        assert os.environ["CUDA_VISIBLE_DEVICES"] == lease.gpu
        time.sleep(hold_s)
        end = time.monotonic()
    with open(out, "a") as f:
        f.write(json.dumps({"gpu": lease.gpu, "slot": lease.slot, "start": start, "end": end}) + "\n")


def test_no_two_jobs_share_a_slot(tmp_path):
    out = tmp_path / "holds.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(tmp_path / "locks", ["0", "1"], 2, 0.3, out)) for _ in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    holds = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(holds) == 10
    assert {(h["gpu"], h["slot"]) for h in holds} <= {("0", 0), ("1", 0), ("0", 1), ("1", 1)}
    for i, a in enumerate(holds):
        for b in holds[i + 1:]:
            if (a["gpu"], a["slot"]) == (b["gpu"], b["slot"]):
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
    # at most 4 at once, and they did overlap (the slots are really shared out)
    events = sorted([(h["start"], 1) for h in holds] + [(h["end"], -1) for h in holds])
    running = peak = 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    assert 2 <= peak <= 4


def test_jobs_spread_over_gpus_before_packing(tmp_path):
    with devices.gpu_lease(["0", "1"], 2, tmp_path, set_env=False) as a:
        with devices.gpu_lease(["0", "1"], 2, tmp_path, set_env=False) as b:
            assert {a.gpu, b.gpu} == {"0", "1"} and a.slot == b.slot == 0


HOLDER = """
import sys, time
sys.path.insert(0, {lib!r})
from mnist_audit import devices
with devices.gpu_lease(["0"], 1, {locks!r}):
    print("held", flush=True)
    time.sleep(600)
"""


def test_killed_holder_frees_its_slot(tmp_path):
    locks = tmp_path / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(lib=str(ROOT / "workflow"), locks=str(locks))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match="no free GPU slot"):
            with devices.gpu_lease(["0"], 1, locks, poll_s=0.05, timeout_s=0.5, set_env=False):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with devices.gpu_lease(["0"], 1, locks, timeout_s=5, set_env=False) as lease:
            assert (lease.gpu, lease.slot) == ("0", 0)
    finally:
        holder.kill()
        holder.wait()


def test_detect_gpus_respects_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert devices.detect_gpus() == ["0", "2"]
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert devices.detect_gpus() == []


def test_bad_lease_arguments():
    with pytest.raises(ValueError, match="at least one GPU"):
        with devices.gpu_lease([], 1):
            pass
    with pytest.raises(ValueError, match="jobs_per_gpu must be >= 1"):
        with devices.gpu_lease(["0"], 0):
            pass
