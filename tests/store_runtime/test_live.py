"""`walkout run` (`make run`): recordings looping as live cameras into the store runtime, the API and
the operator page; stopped by Ctrl-C with exit code 0.

The loops are tested on cuts of 02-pick-put (40 frames, 2.7 s, the entry code read from frame 22)
so that several store days pass within seconds; the node runs with a detector that sees nothing and a
face model that finds no face, so the events are the entry codes the gate camera reads. The last
test is the real thing: `walkout run` as a subprocess with the real models, stopped with SIGINT.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from store_runtime.config import load_scenario
from store_runtime.db import check_credential
from store_runtime.live import LiveOptions, LiveView, LoopingCapture, StoreClock, StoreDays, run_live
from vision.privacy import PrivacyConfig, Redactor
from vision.sources import FileSource, SourceConfig
from vision.types import Detections, Frame
from vision.video import VideoWriter

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_videos" / "02-pick-put"
CUT_FRAMES = 40  # the gate camera reads the entry code on frames 22 to 40
# The gate's node takes a code read again within 5 s (EntryConfig.same_presentation_s) for the same
# presentation: a code shown again must come back later than that.
AGAIN_FRAMES = 125


class SeesNothing:
    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty(("person", "hand", "product", "phone"))


def no_faces_redactor() -> Redactor:
    return Redactor(SeesNothing(), PrivacyConfig(budget_ms=None))


def cut_scenario(root: Path, frames: int) -> Path:
    """02-pick-put with every recording cut to its first `frames` frames."""
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("cameras", "faces", "truth.json"))
    (root / "cameras").mkdir()
    for video in sorted((SAMPLE / "cameras").glob("*.mp4")):
        with FileSource(SourceConfig(kind="file", uri=video, camera=video.stem)) as source:
            info = source.info
            with VideoWriter(root / "cameras" / video.name, (info.width, info.height), info.fps) as writer:
                for frame in source:
                    if frame.index >= frames:
                        break
                    writer.write(frame.image)
    return root


@pytest.fixture(scope="module")
def short_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Loops of 2.7 s, the entry code read in each."""
    return cut_scenario(tmp_path_factory.mktemp("short") / "02-short", CUT_FRAMES)


@pytest.fixture
def quiet_logging() -> Iterator[None]:
    """run_live configures walkout's and uvicorn's loggers for a terminal; put them back afterwards."""
    names = ("walkout", "uvicorn", "uvicorn.error")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


# ---------------------------------------------------------------------------------------------- pieces


class FakeCapture:
    def __init__(self, frames: int) -> None:
        self.left, self.released = frames, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_looping_capture_starts_again_and_learns_the_loop_length() -> None:
    opened: list[FakeCapture] = []

    def open_once() -> FakeCapture:
        opened.append(FakeCapture(3))
        return opened[-1]

    capture = LoopingCapture(open_once)
    assert all(capture.read()[0] for _ in range(3)) and capture.frames_per_loop is None
    assert all(capture.read()[0] for _ in range(7))  # never ends
    assert capture.frames_per_loop == 3 and len(opened) == 4
    assert all(c.released for c in opened[:-1])  # each finished pass is closed before the next opens


def test_an_empty_recording_is_not_looped_for_ever() -> None:
    capture = LoopingCapture(lambda: FakeCapture(0))
    assert capture.read() == (False, None)


def test_the_store_clock_never_goes_back() -> None:
    clock = StoreClock(100.0)
    clock.reached(105.0)
    clock.reached(101.0)  # the other camera's frame, a little behind
    assert clock() == 105.0


def test_the_live_view_takes_redacted_frames_only_and_encodes_each_once() -> None:
    view = LiveView({"gate": (64, 48)})
    assert view.jpeg("gate") is None  # no picture yet
    frame = Frame("gate", 0, 0.0, np.full((48, 64, 3), 120, np.uint8))
    with pytest.raises(TypeError, match="RedactedFrame"):
        view.put("gate", frame)  # type: ignore[arg-type]
    redactor = Redactor(SeesNothing(), PrivacyConfig(lookahead=0, budget_ms=None))
    view.sink("gate")(redactor.redact(frame))
    first = view.jpeg("gate")
    assert first is not None and first is view.jpeg("gate")  # the same bytes object: encoded once
    image = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)


def test_each_loop_is_a_fresh_store_day_and_old_days_are_deleted(tmp_path: Path, short_scenario: Path) -> None:
    scenario = load_scenario(short_scenario)
    days = StoreDays(scenario, folder=tmp_path)
    try:
        first = days.open()
        assert check_credential(first.runtime.db, days.operator_token).role == "operator"
        second = days.day(1)
        assert second is not first and days.day(1) is second and days.newest is second
        # The operator's credential opens every day's database: the page follows the newest day.
        assert check_credential(second.runtime.db, days.operator_token) is not None
        assert first.frame_time(0, 15, None, 15.0) == second.frame_time(1, 15, 40, 15.0) == (
            15, scenario.start_unix + 1.0)
        for camera in scenario.video_paths:
            days.reached(camera, 1)
        assert first.finished and first.path.exists()  # finished, kept while the API may still read it
        days.day(2)
        for camera in scenario.video_paths:
            days.reached(camera, 2)
        assert not first.path.exists() and second.path.exists()
    finally:
        days.close()


