"""Fixtures for the maturity tests (helpers live in maturity_helpers.py)."""
from __future__ import annotations

import pytest
from maturity_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"
