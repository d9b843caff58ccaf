"""Multi-object tracking of persons and hands, and which person each hand belongs to.

`Tracker.update(detections, t=...) -> Tracks` is ByteTrack's two-stage association (Zhang et al.,
2022): confident detections first, then the weak ones against tracks still unmatched, so a person
half hidden behind another keeps their id on a low-scored box instead of being dropped. Motion is
a constant-velocity Kalman filter on box centre and size, for all tracks at once in numpy. Each
class has its own distance, matching only within the class: persons by IoU weighted by how well
their heights overlap, and hands, which at 15 fps can move more than their own width between
frames, by centre distance in units of their size. Given the frame, persons are also matched by
their look (a colour histogram of the torso, learnt only where no other person covers them): boxes
say little while one shopper walks hidden behind another, their clothes tell them apart after.

A pick is charged to the person whose hand took it, so every confirmed hand carries an `owner`:
a person whose box holds it and whose shoulders it is within an arm's reach of, decided by a vote
over recent frames that keeps the current owner while they still explain the hand. Two shoppers
side by side can both reach a hand between them; the owner changes only on a clear, sustained
margin, and becomes unknown (-1) when the owner in view cannot be holding it.

All per-track state lives in one table of parallel arrays whose rows are the live tracks, so a
dead track leaves nothing behind: a store runs for weeks and the tracker's memory must not grow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

import numpy as np

from vision.inference.boxes import box_iou
from vision.types import Detections, Tracks

CostFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------- distances

@dataclass(frozen=True)
class Distance:
    """A cost between track boxes (M, 4) and detection boxes (N, 4) -> (M, N), lower is closer.

    A pair matches only at a cost of at most `gate` (first stage, confident detections) or
    `low_gate` (second stage: weak detections must fit better, they are often false).
    """

    name: str
    cost: CostFn
    gate: float
    low_gate: float


def iou_cost(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    return 1.0 - box_iou(tracks, dets)


def height_iou_cost(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """1 - IoU x height-IoU (Hybrid-SORT's height-modulated IoU, Yang et al., 2024).

    Two shoppers walking one behind the other have boxes that overlap almost wholly and whose
    widths jump with every arm swing; what stays apart is their vertical extent (feet lower for
    the nearer one, heads at their own heights), which plain IoU weighs no more than the arms.
    """
    top = np.maximum(tracks[:, None, 1], dets[None, :, 1])
    bottom = np.minimum(tracks[:, None, 3], dets[None, :, 3])
    span = np.maximum(tracks[:, None, 3], dets[None, :, 3]) - np.minimum(tracks[:, None, 1], dets[None, :, 1])
    height_iou = np.clip(bottom - top, 0, None) / np.maximum(span, 1e-9)
    return 1.0 - box_iou(tracks, dets) * height_iou


def centre_cost(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """Centre distance over the pair's mean side length: a hand one hand-width away costs 1."""
    ct = (tracks[:, :2] + tracks[:, 2:]) / 2
    cd = (dets[:, :2] + dets[:, 2:]) / 2
    st = np.sqrt(np.prod(np.clip(tracks[:, 2:] - tracks[:, :2], 1.0, None), axis=1))
    sd = np.sqrt(np.prod(np.clip(dets[:, 2:] - dets[:, :2], 1.0, None), axis=1))
    return np.linalg.norm(ct[:, None] - cd[None], axis=2) / ((st[:, None] + sd[None]) / 2)


# IoU gates are ByteTrack's (IoU >= 0.2, then >= 0.5 for weak boxes).
IOU = Distance("iou", iou_cost, gate=0.8, low_gate=0.5)
HEIGHT_IOU = Distance("height_iou", height_iou_cost, gate=0.8, low_gate=0.5)
CENTRE = Distance("centre", centre_cost, gate=2.0, low_gate=1.0)
DISTANCES: Mapping[str, Distance] = MappingProxyType({d.name: d for d in (IOU, HEIGHT_IOU, CENTRE)})


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds and lifecycle of the tracker, in frames of the camera's `fps`.

    `distances` maps a class name to a name in `DISTANCES` or a `Distance`; other classes use IoU.
    """

    high_threshold: float = 0.5  # detections at least this confident go to the first stage
    low_threshold: float = 0.1  # below this a detection is ignored; in between: second stage only
    new_track_threshold: float = 0.6  # an unmatched detection at least this confident starts a track
    # An unmatched detection overlapping one matched to a track this much (IoU) is a second box on the
    # same object, which the detector's NMS (IoU 0.7) let through, not a new one: it starts no track.
    duplicate_iou: float = 0.5
    n_init: int = 3  # hits before a track is confirmed (and output)
    max_age: int = 30  # frames without a match before a track is removed
    fps: float = 15.0  # converts the gap between two update times into frames
    distances: Mapping[str, str | Distance] = field(
        default_factory=lambda: {"person": "height_iou", "hand": "centre"})
    position_noise: float = 0.05  # Kalman measurement and position noise, fraction of the box size
    velocity_noise: float = 0.05  # Kalman velocity noise per frame, fraction of the box size
    person_class: str = "person"
    hand_class: str = "hand"
    reach: float = 0.4  # arm's reach from the shoulders, fraction of the person's height
    owner_window: int = 15  # detection frames of votes an owner is decided on
    owner_min_votes: int = 3  # votes a person needs in the window to become the owner of an unowned hand
    owner_switch: int = 5  # votes in a row a challenger needs to take an owned hand over
    owner_cost_margin: float = 0.25  # in reaches: how much better than anyone a challenger must explain a hand
    # Persons also match by their look (colours of the torso, `person_looks`) when `update` gets the frame:
    # the cost grows by this much at the largest difference. Boxes say little while one shopper walks
    # hidden behind another; clothes tell them apart once they separate.
    look_weight: float = 2.0
    look_clean: float = 0.2  # a person box covered more than this (share of its area) by another one
    #                          does not update its track's look: it shows the other shopper too
    look_momentum: float = 0.9  # a track's look is this much its old look and the rest the new box's
    # A weak box (second stage) covered more than this by another person box is matched without its look:
    # it is most often the sliver of a shopper left in view beside one walking past, whose colours are the
    # shopper's but whose box is only the part in view; followed by its look, the track slides away with it.
    look_weak_clean: float = 0.6

    def __post_init__(self) -> None:
        _check_range("high_threshold", self.high_threshold, 0.0, 1.0)
        _check_range("low_threshold", self.low_threshold, 0.0, self.high_threshold, "high_threshold")
        _check_range("new_track_threshold", self.new_track_threshold, 0.0, 1.0)
        _check_range("duplicate_iou", self.duplicate_iou, 0.0, 1.0)
        for name in ("n_init", "max_age", "owner_window", "owner_min_votes", "owner_switch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrackerConfig.{name}: expected an integer of at least 1, got {value!r}")
        for name in ("owner_min_votes", "owner_switch"):  # more votes than the window holds: never decided
            if getattr(self, name) > self.owner_window:
                raise ValueError(f"TrackerConfig.{name}: expected at most owner_window ({self.owner_window}), "
                                 f"got {getattr(self, name)}")
        for name in ("fps", "position_noise", "velocity_noise", "reach"):
            _check_positive(name, getattr(self, name))
        _check_range("owner_cost_margin", self.owner_cost_margin, 0.0, 10.0)
        _check_range("look_weight", self.look_weight, 0.0, 10.0)
        _check_range("look_clean", self.look_clean, 0.0, 1.0)
        _check_range("look_weak_clean", self.look_weak_clean, 0.0, 1.0)
        _check_range("look_momentum", self.look_momentum, 0.0, 1.0)
        if not isinstance(self.distances, Mapping):
            raise ValueError(f"TrackerConfig.distances: expected a mapping of class name to distance, "
                             f"got {type(self.distances).__name__}")
        resolved = {str(k): _resolve_distance(k, v) for k, v in self.distances.items()}
        object.__setattr__(self, "distances", MappingProxyType(resolved))

    def distance(self, class_name: str | None) -> Distance:
        return self.distances.get(class_name, IOU) if class_name is not None else IOU  # type: ignore[return-value]


def _check_range(name: str, value: object, lo: float, hi: float, hi_name: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi
    if not ok:
        bound = f"{hi_name} ({hi})" if hi_name else str(hi)
        raise ValueError(f"TrackerConfig.{name}: expected a number from {lo} to {bound}, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"TrackerConfig.{name}: expected a finite number above 0, got {value!r}")


def _resolve_distance(cls: object, value: object) -> Distance:
    if isinstance(value, Distance):
        return value
    if isinstance(value, str) and value in DISTANCES:
        return DISTANCES[value]
    raise ValueError(f"TrackerConfig.distances[{cls!r}]: expected one of {', '.join(DISTANCES)} or a Distance, "
                     f"got {value!r}")


# ---------------------------------------------------------------- assignment

def assign(cost: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching where leaving a pair unmatched costs `gate`: (rows, cols).

    This is lapjv's `cost_limit` as ByteTrack uses it: each row or column may stay unmatched at
    half the gate, so one good match is never traded for two poor ones, and no pair costlier than
    the gate matches. Solved exactly with our own Hungarian method rather than scipy's: scipy is
    not a dependency, and one solver everywhere keeps ids identical between installations.
    """
    cost = np.asarray(cost, np.float64)
    feasible = np.isfinite(cost) & (cost <= gate)
    # Pairs that are each other's only candidate need no search: at 15 fps most tracks have one box
    # near them, and a row or column with no candidate at all stays unmatched. Only the rest, where
    # candidates compete, goes to the O(n^3) solver; the parts are independent, so this is still exact.
    lone = feasible & (feasible.sum(axis=1, keepdims=True) == 1) & (feasible.sum(axis=0, keepdims=True) == 1)
    rows, cols = np.nonzero(lone)
    rest_r = np.flatnonzero(feasible.any(axis=1) & ~lone.any(axis=1))
    rest_c = np.flatnonzero(feasible.any(axis=0) & ~lone.any(axis=0))
    if len(rest_r) and len(rest_c):
        r, c = _assign_dense(np.where(feasible, cost, np.inf)[np.ix_(rest_r, rest_c)], gate)
        rows, cols = np.concatenate([rows, rest_r[r]]), np.concatenate([cols, rest_c[c]])
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def _assign_dense(cost: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    n, m = cost.shape
    forbidden = 2.0 * gate + 1.0  # dearer than leaving both unmatched (gate): never chosen
    square = np.full((n + m, m + n), gate / 2.0)
    square[:n, :m] = np.where(np.isfinite(cost), cost, forbidden)
    square[n:, m:] = 0.0
    col_of_row = _hungarian(square)
    rows = np.flatnonzero(col_of_row[:n] < m)
    cols = col_of_row[rows]
    keep = np.isfinite(cost[rows, cols])
    return rows[keep], cols[keep]


def _hungarian(cost: np.ndarray) -> np.ndarray:
    """Column assigned to each row of a square cost matrix (shortest augmenting paths, O(n^3)).

    The inner scans are numpy; ties go to the lowest index, so the result is deterministic.
    """
    n = cost.shape[0]
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    row_of = np.zeros(n + 1, np.int64)  # 1-based row matched to each 1-based column; 0 = none
    way = np.zeros(n + 1, np.int64)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv[1:], np.inf))) + 1
            delta = minv[j1]
            u[row_of[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    col_of_row = np.zeros(n, np.int64)
    col_of_row[row_of[1:] - 1] = np.arange(n)
    return col_of_row


# ---------------------------------------------------------------- Kalman filter (all tracks at once)

# State: centre x, centre y, width, height and their velocities per frame.
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
# A box may move its own size in one frame at 15 fps (a hand does): the first velocity is a wide guess.
_INITIAL_VELOCITY_STD = 1.0
# Box sizes drift a tenth as fast as box positions. A person's box widens and narrows with every arm
# swing; a filter that follows that noise predicts boxes that shrink to nothing, and it loses what
# tells two shoppers one behind the other apart: their heights.
_SIZE_DRIFT = np.array([1.0, 1.0, 0.1, 0.1])


def _xyxy_to_z(xyxy: np.ndarray) -> np.ndarray:
    xyxy = np.asarray(xyxy, np.float64)
    return np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _mean_to_xyxy(mean: np.ndarray) -> np.ndarray:
    c, s = mean[:, :2], mean[:, 2:4]
    return np.concatenate([c - s / 2, c + s / 2], axis=1)


def _size_std(mean: np.ndarray, weight: float) -> np.ndarray:
    """Per-track std of (x, y, w, h) noise, proportional to the box size: (N, 4)."""
    w, h = mean[:, 2], mean[:, 3]
    return weight * np.stack([w, h, w, h], axis=1)


def _velocity_std(mean: np.ndarray, weight: float) -> np.ndarray:
    return _size_std(mean, weight) * _SIZE_DRIFT


def _diagonal(values: np.ndarray) -> np.ndarray:
    """(N, k) -> (N, k, k) diagonal matrices."""
    n, k = values.shape
    out = np.zeros((n, k, k))
    out[:, np.arange(k), np.arange(k)] = values
    return out


def _kalman_init(z: np.ndarray, cfg: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = np.concatenate([_size_std(mean, 2 * cfg.position_noise), _velocity_std(mean, _INITIAL_VELOCITY_STD)], axis=1)
    return mean, _diagonal(std**2)


def _kalman_predict(mean: np.ndarray, cov: np.ndarray, cfg: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    std = np.concatenate([_size_std(mean, cfg.position_noise) * _SIZE_DRIFT, _velocity_std(mean, cfg.velocity_noise)],
                         axis=1)
    mean = mean @ _F.T
    mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)  # a shrinking box must not pass through zero size
    cov = _F @ cov @ _F.T + _diagonal(std**2)
    return mean, cov


def _kalman_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, cfg: TrackerConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    r = _size_std(mean, cfg.position_noise) ** 2
    s = _H @ cov @ _H.T + _diagonal(r)
    pht = cov @ _H.T  # (N, 8, 4)
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1 (S symmetric)
    innovation = z - mean @ _H.T
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    cov = cov - gain @ _H @ cov
    return mean, cov


# ---------------------------------------------------------------- the track table

@dataclass
class _Table:
    """Every live track, one row each; a track's death removes its row and with it all its state."""

    track_id: np.ndarray  # (N,) int64
    class_id: np.ndarray  # (N,) int32
    mean: np.ndarray  # (N, 8) Kalman state
    cov: np.ndarray  # (N, 8, 8)
    confidence: np.ndarray  # (N,) float32: of the last matched detection
    hits: np.ndarray  # (N,) int32: matched detections so far
    misses: np.ndarray  # (N,) int32: detection runs in a row without a match (lost when > 0)
    since: np.ndarray  # (N,) int32: frames since the last match, detection or not
    confirmed: np.ndarray  # (N,) bool
    owner: np.ndarray  # (N,) int64: for hands, the owner's track id; -1 unknown
    votes: np.ndarray  # (N, owner_window) int64: each recent detection frame's vote (see _votes)
    origin: np.ndarray  # (N, 4) float32: the box of the detection that started the track
    look: np.ndarray  # (N, LOOK_BINS) float32: a person's colour histogram (`person_looks`); zeros: unknown

    @classmethod
    def empty(cls, window: int) -> _Table:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, 8)), np.zeros((0, 8, 8)),
                   np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32),
                   np.zeros(0, bool), np.zeros(0, np.int64), np.zeros((0, window), np.int64),
                   np.zeros((0, 4), np.float32), np.zeros((0, LOOK_BINS), np.float32))

    def __len__(self) -> int:
        return len(self.track_id)

    def select(self, index: np.ndarray) -> _Table:
        return _Table(*(getattr(self, name)[index] for name in _TABLE_FIELDS))

    def extend(self, other: _Table) -> _Table:
        if not len(other):
            return self
        return _Table(*(np.concatenate([getattr(self, name), getattr(other, name)]) for name in _TABLE_FIELDS))


