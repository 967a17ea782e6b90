"""A Keras tutorial's own script as its original, run as written, and the port's record of the run.

For an architecture whose registry entry says ``original="keras script"`` the original is
the author's program itself (``keras_scripts/<arch>.py``, or any copy of the author's file
given as ``script``), run by ``mnist_audit.programs.ProgramRun`` (which ``mnist-audit
check`` uses for any user's file). Around it, and nowhere in it:

- ``keras.datasets.mnist.load_data`` returns the prepared split's images: the training
  file's 60,000 in the file's order (with a ``train_subset``: the port's first training
  images, then as many held-out ones as the script's own split needs to leave them for
  training) and the test images, as uint8 arrays, as Keras's loader gives them;
- ``keras.utils.set_random_seed(seed)`` just before it runs, op determinism on (as in the
  ports' jobs), the job's threads;
- ``keras.Model.fit`` gains a callback that records each epoch as the port's history
  (``programs.Recorder``: the script's own training and validation numbers, the test set
  evaluated after each epoch as the port does) and, for a scaled budget, stops after the
  budget's steps; it checks that the call is the registry's recipe, can start the model
  from given initial weights (the port's: variant ``original_from_port``), and predicts
  every validation and test image after training. The script's printed output goes to
  the log.

The record is the port's (``runs.write_run``), marked ``"implementation": "keras script"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import time
import uuid
from pathlib import Path
from unittest import mock

import numpy as np

from .. import data as mdata
from .. import loops, registry, runs
from ..config import original_variant
from ..programs import Program, ProgramRun, Recorder, _set_threads
from ..settings import ORIGINAL, TrainSettings

__all__ = ["IMPLEMENTATION", "Recorder", "check_call", "fit_in_order", "script_inputs", "script_path",
           "train_script"]

log = logging.getLogger(__name__)

IMPLEMENTATION = "keras script"
TRAINING_LOOP = "the author's script: model.fit"
SCRIPTS = Path(__file__).parent / "keras_scripts"
# A recipe optimizer a script may use -> its Keras class and the arguments compared with the recipe's
KERAS_OPTIMIZERS = {"keras_adam": ("Adam", ("beta_1", "beta_2", "epsilon", "amsgrad")),
                    "keras_adadelta": ("Adadelta", ("rho", "epsilon"))}


def script_path(arch: str) -> Path:
    """The project's copy of the program of ``arch`` (an entry with a Keras script original)."""
    a = registry.get_architecture(arch)
    if a.original != IMPLEMENTATION:
        raise registry.RegistryError(f"{arch}: its original is a {a.original} program, not a Keras script")
    return SCRIPTS / f"{arch}.py"


