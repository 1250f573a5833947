"""Date-only close dates and stage entries (Bitrix24's «Дата завершения» 25.03.2026, HubSpot's
and Pipedrive's close date without a time): "that day", never "before the deal was created".
Exports of our own making, loaded as an admin loads them."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
from crm_exports import MANAGERS, write

from crm.freshness import freshness
from crm.load import load_folder

TZ = "Asia/Almaty"
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=timezone.utc)  # 17:00 in Almaty


def _local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def _codes(result):
    return {w.code: w for w in result.warnings}


def _by_id(frame: pd.DataFrame, col: str) -> dict:
    return dict(zip(frame["deal_id"], frame[col]))


def test_a_date_only_close_on_the_day_of_creation_is_that_day_not_before_it(tmp_path):
    """A deal created at 14:00 and closed "25.03.2026" closed that day: it used to close at
    midnight, 14 hours before it was created (4.8% of a Bitrix24 export), with no warning. Now it
    closes no earlier than the last thing the data says happened that day (its creation, a stage
    it entered), never later, so a close today is no future record and the data's age is true."""
    deals = ("deal_id,manager_id,stage,status,created_at,closed_at\n"
             "d1,m1,КП,won,25.03.2026 14:00,25.03.2026\n"
             "d2,m2,КП,lost,2026-03-25 09:30,2026-03-25\n"
             "d3,m1,КП,won,20.03.2026 10:00,24.03.2026\n")
    history = ("deal_id,stage,entered_at\n"
               "d1,КП,25.03.2026 14:00\n"
               "d2,Квалификация,25.03.2026 09:30\nd2,КП,25.03.2026 16:20\n"
               "d3,КП,20.03.2026 10:00\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": history})
    result = load_folder(folder, timezone=TZ, now=NOW)
    closed, created = _by_id(result.data.deals, "closed_at"), _by_id(result.data.deals, "created_at")
    assert closed["d1"] == created["d1"] == _local("2026-03-25 14:00")
    assert closed["d2"] == _local("2026-03-25 16:20")  # after the stage it entered that day
    assert closed["d3"] == _local("2026-03-24")  # another day: the date as written
    assert (result.data.deals["closed_at"] >= result.data.deals["created_at"]).all()
    codes = _codes(result)
    assert "closed_before_created" not in codes and "future_dates" not in codes, result.warnings
    fresh = freshness(result.data, NOW)
    assert fresh.newest == _local("2026-03-25 16:20") and fresh.age.total_seconds() > 0
    assert not [c for c in result.data.deals.columns if c.startswith("__")]  # the loader's marks stay inside


