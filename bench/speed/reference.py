"""The reference loop `bench speed` compares against: the PyTorch DCGAN example's training loop.

This module is the one exception to "only bench/train/loop.py calls backward() and optimizer.step()". It is
a re-implementation, for measurement only, of the loop most users start from, so its habits are kept
on purpose even where the shared loop avoids them: a DataLoader with worker processes feeding CPU
batches that are copied to the device every iteration, a D ending in Sigmoid with nn.BCELoss, D's
loss back-propagated in two halves (real, then fake), G's update reusing the fake batch of D's step,
float32 throughout, and `.item()` on the losses and D outputs every iteration (the example prints them
each iteration; here the line is formatted and kept, not printed). The example's image saving every
100 iterations is left out, which only flatters the reference. Nothing here trains a bench run.
Behaviour follows pytorch/examples dcgan/main.py; the code is ours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def _stages(size: int) -> int:
    return max(size.bit_length() - 3, 1)  # stride-2 stages between 4x4 and size x size (64 px: 4)


def _init(m: nn.Module) -> None:
    """The example's init: conv weights ~ N(0, 0.02), BN weight ~ N(1, 0.02), BN bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def generator(nz: int, size: int, width: int = 64, channels: int = 3) -> nn.Sequential:
    n = _stages(size)
    mult = [2 ** i for i in reversed(range(n))]  # 8, 4, 2, 1 at 64 px
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width * mult[0], 4, 1, 0, bias=False),
                               nn.BatchNorm2d(width * mult[0]), nn.ReLU(True)]
    for a, b in zip(mult, mult[1:]):
        layers += [nn.ConvTranspose2d(width * a, width * b, 4, 2, 1, bias=False), nn.BatchNorm2d(width * b),
                   nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(size: int, width: int = 64, channels: int = 3) -> nn.Sequential:
    n = _stages(size)
    mult = [2 ** i for i in range(n)]  # 1, 2, 4, 8 at 64 px
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for a, b in zip(mult, mult[1:]):
        layers += [nn.Conv2d(width * a, width * b, 4, 2, 1, bias=False), nn.BatchNorm2d(width * b),
                   nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(width * mult[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


class HostImages(Dataset):
    """uint8 images on the host, converted per sample as ToTensor + Normalize(0.5, 0.5) would."""

    def __init__(self, images: torch.Tensor):
        self.images = images.cpu()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i].float().div(255).sub(0.5).div(0.5), 0


@dataclass
class ReferenceResult:
    images_per_s: float
    sec_per_step: float
    peak_bytes: int  # CUDA peak allocation; 0 on CPU
    last_line: str  # the example's per-iteration log line, proof the values were read each iteration


def run(images: torch.Tensor, device: torch.device, batch: int, steps: int, warmup: int,
        workers: int = 2, nz: int = 100, seed: int = 0) -> ReferenceResult:
    """Train the reference loop for warmup + steps iterations; time the last `steps`."""
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True  # as the example sets it
    size = images.shape[-1]
    netG, netD = generator(nz, size).to(device), discriminator(size).to(device)
    netG.apply(_init)
    netD.apply(_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(HostImages(images), batch_size=batch, shuffle=True, num_workers=workers)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    line, done, t0 = "", 0, 0.0
    while done < warmup + steps:
        for real, _ in loader:
            if done == warmup:
                t0 = time.perf_counter()  # the previous iteration's .item() calls synchronised already
            real = real.to(device)
            b = real.size(0)
            netD.zero_grad()
            label = torch.full((b,), 1.0, device=device)
            out = netD(real).view(-1)
            errD_real = criterion(out, label)
            errD_real.backward()
            D_x = out.mean().item()
            noise = torch.randn(b, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            out = netD(fake.detach()).view(-1)
            errD_fake = criterion(out, label)
            errD_fake.backward()
            D_G_z1 = out.mean().item()
            errD = errD_real + errD_fake
            optD.step()

            netG.zero_grad()
            label.fill_(1.0)
            out = netD(fake).view(-1)
            errG = criterion(out, label)
            errG.backward()
            D_G_z2 = out.mean().item()
            optG.step()
            line = (f"[{done}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} D(x): {D_x:.4f} "
                    f"D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}")
            done += 1
            if done == warmup + steps:
                break
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return ReferenceResult(batch * steps / seconds, seconds / steps, peak, line)
