"""config.yaml is validated before any job starts, with messages that name the key."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_audit import config as audit_config
from mnist_audit import recipes, registry

ROOT = Path(__file__).resolve().parents[1]


def dry_run(tmp_path, *config):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--cores", "1", "--configfile", str(ROOT / "config.yaml"),
           "--config", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("setting, expected", [
    ("architectures=[resnet50]", ["architectures", "'resnet50' is not one of", "'jerkic'", "'zaccone'"]),
    ("seeds=[]", ["seeds", "should be non-empty"]),
    ("seeds=[-1]", ["seeds", "-1 is less than the minimum of 0"]),
    ("budget_scale=0", ["budget_scale", "0 is less than or equal to the minimum of 0"]),
    ("budget_scale=-0.5", ["budget_scale", "less than or equal to the minimum of 0"]),
    ("mirrors=['htp:/not a url']", ["mirrors", "htp:/not a url"]),
    ("recipe_overrides={'thomas': {'budget': 0}}", ["recipe_overrides", "budget", "0 is less than the minimum of 1"]),
    ("recipe_overrides={'thomas': {'epochs': 3}}", ["recipe_overrides", "'epochs' was unexpected"]),
    ("recipe_overrides={'vgg': {'budget': 3}}", ["recipe_overrides", "'vgg' is not one of"]),
    ("variants={'cnn_tutorial': ['nope']}", ["variants.cnn_tutorial", "unknown variant 'nope'", "printed"]),
    ("train_subset=0", ["train_subset", "0 is less than the minimum of 1"]),
    # zaccone drops the last partial batch of 128: fewer images would be an epoch of 0 steps
    ("train_subset=100", ["config key train_subset: 100 is too small for zaccone", "the minimum for zaccone is 128"]),
    ("mirrors=[{url: /x, canonical: maybe}]", ["mirrors.0.canonical", "'maybe' is not of type 'boolean'"]),
    ("foo=1", ["('foo' was unexpected)", "allowed keys: mirrors, download, architectures"]),
])
def test_bad_config_stops_the_run_naming_the_key(tmp_path, setting, expected):
    proc = dry_run(tmp_path, setting)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out[-3000:]}"
    assert not (tmp_path / "results").exists()  # nothing ran
    # one short message, said once: no schema dump (an unknown key used to print 605 lines)
    assert len(out.splitlines()) <= 8 and out.count("config key") == 1, out


def test_train_subset_minimum_follows_the_resolved_recipe():
    base = {"architectures": ["thomas", "zaccone"], "seeds": [0]}
    audit_config.check_config({**base, "train_subset": 128})  # zaccone's batch: one step per epoch
    audit_config.check_config({"architectures": ["thomas"], "seeds": [0], "train_subset": 10})  # keeps partial batches
    with pytest.raises(audit_config.ConfigError, match="too small for thomas.*minimum for thomas is 50"):
        audit_config.check_config({"architectures": ["thomas"], "seeds": [0], "train_subset": 10,
                                   "recipe_overrides": {"thomas": {"drop_last": True}}})
    with pytest.raises(audit_config.ConfigError, match="minimum for zaccone is 64"):
        audit_config.check_config({**base, "train_subset": 63, "recipe_overrides": {"zaccone": {"batch_size": 64}}})


def test_canonical_false_on_the_command_line(tmp_path):
    """Values inside the mirrors' oneOf are coerced like the others."""
    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    got = audit_config.coerce_cli_strings(
        {"mirrors": ["/a", {"url": "/b", "canonical": "false"}, {"url": "http://c/", "canonical": "true"}],
         "speed": {"jit_compile": "false", "steps_per_execution": "auto"}}, schema)
    assert got == {"mirrors": ["/a", {"url": "/b", "canonical": False}, {"url": "http://c/", "canonical": True}],
                   "speed": {"jit_compile": False, "steps_per_execution": "auto"}}
    proc = dry_run(tmp_path, "mirrors=[{url: 'http://127.0.0.1:1/m/', canonical: false}]", "architectures=[mlp]",
                   "seeds=[0]")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "download_mnist" in proc.stdout


