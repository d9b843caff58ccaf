"""YOLO-format detection datasets from rendered frames: persons, hands, held products, phones.

Frames come from whole rendered scenarios (every k-th frame of both cameras), so the dataset holds
what the cameras really see: walking, reaching, crouching, occlusions and all. Whole scenarios go
to either train or val, never both, so validation frames are not near-copies of training frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("person", "hand", "product", "phone")
Box = tuple[float, float, float, float] | list[float]


class DatasetWriter:
    def __init__(self, root: Path, every: int = 3) -> None:
        if every < 1:
            raise ValueError(f"--every must be at least 1, got {every}")
        self.root = Path(root)
        self.every = every
        self.counts = {"train": 0, "val": 0}
        for split in self.counts:
            (self.root / "images" / split).mkdir(parents=True, exist_ok=True)
            (self.root / "labels" / split).mkdir(parents=True, exist_ok=True)

    def wants(self, frame_index: int) -> bool:
        return frame_index % self.every == 0

    def add(self, split: str, name: str, image: np.ndarray, labelled: Iterable[tuple[int, Box]],
            jpeg_quality: int) -> None:
        h, w = image.shape[:2]
        lines = []
        for cls, (x1, y1, x2, y2) in labelled:
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        cv2.imwrite(str(self.root / "images" / split / f"{name}.jpg"), image,
                    [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        (self.root / "labels" / split / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
        self.counts[split] += 1

    def finish(self) -> Path:
        names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASSES))
        path = self.root / "data.yaml"
        path.write_text(f"path: {self.root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
        return path
