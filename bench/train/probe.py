"""The workload `--jobs auto` times (bench/launch/autojobs.py): a small convolutional G/D step, the shape of
the shipped grids' runs (16 px, batch 64, Adam), run in a spawned worker with a given thread count."""

from __future__ import annotations

import time

PROBE_S = 2.0  # timed seconds, after a warm-up step


def probe(threads: int, start, results) -> None:
    """Put this worker's steps per second on `results`, timed from when every worker passed `start`."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = nn.Sequential(nn.ConvTranspose2d(100, 64, 4, 1, 0), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                      nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                      nn.BatchNorm2d(64), nn.LeakyReLU(0.2), nn.Conv2d(64, 1, 4, 1, 0), nn.Flatten())
    opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=2e-4)

    def step():
        fake = G(torch.randn(64, 100, 1, 1))
        loss = D(fake).mean() - D(torch.randn(64, 1, 16, 16)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, oneDNN kernel choice
    start.wait()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < PROBE_S:
        step()
        n += 1
    results.put(n / (time.perf_counter() - t0))
