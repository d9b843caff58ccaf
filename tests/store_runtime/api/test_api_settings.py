"""Settings of `walkout serve`: read from the environment, checked with errors that name the setting
and its variable, and an entry key that in production comes from WALKOUT_ENTRY_KEY only."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.api_fakes import STORE_DIR, STORE_YAML
from store_runtime.api import create_app, open_runtime
from store_runtime.api.settings import ApiSettings, SettingsError, load_store_for
from store_runtime.config import ConfigError
from store_runtime.db import add_credential
from vision.entry_code import EntryClaims, make_code

PROD_KEY = "ab" * 32
FILE_KEY = re.search(r"entry_key: (\w+)", STORE_YAML.read_text()).group(1)  # type: ignore[union-attr]


def keyless_store(tmp_path: Path) -> Path:
    """A copy of the sample store whose store.yaml holds no entry_key, as a production one."""
    folder = tmp_path / "store"
    shutil.copytree(STORE_DIR, folder, ignore=shutil.ignore_patterns("cameras", "faces", "truth.json"))
    path = folder / "store.yaml"
    path.write_text(re.sub(r"(?m)^entry_key:.*\n", "", path.read_text()))
    return path


def test_settings_come_from_the_environment_and_the_command_line_wins() -> None:
    env = {"WALKOUT_STORE": "/env/store.yaml", "WALKOUT_DB": "sqlite:///env.db", "WALKOUT_MAX_BODY_BYTES": "2048",
           "WALKOUT_METRICS_PUBLIC": "true"}
    s = ApiSettings.from_env(env, db_url="sqlite:///cli.db", store=None)
    assert (s.store, s.db_url, s.max_body_bytes, s.metrics_public) == (Path("/env/store.yaml"), "sqlite:///cli.db",
                                                                      2048, True)
    assert s.environment == "development" and s.entry_key is None


@pytest.mark.parametrize(("env", "words"), [
    ({}, ["store", "WALKOUT_STORE", "missing"]),
    ({"WALKOUT_STORE": "s.yaml", "WALKOUT_ENV": "staging"}, ["WALKOUT_ENV", "development", "production"]),
    ({"WALKOUT_STORE": "s.yaml", "WALKOUT_ENV": "production"}, ["production", "WALKOUT_ENTRY_KEY"]),
    ({"WALKOUT_STORE": "s.yaml", "WALKOUT_MAX_BODY_BYTES": "lots"}, ["WALKOUT_MAX_BODY_BYTES", "integer"]),
    ({"WALKOUT_STORE": "s.yaml", "WALKOUT_MAX_BODY_BYTES": "10"}, ["WALKOUT_MAX_BODY_BYTES", "1024"]),
])
def test_a_wrong_setting_is_named_with_its_variable(env: dict[str, str], words: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        ApiSettings.from_env(env)
    assert all(w in str(caught.value) for w in words), str(caught.value)


@pytest.mark.parametrize("key", ["c0ffee" * 11, "g" * 64, "1234"])
def test_a_bad_entry_key_is_described_never_echoed(key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ApiSettings.from_env({"WALKOUT_STORE": "s.yaml", "WALKOUT_ENTRY_KEY": key})
    assert "WALKOUT_ENTRY_KEY" in str(caught.value) and key not in str(caught.value)
    assert key not in repr(ApiSettings(store=Path("s"), entry_key="ab" * 32))  # SecretStr: never in a repr


def test_production_refuses_a_store_yaml_that_holds_the_key() -> None:
    settings = ApiSettings.from_env({"WALKOUT_ENV": "production", "WALKOUT_ENTRY_KEY": PROD_KEY}, store=STORE_YAML)
    with pytest.raises(ConfigError) as caught:
        load_store_for(settings)
    assert caught.value.file == str(STORE_YAML) and caught.value.field == "entry_key"
    assert "WALKOUT_ENTRY_KEY" in str(caught.value) and FILE_KEY not in str(caught.value)


def test_production_takes_the_key_from_the_environment(tmp_path: Path) -> None:
    settings = ApiSettings.from_env({"WALKOUT_ENV": "production", "WALKOUT_ENTRY_KEY": PROD_KEY},
                                    store=keyless_store(tmp_path), db_url=f"sqlite:///{tmp_path / 'w.db'}")
    runtime = open_runtime(settings)
    try:
        assert runtime.store.config.entry_key_bytes == bytes.fromhex(PROD_KEY)
        gate = add_credential(runtime.db, "gate", "entry-1")
        sid, exp = runtime.store.config.store_id, int(time.time()) + 600
        with TestClient(create_app(settings, runtime=runtime)) as client:
            def enter(key: str, jti: str) -> int:
                code = make_code(bytes.fromhex(key), EntryClaims("c-1", jti, sid, exp, 1))
                return client.post("/v1/entries", json={"gate": "entry-1", "code": code},
                                   headers={"Authorization": f"Bearer {gate}"}).status_code

            assert enter(PROD_KEY, "j-prod") == 201
            assert enter(FILE_KEY, "j-file") == 401  # the test store's key opens nothing here
    finally:
        runtime.db.close()


def test_development_without_a_key_anywhere_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_store_for(ApiSettings(store=keyless_store(tmp_path)))
    assert caught.value.field == "entry_key"


def test_development_lets_the_environment_override_the_files_key() -> None:
    store = load_store_for(ApiSettings.from_env({"WALKOUT_ENTRY_KEY": PROD_KEY}, store=STORE_YAML))
    assert store.config.entry_key == PROD_KEY and len(store.catalog) > 0


def test_an_app_without_a_runtime_opens_its_own_when_it_starts(tmp_path: Path) -> None:
    settings = ApiSettings(store=STORE_YAML, db_url=f"sqlite:///{tmp_path / 'w.db'}")
    app = create_app(settings)  # nothing opened yet: no database file
    assert not (tmp_path / "w.db").exists()
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
    assert (tmp_path / "w.db").exists()
