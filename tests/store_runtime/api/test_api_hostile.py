"""No input produces a 5xx: hostile bodies, headers, paths and methods on every route get a 4xx
whose JSON body says what was wrong. The TestClient re-raises any exception a route lets out, so a
crash fails these tests even before the status is looked at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.api_fakes import Api, serve

# route -> (the credential that may call it, extra headers, the fields its body has)
ROUTES: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    "/v1/entries": ("entry-1", {}, ("gate", "code")),
    "/v1/exits": ("exit-1", {"Idempotency-Key": "hostile-1"}, ("gate", "session")),
    "/v1/events": ("aisle", {}, ("events",)),
    "/v1/reviews/r_00000000000000000000/decision": ("alice", {}, ("decision", "note", "session", "gtin", "qty")),
    "/v1/disputes": ("alice", {}, ("session", "gtin", "qty", "reason")),
}

HOSTILE_BODIES: list[bytes] = [
    b"", b"null", b"[]", b'"text"', b"123", b"true", b"{not json", b"{\"gate\": ", b"\xff\xfe\xfd",
    b"\xef\xbb\xbf{}", b"{}", b'{"gate": null, "code": null}',
    b"[" * 5000 + b"]" * 5000,  # deep nesting
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"gate": "\\ud800", "code": "\\udfff"}',  # lone surrogates, as JSON escapes them
    b'{"gate": "entry-1\\u0000", "code": "WO1.\\u0000"}',
    b'{"gate": "entry-1", "code": "WO1.x.y", "code": "dup"}',
    b'{"gate": {"$ne": 1}, "code": ["WO1"]}',
    b'{"gate": "entry-1", "code": 1e400}', b'{"gate": "exit-1", "session": NaN}',
    b'{"events": [{"kind": "shelf", "t": Infinity}]}', b'{"events": [{"kind": "entry", "track": 1e400}]}',
    b'{"events": {"kind": "shelf"}}', b'{"events": [null, 1, "x", []]}',
    b'{"decision": "accept", "qty": 99999999999999999999999999}', b'{"qty": -1, "gtin": "0"}',
    json.dumps({"gate": "entry-1", "code": "\u202e\u200b" + "é" * 3000}).encode(),
    json.dumps({"gate": "e" * 10_000, "session": "s" * 10_000, "code": "c" * 10_000}).encode(),
    json.dumps({"reason": "x" * 60_000}).encode(),
    b"x" * 200_000,  # over the body limit: 413
]

CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", None]


def assert_clean_4xx(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"], body
    assert "Traceback" not in response.text


@pytest.mark.parametrize("route", list(ROUTES))
def test_hostile_bodies_get_a_4xx_that_says_why(api: Api, route: str) -> None:
    who, extra, _ = ROUTES[route]
    for body in HOSTILE_BODIES:
        for content_type in CONTENT_TYPES:
            headers = {**api.auth(who), **extra}
            if content_type:
                headers["content-type"] = content_type
            assert_clean_4xx(api.client.post(route, content=body, headers=headers))


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer " + "x" * 5000},
    {"Authorization": b"Bearer \xff\xfe"},
    {"Authorization": "Bearer wo_gate_\u00e9"},
    {"Authorization": "bearer"},
    {"Authorization": "Bearer a b c"},
    {"Idempotency-Key": "k", "Authorization": "Token abc"},
])
@pytest.mark.parametrize("route", list(ROUTES))
def test_hostile_credentials_get_401(api: Api, route: str, headers: dict) -> None:
    headers = {k: v.encode("latin-1") if isinstance(v, str) else v for k, v in headers.items()}
    r = api.client.post(route, content=b'{"gate": "entry-1", "code": "x"}',
                        headers={**headers, "content-type": "application/json"})
    assert r.status_code == 401
    assert_clean_4xx(r)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/entries"), ("PUT", "/v1/exits"), ("DELETE", "/v1/sessions/s_1"), ("GET", "/v1/nothing"),
    ("GET", "/v1/sessions/%ff%fe"), ("GET", "/v1/sessions/%00"), ("GET", "/v1/receipts/" + "%e2%80%ae" * 200),
    ("GET", "/v1/reviews?status=closed"), ("GET", "/v1/reviews?status=" + "x" * 3000),
    ("POST", "/v1/reviews/%00/decision"), ("PATCH", "/healthz"),
])
def test_hostile_paths_and_methods_get_a_4xx(api: Api, method: str, path: str) -> None:
    assert_clean_4xx(api.client.request(method, path, headers=api.auth("alice")))


def test_wrong_roles_on_every_route_get_403(api: Api) -> None:
    for route, (who, extra, _) in ROUTES.items():
        for other in ("entry-1", "aisle", "alice"):
            if other != who and not (who == "exit-1" and other == "entry-1"):
                r = api.client.post(route, json={}, headers={**api.auth(other), **extra})
                assert r.status_code == 403, (route, other, r.text)
                assert_clean_4xx(r)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


def bodies_for(fields: tuple[str, ...]) -> st.SearchStrategy[Any]:
    # Mostly objects with the route's own field names (so validation goes deep), sometimes anything.
    near = st.fixed_dictionaries({}, optional={name: json_values | st.text(max_size=300) for name in fields})
    events = st.fixed_dictionaries({"events": st.lists(st.fixed_dictionaries({}, optional={
        k: json_values for k in ("id", "t", "camera", "kind", "track", "zone", "gtin", "qty", "slot", "action",
                                 "confidence", "gate", "code", "admitted", "detail")}), min_size=1, max_size=3)})
    return near | events | json_values


@pytest.mark.parametrize("route", list(ROUTES))
def test_arbitrary_json_bodies_never_make_a_5xx(tmp_path: Path, route: str) -> None:
    who, extra, fields = ROUTES[route]
    with serve(tmp_path) as api:

        @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=bodies_for(fields))
        def post_anything(body: Any) -> None:
            # Python's json writes NaN and Infinity, which the server's parser takes too.
            r = api.client.post(route, content=json.dumps(body),
                                headers={**api.auth(who), **extra, "content-type": "application/json"})
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                assert_clean_4xx(r)

        post_anything()


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
gtins = st.from_regex(r"\d{8,14}", fullmatch=True)
codes = st.text(max_size=300) | st.builds(lambda a, b: f"WO1.{a}.{b}", st.text(max_size=200), st.text(max_size=60))
event_ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
times = st.floats(min_value=0, max_value=1e11)

# Bodies of the right shape with arbitrary values: they get past validation into the runtime.
WELL_SHAPED: dict[str, st.SearchStrategy[Any]] = {
    "/v1/entries": st.fixed_dictionaries({"gate": names | st.just("entry-1"), "code": codes}),
    "/v1/exits": st.fixed_dictionaries({"gate": names | st.just("exit-1"), "session": names}),
    "/v1/events": st.fixed_dictionaries({"events": st.lists(st.one_of(
        st.fixed_dictionaries({"id": event_ids, "t": times, "camera": st.just("aisle"), "kind": st.just("shelf"),
                               "action": st.sampled_from(["pick", "put"]), "track": st.integers(-1, 2**31 - 1),
                               "gtin": gtins, "qty": st.integers(1, 99), "slot": names,
                               "confidence": st.floats(0, 1), "track_confidence": st.floats(0, 1)}),
        st.fixed_dictionaries({"id": event_ids, "t": times, "camera": st.just("aisle"),
                               "kind": st.sampled_from(["entered", "exited"]), "track": st.integers(-1, 2**31 - 1),
                               "zone": names | st.sampled_from(["entry-1", "exit-1"])}),
        st.fixed_dictionaries({"id": event_ids, "t": times, "camera": st.just("aisle"), "kind": st.just("entry"),
                               "gate": names | st.just("entry-1"), "code": codes, "admitted": st.booleans(),
                               "detail": st.text(max_size=300)})), min_size=1, max_size=4)}),
    "/v1/reviews/r_00000000000000000000/decision": st.fixed_dictionaries(
        {"decision": st.sampled_from(["accept", "reject"])},
        optional={"note": st.text(max_size=500), "session": names, "gtin": gtins, "qty": st.integers(1, 99)}),
    "/v1/disputes": st.fixed_dictionaries({"session": names, "gtin": gtins, "qty": st.integers(1, 99),
                                           "reason": st.text(min_size=1, max_size=300)}),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_well_shaped_bodies_with_any_values_never_make_a_5xx(tmp_path: Path, route: str) -> None:
    who, extra, _ = ROUTES[route]
    with serve(tmp_path) as api:
        keys = iter(range(10**9))

        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=WELL_SHAPED[route])
        def post_it(body: Any) -> None:
            headers = {**api.auth(who), **extra}
            if "Idempotency-Key" in headers:
                headers["Idempotency-Key"] = f"fuzz-{next(keys)}"
            r = api.client.post(route, json=body, headers=headers)
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                assert_clean_4xx(r)

        post_it()
