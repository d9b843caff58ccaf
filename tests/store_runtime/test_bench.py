"""`walkout bench inference`: the agreement rule, the rows and table, and the CLI's one-line errors.

Timings are never asserted (they depend on the machine and its load); what is checked is that the
right rows come out, that agreement means "same boxes within a pixel, same classes", and that a
quantised model can be told apart from the fp32 one only by its row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from store_runtime.bench import (
    NETWORK,
    OURS,
    OURS_INT8,
    ULTRALYTICS,
    BenchError,
    NetworkAlone,
    OurPath,
    _bench_one,
    _Path,
    agreement,
    bench_inference,
    detections_agree,
    format_table,
    parse_counts,
    sample_frames,
    ultralytics_available,
)
from store_runtime.cli import main
from store_runtime.quantise import QuantiseError, float_head_nodes, int8_path_for, quantise_detector
from vision.inference.yolo import DetectorOptions
from vision.types import Detections

NAMES = ("person", "hand", "product")
SIZE, CELL = 64, 8


def tiny_yolo_onnx(path: Path) -> Path:
    """A 64x64 detector in ultralytics' layout, (batch, 4 + 3, anchors), that a test can reason about.

    Each 8x8 cell is an anchor: its box is a 16x16 square on the cell's centre, and its score for
    class c is the mean of input channel c (RGB, 0 to 1) over the cell. A bright red patch in a BGR
    frame is therefore a 'person' where the patch is.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    grid = SIZE // CELL
    anchors = grid * grid
    cy, cx = (np.mgrid[0:grid, 0:grid].reshape(2, -1) * CELL + CELL / 2).astype(np.float32)
    boxes = np.stack([cx, cy, np.full(anchors, 2.0 * CELL), np.full(anchors, 2.0 * CELL)])[None].astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        helper.make_node("Reshape", ["pooled", "flat"], ["scores"]),
        helper.make_node("ReduceMax", ["scores"], ["best"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["best", "zeros"], ["zeros_b"]),
        helper.make_node("Add", ["zeros_b", "boxes"], ["boxes_b"]),
        helper.make_node("Concat", ["boxes_b", "scores"], ["output0"], axis=1),
    ]
    inits = [numpy_helper.from_array(np.array([0, len(NAMES), -1], np.int64), "flat"),
             numpy_helper.from_array(np.zeros((1, 4, anchors), np.float32), "zeros"),
             numpy_helper.from_array(boxes, "boxes")]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + len(NAMES), anchors])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"names": str(dict(enumerate(NAMES))), "imgsz": str([SIZE, SIZE]), "stride": "8", "task": "detect",
            "batch": "1", "end2end": "False"}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def frames_with_patches(count: int) -> list[np.ndarray]:
    """BGR frames of two sizes (so batches mix geometries) with saturated colour patches."""
    frames = []
    for i in range(count):
        h, w = (96, 128) if i % 2 == 0 else (120, 120)
        frame = np.zeros((h, w, 3), np.uint8)
        y, x = 16 + 8 * (i % 3), 16 + 16 * (i % 4)
        frame[y:y + 32, x:x + 32, 2] = 255  # red: person
        frame[h - 40:h - 8, w - 40:w - 8, 1] = 255  # green: hand
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_yolo_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def dets(boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.linspace(0.9, 0.5, len(boxes), dtype=np.float32),
                      np.array(classes, np.int32), NAMES)


BASE = dets([[10, 10, 50, 60], [100, 20, 140, 90]], [0, 1])


@pytest.mark.parametrize(("other", "agree"), [
    (BASE, True),
    (dets([[100, 20, 140, 90], [10, 10, 50, 60]], [1, 0]), True),  # order is NMS's business, not agreement's
    (dets([[10.9, 9.1, 50.5, 60], [100, 20, 140, 90.99]], [0, 1]), True),  # within a pixel on every side
    (dets([[12, 10, 50, 60], [100, 20, 140, 90]], [0, 1]), False),  # one edge 2 px off
    (dets([[10, 10, 50, 60], [100, 20, 140, 92]], [0, 1]), False),
    (dets([[10, 10, 50, 60], [100, 20, 140, 90]], [0, 2]), False),  # same box, another class
    (dets([[10, 10, 50, 60]], [0]), False),  # a box missing
    (dets([[10, 10, 50, 60], [100, 20, 140, 90], [1, 1, 5, 5]], [0, 1, 2]), False),  # one too many
])
def test_agreement_is_same_classes_and_boxes_within_a_pixel(other: Detections, agree: bool) -> None:
    assert detections_agree(BASE, other) is agree
    assert detections_agree(other, BASE) is agree


