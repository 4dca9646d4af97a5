"""Pictures of a generator's samples on the fixed evaluation latents, written into the run folder at
every curve evaluation (the grid, the timeline strip, a conditional run's class pages)."""

from __future__ import annotations

import torch

from bench.metrics.latents import EVAL_SEED, eval_latents, generate
from bench.store.runs import RunDir, save_atomic

GRID_IMAGES = 64
SCATTER_POINTS = 2500
TIMELINE_IMAGES = 8  # the first eval latents, one strip per curve evaluation (samples/timeline/)
TIMELINE_POINTS = 500
CLASS_COLUMNS = 8  # samples per class row of a conditional run's class pages (samples/classes/)
CLASSES_PER_PAGE = 30  # rows per page: 120 Stanford Dogs breeds make four pages


class SampleWriter:
    """Writes samples/step-NNNNNN.png: an image grid, or a scatter over the real data for points; and
    samples/timeline/step-NNNNNN.png, a strip of the same few latents at every curve evaluation, which
    the report stacks into a training timeline."""

    def __init__(self, run: RunDir, variant, data, device: torch.device):
        self.run, self.variant, self.data = run, variant, data
        n = GRID_IMAGES if data.spec.kind == "images" else SCATTER_POINTS
        self.z, self.y = eval_latents(variant, n, device, data.spec.num_classes)

    def write(self, G, step: int) -> None:
        self._write(G, step, self.run.samples_dir / f"step-{step:07d}.png", len(self.z))
        if self.y is not None and self.data.spec.kind == "images":
            self.class_pages(G, step)

    def class_pages(self, G, step: int) -> list:
        """samples/classes/step-NNNNNNN-pPP.png: one row per class, its name at the left, the same
        CLASS_COLUMNS latents in every row, so a row that ignores its label or repeats one image shows."""
        k, names = self.data.spec.num_classes, self.data.spec.class_names
        z = self.z[:CLASS_COLUMNS]
        paths = []
        for page, first in enumerate(range(0, k, CLASSES_PER_PAGE), start=1):
            classes = list(range(first, min(first + CLASSES_PER_PAGE, k)))
            zs = z.repeat(len(classes), *[1] * (z.dim() - 1))
            ys = torch.tensor(classes, device=z.device).repeat_interleave(len(z))
            fake = generate(self.variant, G, zs, ys)
            labels = [names[c] if len(names) == k else str(c) for c in classes]
            path = self.run.samples_dir / "classes" / f"step-{step:07d}-p{page:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            picture = class_rows_image(fake, labels, len(z))
            save_atomic(path, lambda tmp: picture.save(tmp, format="png"))
            paths.append(path)
        return paths

    def timeline(self, G, step: int):
        """The strip's path, which TensorBoard shows as the run's sample image at this step."""
        n = TIMELINE_IMAGES if self.data.spec.kind == "images" else TIMELINE_POINTS
        path = self.run.samples_dir / "timeline" / f"step-{step:07d}.png"
        self._write(G, step, path, n, inches=2.5)
        return path

    def _write(self, G, step: int, path, n: int, inches: float = 4) -> None:
        fake = generate(self.variant, G, self.z[:n], None if self.y is None else self.y[:n])
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.data.spec.kind == "images":
            import torchvision.utils as vutils

            grid = vutils.make_grid(fake.clamp(-1, 1), nrow=8, normalize=True, value_range=(-1, 1))
            save_atomic(path, lambda tmp: vutils.save_image(grid, tmp, format="png"))
        else:
            real, _ = self.data.reference(min(n, SCATTER_POINTS), torch.Generator().manual_seed(EVAL_SEED))
            save_atomic(path, lambda tmp: scatter_png(real.numpy(), fake.numpy(), step, tmp, inches))


def class_rows_image(fake: torch.Tensor, labels: list[str], columns: int, label_chars: int = 28):
    """A PIL image: rows of `columns` samples in the training range [-1, 1], each row led by its label."""
    import torchvision.utils as vutils
    from PIL import Image, ImageDraw

    grid = vutils.make_grid(fake.clamp(-1, 1), nrow=columns, normalize=True, value_range=(-1, 1), pad_value=1.0)
    tiles = Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())
    row_height = (tiles.height - 2) // len(labels)
    text = [label.encode("ascii", "replace").decode() for label in labels]  # the bitmap font has no other glyphs
    text = [t if len(t) <= label_chars else t[:label_chars - 2] + ".." for t in text]
    margin = 8 + 6 * max(len(t) for t in text)
    page = Image.new("RGB", (margin + tiles.width, tiles.height), "white")
    page.paste(tiles, (margin, 0))
    draw = ImageDraw.Draw(page)
    for i, t in enumerate(text):
        draw.text((4, 2 + i * row_height + max(row_height // 2 - 6, 0)), t, fill="black")
    return page


def scatter_png(real, fake, step: int, path: str, inches: float = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(inches, inches), dpi=100)
    ax.scatter(real[:, 0], real[:, 1], s=4, c="#bbbbbb", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="#d62728", alpha=0.5, label="generated")
    ax.set_title(f"step {step}")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
