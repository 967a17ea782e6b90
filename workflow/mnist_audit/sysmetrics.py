"""System metrics of a training job, sampled while it trains, logged to MLflow afterwards.

MLflow's own monitor (``mlflow.start_run(log_system_metrics=True)``) samples inside a
live run; a training job here never talks to the tracking store (a server that is down
must not cost a result), so a background thread samples the same quantities, under
the same names, into the run folder's ``system_metrics.csv``, and the logging step
sends them as ``system/<name>`` metrics (the run page's "System metrics" tab).

Reading /proc costs nothing measurable and touches no training state: the numbers a
run reports are the same with or without it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

FILE = "system_metrics.csv"
INTERVAL_S = 10.0
# MLflow's names (mlflow.system_metrics.metrics.cpu_monitor), then this process's own
COLUMNS = ["wall_seconds", "cpu_utilization_percentage", "system_memory_usage_megabytes",
           "system_memory_usage_percentage", "process_cpu_percentage", "process_memory_rss_megabytes",
           "load_average_1m"]


class Sampler:
    """``with Sampler() as s: ...``; ``s.rows`` holds one sample per ``interval_s`` (and one at
    each end), ``wall_seconds`` counted from ``offset_s`` (a resumed job's earlier time)."""

    def __init__(self, interval_s: float = INTERVAL_S, offset_s: float = 0.0):
        self.interval_s, self.offset_s = interval_s, offset_s
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)

    def _sample(self, first: bool = False) -> None:
        import psutil

        mem = psutil.virtual_memory()
        nan = float("nan")  # the first sample has no interval to measure CPU use over
        self.rows.append({
            "wall_seconds": self.offset_s + time.perf_counter() - self._t0,
            "cpu_utilization_percentage": nan if first else psutil.cpu_percent(),
            "system_memory_usage_megabytes": mem.used / 1e6,
            "system_memory_usage_percentage": mem.used / mem.total * 100,
            "process_cpu_percentage": nan if first else self._proc.cpu_percent(),
            "process_memory_rss_megabytes": self._proc.memory_info().rss / 1e6,
            "load_average_1m": os.getloadavg()[0],
        })

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "Sampler":
        import psutil

        self._t0 = time.perf_counter()
        self._proc = psutil.Process()
        psutil.cpu_percent()  # the first call only starts the counters
        self._proc.cpu_percent()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=COLUMNS)


def read(run_dir: str | Path):
    """The run's samples (a DataFrame), or None for a run recorded without them."""
    import pandas as pd

    path = Path(run_dir) / FILE
    return pd.read_csv(path) if path.exists() else None
