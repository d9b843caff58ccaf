"""Small factories for the API's tests: the sample store 02-pick-put served by a TestClient on a
SQLite file, a credential per role, entry codes signed with the store's key, node events with
stable ids, and a store clock the test moves."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from store_fakes import T0, Clock  # the runtime tests' store clock, moved by the test

from store_runtime.api import create_app, open_runtime
from store_runtime.api.settings import ApiSettings
from store_runtime.db import add_credential
from store_runtime.events import event_id
from store_runtime.payments import DeclineRule, LocalProvider
from store_runtime.runtime import RuntimeSettings, StoreRuntime
from vision.entry_code import EntryClaims, make_code

REPO = Path(__file__).resolve().parents[3]
STORE_DIR = REPO / "sample_videos" / "02-pick-put"
STORE_YAML = STORE_DIR / "store.yaml"
EXP = int(T0) + 3600
APPLE = "2110054234714"  # Red Delicious Apple, 389 cents, on the sample's slot B1
OAT_MILK = "2088972807856"  # 359 cents, slot C4
SLOTS = {APPLE: "B1", OAT_MILK: "C4"}  # where the sample's planogram puts them

# name -> role: gates and nodes are named after the gate or camera they are.
CREDENTIALS = {"entry-1": "gate", "exit-1": "gate", "aisle": "node", "gate": "node", "alice": "operator"}


@dataclass
class Api:
    client: TestClient
    runtime: StoreRuntime
    clock: Clock
    tokens: dict[str, str]
    provider: LocalProvider
    _tracks: dict[str, int] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    @property
    def key(self) -> bytes:
        return self.runtime.store.config.entry_key_bytes

    def code(self, customer: str = "c-0001", jti: str | None = None, *, party: int = 1, exp: int = EXP,
             sid: str | None = None, key: bytes | None = None) -> str:
        claims = EntryClaims(customer, jti or f"jti-{customer}", sid or self.runtime.store.config.store_id, exp, party)
        return make_code(key or self.key, claims)

    def enter(self, customer: str = "c-0001", **code: Any) -> str:
        """A shopper scans in at entry-1 and walks in (a track through the entry zone): the session."""
        r = self.client.post("/v1/entries", json={"gate": "entry-1", "code": self.code(customer, **code)},
                             headers=self.auth("entry-1"))
        assert r.status_code == 201, r.text
        session = r.json()["session"]
        track = len(self._tracks) + 1
        self._tracks[session] = track
        self.post_events({"id": event_id("aisle", "entered", track), "t": self.clock.t + 1, "camera": "aisle",
                          "kind": "entered", "track": track, "zone": "entry-1"})
        return session

    def pick(self, session: str, gtin: str = APPLE, *, qty: int = 1, confidence: float = 0.95,
             action: str = "pick") -> None:
        track = self._tracks[session]
        t = self.clock.advance(2)
        self.post_events({"id": event_id("aisle", "shelf", session, t, gtin, action), "t": t, "camera": "aisle",
                          "kind": "shelf", "action": action, "track": track, "gtin": gtin, "qty": qty,
                          "slot": SLOTS[gtin], "confidence": confidence})

    def post_events(self, *events: dict[str, Any], camera: str = "aisle") -> None:
        r = self.client.post("/v1/events", json={"events": list(events)}, headers=self.auth(camera))
        assert r.status_code == 200, r.text

    def exit(self, session: str, key: str | None = None, *, gate: str = "exit-1", as_: str | None = None) -> Any:
        return self.client.post("/v1/exits", json={"gate": gate, "session": session},
                                headers={**self.auth(as_ or gate), "Idempotency-Key": key or uuid.uuid4().hex})


@contextlib.contextmanager
def serve(tmp_path: Path, *, decline: DeclineRule | None = None, settings: dict[str, Any] | None = None,
          runtime_settings: RuntimeSettings | None = None,
          provider_type: type[LocalProvider] = LocalProvider) -> Iterator[Api]:
    """The sample store's API on a fresh SQLite file, with one credential of each kind; payments by
    `provider_type` (a LocalProvider, or a test's subclass that fails or waits)."""
    url = f"sqlite:///{tmp_path / 'walkout.db'}"
    api_settings = ApiSettings(store=STORE_YAML, db_url=url, **(settings or {}))
    clock = Clock()
    providers: list[LocalProvider] = []

    def provider(db: Any) -> LocalProvider:
        providers.append(provider_type(db, decline=decline, clock=clock))
        return providers[-1]

    runtime = open_runtime(api_settings, provider=provider, clock=clock, runtime_settings=runtime_settings)
    try:
        tokens = {name: add_credential(runtime.db, role, name) for name, role in CREDENTIALS.items()}  # type: ignore[arg-type]
        with TestClient(create_app(api_settings, runtime=runtime)) as client:
            yield Api(client, runtime, clock, tokens, providers[0])
    finally:
        runtime.db.close()


def assert_error(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    """An error answer: the status, JSON with `error` (the code expected, if given) and a `detail`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), body
    if error is not None:
        assert body["error"] == error, body
    return body
