"""The run's model as an MLflow logged model: the weights stay in the run folder (an
external model in MLflow 3's sense); MLflow gets its MLmodel file (signature, the
weights' path and SHA-256, a pyfunc loader), linked to the run as an output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .store import TAG

MODEL_IS_EXTERNAL = "mlflow.external"  # MLflow 3's tag for a model whose weights live elsewhere
NOTE = "mlflow.note.content"  # a run's or a logged model's description in MLflow's UI


def model_signature():
    """What every model takes and gives: a batch of 28x28x1 float32 images in [0, 1],
    and 10 class scores per image (argmax = the predicted digit)."""
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from ..data import IMAGE_SHAPE, NUM_CLASSES

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, *IMAGE_SHAPE), "image")]),
                          outputs=Schema([TensorSpec(np.dtype("float32"), (-1, NUM_CLASSES), "scores")]))


def log_model(client, experiment_id: str, rid: str, payload: Mapping, model: Path, sha256: str, step: int,
              final_ms: list, datasets: Mapping[str, tuple[str, str]]) -> str:
    """Register the run folder's model.keras as an external MLflow logged model: its MLmodel
    (signature, path, SHA-256, a pyfunc loader) is the only artifact; the final metrics and
    the run link to it. Its description is the run's; each final metric names the dataset
    it was measured on (``datasets``: metric -> (name, digest)), which the model's page
    lists as the datasets used."""
    import tempfile

    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    tags = payload["tags"]
    name = f"{tags['architecture']}-{tags['variant']}-seed{tags['seed']}"
    lm = client.create_logged_model(
        experiment_id, name=name, source_run_id=rid, model_type="keras",
        tags={MODEL_IS_EXTERNAL: "true", "model.sha256": sha256, "model.path": str(model.resolve()),
              "architecture": tags["architecture"], "variant": tags["variant"], "recipe": tags["recipe"],
              f"{TAG}.identity": tags[f"{TAG}.identity"],
              NOTE: f"{tags[NOTE]}. The weights stay in the run folder (model.keras at model.path, SHA-256 "
                    "model.sha256); the MLmodel file loads them (mlflow.pyfunc.load_model)."},
        params={k: str(v) for k, v in payload["params"].items() if k.startswith("recipe.")})
    spec = Model(artifact_path=lm.artifact_location, model_uuid=lm.model_id, model_id=lm.model_id, run_id=rid,
                 signature=model_signature(),
                 metadata={MODEL_IS_EXTERNAL: True, "format": "keras", "path": str(model.resolve()),
                           "sha256": sha256})
    # mlflow.pyfunc.load_model works: the loader reads path and SHA-256 above (mlflow_model)
    add_to_model(spec, loader_module="mnist_audit.mlflow_model")
    with tempfile.TemporaryDirectory() as tmp:
        spec.save(str(Path(tmp) / "MLmodel"))
        client.log_model_artifacts(lm.model_id, tmp)
    client.log_batch(rid, metrics=[Metric(m.key, m.value, m.timestamp, m.step, model_id=lm.model_id,
                                          dataset_name=datasets[m.key][0], dataset_digest=datasets[m.key][1])
                                   for m in final_ms if m.key in datasets])
    client.log_outputs(rid, [LoggedModelOutput(lm.model_id, step)])
    client.finalize_logged_model(lm.model_id, "READY")
    return lm.model_id


def delete_logged_models(client, experiment_id: str, run_id: str) -> None:
    """The logged models whose source is ``run_id`` (a run being deleted)."""
    for lm in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'"):
        client.delete_logged_model(lm.model_id)

