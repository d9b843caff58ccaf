"""The fault drill of issue 7, with real processes: a `walkout node` reading a network camera (MJPEG
over HTTP on loopback, tests/mjpeg_camera.py) publishes through its outbox to a real nats-server,
and a `walkout serve --bus` applies what arrives. The camera stalls — its connection stays open,
no frame comes — and recovers: the store shows the outage, flags the shopper who was inside, and
holds that shopper's charge for a person."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import pytest
from mjpeg_camera import MjpegCamera, jpeg
from nats_server import NatsServer
from paths import REPO, SAMPLES

from store_runtime.bench_load import call, free_port, served
from store_runtime.config import load_scenario
from store_runtime.db import add_credential, open_database
from vision.entry_code import EntryClaims, make_code

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None, reason="needs nats-server (apt-get install "
                                                                            "nats-server)")
pytest.importorskip("nats", reason="the NATS bus needs nats-py (pip install -e '.[scale]')")

SCENARIO = SAMPLES / "02-pick-put"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if answer := check():
            return answer
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def aisle_frame() -> bytes:
    """The sample's aisle camera as it looks at frame 0: a real shelf wall for the node's stages."""
    capture = cv2.VideoCapture(str(SCENARIO / "cameras" / "aisle.mp4"))
    ok, image = capture.read()
    capture.release()
    assert ok
    return jpeg(image)


def test_a_camera_that_stalls_and_recovers_flags_the_shopper_inside(tmp_path: Path) -> None:
    store = load_scenario(SCENARIO).store
    db_path = tmp_path / "store.db"
    db = open_database(f"sqlite:///{db_path}")
    tokens = {name: add_credential(db, role, name) for name, role in
              [("entry-1", "gate"), ("exit-1", "gate"), ("alice", "operator")]}
    db.close()
    broker = NatsServer(tmp_path / "nats").start()
    port = free_port()
    serve = [sys.executable, "-m", "store_runtime.cli", "serve", "--store", str(SCENARIO / "store.yaml"),
             "--db", f"sqlite:///{db_path}", "--port", str(port), "--bus", broker.url]
    api = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def ask(method: str, path: str, who: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        status, data = call(api, method, path, body, {"Authorization": f"Bearer {tokens[who]}", **headers})
        return status, json.loads(data)

    def aisle() -> dict[str, Any]:
        return {c["camera"]: c for c in ask("GET", "/v1/cameras", "alice")[1]}["aisle"]

    node_log = (tmp_path / "node.log").open("w")
    node = None
    try:
        with served(serve, port, tmp_path / "serve.log", cwd=REPO), MjpegCamera([aisle_frame()], fps=10) as camera:
            code = make_code(store.config.entry_key_bytes, EntryClaims("c-0001", "drill-1", store.config.store_id,
                                                                       int(time.time()) + 3600, 1))
            status, entered = ask("POST", "/v1/entries", "entry-1", {"gate": "entry-1", "code": code})
            assert status == 201, entered
            session = entered["session"]
            node = subprocess.Popen(
                [sys.executable, "-m", "store_runtime.cli", "node", "--store", str(SCENARIO / "store.yaml"),
                 "--camera", "aisle", "--source", camera.url, "--bus", broker.url, "--outbox",
                 str(tmp_path / "outbox.db"), "--threads", "1", "--stall-after", "0.5", "--heartbeat", "1",
                 "--out", str(tmp_path / "events.jsonl")],
                cwd=REPO, stdout=node_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            wait_for(lambda: aisle()["state"] == "ok", "the node's first heartbeat at the store", 90)
            assert aisle()["lag_s"] is not None

            camera.stall()
            out = wait_for(lambda: (a := aisle())["state"] == "stalled" and a, "the stall at the store")
            [outage] = out["outages"]
            assert outage["kind"] == "stalled" and outage["end_t"] is None and outage["sessions"] == [session]
            assert camera.connections == 1, "the socket stayed open: a stall, not a lost stream"
            time.sleep(1.0)
            camera.resume()
            back = wait_for(lambda: (a := aisle())["state"] == "ok" and a["outages"][0]["end_t"] and a,
                            "the recovery at the store")
            [outage] = back["outages"]
            assert outage["end_t"] - outage["start_t"] >= 1.0 and outage["sessions"] == [session]

            _, seen = ask("GET", f"/v1/sessions/{session}", "alice")
            [flag] = seen["camera_outages"]
            assert (flag["camera"], flag["kind"], flag["affects"]) == ("aisle", "stalled", ["shelf"])
            status, receipt = ask("POST", "/v1/exits", "exit-1", {"gate": "exit-1", "session": session},
                                  **{"Idempotency-Key": "drill-exit-1"})
            assert status == 200 and receipt["status"] == "review" and receipt["charge"] is None
            _, reviews = ask("GET", "/v1/reviews", "alice")
            assert [(r["kind"], r["session"]) for r in reviews] == [("camera_outage", session)]

            node.send_signal(signal.SIGINT)
            assert node.wait(30) == 0, "Ctrl-C ends the node cleanly"
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.wait()
        node_log.close()
        broker.stop()
    printed = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    statuses = [e["status"] for e in printed if e["kind"] == "camera"]
    assert "stalled" in statuses and "recovered" in statuses and statuses[0] == "ok"
