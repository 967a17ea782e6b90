"""Recipe types and the rules of what a recipe override may change.

The types of the registry's entries (``Recipe``, ``Claim``, ``Architecture``), the
vocabularies they use (optimizers and their arguments, losses, budget units, claim
measures), and the one validator of recipe overrides (``apply_changes``). The
entries themselves and the look-ups are in ``mnist_audit.registry``.

The config schema does not restate these rules: ``config.resolved_schema`` copies
``override_schema()`` into it, so the schema and the Python check are one statement.
Standard library only (the Snakefile imports it through the registry).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

from .splits import DATA_SPLITS, DEFAULT_SPLIT, TRAIN_FILE_IMAGES, DataSplit, recipe_split

__all__ = [
    "ARG_RANGES",
    "BUDGET_UNITS",
    "DATA_SPLITS",
    "ORIGINAL_KINDS",
    "TRAIN_FILE_IMAGES",
    "LOSSES",
    "OPTIMIZERS",
    "OPTIMIZER_ARGS",
    "OVERRIDABLE",
    "OVERRIDE_RULES",
    "READINGS",
    "SPLITS",
    "Architecture",
    "Claim",
    "DataSplit",
    "Recipe",
    "RegistryError",
    "ClaimError",
    "apply_changes",
    "override_schema",
    "parse_claim",
    "recipe_split",
    "rounding_bound",
]


class RegistryError(ValueError):
    """An unknown architecture, variant or override key, or a bad override value."""


BUDGET_UNITS = ("steps", "epochs")
# The training loss, as the author's code computed it.
LOSSES = (
    "softmax_xent",  # softmax cross-entropy on logits (the stable form of -sum(y*log(softmax)))
    "clipped_binary_xent",  # softmax clipped to [1e-10, 0.9999999], -mean(sum(y*log p + (1-y)*log(1-p)))
    # Keras's categorical_crossentropy on a softmax output, one-hot labels: on TensorFlow
    # Keras takes the softmax's own logits (softmax_cross_entropy_with_logits), elsewhere
    # the normalised probabilities clipped to [1e-7, 1 - 1e-7]
    "softmax_output_xent",
)
SPLITS = ("test", "val")
READINGS = ("final", "best epoch")
# Who wrote the "original" a port is compared with (mnist_audit.originals): for the TF1-era
# tutorials an independent program in TensorFlow 1's graph API; for a Keras tutorial the
# author's own Keras script, run as written (originals/keras_scripts/<name>.py).
ORIGINAL_KINDS = ("tf1 graph", "keras script")


# Optimizer name -> its arguments with their defaults (TF1's; Keras's for keras_adam). A recipe's optimizer_args
# always spells out every argument of its optimizer except for plain SGD (no arguments
# in any recipe; momentum 0 is the TF1 GradientDescentOptimizer).
OPTIMIZER_ARGS: Mapping[str, Mapping[str, float | bool]] = MappingProxyType(
    {
        # tf.train.GradientDescentOptimizer; keras SGD(momentum=0) is the same update.
        "sgd": MappingProxyType({"momentum": 0.0, "nesterov": False}),
        # tf.train.AdamOptimizer defaults; Keras's own Adam default epsilon is 1e-7.
        "adam": MappingProxyType({"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
        # tf.train.RMSPropOptimizer(lr, decay=0.9): ms starts at 1.0, eps 1e-10.
        "rmsprop_tf1": MappingProxyType(
            {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-10, "initial_accumulator": 1.0}
        ),
        # keras.optimizers.Adam (Keras 3; tf.keras 2 had the same defaults): optimizer="adam".
        "keras_adam": MappingProxyType({"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}),
        # keras.optimizers.Adadelta: rho 0.95 and epsilon 1e-7 in Keras 2 (epsilon=None meant
        # K.epsilon() = 1e-7) as in Keras 3; only the default learning rate moved (1.0 -> 0.001).
        "keras_adadelta": MappingProxyType({"rho": 0.95, "epsilon": 1e-7}),
    }
)
OPTIMIZERS = tuple(OPTIMIZER_ARGS)

# Allowed range of each numeric optimizer argument: (low, high, low_inclusive, high_inclusive).
# Which arguments are allowed depends on the optimizer, so these are checked in Python
# only (_check_optimizer_args); the config schema just asks for a mapping.
ARG_RANGES: Mapping[str, tuple[float, float, bool, bool]] = MappingProxyType({
    "momentum": (0.0, 1.0, True, False),
    "beta_1": (0.0, 1.0, True, False),
    "beta_2": (0.0, 1.0, True, False),
    "rho": (0.0, 1.0, True, False),
    "epsilon": (0.0, math.inf, False, False),
    "initial_accumulator": (0.0, math.inf, True, False),
})

# What each overridable recipe key may be, as JSON Schema: the one statement of these
# rules. _check_override enforces them with messages that say what is allowed, and
# override_schema() hands them to the config schema (which also types --config strings).
OVERRIDE_RULES: Mapping[str, Mapping] = MappingProxyType({key: MappingProxyType(rule) for key, rule in {
    "optimizer": {"type": "string", "enum": OPTIMIZERS},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0},
    "optimizer_args": {"type": "object",
                       "description": "arguments of the optimizer (names and ranges checked per optimizer)"},
    "batch_size": {"type": "integer", "minimum": 1},
    "budget": {"type": "integer", "minimum": 1, "description": "steps or epochs, per budget_unit"},
    "budget_unit": {"type": "string", "enum": BUDGET_UNITS},
    "shuffle": {"type": "boolean"},
    "drop_last": {"type": "boolean"},
    "loss": {"type": "string", "enum": LOSSES, "description": "the training loss"},
}.items()})
OVERRIDABLE = tuple(OVERRIDE_RULES)


def override_schema() -> dict:
    """JSON Schema of one architecture's recipe overrides (a fresh copy of OVERRIDE_RULES)."""
    def plain(rule):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in rule.items()}

    return {"type": "object", "additionalProperties": False,
            "properties": {key: plain(rule) for key, rule in OVERRIDE_RULES.items()}}


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Recipe:
    """A training recipe as the original code ran it."""

    optimizer: str  # "sgd" | "adam" | "rmsprop_tf1"
    learning_rate: float
    optimizer_args: Mapping  # read-only; see OPTIMIZER_ARGS for the names
    batch_size: int
    budget: int  # as the original counted it
    budget_unit: str  # "steps" | "epochs"
    shuffle: bool  # True: TF1 mnist.train.next_batch, reshuffled every epoch
    drop_last: bool  # True: the last partial batch of an epoch is dropped
    kernel_init: str  # human-readable
    bias_init: str | None  # None when the net has no biases
    dropout: tuple[float, ...] = ()  # Keras rates (1 - keep), in layer order
    loss: str = "softmax_xent"  # see LOSSES
    data_split: str = DEFAULT_SPLIT  # see DATA_SPLITS: which training-file images train and validate
    # True: every epoch is its own permutation cut into batches, the last one partial (Keras's
    # fit); False: TF1's next_batch stream, whose batches carry over the epoch's end
    partial_batch: bool = False

    def __post_init__(self):
        object.__setattr__(self, "optimizer_args", _frozen(self.optimizer_args))
        object.__setattr__(self, "dropout", tuple(self.dropout))
        if self.loss not in LOSSES:
            raise RegistryError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.data_split not in DATA_SPLITS:
            raise RegistryError(f"unknown data_split {self.data_split!r}; known: {', '.join(DATA_SPLITS)}")
        if self.partial_batch and self.drop_last:
            raise RegistryError("a recipe cannot both drop and keep the last partial batch "
                                "(partial_batch and drop_last are both true)")

    @property
    def split(self) -> DataSplit:
        """How this recipe divides MNIST's training file (``DATA_SPLITS[data_split]``)."""
        return DATA_SPLITS[self.data_split]

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one pass over ``n_train`` images."""
        if n_train <= 0:
            raise ValueError(f"n_train must be positive, got {n_train}")
        if self.drop_last:
            return n_train // self.batch_size
        return -(-n_train // self.batch_size)

    def total_steps(self, n_train: int) -> int:
        """The whole budget in optimizer steps."""
        if self.budget_unit == "steps":
            return self.budget
        return self.budget * self.steps_per_epoch(n_train)

    def as_dict(self) -> dict:
        """JSON-serialisable copy (for logging). The fields added after the first published
        records (``data_split``, ``partial_batch``) appear only where they differ from
        their defaults, so a TF1 tutorial's record reads as it always did."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in _LATER_FIELDS or getattr(self, f.name) != f.default}
        out["optimizer_args"] = dict(self.optimizer_args)
        out["dropout"] = list(self.dropout)
        return out


