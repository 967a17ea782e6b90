"""Config helpers shared by the Snakefile, the scripts and the CLI.

The JSON Schema in workflow/schemas/config.schema.yaml types, describes and
defaults every key; Snakemake's ``validate`` applies it. The architecture names
are injected from the registry so the schema's enum and the defaults of
``architectures`` and ``variants`` are the registry's lists, and the rules of a
recipe override from ``mnist_audit.recipes`` (one statement of each).
Checks that need the registry (variants, recipe overrides) run in ``check_config``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from . import credentials, recipes, registry
from .files import atomic_write_bytes
from .settings import TrainSettings

DEFAULT_STORE_DIR = Path("results/mlflow")


class ConfigError(ValueError):
    """A config value the schema cannot express a rule for (it needs the registry)."""


def resolved_schema(schema_path: str | Path) -> dict:
    """The schema with the registry's architecture names and the override rules filled in."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    names = registry.list_models()
    schema["properties"]["architectures"]["items"]["enum"] = names
    # The defaults are the registry's too: every architecture, every variant; a new
    # registry entry is in the default run without any other edit.
    schema["properties"]["architectures"]["default"] = names
    schema["properties"]["variants"]["default"] = {
        a: registry.list_variants(a) for a in names if len(registry.list_variants(a)) > 1}
    schema["properties"]["variants"]["propertyNames"] = {"enum": names}
    schema["properties"]["recipe_overrides"]["propertyNames"] = {"enum": names}
    schema["properties"]["originals"]["propertyNames"] = {"enum": names}
    from .platforms import list_platforms

    schema["properties"]["platforms"]["items"]["enum"] = list_platforms()
    # What an override may be is stated once, in recipes.py (which also checks it).
    schema["properties"]["recipe_overrides"]["additionalProperties"] = recipes.override_schema()
    return schema


def resolved_schema_path(schema_path: str | Path) -> str:
    """Write the resolved schema to a content-addressed temp file (for ``validate``)."""
    text = json.dumps(resolved_schema(schema_path), indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mnist-audit-config-schema-{digest}.json"
    if not path.exists():
        atomic_write_bytes(path, text.encode())
    return str(path)


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _alternatives(schema: Mapping, root: Mapping) -> list[Mapping]:
    """``schema`` and every schema a value may match instead: ``$ref`` resolved (local
    references), ``oneOf``/``anyOf``/``allOf`` members expanded."""
    out, todo = [], [schema]
    while todo:
        sub = todo.pop(0)
        if not isinstance(sub, Mapping):
            continue
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            todo.append(target)
        out.append(sub)
        for key in ("oneOf", "anyOf", "allOf"):
            todo += list(sub.get(key, []))
    return out


def coerce_cli_strings(value, schema: Mapping, root: Mapping | None = None):
    """Give ``--config`` values the types the schema asks for.

    Snakemake parses the members of a list or mapping given with ``--config``
    as strings (``seeds=[0,1]`` arrives as ``['0', '1']``). Where the schema
    expects a number, boolean or null and finds a string, the string is read as
    YAML and kept if it then has an expected type; anything else is left for the
    validator to report. The schema's alternatives count too (``oneOf``, ``anyOf``,
    ``$ref``): ``mirrors=[{url: /x, canonical: false}]`` gets a boolean ``canonical``.
    """
    root = schema if root is None else root
    alts = _alternatives(schema, root)
    if isinstance(value, Mapping):
        props, extra = {}, {}
        for sub in alts:
            for k, v in (sub.get("properties") or {}).items():
                props.setdefault(k, v)
            if isinstance(sub.get("additionalProperties"), Mapping) and not extra:
                extra = sub["additionalProperties"]
        return {k: coerce_cli_strings(v, props.get(k, extra), root) for k, v in value.items()}
    if isinstance(value, list):
        items = next((sub["items"] for sub in alts if isinstance(sub.get("items"), Mapping)), {})
        return [coerce_cli_strings(v, items, root) for v in value]
    if not isinstance(value, str):
        return value
    types: set = set()  # the scalar types some alternative accepts
    members: list = []  # enum / const values
    for sub in alts:
        t = sub.get("type", [])
        t = {t} if isinstance(t, str) else set(t)
        if "string" in t and "enum" not in sub and "const" not in sub:
            return value  # any string is welcome here: keep it as given
        types |= t
        members += list(sub.get("enum", [])) + ([sub["const"]] if "const" in sub else [])
    if value in members or not (types & set(_SCALARS) or members):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, str) and "number" in types:  # YAML 1.1 reads 1e-3 as a string
        try:
            parsed = float(parsed)
        except ValueError:
            return value
    if any(parsed == m and type(parsed) is type(m) for m in members):
        return parsed
    if any(isinstance(parsed, _SCALARS[t]) and not (t != "boolean" and isinstance(parsed, bool))
           for t in types if t in _SCALARS):
        return parsed
    return value


