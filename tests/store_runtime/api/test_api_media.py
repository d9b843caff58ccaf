"""routes/media.py: a review's clip (consent, audit, roles), a camera's slots as JSON and as an SVG map,
and the live picture with tracks, slots and zones drawn, on the sample store 02-pick-put."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from api.api_fakes import APPLE, OAT_MILK, Api, assert_error
from store_runtime.clips import ClipStore
from store_runtime.db import PrivacyAuditRow
from store_runtime.live import LiveView
from vision.overlay import PERSON, FrameState
from vision.privacy import PrivacyConfig, Redactor
from vision.types import Detections, Frame, Tracks

CLIP = b"\x1a\x45\xdf\xa3 webm bytes of a clip"
NAMES = ("person", "hand", "product", "phone")


def doubtful_pick(api: Api, tmp_path: Path) -> tuple[str, str]:
    """c-0001 inside, an unsure pick of oat milk (a review), its clip in the store's clip folder."""
    api.runtime.clips = ClipStore(tmp_path / "clips")
    session = api.enter("c-0001")
    api.pick(session, OAT_MILK, confidence=0.2)
    (review,) = api.runtime.reviews()
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / f"{review.event['event_id']}.webm").write_bytes(CLIP)
    return review.id, session


def test_a_clip_is_served_to_operators_only_with_consent_and_every_look_is_audited(api: Api, tmp_path: Path) -> None:
    review, _ = doubtful_pick(api, tmp_path)
    url = f"/v1/reviews/{review}/clip"
    assert_error(api.client.get(url), 401)
    assert_error(api.client.get(url, headers=api.auth("exit-1")), 403)
    assert_error(api.client.get(url, headers=api.auth("alice")), 404, "not_found")  # no review_clips consent
    assert api.client.get("/v1/reviews", headers=api.auth("alice")).json()[0]["clip"] is None
    r = api.client.post("/v1/privacy/consents/c-0001", json={"purposes": ["review_clips"], "method": "app"},
                        headers=api.auth("alice"))
    assert r.status_code == 200, r.text
    assert api.client.get("/v1/reviews", headers=api.auth("alice")).json()[0]["clip"] == url
    r = api.client.get(url, headers=api.auth("alice"))
    assert r.status_code == 200 and r.content == CLIP and r.headers["content-type"] == "video/webm"
    console = api.client.get(f"/operator/clips/{review}.webm", headers=api.auth("alice"))
    assert console.status_code == 200 and console.content == CLIP  # the console's <video> (cookie) path
    with api.runtime.db.transaction() as tx:
        looks = tx.scalars(select(PrivacyAuditRow).where(PrivacyAuditRow.op == "clip_viewed")).all()
        assert [(row.actor, row.customer, row.detail["review"]) for row in looks] == [("alice", "c-0001", review)] * 2
    export = api.client.get("/v1/privacy/customers/c-0001/export", headers=api.auth("alice")).json()
    assert "clip_viewed" in [op["op"] for op in export["privacy_operations"]]


@pytest.mark.parametrize("review", ["r_unknown", "..%2F..%2Fstore", "x" * 65])
def test_no_clip_of_an_unknown_review(api: Api, tmp_path: Path, review: str) -> None:
    doubtful_pick(api, tmp_path)
    assert api.client.get(f"/v1/reviews/{review}/clip", headers=api.auth("alice")).status_code == 404


def test_the_clip_route_is_in_the_api_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    clip = paths["/v1/reviews/{review}/clip"]["get"]
    assert "video/webm" in clip["responses"]["200"]["content"] and {"401", "403", "404"} <= set(clip["responses"])
    assert "/v1/cameras/{camera}/slots" in paths
    review_out = api.client.get("/openapi.json").json()["components"]["schemas"]["ReviewOut"]
    assert "clip" in review_out["properties"]


def test_slots_say_what_the_store_believes_of_each_slot(api: Api) -> None:
    assert_error(api.client.get("/v1/cameras/aisle/slots"), 401)
    assert_error(api.client.get("/v1/cameras/aisle/slots", headers=api.auth("aisle")), 403)
    assert_error(api.client.get("/v1/cameras/nowhere/slots", headers=api.auth("alice")), 404)
    assert api.client.get("/v1/cameras/gate/slots", headers=api.auth("alice")).json() == []
    slots = api.client.get("/v1/cameras/aisle/slots", headers=api.auth("alice")).json()
    config = api.runtime.store.config.cameras["aisle"].slots
    assert [s["slot"] for s in slots] == [s.id for s in config]
    b1 = next(s for s in slots if s["slot"] == "B1")
    assert b1["gtin"] == APPLE and b1["name"] == "Red Delicious Apple" and len(b1["polygon"]) == 4
    assert (b1["count"], b1["capacity"], b1["occupancy"], b1["changed_t"]) == (None, None, None, None)  # no node
    session = api.enter("c-0001")
    api.pick(session, APPLE)  # applied at slot B1
    view = LiveView({"aisle": (1280, 720)})
    api.client.app.state.live_view = view  # type: ignore[attr-defined]
    view.put_state("aisle", FrameState("aisle", 0, api.clock.t + 5, Tracks.empty(NAMES), {"B1": 4, "A1": None}))
    view.put_state("aisle", FrameState("aisle", 1, api.clock.t + 6, Tracks.empty(NAMES), {"B1": 3, "A1": None}))
    slots = {s["slot"]: s for s in api.client.get("/v1/cameras/aisle/slots", headers=api.auth("alice")).json()}
    assert (slots["B1"]["count"], slots["B1"]["capacity"], slots["B1"]["occupancy"]) == (3, 4, 0.75)
    assert slots["B1"]["changed_t"] == api.clock.t + 6  # the node saw it change after the pick was applied
    assert slots["A1"]["count"] is None and slots["A1"]["changed_t"] is None
    assert slots["C4"]["changed_t"] is None


