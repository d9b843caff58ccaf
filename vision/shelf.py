"""Shelf interactions: slot occupancy, reaches into slots, product identity -> pick / put.

One stage, one verb: `ShelfMonitor.step(image, t, tracks) -> list[ShelfEvent]`, fed one shelf
camera's frames in order with the tracker's person and hand tracks; `flush(t)` when the stream ends.
Slots and catalog come in as plain data (`SlotSpec`, GTIN -> reference images): `vision` never
imports the store runtime.

How it decides, and why this way:
- Each planogram slot is watched as a rectified patch (its polygon warped to an upright rectangle;
  all slots side by side in one strip, so a frame costs a few OpenCV calls). A slot's settled look
  (its *reference*) is learned online, in the light of the first frame; every frame is divided by
  the global light level first and compared with a one-pixel tolerance, so a slow lighting drift or
  a camera that sways by a pixel is not a change.
- Seen from behind, a reaching hand is mostly hidden by the shopper's head and body, so a visible
  hand is not required: an interaction starts when a hand stays in the slot for `hand_frames`, or
  when the slot looks changed for `disturb_frames` while a person's reach (the box grown by an arm's
  length) covers it. A changed part of the slot is judged once it is in view and still: at the
  latest when no person box covers the slot any more, earlier where a shopper stands in front of
  only the rest of it (a column behind a box that shows bare shelf back is in view too).
- Judging compares the slot before (reference) and after, region by region: facings that are gone
  were picked, new ones were put; how many comes from the facing layout. The time is a change point
  in the interaction's frames: between the last frame that still showed the old look (a hand hides
  a facing only partly until it moves) and the first that showed the new one; frames where
  something hides the region speak for neither. The shopper is the person whose box has a side at
  the changed region around that time (a reaching arm makes the side of a box), with hands as
  extra votes; a hand that was at the region as much away from the change as at it (hanging at the
  side of someone standing in front of the slot) votes for nobody.
- Occupancy: facings are counted from the columns that are not shelf back. The back's colour is the
  dominant chromaticity of all slots (a colour, not a brightness: it survives dimming), fitted per
  slot as a straight line across it; a facing's width comes from the gaps between facings or from
  the product photo's aspect ratio at the height of what stands there.
- Identity is a fusion with a confidence: what the slot remembers of each facing (what it looked
  like when first seen, with the planogram and the shelf-edge label's EAN-13 as priors; what a put
  placed there), what the shopper took before (for a put), and a training-free appearance match of
  the facing against the catalog's reference photos. A product put into the wrong slot is
  remembered as itself, so a later pick from that slot is charged as what it is; a label that names
  another product than the planogram is flagged in `state()`.
- Memory is bounded: frames are kept only while an interaction lasts (at most `max_interaction_s`),
  per-track state is dropped `track_ttl_s` after a track was last seen.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import cv2
import numpy as np

from vision.gtin import is_valid_gtin13
from vision.types import Tracks

__all__ = [
    "Action",
    "LabelReader",
    "ProductMatcher",
    "ShelfConfig",
    "ShelfEvent",
    "ShelfMonitor",
    "SlotSpec",
    "SlotState",
    "count_facings",
    "rectify",
]

Action = Literal["pick", "put"]
Point = tuple[float, float]
LabelReader = Callable[[np.ndarray], Sequence[str]]  # BGR crop of a shelf-edge label -> EAN-13 texts read
RIVALS = 3  # persons besides the likeliest that a shelf event names with their share of the votes


# ---------------------------------------------------------------- public types


@dataclass(frozen=True)
class SlotSpec:
    """One planogram slot as plain data: polygons in the shelf camera's pixels (SPEC section 3)."""

    id: str
    gtin: str
    polygon: tuple[Point, ...]
    label: tuple[Point, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"SlotSpec.id: expected a non-empty string, got {self.id!r}")
        if not is_valid_gtin13(self.gtin):
            raise ValueError(f"SlotSpec {self.id}: gtin: expected a GTIN-13 with a valid check digit, "
                             f"got {self.gtin!r}")
        object.__setattr__(self, "polygon", _polygon(self.polygon, f"SlotSpec {self.id}: polygon"))
        if self.label is not None:
            object.__setattr__(self, "label", _polygon(self.label, f"SlotSpec {self.id}: label"))


def _polygon(points: object, where: str) -> tuple[Point, ...]:
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a list of [x, y] points, got {points!r}") from None
    if arr.ndim != 2 or arr.shape[0] < 3 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise ValueError(f"{where}: expected 3 or more finite [x, y] points, got {points!r}")
    if abs(cv2.contourArea(arr.astype(np.float32))) < 1.0:
        raise ValueError(f"{where}: the polygon has no area")
    return tuple((float(x), float(y)) for x, y in arr)


@dataclass(frozen=True)
class ShelfConfig:
    """Every threshold and debounce of the shelf stage. Strict: a wrong type or range names the field."""

    patch_height: int = 64  # rows of a rectified slot patch (its width follows the slot's aspect)
    change_threshold: float = 0.12  # a pixel differs from the reference by this fraction of the back's brightness
    column_fraction: float = 0.2  # a patch column has changed when this fraction of its rows differ
    hand_frames: int = 2  # frames a hand must be inside a slot to start an interaction
    disturb_frames: int = 2  # frames a slot must look changed, within a person's reach, to start one
    settle_frames: int = 6  # frames a changed part must be clear of people and still before it is judged
    reach: float = 0.4  # arm's length as a fraction of the person box's height
    reach_memory_s: float = 1.0  # a person's reach still counts this long after their box was last seen
    rest_s: float = 1.5  # a hand at the change region this far from the change too is resting there (`_who_and_when`)
    box_margin: float = 0.03  # person boxes grown by this fraction of their height before testing cover
    withdraw_s: float = 0.45  # typical seconds from the moment a facing moves to the hand leaving the slot
    release_s: float = 0.4  # a put counts when the hand lets go, a moment after the product shows in place
    min_facing_fraction: float = 0.4  # a changed run narrower than this share of a facing is noise
    appearance_temperature: float = 0.06  # softmax temperature of appearance similarities
    # A put judged while someone still stands at the shelf must look like some catalog product (-1..1):
    # a sleeve resting in a slot outside a person box is not a put. Once the slot is clear, any is.
    min_put_similarity: float = 0.7
    max_interaction_s: float = 60.0  # an interaction longer than this is dropped and the slot re-learned
    track_ttl_s: float = 3.0  # per-track state is forgotten this long after the track was last seen
    relearn_s: float = 3.0  # a change with nobody near for this long is adopted as the new normal, no event
    idle_rate: float = 0.05  # how fast an idle slot's reference follows slow lighting changes
    label_attempts: int = 12  # tries to read each shelf-edge label (on frames where it is unoccluded)
    label_upscale: float = 2.0  # labels are read enlarged: their bars are thin in a wide view

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want = int if f.type in ("int", int) else float
            ok = isinstance(value, want) or (want is float and isinstance(value, int))
            if isinstance(value, bool) or not ok:
                raise ValueError(f"ShelfConfig.{f.name}: expected {want.__name__}, got {value!r}")
            if want is float:
                object.__setattr__(self, f.name, float(value))
        _in_range(self, "patch_height", 16, 256)
        for name in ("hand_frames", "disturb_frames", "settle_frames", "label_attempts"):
            _in_range(self, name, 1, 1000)
        for name in ("change_threshold", "column_fraction", "min_facing_fraction", "idle_rate", "box_margin"):
            _in_range(self, name, 0.0, 1.0, low_open=name != "box_margin")
        _in_range(self, "reach", 0.0, 2.0)
        _in_range(self, "min_put_similarity", -1.0, 1.0)
        for name in ("withdraw_s", "release_s", "reach_memory_s", "rest_s", "max_interaction_s", "track_ttl_s",
                     "relearn_s", "appearance_temperature"):
            _in_range(self, name, 0.0, 3600.0, low_open=name not in ("withdraw_s", "release_s", "reach_memory_s"))
        _in_range(self, "label_upscale", 1.0, 8.0)