def script_inputs(d: dict, recipe: registry.Recipe, train_subset: int | None) -> tuple:
    """What load_data hands the script: the training file's images and labels in file order
    (the recipe's training part and held-out part, placed as the split places them) and the
    test images; uint8, as keras.datasets.mnist.load_data returns them."""
    split = recipe.split
    x_tr, y_tr, x_va, y_va = d["x_train"], d["y_train"], d["x_val"], d["y_val"]
    if train_subset:  # the port's first training images, and what the script's split holds out
        keep = split.holdout_for(len(x_tr))
        if keep > len(x_va):
            raise ValueError(f"train_subset {train_subset}: the script's split needs {keep} held-out images, "
                             f"the split has {len(x_va)}")
        x_va, y_va = x_va[:keep], y_va[:keep]
    parts = [(x_va, y_va), (x_tr, y_tr)] if split.at == "start" else [(x_tr, y_tr), (x_va, y_va)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return (x, y), (d["x_test"], d["y_test"])


def check_call(recipe: registry.Recipe, model, args: dict) -> list[str]:
    """Where the script's compile and fit differ from the registry's recipe."""
    import keras

    wrong = []
    batch = args.get("batch_size") or 32  # fit's default
    if batch != recipe.batch_size:
        wrong.append(f"batch_size: registry {recipe.batch_size}, script {batch}")
    if recipe.budget_unit != "epochs" or args.get("epochs", 1) != recipe.budget:
        wrong.append(f"budget: registry {recipe.budget} {recipe.budget_unit}, script {args.get('epochs', 1)} epochs")
    if bool(args.get("shuffle", True)) != recipe.shuffle:
        wrong.append(f"shuffle: registry {recipe.shuffle}, script {args.get('shuffle', True)}")
    split, held_out = float(args.get("validation_split") or 0.0), recipe.split.validation
    if split != held_out or isinstance(held_out, int) and held_out:  # a count: no fit argument says it
        wrong.append(f"validation_split: registry {recipe.data_split}, script {split}")
    if args.get("validation_data") is not None and held_out:  # the test set only (train_script checks)
        wrong.append(f"validation_data: registry {recipe.data_split}, script passes its own validation data")
    opt = model.optimizer
    if recipe.optimizer in KERAS_OPTIMIZERS:
        name, arg_names = KERAS_OPTIMIZERS[recipe.optimizer]
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        have = (type(opt) is getattr(keras.optimizers, name), lr,
                *(getattr(opt, a, None) for a in arg_names))
        need = (True, float(np.float32(recipe.learning_rate)),  # the rate is a float32 variable
                *(recipe.optimizer_args[a] for a in arg_names))
        if have != need:
            wrong.append(f"optimizer: registry keras {name} {need[1:]}, script {type(opt).__name__} {have[1:]}")
    else:
        wrong.append(f"optimizer: a script original of a {recipe.optimizer!r} recipe is not supported")
    return wrong


def train_script(
    data_path: str | Path,
    out_dir: str | Path,
    settings: TrainSettings,
    seed: int = 0,
    *,
    threads: int = 1,
    device: dict | None = None,
    config: dict | None = None,
    initial_weights: list | None = None,
    from_port: bool = False,
    script: str | Path | None = None,
    platform=None,
) -> dict:
    """Run the author's script of ``arch`` on the prepared split; write metrics.json,
    history.csv, confusion.csv and predictions.npz into ``out_dir`` (no model file).
    Returns the metrics. ``settings``: the run's (``settings.for_original``); the other
    arguments are ``originals.train_original``'s; ``script``: a copy of the author's own
    file to run instead of ``keras_scripts/<arch>.py``."""
    import keras

    from ..models import port_initial_weights

    t_start_job = time.perf_counter()
    arch, variant = settings.arch, settings.variant
    budget_scale, train_subset, eval_subset, eval_batch_size = (getattr(settings, k) for k in ORIGINAL)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch_info = registry.get_architecture(arch)
    recipe = registry.resolve_recipe(arch, variant)
    path = Path(script) if script else script_path(arch)
    _set_threads(threads)

    t0 = time.perf_counter()
    raw = mdata.split_arrays(mdata.load_split(Path(data_path)), recipe.data_split)  # uint8
    for part, n in (("train", train_subset), ("test", eval_subset)):
        if n:
            raw[f"x_{part}"], raw[f"y_{part}"] = raw[f"x_{part}"][:n], raw[f"y_{part}"][:n]
    train_file, test_file = script_inputs(raw, recipe, train_subset)
    n_train, n_val = recipe.split.sizes(len(train_file[0]))  # as the script's own split takes them
    x_test, y_test = mdata.as_float(test_file[0]), test_file[1].astype(np.int32)
    x_val, y_val = mdata.as_float(recipe.split.cut(train_file[0])[1]), recipe.split.cut(train_file[1])[1]
    data_seconds = time.perf_counter() - t0

    if from_port:
        if initial_weights is not None:
            raise ValueError("give initial_weights or from_port, not both")
        initial_weights = port_initial_weights(arch, variant, seed)
    pl = loops.plan(recipe, n_train, budget_scale)
    state: dict = {}

    def fit_recorded(fit, call):
        model = call["self"]
        if state:
            raise RuntimeError(f"{path.name} calls fit twice; the runner records one fit")
        wrong = check_call(recipe, model, call)
        if call.get("validation_data") is not None and not _is_test_set(call["validation_data"], y_test):
            wrong.append("validation_data: the script validates on images other than the test set")
        if wrong:
            raise registry.RegistryError(f"{arch}/{variant}: the recipe is not the script's: " + "; ".join(wrong))
        y = np.asarray(call.get("y"))
        one_hot = y.ndim == 2  # the labels in the script's form, for its loss
        label = (lambda v: np.eye(10, dtype=np.float32)[v]) if one_hot else (lambda v: v)
        shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else (28, 28, 1)
        as_input = lambda x: x.reshape((-1, *shape))  # noqa: E731  (the quickstart's images are (28, 28))
        test_set = loops.EvalSet(as_input(x_test), label(y_test), eval_batch_size)
        recorder = Recorder(test_set, pl, recipe, n_train)
        if initial_weights is not None:
            _assign(model, initial_weights)
        call["callbacks"] = [*(call.get("callbacks") or []), recorder.callback]
        if pl["n_chunks"] != recipe.budget:  # a scaled budget: as many epochs as it reaches
            call["epochs"] = pl["n_chunks"]
        out = fit_in_order(fit, call, recipe, n_train, seed, recorder) if from_port else fit(**call)
        t = time.perf_counter()
        val_set = loops.EvalSet(as_input(x_val), label(y_val), eval_batch_size)
        state.update(model=model, recorder=recorder, y_pred=test_set.predict(model).argmax(axis=1),
                     val_pred=val_set.predict(model).argmax(axis=1), predict_seconds=time.perf_counter() - t)
        return out

    defaults = dict(arch_info.keras_defaults.get(variant, {}))
    with contextlib.ExitStack() as stack:
        for cls_name, values in defaults.items():  # the Keras the claim was measured on
            stack.enter_context(keras_defaults(cls_name, values))
        ProgramRun(Program.read(path), train_file, test_file, fit_recorded).run(seed, threads)
    rec: Recorder = state["recorder"]
    history = rec.history
    metrics = {
        "arch": arch,
        "variant": original_variant(variant, from_port),
        "original_of": variant,
        "implementation": IMPLEMENTATION,
        "script": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                   **({"keras_defaults": {c: dict(v) for c, v in defaults.items()}} if defaults else {})},
        "initial_weights": (f"the port's (seed {seed})" if from_port else "given" if initial_weights is not None
                            else "own initialisers"),
        "seed": seed, "baseline": arch_info.baseline, "backend": keras.backend.backend(), "device": device or {},
        "recipe": recipe.as_dict(), "overrides": {}, "budget_scale": budget_scale,
        "train_subset": train_subset, "eval_subset": eval_subset,
        "speed": {"jit_compile": "auto", "jit_compile_used": bool(getattr(state["model"], "jit_compile", False)),
                  "steps_per_execution": 1, "steps_per_execution_used": 1, "resident_data": False,
                  "resident_data_used": False, "training_loop": TRAINING_LOOP, "eval_batch_size": eval_batch_size,
                  "threads": threads},
        "n_train": n_train, "n_val": n_val, "n_test": int(len(y_test)),
        **pl,
        **runs.budget_flags(budget_scale, train_subset, eval_subset, None),
        "claim": arch_info.claim.as_dict(),
        **runs.results(history, state["y_pred"], y_test, arch_info.claim.lower, recipe.batch_size,
                       pl["steps_per_epoch"], n_val + len(y_test), rec.load),
        "resumed_from_epoch": None,
        "data_seconds": data_seconds, "predict_seconds": state["predict_seconds"], "save_seconds": 0.0,
        "job_seconds": time.perf_counter() - t_start_job,
        "provenance": runs.provenance(Path(data_path)),
        "config": config or {},
        "result_id": uuid.uuid4().hex,
    }
    if metrics["total_steps"] != rec.steps:
        raise RuntimeError(f"{path.name} ran {rec.steps} steps, the plan {metrics['total_steps']}")
    if platform is not None:  # the job's platforms.Session: what ran
        metrics["platform"] = platform.record(metrics["backend"])
    runs.write_run(out_dir, metrics, history, y_val, state["val_pred"], y_test, state["y_pred"])
    return metrics


