"""The `walkout` command as a user meets it: right answers, and for mistakes one clear line and exit 2,
never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from paths import sample_dirs

from store_runtime.cli import main
from store_runtime.config import load_store
from vision.entry_code import verify_code

SAMPLE = sample_dirs()[0]


def test_check_accepts_a_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(SAMPLE)]) == 0
    assert ": ok" in capsys.readouterr().out


def test_check_names_the_file_and_field_of_a_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "s"
    shutil.copytree(SAMPLE, broken)
    store = broken / "store.yaml"
    store.write_text(store.read_text().replace("currency:", "curency:"))
    assert main(["check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "store.yaml" in err and "curency" in err and "Traceback" not in err


def test_entry_code_makes_a_code_the_store_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["entry-code", "--store", str(SAMPLE / "store.yaml"), "--customer", "c-0042",
                 "--expires", "1900000000", "--party", "2"]) == 0
    code = capsys.readouterr().out.strip()
    store = load_store(SAMPLE / "store.yaml").config
    verdict = verify_code(code, key=store.entry_key_bytes, store_id=store.store_id, now=1800000000.0)
    assert verdict.ok and (verdict.claims.cid, verdict.claims.party) == ("c-0042", 2)


def test_score_of_an_empty_output_is_zero_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(SAMPLE), "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["receipt_accuracy"], metrics["event_f1"], metrics["face_recall"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("argv, message", [
    (["synth", "/tmp/x", "--kind", "nope"], "unknown scenario kind"),
    (["synth", "/tmp/x", "--preset", "nope"], "unknown randomisation preset"),
    (["synth"], "give an output directory"),
    (["check", "/nonexistent/scenario"], "scenario.yaml"),
])
def test_mistakes_get_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