def explain_invalid(config: Mapping, schema: Mapping) -> str:
    """One short message for the config's most relevant schema violation: the key (as a
    dotted path), what is wrong, and what is allowed. No schema dump."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(config))
    if error is None:
        return "the config is valid"
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message
    described = error.schema.get("description")
    if error.validator == "additionalProperties" and isinstance(error.schema.get("properties"), Mapping):
        message += "; allowed keys: " + ", ".join(error.schema["properties"])
    elif error.validator == "pattern" and described:
        message = f"{error.instance!r} is not {described}"
    elif error.validator == "type" and described:
        message += f" ({described})"
    choice = error if error.validator in ("oneOf", "anyOf") else error.parent
    if (choice is not None and choice.validator in ("oneOf", "anyOf")
            and len(error.absolute_path) == len(choice.absolute_path)):  # not a deeper key's error
        options = [o for o in (_allowed(sub, schema) for sub in choice.validator_value) if o]
        message = f"{choice.instance!r} is none of the allowed forms: " + "; or ".join(options)
    return f"config key {where}: {message}"


def _allowed(sub: Mapping, root: Mapping) -> str:
    """A few words on what one alternative of a ``oneOf`` accepts."""
    for alt in _alternatives(sub, root):
        if alt.get("description") and alt.get("type") == "string":
            return alt["description"]
        if alt.get("type") == "object" and alt.get("properties"):
            return "{" + ", ".join(f"{k}: {v.get('type', '...')}" for k, v in alt["properties"].items()) + "}"
        if "const" in alt:
            return repr(alt["const"])
        if alt.get("type"):
            bounds = [f">= {alt['minimum']}"] if "minimum" in alt else []
            bounds += [f"> {alt['exclusiveMinimum']}"] if "exclusiveMinimum" in alt else []
            bounds += [f"<= {alt['maximum']}"] if "maximum" in alt else []
            return " ".join([f"{'an' if alt['type'] == 'integer' else 'a'} {alt['type']}", *bounds])
    return ""


def min_train_subset(arch: str, variant: str = "default", overrides: Mapping | None = None) -> int:
    """The fewest training images a recipe can train on: its batch when it drops the last
    partial batch (fewer images would leave an epoch with no step), else one."""
    recipe = registry.resolve_recipe(arch, variant, overrides or {})
    return recipe.batch_size if recipe.drop_last else 1


def check_config(config: Mapping) -> None:
    """Registry-dependent checks; raises ConfigError naming the key and the allowed values."""
    for arch, variants in (config.get("variants") or {}).items():
        known = registry.list_variants(arch)
        for v in variants:
            if v not in known:
                raise ConfigError(
                    f"config key variants.{arch}: unknown variant {v!r}; "
                    f"{arch} has: {', '.join(known)}"
                )
    for arch, variants in (config.get("originals") or {}).items():
        known = registry.list_variants(arch)
        for v in variants:
            if v not in known:
                raise ConfigError(f"config key originals.{arch}: unknown variant {v!r}; {arch} has: {', '.join(known)}")
    for arch, overrides in (config.get("recipe_overrides") or {}).items():
        try:
            registry.resolve_recipe(arch, "default", overrides)
        except recipes.RegistryError as e:
            raise ConfigError(f"config key recipe_overrides.{arch}: {e}") from e
    tracking_uri(config)  # no credentials in it
    for name, entry in (config.get("scripts") or {}).items():
        try:
            recipes.parse_claim(entry["claim"])
        except recipes.ClaimError as e:
            raise ConfigError(f"config key scripts.{name}.claim: {e}") from None
        if not Path(entry["path"]).is_file():
            raise ConfigError(f"config key scripts.{name}.path: no file {entry['path']!r} (a path relative to the "
                              f"working directory, {Path.cwd()})")
    platforms = config.get("platforms") or ["default"]
    if platforms[0] != "default":
        raise ConfigError(f"config key platforms: {platforms!r} must start with default (the claim audit's "
                          "runs); the other platforms are the same runs with other kernels, e.g. "
                          "[default, avx2, eigen, jax]")
    subset = config.get("train_subset")
    if subset is not None and config.get("architectures"):
        overrides = config.get("recipe_overrides") or {}
        for arch, variant in dict.fromkeys((a, original_of(v) or v) for a, v, _ in run_keys({**config, "seeds": [0]})):
            need = min_train_subset(arch, variant, overrides.get(arch))
            if subset < need:
                raise ConfigError(
                    f"config key train_subset: {subset} is too small for {arch}"
                    f"{'' if variant == 'default' else f' ({variant})'}: its recipe drops the last "
                    f"partial batch of {need}, so an epoch would have no step; the minimum for "
                    f"{arch} is {need} (or leave {arch} out of architectures)"
                )


ORIGINAL = "original"
# The original started from the port's draw for the same seed (its initial weights; for a
# Keras script, whose own initial weights are already the port's, its data order) instead of
# its own initialisers' draw (``originals.port_initial_weights``): "original_from_port".
FROM_PORT = "_from_port"


def original_variant(of: str, from_port: bool = False) -> str:
    """The run variant of the original of registry variant ``of``: "original" for the
    default, "original_book" for softmax_regression's book recipe, ...; with
    ``from_port``, "original_from_port", "original_book_from_port", ..."""
    return (ORIGINAL if of == "default" else f"{ORIGINAL}_{of}") + (FROM_PORT if from_port else "")


def original_of(variant: str) -> str | None:
    """The registry variant a run variant is the original of (None: a port run)."""
    if not (variant == ORIGINAL or variant.startswith(ORIGINAL + "_")):
        return None
    base = variant.removesuffix(FROM_PORT)
    return "default" if base == ORIGINAL else base[len(ORIGINAL) + 1:]


def starts_from_port(variant: str) -> bool:
    """Whether a run variant is an original started from the port's draw."""
    return original_of(variant) is not None and variant.endswith(FROM_PORT)


