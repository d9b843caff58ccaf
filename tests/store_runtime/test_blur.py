"""`walkout blur INPUT --out OUTPUT` (SPEC section 8): a copy with every face anonymized, or a clear error
and no file at all.

The tool runs the camera node's own Redactor and sinks. With the real CenterFace (skipped when it has
not been fetched) it blurs a real photo and a short video made from it, judged by SPEC section 6's
rule; with a fake face model it shows that a failure part way leaves no half-written copy.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from store_runtime.blur_files import BlurError, blur_file
from store_runtime.cli import main
from store_runtime.scoring import frame_face_recall
from vision.inference.manifest import MODELS_DIR
from vision.privacy import PrivacyConfig, Redactor
from vision.types import Detections
from vision.video import VideoWriter

PHOTO = "2008_001322.jpg"  # a PASCAL VOC photo of dlib's examples: 3 faces boxed in training.xml


@pytest.fixture(scope="module")
def centerface() -> None:
    if not (MODELS_DIR / "cache" / "centerface.onnx").is_file():
        pytest.skip("models/cache/centerface.onnx is missing: run `walkout models fetch` (make setup does)")


def _photo(shared_data: Path) -> tuple[Path, list[tuple[float, float, float, float]]]:
    folder = shared_data / "faces" / "dlib-examples"
    for image in ET.parse(folder / "training.xml").getroot().iter("image"):
        if image.get("file") == PHOTO:
            boxes = [tuple(float(b.get(k)) for k in ("left", "top", "width", "height")) for b in image.iter("box")]
            return folder / PHOTO, [(x, y, x + w, y + h) for x, y, w, h in boxes]
    raise AssertionError(f"{PHOTO} is not in training.xml")


def _panning_video(photo: Path, path: Path, frames: int = 12) -> list[tuple[np.ndarray, int]]:
    """A short 10 fps video that pans across the photo, 4 px a frame; returns (frame, x offset) pairs."""
    image = cv2.imread(str(photo))
    width, height = 320, 240
    written = []
    with VideoWriter(path, (width, height), fps=10, crf=18) as writer:
        for i in range(frames):
            x = 60 + 4 * i
            frame = np.ascontiguousarray(image[100:100 + height, x:x + width])
            writer.write(frame)
            written.append((frame, x))
    return written


@pytest.mark.data
def test_blur_an_image(tmp_path: Path, shared_data: Path, centerface: None, capsys: pytest.CaptureFixture) -> None:
    photo, boxes = _photo(shared_data)
    out = tmp_path / "blurred.png"
    assert main(["blur", str(photo), "--out", str(out)]) == 0
    assert '"kind": "image"' in capsys.readouterr().out
    original, blurred = cv2.imread(str(photo)), cv2.imread(str(out))
    assert blurred.shape == original.shape
    result = frame_face_recall(original, blurred, boxes)
    assert result.total == 3 and result.anonymized == 3
    assert [p.name for p in tmp_path.iterdir()] == ["blurred.png"], "no temporary file is left behind"


@pytest.mark.data
def test_blur_a_short_video(tmp_path: Path, shared_data: Path, centerface: None) -> None:
    import av

    photo, boxes = _photo(shared_data)
    video = tmp_path / "pan.mp4"
    written = _panning_video(photo, video)
    out = tmp_path / "pan-blurred.mkv"  # another container than the input's: any video suffix will do
    assert main(["blur", str(video), "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (320, 240, 10)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == len(written), "one blurred frame for each frame in"
    found = total = 0
    for (original, x), blurred in zip(written, frames, strict=True):
        moved = [(x1 - x, y1 - 100, x2 - x, y2 - 100) for x1, y1, x2, y2 in boxes]
        result = frame_face_recall(original, blurred, moved)
        found, total = found + result.anonymized, total + result.total
    assert total >= len(written) and found == total


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make_input", "output", "message"), [
    (lambda d: d / "missing.jpg", "out.jpg", "missing.jpg: no such file"),
    (lambda d: d, "out.jpg", "is a directory"),
    (lambda d: _write(d / "notes.txt", b"hello"), "out.jpg", "unsupported file type .txt"),
    (lambda d: _write(d / "photo.jpg", b"not a jpeg at all"), "out.jpg", "photo.jpg: cannot decode the image"),
    (lambda d: _write(d / "clip.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing after"), "out.mp4",
     "clip.mp4: frame 0"),
    (lambda d: _write(d / "photo.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()),
     "out.mp4", "must be an image too"),  # an image cannot become a video
    (lambda d: _write(d / "photo.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()),
     "nowhere/out.png", "does not exist"),
])
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, make_input, output: str, message: str) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = make_input(inputs)
    out = tmp_path / output
    assert main(["blur", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("walkout blur: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("**/.*partial*"))


def test_the_input_itself_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = _write(tmp_path / "photo.png", cv2.imencode(".png", np.full((8, 8, 3), 9, np.uint8))[1].tobytes())
    before = photo.read_bytes()
    assert main(["blur", str(photo), "--out", str(photo)]) == 2
    assert "is the input itself" in capsys.readouterr().err and photo.read_bytes() == before


class _Exploding:
    """A face model that works for `good` calls, then raises."""

    def __init__(self, good: int) -> None:
        self.good = good

    def detect(self, image: np.ndarray) -> Detections:
        self.good -= 1
        if self.good < 0:
            raise RuntimeError("model lost")
        return Detections.empty(("face",))


def test_a_failing_face_model_blurs_whole_frames_rather_than_letting_one_through(tmp_path: Path) -> None:
    # The model answers its first call (frame 0's whole-frame pass) and dies before frame 3's: from then
    # on every frame leaves fully blurred (each one tries the whole frame again), and the copy is whole.
    import av

    video = tmp_path / "in.mp4"
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)] * 8  # a still scene: passes on schedule
    with VideoWriter(video, (64, 48), fps=5, crf=10) as writer:
        for frame in noise:
            writer.write(frame)
    out = tmp_path / "out.mp4"
    # Every pass whole: between whole passes a still scene would not call the model at all (nothing changed,
    # test_privacy's test_a_still_picture_costs_whole_passes_only), and the failure would wait for the next.
    result = blur_file(video, out, make_redactor=lambda config: Redactor(_Exploding(1), replace(config, whole_every=1)))
    assert (result.frames, result.failed_closed) == (8, 5)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    whole = [(0.0, 0.0, 64.0, 48.0)]
    assert [frame_face_recall(o, b, whole).anonymized for o, b in zip(noise, frames, strict=True)] == \
        [0, 0, 0, 1, 1, 1, 1, 1]


def test_a_video_cut_short_leaves_no_half_copy(tmp_path: Path) -> None:
    video = tmp_path / "in.mp4"
    rng = np.random.default_rng(1)
    with VideoWriter(video, (64, 48), fps=5) as writer:
        for _ in range(30):
            writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    data = video.read_bytes()
    cut = _write(tmp_path / "cut.mp4", data[: len(data) * 2 // 3])
    out = tmp_path / "out.mp4"
    with pytest.raises(BlurError, match="cut.mp4"):
        blur_file(cut, out, make_redactor=lambda config: Redactor(_Exploding(10**6), config))
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_a_file_has_no_deadline_and_a_still_is_looked_at_in_full(tmp_path: Path) -> None:
    # On a file, failing closed on time would only spoil the copy; a still has no next frame to wait for.
    photo = _write(tmp_path / "p.png", cv2.imencode(".png", np.full((40, 40, 3), 9, np.uint8))[1].tobytes())
    video = tmp_path / "v.mp4"
    with VideoWriter(video, (64, 48), fps=5) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    given: list[PrivacyConfig] = []

    def make(config: PrivacyConfig) -> Redactor:
        given.append(config)
        return Redactor(_Exploding(10**6), config)

    blur_file(photo, tmp_path / "p-out.png", PrivacyConfig(budget_ms=10), make)
    blur_file(video, tmp_path / "v-out.mp4", PrivacyConfig(budget_ms=10), make)
    video_side = PrivacyConfig().full_max_side
    assert [(c.budget_ms, c.full_max_side, c.lookahead) for c in given] == [(None, None, 0), (None, video_side, 4)]


class _Watching:
    """A face model that finds nothing and notes the size of every picture it is shown."""

    def __init__(self) -> None:
        self.shapes: set[tuple[int, ...]] = set()

    def detect(self, image: np.ndarray) -> Detections:
        self.shapes.add(image.shape)
        return Detections.empty(("face",))


@pytest.mark.parametrize("rotation", [90, -90])
def test_a_phone_video_is_looked_at_and_written_upright(tmp_path: Path, rotation: int) -> None:
    # A phone stores a video held upright sideways, with a display matrix saying how to turn it. Decoded
    # as stored, its faces lie on their side, where the face model misses many, and the copy would play
    # sideways with those faces in it: the model is shown, and the copy gets, the picture a player shows.
    import av

    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:, :, 1] = np.arange(64, dtype=np.uint8)[:, None] * 4  # green grows downwards
    upright[:, :, 2] = np.arange(48, dtype=np.uint8)[None, :] * 5  # red grows rightwards
    stored = np.ascontiguousarray(np.rot90(upright, -rotation // 90))
    video = tmp_path / "phone.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.set_display_rotation(rotation)
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")))
        container.mux(stream.encode())
    faces = _Watching()
    out = tmp_path / "out.mp4"
    assert blur_file(video, out, make_redactor=lambda config: Redactor(faces, config)).frames == 3
    assert (64, 48, 3) in faces.shapes and (48, 64, 3) not in faces.shapes
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 3 and all(np.abs(f.astype(int) - upright).mean() < 4 for f in frames)


def test_a_video_of_odd_size_keeps_its_size(tmp_path: Path) -> None:
    # H.264 in 4:2:0 needs an even width and height; a 63x47 video once ended in an encoder traceback.
    video = tmp_path / "odd.mp4"
    with VideoWriter(video, (63, 47), fps=5) as writer:
        writer.write(np.full((47, 63, 3), 100, np.uint8))
    out = tmp_path / "out.mp4"
    assert blur_file(video, out, make_redactor=lambda config: Redactor(_Exploding(10**6), config)).frames == 1
    capture = cv2.VideoCapture(str(out))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (47, 63, 3)