def _in_range(cfg: ShelfConfig, name: str, low: float, high: float, low_open: bool = False) -> None:
    value = getattr(cfg, name)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"ShelfConfig.{name}: expected a value in {bracket}{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class ShelfEvent:
    """A pick from or a put into a slot.

    `t` is when the product moved (seconds on the stream's clock), estimated after the fact;
    `track` is the person track that did it (-1 when no one could be told); `confidence` is the
    product identity's, `track_confidence` the attribution's; `sources` names the evidence that
    agreed with the product chosen. `rivals` are the other person tracks the attribution's votes
    went to, (track, share) by share: a parent and child at one slot split the reach between them,
    and the runtime, which knows they came in on one code, adds their shares up.
    """

    t: float
    slot: str
    action: Action
    gtin: str
    qty: int
    track: int
    confidence: float
    track_confidence: float
    sources: tuple[str, ...] = ()
    rivals: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class SlotState:
    """What the stage believes a slot holds now.

    `facings` are GTINs left to right (empty until the slot was first seen unoccluded: `known`);
    `label` is the EAN-13 read from the shelf-edge label (None until read), and `planogram_ok` says
    whether it names the planned product (None while unread).
    """

    slot: str
    known: bool
    facings: tuple[str, ...]
    label: str | None
    planogram_ok: bool | None


# ---------------------------------------------------------------- geometry


def _order_quad(points: Sequence[Point]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float32)
    if len(pts) != 4:  # any other polygon: its bounding rectangle
        x, y, w, h = cv2.boundingRect(pts)
        return np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    s, d = pts.sum(1), pts[:, 0] - pts[:, 1]
    quad = np.float32([pts[np.argmin(s)], pts[np.argmax(d)], pts[np.argmax(s)], pts[np.argmin(d)]])
    if len({tuple(p) for p in quad.tolist()}) < 4:  # a degenerate order (strong rotation): fall back
        x, y, w, h = cv2.boundingRect(pts)
        return np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return quad


def _quad_size(quad: np.ndarray) -> tuple[float, float]:
    w = (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    h = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    return float(w), float(h)


@dataclass(frozen=True)
class _Warp:
    matrix: np.ndarray  # image -> patch
    inverse: np.ndarray  # patch -> image
    size: tuple[int, int]  # patch (w, h)


def _warp(quad: np.ndarray, height: int | None) -> _Warp:
    w, h = _quad_size(quad)
    ph = max(4, int(round(h))) if height is None else height
    pw = int(np.clip(round(ph * w / max(h, 1e-6)), 4, 4096))
    dst = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    m = cv2.getPerspectiveTransform(quad, dst)
    return _Warp(m, np.linalg.inv(m), (pw, ph))


def rectify(image: np.ndarray, polygon: Sequence[Point], height: int | None = None) -> np.ndarray:
    """The polygon's content warped to an upright rectangle (`height` rows, native size when None)."""
    warp = _warp(_order_quad(polygon), height)
    return _apply(image, warp)


def _apply(image: np.ndarray, warp: _Warp) -> np.ndarray:
    return cv2.warpPerspective(image, warp.matrix, warp.size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- occupancy


def _cmax(x: np.ndarray) -> np.ndarray:
    """Largest of the three channels (numpy's reduction over a last axis of 3 is slow)."""
    return np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])


def _cmin(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(x[..., 0], x[..., 1]), x[..., 2])


def _lum(x: np.ndarray) -> np.ndarray:
    return (x[..., 0] + x[..., 1] + x[..., 2]) * np.float32(1 / 3)


def _chroma(patch: np.ndarray) -> np.ndarray:
    p = patch.astype(np.float32)
    return p[..., :2] / (p[..., 0:1] + p[..., 1:2] + p[..., 2:3] + 1.0)


def _back_chroma(patches: Iterable[np.ndarray]) -> np.ndarray:
    """The chromaticity of the shelf back: the most common one over all slots (a colour, so light levels
    do not move it; slots are mostly back even when full, above and between facings)."""
    allc = np.concatenate([_chroma(p).reshape(-1, 2) for p in patches])
    hist, ex, ey = np.histogram2d(allc[:, 0], allc[:, 1], bins=64, range=[[0, 1], [0, 1]])
    i, j = np.unravel_index(int(hist.argmax()), hist.shape)
    c0 = np.array([(ex[i] + ex[i + 1]) / 2, (ey[j] + ey[j + 1]) / 2])
    near = np.abs(allc - c0).max(-1) < 0.02
    return np.median(allc[near], 0) if near.any() else c0


