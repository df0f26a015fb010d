"""Shared fixtures; helper scenarios live in :mod:`eqglb.testing`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: CI machines are shared and timing is not what these tests check
settings.register_profile("eqglb", deadline=None)
settings.load_profile("eqglb")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared material beside the checkout; missing is a failure, not a skip."""
    if not (SHARED / "data" / "egl-2022").is_dir():
        pytest.fail(
            f"shared data folder {SHARED / 'data' / 'egl-2022'} is missing: tests that "
            "reproduce real results need ../shared beside the checkout"
        )
    return SHARED
