"""Where the tests' inputs are: the repository, its sample scenarios and the real public data beside it.

A module of its own, not conftest.py: test folders have conftest files of their own, and
`from conftest import ...` would find whichever of them was imported first.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "sample_videos"


def sample_dirs() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if (p / "scenario.yaml").is_file()) if SAMPLES.is_dir() else []
