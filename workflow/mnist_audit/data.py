"""MNIST: download from an ordered list of mirrors, verify, parse IDX, split, cache.

The integrity contract is the SHA-256 of each file's *decompressed* IDX payload
(SPEC section 1): it holds for every source, including recompressed local copies.
The SHA-256 of the .gz archive is checked in addition for mirrors that serve the
canonical archive bytes (the public mirrors do; local copies usually do not).

Every file is written to a temporary name in its destination folder and renamed
into place only after it verified, so an interrupted or failed run never leaves a
file that looks complete. A file already in place that verifies is kept as it is
(not fetched again, not rewritten): a file's identity is its content, not the mirror
it came from. Network failures follow the one retry policy of ``mnist_audit.retry``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import struct
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from . import retry
from .files import atomic_write_json, sha256_file, temp_beside

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MnistFile:
    name: str  # file name as the mirrors serve it
    archive_bytes: int
    archive_sha256: str  # the canonical .gz as the public mirrors serve it
    payload_sha256: str  # the decompressed IDX payload: the contract for every source


# SPEC section 1.
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

PUBLIC_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

N_VALIDATION = 5000  # the first 5,000 training images, as input_data.read_data_sets did


class DataError(RuntimeError, retry.PermanentError):
    """A data file is missing, corrupt, or of the wrong kind."""


class ChecksumError(DataError):
    pass


class IdxError(DataError):
    pass


class DownloadError(DataError):
    pass


class TransferCut(DownloadError, retry.TransientError):
    """The server sent fewer bytes than it announced: worth another try."""


# --------------------------------------------------------------------------- mirrors


@dataclasses.dataclass(frozen=True)
class Mirror:
    """One source of the four files: an http(s) or file URL, or a local folder."""

    url: str
    canonical: bool  # serves the canonical .gz bytes, so the archive hash is checked too

    @classmethod
    def parse(cls, spec: str | Mapping) -> Mirror:
        if isinstance(spec, Mapping):
            url = str(spec["url"])
            canonical = spec.get("canonical")
        else:
            url, canonical = str(spec), None
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("http", "https", "file", ""):
            raise DataError(
                f"mirror {url!r}: unsupported scheme {scheme!r}; use http://, https://, "
                "file:// or a plain folder path"
            )
        if canonical is None:
            canonical = scheme in ("http", "https")
        return cls(url=url, canonical=bool(canonical))

    def locate(self, name: str) -> str:
        """The URL (or local path) of one file on this mirror."""
        scheme = urllib.parse.urlparse(self.url).scheme
        if scheme:
            return self.url.rstrip("/") + "/" + name
        return str(Path(self.url).expanduser() / name)


def _fetch(source: str, dest, timeout: float) -> int:
    """Copy one file from a URL or local path into an open binary file; returns its size.

    An http(s) transfer that ends before the announced Content-Length raises
    TransferCut (urllib itself returns the short body without a word).
    """
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https"):
        req = urllib.request.Request(source, headers={"User-Agent": "mnist-audit"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            announced = resp.headers.get("Content-Length")
            got = _copy(resp, dest)
        if announced is not None and announced.isdigit() and got < int(announced):
            raise TransferCut(f"transfer cut short: received {got} of {announced} bytes")
        return got
    path = urllib.request.url2pathname(urllib.parse.urlparse(source).path) if scheme == "file" else source
    with open(path, "rb") as src:
        return _copy(src, dest)


def _copy(src, dest) -> int:
    n = 0
    for block in iter(lambda: src.read(1 << 20), b""):
        dest.write(block)
        n += len(block)
    return n


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


def verify_file(path: Path, spec: MnistFile, canonical: bool, mirror: str | None = None) -> dict:
    """Check one archive (``path``, maybe a temporary name) against the SPEC entry
    ``spec``; returns what was verified. Errors name ``spec.name``, never the temporary
    file; ``mirror`` (where it came from) goes into the canonical-hash hint."""
    actual = payload_sha256(path, spec.name)
    if actual != spec.payload_sha256:
        raise ChecksumError(
            f"{spec.name}: payload SHA-256 mismatch: expected {spec.payload_sha256}, got {actual}"
        )
    archive = sha256_file(path)
    archive_ok = archive == spec.archive_sha256
    if canonical and not archive_ok:
        hint = f"{{url: {mirror!r}, canonical: false}}" if mirror else "{url: ..., canonical: false}"
        raise ChecksumError(
            f"{spec.name}: archive SHA-256 mismatch on a canonical mirror: "
            f"expected {spec.archive_sha256}, got {archive}. The payload is the right one, so "
            f"this mirror serves a recompressed copy: to accept it, list the mirror as {hint}"
        )
    return {
        "payload_sha256": actual,
        "archive_sha256": archive,
        "archive_canonical": archive_ok,
    }


def download_file(
    name: str,
    dest: Path,
    mirrors: Iterable[str | Mapping],
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 1.0,
    spec: MnistFile | None = None,
    record: Path | None = None,
) -> dict:
    """Fetch one MNIST file into ``dest`` from the first mirror that serves a good copy.

    A ``dest`` already in place whose payload verifies is kept untouched (its
    provenance is read from ``record``, the ``.source.json`` beside it, when that
    describes the same payload) and no mirror is asked. Otherwise each mirror is tried
    in order under the retry policy of ``mnist_audit.retry``: ``retries`` extra tries on
    what can pass (a timeout, a refused connection, a transfer cut short, HTTP 5xx),
    none on what cannot (HTTP 404, a missing local file, a checksum mismatch), then the
    next mirror. Returns a provenance record. Raises DownloadError listing every
    attempt, each naming the file and the mirror, when no mirror serves a good file.
    ``spec`` (expected sizes and checksums) defaults to the SPEC's entry for ``name``.
    """
    if spec is None:
        if name not in MNIST_FILES:
            raise DataError(f"unknown MNIST file {name!r}; known: {', '.join(MNIST_FILES)}")
        spec = MNIST_FILES[name]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    kept = _verified_in_place(dest, spec, record)
    if kept is not None:
        log.info("%s: already in place and verified (payload SHA-256 %s); kept, no mirror asked",
                 name, spec.payload_sha256[:12])
        return kept
    policy = retry.Policy(attempts=1 + max(0, int(retries)), backoff_s=backoff)
    failures = []
    for mirror in map(Mirror.parse, mirrors):
        source = mirror.locate(name)

        def attempt() -> dict:
            fd, tmp = temp_beside(dest)
            try:
                with os.fdopen(fd, "wb") as f:
                    _fetch(source, f, timeout)
                checks = verify_file(Path(tmp), spec, mirror.canonical, mirror.url)
                os.replace(tmp, dest)
                return checks
            finally:
                Path(tmp).unlink(missing_ok=True)

        try:
            checks = retry.call(attempt, policy, f"{name} from {mirror.url}")
        except retry.RetryError as e:
            reason = retry.describe(e.last).removeprefix(f"{name}: ")
            line = f"{name} from {mirror.url}: {reason} ({e.how})"
            if isinstance(e.last, ChecksumError):
                log.error("%s; deleted, trying the next mirror", line)
            else:
                log.warning("%s; trying the next mirror", line)
            failures.append(line)
            continue
        rec = {"file": name, "mirror": mirror.url, "source": source, **checks}
        if not checks["archive_canonical"]:
            log.info(
                "%s: payload verified; the archive bytes are not the canonical ones "
                "(recompressed copy), which is fine for a local mirror",
                name,
            )
        log.info("%s: verified, from %s", name, mirror.url)
        return rec
    raise DownloadError(
        f"no mirror served a good copy of {name}. Attempts:\n  "
        + "\n  ".join(failures or ["(the mirror list is empty)"])
        + "\nIf this machine cannot reach the public mirrors, point the pipeline at a local "
        "copy of the four .gz files, e.g.\n"
        "  snakemake --cores 8 --config 'mirrors=[\"file:///path/to/mnist/\"]'\n"
        "(a plain folder path works too)."
    )


def _verified_in_place(dest: Path, spec: MnistFile, record: Path | None) -> dict | None:
    """The provenance of ``dest`` when it is already there and its payload verifies."""
    if not dest.exists():
        return None
    try:
        actual = payload_sha256(dest, spec.name)
    except ChecksumError as e:
        log.warning("%s: the copy in place is unusable (%s); fetching it again", spec.name, e)
        return None
    if actual != spec.payload_sha256:
        log.warning("%s: the copy in place has payload SHA-256 %s, not %s; fetching it again",
                    spec.name, actual, spec.payload_sha256)
        return None
    previous = {}
    if record is not None and Path(record).exists():
        try:
            previous = json.loads(Path(record).read_text())
        except ValueError:
            previous = {}
    if previous.get("payload_sha256") == actual and previous.get("file") == spec.name:
        return previous
    archive = sha256_file(dest)
    return {"file": spec.name, "mirror": None, "source": str(dest), "payload_sha256": actual,
            "archive_sha256": archive, "archive_canonical": archive == spec.archive_sha256}


# --------------------------------------------------------------------------- IDX

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
    """Build the SPEC split from the four verified archives as one .npz + manifest.

    ``raw`` maps each MNIST file name to its local .gz path. ``expected_payload``
    defaults to the SPEC checksums; tests pass their own for synthetic files.
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
