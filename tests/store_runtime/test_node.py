"""The camera node on the sample scenarios' recordings: entry codes at the gate camera, rate
control of the detector, stable event ids, stage timings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from store_runtime.bus import MemoryBus
from store_runtime.config import load_scenario
from store_runtime.events import EntryRead, parse_event
from store_runtime.node import CameraNode, NodeConfig
from vision.gates import ZoneEvent
from vision.sources import SourceConfig, open_source
from vision.types import Detections, Frame

SAMPLES = Path(__file__).resolve().parents[2] / "sample_videos"


class NoDetector:
    """The gate stage reads codes, not boxes: a detector that finds nothing, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        return Detections.empty(("person", "hand", "product", "phone"))


def run_camera(scenario_dir: Path, camera: str, **config) -> tuple[list, CameraNode]:
    scenario = load_scenario(scenario_dir)
    bus = MemoryBus()
    node = CameraNode(scenario.store.config, camera, detector=NoDetector(), bus=bus, config=NodeConfig(**config))
    source = open_source(SourceConfig(kind="file", uri=scenario.video_paths[camera], camera=camera,
                                      start=scenario.start_unix))
    with source:
        node.run(source)
    return bus.drain(), node


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01-single", "06-family", "07-refused-expired"])
def test_gate_camera_turns_each_shown_code_into_one_checked_entry(name: str) -> None:
    truth = json.loads((SAMPLES / name / "truth.json").read_text())
    start = load_scenario(SAMPLES / name).start_unix
    events, node = run_camera(SAMPLES / name, "gate", codes_every=2)
    entries = [e for e in events if isinstance(e, EntryRead)]
    admitted = {e.customer: e for e in entries if e.admitted}
    assert set(admitted) == {c["customer"] for c in truth["customers"]}
    for customer in truth["customers"]:
        entry = admitted[customer["customer"]]
        assert entry.party == customer["party"] and entry.code == customer["token"]
        assert abs((entry.t - start) - customer["entered_t"]) < 1.0
    assert [e.refusal for e in entries if not e.admitted] == [r["reason"] for r in truth["refused"]]
    assert set(node.timings.summary()) >= {"detect", "track", "codes"}


@pytest.mark.slow
def test_a_replay_gives_the_same_events_with_the_same_ids() -> None:
    first, _ = run_camera(SAMPLES / "06-family", "gate", codes_every=3)
    again, _ = run_camera(SAMPLES / "06-family", "gate", codes_every=3)
    assert [e.to_json() for e in first] == [e.to_json() for e in again] and first
    assert all(parse_event(e.to_json()) == e for e in first)


def test_detection_runs_every_k_frames_and_on_motion_between() -> None:
    scenario = load_scenario(SAMPLES / "01-single")
    detector = NoDetector()
    node = CameraNode(scenario.store.config, "aisle", detector=detector, bus=MemoryBus(),
                      config=NodeConfig(detect_every=5, motion_threshold=10.0))
    still = np.full((720, 1280, 3), 100, np.uint8)
    for i in range(17):
        node.step(Frame("aisle", i, i / 15, still))
    assert detector.calls == 4  # frames 0, 5, 10, 15
    node.step(Frame("aisle", 17, 17 / 15, np.full((720, 1280, 3), 200, np.uint8)))
    assert detector.calls == 5  # a sudden change is detected at once, before its turn at frame 20


def test_a_small_moving_patch_is_detected_before_its_turn() -> None:
    # A shopper stepping in at the door changes a corner of the frame, not its mean: the motion gate
    # looks at cells, so the tentative track gets the detections it needs to be confirmed.
    scenario = load_scenario(SAMPLES / "01-single")
    detector = NoDetector()
    node = CameraNode(scenario.store.config, "aisle", detector=detector, bus=MemoryBus(),
                      config=NodeConfig(detect_every=5, motion_threshold=10.0))
    still = np.full((720, 1280, 3), 100, np.uint8)
    node.step(Frame("aisle", 0, 0.0, still))
    door = still.copy()
    door[400:700, 0:100] = 220  # 3 % of the frame: its mean moves by 4 grey levels, the cell's by far more
    node.step(Frame("aisle", 1, 1 / 15, door))
    assert detector.calls == 2


