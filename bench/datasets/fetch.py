"""Downloading datasets for users who are online: resumable, digest-checked, safely extracted.

Only `bench data fetch` calls this; a training run never downloads. A file goes to
`<root>/<name>.part`, resumed with an HTTP Range request, and is renamed into place only after its
SHA-256 matches the digest shipped below. Archives are checked member by member before anything
is written: absolute paths, `..` components, links and device files are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from bench.errors import BenchError
from bench.store.runs import write_atomic

CHUNK = 1 << 20


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    sha256: Optional[str]  # None: the project does not know it yet (see SOURCES)
    extract: bool = True


# The Stanford Dogs digests are the published ones in TensorFlow Datasets'
# url_checksums/stanford_dogs.txt (with sizes 793,579,520 / 21,852,160 / 481,280 bytes).
# No digest for the Cartoon Set archive could be confirmed while this table was written (no
# network here), so it is None: the download is then hashed, the digest printed and recorded in
# <root>/.fetched.json, and whoever fetches it first should paste it here.
SOURCES: dict[str, list[Download]] = {
    "cartoonset": [
        Download("https://storage.googleapis.com/cartoonset_public_files/cartoonset10k.tgz",
                 "cartoonset10k.tgz", None),
    ],
    "stanford_dogs": [
        Download("http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar", "images.tar",
                 "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58"),
        Download("http://vision.stanford.edu/aditya86/ImageNetDogs/annotation.tar", "annotation.tar",
                 "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd"),
        Download("http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar", "lists.tar",
                 "34b47cacd9a98b5d150e084f24d29391c084c55272295ec65c85651bc35f4d6c"),
    ],
}

# No stable, licensed URL exists for anime faces: the command explains instead of downloading.
MANUAL = {
    "anime": ("Anime-face collections are community dumps with no stable official URL (commonly 96x96 "
              "JPEGs, e.g. the 'anime faces' sets on Kaggle or Hugging Face); check the licence, download one "
              "and unpack its images flat into {root} (a sidecar tags file is ignored), or set data.root."),
    "imagefolder": "imagefolder reads your own images: put them in {root} (flat, or one subfolder per class).",
}


class Unreachable(BenchError):
    """The server of one download could not be reached (offline): fetch() names every such file."""

    def __init__(self, message: str, item: Download, reason: str):
        super().__init__(message)
        self.item, self.reason = item, reason


def fetch_file(item: Download, root: Path, timeout: float = 30.0) -> Path:
    """Download item.url to root/item.filename (resuming a .part), verify it, return the path."""
    final, part = root / item.filename, root / (item.filename + ".part")
    if final.is_file():
        digest = sha256_of(final)
        if item.sha256 is None or digest == item.sha256:
            return final  # already here (downloaded earlier, or placed by hand)
        raise BenchError(f"{final} is present but its SHA-256 is {digest}, expected {item.sha256}: delete it and "
                         f"fetch again")
    root.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(item.url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is already complete
            response = None
        else:
            raise BenchError(f"downloading {item.url} failed: HTTP {exc.code} {exc.reason}; try later, or "
                             f"download it by hand to {final}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {item.url} ({reason}); connect to the internet, or download it by "
                          f"hand to {final}", item, str(reason)) from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                resumed = False
            start = offset if resumed else 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length else None
            _stream(response, part, start, total, item.filename)
    digest = sha256_of(part)
    if item.sha256 is not None and digest != item.sha256:
        part.unlink()
        raise BenchError(f"{item.filename} from {item.url} has sha256 {digest}, expected {item.sha256}; the "
                         "download was corrupted or tampered with and is deleted: run the command again")
    part.replace(final)
    if item.sha256 is None:
        print(f"{item.filename}: sha256 {digest} (no digest shipped for it, so not verified; "
              f"recorded in {root / '.fetched.json'})", file=sys.stderr)
    return final


def _stream(response, part: Path, start: int, total: Optional[int], label: str) -> None:
    from tqdm import tqdm

    with open(part, "ab" if start else "wb") as f, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                 disable=not sys.stderr.isatty()) as bar:
        f.truncate(start)
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
        except OSError as exc:
            raise BenchError(f"download of {label} broke off ({exc}); run the command again to resume") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_members(archive: tarfile.TarFile, target: Path) -> list[tarfile.TarInfo]:
    """Every member, or BenchError naming the first that could write outside `target`."""
    target = target.resolve()
    members = archive.getmembers()
    for m in members:
        parts = PurePosixPath(m.name.replace("\\", "/")).parts
        bad = ("an absolute path" if m.name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", m.name)
               else "a '..' component" if ".." in parts
               else "a link" if m.issym() or m.islnk()
               else "a device or fifo" if not (m.isfile() or m.isdir())
               else None)
        if bad is None and not (target / m.name).resolve().is_relative_to(target):
            bad = "a path outside the target"
        if bad:
            raise BenchError(f"refusing to extract {archive.name}: member {m.name!r} is {bad}; the archive "
                             "is unsafe, delete it")
    return members


def extract(archive_path: Path, target: Path) -> None:
    with tarfile.open(archive_path, "r:*") as archive:
        members = check_members(archive, target)
        # The 'data' filter repeats the checks inside tarfile and drops unsafe permission bits.
        archive.extractall(target, members=members, filter="data")


TORCHVISION = ("mnist", "cifar10")


def fetchable() -> list[str]:
    return sorted([*SOURCES, *TORCHVISION, *MANUAL])


def fetch(name: str, root: Path) -> list[str]:
    """Fetch dataset `name` into root; returns the lines to print. A failed fetch leaves no folder
    it created behind (empty ones; a partial download stays so the next try resumes)."""
    if name in MANUAL:
        return [MANUAL[name].format(root=root)]
    if name not in [*SOURCES, *TORCHVISION]:
        from bench import registry
        from bench.datasets.base import FileDataset

        if name in registry.datasets.names() and not issubclass(registry.datasets.get(name), FileDataset):
            source = registry.datasets.get(name).built_from
            if source:
                return [f"{name}: built from the {source} files, nothing of its own to fetch; "
                        f"run bench data fetch {source}"]
            return [f"{name}: built in, nothing to fetch"]
        raise BenchError(f"nothing to fetch for '{name}'; fetchable: {', '.join(fetchable())} "
                         f"(bench data list shows every dataset)")
    made = [p for p in (root, *root.parents) if not p.exists()]
    had = set(root.iterdir()) if root.is_dir() else set()
    try:
        return [_torchvision(name, root)] if name in TORCHVISION else _fetch_sources(name, root)
    except BaseException:
        _remove_empty(root, made, had)
        raise


def _remove_empty(root: Path, made: list[Path], had: set[Path]) -> None:
    """Delete the empty folders this fetch made: inside the new entries of root (torchvision makes
    MNIST/raw in whatever root it is given), then root and its parents where it made them. A folder
    the user had is never touched, nor anything holding a file (a partial download resumes)."""
    new = [p for p in root.iterdir() if p not in had and p.is_dir() and not p.is_symlink()] if root.is_dir() else []
    for top in new:
        inner = sorted((p for p in top.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts))
        for folder in [*inner, top]:
            if not any(folder.iterdir()):
                folder.rmdir()
    for folder in made:  # deepest first
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _fetch_sources(name: str, root: Path) -> list[str]:
    record_path = root / ".fetched.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    lines, unreachable = [], []
    for item in SOURCES[name]:
        if item.filename in record and (item.sha256 is None or record[item.filename]["sha256"] == item.sha256):
            lines.append(f"{item.filename}: already fetched into {root}")
            continue
        try:
            path = fetch_file(item, root)
        except Unreachable as exc:
            unreachable.append(exc)  # offline: try the others, so one line names every file needed
            continue
        digest = sha256_of(path)
        if item.extract:
            extract(path, root)
            path.unlink()  # extracted and recorded; the archive would only double the disk use
        record[item.filename] = {"url": item.url, "sha256": digest, "verified": item.sha256 is not None,
                                 "fetched": time.time()}
        write_atomic(record_path, json.dumps(record, indent=1, sort_keys=True))
        lines.append(f"{item.filename}: sha256 {digest} {'verified' if item.sha256 else 'recorded'}, into {root}")
    if unreachable:
        files = ", ".join(f"{e.item.filename} ({e.item.url})" for e in unreachable)
        raise BenchError(f"cannot reach the server for {name} ({unreachable[0].reason}); connect to the internet "
                         f"and run the command again, or download {files} by hand into {root}")
    return lines


def _torchvision(name: str, root: Path) -> str:
    """MNIST and CIFAR-10 through torchvision's own downloader, which checks its own md5 sums."""
    from torchvision import datasets as tv

    reader = {"mnist": tv.MNIST, "cifar10": tv.CIFAR10}[name]
    try:
        for train in (True, False):
            reader(str(root), train=train, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise BenchError(f"torchvision could not download {name} into {root} ({_reason(exc)}); "
                         "connect to the internet and run the command again") from None
    return f"{name}: ready in {root}"


def _reason(exc: BaseException) -> str:
    """A failure's reason on one line. torchvision's first line can be 'Error downloading X:' with
    the cause on the lines after it (or in the chained exception), so those are joined in."""
    lines = [line.strip() for e in (exc, getattr(exc, "reason", None), exc.__cause__, exc.__context__)
             if e is not None for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    out = lines[0]
    for line in lines[1:]:
        if not out.endswith(":"):
            break
        out += " " + line
    return out
