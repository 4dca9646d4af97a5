"""`bench data fetch`: downloads from a loopback HTTP server only, never the internet.

The server honours Range requests (or ignores them, to test a restart) and records what it was
asked, so resume is checked on the wire and not just by the final bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from bench.datasets import fetch as fetch_mod
from bench.datasets.fetch import Download, extract, fetch_file
from bench.errors import BenchError


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def server():
    """A loopback server: files[path] = bytes; ranges=False makes it ignore Range headers."""

    class State:
        files: dict[str, bytes] = {}
        ranges = True
        requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            State.requests.append({"path": self.path, "range": self.headers.get("Range")})
            body = State.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if State.ranges and self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    State.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield State
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_downloads_verifies_and_extracts(server, tmp_path, bench_cli, monkeypatch):
    archive = make_tar({"toyset/a.txt": b"alpha", "toyset/sub/b.txt": b"beta" * 1000})
    server.files["/toy.tgz"] = archive
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(server.url + "/toy.tgz", "toy.tgz", sha(archive))])
    root = tmp_path / "data" / "toy"
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(root))
    assert code == 0, err
    assert (root / "toyset" / "sub" / "b.txt").read_bytes() == b"beta" * 1000
    assert not (root / "toy.tgz").exists() and not (root / "toy.tgz.part").exists()
    record = json.loads((root / ".fetched.json").read_text())
    assert record["toy.tgz"]["sha256"] == sha(archive) and record["toy.tgz"]["verified"] is True
    assert "verified" in err
    # Fetching again does not download again.
    n = len(server.requests)
    assert bench_cli("data", "fetch", "toy", "--root", str(root))[0] == 0
    assert len(server.requests) == n


def test_tampered_download_is_rejected_and_deleted(server, tmp_path, bench_cli, monkeypatch):
    good = make_tar({"x.txt": b"the real file"})
    server.files["/toy.tgz"] = make_tar({"x.txt": b"something else"})
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(server.url + "/toy.tgz", "toy.tgz", sha(good))])
    root = tmp_path / "toy"
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(root))
    assert code == 2 and err.count("\n") == 1
    assert f"expected {sha(good)}" in err and "tampered" in err
    assert not root.exists()  # no archive, no .part, nothing extracted, and not the empty folder either


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    body = bytes(range(256)) * 4000
    server.files["/big.bin"] = body
    (tmp_path / "big.bin.part").write_bytes(body[:300_000])
    path = fetch_file(Download(server.url + "/big.bin", "big.bin", sha(body), extract=False), tmp_path)
    assert path.read_bytes() == body
    assert server.requests == [{"path": "/big.bin", "range": "bytes=300000-"}]


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    body = b"0123456789" * 5000
    server.files["/f.bin"] = body
    server.ranges = False
    (tmp_path / "f.bin.part").write_bytes(body[:1234])
    path = fetch_file(Download(server.url + "/f.bin", "f.bin", sha(body), extract=False), tmp_path)
    assert path.read_bytes() == body  # not the first 1,234 bytes twice


def test_complete_part_file_is_finished_without_downloading(server, tmp_path):
    body = b"done already"
    server.files["/d.bin"] = body
    (tmp_path / "d.bin.part").write_bytes(body)
    assert fetch_file(Download(server.url + "/d.bin", "d.bin", sha(body), extract=False), tmp_path).read_bytes() == body


def test_unknown_digest_is_printed_and_recorded(server, tmp_path, bench_cli, monkeypatch):
    archive = make_tar({"c.txt": b"cartoon"})
    server.files["/c.tgz"] = archive
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(server.url + "/c.tgz", "c.tgz", None)])
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(tmp_path / "c"))
    assert code == 0 and sha(archive) in err and "not verified" in err
    assert json.loads((tmp_path / "c" / ".fetched.json").read_text())["c.tgz"]["verified"] is False


@pytest.mark.parametrize("members,links,why", [
    ({"ok.txt": b"1", "../evil.txt": b"2"}, None, "'..' component"),
    ({"/abs/evil.txt": b"2"}, None, "absolute path"),
    ({"ok.txt": b"1"}, {"link": "/etc/passwd"}, "a link"),
])
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, members, links, why):
    archive = tmp_path / "bad.tgz"
    archive.write_bytes(make_tar(members, links))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BenchError, match=why):
        extract(archive, target)
    assert list(target.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_offline_is_one_clear_line(tmp_path, bench_cli, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(f"http://127.0.0.1:{port}/x.tgz", "x.tgz", None)])
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: cannot reach the server for toy (")
    assert f"download x.tgz (http://127.0.0.1:{port}/x.tgz) by hand" in err


def test_http_errors_and_unknown_names_are_one_line(server, tmp_path, bench_cli, monkeypatch):
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(server.url + "/missing", "m.tgz", None)])
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(tmp_path / "m"))
    assert code == 2 and "HTTP 404" in err
    code, _, err = bench_cli("data", "fetch", "no_such_set")
    assert code == 2 and "fetchable: anime, cartoonset, cifar10" in err


def test_anime_says_where_to_get_it_and_where_to_put_it(tmp_path, bench_cli):
    code, _, err = bench_cli("data", "fetch", "anime", "--root", str(tmp_path / "anime"))
    assert code == 0 and str(tmp_path / "anime") in err and "no stable official URL" in err


# TensorFlow Datasets' published record of the Stanford Dogs archives (url, bytes, sha256), copied from
# tensorflow_datasets/url_checksums/stanford_dogs.txt: a second source for the digests shipped in fetch.py.
TFDS_STANFORD_DOGS = {
    "http://vision.stanford.edu/aditya86/ImageNetDogs/annotation.tar":
        (21852160, "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd"),
    "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar":
        (793579520, "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58"),
    "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar":
        (481280, "34b47cacd9a98b5d150e084f24d29391c084c55272295ec65c85651bc35f4d6c"),
}
SHIPPED = [(name, item) for name, items in fetch_mod.SOURCES.items() for item in items]


def test_shipped_digests_are_lowercase_sha256_unique_and_match_the_published_ones():
    for name, item in SHIPPED:
        assert item.url.startswith(("http://", "https://")) and item.filename, (name, item)
        # hexdigest() is lower-case, so an upper-case or short digest could never verify anything.
        assert item.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", item.sha256), (name, item.sha256)
    digests = [item.sha256 for _, item in SHIPPED if item.sha256]
    assert len(set(digests)) == len(digests)  # a digest pasted twice verifies the wrong file
    for name in fetch_mod.SOURCES:
        files = [item.filename for item in fetch_mod.SOURCES[name]]
        assert len(set(files)) == len(files)
    dogs = {item.url: item.sha256 for item in fetch_mod.SOURCES["stanford_dogs"]}
    assert dogs == {url: digest for url, (_, digest) in TFDS_STANFORD_DOGS.items()}


@pytest.mark.parametrize("name", sorted(fetch_mod.SOURCES))
def test_shipped_source_refuses_a_tampered_archive(name, server, tmp_path, monkeypatch):
    """Each shipped entry, its URL pointed at the loopback server, through `fetch` as the CLI calls it:
    a body that is not the published file is refused (a digest is known) or recorded as unverified."""
    items = fetch_mod.SOURCES[name]
    local = [Download(f"{server.url}/{i.filename}", i.filename, i.sha256, i.extract) for i in items]
    monkeypatch.setitem(fetch_mod.SOURCES, name, local)
    for item in items:
        server.files[f"/{item.filename}"] = make_tar({"planted.txt": b"not the published archive"})
    root = tmp_path / name
    if items[0].sha256 is None:
        fetch_mod.fetch(name, root)
        entry = json.loads((root / ".fetched.json").read_text())[items[0].filename]
        assert entry["verified"] is False and entry["sha256"] == sha(server.files[f"/{items[0].filename}"])
        return
    root.mkdir()
    (root / items[0].filename).write_bytes(b"placed by hand, but not the file")  # not trusted either
    with pytest.raises(BenchError, match=f"is present but its SHA-256 is .*, expected {items[0].sha256}: delete it"):
        fetch_mod.fetch(name, root)
    assert sorted(p.name for p in root.iterdir()) == [items[0].filename]  # no .part, nothing extracted or recorded
    assert server.requests == []  # the file placed by hand is reported, never silently overwritten
    (root / items[0].filename).unlink()
    with pytest.raises(BenchError, match=f"expected {items[0].sha256}; the download was corrupted or tampered"):
        fetch_mod.fetch(name, root)
    assert server.requests[-1]["path"] == f"/{items[0].filename}"  # it did download, then refused


def test_file_placed_by_hand_is_verified_not_downloaded(server, tmp_path):
    body = b"brought on a usb stick"
    (tmp_path / "h.bin").write_bytes(body)
    path = fetch_file(Download(server.url + "/h.bin", "h.bin", sha(body), extract=False), tmp_path)
    assert path == Path(tmp_path / "h.bin") and server.requests == []


def _cifar_archive(per_batch: int) -> tuple[bytes, dict[str, str], list[int]]:
    """A CIFAR-10 python archive in the real layout (pickled dicts, CHW rows) with tiny batches.

    Image i is one flat colour (R, G, B) = (i, 100, 200), so a channel mix-up cannot pass."""
    import pickle

    import numpy as np

    members, labels = {}, []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        ids = list(range(b * per_batch, (b + 1) * per_batch))
        rows = np.stack([np.concatenate([np.full(1024, i), np.full(1024, 100), np.full(1024, 200)]) for i in ids])
        batch_labels = [i % 10 for i in ids]
        labels += batch_labels
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps({"data": rows.astype(np.uint8), "labels": batch_labels})
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": classes})
    md5 = {name.split("/")[1]: hashlib.md5(data).hexdigest() for name, data in members.items()}
    return make_tar(members), md5, labels


def test_cifar10_fetch_goes_through_torchvision_and_loads_the_real_layout(server, tmp_path, bench_cli, monkeypatch):
    """torchvision's own downloader against a loopback copy (its URL and md5 sums pointed at the fixture)."""
    from torchvision.datasets import CIFAR10

    from bench import registry

    archive, md5, labels = _cifar_archive(per_batch=4)
    server.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "url", server.url + "/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cifar10"
    code, _, err = bench_cli("data", "fetch", "cifar10", "--root", str(root))
    assert code == 0 and f"cifar10: ready in {root}" in err, err
    assert server.requests[-1]["path"] == "/cifar-10-python.tar.gz"

    cls = registry.datasets.get("cifar10")
    train = cls.load(cls.Options(root=str(root)), 16, torch.device("cpu"))
    test = cls.load(cls.Options(root=str(root), split="test"), 16, torch.device("cpu"))
    assert train.images.shape == (20, 3, 16, 16) and test.images.shape == (4, 3, 16, 16)
    assert train.labels.tolist() == labels[:20] and test.labels.tolist() == labels[20:]
    assert train.spec.class_names[:2] == ("airplane", "automobile") and train.spec.num_classes == 10
    assert train.images[7, :, 5, 5].tolist() == [7, 100, 200]  # flat colours survive the resize exactly
    assert test.images[0, :, 0, 0].tolist() == [20, 100, 200]

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"truncated")  # md5 no longer matches
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cold-cache"))
    with pytest.raises(BenchError, match=r"cifar10 under .* is unreadable .*bench data fetch cifar10 --root"):
        cls.load(cls.Options(root=str(root), split="test"), 16, torch.device("cpu"))
