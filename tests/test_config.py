"""Bad grid files fail before anything runs: exit 2, one line naming the key, no run folder."""

from __future__ import annotations

import pytest

from bench.config.schema import check_type, parse_grid, resolve
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
    assert message.startswith("g.yaml: variant 'dcgan' has no key 'lr_dd'; did you mean 'lr_d'? Valid keys: loop: ")
    assert "; dcgan: augment, betas, d_steps, " in message and "real_label" in message


def test_a_bad_value_anywhere_in_the_grid_stops_all(bench_cli, write_grid, tmp_path):
    grid = {**tiny_grid(), "grid": {"lr_g": [1e-4, "fast"]}}
    code, _, err = bench_cli("run", str(write_grid(grid)))
    assert code == 2 and "(grid axis 'lr_g', value 2): 'lr_g' must be a number" in err
    assert run_dirs(tmp_path / "results") == []


def test_a_bad_combination_names_its_run(bench_cli, write_grid, tmp_path):
    grid = {**tiny_grid(), "grid": {"log_every": [10, 20]}}  # ckpt_every 10 is no multiple of 20
    code, _, err = bench_cli("run", str(write_grid(grid)))
    assert code == 2 and "(run 2): 'ckpt_every' (10) must be a multiple of 'log_every' (20)" in err
    assert run_dirs(tmp_path / "results") == []


def test_types_are_checked_against_annotations():
    assert check_type(1, float, "k", "w") == 1.0 and isinstance(check_type(1, float, "k", "w"), float)
    assert check_type([0.5, 0.9], tuple[float, float], "k", "w") == (0.5, 0.9)
    assert check_type([3, 4, 5], tuple[int, ...], "k", "w") == (3, 4, 5)
    assert check_type("1e3", float, "k", "w") == 1000.0  # YAML 1.1 reads an exponent without a dot as text
    for value, annotation in [(True, int), (1, bool), ("fast", float), ([1, 2, 3], tuple[float, float])]:
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


# ------------------------------------------------------------------ hostile input

def alias_bomb(levels: int = 9) -> str:
    """A YAML flow list of `levels` anchors, each nine aliases of the one before: 9^9 items expanded."""
    items = ["&l0 [" + ", ".join(["x"] * 9) + "]"]
    items += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


TINY = "name: h\nbase: {variant: mlp_gan, dataset: ring8, steps: 20, batch_size: 16, log_every: 10, ckpt_every: 10}\n"
AXES = "".join(f"  ax{i}: [{', '.join(map(str, range(10)))}]\n" for i in range(8))
VALID_AXES = "".join(f"  {key}: [{', '.join(str((i + 1) / 20) for i in range(10))}]\n"
                     for key in ("lr_g", "lr_d", "real_label", "fake_label", "flip_p"))
VALID_AXES += "".join(f"  {key}: [{', '.join(str(i + 1) for i in range(10))}]\n" for key in ("z_dim", "d_steps", "g_steps"))

