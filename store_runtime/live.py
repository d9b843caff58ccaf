"""`walkout run` (`make run`): the whole store on one machine, fed by a recorded scenario as if live.

Boot reads like a script (`run_live`): the scenario (config), the store's database and runtime,
the bus the runtime drains, one camera node per camera, then the API with the operator page; it
prints the operator page's URL, the API document's and an operator credential made for the demo,
then waits. Ctrl-C (or SIGTERM) stops the same things in the opposite order and exits 0.

Each camera's recording is a live source (`vision.sources.LiveSource`): read by its own thread at
the recording's frame rate, into a small queue that drops the oldest frame when the node lags, as
a real camera would. When a recording ends it starts again from its first frame (`LoopingCapture`),
so the cameras never stop.

The store clock, and what a loop of the recordings is. The recorded entry codes expire an hour
after the scenario's `start` and are single use (SPEC section 4): a store that saw the same code
again would refuse it, and the wall clock of today says nothing about a recording. So the demo
runs on the scenario clock (SPEC section 2): a frame is dated `start + index / fps` and the runtime
is told the time of the newest frame any camera has reached (`StoreClock`). What a second loop is
depends on the database:

- By default (no `--db`) **each loop is a new store day**: its own SQLite database (a file in a
  temporary folder, removed on exit), its own runtime and fresh camera nodes, on the scenario clock
  from `start` again. The codes of the recording are valid again, as a new day's shoppers' would
  be, and the operator page shows the newest day. A day's database is closed and deleted two days
  later, so a demo left running for days keeps two or three small files, not one per loop.
- With `--db URL` (a database the user keeps) **the recordings continue one long day**: one
  runtime, one node per camera for the whole run, and the clock runs on past each loop
  (`start + (loop * frames + index) / fps`), so times only grow. A code seen again is refused
  (`used`, later `expired`) and shoppers who come in without an admitted code are alerts in the
  review queue: what a real store would record.

Each node also watches its camera (`CameraNode.watch`): a recording read as live seldom stalls, but
a machine too busy to read it in time does, and the operator page's camera health says so; the
reports' times are moved onto the day's scenario clock.

Pictures leave the nodes only as redacted frames (`vision.privacy`); the operator page's live view
is the newest one of each camera (`LiveView`), as JPEG made by `vision.sinks.snapshot_jpeg`, plain
or with the node's tracks, slots and zones drawn (`vision.overlay`). Shelf cameras write a review
clip of each shelf event (`store_runtime.clips`; `clips=False` turns them off) into the run's
temporary folder unless `clips_dir` names another; the review queue shows them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from store_runtime.bus import Event
    from store_runtime.config import Scenario
    from store_runtime.node import CameraNode, Detector
    from store_runtime.runtime import StoreRuntime
    from vision.overlay import FrameState
    from vision.privacy import RedactedFrame, Redactor
    from vision.sources import Opener

__all__ = ["CameraLoop", "Day", "LiveOptions", "LiveView", "LoopingCapture", "StoreClock", "StoreDays", "run_live"]

log = logging.getLogger("walkout.run")

OPERATOR_PATH = "/operator"
BUS_CAPACITY = 10_000  # events waiting for the runtime; past it a node fails loudly (see MemoryBus)


@dataclass(frozen=True)
class LiveOptions:
    scenario: Path
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (tests)
    db_url: str | None = None  # None: a fresh SQLite database per loop (a store day) in a temporary folder
    model: Path | None = None  # detector ONNX; default: the manifest's walkout-det
    detect_every: int = 3
    clips: bool = True  # review clips of shelf events (store_runtime.clips), shown in the review queue
    clips_dir: Path | None = None  # where; default: the run's temporary folder (deleted on exit)


# --------------------------------------------------------------------------------------------
# The store clock and the store days


class StoreClock:
    """The store's time: the newest frame time that any camera has reached, on the scenario clock.
    Called by the runtime (and so by API requests) from any thread; it never goes back."""

    def __init__(self, t: float) -> None:
        self._t = float(t)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._t

    def reached(self, t: float) -> None:
        with self._lock:
            if t > self._t:
                self._t = t


@dataclass
class Day:
    """The runtime that one loop (or, with a kept database, every loop) of the recordings feeds."""

    number: int  # 1 for the first loop
    runtime: StoreRuntime
    clock: StoreClock
    start: float  # Unix seconds of frame 0 on the scenario clock
    continuous: bool  # one long day: frame times run on past the end of each loop
    path: Path | None = None  # its own SQLite file (fresh days), deleted when the day is retired
    finished: bool = False

    def frame_time(self, loop: int, position: int, frames_per_loop: int | None, fps: float) -> tuple[int, float]:
        """(frame index, time) of the frame at `position` in loop `loop` of a recording."""
        index = loop * (frames_per_loop or 0) + position if self.continuous else position
        return index, self.start + index / fps


class StoreDays:
    """Which store runtime each loop of the recordings feeds (see the module's docstring).

    `day(loop)` makes the day on first use; `reached(camera, loop)`, called in event order by the
    delivery thread, finishes a day once every camera has gone past it and retires (closes and
    deletes) the ones before it. `on_new_day` is told of each new day (the API follows the newest).
    """

    def __init__(self, scenario: Scenario, *, folder: Path, db_url: str | None = None,
                 on_new_day: Callable[[Day], None] | None = None) -> None:
        self.scenario = scenario
        self.folder = folder
        self.db_url = db_url
        self.on_new_day = on_new_day
        self._lock = threading.Lock()
        self._days: dict[int, Day] = {}
        self._at = dict.fromkeys(scenario.video_paths, 0)  # camera -> the loop it is in
        self._credentials: list[tuple[str, str, str, float]] = []
        self.newest: Day | None = None
        self.operator_token = ""

    def open(self) -> Day:
        """The first day, with the demo's operator credential (`operator_token`, shown once)."""
        from sqlalchemy import select

        from store_runtime.db import CredentialRow, add_credential

        first = self.day(0)
        # In a database the user keeps, another run's credential may hold a fixed name.
        name = "walkout-run" if self.db_url is None else f"walkout-run-{secrets.token_hex(3)}"
        self.operator_token = add_credential(first.runtime.db, "operator", name, t=time.time())
        with first.runtime.db.transaction() as tx:  # only the hashes: a new day's database gets them too
            rows = tx.scalars(select(CredentialRow)).all()
            self._credentials = [(r.name, r.role, r.token_sha256, r.created_t) for r in rows]
        return first

    def day(self, loop: int) -> Day:
        if self.db_url is not None:
            loop = 0  # a kept database: every loop is the first day, continued
        with self._lock:
            day = self._days.get(loop)
            if day is None:
                day = self._days[loop] = self._make(loop)
                if self.newest is None or day.number > self.newest.number:
                    self.newest = day
                    if self.on_new_day is not None:
                        self.on_new_day(day)
            return day

    def _make(self, loop: int) -> Day:
        from store_runtime.db import CredentialRow, open_database
        from store_runtime.runtime import StoreRuntime

        start = self.scenario.start_unix
        path = None if self.db_url is not None else self.folder / f"day-{loop + 1:05d}.db"
        db = open_database(self.db_url if path is None else f"sqlite:///{path}")
        try:
            if self._credentials:
                with db.transaction() as tx:
                    tx.add_all(CredentialRow(name=n, role=r, token_sha256=h, created_t=t)
                               for n, r, h, t in self._credentials)
            clock = StoreClock(start)
            runtime = StoreRuntime(db, self.scenario.store, clock=clock)
            runtime.recover()  # a kept database may hold charges a crash left pending
        except Exception:
            db.close()
            raise
        return Day(loop + 1, runtime, clock, start, continuous=self.db_url is not None, path=path)

    def reached(self, camera: str, loop: int) -> None:
        """`camera` is in loop `loop` now, and every event of its earlier loops has been applied."""
        with self._lock:
            self._at[camera] = max(self._at.get(camera, 0), loop)
            everyone = min(self._at.values())
            done = [d for lp, d in sorted(self._days.items()) if lp < everyone and not (d.finished or d.continuous)]
            old = [lp for lp in self._days if lp < everyone - 1 and self._days[lp] is not self.newest]
            retired = [self._days.pop(lp) for lp in old]
        for day in done:
            day.finished = True
            day.runtime.finish(day.clock())  # pending provider calls; the sessions still inside stay open
        for day in retired:
            self._retire(day)

    def _retire(self, day: Day) -> None:
        if day.continuous:
            return
        day.runtime.db.close()
        if day.path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{day.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            days, self._days = list(self._days.values()), {}
        for day in days:
            day.runtime.db.close()


# --------------------------------------------------------------------------------------------
# The bus between the camera threads and the runtime


@dataclass(frozen=True)
class _Reached:
    """A camera's marker on the bus: it is in `loop` now; everything it published before is older."""

    camera: str
    loop: int


class _DayBus:
    """What one node publishes into: the demo's one queue, each event with the day it belongs to."""

    def __init__(self, day: Day, events: queue.Queue) -> None:
        self.day, self._events = day, events

    def publish(self, event: Event | _Reached) -> None:
        try:
            self._events.put_nowait((self.day, event))
        except queue.Full:
            raise OverflowError(f"{BUS_CAPACITY} events wait for the store runtime: it has stopped draining") from None


class Delivery:
    """The runtime's side of the bus: one thread applies every event, in the order published, to the
    runtime of its day (one transaction each). An event the runtime cannot apply is logged and
    skipped: one bad event must not stop the store."""

    def __init__(self, days: StoreDays) -> None:
        self.days = days
        self.events: queue.Queue = queue.Queue(BUS_CAPACITY)
        self.applied = 0
        self._thread = threading.Thread(target=self._run, name="runtime-delivery", daemon=True)

    def bus(self, day: Day) -> _DayBus:
        return _DayBus(day, self.events)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """After the nodes have stopped: what they published is applied, then the thread ends."""
        try:
            self.events.put(None, timeout=timeout)
        except queue.Full:
            log.error("the store runtime stopped draining: %d events left unapplied", self.events.qsize())
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self.events.get()) is not None:
            day, event = item
            try:
                if isinstance(event, _Reached):
                    self.days.reached(event.camera, event.loop)
                else:
                    day.runtime.apply(event)
                    self.applied += 1
            except Exception:
                log.exception("the store runtime could not apply %s", getattr(event, "id", event))


# --------------------------------------------------------------------------------------------
# Cameras


class LoopingCapture:
    """A recording that starts again from its first frame when it ends: a camera that never stops.

    Wraps what `vision.sources.default_opener` opens for a file (the `Capture` shape a LiveSource
    reads); `frames_per_loop` is learnt at the first wrap, so that a frame's running index says which
    loop it is in. An empty recording is not looped (the source ends)."""

    def __init__(self, open_once: Opener) -> None:
        self._open_once = open_once
        self._capture = open_once()
        self._count = 0
        self.frames_per_loop: int | None = None

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._capture.isOpened()

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, image = self._capture.read()
        if not ok and self._count > 0:
            if self.frames_per_loop is None:
                self.frames_per_loop = self._count
            self._capture.release()
            self._capture, self._count = self._open_once(), 0
            ok, image = self._capture.read()
        if ok:
            self._count += 1
        return ok, image

    def release(self) -> None:
        self._capture.release()


class CameraLoop:
    """One camera of the demo, in its own thread: its recording as a looping live source, through a
    camera node per store day (`make_node(day, bus)`), into the bus. A failure is kept in `error`
    and ends the thread (and, seen by `run_live`, the demo)."""

    def __init__(self, camera: str, video: Path, *, days: StoreDays, delivery: Delivery,
                 make_node: Callable[[Day, _DayBus], CameraNode], stop: threading.Event,
                 queue_size: int = 8) -> None:
        from vision.sources import LiveSource, SourceConfig, default_opener

        self.camera, self.days, self.delivery, self.make_node, self.stop = camera, days, delivery, make_node, stop
        config = SourceConfig(kind="file", uri=video, camera=camera, live=True, queue_size=queue_size)
        once = default_opener(config)
        self.capture: LoopingCapture | None = None

        def open_looping() -> LoopingCapture:
            self.capture = LoopingCapture(once)
            return self.capture

        self.source = LiveSource(config, open_looping)
        self.fps = self.source.info.fps
        self.error: str | None = None
        self.frames = 0  # frames through the node
        self.loop = 0
        self._node: CameraNode | None = None
        self._day: Day | None = None
        self._to_day = 0.0  # the day's scenario clock minus the wall clock, at the newest frame
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        self.source.close()
        self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        health = self.source.health()
        return {"camera": self.camera, "state": "failed" if self.error else health.state.value,
                "loop": self.loop + 1, "frames_read": health.frames_read, "frames_processed": self.frames,
                "frames_dropped": health.frames_dropped, "error": self.error}

    def _run(self) -> None:
        try:
            with self.source:
                while not self.stop.is_set():
                    frame = self.source.read(timeout=0.5)
                    if frame is not None:
                        self._step(frame.index, frame.image, frame.t)
                    elif self.source.health().state.value in ("ended", "failed"):
                        if not self.stop.is_set():
                            raise RuntimeError("the recording gave no frame to loop")
                        return
                    elif self._node is not None:  # no frame: the camera's health still counts
                        self._node.watch(self.source.health(), time.time())
        except Exception as exc:
            self.error = f"camera {self.camera}: {exc}"
            log.exception("camera %s stopped", self.camera)
        finally:
            if self._node is not None:
                self._node.close()  # its redaction thread: stopped with the camera

    def _step(self, index: int, image: np.ndarray, read_t: float) -> None:
        """One frame (read from the camera at wall-clock `read_t`) through the node of its day; then
        the camera's health (`CameraNode.watch`), its times moved to the day's scenario clock."""
        from vision.types import Frame

        per_loop = self.capture.frames_per_loop if self.capture is not None else None
        loop, position = divmod(index, per_loop) if per_loop else (0, index)
        if self._node is None or loop != self.loop:
            self._enter_loop(loop)
        assert self._day is not None and self._node is not None
        frame_index, t = self._day.frame_time(loop, position, per_loop, self.fps)
        self._day.clock.reached(t)
        # The one raw frame in this module: it goes into the node, whose redactor is the only way out.
        self._node.step(Frame(self.camera, frame_index, t, image))
        self._to_day = t - read_t
        self._node.watch(self.source.health(), time.time(), read_t)
        self.frames += 1

    def _enter_loop(self, loop: int) -> None:
        day = self.days.day(loop)
        if day is not self._day:
            if self._node is not None:
                self._node.finish()  # the recording ended: tracks in view are gone, interactions settle
            self._node = self.make_node(day, self.delivery.bus(day))
            # The source's times are the wall clock; the day's are the scenario clock.
            self._node.camera_watch.to_store = lambda wall: wall + self._to_day
            self._day = day
        if loop != self.loop:
            self.delivery.bus(day).publish(_Reached(self.camera, loop))
        self.loop = loop


# --------------------------------------------------------------------------------------------
# The live view


class LiveView:
    """The newest redacted frame of each camera, for the operator page. One frame a camera, so it
    stays the same size however long the store is open; each is made a JPEG (`snapshot_jpeg`) once,
    when first asked for, however many pages show it.

    For the drawn view (`vision.overlay`) the nodes also send what they believed at each frame
    (`state_sink`): the few newest states of a camera are kept, since a redacted frame leaves its
    node a few frames after its tracks were known, and folded into each camera's `SlotLedger`."""

    STATES_KEPT = 32  # more than the redactor's lookahead: the state of the frame shown is still here

    def __init__(self, cameras: Mapping[str, tuple[int, int]], quality: int = 80) -> None:
        from vision.overlay import SlotLedger

        self.sizes = dict(cameras)  # camera -> (width, height)
        self.quality = quality
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, RedactedFrame]] = {}
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._seq = 0
        self._states: dict[str, collections.deque[FrameState]] = {
            c: collections.deque(maxlen=self.STATES_KEPT) for c in self.sizes}
        self.ledgers = {c: SlotLedger() for c in self.sizes}

    def sink(self, camera: str) -> Callable[[RedactedFrame], None]:
        """The node's sink for `camera`."""
        return lambda frame: self.put(camera, frame)

    def state_sink(self, camera: str) -> Callable[[FrameState], None]:
        """The node's `on_state` for `camera`."""
        return lambda state: self.put_state(camera, state)

    def put_state(self, camera: str, state: FrameState) -> None:
        with self._lock:
            self._states[camera].append(state)
            self.ledgers[camera].update(state)

    def drawn_jpeg(self, camera: str, draw: Callable[[np.ndarray, FrameState | None], np.ndarray]) -> bytes | None:
        """JPEG of the newest frame of `camera` with `draw(picture, state)` applied, `state` being what
        the node believed at that frame (or the newest before it); None before its first frame. Drawn
        on each call: the marks change (a track gets its session) while the frame does not."""
        from vision.sinks import snapshot_jpeg

        with self._lock:
            latest = self._latest.get(camera)
            states = list(self._states.get(camera, ()))
        if latest is None:
            return None
        frame = latest[1]
        state = next((s for s in reversed(states) if s.index <= frame.index), None)
        return snapshot_jpeg(frame, self.quality, draw=lambda image: draw(image, state))

    def put(self, camera: str, frame: RedactedFrame) -> None:
        from vision.sinks import require_redacted

        require_redacted(frame, "LiveView.put")
        with self._lock:
            self._seq += 1
            self._latest[camera] = (self._seq, frame)

    def jpeg(self, camera: str) -> bytes | None:
        """JPEG bytes of the newest frame of `camera`; None before its first one."""
        from vision.sinks import snapshot_jpeg

        with self._lock:
            latest, made = self._latest.get(camera), self._jpeg.get(camera)
        if latest is None:
            return None
        seq, frame = latest
        if made is not None and made[0] == seq:
            return made[1]
        data = snapshot_jpeg(frame, self.quality)
        with self._lock:
            if self._jpeg.get(camera, (-1, b""))[0] < seq:
                self._jpeg[camera] = (seq, data)
        return data


