"""Blurring faces before a picture leaves the camera node: `Redactor` makes `RedactedFrame`s of `Frame`s.

`RedactedFrame` is the only kind of picture that the sinks (`vision.sinks`: the private recorder,
snapshots for live view and review clips, image files) accept, and a `Redactor` is the only code
that makes one: a direct construction raises. Three sources of regions, because any one alone
misses faces:

- the head of every person track is blurred whether or not a face is seen there (people turn their
  back and turn round again, and a face detector misses profiles and small faces);
- CenterFace looks for new faces every `full_every`-th frame, and whenever the picture changed a
  lot since it last did (someone walks into the gate's close-up), and finds the faces that have no
  person track; a new face it offers counts when it scores well, when the picture under it moved
  (pictures of faces on packages sit still), or when a closer look confirms it. It looks at the
  whole frame every `whole_every`-th frame; the passes between look only at the parts that changed
  since they were last looked at (grown around, at the whole look's scale), because pixels that did
  not change give the face model the answer it gave then: a shopper walking down a 720p aisle is a
  tenth of the frame;
- every `follow_every`-th frame it runs on small crops around the faces already followed (where
  they should be now, from their speed), and with each pass for new faces around the heads of
  person tracks, each crop scaled so that the face in it is about `crop_face_px` high: a small face
  in a 720p aisle is looked at in the size CenterFace likes, and a big close-up face costs no more
  than a small one.

A region stays blurred for `persist_frames` frames after it was last seen, moved along at its speed
and grown with its age, so that a face the model misses for a frame or two does not flicker through
(the complaint most heard about deface); and frames leave `lookahead` frames late, so that a face
found on frame n is blurred on the frames before it too (a face coming into the picture is found
only once enough of it shows). Fail closed: when the face model raises, answers nonsense, or the
frame's detection runs past `budget_ms`, the whole frame is blurred and the fact is counted in
`stats`. Blur is Gaussian, box or a solid fill, never a mosaic (it can be undone).
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, get_args

import cv2
import numpy as np

from vision.inference.boxes import box_iou, nms
from vision.types import Detections, Frame, Tracks

BlurKind = Literal["gaussian", "box", "fill"]
BLUR_KINDS: tuple[str, ...] = get_args(BlurKind)
PERSON = "person"
CROP_MAX = 384  # longest side of a crop as the face model sees it: a crop costs at most ~half a VGA frame
HEAD_FACE = 0.5  # a face is about half as high as the head region of a person box (hair, hat, neck)
# The only key to RedactedFrame's constructor. Module-private: code elsewhere that needs a redacted
# picture asks a Redactor for one.
_KEY = object()


class FaceModel(Protocol):
    """What the redactor needs of a face detector (vision.inference.faces.FaceDetector, or a fake)."""

    def detect(self, image_bgr: np.ndarray) -> Detections: ...


@dataclass(frozen=True)
class PrivacyConfig:
    """How a camera node anonymizes its pictures. Sizes given as shares are of the box they grow."""

    # Whole-frame face detection every k-th frame (1: every frame); crops around known faces between.
    full_every: int = 3
    # A whole-frame pass also runs when the picture changed this much (mean grey level change, 0-255, of
    # a 1/8-scale picture) since the last one, as the node's detector does; None: on schedule only.
    full_on_motion: float | None = 6.0
    # Longest side of the frame as the face model sees it on a pass for new faces, whole or in changed
    # parts (None: full resolution). 512 rather than 640: a third fewer pixels, and `walkout bench privacy`
    # found more faces without track heads (1,486 of 1,487 against 1,484), as many with them (all).
    full_max_side: int | None = 512
    # The pass for new faces covers the whole frame at least every k-th frame (1: always); between, only
    # the parts of the picture that changed since a pass last looked at them. Every 30th (4 s at 7.5 fps)
    # instead of 15th: a seventh less face-model time with the crops below, the same faces blurred.
    whole_every: int = 30
    # A part of the picture changed when its grey level (0-255, on a 1/8-scale picture, which averages
    # sensor noise away) differs by this much from when a pass for new faces last looked at it.
    change_level: float = 8.0
    # When the changed parts, grown, cover more than this share of the frame, the pass is whole.
    change_max_share: float = 0.5
    # Face model score from which a face counts in a crop around a head or a face followed. Low: a blurred
    # bit of shelf costs less than a face.
    score_threshold: float = 0.2
    # Score from which the whole-frame pass offers a new face, to be confirmed (below): lower still, for
    # a face coming in sideways, which is where a whole frame scores it 0.1 to 0.3.
    discover_score: float = 0.1
    # A face that only the whole-frame pass found counts from this score, or when a closer look (a crop)
    # finds it at this score: small pictures on packages score up to ~0.4 at the whole-frame scale.
    confirm_score: float = 0.45
    # A face that only the whole-frame pass found counts too when the grey level under it changed by this
    # much (0-255, mean) since two frames ago: faces come with people, who move; packages sit still.
    motion_change: float = 10.0
    # A place that failed the closer look is not looked at again until it has gone unseen this long.
    spot_frames: int = 45
    # Faces already followed are looked for in crops every k-th frame (1: every frame); between, their box
    # spans the sightings either side (see lookahead), grown by its age.
    follow_every: int = 2
    # Crops around known faces and heads are scaled so that the face in them is about this high. The face
    # model's cost grows with the crop's pixels: 48, then 32, 28 and now 24 px each cost less and still
    # blurred every face of `walkout bench privacy` with heads blurred (1,487 of 1,487; 1,484 without,
    # one more than at 28), at an eighth less face-model time than 28. In crops of dlib's real photos
    # CenterFace finds all 43 faces above confirm_score down to 22 px, 39 at 20 px (test_privacy). Looking
    # for followed faces every 3rd frame as well lost a gate face on 04-adjacent: follow_every stays 2.
    crop_face_px: int = 24
    # A crop spans the face's predicted box grown by this share of its size on each side (motion slack).
    search: float = 1.0
    # Face detection time per frame (ms) after which the frame is blurred whole; None: no limit. A
    # whole-frame pass takes 30-120 ms on one CPU core: this much means the machine is in trouble.
    budget_ms: float | None = 500.0
    # Every blurred face box is grown by this share of its longer side on each side: hair, ears, chin.
    margin: float = 0.6
    # A region stays blurred this many frames after its last sighting.
    persist_frames: int = 10
    # Extra growth per frame unseen (share of the region's size on each side): the guess gets vaguer.
    age_growth: float = 0.05
    blur: BlurKind = "gaussian"
    # Blur strength: Gaussian sigma (box: half the kernel) as a share of the region's longer side.
    strength: float = 0.2
    # The head region of a person box (x1, y1, x2, y2): top and bottom as shares of its height from its
    # top edge, and extra width on each side as a share of its width. Full width because the box
    # includes outstretched arms, so the head can be anywhere across it.
    head_top: float = -0.03
    head_bottom: float = 0.2
    head_side: float = 0.0
    # At most this many face regions are remembered (the newest sightings win): bounded memory.
    max_regions: int = 64
    # Frames held back before they leave, so a face found late is blurred on the frames before too.
    lookahead: int = 4

    def __post_init__(self) -> None:
        for name, low in (("full_every", 1), ("whole_every", 1), ("follow_every", 1), ("crop_face_px", 16),
                          ("persist_frames", 0), ("max_regions", 1), ("spot_frames", 0), ("lookahead", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PrivacyConfig.{name}: expected an integer of at least {low}, got {value!r}")
        if self.full_max_side is not None and (isinstance(self.full_max_side, bool)
                                               or not isinstance(self.full_max_side, int)
                                               or self.full_max_side < 32 or self.full_max_side % 32):
            raise ValueError(f"PrivacyConfig.full_max_side: expected a multiple of 32 (at least 32) or None, "
                             f"got {self.full_max_side!r}")
        _check_share("score_threshold", self.score_threshold, 0.0, 1.0, closed=False)
        _check_share("discover_score", self.discover_score, 0.0, 1.0, closed=False)
        _check_share("confirm_score", self.confirm_score, max(self.score_threshold, self.discover_score), 1.0)
        for name in ("search", "margin", "age_growth", "head_side"):
            _check_share(name, getattr(self, name), 0.0, 10.0)
        _check_share("strength", self.strength, 0.01, 10.0)
        _check_share("motion_change", self.motion_change, 0.0, 255.0)
        _check_share("change_level", self.change_level, 0.0, 255.0)
        _check_share("change_max_share", self.change_max_share, 0.0, 1.0)
        if self.full_on_motion is not None:
            _check_share("full_on_motion", self.full_on_motion, 0.0, 255.0)
        _check_share("head_top", self.head_top, -1.0, 1.0)
        _check_share("head_bottom", self.head_bottom, -1.0, 1.0)
        if self.head_bottom <= self.head_top:
            raise ValueError(f"PrivacyConfig.head_bottom ({self.head_bottom}) must be below head_top ({self.head_top})")
        if self.budget_ms is not None:
            _check_share("budget_ms", self.budget_ms, 0.0, math.inf, closed=False)
        if self.blur not in BLUR_KINDS:
            raise ValueError(f"PrivacyConfig.blur: expected one of {', '.join(BLUR_KINDS)}, got {self.blur!r} "
                             f"(a mosaic is not offered: it can be undone)")


def _check_share(name: str, value: object, low: float, high: float, closed: bool = True) -> None:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if math.isnan(number) or not (low <= number <= high if closed else low < number < high):
        bounds = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"PrivacyConfig.{name}: expected a number in {bounds}, got {value!r}")


class RedactedFrame:
    """A camera picture with every face the node knows of blurred: the only picture that may leave it.

    Made only by `Redactor.redact`; constructing one elsewhere raises `TypeError`. Immutable: the
    image is read-only and the attributes cannot be set. `regions` (N, 4) float32 are the boxes that
    were blurred (frame pixels, xyxy); `whole` is True when the whole frame was blurred because face
    detection failed or ran out of time. Not picklable: a forged pickle would be a way round the
    constructor; send `vision.sinks.snapshot_jpeg(frame)` instead.
    """

    __slots__ = ("camera", "index", "t", "image", "regions", "whole")
    camera: str
    index: int
    t: float
    image: np.ndarray
    regions: np.ndarray
    whole: bool

    def __init__(self, camera: str, index: int, t: float, image: np.ndarray, regions: np.ndarray, whole: bool,
                 *, key: object = None) -> None:
        if key is not _KEY:
            raise TypeError("RedactedFrame is made only by vision.privacy.Redactor.redact: a picture leaves the "
                            "camera node only after its faces are blurred")
        for name, value in (("camera", camera), ("index", index), ("t", t), ("image", _frozen(image)),
                            ("regions", _frozen(regions)), ("whole", whole)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RedactedFrame is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RedactedFrame is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple:
        raise TypeError("a RedactedFrame is not pickled or copied (a forged pickle could carry raw pixels); "
                        "encode it with vision.sinks.snapshot_jpeg")

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        return (f"RedactedFrame({self.camera}#{self.index}, t={self.t:.3f}, {w}x{h}, "
                f"{len(self.regions)} regions{', whole frame blurred' if self.whole else ''})")


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view of a read-only array: the view's flag cannot be turned back on (NumPy refuses
    while its base is read-only), so a sink cannot scribble on a picture by accident."""
    array.flags.writeable = False
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass
class RedactionStats:
    """Counters of one Redactor: what it did and how often it failed closed."""

    frames: int = 0
    full_passes: int = 0  # whole-frame face detections
    change_passes: int = 0  # passes for new faces on the parts of the picture that changed only
    crop_passes: int = 0  # face detections on crops
    regions: int = 0  # blurred regions, summed over frames
    failed_error: int = 0  # frames blurred whole because the face model raised or answered nonsense
    failed_budget: int = 0  # frames blurred whole because detection ran past budget_ms
    detect_seconds: float = 0.0
    last_error: str | None = None

    @property
    def failed_closed(self) -> int:
        return self.failed_error + self.failed_budget

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "failed_closed": self.failed_closed, "detect_seconds": round(self.detect_seconds, 3)}


