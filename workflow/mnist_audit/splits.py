"""The data protocols of the audited programs: how each divides MNIST's training file.

A recipe names its split (``Recipe.data_split``); ``mnist_audit.data`` cuts the prepared
arrays by it, and everything that counts images (the plan, the record's ``n_train`` and
``n_val``, publication's full-split check) asks it. Standard library only (the
Snakefile imports it through the registry).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


TRAIN_FILE_IMAGES = 60_000  # images in MNIST's training file (the test file has 10,000)


@dataclass(frozen=True)
class DataSplit:
    """How a program divides MNIST's training file into training and validation images.

    ``validation`` is how many images it holds out: a count, or (a float) the fraction
    Keras's ``fit(validation_split=f)`` takes, which keeps the first
    ``floor(n * (1 - f))`` images for training; ``at`` is where they are in the file.
    """

    description: str
    validation: int | float
    at: str  # "start" | "end"

    def __post_init__(self):
        if self.at not in ("start", "end"):
            raise ValueError(f"DataSplit.at must be 'start' or 'end', got {self.at!r}")

    def n_train(self, n_file: int = TRAIN_FILE_IMAGES) -> int:
        """Training images out of ``n_file`` images in file order."""
        if isinstance(self.validation, float):  # keras.src.trainers.data_adapters.array_slicing
            return int(math.floor(n_file * (1.0 - self.validation)))
        return n_file - int(self.validation)

    def sizes(self, n_file: int = TRAIN_FILE_IMAGES) -> tuple[int, int]:
        """(training, validation) images out of ``n_file``."""
        n = self.n_train(n_file)
        return n, n_file - n

    def cut(self, arrays):
        """The training and validation parts of arrays in file order: (train, val)."""
        n_file = len(arrays)
        n, n_val = self.sizes(n_file)
        if self.at == "start":
            return arrays[n_val:], arrays[:n_val]
        return arrays[:n], arrays[n:]

    def holdout_for(self, n_train: int) -> int:
        """The fewest held-out images for which this split of ``n_train + holdout``
        images keeps exactly ``n_train`` for training (a subset handed to a program that
        splits its data itself)."""
        if not isinstance(self.validation, float):
            return int(self.validation)
        holdout = 0
        while self.n_train(n_train + holdout) < n_train:
            holdout += 1
        return holdout


DATA_SPLITS: Mapping[str, DataSplit] = MappingProxyType({
    # TF1's input_data.read_data_sets (the prepared split, results/data/mnist/mnist.npz)
    "read_data_sets": DataSplit("the first 5,000 training-file images validate, the other 55,000 train "
                                "(TF1's input_data.read_data_sets)", 5000, "start"),
    "validation_split_0.1": DataSplit("Keras's fit(validation_split=0.1): the first 54,000 training-file "
                                      "images train, the last 6,000 validate", 0.1, "end"),
    "no_validation": DataSplit("all 60,000 training-file images train; no validation set", 0, "end"),
})
DEFAULT_SPLIT = "read_data_sets"


def recipe_split(recipe: Mapping) -> DataSplit:
    """The data split of a recorded recipe (``Recipe.as_dict()``; older records have none)."""
    return DATA_SPLITS[recipe.get("data_split", DEFAULT_SPLIT)]