def _is_test_set(validation_data, y_test) -> bool:
    """Whether a script's ``fit(validation_data=...)`` is the test set it was handed (its labels
    in the test file's order, one-hot or not): the author measured the test set each epoch."""
    try:
        labels = np.asarray(validation_data[1])
    except (TypeError, IndexError, KeyError):
        return False
    labels = labels.argmax(axis=-1) if labels.ndim == 2 else labels.reshape(-1)
    return len(labels) == len(y_test) and bool(np.array_equal(labels, y_test))


def keras_defaults(cls_name: str, values) -> contextlib.AbstractContextManager:
    """While active, ``keras.optimizers.<cls_name>`` (or a layer or loss of that name) takes
    ``values`` for the arguments a caller leaves out: a script written for another Keras
    runs with that Keras's defaults (Keras 2's ``Adadelta()`` had learning rate 1.0, Keras
    3's has 0.001); what the script passes explicitly stays its own."""
    import keras

    cls = next((getattr(m, cls_name) for m in (keras.optimizers, keras.layers, keras.losses)
                if isinstance(getattr(m, cls_name, None), type)), None)
    if cls is None:
        raise registry.RegistryError(f"keras_defaults: no Keras optimizer, layer or loss named {cls_name!r}")
    init = cls.__init__
    sig = inspect.signature(init)
    unknown = sorted(set(values) - set(sig.parameters))
    if unknown:
        raise registry.RegistryError(f"keras_defaults: {cls_name} has no argument {', '.join(unknown)}; "
                                     f"it takes {', '.join(list(sig.parameters)[1:])}")

    def __init__(self, *args, **kwargs):
        given = sig.bind_partial(self, *args, **kwargs).arguments
        init(self, *args, **{**{k: v for k, v in values.items() if k not in given}, **kwargs})

    return mock.patch.object(cls, "__init__", __init__)


