"""YOLO detection with ONNX Runtime for any model exported by ultralytics (v8, 11, 26).

Two output layouts exist: the classic one, (batch, 4 + classes, anchors) with centre-size boxes
and per-class scores that still need NMS, and the end-to-end one of YOLO26 and YOLOv10,
(batch, k, 6) as x1, y1, x2, y2, score, class, already suppressed. Class names and input size
come from the metadata ultralytics writes into every export.

Pre-processing copies ultralytics' letterbox arithmetic exactly (same rounding, same grey 114),
so boxes agree with `YOLO(model.onnx).predict` to well under a pixel; it writes into buffers
allocated once per batch size instead of allocating per frame. `load_yolo` runs the graph with its
box decoding's softmax rewritten into the form ONNX Runtime computes fastest (same outputs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.inference.boxes import nms
from vision.inference.runtime import LoadedModel, RuntimeOptions, load_model
from vision.types import Detections

PAD_VALUE = 114  # ultralytics' letterbox grey
MAX_WH = 7680.0  # class offset for class-aware NMS in one pass: larger than any frame side
MAX_CANDIDATES = 3000  # boxes entering NMS; its work is bounded by this times the boxes kept
MAX_BUFFERS = 8  # input buffers kept, one per batch size and input size in use
_SCALE = np.float32(1 / 255)
_PAD_BLOB = np.float32(PAD_VALUE) * _SCALE  # the border in the input blob, bit for bit what scaling 114 gives


@dataclass(frozen=True)
class DetectorOptions:
    """Thresholds and the mapping from the model's class names to walkout's.

    `class_map` None keeps the model's own names. Otherwise only mapped classes are kept, renamed:
    a COCO export maps {"person": "person", "cell phone": "phone"} and drops the other 78.
    """

    confidence: float = 0.25
    iou: float = 0.7
    max_detections: int = 300
    class_map: Mapping[str, str] | None = None
    # A model with dynamic height and width gets frames of one size at the smallest multiple of its
    # stride that holds them at the model's scale, as ultralytics' predict does (rect): a 640x480 frame
    # goes into a 384x640 model as 384x512, a fifth less work. False: always the full input size.
    rect: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0 or not 0.0 <= self.iou <= 1.0:
            raise ValueError(f"confidence and iou must lie in [0, 1], got {self.confidence} and {self.iou}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1, got {self.max_detections}")


@dataclass(frozen=True)
class Letterbox:
    """Where a frame of size (h, w) lands in the model input (in_h, in_w): scale, then offset (left, top)."""

    scale: float
    new_w: int
    new_h: int
    left: int
    top: int
    in_h: int
    in_w: int

    @classmethod
    def fit(cls, h: int, w: int, in_h: int, in_w: int, stride: int | None = None) -> Letterbox:
        # ultralytics LetterBox(center=True): same rounding, or boxes drift by a pixel. A side never rounds
        # to 0 pixels: a 2 x 3000 strip would otherwise crash cv2.resize. With a stride, its auto=True: the
        # input shrinks to the picture padded up to the next multiple of the stride.
        scale = min(in_h / h, in_w / w)
        new_w, new_h = max(round(w * scale), 1), max(round(h * scale), 1)
        if stride:
            in_w, in_h = new_w + (in_w - new_w) % stride, new_h + (in_h - new_h) % stride
        left, top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
        return cls(scale, new_w, new_h, left, top, in_h, in_w)

    def to_frame(self, xyxy: np.ndarray, h: int, w: int) -> np.ndarray:
        # cv2.resize stretched each axis to its own rounded side, so each axis maps back by its own gain
        # (as ultralytics' scale_boxes does); one shared `scale` drifts by pixels on e.g. a 1000 x 333 frame.
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.left) * (w / self.new_w)
        out[:, [1, 3]] = (out[:, [1, 3]] - self.top) * (h / self.new_h)
        # Clip through views: out[:, [0, 2]] is a copy, and np.clip(..., out=copy) would clip nothing.
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out


@dataclass(eq=False)
class _Buffers:
    canvas: np.ndarray  # (B, H, W, 3) uint8, letterboxed frames
    blob: np.ndarray  # (B, 3, H, W) float32, the model input
    boxes: list[Letterbox | None] = field(default_factory=list)  # what each slot holds; its border is grey in both


class YoloDetector:
    """`detect(image) -> Detections` and `detect_batch(images)`, one ONNX Runtime run per batch."""

    def __init__(self, model: LoadedModel, options: DetectorOptions = DetectorOptions()) -> None:
        self.model = model
        self.options = options
        meta = model.metadata
        spec = model.inputs[0]
        if len(model.inputs) != 1 or len(spec.shape) != 4:
            raise ValueError(f"{model.path}: expected one NCHW image input, got {[i.shape for i in model.inputs]}")
        self.input_name = spec.name
        self.model_names = _parse_names(meta.get("names"), model.path)
        in_h, in_w = spec.shape[2], spec.shape[3]
        fixed_size = isinstance(in_h, int) and isinstance(in_w, int)
        if not fixed_size:
            in_h, in_w = _parse_imgsz(meta.get("imgsz"), model.path)
        self.input_size = (in_h, in_w)
        self.rect_stride = None if fixed_size or not options.rect else _parse_stride(meta.get("stride"))
        self.fixed_batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.end_to_end = _is_end_to_end(model, len(self.model_names))
        self.names, self._lookup = _class_lookup(self.model_names, options.class_map, model.path)
        self._kept = self._lookup >= 0  # per model class: mapped to one of ours
        self._buffers: dict[tuple[int, int, int], _Buffers] = {}  # by batch, height and width

    def sibling(self) -> YoloDetector:
        """A detector on the same loaded model, with input buffers of its own: for another thread (another
        camera), as an ONNX Runtime session runs calls from several threads at once. No second copy of the
        model in memory, and no second session to set up (a quarter second for ours)."""
        return YoloDetector(self.model, self.options)

    @property
    def batches(self) -> bool:
        """Whether frames from several cameras go through in one run (the batch axis is dynamic)."""
        return self.fixed_batch is None

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for chunk, blob, boxes in self.model_inputs(images):
            raw = self.model.run({self.input_name: blob})[0]
            results += [self.postprocess(raw[i], boxes[i], img.shape[:2]) for i, img in enumerate(chunk)]
        return results

    def model_inputs(self, images: Sequence[np.ndarray]
                     ) -> Iterator[tuple[Sequence[np.ndarray], np.ndarray, list[Letterbox]]]:
        """The runs `detect_batch` makes: (frames, input blob, letterboxes), one per model run. A blob
        is the reused buffer: run it before taking the next."""
        if not images:
            return
        step = len(images) if self.batches else self.fixed_batch
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            # Frames of several sizes share the full input, as in ultralytics (each size would want its own).
            stride = self.rect_stride if len({img.shape for img in chunk}) == 1 else None
            blob, boxes = self.preprocess(chunk, batch=step if self.fixed_batch else len(chunk), stride=stride)
            yield chunk, blob, boxes

    def preprocess(self, images: Sequence[np.ndarray], batch: int,
                   stride: int | None = None) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox each BGR frame into the reused canvas and write RGB / 255 into the reused input blob;
        with `stride`, into the smallest input that holds them (frames of one size: see `rect`).

        A slot's grey border is painted once, when its geometry changes; after that only the picture
        is resized and scaled (56% of a square input for a 16:9 frame). The returned blob is that
        buffer: read it before the next call, never write to it.
        """
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"detect: expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        boxes = [Letterbox.fit(*image.shape[:2], *self.input_size, stride) for image in images]
        in_h, in_w = (boxes[0].in_h, boxes[0].in_w) if stride else self.input_size
        buf = self._buffers.get((batch, in_h, in_w))
        if buf is None:
            buf = _Buffers(np.full((batch, in_h, in_w, 3), PAD_VALUE, np.uint8),
                           np.empty((batch, 3, in_h, in_w), np.float32), [None] * batch)
            if len(self._buffers) >= MAX_BUFFERS:  # a source whose frame size keeps changing: bounded memory
                del self._buffers[next(iter(self._buffers))]
            self._buffers[(batch, in_h, in_w)] = buf
        for i, (image, box) in enumerate(zip(images, boxes, strict=True)):
            h, w = image.shape[:2]
            if buf.boxes[i] != box:  # a new geometry in this slot: repaint the border grey, in both buffers
                buf.canvas[i].fill(PAD_VALUE)
                buf.blob[i].fill(_PAD_BLOB)
                buf.boxes[i] = box
            rows, cols = slice(box.top, box.top + box.new_h), slice(box.left, box.left + box.new_w)
            region = buf.canvas[i, rows, cols]
            if (box.new_w, box.new_h) == (w, h):
                region[...] = image
            else:  # straight into the canvas; OpenCV returns `dst` itself when it could write there
                resized = cv2.resize(image, (box.new_w, box.new_h), dst=region, interpolation=cv2.INTER_LINEAR)
                if resized is not region:
                    region[...] = resized
            # Only the picture, not the unchanged border: BGR->RGB, HWC->CHW and 1/255 in one pass.
            np.multiply(region[:, :, ::-1].transpose(2, 0, 1), _SCALE, out=buf.blob[i, :, rows, cols])
        return buf.blob[:batch], boxes

    def postprocess(self, raw: np.ndarray, box: Letterbox, frame_hw: tuple[int, int]) -> Detections:
        """One image's raw output -> Detections in frame pixels, mapped to walkout's classes."""
        # Unmapped classes go before NMS and max_detections: 78 dropped COCO classes must not crowd out a person.
        o = self.options
        if self.end_to_end:
            cls = raw[:, 5].astype(np.int64)
            keep = (raw[:, 4] > o.confidence) & (cls >= 0) & (cls < len(self._kept))
            keep[keep] = self._kept[cls[keep]]
            xyxy, conf, cls = raw[keep, :4], raw[keep, 4], cls[keep]
            order = np.argsort(-conf, kind="stable")[: o.max_detections]
        else:
            xyxy, conf, cls = _decode_anchors(raw, o.confidence, self._kept)
            order = nms(xyxy + (cls[:, None] * MAX_WH), conf, o.iou)[: o.max_detections]
        xyxy, conf, cls = xyxy[order], conf[order], cls[order]
        h, w = frame_hw
        return Detections(box.to_frame(xyxy.astype(np.float32), h, w), conf.astype(np.float32),
                          self._lookup[cls].astype(np.int32), self.names)


