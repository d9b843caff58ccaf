"""vision/overlay.py: tracks, slots and zones drawn where they are, on a copy; the slot ledger; the
slot map as static SVG. Pixel checks, because a drawing in the wrong place misleads a person."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from vision.overlay import (
    EXIT,
    HAND,
    PERSON,
    UNKNOWN,
    FrameState,
    Scene,
    SlotLedger,
    SlotView,
    ZoneView,
    draw,
    occupancy_colour,
    slot_map_svg,
)
from vision.types import Tracks

NAMES = ("person", "hand", "product", "phone")
GREY = 90  # the picture's background: no colour drawn here is this grey


def tracks(*rows: tuple[str, tuple[float, float, float, float], int]) -> Tracks:
    boxes = np.array([r[1] for r in rows], np.float32).reshape(-1, 4)
    return Tracks(boxes, np.ones(len(rows), np.float32), np.array([NAMES.index(r[0]) for r in rows], np.int32),
                  np.array([r[2] for r in rows], np.int64), np.full(len(rows), -1, np.int64), NAMES)


def blank(h: int = 360, w: int = 640) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= tol)


def test_a_person_track_is_boxed_where_it_is_with_its_id_and_session() -> None:
    image = blank()
    out = draw(image, Scene(tracks=tracks(("person", (100, 120, 220, 340), 7)), sessions={7: "s-abc"}))
    assert near(out[230, 100], PERSON) and near(out[230, 220], PERSON)  # the box's left and right edges
    assert near(out[340, 160], PERSON)  # its bottom edge
    assert (out[200:300, 130:190] == GREY).all()  # nothing drawn inside the box: the shopper stays visible
    # The id and the session on a tab above the box's top-left corner: wider than the id alone would be.
    tab = np.where((np.abs(out[104:116, :].astype(int) - PERSON).max(axis=2) <= 40).any(axis=0))[0]
    alone = draw(image, Scene(tracks=tracks(("person", (100, 120, 220, 340), 7))))
    tab_alone = np.where((np.abs(alone[104:116, :].astype(int) - PERSON).max(axis=2) <= 40).any(axis=0))[0]
    assert tab.max() > tab_alone.max() + 20
    assert (image == GREY).all(), "draw changes a copy, never its input"


def test_hands_are_boxed_and_other_classes_are_not() -> None:
    out = draw(blank(), Scene(tracks=tracks(("hand", (300, 100, 340, 140), 3), ("product", (400, 100, 440, 140), 4))))
    assert near(out[120, 300], HAND)
    assert (out[90:150, 390:450] == GREY).all()


@pytest.mark.parametrize(("count", "capacity", "colour"), [
    (0, 4, (40, 40, 220)),  # empty: red
    (2, 4, (0, 190, 250)),  # half: amber
    (4, 4, (60, 190, 40)),  # full: green
    (None, None, UNKNOWN),  # not seen yet: grey
])
def test_a_slot_outline_is_drawn_on_its_polygon_in_its_occupancy_colour(count, capacity, colour) -> None:
    polygon = ((200.0, 150.0), (400.0, 150.0), (400.0, 250.0), (200.0, 250.0))
    out = draw(blank(), Scene(slots=[SlotView("A1", polygon, count, capacity)]))
    assert near(out[200, 200], colour, 30) and near(out[200, 400], colour, 30)
    assert (out[175:235, 230:370] == GREY).all()  # the shelf inside stays visible
    assert occupancy_colour(None if count is None else count / capacity) == colour


def test_entry_and_exit_zones_have_their_own_colours() -> None:
    entry = ZoneView("entry-1", "entry", ((0.0, 250.0), (100.0, 250.0), (100.0, 359.0), (0.0, 359.0)))
    exit_ = ZoneView("exit-1", "exit", ((540.0, 250.0), (639.0, 250.0), (639.0, 359.0), (540.0, 359.0)))
    out = draw(blank(), Scene(zones=[entry, exit_]))
    assert near(out[300, 100], (230, 120, 20)) and near(out[300, 540], EXIT)


def test_draw_refuses_what_is_not_a_picture() -> None:
    with pytest.raises(ValueError, match="uint8"):
        draw(np.zeros((10, 10), np.float32), Scene())


def test_the_ledger_keeps_the_most_counted_as_capacity_and_when_the_count_changed() -> None:
    ledger = SlotLedger()
    empty = Tracks.empty(NAMES)
    ledger.update(FrameState("aisle", 0, 10.0, empty, {"A1": None, "A2": 3}))
    ledger.update(FrameState("aisle", 1, 11.0, empty, {"A1": 4, "A2": 3}))
    ledger.update(FrameState("aisle", 2, 12.0, empty, {"A1": 3, "A2": 3}))
    assert ledger.count == {"A1": 3, "A2": 3}
    assert ledger.capacity == {"A1": 4, "A2": 3}
    assert ledger.changed_t == {"A1": 12.0}  # A1 first counted at 11 (not a change), taken at 12
    assert SlotView("A1", ((0, 0), (1, 0), (1, 1)), 3, 4).occupancy == 0.75


def test_the_slot_map_is_static_svg_with_every_text_escaped() -> None:
    hostile = '<script>alert(1)</script>" onload="x'
    svg = slot_map_svg((1280, 720), [SlotView("A1", ((100.0, 80.0), (260.0, 80.0), (260.0, 200.0)), 1, 4),
                                     SlotView("A2", ((300.0, 80.0), (460.0, 80.0), (460.0, 200.0)))],
                       title=hostile, names={"A1": hostile})
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("viewBox") == "0 0 1280 720"
    polygons = root.findall(f".//{ns}polygon")
    assert [p.get("points") for p in polygons][0] == "100.0,80.0 260.0,80.0 260.0,200.0"
    b, g, r = occupancy_colour(0.25)  # one of four facings left: between red and amber
    assert polygons[0].get("fill") == f"#{r:02x}{g:02x}{b:02x}"
    assert polygons[1].get("fill") == "#a0a0a0"  # unknown: grey
    assert "<script" not in svg and not root.findall(f".//{ns}script")
    assert all("onload" not in element.attrib for element in root.iter())
    assert "1 of 4" in svg and "unknown" in svg
