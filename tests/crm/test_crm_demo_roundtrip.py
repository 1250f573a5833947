"""The canonical CSV format, by example: the demo company exported and read back is the same."""
from __future__ import annotations

import pandas as pd
import pytest

from crm.demo import export_csv, generate_demo
from crm.load import load_folder


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


def test_demo_export_loads_back_identically(demo, tmp_path):
    export_csv(demo.data, tmp_path)
    result = load_folder(tmp_path, timezone="Asia/Almaty", now=demo.now)
    assert result.warnings == []
    assert result.data.stages == demo.data.stages
    assert not result.data.stage_history_derived
    assert result.data.table_names() == demo.data.table_names()
    for table in demo.data.table_names():
        expected = demo.data.table(table).reset_index(drop=True)
        pd.testing.assert_frame_equal(result.data.table(table), expected, obj=table)
