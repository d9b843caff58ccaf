"""What a database has recorded, table by table, so a drill can say "nothing changed" exactly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, select

from store_runtime.db import Database

# Tables that change without any request: the privacy audit log's own bookkeeping is not among
# them, so every table is compared.
IGNORED: frozenset[str] = frozenset({"alembic_version"})


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, as plain tuples."""
    meta = MetaData()
    meta.reflect(db.engine)
    with db.engine.connect() as conn:
        return {name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
                for name, table in sorted(meta.tables.items()) if name not in IGNORED}


def changed(before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """The tables whose rows differ."""
    return [name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]