_TABLE_FIELDS = tuple(f.name for f in fields(_Table))


# ---------------------------------------------------------------- the tracker

class Tracker:
    """Tracks of one camera. `update` once a frame; pass `None` on frames where detection was skipped."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._table = _Table.empty(self.config.owner_window)
        self._next_id = 1
        self._last_t: float | None = None
        self._names: tuple[str, ...] = ()

    def __len__(self) -> int:
        """Live tracks of every state (tentative, confirmed, lost): what the tracker holds in memory."""
        return len(self._table)

    def update(self, detections: Detections | None, *, t: float, image: np.ndarray | None = None) -> Tracks:
        """One frame at time `t` (seconds): the confirmed tracks seen or carried by motion in it.

        `detections=None` means the detector did not run on this frame: tracks move on by their
        motion and no miss is counted. Empty detections mean it ran and saw nothing. With `image`
        (the BGR frame the detections are from), persons are also matched by their look.
        """
        if detections is not None and not isinstance(detections, Detections):
            raise TypeError(f"Tracker.update: expected Detections or None, got {type(detections).__name__}")
        table = self._predict(self._table, self._steps(t))
        if detections is not None:
            self._names = detections.names
            table = self._associate(table, detections, self._looks(detections, image))
        if np.any(table.since > self.config.max_age):
            table = table.select(table.since <= self.config.max_age)
        if detections is not None:  # a position carried by motion is no new evidence of whose a hand is
            table = self._assign_owners(table)
        self._table = table
        return self._output(table)

    # ------------------------------------------------------------ steps of one update

    def _steps(self, t: float) -> int:
        """Frames since the previous update: a source that drops frames still moves tracks on far enough."""
        t = float(t)
        if not np.isfinite(t) or (self._last_t is not None and t <= self._last_t):
            raise ValueError(f"Tracker.update: t must be finite and increase, got {t} after {self._last_t}")
        last, self._last_t = self._last_t, t
        if last is None:
            return 0
        # More than max_age steps would only age tracks past removal; the cap bounds the work after a long gap.
        return int(min(max(1, round((t - last) * self.config.fps)), self.config.max_age + 1))

    def _predict(self, table: _Table, steps: int) -> _Table:
        if not steps or not len(table):
            return table
        mean, cov = table.mean, table.cov
        lost = table.misses > 0
        for _ in range(steps):
            mean, cov = _kalman_predict(mean, cov, self.config)
            mean[lost, 6:] = 0.0  # a lost box keeps its size rather than growing or shrinking unseen
        return replace(table, mean=mean, cov=cov, since=table.since + steps)

    def _looks(self, dets: Detections, image: np.ndarray | None) -> np.ndarray:
        """Each detection's look: persons' colour histograms when the frame is there, zeros otherwise."""
        looks = np.zeros((len(dets), LOOK_BINS), np.float32)
        if image is not None and self.config.look_weight > 0 and self.config.person_class in dets.names:
            persons = np.flatnonzero(dets.class_id == dets.names.index(self.config.person_class))
            looks[persons] = person_looks(image, dets.xyxy[persons])
        return looks

    def _associate(self, table: _Table, dets: Detections, looks: np.ndarray) -> _Table:
        cfg = self.config
        usable = np.flatnonzero(dets.confidence >= cfg.low_threshold)
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        births: list[np.ndarray] = []
        unmatched_tentative: list[np.ndarray] = []
        boxes = _mean_to_xyxy(table.mean)
        covered = _covered(dets.xyxy.astype(np.float64), looks)
        weak_looks = np.where((covered <= cfg.look_weak_clean)[:, None], looks, 0.0)
        for cls in np.union1d(table.class_id, dets.class_id[usable]):
            tracks = np.flatnonzero(table.class_id == cls)
            found = usable[dets.class_id[usable] == cls]
            name = dets.names[cls] if 0 <= cls < len(dets.names) else None
            weight = cfg.look_weight if name == cfg.person_class else 0.0
            matched, left_tentative, born = _match_class(cfg.distance(name), cfg, table, boxes, dets, tracks, found,
                                                         looks, weak_looks, weight)
            pairs.append(matched)
            unmatched_tentative.append(left_tentative)
            births.append(born)
        track_rows, det_rows = (np.concatenate(x) for x in zip(*pairs, strict=True)) if pairs else (
            np.zeros(0, np.int64), np.zeros(0, np.int64))
        # What a track may learn of its look: only boxes no other person box covers (they show one shopper).
        learnt = np.where((covered <= cfg.look_clean)[:, None], looks, 0.0)
        table = self._apply_matches(table, track_rows, det_rows, dets, learnt)
        # A tentative track that misses once was most likely a false detection (DeepSORT, ByteTrack).
        dead = np.concatenate(unmatched_tentative) if unmatched_tentative else np.zeros(0, np.int64)
        if len(dead):
            table = table.select(_without(np.arange(len(table)), dead))
        born = np.sort(np.concatenate(births)) if births else np.zeros(0, np.int64)
        return table.extend(self._new_tracks(dets, born, learnt))

    def _apply_matches(self, table: _Table, rows: np.ndarray, det_rows: np.ndarray, dets: Detections,
                       learnt: np.ndarray) -> _Table:
        matched = np.zeros(len(table), bool)
        matched[rows] = True
        mean, cov = table.mean.copy(), table.cov.copy()
        if len(rows):
            mean[rows], cov[rows] = _kalman_update(mean[rows], cov[rows], _xyxy_to_z(dets.xyxy[det_rows]), self.config)
        confidence = table.confidence.copy()
        confidence[rows] = dets.confidence[det_rows]
        hits = table.hits + matched
        look = table.look.copy()
        seen = learnt[det_rows].sum(axis=1) > 0
        if seen.any():
            at, new, m = rows[seen], learnt[det_rows[seen]], self.config.look_momentum
            look[at] = np.where(look[at].sum(axis=1, keepdims=True) > 0, m * look[at] + (1 - m) * new, new)
        return replace(table, mean=mean, cov=cov, confidence=confidence, hits=hits, look=look,
                       misses=np.where(matched, 0, table.misses + 1), since=np.where(matched, 0, table.since),
                       confirmed=table.confirmed | (hits >= self.config.n_init))

    def _new_tracks(self, dets: Detections, rows: np.ndarray, learnt: np.ndarray) -> _Table:
        n = len(rows)
        if not n:
            return _Table.empty(self.config.owner_window)
        mean, cov = _kalman_init(_xyxy_to_z(dets.xyxy[rows]), self.config)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return _Table(ids, dets.class_id[rows].copy(), mean, cov, dets.confidence[rows].copy(),
                      np.ones(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32),
                      np.full(n, self.config.n_init <= 1), np.full(n, -1, np.int64),
                      np.full((n, self.config.owner_window), -1, np.int64), dets.xyxy[rows].copy(),
                      learnt[rows].astype(np.float32))

    def _assign_owners(self, table: _Table) -> _Table:
        names, cfg = self._names, self.config
        if cfg.person_class not in names or cfg.hand_class not in names:
            return table
        visible = table.confirmed & (table.misses == 0)
        hands = np.flatnonzero(visible & (table.class_id == names.index(cfg.hand_class)))
        if not len(hands):  # only hands in view vote, and only they are output with an owner
            return table
        persons = np.flatnonzero(visible & (table.class_id == names.index(cfg.person_class)))
        # A person whose track has died owns nothing and gets no more votes: the hand must not point nowhere.
        alive = table.track_id
        owner = np.where(np.isin(table.owner[hands], alive), table.owner[hands], NOBODY)
        votes = table.votes[hands]
        votes = np.where((votes < 0) | np.isin(votes, alive), votes, NOBODY)
        boxes = _mean_to_xyxy(table.mean)
        cost = owner_cost(boxes[hands], boxes[persons], cfg.reach)
        held = inside_fraction(boxes[hands], boxes[persons]) >= 0.5
        vote = _votes(cost, held, table.track_id[persons], owner, cfg.owner_cost_margin)
        owner, votes = _decide_owners(np.concatenate([votes[:, 1:], vote[:, None]], axis=1), owner, cfg)
        all_owners, all_votes = table.owner.copy(), table.votes.copy()
        all_owners[hands], all_votes[hands] = owner, votes
        return replace(table, owner=all_owners, votes=all_votes)

    def _output(self, table: _Table) -> Tracks:
        rows = np.flatnonzero(table.confirmed & (table.misses == 0))
        rows = rows[np.argsort(table.track_id[rows], kind="stable")]
        hand = self._names.index(self.config.hand_class) if self.config.hand_class in self._names else -1
        owner = np.where(table.class_id[rows] == hand, table.owner[rows], -1)
        return Tracks(_mean_to_xyxy(table.mean[rows]).astype(np.float32), table.confidence[rows].copy(),
                      table.class_id[rows].copy(), table.track_id[rows].copy(), owner.astype(np.int64), self._names,
                      origin=table.origin[rows].copy())


def _match_class(distance: Distance, cfg: TrackerConfig, table: _Table, boxes: np.ndarray, dets: Detections,
                 tracks: np.ndarray, found: np.ndarray, looks: np.ndarray, weak_looks: np.ndarray, look_weight: float
                 ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """ByteTrack's stages for one class: ((track rows, det rows) matched, tentative rows left, det rows to start).

    With `look_weight`, a pair within the gate costs that much more at the largest difference of looks
    (`looks`; for the weak boxes of the second stage `weak_looks`)."""
    strong = found[dets.confidence[found] >= cfg.high_threshold]
    weak = found[dets.confidence[found] < cfg.high_threshold]
    confirmed = tracks[table.confirmed[tracks]]
    tentative = tracks[~table.confirmed[tracks]]

    def match(t_rows: np.ndarray, d_rows: np.ndarray, gate: float, det_looks: np.ndarray = looks
              ) -> tuple[np.ndarray, np.ndarray]:
        if not len(t_rows) or not len(d_rows):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cost = distance.cost(boxes[t_rows], dets.xyxy[d_rows].astype(np.float64))
        if look_weight > 0:
            cost = np.where(cost <= gate, cost + look_weight * look_distance(table.look[t_rows], det_looks[d_rows]),
                            np.inf)
        r, c = assign(cost, gate + look_weight)
        return t_rows[r], d_rows[c]

    t1, d1 = match(confirmed, strong, distance.gate)
    # ByteTrack gives weak boxes only to tracks seen last time; lost ones too here, under the tighter gate:
    # at 15 fps a shopper half hidden for a few frames is often detected weakly on the way back.
    t2, d2 = match(_without(confirmed, t1), weak, distance.low_gate, weak_looks)
    strong_left = _without(strong, d1)
    t3, d3 = match(tentative, strong_left, distance.gate)
    left = _without(strong_left, d3)
    born = left[dets.confidence[left] >= cfg.new_track_threshold]
    matched = np.concatenate([d1, d2, d3])
    if len(born) and len(matched):
        overlap = box_iou(dets.xyxy[born].astype(np.float64), dets.xyxy[matched].astype(np.float64)).max(axis=1)
        born = born[overlap < cfg.duplicate_iou]
    return (np.concatenate([t1, t2, t3]), np.concatenate([d1, d2, d3])), _without(tentative, t3), born


def _without(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a` without the values in `b`, order kept (np.setdiff1d sorts, and costs more on a few rows)."""
    return a[~(a[:, None] == b[None, :]).any(axis=1)] if len(b) else a