def test_two_boxes_of_one_class_cannot_both_pair_with_the_same_partner() -> None:
    twins = dets([[10, 10, 50, 60], [10.5, 10, 50, 60]], [0, 0])
    apart = dets([[10, 10, 50, 60], [30, 10, 70, 60]], [0, 0])
    assert not detections_agree(twins, apart)


def test_agreement_is_the_fraction_of_agreeing_frames() -> None:
    empty = Detections.empty(NAMES)
    shifted = dets([[12, 12, 52, 62], [100, 20, 140, 90]], [0, 1])
    assert agreement([BASE, BASE, empty, shifted], [BASE, BASE, empty, BASE]) == 0.75
    with pytest.raises(ValueError, match="3 frames against 2"):
        agreement([BASE] * 3, [BASE] * 2)


def test_rows_for_our_path_alone(tiny_model: Path) -> None:
    rows = bench_inference(tiny_model, frames_with_patches(5), threads=(1,), batches=(1, 2), repeats=2,
                           with_ultralytics=False, options=DetectorOptions(confidence=0.5))
    assert [(r.path, r.threads, r.batch) for r in rows] == [(OURS, 1, 1), (NETWORK, 1, 1), (OURS, 1, 2),
                                                            (NETWORK, 1, 2)]
    assert all(r.ms_per_frame > 0 and r.speedup is None and r.agreement is None for r in rows)
    assert all(r.frames == 5 and r.repeats == 2 and r.boxes >= 10 for r in rows)  # a person and a hand a frame
    table = format_table(rows).splitlines()
    assert len(table) == 6 and table[0].startswith("| path |") and "—" in table[2]


def test_the_network_row_times_the_runs_our_path_makes(tiny_model: Path) -> None:
    ours = OurPath(OURS, tiny_model, 1, DetectorOptions(confidence=0.5))
    fed: list[np.ndarray] = []
    run = ours.detector.model.run
    ours.detector.model.run = lambda feeds: fed.append(next(iter(feeds.values())).copy()) or run(feeds)
    frames = frames_with_patches(5)
    ours.detect_batch(frames)
    by_ours, fed[:] = list(fed), []
    assert NetworkAlone(ours).seconds(frames) > 0
    assert len(fed) == len(by_ours) == 1 and all(np.array_equal(a, b) for a, b in zip(fed, by_ours, strict=True))


class _Recorded(_Path):
    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        self.name, self.calls = name, calls

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append((self.name, len(frames)))
        return [Detections.empty(NAMES) for _ in frames]


def test_each_timed_pass_runs_one_path_over_all_frames() -> None:
    # Batch by batch, a path ran while the other's ONNX Runtime workers still spun on the second core.
    calls: list[tuple[str, int]] = []
    paths = [_Recorded(OURS, calls), _Recorded(ULTRALYTICS, calls)]
    rows = _bench_one(paths, [np.zeros((8, 8, 3), np.uint8)] * 6, threads=1, batch=2, repeats=2, tolerance_px=1)
    timed = [name for name, _ in calls[6:]]  # after the untimed pass, 3 batches a path
    assert timed == [OURS] * 3 + [ULTRALYTICS] * 3 + [ULTRALYTICS] * 3 + [OURS] * 3
    assert [(r.path, r.agreement) for r in rows] == [(OURS, 1.0), (ULTRALYTICS, None)]


def test_an_int8_row_is_its_own_and_agrees_with_fp32_when_it_is_the_same_model(tiny_model: Path) -> None:
    # The same file stands in for the quantised one: the row plumbing, not quantisation, is under test.
    rows = bench_inference(tiny_model, frames_with_patches(4), threads=(1,), batches=(4,), repeats=1,
                           int8_path=tiny_model, with_ultralytics=False, options=DetectorOptions(confidence=0.5))
    int8 = next(r for r in rows if r.path == OURS_INT8)
    assert (int8.agreement, int8.reference) == (1.0, OURS)
    assert "100.0% (vs ours fp32)" in format_table(rows)


def test_the_tiny_model_finds_the_patches(tiny_model: Path) -> None:
    # Otherwise every agreement above would be between empty lists.
    from vision.inference.runtime import load_model
    from vision.inference.yolo import YoloDetector

    found = YoloDetector(load_model(tiny_model), DetectorOptions(confidence=0.5)).detect_batch(frames_with_patches(2))
    assert all({"person", "hand"} <= set(d.class_name) for d in found)