@dataclass
class _Region:
    """One face over time: its sightings (frame step, box without margin), oldest first, and its speed
    in px per frame. Knows where the face was on any frame near its sightings (`box_at`)."""

    sightings: list[tuple[int, np.ndarray]]
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))

    @property
    def seen(self) -> int:
        return self.sightings[-1][0]

    @property
    def box(self) -> np.ndarray:
        return self.sightings[-1][1]

    @property
    def span(self) -> float:
        """The longest side of its recent sightings: a face turning to profile gets a narrow box on one
        frame, while the head around it is as big as it was a moment ago."""
        return max(float(max(b[2] - b[0], b[3] - b[1])) for _, b in self.sightings)

    def add(self, step: int, box: np.ndarray) -> None:
        moved = _speed(self.sightings[-1], (step, box))
        self.velocity = moved if len(self.sightings) == 1 else 0.5 * self.velocity + 0.5 * moved
        self.sightings.append((step, box))

    def box_at(self, step: int) -> tuple[np.ndarray, int, np.ndarray]:
        """(box, frames to the nearest sighting, (x, y) pixels run at the face's speed) on frame `step`:
        a sighting's own box, the box spanning the sightings either side (between two looks a face may
        have stood still, then walked off: a straight line between them would cut the face at one end),
        or a run at the face's speed from the nearest one."""
        before = [s for s in self.sightings if s[0] <= step]
        after = [s for s in self.sightings if s[0] > step]
        if before and before[-1][0] == step:
            return before[-1][1], 0, np.zeros(2)
        if before and after:
            (s0, b0), (s1, b1) = before[-1], after[0]
            return _hull(b0, b1), min(step - s0, s1 - step), np.zeros(2)
        if before:
            s0, b0 = before[-1]
            velocity = self.velocity
        else:  # before its first sighting: run back at the speed it had then, not at the speed it has now
            s0, b0 = after[0]
            velocity = _speed(after[0], after[1]) if len(after) > 1 else self.velocity
        dx, dy = velocity * (step - s0)
        return b0 + (dx, dy, dx, dy), abs(step - s0), np.abs((dx, dy))

    def forget_before(self, step: int) -> None:
        keep = [s for s in self.sightings if s[0] >= step]
        self.sightings = keep or self.sightings[-1:]


