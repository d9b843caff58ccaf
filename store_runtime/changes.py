"""A change counter of one database, for pages that follow the store live (the operator console's
server-sent events): it rises once per committed transaction that wrote anything.

Why a counter and not a query: a page open all day that re-read the receipts every few seconds
would cost the database more the longer the store is open. The counter costs one integer compare
per look; a page reads its bounded tables again only when it has moved.

It is fed by the database engine's own events (a statement that writes marks the connection, its
commit bumps the counter), so every writer counts — the runtime, the privacy office, the retention
purge, the bus consumer — without any of them knowing. It sees the writers of this process only:
with several `walkout serve` on one PostgreSQL, a page follows the changes made through its own
server (and catches up on the next change here, or when it reconnects).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["ChangeFeed"]

_WRITES = ("insert", "update", "delete", "replace")
_MARK = "walkout_wrote"


class ChangeFeed:
    """`version` rises after each commit of a transaction that wrote. One feed per engine (`of`)."""

    _feeds: weakref.WeakKeyDictionary[Engine, ChangeFeed] = weakref.WeakKeyDictionary()
    _feeds_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0

    @classmethod
    def of(cls, engine: Engine) -> ChangeFeed:
        """The feed of `engine`, made and hooked to it on first use."""
        with cls._feeds_lock:
            feed = cls._feeds.get(engine)
            if feed is None:
                feed = cls._feeds[engine] = cls()
                feed._watch(engine)
            return feed

    @property
    def version(self) -> int:
        return self._version

    def bump(self) -> None:
        with self._lock:
            self._version += 1

    def _watch(self, engine: Engine) -> None:
        def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip()[:7].lower().startswith(_WRITES):
                conn.info[_MARK] = True

        def commit(conn: Any) -> None:
            if conn.info.pop(_MARK, False):
                self.bump()

        def rollback(conn: Any) -> None:
            conn.info.pop(_MARK, None)

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "commit", commit)
        event.listen(engine, "rollback", rollback)
