"""Video sources: every frame of a recording on the scenario clock, damage reported where it is, and
live cameras that reconnect, drop the oldest frame rather than fall behind, and say how they are.

A replay that silently lost or invented frames would shift every event after them on the scenario
clock, and a damaged recording read as concealed garbage would be scored as if the system had seen
it: so damage must end the replay with the file and frame named, after every intact frame before it.
Live behaviour is tested with a scripted fake camera and a fake clock: no network, no waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from paths import SAMPLES
from source_fakes import (
    SIZE,
    FakeCamera,
    FakeClock,
    cut_at,
    cut_out,
    frames_before_cut,
    jpeg_ends,
    pattern,
    wait_until,
    write_cv2,
    write_h264,
    write_h264_faststart,
    write_raw_mjpeg,
)

from vision.sources import (
    Backoff,
    FileSource,
    LiveSource,
    SourceConfig,
    SourceConfigError,
    SourceError,
    SourceState,
    open_source,
    probe_video,
)
from vision.types import Frame

START = 1_795_510_800.0  # a scenario's start, Unix seconds: frame times are offsets from it

WRITERS = {
    "h264.mp4": lambda p, n, fps: write_h264(p, n, fps),
    "h264-faststart.mp4": lambda p, n, fps: write_h264_faststart(p, n, fps),
    "mjpg.avi": lambda p, n, fps: write_cv2(p, n, fps, "MJPG"),
    "mp4v.mp4": lambda p, n, fps: write_cv2(p, n, fps, "mp4v"),
}


def make(tmp_path: Path, name: str, n: int = 30, fps: int = 10) -> Path:
    return WRITERS[name](tmp_path / name, n, fps)


def file_config(path: Path, **kw: object) -> SourceConfig:
    return SourceConfig(kind="file", uri=path, camera="aisle", **kw)  # type: ignore[arg-type]


def read_all(config: SourceConfig) -> tuple[list[Frame], SourceError | None]:
    """Every frame the source yields, and the error it ended with (None when it ended cleanly)."""
    frames: list[Frame] = []
    try:
        with open_source(config) as source:
            frames.extend(source)
    except SourceError as err:
        return frames, err
    return frames, None


# --------------------------------------------------------------------------- files on the scenario clock


@pytest.mark.parametrize(("name", "n", "fps"), [
    ("h264.mp4", 30, 10),        # what vision.video.VideoWriter (and so `walkout synth`) writes
    ("h264.mp4", 16, 15),        # the samples' rate: 1/15 is not exact in binary
    ("h264-faststart.mp4", 12, 25),
    ("mjpg.avi", 20, 10),        # what OpenCV writes by default on many setups
    ("mp4v.mp4", 20, 30),
])
def test_file_frames_counts_times_and_sizes(tmp_path: Path, name: str, n: int, fps: int) -> None:
    path = make(tmp_path, name, n, fps)
    with open_source(file_config(path, start=START)) as source:
        assert isinstance(source, FileSource)
        info = source.info  # known before the first frame is read: the private writer needs it
    assert ((info.width, info.height), info.fps, info.frames) == (SIZE, fps, n)
    frames, error = read_all(file_config(path, start=START))
    assert error is None
    assert [f.index for f in frames] == list(range(n))
    assert [f.t for f in frames] == [START + i / fps for i in range(n)]
    assert all(f.camera == "aisle" and f.image.shape == (SIZE[1], SIZE[0], 3) for f in frames)
    # the pictures themselves, in order (lossy codecs: close, not equal)
    errors = [np.abs(f.image.astype(int) - pattern(i)).mean() for i, f in enumerate(frames)]
    assert max(errors) < 12, f"frame {int(np.argmax(errors))} does not look like the frame written there"


def test_fps_override_and_a_raw_mjpeg_that_states_no_rate(tmp_path: Path) -> None:
    path = write_raw_mjpeg(tmp_path / "cam.mjpeg", 8)
    # FFmpeg would say 25 fps for any raw MJPEG: refused rather than a silent default
    with pytest.raises(SourceError, match=r"cam\.mjpeg: frame 0: .*no frame rate; set fps"):
        open_source(file_config(path))
    frames, error = read_all(file_config(path, fps=12.5, start=10.0))
    assert error is None
    assert [f.t for f in frames] == [10.0 + i / 12.5 for i in range(8)]
    # and an override beats a container's own rate
    assert probe_video(make(tmp_path, "mjpg.avi", 5, 10), fps=7.0).fps == 7.0


def test_replay_never_drops_and_starts_no_thread(tmp_path: Path) -> None:
    # queue_size is for live sources: a replay is read at the consumer's pace, however slow
    path = make(tmp_path, "h264.mp4", 24)
    before = set(threading.enumerate())
    source = open_source(file_config(path, queue_size=1))
    seen = []
    for frame in source:
        assert set(threading.enumerate()) <= before, "a replay must not read ahead in a thread"
        seen.append(frame.index)
    assert seen == list(range(24))
    health = source.health()
    assert (health.state, health.frames_read, health.frames_dropped) == (SourceState.ENDED, 24, 0)
    assert health.last_frame_t == pytest.approx(23 / 10)


def test_a_file_source_is_read_once(tmp_path: Path) -> None:
    source = open_source(file_config(make(tmp_path, "mjpg.avi", 3)))
    assert len(list(source)) == 3
    with pytest.raises(RuntimeError, match="read once"):
        iter(source)


# --------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize(("name", "fraction"), [
    ("h264-faststart.mp4", 0.3),
    ("h264-faststart.mp4", 0.5),
    ("h264-faststart.mp4", 0.97),   # H.264 holds frames back to reorder them: they must still come out
    ("mjpg.avi", 0.5),
    ("mjpg.avi", 0.9),
])
def test_a_cut_file_yields_every_frame_before_the_cut_then_names_file_and_frame(
        tmp_path: Path, name: str, fraction: float) -> None:
    intact = make(tmp_path, name)
    reference, _ = read_all(file_config(intact))
    damaged = tmp_path / f"cut-{name}"
    expected = frames_before_cut(intact, cut_at(intact, damaged, fraction))
    assert 0 < expected < 30, "the cut must fall inside the frames for this case to mean anything"
    frames, error = read_all(file_config(damaged))
    assert len(frames) == expected
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, reference, strict=False))
    assert error is not None and str(damaged) in str(error) and f"frame {expected}:" in str(error)
    assert "incomplete" in str(error), "the demuxer saw the packet cut short: say so"


@pytest.mark.parametrize(("name", "damage"), [
    # the index (moov) comes after the data, as our VideoWriter writes it: cut away, nothing is readable
    ("h264.mp4", lambda src, dst: cut_at(src, dst, 0.5)),
    ("mp4v.mp4", lambda src, dst: cut_at(src, dst, 0.9)),
    # only the index's tail is cut: it opens, declares 30 frames, and yields none
    ("h264.mp4", lambda src, dst: cut_at(src, dst, 1.0, minus=100)),
    # a hole in the data: the index is no longer where the data's length says it is
    ("mp4v.mp4", lambda src, dst: cut_out(src, dst, 0.5, 3000)),
])
def test_a_damaged_file_whose_index_is_lost_fails_at_frame_0(tmp_path: Path, name: str,
                                                             damage: Callable[[Path, Path], int]) -> None:
    intact = make(tmp_path, name)
    damaged = tmp_path / f"cut-{name}"
    damage(intact, damaged)
    frames, error = read_all(file_config(damaged))
    assert frames == []
    assert error is not None and str(damaged) in str(error) and "frame 0:" in str(error)


def test_a_cut_raw_mjpeg_yields_every_complete_jpeg(tmp_path: Path) -> None:
    intact = write_raw_mjpeg(tmp_path / "cam.mjpeg", 20)
    ends = jpeg_ends(intact)
    assert len(ends) == 20
    damaged = tmp_path / "cut.mjpeg"
    cut = cut_at(intact, damaged, 0.55)
    expected = sum(end <= cut for end in ends)
    frames, error = read_all(file_config(damaged, fps=10))
    assert len(frames) == expected
    assert error is not None and f"cut.mjpeg: frame {expected}:" in str(error)


@pytest.mark.parametrize("name", ["mjpg.avi", "h264-faststart.mp4"])
def test_bytes_lost_in_the_middle_end_the_replay_there(tmp_path: Path, name: str) -> None:
    # Every packet after the hole is read from the wrong place. OpenCV returns 29 frames of the AVI,
    # 15 of them garbage, without a word; the source must stop at the hole.
    intact = make(tmp_path, name)
    reference, _ = read_all(file_config(intact))
    damaged = tmp_path / f"hole-{name}"
    expected = frames_before_cut(intact, cut_out(intact, damaged, 0.5, 3000))
    frames, error = read_all(file_config(damaged))
    assert error is not None and f"frame {len(frames)}:" in str(error) and str(damaged) in str(error)
    assert expected <= len(frames) < 30
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames[:expected], reference, strict=False))
    if name != "h264-faststart.mp4":  # H.264 has no checksum: it may conceal one frame before it notices
        assert len(frames) == expected


@pytest.mark.parametrize(("content", "message"), [
    (np.random.default_rng(7).bytes(50_000), "frame 0:"),   # noise named .mp4
    (b"", "frame 0:"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(100), "frame 0:"),  # an MP4 header and nothing else
    (b"not a video\n" * 100, "frame 0:"),
])
def test_garbage_named_mp4_is_a_source_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(content)
    frames, error = read_all(file_config(path))
    assert frames == []
    assert error is not None and str(path) in str(error) and message in str(error)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("kw", "field", "expected"), [
    ({"kind": "file", "uri": "missing.mp4"}, "uri", "existing video file"),
    ({"kind": "file", "uri": ""}, "uri", "path of a video file"),
    ({"kind": "rtsp", "uri": "http://cam/stream"}, "uri", "rtsp:// or rtsps://"),
    ({"kind": "rtsp", "uri": "rtsp://"}, "uri", "with a host"),
    ({"kind": "rtsp", "uri": "/dev/video0"}, "uri", "rtsp://"),
    ({"kind": "device", "uri": "/dev/sda"}, "uri", "/dev/videoN"),
    ({"kind": "device", "uri": "cam0"}, "uri", "camera index"),
    ({"kind": "device", "uri": 0}, "uri", "a string"),
    ({"kind": "webcam", "uri": "0"}, "kind", "file, rtsp, device"),
    ({"kind": "device", "uri": "0", "camera": ""}, "camera", "non-empty"),
    ({"kind": "device", "uri": "0", "fps": 0}, "fps", "> 0"),
    ({"kind": "device", "uri": "0", "fps": True}, "fps", "> 0"),           # a YAML `fps: yes` is not 1 fps
    ({"kind": "device", "uri": "0", "fps": float("nan")}, "fps", "> 0"),
    ({"kind": "device", "uri": "0", "live": False}, "live", "live only"),
    ({"kind": "rtsp", "uri": "rtsp://cam/1", "live": "yes"}, "live", "true or false"),
    ({"kind": "device", "uri": "0", "queue_size": 0}, "queue_size", ">= 1"),
    ({"kind": "device", "uri": "0", "queue_size": 2.5}, "queue_size", "integer"),
    ({"kind": "device", "uri": "0", "start": float("inf")}, "start", "seconds"),
    ({"kind": "device", "uri": "0", "backoff": {"initial_s": 1}}, "backoff", "a Backoff"),
])
def test_config_errors_name_the_field(kw: dict[str, object], field: str, expected: str) -> None:
    kw = {"camera": "gate", **kw}
    with pytest.raises(SourceConfigError, match=rf"source.*: {field}: expected .*{expected}"):
        SourceConfig(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "field"), [
    ({"initial_s": 0}, "initial_s"),
    ({"initial_s": 5, "max_s": 1}, "max_s"),
    ({"factor": 0.5}, "factor"),
    ({"factor": 1e6}, "factor"),
    ({"jitter": 1.5}, "jitter"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"seed": "x"}, "seed"),
])
def test_backoff_errors_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(SourceConfigError, match=rf"backoff: {field}: expected"):
        Backoff(**kw)  # type: ignore[arg-type]


def test_valid_configs_and_their_live_default(tmp_path: Path) -> None:
    video = make(tmp_path, "mjpg.avi", 2)
    for kind, uri, live in [("file", video, False), ("file", str(video), False), ("rtsp", "rtsp://10.0.0.5/s", True),
                            ("rtsp", "rtsps://cam.local:322/a?x=1", True), ("device", "0", True),
                            ("device", "/dev/video2", True)]:
        assert SourceConfig(kind=kind, uri=uri, camera="c").is_live is live  # type: ignore[arg-type]
    assert SourceConfig(kind="file", uri=video, camera="c", live=True).is_live


def test_a_password_in_an_rtsp_url_never_reaches_a_message() -> None:
    with pytest.raises(SourceConfigError) as caught:
        SourceConfig(kind="rtsp", uri="rtsp://admin:s3cret@", camera="gate")
    assert "s3cret" not in str(caught.value)
    config = SourceConfig(kind="rtsp", uri="rtsp://admin:s3cret@10.0.0.5:554/live", camera="gate")
    assert config.display_uri == "rtsp://admin:***@10.0.0.5:554/live"


# --------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(("failures", "u", "expected"), [
    (1, 0.0, 0.5),
    (2, 0.0, 1.0),
    (4, 0.0, 4.0),
    (7, 0.0, 30.0),              # 0.5 * 2**6 = 32: capped
    (10_000, 0.0, 30.0),         # a camera down for days: no OverflowError from 2**9999
    (3, 0.5, 2.0 * 0.9),         # jitter only shortens, so the cap holds with it
    (7, 0.999, 30.0 * (1 - 0.2 * 0.999)),
])
def test_backoff_is_exponential_capped_and_jittered_downwards(failures: int, u: float, expected: float) -> None:
    assert Backoff(initial_s=0.5, max_s=30, factor=2, jitter=0.2).delay(failures, u) == pytest.approx(expected)


def failing_delays(seed: int | None) -> list[float]:
    clock = FakeClock()
    config = SourceConfig(kind="rtsp", uri="rtsp://127.0.0.1/x", camera="gate",
                          backoff=Backoff(initial_s=1, max_s=8, jitter=0.5, max_attempts=6, seed=seed))
    with LiveSource(config, FakeCamera([]), clock=clock.now, sleep=clock.sleep) as source:
        wait_until(lambda: source.health().state is SourceState.FAILED)
    return clock.sleeps


def test_jitter_is_repeatable_under_a_seed() -> None:
    first, again, other = failing_delays(1), failing_delays(1), failing_delays(2)
    assert len(first) == 5 and first == again and first != other
    assert all(b / 2 <= d <= b for d, b in zip(first, [1, 2, 4, 8, 8], strict=True))


# --------------------------------------------------------------------------- live sources


def live_config(**backoff: object) -> SourceConfig:
    return SourceConfig(kind="rtsp", uri="rtsp://user:pw@127.0.0.1:8554/aisle", camera="aisle", queue_size=1000,
                        backoff=Backoff(initial_s=1, max_s=4, factor=2, jitter=0, **backoff))  # type: ignore[arg-type]


def drain(source: LiveSource) -> tuple[list[Frame], SourceError | None]:
    frames: list[Frame] = []
    try:
        for frame in source:
            frames.append(frame)
    except SourceError as err:
        return frames, err
    return frames, None


def test_reconnects_with_backoff_and_reports_health() -> None:
    # refused 3 times, streams 5 frames, is lost, refused once, streams 3, is lost, then never returns
    clock = FakeClock()
    camera = FakeCamera(["refused", "refused", "closed", 5, "refused", 3], clock)
    with open_source(live_config(max_attempts=4), camera, clock=clock.now, sleep=clock.sleep) as source:
        assert isinstance(source, LiveSource)
        frames, error = drain(source)
    # each lost stream waits initial_s; each failure doubles the wait; 4 failures in a row give up
    assert clock.sleeps == [1, 2, 4, 1, 1, 1, 1, 2, 4]
    assert [f.index for f in frames] == list(range(8))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(8)), "frames in camera order, none lost"
    assert all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False)), "wall-clock times from the clock"
    assert all(c.released for c in camera.captures), "every connection is closed before the next"
    health = source.health()
    assert (health.state, health.frames_read, health.frames_dropped, health.reconnects) == (
        SourceState.FAILED, 8, 0, 2)
    assert health.last_frame_t == frames[-1].t
    assert "gave up after 4 attempts" in health.last_error and "connection refused" in health.last_error
    assert error is not None and "aisle" in str(error) and "pw@" not in str(error)


@pytest.mark.parametrize(("script", "state", "reconnects", "error"), [
    ([], SourceState.CONNECTING, 0, "connection refused"),          # never connected yet
    (["closed"], SourceState.CONNECTING, 0, "cannot open rtsp://user:***@127.0.0.1:8554/aisle"),
    ([0], SourceState.CONNECTING, 0, "no frame arrived"),
    ([2], SourceState.RECONNECTING, 1, "stopped after 2 frames"),
])
def test_health_while_the_camera_is_away(script: list[int | str], state: SourceState, reconnects: int,
                                         error: str) -> None:
    clock, resume = FakeClock(), threading.Event()

    def sleep(seconds: float) -> None:  # the first wait lasts until the test has looked
        clock.sleep(seconds)
        resume.wait(10)

    with LiveSource(live_config(), FakeCamera(script, clock), clock=clock.now, sleep=sleep) as source:
        wait_until(lambda: len(clock.sleeps) == 1)
        health = source.health()
        resume.set()
    assert (health.state, health.reconnects) == (state, reconnects)
    assert error in health.last_error and "pw" not in health.last_error
    assert source.health().state is SourceState.ENDED, "closed"


def test_a_slow_consumer_loses_the_oldest_frames_not_the_newest() -> None:
    clock = FakeClock()
    config = SourceConfig(kind="device", uri="0", camera="gate", queue_size=4, backoff=Backoff(max_attempts=1))
    with LiveSource(config, FakeCamera([20]), clock=clock.now, sleep=clock.sleep) as source:
        # the consumer reads nothing until the camera has delivered all 20 frames
        wait_until(lambda: source.health().state is SourceState.FAILED)
        frames, _ = drain(source)
    assert [f.index for f in frames] == [16, 17, 18, 19]
    health = source.health()
    assert (health.frames_read, health.frames_dropped) == (20, 16)


def test_read_times_out_and_close_stops_the_thread() -> None:
    gate = threading.Event()

    class Stalled:  # a camera that sends one frame and then nothing (a frozen encoder)
        def __init__(self) -> None:
            self.sent = False

        def isOpened(self) -> bool:  # noqa: N802
            return True

        def read(self) -> tuple[bool, np.ndarray | None]:
            if self.sent:
                gate.wait(5)
                return False, None
            self.sent = True
            return True, np.zeros((2, 2, 3), np.uint8)

        def release(self) -> None:
            pass

    def readers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "source-gate"]

    source = LiveSource(SourceConfig(kind="device", uri="/dev/video0", camera="gate"), Stalled)
    with pytest.raises(RuntimeError, match="start"):
        source.read(0)
    assert readers() == [], "nothing runs before start()"
    with source:
        assert len(readers()) == 1
        assert source.read(timeout=5) is not None
        assert source.read(timeout=0.05) is None
        assert source.health().state is SourceState.STREAMING
        gate.set()
    assert readers() == [], "close() joins the reader"
    assert source.health().state is SourceState.ENDED
    assert source.read(0) is None


def test_a_file_read_as_if_live_is_paced_at_its_rate_and_ends(tmp_path: Path) -> None:
    path = make(tmp_path, "mjpg.avi", 6, 10)
    clock = FakeClock()
    with open_source(file_config(path, live=True, queue_size=100), clock=clock.now, sleep=clock.sleep) as source:
        assert isinstance(source, LiveSource) and source.info is not None and source.info.frames == 6
        frames, error = drain(source)
    assert error is None and source.health().state is SourceState.ENDED
    assert [f.index for f in frames] == list(range(6))
    assert [f.t for f in frames] == pytest.approx([1_000.0 + i / 10 for i in range(6)])


def test_a_damaged_file_read_as_if_live_fails_with_its_name(tmp_path: Path) -> None:
    intact = make(tmp_path, "mjpg.avi", 30)
    damaged = tmp_path / "cut.avi"
    expected = frames_before_cut(intact, cut_at(intact, damaged, 0.5))
    clock = FakeClock()
    with open_source(file_config(damaged, live=True, queue_size=100), clock=clock.now, sleep=clock.sleep) as source:
        frames, error = drain(source)
    assert len(frames) == expected
    assert error is not None and f"{damaged}: frame {expected}:" in str(error)
    assert source.health().state is SourceState.FAILED


@pytest.mark.parametrize("uri", ["rtsp://127.0.0.1:9/none", "rtsp://viewer:topsecret@127.0.0.1:9/none"])
def test_opencv_rtsp_path_on_a_closed_loopback_port(uri: str) -> None:
    # The real opener, against a port where nothing listens: refused at once, reported, never hangs.
    config = SourceConfig(kind="rtsp", uri=uri, camera="gate", backoff=Backoff(max_attempts=1))
    with open_source(config) as source:
        frames, error = drain(source)
    assert frames == [] and error is not None
    assert "cannot open rtsp://" in str(error) and "topsecret" not in str(error)


# --------------------------------------------------------------------------- real recordings


def test_a_sample_scenario_camera_reads_whole(tmp_path: Path) -> None:
    video = SAMPLES / "01-single" / "cameras" / "gate.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    capture = cv2.VideoCapture(str(video))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    frames, error = read_all(file_config(video, start=START))
    assert error is None and len(frames) == count > 0
    assert (frames[0].image.shape[1], frames[0].image.shape[0]) == size
    assert frames[-1].t == pytest.approx(START + (count - 1) / 15)


@pytest.mark.data
def test_real_indoor_video(shared_data: Path) -> None:
    # 768x432 at 10 fps (../shared/data/README.md); 1,394 frames by OpenCV's count as well as PyAV's
    video = shared_data / "videos" / "one-by-one-person-detection.mp4"
    last_t, count = None, 0
    with open_source(file_config(video, start=START)) as source:
        assert (source.info.width, source.info.height, source.info.fps) == (768, 432, 10.0)
        for frame in source:
            assert frame.index == count and frame.image.shape == (432, 768, 3)
            assert last_t is None or frame.t > last_t
            last_t, count = frame.t, count + 1
    assert count == source.info.frames == 1394
    assert last_t == pytest.approx(START + 139.3)
