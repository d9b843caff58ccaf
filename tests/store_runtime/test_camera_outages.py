"""Camera outages at the store: which sessions an outage flags (inside during it; entries and exits a
gate or zone camera missed), a shelf camera's outage holding the charge until a person decides,
reports in any order and repeated, a late report after the charge, and camera_health()."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_fakes import JAM, KEY_HEX, MILK, PRICES, STORE_ID, T0, Clock, code, entered, entry_read

from store_runtime.config import Catalog, Product, Store, StoreConfig
from store_runtime.db import Database, open_database
from store_runtime.events import CameraStatus, camera_status_id
from store_runtime.payments import LocalProvider
from store_runtime.runtime import RuntimeSettings, StoreRuntime

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def outage_store(root: Path) -> Store:
    """store_fakes' store, with a shelf slot on the aisle camera (its outages hold charges)."""
    config = StoreConfig.model_validate({
        "version": 1, "store_id": STORE_ID, "currency": "EUR", "entry_key": KEY_HEX, "catalog": "catalog.csv",
        "gates": {"entry-1": {"kind": "entry"}, "exit-1": {"kind": "exit"}},
        "cameras": {
            "gate": {"role": "gate", "gate": "entry-1", "size": [640, 480], "fps": 15},
            "aisle": {"role": "shelf", "size": [1280, 720], "fps": 15,
                      "zones": {"entry-1": SQUARE, "exit-1": [[1180, 0], [1280, 0], [1280, 100], [1180, 100]]},
                      "slots": [{"id": "A1", "gtin": MILK, "polygon": [[300, 100], [400, 100], [400, 200],
                                                                       [300, 200]]}]},
        },
    })
    products = {g: Product(gtin=g, name=f"product {g}", price_cents=p, images=()) for g, p in PRICES.items()}
    return Store(config=config, catalog=Catalog(products=products), root=root)


def runtime_on(db: Database, tmp_path: Path, clock: Clock | None = None, **settings: object) -> StoreRuntime:
    clock = clock or Clock()
    return StoreRuntime(db, outage_store(tmp_path), provider=LocalProvider(db, clock=clock), clock=clock,
                        settings=RuntimeSettings(**settings))


@pytest.fixture()
def runtime(tmp_path: Path) -> StoreRuntime:
    return runtime_on(open_database(f"sqlite:///{tmp_path / 'store.db'}"), tmp_path)


def report(status: str, t: float, *, camera: str = "aisle", start: float | None = None, end: float | None = None,
           outage: str | None = None, reconnects: int = 0, lag: float | None = None) -> CameraStatus:
    outage = outage or (None if status == "ok" else status if status != "recovered" else "stalled")
    return CameraStatus(id=camera_status_id(camera, status, start, t), t=t, camera=camera, status=status,
                        outage=outage, start_t=start, end_t=end, reconnects=reconnects, lag_s=lag,
                        detail="" if status == "ok" else "read timed out")


def enter(runtime: StoreRuntime, cid: str, t: float) -> str:
    return runtime.enter("entry-1", code(cid), t=t).session


def leave(runtime: StoreRuntime, session: str, t: float, key: str | None = None) -> dict:
    body = {"gate": "exit-1", "session": session}
    status, answer = runtime.exit_request("exit-1", session, key=key or f"k-{session}", body=body, t=t)
    assert status == 200, answer
    return answer


def pick(runtime: StoreRuntime, track: int, gtin: str, t: float):
    from store_fakes import shelf

    runtime.apply(shelf(track, "pick", gtin, t))


def inside_with_milk(runtime: StoreRuntime) -> str:
    """c-0001 in (code read T0 + 1, track 1 in at T0 + 3), a milk picked at T0 + 5."""
    runtime.apply(entry_read(code(), T0 + 1))
    runtime.apply(entered(1, T0 + 3))
    pick(runtime, 1, MILK, T0 + 5)
    return runtime.receipts()[0].session


