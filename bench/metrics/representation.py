"""Pictures of what the linear probe measures (docs/protocols.md §8): D's first-layer filters, G's
last-layer filters, and the real images that most activate a few of D's deepest conv channels, whole
and cropped to the receptive field of the unit that fired.

Nets are searched generically: the first or last `nn.Conv2d`/`nn.ConvTranspose2d` in module order,
so no variant is named (for the top activations, the last one with more than one output channel).
A tile is one slice of the weight along dim 0 (a D filter; for G's last
transposed conv, what one input channel paints), colour when dim 1 has 1 or 3 channels and the mean
over dim 1 otherwise, each tile min-max scaled on its own because filters differ in magnitude.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
TILE_SCALE = 4  # a 4x4 filter drawn 16x16 pixels, nearest-neighbour
PADDING = 1
CHANNELS_SHOWN = 4
TOP = 8


def conv_layer(net: nn.Module, last: bool = False) -> Optional[nn.Module]:
    layers = [m for m in net.modules() if isinstance(m, CONVS)]
    return (layers[-1] if last else layers[0]) if layers else None


def feature_layer(D: nn.Module) -> Optional[nn.Module]:
    """D's deepest conv layer with more than one output channel: a DCGAN-style D ends in a conv to a
    single logit, whose one channel is the real/fake score, not a feature."""
    layers = [m for m in D.modules() if isinstance(m, CONVS) and m.out_channels > 1]
    return layers[-1] if layers else None


def filter_tiles(weight: torch.Tensor, scale: int = TILE_SCALE) -> torch.Tensor:
    """weight (A, B, kh, kw) -> A tiles in [0, 1], (A, 1 or 3, kh*scale, kw*scale)."""
    w = weight.detach().float().cpu()
    if w.shape[1] not in (1, 3):
        w = w.mean(1, keepdim=True)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    return w.repeat_interleave(scale, 2).repeat_interleave(scale, 3)


def grid_columns(n: int) -> int:
    return math.ceil(math.sqrt(n))


def filter_grid(weight: torch.Tensor, scale: int = TILE_SCALE) -> torch.Tensor:
    """One tile per filter, ceil(sqrt(A)) per row, PADDING pixels between: (3, H, W) in [0, 1]."""
    import torchvision.utils as vutils

    tiles = filter_tiles(weight, scale)
    return vutils.make_grid(tiles, nrow=grid_columns(len(tiles)), padding=PADDING, pad_value=1.0)


def receptive_field(D: nn.Module) -> tuple[int, int, float]:
    """(size, jump, start) of a unit of D's feature layer, in input pixels: the unit at map index i
    sees pixels centred on start + i * jump, `size` wide. Conv layers are taken as one chain in module
    order up to the feature layer (a DCGAN-style D is); pooling layers are not accounted for."""
    layer, size, jump, start = feature_layer(D), 1, 1, 0.0
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            k = m.dilation[0] * (m.kernel_size[0] - 1) + 1
            start += ((k - 1) / 2 - m.padding[0]) * jump
            size += (k - 1) * jump
            jump *= m.stride[0]
        if m is layer:
            break
    return size, jump, start


@torch.no_grad()
def channel_maps(D: nn.Module, images: torch.Tensor, device: torch.device,
                 batch: int = 256) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """For uint8 images: (N, C) spatial max of each channel of D's deepest feature conv layer, (N, C)
    the flat map index where it is reached, and the map's (height, width)."""
    layer = feature_layer(D)
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    shape: list[tuple[int, int]] = []

    def hook(_m, _i, y):
        if y.dim() == 4:
            flat = y.flatten(2)
            out.append((flat.amax(2).cpu(), flat.argmax(2).cpu()))
            shape[:] = [tuple(y.shape[2:])]

    handle = layer.register_forward_hook(hook)
    was = D.training
    D.eval()
    try:
        for s in range(0, len(images), batch):
            D(images[s:s + batch].to(device).float() / 127.5 - 1)
    finally:
        handle.remove()
        D.train(was)
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out]), shape[0]


def channel_responses(D: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    """(N, C) spatial max of each channel of D's deepest feature conv layer for uint8 images."""
    return channel_maps(D, images, device, batch)[0]


def field_crops(images: torch.Tensor, where: torch.Tensor, map_width: int, D: nn.Module) -> torch.Tensor:
    """The receptive-field crop around each image's unit `where` (flat map index): (N, C, size, size)
    uint8, white where the field reaches past the image border."""
    size, jump, start = receptive_field(D)
    pad = size
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=255)
    crops = []
    for img, w in zip(padded, where.tolist()):
        row, col = divmod(int(w), map_width)
        top = int(round(start + row * jump - (size - 1) / 2)) + pad
        left = int(round(start + col * jump - (size - 1) / 2)) + pad
        crops.append(img[:, top:top + size, left:left + size])
    return torch.stack(crops)


def top_activating(responses: torch.Tensor, channels: list[int], top: int = TOP) -> torch.Tensor:
    """(len(channels), top) image indices, the strongest response first."""
    return torch.stack([responses[:, c].argsort(descending=True, stable=True)[:top] for c in channels])


def busiest_channels(responses: torch.Tensor, k: int = CHANNELS_SHOWN) -> list[int]:
    """The k channels whose response varies most over the real images: a flat channel shows nothing."""
    return responses.std(0).argsort(descending=True, stable=True)[:k].tolist()


def write_pictures(folder: Path, G: nn.Module, D: nn.Module, real: torch.Tensor, device: torch.device) -> list[Path]:
    """filters-d.png, filters-g.png, top-activations.png and top-crops.png (one row per channel) under folder."""
    import torchvision.utils as vutils

    from bench.store.runs import save_atomic

    written = []

    def save(name: str, image: torch.Tensor) -> None:
        path = folder / name
        save_atomic(path, lambda tmp: vutils.save_image(image, tmp, format="png"))
        written.append(path)

    for name, net, last in (("filters-d.png", D, False), ("filters-g.png", G, True)):
        layer = conv_layer(net, last)
        if layer is not None:
            save(name, filter_grid(layer.weight))
    if feature_layer(D) is not None and len(real):
        responses, where, (_, map_width) = channel_maps(D, real, device)
        channels = busiest_channels(responses)
        idx = top_activating(responses, channels, min(TOP, len(real)))
        shown = real[idx.flatten()].float() / 255
        shown = shown.expand(-1, 3, -1, -1) if shown.shape[1] == 1 else shown
        save("top-activations.png", vutils.make_grid(shown, nrow=idx.shape[1], padding=2, pad_value=1.0))
        units = torch.stack([where[idx[i], c] for i, c in enumerate(channels)]).flatten()
        crops = field_crops(real[idx.flatten()], units, map_width, D).float() / 255
        crops = crops.expand(-1, 3, -1, -1) if crops.shape[1] == 1 else crops
        save("top-crops.png", vutils.make_grid(crops, nrow=idx.shape[1], padding=2, pad_value=1.0))
    return written
