"""MLflow's pyfunc loader for a run's model, whose weights stay in the run folder.

A logged model (``tracking.log_model``) uploads only its ``MLmodel`` file: the signature,
the path and SHA-256 of the run folder's ``model.keras``, and this module as its
``python_function`` loader. ``mlflow.pyfunc.load_model("models:/<model_id>")`` then
reads that file, checks the weights' SHA-256 and loads them with the package's custom
objects: MLflow's own loader works, and the weights are stored once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import IMAGE_SHAPE


class ModelMissing(RuntimeError):
    pass


class KerasRunModel:
    """What ``mlflow.pyfunc`` wraps: 28x28x1 float32 images in, 10 class scores out."""

    def __init__(self, model):
        self.model = model

    def predict(self, data, params=None):
        if isinstance(data, dict):  # the signature names its one input "image"
            (data,) = data.values()
        x = np.asarray(data, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        return np.asarray(self.model.predict(x, verbose=0), dtype=np.float32)


def load(path: str | Path, sha256: str | None = None):
    """The Keras model at ``path`` (checked against ``sha256`` if given)."""
    import keras

    from . import models
    from .files import sha256_file

    path = Path(path)
    if not path.exists():
        raise ModelMissing(f"{path}: the run's model.keras is not there (this logged model stores only its "
                           "MLmodel file; the weights stay in the run folder that trained them)")
    if sha256 and sha256_file(path) != sha256:
        raise ModelMissing(f"{path}: SHA-256 differs from the logged model's {sha256} (the run folder was "
                           "retrained or changed since it was logged)")
    return keras.saving.load_model(path, custom_objects=models.CUSTOM_OBJECTS)


def _load_pyfunc(data_path: str, model_config=None) -> KerasRunModel:
    """MLflow's loader_module protocol: ``data_path`` is the downloaded model folder."""
    from mlflow.models import Model

    folder = Path(data_path)
    meta = Model.load(str(folder / "MLmodel" if folder.is_dir() else folder)).metadata or {}
    return KerasRunModel(load(meta["path"], meta.get("sha256")))
