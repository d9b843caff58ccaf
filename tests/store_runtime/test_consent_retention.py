"""The store side of privacy (store_runtime/privacy.py), one promise a test: consent at the entry,
withdrawal that stops tracking at the next event, access export, erasure in the middle of a
session, retention on a clock moved forward, the hash-chained audit log, the art. 30 record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from store_fakes import (
    JAM,
    MILK,
    T0,
    Clock,
    code,
    entered,
    entry_read,
    exited,
    inside,
    make_store,
    open_runtime,
    shelf,
)

from store_runtime.config import ConfigError, StoreConfig, _validate
from store_runtime.db import (
    Base,
    BasketEventRow,
    ConsentRow,
    DiscardedEventRow,
    EntryRow,
    PrivacyAuditRow,
    SessionRow,
    StoppedTrackRow,
    TrackRow,
    open_database,
)
from store_runtime.privacy import (
    TABLE_CATEGORIES,
    PrivacyOffice,
    processing_record,
    purge,
    record_text,
    verify_audit,
)
from store_runtime.runtime import EntryRefused, StoreRuntime

DAY = 86_400.0


def office(runtime: StoreRuntime) -> PrivacyOffice:
    return PrivacyOffice(runtime)


def audit_ops(runtime: StoreRuntime) -> list[tuple[str, str | None, str]]:
    with runtime.db.transaction() as tx:
        return [(r.op, r.customer, r.actor) for r in tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq))]


def count(runtime: StoreRuntime, row: type, *where: object) -> int:
    with runtime.db.transaction() as tx:
        return tx.scalar(select(func.count()).select_from(row).where(*where)) or 0


def shopping(tmp_path: Path, *events: object) -> tuple[StoreRuntime, str, Clock]:
    """c-0001 inside (admitted T0 + 1, in as track 1 at T0 + 3) with `events` applied; the clock at T0 + 10."""
    clock = Clock()
    runtime, session = inside(tmp_path, *events, clock=clock)
    clock.t = T0 + 10
    return runtime, session, clock


# ------------------------------------------------------------------------------ consent at entry


def test_an_admitted_code_records_checkout_consent_from_the_app(tmp_path: Path) -> None:
    # The app issues a code only after its notice is accepted: the code is the consent's evidence.
    runtime = open_runtime(tmp_path)
    runtime.enter("entry-1", code(), t=T0 + 1)
    consents = office(runtime).consents("c-0001")
    assert consents["purposes"]["checkout"] == {"state": "given", "required": True, "notice_version": "1",
                                                "method": "app", "given_t": T0 + 1, "withdrawn_t": None}
    # Optional purposes are never assumed.
    assert consents["purposes"]["review_clips"]["state"] == consents["purposes"]["analytics"]["state"] == "none"
    assert audit_ops(runtime) == [("consent_given", "c-0001", "api:entry-1")]
    runtime.enter("entry-1", code(jti="second-visit"), t=T0 + 100)
    assert len(office(runtime).consents("c-0001")["history"]) == 1  # on file already: nothing new


def test_a_customer_who_withdrew_checkout_is_refused_entry_until_they_consent_again(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path)
    office(runtime).withdraw("c-0001", ["checkout"], method="app", by="alice", t=T0)
    with pytest.raises(EntryRefused) as refused:
        runtime.enter("entry-1", code(), t=T0 + 1)
    assert (refused.value.reason, refused.value.status) == ("no_consent", 403)
    assert "withdrawn consent" in refused.value.detail
    # A camera's read of the same code is refused the same way: the runtime checks, not the node.
    runtime.apply(entry_read(code(jti="other"), T0 + 2))
    assert [(e.admitted, e.reason, e.source) for e in runtime.entries()] == [
        (False, "no_consent", "api"), (False, "no_consent", "camera")]
    assert runtime.receipts() == []

    office(runtime).give("c-0001", ["checkout"], method="gate_screen", by="alice", t=T0 + 3)
    view = runtime.enter("entry-1", code(), t=T0 + 4)  # the refused code opened nothing: it still works
    assert view.customer == "c-0001"


# ------------------------------------------------------------------------------ withdrawal


def test_withdrawing_checkout_mid_session_charges_the_basket_so_far_and_discards_later_events(
        tmp_path: Path) -> None:
    runtime, session, clock = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    answer = office(runtime).withdraw("c-0001", ["checkout"], method="app", by="alice")
    assert answer["sessions_closed"] == [session]
    assert answer["purposes"]["checkout"]["state"] == "withdrawn"

    receipt = runtime.receipt(session)
    assert receipt.status == "charged" and receipt.exited_t == T0 + 10
    assert [(line.gtin, line.qty) for line in receipt.lines] == [(MILK, 1)] and receipt.charge is not None

    # The next events tied to the session (a pick, the person leaving) are not applied, only noted.
    clock.t = T0 + 20
    runtime.apply(shelf(1, "pick", JAM, T0 + 12))
    runtime.apply(exited(1, T0 + 15))
    assert [(line.gtin, line.qty) for line in runtime.receipt(session).lines] == [(MILK, 1)]
    assert runtime.reviews() == []  # not even put before a person
    with runtime.db.transaction() as tx:
        track = tx.scalars(select(TrackRow)).one()
        discarded = tx.scalars(select(DiscardedEventRow).order_by(DiscardedEventRow.t)).all()
        assert track.left_t is None
        assert [(d.kind, d.reason, d.session_id) for d in discarded] == [
            ("shelf", "withdrawn", session), ("exited", "withdrawn", session)]
    assert [op for op, *_ in audit_ops(runtime)] == ["consent_given", "consent_withdrawn"]


def test_withdrawal_with_an_open_review_holds_the_charge_for_a_person(tmp_path: Path) -> None:
    runtime, session, _ = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5),
                                   shelf(1, "pick", JAM, T0 + 6, confidence=0.3, slot="A3"))
    office(runtime).withdraw("c-0001", ["checkout"], method="app", by="alice")
    assert runtime.receipt(session).status == "review" and runtime.provider.ledger() == []
    [review] = runtime.reviews()
    runtime.resolve_review(review.id, "accept", by="alice")
    assert runtime.receipt(session).status == "charged"
    assert runtime.receipt(session).charged_cents == 120 + 459


def test_withdrawing_an_optional_purpose_leaves_tracking_alone(tmp_path: Path) -> None:
    runtime, session, _ = shopping(tmp_path)
    office(runtime).give("c-0001", ["analytics", "review_clips"], method="app", by="alice")
    answer = office(runtime).withdraw("c-0001", ["analytics"], method="app", by="alice")
    assert answer["sessions_closed"] == []
    assert {p: v["state"] for p, v in answer["purposes"].items()} == {
        "checkout": "given", "review_clips": "given", "analytics": "withdrawn"}
    runtime.apply(shelf(1, "pick", MILK, T0 + 11))
    assert runtime.session(session).status == "open" and runtime.session(session).total_cents == 120


@pytest.mark.parametrize(("purposes", "method"), [([], "app"), (["marketing"], "app"), (["checkout"], "email")])
def test_bad_consent_requests_are_value_errors_naming_the_field(tmp_path: Path, purposes: list, method: str) -> None:
    runtime = open_runtime(tmp_path)
    with pytest.raises(ValueError, match="purposes|method"):
        office(runtime).give("c-0001", purposes, method=method, by="alice")
    with pytest.raises(ValueError, match="customer"):
        office(runtime).consents("not a customer id")
    assert audit_ops(runtime) == []


# ------------------------------------------------------------------------------ access and erasure


def test_export_holds_everything_on_the_customer_and_nothing_on_others(tmp_path: Path) -> None:
    runtime, session, clock = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    runtime.apply(entry_read(code("c-other"), T0 + 6))
    runtime.exit_request("exit-1", session, key="k", body={"gate": "exit-1", "session": session})
    export = office(runtime).export("c-0001", by="alice")
    json.dumps(export, allow_nan=False)  # plain JSON, as the API sends it

    [visit] = export["sessions"]
    assert visit["session"] == session and visit["receipt"]["total_cents"] == 120
    assert [(e["action"], e["gtin"], e["camera"]) for e in visit["events"]] == [("pick", MILK, "aisle")]
    assert [(t["camera"], t["track"]) for t in visit["tracks"]] == [("aisle", 1)]
    assert [c["purpose"] for c in export["consents"]] == ["checkout"]
    assert [e["admitted"] for e in export["entries"]] == [True]
    assert [p["op"] for p in export["payments"]] == ["authorise", "capture"]
    assert [p["op"] for p in export["privacy_operations"]] == ["consent_given"]
    assert "c-other" not in json.dumps(export)
    assert audit_ops(runtime)[-1] == ("export", "c-0001", "alice")


def test_erasure_in_the_middle_of_a_session(tmp_path: Path) -> None:
    # The shopper is inside with milk in the basket when the erasure comes.
    runtime, session, clock = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    answer = office(runtime).erase("c-0001", by="alice")
    assert answer["sessions_closed"] == [session] and answer["consents_withdrawn"] == ["checkout"]

    # The goods taken are a sale: charged, and the receipt kept for the accountants...
    receipt = runtime.receipt(session)
    assert receipt.status == "charged" and receipt.total_cents == 120 and receipt.charge is not None
    assert receipt.customer == "c-0001"
    # ... detached from every piece of tracking data.
    export = office(runtime).export("c-0001", by="alice")
    [visit] = export["sessions"]
    assert visit["tracks"] == [] and export["entries"] == []
    assert [(e["gtin"], e["qty"], e["camera"], e["slot"], e["source"]) for e in visit["events"]] == [
        (MILK, 1, None, None, "receipt")]
    assert runtime.basket_events() == []  # events.jsonl: no event left to tell
    assert answer["removed"]["tracks"] == 1 and answer["removed"]["entries"] == 1
    kept = " ".join(k["what"] + " " + k["why"] for k in answer["kept"])
    assert "receipts of sessions" in kept and "accounting law" in kept and "consent records" in kept

    # Tracking stopped: the person's later events are discarded; their codes are refused.
    clock.t = T0 + 20
    runtime.apply(shelf(1, "pick", JAM, T0 + 12))
    assert runtime.receipt(session).total_cents == 120 and runtime.reviews() == []
    with pytest.raises(EntryRefused, match="no_consent"):
        runtime.enter("entry-1", code(jti="tomorrow"), t=T0 + DAY)
    assert verify_audit(runtime.db).ok
    # The notes of the stopped track and of what it did go with the rest of the tracking data.
    assert count(runtime, StoppedTrackRow) == count(runtime, DiscardedEventRow) == 1
    office(runtime).purge(by="test", now=T0 + 31 * DAY)
    assert count(runtime, StoppedTrackRow) == count(runtime, DiscardedEventRow) == 0


def test_erasing_a_visit_with_nothing_bought_leaves_no_session(tmp_path: Path) -> None:
    runtime, session, clock = shopping(tmp_path)
    answer = office(runtime).erase("c-0001", by="alice")
    assert answer["removed"]["sessions"] == 1
    assert runtime.session(session) is None and runtime.receipts() == []
    assert count(runtime, TrackRow) == count(runtime, EntryRow) == 0
    assert not any("receipts of sessions" in k["what"] for k in answer["kept"])
    # Still in the store, with no session left to know them by: what they do is discarded, not
    # put before a person as an unknown shopper's (nor believed to be another shopper's).
    clock.t = T0 + 20
    runtime.apply(shelf(1, "pick", MILK, T0 + 12))
    runtime.apply(exited(1, T0 + 14))
    assert runtime.reviews() == [] and runtime.basket_events() == []
    with runtime.db.transaction() as tx:
        assert [(d.kind, d.reason, d.session_id) for d in tx.scalars(select(DiscardedEventRow))] == [
            ("shelf", "erased", None), ("exited", "erased", None)]
        assert tx.scalar(select(func.count()).select_from(StoppedTrackRow)) == 0  # gone with the person
    again = office(runtime).erase("c-0001", by="alice")  # asking twice removes nothing more
    assert set(again["removed"].values()) == {0}


def test_a_new_person_on_a_stopped_track_id_is_tracked(tmp_path: Path) -> None:
    # A camera node that restarts numbers its tracks from 1 again: the next person in is not the
    # one who withdrew, and what they take is theirs.
    runtime, session, clock = shopping(tmp_path)
    office(runtime).withdraw("c-0001", ["checkout"], method="app", by="alice")
    clock.t = T0 + 40
    for event in (entry_read(code("c-next"), T0 + 30), entered(1, T0 + 32), shelf(1, "pick", JAM, T0 + 35)):
        runtime.apply(event)
    newcomer = next(r for r in runtime.receipts() if r.customer == "c-next")
    assert newcomer.total_cents == 459 and count(runtime, DiscardedEventRow) == 0


# ------------------------------------------------------------------------------ retention


def test_tracking_retention_detaches_receipts_on_a_clock_moved_forward(tmp_path: Path) -> None:
    runtime, session, clock = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5), shelf(1, "pick", JAM, T0 + 6))
    runtime.exit_request("exit-1", session, key="k", body={"gate": "exit-1", "session": session})
    runtime.apply(entered(7, T0 + 8))  # an anonymous person
    before = runtime.receipt(session)

    report = office(runtime).purge(by="test", now=T0 + 29 * DAY)  # inside the 30 days: nothing goes
    assert report["removed"]["sessions_detached"] == 0 and count(runtime, TrackRow) == 2

    report = office(runtime).purge(by="test", now=T0 + 31 * DAY)
    assert report["removed"]["sessions_detached"] == 1
    after = runtime.receipt(session)
    assert (after.lines, after.total_cents, after.charge, after.charges) == (
        before.lines, before.total_cents, before.charge, before.charges)
    assert count(runtime, TrackRow) == count(runtime, EntryRow) == 0
    assert count(runtime, BasketEventRow, BasketEventRow.source != "receipt") == 0
    assert runtime.reviews(open_only=False) == []  # the anonymous alert nobody decided holds no money
    assert office(runtime).purge(by="test", now=T0 + 32 * DAY)["removed"]["sessions_detached"] == 0


def test_an_open_review_keeps_its_session_tracking_data_until_decided(tmp_path: Path) -> None:
    runtime, session, _ = shopping(tmp_path, shelf(1, "pick", JAM, T0 + 6, confidence=0.3))
    runtime.exit_request("exit-1", session, key="k", body={"gate": "exit-1", "session": session})
    office(runtime).purge(by="test", now=T0 + 31 * DAY)
    assert len(runtime.reviews()) == 1 and count(runtime, TrackRow) == 1
    runtime.resolve_review(runtime.reviews()[0].id, "accept", by="alice")
    office(runtime).purge(by="test", now=T0 + 32 * DAY)
    assert count(runtime, TrackRow) == 0 and runtime.receipt(session).total_cents == 459


def test_receipts_go_when_their_accounting_years_end(tmp_path: Path) -> None:
    runtime, session, _ = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    runtime.exit_request("exit-1", session, key="k", body={"gate": "exit-1", "session": session})
    office(runtime).purge(by="test", now=T0 + 9 * 365 * DAY)
    assert runtime.receipt(session) is not None and runtime.provider.ledger() != []
    report = office(runtime).purge(by="test", now=T0 + 10 * 366 * DAY)
    assert report["removed"]["sessions_deleted"] == 1
    assert runtime.receipt(session) is None and runtime.provider.ledger() == []


def test_a_withdrawn_consent_is_kept_as_proof_for_the_receipt_years_then_purged(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path)
    privacy = office(runtime)
    privacy.give("c-1", ["analytics"], method="app", by="alice", t=T0)
    privacy.withdraw("c-1", ["analytics"], method="app", by="alice", t=T0 + 1)
    privacy.give("c-1", ["analytics"], method="app", by="alice", t=T0 + 2)
    privacy.purge(by="test", now=T0 + 9 * 365 * DAY)
    assert len(privacy.consents("c-1")["history"]) == 2
    later = T0 + 11 * 365 * DAY
    assert privacy.purge(by="test", now=later)["removed"]["consents"] == 1
    [active] = privacy.consents("c-1")["history"]
    assert (active["given_t"], active["withdrawn_t"]) == (T0 + 2, None)  # a consent still given stays
    privacy.withdraw("c-1", ["analytics"], method="app", by="alice", t=later + 1)
    privacy.give("c-1", ["analytics"], method="app", by="alice", t=later + 2)  # a fresh record, no clash
    assert privacy.consents("c-1")["purposes"]["analytics"]["state"] == "given"


def touch(path: Path, t: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 10)
    os.utime(path, (t, t))
    return path


def test_video_retention_deletes_old_media_files_only(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path)
    old = touch(tmp_path / "private" / "aisle.mp4", T0 - 4 * DAY)
    old_clip = touch(tmp_path / "clips" / "2026" / "r_1.mp4", T0 - 4 * DAY)
    fresh = touch(tmp_path / "private" / "gate.mp4", T0 - 2 * DAY)
    notes = touch(tmp_path / "private" / "notes.txt", T0 - 40 * DAY)  # not a video: never ours to delete
    elsewhere = touch(tmp_path / "cameras" / "aisle.mp4", T0 - 40 * DAY)  # not a media folder
    (tmp_path / "private" / "link.mp4").symlink_to(elsewhere)  # a link is not followed

    report = office(runtime).purge(by="test", now=T0)
    assert (report["video_files"], report["video_bytes"]) == (2, 20)
    assert not old.exists() and not old_clip.exists()
    assert fresh.exists() and notes.exists() and elsewhere.exists()
    # The clock moved forward past the 3 days of the newer file.
    assert office(runtime).purge(by="test", now=T0 + 2 * DAY)["video_files"] == 1 and not fresh.exists()


def test_video_retention_follows_the_configured_days(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    config = StoreConfig.model_validate({**store.config.model_dump(mode="json"), "entry_key": store.config.entry_key,
                                         "privacy": {"video_days": 10, "media_dirs": ["recordings"]}})
    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    video = touch(tmp_path / "recordings" / "a.mkv", T0 - 5 * DAY)
    report = purge(db, type(store)(config=config, catalog=store.catalog, root=tmp_path), now=T0, by="test")
    assert report["video_files"] == 0 and video.exists()
    assert report["cutoffs"]["video"] == T0 - 10 * DAY


@pytest.mark.parametrize(("privacy", "field", "expected"), [
    ({"video_days": 31}, "privacy.video_days", "at most 30 days"),
    ({"video_days": 0}, "privacy.video_days", "from 1 to 30"),
    ({"tracking_days": "30"}, "privacy.tracking_days", "whole number"),
    ({"receipt_years": 2.5}, "privacy.receipt_years", "whole number of years"),
    ({"media_dirs": ["."]}, "privacy.media_dirs[0]", "a folder below"),
    ({"media_dirs": ["../video"]}, "privacy.media_dirs[0]", "inside this directory"),
    ({"retention_days": 3}, "privacy.retention_days", "unknown field"),
])
def test_retention_settings_are_checked_with_errors_naming_the_field(privacy: dict, field: str,
                                                                     expected: str) -> None:
    data = {**make_store().config.model_dump(mode="json"), "entry_key": make_store().config.entry_key,
            "privacy": privacy}
    with pytest.raises(ConfigError) as error:
        _validate(StoreConfig, data, "store.yaml")
    assert error.value.field == field and expected in str(error.value)


# ------------------------------------------------------------------------------ audit log


def test_every_privacy_operation_is_in_the_audit_log_and_the_chain_verifies(tmp_path: Path) -> None:
    runtime, session, _ = shopping(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    privacy = office(runtime)
    privacy.give("c-0001", ["analytics"], method="app", by="alice")
    privacy.export("c-0001", by="bob")
    privacy.withdraw("c-0001", ["analytics"], method="gate_screen", by="alice")
    privacy.erase("c-0001", by="carol")
    privacy.purge(by="retention-job")
    assert audit_ops(runtime) == [("consent_given", "c-0001", "camera:entry-1"), ("consent_given", "c-0001", "alice"),
                                  ("export", "c-0001", "bob"), ("consent_withdrawn", "c-0001", "alice"),
                                  ("erasure", "c-0001", "carol"), ("purge", None, "retention-job")]
    check = verify_audit(runtime.db)
    assert (check.ok, check.rows, check.broken_at) == (True, 6, None)
    with runtime.db.transaction() as tx:
        assert check.head == tx.scalars(select(PrivacyAuditRow.sha256).where(PrivacyAuditRow.seq == 6)).one()


@pytest.mark.parametrize(("tamper", "broken_at", "problem"), [
    ("UPDATE privacy_audit SET actor = 'mallory' WHERE seq = 2", 2, "edited"),
    ("UPDATE privacy_audit SET t = t + 1 WHERE seq = 3", 3, "edited"),
    ("UPDATE privacy_audit SET detail = '{}' WHERE seq = 2", 2, "edited"),
    # Whoever edits a row and recomputes its hash breaks the link of the next one.
    ("UPDATE privacy_audit SET sha256 = '" + "a" * 64 + "' WHERE seq = 2", 2, "edited"),
    ("DELETE FROM privacy_audit WHERE seq = 2", 2, "missing"),
])
def test_tampering_with_the_audit_log_is_detected(tmp_path: Path, tamper: str, broken_at: int, problem: str) -> None:
    runtime = open_runtime(tmp_path)
    for n in range(4):
        office(runtime).give(f"c-{n}", ["analytics"], method="app", by="alice", t=T0 + n)
    assert verify_audit(runtime.db).ok
    with runtime.db.engine.begin() as connection:
        connection.execute(text(tamper))
    check = verify_audit(runtime.db)
    assert (check.ok, check.broken_at) == (False, broken_at) and problem in check.problem


def test_a_row_edited_with_its_hash_recomputed_breaks_the_next_link(tmp_path: Path) -> None:
    from store_runtime.privacy import _row_hash

    runtime = open_runtime(tmp_path)
    for n in range(3):
        office(runtime).give(f"c-{n}", ["analytics"], method="app", by="alice", t=T0 + n)
    with runtime.db.transaction() as tx:
        row = tx.get(PrivacyAuditRow, 2)
        row.actor = "mallory"
        row.sha256 = _row_hash(row.seq, row.t, row.actor, row.op, row.customer, row.detail, row.prev_sha256)
    check = verify_audit(runtime.db)
    assert (check.ok, check.broken_at) == (False, 3) and "prev_sha256" in check.problem


# ------------------------------------------------------------------------------ record of processing


def test_the_record_of_processing_documents_every_table_and_the_running_retention(tmp_path: Path) -> None:
    # A table added without saying what it holds and how long would make the record lie.
    assert set(TABLE_CATEGORIES) == set(Base.metadata.tables)
    store = make_store(tmp_path)
    config = StoreConfig.model_validate({**store.config.model_dump(mode="json"), "entry_key": store.config.entry_key,
                                         "privacy": {"video_days": 7, "controller": "Flash SAS, dpo@flash.example"}})
    record = processing_record(type(store)(config=config, catalog=store.catalog, root=tmp_path))
    assert record["retention"]["video_days"] == 7 and record["controller"]["name_and_contact"].startswith("Flash")
    assert [p["purpose"] for p in record["purposes"]] == ["checkout", "review_clips", "analytics"]
    assert not any("UNDOCUMENTED" in c["category"] for c in record["categories"])
    video = [c for c in record["categories"] if "video" in c["category"]]
    assert video[0]["retention"].startswith("7 days")
    sessions = next(c for c in record["categories"] if c["where"] == "database table sessions")
    assert "stopped_t" in sessions["fields"]  # the fields are read from the tables themselves
    assert any(r.startswith("role operator") for r in record["recipients"])
    text_ = record_text(record)
    assert "# GDPR article 30(1)" in text_ and "Flash SAS" in text_ and "7 days" in text_


# ------------------------------------------------------------------------------ schema


def test_a_database_of_the_first_schema_upgrades_with_its_sessions_intact(tmp_path: Path) -> None:
    from alembic import command

    from store_runtime.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("INSERT INTO sessions (id, customer, jti, gate, party, entered_t, state, version) "
                                "VALUES ('s_old', 'c-9', 'j', 'entry-1', 1, 1.0, 'charged', 0)"))
    engine.dispose()
    db = open_database(url)
    with db.transaction() as tx:
        row = tx.get(SessionRow, "s_old")
        assert (row.customer, row.stopped_t, row.detached_t) == ("c-9", None, None)
        assert tx.scalar(select(func.count()).select_from(ConsentRow)) == 0


# ------------------------------------------------------------------------------ PostgreSQL


def test_on_postgresql_concurrent_operations_keep_one_audit_chain(postgres_url: str, tmp_path: Path) -> None:
    # READ COMMITTED lets two writers read the same newest row; the advisory lock makes them take
    # turns, so the chain never forks (the unique prev_sha256 would refuse the second instead).
    from concurrent.futures import ThreadPoolExecutor

    runtime = open_runtime(tmp_path, db=open_database(postgres_url))
    try:
        privacy = office(runtime)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: privacy.give(f"c-{n}", ["analytics"], method="app", by="alice", t=T0 + n),
                          range(24)))
        check = verify_audit(runtime.db)
        assert (check.ok, check.rows) == (True, 24)
        # Erasure mid-session on PostgreSQL too: the receipt kept, the tracking gone.
        for event in (entry_read(code(), T0 + 30), entered(1, T0 + 31), shelf(1, "pick", MILK, T0 + 32)):
            runtime.apply(event)
        runtime.clock.t = T0 + 40
        answer = privacy.erase("c-0001", by="alice")
        [session] = answer["sessions_closed"]
        assert runtime.receipt(session).total_cents == 120 and count(runtime, TrackRow) == 0
        assert verify_audit(runtime.db).ok
    finally:
        runtime.db.close()