def load_yolo(path: Path, runtime: RuntimeOptions | None = None,
              options: DetectorOptions = DetectorOptions()) -> YoloDetector:
    """A detector on the ONNX file `path`, its graph run with `dfl_on_last_axis`."""
    path = Path(path)
    try:
        graph = dfl_on_last_axis(path.read_bytes())
    except Exception:  # missing, or not ONNX at all (protobuf's DecodeError, ...): load_model says which, clearly
        graph = None
    return YoloDetector(load_model(path, runtime or RuntimeOptions(), graph=graph), options)


def dfl_on_last_axis(graph: bytes) -> bytes | None:
    """The graph with ultralytics' box decoding (DFL) rewritten to give the same numbers faster, or None
    when it has no DFL of that shape (YOLO26, other models), an opset before 13 or external weights.

    DFL reads each box side as the expectation of a 16-bin softmax. The export computes it as Reshape
    (b, 4, 16, a), Transpose to (b, 16, 4, a), Softmax over axis 1, then a 1x1 Conv whose weights are
    0..15. ONNX Runtime runs a softmax over any axis but the last through transposes of its own: 11% of
    the fourth-recipe walkout-det's run. Rewritten: Transpose to (b, 4, a, 16), Softmax over the last axis,
    MatMul with 0..15: the same sums, equal to float rounding (bit for bit on that model); the Reshape after it
    reads the same elements in the same order from (b, 4, a, 1) as from (b, 1, 4, a).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(graph)
    if next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) < 13:
        return None  # before opset 13 Softmax(axis=1) flattened the axes after it: another function
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        return None  # weights in files beside the model, which a session opened from bytes cannot find
    nodes = model.graph.node
    made_by = {out: n for n in nodes for out in n.output}
    used_by: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            used_by.setdefault(name, []).append(n)
    weights = {init.name: init for init in model.graph.initializer}
    changed = False
    for softmax in [n for n in nodes if n.op_type == "Softmax"]:
        transpose = made_by.get(softmax.input[0])
        consumers = used_by.get(softmax.output[0], [])
        if transpose is None or transpose.op_type != "Transpose" or len(consumers) != 1 \
                or len(used_by.get(transpose.output[0], [])) != 1:
            continue
        conv = consumers[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in (*transpose.attribute, *softmax.attribute)}
        if conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in weights \
                or list(attrs.get("perm", [])) != [0, 2, 1, 3] or attrs.get("axis", -1) != 1:
            continue
        bins = numpy_helper.to_array(weights[conv.input[1]])
        after = used_by.get(conv.output[0], [])
        if bins.ndim != 4 or bins.shape[0] != 1 or bins.shape[2:] != (1, 1) \
                or not np.array_equal(bins.ravel(), np.arange(bins.shape[1])) \
                or not after or any(n.op_type != "Reshape" for n in after):
            continue
        for a in transpose.attribute:
            if a.name == "perm":
                a.ints[:] = [0, 1, 3, 2]
        for a in softmax.attribute:
            if a.name == "axis":
                a.i = -1
        column = numpy_helper.from_array(bins.reshape(-1, 1), name=f"{conv.name}/bins_column")  # its dtype kept
        model.graph.initializer.append(column)
        if used_by[conv.input[1]] == [conv]:
            model.graph.initializer.remove(weights[conv.input[1]])
        matmul = onnx.helper.make_node("MatMul", [softmax.output[0], column.name], [conv.output[0]],
                                       name=f"{conv.name}/as_matmul")
        at = list(nodes).index(conv)
        nodes.remove(conv)
        nodes.insert(at, matmul)
        changed = True
    return model.SerializeToString() if changed else None


def _decode_anchors(raw: np.ndarray, confidence: float,
                    kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4 + classes, anchors) -> xyxy, best score, best class of the anchors above `confidence` whose best
    class is `kept` (a boolean per class)."""
    scores = raw[4:]
    best = scores.max(axis=0)
    idx = np.flatnonzero(best > confidence)
    cls = scores[:, idx].argmax(axis=0)
    idx, cls = idx[kept[cls]], cls[kept[cls]]
    if len(idx) > MAX_CANDIDATES:
        top = np.argsort(-best[idx], kind="stable")[:MAX_CANDIDATES]
        idx, cls = idx[top], cls[top]
    cx, cy, bw, bh = raw[:4, idx]
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return xyxy, best[idx], cls


