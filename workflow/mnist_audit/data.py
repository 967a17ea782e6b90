"""MNIST: the files and their checksums, IDX parsing, the split, the arrays a job trains on.

Each file is identified by the SHA-256 of its *decompressed* IDX payload (docs/benchmark.md,
section 1), which holds for every source, including recompressed local copies; the
archive's own SHA-256 is known too, for mirrors that serve the canonical bytes.
Fetching and verifying the files is ``mnist_audit.download``; the prepared split is
written through a temporary name and a rename, like every output.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import retry
from .files import atomic_write_json, sha256_file, temp_beside
from .splits import DATA_SPLITS, DEFAULT_SPLIT



@dataclasses.dataclass(frozen=True)
class MnistFile:
    name: str  # file name as the mirrors serve it
    archive_bytes: int
    archive_sha256: str  # the canonical .gz as the public mirrors serve it
    payload_sha256: str  # the decompressed IDX payload: the contract for every source


# docs/benchmark.md.
MNIST_FILES: dict[str, MnistFile] = {
    f.name: f
    for f in (
        MnistFile(
            "train-images-idx3-ubyte.gz",
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        MnistFile(
            "train-labels-idx1-ubyte.gz",
            28881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        MnistFile(
            "t10k-images-idx3-ubyte.gz",
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        MnistFile(
            "t10k-labels-idx1-ubyte.gz",
            4542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    )
}

IMAGE_SHAPE = (28, 28, 1)  # what every model takes: float32 pixels in [0, 1]
NUM_CLASSES = 10  # what every model gives: one score per digit
N_VALIDATION = 5000  # the first 5,000 training images, as input_data.read_data_sets did


class DataError(RuntimeError, retry.PermanentError):
    """A data file is missing, corrupt, or of the wrong kind."""


class ChecksumError(DataError):
    pass


class IdxError(DataError):
    pass


# --------------------------------------------------------------------------- checksums

def payload_sha256(gz_path: Path, name: str | None = None) -> str:
    """SHA-256 of the decompressed payload; ChecksumError (naming ``name``, else the
    file's own name) if the gzip stream is broken."""
    h = hashlib.sha256()
    try:
        with gzip.open(gz_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ChecksumError(f"{name or Path(gz_path).name}: not a complete gzip file ({e})") from e
    return h.hexdigest()


_IDX_DTYPES = {0x08: np.uint8}


def parse_idx(data: bytes, name: str = "<idx>") -> np.ndarray:
    """Parse an IDX payload (unsigned-byte data only, as MNIST uses)."""
    if len(data) < 4:
        raise IdxError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim == 0:
        raise IdxError(
            f"{name}: bad magic number 0x{data[:4].hex()}; expected 0x00000801 (labels) or "
            "0x00000803 (images): this is not an MNIST IDX file"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header
    if actual != expected:
        raise IdxError(
            f"{name}: payload is {actual} bytes but the header's dimensions {dims} need "
            f"{expected}: the file is {'truncated' if actual < expected else 'too long'}"
        )
    return np.frombuffer(data, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims)


def read_idx_gz(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise IdxError(f"{Path(path).name}: cannot decompress ({e})") from e
    return parse_idx(data, Path(path).name)


def _check_pair(images: np.ndarray, labels: np.ndarray, which: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxError(f"{which} images: expected shape (n, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise IdxError(f"{which} labels: expected a 1-D array, got shape {labels.shape}")
    if len(images) != len(labels):
        raise IdxError(f"{which}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise IdxError(f"{which} labels: values must be 0-9, found {int(labels.max())}")


# --------------------------------------------------------------------------- split


def prepare_split(
    raw: Mapping[str, Path],
    out_npz: Path,
    out_manifest: Path,
    provenance: Mapping[str, Mapping] | None = None,
    n_validation: int = N_VALIDATION,
    expected_payload: Mapping[str, str] | None = None,
) -> dict:
    """Build the benchmark's split from the four verified archives as one .npz + manifest.

    ``raw`` maps each MNIST file name to its local .gz path. ``expected_payload``
    defaults to the benchmark's checksums; tests pass their own for synthetic files.
    """
    expected_payload = expected_payload or {n: f.payload_sha256 for n, f in MNIST_FILES.items()}
    missing = set(MNIST_FILES) - set(raw)
    if missing:
        raise DataError(f"missing MNIST files: {', '.join(sorted(missing))}")
    checksums = {}
    for name, path in raw.items():
        actual = payload_sha256(Path(path))
        if actual != expected_payload[name]:
            raise ChecksumError(
                f"{name}: payload SHA-256 mismatch: expected {expected_payload[name]}, got {actual}"
            )
        checksums[name] = actual
    tr_x = read_idx_gz(raw["train-images-idx3-ubyte.gz"])
    tr_y = read_idx_gz(raw["train-labels-idx1-ubyte.gz"])
    te_x = read_idx_gz(raw["t10k-images-idx3-ubyte.gz"])
    te_y = read_idx_gz(raw["t10k-labels-idx1-ubyte.gz"])
    _check_pair(tr_x, tr_y, "training")
    _check_pair(te_x, te_y, "test")
    if not 0 <= n_validation < len(tr_x):
        raise DataError(f"n_validation={n_validation} must be in [0, {len(tr_x)})")
    arrays = {
        "x_train": tr_x[n_validation:],
        "y_train": tr_y[n_validation:],
        "x_val": tr_x[:n_validation],
        "y_val": tr_y[:n_validation],
        "x_test": te_x,
        "y_test": te_y,
    }
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(out_npz, ".part.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, out_npz)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    manifest = {
        "counts": {k[2:]: int(len(v)) for k, v in arrays.items() if k.startswith("y_")},
        "label_counts": {
            k[2:]: np.bincount(v, minlength=10).tolist() for k, v in arrays.items() if k.startswith("y_")
        },
        "train_file_label_counts": np.bincount(tr_y, minlength=10).tolist(),
        "test_label_counts": np.bincount(te_y, minlength=10).tolist(),
        "mean_pixel_train_file": round(float(tr_x.mean()), 3),
        "split": f"first {n_validation} of the training file = validation; the rest = train",
        "payload_sha256": checksums,
        "sources": {n: dict(provenance.get(n, {})) for n in raw} if provenance else {},
        "split_sha256": sha256_file(out_npz),
        "split_file": out_npz.name,
    }
    atomic_write_json(out_manifest, manifest)
    return manifest


def load_split(path: Path) -> dict[str, np.ndarray]:
    """Load the cached split: uint8 images (n, 28, 28) and uint8 labels. No pickle."""
    if not Path(path).exists():
        raise DataError(
            f"{path}: no prepared split here. Make it with `mnist-audit download --out {Path(path).parent}` "
            "(add --mirror DIR for a local copy of the four MNIST files; the workflow makes "
            "results/data/mnist/mnist.npz itself), or pass --data with the path of one")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: cannot read the prepared split ({e}); delete it and rerun the data stage"
        ) from e
    need = {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"}
    if not need <= set(arrays):
        raise DataError(f"{path}: missing arrays {sorted(need - set(arrays))}")
    return arrays


def as_float(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1], as the tutorials fed it."""
    return (images.astype(np.float32) / np.float32(255.0))[..., None]


def training_file(split: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of MNIST's training file, in the file's order: the prepared
    split's validation images (the file's first 5,000) followed by its training images."""
    return (np.concatenate([split["x_val"], split["x_train"]]), np.concatenate([split["y_val"], split["y_train"]]))


def split_arrays(split: Mapping[str, np.ndarray], data_split: str = DEFAULT_SPLIT) -> dict[str, np.ndarray]:
    """uint8 arrays x_/y_ train, val, test as the recipe's data split divides the training
    file (``mnist_audit.splits``). The prepared split is "read_data_sets" itself; any other
    split cuts the training file, rebuilt in its order, by its own rule."""
    if data_split == DEFAULT_SPLIT:
        return dict(split)
    x, y = training_file(split)
    rule = DATA_SPLITS[data_split]
    (x_train, x_val), (y_train, y_val) = rule.cut(x), rule.cut(y)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
            "x_test": split["x_test"], "y_test": split["y_test"]}


def training_arrays(path: Path, train_subset: int | None = None, eval_subset: int | None = None,
                    data_split: str = DEFAULT_SPLIT) -> dict:
    """The split as a training job feeds it: images float32 (n, 28, 28, 1) in [0, 1],
    labels int32, training and validation images as the recipe's ``data_split`` divides
    the training file, the training set cut to its first ``train_subset`` images and the
    validation and test sets to their first ``eval_subset``."""
    split = split_arrays(load_split(Path(path)), data_split)
    cut = {"train": train_subset, "val": eval_subset, "test": eval_subset}
    out = {}
    for part, n in cut.items():
        x, y = split[f"x_{part}"], split[f"y_{part}"]
        if n:
            x, y = x[:n], y[:n]
        out[f"x_{part}"], out[f"y_{part}"] = as_float(x), y.astype(np.int32)
    return out
