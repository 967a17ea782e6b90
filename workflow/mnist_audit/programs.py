"""A Keras program run as written on the verified MNIST: a script, or a notebook's code cells.

The runner of the Keras tutorials' own scripts (``originals.scripts``) and of any user's
file (``mnist_audit.check``). A ``Program`` is a ``.py`` file, or a notebook's code cells
in their order (read with nbformat; IPython's magics and shell lines are skipped, and
said so). ``ProgramRun`` runs it in a module of its own named ``__main__`` (its folder
first on ``sys.path``, ``sys.argv`` only its path). Around it, and nowhere in it:

- ``keras.datasets.mnist.load_data`` (and its aliases, ``tf.keras`` included), whatever
  its ``path=``, returns the served arrays (uint8, as Keras's loader gives them; a fresh
  copy per call);
- ``keras.utils.set_random_seed(seed)`` just before it runs, op determinism on (as in the
  ports' jobs), the job's threads;
- every ``keras.Model.fit`` goes to a hook (``on_fit``), after a check that the program
  loaded MNIST first;
- MNIST from anywhere else fails at once, naming it: ``import tensorflow_datasets`` (an
  ImportError too, so a program that falls back to load_data runs), a download
  (``keras.utils.get_file``, any network connection);
- the program's own seeding (``keras.utils.set_random_seed``, ``tf.random.set_seed``,
  ``np.random.seed``, ``random.seed``) runs, and is recorded with where it was called.

What the program prints goes to the log. A program that never loads MNIST through
``load_data``, never calls ``fit``, loads data elsewhere or raises ends in a
``ProgramError`` that says which, with the program's own lines of the traceback.

``Recorder`` is the callback a hook adds to ``fit``: one history row per epoch, the
port's columns (the program's own training and validation numbers from fit's logs, the
test set evaluated after each epoch), stopping after a planned number of steps.

Importing this module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import importlib.abc
import inspect
import io
import linecache
import logging
import os
import random
import re
import socket
import sys
import time
import traceback
import types
from pathlib import Path
from unittest import mock

import numpy as np

from . import loops

log = logging.getLogger(__name__)


def _set_threads(threads: int) -> None:
    """The job's threads (as ``devices.configure_backend`` sets them; a process whose
    TensorFlow already runs keeps its own) and op determinism."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() != threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:  # already initialised (e.g. a test process): its threads stay
            log.warning("TensorFlow already runs: its thread settings stay (asked for %d)", threads)
    tf.config.experimental.enable_op_determinism()


class ProgramError(RuntimeError):
    """A program that cannot be run or audited as it is: the message names the problem
    and what to do."""


class NoMnist(ProgramError):
    """The program trained without loading MNIST through ``keras.datasets.mnist.load_data``."""


class OtherSource(ProgramError):
    """The program loads its data some other way (tensorflow_datasets, a download)."""


class NoFit(ProgramError):
    """The program never trained a Keras model with ``fit``."""


class ProgramRaised(ProgramError):
    """The program itself raised an exception."""


class _ImportBlocked(OtherSource, ImportError):
    """``import tensorflow_datasets``: an ImportError too, so a program that falls back to
    load_data when it is missing runs as its author meant."""


class _DownloadBlocked(OtherSource, OSError):
    """A download: an OSError too, as a network failure is."""


SERVED = "keras.datasets.mnist.load_data (or tf.keras.datasets.mnist.load_data)"
# a line of IPython rather than Python: a magic (%time, %matplotlib) or a shell command
# (!pip install ...), alone or assigned (files = !ls)
_IPYTHON_LINE = re.compile(r"^(\s*)(?:[%!]|[\w.]+\s*=\s*[%!](?!=))")
_RUN_BODY_MAGICS = ("%%time", "%%timeit", "%%capture")  # cell magics whose body is the cell's Python


