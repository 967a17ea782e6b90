"""Files: the package's one atomic writer, and checksums.

Every output is written to a temporary name in its destination folder, then renamed
into place (``os.replace`` is atomic within a file system), so an interrupted job never
leaves a file that looks complete, and a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temp_beside(path: Path, suffix: str = ".part") -> tuple[int, str]:
    """mkstemp in the destination's folder (so the rename is atomic), with umask permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


@contextlib.contextmanager
def replacing(path: Path, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a name (Keras, a folder
    of files): renamed onto ``path`` when the block ends, removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(obj) -> str:
    """The package's one JSON layout: indented, keys sorted, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json_text(obj).encode())


def write_json_if_changed(path: Path, obj) -> bool:
    """``atomic_write_json`` unless the file already holds exactly that (its mtime is kept)."""
    text = json_text(obj)
    if Path(path).exists() and Path(path).read_text() == text:
        return False
    atomic_write_bytes(path, text.encode())
    return True


def atomic_write_csv(path: Path, df) -> None:
    """A pandas DataFrame as CSV (no index), through a temporary name and a rename."""
    atomic_write_bytes(path, df.to_csv(index=False).encode())