def test_with_a_kept_database_the_loops_are_one_long_day(tmp_path: Path, short_scenario: Path) -> None:
    scenario = load_scenario(short_scenario)
    days = StoreDays(scenario, folder=tmp_path, db_url=f"sqlite:///{tmp_path / 'kept.db'}")
    try:
        first = days.open()
        assert days.day(3) is first
        assert first.frame_time(2, 5, 40, 10.0) == (85, scenario.start_unix + 8.5)  # the clock runs on
        for camera in scenario.video_paths:
            days.reached(camera, 3)
        assert not first.finished and (tmp_path / "kept.db").exists()
    finally:
        days.close()


# ---------------------------------------------------------------------------------------------- the whole demo


def get(url: str, token: str | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answer := check():
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


class Running:
    """run_live in a thread, stopped by the test as Ctrl-C would."""

    def __init__(self, options: LiveOptions) -> None:
        self.out, self.stop, self.code = io.StringIO(), threading.Event(), None
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self.thread.start()
        printed = wait_for(lambda: re.search(r"operator page: (\S+)\n.*\n.*credential.*: (\S+)", self.out.getvalue()),
                           60, "the operator page's URL")
        self.page, self.token = printed.group(1), printed.group(2)

    def _run(self, options: LiveOptions) -> None:
        self.code = run_live(options, stop=self.stop, out=self.out, make_detector=SeesNothing,
                             make_redactor=no_faces_redactor)

    def panel(self) -> str:
        status, body, _ = get(f"{self.page}/panel", self.token)
        assert status == 200, body
        return body.decode()

    def finish(self) -> int | None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "run_live did not stop"
        return self.code


def test_the_demo_shows_sessions_day_after_day_and_stops_cleanly(
        short_scenario: Path, quiet_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where the day databases go, to see them removed
    demo = Running(LiveOptions(scenario=short_scenario, port=0))
    try:
        assert get(demo.page)[0] == 401  # the operator page needs the operator's credential
        wait_for(lambda: "c-0001" in demo.panel(), 30, "a shopper's session")
        wait_for(lambda: re.search(r"store day [3-9]", demo.panel()) and "c-0001" in demo.panel(), 45,
                 "a session on a later day")
        # Each node watches its camera: the heartbeats reach the day's runtime on the scenario clock.
        cameras = wait_for(lambda: (c := json.loads(get(demo.page.rsplit("/", 1)[0] + "/v1/cameras", demo.token)[1]))
                           and all(h["state"] == "ok" for h in c) and c, 30, "both cameras ok in camera health")
        assert [h["camera"] for h in cameras] == ["aisle", "gate"] and all(h["lag_s"] is not None for h in cameras)
        status, jpeg, headers = get(f"{demo.page}/live/aisle.jpg", demo.token)
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (720, 1280, 3)
        assert get(f"{demo.page}/live/aisle.jpg")[0] == 401
        assert len(list(tmp_path.glob("walkout-run-*/day-*.db"))) <= 3  # old days are deleted
    finally:
        code = demo.finish()
    assert code == 0
    assert not list(tmp_path.glob("walkout-run-*"))  # the temporary databases are gone
    # Each camera's face blurring and video writing ran in threads of their own, ended with its camera.
    assert not [t.name for t in threading.enumerate() if t.name.startswith(("walkout-redact-", "walkout-out-"))]


@pytest.mark.slow
def test_with_a_kept_database_a_code_seen_again_is_refused(quiet_logging: None, tmp_path: Path) -> None:
    scenario = cut_scenario(tmp_path / "02-again", AGAIN_FRAMES)
    db = tmp_path / "kept.db"
    demo = Running(LiveOptions(scenario=scenario, port=0, db_url=f"sqlite:///{db}"))
    try:
        wait_for(lambda: "refused</b>: used" in demo.panel(), 45, "the second loop's code refused as used")
        assert "one long day" in demo.panel()
    finally:
        assert demo.finish() == 0
    assert db.is_file()  # the user's database is kept


@pytest.mark.slow
def test_walkout_run_with_the_real_models_until_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "store_runtime.cli", "run", "--scenario", str(SAMPLE),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=(tmp_path / "err").open("w"),
                               text=True, cwd=REPO)
    try:
        lines = [process.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
        text = "".join(lines)
        page = re.search(r"operator page: (\S+)", text).group(1)  # type: ignore[union-attr]
        token = re.search(r"credential.*: (\S+)", text).group(1)  # type: ignore[union-attr]
        assert re.search(r"API document: +http://127\.0\.0\.1:\d+/docs", text)
        assert get(page.rsplit("/", 1)[0] + "/docs")[0] == 200

        def session_shown() -> bool:
            status, body, _ = get(f"{page}/panel", token)
            return status == 200 and "c-0001" in body.decode()

        wait_for(session_shown, 45, "the shopper's session on the operator page")
        # Pictures leave a node the redactor's look-ahead (and its queues) behind the events: the code read
        # at the gate's first frames can open the session before the first blurred gate picture is out.
        wait_for(lambda: get(f"{page}/live/gate.jpg", token)[0] == 200, 15, "a blurred gate picture")
        status, jpeg, _ = get(f"{page}/live/gate.jpg", token)
        assert status == 200 and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    err = (tmp_path / "err").read_text()
    assert code == 0, err
    assert "Traceback" not in err and '"level": "error"' not in err, err
    assert token not in err  # the credential is shown once, on stdout, and never logged
    assert "Application shutdown complete" in err and err.rstrip().endswith("}")
    assert json.loads(err.splitlines()[-1])["logger"] == "uvicorn.error"


def test_mistakes_are_one_line_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from store_runtime.cli import main

    assert main(["run", "--scenario", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["run", "--scenario", str(SAMPLE), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "--port" in err and "Traceback" not in err
    assert main(["run", "--scenario", str(SAMPLE), "--port", "70000"]) == 2
