"""``mnist-audit check``: any Keras MNIST script or notebook, run unchanged over seeds on the
verified MNIST, and its accuracy claim judged as the audit judges the tutorials'.

One seed is one run (``check_run``, in a process of its own: a Snakemake job, or a child
of the ``check`` command), through the runner of the tutorials' own scripts
(``programs.ProgramRun``): ``keras.datasets.mnist.load_data`` serves the verified
files, ``keras.utils.set_random_seed(seed)`` runs first with op determinism on, and every
``fit`` goes through ``Fits``, which

- scales the fit's budget: ``round(epochs x steps per epoch x budget_scale)`` steps (at
  least one), ``fit`` stopping after them, mid-epoch if need be (as the pipeline's
  ``budget_scale`` does; 1 runs the file's own epochs);
- records what the fit was asked to do: the model, its optimizer and arguments, the loss,
  the batch size, the epochs, the data (shapes, types, how the pixels were scaled, which
  served images they are) and the callbacks;
- learns how the file prepares an image for its model (``PixelMap``: each pixel value's
  number, as ``x / 255`` or ``(x - mean) / std`` give it, and the image's shape), so that
  the test images can be prepared the same way: after each epoch the test set is
  evaluated, and after the run the last model ``fit`` was called on predicts every one
  of the 10,000 test images.

The run's record is the pipeline's (``runs.write_run``: metrics.json, history.csv,
confusion.csv, predictions.npz), logged to MLflow as the pipeline's runs are
(``tracking.log_run``). ``judge`` applies the audit's statistics (``mnist_audit.audit``)
to the runs and the claim (``recipes.parse_claim``: its bound by the rounding rule), and
``write_report`` writes the Markdown and HTML report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import audit, files, runs
from .recipes import Claim, parse_claim

log = logging.getLogger(__name__)

VARIANT = "check"  # a checked file's runs: "<name>:check s0"
IMPLEMENTATION = "checked file"
EXPERIMENT = "mnist-audit-check"
FIT_BATCH_SIZE = 32  # Keras's default batch size for arrays
N_CLASSES = 10
REPORT_FILES = ("report.md", "report.html", "check.json")
LOG_FILE = "check.log"


class CheckError(ValueError):
    """A bad argument to check (a claim, a seed count, an output folder)."""


def cache_dir() -> Path:
    """Where ``check`` keeps the verified MNIST files between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-audit" / "mnist"


# ------------------------------------------------------------------- the pixel map


@dataclasses.dataclass(frozen=True)
class PixelMap:
    """How a program turns a served uint8 image into its model's input: the number each
    of the 256 pixel values becomes (in the program's type) and the image's shape; and
    which served images the rows given to ``fit`` are."""

    table: np.ndarray
    shape: tuple[int, ...]
    from_train: int  # rows that are training-file images
    from_test: int  # rows that are test images (a test set used for training)
    other: int  # rows that are neither, or could not be told apart
    exact: bool  # every pixel matched the table exactly (else within float tolerance)

    def apply(self, images: np.ndarray) -> np.ndarray:
        return self.table[images].reshape((len(images), *self.shape))

    def describe(self) -> str:
        t = self.table
        if t.dtype == np.uint8 and np.array_equal(t, np.arange(256)):
            return "the pixels as served (0 to 255)"
        scaled = (np.arange(256, dtype=t.dtype) / t.dtype.type(255)) if t.dtype.kind == "f" else None
        if scaled is not None and np.array_equal(t, scaled):
            return "pixels / 255 (0 to 1)"
        return f"pixel 0 -> {t[0]:.4g}, 128 -> {t[128]:.4g}, 255 -> {t[255]:.4g}"


class NotPixelwise(ValueError):
    pass


def _mask_index(images: np.ndarray) -> dict[bytes, int]:
    """Each image's pattern of zero pixels -> its row (-1 where two images share one)."""
    keys = np.packbits(images.reshape(len(images), -1) == 0, axis=1)
    out: dict[bytes, int] = {}
    for i, row in enumerate(keys):
        k = row.tobytes()
        out[k] = -1 if k in out else i
    return out


