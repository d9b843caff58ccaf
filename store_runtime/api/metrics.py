"""Prometheus metrics of one app: requests by route and status, their latency, and the store's own
counts (entries by outcome, exits by answer, node events by kind, review decisions), plus gauges
read from the database at scrape time (sessions by state, open reviews).

Each app has its own registry, so two apps in one process (tests) never share a counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from store_runtime.db import ReviewRow, SessionRow
from store_runtime.runtime import StoreRuntime

__all__ = ["Metrics"]

log = logging.getLogger("walkout.api")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreGauges(Collector):
    """Sessions by state and open reviews, counted in the database when scraped."""

    def __init__(self, runtime: Callable[[], StoreRuntime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtime = self._runtime()
        if runtime is None:
            return
        try:
            with runtime.db.transaction() as tx:
                by_state = dict(tx.execute(select(SessionRow.state, func.count()).group_by(SessionRow.state))
                                .all())
                reviews = dict(tx.execute(select(ReviewRow.kind, func.count()).where(ReviewRow.state == "open")
                                          .group_by(ReviewRow.kind)).all())
        except Exception:  # a scrape must not fail because the database is away for a moment
            log.warning("metrics: the database could not be read", exc_info=True)
            return
        sessions = GaugeMetricFamily("walkout_sessions", "Sessions by state", labels=["state"])
        for state in ("open", "review", "charging", "charged", "declined"):
            sessions.add_metric([state], by_state.get(state, 0))
        yield sessions
        open_reviews = GaugeMetricFamily("walkout_reviews_open", "Open reviews by kind", labels=["kind"])
        for kind in ("shelf", "anonymous", "dispute"):
            open_reviews.add_metric([kind], reviews.get(kind, 0))
        yield open_reviews


class Metrics:
    def __init__(self, runtime: Callable[[], StoreRuntime | None] = lambda: None) -> None:
        disable_created_metrics()  # the *_created series double every counter for nothing a store needs
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("walkout_http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("walkout_http_request_duration_seconds", "Time to answer a request, by route",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.entries = Counter("walkout_entries", "Entry codes presented through the API, by outcome "
                               "(admitted, or the refusal reason)", ["outcome"], registry=r)
        self.exits = Counter("walkout_exits", "Exit requests, by HTTP answer", ["status"], registry=r)
        self.events = Counter("walkout_node_events", "Node events received, by kind", ["kind"], registry=r)
        self.decisions = Counter("walkout_review_decisions", "Reviews decided by operators", ["kind", "decision"],
                                 registry=r)
        self.disputes = Counter("walkout_disputes", "Disputes opened by operators", registry=r)
        r.register(_StoreGauges(runtime))
