"""`walkout serve` and `walkout credentials add` as an installer runs them: a real uvicorn on a free
port of 127.0.0.1, called over HTTP, stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from api.api_fakes import STORE_YAML
from store_runtime.bench_load import free_port
from store_runtime.cli import main
from store_runtime.config import load_store
from vision.entry_code import EntryClaims, make_code

WALKOUT = [sys.executable, "-m", "store_runtime.cli"]


def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict | str]:
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def add_credential(db: str, role: str, name: str) -> str:
    done = subprocess.run([*WALKOUT, "credentials", "add", "--role", role, "--name", name, "--db", db],
                          capture_output=True, text=True, timeout=60, check=True)
    assert "only time" in done.stderr
    return done.stdout.strip()


def test_walkout_serve_answers_over_http_and_stops_cleanly(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'walkout.db'}"
    gate, operator = add_credential(db, "gate", "entry-1"), add_credential(db, "operator", "alice")
    assert gate.startswith("wo_gate_") and gate != operator
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen([*WALKOUT, "serve", "--store", str(STORE_YAML), "--db", db, "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = call("GET", f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "walkout serve did not answer within 60 s"
                time.sleep(0.2)
        assert status == 200 and health == {"status": "ok", "store": "walkout-synth-01"}

        store = load_store(STORE_YAML).config
        code = make_code(store.entry_key_bytes, EntryClaims("c-0777", "serve-jti", store.store_id,
                                                            int(time.time()) + 600, 1))
        status, entry = call("POST", f"{base}/v1/entries", {"gate": "entry-1", "code": code}, gate)
        assert status == 201 and entry["customer"] == "c-0777"
        assert call("POST", f"{base}/v1/entries", {"gate": "entry-1", "code": code})[0] == 401
        status, metrics = call("GET", f"{base}/metrics", token=operator)
        assert status == 200 and 'route="/v1/entries",status="201"' in metrics
        assert call("GET", f"{base}/openapi.json")[0] == 200
    finally:
        server.terminate()
        try:
            returncode = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    log.seek(0)
    text = log.read()
    # uvicorn shuts down, then dies of the signal it caught, as a Unix program should.
    assert returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in text, text
    assert gate not in text and code not in text  # secrets never reach the log
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line.get("route") == "/v1/entries" and line.get("status") == 201 and line.get("credential") == "entry-1"
               for line in lines), text


def test_credentials_add_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'walkout.db'}"
    assert main(["credentials", "add", "--role", "node", "--name", "aisle", "--db", db]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("wo_node_")
    assert main(["credentials", "add", "--role", "node", "--name", "aisle", "--db", db]) == 2
    err = capsys.readouterr().err
    assert "already taken" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["credentials", "add", "--role", "root", "--name", "x", "--db", db])


def test_serve_mistakes_are_one_line_before_any_port_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WALKOUT_STORE", raising=False)
    assert main(["serve"]) == 2
    assert "WALKOUT_STORE" in capsys.readouterr().err
    assert main(["serve", "--store", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    monkeypatch.setenv("WALKOUT_ENV", "production")
    monkeypatch.setenv("WALKOUT_ENTRY_KEY", "ab" * 32)
    assert main(["serve", "--store", str(STORE_YAML), "--db", f"sqlite:///{tmp_path / 'w.db'}"]) == 2
    assert "entry_key" in capsys.readouterr().err
    assert main(["serve", "--store", str(STORE_YAML), "--port", "70000"]) == 2
