"""Review clips (store_runtime/clips.py): made of redacted pictures only, a playable WebM of the seconds
around each shelf event, the same bytes every time, bounded, within a budget; and on the store's side
shown only with the customers' consent, deleted when a review closes without it, on erasure and
withdrawal, and by the retention purge.

Pictures are painted (a textured 1280x720 shelf with a striped magenta face, which the fake face
model finds), so a test knows where the face is; whether it is blurred in the clip is SPEC section 6's
rule (`scoring.frame_face_recall`) on the decoded clip against the original scaled to the clip's size.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select
from store_fakes import BREAD, MILK, T0, Clock, code, entered, inside, open_runtime, shelf, two_inside

from store_runtime.clips import ClipConfig, ClipRecorder, ClipStore, clip_url
from store_runtime.config import StoreConfig
from store_runtime.db import PrivacyAuditRow
from store_runtime.events import ShelfAction, event_id
from store_runtime.node import CameraNode, NodeConfig
from store_runtime.privacy import PrivacyOffice
from store_runtime.scoring import frame_face_recall
from vision.privacy import PrivacyConfig, RedactedFrame, Redactor
from vision.sinks import ClipFrame, ClipWriter, clip_frame, snapshot_jpeg
from vision.types import Detections, Frame, Tracks

W, H = 1280, 720
FACE = (600.0, 200.0, 680.0, 300.0)  # the painted face, full-size pixels
SHELF = (100.0, 400.0, 400.0, 600.0)  # a textured patch far from the face: it must stay sharp
FPS = 15
DAY = 86_400.0


def painted(index: int) -> Frame:
    rng = np.random.default_rng(index)
    image = rng.integers(40, 215, (H // 8, W // 8, 3), dtype=np.uint8)
    image = cv2.resize(image, (W, H), interpolation=cv2.INTER_NEAREST)  # 8-px blocks: edges a blur removes
    x1, y1, x2, y2 = (int(v) for v in FACE)
    face = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    face[:] = (255, 0, 255)
    face[::8] = (120, 0, 120)
    face[:, ::8] = (120, 0, 120)
    image[y1:y2, x1:x2] = face
    return Frame("aisle", index, T0 + index / FPS, image)


class MagentaFaces:
    """The fake face model: one box around each magenta blob, at any scale."""

    def detect(self, image: np.ndarray) -> Detections:
        mask = ((image[:, :, 1] < 40) & (image[:, :, 0] > 80) & (image[:, :, 2] > 80)).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        rows = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count] if area >= 4]
        return Detections(np.array(rows, np.float32).reshape(-1, 4), np.full(len(rows), 0.9, np.float32),
                          np.zeros(len(rows), np.int32), ("face",))


def redacted(frames: list[Frame]) -> list[RedactedFrame]:
    redactor = Redactor(MagentaFaces(), PrivacyConfig(budget_ms=None, lookahead=0))
    return [redactor.redact(f) for f in frames]


def action(t: float, slot: str = "A1", track: int = 1) -> ShelfAction:
    return ShelfAction(id=event_id("aisle", "shelf", slot, "pick", round(t, 3), track), t=t, camera="aisle",
                       action="pick", track=track, gtin=MILK, qty=1, slot=slot, confidence=0.9)


def record(folder: Path, pictures: list[RedactedFrame], events: dict[int, list[ShelfAction]],
           config: ClipConfig | None = None) -> ClipRecorder:
    """Pictures through a recorder, `events[i]` published after picture i, then the end of the recording."""
    recorder = ClipRecorder(folder, "aisle", config or ClipConfig(before_s=1.0, after_s=1.0))
    for i, picture in enumerate(pictures):
        recorder.frame(picture)
        for e in events.get(i, []):
            recorder.event(e)
    recorder.flush()
    return recorder


def decode(path: Path) -> tuple[list[np.ndarray], list[float], dict[str, str]]:
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "vp8"
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format="bgr24") for f in frames], [float(f.time) for f in frames], dict(container.metadata)


@pytest.fixture(scope="module")
def pictures() -> list[RedactedFrame]:
    return redacted([painted(i) for i in range(60)])  # 4 s at 15 fps


# ------------------------------------------------------------------------------------- the node's side


def test_clip_sinks_take_redacted_pictures_only(tmp_path: Path, pictures: list[RedactedFrame]) -> None:
    raw = painted(0)
    with pytest.raises(TypeError, match="clip_frame takes only a RedactedFrame"):
        clip_frame(raw)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ClipRecorder.frame takes only a RedactedFrame"):
        ClipRecorder(tmp_path, "aisle").frame(raw)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ClipFrame is made only by vision.sinks.clip_frame"):
        ClipFrame("aisle", 0, 0.0, b"\xff\xd8", (W, H))
    with ClipWriter(tmp_path / "x.webm", (640, 360)) as writer:
        for wrong in (raw, raw.image, pictures[0]):  # a raw frame, its pixels, even an unscaled redacted one
            with pytest.raises(TypeError, match="ClipWriter.write takes only a ClipFrame"):
                writer.write(wrong)  # type: ignore[arg-type]
        writer.write(clip_frame(pictures[0]))
    with pytest.raises(ValueError, match="draw must return"):
        snapshot_jpeg(pictures[0], draw=lambda image: image[:10])


def test_a_shelf_event_gets_a_webm_of_the_blurred_seconds_around_it(tmp_path: Path,
                                                                    pictures: list[RedactedFrame]) -> None:
    e = action(T0 + 2.0)
    recorder = record(tmp_path, pictures, {45: [e]})  # decided 1 s after the product moved, as the shelf does
    path = tmp_path / f"{e.id}.webm"
    assert sorted(os.listdir(tmp_path)) == [path.name], "one clip, named by the event's id, no leftovers"
    frames, times, tags = decode(path)
    kept = [int(i) for i in tags["WALKOUT_FRAMES"].split(",")]
    # 5 pictures a second from 1 s before the event to 1 s after: frames 15 to 45 of the 15 fps camera.
    assert kept == list(range(15, 46, 3))
    assert len(frames) == len(kept) and frames[0].shape == (360, 640, 3)  # 1280x720 scaled to 640 px
    assert times == pytest.approx([(i - kept[0]) / FPS for i in kept], abs=0.002)  # played at their own times
    assert (tags["WALKOUT_EVENT"], tags["WALKOUT_CAMERA"]) == (e.id, "aisle")
    half = tuple(v / 2 for v in FACE)
    shelf_box = tuple(v / 2 for v in SHELF)
    for index, picture in zip(kept, frames, strict=True):
        original = cv2.resize(painted(index).image, (640, 360), interpolation=cv2.INTER_AREA)
        assert frame_face_recall(original, picture, [half]).anonymized == 1, f"frame {index}: the face shows"
        assert frame_face_recall(original, picture, [shelf_box]).anonymized == 0, "the shelf must stay sharp"
    assert recorder.stats.written == 1 and recorder.stats.ms_per_clip is not None


def test_the_same_pictures_give_the_same_clip_bytes(tmp_path: Path, pictures: list[RedactedFrame]) -> None:
    e = action(T0 + 1.5)
    record(tmp_path / "one", pictures, {40: [e]})
    record(tmp_path / "two", pictures, {40: [e]})
    one, two = (tmp_path / run / f"{e.id}.webm" for run in ("one", "two"))
    assert one.read_bytes() == two.read_bytes()


def test_what_the_recorder_keeps_is_bounded_by_count_and_bytes(tmp_path: Path,
                                                               pictures: list[RedactedFrame]) -> None:
    config = ClipConfig(fps=15.0, buffer_s=1.0)
    recorder = ClipRecorder(tmp_path, "aisle", config)
    for picture in pictures:
        recorder.frame(picture)
    assert recorder.memory["frames"] == config.buffer_frames == 16
    one = recorder.memory["bytes"] / recorder.memory["frames"]
    tight = ClipRecorder(tmp_path, "aisle", ClipConfig(fps=15.0, max_buffer_bytes=1 << 20))
    for picture in pictures:
        tight.frame(picture)
    assert tight.memory["bytes"] <= 1 << 20 and tight.memory["frames"] <= (1 << 20) // one + 1
    assert recorder.stats.frames_kept == 60


def test_after_dropped_frames_the_clip_rate_starts_again(tmp_path: Path, pictures: list[RedactedFrame]) -> None:
    # A live camera drops frames when the node lags: a picture a fifth of a second still, not a burst.
    e = action(T0 + 2.0)
    record(tmp_path, pictures[:7] + pictures[25:], {40: [e]})
    _, _, tags = decode(tmp_path / f"{e.id}.webm")
    assert tags["WALKOUT_FRAMES"] == "25,28,31,34,37,40,43"  # from 1 s before (frame 15) to 1 s after (45)


def test_past_the_budget_an_event_gets_no_clip_and_is_counted(tmp_path: Path,
                                                              pictures: list[RedactedFrame]) -> None:
    events = [action(T0 + 1.0 + k * 0.1, slot=f"A{k}") for k in range(3)]
    recorder = record(tmp_path, pictures, {30: events}, ClipConfig(before_s=0.5, after_s=0.5, per_minute=2))
    assert recorder.stats.written == 2 and recorder.stats.over_budget == 1
    assert sorted(os.listdir(tmp_path)) == sorted(f"{e.id}.webm" for e in events[:2])


def test_an_event_older_than_what_is_kept_gets_no_clip(tmp_path: Path, pictures: list[RedactedFrame]) -> None:
    recorder = record(tmp_path, pictures, {59: [action(T0 + 0.2)]}, ClipConfig(before_s=0.5, after_s=0.5,
                                                                              buffer_s=1.0))
    assert recorder.stats.no_pictures == 1 and os.listdir(tmp_path) == []


def test_a_camera_node_writes_a_clip_per_shelf_event_of_its_redacted_frames(tmp_path: Path) -> None:
    from store_fakes import make_store

    class SeesNothing:
        def detect(self, image: np.ndarray) -> Detections:
            return Detections.empty(("person", "hand", "product", "phone"))

    class OnePick:  # a shelf stage that decides a pick at 1.0 s on the frame of 1.6 s
        def step(self, image: np.ndarray, t: float, tracks: Tracks) -> list:
            from vision.shelf import ShelfEvent

            return [ShelfEvent(T0 + 1.0, "A1", "pick", MILK, 1, -1, 0.9, 1.0)] if abs(t - T0 - 1.6) < 1e-6 else []

        def flush(self, t: float) -> list:
            return []

    store: StoreConfig = make_store(tmp_path).config
    clips = {}
    for threaded in (False, True):  # inline, and with redaction and the clips in threads of their own
        node = CameraNode(store, "aisle", detector=SeesNothing(), bus=_Bus(), shelf=OnePick(),
                          redactor=Redactor(MagentaFaces(), PrivacyConfig(budget_ms=None)),
                          config=NodeConfig(redact_in_thread=threaded))
        node.clips = ClipRecorder(tmp_path / f"clips-{threaded}", "aisle", ClipConfig(before_s=0.5, after_s=0.5))
        node.run(painted(i) for i in range(36))
        (published,) = node.bus.events
        assert os.listdir(tmp_path / f"clips-{threaded}") == [f"{published.id}.webm"]
        assert node.timings.calls["redact"] == 36  # clips alone make the node redact: there is no other sink
        clips[threaded] = (tmp_path / f"clips-{threaded}" / f"{published.id}.webm").read_bytes()
    assert clips[True] == clips[False]

    bare = CameraNode(store, "aisle", detector=SeesNothing(), bus=_Bus(), shelf=OnePick())
    bare.clips = ClipRecorder(tmp_path / "other", "aisle")
    with pytest.raises(ValueError, match="review clips take redacted frames only"):
        bare.step(painted(0))


class _Bus:
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, event: object) -> None:
        self.events.append(event)


# ------------------------------------------------------------------------------------- the store's side


def clip_of(runtime, folder: Path, event: ShelfAction) -> Path:
    """The store serves clips from `folder`, where a node wrote one for `event`."""
    runtime.clips = ClipStore(folder)
    folder.mkdir(exist_ok=True)
    path = folder / f"{event.id}.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3 a clip")
    return path


def consent(runtime, customer: str, *purposes: str) -> None:
    PrivacyOffice(runtime).give(customer, list(purposes or ["review_clips"]), method="app", by="test")


def test_a_review_shows_its_clip_only_once_its_customer_consented(tmp_path: Path) -> None:
    doubtful = shelf(1, "pick", MILK, T0 + 5, confidence=0.2)
    runtime, session = inside(tmp_path, doubtful)
    clip_of(runtime, tmp_path / "clips", doubtful)
    (review,) = runtime.reviews()
    assert review.session == session and review.clip is None  # checkout consent only: not shown
    consent(runtime, "c-0001")
    (review,) = runtime.reviews()
    assert review.clip == clip_url(review.id) == f"/v1/reviews/{review.id}/clip"
    assert review.to_json()["clip"] == review.clip
    PrivacyOffice(runtime).withdraw("c-0001", ["review_clips"], method="app", by="test")
    assert runtime.reviews()[0].clip is None
    assert not (tmp_path / "clips" / f"{doubtful.id}.webm").exists(), "withdrawal deletes the customer's clips"


def test_an_event_nobody_could_be_told_for_shows_only_if_everyone_inside_consented(tmp_path: Path) -> None:
    runtime = two_inside(tmp_path)
    nobody = shelf(-1, "pick", BREAD, T0 + 8)
    runtime.apply(nobody)
    clip_of(runtime, tmp_path / "clips", nobody)
    (review,) = runtime.reviews()
    assert review.session is None and len(review.candidates) == 2
    consent(runtime, "c-a")
    assert runtime.reviews()[0].clip is None  # c-b may be the one in it
    consent(runtime, "c-b")
    assert runtime.reviews()[0].clip == clip_url(review.id)


@pytest.mark.parametrize(("consented", "kept"), [(False, False), (True, True)])
def test_deciding_a_review_deletes_its_clip_unless_its_customer_consented(tmp_path: Path, consented: bool,
                                                                          kept: bool) -> None:
    doubtful = shelf(1, "pick", MILK, T0 + 5, confidence=0.2)
    runtime, session = inside(tmp_path, doubtful)
    path = clip_of(runtime, tmp_path / "clips", doubtful)
    if consented:
        consent(runtime, "c-0001")
    view = runtime.resolve_review(runtime.reviews()[0].id, "accept", by="alice")
    assert path.exists() is kept
    assert (view.clip is not None) is kept


def test_erasure_deletes_the_customers_clips_and_says_so(tmp_path: Path) -> None:
    taken, doubtful = shelf(1, "pick", MILK, T0 + 4), shelf(1, "pick", BREAD, T0 + 5, confidence=0.2)
    runtime, _ = inside(tmp_path, taken, doubtful)
    consent(runtime, "c-0001")
    paths = [clip_of(runtime, tmp_path / "clips", e) for e in (taken, doubtful)]
    someone_else = clip_of(runtime, tmp_path / "clips", shelf(9, "pick", MILK, T0 + 6))
    answer = PrivacyOffice(runtime).erase("c-0001", by="alice")
    assert answer["removed"]["review_clips"] == 2
    assert not any(p.exists() for p in paths) and someone_else.exists()


def test_the_purge_deletes_clips_nothing_needs_and_ages_out_the_rest(tmp_path: Path) -> None:
    clock = Clock()
    consented = shelf(1, "pick", MILK, T0 + 4)
    runtime, _ = inside(tmp_path, consented, clock=clock)
    runtime.enter("entry-1", code("c-0002"), t=T0 + 5)
    others = [shelf(2, "pick", MILK, T0 + 9), shelf(2, "pick", BREAD, T0 + 10, confidence=0.2)]
    for e in [entered(2, T0 + 7), *others]:
        runtime.apply(e)
    consent(runtime, "c-0001")
    folder = tmp_path / "clips"
    kept_consent, unneeded, held = (clip_of(runtime, folder, e) for e in (consented, *others))
    not_yet_applied = clip_of(runtime, folder, shelf(3, "pick", MILK, T0 + 11))  # its event is still on the bus
    clock.t = T0 + 60
    report = PrivacyOffice(runtime).purge(by="test")
    assert not unneeded.exists(), "c-0002 gave no review_clips consent and no review holds it"
    assert kept_consent.exists() and held.exists() and not_yet_applied.exists()
    with runtime.db.transaction() as tx:
        row = tx.scalars(select(PrivacyAuditRow).where(PrivacyAuditRow.op == "clip_purge")).one()
        assert row.detail["unneeded"] == 1 and row.detail["expired"] == 0
    assert "removed" in report
    old = T0 + 60 - 4 * DAY  # the store's video_days is 3
    for path in (kept_consent, held, not_yet_applied):
        os.utime(path, (old, old))
    clock.t = T0 + 60
    PrivacyOffice(runtime).purge(by="test")
    assert not any(p.exists() for p in (kept_consent, held, not_yet_applied)), "older than video_days: gone"


def test_the_clip_folder_gives_out_nothing_but_clips_named_by_event_ids(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    good = "0123456789abcdef01234567"
    (tmp_path / f"{good}.webm").write_bytes(b"clip")
    (tmp_path / "secret.webm").write_bytes(b"not a clip")
    (tmp_path / f"{'f' * 24}.webm").symlink_to(tmp_path / "secret.webm")
    assert store.path(good) == tmp_path / f"{good}.webm"
    for hostile in ("../secret", "secret", "f" * 24, None, good.upper(), good + "/"):
        assert store.path(hostile) is None, hostile
    assert store.ids() == [good]
    assert open_runtime(tmp_path).clips is None  # nothing served unless the folder is given