def learn_pixel_map(x: np.ndarray, train_images: np.ndarray, test_images: np.ndarray,
                    sample: int = 2000) -> PixelMap:
    """Relate the images a program gives ``fit`` to the served ones (uint8 (n, 28, 28)).

    A served image's background is pixel value 0, so the rows are told apart by the
    pattern of their commonest value (which the background becomes); the matched pairs
    give each pixel value's number, which must be one number per value (else
    ``NotPixelwise``: per-feature scaling, augmentation, another data set)."""
    x = np.asarray(x)
    n, size = len(x), train_images[0].size
    if n == 0 or x.size != n * size or x.dtype.kind not in "fiub":
        raise NotPixelwise(f"{n} images of shape {x.shape[1:]} ({x.dtype}), not {size} pixels each")
    flat = x.reshape(n, size)
    values, counts = np.unique(flat[:200], return_counts=True)
    background = values[np.argmax(counts)]
    keys = np.packbits(flat == background, axis=1)
    train_index, test_index = _mask_index(train_images), _mask_index(test_images)
    rows, raw = [], []
    from_train = from_test = 0
    for i, row in enumerate(keys):
        k = row.tobytes()
        j = train_index.get(k)
        if j is not None:
            from_train += 1
            if j >= 0:
                rows.append(i)
                raw.append(train_images[j])
            continue
        j = test_index.get(k)
        if j is not None:
            from_test += 1
            if j >= 0:
                rows.append(i)
                raw.append(test_images[j])
    if len(rows) < max(1, n // 2):
        raise NotPixelwise(f"only {len(rows)} of the {n} images given to fit are served images, pixel by pixel")
    table = np.zeros(256, dtype=x.dtype)
    known = np.zeros(256, dtype=bool)
    exact = True
    for start in range(0, len(rows), sample):  # a sample at a time, until every value is known
        r = np.asarray(raw[start:start + sample]).reshape(-1)
        f = flat[rows[start:start + sample]].reshape(-1)
        vals, first = np.unique(r, return_index=True)
        new = ~known[vals]
        table[vals[new]] = f[first[new]]
        known[vals] = True
        got = table[r]
        if not np.array_equal(got, f):
            if x.dtype.kind != "f" or not np.allclose(got, f, rtol=1e-6, atol=1e-7):
                raise NotPixelwise("a pixel value becomes different numbers in different places")
            exact = False
        if known.all():
            break
    if not known.all():  # values the training images never show: an affine map fills them in
        v = np.flatnonzero(known).astype(np.float64)
        a, b = np.polyfit(v, table[known].astype(np.float64), 1) if len(v) > 1 else (0.0, 0.0)
        if len(v) < 2 or not np.allclose(a * v + b, table[known], rtol=1e-6, atol=1e-7):
            raise NotPixelwise(f"the training images show {int(known.sum())} of the 256 pixel values")
        missing = np.flatnonzero(~known)
        table[missing] = (a * missing + b).astype(x.dtype)
    return PixelMap(table, tuple(x.shape[1:]), from_train, from_test, n - from_train - from_test, exact)


# ------------------------------------------------------------------------ the fits


def _array(value, what: str, program) -> np.ndarray:
    """A fit argument as a NumPy array (a tensor too); anything else is not supported."""
    from .programs import ProgramError

    if value is None:
        raise ProgramError(f"{program.path}: fit was called without {what}")
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy") and hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.asarray(value.numpy())
    kind = type(value).__name__
    raise ProgramError(f"{program.path}: fit's {what} is a {kind}: the audit supports fit on arrays "
                       "(NumPy arrays or tensors, the images and the labels as load_data gives them, "
                       "prepared any way pixel by pixel); a tf.data.Dataset, a generator or several "
                       "inputs are not supported")


def _plain(value):
    """A JSON-friendly value of an optimizer or loss setting."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return float(str(np.float32(value))) if isinstance(value, np.float32) else float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    with contextlib.suppress(Exception):
        return float(str(np.float32(np.asarray(value))))  # a variable or tensor: its float32 value
    return str(value)


def _float32(value):
    """An optimizer's number as the float32 it computes with, in its shortest decimal (0.05, not 0.0500000007)."""
    return float(str(np.float32(value))) if isinstance(value, float) else value


def optimizer_setting(optimizer) -> dict:
    """The optimizer's class, the arguments that differ from its defaults (the learning
    rate always; ``optimizer_args``) and its whole configuration (``optimizer_config``)."""
    if optimizer is None:
        return {"optimizer": None, "optimizer_args": {}, "optimizer_config": {}}
    config = {k: _float32(_plain(v)) for k, v in optimizer.get_config().items() if k != "name"}
    try:
        default = {k: _float32(_plain(v)) for k, v in type(optimizer)().get_config().items()}
    except Exception:  # noqa: BLE001  (an optimizer that needs arguments: all of them are shown)
        default = {}
    args = {k: v for k, v in config.items() if k == "learning_rate" or default.get(k, object()) != v}
    return {"optimizer": type(optimizer).__name__, "optimizer_args": args, "optimizer_config": config}


def loss_setting(model) -> str:
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, str):
        return str(loss)
    if hasattr(loss, "get_config"):
        conf = {k: v for k, v in loss.get_config().items() if k in ("from_logits", "label_smoothing") and v}
        return type(loss).__name__ + (f"({', '.join(f'{k}={v}' for k, v in conf.items())})" if conf else "")
    return getattr(loss, "__name__", type(loss).__name__)


def _data(a: np.ndarray) -> dict:
    out = {"shape": list(a.shape), "dtype": a.dtype.name}
    if a.size and a.dtype.kind in "fiub":
        out.update(min=_plain(float(a.min())), max=_plain(float(a.max())))
    return out