@dataclasses.dataclass(frozen=True)
class Program:
    """A Python program as ``ProgramRun`` runs it: a ``.py`` file, or a notebook's code
    cells in their order (IPython's magics and shell lines are not Python: each is
    skipped, and said so in ``skipped``)."""

    path: Path
    kind: str  # "script" or "notebook"
    cells: tuple[tuple[str, str], ...]  # (name in tracebacks, source)
    skipped: tuple[str, ...] = ()
    sha256: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Program:
        path = Path(path)
        if not path.is_file():
            raise ProgramError(f"{path}: no such file")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.suffix == ".py":
            program = cls(path, "script", ((str(path), path.read_text()),), (), digest)
        elif path.suffix == ".ipynb":
            program = cls._notebook(path, digest)
        else:
            raise ProgramError(f"{path}: not a Python script (.py) or a Jupyter notebook (.ipynb)")
        for name, source in program.cells:  # a syntax error: before anything runs
            try:
                compile(source, name, "exec", dont_inherit=True)
            except SyntaxError as e:
                raise ProgramError(f"{name}, line {e.lineno}: not valid Python ({e.msg}): "
                                   f"{(e.text or '').strip()!r}") from None
        return program

    @classmethod
    def _notebook(cls, path: Path, digest: str) -> Program:
        import nbformat

        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as e:  # noqa: BLE001  (nbformat raises several kinds: all mean the same)
            raise ProgramError(f"{path}: not a Jupyter notebook nbformat can read ({type(e).__name__}: {e})") from None
        cells, skipped = [], []
        code = [c for c in nb.cells if c.cell_type == "code"]
        for number, cell in enumerate(code, 1):
            name = f"{path} [code cell {number}]"
            lines = cell.source.splitlines()
            if lines and lines[0].lstrip().startswith("%%"):
                magic = lines[0].split()[0]
                if magic not in _RUN_BODY_MAGICS:
                    skipped.append(f"code cell {number}: the whole cell ({magic} is not Python)")
                    continue
                skipped.append(f"code cell {number}, line 1: {lines[0].strip()}")
                lines[0] = ""
            for i, line in enumerate(lines):
                m = _IPYTHON_LINE.match(line)
                if m:
                    skipped.append(f"code cell {number}, line {i + 1}: {line.strip()}")
                    lines[i] = f"{m.group(1)}pass"  # the line numbers stay the notebook's
            cells.append((name, "\n".join(lines) + "\n"))
        return cls(path, "notebook", tuple(cells), tuple(skipped), digest)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.cells)

    def execute(self) -> None:
        """Run the cells in order in one new module named ``__main__`` (as ``python FILE``
        would, its folder first on ``sys.path``, ``sys.argv`` only its path)."""
        module = types.ModuleType("__main__")
        module.__file__ = str(self.path)
        module.__builtins__ = builtins
        if self.kind == "notebook":  # IPython's display() of an object: its text, printed
            module.display = lambda *objects, **_: print(*objects)
        with contextlib.ExitStack() as stack:
            main = sys.modules.get("__main__")  # swapped as runpy does (sys.modules itself stays)
            sys.modules["__main__"] = module
            stack.callback(sys.modules.__setitem__, "__main__", main)
            stack.enter_context(mock.patch.object(sys, "argv", [str(self.path)]))
            stack.enter_context(mock.patch.object(sys, "path", [str(self.path.parent.resolve()), *sys.path]))
            for name, source in self.cells:
                if name != str(self.path):  # a notebook's cell: its lines for tracebacks
                    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
                exec(compile(source, name, "exec", dont_inherit=True), module.__dict__)  # noqa: S102


class _BlockTfds(importlib.abc.MetaPathFinder):
    """``import tensorflow_datasets`` fails, naming the problem (MNIST comes from load_data)."""

    def __init__(self, run: ProgramRun):
        self.run = run

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow_datasets":
            raise self.run.other_source("imports tensorflow_datasets", _ImportBlocked)
        return None


def _everywhere(stack: contextlib.ExitStack, original, replacement, attr: str) -> None:
    """Replace ``original`` by ``replacement`` in every loaded module that holds it as
    ``attr`` (``keras.utils`` and ``keras.src.utils`` hold the same function)."""
    for module in list(sys.modules.values()):
        d = getattr(module, "__dict__", None)
        if isinstance(d, dict) and d.get(attr) is original:
            stack.enter_context(mock.patch.object(module, attr, replacement))


def _seed_functions() -> list[tuple[str, str, object]]:
    """(the name a reader knows, attribute, function) of each way to seed a program."""
    import keras

    out = [("keras.utils.set_random_seed", "set_random_seed", keras.utils.set_random_seed),
           ("np.random.seed", "seed", np.random.seed), ("random.seed", "seed", random.seed)]
    with contextlib.suppress(ImportError):
        import tensorflow as tf

        out += [("tf.random.set_seed", "set_seed", tf.random.set_seed),
                ("tf.compat.v1.set_random_seed", "set_random_seed", tf.compat.v1.set_random_seed)]
    return out


