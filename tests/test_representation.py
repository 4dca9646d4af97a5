"""The probe's pictures: the filter grid has one tile per filter of the first conv layer (its size
follows from the count, the kernel and the padding), and the top-activating real images of a planted
D whose deepest channel reads brightness are the brightest real images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench import registry
from bench.metrics import representation as rep

K = 4


def nets():
    G = nn.Sequential(nn.Linear(8, 16), nn.Unflatten(1, (4, 2, 2)),
                      nn.Sequential(nn.ConvTranspose2d(4, 6, 4, 2, 1), nn.ReLU()), nn.ConvTranspose2d(6, 3, K, 2, 1))
    D = nn.Sequential(nn.Sequential(nn.Conv2d(3, 10, K, 2, 1), nn.LeakyReLU(0.2)), nn.Conv2d(10, 5, K, 2, 1))
    return G, D


def test_filter_grid_has_one_tile_per_filter_of_the_first_conv():
    G, D = nets()
    first = rep.conv_layer(D)
    assert first is D[0][0] and rep.conv_layer(G, last=True) is G[3]  # found by module order, nested or not
    for weight, tiles in ((first.weight, 10), (G[3].weight, 6)):  # a transposed conv: one tile per input channel
        grid = rep.filter_grid(weight)
        side = K * rep.TILE_SCALE
        cols = math.ceil(math.sqrt(tiles))
        rows = math.ceil(tiles / cols)
        assert grid.shape == (3, rows * (side + rep.PADDING) + rep.PADDING, cols * (side + rep.PADDING) + rep.PADDING)
        assert rep.filter_tiles(weight).shape == (tiles, 3, side, side)
    assert rep.feature_layer(nn.Sequential(D, nn.Conv2d(5, 1, 1))) is D[1]  # a conv to one logit is no feature
    # A filter with more than 3 input channels is drawn as its mean, grey.
    assert rep.filter_tiles(D[1].weight).shape == (5, 1, K * rep.TILE_SCALE, K * rep.TILE_SCALE)


def brightness_D() -> nn.Module:
    """Deepest conv: channel 0 is a local mean brightness, channels 1-3 are flat (all-zero weights)."""
    D = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 1))
    with torch.no_grad():
        for p in D.parameters():
            p.zero_()
        D[0].weight[0] = 1 / 27
        D[2].weight[0, 0] = 1.0
    return D


def real_images(n=30, size=8, seed=0):
    rng = np.random.default_rng(seed)
    levels = rng.permutation(np.arange(n) * 8)  # distinct brightness, 8 grey levels apart
    noise = rng.integers(-2, 3, (n, 3, size, size))
    images = torch.from_numpy(np.clip(levels[:, None, None, None] + noise, 0, 255).astype(np.uint8))
    return images, torch.from_numpy(levels)


def test_top_activating_images_of_a_brightness_channel_are_the_brightest(tmp_path):
    images, levels = real_images()
    D = brightness_D()
    responses = rep.channel_responses(D, images, torch.device("cpu"), batch=7)
    assert responses.shape == (30, 4)
    assert rep.busiest_channels(responses, 1) == [0]  # the flat channels show nothing, so they come last
    top = rep.top_activating(responses, [0], 8)
    assert top[0].tolist() == levels.argsort(descending=True)[:8].tolist()

    G, _ = nets()
    written = rep.write_pictures(tmp_path / "representation", G, D, images, torch.device("cpu"))
    assert [p.name for p in written] == ["filters-d.png", "filters-g.png", "top-activations.png", "top-crops.png"]
    with Image.open(written[2]) as im:
        grid = np.asarray(im.convert("L")).astype(int)
    assert grid.shape == (4 * (8 + 2) + 2, 8 * (8 + 2) + 2)  # 4 channels x the top 8, padding 2
    first_row = [grid[2:10, 2 + 10 * j:10 + 10 * j].mean() for j in range(8)]
    assert first_row == sorted(first_row, reverse=True) and first_row[0] > 220  # brightest first
    with Image.open(written[0]) as im:
        assert im.size == (2 * (3 * rep.TILE_SCALE + 1) + 1,) * 2  # 4 filters of 3x3: a 2 x 2 grid


def test_receptive_field_of_a_dcgan_chain_and_the_crop_around_the_unit_that_fired():
    """Two 4x4 stride-2 pad-1 convs: a unit of the second sees 10 pixels, one map step is 4 pixels, the
    first unit is centred at pixel 1.5. A planted bright 10 x 10 patch under the unit at map (2, 1) of a
    16 px image is where a brightness channel fires, and its crop is that patch."""
    D = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 4, 2, 1), nn.Conv2d(4, 1, 4))
    assert rep.receptive_field(D) == (10, 4, 1.5)
    with torch.no_grad():
        for p in D.parameters():
            p.zero_()
        D[0].weight[0] = 1 / 16
        D[2].weight[0, 0] = 1 / 16
    image = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    top, left = round(1.5 + 2 * 4 - 4.5), round(1.5 + 1 * 4 - 4.5)  # the field of unit (2, 1): rows 5-14, cols 1-10
    image[0, 0, top:top + 10, left:left + 10] = 200
    responses, where, shape = rep.channel_maps(D, image, torch.device("cpu"))
    assert shape == (4, 4) and int(where[0, 0]) == 2 * 4 + 1
    crop = rep.field_crops(image, where[:, 0], shape[1], D)
    assert crop.shape == (1, 1, 10, 10) and (crop == 200).all()
    # The corner unit's field is rows and columns -3 to 6: white past the border, then the image (its
    # rows 5-6 and columns 1-6 are the patch's corner).
    corner = rep.field_crops(image, torch.tensor([0]), shape[1], D)[0, 0]
    assert (corner[:3] == 255).all() and (corner[:, :3] == 255).all()
    assert (corner[3:8, 3:] == 0).all() and (corner[8:, 4:] == 200).all() and (corner[8:, 3] == 0).all()


def test_report_shows_the_pictures_of_runs_evaluated_with_the_probe(tmp_path):
    from bench.report.build import Options, write_report
    from bench.report.synthetic import curve_record, png_bytes, write_run

    grid = tmp_path / "cells"
    rec = curve_record(1000, "probe_acc", 0.8, "probe-acc/D/test", True, kind="final")
    with_pictures = write_run(grid, {"variant": "dcgan", "dataset": "digits", "seed": 0}, "done", [rec], 1000)
    write_run(grid, {"variant": "dcgan", "dataset": "digits", "seed": 1}, "done", [rec], 1000)
    (with_pictures / "representation").mkdir()
    for name in ("filters-d.png", "top-activations.png"):  # filters-g.png absent: shown only if present
        (with_pictures / "representation" / name).write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
    (grid / "grid.yaml").write_text("name: cells\ngrid:\n  seed: [0, 1]\n")
    out = tmp_path / "rep"
    write_report(grid, out, Options(formats=("html",), embed_samples=False))
    html = (out / "index.html").read_text()
    assert "representation/filters-d.png" in html and "representation/top-activations.png" in html
    assert "filters-g.png" not in html and "the 8 real images that most activate" in html


@pytest.mark.slow
def test_bench_eval_with_the_probe_writes_the_pictures_into_the_run_folder(tmp_path, bench_cache, capsys):
    from bench.cli import main
    from bench.train.loop import train
    from bench.store.runs import RunDir
    from test_evaluation import tiny

    config = tiny("digits", eval_every=-1)
    run = RunDir(tmp_path / "results", "g", config.run_id)
    run.write_config(config.flat())
    run.set_status("queued")
    assert train(run, config) == "done"
    assert main(["eval", str(run.path), "--metrics", "probe", "--checkpoint", "final", "--n", "200"]) == 0, \
        capsys.readouterr().err
    folder = run.path / "representation"
    assert sorted(p.name for p in folder.glob("*.png")) == ["filters-d.png", "filters-g.png", "top-activations.png",
                                                            "top-crops.png"]
    with Image.open(folder / "top-activations.png") as im:
        assert im.size == (8 * (16 + 2) + 2, rep.CHANNELS_SHOWN * (16 + 2) + 2)  # 4 channels x 8 images of 16 px
    D = registry.variants.get(config.variant)(config.options, registry.datasets.get(config.dataset).load(
        config.data, config.loop.image_size, torch.device("cpu")).spec).build()[1]
    first = rep.conv_layer(D)
    n, side = first.out_channels, first.kernel_size[0] * rep.TILE_SCALE
    cols = math.ceil(math.sqrt(n))
    with Image.open(folder / "filters-d.png") as im:
        assert im.size == (cols * (side + rep.PADDING) + rep.PADDING, math.ceil(n / cols) * (side + rep.PADDING) + rep.PADDING)