@pytest.mark.parametrize(("decision", "fix", "lines", "charged"), [
    ("accept", {}, {MILK: 1}, 120),                                # the basket stands as the cameras saw it
    ("accept", {"gtin": JAM, "qty": 1}, {MILK: 1, JAM: 1}, 579),   # a jam taken while the camera was blind
    ("accept", {"gtin": MILK, "qty": 0}, {}, 0),                   # the milk was put back, unseen
    ("reject", {}, {MILK: 1}, 120),                                # the outage did not concern this visit
])
def test_a_shelf_camera_outage_holds_the_charge_until_a_person_decides(
        runtime: StoreRuntime, decision: str, fix: dict, lines: dict, charged: int) -> None:
    session = inside_with_milk(runtime)
    runtime.apply(report("stalled", T0 + 9, start=T0 + 8))
    [review] = runtime.reviews()
    assert (review.kind, review.session, review.event["camera"]) == ("camera_outage", session, "aisle")
    assert "shelf camera aisle was stalled (still going)" in review.reasons[0]
    [flag] = runtime.session(session).camera_outages
    assert flag == {"camera": "aisle", "kind": "stalled", "start_t": T0 + 8, "end_t": None, "affects": ["shelf"],
                    "review": review.id}

    runtime.apply(report("recovered", T0 + 12.1, start=T0 + 8, end=T0 + 12))
    assert runtime.session(session).camera_outages[0]["end_t"] == T0 + 12
    assert "stalled (4.0 s)" in runtime.reviews()[0].reasons[0], "the words follow the outage's end"

    answer = leave(runtime, session, T0 + 20)
    assert (answer["status"], answer["charge"]) == ("review", None), "held: nothing taken while a person looks"
    assert answer["camera_outages"][0]["review"] == review.id
    assert runtime.provider.ledger() == []

    runtime.resolve_review(review.id, decision, by="alice", **fix)
    receipt = runtime.receipt(session)
    assert receipt.status == "charged" and {line.gtin: line.qty for line in receipt.lines} == lines
    assert receipt.charged_cents == charged
    assert receipt.to_spec(T0)["status"] == "charged" and "camera_outages" not in receipt.to_spec(T0)


def test_who_is_flagged_and_what_the_camera_may_have_missed(runtime: StoreRuntime) -> None:
    gone = enter(runtime, "c-gone", T0 + 1)
    leave(runtime, gone, T0 + 5)                      # left before the outage
    shopping = enter(runtime, "c-shopping", T0 + 2)   # inside all along
    arrived = enter(runtime, "c-arrived", T0 + 12)    # came in during it
    later = enter(runtime, "c-later", T0 + 30)        # came in after it
    # The gate camera (it reads codes at entry-1) was disconnected from T0 + 10 to T0 + 20.
    runtime.apply(report("disconnected", T0 + 11, camera="gate", start=T0 + 10))
    runtime.apply(report("recovered", T0 + 20.5, camera="gate", start=T0 + 10, end=T0 + 20, outage="disconnected"))
    leave(runtime, shopping, T0 + 40)

    flags = {s: runtime.session(s).camera_outages for s in (gone, shopping, arrived, later)}
    assert flags[gone] == flags[later] == ()
    assert [(f["camera"], f["kind"], f["affects"], f["review"]) for f in flags[shopping]] == [
        ("gate", "disconnected", [], None)]
    assert [(f["camera"], f["affects"]) for f in flags[arrived]] == [("gate", ["entry"])]
    assert runtime.reviews() == [], "an entry camera's outage flags; it holds no charge"
    assert runtime.receipt(shopping).status == "charged"
    health = {h["camera"]: h for h in runtime.camera_health()}
    assert health["gate"]["outages"] == [{"start_t": T0 + 10, "end_t": T0 + 20, "kind": "disconnected",
                                          "sessions": [shopping, arrived]}]

    # An exit through the zones of the aisle camera while it was blind is an exit it may have missed.
    runtime.apply(report("stalled", T0 + 46, start=T0 + 45))
    leave(runtime, arrived, T0 + 47)
    flag = runtime.receipt(arrived).camera_outages[-1]
    assert (flag["camera"], flag["affects"]) == ("aisle", ["shelf", "exit"])
    assert runtime.receipt(arrived).status == "review", "a shelf camera out when it left holds its charge"


def test_reports_in_any_order_and_repeated_make_one_outage(runtime: StoreRuntime) -> None:
    session = inside_with_milk(runtime)
    stalled = report("stalled", T0 + 9, start=T0 + 8)
    lost = report("disconnected", T0 + 15, start=T0 + 8)
    back = report("recovered", T0 + 21, start=T0 + 8, end=T0 + 20, outage="disconnected", reconnects=1)
    for event in (back, lost, stalled, back, stalled):  # the broker redelivers; the order is not the node's
        runtime.apply(event)
    [aisle] = [h for h in runtime.camera_health() if h["camera"] == "aisle"]
    assert aisle["outages"] == [{"start_t": T0 + 8, "end_t": T0 + 20, "kind": "disconnected", "sessions": [session]}]
    assert (aisle["state"], aisle["reconnects"], aisle["last_event_t"]) == ("ok", 1, T0 + 21)
    assert len(runtime.reviews()) == 1


