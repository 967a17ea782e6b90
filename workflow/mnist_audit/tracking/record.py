"""What one training run logs, read from the job's local outputs: its identity, its
one-line description, params, tags and metric series, provenance, the MNIST splits as
dataset inputs, and the system metrics sampled while it trained."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import retry, runs
from ..splits import recipe_split
from .store import TAG


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


IDENTITY_KEYS = ("arch", "variant", "seed", "recipe", "overrides", "budget_scale", "train_subset",
                 "eval_subset", "total_steps", "n_train", "n_val", "n_test", "backend")


def run_identity(metrics: Mapping, manifest: Mapping | None = None) -> str:
    """What produced a run, as a SHA-256: IDENTITY_KEYS of its metrics and the data's payload
    checksums (the split file's own hash is left out: it is a zip with time stamps, while
    the payloads fix its content). Speed levers, threads, the device and where the data
    was downloaded from change no number and are not in it."""
    prov = metrics.get("provenance") or {}
    data = (manifest or {}).get("payload_sha256") or prov.get("data_payload_sha256") or {}
    ident = {k: metrics.get(k) for k in IDENTITY_KEYS}
    ident["data_payload_sha256"] = dict(sorted(data.items()))
    platform = runs.RunRecord(metrics).platform
    if platform != "default":  # a default run's identity stays what it was before platforms
        ident["platform"] = platform
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def tutorial_name(arch: str, variant: str) -> str | None:
    """The entry as a reader knows it ("Andy Thomas: CNN tutorial", "cnn_tutorial README
    (GitHub), as printed in the README"); None for what the registry does not hold."""
    from .. import registry

    try:
        return registry.get_architecture(arch).display_variant(variant)
    except (KeyError, registry.RegistryError):
        return None


def description(metrics: Mapping) -> str:
    """The run's one-line result, after the tutorial's name: "Andy Thomas: CNN tutorial
    (thomas s0): 99.05% test, 8.1 min; claim 99% (bound 98.5%)" ("thomas s0 [avx2]" on a
    platform other than the default)."""
    label = runs.label(metrics["arch"], metrics["variant"])
    name = None if metrics.get("file") else tutorial_name(metrics["arch"], metrics["variant"])
    platform = runs.RunRecord(metrics).platform
    where = "" if platform == "default" else f" [{platform}]"
    claim = metrics.get("claim") or {}
    secs = float((metrics.get("timing") or {}).get("total_train_seconds") or 0)
    took = f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.1f} s"
    said = (f"claim {100 * claim['value']:g}% (bound {100 * claim['lower']:g}%)" if claim.get("value") is not None
            else "no claim")
    if metrics.get("file"):  # a user's file (mnist-audit check): its claim is judged in the check's report
        said = f"{metrics['file']['name']}, run by mnist-audit check"
    kind = "" if metrics.get("published_recipe") else " [not the published recipe]"
    run = f"{label} s{metrics['seed']}{where}"
    return (f"{name} ({run})" if name else run) + f": {100 * metrics['test_accuracy']:.2f}% test, {took}; {said}{kind}"


def provenance_record(metrics: Mapping, manifest: Mapping | None) -> dict:
    """What produced the run (one JSON artifact): code, packages, machine, data checksums."""
    prov = dict(metrics.get("provenance") or {})
    if manifest:
        prov["data_payload_sha256"] = manifest.get("payload_sha256", prov.get("data_payload_sha256"))
        prov["data_split_sha256"] = manifest.get("split_sha256", prov.get("data_split_sha256"))
    return {"provenance": prov, "device": metrics.get("device") or {}, "config": metrics.get("config") or {}}