# --------------------------------------------------------------------------------------------
# Boot


class RunError(Exception):
    """The demo cannot start or stopped on a failure: one line for the user."""


def _listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound before anything heavy is loaded: a port in use is said at once."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (give another --port)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` (the main thread then stops everything in order); a second one
    while stopping ends the process at once. `walkout run` and a live `walkout node` use it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: Any) -> None:
        if stop.is_set():
            os._exit(130)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _default_redactor() -> Redactor:
    from store_runtime.node import FACE_WORKERS
    from vision.privacy import Redactor

    return Redactor.from_manifest(workers=FACE_WORKERS)


def run_live(options: LiveOptions, *, stop: threading.Event | None = None, out: IO[str] | None = None,
             make_detector: Callable[[], Detector] | None = None,
             make_redactor: Callable[[], Redactor] | None = None) -> int:
    """Runs the demo until `stop` is set (Ctrl-C and SIGTERM set it); returns the exit code. Raises
    RunError (and ConfigError for a bad scenario) before anything has started. `make_detector` and
    `make_redactor` (one of each per camera) are for tests; the defaults load the manifest's models."""
    from store_runtime.api import api_server, configure_logging, create_app
    from store_runtime.api.settings import ApiSettings
    from store_runtime.clips import ClipRecorder, ClipStore
    from store_runtime.config import load_scenario
    from store_runtime.node import CameraNode, NodeConfig, load_detector, shelf_for

    stop = stop or threading.Event()
    out = out or sys.stdout
    # 1. Config: the scenario (store layout, catalog, recordings), and the port, before anything heavy.
    scenario = load_scenario(Path(options.scenario))
    store = scenario.store
    listener = _listen(options.host, options.port)
    configure_logging()
    with stop_on_signals(stop), contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        # 2. Database: the first store day (and the operator credential).
        folder = Path(tempfile.mkdtemp(prefix="walkout-run-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        days = StoreDays(scenario, folder=folder, db_url=options.db_url)
        stack.callback(days.close)
        first = days.open()
        # 3. Bus: nodes publish, one thread applies to the runtime.
        delivery = Delivery(days)
        delivery.start()
        stack.callback(delivery.stop)
        # 4. Camera nodes: a detector and a face blurrer per camera (neither may be shared by threads).
        live_view = LiveView({c: tuple(spec.size) for c, spec in store.config.cameras.items()})
        # Each camera's face blurring in a thread of its own: two cameras and their blurring fill two cores.
        node_config = NodeConfig(detect_every=options.detect_every, redact_in_thread=True)
        clips = ClipStore(options.clips_dir or folder / "clips") if options.clips else None
        cameras: list[CameraLoop] = []
        for camera, video in sorted(scenario.video_paths.items()):
            detector = make_detector() if make_detector else load_detector(options.model, threads=1)
            redactor = make_redactor() if make_redactor else _default_redactor()
            stack.callback(redactor.close)  # after its camera stopped: callbacks run last in, first out

            def make_node(day: Day, bus: _DayBus, camera: str = camera, detector: Any = detector,
                          redactor: Any = redactor) -> CameraNode:
                node = CameraNode(store.config, camera, detector=detector, bus=bus, config=node_config,
                                  shelf=shelf_for(store, camera), redactor=redactor, sink=live_view.sink(camera))
                node.on_state = live_view.state_sink(camera)
                if clips is not None and store.config.cameras[camera].slots:
                    node.clips = ClipRecorder(clips.folder, camera)
                    day.runtime.clips = clips  # every day's review queue shows the clips of its events
                return node

            cameras.append(CameraLoop(camera, video, days=days, delivery=delivery, make_node=make_node, stop=stop))
        for loop in cameras:
            loop.start()

        def stop_cameras() -> None:
            stop.set()
            for loop in cameras:
                loop.join()

        stack.callback(stop_cameras)
        # 5. API: the exit-gate API, the operator page and /docs, following the newest store day.
        app = create_app(ApiSettings(store=store.root / scenario.manifest.store.name,
                                     db_url=options.db_url or "sqlite://"), runtime=first.runtime)
        days.on_new_day = lambda day: setattr(app.state, "runtime", day.runtime)
        if days.newest is not None:
            app.state.runtime = days.newest.runtime
        app.state.live_view = live_view
        app.state.live_status = lambda: _status(scenario, days, cameras, delivery)
        # Its shutdown ends the console's event streams first (api_server): 3 s is then plenty.
        server = api_server(app, log_config=None, access_log=False, server_header=False,
                            timeout_graceful_shutdown=3, lifespan="on")
        # Its own thread: the main thread keeps the signals, so that uvicorn's handlers (which raise
        # the signal again once it has stopped) never turn a Ctrl-C into a traceback.
        serving = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="api", daemon=True)
        serving.start()

        def stop_server() -> None:
            server.should_exit = True
            serving.join(10)

        stack.callback(stop_server)
        return _wait(stop, server, serving, cameras, listener, days, out, scenario)
    return 0  # pragma: no cover - the with block returns


def _wait(stop: threading.Event, server: Any, serving: threading.Thread, cameras: list[CameraLoop],
          listener: socket.socket, days: StoreDays, out: IO[str], scenario: Scenario) -> int:
    """Until stopped: say where to look once the API answers, and watch the threads."""
    announced = False
    while not stop.wait(0.2):
        if not announced and server.started:
            _announce(out, listener, days, scenario)
            announced = True
        if not serving.is_alive():
            print("walkout run: the API stopped", file=sys.stderr)
            return 1
        failed = [c.error for c in cameras if c.error]
        if failed:
            print(f"walkout run: {failed[0]}", file=sys.stderr)
            return 1
    print("walkout run: stopping", file=sys.stderr, flush=True)
    return 0


def _announce(out: IO[str], listener: socket.socket, days: StoreDays, scenario: Scenario) -> None:
    host, port = listener.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # listening everywhere: this machine is one
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    mode = ("one long day in your database" if days.db_url is not None else
            "each loop of the recordings is a new store day on a fresh database")
    print(f"walkout run: store {scenario.store.config.store_id}, scenario {scenario.root.name}, "
          f"{len(scenario.video_paths)} cameras looping ({mode})", file=out)
    print(f"  operator page: {base}{OPERATOR_PATH}", file=out)
    print(f"  API document:  {base}/docs", file=out)
    print(f"  operator credential (shown once; log in with it, or send it as 'Authorization: Bearer ...'): "
          f"{days.operator_token}", file=out)
    print("Ctrl-C stops everything.", file=out, flush=True)


def _status(scenario: Scenario, days: StoreDays, cameras: list[CameraLoop], delivery: Delivery) -> dict[str, Any]:
    day = days.newest
    return {"scenario": scenario.root.name, "day": day.number if day else 0,
            "continuous": days.db_url is not None, "store_t": day.clock() if day else scenario.start_unix,
            "events_applied": delivery.applied, "cameras": [c.status() for c in cameras]}
