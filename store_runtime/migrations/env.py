"""Alembic's entry point, configured in code by `store_runtime.db.alembic_config`: it always runs
on the connection it is handed (inside the caller's transaction), never on a URL of its own."""

from __future__ import annotations

from alembic import context

from store_runtime.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("walkout migrations run through store_runtime.db.open_database (or alembic_config(connection))")

# SQLite cannot ALTER most things in place: batch mode copies the table, which later revisions need.
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
