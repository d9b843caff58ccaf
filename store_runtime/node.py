"""The camera node: one camera's frames in, small typed events out.

    source -> detect (rate controlled) -> track -> codes (gate cameras) -> gates, shelf -> events -> bus
                                                 -> redact -> sink (private video, live view)
                                                           -> clips (review clips of shelf events)

(redact, and what takes its pictures, optionally in threads of their own: NodeConfig.redact_in_thread;
a replay also reads and detects its frames a few ahead in another: `CameraNode.read_ahead`.)

Detection is the expensive stage, so it runs every `detect_every` frames, and on frames between
only when the picture moved (motion gating); the tracker carries tracks by motion in between.
Every stage's time is counted (`timings`). Events get ids from what they say, so a replay gives
the same ids every time; nothing here knows whether frames come from a file or a live camera.
The only picture that leaves the node is what `redact` made of a frame (`vision.privacy`).

A live node also watches its camera (`follow`, `CameraWatch`): the source's health between frames
too, since a stalled camera sends no frame that would wake the loop. An outage (stalled,
disconnected), its end and a heartbeat every `heartbeat_s` with the frame lag go out as
`CameraStatus` events on the same bus, so the store can flag the sessions a blind camera may have
got wrong. A replay steps frames only and never reports camera status: its outputs do not change.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from store_runtime.bus import Bus, Event
from store_runtime.config import Store, StoreConfig
from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone, camera_status_id, event_id
from vision.codes import CodeReader, Debouncer, ReaderOptions
from vision.gates import EntryEvent, EntryWatcher, ZoneEvent, ZoneWatcher
from vision.sources import SourceError, SourceHealth, SourceState
from vision.tracking import Tracker, TrackerConfig
from vision.types import Detections, Frame, Tracks

if TYPE_CHECKING:
    from store_runtime.clips import ClipRecorder
    from vision.inference.yolo import YoloDetector
    from vision.overlay import FrameState
    from vision.privacy import RedactedFrame, Redactor
    from vision.sources import LiveSource


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> Detections: ...


class ShelfStage(Protocol):
    """What the node needs of the shelf-interaction stage (vision.shelf)."""

    def step(self, image: np.ndarray, t: float, tracks: Tracks) -> list: ...

    def flush(self, t: float) -> list: ...


@dataclass(frozen=True)
class NodeConfig:
    detect_every: int = 3  # run the detector at least every k-th frame
    # Mean absolute change of grey level (0-255) since the last detection, in the cell of an 8x4 grid
    # that changed most, above which a frame between two scheduled detections is detected anyway:
    # someone moved. Per cell, because a shopper walking in at the door is a small part of the frame,
    # and a tentative track that misses detections while it moves is never confirmed.
    motion_threshold: float = 6.0
    codes_every: int = 1  # gate cameras: read codes on every k-th frame
    code_reads: int = 2  # a code counts after this many reads (debounce)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # A live node tells the store its camera is fine (and its frame lag) this often, so that the
    # store can tell a quiet camera from a node it has not heard of.
    heartbeat_s: float = 30.0
    # Blur faces in a thread of the node's own and write the pictures in another, each a few frames
    # behind the stage before: detection, face blurring and encoding each let go of the GIL (ONNX
    # Runtime, OpenCV, the encoder), so the node keeps cores busy that one thread would leave idle while
    # the other camera has nothing left to do. Pictures, clips and events are the same either way.
    redact_in_thread: bool = False

    def __post_init__(self) -> None:
        for name in ("detect_every", "codes_every", "code_reads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"NodeConfig.{name}: expected an integer of at least 1, got {value!r}")
        if not 0 <= self.motion_threshold < 256:
            raise ValueError(f"NodeConfig.motion_threshold: expected 0 to 255, got {self.motion_threshold!r}")
        beat = self.heartbeat_s
        number = isinstance(beat, int | float) and not isinstance(beat, bool) and math.isfinite(beat)
        if not number or not 0 < beat <= 3600:
            raise ValueError(f"NodeConfig.heartbeat_s: expected seconds from 0 (exclusive) to 3600, got {beat!r}")


@dataclass
class StageTimes:
    """Seconds and calls per stage, in the order stages first ran."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.calls[name] = self.calls.get(name, 0) + 1

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"calls": self.calls[name], "ms_per_call": round(1000 * s / self.calls[name], 3),
                       "seconds": round(s, 3)} for name, s in self.seconds.items()}