def _back_profile(patch: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Colour of the empty shelf back in each column (W x 3): a straight line across the slot (light
    falls off smoothly) fitted to the pixels of the back's chromaticity, twice, dropping after the
    first fit what is off the line (a shelf edge of a similar colour, a product's pale border)."""
    p = patch.astype(np.float32)
    c = np.abs(_chroma(p) - chroma)
    lum = _lum(p)
    near = np.maximum(c[..., 0], c[..., 1]) < 0.025
    level = float(np.median(lum[near])) if near.sum() > 20 else float(np.median(lum))
    keep = near & (lum > 0.75 * level) & (lum < 1.3 * level)
    w = p.shape[1]
    if keep.sum() < 20:
        return np.tile(np.median(p.reshape(-1, 3), 0), (w, 1)).astype(np.float32)
    ys, xs = np.nonzero(keep)
    values = p[ys, xs]
    design = np.stack([np.ones_like(xs, dtype=np.float32), xs.astype(np.float32) / w], 1)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design, values, rcond=None)
        good = np.abs(values - design @ coef).max(1) < 0.06 * level
        if good.sum() < 20:
            break
        design, values = design[good], values[good]
    line = np.stack([np.ones(w, np.float32), np.arange(w, dtype=np.float32) / w], 1)
    return (line @ coef).astype(np.float32)


def _filled(patch: np.ndarray, back: np.ndarray, threshold: float = 0.12) -> np.ndarray:
    """Pixels that are not shelf back (H x W bool).

    The back's brightness is first matched to the patch (the light may have changed since it was
    learned): the gain is the median ratio over pixels that are a scaled copy of the back, judged on
    channels that are not clipped at white (a bright back saturates when the light goes up). Columns
    of a product are closed vertically, so a light product on a light back still reads as one block.
    """
    p = patch.astype(np.float32)
    b = np.maximum(back, 1.0)[None]
    ratio = p / b
    valid = p < 250
    some = valid[..., 0] | valid[..., 1] | valid[..., 2]
    lo = np.where(some, _cmin(np.where(valid, ratio, np.inf)), 0.0)
    hi = np.where(some, _cmax(np.where(valid, ratio, -np.inf)), 0.0)
    mid = (lo + hi) / 2
    scaled = some & (hi - lo < 0.08 * mid) & (mid > 0.6) & (mid < 1.6)
    gain = float(np.median(mid[scaled])) if scaled.sum() > 20 else 1.0
    expected = np.minimum(gain * back, 255.0)[None]
    dist = _cmax(np.abs(p - expected)) / (gain * np.maximum(_lum(back), 8.0))[None]
    k = max(3, patch.shape[0] // 16)
    return cv2.morphologyEx((dist > threshold).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8)) > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D mask."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _product_height(filled: np.ndarray, cols: np.ndarray) -> int:
    """Rows of product standing on the shelf: the block of filled rows that reaches down to the board."""
    h = filled.shape[0]
    if not cols.any():
        return 0
    rows = filled[:, cols].mean(1) > 0.3
    height, started, miss = 0, False, 0
    for y in range(h - 1, -1, -1):
        if rows[y]:
            height, started, miss = h - y, True, 0
        elif started:
            miss += 1
            if miss > 2:
                break
    return height


@dataclass(frozen=True)
class Layout:
    """Facings seen in a patch: their column ranges [x0, x1) left to right, and the width of one."""

    facings: tuple[tuple[float, float], ...]
    facing_width: float

    @property
    def count(self) -> int:
        return len(self.facings)


def count_facings(filled: np.ndarray, aspect: float, gap: float = 0.12) -> Layout:
    """Facings in a slot from its not-back mask: the span of filled columns divided by the pitch of one
    facing. The facing width comes from the clean runs between visible gaps when there are some,
    else from the product image's aspect ratio (w / h) at the height of what stands on the shelf."""
    cols = filled.mean(0) > 0.3
    height = _product_height(filled, cols)
    if height == 0:
        return Layout((), 0.0)
    fw_aspect = max(2.0, height * aspect)
    runs = _runs(cols)
    good = [b - a for a, b in runs if 0.6 * fw_aspect <= b - a <= 1.6 * fw_aspect]
    fw = float(np.median(good)) if good else fw_aspect
    x0, x1 = runs[0][0], runs[-1][1]
    span = x1 - x0
    if span < 0.5 * fw:
        return Layout((), fw)
    n = max(1, int(round((span + gap * fw) / ((1 + gap) * fw))))
    width = (span - (n - 1) * gap * fw) / n
    if width <= 0:
        width = span / n
    pitch = (span - width) / (n - 1) if n > 1 else 0.0
    return Layout(tuple((x0 + i * pitch, x0 + i * pitch + width) for i in range(n)), float(width))


# ---------------------------------------------------------------- appearance


def _descriptor(image: np.ndarray) -> np.ndarray:
    """A small training-free descriptor of a product's front: lightness layout on a 12x12 grid (mean and
    contrast removed, so light level does not matter) and colour (a, b of Lab) on a 6x6 grid."""
    img = np.ascontiguousarray(image)
    lab = cv2.cvtColor(cv2.resize(img, (12, 12), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2LAB).astype(np.float32)
    light = lab[..., 0].ravel()
    light = (light - light.mean()) / (light.std() + 8.0)
    ab = cv2.resize(lab[..., 1:], (6, 6), interpolation=cv2.INTER_AREA).reshape(-1) - 128.0
    return np.concatenate([light / math.sqrt(light.size), ab / 40.0 / math.sqrt(ab.size / 2)]).astype(np.float32)


class ProductMatcher:
    """Appearance match of a product crop against the catalog's reference photos, no training: a new
    catalog is a new matcher. `catalog` maps GTIN -> reference images (BGR uint8)."""

    def __init__(self, catalog: Mapping[str, Sequence[np.ndarray]], temperature: float = 0.06) -> None:
        gtins, descs, aspects = [], [], []
        for gtin, images in catalog.items():
            if not is_valid_gtin13(gtin):
                raise ValueError(f"catalog: expected GTIN-13 keys with valid check digits, got {gtin!r}")
            for k, img in enumerate(images):
                if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    got = f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}"
                    raise ValueError(f"catalog[{gtin}][{k}]: expected a BGR uint8 image (H, W, 3), got {got}")
                gtins.append(gtin)
                descs.append(_descriptor(img))
                aspects.append(img.shape[1] / img.shape[0])
        self.gtins = tuple(dict.fromkeys(gtins))
        self._owner = np.array([self.gtins.index(g) for g in gtins], np.int64)
        self._desc = np.stack(descs) if descs else np.zeros((0, 1), np.float32)
        self._aspects = dict(zip(gtins, aspects, strict=True))
        self.temperature = temperature

    def aspect(self, gtin: str) -> float | None:
        """Width over height of the product's first reference photo (None when not in the catalog)."""
        return self._aspects.get(gtin)

    def similarities(self, crop: np.ndarray) -> dict[str, float]:
        """Similarity in [-1, 1] of the crop to each catalog product (its best reference photo)."""
        if not self.gtins or crop.shape[0] < 4 or crop.shape[1] < 4:
            return {}
        d = _descriptor(crop)
        dist = ((self._desc - d) ** 2).sum(1)
        sim = 1.0 - dist / 2.0
        best = np.full(len(self.gtins), -np.inf)
        np.maximum.at(best, self._owner, sim)
        return {g: float(s) for g, s in zip(self.gtins, best, strict=True)}

    def probabilities(self, crop: np.ndarray) -> dict[str, float]:
        """The similarities as a distribution over the catalog (softmax at `temperature`)."""
        sims = self.similarities(crop)
        if not sims:
            return {}
        v = np.array(list(sims.values()))
        e = np.exp((v - v.max()) / self.temperature)
        return {g: float(p) for g, p in zip(sims, e / e.sum(), strict=True)}


def _fuse(priors: Mapping[str, float], appearance: Mapping[str, float], catalog: Sequence[str]) -> dict[str, float]:
    """Posterior over products: priors (from the slot's memory, label, planogram, the shopper's basket)
    times the appearance likelihood, each floored so that no single source can veto. The floors are
    set so that a confident appearance overrules a prior that names another product (a planogram that
    is wrong, a product put where nobody saw it), and an unsure one does not."""
    keys = set(catalog) | set(priors)
    if not keys:
        return {}
    total = sum(priors.values())
    prior = {g: 0.05 / len(keys) + 0.95 * (priors.get(g, 0.0) / total if total > 0 else 1 / len(keys))
             for g in keys}
    post = {g: prior[g] * (0.002 + appearance.get(g, 0.0 if appearance else 1.0)) for g in keys}
    z = sum(post.values())
    return {g: p / z for g, p in post.items()}


# ---------------------------------------------------------------- per-slot state


@dataclass
class _Facing:
    gtin: str  # what it is believed to be: as stocked when first seen, or as put there
    x0: float  # patch columns
    x1: float
    confidence: float = 1.0


@dataclass
class _Frame:
    """What an interaction remembers of one frame: a small copy of the patch and who was near."""

    t: float
    patch: np.ndarray  # uint8, quarter size, divided by the light level of its frame
    persons: tuple[tuple[int, tuple[float, float, float, float]], ...]  # (track, box)
    hands: tuple[tuple[int, tuple[float, float, float, float], int], ...]  # (owner, box, hand track)


@dataclass
class _Interaction:
    t_start: float
    frames: deque[_Frame]
    stable: np.ndarray  # per column: frames it has been changed, clear of people and still
    changed: np.ndarray | None = None  # per column, at the last frame
    hidden: np.ndarray | None = None


@dataclass
class _Slot:
    spec: SlotSpec
    warp: _Warp
    full: _Warp
    label_warp: _Warp | None
    bbox: tuple[float, float, float, float]
    label_bbox: tuple[float, float, float, float] | None
    span: tuple[int, int] = (0, 0)  # its columns in the monitor's strip of all slot patches
    known: bool = False  # its settled look has been seen (free of people) at least once
    ref: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 3), np.float32))  # view into the strip
    ref_full: np.ndarray | None = None  # uint8 native-size patch of the settled look, for appearance
    back: np.ndarray | None = None  # W x 3 colour of the empty back
    facings: list[_Facing] = field(default_factory=list)
    facing_width: float = 0.0
    stocked: str = ""  # the product the slot's facings looked like when first seen
    changes: int = 0  # picks and puts judged here
    inter: _Interaction | None = None
    hand_run: int = 0
    disturb_run: int = 0
    clear_run: int = 0
    lonely_since: float | None = None  # when it started looking changed with nobody near
    near_t: float = -math.inf  # when a person's reach last covered it
    label: str | None = None
    label_tries: int = 0