def _parse_literal(text: str | None, what: str, path: object) -> object:
    if text is None:
        raise ValueError(f"{path}: the model has no '{what}' metadata; is it an ultralytics export?")
    if len(text) > 100_000:
        raise ValueError(f"{path}: '{what}' metadata is {len(text)} characters long; refusing to parse it")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{path}: '{what}' metadata {text[:80]!r} is not a Python literal") from exc


def _parse_names(text: str | None, path: object) -> tuple[str, ...]:
    names = _parse_literal(text, "names", path)
    # Keys are checked to be ints before sorting: sorted() of {'a': .., 0: ..} raises a bare TypeError.
    if isinstance(names, dict) and names and all(type(k) is int for k in names) and sorted(
            names) == list(range(len(names))) and all(isinstance(v, str) for v in names.values()):
        return tuple(names[i] for i in range(len(names)))
    raise ValueError(f"{path}: 'names' metadata must map 0..n-1 to class names, got {str(names)[:80]}")


def _parse_stride(text: str | None) -> int | None:
    """The export's stride, or None (no rect input) when the metadata has none that makes sense."""
    try:
        stride = _parse_literal(text, "stride", "")
    except ValueError:
        return None
    return stride if type(stride) is int and 1 <= stride <= 1024 else None


def _parse_imgsz(text: str | None, path: object) -> tuple[int, int]:
    size = _parse_literal(text, "imgsz", path)
    if isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(s, int) and 0 < s <= 8192 for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{path}: 'imgsz' metadata must be [height, width], got {str(size)[:80]}")


def _is_end_to_end(model: LoadedModel, n_classes: int) -> bool:
    shape = model.outputs[0].shape
    if model.metadata.get("end2end", "").lower() == "true":
        return True
    if len(shape) != 3:
        raise ValueError(f"{model.path}: unexpected output shape {list(shape)}; expected (batch, 4 + classes, anchors) "
                         f"or (batch, k, 6)")
    # Without the flag, the layouts differ by which axis holds 4 + classes.
    return shape[1] != 4 + n_classes and shape[2] == 6


def _class_lookup(model_names: tuple[str, ...], class_map: Mapping[str, str] | None,
                  path: object) -> tuple[tuple[str, ...], np.ndarray]:
    """Our class vocabulary and an array from model class id to our class id (-1: dropped)."""
    if class_map is None:
        return model_names, np.arange(len(model_names), dtype=np.int64)
    unknown = sorted(set(class_map) - set(model_names))
    if unknown:
        raise ValueError(f"{path}: class_map names {unknown} that the model does not have; "
                         f"it has {', '.join(model_names)}")
    names = tuple(dict.fromkeys(class_map.values()))
    lookup = np.array([names.index(class_map[n]) if n in class_map else -1 for n in model_names], dtype=np.int64)
    return names, lookup
