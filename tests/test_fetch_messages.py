"""`bench data fetch` and `bench data list` explain themselves: every archive an offline fetch
needs in one line, a present archive with the wrong digest, torchvision's real reason, built-in
datasets, no empty folders after a failure, the names in --help. Loopback and local files only."""

from __future__ import annotations

import socket

import pytest
from test_fetch import make_tar, server, sha  # noqa: F401  (the loopback server fixture)

from bench import registry
from bench.datasets import fetch as fetch_mod
from bench.datasets.base import FileDataset
from bench.datasets.fetch import Download

BUILT_IN = [n for n in registry.datasets.names() if not issubclass(registry.datasets.get(n), FileDataset)
            and not registry.datasets.get(n).built_from]
BUILT_FROM = {n: registry.datasets.get(n).built_from for n in registry.datasets.names()
              if registry.datasets.get(n).built_from}


@pytest.fixture
def dead_url():
    """A loopback port nobody listens on: connecting fails at once, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_offline_fetch_names_every_archive_and_leaves_no_folder(tmp_path, bench_cli, monkeypatch, dead_url):
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(f"{dead_url}/{f}", f, "0" * 64)
                                                   for f in ("images.tar", "annotation.tar", "lists.tar")])
    root = tmp_path / "new" / "toy"
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(root))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: cannot reach the server for toy (")
    for f in ("images.tar", "annotation.tar", "lists.tar"):
        assert f"{f} ({dead_url}/{f})" in err
    assert f"by hand into {root}" in err
    assert not (tmp_path / "new").exists()


def test_present_archive_with_a_wrong_digest_has_its_own_message(server, tmp_path, bench_cli,  # noqa: F811
                                                                 monkeypatch):
    archive = make_tar({"x.txt": b"the real file"})
    server.files["/toy.tgz"] = archive
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Download(server.url + "/toy.tgz", "toy.tgz", sha(archive))])
    root = tmp_path / "toy"
    root.mkdir()
    (root / "toy.tgz").write_bytes(b"a half copy")
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(root))
    assert code == 2 and err.count("\n") == 1
    assert err.strip() == (f"error: {root / 'toy.tgz'} is present but its SHA-256 is {sha(b'a half copy')}, "
                           f"expected {sha(archive)}: delete it and fetch again")
    assert server.requests == []  # nothing downloaded over the file the user placed
    (root / "toy.tgz").unlink()
    code, _, err = bench_cli("data", "fetch", "toy", "--root", str(root))
    assert code == 0 and (root / "x.txt").read_bytes() == b"the real file"


@pytest.mark.parametrize("error, reason", [
    (RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\n<urlopen error down>\n"),
     "(Error downloading train-images-idx3-ubyte.gz: Tried https://a/, got: <urlopen error down>)"),
    (RuntimeError(""), "(RuntimeError)"),
    (OSError("disk on fire"), "(disk on fire)"),
])
def test_torchvision_failures_print_their_reason(tmp_path, bench_cli, monkeypatch, error, reason):
    from torchvision import datasets as tv

    def fail(root, train, download):
        (tmp_path / "mnist" / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does
        raise error

    monkeypatch.setattr(tv, "MNIST", fail)
    code, _, err = bench_cli("data", "fetch", "mnist", "--root", str(tmp_path / "mnist"))
    assert code == 2 and err.count("\n") == 1
    assert f"torchvision could not download mnist into {tmp_path / 'mnist'} {reason}; connect" in err
    assert not (tmp_path / "mnist").exists()


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_datasets_need_no_fetch(tmp_path, bench_cli, name):
    code, _, err = bench_cli("data", "fetch", name)
    assert code == 0 and err.strip() == f"{name}: built in, nothing to fetch"
    assert not (tmp_path / "data").exists()


def test_unknown_name_lists_the_fetchable_ones(bench_cli):
    code, _, err = bench_cli("data", "fetch", "dogs")
    assert code == 2 and "nothing to fetch for 'dogs'; fetchable: anime, cartoonset," in err


def test_fetch_help_lists_every_name(bench_cli):
    from bench.data_command import BUILT_IN as built_in_text
    from bench.data_command import FETCHABLE

    assert FETCHABLE.split(", ") == fetch_mod.fetchable()
    from bench.data_command import BUILT_FROM as built_from_text

    assert built_in_text.split(", ") == BUILT_IN
    assert built_from_text.split(", ") == [f"{n} (from {m})" for n, m in BUILT_FROM.items()]
    assert set(fetch_mod.fetchable()) | set(BUILT_IN) | set(BUILT_FROM) == set(registry.datasets.names())
    code, out, _ = bench_cli("data", "fetch", "--help")
    assert code == 0 and f"NAME: {FETCHABLE}" in out and "stacked_mnist5k" in out


def test_data_list_shows_built_in_present_and_missing(tmp_path, bench_cli, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "store"))
    dogs = tmp_path / "store" / "stanford_dogs" / "Images"
    dogs.mkdir(parents=True)
    (dogs / "a.jpg").write_bytes(b"x" * 3000)
    code, out, _ = bench_cli("data", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert set(rows) == set(registry.datasets.names())
    assert rows["digits"].split()[1:3] == ["built", "in"]
    assert rows["stanford_dogs"].split()[1:4] == ["present", "2.9", "KB"]
    assert rows["stanford_dogs"].endswith(str(tmp_path / "store" / "stanford_dogs"))
    assert rows["cartoonset"].split()[1] == "missing" and rows["cartoonset"].endswith("cartoonset")
