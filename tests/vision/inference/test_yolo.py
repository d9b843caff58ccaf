"""YOLO detection on ONNX Runtime: boxes land on the right pixels of the right frame, in walkout's classes.

The models here are tiny real ONNX graphs built in the test: they ignore the picture and answer a
known raw tensor per image (plus, where a test needs it, the image's mean brightness times a gate
tensor, so that each image of a batch can be told apart). Everything downstream of the raw tensor
is the production path: letterbox, one ONNX Runtime run per batch, decode, class-aware NMS, class
mapping, and the mapping back to frame pixels.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from vision.inference.boxes import box_iou, nms
from vision.inference.runtime import LoadedModel, RuntimeOptions, load_model
from vision.inference.yolo import DetectorOptions, Letterbox, YoloDetector, dfl_on_last_axis, load_yolo

COCO = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush")
OURS = ("person", "hand", "product", "phone")
IMGSZ = (320, 320)
RUNTIME = RuntimeOptions(providers=("cpu",), intra_op_threads=1)


# --- factories ---------------------------------------------------------------------------------

def yolo_onnx(path: Path, base: np.ndarray, *, gate: np.ndarray | None = None, names: tuple[str, ...] = OURS,
              batch: int | str = "batch", hw: tuple[int | str, int | str] = IMGSZ,
              meta: Mapping[str, str | None] = {}) -> Path:
    """A tiny ultralytics-like export: images [batch, 3, H, W] -> output0 [batch, *base.shape].

    Each image's output is `base + mean(image) * gate`. The metadata is what ultralytics writes
    (names as str of a dict, imgsz as str of a list); `meta` overrides it, None removes a key.
    """
    gate = np.zeros_like(base) if gate is None else gate
    inits = [numpy_helper.from_array(base[None].astype(np.float32), "base"),
             numpy_helper.from_array(gate[None].astype(np.float32), "gate"),
             numpy_helper.from_array(np.array([-1] + [1] * base.ndim, np.int64), "bshape")]
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["mean", "bshape"], ["mean3"]),
             helper.make_node("Mul", ["mean3", "gate"], ["gated"]),
             helper.make_node("Add", ["base", "gated"], ["output0"])]
    graph = helper.make_graph(
        nodes, "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, *base.shape])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"author": "Ultralytics", "task": "detect", "stride": "32", "imgsz": str(list(IMGSZ)),
             "names": str(dict(enumerate(names)))} | dict(meta)
    helper.set_model_props(model, {k: v for k, v in props.items() if v is not None})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def classic(*anchors: tuple[tuple[float, float, float, float], int, float], nc: int = len(OURS),
            spare: int = 2) -> np.ndarray:
    """The classic raw output (4 + nc, anchors) from (input xyxy, class id, score) anchors, plus empty ones."""
    out = np.zeros((4 + nc, len(anchors) + spare), np.float32)
    for a, ((x1, y1, x2, y2), cls, score) in enumerate(anchors):
        out[:4, a] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        out[4 + cls, a] = score
    return out


def end2end(*rows: tuple[tuple[float, float, float, float], int, float], k: int = 10) -> np.ndarray:
    """The end-to-end raw output (k, 6): x1, y1, x2, y2, score, class; unused rows are zeros."""
    out = np.zeros((k, 6), np.float32)
    for r, ((x1, y1, x2, y2), cls, score) in enumerate(rows):
        out[r] = (x1, y1, x2, y2, score, cls)
    return out


def detector(tmp_path: Path, base: np.ndarray, options: DetectorOptions | None = None, **model) -> YoloDetector:
    """A YoloDetector on a tiny model answering `base` per image; `model` goes to yolo_onnx."""
    path = yolo_onnx(tmp_path / "yolo.onnx", base, **model)
    return YoloDetector(load_model(path, RUNTIME), options or DetectorOptions())


def frame(h: int = 320, w: int = 320, value: int = 0) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def count_runs(model: LoadedModel) -> list[tuple[int, ...]]:
    """Wrap `model.run` so that each ONNX Runtime run records its input shape."""
    runs, inner = [], model.run

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        runs.append(next(iter(feeds.values())).shape)
        return inner(feeds)

    model.run = run
    return runs


def found(dets) -> list[tuple[str, float]]:
    return [(name, round(float(c), 3)) for name, c in zip(dets.class_name, dets.confidence, strict=True)]


# --- decoding and mapping back to the frame ----------------------------------------------------

@pytest.mark.parametrize(("hw", "input_xyxy", "frame_xyxy"), [
    # 1280 x 720 into 320: scale 1/4, 320 x 180 placed 70 rows down
    ((720, 1280), (25, 120, 125, 220), (100, 200, 500, 600)),
    # portrait: 180 x 320 placed 70 columns in
    ((1280, 720), (95, 25, 195, 125), (100, 100, 500, 500)),
    ((320, 320), (10, 20, 30, 40), (10, 20, 30, 40)),
    # 1000 x 333: 333 * 0.32 = 106.56 rows round to 107, 106 rows of grey above. Each axis maps back by
    # its own rounded gain (107 / 333), not by 0.32, which would put y2 1.3 px too low.
    ((333, 1000), (32, 106 + 10.7, 64, 106 + 100), (100, 10.7 * 333 / 107, 200, 100 * 333 / 107)),
    # a 2 x 3000 strip: its 0.21 resized rows must round up to 1, not to 0 (cv2.resize would crash)
    ((2, 3000), (32, 159, 64, 160), (300, 0, 600, 2)),
    # boxes reaching into the grey border are clipped to the frame
    ((720, 1280), (-10, 60, 330, 260), (0, 0, 1280, 720)),
])
def test_classic_layout_decodes_to_frame_pixels(tmp_path, hw, input_xyxy, frame_xyxy):
    det = detector(tmp_path, classic((input_xyxy, 2, 0.8)))
    dets = det.detect(frame(*hw))
    assert found(dets) == [("product", 0.8)]
    np.testing.assert_allclose(dets.xyxy[0], frame_xyxy, atol=0.5)


@pytest.mark.parametrize(("anchors", "options", "kept"), [
    # same class, IoU 0.82: the weaker one is suppressed
    ([((100, 100, 200, 200), 0, 0.9), ((110, 100, 210, 200), 0, 0.8)], DetectorOptions(), [("person", 0.9)]),
    # same boxes, different classes: NMS is per class, both stay (a hand over a product is the whole point)
    ([((100, 100, 200, 200), 0, 0.9), ((110, 100, 210, 200), 2, 0.8)], DetectorOptions(),
     [("person", 0.9), ("product", 0.8)]),
    # same class, IoU 0.33: both stay at iou 0.7, the weaker goes at iou 0.3
    ([((100, 100, 200, 200), 1, 0.9), ((150, 100, 250, 200), 1, 0.8)], DetectorOptions(),
     [("hand", 0.9), ("hand", 0.8)]),
    ([((100, 100, 200, 200), 1, 0.9), ((150, 100, 250, 200), 1, 0.8)], DetectorOptions(iou=0.3), [("hand", 0.9)]),
    # a suppressed box suppresses nothing: A > B > C, B overlaps both, A and C do not overlap
    ([((0, 0, 100, 100), 0, 0.9), ((40, 0, 140, 100), 0, 0.8), ((80, 0, 180, 100), 0, 0.7)],
     DetectorOptions(iou=0.4), [("person", 0.9), ("person", 0.7)]),
    # the confidence threshold is strict, as in ultralytics
    ([((0, 0, 10, 10), 0, 0.9), ((20, 0, 30, 10), 0, 0.3), ((40, 0, 50, 10), 0, 0.25), ((60, 0, 70, 10), 0, 0.1)],
     DetectorOptions(), [("person", 0.9), ("person", 0.3)]),
    ([((0, 0, 10, 10), 0, 0.9), ((20, 0, 30, 10), 0, 0.3)], DetectorOptions(confidence=0.5), [("person", 0.9)]),
    # max_detections keeps the best, best first
    ([((i * 20, 0, i * 20 + 10, 10), 3, s) for i, s in enumerate((0.5, 0.9, 0.6, 0.8, 0.7))],
     DetectorOptions(max_detections=3), [("phone", 0.9), ("phone", 0.8), ("phone", 0.7)]),
])
def test_class_aware_nms_threshold_and_max_detections(tmp_path, anchors, options, kept):
    det = detector(tmp_path, classic(*anchors), options)
    assert found(det.detect(frame())) == kept


def test_an_anchor_counts_once_with_its_best_class(tmp_path):
    base = classic(((10, 10, 50, 50), 0, 0.4))
    base[4 + 2, 0] = 0.6
    assert found(detector(tmp_path, base).detect(frame())) == [("product", 0.6)]


def test_a_classic_model_with_as_many_anchors_as_channels_is_not_taken_for_end_to_end(tmp_path):
    # (batch, 6, 6) with two classes: 4 + 2 channels says classic
    base = classic(((10, 10, 50, 50), 1, 0.9), nc=2, spare=5)
    det = detector(tmp_path, base, names=("person", "hand"))
    assert not det.end_to_end
    assert found(det.detect(frame())) == [("hand", 0.9)]


@pytest.mark.parametrize("flag", ["True", None])  # the metadata flag, or the (batch, k, 6) shape alone
def test_end_to_end_layout(tmp_path, flag):
    rows = end2end(((25, 120, 125, 220), 0, 0.9),
                   ((25, 121, 125, 221), 0, 0.85),  # already suppressed by the model: no NMS on top
                   ((200, 100, 250, 150), 3, 0.6),
                   ((0, 0, 5, 5), 2, 0.2))  # under the threshold
    det = detector(tmp_path, rows, meta={"end2end": flag})
    assert det.end_to_end
    dets = det.detect(frame(720, 1280))
    assert found(dets) == [("person", 0.9), ("person", 0.85), ("phone", 0.6)]
    np.testing.assert_allclose(dets.xyxy[0], (100, 200, 500, 600), atol=0.5)
    np.testing.assert_allclose(dets.xyxy[2], (800, 120, 1000, 320), atol=0.5)


def test_end_to_end_max_detections_and_out_of_range_classes(tmp_path):
    rows = end2end(((0, 0, 10, 10), 1, 0.5), ((0, 0, 10, 10), 7, 0.99), ((0, 0, 10, 10), -1, 0.98),
                   ((0, 0, 10, 10), 2, 0.7), ((0, 0, 10, 10), 3, 0.6))
    det = detector(tmp_path, rows, DetectorOptions(max_detections=2), meta={"end2end": "True"})
    # class ids the model has no name for are dropped, and do not take a max_detections place
    assert found(det.detect(frame())) == [("product", 0.7), ("phone", 0.6)]


# --- class mapping -----------------------------------------------------------------------------

COCO_MAP = {"person": "person", "cell phone": "phone"}
COCO_ANCHORS = (((10, 10, 60, 200), COCO.index("person"), 0.9), ((100, 10, 130, 40), COCO.index("cell phone"), 0.8),
                ((150, 10, 250, 200), COCO.index("chair"), 0.85), ((260, 10, 280, 60), COCO.index("bottle"), 0.7))


def test_coco_export_keeps_person_and_phone_renamed_and_drops_the_rest(tmp_path):
    det = detector(tmp_path, classic(*COCO_ANCHORS, nc=80), DetectorOptions(class_map=COCO_MAP), names=COCO)
    assert det.model_names == COCO
    assert det.names == ("person", "phone")
    dets = det.detect(frame())
    assert found(dets) == [("person", 0.9), ("phone", 0.8)]
    np.testing.assert_allclose(dets.xyxy, [(10, 10, 60, 200), (100, 10, 130, 40)], atol=0.5)


def test_without_a_class_map_the_model_names_are_kept(tmp_path):
    det = detector(tmp_path, classic(*COCO_ANCHORS, nc=80), names=COCO)
    assert det.names == COCO
    assert found(det.detect(frame())) == [("person", 0.9), ("chair", 0.85), ("cell phone", 0.8), ("bottle", 0.7)]


@pytest.mark.parametrize("end_to_end", [False, True])
def test_dropped_classes_do_not_take_max_detections_places(tmp_path, end_to_end):
    # A shelf of 300 bottles must not hide the person taking one: classes are mapped before the cut.
    boxes = [((i * 12, 0, i * 12 + 10, 10), COCO.index("bottle"), 0.95) for i in range(5)]
    person = ((0, 100, 50, 300), COCO.index("person"), 0.6)
    base = end2end(*boxes, person) if end_to_end else classic(*boxes, person, nc=80)
    options = DetectorOptions(class_map=COCO_MAP, max_detections=2)
    det = detector(tmp_path, base, options, names=COCO, meta={"end2end": str(end_to_end)})
    assert found(det.detect(frame())) == [("person", 0.6)]


def test_several_model_classes_can_map_to_one_of_ours(tmp_path):
    anchors = (((0, 0, 10, 10), COCO.index("bottle"), 0.9), ((20, 0, 30, 10), COCO.index("cup"), 0.8),
               ((40, 0, 50, 10), COCO.index("person"), 0.7))
    options = DetectorOptions(class_map={"bottle": "product", "cup": "product", "person": "person"})
    det = detector(tmp_path, classic(*anchors, nc=80), options, names=COCO)
    assert det.names == ("product", "person")  # in order of first appearance in the map
    assert found(det.detect(frame())) == [("product", 0.9), ("product", 0.8), ("person", 0.7)]


def test_an_unknown_name_in_the_class_map_is_a_clear_error(tmp_path):
    path = yolo_onnx(tmp_path / "coco.onnx", classic(nc=80), names=COCO)
    with pytest.raises(ValueError) as err:
        YoloDetector(load_model(path, RUNTIME), DetectorOptions(class_map={"persn": "person", "cell phone": "phone"}))
    text = str(err.value)
    assert str(path) in text and "class_map names ['persn'] that the model does not have" in text
    assert "cell phone" in text  # the names it does have, to pick from


# --- batching ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("batch", "frames", "runs"), [
    ("batch", 4, [(4, 3, 320, 320)]),  # dynamic batch axis: the four cameras in one run
    (1, 4, [(1, 3, 320, 320)] * 4),  # a fixed batch of 1: one run per frame
    (2, 3, [(2, 3, 320, 320)] * 2),  # a fixed batch of 2: chunks, the last one half empty
    (4, 1, [(4, 3, 320, 320)]),
])
def test_batching_follows_the_batch_axis_and_each_frame_gets_its_own_result(tmp_path, batch, frames, runs):
    gate = classic(((100, 100, 200, 200), 0, 0.9))  # score = 0.9 * mean brightness: white frames only
    det = detector(tmp_path, np.zeros_like(gate), gate=gate, batch=batch)
    assert det.batches == (batch == "batch")
    seen = count_runs(det.model)
    images = [frame(value=255 if i % 2 == 0 else 0) for i in range(frames)]
    results = det.detect_batch(images)
    assert seen == runs
    assert [len(d) for d in results] == [1 if i % 2 == 0 else 0 for i in range(frames)]
    assert det.detect_batch([]) == []
    assert len(seen) == len(runs)  # no frames, no run


def test_mixed_frame_sizes_in_one_batch_each_map_back_through_their_own_letterbox(tmp_path):
    # The model answers the same input-centre box for every image: each lands on its own frame's centre.
    det = detector(tmp_path, classic(((128, 128, 192, 192), 0, 0.9)))
    seen = count_runs(det.model)
    sizes = [(720, 1280), (480, 640), (320, 320), (1280, 720), (333, 1000)]
    results = det.detect_batch([frame(h, w) for h, w in sizes])
    assert len(seen) == 1
    expected = [(512, 232, 768, 488), (256, 176, 384, 304), (128, 128, 192, 192), (232, 512, 488, 768),
                (400, (128 - 106) * 333 / 107, 600, (192 - 106) * 333 / 107)]  # 107 rows placed 106 down
    for dets, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(dets.xyxy, [want], atol=0.5)


@pytest.mark.parametrize(("sizes", "rect", "stride", "runs", "frame_xyxy"), [
    # 640 x 480 at scale 0.8 is 512 x 384: already a multiple of 32, no grey at all
    ([(480, 640)], True, "32", [(1, 3, 384, 512)], (0, 0, 640, 480)),
    # 1280 x 720 at scale 0.5 is 640 x 360: padded to 384 rows, 12 above
    ([(720, 1280)], True, "32", [(1, 3, 384, 640)], (0, -24, 1024, 744)),
    ([(480, 640)], False, "32", [(1, 3, 384, 640)], (-80, 0, 560, 480)),  # the full input: 64 grey columns left
    ([(480, 640)], True, None, [(1, 3, 384, 640)], (-80, 0, 560, 480)),  # no stride in the metadata: full input
    ([(480, 640), (720, 1280)], True, "32", [(2, 3, 384, 640)], (-80, 0, 560, 480)),  # two sizes share the full input
])
def test_rect_input_for_a_dynamic_model(tmp_path, sizes, rect, stride, runs, frame_xyxy):
    # The model answers the box (0, 0, 512, 384) in input pixels whatever the input's size.
    det = detector(tmp_path, classic(((0, 0, 512, 384), 0, 0.9)), DetectorOptions(rect=rect),
                   hw=("height", "width"), meta={"imgsz": "[384, 640]", "stride": stride})
    seen = count_runs(det.model)
    first = det.detect_batch([frame(h, w) for h, w in sizes])[0]
    assert seen == runs
    h, w = sizes[0]
    clipped = np.clip(frame_xyxy, 0, [w, h, w, h])
    np.testing.assert_allclose(first.xyxy, [clipped], atol=0.5)


def test_reused_buffers_repaint_the_border_when_a_slot_changes_size(tmp_path):
    det = detector(tmp_path, classic())
    det.preprocess([frame(value=255)], batch=1)  # fills the whole canvas white
    blob, (box,) = det.preprocess([frame(720, 1280, value=0)], batch=1)
    assert (box.top, box.new_h) == (70, 180)
    np.testing.assert_allclose(blob[0, :, :70], 114 / 255, atol=1e-6)  # grey again, not the old white
    np.testing.assert_allclose(blob[0, :, 250:], 114 / 255, atol=1e-6)
    assert blob[0, :, 70:250].max() == 0


def test_preprocess_writes_rgb_scaled_to_one(tmp_path):
    det = detector(tmp_path, classic())
    blue = frame()
    blue[..., 0] = 255  # BGR
    blob, _ = det.preprocess([blue], batch=1)
    assert blob.shape == (1, 3, 320, 320) and blob.dtype == np.float32
    assert [float(blob[0, c].mean()) for c in range(3)] == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(("bad", "got"), [
    (np.zeros((240, 320), np.uint8), "uint8 (240, 320)"),  # grey
    (np.zeros((240, 320, 3), np.float32), "float32 (240, 320, 3)"),  # already normalised
    (np.zeros((240, 320, 4), np.uint8), "uint8 (240, 320, 4)"),  # BGRA
])
def test_bad_input_images_are_a_clear_error(tmp_path, bad, got):
    det = detector(tmp_path, classic())
    with pytest.raises(ValueError, match=r"detect: expected a BGR uint8 image \(H, W, 3\)") as err:
        det.detect_batch([frame(), bad])
    assert got in str(err.value)


# --- metadata ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("meta", "message"), [
    ({"names": None}, "the model has no 'names' metadata; is it an ultralytics export?"),
    ({"names": "person, phone"}, "'names' metadata 'person, phone' is not a Python literal"),
    ({"names": "{0: 'person'"}, "is not a Python literal"),
    ({"names": "__import__('os')"}, "is not a Python literal"),  # literal_eval, never eval
    ({"names": "['person', 'phone']"}, "'names' metadata must map 0..n-1 to class names"),
    ({"names": "{0: 'person', 2: 'phone'}"}, "must map 0..n-1"),
    ({"names": "{0: 'person', 1: 7}"}, "must map 0..n-1"),
    ({"names": "{'person': 0, 1: 'phone'}"}, "must map 0..n-1"),  # was a bare TypeError from sorted()
    ({"names": "{}"}, "must map 0..n-1"),  # a model with no classes is no detector
    ({"names": "{" + "0: 'a', " * 20_000 + "}"}, "characters long; refusing to parse it"),
])
def test_missing_or_garbage_names_metadata_names_the_model_file(tmp_path, meta, message):
    path = yolo_onnx(tmp_path / "odd.onnx", classic(), meta=meta)
    model = load_model(path, RUNTIME)
    with pytest.raises(ValueError) as err:
        YoloDetector(model)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(("meta", "message"), [
    ({"imgsz": None}, "the model has no 'imgsz' metadata"),
    ({"imgsz": "[320]"}, "'imgsz' metadata must be [height, width], got [320]"),
    ({"imgsz": "[0, 320]"}, "must be [height, width]"),
    ({"imgsz": "['320', '320']"}, "must be [height, width]"),
])
def test_a_dynamic_size_model_needs_imgsz_metadata(tmp_path, meta, message):
    path = yolo_onnx(tmp_path / "dyn.onnx", classic(), hw=("height", "width"), meta=meta)
    with pytest.raises(ValueError) as err:
        YoloDetector(load_model(path, RUNTIME))
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(("hw", "imgsz", "size"), [
    (("height", "width"), "[256, 320]", (256, 320)),  # dynamic export: the size it was exported at
    ((256, 320), None, (256, 320)),  # static export: the input shape says it, metadata not needed
    ((256, 320), "[640, 640]", (256, 320)),  # and wins over the metadata, since the session enforces it
])
def test_input_size_from_the_input_shape_or_imgsz(tmp_path, hw, imgsz, size):
    det = detector(tmp_path, classic(((0, 0, 320, 256), 0, 0.9)), hw=hw, meta={"imgsz": imgsz})
    assert det.input_size == size
    dets = det.detect(frame(512, 640))  # scale 1/2 both ways: the whole input is the whole frame
    np.testing.assert_allclose(dets.xyxy, [(0, 0, 640, 512)], atol=0.5)


def test_an_output_that_is_neither_layout_is_refused(tmp_path):
    path = yolo_onnx(tmp_path / "cls.onnx", np.zeros((4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"unexpected output shape \['batch', 4, 8, 8\]"):
        YoloDetector(load_model(path, RUNTIME))


# --- NMS and IoU -------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "iou"), [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
    ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
    ((0, 0, 10, 10), (2, 2, 8, 8), 0.36),  # one inside the other
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # degenerate: no division by zero
])
def test_box_iou(a, b, iou):
    got = box_iou(np.array([a], np.float64), np.array([b, a], np.float64))
    assert got.shape == (1, 2)
    assert got[0, 0] == pytest.approx(iou)


def test_nms_of_nothing_is_nothing():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def reference_nms(boxes: list[tuple[int, int, int, int]], scores: list[float], threshold: float) -> list[int]:
    """Greedy NMS the slow way: best first, keep a box unless a kept box overlaps it by more than threshold."""
    def iou(a, b):
        iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):  # stable, like the argsort
        if all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


# Integer corners on a small grid: many overlaps, exact IoU ties at the threshold, equal scores.
box = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 20), st.integers(1, 20)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(box, st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])), max_size=25),
       st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_nms_matches_a_brute_force_reference(boxes_scores, threshold):
    boxes = [b for b, _ in boxes_scores]
    scores = [s for _, s in boxes_scores]
    kept = nms(np.array(boxes, np.float64).reshape(-1, 4), np.array(scores, np.float64), threshold)
    assert kept.tolist() == reference_nms(boxes, scores, threshold)


# --- agreement with ultralytics itself ---------------------------------------------------------

@pytest.fixture(scope="module")
def ultralytics(tmp_path_factory):
    """ultralytics' LetterBox and scale_boxes, imported offline; the test skips where it is not installed."""
    if importlib.util.find_spec("ultralytics") is None:  # checked without importing it: not offline yet
        pytest.skip("ultralytics is not installed (pip install -e '.[train]')")
    from store_runtime.training import offline_ultralytics

    with pytest.MonkeyPatch.context() as env:  # give back the process environment afterwards
        for key in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
            env.setenv(key, os.environ.get(key, ""))
        offline_ultralytics(tmp_path_factory.mktemp("ultralytics"))
        augment = pytest.importorskip("ultralytics.data.augment")
        ops = pytest.importorskip("ultralytics.utils.ops")
    return augment.LetterBox, ops.scale_boxes


