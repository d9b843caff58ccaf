"""Frame and Detections: every stage trusts these shapes, so a wrong one must fail where it is built.

A Detections with a float64 box array or a confidence one row short would otherwise travel to the
tracker and fail there, far from the adapter that made it; the errors name the field and the shape
it should have had.
"""

from __future__ import annotations

import numpy as np
import pytest

from vision.types import Detections, Frame

NAMES = ("person", "hand", "product", "phone")


def dets(*rows: tuple[float, float, float, float, float, int], names: tuple[str, ...] = NAMES) -> Detections:
    """Detections from (x1, y1, x2, y2, confidence, class_id) rows."""
    a = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int32), names)


THREE = dets((0, 0, 10, 10, 0.9, 0), (5, 5, 20, 20, 0.8, 1), (1, 2, 3, 4, 0.7, 0))


def test_parallel_arrays_keep_their_rows():
    assert len(THREE) == 3
    assert THREE.class_name.tolist() == ["person", "hand", "person"]
    assert THREE.confidence.tolist() == pytest.approx([0.9, 0.8, 0.7])


@pytest.mark.parametrize(("xyxy", "confidence", "class_id", "field", "expected"), [
    # float64 boxes are the usual slip from a numpy computation: refused, not converted silently
    (np.zeros((2, 4)), np.zeros(2, np.float32), np.zeros(2, np.int32), "xyxy", "float32 array of shape (2, 4)"),
    (np.zeros((2, 5), np.float32), np.zeros(2, np.float32), np.zeros(2, np.int32), "xyxy", "shape (2, 4)"),
    (np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.int32), "xyxy", "shape (4, 4)"),
    # not an array at all: still a ValueError naming the field, not a TypeError from len()
    (None, np.zeros(0, np.float32), np.zeros(0, np.int32), "xyxy", "shape (N, 4)"),
    (np.float32(1.0), np.zeros(0, np.float32), np.zeros(0, np.int32), "xyxy", "shape (N, 4)"),
    ([[0, 0, 1, 1]], np.zeros(1, np.float32), np.zeros(1, np.int32), "xyxy", "got list"),
    (np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int32), "confidence", "shape (2,)"),
    (np.zeros((2, 4), np.float32), np.zeros((2, 1), np.float32), np.zeros(2, np.int32), "confidence", "shape (2,)"),
    (np.zeros((2, 4), np.float32), np.zeros(2, np.float64), np.zeros(2, np.int32), "confidence", "float32"),
    (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros(2, np.int64), "class_id", "int32 array"),
    (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros(1, np.int32), "class_id", "shape (2,)"),
])
def test_construction_errors_name_the_field_and_the_expected_shape(xyxy, confidence, class_id, field, expected):
    with pytest.raises(ValueError, match=rf"Detections\.{field}: expected .*") as err:
        Detections(xyxy, confidence, class_id, NAMES)
    assert expected in str(err.value)


@pytest.mark.parametrize("class_id", [-1, 4, 99])
def test_class_ids_must_index_the_names(class_id):
    with pytest.raises(ValueError, match="class_id: ids must index names"):
        dets((0, 0, 1, 1, 0.5, class_id))


def test_class_ids_are_free_without_a_vocabulary():
    assert len(dets((0, 0, 1, 1, 0.5, 42), names=())) == 1


@pytest.mark.parametrize(("index", "rows"), [
    (np.array([True, False, True]), [0, 2]),
    (np.array([False, False, False]), []),
    (np.array([2, 0]), [2, 0]),  # an index array reorders
    (np.array([], np.int64), []),
    (slice(1, None), [1, 2]),
    (slice(None, None, -1), [2, 1, 0]),
    (0, [0]),
    (2, [2]),
    (-1, [2]),  # slice(-1, 0) would be empty: the last row needs slice(-1, None)
    (-3, [0]),
    (np.int64(1), [1]),
])
def test_selection_by_mask_index_slice_and_int(index, rows):
    picked = THREE[index]
    assert isinstance(picked, Detections)
    np.testing.assert_array_equal(picked.xyxy, THREE.xyxy[rows].reshape(-1, 4))
    np.testing.assert_array_equal(picked.confidence, THREE.confidence[rows])
    np.testing.assert_array_equal(picked.class_id, THREE.class_id[rows])
    assert picked.names == NAMES


