"""Shared fixtures: the real public data beside the repository (paths in paths.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see ../shared/data/README.md)")
    return SHARED_DATA
