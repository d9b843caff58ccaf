"""The runtime's database: URLs, SQLite durability settings, migrations, transactions, credentials,
and the same on a real PostgreSQL (conftest.py starts one, or WALKOUT_TEST_POSTGRES_URL names one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from store_fakes import MILK, T0, exited, inside, shelf

from store_runtime.db import (
    Base,
    CredentialRow,
    SessionRow,
    add_credential,
    alembic_config,
    check_credential,
    open_database,
)


def pragma(db, name: str):
    with db.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_file_is_set_up_for_money(tmp_path: Path) -> None:
    # WAL so readers never block the exit's writer; FULL so a committed charge survives a power
    # cut, not just a crash; foreign keys so a basket event cannot point at no session.
    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "synchronous") == 2  # FULL
    assert pragma(db, "foreign_keys") == 1


def test_default_url_is_a_sqlite_file_in_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = open_database()
    db.close()
    assert (tmp_path / "walkout.db").is_file()


def test_memory_database_is_one_database_for_every_thread() -> None:
    # SQLAlchemy's default pool would give each thread its own empty memory database.
    import threading

    db = open_database("sqlite://")
    add_credential(db, "gate", "gate-1")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(len(_names(db))))
    thread.start()
    thread.join()
    assert seen == [1]


def _names(db) -> list[str]:
    with db.transaction() as tx:
        return list(tx.scalars(select(CredentialRow.name)))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://u@h/db", "mysql://u@h/db"),  # a backend walkout does not run on
        ("not a url", "not a url"),
        ("sqlite+pysqlcipher:///x.db", "sqlite+pysqlcipher"),  # SQLite through a foreign driver
        ("sqlite:////no/such/folder/x.db", "/no/such/folder"),  # a typo in the folder, said before sqlite's own error
        ("postgresql+nosuchdriver://u:hunter2@h/db", "postgresql+nosuchdriver://u:***@h/db"),
    ],
)
def test_bad_url_is_a_value_error_naming_it(url: str, named: str) -> None:
    with pytest.raises(ValueError) as error:
        open_database(url)
    assert named in str(error.value)
    assert "hunter2" not in str(error.value)  # a password never reaches a log


def test_reopening_migrates_nothing_and_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    add_credential(open_database(url), "operator", "alice")
    again = open_database(url)
    assert _names(again) == ["alice"]
    with again.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["0005"]


def test_migrations_build_exactly_the_tables_of_the_models(tmp_path: Path) -> None:
    # A model changed without a new revision would pass every other test on a fresh database and
    # break every store upgraded from an older one.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_alembic_config_points_at_the_packaged_migrations() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == "0005"


def test_a_transaction_that_raises_writes_nothing(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.add(CredentialRow(name="bob", role="gate", token_sha256="0" * 64, created_t=0.0))
        tx.flush()
        raise RuntimeError("the request failed half way")
    assert _names(db) == []


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    from store_runtime.db import TrackRow

    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(IntegrityError), db.transaction() as tx:
        tx.add(TrackRow(camera="aisle", track=1, zone="entry-1", entered_t=0.0, session_id="s_nobody"))


# ------------------------------------------------------------------------------------ credentials


@pytest.mark.parametrize("role", ["gate", "node", "operator"])
def test_credential_is_shown_once_and_only_its_hash_kept(tmp_path: Path, role: str) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    token = add_credential(db, role, f"{role}-1")
    assert check_credential(db, token).role == role
    assert check_credential(db, token).name == f"{role}-1"
    raw = (tmp_path / "w.db").read_bytes() + (tmp_path / "w.db-wal").read_bytes()
    assert token.encode() not in raw  # a stolen database file gives no working credential


@pytest.mark.parametrize(
    ("role", "name", "why"),
    [
        ("admin", "x", "an unknown role would be a role with no rules"),
        ("gate", "", "a credential nobody can name cannot be revoked"),
        ("gate", "a\nb", "names go into logs"),
    ],
)
def test_bad_credential_requests_are_refused(tmp_path: Path, role: str, name: str, why: str) -> None:
    db = open_database("sqlite://")
    with pytest.raises(ValueError):
        add_credential(db, role, name)  # type: ignore[arg-type]


def test_credential_names_are_unique_and_unknown_tokens_are_nobody() -> None:
    db = open_database("sqlite://")
    add_credential(db, "gate", "gate-1")
    with pytest.raises(ValueError, match="already taken"):
        add_credential(db, "operator", "gate-1")  # else one name could hold two roles
    for token in ["", "wo_gate_guess", "x" * 10_000, None]:
        assert check_credential(db, token) is None  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ PostgreSQL


def test_postgresql_migrates_and_charges_once(postgres_url: str, tmp_path: Path) -> None:
    db = open_database(postgres_url)
    try:
        assert "sessions" in inspect(db.engine).get_table_names()
        token = add_credential(db, "gate", "gate-1")
        assert check_credential(db, token).role == "gate"
        runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), db=db)
        body = {"gate": "exit-1", "session": session}
        first = runtime.exit_request("exit-1", session, key="k-1", body=body)
        assert first[0] == 200
        assert runtime.exit_request("exit-1", session, key="k-1", body=body) == first
        runtime.apply(exited(1, T0 + 9))
        assert [row["op"] for row in runtime.provider.ledger()] == ["authorise", "capture"]
        with db.transaction() as tx:
            assert tx.get(SessionRow, session).state == "charged"
    finally:
        db.close()
