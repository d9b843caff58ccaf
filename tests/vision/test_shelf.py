"""The shelf stage (vision/shelf.py): slot occupancy, picks and puts with product and shopper.

Event checks replay the committed sample scenarios with ground-truth tracks: the person and hand boxes
the renderer drew (`vision.synth.scenario.aisle_figures`, hands only where at least half visible, as
a detector would see them), not the detector's, which is trained elsewhere. A track id is the shopper's
plan index + 1, so the truth maps it to its customer.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from paths import REPO, sample_dirs

from store_runtime.config import load_scenario
from store_runtime.scoring import event_f1
from vision.shelf import ProductMatcher, ShelfConfig, ShelfEvent, ShelfMonitor, SlotSpec
from vision.sources import SourceConfig, open_source
from vision.synth.figure import Pose, draw_figure, random_style
from vision.synth.scenario import SeenFigure, SynthOptions, aisle_figures, plan_scenario
from vision.types import Tracks

NAMES = ("person", "hand", "product", "phone")
SAMPLE_DIRS = sample_dirs()
BY_KIND = {json.loads((d / "truth.json").read_text())["kind"]: d for d in SAMPLE_DIRS}


# ---------------------------------------------------------------- helpers


def _truth(scenario_dir: Path) -> dict:
    return json.loads((scenario_dir / "truth.json").read_text())


def _shelf_camera(scenario_dir: Path):
    config = load_scenario(scenario_dir).store.config
    return next(c for c in config.cameras.values() if c.role == "shelf")


def _slots(scenario_dir: Path) -> list[SlotSpec]:
    """The planogram as plain data, as the node converts it from store.yaml."""
    return [SlotSpec(s.id, s.gtin, s.polygon, s.label) for s in _shelf_camera(scenario_dir).slots]


def _catalog(scenario_dir: Path) -> dict[str, list[np.ndarray]]:
    products = load_scenario(scenario_dir).store.catalog.products
    return {gtin: [cv2.imread(str(path)) for path in p.images] for gtin, p in products.items()}


def _options(scenario_dir: Path, data: Path) -> SynthOptions:
    truth = _truth(scenario_dir)
    refusal = truth["refused"][0]["reason"] if truth["refused"] else None
    return SynthOptions(kind=truth["kind"], seed=truth["seed"], data_dir=data, refusal=refusal)


def _frames(scenario_dir: Path) -> Iterator[np.ndarray]:
    """The aisle recording as the node reads it (vision.sources: PyAV, the same decoder and colours)."""
    config = SourceConfig(kind="file", uri=scenario_dir / "cameras" / "aisle.mp4", camera="aisle")
    with open_source(config) as source:
        for frame in source:
            yield frame.image


def _tracks(figures: list[SeenFigure], hands: bool = True) -> Tracks:
    boxes, cls, ids, owners = [], [], [], []
    for f in figures:
        if f.person is not None:
            boxes.append(f.person), cls.append(0), ids.append(f.shopper + 1), owners.append(-1)
        for k, box in enumerate(f.hands if hands else ()):
            boxes.append(box), cls.append(1), ids.append(1000 + 10 * f.shopper + k), owners.append(f.shopper + 1)
    n = len(boxes)
    return Tracks(np.array(boxes, np.float32).reshape(n, 4), np.ones(n, np.float32), np.array(cls, np.int32),
                  np.array(ids, np.int64), np.array(owners, np.int64), NAMES)


def _empty() -> Tracks:
    return Tracks.empty(NAMES)


def _monitor(scenario_dir: Path, **kwargs) -> ShelfMonitor:
    slots = kwargs.pop("slots", None) or _slots(scenario_dir)
    return ShelfMonitor(slots, _catalog(scenario_dir), **kwargs)


def _replay(scenario_dir: Path, figures: list[list[SeenFigure]], *, hands: bool = True,
            light: Callable[[int], float] | None = None, **kwargs) -> tuple[list[ShelfEvent], ShelfMonitor]:
    monitor = _monitor(scenario_dir, **kwargs)
    fps = _shelf_camera(scenario_dir).fps
    events: list[ShelfEvent] = []
    for i, frame in enumerate(_frames(scenario_dir)):
        if light is not None:
            frame = cv2.convertScaleAbs(frame, alpha=light(i))
        events += monitor.step(frame, i / fps, _tracks(figures[i], hands))
    return events + monitor.flush(i / fps), monitor


def _as_output(events: list[ShelfEvent], figures: list[list[SeenFigure]]) -> list[dict]:
    """The events as the runtime will see them once tracks are mapped to customers (SPEC section 5)."""
    customer = {f.shopper + 1: f.customer for frame in figures for f in frame}
    return [{"t": e.t, "customer": customer.get(e.track), "action": e.action, "gtin": e.gtin, "qty": e.qty,
             "slot": e.slot} for e in events]


def _still_clip(scenario_dir: Path, fps: float, seconds: float) -> list[np.ndarray]:
    """The shelf before anyone comes (the first frames of the recording, real noise and compression),
    played forth and back for `seconds`."""
    frames = [f for _, f in zip(range(60), _frames(scenario_dir), strict=False)]
    loop = frames + frames[::-1]
    return [loop[i % len(loop)] for i in range(int(seconds * fps))]


@pytest.fixture(scope="session")
def truth_figures(shared_data: Path) -> Callable[[Path], list[list[SeenFigure]]]:
    """Per-frame ground-truth figures of a sample, computed once a session (a few seconds each)."""
    cache: dict[Path, list[list[SeenFigure]]] = {}

    def get(scenario_dir: Path) -> list[list[SeenFigure]]:
        if scenario_dir not in cache:
            cache[scenario_dir] = list(aisle_figures(_options(scenario_dir, shared_data)))
        return cache[scenario_dir]

    return get


@pytest.fixture(scope="session")
def replays(truth_figures) -> Callable[[Path], list[ShelfEvent]]:
    """The events of a sample replayed with truth tracks (hands included), computed once a session."""
    cache: dict[Path, list[ShelfEvent]] = {}

    def get(scenario_dir: Path) -> list[ShelfEvent]:
        if scenario_dir not in cache:
            cache[scenario_dir] = _replay(scenario_dir, truth_figures(scenario_dir))[0]
        return cache[scenario_dir]

    return get


# ---------------------------------------------------------------- strict inputs


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("hand_frames", 0, "ShelfConfig.hand_frames: expected a value in [1, 1000]"),
    ("settle_frames", 2.5, "ShelfConfig.settle_frames: expected int"),
    ("disturb_frames", True, "ShelfConfig.disturb_frames: expected int"),
    ("reach", "far", "ShelfConfig.reach: expected float"),
    ("change_threshold", 0.0, "ShelfConfig.change_threshold: expected a value in (0.0, 1.0]"),
    ("max_interaction_s", float("nan"), "ShelfConfig.max_interaction_s"),
    ("patch_height", 4, "ShelfConfig.patch_height"),
])
def test_config_refuses_a_wrong_value_naming_the_field(field: str, value: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace("[", r"\[").replace(")", r"\)")):
        ShelfConfig(**{field: value})


def test_config_takes_an_int_for_a_float_and_keeps_defaults_valid() -> None:
    assert ShelfConfig(reach=1).reach == 1.0 and isinstance(ShelfConfig(reach=1).reach, float)
    assert ShelfConfig() == ShelfConfig()


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"gtin": "3017620422004"}, "gtin: expected a GTIN-13 with a valid check digit"),
    ({"polygon": [[0, 0], [10, 0]]}, "polygon: expected 3 or more finite"),
    ({"polygon": [[0, 0], [10, 0], [20, 0]]}, "polygon: the polygon has no area"),
    ({"label": [[0, 0], [float("inf"), 0], [5, 5]]}, "label: expected 3 or more finite"),
    ({"id": ""}, "SlotSpec.id: expected a non-empty string"),
])
def test_slot_spec_refuses_bad_planogram_data(kwargs: dict, expected: str) -> None:
    good = {"id": "A1", "gtin": "3017620422003", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]], "label": None}
    with pytest.raises(ValueError, match=expected):
        SlotSpec(**{**good, **kwargs})


def test_monitor_refuses_bad_frames_times_and_duplicate_slots() -> None:
    slot = SlotSpec("A1", "3017620422003", ((10, 10), (60, 10), (60, 40), (10, 40)))
    catalog = {"3017620422003": [np.full((40, 30, 3), 90, np.uint8)]}
    with pytest.raises(ValueError, match="duplicate slot ids"):
        ShelfMonitor([slot, slot], catalog)
    with pytest.raises(ValueError, match=r"catalog\[3017620422003\]\[0\]: expected a BGR uint8 image"):
        ShelfMonitor([slot], {"3017620422003": [np.zeros((4, 4), np.uint8)]})
    monitor = ShelfMonitor([slot], catalog)
    frame = np.full((80, 80, 3), 120, np.uint8)
    with pytest.raises(ValueError, match="image must be uint8"):
        monitor.step(frame.astype(np.float32), 0.0, _empty())
    assert monitor.step(frame, 1.0, _empty()) == []
    with pytest.raises(ValueError, match="t must be finite and increasing"):
        monitor.step(frame, 1.0, _empty())


def test_a_camera_without_slots_runs_and_reports_nothing() -> None:
    monitor = ShelfMonitor([], {})
    assert monitor.step(np.zeros((72, 128, 3), np.uint8), 0.0, _empty()) == [] and monitor.flush(0.0) == []
    assert monitor.state() == {}


def test_the_vision_package_never_imports_the_store_runtime() -> None:
    tree = ast.parse((REPO / "vision" / "shelf.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "store_runtime" for name in imported)


# ---------------------------------------------------------------- occupancy and appearance


@pytest.mark.parametrize("scenario_dir", SAMPLE_DIRS, ids=lambda p: p.name)
def test_occupancy_at_start_is_what_the_world_planted(scenario_dir: Path, shared_data: Path) -> None:
    """Facings are counted from the first frame alone (no training): every slot of every sample holds
    as many facings as the renderer put there, 1 to 4, each named as the planogram's product."""
    world = plan_scenario(_options(scenario_dir, shared_data)).world
    monitor = _monitor(scenario_dir)
    monitor.step(next(_frames(scenario_dir)), 0.0, _empty())
    state = monitor.state()
    planted = {sid: len(facings) for sid, facings in world.contents.items()}
    assert {sid: len(s.facings) for sid, s in state.items()} == planted
    assert all(s.known and set(s.facings) <= {world.wall.slots[sid].planned} for sid, s in state.items())


