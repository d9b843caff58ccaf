"""Settings of `walkout serve`, and the store they serve.

Every setting comes from the command line or an environment variable (`WALKOUT_STORE`,
`WALKOUT_DB`, `WALKOUT_ENV`, `WALKOUT_ENTRY_KEY`, `WALKOUT_MAX_BODY_BYTES`, `WALKOUT_METRICS_PUBLIC`)
and is checked by pydantic; a wrong one is a `SettingsError` that names the setting, its variable
and what was expected, and never echoes a secret.

Outside development the entry key (SPEC section 4) is a secret that must not sit in a file next to
the layout: in production a store.yaml that holds an `entry_key` is refused, and the key comes from
`WALKOUT_ENTRY_KEY` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from store_runtime.config import Store, load_store
from store_runtime.db import DEFAULT_URL

__all__ = ["ENV_VARS", "ApiSettings", "SettingsError", "load_store_for"]

# Setting -> the environment variable it is read from.
ENV_VARS: Mapping[str, str] = {
    "store": "WALKOUT_STORE",
    "db_url": "WALKOUT_DB",
    "environment": "WALKOUT_ENV",
    "entry_key": "WALKOUT_ENTRY_KEY",
    "max_body_bytes": "WALKOUT_MAX_BODY_BYTES",
    "metrics_public": "WALKOUT_METRICS_PUBLIC",
}
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")


class SettingsError(ValueError):
    """A setting of `walkout serve` is wrong: which one, where it comes from, what was expected."""


class ApiSettings(BaseModel):
    """How `walkout serve` runs. `ApiSettings.from_env(...)` reads the environment as well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Path = Field(description="store.yaml of the store served (its catalog.csv beside it).")
    db_url: str = Field(default=DEFAULT_URL, min_length=1, max_length=2000,
                        description="sqlite:///PATH (default: walkout.db in the working folder) or postgresql://...")
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses an entry_key in store.yaml and requires WALKOUT_ENTRY_KEY.")
    entry_key: SecretStr | None = Field(
        default=None, description="64 hex characters: the store's entry-code key; overrides store.yaml's.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024,
                                description="A request body larger than this is refused with 413.")
    metrics_public: bool = Field(default=False,
                                 description="Serve /metrics without a credential (else an operator's is needed).")

    @field_validator("entry_key")
    @classmethod
    def _hex_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _HEX64.fullmatch(value.get_secret_value()):
            n = len(value.get_secret_value())
            # Say what is wrong with it without quoting it: it is a secret.
            raise ValueError(f"expected 64 hex characters (a 32-byte key), got {n} characters"
                             + (", not all hex" if n == 64 else ""))
        return value

    @model_validator(mode="after")
    def _production_key(self) -> ApiSettings:
        if self.environment == "production" and self.entry_key is None:
            raise ValueError("production needs the entry key from WALKOUT_ENTRY_KEY (64 hex characters)")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: Any) -> ApiSettings:
        """Settings from `given` (the command line; None values are left out), then `environ`
        (default: os.environ), then the defaults. Raises SettingsError."""
        environ = os.environ if environ is None else environ
        values = {name: environ[var] for name, var in ENV_VARS.items() if environ.get(var, "") != ""}
        values.update({name: value for name, value in given.items() if value is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise SettingsError(_describe(e)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for err in error.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in err["loc"])
        what = "missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
        problems.append(f"setting {name} ({ENV_VARS[name]}): {what}" if name in ENV_VARS else f"settings: {what}")
    return "; ".join(problems)


def load_store_for(settings: ApiSettings) -> Store:
    """The store `settings` name, with its entry key where the environment says it comes from:
    store.yaml's in development, WALKOUT_ENTRY_KEY's when it is set (in production it must be, and
    store.yaml must hold none).

    Raises ConfigError naming the file and field, as `load_store` does.
    """
    if settings.entry_key is None:
        return load_store(settings.store)
    production = settings.environment == "production"
    return load_store(settings.store, entry_key=settings.entry_key.get_secret_value(),
                      key_source="WALKOUT_ENTRY_KEY in production" if production else None)