class Fits:
    """The ``on_fit`` of a checked program (``ProgramRun``): each fit's budget scaled, the
    fit recorded, the epochs' history kept, the last fit's model and test set held."""

    def __init__(self, program, train_file: tuple, test_file: tuple, budget_scale: float = 1.0,
                 eval_batch_size: int = 1000):
        self.program, self.budget_scale, self.eval_batch_size = program, budget_scale, eval_batch_size
        self.train_images, self.test_images = train_file[0], test_file[0]
        self.y_test = test_file[1].astype(np.int32)
        self.records: list[dict] = []
        self.recorder = None
        self.last: dict | None = None

    def __call__(self, fit, call: dict):
        from . import loops
        from .programs import ProgramError, Recorder

        model = call["self"]
        x, y = _array(call.get("x"), "x (the images)", self.program), _array(call.get("y"), "y (the labels)",
                                                                             self.program)
        try:
            pixels = learn_pixel_map(x, self.train_images, self.test_images)
        except NotPixelwise as e:
            raise ProgramError(
                f"{self.program.path}: the images given to fit are not the served MNIST images prepared "
                f"pixel by pixel ({e}). The audit prepares the 10,000 test images the way the file "
                "prepares its training images, so it must tell how: each pixel by its value (x / 255, "
                "(x - mean) / std, a reshape) is supported; augmentation, per-pixel statistics or other "
                "images are not") from None
        batch = int(call.get("batch_size") or FIT_BATCH_SIZE)
        epochs, initial = int(call.get("epochs", 1)), int(call.get("initial_epoch") or 0)
        split = float(call.get("validation_split") or 0.0)
        n = len(x)
        n_fit = int(math.floor(n * (1.0 - split))) if split else n  # Keras's own cut
        per_epoch = int(call.get("steps_per_epoch") or math.ceil(n_fit / batch))
        published = max(0, epochs - initial) * per_epoch
        total = max(1, round(published * self.budget_scale)) if published else 0
        run_epochs = math.ceil(total / per_epoch) if per_epoch else 0
        if initial + run_epochs != epochs:
            call["epochs"] = initial + run_epochs
        one_hot = y.ndim == 2
        labels = np.eye(N_CLASSES, dtype=np.float32)[self.y_test] if one_hot else self.y_test
        test_set = loops.EvalSet(pixels.apply(self.test_images), labels, self.eval_batch_size)

        def seen(steps: int) -> float:
            full, rest = divmod(steps, per_epoch)
            return (full * n_fit + min(rest * batch, n_fit)) / n_fit

        recorder = Recorder(test_set, {"total_steps": total}, None, n_fit, seen=seen,
                            evaluate=lambda m: self._evaluate(test_set, m), after=self.recorder)
        recorder.initial_epoch = initial
        setting = {**optimizer_setting(getattr(model, "optimizer", None)), "loss": loss_setting(model)}
        call["callbacks"] = [*(call.get("callbacks") or []), recorder.callback]
        t = time.perf_counter()
        out = fit(**call)
        seconds = time.perf_counter() - t
        self.recorder = recorder
        self.last = {"model": model, "test_set": test_set, "pixels": pixels}
        val = call.get("validation_data")
        self.records.append({
            "model": model.name, "model_class": type(model).__name__, "parameters": int(model.count_params()),
            **setting, "batch_size": batch, "epochs": epochs, "initial_epoch": initial,
            "epochs_run": run_epochs, "steps_per_epoch": per_epoch, "published_steps": published,
            "total_steps": total, "steps_run": recorder.steps, "shuffle": _plain(call.get("shuffle", True)),
            "validation_split": split,
            "validation_data": self._validation(val, pixels) if val is not None else None,
            "x": _data(x), "y": {**_data(y), "form": "one-hot" if one_hot else "class numbers"},
            "pixels": pixels.describe(), "n_train": n_fit,
            "images": {"training_file": pixels.from_train, "test_file": pixels.from_test, "other": pixels.other},
            "callbacks": [type(c).__name__ for c in call["callbacks"][:-1]],
            "seconds": seconds,
        })
        return out

    def _evaluate(self, test_set, model) -> tuple[float | None, float]:
        """The test set's loss and accuracy after an epoch (as the registry's runs: Keras's
        own, where the model was compiled with an accuracy metric; else from predict)."""
        from .programs import _ACCURACY

        r = test_set.scores(model)
        acc = next((float(r[k]) for k in _ACCURACY if k in r), None)
        if acc is None:
            acc = float(np.mean(test_set.predict(model).argmax(axis=1) == self.y_test))
        return (float(r["loss"]) if "loss" in r else None), acc

    def _validation(self, val, pixels: PixelMap) -> dict:
        xs = val[0] if isinstance(val, tuple | list) and val else val
        with contextlib.suppress(Exception):
            xv = np.asarray(xs.numpy() if hasattr(xs, "numpy") else xs)
            which = ("the test images" if xv.shape == (len(self.test_images), *pixels.shape)
                     and np.array_equal(xv, pixels.apply(self.test_images)) else "other images")
            return {"images": len(xv), "which": which}
        return {"images": None, "which": type(xs).__name__}