def test_default_config_dry_run_succeeds(tmp_path):
    proc = dry_run(tmp_path, "budget_scale=1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every architecture and every registry variant (the registry's defaults), 5 seeds each
    n = sum(len(registry.list_variants(a)) for a in registry.list_models()) * 5
    assert re.search(rf"^train_model\s+{n}$", proc.stdout, re.M), proc.stdout[-2000:]


def test_schema_documents_every_key_and_matches_config_yaml():
    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    assert schema["properties"]["architectures"]["items"]["enum"] == registry.list_models()

    def walk(props, where=""):
        for key, sub in props.items():
            assert "description" in sub, f"{where}{key} has no description"
            assert "default" in sub or where, f"{where}{key} has no default"
            if "properties" in sub:
                walk(sub["properties"], f"{where}{key}.")

    walk(schema["properties"])
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    # the registry's lists are the defaults of these keys, so config.yaml leaves them out
    # (a new registry entry needs no edit here)
    from_registry = {"architectures", "variants"}
    assert set(config) == set(schema["properties"]) - from_registry
    assert schema["properties"]["architectures"]["default"] == registry.list_models()

    def default(sub):  # an object's default is its members' defaults
        if "properties" in sub:
            return {k: default(v) for k, v in sub["properties"].items()}
        return sub["default"]

    for key, sub in schema["properties"].items():  # config.yaml shows every other default
        if key not in from_registry:
            assert config[key] == default(sub), key


def test_cli_strings_get_the_schema_types(tmp_path):
    """--config seeds=[0,1] arrives as strings; the schema's types are restored."""
    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    got = audit_config.coerce_cli_strings(
        {"seeds": ["0", "1"], "train_subset": "null", "mlflow": {"experiment": "123"},
         "recipe_overrides": {"thomas": {"learning_rate": "1e-3", "shuffle": "false"}}}, schema)
    assert got == {"seeds": [0, 1], "train_subset": None, "mlflow": {"experiment": "123"},
                   "recipe_overrides": {"thomas": {"learning_rate": 1e-3, "shuffle": False}}}
    proc = dry_run(tmp_path, "seeds=[3,4]", "architectures=[mlp]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "seed3" in proc.stdout and "seed4" in proc.stdout


@pytest.mark.parametrize("key, value", [
    ("optimizer", "adam"), ("optimizer", "adagrad"), ("optimizer", 1),
    ("learning_rate", 0.1), ("learning_rate", 1), ("learning_rate", 0), ("learning_rate", -1.0), ("learning_rate", "x"),
    ("batch_size", 1), ("batch_size", 0), ("batch_size", 2.5), ("budget", 3), ("budget", -3),
    ("budget_unit", "epochs"), ("budget_unit", "iterations"), ("loss", "clipped_binary_xent"), ("loss", "mse"),
    ("shuffle", False), ("shuffle", "no"), ("drop_last", True), ("drop_last", 0),
    ("optimizer_args", {}), ("optimizer_args", [1]),
])
def test_schema_and_registry_agree_on_overrides(key, value):
    """The config schema's override rules are recipes.py's, so the two accept the same values."""
    import jsonschema

    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    assert schema["properties"]["recipe_overrides"]["additionalProperties"] == recipes.override_schema()
    by_schema = jsonschema.Draft202012Validator(schema).is_valid({"recipe_overrides": {"thomas": {key: value}}})
    try:
        registry.resolve_recipe("thomas", overrides={key: value})
        by_registry = True
    except recipes.RegistryError:
        by_registry = False
    assert by_schema == by_registry


def test_check_config_names_key():
    with pytest.raises(audit_config.ConfigError, match=r"recipe_overrides\.thomas: .*learning_rate"):
        audit_config.check_config({"recipe_overrides": {"thomas": {"learning_rate": -1}}})


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert audit_config.tracking_uri({}, tmp_path) == f"sqlite:///{tmp_path}/results/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert audit_config.tracking_uri({}, tmp_path) == "http://127.0.0.1:5000"
    assert audit_config.tracking_uri({"mlflow": {"tracking_uri": "sqlite:///x.db"}}) == "sqlite:///x.db"


def test_default_variants_are_every_registry_variant():
    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    default = schema["properties"]["variants"]["default"]
    listed = {a: default.get(a, ["default"]) for a in registry.list_models()}
    assert listed == {a: registry.list_variants(a) for a in registry.list_models()}
    assert {"cnn_tutorial", "mlp", "softmax_regression"} <= set(default)  # a new entry's variants join them


def test_profiles_rerun_on_content_and_params_not_script_text():
    """Snakemake's "code" trigger watches the few-line scripts, never the package they
    call: left on, an upgrade that touches a script would rerun the data stage and
    retrain every run. Both profiles leave it out; the others stay."""
    import yaml

    for name in ("default", "slurm"):
        profile = yaml.safe_load((ROOT / "workflow" / "profiles" / name / "profile.yaml").read_text())
        triggers = set(profile["rerun-triggers"])
        assert "code" not in triggers and {"mtime", "params", "input"} <= triggers, (name, triggers)


def test_a_train_subset_checks_the_originals_recipes_too():
    """train_subset with originals configured: each original is checked by the recipe it
    implements (a run variant "original" is no registry variant)."""
    cfg = {"architectures": ["zaccone", "keras_convnet"], "seeds": [0], "train_subset": 500,
           "originals": {"zaccone": ["default"], "keras_convnet": ["default"]}}
    audit_config.check_config(cfg)
    with pytest.raises(audit_config.ConfigError, match="too small for zaccone"):
        audit_config.check_config({**cfg, "train_subset": 100})


def test_original_variant_names_round_trip():
    """Run variants of the TF1 originals: own draw and from the port's initial weights."""
    cases = {("default", False): "original", ("book", False): "original_book",
             ("default", True): "original_from_port", ("book", True): "original_book_from_port"}
    for (of, from_port), name in cases.items():
        assert audit_config.original_variant(of, from_port) == name
        assert audit_config.original_of(name) == of
        assert audit_config.starts_from_port(name) is from_port
    for port in ("default", "book", "printed", "softmax_xent"):
        assert audit_config.original_of(port) is None and not audit_config.starts_from_port(port)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    own = audit_config.train_settings(cfg, "mlp", "original")
    from_port = audit_config.train_settings(cfg, "mlp", "original_from_port")
    # the key appears only where it is set: the other jobs' Snakemake params do not change
    assert "from_port" not in own and own["original"] and own["variant"] == "default"
    assert from_port == {**own, "from_port": True}


def test_training_settings_are_defined_once():
    """settings.TrainSettings is what the config, the command line and train_run read: the
    schema's defaults are its defaults, the train command's options are its fields with
    their defaults, and train_run refuses a setting it does not define."""
    import dataclasses

    from mnist_audit import cli, settings, train

    schema = audit_config.resolved_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    defaults = settings.defaults()
    for f in dataclasses.fields(settings.TrainSettings):
        path = f.metadata["config"]
        if path is None:
            continue
        sub = schema["properties"][path[0]]
        for key in path[1:]:
            sub = sub["properties"][key] if key != "{arch}" else {"default": sub["default"].get("x", {})}
        assert sub["default"] == defaults[f.name], f.name
    # an empty config reads the same defaults; the config's own values win
    assert audit_config.train_settings({}, "mlp", "default") == {"arch": "mlp", **defaults}
    cfg = {"speed": {"steps_per_execution": 3}, "recipe_overrides": {"mlp": {"learning_rate": 0.1}}}
    got = audit_config.train_settings(cfg, "mlp", "default")
    assert got["steps_per_execution"] == 3 and got["overrides"] == {"learning_rate": 0.1}
    # the train command: one option per setting, its defaults the settings' defaults
    a = cli.parser().parse_args(["train", "--arch", "mlp", "--out", "x"])
    assert settings.TrainSettings.from_args(a).as_params() == {"arch": "mlp", **defaults}
    a = cli.parser().parse_args(["train", "--arch", "mlp", "--out", "x", "--jit-compile", "off",
                                 "--no-resident-data", "--steps-per-execution", "4",
                                 "--overrides", '{"learning_rate": 0.1}'])
    s = settings.TrainSettings.from_args(a)
    assert (s.jit_compile, s.resident_data, s.steps_per_execution, s.overrides) == (False, False, 4,
                                                                                   {"learning_rate": 0.1})
    with pytest.raises(TypeError, match="epochs"):
        train.train_run("no.npz", "out", "mlp", epochs=3)