DATA_SPLITS = (("train", "training", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "images 5,000-59,999 of the training file"),
               ("validation", "validation", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "images 0-4,999 of the training file"),
               ("test", "test", ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"), "the t10k files"))


def dataset_inputs(metrics: Mapping, manifest: Mapping | None) -> list:
    """MNIST as MLflow dataset inputs, one per split: the digest is from the payload
    SHA-256s (and the subset, if any), the source names the files and their checksums."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sums = (manifest or {}).get("payload_sha256") or (metrics.get("provenance") or {}).get("data_payload_sha256") or {}
    recipe = metrics.get("recipe") or {}
    rows = _split_rows(recipe)
    out = []
    for name, context, files, which in DATA_SPLITS:
        if name in rows:  # another data split than TF1's read_data_sets: its own rows
            which = rows[name]
            if which is None:
                continue  # no validation set
        subset = metrics.get("train_subset") if name == "train" else metrics.get("eval_subset")
        part = {"split": name, "subset": subset}
        if "data_split" in recipe:
            part["data_split"] = recipe["data_split"]
        key = json.dumps({f: sums.get(f, "") for f in files} | part, sort_keys=True)
        source = {"files": {f: sums.get(f, "") for f in files}, "rows": which, "subset": subset}
        out.append(DatasetInput(
            Dataset(name=f"mnist-{name}" + (f"-first{subset}" if subset else ""),
                    digest=hashlib.sha256(key.encode()).hexdigest()[:32], source_type="local",
                    source=json.dumps(source, sort_keys=True)),
            tags=[InputTag("mlflow.data.context", context)]))
    return out


def _split_rows(recipe: Mapping) -> dict:
    """Which training-file images a recipe with its own data split trains and validates
    on (``{}`` for TF1's read_data_sets: DATA_SPLITS says it); None: no such set."""
    if "data_split" not in recipe:
        return {}
    split = recipe_split(recipe)
    n_train, n_val = split.sizes()
    first_val = 0 if split.at == "start" else n_train
    first_train = n_val if split.at == "start" else 0
    return {"train": f"images {first_train:,}-{first_train + n_train - 1:,} of the training file",
            "validation": f"images {first_val:,}-{first_val + n_val - 1:,} of the training file" if n_val else None}


# The split (the dataset input's context) each final metric was measured on: the logged
# model lists these datasets
METRIC_SPLITS = {"test_accuracy": "test", "test_loss": "test", "val_accuracy": "validation",
                 "train_loss": "training", "train_accuracy": "training"}


def metric_datasets(inputs: list) -> dict[str, tuple[str, str]]:
    """Each of METRIC_SPLITS's metrics with its split's dataset (name, digest), from ``dataset_inputs``."""
    by_context = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs}
    return {k: (by_context[split].name, by_context[split].digest) for k, split in METRIC_SPLITS.items()
            if split in by_context}  # a recipe without a validation set has no validation metrics


_DATASETS_LOCK = threading.Lock()


def _dataset_collision(e: BaseException) -> bool:
    return any(k in str(e) for k in ("UNIQUE", "IntegrityError", "duplicate key"))


def log_datasets(client, run_id: str, datasets: list, attempts: int = 3) -> None:
    """``log_inputs``, safe when runs log at once: the store creates a dataset shared by
    runs on first use, and two first uses at once collide on its unique key (sqlite:
    IntegrityError). Threads of one process take turns; a collision with another
    process is tried again (the one retry policy), and then finds the dataset made."""

    def log_inputs():
        with _DATASETS_LOCK:
            client.log_inputs(run_id, datasets=datasets)

    try:
        retry.call(log_inputs, retry.Policy(attempts=attempts, backoff_s=0.2), "log the datasets",
                   judge=_dataset_collision)
    except retry.RetryError as e:
        raise e.last from None


def run_payload(metrics: Mapping, history_rows: list[Mapping], manifest: Mapping | None) -> dict:
    """Params, tags and metrics for one run, from the job's local outputs."""
    arch, variant, seed = metrics["arch"], metrics["variant"], metrics["seed"]
    record = runs.RunRecord(metrics)
    platform = record.platform
    on = "" if platform == "default" else f" [{platform}]"
    recipe_kind = record.recipe_kind + (f" x{metrics['budget_scale']:g}" if record.scaled else "")
    device = metrics.get("device") or {}
    params = {
        "arch": arch, "variant": variant, "seed": seed,
        "budget_scale": metrics["budget_scale"], "train_subset": metrics["train_subset"],
        "eval_subset": metrics["eval_subset"], "total_steps": metrics["total_steps"],
        "published_steps": metrics["published_steps"], "steps_per_epoch": metrics["steps_per_epoch"],
        **{f"recipe.{k}": v for k, v in _flatten(metrics["recipe"]).items()},
        **{f"override.{k}": v for k, v in _flatten(metrics["overrides"]).items()},
        # how it was trained (none changes the numbers; they explain the timings)
        **{f"speed.{k}": v for k, v in _flatten(metrics.get("speed") or {}).items()},
        "threads": device.get("threads"),
        "backend": metrics["backend"],
        "baseline": str(metrics["baseline"]).lower(),
        "cpu_kind": device.get("cpu_kind") or ((metrics.get("provenance") or {}).get("cpu") or {}).get("kind"),
        "platform": platform,
        **{f"platform.{k}": v for k, v in _flatten((metrics.get("platform") or {}).get("settings") or {}).items()},
    }
    probe = (((metrics.get("platform") or {}).get("ran") or {}).get("reciprocal") or {}).get("digest")
    if probe:  # the CPU's reciprocal estimate, where TensorFlow ran (platforms.reciprocal_probe)
        params["reciprocal_digest"] = probe
    prov = metrics.get("provenance") or {}
    # A few tags a reader filters and groups by; versions and checksums are in the
    # run's provenance.json artifact, the data in its dataset inputs.
    tags = {
        "architecture": arch, "variant": variant, "seed": str(seed), "recipe": recipe_kind, "platform": platform,
        "device": device.get("name", "unknown"),
        "mlflow.source.git.commit": prov.get("git_commit", "unknown"),
        # the UI's Source: what trained it (the Snakemake rule's script, which the CLI runs too; a checked file)
        "mlflow.source.name": (metrics.get("file") or {}).get("name") or SOURCE_NAME, "mlflow.source.type": "JOB",
        "mlflow.note.content": description(metrics),
        f"{TAG}.job": ("" if platform == "default" else f"platforms/{platform}/") + f"{arch}/{variant}/seed{seed}",
        f"{TAG}.identity": run_identity(metrics, manifest),
    }
    n = {"test": metrics.get("n_test"), "val": metrics.get("n_val")}
    final = {
        "test_accuracy": count_decimal(metrics["test_accuracy"], n["test"]),
        "test_loss": float32_decimal(metrics["test_loss"]),
        "val_accuracy": count_decimal(metrics["val_accuracy"], n["val"]),
        "val_loss": float32_decimal(metrics["val_loss"]),
        "best_epoch_test_accuracy_optimistic": count_decimal(metrics["best_epoch_test_accuracy_optimistic"], n["test"]),
        # the last chunk's training loss and accuracy (Keras's running means over its batches)
        "train_loss": float32_decimal(metrics.get("train_loss")),
        "train_accuracy": float32_decimal(metrics.get("train_accuracy")),
        **{f"timing.{k}": readable(v) for k, v in metrics["timing"].items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }
    per_epoch = {"train_loss": float32_decimal, "train_accuracy": float32_decimal, "val_loss": float32_decimal,
                 "val_accuracy": lambda v: count_decimal(v, n["val"]), "test_loss": float32_decimal,
                 "test_accuracy": lambda v: count_decimal(v, n["test"]), "train_seconds": readable,
                 "wall_seconds": readable}
    series = [(f"epoch.{k}", exact(r[k]), int(r["epoch"])) for r in history_rows for k, exact in per_epoch.items()
              if r[k] is not None and math.isfinite(float(r[k]))]  # no validation set: no val_* series
    return {"params": params, "tags": tags, "final": final, "series": series,
            "run_name": f"{runs.label(arch, variant)} s{seed}{on}"}



SOURCE_NAME = "workflow/scripts/train_model.py"


def count_decimal(value: float | None, n: int | None) -> float | None:
    """An accuracy over ``n`` images as the decimal of its count of correct images:
    0.9901000261306763 (float32) over 10,000 is 9,901 correct, logged as 0.9901. A value
    that is no count over ``n`` keeps its float32 decimal (``float32_decimal``)."""
    if value is None or not n or not math.isfinite(float(value)):
        return float32_decimal(value)
    count = round(float(value) * n)
    return count / n if abs(float(value) * n - count) < 1e-3 else float32_decimal(value)


def float32_decimal(value: float | None) -> float | None:
    """A float32 (a Keras loss or accuracy) as its shortest decimal: 0.029199929907917976
    is logged as 0.02919993, without the float64 digits the float32 never had."""
    return None if value is None else float(str(np.float32(value)))


def readable(value: float, digits: int = 3) -> float:
    """A measured time or system reading at the precision a person reads it: seconds to the
    millisecond (0.5187006200000042 -> 0.519, 1620.5142165151385 -> 1620.514), percentages
    and megabytes to ``digits`` decimals. The run's files keep every digit; integers stay."""
    return value if isinstance(value, int) else round(float(value), digits)


def system_metrics(run_dir: Path, t0_ms: int) -> list:
    """The job's sampled system metrics as MLflow's ``system/<name>`` metrics (step = sample)."""
    from mlflow.entities import Metric

    from .. import sysmetrics

    table = sysmetrics.read(run_dir)
    if table is None:
        return []
    out = []
    for i, row in enumerate(table.to_dict("records")):
        ts = t0_ms + int(1000 * row["wall_seconds"])
        out += [Metric(f"system/{k}", readable(v, 1), ts, i) for k, v in row.items()
                if k != "wall_seconds" and v == v]
    return out