HOSTILE = {  # grid file text -> what the one error line says
    "alias bomb as a value": (TINY.replace("ckpt_every: 10}", f"ckpt_every: 10, lr_g: {alias_bomb()}}}"),
                              "'lr_g' must be a number, got [["),
    "alias bomb as an axis": (TINY + f"grid: {{lr_g: {alias_bomb()}}}\n", "(grid axis 'lr_g', value 1)"),
    "a million seeds": (TINY + "seeds: 1000000\n", "makes 1,000,000 runs (1,000,000 seeds), over the limit of 10,000"),
    "10^12 seeds": (TINY + "seeds: 1000000000000\n", "'seeds' must be a count from 1 to 2^32"),
    "8 unknown axes of 10": (TINY + "grid:\n" + AXES, "(grid axis 'ax0', value 1): variant 'mlp_gan' has no key 'ax0'"),
    "10^8 valid runs": (TINY + "grid:\n" + VALID_AXES, "makes 100,000,000 runs (1 seeds x 10 lr_g x 10 lr_d"),
    "a 300-digit integer": (TINY.replace("steps: 20", "steps: 1" + "0" * 300),
                            "'steps' must be an integer between 1 and 100,000,000, got <integer of 301 digits>"),
    "a 400-digit learning rate": (TINY + "grid: {lr_g: [1" + "0" * 400 + "]}\n", "'lr_g' must be a finite number > 0"),
    "a 5,000-digit integer": (TINY.replace("steps: 20", "steps: 1" + "0" * 5000),
                              "a value cannot be read (Exceeds the limit (4300 digits)"),
    "1,000 nested lists": (TINY + "grid: {lr_g: " + "[" * 1000 + "]" * 1000 + "}\n", "nested more than 32 deep"),
    "1,000 nested mappings": (TINY + "grid: {lr_g: " + "{a: " * 1000 + "1" + "}" * 1000 + "}\n",
                              "nested more than 32 deep"),
    "100,000 open brackets": (TINY + "grid: {lr_g: " + "[" * 100_000 + "\n", "nested more than 32 deep"),
    "name ending in a newline": (TINY.replace("name: h", 'name: "h\\n"'), "'name' must be 1 to 64 letters"),
    "name with a path separator": (TINY.replace("name: h", "name: a/b"), "'name' must be 1 to 64 letters"),
    "seed below 0": (TINY + "seeds: [-1]\n", "'seeds' must be a count"),
    "seed past 2^32": (TINY + "seeds: [4294967296]\n", "'seeds' must be a count"),
    "description not text": (TINY + "description: [1, 2]\n", "'description' must be text"),
    "a mapping key as an axis name": (TINY + "grid: {? [1, 2] : [1]}\n", "found unhashable key"),
    "an integer axis name": (TINY + "grid: {7: [1]}\n", "grid axis 7 must be a key name"),
    "unsortable top-level keys": (TINY + "1: x\nzz: y\n", "unknown top-level key 1"),
    "a seed in a bundle": (TINY + "grid: {x: [{seed: 3}]}\n", "sets 'seed'"),
    "a bad bundle name": (TINY + "grid: {x: {'a b': {lr_g: 1}}}\n", "names a value 'a b'"),
    "a NUL in a string key": (TINY + 'grid: {device: ["cpu\\0"]}\n', "'device' must be one line"),
}


def _one_line_error(code: int, err: str, expected: str, seconds: float) -> None:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[:500]
    # The unknown-key line lists every key the run accepts, grouped: its length is set by the schema,
    # not by the input (the bad key is clipped to 32 characters), so it gets a longer bound.
    limit = 800 if "Valid keys: loop: " in lines[0] else 300
    assert len(lines[0]) <= limit and "Traceback" not in err and expected in lines[0], lines[0]
    assert seconds < 5, seconds


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_grid_files_end_in_one_short_line(case, bench_cli, write_grid, tmp_path):
    import time

    text, expected = HOSTILE[case]
    path = write_grid(text)
    start = time.perf_counter()
    code, _, err = bench_cli("run", path.name, "--dry-run")
    _one_line_error(code, err, expected, time.perf_counter() - start)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing created


def test_a_grid_file_that_is_not_utf8(bench_cli, tmp_path):
    (tmp_path / "g.yaml").write_bytes(TINY.encode() + b"description: caf\xe9\n")
    code, _, err = bench_cli("run", "g.yaml", "--dry-run")
    _one_line_error(code, err, "g.yaml: not UTF-8 text (byte 0xe9 at offset", 0)


def test_a_huge_grid_file(bench_cli, tmp_path):
    (tmp_path / "g.yaml").write_text(TINY + "description: " + "x" * 300_000 + "\n")
    code, _, err = bench_cli("run", "g.yaml", "--dry-run")
    _one_line_error(code, err, "too large for a grid file", 0)