def run_keys(config: Mapping) -> list[tuple[str, str, int]]:
    """(architecture, variant, seed) for every training job, in config order: the ports'
    variants, then the originals asked for in ``originals``."""
    variants = config.get("variants") or {}
    originals = config.get("originals") or {}
    return [
        (arch, variant, int(seed))
        for arch in config["architectures"]
        for variant in [*variants.get(arch, ["default"]), *map(original_variant, originals.get(arch, []))]
        for seed in config["seeds"]
    ]


def platform_run_keys(config: Mapping) -> list[tuple[str, str, str, int]]:
    """(platform, architecture, variant, seed) for every training job on a platform other
    than the default (config key ``platforms``): the ports' variants, not the originals."""
    from .platforms import DEFAULT

    variants = config.get("variants") or {}
    return [(platform, arch, variant, int(seed))
            for platform in config.get("platforms") or [DEFAULT] if platform != DEFAULT
            for arch in config["architectures"]
            for variant in variants.get(arch, ["default"])
            for seed in config["seeds"]]


def train_settings(config: Mapping, arch: str, variant: str, platform: str = "default") -> dict:
    """Everything one training job needs from the config (JSON-serialisable):
    ``settings.TrainSettings`` read from it. For a TF1 original, ``variant`` is the
    registry variant it implements and ``original`` is set. ``platform``: where it runs
    (``mnist_audit.platforms``, applied by the job; named only when not the default)."""
    of = original_of(variant)
    extra = {"original": True} if of else {}
    if starts_from_port(variant):  # only then: the other jobs' params stay as they were
        extra["from_port"] = True
    if platform != "default":  # only then: a default run's params stay as they were
        extra["platform"] = platform
    return {**extra, **TrainSettings.from_config(config, arch, of or variant).as_params()}


def check_keys(config: Mapping) -> list[tuple[str, int]]:
    """(name, seed) of every job of config key ``scripts``: each file with each seed."""
    return [(name, int(seed)) for name in config.get("scripts") or {} for seed in config["seeds"]]


def check_settings(config: Mapping, name: str) -> dict:
    """What one checked file's run computes with (its claim is the report's, not the run's)."""
    return {"path": config["scripts"][name]["path"], "budget_scale": config["budget_scale"],
            "eval_batch_size": config["eval_batch_size"]}


def train_priority(config: Mapping, arch: str, variant: str) -> int:
    """Snakemake priority of a training job: its work in units of 10^12 MACs (0-48 for
    the published recipes, zaccone highest), so the longest jobs start first and the
    cores do not wait on one long job at the end of a run (on any platform)."""
    s = train_settings(config, arch, variant)
    full = registry.train_images(arch, s["variant"], s["overrides"])  # the recipe's data split
    n_train = min(s["train_subset"] or full, full)
    work = registry.training_work(arch, s["variant"], s["overrides"], n_train, s["budget_scale"])
    return int(round(work / 1e12))


def tracking_uri(config: Mapping, workdir: str | Path = ".") -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else the project's local sqlite store.

    A URI with a password or token in it is refused (ConfigError, the URI shown without
    it): it would be recorded everywhere the URI is (``mnist_audit.credentials``)."""
    given = (config.get("mlflow") or {}).get("tracking_uri")
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        try:
            return credentials.check_uri(uri, "config key mlflow.tracking_uri" if given else "$MLFLOW_TRACKING_URI")
        except credentials.CredentialsInUri as e:
            raise ConfigError(str(e)) from None
    db = (Path(workdir) / DEFAULT_STORE_DIR / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def artifact_root(workdir: str | Path = ".") -> str:
    return (Path(workdir) / DEFAULT_STORE_DIR / "artifacts").resolve().as_uri()


def sweep_key(config: Mapping) -> str:
    """What a sweep is: the set of runs the config asks for, each with the settings its
    training job gets. Mirrors, download and tracking settings, GPU packing: none is in
    it, so changing them neither starts a new sweep nor relogs a run."""
    runs = sorted([a, v, s, train_settings(config, a, v)] for a, v, s in run_keys(config))
    runs += sorted([p, a, v, s, train_settings(config, a, v, p)] for p, a, v, s in platform_run_keys(config))
    if config.get("scripts"):  # only then: a sweep without checked files keeps its key
        runs += sorted([name, s, check_settings(config, name)] for name, s in check_keys(config))
    text = json.dumps(runs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: Mapping) -> str:
    """A stable digest of the resolved config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
