"""Schemathesis over the API's own OpenAPI document (`/openapi.json`, SPEC section 7): generated
requests for every operation, valid and invalid, each sent with a real credential of the role the
operation is for. Every answer must be no server error, of a status the document lists, with a
body that matches the document's schema for it; a request that breaks the schema is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install -e '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from api.api_fakes import STORE_YAML  # noqa: E402
from store_runtime.api import create_app, open_runtime  # noqa: E402
from store_runtime.api.settings import ApiSettings  # noqa: E402
from store_runtime.db import add_credential  # noqa: E402

# Which credential each operation is sent with: its role's, named after the gate or camera the
# sample store has (a gate acts only for itself, a node posts only its camera's events).
CREDENTIAL_FOR = {
    ("POST", "/v1/entries"): "entry-1",
    ("POST", "/v1/exits"): "exit-1",
    ("GET", "/v1/sessions/{session}"): "exit-1",
    ("GET", "/v1/receipts/{session}"): "exit-1",
    ("POST", "/v1/events"): "aisle",
}
OPERATOR = "alice"
MAX_EXAMPLES = 25  # per operation and mode: the whole file in well under a minute
CREDENTIALS = {"entry-1": "gate", "exit-1": "gate", "aisle": "node", OPERATOR: "operator"}



def _operations() -> list[tuple[str, str, str]]:
    """(method, path, mode) of every operation: positive, and negative where it has something to
    break (parameters or a body). The document is built from the routes alone: nothing is opened."""
    document = create_app(ApiSettings(store=STORE_YAML, db_url="sqlite://")).openapi()
    return [(method.upper(), path, mode) for path, ops in document["paths"].items() for method, op in ops.items()
            for mode in ("positive", "negative") if mode == "positive" or op.get("parameters") or op.get("requestBody")]


OPERATIONS = _operations()


@dataclass
class Served:
    app: Any
    tokens: dict[str, str]
    schema: Any

    def headers(self, method: str, path: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[CREDENTIAL_FOR.get((method, path), OPERATOR)]}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The sample store's API on a SQLite file, a credential of each role, and its document as served."""
    folder: Path = tmp_path_factory.mktemp("schema")
    api_settings = ApiSettings(store=STORE_YAML, db_url=f"sqlite:///{folder / 'walkout.db'}")
    runtime = open_runtime(api_settings)
    try:
        tokens = {name: add_credential(runtime.db, role, name) for name, role in CREDENTIALS.items()}  # type: ignore[arg-type]
        app = create_app(api_settings, runtime=runtime)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # NUL is refused in every text field (PostgreSQL cannot store it; test_api_hostile.py checks
        # that): JSON Schema has no plain way to say so, so it is left out of what counts as valid.
        # Query parameters the document does not name are ignored, as HTTP APIs do; JSON bodies
        # with a field they do not name are refused (that is tested).
        schema.config.generation.update(allow_x00=False, allow_extra_parameters=False)
        # A body over max_body_bytes is refused before it is read (413), whatever it holds.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        yield Served(app, tokens, schema)
    finally:
        runtime.db.close()


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {mode}" for m, p, mode in OPERATIONS])
def test_every_operation_holds_to_the_document(served: Served, method: str, path: str, mode: str) -> None:
    operation = served.schema[path][method]

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def holds(case: Any) -> None:
        case.call_and_validate(headers=served.headers(method, path))

    holds()