class CameraWatch:
    """A live camera's health in, `CameraStatus` events out: one when an outage begins (stalled or
    disconnected), one when a stall turns into a lost stream, one when frames come again
    (`recovered`, from the first frame newer than the outage's start), and an `ok` heartbeat every
    `heartbeat_s` (the first with the first frame) while nothing is wrong.

    `update(health, now, frame_t)` is called with the source's health after each frame (`frame_t`,
    the frame's time, also gives the lag: how old the frame was when the pipeline got it) and
    between frames. `now`, `frame_t` and the health's times are on the source's clock; `to_store`
    maps them to the store clock (the identity for a live node, whose frames carry the wall clock).
    A source still connecting counts as disconnected once it has been for the stall threshold: the
    camera is not there. The state it keeps is one outage and two numbers: bounded.
    """

    def __init__(self, camera: str, *, heartbeat_s: float, to_store: Callable[[float], float] | None = None) -> None:
        self.camera = camera
        self.heartbeat_s = heartbeat_s
        self.to_store = to_store or (lambda t: t)
        self.outage: tuple[str, float] | None = None  # (stalled | disconnected, start), source clock
        self._reported: float | None = None  # when the last event was made, source clock
        self._lag: float | None = None  # the oldest frame age since the last report

    def update(self, health: SourceHealth, now: float, frame_t: float | None = None) -> list[CameraStatus]:
        if frame_t is not None:
            self._lag = max(self._lag or 0.0, now - frame_t, 0.0)
        state = _camera_state(health, now)
        if state in ("stalled", "disconnected"):
            start = health.outage_since if health.outage_since is not None else now
            if self.outage is None or (self.outage[0], state) == ("stalled", "disconnected"):
                start = start if self.outage is None else self.outage[1]
                self.outage = (state, start)
                return [self._status(state, health, now, outage=state, start=start)]
            return []
        if state != "ok":
            return []
        if self.outage is not None:
            worst, start = self.outage
            if frame_t is None or frame_t <= start:
                return []  # a frame read before the outage, still in the queue: not a recovery
            self.outage = None
            return [self._status("recovered", health, now, outage=worst, start=start, end=frame_t)]
        if self._reported is None or now - self._reported >= self.heartbeat_s:
            return [self._status("ok", health, now)]
        return []

    def _status(self, status: str, health: SourceHealth, now: float, *, outage: str | None = None,
                start: float | None = None, end: float | None = None) -> CameraStatus:
        t = self.to_store(now)
        start_t = None if start is None else min(self.to_store(start), t)
        end_t = None if end is None else min(self.to_store(end), t)
        lag, self._lag, self._reported = self._lag, None, now
        return CameraStatus(
            id=camera_status_id(self.camera, status, start_t, t), t=t, camera=self.camera, status=status,
            outage=outage, start_t=start_t, end_t=end_t, reconnects=health.reconnects,
            lag_s=None if lag is None else round(lag, 3), detail=(health.last_error or "")[:300] if outage else "")


def _camera_state(health: SourceHealth, now: float) -> str | None:
    """ok, stalled or disconnected; None while it is too early to say, or once the source is over."""
    state = health.state
    if state is SourceState.STREAMING:
        return "ok"
    if state is SourceState.STALLED:
        return "stalled"
    if state in (SourceState.RECONNECTING, SourceState.FAILED):
        return "disconnected"
    if state is SourceState.CONNECTING and health.outage_since is not None and health.stall_after_s is not None:
        return "disconnected" if now - health.outage_since > health.stall_after_s else None
    return None