BAD_SETTINGS = {  # --set KEY=VALUE that --dry-run must refuse -> the message
    "g_steps=-1": "'g_steps' must be an integer between 1 and 100, got -1",
    "d_steps=0": "'d_steps' must be an integer between 1 and 100, got 0",
    "d_steps=100000000000": "'d_steps' must be an integer between 1 and 100",
    "seed=-1": "'seed' must be an integer between 0 and 4,294,967,295",
    "seed=4294967296": "'seed' must be an integer between 0 and 4,294,967,295",
    "z_dim=-3": "'z_dim' must be an integer between 1 and 4,096",
    "batch_size=10000000000000": "'batch_size' must be an integer between 1 and 65,536",
    "log_every=1000000000000": "'log_every' must be an integer between 1 and 100,000",
    "real_label=5.0": "'real_label' must be a probability between 0 and 1, got 5.0",
    "lr_d=-5": "'lr_d' must be a finite number > 0, got -5",
    "lr_g=.nan": "'lr_g' must be a finite number > 0, got nan",
    "lr_g=nan": "'lr_g' must be a finite number > 0, got 'nan'",
    "lr_g=inf": "'lr_g' must be a finite number > 0, got 'inf'",
    "betas=[5.0, 9.0]": "'betas' must be a number >= 0 and < 1, got 5.0",
    "eval_n=10000000": "'eval_n' must be an integer between 0 and 100,000",
    "hidden_g=[0]": "'hidden_g' must be an integer between 1 and 8,192, got 0",
    "flip_p=1.5": "'flip_p' must be a probability between 0 and 1",
    "device=cuda:99999": "'device' must be auto, cpu, cuda or cuda:N",
    "lr_g=" + "[" * 2000: "--set 'lr_g=[[[[",
}


@pytest.mark.parametrize("setting", sorted(BAD_SETTINGS))
def test_dry_run_refuses_every_value_training_would_reject(setting, bench_cli, write_grid):
    code, _, err = bench_cli("run", str(write_grid(TINY)), "--dry-run", "--set", setting)
    _one_line_error(code, err, BAD_SETTINGS[setting], 0)


def test_dataset_options_have_ranges_too(bench_cli, write_grid):
    grid = str(write_grid(TINY))
    code, _, err = bench_cli("run", grid, "--dry-run", "--set", "dataset=stacked_digits", "--set", "image_size=8",
                             "--set", "data.count=100000000000")
    _one_line_error(code, err, "'data.count' must be an integer between 1 and 1,000,000", 0)


@pytest.mark.parametrize("setting, value", [("lr_g=1e3", 1000.0), ("lr_g=1E-4", 1e-4), ("lr_d=2.5e-4", 2.5e-4)])
def test_exponents_without_a_dot_are_numbers(setting, value, bench_cli, write_grid):
    code, out, err = bench_cli("run", str(write_grid(TINY)), "--dry-run", "--set", setting)
    assert code == 0, err
    key = setting.split("=")[0]
    grid = parse_grid({"base": {"variant": "mlp_gan", "dataset": "ring8", key: setting.split("=")[1]}}, "g.yaml")
    assert resolve(grid.base).options.__getattribute__(key) == value


def test_every_numeric_key_declares_a_range():
    """So --dry-run can refuse what training would choke on; parametrized from the registry."""
    from bench import registry
    from bench.config.checks import field_range
    from bench.config.schema import LoopConfig, config_fields

    classes = [LoopConfig] + [registry.variants.get(n).Config for n in registry.variants.names()]
    classes += [registry.datasets.get(n).Options for n in registry.datasets.names()]
    missing = []
    for cls in classes:
        for name, annotation in config_fields(cls).items():
            if any(t in (int, float) for t in _numbers(annotation)) and field_range(cls, name) is None:
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, missing


def _numbers(annotation) -> list:
    import typing

    args = typing.get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _numbers(a)]


def test_short_visits_only_what_it_shows():
    import time

    import yaml

    from bench.config.checks import short

    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    start = time.perf_counter()
    shown = [short(yaml.safe_load(alias_bomb())), short(deep), short(10**5000), short("a\n" * 10**6)]
    assert time.perf_counter() - start < 0.1
    assert all(len(s) <= 60 and "\n" not in s for s in shown), shown
    assert shown[2] == "<integer of 5,001 digits>" and short([1, "a", None]) == "[1, 'a', None]"
