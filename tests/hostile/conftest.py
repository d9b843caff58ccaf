"""The drills reuse the store tests' factories (store_fakes.py, api/api_fakes.py, nats_server.py):
their folder goes on the import path here, since running tests/hostile alone does not collect it."""

from __future__ import annotations

import sys
from pathlib import Path

STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store_runtime")
if STORE_TESTS not in sys.path:
    sys.path.insert(0, STORE_TESTS)