class _Line:
    """One stage of a node in a thread of its own: items go in through a bounded queue and are handled
    one at a time, in the order they came. A failure is kept in `error` and raised in the putting
    thread at its next `put`; the thread keeps taking items, so that a put never blocks for good."""

    PENDING = 4  # items queued: bounded memory (a 720p frame is 2.7 MB)

    def __init__(self, name: str, handle: Callable[[tuple], None]) -> None:
        self.handle = handle
        self.queue: queue.Queue = queue.Queue(maxsize=self.PENDING)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, item: tuple) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def end(self) -> None:
        """The thread ended once everything queued is done; what failed is in `error`."""
        if self.thread.is_alive():
            self.queue.put(("end",))
            self.thread.join()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item[0] == "end":
                return
            if self.error is None:
                try:
                    self.handle(item)
                except BaseException as exc:
                    self.error = exc


class _ReadAhead:
    """Frames read and detected in a thread of their own, at most `_Line.PENDING` ahead of the one taking
    them: (frame, detections) in order, then what reading raised, if anything. `close` ends the thread."""

    def __init__(self, name: str, frames: Iterable[Frame], detect: Callable[[Frame], Detections | None]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=_Line.PENDING)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frames, detect), name=name, daemon=True)
        self._thread.start()

    def _run(self, frames: Iterable[Frame], detect: Callable[[Frame], Detections | None]) -> None:
        try:
            for frame in frames:
                if not self._put(("frame", frame, detect(frame))):
                    return
        except BaseException as exc:  # raised in the taking thread, after the frames read before it
            self._put(("error", exc))
        else:
            self._put(("end",))

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[Frame, Detections | None]]:
        while True:
            item = self._queue.get()
            if item[0] == "end":
                return
            if item[0] == "error":
                raise item[1]
            yield item[1], item[2]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class CameraNode:
    """Runs one camera of `store`. `step(frame)` publishes and returns that frame's events; a live
    node also calls `watch(health, now, frame_t)` (see `follow`)."""

    def __init__(self, store: StoreConfig, camera: str, *, detector: Detector, bus: Bus,
                 config: NodeConfig | None = None, reader: CodeReader | None = None,
                 shelf: ShelfStage | None = None, redactor: Redactor | None = None,
                 sink: Callable[[RedactedFrame], None] | None = None,
                 to_store: Callable[[float], float] | None = None) -> None:
        if sink is not None and redactor is None:
            raise ValueError("a sink takes redacted frames only: give the node a redactor too")
        if camera not in store.cameras:
            raise ValueError(f"camera {camera!r} is not in the store's cameras {sorted(store.cameras)}")
        self.camera, self.spec = camera, store.cameras[camera]
        self.config = config or NodeConfig()
        self.detector, self.bus, self.shelf = detector, bus, shelf
        self.redactor, self.sink = redactor, sink
        # Review clips (store_runtime.clips) of the redacted pictures, and what the node believed at
        # each frame for the live view's drawings (vision.overlay): both optional, set by the caller.
        self.clips: ClipRecorder | None = None
        self.on_state: Callable[[FrameState], None] | None = None
        self.timings = StageTimes()
        self.tracker = Tracker(self.config.tracker)
        self.camera_watch = CameraWatch(camera, heartbeat_s=self.config.heartbeat_s, to_store=to_store)
        self.frames = 0
        self.detections = 0
        self._since_detection = 0
        self._last_t = 0.0
        self._last_detected: np.ndarray | None = None
        self._entries = self._zones = None
        self._reader, self._debounce = None, None
        self._lines: tuple[_Line, _Line] | None = None  # redaction, then the pictures' way out
        self._ahead: _ReadAhead | None = None  # frames read and detected ahead (read_ahead)
        self._detected: tuple[Frame, Detections | None] | None = None  # the last of them, for its step
        if self.spec.role == "gate":
            self._entries = EntryWatcher(gate=self.spec.gate or "", camera=camera, key=store.entry_key_bytes,
                                         store_id=store.store_id)
            self._reader = reader or _qr_reader()
            self._debounce = Debouncer(reads=self.config.code_reads)
        if self.spec.zones:
            self._zones = ZoneWatcher(camera=camera, zones=self.spec.zones,
                                      kinds={name: store.gates[name].kind for name in self.spec.zones})

    def step(self, frame: Frame) -> list[Event]:
        self.frames += 1
        self._last_t = frame.t
        if self._ahead is None:
            detections = self._timed_detect(frame)
        elif self._detected is not None and self._detected[0] is frame:
            detections, self._detected = self._detected[1], None
        else:  # detecting it here would race the reading thread's motion gate
            raise ValueError(f"camera {self.camera!r}: step() got frame {frame.index}, which read_ahead did not "
                             f"give: a node reading ahead steps the frames it gives, in order")
        with self.timings.stage("track"):
            tracks = self.tracker.update(detections, t=frame.t, image=frame.image)
        events: list[Event] = []
        if self._entries is not None and frame.index % self.config.codes_every == 0:
            with self.timings.stage("codes"):
                read = self._debounce.update(self._reader.read(frame.image))
                events += [self._entry(e, frame.index) for e in self._entries.step([c.text for c in read], frame.t)]
        if self._zones is not None:
            with self.timings.stage("zones"):
                events += [self._zone(e) for e in self._zones.step(tracks, frame.t)]
        if self.shelf is not None:
            with self.timings.stage("shelf"):
                events += [self._shelf(e) for e in self.shelf.step(frame.image, frame.t, tracks)]
        if self.on_state is not None:
            self.on_state(self._state(frame, tracks))
        if self.sink is not None or self.clips is not None:
            if self.redactor is None:
                raise ValueError("review clips take redacted frames only: give the node a redactor too")
            if self.config.redact_in_thread:
                if self._lines is None:
                    self._lines = self._start_lines()
                self._lines[0].put(("frame", frame, tracks))
            else:
                with self.timings.stage("redact"):
                    ready = self.redactor.push(frame, tracks)
                self._let_out(ready)
        return self._publish(events)

    def finish(self) -> list[Event]:
        """The recording ended: tracks still in view are gone, open interactions are settled."""
        events: list[Event] = []
        if self._zones is not None:
            events += [self._zone(e) for e in self._zones.flush()]
        if self.shelf is not None:
            events += [self._shelf(e) for e in self.shelf.flush(self._last_t)]
        if self._lines is not None:
            self._lines[0].put(("flush",))  # before the last events go to the clips, as inline
        elif self.sink is not None or self.clips is not None:
            self._let_out(self.redactor.flush())
        published = self._publish(events)
        error = self._end_lines()
        if error is not None:
            raise error
        if self.clips is not None:
            with self.timings.stage("clips"):
                self.clips.flush()
        return published

    def close(self) -> None:
        """Ends the threads of a node that will not `finish` (a stopped replay): reading ahead stops, and what
        was queued for redaction (NodeConfig.redact_in_thread) is still blurred and let out; nothing is
        raised."""
        if self._ahead is not None:
            self._ahead.close()
        self._end_lines()

    def read_ahead(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """`frames`, each with its detection already made for `step`: a thread of the node's own reads them
        (a file source decodes in the thread that reads it) and runs the motion gate and the detector a few
        frames ahead, so that reading and detecting the next frame overlaps the tracking, code reading and
        shelf stage of this one; on a replay's busiest camera those two halves take about as long. The
        detections are the ones step would make. For recordings, whose frames are all there to read; a
        live node steps each frame as it comes. What reading raises comes out here, after the frames
        before it; `close` (or the end of the iteration) ends the thread."""
        if self._ahead is not None:
            raise RuntimeError(f"camera {self.camera!r}: the node already reads ahead")
        self._ahead = _ReadAhead(f"walkout-detect-{self.camera}", frames, self._timed_detect)
        try:
            for frame, detections in self._ahead:
                self._detected = (frame, detections)
                yield frame
        finally:
            self._ahead.close()
            self._ahead = self._detected = None

    def _start_lines(self) -> tuple[_Line, _Line]:
        out = _Line(f"walkout-out-{self.camera}", self._output)

        def redact(item: tuple) -> None:
            if item[0] == "frame":
                with self.timings.stage("redact"):
                    ready = self.redactor.push(item[1], item[2])
            elif item[0] == "flush":
                ready = self.redactor.flush()
            else:  # a shelf event for the clips, after the pictures made before it
                out.put(item)
                return
            for picture in ready:
                out.put(("picture", picture))

        return _Line(f"walkout-redact-{self.camera}", redact), out

    def _output(self, item: tuple) -> None:
        if item[0] == "picture":
            self._let_out([item[1]])
        else:
            self.clips.event(item[1])

    def _end_lines(self) -> BaseException | None:
        """The redaction threads ended once what was queued is done; what failed there, if anything."""
        if self._lines is None:
            return None
        (redaction, out), self._lines = self._lines, None
        redaction.end()
        out.end()
        return redaction.error or out.error

    def watch(self, health: SourceHealth, now: float, frame_t: float | None = None) -> list[Event]:
        """A live camera's health (`CameraWatch.update`): publishes and returns the status events."""
        return self._publish(list(self.camera_watch.update(health, now, frame_t)))

    def run(self, frames: Iterable[Frame]) -> int:
        """Every frame of `frames` through the pipeline, then `finish`; returns the events published."""
        published = 0
        for frame in frames:
            published += len(self.step(frame))
        return published + len(self.finish())

    def _let_out(self, redacted: list[RedactedFrame]) -> None:
        if self.sink is not None:
            with self.timings.stage("sink"):
                for picture in redacted:
                    self.sink(picture)
        if self.clips is not None:
            with self.timings.stage("clips"):
                for picture in redacted:
                    self.clips.frame(picture)

    def _state(self, frame: Frame, tracks: Tracks) -> FrameState:
        from vision.overlay import FrameState

        state = getattr(self.shelf, "state", None)
        slots = {k: (len(v.facings) if v.known else None) for k, v in state().items()} if state else {}
        return FrameState(self.camera, frame.index, frame.t, tracks, slots)

    def _timed_detect(self, frame: Frame) -> Detections | None:
        with self.timings.stage("detect"):
            return self._detect(frame)

    def _detect(self, frame: Frame) -> Detections | None:
        small = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY), None, fx=0.125, fy=0.125,
                           interpolation=cv2.INTER_AREA)
        self._since_detection += 1
        due = self._last_detected is None or self._since_detection >= self.config.detect_every
        moved = (not due and self.config.motion_threshold > 0
                 and _local_motion(small, self._last_detected) > self.config.motion_threshold)
        if not (due or moved):
            return None  # the tracker predicts
        self._last_detected, self._since_detection = small, 0
        self.detections += 1
        return self.detector.detect(frame.image)

    def _publish(self, events: list[Event]) -> list[Event]:
        events.sort(key=lambda e: (e.t, e.id))
        for event in events:
            self.bus.publish(event)
            if self.clips is not None and isinstance(event, ShelfAction):
                if self._lines is not None:
                    self._lines[0].put(("event", event))
                else:
                    self.clips.event(event)
        return events

    def _entry(self, e: EntryEvent, index: int) -> EntryRead:
        claims, verdict = e.verdict.claims, e.verdict
        return EntryRead(
            id=event_id(self.camera, "entry", index, claims.jti if claims else verdict.detail), t=e.t,
            camera=self.camera, gate=e.gate, code=e.code, admitted=e.admitted,
            refusal=verdict.refusal.value if verdict.refusal else None, detail=verdict.detail[:300],
            customer=claims.cid if claims else None, jti=claims.jti if claims else None,
            party=claims.party if claims else None)

    def _zone(self, e: ZoneEvent) -> TrackZone:
        # With its time: a track the zone watcher forgot (gone a while) and the tracker found again under its
        # old id can enter again, and a second event under the first one's id would be refused as a replay.
        return TrackZone(id=event_id(self.camera, e.kind, e.track_id, e.zone, round(e.t, 3)), t=e.t,
                         camera=self.camera, kind=e.kind, track=e.track_id, zone=e.zone)

    def _shelf(self, e) -> ShelfAction:
        return ShelfAction(id=event_id(self.camera, "shelf", e.slot, e.action, round(e.t, 3), e.track),
                           t=e.t, camera=self.camera, action=e.action, track=e.track, gtin=e.gtin, qty=e.qty,
                           slot=e.slot, confidence=round(float(e.confidence), 4),
                           track_confidence=round(float(e.track_confidence), 4), sources=tuple(e.sources),
                           rivals=tuple((int(track), round(float(share), 4)) for track, share in e.rivals))


