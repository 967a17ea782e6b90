"""The data stage: IDX parsing, verification, mirror fallback, split."""

import dataclasses
import functools
import gzip
import http.server
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, needs_mnist, write_gz
from engines import free_port

from mnist_audit import data, download, files


# ----------------------------------------------------------------- IDX parsing

def test_parse_idx_roundtrip():
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(a)), a)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(labels)), labels)


def test_parse_idx_wrong_magic():
    raw = b"PK\x03\x04" + b"\x00" * 100  # a zip file, say
    with pytest.raises(data.IdxError, match="bad magic number 0x504b0304.*not an MNIST IDX"):
        data.parse_idx(raw, "foreign.bin")


@pytest.mark.parametrize("cut, word", [(10, "truncated"), (-5, "truncated")])
def test_parse_idx_truncated(cut, word):
    raw = idx_bytes(np.zeros((4, 28, 28)))
    with pytest.raises(data.IdxError, match=word):
        data.parse_idx(raw[:cut])


def test_parse_idx_too_long():
    with pytest.raises(data.IdxError, match="too long"):
        data.parse_idx(idx_bytes(np.zeros((2, 28, 28))) + b"\x00")


def test_read_idx_gz_rejects_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    write_gz(p, idx_bytes(np.zeros((50, 28, 28))))
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(data.IdxError, match="cannot decompress"):
        data.read_idx_gz(p)


# ----------------------------------------------------------------- verification

def _spec(folder, sums, name):
    real = data.MNIST_FILES[name]
    return dataclasses.replace(real, payload_sha256=sums[name])


