"""The model accounting: trainable parameters, the layer table and the multiply-accumulates
of one forward pass of one 28x28 image, per architecture and variant.

The only part of the report that builds models: it imports ``mnist_audit.models`` (and
so Keras) lazily, inside ``model_accounting``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from . import registry
from .tables import md, order_rows, write_csv, write_text
from .runs import label as model_label

LAYER_COLUMNS = ["architecture", "variant", "model", "index", "layer", "kind", "output_shape", "params", "macs"]
PARAM_MD = {
    "columns": ["model", "baseline", "layers", "layers_with_weights", "params", "macs_per_image"],
    "formats": {"params": ",d", "macs_per_image": ",d"},
    "headers": {"model": "architecture", "layers_with_weights": "layers with weights",
                "params": "trainable params", "macs_per_image": "MACs / image"},
}
LAYER_MD = {
    "columns": ["model", "layer", "kind", "output_shape", "params", "macs"],
    "formats": {"params": ",d", "macs": ",d"},
    "headers": {"model": "architecture", "output_shape": "output shape", "macs": "MACs / image"},
}


def model_accounting(model_keys: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per-layer parameters and MACs of each (architecture, variant); builds the Keras models."""
    from . import models  # Keras: imported only here

    rows = []
    for arch, variant in dict.fromkeys(tuple(k) for k in model_keys):
        table = models.layer_table(arch, variant)
        trainable = models.param_count(arch, variant)
        total = sum(r["params"] for r in table)
        if total != trainable:
            raise ValueError(f"{arch}/{variant}: layer parameters sum to {total}, trainable {trainable}")
        for i, r in enumerate(table):
            rows.append({
                "architecture": arch, "variant": variant, "model": model_label(arch, variant),
                "index": i, "layer": r["layer"], "kind": r["kind"],
                "output_shape": "x".join(str(d) for d in r["output_shape"]),
                "params": int(r["params"]), "macs": int(r["macs"]),
            })
    return order_rows(pd.DataFrame(rows), ["index"]) if rows else pd.DataFrame(columns=LAYER_COLUMNS)


def parameter_table(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, variant): trainable parameters and MACs per image (sums of the layers)."""
    out = (layers.groupby(["architecture", "variant", "model"], sort=False)
           .agg(layers_with_weights=("layer", "size"), params=("params", "sum"), macs_per_image=("macs", "sum"))
           .reset_index())
    out.insert(3, "layers", [registry.get_architecture(a).layers for a in out["architecture"]])
    out.insert(3, "baseline", ["yes" if registry.get_architecture(a).baseline else "no" for a in out["architecture"]])
    return order_rows(out)


def write_model_accounting(model_keys: Sequence[Sequence[str]], outputs: Mapping[str, str]) -> pd.DataFrame:
    """Parameter and per-layer tables (CSV and Markdown)."""
    layers = model_accounting(model_keys)
    params = parameter_table(layers)
    write_csv(outputs["parameters_csv"], params)
    write_text(outputs["parameters_md"], md(params, PARAM_MD))
    write_csv(outputs["layers_csv"], layers)
    write_text(outputs["layers_md"], md(layers, LAYER_MD))
    return params
