"""One table from several files ([source.files] deals = "deals_*.csv", activities = ["calls.csv",
"tasks.csv"]): monthly exports that overlap at their edges, files that differ in columns or in
encoding, a pipeline per file; and the errors an admin gets when a pattern or a file is wrong."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from crm_exports import HISTORY, MANAGERS, write
from pydantic import ValidationError

from crm.errors import DataError
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig

HEAD = "deal_id,manager_id,stage,status,created_at,closed_at,amount\n"
JAN = HEAD + ("d1,m1,Квалификация,open,2026-01-05 10:00,,1000\n"
              "d2,m2,КП,won,2026-01-20 11:30,2026-01-30 12:00,2500\n"
              "d3,m1,КП,open,2026-01-31 09:15,,300\n")        # in February's file too, won there
FEB = HEAD + ("d3,m1,КП,won,2026-01-31 09:15,2026-02-10 16:00,300\n"
              "d4,m2,Квалификация,open,2026-02-03 10:00,,700\n"
              "d2,m2,КП,won,2026-01-20 11:30,2026-01-30 12:00,2500\n")  # the same as January's: no warning


def _load(folder: Path, **source) -> tuple[pd.DataFrame, list[str], object]:
    result = load_crm(SourceConfig(path=str(folder), **source))
    return result.data.deals.set_index("deal_id"), [str(w) for w in result.warnings], result.data


def test_monthly_exports_by_pattern_keep_each_deal_once_in_its_latest_state(tmp_path):
    folder = write(tmp_path / "exports [2026]", {"managers.csv": MANAGERS, "deals_2026-01.csv": JAN, "deals_2026-02.csv": FEB})
    deals, warnings, data = _load(folder, files={"deals": "deals_*.csv"})
    assert sorted(deals.index) == ["d1", "d2", "d3", "d4"]
    assert deals.loc["d3", "status"] == "won"  # February's version: it closed
    assert data.origins["deals"] == "deals_2026-01.csv, deals_2026-02.csv"
    differ = [w for w in warnings if "different content" in w]
    assert len(differ) == 1 and "1 deal_id value(s)" in differ[0] and "d3" in differ[0], warnings
    assert not any("more than once" in w for w in warnings), warnings  # d2's identical overlap is no news


def test_the_later_date_wins_whatever_the_file_order(tmp_path):
    """The rule is the row's content, not the file's place: January listed last still loses d3."""
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "a.csv": FEB, "b.csv": JAN})
    deals, _w, _d = _load(folder, files={"deals": ["a.csv", "b.csv"]})
    assert deals.loc["d3", "status"] == "won"


def test_equal_dates_take_the_later_file(tmp_path):
    """A changed amount with no date to tell which is newer: the file listed later."""
    jan = HEAD + "d1,m1,КП,open,2026-01-05 10:00,,1000\n"
    feb = HEAD + "d1,m1,КП,open,2026-01-05 10:00,,1500\n"
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals_1.csv": jan, "deals_2.csv": feb})
    assert _load(folder, files={"deals": "deals_*.csv"})[0].loc["d1", "amount"] == 1500
    assert _load(folder, files={"deals": ["deals_2.csv", "deals_1.csv"]})[0].loc["d1", "amount"] == 1000


def test_a_column_added_in_march_is_empty_before_and_said_once(tmp_path):
    jan = "ID,Owner,Stage,Status,Created\nd1,m1,КП,open,2026-01-05\nd2,m2,КП,open,2026-01-06\n"
    feb = "ID,Owner,Stage,Status,Created\nd3,m1,КП,open,2026-02-05\n"
    mar = "ID,Owner,Stage,Status,Created,Source\nd4,m1,КП,open,2026-03-05,Сайт\n"
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "d_01.csv": jan, "d_02.csv": feb, "d_03.csv": mar})
    columns = {"deal_id": "ID", "manager_id": "Owner", "stage": "Stage", "status": "Status",
               "created_at": "Created", "source": "Source"}
    deals, warnings, _d = _load(folder, files={"deals": "d_*.csv"}, columns={"deals": columns})
    assert deals.loc["d4", "source"] == "Сайт" and deals.loc[["d1", "d2", "d3"], "source"].isna().all()
    said = [w for w in warnings if "differ in columns" in w]
    assert len(said) == 1 and "d_01.csv, d_02.csv" in said[0] and "'Source'" in said[0], warnings
    # in no file at all: still the usual error, naming a file
    columns["loss_reason"] = "Why"
    with pytest.raises(DataError, match=r"d_01\.csv.*'Why'"):
        _load(folder, files={"deals": "d_*.csv"}, columns={"deals": columns})


def test_calls_and_tasks_with_their_own_columns_are_one_activities_table(tmp_path):
    """HubSpot exports calls and tasks separately; a calls export has no "Task Type": filled."""
    calls = "Record ID,Associated Deal,Activity date\nc1,d1,2026-03-05 10:00\nc2,d2,2026-03-06 11:00\n"
    tasks = "Record ID,Associated Deal,Activity date,Task Type\nt1,d1,2026-03-07 09:00,TODO\nt2,d3,2026-03-08 09:00,EMAIL\n"
    deals = HEAD + ("d1,m1,Квалификация,open,2026-03-02 10:00,,1\nd2,m2,КП,won,2026-03-03 11:30,2026-03-09 10:00,1\n"
                    "d3,m1,КП,open,2026-03-04 09:15,,1\n")
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": HISTORY,
                                    "calls.csv": calls, "tasks.csv": tasks})
    result = load_crm(SourceConfig(
        path=str(folder), files={"activities": ["calls.csv", "tasks.csv"]},
        columns={"activities": {"activity_id": "Record ID", "deal_id": "Associated Deal", "done_at": "Activity date",
                                "type": "Task Type"}},
        values={"activities": {"type": {"TODO": "task"}}}, fill={"activities": {"type": "call"}}))
    acts = result.data.activities.set_index("activity_id")
    assert acts["type"].to_dict() == {"c1": "call", "c2": "call", "t1": "task", "t2": "email"}
    assert result.data.origins["activities"] == "calls.csv, tasks.csv"


def test_a_pipeline_per_file_and_a_cp1251_file_among_utf8_ones(tmp_path):
    """Each file's encoding is its own: the Windows-1251 file's Cyrillic reads as in the UTF-8 one."""
    sales = HEAD + "d1,m1,Квалификация,open,2026-03-02 10:00,,1000\n"
    tenders = (HEAD + "t1,m2,Заявка подана,open,2026-03-03 10:00,,9000\n").encode("cp1251")
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "Продажи.csv": sales, "Тендеры.csv": tenders})
    deals, _w, data = _load(folder, files={"deals": ["Продажи.csv", "Тендеры.csv"]})
    assert deals["stage"].to_dict() == {"d1": "Квалификация", "t1": "Заявка подана"}
    assert data.origins["deals"] == "Продажи.csv, Тендеры.csv"


def test_an_error_names_the_file_and_row_it_is_in(tmp_path):
    bad = HEAD + "d5,m1,КП,open,2026-02-03 10:00,,700\nd6,m1,КП,open,not a date,,1\n"
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals_2026-01.csv": JAN, "deals_2026-02.csv": bad})
    with pytest.raises(DataError) as err:
        _load(folder, files={"deals": "deals_*.csv"})
    assert err.value.file == "deals_2026-02.csv" and err.value.row == 3, str(err.value)


def test_a_pattern_that_matches_nothing_is_named(tmp_path):
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals.csv": JAN})
    with pytest.raises(DataError, match=r"no file matches 'Deals_\*\.csv'.*Files found: deals\.csv, managers\.csv"):
        _load(folder, files={"deals": "Deals_*.csv"})


def test_a_date_format_and_values_apply_to_every_file(tmp_path):
    head = "deal_id,manager_id,stage,status,created_at\n"
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS,
                                    "deals_1.csv": head + "d1,m1,КП,Успешно,05-01-2026 10:00\n",
                                    "deals_2.csv": head + "d2,m2,КП,В работе,06-02-2026 11:00\n"})
    deals, _w, _d = _load(folder, files={"deals": "deals_*.csv"}, date_formats={"deals": "%d-%m-%Y %H:%M"},
                          values={"deals": {"status": {"Успешно": "won", "В работе": "open"}}})
    assert deals["status"].to_dict() == {"d1": "won", "d2": "open"}
    assert deals.loc["d2", "created_at"] == pd.Timestamp("2026-02-06 11:00", tz="UTC")


def test_history_rows_in_two_files_are_kept_once(tmp_path):
    first, second = HISTORY.splitlines()[:4], [HISTORY.splitlines()[0]] + HISTORY.splitlines()[3:]
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals.csv": HEAD.replace(",closed_at,amount", "")
                                    + "d1,m1,Квалификация,open,2026-03-02 10:00\nd2,m2,КП,won,2026-03-03 11:30\n"
                                    "d3,m1,КП,lost,2026-03-04 09:15\n",
                                    "h1.csv": "\n".join(first) + "\n", "h2.csv": "\n".join(second) + "\n"})
    one = load_folder(write(tmp_path / "y", {"managers.csv": MANAGERS, "deals.csv": (folder / "deals.csv").read_text(),
                                             "stage_history.csv": HISTORY})).data.stage_history
    _d, _w, data = _load(folder, files={"stage_history": "h*.csv"})
    assert len(data.stage_history) == len(one) == 5


@pytest.mark.parametrize("files, said", [
    ({"deals": []}, "deals: must not be empty"),
    ({"deals": ["a.csv", ""]}, "a file name in the list is empty"),
    ({"deals": ["a.csv", "a.csv"]}, "'a.csv' is listed twice"),
])
def test_config_refuses_an_empty_or_repeated_file_list(files, said):
    with pytest.raises(ValidationError, match=said):
        SourceConfig(files=files)


def test_a_date_warning_names_the_file_the_row_is_in(tmp_path):
    """order_dates' examples say which file's row: "row 2" alone would not tell January's from February's."""
    late = HEAD + "d4,m2,КП,open,2026-02-03 10:00,,700\nd5,m2,КП,won,2026-02-10 10:00,2026-02-01 10:00,1\n"
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals_2026-01.csv": JAN, "deals_2026-02.csv": late})
    _d, warnings, _data = _load(folder, files={"deals": "deals_*.csv"})
    said = [w for w in warnings if "d5" in w]
    assert said and "deals_2026-02.csv row 3" in said[0], warnings


def test_a_warning_every_file_gives_is_said_once_with_the_total(tmp_path):
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals_2026-01.csv": JAN, "deals_2026-02.csv": FEB})
    _d, warnings, _data = _load(folder, files={"deals": "deals_*.csv"}, fill={"deals": {"currency": "KZT"}})
    filled = [w for w in warnings if "currency" in w]
    assert len(filled) == 1 and "the same in 1 more file(s): 6 in all" in filled[0], warnings


def test_a_date_only_close_in_one_file_does_not_mark_the_timed_closes_of_another(tmp_path):
    """The hidden date-only mark exists only in the file with date-only cells: in the other file's
    rows it is false, so a timed close before its creation the same day is still said."""
    from crm.normalize import DATE_ONLY
    from crm.several_files import Part, combine

    timed = pd.DataFrame({"deal_id": ["d1"], "closed_at": pd.to_datetime(["2026-01-05 10:00"], utc=True)})
    dated = pd.DataFrame({"deal_id": ["d2"], "closed_at": pd.to_datetime(["2026-02-05"], utc=True),
                          DATE_ONLY + "closed_at": [True]})
    frame, _ = combine("deals", [Part("a.csv", timed, {"closed_at": "c"}), Part("b.csv", dated, {"closed_at": "c"})])
    assert frame[DATE_ONLY + "closed_at"].tolist() == [False, True]


def test_monthly_files_without_config_get_the_pattern_to_write(tmp_path):
    folder = write(tmp_path / "x", {"managers.csv": MANAGERS, "deals_2026-01.csv": JAN, "deals_2026-02.csv": FEB})
    with pytest.raises(DataError, match=r'no deals file.*\[source\.files\] deals = "deals_\*\.csv"'):
        load_folder(folder)
