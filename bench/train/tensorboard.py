"""TensorBoard event files beside a run's metrics.jsonl (`log_tensorboard: true`, the optional
`tensorboard` extra). The loop hands over the records it has just written at a flush (window means
of the losses, the curve metrics and the sample strip when the flush evaluates), so the events
never add a host copy: metrics.jsonl stays the record, the events are a view of it for people who watch runs there."""

from __future__ import annotations

import math
from pathlib import Path

FOLDER = "tensorboard"  # <run>/tensorboard/events.out.tfevents.*


class EventLog:
    def __init__(self, run_path: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_path / FOLDER))

    def write(self, records: list[dict], strip: Path | None = None, step: int = 0) -> None:
        """train records as train/<name>, curve records as curve/<label> (the label carries the protocol),
        and the timeline strip just written (samples/timeline/) as the image `samples` at its step."""
        if strip is not None:
            import numpy as np
            from PIL import Image

            with Image.open(strip) as picture:
                self.writer.add_image("samples", np.asarray(picture.convert("RGB")), step, dataformats="HWC")
        for r in records:
            value = r.get("value")
            if r.get("kind") not in ("train", "curve") or not isinstance(value, float) or not math.isfinite(value):
                continue
            tag = f"train/{r['name']}" if r["kind"] == "train" else f"curve/{r.get('label') or r['name']}"
            self.writer.add_scalar(tag, value, int(r["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def replay(run) -> bool:
    """Events for a run that finished without them, from its records alone (metrics.jsonl and the
    timeline strips): what the loop would have written, with no training. False when it has events."""
    folder = run.path / FOLDER
    if folder.is_dir() and any(folder.iterdir()):
        return False
    log = EventLog(run.path)
    try:
        strips = {int(p.stem.split("-")[-1]): p for p in sorted((run.samples_dir / "timeline").glob("step-*.png"))}
        records = run.read_metrics()
        for step in sorted({int(r["step"]) for r in records} | set(strips)):
            log.write([r for r in records if int(r["step"]) == step], strips.get(step), step)
    finally:
        log.close()
    return True