@dataclass
class _TrackMemory:
    last_seen: float
    taken: dict[str, int] = field(default_factory=dict)  # gtin -> facings this track picked and still holds


def _resting_hands(frames: list[_Frame], region: tuple[float, float, float, float], when: float, rest_s: float
                   ) -> dict[int, float]:
    """Per hand track, the share of its frames away from the change (more than `rest_s` from it,
    between the first and the last frame the hand was at the slot) in which it was at the changed
    region. A hand hanging there all along, at the side of a shopper standing in front of the slot,
    says nothing about who changed it; a hand that came for the change was there only then. A hand
    there in half of those frames or more is resting and does not vote: around the change it would
    collect a vote every frame, where a reaching hand is seen for a few."""
    span: dict[int, list[float]] = {}
    for fr in frames:
        for _owner, _box, hand in fr.hands:
            span.setdefault(hand, [fr.t, fr.t])[1] = fr.t
    away = [(fr.t, {hand for _owner, box, hand in fr.hands if _box_overlap(box, region)})
            for fr in frames if abs(fr.t - when) > rest_s]
    share = {}
    for hand, (first, last) in span.items():
        mine = [there for t, there in away if first <= t <= last]
        if mine:
            share[hand] = sum(hand in there for there in mine) / len(mine)
    return share


def _box_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _bbox(quad: np.ndarray) -> tuple[float, float, float, float]:
    return (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))


# ---------------------------------------------------------------- the stage