# ---------------------------------------------------------------- looks

LOOK_BINS = 8 * 4 * 4  # hue x saturation x value


def person_looks(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, LOOK_BINS) colour histograms (sum 1) of each person box's torso: the middle half of its
    width, from a fifth to 55 % of its height (below the head, which is also what faces blur).
    A box whose torso lies outside the frame gets zeros (unknown)."""
    import cv2

    h, w = image.shape[:2]
    looks = np.zeros((len(boxes), LOOK_BINS), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        bw, bh = x2 - x1, y2 - y1
        xa, xb = int(max(0, x1 + 0.25 * bw)), int(min(w, x2 - 0.25 * bw))
        ya, yb = int(max(0, y1 + 0.2 * bh)), int(min(h, y1 + 0.55 * bh))
        if xb - xa < 2 or yb - ya < 2:
            continue
        hsv = cv2.cvtColor(cv2.resize(image[ya:yb, xa:xb], (12, 16), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        looks[i] = hist / max(float(hist.sum()), 1.0)
    return looks


def look_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) Bhattacharyya distance of histograms, 0 (same) to 1 (nothing in common); 0 where either
    look is unknown (all zeros): no evidence either way."""
    d = np.sqrt(np.clip(1.0 - np.sqrt(a.astype(np.float64)) @ np.sqrt(b.astype(np.float64)).T, 0.0, 1.0))
    known = (a.sum(axis=1) > 0)[:, None] & (b.sum(axis=1) > 0)[None, :]
    return np.where(known, d, 0.0)


