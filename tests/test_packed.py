"""Many seeds in one process (bench/train/packed.py): a packed member trains as the single run of its seed,
writes an ordinary run folder, and resumes as a pack or alone."""

from __future__ import annotations

import json

import pytest
import torch

from bench.train import loop
from bench.config.schema import resolve
from bench.errors import BenchError
from bench.store.runs import RunDir
from bench.study.sampling import load_generator
from conftest import run_dirs

SEEDS = (3, 4, 5)


def configs(**keys):
    base = {"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "steps": 20,
            "batch_size": 8, "log_every": 5, "ckpt_every": 10, "eval_every": -1, "device": "cpu", **keys}
    return [resolve({**base, "seed": s}) for s in SEEDS]


def folders(root, cfgs):
    runs = [RunDir(root, "p", c.run_id) for c in cfgs]
    for run, c in zip(runs, cfgs):
        run.write_config(c.flat())
    return runs


def losses(run: RunDir) -> list[tuple[int, str, float]]:
    return [(r["step"], r["name"], r["value"]) for r in run.read_metrics() if r["name"] in ("loss_d", "loss_g")]


def weights(run: RunDir) -> dict:
    return torch.load(run.checkpoint_file, weights_only=True)


def assert_close_weights(a: dict, b: dict, atol: float) -> None:
    assert a["step"] == b["step"]
    for net in ("G", "D"):
        for key, value in a[net].items():
            torch.testing.assert_close(b[net][key], value, atol=atol, rtol=1e-4, msg=f"{net}.{key}")


@pytest.mark.parametrize("keys,mode", [({}, "vmap"),
                                       ({"real_range": [0.7, 1.2], "fake_range": [0.0, 0.3], "flip_p": 0.1}, "loop")])
def test_each_member_reproduces_the_single_run_of_its_seed(tmp_path, keys, mode):
    cfgs = configs(**keys)
    packed = folders(tmp_path / "packed", cfgs)
    assert loop.train_runs(packed, cfgs) == ["done"] * len(SEEDS)
    for run, c in zip(packed, cfgs):
        single = folders(tmp_path / f"single{c.loop.seed}", [c])[0]
        assert loop.train(single, c) == "done"
        pack = run.status()["fast_paths"]["pack"]
        assert pack["mode"] == mode and pack["size"] == len(SEEDS)
        a, b = losses(single), losses(run)
        assert [x[:2] for x in a] == [x[:2] for x in b] and len(a) == 8
        # vmap runs the convolutions grouped, which sums in another order; loop mode is the same math.
        assert [x[2] for x in b] == pytest.approx([x[2] for x in a], rel=1e-4, abs=1e-5)
        assert_close_weights(weights(single), weights(run), atol=1e-5)
    # Members are independent: different seeds give different nets.
    first = [next(iter(weights(run)["G"].values())) for run in packed]
    assert not torch.equal(first[0], first[1])


@pytest.mark.slow
def test_interrupted_pack_resumes_as_a_pack_or_alone(tmp_path):
    cfgs = configs()
    straight = folders(tmp_path / "straight", cfgs)
    loop.train_runs(straight, cfgs)

    def stop_at_10(done, total):
        if done == 10:
            raise KeyboardInterrupt

    for name in ("as_pack", "alone"):
        runs = folders(tmp_path / name, cfgs)
        with pytest.raises(KeyboardInterrupt):
            loop.train_runs(runs, cfgs, stop_at_10)
        assert all(weights(r)["step"] == 10 and r.status()["step"] == 10 for r in runs)
        if name == "as_pack":
            assert loop.train_runs(runs, cfgs) == ["done"] * len(SEEDS)
            for a, b in zip(straight, runs):
                assert losses(a) == losses(b)  # a resumed pack is the uninterrupted pack, bit for bit
                assert_close_weights(weights(a), weights(b), atol=0)
        else:
            for a, b, c in zip(straight, runs, cfgs):
                assert loop.train(b, c) == "done"  # the folder is an ordinary run folder
                assert [x[:2] for x in losses(a)] == [x[:2] for x in losses(b)]
                assert_close_weights(weights(a), weights(b), atol=1e-4)
                variant, G, spec = load_generator(b, torch.device("cpu"))[:3]  # what bench sample reads
                assert G(torch.zeros(2, cfgs[0].options.z_dim)).shape == (2, *spec.shape)


def test_pack_refuses_runs_that_differ_in_more_than_seed(tmp_path):
    a, b = configs()[0], configs(lr_g=1e-3)[1]
    with pytest.raises(BenchError, match="differ only in seed"):
        loop.train_runs(folders(tmp_path, [a, b]), [a, b])


def test_bench_run_pack_groups_seeds_and_writes_ordinary_folders(bench_cli, write_grid, tmp_path):
    grid = {"name": "packed", "seeds": 3,
            "base": {"dataset": "ring8", "steps": 20, "batch_size": 16, "log_every": 10, "ckpt_every": 10,
                     "eval_every": -1},
            "grid": {"variant": ["mlp_gan", "wgan"]}}
    code, _, err = bench_cli("run", str(write_grid(grid)), "--pack", "2")
    assert code == 0 and "6 done" in err, err
    runs = run_dirs(tmp_path / "results")
    assert len(runs) == 6
    sizes = []
    for run in runs:
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "done" and status["step"] == 20
        sizes.append(status["fast_paths"].get("pack", {}).get("size", 1))
    assert sorted(sizes) == [1, 1, 2, 2, 2, 2]  # per variant: seeds 0 and 1 packed, seed 2 alone
    code, _, err = bench_cli("run", str(write_grid(grid)), "--pack", "2")
    assert code == 0 and "0 to train" in err


def test_solo_and_pack_are_the_members_the_loop_is_typed_against():
    from bench.train import packed
    from bench import registry
    from bench.datasets.core import DeviceData

    c = configs()[0]
    data = registry.datasets.get(c.dataset).load(c.data, c.loop.image_size, torch.device("cpu"))
    variant = registry.variants.get(c.variant)(c.options, data.spec)
    solo = packed.members(variant, data, [3], torch.device("cpu"))
    pack = packed.members(variant, data, [3, 4], torch.device("cpu"))
    assert isinstance(solo, packed.Solo) and isinstance(pack, packed.Pack)
    assert solo.model is variant and isinstance(solo.source, DeviceData)  # one run: no stand-ins
    assert isinstance(pack.model, packed.PackedVariant) and isinstance(pack.source, packed.PackedData)
    # What the loop calls, by what it returns: batches and latents with a member axis for a pack, and
    # optimizers over exactly the group's parameters.
    for group, lead in ((solo, ()), (pack, (2,))):
        x, _ = group.source.sample(4)
        z = group.model.sample_z(4, torch.device("cpu"))
        assert x.shape == (*lead, 4, *data.spec.shape) and z.shape == (*lead, 4, variant.config.z_dim)
        opt_g, opt_d = group.model.optimizers(group.G, group.D)
        for opt, net in ((opt_g, group.G), (opt_d, group.D)):
            assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(p) for p in net.parameters()]
    assert not torch.equal(x[0], x[1]) and not torch.equal(z[0], z[1])  # each member draws from its own seed