@pytest.mark.parametrize("index", [3, -4, 100])
def test_an_int_out_of_range_is_an_index_error_not_an_empty_result(index):
    # A slice past the end is silently empty; an int past the end is a bug at the caller.
    with pytest.raises(IndexError, match="out of range for 3 rows"):
        THREE[index]


def test_selection_leaves_the_original_alone():
    picked = THREE[np.array([True, False, False])]
    picked.xyxy[:] = -1  # a mask copies, so the original rows are untouched
    assert THREE.xyxy.min() >= 0


@pytest.mark.parametrize(("name", "rows"), [
    ("person", [0, 2]),
    ("hand", [1]),
    ("phone", []),  # in the vocabulary, no boxes
    ("shelf", []),  # not in the vocabulary: empty, not an error
])
def test_of_keeps_one_class(name, rows):
    picked = THREE.of(name)
    np.testing.assert_array_equal(picked.xyxy, THREE.xyxy[rows].reshape(-1, 4))
    assert set(picked.class_name.tolist()) <= {name}


@pytest.mark.parametrize("names", [(), NAMES])
def test_empty(names):
    empty = Detections.empty(names)
    assert len(empty) == 0
    assert empty.xyxy.shape == (0, 4) and empty.xyxy.dtype == np.float32
    assert empty.confidence.dtype == np.float32 and empty.class_id.dtype == np.int32
    assert empty.names == names
    assert len(empty.of("person")) == 0
    assert len(empty[np.zeros(0, bool)]) == 0
    assert empty.class_name.shape == (0,)


def image(shape: tuple[int, ...] = (4, 6, 3), dtype: type = np.uint8) -> np.ndarray:
    return np.zeros(shape, dtype)


def test_a_frame_holds_a_bgr_image():
    frame = Frame("cam-1", 7, 1.5, image())
    assert (frame.camera, frame.index, frame.t, frame.image.shape) == ("cam-1", 7, 1.5, (4, 6, 3))


@pytest.mark.parametrize(("bad", "got"), [
    (image((4, 6)), "uint8 (4, 6)"),  # grey
    (image((4, 6, 4)), "uint8 (4, 6, 4)"),  # BGRA
    (image((4, 6, 1)), "uint8 (4, 6, 1)"),
    (image(dtype=np.float32), "float32 (4, 6, 3)"),  # a normalised image is not a camera frame
    (image(dtype=np.uint16), "uint16"),
    ([[0, 0, 0]], "got list"),
    (None, "got NoneType"),
])
def test_frame_refuses_anything_but_uint8_bgr(bad, got):
    with pytest.raises(ValueError, match=r"Frame cam-1#3: image must be uint8 \(H, W, 3\) BGR") as err:
        Frame("cam-1", 3, 0.0, bad)
    assert got in str(err.value)


def test_tracks_check_shapes_and_select_by_class():
    from vision.types import Tracks

    tracks = Tracks(np.array([[0, 0, 10, 10], [5, 5, 8, 8]], np.float32), np.array([0.9, 0.8], np.float32),
                    np.array([0, 1], np.int32), np.array([1, 2], np.int64), np.array([-1, 1], np.int64),
                    ("person", "hand"))
    hands = tracks.of("hand")
    assert hands.track_id.tolist() == [2] and hands.owner.tolist() == [1]
    assert len(Tracks.empty(("person",))) == 0 and len(tracks.of("phone")) == 0
    with pytest.raises(ValueError, match=r"Tracks.owner: expected int64"):
        Tracks(tracks.xyxy, tracks.confidence, tracks.class_id, tracks.track_id, np.array([-1, 1], np.int32))
