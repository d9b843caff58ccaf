"""CenterFace face detection, the first half of blurring faces before a picture leaves a camera node.

CenterFace (Star-Clouds/CenterFace, MIT) predicts, on a grid four times coarser than its input,
a face-centre heatmap and for each cell the log of the face's size and the centre's sub-cell
offset. `walkout models fetch` prepares the published file for any input size whose sides are
multiples of 32; `FaceDetector` resizes each frame to such a size, decodes the grid into boxes
in frame pixels and removes duplicates. Missing a face costs more than blurring a bit of shelf,
so the defaults lean towards recall.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.inference.boxes import nms
from vision.inference.manifest import MODELS_DIR, ModelManifest
from vision.inference.runtime import LoadedModel, RuntimeOptions, load_model
from vision.types import Detections

NAMES = ("face",)
STRIDE = 4  # input pixels per heatmap cell
ALIGN = 32  # the network downsamples five times: input sides must divide by 2**5


@dataclass(frozen=True)
class FaceOptions:
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    # Longest side the network sees; larger frames are shrunk, which bounds the cost on a 4K camera
    # at the price of faces under ~10 px after shrinking. None: run at full resolution.
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.max_side is not None and (self.max_side < ALIGN or self.max_side % ALIGN):
            raise ValueError(f"max_side must be a multiple of {ALIGN} (at least {ALIGN}) or None, got {self.max_side}")


class FaceDetector:
    """`detect(image_bgr) -> Detections` of class "face" with a CenterFace model prepared for any size."""

    def __init__(self, model: LoadedModel, options: FaceOptions = FaceOptions()) -> None:
        if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or len(model.outputs) < 3:
            raise ValueError(f"{model.path.name}: expected CenterFace (one NCHW input; heatmap, scale and offset "
                             f"outputs), got {model.describe()} with {len(model.outputs)} outputs")
        if any(isinstance(d, int) for d in model.inputs[0].shape[2:]):
            raise ValueError(f"{model.path.name}: input {list(model.inputs[0].shape)} has a fixed size; use the file "
                             f"that `walkout models fetch` prepares (models/cache/centerface.onnx)")
        self.model = model
        self.options = options
        self._input = model.inputs[0].name

    @classmethod
    def from_manifest(cls, options: FaceOptions = FaceOptions(), runtime: RuntimeOptions | None = None,
                      manifest: ModelManifest | None = None, root: Path = MODELS_DIR) -> FaceDetector:
        """The manifest's `centerface`, checked against its sha256 before it is loaded."""
        manifest = manifest or ModelManifest.load()
        return cls(load_model(manifest.path_of("centerface", root), runtime or RuntimeOptions()), options)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
                or image_bgr.shape[2] != 3:
            got = f"{getattr(image_bgr, 'dtype', type(image_bgr).__name__)} {getattr(image_bgr, 'shape', '')}"
            raise ValueError(f"FaceDetector.detect: expected a uint8 (H, W, 3) BGR image, got {got}")
        height, width = image_bgr.shape[:2]
        blob, scale = to_blob(image_bgr, self.options.max_side)
        heatmap, log_size, offset = self.model.run({self._input: blob})[:3]
        boxes, scores = decode(heatmap[0, 0], log_size[0], offset[0], self.options.score_threshold)
        keep = nms(boxes, scores, self.options.nms_iou)
        boxes = boxes[keep] / scale
        np.clip(boxes, 0, [width, height, width, height], out=boxes)
        # A face cut by the frame edge stays (it is still a face to blur); one entirely outside goes.
        visible = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        n = int(visible.sum())
        return Detections(boxes[visible].astype(np.float32), scores[keep][visible].astype(np.float32),
                          np.zeros(n, np.int32), NAMES)


def to_blob(image_bgr: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The network input (1, 3, H', W') RGB float32 with H', W' multiples of 32, and the frame -> input
    scale of x1, y1, x2, y2.

    One scale for both axes keeps faces their true shape; the sides are rounded up to a multiple of
    32 by padding the bottom and right, which adds no content and moves no pixel.
    """
    height, width = image_bgr.shape[:2]
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image_bgr if (new_w, new_h) == (width, height) else cv2.resize(
        image_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    pad_h, pad_w = -new_h % ALIGN, -new_w % ALIGN
    blob = np.zeros((1, 3, new_h + pad_h, new_w + pad_w), np.float32)
    # CenterFace was trained on RGB in 0..255 with no mean or scale.
    blob[0, :, :new_h, :new_w] = resized[:, :, ::-1].transpose(2, 0, 1)
    # Rounding to whole pixels makes the two axes' scales differ slightly: undo each exactly.
    sx, sy = new_w / width, new_h / height
    return blob, np.array([sx, sy, sx, sy], np.float32)


def decode(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray,
           threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) xyxy in network-input pixels and scores (N,) from one image's CenterFace outputs.

    heatmap (h, w) is the centre probability; log_size (2, h, w) and offset (2, h, w) are (y, x)
    channel pairs: a face of height 4*exp(log_size[0]) centred at (row + offset[0] + 0.5) * 4.
    Only cells that are the maximum of their 3x3 neighbourhood count, as in CenterNet: one face
    lights up several cells, and their boxes would otherwise all reach NMS.
    """
    rows, cols = np.nonzero((heatmap > threshold) & (heatmap >= _max3x3(heatmap)))
    scores = heatmap[rows, cols]
    size_h = np.exp(log_size[0, rows, cols]) * STRIDE
    size_w = np.exp(log_size[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    boxes = np.stack([cx - size_w / 2, cy - size_h / 2, cx + size_w / 2, cy + size_h / 2], axis=1)
    return boxes.astype(np.float32).reshape(-1, 4), scores.astype(np.float32)


def _max3x3(a: np.ndarray) -> np.ndarray:
    padded = np.pad(a, 1, mode="constant", constant_values=-np.inf)
    h, w = a.shape
    return np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