_LATER_FIELDS = ("data_split", "partial_batch")



@dataclass(frozen=True)
class Claim:
    """The accuracy the author claims, and how the original measured it."""

    text: str | None  # the author's words; None if no claim
    value: float | None  # headline figure as a fraction
    lower: float | None  # lowest accuracy consistent with the claim's rounding: THE threshold
    where: str  # how/where the original measured it
    split: str = "test"  # the author's measure: "test" or "val" (the 5,000-image validation set)
    reading: str = "final"  # "final" (after the whole budget) or "best epoch" (a running maximum)
    reference: str | None = None  # a figure someone else stated (shown, never judged)
    recipe_variant: str | None = None  # the variant whose recipe the claim sentence came from
    # other variants judged against the same claim: e.g. the author's file as a reader runs it
    # today, on a library whose defaults changed since the claim was measured
    also_judged: tuple[str, ...] = ()

    def __post_init__(self):
        if self.split not in SPLITS or self.reading not in READINGS:
            raise RegistryError(f"claim measure {self.split}/{self.reading}: split one of {SPLITS}, "
                                f"reading one of {READINGS}")
        object.__setattr__(self, "also_judged", tuple(self.also_judged))
        if self.also_judged and self.lower is None:
            raise RegistryError("a claim without a bound judges no variant (also_judged needs lower)")

    def judges(self, variant: str) -> bool:
        """Whether runs of ``variant`` get a verdict against this claim: the claim's own
        recipe (``recipe_variant``, else the default) and any variant in ``also_judged``."""
        return self.lower is not None and (variant == (self.recipe_variant or "default")
                                           or variant in self.also_judged)

    @property
    def measure(self) -> str:
        """The author's measure in words: "test, final" or "validation, best epoch"."""
        return f"{'validation' if self.split == 'val' else 'test'}, {self.reading}"

    def as_dict(self) -> dict:
        """JSON-serialisable copy; ``also_judged`` only where set (the records of claims
        without it read as they always did)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.also_judged:
            del out["also_judged"]
        else:
            out["also_judged"] = list(self.also_judged)
        return out


def rounding_bound(figure: str) -> float:
    """The lowest accuracy (a fraction) consistent with a claimed percentage as written:
    anything that rounds to it at its last stated digit (SPEC section 4). "99" -> 0.985,
    "92" -> 0.915, "99.25" -> 0.99245; a range "97-98" is bounded by its lower end (0.965)."""
    low = str(figure).strip().removesuffix("%").split("-")[0].strip()
    try:
        d = Decimal(low)
    except InvalidOperation:
        raise RegistryError(f"claimed figure {figure!r}: write the percentage as the author did, "
                            "e.g. '99' or '99.25' (a range: '97-98')") from None
    if not d.is_finite() or not 0 < d <= 100:
        raise RegistryError(f"claimed figure {figure!r} is not a percentage in (0, 100]")
    half_unit = Decimal(5).scaleb(d.as_tuple().exponent - 1)  # half of the last stated digit
    return float((d - half_unit) / 100)


class ClaimError(RegistryError):
    """A claim that is not a percentage."""


# "99%", "99.25%", "~98%", "about 92 %", "roughly 99%", "97-98%": an optional word of
# approximation, a figure or a range of two, and the percent sign
_APPROX = r"(?:~|≈|about|around|roughly|approximately|approx\.?|nearly|almost)"
_FIGURE = r"(\d{1,3}(?:\.\d+)?)"
_CLAIM = re.compile(rf"^\s*(?:{_APPROX}\s*)?{_FIGURE}\s*%?\s*(?:(?:-|–|to)\s*{_FIGURE}\s*)?%\s*$", re.I)
CLAIM_EXAMPLES = '"99%", "99.25%", "~98%", "roughly 99%" or "97-98%"'


def parse_claim(text: str, where: str = "as stated by the user") -> Claim:
    """A claim as an author writes it, with its bound by the rounding rule: "99%" is
    consistent with anything that rounds to it, at least 98.5%; "99.25%", at least
    99.245%; "~98%", "about 98%", "roughly 98%", at least 97.5%; a range "97-98%", at
    least 96.5% (its lower figure's bound; the value is the middle). A test-set
    accuracy after the whole budget. Anything else raises ``ClaimError`` naming it."""
    m = _CLAIM.match(str(text))
    if not m:
        bare = re.fullmatch(rf"\s*(?:{_APPROX}\s*)?{_FIGURE}(?:\s*(?:-|–|to)\s*{_FIGURE})?\s*", str(text), re.I)
        hint = (f" (it has no percent sign: for {text.strip()}% write '{text.strip()}%')"
                if bare else "")
        raise ClaimError(f"claim {text!r} is not a percentage{hint}; write it as the author did, e.g. "
                         f"{CLAIM_EXAMPLES}")
    low, high = m.group(1), m.group(2)
    for figure in (low, high):
        if figure is not None and not 0 < Decimal(figure) <= 100:
            raise ClaimError(f"claim {text!r}: {figure}% is not an accuracy (between 0 and 100%)")
    if high is not None and Decimal(high) <= Decimal(low):
        raise ClaimError(f"claim {text!r}: a range goes from the lower figure to the higher one")
    value = (Decimal(low) + Decimal(high)) / 2 if high is not None else Decimal(low)
    return Claim(text=str(text).strip(), value=float(value / 100), lower=rounding_bound(low),
                 where=where)


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    author: str
    seed_file: str | None  # the tutorial's text saved as a seed file (None: read at ``source``)
    baseline: bool
    layers: str  # one-line description of the layer stack (as in the author's code)
    recipe: Recipe
    claim: Claim
    variants: Mapping[str, str]  # variant -> description; always has "default"
    fidelity: tuple[str, ...]  # one line per fidelity decision
    # variant -> recipe fields it changes (applied before user overrides)
    variant_recipes: Mapping[str, Mapping] = field(default_factory=dict)
    # forward multiply-accumulates of one image (conv and dense weights; every variant has
    # the same shapes): sizes jobs without Keras; tests check it against models.macs_per_image
    macs_per_image: int = 0
    original: str = "tf1 graph"  # see ORIGINAL_KINDS: what mnist_audit.originals runs for it
    source: str | None = None  # where the author's code was read: repository, file, commit
    # How a reader meets the entry in the report: the tutorial's author and title in short form
    # ("Andy Thomas: CNN tutorial"; a baseline says so), where its author published it (None: no
    # public address is known), and each variant other than the default in a few words ("as
    # printed in the README"). Without them the report shows the title.
    short: str | None = None
    url: str | None = None
    variant_names: Mapping[str, str] = field(default_factory=dict)
    # variant -> {Keras class: its defaults in the Keras the claim was measured on}: a "keras
    # script" original of that variant runs with them in place of today's, for the arguments
    # the script leaves out (a variant not listed runs the script on today's Keras, as written)
    keras_defaults: Mapping[str, Mapping[str, Mapping]] = field(default_factory=dict)
    # the author's claim about training time, if any: shown beside our seconds, never judged
    timing_claim: str | None = None

    def __post_init__(self):
        if "default" not in self.variants:
            raise RegistryError(f"architecture {self.name!r} has no 'default' variant")
        if self.original not in ORIGINAL_KINDS:
            raise RegistryError(f"{self.name}: original {self.original!r}; known: {', '.join(ORIGINAL_KINDS)}")
        if not isinstance(self.macs_per_image, int) or self.macs_per_image <= 0:
            raise RegistryError(f"{self.name}: macs_per_image must be the forward MACs of one image, "
                                f"got {self.macs_per_image!r}")
        if not (self.seed_file or self.source):
            raise RegistryError(f"{self.name}: give the tutorial's seed_file or the source its code was read at")
        unknown = set(self.variant_recipes) - set(self.variants)
        if unknown:
            raise RegistryError(f"{self.name}: recipe changes for undeclared variants {sorted(unknown)}")
        unnamed = set(self.variant_names) - set(self.variants)
        if unnamed:
            raise RegistryError(f"{self.name}: names for undeclared variants {sorted(unnamed)}")
        if self.url is not None and not self.url.startswith("https://"):
            raise RegistryError(f"{self.name}: url {self.url!r} is not an https:// address")
        object.__setattr__(self, "variants", _frozen(self.variants))
        object.__setattr__(
            self,
            "variant_recipes",
            MappingProxyType({k: _frozen(v) for k, v in self.variant_recipes.items()}),
        )
        object.__setattr__(self, "fidelity", tuple(self.fidelity))
        object.__setattr__(self, "variant_names", _frozen(self.variant_names))
        if self.keras_defaults and self.original != "keras script":
            raise RegistryError(f"{self.name}: keras_defaults apply to a 'keras script' original only")
        unknown = set(self.keras_defaults) - set(self.variants)
        if unknown:
            raise RegistryError(f"{self.name}: keras_defaults for undeclared variants {sorted(unknown)}")
        object.__setattr__(self, "keras_defaults", MappingProxyType(
            {v: MappingProxyType({c: _frozen(a) for c, a in d.items()}) for v, d in self.keras_defaults.items()}))
        unknown = [v for v in self.claim.also_judged if v not in self.variants]
        if unknown:
            raise RegistryError(f"{self.name}: the claim judges undeclared variants {unknown}")

    @property
    def display(self) -> str:
        """The name a reader knows: ``short``, else the title."""
        return self.short or self.title

    def display_variant(self, variant: str = "default") -> str:
        """A variant as a reader meets it: the entry's name, then what the variant is
        ("cnn_tutorial README, as printed in the README"); the default is the name alone."""
        if variant == "default":
            return self.display
        return f"{self.display}, {self.variant_names.get(variant) or variant}"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "author": self.author,
            "seed_file": self.seed_file,
            "baseline": self.baseline,
            "layers": self.layers,
            "recipe": self.recipe.as_dict(),
            "claim": self.claim.as_dict(),
            "variants": dict(self.variants),
            "fidelity": list(self.fidelity),
            "macs_per_image": self.macs_per_image,
            "original": self.original,
            "source": self.source,
            **({"timing_claim": self.timing_claim} if self.timing_claim else {}),
        }


# ---------------------------------------------------------------------------
# Overrides: the checks
# ---------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_optimizer_args(optimizer: str, args, where: str) -> dict:
    allowed = OPTIMIZER_ARGS[optimizer]
    if not isinstance(args, Mapping):
        raise RegistryError(
            f"{where}: optimizer_args must be a mapping, got {args!r}; "
            f"allowed keys for {optimizer}: {', '.join(allowed)}"
        )
    out = {}
    for key, value in args.items():
        if key not in allowed:
            raise RegistryError(
                f"{where}: unknown optimizer_args key {key!r} for optimizer {optimizer!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        if isinstance(allowed[key], bool):
            if not isinstance(value, bool):
                raise RegistryError(f"{where}: optimizer_args.{key} must be true or false, got {value!r}")
        else:
            lo, hi, lo_inc, hi_inc = ARG_RANGES[key]
            ok = _is_number(value) and (value >= lo if lo_inc else value > lo) and (
                value <= hi if hi_inc else value < hi
            )
            if not ok:
                rng = f"{'[' if lo_inc else '('}{lo}, {hi}{']' if hi_inc else ')'}"
                raise RegistryError(
                    f"{where}: optimizer_args.{key} = {value!r} is not allowed; "
                    f"it must be a number in {rng}"
                )
            value = float(value)
        out[key] = value
    return out


def _check_override(key: str, value, where: str):
    """Validate one override value against its rule in OVERRIDE_RULES; return it
    normalised (a number becomes a float)."""
    rule = OVERRIDE_RULES[key]
    kind = rule["type"]
    if "enum" in rule:
        ok, allowed = value in rule["enum"], f"choose one of: {', '.join(rule['enum'])}"
    elif kind == "boolean":
        ok, allowed = isinstance(value, bool), "it must be true or false"
    elif kind == "integer":
        low = rule["minimum"]
        ok, allowed = _is_int(value) and value >= low, f"it must be an integer >= {low}"
    elif kind == "number":
        low = rule["exclusiveMinimum"]
        ok, allowed = _is_number(value) and value > low, f"it must be a number > {low}"
    else:
        raise AssertionError(key)  # optimizer_args is checked by _check_optimizer_args
    if not ok:
        raise RegistryError(f"{where}: {key} = {value!r} is not allowed; {allowed}")
    return float(value) if kind == "number" else value


def apply_changes(recipe: Recipe, changes: Mapping | None, where: str) -> Recipe:
    """``recipe`` with ``changes`` (keys of OVERRIDABLE) applied, each checked first.

    ``optimizer_args`` is merged into the current arguments; switching ``optimizer``
    first resets them to the new optimizer's TF1 defaults. Raises RegistryError naming
    ``where``, the key, the bad value and what is allowed.
    """
    if changes is None:
        return recipe
    if not isinstance(changes, Mapping):
        raise RegistryError(f"{where}: overrides must be a mapping of {', '.join(OVERRIDABLE)}; got {changes!r}")
    unknown = [k for k in changes if k not in OVERRIDABLE]
    if unknown:
        raise RegistryError(
            f"{where}: unknown recipe key {unknown[0]!r}; overridable keys: {', '.join(OVERRIDABLE)}"
        )
    new = {k: _check_override(k, v, where) for k, v in changes.items() if k != "optimizer_args"}
    optimizer = new.get("optimizer", recipe.optimizer)
    # Changing the optimizer starts from the new optimizer's TF1 defaults; given
    # optimizer_args are merged on top of whatever the base is.
    if optimizer != recipe.optimizer:
        base_args = {} if optimizer == "sgd" else dict(OPTIMIZER_ARGS[optimizer])
    else:
        base_args = dict(recipe.optimizer_args)
    if "optimizer_args" in changes:
        base_args.update(_check_optimizer_args(optimizer, changes["optimizer_args"], where))
    new["optimizer_args"] = base_args
    return replace(recipe, **new)
