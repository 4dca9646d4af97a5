"""On-disk datasets: tiny fixture trees built here, loaded through the registry like a run does.

Covers labels and official splits (Stanford Dogs, checked against the .mat lists), box crops,
alpha compositing and attributes (Cartoon Set), folder layouts, corrupt files, the cache (reuse,
invalidation on content change, not on a touch) and every bad layout failing with exit 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from bench import registry
from bench.datasets import cache as cache_mod
from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
BREEDS = ["n02000001-Alpha_dog", "n02000002-Beta_hound", "n02000003-Gamma_terrier"]
RED, BLUE = (220, 20, 20), (20, 20, 220)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_WORKERS", "2")
    monkeypatch.delenv("BENCH_DATA", raising=False)


def load(name: str, size: int = 16, **options):
    cls = registry.datasets.get(name)
    return cls.load(cls.Options(**options), size, CPU)


def check(name: str, size: int = 16, **options):
    cls = registry.datasets.get(name)
    cls.check(cls.Options(**options), size)


def write_mat(path: Path, files: list[str], labels: list[int]) -> None:
    cell = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        cell[i, 0] = f
    scipy.io.savemat(path, {"file_list": cell, "annotation_list": cell,
                            "labels": np.array(labels, dtype=np.uint8).reshape(-1, 1)})


def voc_xml(boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(f"<object><name>dog</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                      f"<ymax>{d}</ymax></bndbox></object>" for a, b, c, d in boxes)
    return f"<annotation><size><width>60</width><height>40</height><depth>3</depth></size>{objects}</annotation>"


def dogs_tree(root: Path, per_breed: int = 4, lists_dir: str = "") -> Path:
    """3 breeds x per_breed 60x40 JPEGs: blue, with a red dog inside the annotated box."""
    for b, breed in enumerate(BREEDS):
        wnid = breed.split("-")[0]
        (root / "Images" / breed).mkdir(parents=True)
        (root / "Annotation" / breed).mkdir(parents=True)
        for j in range(per_breed):
            box = (10 + 2 * j, 8, 30 + 2 * j, 32)
            image = Image.new("RGB", (60, 40), BLUE)
            image.paste(RED, box)
            image.save(root / "Images" / breed / f"{wnid}_{j}.jpg", quality=95)
            boxes = [box] if j != 1 else [box, (40, 2, 50, 12)]  # image 1 has a second dog
            (root / "Annotation" / breed / f"{wnid}_{j}").write_text(voc_xml(boxes))
    lists = root / lists_dir
    lists.mkdir(exist_ok=True)
    train = [(f"{br}/{br.split('-')[0]}_{j}.jpg", b + 1) for b, br in enumerate(BREEDS) for j in range(per_breed // 2)]
    test = [(f"{br}/{br.split('-')[0]}_{j}.jpg", b + 1) for b, br in enumerate(BREEDS)
            for j in range(per_breed // 2, per_breed)]
    for name, rows in (("train_list.mat", train), ("test_list.mat", test), ("file_list.mat", train + test)):
        write_mat(lists / name, [r[0] for r in rows], [r[1] for r in rows])
    return root


def cartoon_tree(root: Path, n: int = 5) -> Path:
    """n 50x50 RGBA PNGs (transparent canvas, opaque disc) with 3-attribute CSVs."""
    folder = root / "cartoonset10k"
    folder.mkdir(parents=True)
    for i in range(n):
        image = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
        disc = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
        from PIL import ImageDraw
        ImageDraw.Draw(disc).ellipse((0, 0, 29, 29), fill=(30 * i, 100, 50, 255))
        image.paste(disc, (10, 10), disc)
        image.save(folder / f"cs{1000 + i}.png")
        (folder / f"cs{1000 + i}.csv").write_text(
            f'"eye_angle", {i % 3}, 3\n"hair_color", {i}, 10\n"face_shape", {4 - i}, 7\n')
    return root


def flat_tree(root: Path, n: int, corrupt: int = 0, size=(24, 20)) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"img{i:04d}.jpg")
    for i in range(corrupt):
        (root / f"zz_bad{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / ".hidden.jpg").write_bytes(b"ignored")
    (root / "tags_clean.csv").write_text("ignored,too\n")
    return root


# ------------------------------------------------------------------ Stanford Dogs

@pytest.mark.parametrize("lists_dir", ["", "lists"])
def test_dogs_labels_follow_sorted_wnids_and_official_splits(tmp_path, lists_dir):
    root = dogs_tree(tmp_path / "dogs", lists_dir=lists_dir)
    train = load("stanford_dogs", root=str(root), split="train")
    test = load("stanford_dogs", root=str(root), split="test")
    every = load("stanford_dogs", root=str(root))
    assert train.spec.num_classes == 3
    assert train.spec.class_names == ("Alpha_dog", "Beta_hound", "Gamma_terrier")
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(every) == 12 and every.labels.bincount().tolist() == [4, 4, 4]
    assert train.info["split"] == "train" and train.info["images"] == 6
    assert train.info["fingerprint"] != test.info["fingerprint"]
    assert train.extras["wnids"] == ["n02000001", "n02000002", "n02000003"]


def test_dogs_bbox_crop_crops_to_the_box(tmp_path):
    root = dogs_tree(tmp_path / "dogs")
    plain = load("stanford_dogs", 32, root=str(root))
    boxed = load("stanford_dogs", 32, root=str(root), crop="bbox")
    union = load("stanford_dogs", 32, root=str(root), crop="bbox", bbox_mode="union")

    def red_fraction(images):
        x = images.float()
        return ((x[:, 0] > 150) & (x[:, 2] < 100)).float().mean(dim=(1, 2))

    # A 60x40 image centre-cropped keeps 40x40, of which the 20x24 red box is 30%; cropped to the box, ~all red.
    assert red_fraction(plain.images).max() < 0.45
    assert red_fraction(boxed.images).min() > 0.9
    # The union of two boxes includes blue background: less red than the first box alone.
    assert red_fraction(union.images)[1] < 0.8 and red_fraction(boxed.images)[1] > 0.9
    assert boxed.info["fingerprint"] != plain.info["fingerprint"] != union.info["fingerprint"]
    assert boxed.info["preprocess"]["crop"] == "bbox"


def test_dogs_lists_disagreeing_with_folders_fail(tmp_path):
    root = dogs_tree(tmp_path / "dogs")
    files = [f"{BREEDS[0]}/n02000001_0.jpg", f"{BREEDS[1]}/n02000002_0.jpg"]
    write_mat(root / "train_list.mat", files, [1, 3])  # second label points to the wrong breed
    with pytest.raises(BenchError, match="label 3 but its folder sorts as 2"):
        check("stanford_dogs", root=str(root), split="train")


# ------------------------------------------------------------------ Cartoon Set

def test_cartoonset_composites_alpha_on_white_and_reads_attributes(tmp_path):
    root = cartoon_tree(tmp_path / "cartoon")
    plain = load("cartoonset", 16, root=str(root))
    labelled = load("cartoonset", 16, root=str(root), attribute="hair_color")
    assert plain.spec.num_classes == 0 and plain.labels is None
    corners = plain.images[:, :, 0, 0]
    assert (corners == 255).all()  # transparent canvas became white, not black
    assert labelled.labels.tolist() == [0, 1, 2, 3, 4]
    assert labelled.spec.num_classes == 10 and labelled.spec.class_names[3] == "hair_color=3"
    assert labelled.extras["attribute_names"] == ["eye_angle", "hair_color", "face_shape"]
    assert labelled.extras["attributes"].tolist()[2] == [2, 2, 2]
    black = load("cartoonset", 16, root=str(root), background=[0, 0, 0])
    assert (black.images[:, :, 0, 0] == 0).all() and black.info["fingerprint"] != plain.info["fingerprint"]


def test_cartoonset_precrop_zooms_on_the_centre(tmp_path):
    root = cartoon_tree(tmp_path / "cartoon")
    whole = load("cartoonset", 16, root=str(root))
    zoomed = load("cartoonset", 16, root=str(root), precrop=30)
    white = lambda d: (d.images == 255).all(dim=1).float().mean().item()  # noqa: E731
    assert white(zoomed) < 0.5 * white(whole)


# ------------------------------------------------------------------ folders and corrupt files

def test_imagefolder_flat_is_unlabelled_and_subfolders_are_classes(tmp_path):
    flat = load("imagefolder", 8, root=str(flat_tree(tmp_path / "flat", 3)))
    assert flat.labels is None and len(flat) == 3 and flat.images.shape == (3, 3, 8, 8)
    for name, n in (("zebra", 2), ("ant", 3)):
        flat_tree(tmp_path / "classes" / name, n)
    classes = load("imagefolder", 8, root=str(tmp_path / "classes"))
    assert classes.spec.class_names == ("ant", "zebra")
    assert classes.labels.tolist() == [0, 0, 0, 1, 1]


def test_a_filesystem_root_home_or_huge_folder_is_refused_as_data_root(tmp_path, monkeypatch, bench_cli):
    from bench.datasets import files

    for root in ("/", str(Path.home())):
        with pytest.raises(BenchError, match=r"is a filesystem root or the home folder, not a dataset"):
            load("imagefolder", 8, root=root)
    flat_tree(tmp_path / "many", 6)
    monkeypatch.setattr(files, "MAX_WALK_ENTRIES", 5)
    with pytest.raises(BenchError, match=r"more than 5 entries under .*many; point data.root at"):
        load("imagefolder", 8, root=str(tmp_path / "many"))
    code, _, err = bench_cli("run", str(REPO / "ablations" / "smoke.yaml"), "--set", "dataset=imagefolder",
                             "--set", "data.root=/", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "filesystem root or the home folder" in err


def test_one_corrupt_jpeg_is_skipped_counted_and_listed(tmp_path):
    root = flat_tree(tmp_path / "faces", 120, corrupt=1)
    data = load("anime", 8, root=str(root))
    assert len(data) == 120 and data.info["skipped_corrupt"] == 1
    listing = Path(data.info["cache"]).with_suffix(".corrupt.txt")
    assert listing.read_text().startswith("zz_bad0.jpg: ")
    again = load("anime", 8, root=str(root))  # from the cache: the count survives
    assert again.info["cache_built"] is False and again.info["skipped_corrupt"] == 1


def test_too_many_corrupt_images_fail_with_the_list_in_a_file(tmp_path):
    root = flat_tree(tmp_path / "faces", 9, corrupt=1)
    with pytest.raises(BenchError, match=r"1 of 10 images .* could not be decoded .*corrupt\.txt") as exc:
        load("anime", 8, root=str(root))
    listed = Path(str(exc.value).split("the list is in ")[1].split(":")[0])
    assert listed.read_text().count("\n") == 1
    assert not list((tmp_path / "cache").glob("*.pt"))


# ------------------------------------------------------------------ cache

def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    root = flat_tree(tmp_path / "imgs", 6)
    first = load("imagefolder", 8, root=str(root))
    assert first.info["cache_built"] is True
    cache_file = Path(first.info["cache"])
    assert cache_file.name == f"imagefolder-all-8px-{first.info['fingerprint'][:16]}.pt"
    assert first.info["ref_fingerprint"] == cache_mod.sha256_file(cache_file)

    decodes = []
    monkeypatch.setattr("bench.datasets.folders.decode_files",
                        lambda *a, **k: decodes.append(1) or _real_decode(*a, **k))
    second = load("imagefolder", 8, root=str(root))
    assert second.info["cache_built"] is False and not decodes
    assert torch.equal(second.images, first.images)

    os.utime(root / "img0001.jpg", ns=(1, 1))  # a touch is not a change of content
    assert load("imagefolder", 8, root=str(root)).info["cache_built"] is False

    Image.new("RGB", (24, 20), (255, 0, 0)).save(root / "img0001.jpg")  # new content
    third = load("imagefolder", 8, root=str(root))
    assert third.info["cache_built"] is True and decodes
    assert third.info["fingerprint"] != first.info["fingerprint"]
    assert (third.images[1, 0] > 200).all() and not torch.equal(third.images, first.images)
    # Another size is another cache file, and a damaged cache file is rebuilt, not trusted.
    assert load("imagefolder", 16, root=str(root)).info["cache"] != third.info["cache"]
    Path(third.info["cache"]).write_bytes(b"garbage")
    assert load("imagefolder", 8, root=str(root)).info["cache_built"] is True


def _real_decode(*args, **kwargs):
    from bench.datasets.decode import decode_files

    return decode_files(*args, **kwargs)


def test_preprocessing_is_shorter_side_bicubic_then_centre_crop(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = 255  # a white middle third: after the centre crop the whole image is white
    Image.fromarray(pixels).save(root / "a.png")
    data = load("imagefolder", 8, root=str(root))
    expected = np.asarray(Image.fromarray(pixels).resize((24, 8), Image.BICUBIC))[:, 8:16].transpose(2, 0, 1)
    assert np.array_equal(data.images[0].numpy(), expected)
    assert data.images[0].float().mean() > 240


# ------------------------------------------------------------------ torchvision readers

def _idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_torchvision_files_and_replicates_channels(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    digits = np.zeros((4, 28, 28), dtype=np.uint8)
    digits[:, 10:18, 10:18] = np.arange(1, 5)[:, None, None] * 60
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", digits)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.array([3, 1, 4, 1]))
    data = load("mnist", 16, root=str(tmp_path / "mnist"))
    assert data.images.shape == (4, 3, 16, 16) and data.labels.tolist() == [3, 1, 4, 1]
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert data.images[3, 0, 8, 8] == 240 and data.spec.num_classes == 10


# ------------------------------------------------------------------ bad layouts: exit 2 before any run

def _layouts(tmp_path: Path) -> dict:
    (tmp_path / "empty").mkdir()
    flat_tree(tmp_path / "mixed", 2)
    flat_tree(tmp_path / "mixed" / "cats", 2)
    flat_tree(tmp_path / "nested" / "faces", 2)
    (tmp_path / "dogs_no_images").mkdir()
    nolists = dogs_tree(tmp_path / "dogs_no_lists")
    for f in nolists.glob("*.mat"):
        f.unlink()
    noboxes = dogs_tree(tmp_path / "dogs_no_boxes")
    for f in sorted((noboxes / "Annotation").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (noboxes / "Annotation").rmdir()
    cartoon = cartoon_tree(tmp_path / "cartoon_no_csv")
    (cartoon / "cartoonset10k" / "cs1002.csv").unlink()
    good_cartoon = cartoon_tree(tmp_path / "cartoon")
    return {
        "missing root": ("imagefolder", {"root": str(tmp_path / "nope")}, "image folder .*nope not found"),
        "empty folder": ("imagefolder", {"root": str(tmp_path / "empty")}, "no images in .*empty"),
        "mixed layout": ("imagefolder", {"root": str(tmp_path / "mixed")}, "both images and class subfolders"),
        "anime nested": ("anime", {"root": str(tmp_path / "nested")}, "set data.root to it"),
        "anime default root": ("anime", {}, r"anime folder data/anime not found; see 'bench data fetch anime'"),
        "dogs no Images": ("stanford_dogs", {"root": str(tmp_path / "dogs_no_images")},
                           "no Images/ folder .*bench data fetch stanford_dogs --root"),
        "dogs no lists": ("stanford_dogs", {"root": str(tmp_path / "dogs_no_lists"), "split": "train"},
                          "train_list.mat not found"),
        "dogs no boxes": ("stanford_dogs", {"root": str(tmp_path / "dogs_no_boxes"), "crop": "bbox"},
                          "data.crop=bbox needs .*Annotation"),
        "cartoon csv missing": ("cartoonset", {"root": str(cartoon)}, "cs1002.csv is missing"),
        "cartoon attribute": ("cartoonset", {"root": str(good_cartoon), "attribute": "hat"},
                              "no attribute 'hat'; set data.attribute to one of: eye_angle, hair_color"),
        "mnist offline": ("mnist", {"root": str(tmp_path / "mn")},
                          "mnist not found: .*runs never download.*bench data fetch mnist --root"),
        "cifar10 offline": ("cifar10", {}, "cifar10 not found: data/cifar10/cifar-10-batches-py"),
        "shapes classes": ("shapes", {"classes": 0}, "'data.classes' must be an integer between 1 and 256"),
    }


def test_every_bad_layout_exits_2_with_one_line_before_training(tmp_path, bench_cli, write_grid):
    import re

    for case, (dataset, options, message) in _layouts(tmp_path).items():
        grid = write_grid({"name": "bad", "base": {"variant": "dcgan", "dataset": dataset, "image_size": 8,
                                                   "data": options}})
        code, out, err = bench_cli("run", str(grid), "--dry-run")
        assert code == 2, case
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, case
        assert re.search(message, err), (case, err)
        assert not (tmp_path / "results").exists()


def test_a_run_records_what_data_it_trained_on(tmp_path, bench_cli, write_grid):
    root = flat_tree(tmp_path / "faces", 120, corrupt=1)
    grid = write_grid({"name": "faces", "base": {
        "variant": "dcgan", "dataset": "anime", "image_size": 8, "steps": 2, "batch_size": 4,
        "log_every": 1, "ckpt_every": 2, "dcgan": {"width": 8}, "data": {"root": str(root), "flip": True}}})
    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err
    (status,) = (tmp_path / "results" / "faces").glob("*/status.json")
    status = json.loads(status.read_text())
    assert status["state"] == "done", status
    data = status["data"]
    assert data["name"] == "anime" and data["images"] == 120 and data["skipped_corrupt"] == 1
    assert data["split"] == "all" and data["classes"] == 0 and len(data["fingerprint"]) == 64


def test_parallel_decode_matches_serial_and_places_bad_rows(tmp_path):
    from bench.datasets.decode import Preprocess, decode_files

    root = flat_tree(tmp_path / "many", 300, size=(12, 9))
    (root / "img0150.jpg").write_bytes(b"broken")
    paths = sorted(root.glob("img*.jpg"))
    serial, bad_serial = decode_files(paths, Preprocess(8), workers=1)
    parallel, bad_parallel = decode_files(paths, Preprocess(8), workers=3)
    assert np.array_equal(serial, parallel) and serial[:150].any(axis=(1, 2, 3)).all()
    assert [i for i, _ in bad_parallel] == [i for i, _ in bad_serial] == [150]
    assert not parallel[150].any()
