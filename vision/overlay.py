"""What a camera node sees, drawn for a person: tracks, shelf slots and zones on the blurred picture,
and a slot map of the shelf as SVG.

Pure functions of plain data, like every stage: `draw(image, scene) -> image` returns a new picture
and never changes its input; `slot_map_svg(...) -> str`. They are given only the redacted picture
(the live view calls `draw` through `vision.sinks.snapshot_jpeg`), so a drawn view shows nothing the
redactor did not let out.

What a node believed at a frame travels as a `FrameState` (its confirmed tracks and the facings it
counts in each slot); `SlotLedger` folds the states of one camera into what the slot map shows (a
count, the most ever counted as the slot's capacity, when the count last changed), in memory
bounded by the number of slots.

Colours (BGR): a slot's outline goes from red (empty) through amber to green (full), grey while
the shelf stage has not seen it unoccluded yet; entry zones blue, exit zones magenta; person tracks
orange with their id and, once bound, the session's id; hands cyan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import cv2
import numpy as np

from vision.types import Tracks

__all__ = ["FrameState", "Scene", "SlotLedger", "SlotView", "ZoneView", "draw", "occupancy_colour", "slot_map_svg"]

Point = tuple[float, float]
UNKNOWN = (160, 160, 160)
ENTRY = (230, 120, 20)
EXIT = (200, 40, 200)
PERSON = (0, 140, 255)
HAND = (230, 220, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FrameState:
    """What a camera node believed at frame `index` (time `t`): its confirmed tracks, and the facings
    it counts in each slot (None for a slot it has not seen unoccluded yet)."""

    camera: str
    index: int
    t: float
    tracks: Tracks
    slots: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotView:
    """One slot as drawn: its polygon (camera pixels), facings counted (None: unknown) and the most
    it has held."""

    id: str
    polygon: tuple[Point, ...]
    count: int | None = None
    capacity: int | None = None
    label: str = ""

    @property
    def occupancy(self) -> float | None:
        if self.count is None or not self.capacity:
            return None
        return min(1.0, self.count / self.capacity)


@dataclass(frozen=True)
class ZoneView:
    name: str
    kind: str  # entry | exit
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class Scene:
    """Everything drawn over one picture. `sessions` maps a person track id to its session's id."""

    tracks: Tracks | None = None
    sessions: Mapping[int, str] = field(default_factory=dict)
    slots: Sequence[SlotView] = ()
    zones: Sequence[ZoneView] = ()


class SlotLedger:
    """Per slot of one camera: the newest count, the most ever counted (the slot's capacity: a
    shelf is stocked full), and when the count last changed (`changed_t`)."""

    def __init__(self) -> None:
        self.count: dict[str, int | None] = {}
        self.capacity: dict[str, int] = {}
        self.changed_t: dict[str, float] = {}

    def update(self, state: FrameState) -> None:
        for slot, count in state.slots.items():
            if count is None:
                self.count.setdefault(slot, None)
                continue
            if slot in self.count and self.count[slot] is not None and self.count[slot] != count:
                self.changed_t[slot] = state.t
            self.count[slot] = count
            self.capacity[slot] = max(self.capacity.get(slot, 0), count)


def occupancy_colour(occupancy: float | None) -> tuple[int, int, int]:
    """BGR: red at 0, amber at 0.5, green at 1; grey when unknown."""
    if occupancy is None:
        return UNKNOWN
    x = min(1.0, max(0.0, float(occupancy)))
    red, amber, green = np.array((40, 40, 220)), np.array((0, 190, 250)), np.array((60, 190, 40))
    mixed = red + (amber - red) * 2 * x if x < 0.5 else amber + (green - amber) * (2 * x - 1)
    return tuple(int(round(c)) for c in mixed)