SIZES = [  # frame (h, w), model input (h, w)
    (720, 1280, 320, 320), (1080, 1920, 640, 640), (480, 640, 640, 640), (1280, 720, 320, 320),
    (333, 1000, 320, 320), (1000, 333, 320, 320), (2, 3000, 320, 320), (3000, 1, 640, 640),
    (100, 100, 640, 640), (640, 640, 640, 640), (481, 641, 384, 640), (719, 1279, 384, 640),
    (1536, 2048, 416, 416), (359, 641, 320, 320),
]


@pytest.mark.parametrize("rect", [False, True], ids=["full input", "rect"])
@pytest.mark.parametrize(("h", "w", "in_h", "in_w"), SIZES)
def test_letterbox_fit_matches_ultralytics(ultralytics, h, w, in_h, in_w, rect):
    letterbox, scale_boxes = ultralytics
    ours = Letterbox.fit(h, w, in_h, in_w, 32 if rect else None)
    theirs = letterbox((in_h, in_w), auto=rect, stride=32)
    params = theirs.get_params({"img": np.zeros((h, w, 3), np.uint8)})
    assert (ours.new_w, ours.new_h) == params["new_unpad"]
    assert (ours.left, ours.top) == (params["left"], params["top"])
    assert ours.scale == pytest.approx(params["ratio"][0])
    assert (ours.in_h, ours.in_w) == theirs(image=np.zeros((h, w, 3), np.uint8)).shape[:2]
    # and the way back: the same boxes in model input pixels land where ultralytics puts them
    in_h, in_w = ours.in_h, ours.in_w
    boxes = np.array([[0, 0, in_w, in_h], [ours.left + 1.5, ours.top + 0.5, in_w / 2, in_h / 2 + 0.25]], np.float32)
    np.testing.assert_allclose(ours.to_frame(boxes, h, w), scale_boxes((in_h, in_w), boxes.copy(), (h, w)),
                               rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("h", "w"), [(720, 1280), (333, 1000), (1280, 720), (320, 320), (97, 203)])