class ShelfMonitor:
    """Watches the slots of one shelf camera and turns reaches into pick / put events.

    `slots`: the camera's planogram; `catalog`: GTIN -> reference images (or a ready `ProductMatcher`);
    `read_label`: reads EAN-13s from a label crop (e.g. `vision.codes`), None to skip label checks.
    """

    def __init__(self, slots: Sequence[SlotSpec], catalog: Mapping[str, Sequence[np.ndarray]] | ProductMatcher,
                 config: ShelfConfig | None = None, read_label: LabelReader | None = None) -> None:
        self.config = config or ShelfConfig()
        ids = [s.id for s in slots]
        if len(set(ids)) != len(ids):
            raise ValueError(f"slots: duplicate slot ids in {ids}")
        self.matcher = catalog if isinstance(catalog, ProductMatcher) else ProductMatcher(
            catalog, self.config.appearance_temperature)
        self._slots = [self._make_slot(s) for s in slots]
        self._maps, self._offsets = self._patch_maps()
        width = self._offsets[-1]
        # The settled looks of all slots side by side, in the light of the first frame: one array, so a
        # frame is compared with all of them in a few calls. Each slot's `ref` is a view of its columns.
        self._ref = np.zeros((self.config.patch_height, max(width, 1), 3), np.float32)
        self._known = np.zeros(max(width, 1), bool)
        self._level = np.full(max(width, 1), 16.0, np.float32)  # brightness of the empty back per column
        self._prev: np.ndarray | None = None
        for slot, a, b in zip(self._slots, self._offsets[:-1], self._offsets[1:], strict=True):
            slot.span = (a, b)
            slot.ref = self._ref[:, a:b]
        self._read_label = read_label
        self._tracks: dict[int, _TrackMemory] = {}
        self._chroma: np.ndarray | None = None
        self._t: float | None = None
        self._gain = 1.0
        self._frames = 0
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def _make_slot(self, spec: SlotSpec) -> _Slot:
        quad = _order_quad(spec.polygon)
        label = _order_quad(spec.label) if spec.label else None
        return _Slot(spec, _warp(quad, self.config.patch_height), _warp(quad, None),
                     None if label is None else _warp(label, None), _bbox(quad),
                     None if label is None else _bbox(label))

    def _patch_maps(self) -> tuple[tuple[np.ndarray, np.ndarray], list[int]]:
        """One remap table for all slot patches side by side: one call a frame instead of one per slot."""
        xs, ys, offsets = [], [], [0]
        for slot in self._slots:
            w, h = slot.warp.size
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5)
            pts = cv2.perspectiveTransform(np.stack([gx, gy], -1).reshape(-1, 1, 2), slot.warp.inverse).reshape(h, w, 2)
            xs.append(pts[..., 0] - 0.5)
            ys.append(pts[..., 1] - 0.5)
            offsets.append(offsets[-1] + w)
        if not xs:
            return (np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32)), offsets
        return cv2.convertMaps(np.hstack(xs), np.hstack(ys), cv2.CV_16SC2), offsets

    def _strip(self, image: np.ndarray) -> np.ndarray:
        """All slot patches of a frame side by side (uint8, lightly blurred against sensor noise)."""
        if not self._slots:
            return np.zeros(self._ref.shape, np.uint8)
        strip = cv2.remap(image, self._maps[0], self._maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.blur(strip, (3, 3))

    # ------------------------------------------------------------ public views

    def state(self) -> dict[str, SlotState]:
        """The current belief about every slot, by slot id."""
        out = {}
        for s in self._slots:
            gtins = tuple(f.gtin for f in s.facings)
            ok = None if s.label is None else s.label == s.spec.gtin
            out[s.spec.id] = SlotState(s.spec.id, s.known, gtins, s.label, ok)
        return out

    @property
    def memory(self) -> dict[str, int]:
        """What the monitor holds between frames, for checks that it stays bounded: per-track states,
        open interactions, and the frames they keep."""
        open_ = [s.inter for s in self._slots if s.inter is not None]
        return {"tracks": len(self._tracks), "interactions": len(open_),
                "frames": sum(len(i.frames) for i in open_)}

    # ------------------------------------------------------------ the verb

    def step(self, image: np.ndarray, t: float, tracks: Tracks) -> list[ShelfEvent]:
        """Take one frame (BGR uint8) at time `t` (seconds, increasing) with its tracks; return the
        events decided at this frame (their `t` is when the product moved, a little earlier)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
            raise ValueError(f"ShelfMonitor.step: image must be uint8 (H, W, 3) BGR, got {got}")
        if not math.isfinite(t) or (self._t is not None and t <= self._t):
            raise ValueError(f"ShelfMonitor.step: t must be finite and increasing, got {t!r} after {self._t!r}")
        self._t = t
        self._frames += 1
        persons, hands = self._people(tracks, t)
        strip8 = self._strip(image)
        strip = strip8.astype(np.float32)
        self._learn_new_slots(image, strip, persons)
        self._gain = self._global_gain(strip)
        changed, moving = self._column_changes(strip8)
        events: list[ShelfEvent] = []
        for slot in self._slots:
            if slot.known:
                a, b = slot.span
                events += self._watch(slot, image, strip[:, a:b], changed[a:b], moving[a:b], t, persons, hands)
        self._prev = strip8
        self._last = (image, strip)
        self._read_labels(image, persons)
        self._prune(t)
        return sorted(events, key=lambda e: (e.t, e.slot))

    def flush(self, t: float) -> list[ShelfEvent]:
        """The stream ended (at `t`, its last frame's time): settle every open interaction with what the
        last frame shows (a change still hidden behind someone was never seen and gives no event) and
        forget every track. The monitor can take frames again after."""
        if self._last is None:
            return []
        image, strip = self._last
        events: list[ShelfEvent] = []
        for slot in self._slots:
            inter = slot.inter
            if inter is None or inter.changed is None or inter.hidden is None:
                slot.inter = None
                continue
            a, b = slot.span
            events += self._judge(slot, image, strip[:, a:b], inter.changed, inter.changed & ~inter.hidden,
                                  partial=True)
            slot.inter = None
        self._tracks.clear()  # every track ended with the stream
        return sorted(events, key=lambda e: (e.t, e.slot))

    # ------------------------------------------------------------ tracks

    def _people(self, tracks: Tracks, t: float) -> tuple[list, list]:
        """Person boxes (track, box grown by the margin, reach box, box) and hands (owner, box, track)."""
        persons = []
        people = tracks.of("person")
        for box, tid in zip(people.xyxy.tolist(), people.track_id.tolist(), strict=True):
            x1, y1, x2, y2 = box
            h = max(y2 - y1, 1.0)
            m = self.config.box_margin * h
            r = self.config.reach * h
            self._tracks.setdefault(int(tid), _TrackMemory(t)).last_seen = t
            persons.append((int(tid), (x1 - m, y1 - m, x2 + m, y2 + m), (x1 - r, y1 - r, x2 + r, y2), tuple(box)))
        hand_tracks = tracks.of("hand")
        hands = [(int(owner), tuple(box), int(tid)) for box, owner, tid in
                 zip(hand_tracks.xyxy.tolist(), hand_tracks.owner.tolist(), hand_tracks.track_id.tolist(), strict=True)]
        return persons, hands

    def _prune(self, t: float) -> None:
        ttl = self.config.track_ttl_s
        for tid in [k for k, m in self._tracks.items() if t - m.last_seen > ttl]:
            del self._tracks[tid]

    # ------------------------------------------------------------ references

    def _covered_cols(self, slot: _Slot, persons: list) -> np.ndarray:
        """Patch columns hidden, or possibly hidden, behind a person box."""
        w, h = slot.warp.size
        cov = np.zeros(w, bool)
        for _, box, _, _ in persons:
            if not _box_overlap(box, slot.bbox):
                continue
            x1, y1 = max(box[0], slot.bbox[0]), max(box[1], slot.bbox[1])
            x2, y2 = min(box[2], slot.bbox[2]), min(box[3], slot.bbox[3])
            pts = cv2.perspectiveTransform(np.float32([[[x1, y1]], [[x2, y1]], [[x2, y2]], [[x1, y2]]]),
                                           slot.warp.matrix).reshape(-1, 2)
            a, b = int(np.floor(pts[:, 0].min())), int(np.ceil(pts[:, 0].max()))
            cov[max(0, a):max(0, min(w, b))] = True
        return cov

    def _learn_new_slots(self, image: np.ndarray, strip: np.ndarray, persons: list) -> None:
        """A slot's first reference is its first look free of people; the back colour comes from all."""
        fresh = []
        for slot in self._slots:
            if not slot.known and not self._covered_cols(slot, persons).any():
                a, b = slot.span
                slot.ref[...] = strip[:, a:b] / self._gain
                slot.ref_full = _apply(image, slot.full)
                slot.known = True
                self._known[a:b] = True
                fresh.append(slot)
        if not fresh:
            return
        known = [s for s in self._slots if s.ref_full is not None]
        if self._chroma is None or len(fresh) > len(known) // 2:
            self._chroma = _back_chroma([self._clean(s, s.ref_full) for s in known])
        for slot in fresh:
            assert slot.ref_full is not None
            if self._wants_label(slot, persons):  # what the label says decides how wide a facing is
                self._read_one_label(slot, image)
            slot.back = _back_profile(self._clean(slot, slot.ref_full), self._chroma)
            self._level[slot.span[0]:slot.span[1]] = max(float(slot.back.mean()), 16.0)
            self._stock(slot)

    def _stock(self, slot: _Slot) -> None:
        """What a slot holds when first seen: its facings, counted as the product they look like. The
        planogram and the shelf-edge label are priors; the facings' own appearance decides when it is
        sure (a planogram can be wrong). A facing's width depends on the product, so each candidate
        product is tried with the layout its shape gives, and judged on the first facing of it."""
        assert slot.ref_full is not None and slot.back is not None
        filled = _filled(self._clean(slot, slot.ref_full), slot.back)
        runs = _runs(filled.mean(0) > 0.3)
        priors = self._slot_priors(slot)
        candidates = set(priors)
        if runs:  # ask the catalog what the first facing may be, cut by its run and by the plan's shape
            x0, x1 = runs[0]
            height = _product_height(filled, filled.mean(0) > 0.3)
            for width in {x1 - x0, height * (self.matcher.aspect(slot.spec.gtin) or 1.0)}:
                crop = self._crop(slot, slot.ref_full, filled, x0, x0 + max(width, 3.0))
                sims = self.matcher.similarities(crop) if crop is not None else {}
                candidates |= set(sorted(sims, key=sims.__getitem__)[-3:])
        best: tuple[float, str, Layout] | None = None
        for gtin in sorted(candidates):
            layout = count_facings(filled, self.matcher.aspect(gtin) or 1.0)
            if runs and not layout.facings:
                continue  # something stands there, but not in this product's shape
            crop = self._crop(slot, slot.ref_full, filled, *layout.facings[0]) if layout.facings else None
            probs = self.matcher.probabilities(crop) if crop is not None else {}
            score = _fuse(priors, probs, self.matcher.gtins).get(gtin, 0.0)
            if best is None or score > best[0]:
                best = (score, gtin, layout)
        if best is None:
            slot.stocked, slot.facings, slot.facing_width = slot.spec.gtin, [], 0.0
            return
        score, slot.stocked, layout = best
        slot.facings = [_Facing(slot.stocked, a, b, score) for a, b in layout.facings]
        slot.facing_width = layout.facing_width

    @staticmethod
    def _clean(slot: _Slot, full: np.ndarray) -> np.ndarray:
        """A native-size slot patch brought to the watched patch's size by area averaging: for counting."""
        return cv2.resize(full, slot.warp.size, interpolation=cv2.INTER_AREA).astype(np.float32)

    def _global_gain(self, strip: np.ndarray) -> float:
        """The light level now against the references, over all slots (robust to a few occluded ones)."""
        cols = self._known[::4]
        if not cols.any():
            return 1.0
        ratio = _lum(strip[::4, ::4][:, cols]) / np.maximum(_lum(self._ref[::4, ::4][:, cols]), 8.0)
        return float(np.median(ratio))

    # ------------------------------------------------------------ watching one slot

    def _column_changes(self, strip8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per strip column: changed from the settled look, and moving since the last frame."""
        ref8 = cv2.convertScaleAbs(self._ref, alpha=self._gain)  # the settled looks in today's light
        threshold = (self.config.change_threshold * self._gain) * self._level
        changed = self._differs(strip8, ref8, threshold) & self._known
        moving = self._differs(strip8, self._prev, threshold) if self._prev is not None else np.zeros_like(changed)
        return changed, moving

    def _differs(self, strip8: np.ndarray, other8: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Columns where enough pixels lie outside the range of `other8`'s 3x3 neighbourhood by more than the
        column's threshold. The neighbourhood absorbs a camera that sways by a pixel: a product's edge
        moving by one pixel is not a change. All in uint8 OpenCV calls: this runs on every frame."""
        kernel = np.ones((3, 3), np.uint8)
        lo, hi = cv2.erode(other8, kernel), cv2.dilate(other8, kernel)
        d = cv2.max(cv2.subtract(lo, strip8), cv2.subtract(strip8, hi))
        b, g, r = cv2.split(d)
        out = cv2.max(cv2.max(b, g), r) > threshold[None, :]
        return np.count_nonzero(out, axis=0) > self.config.column_fraction * out.shape[0]

    def _watch(self, slot: _Slot, image: np.ndarray, patch: np.ndarray, changed: np.ndarray, moving: np.ndarray,
               t: float, persons: list, hands: list) -> list[ShelfEvent]:
        cfg = self.config
        covered = self._covered_cols(slot, persons)
        near = [p for p in persons if _box_overlap(p[2], slot.bbox)]
        if near:
            slot.near_t = t
        # A detector misses a person now and then: a reach seen a moment ago still counts.
        reached = t - slot.near_t <= self.config.reach_memory_s
        hand_in = [h for h in hands if _box_overlap(h[1], slot.bbox)]
        slot.hand_run = slot.hand_run + 1 if hand_in else 0
        slot.disturb_run = slot.disturb_run + 1 if changed.any() and reached else 0

        if slot.inter is None:
            if slot.hand_run >= cfg.hand_frames or slot.disturb_run >= cfg.disturb_frames:
                slot.inter = _Interaction(t, deque(maxlen=int(cfg.max_interaction_s * 30) + 1),
                                          np.zeros(len(changed), np.int32))
                slot.lonely_since = None
            else:
                self._idle(slot, image, patch, changed, t, near)
                return []
        inter = slot.inter
        small = cv2.resize(patch, (max(2, patch.shape[1] // 4), max(2, patch.shape[0] // 4)),
                           interpolation=cv2.INTER_AREA)
        inter.frames.append(_Frame(t, cv2.convertScaleAbs(small, alpha=1.0 / self._gain),  # in the reference's light
                                   tuple((p[0], p[3]) for p in near), tuple(hand_in)))
        # Behind a box is not always behind a body: a column showing bare shelf back is in view.
        bare = _filled(patch[::2], slot.back).mean(0) < 0.15
        hidden = covered & ~bare
        still = changed & ~hidden & ~moving
        inter.stable = np.where(still, inter.stable + 1, 0)
        inter.changed, inter.hidden = changed, hidden
        free = not covered.any() and not hand_in and not moving.any()
        slot.clear_run = slot.clear_run + 1 if free else 0
        if t - inter.t_start > cfg.max_interaction_s:
            slot.inter = None  # something stays in front of the shelf: forget, re-learn when clear
            if free:
                self._adopt(slot, image, patch)
            return []
        if slot.clear_run >= cfg.settle_frames:
            events = self._judge(slot, image, patch, changed, np.ones_like(changed))
            slot.inter = None
            self._adopt(slot, image, patch)
            return events
        if hand_in:
            return []
        # A part of the slot may settle while the shopper still stands in front of the rest of it.
        ready = self._settled_runs(slot, changed, hidden)
        return self._judge(slot, image, patch, changed, ready, partial=True) if ready.any() else []

    def _settled_runs(self, slot: _Slot, changed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """Columns of changed regions in view and still, with no hidden change in or next to them (the rest
        of a facing taken together with them may be behind a body). Changed columns a small gap apart are
        one region: two facings taken together are one pick."""
        assert slot.inter is not None
        ready = np.zeros_like(changed)
        fw = slot.facing_width or len(changed) / 4
        pad = max(2, int(0.3 * fw))
        for a, b in self._regions(changed & ~hidden, fw):
            lo, hi = max(0, a - pad), min(len(changed), b + pad)
            if (changed & hidden)[lo:hi].any():
                continue
            part = changed[a:b]
            if (slot.inter.stable[a:b][part] >= self.config.settle_frames).all():
                ready[a:b] = part
        return ready

    def _idle(self, slot: _Slot, image: np.ndarray, patch: np.ndarray, changed: np.ndarray, t: float,
              near: list) -> None:
        """No interaction: follow slow light changes; adopt a lasting change that nobody made (no event)."""
        if not changed.any():
            slot.lonely_since = None
            if self._frames % 4 == 0:  # slow light changes need no update every frame
                a = min(1.0, 4 * self.config.idle_rate)
                slot.ref *= 1 - a
                slot.ref += (a / self._gain) * patch
            return
        if near:
            return
        if slot.lonely_since is None:
            slot.lonely_since = t
        elif t - slot.lonely_since >= self.config.relearn_s:
            self._adopt(slot, image, patch)
            slot.lonely_since = None

    def _adopt(self, slot: _Slot, image: np.ndarray, patch: np.ndarray) -> None:
        """Make the current look the slot's reference and re-align the remembered facings with it."""
        assert slot.back is not None
        slot.ref[...] = patch / self._gain
        slot.ref_full = _apply(image, slot.full)
        slot.clear_run = 0
        filled = _filled(self._clean(slot, slot.ref_full), slot.back)
        layout = count_facings(filled, self.matcher.aspect(self._majority(slot)) or 1.0)
        if layout.count != len(slot.facings):
            self._realign(slot, layout)

    def _realign(self, slot: _Slot, layout: Layout) -> None:
        """Keep each remembered facing's identity where a counted facing overlaps it; a facing nobody saw
        arrive is taken for what most of the slot holds."""
        old, usual = slot.facings, self._majority(slot)
        new = []
        for a, b in layout.facings:
            best = max(old, key=lambda f: min(b, f.x1) - max(a, f.x0), default=None)
            if best is not None and min(b, best.x1) - max(a, best.x0) > 0.3 * (b - a):
                new.append(_Facing(best.gtin, a, b, best.confidence))
            else:
                new.append(_Facing(usual, a, b, 0.5))
        slot.facings = new
        if layout.facing_width:
            slot.facing_width = layout.facing_width

    # ------------------------------------------------------------ judging a change

    def _judge(self, slot: _Slot, image: np.ndarray, patch: np.ndarray, changed: np.ndarray, allowed: np.ndarray,
               partial: bool = False) -> list[ShelfEvent]:
        """Compare the slot before (its reference) and now in each changed region: facings that are gone
        were picked, facings that appeared were put. The region's reference then takes the new look."""
        assert slot.ref_full is not None and slot.back is not None
        fw = slot.facing_width or slot.warp.size[0] / 4
        full = _apply(image, slot.full)
        before = _filled(self._clean(slot, slot.ref_full), slot.back)
        after = _filled(self._clean(slot, full), slot.back)
        events = []
        for a, b in self._regions(changed & allowed, fw):
            inside = [f for f in slot.facings if min(b, f.x1) - max(a, f.x0) >= 0.5 * (f.x1 - f.x0)]
            gone = [f for f in inside if after[:, int(f.x0):int(math.ceil(f.x1))].mean(0).mean() < 0.4]
            news = self._new_runs(slot, after, a, b, [f for f in inside if f not in gone])
            if partial and not gone and not news:
                continue  # not (yet) a shelf change: an occluder that stood still
            if partial and any(self._looks_unlike_products(slot, full, after, x0, x1) for x0, x1, _ in news):
                continue  # an arm or a sleeve resting where a box missed it: wait until the slot is clear
            if gone:
                events.append(self._pick(slot, gone, before, a, b, patch))
            for x0, x1, n in news:
                events.append(self._put(slot, full, after, x0, x1, n, a, b, patch))
            slot.changes += bool(gone or news)
            slot.ref[:, a:b] = patch[:, a:b] / self._gain
            s = slot.full.size[0] / slot.warp.size[0]
            slot.ref_full[:, int(a * s):int(math.ceil(b * s))] = full[:, int(a * s):int(math.ceil(b * s))]
        return events

    @staticmethod
    def _regions(mask: np.ndarray, fw: float) -> list[tuple[int, int]]:
        """Changed runs, joined across the small gaps between neighbouring facings."""
        out: list[list[int]] = []
        for a, b in _runs(mask):
            if out and a - out[-1][1] <= 0.5 * fw:
                out[-1][1] = b
            else:
                out.append([a, b])
        return [(a, b) for a, b in out if b - a >= 0.25 * fw]

    def _new_runs(self, slot: _Slot, after: np.ndarray, a: int, b: int, kept: list[_Facing]
                  ) -> list[tuple[int, int, int]]:
        """Runs of product in [a, b) now that no remembered facing explains: (x0, x1, facings in it)."""
        cols = after.mean(0) > 0.3
        cols[:a] = False
        cols[b:] = False
        for f in kept:
            cols[int(f.x0):int(math.ceil(f.x1))] = False
        fw = max(slot.facing_width, 4.0)
        out = []
        for x0, x1 in _runs(cols):
            if x1 - x0 < self.config.min_facing_fraction * fw:
                continue
            # One facing of whatever product came, unless the run is as wide as several of the slot's own.
            n = 1 if x1 - x0 <= 1.6 * fw else max(1, int(round((x1 - x0 + 0.12 * fw) / (1.12 * fw))))
            out.append((x0, x1, n))
        return out

    def _looks_unlike_products(self, slot: _Slot, full: np.ndarray, after: np.ndarray, x0: int, x1: int) -> bool:
        crop = self._crop(slot, full, after, x0, x1)
        sims = self.matcher.similarities(crop) if crop is not None else {}
        return not sims or max(sims.values()) < self.config.min_put_similarity

    def _crop(self, slot: _Slot, full: np.ndarray, filled: np.ndarray, x0: float, x1: float) -> np.ndarray | None:
        """The native-size crop of a facing: its columns, and the rows of what stands there."""
        cols = np.zeros(filled.shape[1], bool)
        cols[int(x0):int(math.ceil(x1))] = True
        h = _product_height(filled, cols)
        ya = filled.shape[0] - h if h else 0
        sx, sy = slot.full.size[0] / slot.warp.size[0], slot.full.size[1] / slot.warp.size[1]
        fa, fb = int(max(0, x0 * sx)), int(min(full.shape[1], math.ceil(x1 * sx)))
        if fb - fa < 3 or full.shape[0] - int(ya * sy) < 3:
            return None
        return full[int(ya * sy):, fa:fb]

    # ------------------------------------------------------------ pick, put, who and when

    def _pick(self, slot: _Slot, gone: list[_Facing], before: np.ndarray, a: int, b: int,
              patch: np.ndarray) -> ShelfEvent:
        assert slot.ref_full is not None
        priors: dict[str, float] = {}
        appearance: dict[str, float] = {}
        for f in gone:
            # What the slot remembers of this facing: how it was stocked, or what a put placed there.
            priors[f.gtin] = priors.get(f.gtin, 0.0) + max(f.confidence, 0.5)
            crop = self._crop(slot, slot.ref_full, before, f.x0, f.x1)
            for g, p in (self.matcher.probabilities(crop) if crop is not None else {}).items():
                appearance[g] = appearance.get(g, 0.0) + p / len(gone)
        post = _fuse(priors, appearance, self.matcher.gtins)
        gtin = max(post, key=post.__getitem__)
        slot.facings = [f for f in slot.facings if f not in gone]
        when, track, track_conf, rivals = self._who_and_when(slot, a, b, patch, "pick")
        mem = self._tracks.get(track)
        if mem is not None:
            mem.taken[gtin] = mem.taken.get(gtin, 0) + len(gone)
        return ShelfEvent(round(when, 3), slot.spec.id, "pick", gtin, len(gone), track, round(post[gtin], 3),
                          round(track_conf, 3), self._sources(slot, gtin, priors, appearance), rivals)

    def _put(self, slot: _Slot, full: np.ndarray, after: np.ndarray, x0: int, x1: int, qty: int, a: int, b: int,
             patch: np.ndarray) -> ShelfEvent:
        step = (x1 - x0) / qty
        crop = self._crop(slot, full, after, x0, x0 + step)
        appearance = self.matcher.probabilities(crop) if crop is not None else {}
        when, track, track_conf, rivals = self._who_and_when(slot, a, b, patch, "put")
        priors: dict[str, float] = {}
        mem = self._tracks.get(track)
        if mem is not None and mem.taken:  # a shopper puts back what they took, most of the time
            total = sum(mem.taken.values())
            for g, n in mem.taken.items():
                priors[g] = 0.5 * n / total
        priors[slot.spec.gtin] = priors.get(slot.spec.gtin, 0.0) + 0.25
        post = _fuse(priors, appearance, self.matcher.gtins)
        gtin = max(post, key=post.__getitem__)
        conf = post[gtin]
        slot.facings += [_Facing(gtin, x0 + i * step, x0 + (i + 1) * step, conf) for i in range(qty)]
        slot.facings.sort(key=lambda f: f.x0)
        if mem is not None and gtin in mem.taken:
            mem.taken[gtin] -= qty
            if mem.taken[gtin] <= 0:
                del mem.taken[gtin]
        return ShelfEvent(round(when, 3), slot.spec.id, "put", gtin, qty, track, round(conf, 3), round(track_conf, 3),
                          self._sources(slot, gtin, priors, appearance), rivals)

    @staticmethod
    def _majority(slot: _Slot) -> str:
        gtins = [f.gtin for f in slot.facings] or [slot.stocked or slot.spec.gtin]
        return max(set(gtins), key=gtins.count)

    @staticmethod
    def _slot_priors(slot: _Slot) -> dict[str, float]:
        """What should stand in a slot: the planogram's product, and the label's when it was read."""
        priors = {slot.spec.gtin: 0.6}
        if slot.label is not None:
            priors[slot.label] = priors.get(slot.label, 0.0) + 0.6
        return priors

    def _sources(self, slot: _Slot, gtin: str, priors: Mapping[str, float],
                 appearance: Mapping[str, float]) -> tuple[str, ...]:
        out = []
        if gtin == slot.spec.gtin:
            out.append("planogram")
        if slot.label == gtin:
            out.append("label")
        if priors.get(gtin, 0.0) > 0 and gtin != slot.spec.gtin:
            out.append("memory")
        if appearance and max(appearance, key=appearance.__getitem__) == gtin:
            out.append("appearance")
        return tuple(out)

    def _who_and_when(self, slot: _Slot, a: int, b: int, patch: np.ndarray, action: Action
                      ) -> tuple[float, int, float, tuple[tuple[int, float], ...]]:
        """When the product moved, whose reach did it and with what share of the votes, and the
        `RIVALS` next likeliest persons with theirs, from the interaction's frames."""
        assert slot.inter is not None
        frames = list(slot.inter.frames)
        when = self._when(slot, frames, a, b, patch) + (self.config.release_s if action == "put" else 0.0)
        lo, hi = self._image_x(slot, a), self._image_x(slot, b)
        region = (lo, slot.bbox[1], hi, slot.bbox[3])
        votes: dict[int, float] = {}
        resting = _resting_hands(frames, region, when, self.config.rest_s)
        for fr in frames:
            w = math.exp(-((fr.t - when) / 1.0) ** 2)
            for owner, box, hand in fr.hands:
                if owner >= 0 and _box_overlap(box, region) and resting.get(hand, 0.0) < 0.5:
                    votes[owner] = votes.get(owner, 0.0) + w
            for tid, box in fr.persons:
                # A reaching arm makes a side of the person's box: a side at the change is a reach into it.
                h = max(box[3] - box[1], 1.0)
                d = min(max(0.0, lo - x, x - hi) for x in (box[0], box[2]))
                votes[tid] = votes.get(tid, 0.0) + w * (0.1 + 2.0 * math.exp(-((d / (0.06 * h)) ** 2)))
        if not votes:
            return when, -1, 0.0, ()
        total = sum(votes.values())
        best, *others = sorted(votes, key=lambda tid: (-votes[tid], tid))
        rivals = tuple((tid, votes[tid] / total) for tid in others[:RIVALS])
        return when, best, votes[best] / total, rivals

    def _image_x(self, slot: _Slot, col: float) -> float:
        h = slot.warp.size[1]
        p = cv2.perspectiveTransform(np.float32([[[col, h / 2]]]), slot.warp.inverse)
        return float(p[0, 0, 0])

    def _when(self, slot: _Slot, frames: list[_Frame], a: int, b: int, patch: np.ndarray) -> float:
        """The moment the look of columns [a, b) changed, from the pixels where before and after differ:
        between the last frame that still showed the old look and the first that showed the new one
        (a hand covers only part of a facing until it moves). A region hidden for long falls back to a
        withdrawal before the new look showed."""
        assert slot.back is not None
        if not frames:
            return self._t or 0.0
        h, w = frames[0].patch.shape[:2]
        qa, qb = a // 4, max(a // 4 + 1, (b + 3) // 4)
        now = cv2.resize(patch / self._gain, (w, h), interpolation=cv2.INTER_AREA)[:, qa:qb]
        ref = cv2.resize(slot.ref, (w, h), interpolation=cv2.INTER_AREA)[:, qa:qb]
        level = max(float(slot.back.mean()), 16.0) * self.config.change_threshold
        informative = _cmax(np.abs(now - ref)) > 2 * level  # where before and after differ
        if informative.sum() < 3:
            return frames[-1].t
        stack = np.stack([f.patch[:, qa:qb] for f in frames]).astype(np.float32)
        like_now = (_cmax(np.abs(stack - now)) < level)[:, informative].mean(1)
        like_ref = (_cmax(np.abs(stack - ref)) < level)[:, informative].mean(1)
        times = np.array([f.t for f in frames])
        # A change point: before it the region shows the old look where it shows anything, after it the new
        # one. Frames where something hides it (a passer-by, the hand, a held product that looks like the
        # old facing) speak for neither and are left out by the dead zone.
        d = like_ref - like_now
        d[np.abs(d) < 0.1] = 0.0
        prefix = np.cumsum(d)
        if prefix.max() <= 0:  # the old look was never seen: only when the new one appeared
            k2 = int(np.argmax(d < 0)) if (d < 0).any() else len(frames) - 1
            return float(times[k2]) - self.config.withdraw_s
        k1 = int(np.argmax(prefix))
        later = np.flatnonzero(d[k1 + 1:] < 0)
        k2 = k1 + 1 + int(later[0]) if len(later) else len(frames) - 1
        t1, t2 = float(times[k1]), float(times[k2])
        if t2 - t1 <= 1.0:
            return (t1 + t2) / 2
        return max(t1, t2 - self.config.withdraw_s)  # long hidden: it moved a withdrawal before it showed

    # ------------------------------------------------------------ labels

    def _read_labels(self, image: np.ndarray, persons: list) -> None:
        """Read one unread shelf-edge label a frame (reading costs milliseconds), where no one stands."""
        for slot in self._slots:
            if self._wants_label(slot, persons):
                self._read_one_label(slot, image)
                return

    def _wants_label(self, slot: _Slot, persons: list) -> bool:
        return (self._read_label is not None and slot.label is None and slot.label_warp is not None
                and slot.label_tries < self.config.label_attempts
                and not any(_box_overlap(p[1], slot.label_bbox) for p in persons))

    def _read_one_label(self, slot: _Slot, image: np.ndarray) -> None:
        assert self._read_label is not None and slot.label_warp is not None
        slot.label_tries += 1
        crop = _apply(image, slot.label_warp)
        s = self.config.label_upscale
        if s != 1.0:
            crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        texts = [x for x in self._read_label(crop) if is_valid_gtin13(x)]
        if not texts:
            return
        slot.label = texts[0]
        if slot.known and slot.changes == 0 and slot.label != slot.stocked and slot.back is not None:
            self._stock(slot)  # the label names another product: look at the facings again with it in mind
