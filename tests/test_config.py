"""Bad grid files fail before anything runs: exit 2, one line naming the key, no run folder."""

from __future__ import annotations

import pytest

from bench.config import check_type, parse_grid, resolve
from bench.errors import BenchError
from conftest import run_dirs, tiny_grid

BAD_GRIDS = {
    "unknown key": (tiny_grid(lr_dd=0.1), "no key 'lr_dd'"),
    "wrong type": (tiny_grid(steps="many"), "'steps' must be an integer"),
    "unknown variant": (tiny_grid(variant="stylegan9"), "unknown variant 'stylegan9'"),
    "unknown dataset": (tiny_grid(dataset="imagenet21k"), "unknown dataset 'imagenet21k'"),
    "unknown data key": (tiny_grid(**{"data.flipp": True}), "no key 'data.flipp'"),
    "bad grid axis": ({**tiny_grid(), "grid": {"lr_g": 0.1}}, "grid axis 'lr_g' must be a non-empty list"),
    "unknown top-level key": ({**tiny_grid(), "sweep": {}}, "unknown top-level key 'sweep'"),
    "bad grid name": ({**tiny_grid(), "name": "../escape"}, "'name' must be"),
    "bad seeds": ({**tiny_grid(), "seeds": -1}, "'seeds' must be"),
    "unknown scope": (tiny_grid(**{"gan9.lr_g": 0.1}), "unknown variant 'gan9'"),
    "tuple length": (tiny_grid(betas=[0.5]), "'betas' must be a list of 2 values"),
    "bad ckpt multiple": (tiny_grid(ckpt_every=15), "'ckpt_every' (15) must be a multiple"),
    "bad image size": ({**tiny_grid(dataset="digits", image_size=24)}, "'image_size' must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRIDS))
def test_bad_grid_exits_2_with_one_line(case, bench_cli, write_grid, tmp_path):
    content, expected = BAD_GRIDS[case]
    code, out, err = bench_cli("run", str(write_grid(content)))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]
    assert "Traceback" not in err
    assert run_dirs(tmp_path / "results") == []


def test_malformed_yaml(bench_cli, write_grid, tmp_path):
    code, _, err = bench_cli("run", str(write_grid("name: x\nbase: {variant: dcgan\n")))
    assert code == 2 and "malformed YAML at line" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_missing_grid_file(bench_cli, tmp_path):
    code, _, err = bench_cli("run", "nope.yaml")
    assert code == 2 and "grid file nope.yaml not found" in err


def test_bad_set_value(bench_cli, write_grid):
    code, _, err = bench_cli("run", str(write_grid(tiny_grid())), "--set", "lr_g")
    assert code == 2 and "expected key=value" in err


def test_unknown_key_lists_valid_keys():
    with pytest.raises(BenchError) as info:
        resolve({"variant": "dcgan", "dataset": "digits", "lr_dd": 1.0}, where="g.yaml")
    message = str(info.value)
    assert message.startswith("g.yaml: variant 'dcgan' has no key 'lr_dd'; valid keys:")
    assert "lr_d" in message and "real_label" in message


def test_a_bad_run_anywhere_in_the_grid_stops_all(bench_cli, write_grid, tmp_path):
    grid = {**tiny_grid(), "grid": {"lr_g": [1e-4, "fast"]}}
    code, _, err = bench_cli("run", str(write_grid(grid)))
    assert code == 2 and "(run 2)" in err and "'lr_g' must be a number" in err
    assert run_dirs(tmp_path / "results") == []


def test_types_are_checked_against_annotations():
    assert check_type(1, float, "k", "w") == 1.0 and isinstance(check_type(1, float, "k", "w"), float)
    assert check_type([0.5, 0.9], tuple[float, float], "k", "w") == (0.5, 0.9)
    assert check_type([3, 4, 5], tuple[int, ...], "k", "w") == (3, 4, 5)
    for value, annotation in [(True, int), (1, bool), ("1", float), ([1, 2, 3], tuple[float, float])]:
        with pytest.raises(BenchError):
            check_type(value, annotation, "k", "w")


def test_scoped_keys_apply_to_their_variant_only():
    base = {"dataset": "digits", "dcgan.width": 16, "real_label": 0.9}
    dcgan = resolve({**base, "variant": "dcgan"})
    mlp = resolve({**base, "variant": "mlp_gan"})
    assert dcgan.options.width == 16 and dcgan.options.real_label == 0.9
    assert not hasattr(mlp.options, "width") and mlp.options.real_label == 0.9


def test_nested_sections_flatten():
    grid = parse_grid({"base": {"variant": "dcgan", "dataset": "digits", "data": {"flip": True},
                                "dcgan": {"width": 8}}}, "g.yaml")
    assert grid.base == {"variant": "dcgan", "dataset": "digits", "data.flip": True, "dcgan.width": 8}