def follow(node: CameraNode, source: LiveSource, *, clock: Callable[[], float] = time.time, poll_s: float = 0.25,
           stop: threading.Event | None = None) -> Iterator[Event]:
    """A live source through `node`, yielding the events it publishes: every frame stepped, and the
    camera's health watched after each frame and every `poll_s` between frames (a stalled camera
    sends nothing that would wake the loop). `clock` must be the source's. Ends with `finish` when
    the source ends or `stop` is set; a source that gave up is reported disconnected, then its
    SourceError raised."""
    while stop is None or not stop.is_set():
        try:
            frame = source.read(timeout=poll_s)
        except SourceError:
            yield from node.watch(source.health(), clock())
            raise
        if frame is not None:
            yield from node.step(frame)
            yield from node.watch(source.health(), clock(), frame.t)
        elif (health := source.health()).state is SourceState.ENDED:
            break
        else:
            yield from node.watch(health, clock())
    yield from node.finish()


def _local_motion(small: np.ndarray, before: np.ndarray) -> float:
    """The largest mean grey-level change over the cells of an 8x4 grid."""
    return float(cv2.resize(cv2.absdiff(small, before), (8, 4), interpolation=cv2.INTER_AREA).max())


# Threads a camera's face blurring looks with at once (Redactor's workers) in a replay or a live store: a
# camera with many faces then uses the core that a camera with nothing left to do leaves idle.
FACE_WORKERS = 2