def test_verify_file_payload_mismatch(synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    bad = dataclasses.replace(data.MNIST_FILES[name], payload_sha256="0" * 64)
    with pytest.raises(data.ChecksumError, match="payload SHA-256 mismatch: expected 0000"):
        download.verify_file(folder / name, bad, canonical=False)


def test_verify_file_canonical_mirror_demands_archive_hash(synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    spec = _spec(folder, sums, name)
    assert download.verify_file(folder / name, spec, canonical=False)["archive_canonical"] is False
    with pytest.raises(data.ChecksumError, match="archive SHA-256 mismatch on a canonical mirror"):
        download.verify_file(folder / name, spec, canonical=True)


def test_mirror_parse():
    assert download.Mirror.parse("https://x.org/mnist/").canonical is True
    assert download.Mirror.parse("file:///tmp/m").canonical is False
    assert download.Mirror.parse({"url": "/tmp/m", "canonical": True}).canonical is True
    assert download.Mirror.parse("/tmp/m").locate("a.gz") == "/tmp/m/a.gz"
    with pytest.raises(data.DataError, match="unsupported scheme 'ftp'"):
        download.Mirror.parse("ftp://x.org/")


# ----------------------------------------------------------------- mirror fallback over real HTTP

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_mirror():
    """Start a real HTTP server on 127.0.0.1 serving a folder; yields a factory."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_fallback_down_corrupt_good(tmp_path, synthetic_mnist, http_mirror, caplog):
    folder, sums, _ = synthetic_mnist
    name = "train-labels-idx1-ubyte.gz"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    payload = bytearray(gzip.decompress((folder / name).read_bytes()))
    payload[-1] ^= 0xFF  # one flipped byte
    write_gz(corrupt / name, bytes(payload))
    mirrors = [
        f"http://127.0.0.1:{free_port()}/",  # down
        {"url": http_mirror(corrupt), "canonical": False},  # serves a corrupted file
        {"url": http_mirror(folder), "canonical": False},  # good
    ]
    dest = tmp_path / "out" / name
    rec = download.download_file(name, dest, mirrors, timeout=5, retries=1, backoff=0.01,
                             spec=_spec(folder, sums, name))
    assert dest.read_bytes() == (folder / name).read_bytes()
    assert rec["mirror"] == mirrors[2]["url"] and rec["payload_sha256"] == sums[name]
    assert sorted(p.name for p in dest.parent.iterdir()) == [name]  # nothing corrupt or partial left
    assert "payload SHA-256 mismatch" in caplog.text and "deleted, trying the next mirror" in caplog.text


def test_all_mirrors_bad_gives_clear_error(tmp_path, synthetic_mnist, http_mirror):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    empty = tmp_path / "empty"
    empty.mkdir()
    dest = tmp_path / "out" / name
    with pytest.raises(download.DownloadError) as e:
        download.download_file(name, dest, [http_mirror(empty), f"http://127.0.0.1:{free_port()}/"],
                           timeout=5, retries=0, spec=_spec(folder, sums, name))
    msg = str(e.value)
    assert "no mirror served a good copy" in msg and "404" in msg and "file://" in msg
    assert not dest.exists() and list(dest.parent.iterdir()) == []


class _Truncating(_Quiet):
    """Promises the whole file, sends half, hangs up: an interrupted download."""

    def do_GET(self):
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


def test_interrupted_download_leaves_nothing(tmp_path, synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    name = "train-images-idx3-ubyte.gz"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Truncating, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dest = tmp_path / "out" / name
    try:
        with pytest.raises(download.DownloadError, match=f"{name} from http://127.0.0.1:.*transfer cut short"):
            download.download_file(name, dest, [f"http://127.0.0.1:{srv.server_address[1]}/"], timeout=5,
                               retries=1, backoff=0.01, spec=_spec(folder, sums, name))
    finally:
        srv.shutdown()
        srv.server_close()
    assert list(dest.parent.iterdir()) == []


class _Counting(_Quiet):
    """Serves a folder and counts GET requests per path; ``cut`` paths are sent short:
    the whole Content-Length promised, the first ``cut[path]`` requests get half the
    body before the connection closes, later ones get the file."""

    requests: dict
    cut: dict

    def do_GET(self):
        self.requests[self.path] = self.requests.get(self.path, 0) + 1
        target = Path(self.directory) / self.path.lstrip("/")
        if not target.is_file():
            self.send_error(404, "File not found")
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.requests[self.path] <= self.cut.get(self.path, 0):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.wfile.write(body)


@pytest.fixture
def counting_server():
    """A real HTTP server on 127.0.0.1 that counts requests and can cut transfers short."""
    servers = []

    def serve(folder: Path, cut: dict | None = None):
        handler = type("Handler", (_Counting,), {"requests": {}, "cut": dict(cut or {})})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/", handler.requests

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_cut_transfer_is_retried_on_the_same_mirror(tmp_path, synthetic_mnist, counting_server, caplog):
    """Content-Length larger than what arrives, then the connection closes: the same mirror
    is asked again (with backoff) and the second, whole copy is taken."""
    folder, sums, _ = synthetic_mnist
    name = "train-images-idx3-ubyte.gz"
    url, requests = counting_server(folder, cut={f"/{name}": 1})
    dest = tmp_path / "out" / name
    rec = download.download_file(name, dest, [{"url": url, "canonical": False}], timeout=5, retries=2,
                             backoff=0.01, spec=_spec(folder, sums, name))
    assert requests == {f"/{name}": 2}  # one cut, one whole; no other mirror needed
    assert rec["mirror"] == url and dest.read_bytes() == (folder / name).read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == [name]
    assert f"{name} from {url}: transfer cut short: received" in caplog.text and "try 1 of 3" in caplog.text


def test_404_and_missing_file_are_not_retried(tmp_path, synthetic_mnist, counting_server):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    empty = tmp_path / "empty"
    empty.mkdir()
    url, requests = counting_server(empty)
    dest = tmp_path / "out" / name
    t0 = time.monotonic()
    with pytest.raises(download.DownloadError) as e:
        download.download_file(name, dest, [url, str(empty), empty.as_uri()], timeout=5, retries=3, backoff=5,
                           spec=_spec(folder, sums, name))
    assert time.monotonic() - t0 < 4  # no backoff waited: nothing was retried
    assert requests == {f"/{name}": 1}
    msg = str(e.value)
    assert f"{name} from {url}: HTTP 404" in msg and msg.count("not retried: it cannot succeed on retry") == 3
    assert f"{name} from {empty}: [Errno 2] No such file or directory" in msg


def test_truncated_gzip_message_names_the_file_not_the_temporary(tmp_path, synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    name = "train-images-idx3-ubyte.gz"
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / name).write_bytes((folder / name).read_bytes()[:-40])  # a local copy cut short
    with pytest.raises(download.DownloadError) as e:
        download.download_file(name, tmp_path / "out" / name, [str(cut)], spec=_spec(folder, sums, name))
    msg = str(e.value)
    assert f"{name} from {cut}: not a complete gzip file" in msg, msg
    assert ".part" not in msg


def test_canonical_mismatch_suggests_canonical_false(tmp_path, synthetic_mnist, counting_server):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    url, requests = counting_server(folder)  # an http mirror: canonical unless told otherwise
    with pytest.raises(download.DownloadError) as e:
        download.download_file(name, tmp_path / "out" / name, [url], retries=2, backoff=5,
                           spec=_spec(folder, sums, name))
    assert requests == {f"/{name}": 1}  # a checksum mismatch is not retried
    assert f"list the mirror as {{url: {url!r}, canonical: false}}" in str(e.value)


def test_a_verified_file_in_place_is_kept_without_asking_a_mirror(tmp_path, synthetic_mnist, counting_server):
    """What the download rule's update() relies on: a rerun offline keeps the verified copy."""
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    spec = _spec(folder, sums, name)
    dest, record = tmp_path / "out" / name, tmp_path / "out" / f"{name}.source.json"
    first = download.download_file(name, dest, [str(folder)], spec=spec, record=record)
    files.write_json_if_changed(record, first)
    stamps = (dest.stat().st_mtime_ns, record.stat().st_mtime_ns)
    dead = f"http://127.0.0.1:{free_port()}/"
    again = download.download_file(name, dest, [dead], spec=spec, record=record)
    assert again == first and again["mirror"] == str(folder)  # provenance kept
    assert not files.write_json_if_changed(record, again)
    assert (dest.stat().st_mtime_ns, record.stat().st_mtime_ns) == stamps  # not rewritten
    dest.write_bytes(dest.read_bytes()[:-5])  # a copy in place that no longer verifies is replaced
    url, requests = counting_server(folder)
    rec = download.download_file(name, dest, [{"url": url, "canonical": False}], spec=spec, record=record)
    assert requests == {f"/{name}": 1} and rec["mirror"] == url


def test_local_folder_and_file_url_mirrors(tmp_path, synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    for i, mirror in enumerate([str(folder), folder.as_uri()]):
        dest = tmp_path / f"o{i}" / name
        rec = download.download_file(name, dest, [mirror], spec=_spec(folder, sums, name))
        assert dest.exists() and rec["archive_canonical"] is False


# ----------------------------------------------------------------- split

def test_prepare_split_synthetic(tmp_path, synthetic_mnist):
    folder, sums, arrays = synthetic_mnist
    raw = {n: folder / n for n in data.MNIST_FILES}
    m = data.prepare_split(raw, tmp_path / "s.npz", tmp_path / "m.json", n_validation=5, expected_payload=sums)
    split = data.load_split(tmp_path / "s.npz")
    np.testing.assert_array_equal(split["x_val"], arrays["train-images-idx3-ubyte.gz"][:5])
    np.testing.assert_array_equal(split["x_train"], arrays["train-images-idx3-ubyte.gz"][5:])
    np.testing.assert_array_equal(split["y_test"], arrays["t10k-labels-idx1-ubyte.gz"])
    assert m["counts"] == {"train": 25, "val": 5, "test": 12}
    assert json.loads((tmp_path / "m.json").read_text())["split_sha256"] == files.sha256_file(tmp_path / "s.npz")
    assert not list(tmp_path.glob("*.part*"))


def test_prepare_split_rejects_bad_checksum_and_mismatched_counts(tmp_path, synthetic_mnist):
    folder, sums, _ = synthetic_mnist
    raw = {n: folder / n for n in data.MNIST_FILES}
    with pytest.raises(data.ChecksumError):
        data.prepare_split(raw, tmp_path / "s.npz", tmp_path / "m.json", n_validation=5,
                           expected_payload={**sums, "t10k-labels-idx1-ubyte.gz": "f" * 64})
    assert not (tmp_path / "s.npz").exists()
    # 11 test labels for 12 test images
    lab = folder / "t10k-labels-idx1-ubyte.gz"
    sums = {**sums, lab.name: write_gz(lab, idx_bytes(np.arange(11) % 10))}
    with pytest.raises(data.IdxError, match="12 images but 11 labels"):
        data.prepare_split(raw, tmp_path / "s.npz", tmp_path / "m.json", n_validation=5, expected_payload=sums)


def test_load_split_rejects_foreign_file(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="delete it and rerun"):
        data.load_split(p)


@needs_mnist
def test_real_mnist_from_local_mirror(tmp_path, mnist_dir):
    """The real files through a file:// mirror: verified, split, and the SPEC's sanity facts."""
    raw, prov = {}, {}
    for name in data.MNIST_FILES:
        raw[name] = tmp_path / "raw" / name
        prov[name] = download.download_file(name, raw[name], [mnist_dir.as_uri()])
        assert prov[name]["payload_sha256"] == data.MNIST_FILES[name].payload_sha256
    m = data.prepare_split(raw, tmp_path / "mnist.npz", tmp_path / "manifest.json", prov)
    assert m["counts"] == {"train": 55000, "val": 5000, "test": 10000}
    assert m["test_label_counts"] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert m["train_file_label_counts"] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert m["mean_pixel_train_file"] == 33.318
