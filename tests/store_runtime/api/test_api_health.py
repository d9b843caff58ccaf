"""/healthz, /metrics in Prometheus text format, the OpenAPI document, and the request log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.api_fakes import Api, assert_error, serve


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_needs_no_credential(api: Api) -> None:
    r = api.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "store": "walkout-synth-01"}


def test_metrics_count_requests_by_route_and_status_and_the_stores_own_events(api: Api) -> None:
    session = api.enter()
    api.pick(session)
    api.client.post("/v1/entries", json={"gate": "entry-1", "code": "junk"}, headers=api.auth("entry-1"))
    api.exit(session)
    api.client.get("/v1/sessions/s_00000000000000000000", headers=api.auth("alice"))
    r = api.client.get("/metrics", headers=api.auth("alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)  # parses as Prometheus text, or raises

    def count(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert count("walkout_http_requests_total", method="POST", route="/v1/entries", status="201") == 1
    assert count("walkout_http_requests_total", method="POST", route="/v1/entries", status="422") == 1
    assert count("walkout_http_requests_total", method="GET", route="/v1/sessions/{session}", status="404") == 1
    assert count("walkout_http_request_duration_seconds_count", method="POST", route="/v1/exits") == 1
    assert count("walkout_entries_total", outcome="admitted") == 1
    assert count("walkout_entries_total", outcome="malformed") == 1
    assert count("walkout_exits_total", status="200") == 1
    assert count("walkout_node_events_total", kind="shelf") == 1
    assert count("walkout_sessions", state="charged") == 1
    # Path values never become labels (one series per route, not per session).
    assert "s_00000000000000000000" not in r.text


def test_metrics_need_an_operator_unless_made_public(tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir()
    (tmp_path / "public").mkdir()
    with serve(tmp_path / "closed") as api:
        assert_error(api.client.get("/metrics"), 401, "unauthenticated")
        assert_error(api.client.get("/metrics", headers=api.auth("exit-1")), 403, "forbidden")
    with serve(tmp_path / "public", settings={"metrics_public": True}) as api:
        assert api.client.get("/metrics").status_code == 200


def test_the_openapi_document_lists_every_route(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/entries", "/v1/exits", "/v1/sessions/{session}", "/v1/receipts/{session}", "/v1/events",
            "/v1/reviews", "/v1/reviews/{review}/decision", "/v1/disputes", "/healthz", "/metrics"} <= set(paths)
    exits = paths["/v1/exits"]["post"]
    assert {"200", "402", "404", "409", "422"} <= set(exits["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in exits["parameters"])


def test_one_json_log_line_a_request_names_the_credential_never_the_token_or_code(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    code = api.code("c-0123")
    with caplog.at_level(logging.INFO, logger="walkout.api.access"):
        api.client.post("/v1/entries", json={"gate": "entry-1", "code": code}, headers=api.auth("entry-1"))
    [record] = [r for r in caplog.records if r.name == "walkout.api.access"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["method"] == "POST" and fields["route"] == "/v1/entries" and fields["status"] == 201
    assert fields["credential"] == "entry-1" and fields["ms"] >= 0 and fields["request_id"]
    from store_runtime.api.middleware import JsonLogFormatter

    line = JsonLogFormatter().format(record)
    assert json.loads(line)["route"] == "/v1/entries"
    assert api.tokens["entry-1"] not in line and code not in line and "c-0123" not in line


def test_a_request_id_is_kept_when_sane_and_made_when_not(api: Api) -> None:
    assert api.client.get("/healthz", headers={"X-Request-Id": "gate-7-000042"}).headers["x-request-id"] == \
        "gate-7-000042"
    made = api.client.get("/healthz", headers={"X-Request-Id": "<script>"}).headers["x-request-id"]
    assert made != "<script>" and made.isalnum()