def load_detector(model: Path | None = None, threads: int = 2, spin: bool = True) -> YoloDetector:
    """Our store detector (manifest entry `walkout-det`, hash checked) or the ONNX file `model`; `spin`:
    see RuntimeOptions (off where other cameras' models share the cores)."""
    from vision.inference.manifest import ModelManifest
    from vision.inference.runtime import RuntimeOptions
    from vision.inference.yolo import load_yolo

    if model is None:
        manifest = ModelManifest.load()
        if "walkout-det" not in manifest.models:
            raise FileNotFoundError("models/manifest.yaml lists no 'walkout-det' detector yet: train it with "
                                    "`walkout train-detector`, or give an ultralytics ONNX export with --model")
        model = manifest.path_of("walkout-det")
    return load_yolo(model, RuntimeOptions(intra_op_threads=threads, spin=spin))


def shelf_for(store: Store, camera: str) -> ShelfStage | None:
    """The shelf-interaction stage of a shelf camera with slots: its planogram, the catalog's reference
    photos for appearance matching, and the shelf-edge labels read as EAN-13."""
    from vision.codes import open_reader
    from vision.shelf import ShelfMonitor, SlotSpec

    spec = store.config.cameras[camera]
    if not spec.slots:
        return None
    catalog = {gtin: [img for path in product.images if (img := cv2.imread(str(path))) is not None]
               for gtin, product in store.catalog.products.items()}
    reader = open_reader("combined", ReaderOptions(formats=("EAN13",), upscale=2.0))

    def read_label(image: np.ndarray) -> list[str]:
        return [code.gtin13 for code in reader.read(image)]

    return ShelfMonitor([SlotSpec(s.id, s.gtin, s.polygon, s.label) for s in spec.slots], catalog,
                        read_label=read_label)


def _qr_reader() -> CodeReader:
    from vision.codes import open_reader

    return open_reader("combined", ReaderOptions(formats=("QRCode",)))


def stage_report(nodes: Mapping[str, CameraNode]) -> dict[str, dict]:
    return {name: {"frames": n.frames, "detections": n.detections, "stages": n.timings.summary()}
            for name, n in nodes.items()}
