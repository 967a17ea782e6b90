"""Where a training step's time goes: TensorFlow's profiler on the pipeline's step and
on the author's TF1 step, side by side, summed per kernel.

    python -m mnist_audit.profiling thomas --data results/data/mnist/mnist.npz [--steps 30]

Both sides train the same architecture on the same batches, interleaved (each side
``repeats`` times, in alternating order), in one process with one thread each; the profiler's host trace is read back (XSpace
protobuf) and every TensorFlow op event is summed by kernel (``_FusedConv2D``,
``Conv2DBackpropFilter``, ``ResourceApplyAdam``, ...). Prints a Markdown table of
milliseconds per step, largest first.
"""

from __future__ import annotations

import argparse
import collections
import glob
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import data as mdata
from . import registry


_CONTAINERS = {"While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall", "StatefulPartitionedCall"}


def kernel_times(logdir: str | Path) -> dict[str, float]:
    """Picoseconds per kernel type over every TF op event of the host trace in ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    out: collections.Counter = collections.Counter()
    for path in glob.glob(str(Path(logdir) / "**" / "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            for line in plane.lines:
                for ev in line.events:
                    name = plane.event_metadata[ev.metadata_id].name
                    if ":" not in name or " " in name or "::" in name:  # a TF op is "scope/op:Kernel"
                        continue
                    kernel = name.rsplit(":", 1)[1]
                    if kernel not in _CONTAINERS:  # their time is their ops'
                        out[kernel] += ev.duration_ps
    return dict(out)


def _profiled(fn, logdir: str) -> dict[str, float]:
    import tensorflow as tf

    tf.profiler.experimental.start(logdir)
    try:
        fn()
    finally:
        tf.profiler.experimental.stop()
    return kernel_times(logdir)


def profile(arch: str, data_path: str | Path, steps: int = 30, warmup: int = 10, threads: int = 1,
            repeats: int = 4):
    """(table, totals): ms per step per kernel for the pipeline and the original, and
    each side's total profiled op time per step."""
    import pandas as pd

    from . import bench_levers
    from .loops import DataOrder, Feeder

    split = mdata.load_split(Path(data_path))
    recipe = registry.resolve_recipe(arch)
    b = recipe.batch_size
    n = min(len(split["x_train"]), (warmup + steps) * b * 2)
    x, y = mdata.as_float(split["x_train"][:n]), split["y_train"][:n].astype(np.int32)
    order = DataOrder(n, b, recipe.shuffle, recipe.drop_last, seed=0)
    model = bench_levers.fresh_model(arch, recipe)
    feeder = Feeder(x, y, resident=True)
    original, sess = bench_levers.original_loop(arch, x, y, b, threads)
    idx_warm, idx = order.batch_indices(0, warmup), order.batch_indices(warmup, steps)
    feeder.fit(model, idx_warm, b)
    original(idx_warm)
    runs = {"pipeline": lambda: feeder.fit(model, idx, b), "original": lambda: original(idx)}
    sides: dict[str, collections.Counter] = {side: collections.Counter() for side in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):  # interleaved, in alternating order: both sides see the same machine
            for side in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
                sides[side].update(_profiled(runs[side], f"{tmp}/{side}{rep}"))
    sess.close()
    steps *= repeats
    kernels = sorted(set(sides["pipeline"]) | set(sides["original"]),
                     key=lambda k: -max(sides["pipeline"].get(k, 0), sides["original"].get(k, 0)))
    table = pd.DataFrame({
        "kernel": kernels,
        **{f"{side}_ms_per_step": [t.get(k, 0) / 1e9 / steps for k in kernels] for side, t in sides.items()},
    })
    totals = {side: sum(t.values()) / 1e9 / steps for side, t in sides.items()}
    return table, totals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("arch", choices=[n for n in registry.list_models()  # against the TF1 programs
                                    if registry.get_architecture(n).original == "tf1 graph"])
    p.add_argument("--data", required=True, help="the prepared split (results/data/mnist/mnist.npz)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=15, help="kernels to print")
    a = p.parse_args(argv)
    from . import devices

    devices.configure_backend(a.threads)
    table, totals = profile(a.arch, a.data, a.steps, threads=a.threads)
    from .tables import markdown_table

    print(f"{a.arch}, {a.steps} steps, {a.threads} thread(s): op time per step "
          f"{totals['pipeline']:.1f} ms pipeline, {totals['original']:.1f} ms original\n")
    print(markdown_table(table.head(a.top), {"pipeline_ms_per_step": ".2f", "original_ms_per_step": ".2f"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