def fit_in_order(fit, call: dict, recipe, n_train: int, seed: int, recorder: Recorder):
    """The script's fit, epoch by epoch, in the port's data order (``loops.DataOrder``):
    the same held-out images (``DataSplit.cut`` is Keras's own slicing), each epoch's
    training images in the port's permutation, unshuffled, one ``fit`` call per epoch."""
    model, x, y = call.pop("self"), call.pop("x"), call.pop("y")
    epochs = call.pop("epochs", 1)
    split = call.pop("validation_split", 0.0)
    for key in ("shuffle", "initial_epoch"):
        call.pop(key, None)
    if split:
        (x, x_val), (y, y_val) = recipe.split.cut(x), recipe.split.cut(y)
        call["validation_data"] = (x_val, y_val)
    order, out = loops.DataOrder.of(recipe, n_train, seed), None
    for epoch in range(epochs):
        idx = order.epoch_order(epoch)
        out = fit(model, x[idx], y[idx], epochs=epoch + 1, initial_epoch=epoch, shuffle=False, **call)
        if recorder.steps >= recorder.plan["total_steps"]:
            break
    return out


def _assign(model, weights) -> None:
    """Start the script's model from ``weights`` (trainable weights, layer order)."""
    weights = list(weights)
    if len(weights) != len(model.trainable_weights) or any(
            tuple(w.shape) != tuple(np.shape(v)) for w, v in zip(model.trainable_weights, weights)):
        raise ValueError(f"{model.name}: the initial weights' shapes "
                         f"{[tuple(np.shape(v)) for v in weights]} are not the script's "
                         f"{[tuple(w.shape) for w in model.trainable_weights]}")
    for w, v in zip(model.trainable_weights, weights):
        w.assign(np.asarray(v, dtype=np.float32))