def test_a_track_that_enters_twice_gets_two_event_ids() -> None:
    # The zone watcher forgets a track gone for a while; the tracker may find it again under its old id,
    # and it comes in again. The runtime refuses a second event under an id it applied before.
    scenario = load_scenario(SAMPLES / "03-two-shoppers")
    node = CameraNode(scenario.store.config, "aisle", detector=NoDetector(), bus=MemoryBus())
    zone = next(iter(scenario.store.config.cameras["aisle"].zones))
    first, again = (node._zone(ZoneEvent(t, "aisle", 3, zone, "entered")) for t in (5.333, 10.4))
    assert first.id != again.id
    assert node._zone(ZoneEvent(5.333, "aisle", 3, zone, "entered")).id == first.id  # and replays keep it


class NoFaces:
    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty(("face",))


def test_only_redacted_frames_reach_the_sink_every_one_in_order() -> None:
    from vision.privacy import PrivacyConfig, RedactedFrame, Redactor

    scenario = load_scenario(SAMPLES / "01-single")
    config = scenario.store.config
    with pytest.raises(ValueError, match="redactor"):
        CameraNode(config, "gate", detector=NoDetector(), bus=MemoryBus(), sink=lambda picture: None)
    out: list = []
    node = CameraNode(config, "gate", detector=NoDetector(), bus=MemoryBus(), sink=out.append,
                      redactor=Redactor(NoFaces(), PrivacyConfig(lookahead=2)))
    for i in range(5):
        node.step(Frame("gate", i, i / 15, np.full((480, 640, 3), 90, np.uint8)))
    assert len(out) == 3  # two frames held back by the look-ahead ...
    node.finish()
    assert [p.index for p in out] == [0, 1, 2, 3, 4] and all(isinstance(p, RedactedFrame) for p in out)


def _bright_box(image: np.ndarray, name: str, score: float) -> Detections:
    """One box of class `name` around the bright pixels of `image`, or none."""
    ys, xs = np.nonzero(image[:, :, 0] > 200)
    if not len(xs):
        return Detections.empty((name,))
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    return Detections(box, np.full(1, score, np.float32), np.zeros(1, np.int32), (name,))


class PaintedFaces:
    """Finds the bright square painted on some frames: the redactor's output depends on what it saw."""

    def detect(self, image: np.ndarray) -> Detections:
        return _bright_box(image, "face", 1.0)


def _gate_frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(5)
    frames = []
    for i in range(count):
        image = rng.integers(40, 120, (480, 640, 3), dtype=np.uint8)
        if 3 <= i < 9:
            image[100 + 5 * i:160 + 5 * i, 200:260] = 230  # a face moving down
        frames.append(Frame("gate", i, i / 15, image))
    return frames


def test_redaction_in_its_own_thread_lets_out_the_same_pictures() -> None:
    from vision.privacy import PrivacyConfig, Redactor

    config = load_scenario(SAMPLES / "01-single").store.config
    pictures = {}
    for threaded in (False, True):
        out: list = []
        node = CameraNode(config, "gate", detector=NoDetector(), bus=MemoryBus(), sink=out.append,
                          redactor=Redactor(PaintedFaces(), PrivacyConfig(budget_ms=None)),
                          config=NodeConfig(redact_in_thread=threaded))
        for frame in _gate_frames(14):
            node.step(frame)
        node.finish()
        assert set(node.timings.summary()) >= {"redact", "sink"}
        pictures[threaded] = [(p.index, p.image.tobytes(), p.regions.tobytes()) for p in out]
    assert [p[0] for p in pictures[True]] == list(range(14))
    assert pictures[True] == pictures[False]


def test_a_failing_sink_in_the_redaction_thread_fails_the_node() -> None:
    from vision.privacy import PrivacyConfig, Redactor

    config = load_scenario(SAMPLES / "01-single").store.config

    def full_disk(picture: object) -> None:
        raise OSError(28, "No space left on device")

    node = CameraNode(config, "gate", detector=NoDetector(), bus=MemoryBus(), sink=full_disk,
                      redactor=Redactor(NoFaces(), PrivacyConfig(lookahead=0)),
                      config=NodeConfig(redact_in_thread=True))
    with pytest.raises(OSError, match="No space left"):
        for frame in _gate_frames(40):  # the error comes back at a later frame, or at the latest at finish
            node.step(frame)
        node.finish()
    node.close()  # a no-op once the thread is gone: nothing hangs


