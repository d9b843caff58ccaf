"""The central types that flow between pipeline stages.

`Detections` follows the parallel-arrays design of roboflow/supervision: one row per box, filter
with a boolean mask or an index array, shapes checked on construction with errors that say what
shape was expected. Adapters from model outputs live in `vision.inference`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One raw camera image (BGR uint8, H x W x 3) with its camera and its time on the store clock.

    A raw frame never leaves the camera node: nothing outside the node's pipeline takes one.
    """

    camera: str
    index: int
    t: float
    image: np.ndarray

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            got = f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}"
            raise ValueError(f"Frame {self.camera}#{self.index}: image must be uint8 (H, W, 3) BGR, got {got}")


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes in frame pixels: xyxy (N, 4) float32, confidence (N,) float32, class_id (N,) int32.

    `names` is the class vocabulary that `class_id` indexes (for our detector: person, hand,
    product, phone). Empty detections are `Detections.empty(names)`.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # n comes from xyxy only when it is an array: len(None) or len(0-d) would be a TypeError naming no field.
        n = len(self.xyxy) if isinstance(self.xyxy, np.ndarray) and self.xyxy.ndim else None
        _check(self.xyxy, (n, 4), np.float32, "xyxy")
        _check(self.confidence, (n,), np.float32, "confidence")
        _check(self.class_id, (n,), np.int32, "class_id")
        if n and self.names and (self.class_id.min() < 0 or self.class_id.max() >= len(self.names)):
            raise ValueError(f"Detections.class_id: ids must index names {self.names}, got {np.unique(self.class_id)}")

    @classmethod
    def empty(cls, names: tuple[str, ...] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), names)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        """Rows selected by a boolean mask, an index array, a slice or one int (a Detections of one row)."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):  # a slice would quietly give an empty result instead
                raise IndexError(f"Detections index {index} is out of range for {len(self)} rows")
            index = slice(int(index), int(index) + 1 or None)
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.names)

    def of(self, name: str) -> Detections:
        """Only the boxes of class `name` (none when the vocabulary lacks it)."""
        if name not in self.names:
            return self[np.zeros(len(self), bool)]
        return self[self.class_id == self.names.index(name)]

    @property
    def class_name(self) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.class_id] if self.names else np.zeros(0, object)



@dataclass(frozen=True, eq=False)
class Tracks:
    """Confirmed tracks after one tracker update, one row per track, in frame pixels.

    `track_id` (N,) int64 is stable for the life of a track and never reused within a run;
    `owner` (N,) int64 is, for a hand, the `track_id` of the person it belongs to (-1 when unknown,
    and always -1 for other classes). `origin` (N, 4) float32, when the tracker gives it, is the box
    of the detection each track started from: a track is output only once confirmed, by which time
    someone walking in at the frame's edge may have left the door's zone. Other fields are as in
    `Detections`.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    track_id: np.ndarray
    owner: np.ndarray
    names: tuple[str, ...] = field(default=())
    origin: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy) if isinstance(self.xyxy, np.ndarray) and self.xyxy.ndim else None
        for name, shape, dtype in (("xyxy", (n, 4), np.float32), ("confidence", (n,), np.float32),
                                   ("class_id", (n,), np.int32), ("track_id", (n,), np.int64),
                                   ("owner", (n,), np.int64)):
            _check(getattr(self, name), shape, dtype, name, "Tracks")
        if self.origin is not None:
            _check(self.origin, (n, 4), np.float32, "origin", "Tracks")

    @classmethod
    def empty(cls, names: tuple[str, ...] = ()) -> Tracks:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), names)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice) -> Tracks:
        """Rows selected by a boolean mask, an index array or a slice."""
        return Tracks(self.xyxy[index], self.confidence[index], self.class_id[index], self.track_id[index],
                      self.owner[index], self.names, None if self.origin is None else self.origin[index])

    def of(self, name: str) -> Tracks:
        """Only the tracks of class `name` (none when the vocabulary lacks it)."""
        if name not in self.names:
            return self[np.zeros(len(self), bool)]
        return self[self.class_id == self.names.index(name)]


def _check(array: object, shape: tuple[int | None, ...], dtype: type, name: str, owner: str = "Detections") -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
        got = f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}"
        want = str(shape).replace("None", "N")
        raise ValueError(f"{owner}.{name}: expected {np.dtype(dtype).name} array of shape {want}, got {got}")