def test_the_slot_map_is_an_svg_of_the_slots(api: Api) -> None:
    assert api.client.get("/operator/slots/aisle.svg").status_code == 401
    assert api.client.get("/operator/slots/nowhere.svg", headers=api.auth("alice")).status_code == 404
    r = api.client.get("/operator/slots/aisle.svg", headers=api.auth("alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    root = ET.fromstring(r.text)
    polygons = root.findall(".//{http://www.w3.org/2000/svg}polygon")
    assert len(polygons) == len(api.runtime.store.config.cameras["aisle"].slots)
    assert "Red Delicious Apple" in r.text


def test_the_live_picture_can_have_tracks_slots_and_zones_drawn(api: Api) -> None:
    session = api.enter("c-0001")  # track 1 of the aisle, bound to the session
    view = LiveView({"aisle": (1280, 720)})
    api.client.app.state.live_view = view  # type: ignore[attr-defined]

    class NoFaces:
        def detect(self, image: np.ndarray) -> Detections:
            return Detections.empty(("face",))

    grey = np.full((720, 1280, 3), 90, np.uint8)
    picture = Redactor(NoFaces(), PrivacyConfig(budget_ms=None, lookahead=0)).redact(Frame("aisle", 7, 0.0, grey))
    person = Tracks(np.array([[500, 250, 700, 700]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int32),
                    np.array([1], np.int64), np.array([-1], np.int64), NAMES)
    view.put_state("aisle", FrameState("aisle", 7, 0.0, person, {"B1": 2}))
    view.put("aisle", picture)

    def get(query: str) -> np.ndarray:
        r = api.client.get(f"/operator/live/aisle.jpg{query}", headers=api.auth("alice"))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
        return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)

    plain, drawn = get(""), get("?overlay=1")
    assert np.abs(plain.astype(int) - 90).max() <= 3  # nothing drawn on the plain view
    assert np.abs(drawn[475, 500].astype(int) - PERSON).max() <= 40  # the person's box, where the node saw it
    b1 = next(s.polygon for s in api.runtime.store.config.cameras["aisle"].slots if s.id == "B1")
    x, y = (round(v) for v in b1[0])
    assert np.abs(drawn[y - 2:y + 3, x - 2:x + 3].astype(int) - 90).max() > 60  # its outline is drawn
    entry = api.runtime.store.config.cameras["aisle"].zones["entry-1"]
    zx, zy = (round(v) for v in entry[1])
    assert np.abs(drawn[zy - 2:zy + 3, zx - 2:zx + 3].astype(int) - 90).max() > 60
    # Track 1 is bound to the session: its label carries the session's id, so its tab is wider than an
    # unbound track's, whose label is its id alone.
    stranger = Tracks(person.xyxy, person.confidence, person.class_id, np.array([9], np.int64), person.owner, NAMES)
    view.put_state("aisle", FrameState("aisle", 7, 0.0, stranger, {"B1": 2}))
    unbound = get("?overlay=1")

    def tab_width(image: np.ndarray) -> int:
        band = np.abs(image[236:246].astype(int) - PERSON).max(axis=2) <= 40
        return int(band.any(axis=0).sum())

    assert tab_width(drawn) > tab_width(unbound) + 8 * len(session) // 2
    assert api.client.get("/operator/live/aisle.jpg?overlay=1").status_code == 401
    assert api.client.get("/operator/live/nowhere.jpg?overlay=1", headers=api.auth("alice")).status_code == 404


def test_the_review_page_plays_the_clip_with_the_login_cookie_alone(api: Api, tmp_path: Path) -> None:
    review, _ = doubtful_pick(api, tmp_path)
    api.client.post("/v1/privacy/consents/c-0001", json={"purposes": ["review_clips"], "method": "app"},
                    headers=api.auth("alice"))
    r = api.client.post("/operator/login", data={"token": api.tokens["alice"]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = api.client.get("/operator/reviews")
    assert page.status_code == 200
    src = f"/operator/clips/{review}.webm"
    assert f'src="{src}"' in page.text  # not the /v1 path: a <video> sends the cookie, not a bearer
    clip = api.client.get(src)
    assert clip.status_code == 200 and clip.content == CLIP
