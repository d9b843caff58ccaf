"""Fixtures of the store runtime's tests that need a real PostgreSQL.

`postgres_server` is one server for the whole run: WALKOUT_TEST_POSTGRES_URL's when it is set,
else one started in a temporary folder (store_runtime.pg_local) with durability off (fsync,
synchronous commits): the cluster is thrown away, and what is tested is locking and
transactions, which do not depend on it. Tests that need it are skipped, saying why, when psycopg
or the server binaries are missing. `postgres_url` is a fresh schema on it per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store_runtime.pg_local import PgUnavailable, start_local_pg


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's `postgres` database, as its superuser."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (pip install -e '.[dev]')")
    given = os.environ.get("WALKOUT_TEST_POSTGRES_URL")
    if given:
        yield make_url(given).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return
    try:
        server = start_local_pg(durable=False)
    except PgUnavailable as e:
        pytest.skip(f"{e}, or set WALKOUT_TEST_POSTGRES_URL")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the server (first on the search path of the URL given), dropped after."""
    url = make_url(postgres_server)
    schema = f"walkout_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