def draw(image: np.ndarray, scene: Scene) -> np.ndarray:
    """A copy of `image` (BGR uint8) with the zones, slots and tracks of `scene` drawn on it."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"overlay.draw: image must be uint8 (H, W, 3) BGR, got {got}")
    out = image.copy()
    thick = max(1, round(out.shape[0] / 360))
    scale = 0.4 * thick
    for zone in scene.zones:
        colour = ENTRY if zone.kind == "entry" else EXIT
        _polyline(out, zone.polygon, colour, thick)
        _label(out, f"{zone.kind} {zone.name}", _top_left(zone.polygon), colour, scale, thick)
    for slot in scene.slots:
        colour = occupancy_colour(slot.occupancy)
        _polyline(out, slot.polygon, colour, 2 * thick)
        count = "?" if slot.count is None else f"{slot.count}/{slot.capacity or slot.count}"
        _label(out, f"{slot.id} {count}", _top_left(slot.polygon), colour, scale, thick)
    tracks = scene.tracks
    if tracks is not None and len(tracks):
        names = tracks.names
        for box, cls, tid in zip(tracks.xyxy.tolist(), tracks.class_id.tolist(), tracks.track_id.tolist(),
                                 strict=True):
            name = names[cls] if names and 0 <= cls < len(names) else str(cls)
            if name not in ("person", "hand"):
                continue
            colour = PERSON if name == "person" else HAND
            x1, y1, x2, y2 = (round(v) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, (2 if name == "person" else 1) * thick, cv2.LINE_AA)
            if name == "person":
                session = scene.sessions.get(int(tid))
                _label(out, f"#{tid}" + (f" {session}" if session else ""), (x1, y1), colour, scale, thick)
    return out


def _polyline(image: np.ndarray, polygon: Sequence[Point], colour: tuple[int, int, int], thick: int) -> None:
    points = np.round(np.asarray(polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(image, [points], True, colour, thick, cv2.LINE_AA)


def _top_left(polygon: Sequence[Point]) -> tuple[int, int]:
    arr = np.asarray(polygon, np.float64)
    return round(arr[:, 0].min()), round(arr[:, 1].min())


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int], scale: float,
           thick: int) -> None:
    """`text` on a filled tab of `colour` just above `at` (inside the picture)."""
    text = text.encode("ascii", "replace").decode()[:48]  # Hershey fonts draw ASCII only
    (w, h), base = cv2.getTextSize(text, FONT, scale, thick)
    x = min(max(0, at[0]), max(0, image.shape[1] - w - 4))
    y = min(max(h + base + 2, at[1]), image.shape[0] - 1)
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y), colour, cv2.FILLED)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - base), FONT, scale, ink, thick, cv2.LINE_AA)


def _hex(colour: tuple[int, int, int]) -> str:
    b, g, r = colour
    return f"#{r:02x}{g:02x}{b:02x}"


def slot_map_svg(size: tuple[int, int], slots: Sequence[SlotView], *, title: str = "",
                 names: Mapping[str, str] | None = None) -> str:
    """The shelf's slots as an SVG in the camera's pixel space (`size` = width, height): each slot's
    polygon filled by its occupancy colour, with its id, count and product name (`names`, by slot
    id). Static: no script, no external reference, every text escaped."""
    width, height = size
    names = names or {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title or "slot map", _ATTR)}">',
             f"<title>{escape(title or 'slot map')}</title>",
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#1e1e1e"/>']
    font = max(10, round(height / 40))
    for slot in slots:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in slot.polygon)
        colour = _hex(occupancy_colour(slot.occupancy))
        count = "unknown" if slot.count is None else f"{slot.count} of {slot.capacity or slot.count}"
        xs, ys = [p[0] for p in slot.polygon], [p[1] for p in slot.polygon]
        cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
        name = names.get(slot.id, "")
        parts.append(f'<g class="slot" data-slot="{escape(slot.id, _ATTR)}">'
                     f"<title>{escape(slot.id)}: {escape(name)} ({count})</title>"
                     f'<polygon points="{points}" fill="{colour}" fill-opacity="0.55" stroke="{colour}" '
                     f'stroke-width="3"/>'
                     f'<text x="{cx:.1f}" y="{cy:.1f}" font-family="sans-serif" font-size="{font}" fill="#ffffff" '
                     f'text-anchor="middle">{escape(slot.id)} {escape(count)}</text>'
                     f'<text x="{cx:.1f}" y="{cy + font * 1.2:.1f}" font-family="sans-serif" '
                     f'font-size="{round(font * 0.8)}" fill="#ffffff" text-anchor="middle">{escape(name[:40])}</text>'
                     "</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


_ATTR = {'"': "&quot;", "'": "&apos;"}