def _speed(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> np.ndarray:
    """Pixels per frame that a box's centre moved from sighting a to sighting b."""
    (sa, ba), (sb, bb) = a, b
    return ((bb[:2] + bb[2:]) - (ba[:2] + ba[2:])) / 2 / max(sb - sa, 1)


@dataclass
class _Pending:
    """A frame waiting for `lookahead` later frames, with the head boxes of its own tracks."""

    frame: Frame
    step: int
    heads: list[np.ndarray]
    failed: bool = False


class _OverBudget(Exception):
    pass


@dataclass(frozen=True)
class _Look:
    """One run of the face model: a part of the frame as the model sees it, where that part's top left
    corner is in the frame, the model's pixels per frame pixel on each axis, and what to call it in an
    error; faces count from `threshold` (None: `score_threshold`)."""

    picture: np.ndarray
    origin: tuple[int, int]
    scale: tuple[float, float]
    where: str
    threshold: float | None = None


def _look_at(image: np.ndarray, rect: tuple[int, int, int, int], scale: float, where: str,
             threshold: float | None = None) -> _Look:
    """A look at the pixels `rect` (x1, y1, x2, y2) of `image`, resized by `scale`."""
    x1, y1, x2, y2 = rect
    picture = image[y1:y2, x1:x2]
    if scale != 1.0:
        picture = cv2.resize(picture, (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return _Look(np.ascontiguousarray(picture), (x1, y1), (picture.shape[1] / (x2 - x1), picture.shape[0] / (y2 - y1)),
                 where, threshold)


def _crop(image: np.ndarray, window: np.ndarray, face_h: float, face_px: int) -> _Look:
    """A look at `window`, scaled so that a face `face_h` high is `face_px` high, the size CenterFace finds
    best; never blown up 4x or past CROP_MAX px."""
    x1, y1, x2, y2 = _pixels(window, image.shape)
    scale = min(4.0, face_px / max(face_h, 1.0), CROP_MAX / max(x2 - x1, y2 - y1))
    return _look_at(image, (x1, y1, x2, y2), 1.0 if abs(scale - 1.0) <= 0.05 else scale, "crop")


class Redactor:
    """One camera's face blurring. Feed every frame in order to `push`, which returns the frames that are
    ready; `flush` at the end of a stream returns the rest. `redact` is the one-frame form when
    `lookahead` is 0 (stills, or a live view that cannot wait).

    With `lookahead` L, a frame leaves L frames after it came in: a face first found on frame n is
    then also blurred on the L frames before it (traced back at its speed), which covers a face
    entering the picture before the detector can see enough of it, and the frames between two
    sightings get the box spanning both instead of a guess. Between frames it keeps only
    the L pending frames and the faces seen in the last `persist_frames` + L frames (at most
    `max_regions`). `faces` is the face model (`Redactor.from_manifest` loads CenterFace). With
    `workers` above 1, a frame's looks (crops, changed parts, the whole frame) run on that many threads
    side by side, so `faces.detect` must be safe to call from several threads (an ONNX Runtime session
    is); `close` ends them. `clock` (seconds) measures the time budget and is there for tests.
    """

    def __init__(self, faces: FaceModel, config: PrivacyConfig | None = None, *,
                 clock: Callable[[], float] = time.perf_counter, workers: int = 1) -> None:
        if not callable(getattr(faces, "detect", None)):
            raise TypeError(f"Redactor: faces must have detect(image) -> Detections, got {type(faces).__name__}")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise ValueError(f"Redactor: workers must be an integer from 1 to 64, got {workers!r}")
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="walkout-faces") \
            if workers > 1 else None
        self.faces = faces
        self.config = config or PrivacyConfig()
        self.stats = RedactionStats()
        self._clock = clock
        self._regions: list[_Region] = []
        self._pending: deque[_Pending] = deque()
        self._spots: list[list] = []  # [box, step last seen] of places that only look like faces
        self._history: deque[np.ndarray] = deque(maxlen=2)  # the last frames' raw images, for _moved
        self._last_full: np.ndarray | None = None  # a thumbnail of the last pass for new faces' picture
        self._last_whole: int | None = None  # the step of the last whole pass
        # A thumbnail of the picture as each of its parts was when a pass for new faces last looked at it.
        self._looked: np.ndarray | None = None
        self._step = 0
        self._full_due = True  # the first frame, and the one after a failure, looks at everything

    @classmethod
    def from_manifest(cls, config: PrivacyConfig | None = None, threads: int = 1, workers: int = 1) -> Redactor:
        """With the manifest's CenterFace (hash checked) on `threads` ONNX Runtime threads a look, set up
        as `config` says."""
        from vision.inference.faces import FaceDetector, FaceOptions
        from vision.inference.runtime import RuntimeOptions

        config = config or PrivacyConfig()
        options = FaceOptions(score_threshold=min(config.score_threshold, config.discover_score),
                              max_side=config.full_max_side)
        return cls(FaceDetector.from_manifest(options, RuntimeOptions(intra_op_threads=threads)), config,
                   workers=workers)

    def close(self) -> None:
        """Ends the threads of `workers` (a no-op without them); the redactor then looks in one thread."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    @property
    def live_regions(self) -> int:
        return len(self._regions)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, frame: Frame, tracks: Tracks | None = None) -> list[RedactedFrame]:
        """Take the next frame (with this frame's tracks, if any); return the frames now ready, oldest
        first: none while the first `lookahead` frames come in, then one for each frame pushed. Never
        raises because of the face model: a failure blurs that frame whole (counted in `stats`)."""
        if not isinstance(frame, Frame):
            raise TypeError(f"Redactor takes a Frame, got {type(frame).__name__}")
        if tracks is not None and not isinstance(tracks, Tracks):
            raise TypeError(f"Redactor: tracks must be Tracks or None, got {type(tracks).__name__}")
        step = self._step
        self._step += 1
        self.stats.frames += 1
        if self._history and self._history[-1].shape != frame.image.shape:
            # The camera changed resolution: earlier pictures say nothing about this one.
            self._history.clear()
            self._last_whole = None
            self._full_due = True
        pending = _Pending(frame, step, self._heads(tracks))
        # Where each face followed should be on this frame: the crops look there, the sightings match it.
        predicted = [r.box_at(step)[0] for r in self._regions]
        started = self._clock()
        try:
            found = self._detect(frame.image, pending.heads, predicted, step, started)
            self._check_budget(started)  # a frame whose last look ran late is late all the same
        except _OverBudget:
            self._failed(pending, "budget", f"face detection ran past {self.config.budget_ms} ms")
        except Exception as exc:  # any failure of the model: blur everything rather than guess
            self._failed(pending, "error", f"{type(exc).__name__}: {exc}")
        else:
            self._update(found, predicted, step)
        finally:
            self.stats.detect_seconds += self._clock() - started
        self._pending.append(pending)
        self._history.append(frame.image)
        ready = []
        while len(self._pending) > self.config.lookahead:
            ready.append(self._emit(self._pending.popleft()))
        self._prune()
        return ready

    def flush(self) -> list[RedactedFrame]:
        """The frames still waiting (end of a recording, or before a camera is stopped), oldest first."""
        ready = [self._emit(p) for p in self._pending]
        self._pending.clear()
        return ready

    def redact(self, frame: Frame, tracks: Tracks | None = None) -> RedactedFrame:
        """`push` and take the frame back at once; for a Redactor without look-ahead."""
        if self.config.lookahead:
            raise ValueError(f"Redactor.redact returns each frame at once, which a look-ahead of "
                             f"{self.config.lookahead} frames cannot do: use push() and flush()")
        (ready,) = self.push(frame, tracks)
        return ready

    # ------------------------------------------------------------------------------------ detection

    def _detect(self, image: np.ndarray, heads: list[np.ndarray], predicted: list[np.ndarray], step: int,
                started: float) -> np.ndarray:
        """This frame's face boxes (N, 4) in frame pixels, every one a face the redactor trusts.

        Crops around the faces already followed (every frame) and around the heads of person tracks (with
        each whole-frame pass) are trusted at `score_threshold`: something face-like where a face just
        was or where a head is. The whole-frame pass only discovers: a new box counts when it scores
        `confirm_score`, when it lies on a face followed already, when the picture under it changed
        lately (a face comes with a person, who moves; a picture on a package sits still), or when a
        closer look (a crop scaled like the others) confirms it. One that fails all that is remembered
        as a spot that only looks like a face, so it is not looked at again on every pass.
        """
        cfg = self.config
        full = self._full_due or step % cfg.full_every == 0 or self._busy(image)
        windows = []
        # Faces followed are looked for every `follow_every`-th frame (and with every pass for new ones);
        # the frames between get the box spanning two sightings, which the look-ahead provides. A face seen
        # once is looked for on the next frame too: its speed, from the second sighting, is what traces
        # it back onto the frames before it was found (a face coming in at the picture's edge).
        follow = full or step % cfg.follow_every == 0
        for region, box in zip(self._regions, predicted, strict=True):
            if not follow and len(region.sightings) > 1:
                continue
            slack = cfg.search * (2 if len(region.sightings) == 1 else 1)  # seen once: no speed yet, look further
            window = _grow(box, slack)
            if step - region.seen > 1:
                # Not looked for since: it may have stopped where it was last seen (a shopper stops at the
                # gate) while its old speed runs the prediction away, so the crop spans both places.
                window = _hull(window, _grow(region.box, slack))
            windows.append((window, region.box[3] - region.box[1]))
        if full:
            # Heads are blurred on every frame anyway; a close look at them, for small faces to follow after
            # their track is lost, comes with the whole-frame pass. A head region is where the tracker puts
            # it: a little slack for a face at its edge is enough.
            windows += [(_grow(h, 0.25), (h[3] - h[1]) * HEAD_FACE) for h in heads]
        crops = [_crop(image, w, face_h, cfg.crop_face_px) for w, face_h in _merge_windows(windows, image.shape)]
        self.stats.crop_passes += len(crops)
        # The passes for new faces do not depend on what the crops find: the frame's looks all run together.
        results = self._look(crops + (self._discover(image, step) if full else []), started)
        found = [boxes for boxes, _ in results[:len(crops)]]
        trusted = _dedupe(np.concatenate(found)) if found else np.zeros((0, 4))
        if not full:
            return trusted
        self._full_due = False
        discovered = results[len(crops):]
        boxes = np.concatenate([np.zeros((0, 4))] + [b for b, _ in discovered])
        scores = np.concatenate([np.zeros(0, np.float32)] + [c for _, c in discovered])
        new = []
        for box, score in zip(boxes, scores, strict=True):
            if _centre_in(box, trusted, 0.25):
                continue  # a crop found it already, at a better scale
            if score >= cfg.confirm_score or _centre_in(box, predicted, 0.5) or self._moved(image, box):
                new.append(box)
            elif not self._known_spot(box, step):
                confirmed = self._look_closer(image, box, started)
                if confirmed is None:
                    self._spots.append([box, step])
                else:
                    new.append(confirmed)
        return np.concatenate([trusted, np.array(new).reshape(-1, 4)])

    def _discover(self, image: np.ndarray, step: int) -> list[_Look]:
        """The looks for candidate new faces at `discover_score`: the whole frame, or when it had a whole
        look less than `whole_every` frames ago, the parts that changed since, each grown and looked at in
        the whole look's scale (the same faces found, at a fraction of the cost)."""
        cfg = self.config
        thumb = _thumbnail(image)
        self._last_full = thumb
        windows = None
        if self._last_whole is not None and step - self._last_whole < cfg.whole_every and self._looked is not None:
            windows = _changed_windows(thumb, self._looked, image.shape, cfg.change_level, cfg.change_max_share)
        if windows is None:
            self._last_whole, self._looked = step, thumb
            self.stats.full_passes += 1
            return [_Look(image, (0, 0), (1.0, 1.0), "whole frame", cfg.discover_score)]
        self.stats.change_passes += 1
        height, width = image.shape[:2]
        fx, fy = thumb.shape[1] / width, thumb.shape[0] / height
        for x1, y1, x2, y2 in windows:  # the thumbnail's cells wholly inside a window were looked at now
            tx1, ty1, tx2, ty2 = math.ceil(x1 * fx), math.ceil(y1 * fy), math.floor(x2 * fx), math.floor(y2 * fy)
            self._looked[ty1:ty2, tx1:tx2] = thumb[ty1:ty2, tx1:tx2]
        scale = min(1.0, cfg.full_max_side / max(height, width)) if cfg.full_max_side else 1.0
        return [_look_at(image, window, scale, "changed part", cfg.discover_score) for window in windows]

    def _look_closer(self, image: np.ndarray, box: np.ndarray, started: float) -> np.ndarray | None:
        """The box of a face confirmed at `confirm_score` in a crop around `box`, else None."""
        ((found, scores),) = self._look([_crop(image, _grow(box, self.config.search), box[3] - box[1],
                                               self.config.crop_face_px)], started)
        self.stats.crop_passes += 1
        for b, s in sorted(zip(found, scores, strict=True), key=lambda p: -p[1]):
            if s >= self.config.confirm_score and _centre_in(b, [box], 0.5):
                return b
        return None

    def _busy(self, image: np.ndarray) -> bool:
        """Whether the picture changed by `full_on_motion` since the last whole-frame pass (someone walks
        into a close-up camera, who could be gone before the next scheduled pass)."""
        if self.config.full_on_motion is None or self._last_full is None:
            return False
        small = _thumbnail(image)
        return small.shape == self._last_full.shape and \
            float(cv2.absdiff(small, self._last_full).mean()) > self.config.full_on_motion

    def _moved(self, image: np.ndarray, box: np.ndarray) -> bool:
        """Whether the grey level under `box` changed by `motion_change` on average since two frames ago."""
        if not self._history:
            return False
        x1, y1, x2, y2 = _pixels(box, image.shape)
        if x2 <= x1 or y2 <= y1:
            return False
        now = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        before = cv2.cvtColor(self._history[0][y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        return float(cv2.absdiff(now, before).mean()) >= self.config.motion_change

    def _known_spot(self, box: np.ndarray, step: int) -> bool:
        for spot in self._spots:
            if box_iou(box[None], spot[0][None])[0, 0] >= 0.5:
                spot[1] = step
                return True
        return False

    def _look(self, looks: list[_Look], started: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each look's faces (boxes in frame pixels, scores), in order. With `workers` above 1 the looks
        run side by side, so a camera with much to look at uses the cores that others leave idle; what
        they find is the same, and a look that hangs fails the frame once the budget is spent."""
        if self._pool is None:
            found = []
            for look in looks:
                self._check_budget(started)
                found.append(self._boxes_of(look, self.faces.detect(look.picture)))
            return found
        budget = self.config.budget_ms
        futures = [self._pool.submit(self.faces.detect, look.picture) for look in looks]
        try:
            found = []
            for look, future in zip(looks, futures, strict=True):
                left = None if budget is None else max(0.0, budget / 1000.0 - (self._clock() - started))
                try:
                    detections = future.result(timeout=left)
                except concurrent.futures.TimeoutError:
                    raise _OverBudget from None
                found.append(self._boxes_of(look, detections))
            return found
        finally:
            for future in futures:  # after a failure, the looks not yet begun are not run for nothing
                future.cancel()

    def _boxes_of(self, look: _Look, detections: object) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self._boxes(detections, look.where, look.threshold)
        (x1, y1), (sx, sy) = look.origin, look.scale
        return boxes / (sx, sy, sx, sy) + (x1, y1, x1, y1), scores

    def _boxes(self, detections: object, where: str, threshold: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(detections, Detections):
            raise TypeError(f"face model returned {type(detections).__name__} on a {where}, expected Detections")
        keep = detections.confidence >= (self.config.score_threshold if threshold is None else threshold)
        boxes = detections.xyxy[keep].astype(np.float64)
        if not np.isfinite(boxes).all():
            raise ValueError(f"face model returned non-finite boxes on a {where}")
        return boxes, detections.confidence[keep]

    def _check_budget(self, started: float) -> None:
        budget = self.config.budget_ms
        if budget is not None and (self._clock() - started) * 1000.0 > budget:
            raise _OverBudget

    # ------------------------------------------------------------------------------------ regions

    def _update(self, found: np.ndarray, predicted: list[np.ndarray], step: int) -> None:
        """Match this frame's faces to the known ones where they were `predicted` (nearest centre first,
        within the reach of the crop that looked for each), add the new ones."""
        pairs = []
        for i, box in enumerate(found):
            centre = (box[:2] + box[2:]) / 2
            for j, p in enumerate(predicted):
                size = max(p[2] - p[0], p[3] - p[1], 1.0)
                d = float(np.hypot(*(centre - (p[:2] + p[2:]) / 2))) / size
                # As far as its crop looked for it: a face seen once has no speed yet, so further.
                if d < 0.5 + self.config.search * (2 if len(self._regions[j].sightings) == 1 else 1):
                    pairs.append((d, i, j))
        used_f, used_r = set(), set()
        for _, i, j in sorted(pairs):
            if i not in used_f and j not in used_r:
                used_f.add(i)
                used_r.add(j)
                self._regions[j].add(step, found[i])
        self._regions += [_Region([(step, found[i])]) for i in range(len(found)) if i not in used_f]

    def _prune(self) -> None:
        """Forget faces that no pending or future frame can need: bounded memory on a camera open 24/7."""
        cfg = self.config
        oldest = self._pending[0].step if self._pending else self._step
        alive = [r for r in self._regions if oldest - r.seen <= cfg.persist_frames]
        for region in alive:
            region.forget_before(oldest - cfg.persist_frames)
        alive.sort(key=lambda r: -r.seen)
        self._regions = alive[:cfg.max_regions]
        spots = [s for s in self._spots if self._step - s[1] <= cfg.spot_frames]
        self._spots = sorted(spots, key=lambda s: -s[1])[:cfg.max_regions]

    def _heads(self, tracks: Tracks | None) -> list[np.ndarray]:
        if tracks is None or not len(tracks):
            return []
        cfg = self.config
        heads = []
        for x1, y1, x2, y2 in tracks.of(PERSON).xyxy.astype(np.float64):
            w, h = x2 - x1, y2 - y1
            if w > 0 and h > 0:
                heads.append(np.array([x1 - cfg.head_side * w, y1 + cfg.head_top * h,
                                       x2 + cfg.head_side * w, y1 + cfg.head_bottom * h]))
        return heads

    # ------------------------------------------------------------------------------------ output

    def _emit(self, pending: _Pending) -> RedactedFrame:
        cfg, frame = self.config, pending.frame
        image = frame.image.copy()
        height, width = image.shape[:2]
        if pending.failed:
            whole = np.array([0, 0, width, height], np.float64)
            blur_regions(image, [whole], "fill" if cfg.blur == "fill" else "gaussian", max(cfg.strength, 0.1))
            return RedactedFrame(frame.camera, frame.index, frame.t, image, whole[None].astype(np.float32), True,
                                 key=_KEY)
        boxes = list(pending.heads)
        for region in self._regions:
            box, age, drift = region.box_at(pending.step)
            # A face seen on this frame or after it (at most `lookahead` frames later: nothing later has come
            # in yet) is blurred; one last seen before it, for `persist_frames`.
            if pending.step <= region.seen or age <= cfg.persist_frames:
                # A position run on at the face's speed may be off by half the way run.
                dx, dy = 0.5 * drift
                # Grown on both axes by the longest side the face had lately (`span`): a face seen sideways
                # gets a narrow box, while the head around it is as wide as ever.
                grow = (cfg.margin + cfg.age_growth * age) * region.span
                boxes.append(box + (-grow - dx, -grow - dy, grow + dx, grow + dy))
        blur_regions(image, boxes, cfg.blur, cfg.strength)
        regions = np.array(boxes, np.float32).reshape(-1, 4)
        self.stats.regions += len(regions)
        return RedactedFrame(frame.camera, frame.index, frame.t, image, regions, False, key=_KEY)

    def _failed(self, pending: _Pending, why: Literal["error", "budget"], detail: str) -> None:
        if why == "error":
            self.stats.failed_error += 1
        else:
            self.stats.failed_budget += 1
        self.stats.last_error = detail[:300]
        pending.failed = True
        # What the regions knew may be stale, and the failed pass may not have looked where it says: look
        # at the whole picture next time.
        self._full_due, self._last_whole = True, None


# ---------------------------------------------------------------------------------------- geometry and pixels


def _hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest box holding both boxes."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def _grow(box: np.ndarray, share: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return box + (-share * w, -share * h, share * w, share * h)


def _merge_windows(windows: list[tuple[np.ndarray, float]], shape: tuple[int, ...]
                   ) -> list[tuple[np.ndarray, float]]:
    """Crops clipped to the frame; one that mostly covers the same pixels as another is merged with it (one
    detection instead of two), a merged crop scaled for the smallest face in it. Crops that only touch
    stay apart: their union could be a large part of the frame, looked at in the scale of a small face."""
    height, width = shape[:2]
    out: list[tuple[np.ndarray, float]] = []
    for box, face_h in windows:
        box = np.clip(box, 0, (width, height, width, height))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue
        merged = True
        while merged:
            merged = False
            for k, (other, other_h) in enumerate(out):
                iw = min(box[2], other[2]) - max(box[0], other[0])
                ih = min(box[3], other[3]) - max(box[1], other[1])
                smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
                if iw > 0 and ih > 0 and iw * ih >= 0.5 * smaller:
                    box = _hull(box, other)
                    face_h = min(face_h, other_h)
                    del out[k]
                    merged = True
                    break
        out.append((box, face_h))
    return out


def _changed_windows(thumb: np.ndarray, reference: np.ndarray, shape: tuple[int, ...], level: float,
                     max_share: float) -> list[tuple[int, int, int, int]] | None:
    """Rectangles (x1, y1, x2, y2 frame pixels) around the parts of `thumb` that differ from `reference`
    by more than `level`, grown on each side by a tenth of the frame's shorter side and at least 32 px
    (a face only partly changed, such as a head turning, is looked at whole and with its surroundings)
    and merged where they meet; None when they would cover more than `max_share` of the frame, or the
    sizes differ."""
    if thumb.shape != reference.shape:
        return None
    changed = (cv2.absdiff(thumb, reference) > level).astype(np.uint8)
    if not changed.any():
        return []
    grown = cv2.dilate(changed, np.ones((3, 3), np.uint8))
    count, _, cells, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    height, width = shape[:2]
    fx, fy = width / thumb.shape[1], height / thumb.shape[0]
    rects = []
    grow = max(32.0, 0.1 * min(width, height))
    for x, y, w, h, _ in cells[1:count]:
        rects.append((max(0, math.floor(x * fx - grow)), max(0, math.floor(y * fy - grow)),
                      min(width, math.ceil((x + w) * fx + grow)), min(height, math.ceil((y + h) * fy + grow))))
    while True:  # a merged rectangle may reach another: merge until none meet
        merged = [(min(r[0] for r in g), min(r[1] for r in g), max(r[2] for r in g), max(r[3] for r in g))
                  for g in _groups(rects)]
        if len(merged) == len(rects):
            break
        rects = merged
    if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects) > max_share * width * height:
        return None
    return sorted(rects)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None, fx=0.125, fy=0.125, interpolation=cv2.INTER_AREA)


def _centre_in(box: np.ndarray, others: Iterable[np.ndarray], grow: float) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for other in others:
        x1, y1, x2, y2 = _grow(other, grow)
        if x1 <= cx <= x2 and y1 <= cy <= y2:
            return True
    return False


def _pixels(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The whole pixels (x1, y1, x2, y2) that `box` touches, clipped to a frame of `shape`."""
    height, width = shape[:2]
    return (max(0, math.floor(box[0])), max(0, math.floor(box[1])),
            min(width, math.ceil(box[2])), min(height, math.ceil(box[3])))


def _dedupe(boxes: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """One box per face when a whole-frame pass and a crop both found it: the larger one is kept."""
    if len(boxes) < 2:
        return boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[nms(boxes.astype(np.float32), areas.astype(np.float32), iou)]


def blur_regions(image: np.ndarray, boxes: list[np.ndarray] | np.ndarray, kind: str, strength: float) -> None:
    """Anonymize the boxes (xyxy, frame pixels) of `image` in place.

    Overlapping boxes are blurred as one group, from one blurred copy: blurring them one after the
    other leaves a sharp seam where a later box starts inside an earlier one, and a seam across a face
    is an edge that a viewer (and SPEC section 6's Laplacian rule) still sees. A group's blur is
    computed on a copy shrunk until the kernel is a few pixels wide, then enlarged smoothly: the same
    low-pass at a fraction of the cost of a 100-pixel kernel, and no blocks (a mosaic can be undone).
    """
    height, width = image.shape[:2]
    rects = [r for r in (_pixels(box, image.shape) for box in boxes) if r[2] > r[0] and r[3] > r[1]]
    for group in _groups(rects):
        if kind == "fill":
            for x1, y1, x2, y2 in group:
                image[y1:y2, x1:x2] = 0
            continue
        sigma = max(2.0, strength * max(max(x2 - x1, y2 - y1) for x1, y1, x2, y2 in group))
        pad = int(2 * sigma)  # blur with the surroundings, so the group's edge does not stand out as a frame
        gx1, gy1 = max(0, min(r[0] for r in group) - pad), max(0, min(r[1] for r in group) - pad)
        gx2, gy2 = min(width, max(r[2] for r in group) + pad), min(height, max(r[3] for r in group) + pad)
        blurred = _low_pass(image[gy1:gy2, gx1:gx2], kind, sigma)
        for x1, y1, x2, y2 in group:
            image[y1:y2, x1:x2] = blurred[y1 - gy1:y2 - gy1, x1 - gx1:x2 - gx1]


def _groups(rects: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Rectangles that overlap or touch, directly or through others, grouped (union-find)."""
    parent = list(range(len(rects)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(rects):
        for j in range(i):
            b = rects[j]
            if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                parent[root(i)] = root(j)
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for i, r in enumerate(rects):
        groups.setdefault(root(i), []).append(r)
    return list(groups.values())


def _low_pass(patch: np.ndarray, kind: str, sigma: float) -> np.ndarray:
    shrink = max(1.0, sigma / 3.0)
    size = (patch.shape[1], patch.shape[0])
    small = cv2.resize(patch, (max(1, round(size[0] / shrink)), max(1, round(size[1] / shrink))),
                       interpolation=cv2.INTER_AREA) if shrink > 1 else patch
    s = sigma / shrink
    if kind == "gaussian":
        small = cv2.GaussianBlur(small, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    else:
        k = 2 * max(1, round(s)) + 1
        small = cv2.blur(small, (k, k), borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR) if shrink > 1 else small
