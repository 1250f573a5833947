"""Fixtures for the data-layer tests; the exports themselves live in crm_exports.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from crm_exports import DEALS, HISTORY, MANAGERS, write


@pytest.fixture
def company(tmp_path: Path) -> Path:
    """A valid canonical folder: two managers, three deals, real stage history."""
    return write(tmp_path / "export", {
        "managers.csv": MANAGERS, "deals.csv": DEALS, "stage_history.csv": HISTORY,
    })
