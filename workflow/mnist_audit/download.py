"""Fetch the MNIST files from an ordered list of mirrors and verify each one.

The integrity contract is the SHA-256 of each file's *decompressed* IDX payload
(docs/benchmark.md): it holds for every source, including recompressed local copies.
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
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import config, retry
from .data import MNIST_FILES, ChecksumError, DataError, MnistFile, payload_sha256
from .files import sha256_file, temp_beside

log = logging.getLogger(__name__)

PUBLIC_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class DownloadError(DataError):
    """No mirror served a good copy of one file. ``attempts``: one ``Attempt`` per mirror;
    ``fix``: what to do, in the user's terms (the message ends with it)."""

    def __init__(self, name: str, attempts: list[Attempt]):
        self.name, self.attempts = name, attempts
        self.fix = fix_for(attempts)
        super().__init__(f"no mirror served a good copy of {name}. Attempts:\n  "
                         + "\n  ".join(a.line for a in attempts or [Attempt.empty(name)]) + f"\n{self.fix}")

    def without_fix(self) -> DownloadError:
        """The same failure, its message the attempts alone: for a workflow's job, whose
        fix the workflow prints once, last, for all its files (``summarize_failures``)."""
        e = DownloadError(self.name, self.attempts)
        e.args = (str(self).removesuffix(f"\n{self.fix}"),)
        return e

    def record(self) -> dict:
        """The failure as data (written beside the job's log, read by ``summarize_failures``)."""
        return {"file": self.name, "attempts": [dataclasses.asdict(a) for a in self.attempts], "fix": self.fix}


class TransferCut(DataError, retry.TransientError):
    """The server sent fewer bytes than it announced: worth another try."""

# --------------------------------------------------------------------------- mirrors


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One mirror's failure to serve one file: ``problem`` is what kind of fix it needs:
    "missing" (a local folder lacks the file), "bad" (its content does not verify),
    "recompressed" (a canonical mirror serves other archive bytes) or "unreachable"."""

    file: str
    mirror: str
    local: bool
    problem: str
    reason: str

    @property
    def line(self) -> str:
        return f"{self.file} from {self.mirror}: {self.reason}"

    @classmethod
    def empty(cls, name: str) -> Attempt:
        return cls(name, "(the mirror list is empty)", False, "unreachable", "no mirror to try")


def fix_for(attempts: Iterable[Attempt]) -> str:
    """What to do after ``attempts`` all failed, in the user's terms: for a local folder,
    which file is missing or bad there; for the public mirrors, how to use a local copy."""
    attempts = list(attempts)
    lines = []
    for a in attempts:
        if a.local and a.problem == "missing":
            lines.append(f"The local mirror {a.mirror} has no {a.file}: copy the four MNIST .gz files "
                         "there, or point config key mirrors at the folder that has them.")
        elif a.local:
            lines.append(f"The local mirror's {a.file} ({a.mirror}) is not the MNIST file (truncated or "
                         "corrupt: its content does not match the checksum): copy it there again.")
        elif a.problem == "recompressed":
            lines.append(f"{a.mirror} serves a recompressed {a.file} (right content, other archive bytes): "
                         f"to accept it, list it as {{url: {a.mirror!r}, canonical: false}} in config key mirrors.")
    if not attempts or any(not a.local and a.problem in ("unreachable", "bad") for a in attempts):
        lines.append("If this machine cannot reach the mirrors, point the pipeline at a local copy of the "
                     "four .gz files (a folder or a file:// URL):\n"
                     "  snakemake --cores 8 --config 'mirrors=[\"/path/to/mnist\"]'")
    return "\n".join(dict.fromkeys(lines))


def summarize_failures(records: Iterable[Mapping]) -> str:
    """One message for several files' failures (``DownloadError.record``s): which files
    could not be had, then each distinct fix once."""
    records = list(records)
    if not records:
        return ""
    names = ", ".join(r["file"] for r in records)
    fixes = dict.fromkeys(line for r in records for line in r["fix"].splitlines())
    return f"MNIST could not be downloaded ({names}), so no training job was started.\n" + "\n".join(fixes)


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

    def folder(self) -> Path | None:
        """The local folder of a folder or file:// mirror; None for http(s)."""
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "file":
            return Path(urllib.request.url2pathname(parsed.path))
        return None if parsed.scheme else Path(self.url).expanduser()

    def locate(self, name: str) -> str:
        """The URL (or local path) of one file on this mirror."""
        scheme = urllib.parse.urlparse(self.url).scheme
        if scheme:
            return self.url.rstrip("/") + "/" + name
        return str(Path(self.url).expanduser() / name)


def check_mirrors(mirrors) -> None:
    """A local mirror (a folder, or a file:// URL) must be a folder that exists: a typo is
    refused here, before any job runs (a dry run too), not by a download job later."""
    for i, spec in enumerate(mirrors):
        try:
            mirror = Mirror.parse(spec)
        except DataError as e:
            raise config.ConfigError(f"config key mirrors[{i}]: {e}") from None
        folder = mirror.folder()
        if folder is not None and not folder.is_dir():
            raise config.ConfigError(
                f"config key mirrors[{i}]: the local mirror {mirror.url} is not a folder that exists; "
                f"give the folder that holds the four MNIST files ({', '.join(MNIST_FILES)})")



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


def verify_file(path: Path, spec: MnistFile, canonical: bool, mirror: str | None = None) -> dict:
    """Check one archive (``path``, maybe a temporary name) against the benchmark's entry
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
        local = mirror.folder() is not None

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
            failed = Attempt(name, mirror.url, local, _problem(e.last), f"{reason} ({e.how})")
            if isinstance(e.last, ChecksumError):
                log.error("%s; deleted, trying the next mirror", failed.line)
            else:
                log.warning("%s; trying the next mirror", failed.line)
            failures.append(failed)
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
    raise DownloadError(name, failures)


def _problem(e: BaseException) -> str:
    """The kind of fix a mirror's failure needs (``Attempt.problem``)."""
    if isinstance(e, FileNotFoundError):
        return "missing"
    if isinstance(e, ChecksumError):
        return "recompressed" if "canonical mirror" in str(e) else "bad"
    return "unreachable"


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


def fetch_split(out: Path, mirrors: Iterable, timeout: float = 30, retries: int = 2) -> dict:
    """The four files from the first mirror that has each (verified), then the prepared
    split (``out/mnist.npz``) and its manifest: the ``download`` command's work."""
    from . import data, files

    out = Path(out)
    mirrors = list(mirrors)
    for name in data.MNIST_FILES:
        record = out / "raw" / f"{name}.source.json"
        rec = download_file(name, out / "raw" / name, mirrors, timeout=timeout, retries=retries, record=record)
        files.write_json_if_changed(record, rec)  # a verified copy in place is kept as it is
    raw = {n: out / "raw" / n for n in data.MNIST_FILES}
    prov = {n: json.loads((out / "raw" / f"{n}.source.json").read_text()) for n in raw}
    return data.prepare_split(raw, out / "mnist.npz", out / "manifest.json", prov)