class ProgramRun:
    """One run of a ``Program`` on the served MNIST, its ``fit`` calls going to ``on_fit``.

    ``on_fit(fit, call)``: ``fit`` is Keras's own ``Model.fit``; ``call`` its arguments by
    name (``self`` the model); it returns what ``fit`` returns. After ``run``:
    ``loads`` (load_data calls), ``fits``, ``own_seeds`` (the program's own seeding,
    where), ``other_sources`` (blocked attempts) and ``output`` (what it printed).
    """

    def __init__(self, program: Program, train_file: tuple, test_file: tuple, on_fit):
        self.program, self.train_file, self.test_file, self.on_fit = program, train_file, test_file, on_fit
        self.loads = self.fits = 0
        self.own_seeds: list[str] = []
        self.other_sources: list[str] = []
        self.output = io.StringIO()

    def other_source(self, what: str, kind: type[OtherSource] = OtherSource) -> OtherSource:
        if what not in self.other_sources:
            self.other_sources.append(what)
        return kind(f"{self.program.path} {what}: MNIST comes only from {SERVED}, which the audit "
                           "serves from the verified files (offline). Load it that way, with any path= "
                           "argument, and run it again")

    def _where(self) -> str | None:
        """Where in the program the current call was made (None: outside it)."""
        frame = sys._getframe(2)
        if frame.f_code.co_filename in self.program.names:
            name = frame.f_code.co_filename
            short = name.replace(str(self.program.path), self.program.path.name)
            return f"{short}, line {frame.f_lineno}"
        return None

    def _patches(self, stack: contextlib.ExitStack) -> None:
        import keras

        import keras.datasets.mnist  # noqa: F401  (loaded, so that its aliases are patched below)

        (x, y), (x_test, y_test) = self.train_file, self.test_file

        def load_data(*args, **kwargs):
            self.loads += 1
            return (x.copy(), y.copy()), (x_test.copy(), y_test.copy())

        for name, module in list(sys.modules.items()):  # keras.datasets.mnist and its aliases
            if name.endswith("datasets.mnist") and hasattr(module, "load_data"):
                stack.enter_context(mock.patch.object(module, "load_data", load_data))
        fit = keras.Model.fit

        def fit_hook(model, *args, **kwargs):
            if not self.loads:
                raise NoMnist(f"{self.program.path} calls fit before loading MNIST through {SERVED}: the "
                              "audit can only vouch for data it serves. Load the images that way (any "
                              "path= argument) and run it again")
            call = dict(inspect.signature(fit).bind(model, *args, **kwargs).arguments)
            call.update(call.pop("kwargs", {}))
            out = self.on_fit(fit, call)
            self.fits += 1
            return out

        stack.enter_context(mock.patch.object(keras.Model, "fit", fit_hook))
        stack.enter_context(mock.patch.object(sys, "meta_path", [_BlockTfds(self), *sys.meta_path]))

        def get_file(fname=None, origin=None, *args, **kwargs):
            raise self.other_source(f"downloads {origin or fname} with keras.utils.get_file", _DownloadBlocked)

        _everywhere(stack, keras.utils.get_file, get_file, "get_file")
        connect = socket.socket.connect

        def guarded(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                raise self.other_source(f"opens a network connection (to {address})", _DownloadBlocked)
            return connect(sock, address)

        stack.enter_context(mock.patch.object(socket.socket, "connect", guarded))
        lookup = socket.getaddrinfo

        def resolve(host, *args, **kwargs):  # a name looked up: a download about to start
            if host not in (None, "localhost", "127.0.0.1", "::1"):
                raise self.other_source(f"opens a network connection (to {host})", _DownloadBlocked)
            return lookup(host, *args, **kwargs)

        stack.enter_context(mock.patch.object(socket, "getaddrinfo", resolve))
        for label, attr, original in _seed_functions():
            def seeding(*args, _label=label, _original=original, **kwargs):
                where = self._where()
                if where:
                    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
                    self.own_seeds.append(f"{_label}({shown}) at {where}")
                return _original(*args, **kwargs)

            _everywhere(stack, original, seeding, attr)

    def run(self, seed: int, threads: int) -> ProgramRun:
        """Seed, run the program, check that it loaded MNIST and trained a model."""
        import keras

        _set_threads(threads)
        path = self.program.path
        with contextlib.ExitStack() as stack:
            self._patches(stack)
            stack.callback(lambda: [log.info("%s: %s", path.name, line)
                                    for line in self.output.getvalue().splitlines()])
            stack.enter_context(contextlib.redirect_stdout(self.output))  # what the program prints: to the log
            keras.utils.set_random_seed(seed)
            try:
                self.program.execute()
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise ProgramRaised(f"{path} exited with status {e.code!r}{self._trace(e)}") from None
            except Exception as e:  # noqa: BLE001  (the program's own error, shown as it happened)
                if self.other_sources:  # the root cause, whatever the program made of it
                    raise self.other_source(self.other_sources[0]) from None
                if type(e).__module__.startswith("mnist_audit."):  # the runner's own (a hook's check)
                    raise
                raise ProgramRaised(f"{path} raised {type(e).__name__}: {e}{self._trace(e)}") from None
        if not self.fits:
            if self.other_sources:
                raise self.other_source(self.other_sources[0])
            if not self.loads:
                raise NoMnist(f"{path} never loads MNIST through {SERVED} and never trains a model with "
                              "fit: there is nothing to audit")
            raise NoFit(f"{path} never calls fit on a Keras model: nothing was trained to evaluate. The "
                        "audit evaluates the last model fit was called on; a custom training loop "
                        "(tf.GradientTape) or another library's model is not supported")
        return self

    def _trace(self, e: BaseException) -> str:
        """The exception's frames inside the program (where it raised, in the user's lines)."""
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename in self.program.names]
        return ("\n" + "".join(traceback.format_list(frames)).rstrip()) if frames else ""


