"""Config helpers shared by the Snakefile, the scripts and the CLI.

The JSON Schema in workflow/schemas/config.schema.yaml types, describes and
defaults every key; Snakemake's ``validate`` applies it. The architecture names
are injected from the registry so the schema's enum is the registry's list.
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

from . import registry

DEFAULT_STORE_DIR = Path("results/mlflow")


class ConfigError(ValueError):
    """A config value the schema cannot express a rule for (it needs the registry)."""


def resolved_schema(schema_path: str | Path) -> dict:
    """The schema with the registry's architecture names filled in."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    names = registry.list_models()
    schema["properties"]["architectures"]["items"]["enum"] = names
    schema["properties"]["variants"]["propertyNames"] = {"enum": names}
    schema["properties"]["recipe_overrides"]["propertyNames"] = {"enum": names}
    schema["properties"]["originals"]["propertyNames"] = {"enum": names}
    # The registry's enums flow into the schema: one list of each.
    override = schema["properties"]["recipe_overrides"]["additionalProperties"]["properties"]
    override["optimizer"]["enum"] = list(registry.OPTIMIZERS)
    override["budget_unit"]["enum"] = list(registry.BUDGET_UNITS)
    override["loss"]["enum"] = list(registry.LOSSES)
    return schema


def resolved_schema_path(schema_path: str | Path) -> str:
    """Write the resolved schema to a content-addressed temp file (for ``validate``)."""
    text = json.dumps(resolved_schema(schema_path), indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mnist-audit-config-schema-{digest}.json"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.part")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return str(path)


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def coerce_cli_strings(value, schema: Mapping):
    """Give ``--config`` values the types the schema asks for.

    Snakemake parses the members of a list or mapping given with ``--config``
    as strings (``seeds=[0,1]`` arrives as ``['0', '1']``). Where the schema
    expects a number, boolean or null and finds a string, the string is read as
    YAML and kept if it then has an expected type; anything else is left for the
    validator to report.
    """
    if isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce_cli_strings(v, props.get(k, extra if isinstance(extra, Mapping) else {}))
                for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_cli_strings(v, schema.get("items", {})) for v in value]
    types: list = []
    for sub in [schema, *schema.get("anyOf", [])]:  # an anyOf admits each member's types
        t = sub.get("type", [])
        types += [t] if isinstance(t, str) else list(t)
    if isinstance(value, str) and "string" not in types and any(t in _SCALARS for t in types):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, str) and "number" in types:  # YAML 1.1 reads 1e-3 as a string
            try:
                parsed = float(parsed)
            except ValueError:
                return value
        if any(isinstance(parsed, _SCALARS[t]) and not (t != "boolean" and isinstance(parsed, bool))
               for t in types if t in _SCALARS):
            return parsed
    return value


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
        except registry.RegistryError as e:
            raise ConfigError(f"config key recipe_overrides.{arch}: {e}") from e


ORIGINAL = "original"


def original_variant(of: str) -> str:
    """The run variant of the TF1 original of registry variant ``of``: "original" for the
    default, "original_book" for softmax_regression's book recipe, ..."""
    return ORIGINAL if of == "default" else f"{ORIGINAL}_{of}"


def original_of(variant: str) -> str | None:
    """The registry variant a run variant is the TF1 original of (None: a port run)."""
    if variant == ORIGINAL:
        return "default"
    if variant.startswith(ORIGINAL + "_"):
        return variant[len(ORIGINAL) + 1:]
    return None


def run_keys(config: Mapping) -> list[tuple[str, str, int]]:
    """(architecture, variant, seed) for every training job, in config order: the ports'
    variants, then the TF1 originals asked for in ``originals``."""
    variants = config.get("variants") or {}
    originals = config.get("originals") or {}
    return [
        (arch, variant, int(seed))
        for arch in config["architectures"]
        for variant in [*variants.get(arch, ["default"]), *map(original_variant, originals.get(arch, []))]
        for seed in config["seeds"]
    ]


def train_settings(config: Mapping, arch: str, variant: str) -> dict:
    """Everything one training job needs from the config (JSON-serialisable). For a TF1
    original, ``variant`` is the registry variant it implements and ``original`` is set."""
    of = original_of(variant)
    extra = {"original": True} if of else {}
    return {
        **extra,
        "arch": arch,
        "variant": of or variant,
        "overrides": dict((config.get("recipe_overrides") or {}).get(arch, {})),
        "budget_scale": float(config.get("budget_scale", 1.0)),
        "train_subset": config.get("train_subset"),
        "eval_subset": config.get("eval_subset"),
        "eval_batch_size": int(config.get("eval_batch_size", 1000)),
        "jit_compile": (config.get("speed") or {}).get("jit_compile", "auto"),
        "steps_per_execution": (config.get("speed") or {}).get("steps_per_execution", "auto"),
        "resident_data": bool((config.get("speed") or {}).get("resident_data", True)),
    }


def train_priority(config: Mapping, arch: str, variant: str) -> int:
    """Snakemake priority of a training job: its work in units of 10^12 MACs (0-48 for
    the published recipes, zaccone highest), so the longest jobs start first and the
    cores do not wait on one long job at the end of a run."""
    s = train_settings(config, arch, variant)
    n_train = min(s["train_subset"] or 55_000, 55_000)
    work = registry.training_work(arch, s["variant"], s["overrides"], n_train, s["budget_scale"])
    return int(round(work / 1e12))


def tracking_uri(config: Mapping, workdir: str | Path = ".") -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else the project's local sqlite store."""
    uri = (config.get("mlflow") or {}).get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    db = (Path(workdir) / DEFAULT_STORE_DIR / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def artifact_root(workdir: str | Path = ".") -> str:
    return (Path(workdir) / DEFAULT_STORE_DIR / "artifacts").resolve().as_uri()


def config_hash(config: Mapping) -> str:
    """A stable digest of the resolved config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