def _seen_as_on_a_shelf(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A product photo as a shelf camera sees one facing: small, in perspective, blurred, darker or
    brighter, colour cast, noisy, compressed."""
    h = int(rng.integers(40, 90))
    w = max(8, int(round(h * image.shape[1] / image.shape[0] * rng.uniform(0.85, 1.15))))
    img = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-0.06, 0.06, (4, 2)).astype(np.float32) * np.float32([w, h])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
    img = img * rng.uniform(0.75, 1.2) * rng.uniform(0.93, 1.07, 3) + rng.normal(0, 2.5, img.shape)
    ok, jpg = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR)


def test_appearance_tells_every_catalog_product_from_the_others_without_training() -> None:
    """Every product of every sample catalog (all 12 of a store side by side), seen as a small shelf
    facing under other light, is matched to its own reference photo, most with a clear margin."""
    rng = np.random.default_rng(5)
    right = total = sure = 0
    for scenario_dir in SAMPLE_DIRS:
        catalog = _catalog(scenario_dir)
        matcher = ProductMatcher(catalog)
        for gtin, images in catalog.items():
            for _ in range(3):
                probs = matcher.probabilities(_seen_as_on_a_shelf(images[0], rng))
                best = max(probs, key=probs.__getitem__)
                right += best == gtin
                sure += best == gtin and probs[best] > 0.8
                total += 1
    assert right / total >= 0.97, f"{right} of {total} matched"
    assert sure / total >= 0.85, f"{sure} of {total} matched with probability > 0.8"


# ---------------------------------------------------------------- events on every sample


@pytest.mark.slow
@pytest.mark.parametrize("scenario_dir", SAMPLE_DIRS, ids=lambda p: p.name)
def test_every_true_pick_and_put_is_found_with_product_shopper_and_time(scenario_dir: Path, truth_figures,
                                                                         replays) -> None:
    """SPEC section 6's event F1 on the stage's own output: same customer, action and product within
    1.5 s of the truth, one to one, nothing spurious; quantities and slots right too."""
    truth = _truth(scenario_dir)
    output = _as_output(replays(scenario_dir), truth_figures(scenario_dir))
    match = event_f1(truth["events"], output)
    assert match.f1 == 1.0, f"missed {match.missed}, spurious {match.spurious}"
    assert all((t["qty"], t["slot"]) == (o["qty"], o["slot"]) for t, o in match.matched)


@pytest.mark.slow
def test_a_product_put_into_the_wrong_slot_is_taken_later_as_what_it_is(replays) -> None:
    scenario_dir = BY_KIND["misplaced"]
    truth = _truth(scenario_dir)
    put = next(e for e in truth["events"] if e["action"] == "put")
    planned = {s.id: s.gtin for s in _slots(scenario_dir)}
    assert put["gtin"] != planned[put["slot"]]
    events = replays(scenario_dir)
    later = [e for e in events if e.action == "pick" and e.slot == put["slot"] and e.t > put["t"]]
    assert [e.gtin for e in later] == [put["gtin"]]
    assert "memory" in later[0].sources and later[0].confidence > 0.9


@pytest.mark.slow
def test_a_familys_picks_name_the_other_members_votes(truth_figures, replays) -> None:
    """A parent and child at one slot share the votes for who took: each event names the others it
    went to (`rivals`), so the runtime can add up the shares of one party."""
    scenario_dir = BY_KIND["family"]
    figures = truth_figures(scenario_dir)
    customer = {f.shopper + 1: f.customer for frame in figures for f in frame}
    events = replays(scenario_dir)
    assert events and all(e.track_confidence + sum(share for _, share in e.rivals) <= 1.001 for e in events)
    assert all(track != e.track for e in events for track, _ in e.rivals)
    party = [e.track_confidence + sum(share for track, share in e.rivals if customer.get(track) == customer[e.track])
             for e in events]
    assert any(share > e.track_confidence for share, e in zip(party, events, strict=True))


@pytest.mark.slow
def test_events_need_no_visible_hand(truth_figures) -> None:
    """Seen from behind, hands are mostly hidden and small: with person boxes alone, two neighbours
    reaching across each other at the same moment are still each charged their own pick."""
    scenario_dir = BY_KIND["adjacent"]
    figures = truth_figures(scenario_dir)
    events, _ = _replay(scenario_dir, figures, hands=False)
    match = event_f1(_truth(scenario_dir)["events"], _as_output(events, figures))
    assert match.f1 == 1.0, f"missed {match.missed}, spurious {match.spurious}"


@pytest.mark.slow
def test_a_slow_lighting_drift_during_a_scenario_changes_no_event(truth_figures, replays) -> None:
    scenario_dir = BY_KIND["misplaced"]
    events, _ = _replay(scenario_dir, truth_figures(scenario_dir), light=lambda i: 1 + 0.2 * np.sin(i / 30))
    assert [(e.action, e.slot, e.gtin, e.qty, e.track) for e in events] == \
        [(e.action, e.slot, e.gtin, e.qty, e.track) for e in replays(scenario_dir)]


@pytest.mark.slow
def test_flush_settles_a_change_in_view_when_the_recording_stops_mid_visit(truth_figures) -> None:
    """The recording ends while the shopper still stands at the shelf, after a two-facing grab whose
    place is already in view but not yet still for long: flush() reports it, with its true time."""
    scenario_dir = BY_KIND["several"]
    figures = truth_figures(scenario_dir)
    grab = next(e for e in _truth(scenario_dir)["events"] if e["qty"] == 2)
    monitor, events = _monitor(scenario_dir), []
    fps = _shelf_camera(scenario_dir).fps
    stop = int(14.3 * fps)
    for i, frame in zip(range(stop), _frames(scenario_dir), strict=False):
        events += monitor.step(frame, i / fps, _tracks(figures[i]))
    assert not any(e.slot == grab["slot"] for e in events)  # not reported before the end
    flushed = monitor.flush((stop - 1) / fps)
    assert [(e.slot, e.gtin, e.qty) for e in flushed] == [(grab["slot"], grab["gtin"], 2)]
    assert abs(flushed[0].t - grab["t"]) <= 1.5 and monitor.memory["interactions"] == 0


# ---------------------------------------------------------------- nothing happens, nothing is reported


def test_a_slow_lighting_drift_alone_creates_no_event() -> None:
    scenario_dir = BY_KIND["single"]
    fps = _shelf_camera(scenario_dir).fps
    monitor = _monitor(scenario_dir)
    events = []
    for i, frame in enumerate(_still_clip(scenario_dir, fps, 20.0)):
        light = 1 + 0.2 * np.sin(2 * np.pi * i / (20.0 * fps))  # up 20 %, down 20 %, back, over 20 s
        events += monitor.step(cv2.convertScaleAbs(frame, alpha=light), i / fps, _empty())
    start = _monitor(scenario_dir)
    start.step(next(_frames(scenario_dir)), 0.0, _empty())
    assert events == []
    assert {k: s.facings for k, s in monitor.state().items()} == {k: s.facings for k, s in start.state().items()}


def test_a_shopper_standing_in_front_of_the_shelf_without_reaching_creates_no_event() -> None:
    """A shopper walks in, stands looking at the shelf (hiding several slots), crouches to look at the
    low shelf, turns round and leaves: no hand goes into a slot, so nothing was taken or put."""
    scenario_dir = BY_KIND["pick_put"]
    fps = _shelf_camera(scenario_dir).fps
    style = random_style(np.random.default_rng(2), [])
    monitor = _monitor(scenario_dir)
    events: list[ShelfEvent] = []
    clip = _still_clip(scenario_dir, fps, 16.0)
    height, floor = 560.0, 690.0
    for i, frame in enumerate(clip):
        t = i / fps
        if t < 3.0:  # walking in from the left
            pose = Pose(x=-150 + 230 * t, y=floor, height=height, facing="right", walk_phase=t * 9, walk=1.0)
        elif t < 6.0:
            pose = Pose(x=540, y=floor, height=height, facing="back")
        elif t < 8.0:
            pose = Pose(x=540, y=floor, height=height, facing="back", crouch=min(1.0, (t - 6.0) * 2))
        elif t < 9.5:
            pose = Pose(x=540, y=floor, height=height, facing="front")
        elif t < 13.0:
            pose = Pose(x=540 + 300 * (t - 9.5), y=floor, height=height, facing="right", walk_phase=t * 9, walk=1.0)
        else:
            pose = None
        canvas = frame.copy()
        tracks = _empty()
        if pose is not None:
            drawn = draw_figure(canvas, style, pose)
            x1, y1, x2, y2 = drawn.person
            if x2 > 0 and x1 < canvas.shape[1]:
                box = np.float32([[max(x1, 0), max(y1, 0), min(x2, canvas.shape[1]), min(y2, canvas.shape[0])]])
                tracks = Tracks(box, np.ones(1, np.float32), np.zeros(1, np.int32), np.ones(1, np.int64),
                                np.full(1, -1, np.int64), NAMES)
        events += monitor.step(canvas, t, tracks)
    assert events + monitor.flush(len(clip) / fps) == []
    # Memory is bounded: the shopper's state is gone once the track has been away for a while.
    assert monitor.memory == {"tracks": 0, "interactions": 0, "frames": 0}


# ---------------------------------------------------------------- labels


def _zxing_ean13(crop: np.ndarray) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(crop, formats=zxingcpp.BarcodeFormat.EAN13)]


@pytest.mark.slow
@pytest.mark.parametrize("reader", [_zxing_ean13, None], ids=["labels", "no-labels"])
def test_a_wrong_planogram_is_flagged_by_the_labels_and_does_not_misname_picks(reader, truth_figures) -> None:
    """The planogram of the two slots the shopper picks from is swapped. With a label reader their
    labels' EAN-13 flag both and the others agree; with or without one, both picks are still charged
    as the products really taken (the label, and the facings' own appearance, outweigh the plan)."""
    scenario_dir = BY_KIND["single"]
    truth = _truth(scenario_dir)
    a, b = (e["slot"] for e in truth["events"])
    slots = _slots(scenario_dir)
    gtin = {s.id: s.gtin for s in slots}
    swapped = [SlotSpec(s.id, gtin[b] if s.id == a else gtin[a] if s.id == b else s.gtin, s.polygon, s.label)
               for s in slots]
    events, monitor = _replay(scenario_dir, truth_figures(scenario_dir), slots=swapped, read_label=reader)
    if reader is not None:
        read = {sid: s for sid, s in monitor.state().items() if s.label is not None}
        assert len(read) >= len(slots) - 1, f"labels read: {sorted(read)}"
        assert all(s.label == gtin[sid] for sid, s in read.items())
        assert {sid for sid, s in read.items() if s.planogram_ok is False} == {a, b} & set(read)
    match = event_f1(truth["events"], _as_output(events, truth_figures(scenario_dir)))
    assert match.f1 == 1.0, f"missed {match.missed}, spurious {match.spurious}"
    assert all(t["qty"] == o["qty"] for t, o in match.matched)


def test_a_hand_resting_at_the_slot_all_along_is_no_evidence_of_who_took() -> None:
    from vision.shelf import _Frame, _resting_hands

    region = (100.0, 50.0, 200.0, 150.0)
    patch = np.zeros((2, 2, 3), np.uint8)
    at_rest, reaching = (150.0, 120.0, 180.0, 150.0), (120.0, 80.0, 150.0, 110.0)
    frames = []
    for k in range(60):  # 4 s at 15 fps, the change at 2 s
        t = k / 15
        hands = [(1, at_rest, 7)]  # shopper 1's hand hangs in front of the slot the whole time
        if 1.6 <= t <= 2.4:
            hands.append((2, reaching, 8))  # shopper 2's hand comes in for the change
        elif t > 3.2:
            hands.append((2, (300.0, 80.0, 330.0, 110.0), 8))  # and is elsewhere at the slot later
        frames.append(_Frame(t, patch, (), tuple(hands)))
    share = _resting_hands(frames, region, when=2.0, rest_s=1.5)
    assert share[7] == 1.0  # there in every frame away from the change: its votes count for nothing
    assert share[8] == 0.0  # there only at the change: its votes count in full