@pytest.mark.slow  # imports torch and ultralytics (several seconds)
@pytest.mark.skipif(not ultralytics_available(), reason="ultralytics (extra: train) is not installed")
def test_ours_and_ultralytics_agree_on_the_tiny_model(tiny_model: Path) -> None:
    rows = bench_inference(tiny_model, frames_with_patches(6), threads=(1,), batches=(1, 3), repeats=1,
                           options=DetectorOptions(confidence=0.5))
    assert [(r.path, r.batch) for r in rows] == [(OURS, 1), (NETWORK, 1), (ULTRALYTICS, 1), (OURS, 3), (NETWORK, 3),
                                                 (ULTRALYTICS, 3)]
    ours = [r for r in rows if r.path == OURS]
    assert all(r.agreement == 1.0 and r.reference == ULTRALYTICS and r.speedup > 0 for r in ours)
    assert all(r.speedup == 1.0 for r in rows if r.path == ULTRALYTICS)


def test_sample_frames_come_round_robin_from_both_cameras() -> None:
    frames = sample_frames(3)
    assert [f.shape for f in frames] == [(720, 1280, 3), (480, 640, 3), (720, 1280, 3)]
    calibration = sample_frames(1, phase=0.5)
    assert not np.array_equal(calibration[0], frames[0])  # never the benchmark's own frame
    with pytest.raises(BenchError, match="at least 1"):
        sample_frames(0)


@pytest.mark.parametrize(("text", "counts"), [("1,2", (1, 2)), ("4", (4,))])
def test_counts_parse(text: str, counts: tuple[int, ...]) -> None:
    assert parse_counts(text, "--threads") == counts


@pytest.mark.parametrize("text", ["", "1,x", "0", "1,-2", "1,,2"])
def test_bad_counts_name_the_option(text: str) -> None:
    with pytest.raises(BenchError, match="--batch"):
        parse_counts(text, "--batch")


def test_head_nodes_left_in_float_are_the_decoding_and_the_last_convs() -> None:
    node = lambda name, op="Conv": SimpleNamespace(name=name, op_type=op)  # noqa: E731
    nodes = [node("/model.0/conv/Conv"), node("/model.8/cv1/conv/Conv"),
             node("/model.9/cv2.0/cv2.0.0/conv/Conv"), node("/model.9/cv2.0/cv2.0.0/act/Sigmoid", "Sigmoid"),
             node("/model.9/cv2.0/cv2.0.2/Conv"), node("/model.9/cv3.1/cv3.1.2/Conv"),
             node("/model.9/dfl/Softmax", "Softmax"), node("/model.9/Concat_3", "Concat"),
             node("Constant_1", "Constant")]
    assert float_head_nodes(nodes) == ["/model.9/cv2.0/cv2.0.2/Conv", "/model.9/cv3.1/cv3.1.2/Conv",
                                       "/model.9/dfl/Softmax", "/model.9/Concat_3"]
    assert float_head_nodes(nodes, keep_last_convs=False) == ["/model.9/dfl/Softmax", "/model.9/Concat_3"]


def test_a_model_without_ultralytics_names_is_refused_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantiseError, match="not an ultralytics export"):
        quantise_detector(tiny_model, tmp_path / "tiny.int8.onnx", frames_with_patches(2))
    assert int8_path_for(Path("models/walkout-det.onnx"), tmp_path) == tmp_path / "walkout-det.int8.onnx"


def test_cli_says_in_one_line_that_the_model_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "inference", "--model", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.onnx does not exist" in err and "Traceback" not in err


def test_cli_refuses_a_bad_thread_list(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "inference", "--model", str(tiny_model), "--threads", "two"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_cli_writes_the_rows_as_json(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import store_runtime.bench as bench

    # The tiny model is 64x64 and knows nothing of video frames; small patch frames keep this fast.
    monkeypatch.setattr(bench, "sample_frames", lambda count, phase=0.0: frames_with_patches(count))
    monkeypatch.setattr(bench, "ultralytics_available", lambda: False)
    out = tmp_path / "rows.json"
    assert main(["bench", "inference", "--model", str(tiny_model), "--frames", "3", "--threads", "1", "--batch", "1",
                 "--repeats", "1", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "ultralytics is not installed" in captured.err
    assert "| ours fp32 | 1 | 1 |" in captured.out
    assert [row["path"] for row in json.loads(out.read_text())] == [OURS, NETWORK]
