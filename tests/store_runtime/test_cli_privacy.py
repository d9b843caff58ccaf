"""`walkout privacy record | verify-audit | purge` as an operator meets them: the record from the
store's own config, a tampered audit log named by its row with exit 2, a purge on a real folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from paths import sample_dirs
from sqlalchemy import text

from store_runtime.cli import main
from store_runtime.db import open_database
from store_runtime.privacy import append_audit

SAMPLE = sample_dirs()[0]


def store_copy(tmp_path: Path, privacy: str = "") -> Path:
    root = tmp_path / "store"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("cameras", "faces", "truth.json"))
    if privacy:
        store = root / "store.yaml"
        store.write_text(store.read_text() + "privacy:\n" + privacy)
    return root / "store.yaml"


def test_record_is_generated_from_the_running_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_copy(tmp_path, '  video_days: 5\n  controller: "Flash SAS, privacy@flash.example"\n')
    assert main(["privacy", "record", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# GDPR article 30(1)") and "Flash SAS" in out and "5 days (privacy.video_days" in out
    assert main(["privacy", "record", "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retention"]["video_days"] == 5


def test_a_retention_beyond_30_days_is_one_line_naming_the_field(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store = store_copy(tmp_path, "  video_days: 45\n")
    assert main(["privacy", "record", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "store.yaml: privacy.video_days: expected a whole number of days from 1 to 30" in err
    assert "Traceback" not in err


def test_verify_audit_names_the_first_broken_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = open_database(url)
    with db.transaction() as tx:
        for n in range(3):
            append_audit(tx, t=float(n), actor="alice", op="export", customer=f"c-{n}", detail={"counts": {}})
    assert main(["privacy", "verify-audit", "--db", url]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 3
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE privacy_audit SET customer = 'c-9' WHERE seq = 2"))
    db.close()
    assert main(["privacy", "verify-audit", "--db", url]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["broken_at"] == 2
    assert "audit log is broken at row 2" in captured.err


def test_purge_deletes_old_private_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_copy(tmp_path)
    old, new = store.parent / "private" / "old.mp4", store.parent / "private" / "new.mp4"
    old.parent.mkdir()
    for path, age_days in ((old, 4), (new, 1)):
        path.write_bytes(b"x")
        t = time.time() - age_days * 86_400
        os.utime(path, (t, t))
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(["privacy", "purge", "--store", str(store), "--db", url]) == 0
    assert json.loads(capsys.readouterr().out)["video_files"] == 1
    assert not old.exists() and new.exists()
    assert main(["privacy", "verify-audit", "--db", url]) == 0  # the purge is in the log
    assert json.loads(capsys.readouterr().out)["rows"] == 1