def test_preprocess_pixels_match_ultralytics(ultralytics, tmp_path, h, w):
    letterbox, _ = ultralytics
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    blob, _ = detector(tmp_path, classic()).preprocess([image], batch=1)
    theirs = letterbox(IMGSZ, auto=False)(image=image)  # BGR, HWC
    ours = np.rint(blob[0].transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8)
    np.testing.assert_array_equal(ours, theirs)


# --- the DFL rewrite ------------------------------------------------------------------------------

BINS = np.arange(16, dtype=np.float32)


def dfl_onnx(bins: np.ndarray = BINS, opset: int = 17, after: str = "Reshape") -> bytes:
    """ultralytics' DFL as it exports it: (b, 64, a) -> Reshape (b, 4, 16, a) -> Transpose (b, 16, 4, a)
    -> Softmax(axis=1) -> 1x1 Conv with weights `bins` -> (b, 4, a) (by `after`)."""
    inits = [numpy_helper.from_array(np.array([0, 4, 16, -1], np.int64), "split"),
             numpy_helper.from_array(bins.reshape(1, 16, 1, 1), "dfl.weight"),
             numpy_helper.from_array(np.array([0, 4, -1], np.int64), "joined")]
    nodes = [helper.make_node("Reshape", ["x", "split"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Softmax", ["t"], ["s"], axis=1),
             helper.make_node("Conv", ["s", "dfl.weight"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["c", "joined"], ["y"]) if after == "Reshape"
             else helper.make_node("Identity", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "dfl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 64, "a"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def run_graph(graph: bytes, x: np.ndarray, input_name: str = "x") -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {input_name: x})[0]


def test_dfl_rewrite_gives_the_same_box_sides():
    x = np.random.default_rng(0).normal(0, 4, (2, 64, 300)).astype(np.float32)
    graph = dfl_onnx()
    rewritten = dfl_on_last_axis(graph)
    assert rewritten is not None
    ops = [n.op_type for n in onnx.load_from_string(rewritten).graph.node]
    assert ops == ["Reshape", "Transpose", "Softmax", "MatMul", "Reshape"]
    before, after = run_graph(graph, x), run_graph(rewritten, x)
    assert after.shape == before.shape == (2, 4, 300)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("graph", [
    dfl_onnx(bins=BINS[::-1].copy()),  # a Conv that is not an expectation over 0..15
    dfl_onnx(opset=12),  # Softmax(axis=1) flattened the axes after it then: another function
    dfl_onnx(after="Identity"),  # (b, 1, 4, a) itself is the output: its shape would change
], ids=["other weights", "opset 12", "no reshape after"])
def test_graphs_that_are_not_ultralytics_dfl_are_left_alone(graph):
    assert dfl_on_last_axis(graph) is None


def test_a_model_without_dfl_is_run_as_it_is(tmp_path):
    path = yolo_onnx(tmp_path / "yolo.onnx", classic(((10, 10, 50, 50), 0, 0.9)))
    assert dfl_on_last_axis(path.read_bytes()) is None
    assert found(load_yolo(path, RUNTIME).detect(frame())) == [("person", 0.9)]


def test_a_file_that_is_not_onnx_is_a_clear_error_with_the_rewrite_too(tmp_path):
    path = tmp_path / "yolo.onnx"
    path.write_bytes(b"\x08\x07 not a protobuf at all \xff" * 10)
    with pytest.raises(ValueError, match="is not a loadable ONNX model"):
        load_yolo(path, RUNTIME)


@pytest.fixture(scope="module")
def dfl_export(ultralytics, tmp_path_factory) -> Path:
    """A real ultralytics export whose boxes are decoded by DFL: YOLO11 layers at walkout-det's scale with
    the fourth recipe's 16 bins (walkout-det itself regresses sides directly since the fifth), random weights."""
    from store_runtime.training import RECIPE, Architecture, Recipe, architecture_yaml

    folder = tmp_path_factory.mktemp("dfl")
    recipe = Recipe.load(RECIPE).model_copy(
        update={"architecture": Architecture(depth=0.33, width=0.125, max_channels=1024, reg_max=16)})
    from ultralytics import YOLO

    with pytest.MonkeyPatch.context() as here:
        here.chdir(folder)  # ultralytics writes a model built from yaml into the working directory
        exported = YOLO(str(architecture_yaml(recipe, folder / "dfl.yaml"))).export(
            format="onnx", imgsz=[96, 128], dynamic=True, simplify=False, opset=17, device="cpu")
    return folder / exported


def test_an_ultralytics_export_gets_the_rewrite_and_gives_the_same_outputs(dfl_export):
    graph = dfl_export.read_bytes()
    rewritten = dfl_on_last_axis(graph)
    assert rewritten is not None
    x = np.random.default_rng(0).random((2, 3, 96, 128), dtype=np.float32)
    before, after = (run_graph(g, x, "images") for g in (graph, rewritten))
    assert after.shape == before.shape == (2, 4 + 4, 12 * 16 + 6 * 8 + 3 * 4)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-3)


def test_our_detector_has_no_dfl_to_rewrite_and_runs_as_exported():
    path = Path(__file__).resolve().parents[3] / "models" / "walkout-det.onnx"
    assert dfl_on_last_axis(path.read_bytes()) is None


def test_siblings_share_the_model_and_detect_side_by_side_as_one_alone(tmp_path):
    # Our store detector on sample frames of both cameras (720p aisle, VGA gate: buffers of two sizes),
    # each sibling in a thread of its own, against one detector taking every frame in turn.
    from concurrent.futures import ThreadPoolExecutor

    from store_runtime.node import load_detector
    from vision.sources import SourceConfig, open_source

    samples = Path(__file__).resolve().parents[3] / "sample_videos" / "04-adjacent" / "cameras"
    frames = {}
    for camera in ("aisle", "gate"):
        with open_source(SourceConfig(kind="file", uri=samples / f"{camera}.mp4", camera=camera)) as source:
            frames[camera] = [f.image for f, _ in zip(source, range(140), strict=False)][60::20]  # shoppers in
    alone = load_detector(threads=1, spin=False)
    expected = {camera: [alone.detect(image) for image in images] for camera, images in frames.items()}
    siblings = {"aisle": alone, "gate": alone.sibling()}
    assert siblings["gate"].model.session is alone.model.session and siblings["gate"]._buffers is not alone._buffers

    def run(camera: str) -> list:
        return [siblings[camera].detect(image) for image in frames[camera] * 3]

    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(frames, pool.map(run, frames), strict=True))
    for camera, detections in got.items():
        assert sum(len(d) for d in expected[camera]) >= 3
        for d, e in zip(detections, expected[camera] * 3, strict=True):
            np.testing.assert_array_equal(d.xyxy, e.xyxy)
            np.testing.assert_array_equal(d.class_id, e.class_id)