def _covered(boxes: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """(N,) the largest share of each box with a look that another such box covers; inf for a box
    without a look, so that no threshold counts it as clean."""
    seen = np.flatnonzero(looks.sum(axis=1) > 0)
    covered = inside_fraction(boxes[seen], boxes[seen])
    np.fill_diagonal(covered, 0.0)
    out = np.full(len(boxes), np.inf)
    out[seen] = covered.max(axis=1, initial=0.0)
    return out


# ---------------------------------------------------------------- hands to persons

# Body proportions of a standing shopper, fractions of height from the feet (the box's bottom).
_SHOULDER_HEIGHT = 0.81
_SHOULDER_HALF_WIDTH = 0.115
# A person's box holds their arms too, so a hand outside it is unlikely theirs: this much is added,
# in reaches, for a hand wholly outside. Hands hanging between two close shoppers are all but equally
# near both pairs of shoulders, and this is what tells them apart.
_OUTSIDE_PENALTY = 0.5


def owner_cost(hands: np.ndarray, persons: np.ndarray, reach: float) -> np.ndarray:
    """How well each person (N, 4) explains each hand (M, 4): (M, N), lower is better, inf = out of reach.

    The core is the distance from the person's shoulders to the hand box's edge (the fingers'
    reach), in arm's reaches; beyond 1 the person cannot be holding it. Shoulders are a segment
    across the box at shoulder height measured from the feet: a box grows upwards with a raised
    arm, so its top is not where the head is.
    """
    if not len(hands) or not len(persons):
        return np.zeros((len(hands), len(persons)))
    height = np.maximum(persons[:, 3] - persons[:, 1], 1.0)
    cx = (persons[:, 0] + persons[:, 2]) / 2
    sy = persons[:, 3] - _SHOULDER_HEIGHT * height
    half = _SHOULDER_HALF_WIDTH * height
    hx = (hands[:, 0] + hands[:, 2])[:, None] / 2
    hy = (hands[:, 1] + hands[:, 3])[:, None] / 2
    dx = np.maximum(np.abs(hx - cx[None]) - half[None], 0.0)
    dy = hy - sy[None]
    radius = np.hypot(hands[:, 2] - hands[:, 0], hands[:, 3] - hands[:, 1])[:, None] / 2
    reach_used = np.maximum(np.hypot(dx, dy) - radius, 0.0) / (reach * height[None])
    cost = reach_used + _OUTSIDE_PENALTY * (1.0 - inside_fraction(hands, persons))
    return np.where(reach_used <= 1.0, cost, np.inf)


def inside_fraction(hands: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """The fraction of each hand box (M, 4) that lies inside each person box (N, 4): (M, N)."""
    hand_area = np.maximum(np.prod(hands[:, 2:] - hands[:, :2], axis=1), 1e-9)
    lt = np.maximum(hands[:, None, :2], persons[None, :, :2])
    rb = np.minimum(hands[:, None, 2:], persons[None, :, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=2) / hand_area[:, None]


NOBODY = -1  # a vote for no one: nobody explains the hand clearly better than the others
OUT_OF_REACH = -2  # a vote against the owner: they are in view and cannot be holding this hand
_DROP_AFTER = 2  # votes in a row against the owner that make the hand unowned (one can be box noise)


def _votes(cost: np.ndarray, held: np.ndarray, person_ids: np.ndarray, owners: np.ndarray, margin: float
           ) -> np.ndarray:
    """This frame's vote of each hand (a person id, NOBODY or OUT_OF_REACH).

    `cost` is `owner_cost` (hands x persons in view); `held`, whether the hand is inside the
    person's box. The owner keeps the vote while the hand is within their reach and inside their
    box, or explained about as well as by anyone (hysteresis: close shoppers' arms cross). A
    challenger gets it only by explaining the hand better than everyone else by `margin`: a hand
    hanging where two overlapping shoppers could both hold it votes for nobody, since a guess there
    would be locked in by the same hysteresis.
    """
    n = len(owners)
    if not cost.shape[1]:
        return np.full(n, NOBODY, np.int64)
    order = np.argsort(cost, axis=1, kind="stable")
    best_cost = cost[np.arange(n), order[:, 0]]
    second = cost[np.arange(n), order[:, 1]] if cost.shape[1] > 1 else np.full(n, np.inf)
    is_owner = person_ids[None] == owners[:, None]
    owner_cost = np.where(is_owner, cost, np.inf).min(axis=1)
    owner_holds = (is_owner & held).any(axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf where nobody explains the hand: false either way
        clear = np.isfinite(best_cost) & (second - best_cost >= margin)
        keep = np.isfinite(owner_cost) & (owner_holds | (owner_cost - best_cost < margin))
    vote = np.where(keep, owners, np.where(clear, person_ids[order[:, 0]], NOBODY))
    # In view but out of reach (an owner not in view, hidden for a moment, is no evidence either way).
    return np.where(is_owner.any(axis=1) & ~np.isfinite(owner_cost), OUT_OF_REACH, vote).astype(np.int64)


def _decide_owners(votes: np.ndarray, owners: np.ndarray, cfg: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Owners from the vote windows (H, W), and the windows with the votes for dropped owners cleared.

    An unowned hand goes to a clear leader of its window with at least `owner_min_votes`. An owned
    one changes hands only when the last `owner_switch` votes all went to one challenger (a clear,
    sustained margin: one frame of doubt in between keeps the owner), or becomes unowned when its
    owner was out of reach `_DROP_AFTER` times in a row (a hand track can jump to another person's
    hand when one hides the other: better unknown than charged to the wrong person).
    """
    dropped = (owners >= 0) & np.all(votes[:, -_DROP_AFTER:] == OUT_OF_REACH, axis=1)
    votes = np.where(dropped[:, None] & (votes == owners[:, None]), NOBODY, votes)
    owners = np.where(dropped, NOBODY, owners)
    # For every slot of every window, how many votes the person voted for there has in that window.
    valid = votes >= 0
    count = ((votes[:, :, None] == votes[:, None, :]) & valid[:, None, :]).sum(axis=2) * valid
    top_votes = count.max(axis=1)
    top = np.where(valid & (count == top_votes[:, None]), votes, np.iinfo(np.int64).max).min(axis=1)  # ties: older
    runner_up = np.where(valid & (votes != top[:, None]), count, 0).max(axis=1)
    elect = (owners < 0) & (top_votes >= cfg.owner_min_votes) & (top_votes > runner_up)
    recent = votes[:, -cfg.owner_switch:]
    challenger = recent[:, -1]
    switch = (owners >= 0) & (challenger >= 0) & (challenger != owners) & np.all(recent == challenger[:, None], axis=1)
    return np.where(elect, top, np.where(switch, challenger, owners)), votes
