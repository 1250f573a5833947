"""Lone surrogates in CRM text (a JSON API's "\\ud800", bytes kept by surrogateescape) are
replaced by U+FFFD at load, with one warning naming the rows, instead of reaching every
encoder down the line (Arrow, JSON, the chat APIs) and stopping delivery."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from crm_exports import HISTORY, MANAGERS

from crm.load import build
from crm.readers import RawTable
from crm.source_config import SourceConfig

DEALS_JSON = json.dumps([
    {"deal_id": "d1", "manager_id": "m1", "stage": "КП", "status": "open",
     "created_at": "2026-03-02 10:00", "amount": 1000, "loss_reason": None},
    {"deal_id": "d2", "manager_id": "m2", "stage": "КП\ud800", "status": "lost",
     "created_at": "2026-03-03 11:30", "amount": 2500, "loss_reason": "Дорого \udcff"},
    {"deal_id": "d3", "manager_id": "m1", "stage": "Квалификация", "status": "won",
     "created_at": "2026-03-04 09:15", "amount": 10, "loss_reason": "pair \ud83d\ude00"},
])


def _csv(text: str) -> RawTable:
    return RawTable(pd.read_csv(io.StringIO(text), dtype=str), "x.csv")


def _all_encodable(frame: pd.DataFrame) -> bool:
    for col in frame.columns:
        for v in frame[col]:
            if isinstance(v, str):
                v.encode("utf-8")  # raises on a surrogate
    return True


def test_json_api_surrogates_are_replaced_and_warned_with_rows() -> None:
    deals = pd.DataFrame(json.loads(DEALS_JSON), dtype=object)
    assert "\ud800" in deals.loc[1, "stage"]  # json.loads really returns a lone surrogate
    deals.loc[2, "loss_reason"] = "pair \ud83d" + "\ude00"  # a pair split into two code points
    raws = {"managers": _csv(MANAGERS), "stage_history": _csv(HISTORY),
            "deals": RawTable(deals, "deals from the API", row_offset=1, row_kind="record", text=False)}
    result = build(raws, SourceConfig(path="."), timezone="UTC")
    got = result.data.deals.set_index("deal_id")
    assert got.loc["d2", "stage"] == "КП\ufffd"
    assert got.loc["d2", "loss_reason"] == "Дорого \ufffd"
    assert got.loc["d3", "loss_reason"] == "pair \U0001f600"  # a split pair is joined, not replaced
    assert _all_encodable(result.data.deals) and _all_encodable(result.data.stage_history)
    notes = [w for w in result.warnings if w.code == "unencodable_text"]
    assert len(notes) == 1, result.warnings
    note = notes[0]
    assert note.table == "deals" and note.count == 2
    assert note.examples == ["record 2", "record 3"]  # 0-based labels 1 and 2, records counted from 1
    assert "'stage'" in str(note) and "'stage'" in str(note) and "'loss_reason'" in str(note)


def test_surrogateescape_csv_is_cleaned_like_any_source() -> None:
    raw_bytes = ("deal_id,manager_id,stage,status,created_at\n"
                 "d1,m1,КП,open,2026-03-02 10:00\n").encode() + b"d2,m2,\xff\xfe,open,2026-03-03 10:00\n"
    frame = pd.read_csv(io.BytesIO(raw_bytes), dtype=object, encoding="utf-8",
                        encoding_errors="surrogateescape")
    frame = frame.astype(object)
    assert any("\udcff" in str(v) for v in frame["stage"])
    raws = {"managers": _csv(MANAGERS), "stage_history": _csv(HISTORY), "deals": RawTable(frame, "deals.csv")}
    result = build(raws, SourceConfig(path="."), timezone="UTC")
    assert list(result.data.deals["stage"]) == ["КП", "\ufffd\ufffd"]
    note = next(w for w in result.warnings if w.code == "unencodable_text")
    assert note.examples == ["row 3"]


@pytest.mark.parametrize("clean", [["a", None, 3.0], ["КП", "Квалификация"]])
def test_clean_columns_are_left_alone(clean: list) -> None:
    from crm.normalize import _replace_unencodable

    series = pd.Series(clean, dtype=object)
    out, bad = _replace_unencodable(series)
    assert bad is None and out is series
