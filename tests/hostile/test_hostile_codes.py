"""Hostile entry codes as a phone screen shows them: QR images in a gate camera's frames, read by
the real code reader, checked by the real camera node, applied by the real store runtime.

Every one must be refused with SPEC section 4's reason, recorded as refused, and open nothing;
nothing may raise on the way. The verifier alone is fuzzed in tests/vision/test_entry_code.py;
here the bytes travel the whole path a shopper's QR takes (reader quirks such as Latin-1 for
non-UTF-8 bytes, NULs and terminal escapes included).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import cv2
import numpy as np
import segno
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import SAMPLES

from store_runtime.bus import MemoryBus
from store_runtime.config import load_store
from store_runtime.db import open_database
from store_runtime.node import CameraNode, NodeConfig
from store_runtime.runtime import StoreRuntime
from vision.codes import ReaderOptions, open_reader
from vision.entry_code import EntryClaims, make_code
from vision.types import Detections, Frame

STORE = load_store(SAMPLES / "02-pick-put" / "store.yaml")
KEY = STORE.config.entry_key_bytes
SID = STORE.config.store_id
T0 = 1_795_300_000.0
FPS = 15.0


class NoDetector:
    """The gate stage reads codes, not boxes."""

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty(("person", "hand", "product", "phone"))


def real(cid: str = "c-0001", *, exp: float = T0 + 3600, sid: str = SID, key: bytes = KEY, jti: str = "") -> str:
    return make_code(key, EntryClaims(cid, jti or f"jti-{cid}", sid, int(exp), 1))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def qr_frame(payload: str | bytes, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A gate camera's frame with `payload` as a QR code on a grey phone screen."""
    buffer = io.BytesIO()
    segno.make(payload, error="l", micro=False, boost_error=False).save(buffer, kind="png", scale=3, border=4)
    qr = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    width, height = size
    frame = np.full((height, width, 3), 190, np.uint8)
    h, w = qr.shape[:2]
    assert h <= height - 20 and w <= width - 20, "payload too large for the frame"
    frame[10:10 + h, 10:10 + w] = qr
    return frame


OK = real()
PAYLOAD, SIG = OK.split(".")[1:]

# name -> (what the QR holds, the refusal SPEC section 4 gives it)
HOSTILE: dict[str, tuple[str | bytes, str]] = {
    "random bytes": (bytes(range(256))[::7] + b"\xff\xfe\x00", "malformed"),
    "invalid UTF-8": (b"WO1.\xc3\x28\xa0\xa1.\xf0\x28\x8c\xbc", "malformed"),
    "UTF-16 of a real code": (OK.encode("utf-16"), "malformed"),
    "Latin-1 text": ("WO1.é.ß".encode("latin-1"), "malformed"),
    "NUL and terminal escapes": (b"WO1.\x00\x1b[2J\x1b]0;pwned\x07." + SIG.encode(), "malformed"),
    "right-to-left override": ("\u202eWO1." + PAYLOAD + "." + SIG, "malformed"),
    "zero-width space inside": ("WO1." + PAYLOAD[:10] + "\u200b" + PAYLOAD[10:] + "." + SIG, "malformed"),
    "base64 garbage": ("WO1.!!!$$$***.@@@", "malformed"),
    "padding in the payload": ("WO1." + PAYLOAD + "==." + SIG, "malformed"),
    "huge (1,500 characters)": ("WO1." + "A" * 1500 + "." + SIG, "malformed"),
    "signature cut short": ("WO1." + PAYLOAD + "." + SIG[:-5], "malformed"),
    "signature of another key": (real(key=bytes(32)), "signature"),
    "claims swapped under the real signature": (
        "WO1." + b64(json.dumps({"cid": "c-evil", "jti": "x", "sid": SID, "exp": 2**31, "party": 10}).encode())
        + "." + SIG, "signature"),
    "expired": (real("c-old", exp=T0 - 1), "expired"),
    "another store": (real("c-else", sid="lyon-flash-02"), "other_store"),
}


def frames_of(payloads: list[str | bytes]) -> list[np.ndarray]:
    """Each code on screen for 3 frames, then 2 frames of nothing (a new presentation each time)."""
    blank = np.full((480, 640, 3), 190, np.uint8)
    out: list[np.ndarray] = []
    for payload in payloads:
        out += [qr_frame(payload)] * 3 + [blank] * 2
    return out