def test_an_outage_whose_end_never_came_is_closed_by_the_cameras_next_report(runtime: StoreRuntime) -> None:
    # The node died while its camera was out; restarted, it reports frames flowing again.
    runtime.apply(report("stalled", T0 + 9, start=T0 + 8))
    runtime.apply(report("ok", T0 + 60, lag=0.08))
    [aisle] = [h for h in runtime.camera_health() if h["camera"] == "aisle"]
    assert aisle["state"] == "ok" and aisle["outages"][0]["end_t"] == T0 + 60
    # A late report of an outage older than the newest heartbeat: it had ended by then.
    runtime.apply(report("stalled", T0 + 50, start=T0 + 40))
    [aisle] = [h for h in runtime.camera_health() if h["camera"] == "aisle"]
    assert [(o["start_t"], o["end_t"]) for o in aisle["outages"]] == [(T0 + 8, T0 + 60), (T0 + 40, T0 + 60)]
    assert aisle["last_event_t"] == T0 + 60, "an older report does not move the camera's newest status back"


def test_a_heartbeat_overtaken_by_the_stalls_report_does_not_end_it(tmp_path: Path) -> None:
    clock = Clock(T0 + 12)  # the store hears of the stall at T0 + 12
    runtime = runtime_on(open_database(f"sqlite:///{tmp_path / 'o.db'}"), tmp_path, clock=clock)
    runtime.apply(report("stalled", T0 + 11, start=T0 + 10))
    runtime.apply(report("ok", T0 + 10.05))  # sent with the last frame, redelivered late
    [aisle] = [h for h in runtime.camera_health() if h["camera"] == "aisle"]
    assert aisle["state"] == "stalled" and aisle["outages"][0]["end_t"] is None


def test_a_report_that_arrives_after_the_charge_opens_a_review_that_settles_the_difference(
        runtime: StoreRuntime) -> None:
    session = inside_with_milk(runtime)
    assert leave(runtime, session, T0 + 20)["status"] == "charged"
    # The node's outbox was stuck behind a broker outage: its report comes after the exit.
    runtime.apply(report("recovered", T0 + 30, start=T0 + 10, end=T0 + 18))
    [review] = runtime.reviews()
    assert review.session == session and runtime.receipt(session).status == "charged"
    runtime.resolve_review(review.id, "accept", by="alice", gtin=JAM, qty=2)
    receipt = runtime.receipt(session)
    assert receipt.charged_cents == 120 + 2 * 459 and [c.kind for c in receipt.charges] == ["exit", "adjust"]


@pytest.mark.parametrize(("hold_s", "held"), [(None, False), (5.0, False), (1.0, True)])
def test_the_hold_threshold_is_a_store_setting(tmp_path: Path, hold_s: float | None, held: bool) -> None:
    # An outage of 3 s: held only where the store holds for outages longer than 1 s.
    runtime = runtime_on(open_database(f"sqlite:///{tmp_path / 's.db'}"), tmp_path, outage_hold_s=hold_s)
    session = inside_with_milk(runtime)
    runtime.apply(report("recovered", T0 + 11.5, start=T0 + 8, end=T0 + 11))
    assert len(runtime.session(session).camera_outages) == 1, "flagged whatever the setting"
    assert leave(runtime, session, T0 + 20)["status"] == ("review" if held else "charged")


def test_camera_health_from_unknown_to_ok_to_stalled_and_silent(tmp_path: Path) -> None:
    clock = Clock(T0)
    runtime = runtime_on(open_database(f"sqlite:///{tmp_path / 'h.db'}"), tmp_path, clock=clock,
                         camera_silence_s=60)
    assert [(h["camera"], h["state"], h["last_event_t"], h["lag_s"]) for h in runtime.camera_health()] == [
        ("aisle", "unknown", None, None), ("gate", "unknown", None, None)]
    runtime.apply(report("ok", T0 + 1, lag=0.12, camera="gate"))
    runtime.apply(report("stalled", T0 + 3, start=T0 + 2))
    clock.advance(5)
    health = runtime.camera_health()
    assert list(health[0]) == ["camera", "state", "last_event_t", "reconnects", "lag_s", "outages"]
    assert [(h["camera"], h["state"]) for h in health] == [("aisle", "stalled"), ("gate", "ok")]
    assert health[1]["lag_s"] == 0.12
    clock.advance(120)
    assert [h["state"] for h in runtime.camera_health()] == ["stalled", "unknown"], \
        "an outage still open says what it is; a camera silent for long is unknown"


def test_outages_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    runtime = runtime_on(open_database(postgres_url), tmp_path)
    try:
        session = inside_with_milk(runtime)
        runtime.apply(report("stalled", T0 + 9, start=T0 + 8))
        runtime.apply(report("stalled", T0 + 9, start=T0 + 8))
        runtime.apply(report("recovered", T0 + 12, start=T0 + 8, end=T0 + 11))
        assert leave(runtime, session, T0 + 20)["status"] == "review"
        [review] = runtime.reviews()
        runtime.resolve_review(review.id, "accept", by="alice")
        assert runtime.receipt(session).charged_cents == 120
        assert runtime.camera_health()[0]["outages"][0]["sessions"] == [session]
    finally:
        runtime.db.close()