class Recorder:
    """The callback the runner adds to the script's ``fit``: the port's history rows.

    ``plan["total_steps"]``: where the fit stops. For a program that calls ``fit`` more
    than once (``mnist_audit.check``), ``after`` is the Recorder of the fit before: the
    rows go on from its epochs, steps and clock. ``seen(steps)``: training epochs seen
    after this fit's first ``steps`` steps (default: the registry recipe's reckoning);
    ``evaluate(model)``: the test set's loss and accuracy (default ``test_set.evaluate``).
    """

    def __init__(self, test_set, plan: dict, recipe, n_train: int, *, seen=None, evaluate=None,
                 after: Recorder | None = None):
        import keras

        self.test_set, self.plan, self.recipe, self.n_train = test_set, plan, recipe, n_train
        self.seen = seen or (lambda steps: loops.images_seen(recipe, n_train, steps) / n_train)
        self.evaluate = evaluate or test_set.evaluate
        self.history: list[dict] = list(after.history) if after else []
        self.load: list[float] = list(after.load) if after else []
        self.steps = 0
        self.steps_before = (after.steps_before + after.steps) if after else 0
        self.epochs_before = len(self.history)
        self.seen_before = self.history[-1]["epochs_seen"] if self.history else 0.0
        self.initial_epoch = 0  # fit's initial_epoch, where a program's fit gives one
        if after is not None:
            self.t0 = after.t0
        outer = self

        class _Callback(keras.callbacks.Callback):  # a keras.callbacks.Callback bound to this recorder
            def on_train_begin(self, logs=None):  # once: the port's order calls fit once per epoch
                outer.t0 = getattr(outer, "t0", None) or time.perf_counter()

            def on_epoch_begin(self, epoch, logs=None):
                outer.t_epoch, outer.val_seconds = time.perf_counter(), 0.0

            def on_test_begin(self, logs=None):  # fit's own validation, inside the epoch
                outer.t_val = time.perf_counter()

            def on_test_end(self, logs=None):
                outer.val_seconds += time.perf_counter() - outer.t_val

            def on_train_batch_end(self, batch, logs=None):
                outer.steps += 1
                if outer.steps >= outer.plan["total_steps"]:
                    self.model.stop_training = True  # a scaled budget ends mid-epoch

            def on_epoch_end(self, epoch, logs=None):
                outer.epoch_end(self.model, epoch, logs or {})

        self.callback = _Callback()

    def epoch_end(self, model, epoch: int, logs: dict) -> None:
        t = time.perf_counter()
        test_loss, test_acc = self.evaluate(model)
        # fit's validation numbers, where the recipe has a validation set (a script that passes
        # the test set as validation_data prints the test numbers, recorded as such below)
        has_val = self.recipe is None or bool(self.recipe.split.validation)
        val = {k: (_number(logs, "val_", k) if has_val else None) for k in ("loss", "accuracy")}
        self.history.append({
            "epoch": self.epochs_before + epoch + 1 - self.initial_epoch, "steps": self.steps_before + self.steps,
            "epochs_seen": self.seen_before + self.seen(self.steps),
            "train_seconds": t - self.t_epoch - self.val_seconds,
            "eval_seconds": self.val_seconds + time.perf_counter() - t,
            "wall_seconds": time.perf_counter() - self.t0,
            "train_loss": _number(logs, "", "loss"), "train_accuracy": _number(logs, "", "accuracy"),
            "val_loss": val["loss"], "val_accuracy": val["accuracy"],
            "test_loss": test_loss, "test_accuracy": test_acc,
        })
        self.load.append(os.getloadavg()[0])
        log.info("script %s epoch %d: steps %d loss %s test %.4f", model.name, epoch + 1, self.steps,
                 f"{logs['loss']:.4f}" if "loss" in logs else "-", test_acc)


# what Keras names an accuracy metric in fit's logs, by how it was asked for
_ACCURACY = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def _number(logs: dict, prefix: str, key: str) -> float | None:
    """A loss or an accuracy from fit's logs (None where the program did not ask for it)."""
    for name in (_ACCURACY if key == "accuracy" else (key,)):
        if prefix + name in logs:
            return float(logs[prefix + name])
    return None