class PaintedPeople:
    """A person wherever the frame is bright; counts the frames it was asked about."""

    def __init__(self) -> None:
        self.frames: list[int] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.frames.append(int(image[0, 0, 1]))  # _walking_frames writes the frame's index there
        return _bright_box(image, "person", 0.9)


def _walking_frames(count: int) -> list[Frame]:
    """Someone walks across the gate camera, stops for a while, and walks on: frames the motion gate
    detects at once, and frames it leaves to the tracker."""
    frames = []
    for i in range(count):
        image = np.full((480, 640, 3), 60, np.uint8)
        x = 40 + 12 * min(i, 10) + 12 * max(0, i - 20)
        image[120:400, x:x + 90] = 230
        image[0, 0, 1] = i
        frames.append(Frame("gate", i, i / 15, image))
    return frames


def test_reading_ahead_detects_the_same_frames_and_tracks_the_same() -> None:
    config = load_scenario(SAMPLES / "01-single").store.config
    seen = {}
    for ahead in (False, True):
        detector, states = PaintedPeople(), []
        node = CameraNode(config, "gate", detector=detector, bus=MemoryBus(), reader=NoCodes())
        node.on_state = states.append
        frames = _walking_frames(40)
        node.run(node.read_ahead(frames) if ahead else frames)
        seen[ahead] = (detector.frames, node.detections,
                       [(s.index, s.tracks.track_id.tolist(), s.tracks.xyxy.round(2).tolist()) for s in states])
    assert seen[True] == seen[False]
    detected, _, states = seen[True]
    assert 13 < len(detected) < 40 and any(ids for _, ids, _ in states)  # gated, and someone was tracked
    assert not _detect_threads()


def test_what_reading_ahead_raises_comes_after_the_frames_before_it() -> None:
    from vision.sources import SourceError

    def damaged():
        yield from _walking_frames(3)
        raise SourceError("gate.mp4: frame 3: the file is damaged or cut short here")

    node = CameraNode(load_scenario(SAMPLES / "01-single").store.config, "gate", detector=PaintedPeople(),
                      bus=MemoryBus(), reader=NoCodes())
    stepped = []
    with pytest.raises(SourceError, match="gate.mp4: frame 3"):
        for frame in node.read_ahead(damaged()):
            node.step(frame)
            stepped.append(frame.index)
    assert stepped == [0, 1, 2] and not _detect_threads()


def test_closing_a_node_ends_its_reading_ahead() -> None:
    def endless():
        i = 0
        while True:
            yield Frame("gate", i, i / 15, np.full((48, 64, 3), 60, np.uint8))
            i += 1

    node = CameraNode(load_scenario(SAMPLES / "01-single").store.config, "gate", detector=PaintedPeople(),
                      bus=MemoryBus(), reader=NoCodes())
    frames = node.read_ahead(endless())
    node.step(next(frames))
    with pytest.raises(ValueError, match="frame 7, which read_ahead did not give"):
        node.step(Frame("gate", 7, 7 / 15, np.full((48, 64, 3), 60, np.uint8)))
    node.close()  # the reading thread is ahead, waiting for room in its queue
    assert not _detect_threads()


class NoCodes:
    def read(self, image: np.ndarray) -> list:
        return []


def _detect_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("walkout-detect-")]


@pytest.mark.parametrize("kw, field", [({"detect_every": 0}, "detect_every"), ({"motion_threshold": 300}, "motion")])
def test_bad_node_config_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        NodeConfig(**kw)


@pytest.mark.parametrize("args, message", [
    (["--scenario", str(SAMPLES / "01-single"), "--camera", "roof"], "roof"),
    (["--scenario", str(SAMPLES / "01-single"), "--camera", "gate", "--model", "/nonexistent/det.onnx"],
     "/nonexistent/det.onnx"),
    (["--camera", "gate"], "--scenario"),
])
def test_node_command_mistakes_are_one_line_errors(args: list[str], message: str, capsys) -> None:
    from store_runtime.cli import main

    assert main(["node", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