def test_a_close_on_an_earlier_day_than_creation_is_one_warning_with_file_row_and_values(tmp_path):
    """Genuinely inconsistent rows are told once, with how many, where and what, and how to fix;
    and no detector sees a negative time to close (read as closed when created)."""
    deals = ("deal_id,manager_id,stage,status,created_at,closed_at\n"
             "d1,m1,КП,won,25.03.2026 14:00,25.03.2026\n"
             "d2,m2,КП,lost,25.03.2026 09:30,23.03.2026\n"
             "d3,m1,КП,won,24.03.2026 10:00,21.03.2026 18:00\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    result = load_folder(folder, timezone=TZ, now=NOW)
    warn = _codes(result)["closed_before_created"]
    assert warn.count == 2 and warn.table == "deals"
    text = str(warn)
    assert "deals.csv row 3: deal d2 created 25.03.2026 09:30, closed 23.03.2026" in text, text
    assert "deals.csv row 4: deal d3 created 24.03.2026 10:00, closed 21.03.2026 18:00" in text, text
    assert "correct closed_at or created_at in the CRM" in text
    deals_out = result.data.deals
    assert (deals_out["closed_at"] >= deals_out["created_at"]).all()
    assert _by_id(deals_out, "closed_at")["d2"] == _local("2026-03-25 09:30")


def test_a_stage_entered_days_before_creation_is_warned_a_date_only_entry_that_day_is_not(tmp_path):
    """A stage history written as dates beside a timed created_at: the first entry "25.03.2026"
    is the creation day, not 14 hours before it. An entry three days before the deal existed is
    an import's created_at: warned, and the creation moves back to the first entry."""
    deals = ("deal_id,manager_id,stage,status,created_at\n"
             "d1,m1,КП,open,25.03.2026 14:00\n"
             "d2,m2,КП,open,25.03.2026 09:30\n")
    history = ("deal_id,stage,entered_at\n"
               "d1,Квалификация,25.03.2026\nd1,КП,25.03.2026 15:00\n"
               "d2,Квалификация,22.03.2026 11:00\nd2,КП,24.03.2026\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": history})
    result = load_folder(folder, timezone=TZ, now=NOW)
    warn = _codes(result)["entered_before_created"]
    assert warn.count == 2 and warn.table == "stage_history"
    assert ("stage_history.csv row 4: deal d2 entered 'Квалификация' 22.03.2026 11:00, created "
            "25.03.2026 09:30 (deals.csv row 3)") in str(warn), str(warn)
    data = result.data
    created = _by_id(data.deals, "created_at")
    assert created["d1"] == _local("2026-03-25 14:00") and created["d2"] == _local("2026-03-22 11:00")
    first = data.stage_history.groupby("deal_id")["entered_at"].min()
    assert first["d1"] == _local("2026-03-25 14:00")
    h = data.stage_history.merge(data.deals[["deal_id", "created_at"]], on="deal_id")
    assert (h["entered_at"] >= h["created_at"]).all()


def test_an_excel_date_column_is_date_only_too(tmp_path):
    """Pipedrive's and amoCRM's .xlsx write a close date as a date cell (a datetime at 00:00)."""
    from datetime import date

    folder = write(tmp_path, {"managers.csv": MANAGERS})
    pd.DataFrame({
        "deal_id": ["d1", "d2"], "manager_id": ["m1", "m2"], "stage": ["КП", "КП"], "status": ["won", "lost"],
        "created_at": [pd.Timestamp("2026-03-25 14:00"), pd.Timestamp("2026-03-20 10:00")],
        "closed_at": [date(2026, 3, 25), date(2026, 3, 24)],
    }).to_excel(folder / "deals.xlsx", index=False)
    result = load_folder(folder, timezone=TZ, now=NOW)
    closed = _by_id(result.data.deals, "closed_at")
    assert closed["d1"] == _local("2026-03-25 14:00") and closed["d2"] == _local("2026-03-24")
    assert "closed_before_created" not in _codes(result)


def test_a_creation_moved_back_to_its_first_stage_is_what_the_close_is_checked_against(tmp_path):
    """An import rewrote d1's created_at to 25.03 although it entered its first stage on 20.03
    and was won on 22.03: the creation moves back to the first entry (one warning), so the close
    is after it and not also told as "closed before created"; d2, closed before any record of
    it, is. The stage check and the close check share the mended creation."""
    deals = ("deal_id,manager_id,stage,status,created_at,closed_at\n"
             "d1,m1,КП,won,25.03.2026 09:00,22.03.2026 12:00\n"
             "d2,m2,КП,lost,24.03.2026 10:00,21.03.2026 18:00\n")
    history = ("deal_id,stage,entered_at\n"
               "d1,Квалификация,20.03.2026 10:00\nd1,КП,21.03.2026 11:00\n"
               "d2,КП,24.03.2026 10:00\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": history})
    result = load_folder(folder, timezone=TZ, now=NOW)
    codes = _codes(result)
    assert codes["entered_before_created"].count == 2  # d1's two entries before 25.03
    closed_early = codes["closed_before_created"]
    assert closed_early.count == 1 and "deal d2 created 24.03.2026 10:00, closed 21.03.2026 18:00" in str(closed_early)
    created, closed = _by_id(result.data.deals, "created_at"), _by_id(result.data.deals, "closed_at")
    assert created["d1"] == _local("2026-03-20 10:00") and closed["d1"] == _local("2026-03-22 12:00")
    assert closed["d2"] == created["d2"] == _local("2026-03-24 10:00")
