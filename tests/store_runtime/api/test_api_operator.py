"""The operator page: who may see it (an operator, by bearer credential or the login cookie), what
it shows (sessions with live baskets, the review queue, receipts, entry codes), that every value is
escaped and nothing is loaded from elsewhere, and that its cookie opens nothing but these pages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from api.api_fakes import APPLE, OAT_MILK, Api, assert_error
from store_runtime.api.operator_page import PageData, login_page, operator_page
from store_runtime.api.routes.operator import COOKIE
from store_runtime.baskets import Line, ReviewView
from store_runtime.runtime import EntryView, ReceiptView, SessionView

HOSTILE = '<script>alert("x")</script>&\'"'


def login(api: Api, who: str = "alice"):
    return api.client.post("/operator/login", content=f"token={api.tokens[who]}".encode(),
                           headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)


def test_without_a_credential_the_page_is_the_login_form(api: Api) -> None:
    r = api.client.get("/operator")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert '<form class="login" method="post" action="/operator/login">' in r.text
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/operator"


@pytest.mark.parametrize(("who", "status"), [("alice", 200), ("exit-1", 403), ("aisle", 403)])
def test_only_an_operator_credential_opens_the_page(api: Api, who: str, status: int) -> None:
    assert api.client.get("/operator", headers=api.auth(who)).status_code == status
    assert api.client.get("/operator", headers={"Authorization": "Bearer wo_operator_nope"}).status_code == 401


def test_the_login_form_sets_a_strict_httponly_cookie_that_logout_forgets(api: Api) -> None:
    r = login(api)
    assert r.status_code == 303 and r.headers["location"] == "/operator"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/operator" in cookie
    assert api.client.get("/operator").status_code == 200
    assert api.client.get("/operator/panel").status_code == 200
    r = api.client.post("/operator/logout", follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"]
    assert api.client.get("/operator").status_code == 401


@pytest.mark.parametrize("body", [b"", b"token=", b"token=wo_gate_x", b"token=" + b"x" * 5000, b"\xff\xfe=\x00",
                                  b"token=%ZZ&token=1&a=b&c=d&e=f&g=h&i=j&k=l&m=n", b"{\"token\": 1}"])
def test_a_wrong_login_is_401_with_the_form_again(api: Api, body: bytes) -> None:
    r = api.client.post("/operator/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"},
                        follow_redirects=False)
    assert r.status_code == 401 and "not an operator credential" in r.text and "set-cookie" not in r.headers


def test_a_gate_credential_cannot_log_in(api: Api) -> None:
    assert login(api, "exit-1").status_code == 401


def test_the_cookie_opens_the_page_and_nothing_of_the_api(api: Api) -> None:
    login(api)
    assert_error(api.client.get("/v1/reviews"), 401, "unauthenticated")  # bearer only: no cross-site changes
    assert_error(api.client.post("/v1/disputes", json={}), 401, "unauthenticated")


def test_the_panel_and_pictures_need_an_operator(api: Api) -> None:
    assert_error(api.client.get("/operator/panel"), 401, "unauthenticated")
    assert_error(api.client.get("/operator/live/gate.jpg"), 401, "unauthenticated")
    assert_error(api.client.get("/operator/panel", headers=api.auth("exit-1")), 403, "forbidden")
    # walkout serve runs no camera nodes: no live view to show
    assert_error(api.client.get("/operator/live/gate.jpg", headers=api.auth("alice")), 404, "not_found")


def test_the_page_shows_baskets_reviews_receipts_and_entries(api: Api) -> None:
    inside = api.enter("c-0001")
    api.pick(inside, APPLE)
    api.pick(inside, OAT_MILK, confidence=0.2)  # unsure: a review
    left = api.enter("c-0002")
    api.pick(left, APPLE, qty=2)
    assert api.exit(left).status_code == 200
    r = api.client.get("/operator", headers=api.auth("alice"))
    assert r.status_code == 200
    page = r.text
    assert "In the store (1)" in page and "c-0001" in page and "Red Delicious Apple" in page
    assert "3.89 EUR" in page and "Review queue (1 open)" in page and "low" in page.lower()
    assert "7.78 EUR" in page and "charged" in page  # c-0002's receipt: two apples
    assert page.count("admitted") == 2
    assert api.client.get("/operator/panel", headers=api.auth("alice")).text in page


def test_a_dispute_reason_is_escaped_on_the_page(api: Api) -> None:
    session = api.enter("c-0003")
    api.pick(session, APPLE)
    assert api.exit(session).status_code == 200
    r = api.client.post("/v1/disputes", json={"session": session, "gtin": APPLE, "qty": 1, "reason": HOSTILE},
                        headers=api.auth("alice"))
    assert r.status_code == 201, r.text
    page = api.client.get("/operator", headers=api.auth("alice")).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_the_page_loads_nothing_from_elsewhere_and_runs_only_its_own_script(api: Api) -> None:
    r = api.client.get("/operator", headers=api.auth("alice"))
    csp = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)  # type: ignore[union-attr]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.text.count("<script") == 1 and f'<script nonce="{nonce}">' in r.text
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", r.text)  # no CDN, no other site
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    assert nonce not in api.client.get("/operator", headers=api.auth("alice")).text  # a new nonce each time


def _hostile_data() -> PageData:
    line = Line("2110054234714", 1, 389)
    session = SessionView(HOSTILE, HOSTILE, 1, HOSTILE, 1.0, None, HOSTILE, (line,), 389, 3, HOSTILE, 1, 1)
    receipt = ReceiptView(HOSTILE, HOSTILE, 1.0, 2.0, (line,), 389, HOSTILE, None, 389, 0, HOSTILE, (), ())
    review = ReviewView(HOSTILE, HOSTILE, "open", 1.0, HOSTILE, HOSTILE, (), (HOSTILE,), (HOSTILE,),
                        {"action": HOSTILE, "gtin": HOSTILE, "qty": HOSTILE, "slot": HOSTILE, "camera": HOSTILE,
                         "confidence": 0.5}, None, None, HOSTILE, None)
    entry = EntryView(1.0, HOSTILE, HOSTILE, HOSTILE, False, HOSTILE, HOSTILE, None)
    status = {"scenario": HOSTILE, "day": HOSTILE, "store_t": 1.0, "events_applied": HOSTILE,
              "cameras": [{"camera": HOSTILE, "state": HOSTILE, "loop": HOSTILE, "error": HOSTILE}]}
    return PageData(store_id=HOSTILE, currency=HOSTILE, names={"2110054234714": HOSTILE}, inside=[session],
                    receipts=[receipt], reviews=[review], entries=[entry], cameras={HOSTILE: (64, 48)},
                    status=status, operator=HOSTILE)


def test_every_value_is_escaped() -> None:
    page = operator_page(_hostile_data(), nonce=HOSTILE, base="/operator")
    assert "<script>alert" not in page and "'\"" not in page
    assert page.count("&lt;script&gt;") >= 25  # every field above, written escaped
    assert "<script>" not in login_page(nonce="n", base="/operator", message=HOSTILE)


def test_a_live_picture_is_served_as_jpeg(api: Api) -> None:
    from store_runtime.live import LiveView
    from vision.privacy import PrivacyConfig, Redactor
    from vision.types import Detections, Frame

    class NoFaces:
        def detect(self, image: np.ndarray) -> Detections:
            return Detections.empty(("face",))

    view = LiveView({"gate": (64, 48)})
    api.client.app.state.live_view = view  # type: ignore[attr-defined]
    auth = api.auth("alice")
    assert_error(api.client.get("/operator/live/gate.jpg", headers=auth), 503, "no_picture_yet")
    assert_error(api.client.get("/operator/live/aisle.jpg", headers=auth), 404, "not_found")
    frame = Frame("gate", 0, 0.0, np.zeros((48, 64, 3), np.uint8))
    view.put("gate", Redactor(NoFaces(), PrivacyConfig(lookahead=0, budget_ms=None)).redact(frame))
    r = api.client.get("/operator/live/gate.jpg", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert 'data-live="/operator/live/gate.jpg"' in api.client.get("/operator", headers=auth).text