def gate_run(tmp_path: Path, images: list[np.ndarray]) -> StoreRuntime:
    """The sample store's gate camera node on `images`, its events applied by a store runtime."""
    bus = MemoryBus()
    node = CameraNode(STORE.config, "gate", detector=NoDetector(), bus=bus, config=NodeConfig(code_reads=2))
    now = [T0]
    runtime = StoreRuntime(open_database(f"sqlite:///{tmp_path / 'store.db'}"), STORE, clock=lambda: now[0])
    for index, image in enumerate(images):
        now[0] = T0 + index / FPS
        node.step(Frame("gate", index, now[0], image))
        for event in bus.drain():
            runtime.apply(event)
    for event in node.finish():
        runtime.apply(event)
    return runtime


READER_TO_RUNTIME = {"malformed": "malformed", "signature": "signature", "expired": "expired",
                     "other_store": "other_store", "reused": "used"}


def test_every_hostile_qr_is_read_refused_with_its_reason_and_opens_nothing(tmp_path: Path) -> None:
    names = list(HOSTILE)
    # A real shopper first, and the same real code again later (replayed: someone filmed the screen).
    payloads = [OK, *(HOSTILE[name][0] for name in names), OK]
    runtime = gate_run(tmp_path, frames_of(payloads))
    entries = runtime.entries()
    assert [e.reason for e in entries] == [None, *(READER_TO_RUNTIME[HOSTILE[n][1]] for n in names), "used"], \
        [(e.reason, e.detail) for e in entries]
    assert [e.admitted for e in entries] == [True] + [False] * (len(names) + 1)
    assert [r.customer for r in runtime.receipts()] == ["c-0001"]  # one session: the real shopper's
    assert all(e.detail and len(e.detail) <= 300 for e in entries)
    assert not any("\x00" in e.detail or "\x1b" in e.detail or "\u202e" in e.detail for e in entries)


def test_a_code_too_large_for_any_real_token_is_refused_not_cut_to_fit(tmp_path: Path) -> None:
    """A 2,000-byte QR (real tokens are ~250): the reader keeps it whole, the node refuses it by its
    length; cutting it to the event's 1,024 characters first would check another code."""
    huge = OK + "." + "A" * (2000 - len(OK))
    reader = open_reader("combined", ReaderOptions(formats=("QRCode",)))
    image = np.full((480, 640, 3), 190, np.uint8)
    buffer = io.BytesIO()
    segno.make(huge, error="l", boost_error=False).save(buffer, kind="png", scale=2, border=4)
    qr = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    image[10:10 + qr.shape[0], 10:10 + qr.shape[1]] = qr
    assert [c.text for c in reader.read(image)] == [huge]
    runtime = gate_run(tmp_path, [image] * 3)
    [entry] = runtime.entries()
    assert (entry.admitted, entry.reason) == (False, "malformed") and "long" in entry.detail


def test_any_bytes_in_a_qr_are_read_whole_and_never_open_the_gate(tmp_path: Path) -> None:
    reader = open_reader("combined", ReaderOptions(formats=("QRCode",)))
    db = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    runtime = StoreRuntime(db, STORE, clock=lambda: T0)
    node = CameraNode(STORE.config, "gate", detector=NoDetector(), bus=MemoryBus(), config=NodeConfig(code_reads=1))
    frames = iter(range(10**6))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=st.binary(min_size=1, max_size=300) | st.text(min_size=1, max_size=200).map(lambda t: "WO1." + t))
    def shown(payload: bytes | str) -> None:
        image = qr_frame(payload)
        assert len(reader.read(image)) == 1  # the drill is only worth anything if the code is actually read
        index = next(frames)
        before = len(runtime.entries())
        # A frame with the code, then one without: each example is a presentation of its own.
        events = node.step(Frame("gate", 2 * index, T0 + index, image))
        node.step(Frame("gate", 2 * index + 1, T0 + index + 0.5, np.full_like(image, 190)))
        for event in events:
            runtime.apply(event)
        assert [e.admitted for e in events] == [False]
        assert [e.admitted for e in runtime.entries()[before:]] == [False]  # the refusal recorded
        assert runtime.receipts() == []

    try:
        shown()
    finally:
        db.close()