# ------------------------------------------------------------------------- one run


def check_run(path: str | Path, data_path: str | Path, out_dir: str | Path, seed: int = 0, *,
              budget_scale: float = 1.0, threads: int = 1, eval_batch_size: int = 1000,
              name: str | None = None, config: dict | None = None, device: dict | None = None) -> dict:
    """Run the program at ``path`` once with ``seed`` on the prepared split; write its run
    record into ``out_dir`` (nothing at all when it fails). Returns the metrics."""
    import keras

    from . import data as mdata
    from .programs import Program, ProgramError, ProgramRun, _set_threads

    t_start = time.perf_counter()
    program = Program.read(path)
    name = name or program.path.stem
    _set_threads(threads)
    t0 = time.perf_counter()
    split = mdata.load_split(Path(data_path))
    train_file, test_file = mdata.training_file(split), (split["x_test"], split["y_test"])
    data_seconds = time.perf_counter() - t0
    fits = Fits(program, train_file, test_file, budget_scale, eval_batch_size)
    run = ProgramRun(program, train_file, test_file, fits).run(seed, threads)
    rec, last = fits.recorder, fits.last
    if not rec.history:
        raise ProgramError(f"{program.path}: fit trained no step (epochs={fits.records[-1]['epochs']}, "
                           f"initial_epoch={fits.records[-1]['initial_epoch']}): nothing to evaluate")
    t = time.perf_counter()
    scores = np.asarray(last["test_set"].predict(last["model"]))
    if scores.shape != (len(fits.y_test), N_CLASSES):
        raise ProgramError(f"{program.path}: the model {last['model'].name} outputs shape {scores.shape[1:]} "
                           f"per image, not {N_CLASSES} class scores: the audit reads an image's class as "
                           "the highest of 10 scores")
    y_pred = scores.argmax(axis=1)
    predict_seconds = time.perf_counter() - t
    fit = fits.records[-1]
    recipe = {
        "file": program.path.name, "file_sha256": program.sha256, "kind": program.kind,
        "data_split": "no_validation",  # what load_data serves: the whole training file, then the test file
        "optimizer": fit["optimizer"], "optimizer_args": fit["optimizer_args"], "loss": fit["loss"],
        "batch_size": fit["batch_size"], "budget": fit["epochs"] - fit["initial_epoch"], "budget_unit": "epochs",
        "shuffle": fit["shuffle"], "validation_split": fit["validation_split"], "fits": len(fits.records),
    }
    n_val = int(round(fit["n_train"] * fit["validation_split"] / (1 - fit["validation_split"]))) \
        if fit["validation_split"] else 0
    empty = np.zeros(0, dtype=np.uint8)
    metrics = {
        "arch": name, "variant": VARIANT, "implementation": IMPLEMENTATION,
        "file": {"name": program.path.name, "path": str(program.path), "sha256": program.sha256,
                 "kind": program.kind, "skipped": list(program.skipped)},
        "seed": seed, "baseline": False, "backend": keras.backend.backend(), "device": device or {"threads": threads},
        "recipe": recipe, "fits": fits.records, "overrides": {}, "budget_scale": budget_scale,
        "train_subset": None, "eval_subset": None,
        "speed": {"training_loop": "the file's own model.fit", "eval_batch_size": eval_batch_size,
                  "threads": threads},
        "n_train": fit["n_train"], "n_val": n_val, "n_test": int(len(fits.y_test)),
        "published_steps": sum(f["published_steps"] for f in fits.records),
        "total_steps": sum(f["total_steps"] for f in fits.records),
        "steps_per_epoch": fit["steps_per_epoch"], "n_chunks": len(rec.history),
        **runs.budget_flags(budget_scale, None, None, None),
        "claim": {},
        **runs.results(rec.history, y_pred, fits.y_test, None, fit["batch_size"], fit["steps_per_epoch"],
                       len(fits.y_test), rec.load),
        "test_correct": int(np.sum(y_pred == fits.y_test)),
        "own_seeds": run.own_seeds, "other_sources": run.other_sources,
        "resumed_from_epoch": None,
        "data_seconds": data_seconds, "predict_seconds": predict_seconds, "save_seconds": 0.0,
        "job_seconds": time.perf_counter() - t_start,
        "provenance": runs.provenance(Path(data_path)),
        "config": config or {},
        "result_id": uuid.uuid4().hex,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.write_run(out_dir, metrics, rec.history, empty, empty, fits.y_test, y_pred)
    log.info("%s seed %d: %d of %d test images right (%.2f%%) in %.1f s", program.path.name, seed,
             metrics["test_correct"], metrics["n_test"], 100 * metrics["test_correct"] / metrics["n_test"],
             metrics["job_seconds"])
    return metrics


# --------------------------------------------------------------------- the verdict


def _read_runs(run_dirs: Sequence[Path]) -> tuple[list[dict], np.ndarray, np.ndarray]:
    records = [runs.RunRecord.read(d).metrics for d in run_dirs]
    preds = [runs.read_predictions(Path(d) / "predictions.npz") for d in run_dirs]
    return records, np.vstack([p["test_correct"] for p in preds]), np.vstack([p["test_pred"] for p in preds])


def judge(run_dirs: Sequence[str | Path], claim: Claim) -> dict:
    """The claim's verdict over the runs (one per seed), by the audit's rules: the two-way
    interval (seeds and test images), the interval over seeds alone, the test images'
    standard error, k of n runs reaching the bound, the prediction interval for one new
    run. Runs that are all the same run (a file that seeds itself) count as one."""
    records, correct, preds = _read_runs([Path(d) for d in run_dirs])
    acc = correct.mean(axis=1)
    n, n_test = len(acc), correct.shape[1]
    distinct = len(np.unique(preds, axis=0))
    own = sorted({s for r in records for s in r.get("own_seeds") or []})
    collapsed = n > 1 and distinct == 1
    status = "published" if all(r.get("full_budget") for r in records) else "scaled budget"
    bound = claim.lower
    if collapsed:  # one run, whatever the seeds: its test images are the only spread
        values = acc[:1]
        lo = hi = s_lo = s_hi = pi_lo = pi_hi = math.nan
        img_lo, img_hi = _binomial_interval(int(correct[0].sum()), n_test)
        verdict = audit.verdict(1, lo, hi, bound, status)
    else:
        values = acc
        lo, hi = audit.two_way_interval(correct)
        s_lo, s_hi = audit.t_interval(acc)
        pi_lo, pi_hi = audit.prediction_interval(acc)
        img_lo = img_hi = math.nan
        verdict = audit.verdict(n, lo, hi, bound, status)
    mean = float(values.mean())
    return {
        "claim": claim.text, "claim_value": claim.value, "bound": bound, "verdict": verdict,
        "status": status, "n_seeds": n, "seeds": [int(r["seed"]) for r in records], "distinct_runs": distinct,
        "collapsed": collapsed, "own_seeds": own,
        "per_seed": [{"seed": int(r["seed"]), "accuracy": float(a), "correct": int(c.sum()),
                      "reaches": bool(a >= bound - audit.TOLERANCE), "epochs": len_history(r),
                      "steps": int(r["total_steps"]), "train_seconds": r["timing"]["total_train_seconds"],
                      "job_seconds": r["job_seconds"]} for r, a, c in zip(records, acc, correct, strict=True)],
        "mean": mean, "sd": float(acc.std(ddof=1)) if n > 1 else math.nan,
        "interval": [lo, hi], "seed_interval": [s_lo, s_hi], "prediction_interval": [pi_lo, pi_hi],
        "image_interval": [img_lo, img_hi],
        "image_se": math.sqrt(mean * (1 - mean) / n_test),
        "runs_reaching": audit.runs_reaching(values, bound), "n_runs": len(values), "n_test": n_test,
        "budget_scale": records[0]["budget_scale"],
        "file": records[0]["file"], "fits": records[0]["fits"],
        "seconds": sum(r["job_seconds"] for r in records),
        "train_seconds": sum(r["timing"]["total_train_seconds"] for r in records),
        "machine": _machine(records[0]),
    }


def len_history(record: Mapping) -> int:
    return int(record.get("n_chunks") or 0)


def _binomial_interval(k: int, n: int) -> tuple[float, float]:
    """The 95% interval of one run's accuracy over the test images alone (Wilson)."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=audit.CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def _machine(record: Mapping) -> str:
    prov = record.get("provenance") or {}
    cpu = (prov.get("cpu") or {}).get("kind") or "unknown CPU"
    pk = prov.get("packages") or {}
    versions = ", ".join(f"{k.removesuffix('-cpu')} {pk[k]}" for k in ("tensorflow", "tensorflow-cpu", "keras")
                         if pk.get(k))
    threads = (record.get("speed") or {}).get("threads")
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}" + (f"; {versions}" if versions else "")


# ------------------------------------------------------------------------- report


def _pct(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}%"


def _range(pair: Sequence[float]) -> str:
    lo, hi = pair
    return "n/a" if math.isnan(lo) else f"[{100 * lo:.2f}%, {100 * hi:.2f}%]"


def _secs(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def verdict_sentence(v: Mapping) -> str:
    """The verdict in a sentence or two."""
    claim = f'The claim "{v["claim"]}" (at least {100 * v["bound"]:g}% by the rounding rule)'
    bound = f"{100 * v['bound']:g}%"
    if v["collapsed"]:
        seeds = "; ".join(v["own_seeds"]) or "its own seeding"
        return (f"{claim} cannot be judged across seeds: the file sets its own seed ({seeds}), which "
                f"overrides the audit's, and all {v['n_seeds']} seeds trained the same model. That one run "
                f"scores {_pct(v['mean'])} ({v['per_seed'][0]['correct']:,} of {v['n_test']:,} test images; "
                f"95% interval over the test images {_range(v['image_interval'])}); it is one draw, not "
                f"{v['n_seeds']}, so the verdict is {v['verdict']}. Remove the file's own seeding to let the "
                "audit vary it.")
    at = (f"over {v['n_seeds']} seed{'s' if v['n_seeds'] != 1 else ''} the test accuracy averages "
          f"{_pct(v['mean'])}")
    reach = (f"{v['runs_reaching']} of {v['n_runs']} runs reach {bound}")
    if v["status"] != "published":
        return (f"{claim} cannot be judged at this budget: the runs trained {v['budget_scale']:g} x the file's "
                "own steps, and only the file's own budget (budget scale 1) can reproduce it. At this budget "
                f"{at}, 95% interval {_range(v['interval'])}; {reach}.")
    if v["n_seeds"] < 2:
        return (f"{claim} is {v['verdict']}: one seed ({_pct(v['mean'])}) cannot tell a seed's luck from the "
                "file's accuracy; run two seeds or more.")
    how = {audit.REPRODUCED: f"the whole interval is at or above {bound}",
           audit.NOT_REPRODUCED: f"the whole interval is below {bound}"}.get(
        v["verdict"], f"the interval straddles {bound}")
    return (f"{claim} is **{v['verdict']}**: {at}, 95% interval {_range(v['interval'])} for seeds and test "
            f"images together, so {how}; {reach}, and one new run should land in "
            f"{_range(v['prediction_interval'])}.")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fit_lines(i: int, f: Mapping, n_fits: int) -> list[str]:
    args = ", ".join(f"{k}={v}" for k, v in f["optimizer_args"].items())
    epochs = f"{f['epochs']}" + (f" (from epoch {f['initial_epoch']})" if f["initial_epoch"] else "")
    ran = (f"{f['steps_run']:,} of its {f['published_steps']:,} steps ({f['epochs_run']} epoch"
           f"{'s' if f['epochs_run'] != 1 else ''} of {f['steps_per_epoch']:,} steps)")
    imgs = f["images"]
    used = f"{imgs['training_file']:,} training-file images"
    if imgs["test_file"]:
        used += f" and **{imgs['test_file']:,} test images** (the test set is not held out)"
    if imgs["other"]:
        used += f", {imgs['other']:,} not told apart"
    held = round(f["n_train"] * f["validation_split"] / (1 - f["validation_split"])) if f["validation_split"] else 0
    val = ("none" if not f["validation_split"] and not f["validation_data"] else
           f"validation_split={f['validation_split']:g} (the last {held:,} images given to fit)"
           if f["validation_split"] else
           f"validation_data: {f['validation_data']['images']:,} images ({f['validation_data']['which']})")
    title = f"fit {i} of {n_fits}" if n_fits > 1 else "fit"
    return [
        f"**{title}** (model `{f['model']}`, {f['model_class']}, {f['parameters']:,} parameters)",
        "",
        f"- optimizer: {f['optimizer']}({args})",
        f"- loss: {f['loss']}",
        f"- batch size {f['batch_size']}, epochs {epochs}, shuffle {f['shuffle']}; ran {ran}",
        f"- data: x {tuple(f['x']['shape'])} {f['x']['dtype']}, {f['pixels']}; y {tuple(f['y']['shape'])} "
        f"{f['y']['dtype']}, {f['y']['form']}; {f['n_train']:,} images train, of {used}",
        f"- validation: {val}" + (f"; callbacks: {', '.join(f['callbacks'])}" if f["callbacks"] else ""),
        "",
    ]


def report_markdown(v: Mapping, name: str, path: str, seconds: float | None = None) -> str:
    f = v["file"]
    lines = [f"# mnist-audit check: {name}", "", f"**Verdict: {v['verdict']}.** {verdict_sentence(v)}", "",
             _table(("", ""), [
                 ("file", f"`{path}` ({f['kind']}, SHA-256 {f['sha256'][:12]})"),
                 ("claim", f'"{v["claim"]}": at least {100 * v["bound"]:g}% on the 10,000 test images '
                           "(the rounding rule)"),
                 ("seeds", " ".join(map(str, v["seeds"]))),
                 ("budget", "the file's own" if v["budget_scale"] == 1 else
                  f"{v['budget_scale']:g} x the file's own steps (scaled: never a reproduction)"),
                 ("data", "the verified MNIST files, served by keras.datasets.mnist.load_data"),
             ]), "", "## Each seed", "",
             _table(("seed", "test accuracy", "correct", f"reaches {100 * v['bound']:g}%", "epochs", "steps",
                     "training", "run"),
                    [(s["seed"], _pct(s["accuracy"]), f"{s['correct']:,} of {v['n_test']:,}",
                      "yes" if s["reaches"] else "no", s["epochs"], f"{s['steps']:,}", _secs(s["train_seconds"]),
                      _secs(s["job_seconds"])) for s in v["per_seed"]]), "",
             "## The numbers", ""]
    if v["collapsed"]:
        lines += [_table(("one run (every seed the same)", "95% interval, test images"),
                         [(_pct(v["mean"]), _range(v["image_interval"]))])]
    else:
        lines += [_table(("mean", "sd over seeds", "95% interval, seeds + test images", "95% interval, seeds alone",
                          "test images' standard error", "runs reaching", "one new run (95% prediction)"),
                         [(_pct(v["mean"]), _pct(v["sd"], 3).replace("%", " pt"), _range(v["interval"]),
                           _range(v["seed_interval"]), f"{100 * v['image_se']:.2f} pt",
                           f"{v['runs_reaching']} of {v['n_runs']}", _range(v["prediction_interval"]))])]
    lines += ["", "The interval is the audit's: Student's t over the seeds' accuracies and, paired over the "
              "same 10,000 test images, over the images (their sampling error does not shrink with more "
              "seeds). A claim is reproduced when the whole interval is at or above its bound, not "
              "reproduced when it is all below, inconclusive otherwise.", "",
              "## The recipe it ran", ""]
    for i, fit in enumerate(v["fits"], 1):
        lines += _fit_lines(i, fit, len(v["fits"]))
    if len(v["fits"]) > 1:
        lines += ["The model evaluated is the last one fit was called on.", ""]
    notes = []
    if v["own_seeds"]:
        notes.append("The file seeds itself: " + "; ".join(v["own_seeds"]) + ". Its seed overrides the audit's "
                     "(keras.utils.set_random_seed(seed) before the file runs)"
                     + (": every seed gave the same numbers, counted as one run." if v["collapsed"] else
                        "; the seeds still gave different numbers."))
    if f.get("skipped"):
        notes.append("Not run (IPython, not Python): " + "; ".join(f"`{s}`" for s in f["skipped"]) + ".")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["## Time", "",
              f"Training {_secs(v['train_seconds'])} over {v['n_seeds']} seed{'s' if v['n_seeds'] != 1 else ''}, "
              f"{_secs(v['seconds'])} of runs in all (each in a process of its own)"
              + (f"; the whole check {_secs(seconds)}" if seconds else "") + f". Machine: {v['machine']}.", ""]
    return "\n".join(lines)


HTML_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1100px;line-height:1.4}"
              "table{border-collapse:collapse;font-size:14px;margin:.5em 0 1em}"
              "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f2f2f2}"
              "code{background:#f4f4f4;padding:0 .2em}")


def report_html(markdown: str, title: str) -> str:
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>\n{body}</body></html>\n")


def write_report(run_dirs: Sequence[str | Path], claim: Claim, name: str, path: str, out_dir: str | Path,
                 seconds: float | None = None) -> dict:
    """Judge the runs and write report.md, report.html and check.json into ``out_dir``."""
    v = judge(run_dirs, claim)
    v["name"], v["path"] = name, path
    md = report_markdown(v, name, path, seconds)
    out_dir = Path(out_dir)
    files.atomic_write_bytes(out_dir / "report.md", md.encode())
    files.atomic_write_bytes(out_dir / "report.html", report_html(md, f"mnist-audit check: {name}").encode())
    files.atomic_write_json(out_dir / "check.json", v)
    return v


# ------------------------------------------------------------------ the command


def prepare_data(mirrors: Sequence[str] | None, folder: str | Path) -> Path:
    """The verified MNIST split in ``folder`` (downloaded from ``mirrors`` or the public
    ones, each file checked against its SPEC checksum; a verified copy is kept)."""
    from . import download

    download.fetch_split(Path(folder), list(mirrors) if mirrors else list(download.PUBLIC_MIRRORS))
    return Path(folder) / "mnist.npz"


def _child_env() -> dict:
    """This process's environment, with this package importable in a child."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def _log_error(log_path: Path) -> str:
    """The error a child logged (its last ERROR record and what follows)."""
    text = log_path.read_text() if log_path.exists() else ""
    at = text.rfind(" ERROR ")
    if at < 0:
        return text.strip().splitlines()[-1] if text.strip() else "no log"
    return text[at + len(" ERROR "):].split(": ", 1)[-1].strip()


class RunFailed(RuntimeError):
    """A seed's run failed; the message is the run's own error."""


def _child_error(text: str) -> Exception:
    """The error a child logged as ``Class: message``, as that class where it is the
    runner's (``ProgramRaised``, ``NoMnist``, ...), so that it reads as it did there."""
    from . import programs

    name, _, message = text.partition(": ")
    cls = getattr(programs, name, None)
    if isinstance(cls, type) and issubclass(cls, programs.ProgramError):
        return cls(message)
    return RunFailed(text)


def run_seed(path: Path, seed: int, data: Path, out_dir: Path, log_path: Path, *, budget_scale: float,
             threads: int, name: str) -> dict:
    """One seed in a child process (``mnist-audit check-run``), as a Snakemake job runs it."""
    cmd = [sys.executable, "-m", "mnist_audit.cli", "check-run", str(path), "--seed", str(seed), "--data",
           str(data), "--out", str(out_dir), "--budget-scale", repr(budget_scale), "--threads", str(threads),
           "--name", name, "--log", str(log_path)]
    proc = subprocess.run(cmd, env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        if not log_path.exists() or " ERROR " not in log_path.read_text():
            log_path.write_text(log_path.read_text() + proc.stderr if log_path.exists() else proc.stderr)
        raise _child_error(_log_error(log_path))
    return runs.RunRecord.read(out_dir).metrics


def check(path: str | Path, claim_text: str, seeds: int = 5, *, budget_scale: float = 1.0,
          out: str | Path = "check", mirrors: Sequence[str] | None = None, data: str | Path | None = None,
          tracking_uri: str | None = None, experiment: str = EXPERIMENT, threads: int = 1,
          echo=print) -> dict:
    """The ``check`` command: ``seeds`` runs of the file (seeds 0, 1, ...), judged against the
    claim; the runs (``runs/seed<N>/``), report.md, report.html and check.json in ``out``,
    every run logged to MLflow. On any error nothing is written to ``out`` but its log."""
    from .programs import Program

    t0 = time.perf_counter()
    claim = parse_claim(claim_text)
    if seeds < 1:
        raise CheckError(f"--seeds {seeds}: give one seed or more (5 by default)")
    if not budget_scale > 0:
        raise CheckError(f"--budget-scale {budget_scale}: give a positive number (1: the file's own epochs)")
    program = Program.read(path)  # a missing file, a syntax error: before anything runs
    out = Path(out)
    name = program.path.stem
    split = Path(data) if data else prepare_data(mirrors, cache_dir())
    echo(f'{program.path.name}: claim "{claim.text}" (at least {100 * claim.lower:g}%), '
         + (f"seeds 0-{seeds - 1}" if seeds > 1 else "seed 0")
         + (f", budget x{budget_scale:g}" if budget_scale != 1 else ""))
    with tempfile.TemporaryDirectory(prefix="mnist-audit-check-") as tmp:
        stage = Path(tmp)
        run_dirs = []
        for seed in range(seeds):
            run_dir, seed_log = stage / "runs" / f"seed{seed}", stage / f"seed{seed}.log"
            try:
                m = run_seed(program.path, seed, split, run_dir, seed_log, budget_scale=budget_scale,
                             threads=threads, name=name)
            finally:
                if seed_log.exists():
                    log.info("seed %d's run:\n%s", seed, seed_log.read_text().rstrip())
            echo(f"  seed {seed}: {100 * m['test_correct'] / m['n_test']:.2f}% ({m['test_correct']:,} of "
                 f"{m['n_test']:,} test images), {_secs(m['job_seconds'])}")
            run_dirs.append(run_dir)
        v = write_report(run_dirs, claim, name, str(path), stage, seconds=time.perf_counter() - t0)
        out.mkdir(parents=True, exist_ok=True)
        for old in (out / "runs").glob("seed*"):
            shutil.rmtree(old)
        (out / "runs").mkdir(exist_ok=True)
        for d in run_dirs:
            shutil.move(str(d), out / "runs" / d.name)
        for f in REPORT_FILES:
            shutil.move(str(stage / f), out / f)
    run_dirs = [(out / "runs" / f"seed{s}").resolve() for s in range(seeds)]
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{(out / 'mlflow' / 'mlflow.db').resolve()}"
    logged = log_to_mlflow(run_dirs, split.resolve().parent / "manifest.json", uri, experiment, out, name, program.sha256)
    echo(f"{v['verdict']}: {verdict_sentence(v).replace('**', '')}")
    echo(f"report: {out / 'report.md'} and {out / 'report.html'}; MLflow: {uri}, experiment {experiment} "
         f"({len(logged)} runs)")
    return v


def log_to_mlflow(run_dirs: Sequence[Path], manifest: Path, uri: str, experiment: str, workspace: Path,
                  name: str, sha256: str) -> list[dict]:
    """Each run as one MLflow run (``tracking.log_run``: once per identity), grouped in a
    sweep of its own with the report as the sweep run's artifacts. A local store keeps its
    artifacts in ``workspace/mlflow/artifacts``, relative to the workspace."""
    from . import tracking

    workspace = Path(workspace).resolve()
    identities = sorted(tracking.run_identity(runs.RunRecord.read(d).metrics) for d in run_dirs)
    key = hashlib.sha256(json.dumps([name, sha256, identities]).encode()).hexdigest()  # reruns: one sweep
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    artifacts = (workspace / "mlflow" / "artifacts").as_uri()
    with contextlib.chdir(workspace):  # a local store's artifact folder: relative to the output folder
        sweep = tracking.init_tracking(uri, experiment, artifacts, {"id": f"check-{name}-{stamp}", "key": key},
                                       {"check": name, "runs": [str(d) for d in run_dirs]})
        done = [tracking.log_run(sweep, Path(d).resolve(), manifest) for d in run_dirs]
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for f in REPORT_FILES:
            if (workspace / f).exists():
                client.log_artifact(sweep["parent_run_id"], str(workspace / f))
    return done
