"""The training settings: what one training job computes, defined once.

``TrainSettings`` lists them with each one's default, its help text, where the config
keeps it and its command-line flag. The config (``config.train_settings``: the
``train_model`` rule's params), the command line (``mnist-audit train`` and
``original``) and ``train.train_run`` all read this list; a new setting is one more
field here (the config schema describes the same keys: tests/test_config.py checks
that their defaults agree).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any


REQUIRED = dataclasses.MISSING  # a setting without a default


def _setting(default: Any, help: str, *, config: tuple[str, ...] | None = None, coerce: Callable | None = None,
             flag: str | None = None, parse: Callable | None = None, cli_default: Any = None,
             **argparse_kwargs) -> Any:
    """A field of TrainSettings. ``config``: its key path in the config (``"{arch}"`` stands
    for the job's architecture), ``coerce``: applied to the config's value; ``flag``: its
    command-line option (default ``--<name>``), ``parse``: the option's value to the
    setting's, and ``cli_default`` the option's default (without ``parse``, the option's
    default is the setting's); ``argparse_kwargs``: for ``add_argument``."""
    if parse is None and default is not REQUIRED:
        cli_default = default
    meta = {"help": help, "config": config, "coerce": coerce, "flag": flag, "parse": parse,
            "argparse": {**({"default": cli_default} if cli_default is not None else {}), **argparse_kwargs}}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _spe(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f'expected "auto" or a whole number of at least 1, got {value!r}')
    return int(value)


def _json_object(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object such as \'{{"learning_rate": 0.001}}\', got {text!r}')
    return value


_JIT = {"auto": "auto", "on": True, "off": False}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything a training job computes apart from its seed; Snakemake's params of the
    ``train_model`` rule are ``as_params()`` (so changing one reruns the job)."""

    arch: str = _setting(REQUIRED, "the architecture (mnist-audit models lists them)", required=True)
    variant: str = _setting("default", "the registry's recipe variant of the architecture")
    overrides: dict = _setting({}, 'recipe overrides, e.g. {"learning_rate": 0.001} (JSON on the command line)',
                               config=("recipe_overrides", "{arch}"), coerce=dict, type=_json_object)
    budget_scale: float = _setting(1.0, "multiplies the recipe's optimizer-step budget (1 = as published)",
                                   config=("budget_scale",), coerce=float, type=float)
    train_subset: int | None = _setting(None, "train on the first N of the 55,000 training images",
                                        config=("train_subset",), type=int)
    eval_subset: int | None = _setting(None, "evaluate on the first N validation and test images",
                                       config=("eval_subset",), type=int)
    eval_batch_size: int = _setting(1000, "batch size of the evaluation passes", config=("eval_batch_size",),
                                    coerce=int, type=int)
    jit_compile: bool | str = _setting("auto", "XLA: auto = Keras's choice (off on a TensorFlow CPU, on for GPUs "
                                       "and JAX)", config=("speed", "jit_compile"), parse=_JIT.__getitem__,
                                       choices=list(_JIT), cli_default="auto")
    steps_per_execution: int | str = _setting("auto", 'optimizer steps per compiled call: a number, or "auto" '
                                              "(by the work in a step)", config=("speed", "steps_per_execution"),
                                              type=_spe)
    resident_data: bool = _setting(True, "copy each epoch's batches from NumPy instead of gathering them from a "
                                   "resident tensor", config=("speed", "resident_data"), coerce=bool,
                                   flag="--no-resident-data", parse=lambda off: not off, action="store_true")

    def as_params(self) -> dict:
        """The settings as a plain dict (JSON-serialisable), in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config: Mapping, arch: str, variant: str) -> TrainSettings:
        """The job's settings from the (validated) config; a key the config lacks takes the default."""
        values = {"arch": arch, "variant": variant}
        for f in dataclasses.fields(cls):
            path = f.metadata["config"]
            if path is None:
                continue
            value: Any = config
            for key in path:
                value = (value or {}).get(key.format(arch=arch), _MISSING)
                if value is _MISSING:
                    break
            if value is _MISSING:
                value = default_of(f)
            coerce = f.metadata["coerce"]
            values[f.name] = coerce(value) if coerce else value
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, names: tuple[str, ...] | None = None) -> TrainSettings:
        """The settings from ``add_arguments``'s options (``names``: those it added)."""
        values = {}
        for f in _fields(names):
            value = getattr(args, f.name)
            parse = f.metadata["parse"]
            values[f.name] = parse(value) if parse else value
        return cls(**values)


_MISSING = object()

# The settings an author's program reads (a TF1 original or a Keras tutorial's script): it
# fixes its own recipe and training loop, so no recipe override and no speed lever.
ORIGINAL = ("budget_scale", "train_subset", "eval_subset", "eval_batch_size")


def for_original(arch: str, variant: str, **settings) -> TrainSettings:
    """An original's settings, from the fields of ``ORIGINAL`` (each with its default);
    any other setting is refused by name rather than ignored."""
    other = sorted(set(settings) - set(ORIGINAL))
    if other:
        raise TypeError(f"{arch}/{variant}: an author's program takes only the settings {', '.join(ORIGINAL)}; "
                        f"not {', '.join(other)} (it fixes its own recipe and training loop)")
    return TrainSettings(arch=arch, variant=variant, **settings)


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _fields(names: tuple[str, ...] | None) -> list[dataclasses.Field]:
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    return [fields[n] for n in names] if names is not None else list(fields.values())


def names() -> tuple[str, ...]:
    """The settings' names, in order."""
    return tuple(f.name for f in dataclasses.fields(TrainSettings))


def defaults() -> dict:
    """Each setting's default (those that have one)."""
    return {f.name: default_of(f) for f in dataclasses.fields(TrainSettings) if default_of(f) is not REQUIRED}


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """One command-line option per setting (or per setting in ``names``), with its help and default."""
    for f in _fields(names):
        kwargs = {"help": f.metadata["help"], **f.metadata["argparse"]}
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, **kwargs)
