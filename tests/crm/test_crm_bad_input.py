"""Each messy-export case from issue 2: the load works, or one clear error says what to fix."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from crm_exports import DEALS, HISTORY, MANAGERS, write

from crm.errors import DataError
from crm.load import load_folder


def _deals_with_bad_date(n_rows: int, bad_row: int, bad_value: str) -> str:
    lines = ["deal_id,manager_id,stage,status,created_at"]
    for i in range(2, n_rows + 2):  # spreadsheet rows 2..n+1
        when = bad_value if i == bad_row else f"{(i % 28) + 1:02d}.03.2026 10:00"
        lines.append(f"d{i},m1,КП,open,{when}")
    return "\n".join(lines) + "\n"


def test_cp1251_with_semicolons_loads_with_russian_text_intact(tmp_path):
    managers = "manager_id;name;team\nm1;Анна Петрова;Алматы\nm2;Борис Ли;Астана\n"
    deals = ("deal_id;manager_id;stage;status;created_at;amount\n"
             "d1;m1;Квалификация;open;02.03.2026 10:00;1 500 000,50\n")
    folder = write(tmp_path, {"managers.csv": managers, "deals.csv": deals}, encoding="cp1251")
    data = load_folder(folder).data
    assert data.managers["name"].tolist() == ["Анна Петрова", "Борис Ли"]
    assert data.deals.loc[0, "stage"] == "Квалификация"
    assert data.deals.loc[0, "amount"] == pytest.approx(1_500_000.50)


def test_missing_required_column_names_it_the_columns_found_and_the_config_key(tmp_path):
    deals = "deal_id,Ответственный,stage,status,created_at\nd1,m1,КП,open,2026-03-02\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "deals.csv" in text and "'manager_id'" in text
    assert "Ответственный" in text  # the columns found
    assert '[source.columns.deals] manager_id = "' in text


def test_unparseable_date_in_row_57_names_row_column_value_and_formats(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals_with_bad_date(80, 57, "вчера")})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "deals.csv, row 57, column 'created_at'" in text
    assert "'вчера'" in text and "01.10.2026 14:30" in text and "Unix seconds" in text
    assert err.value.row == 57 and err.value.value == "вчера"


def test_impossible_calendar_date_is_an_error_not_a_guess(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals_with_bad_date(10, 5, "31.02.2026")})
    with pytest.raises(DataError, match="row 5"):
        load_folder(folder)


def test_duplicate_deal_ids_keep_the_last_row_and_warn(tmp_path):
    deals = DEALS + "d2,m2,КП,lost,2026-03-07 10:00,2500.5,KZT\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals,
                              "stage_history.csv": HISTORY})
    result = load_folder(folder)
    assert len(result.data.deals) == 3
    assert result.data.deals.set_index("deal_id").loc["d2", "status"] == "lost"
    dup = [w for w in result.warnings if w.code == "duplicate_ids"]
    assert len(dup) == 1 and dup[0].table == "deals" and dup[0].count == 1
    assert "d2" in str(dup[0]) and "kept the last" in str(dup[0])


def test_unknown_status_lists_the_values_and_the_mapping_to_write(tmp_path):
    deals = ("deal_id,manager_id,stage,status,created_at\n"
             "d1,m1,КП,open,2026-03-02\n"
             "d2,m1,КП,Успешно реализовано,2026-03-02\n"
             "d3,m1,КП,Успешно реализовано,2026-03-02\n"
             "d4,m1,КП,Закрыто и не реализовано,2026-03-02\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "row 3" in text and "'status'" in text
    assert "'Успешно реализовано' (2)" in text and "'Закрыто и не реализовано' (1)" in text
    assert '[source.values.deals.status] "Успешно реализовано" = "<open|won|lost>"' in text
    assert "open or won or lost" in text


@pytest.mark.parametrize("content", [b"", b"   \r\n\r\n"])
def test_empty_file_is_a_clear_error(tmp_path, content):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": content})
    with pytest.raises(DataError, match=r"deals\.csv: the file is empty"):
        load_folder(folder)


@pytest.mark.parametrize(("content", "says"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary file"),
    (b"<!DOCTYPE html>\n<html><head><title>Login</title></head></html>", "web page"),
    (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-zip", "Excel .xlsx"),
])
def test_file_that_is_not_csv_says_what_it_is(tmp_path, content, says):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": content})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert str(err.value).startswith("deals.csv: this is")
    assert says in str(err.value)


def test_a_deals_file_alone_names_its_managers_with_one_warning(tmp_path):
    """A CRM web UI exports deals with no users file beside it: the people the deals name are
    the managers (the loader used to stop with "no managers file")."""
    folder = write(tmp_path, {"deals.csv": DEALS, "notes.txt": "x"})
    result = load_folder(folder)
    managers = result.data.managers
    assert managers["manager_id"].tolist() == ["m1", "m2"] and managers["name"].tolist() == ["m1", "m2"]
    assert managers["active"].all() and (managers["capacity"] == 1.0).all()
    assert result.data.origins["managers"] == "derived from deals.csv"
    note = [str(w) for w in result.warnings if w.code == "managers_derived"]
    assert len(note) == 1 and "no managers table: the 2 people the deals name" in note[0]
    assert "give a managers file (manager_id, name, active, team, capacity)" in note[0]
    assert "unknown_manager" not in {w.code for w in result.warnings}


def test_missing_deals_file_lists_files_found(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "notes.txt": "x"})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert "no deals" in str(err.value) and "managers.csv" in str(err.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")


def test_empty_required_value_lists_rows(tmp_path):
    deals = "deal_id,manager_id,stage,status,created_at\nd1,m1,КП,open,2026-03-02\nd2,,КП,open,2026-03-02\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert "row 3" in str(err.value) and "manager_id is empty in 1 row" in str(err.value)
    assert "[source.fill.deals] manager_id" in str(err.value)


def test_a_row_without_an_id_is_to_be_deleted_not_filled(tmp_path):
    """A row with no id: one constant id from [source.fill] for every such row would only make
    duplicates, so the fix says delete. A totals row ("Итого" and a sum) ending the file, as an
    amoCRM/Excel export or a sheet kept by hand has it, is recognised and not read, with a
    warning; a totals word on a row of data is not."""
    head = "deal_id;manager_id;stage;status;created_at;amount\nd1;m1;КП;open;02.03.2026 10:00;1 000 000\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": head + ";m1;КП;open;03.03.2026;5\n"})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert "row 3" in str(err.value) and "deal_id is empty" in str(err.value)
    assert "delete those rows" in str(err.value) and "source.fill" not in str(err.value)
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": head + ";Итого;;;;1 000 000\n"})
    result = load_folder(folder)
    assert list(result.data.deals["deal_id"]) == ["d1"]
    assert any(w.code == "totals_row" and "row 3" in str(w) for w in result.warnings), result.warnings
    # five of six cells filled: a record (its empty id is still the error), not a totals row
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": head + ";Итого;КП;open;03.03.2026;5\n"})
    with pytest.raises(DataError, match="deal_id is empty"):
        load_folder(folder)


def test_not_a_number_names_the_row(tmp_path):
    deals = DEALS.replace("2500.5", "две тысячи")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError, match=r"row 3, column 'amount': not a number"):
        load_folder(folder)


def test_ragged_rows_are_an_error_not_a_shifted_table(tmp_path):
    deals = DEALS + "d4,m1,КП,open,2026-03-04,5,KZT,extra,extra2\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError, match="row 5 has 9 values but the header has 7 columns"):
        load_folder(folder)


def test_error_message_has_no_traceback_noise(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals_with_bad_date(5, 3, "13/45/2026")})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


# --- round 2, usability: what an admin sees when the export or [source] is wrong ------------

def test_a_non_breaking_space_in_a_bad_number_is_shown_as_the_space_excel_shows(tmp_path):
    deals = ("deal_id;manager_id;stage;status;created_at;amount\n"
             "d1;m1;КП;open;02.03.2026 10:00;ок. 1\u00a0234\u00a0567,00 руб\n")  # "руб" alone is read
    folder = write(tmp_path, {"managers.csv": MANAGERS.replace(",", ";"), "deals.csv": deals}, encoding="cp1251")
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "'ок. 1\u00a0234\u00a0567,00 руб'" in text and "\\xa0" not in text


def _source(**kw):
    from crm.source_config import SourceConfig

    return SourceConfig.model_validate(kw)


def test_a_database_url_pasted_into_url_env_is_refused_without_echoing_it():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        _source(kind="sql", url_env="postgresql://crm:hunter2@db/crm", tables={"deals": "deals"})
    text = err.value.errors()[0]["msg"]  # what check-config prints (it never shows the value)
    assert "NAME of an environment variable" in text and "hunter2" not in text


def test_sql_keys_under_kind_files_are_an_error_not_silently_ignored():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match='url_env only applies to kind = "sql"'):
        _source(url_env="CRM_DB")
    with pytest.raises(ValidationError, match='url and tables only apply to kind = "sql"'):
        _source(url="sqlite:///crm.db", tables={"deals": "deals"})
    assert _source(kind="sql", url="sqlite:///crm.db", tables={"deals": "deals"}).kind == "sql"


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path):
    from crm.load import load_crm

    source = _source(kind="sql", url="sqlite:///crm.db", tables={"deals": "deals"})
    with pytest.raises(DataError, match="SQLite database file .*crm.db does not exist"):
        load_crm(source, base_dir=tmp_path)
    assert not (tmp_path / "crm.db").exists()


def test_a_missing_database_driver_says_which_and_what_ships(monkeypatch):
    from crm.load import load_crm

    monkeypatch.setenv("CRM_DB", "mysql://crm@db.local/crm")
    source = _source(kind="sql", url_env="CRM_DB", tables={"deals": "deals"})
    with pytest.raises(DataError) as err:
        load_crm(source)
    text = str(err.value)
    assert "driver for the URL in $CRM_DB is not installed" in text and "postgresql+psycopg://" in text


# --- issue 11: hostile cells and files are a DataError (exit 3), never an internal error ------

import os  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crm.readers import MAX_COLUMNS  # noqa: E402
from crm.owners import no_owner  # noqa: E402

DEAL_HEADER = "deal_id,manager_id,stage,status,created_at,closed_at,amount\n"


def _one_deal(tmp_path, **cells) -> Path:
    row = {"created_at": "2026-03-02 10:00", "closed_at": "", "amount": "1000", **cells}
    deals = DEAL_HEADER + f"d1,m1,КП,open,{row['created_at']},{row['closed_at']},{row['amount']}\n"
    return write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})


@pytest.mark.parametrize("value", [
    "0001-01-01", "9999-12-31T23:59:59", "-1", "99999999999", "9999999999999", "1677-09-21",
    "2262-04-12", "31.12.9999", "0001-01-01T00:00:00+00:00", "now", "today", "NOW", "yesterday",
])
@pytest.mark.parametrize("column", ["created_at", "closed_at"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Almaty", "America/New_York"])  # zone maths wrapped year 1 to 1972
def test_dates_out_of_range_or_relative_name_file_row_column_and_value(tmp_path, value, column, tz):
    with pytest.raises(DataError) as err:
        load_folder(_one_deal(tmp_path, **{column: value}), timezone=tz)
    e = err.value
    assert (e.file, e.row, e.column, e.value) == ("deals.csv", 2, column, value)
    assert e.expected and e.fix


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e309", "-1e309", "1e308",
                                   "12345678901234567890", "-12345678901234567890", "1e16"])
def test_non_finite_and_absurd_amounts_are_refused_with_their_row(tmp_path, value):
    with pytest.raises(DataError) as err:
        load_folder(_one_deal(tmp_path, amount=value))
    assert (err.value.row, err.value.column, err.value.value) == (2, "amount", value)
    assert "between" in err.value.expected


def test_large_but_real_amounts_still_load(tmp_path):
    data = load_folder(_one_deal(tmp_path, amount='"999 999 999 999,99"')).data
    assert data.deals.loc[0, "amount"] == pytest.approx(999_999_999_999.99)


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "12345678901234567890", "100000",
                                   "1e-300", "5e-324", "-1", "-0.5"])  # 1e-300 FTE: a load of 1e300
def test_capacity_must_be_a_finite_sane_number(tmp_path, value):
    folder = write(tmp_path, {"managers.csv": f"manager_id,name,capacity\nm1,A,0.5\nm2,B,{value}\n",
                              "deals.csv": DEALS})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert (err.value.file, err.value.row, err.value.column) == ("managers.csv", 3, "capacity")


@pytest.mark.parametrize("value", ["inf", "1e309", "-inf", "12345678901234567890"])
def test_stage_positions_must_be_finite(tmp_path, value):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS,
                              "stages.csv": f"stage,position\nКвалификация,1\nКП,{value}\n"})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert (err.value.file, err.value.row, err.value.column) == ("stages.csv", 3, "position")


@pytest.mark.parametrize("value", ["0", "0.01", "0.5", "1000"])
def test_sane_capacities_load(tmp_path, value):
    folder = write(tmp_path, {"managers.csv": f"manager_id,name,capacity\nm1,A,0.5\nm2,B,{value}\n",
                              "deals.csv": DEALS})
    assert load_folder(folder).data.managers["capacity"].tolist() == [0.5, float(value)]


def _parquet_deals(folder: Path, created) -> Path:
    write(folder, {"managers.csv": MANAGERS})
    pq.write_table(pa.table({"deal_id": ["d1", "d2"], "manager_id": ["m1", "m1"],
                             "stage": ["КП", "КП"], "status": ["open", "open"],
                             "created_at": created}), folder / "deals.parquet")
    return folder


@pytest.mark.parametrize("created", [
    pa.array([1772445600, 10**17]),                     # an int timestamp no unit can hold
    pa.array([1772445600, -10**17]),
    pa.array([1.7e9, float("inf")]),
    pa.array([datetime(2026, 3, 1), datetime(9999, 12, 31)], pa.timestamp("us")),
    pa.array([datetime(2026, 3, 1), datetime(1, 1, 1)], pa.timestamp("us", tz="UTC")),
    pa.array([date(2026, 3, 1), date(1, 1, 1)], pa.date32()),
    pa.array(["2026-03-01", "today"]),
], ids=["int-1e17", "int-minus-1e17", "float-inf", "us-9999", "us-tz-0001", "date32-0001", "today"])
def test_parquet_timestamps_out_of_range_are_a_data_error_at_record_2(tmp_path, created):
    with pytest.raises(DataError) as err:
        load_folder(_parquet_deals(tmp_path, created))
    assert (err.value.file, err.value.row, err.value.row_kind, err.value.column) == (
        "deals.parquet", 2, "record", "created_at")


def _truncated_parquet(tmp_path) -> bytes:
    pq.write_table(pa.table({"deal_id": ["d1"] * 1000, "manager_id": ["m1"] * 1000}), tmp_path / "x.parquet")
    whole = (tmp_path / "x.parquet").read_bytes()
    return whole[: len(whole) // 2] + whole[-8:]  # the footer survives, the data does not


@pytest.mark.parametrize("content", [b"", b"PAR1", b"hello, this is not parquet at all",
                                     b"PAR1" + b"\x00" * 100 + b"PAR1", "truncated"])
def test_empty_truncated_or_garbage_parquet_is_a_clear_error(tmp_path, content):
    if content == "truncated":
        content = _truncated_parquet(tmp_path)
    folder = write(tmp_path / "crm", {"managers.csv": MANAGERS, "deals.parquet": content})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert str(err.value).startswith("deals.parquet: cannot read")


def test_unreadable_file_says_permission_denied_and_how_to_fix(tmp_path, monkeypatch):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS})
    real_open = Path.open

    def denied(self, *args, **kwargs):
        if self.name == "deals.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)  # root reads chmod 000 files: simulate instead
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert str(err.value).startswith("deals.csv: cannot read the file (Permission denied)")
    assert "read access" in str(err.value)


def test_unreadable_folder_says_so(tmp_path, monkeypatch):
    folder = write(tmp_path / "crm", {"managers.csv": MANAGERS, "deals.csv": DEALS})

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(DataError, match="cannot open the data folder .*Permission denied"):
        load_folder(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_for_real(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS})
    (folder / "deals.csv").chmod(0)
    with pytest.raises(DataError, match="Permission denied"):
        load_folder(folder)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    from crm.load import load_crm

    deals = DEALS + "".join(f"d{i},m1,КП,open,2026-03-02 10:00,1,KZT\n" for i in range(10, 30000))
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_crm(_source(path=str(folder), max_file_mb=0.5))
    text = str(err.value)
    assert text.startswith("deals.csv: the file is 1.2 MB, more than the limit of 0.5 MB")
    assert "max_file_mb" in text
    assert len(load_crm(_source(path=str(folder), max_file_mb=2)).data.deals) == 30000 - 10 + 3


def test_a_parquet_file_is_measured_uncompressed(tmp_path):
    from crm.load import load_crm

    folder = write(tmp_path, {"managers.csv": MANAGERS})
    n = 400_000  # compresses to a few KB, 3+ MB in memory
    pq.write_table(pa.table({"deal_id": [f"d{i:07d}" for i in range(n)], "manager_id": ["m1"] * n,
                             "stage": ["КП"] * n, "status": ["open"] * n,
                             "created_at": ["2026-03-02"] * n}), folder / "deals.parquet")
    assert (folder / "deals.parquet").stat().st_size < 2 * 1024 * 1024
    with pytest.raises(DataError, match=r"deals.parquet: the columns to read hold \d+ MB uncompressed "
                                        r"\(400,000 rows\), more than the limit of 2 MB"):
        load_crm(_source(path=str(folder), max_file_mb=2))
    assert len(load_crm(_source(path=str(folder), max_file_mb=100)).data.deals) == n


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_a_100000_column_file_is_refused_quickly(tmp_path, suffix):
    import time

    width = 100_000
    folder = write(tmp_path, {"managers.csv": MANAGERS})
    if suffix == ".csv":
        header = "deal_id,manager_id,stage,status,created_at," + ",".join(f"c{i}" for i in range(width))
        row = "d1,m1,КП,open,2026-03-02," + ",".join("1" for _ in range(width))
        (folder / "deals.csv").write_text(header + "\n" + (row + "\n") * 20, encoding="utf-8")
    elif suffix == ".xlsx":  # openpyxl writes 100,000 columns slowly: just over the limit shows it
        pd.DataFrame({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)}).to_excel(folder / "deals.xlsx", index=False)
    else:
        cols = {f"c{i}": pa.array([1]) for i in range(MAX_COLUMNS + 1)}
        pq.write_table(pa.table({"deal_id": ["d1"], **cols}), folder / "deals.parquet")
    start = time.perf_counter()
    with pytest.raises(DataError, match="columns, more than the 2,000"):
        load_folder(folder)
    assert time.perf_counter() - start < 2.0


def test_every_row_one_value_longer_than_the_header_is_an_error_not_an_index(tmp_path):
    deals = DEAL_HEADER + "d1,m1,КП,open,2026-03-02 10:00,,1000,50\nd2,m1,КП,open,2026-03-02 10:00,,7,5\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError, match="row 2 has 8 values but the header has 7 columns"):
        load_folder(folder)


def test_a_50mb_name_is_cut_once_at_load_with_one_warning(tmp_path):
    huge = "Я" * 5_000_000
    folder = write(tmp_path, {"managers.csv": f"manager_id,name\nm1,Анна\nm2,{huge}\n",
                              "deals.csv": DEALS.replace(",КП,", f",{'К' * 2000},")})
    result = load_folder(folder)
    assert result.data.managers["name"].str.len().max() == 1000
    assert result.data.managers.loc[1, "name"].startswith("ЯЯЯ")
    assert result.data.deals["stage"].str.len().max() == 1000
    cut = [w for w in result.warnings if w.code == "long_text"]
    assert [(w.table, w.count) for w in cut] == [("managers", 1), ("deals", 2)]
    assert "row 3" in str(cut[0]) and "'name'" in str(cut[0])


@pytest.mark.parametrize("kind", ["folder", "fifo", "broken link"])
def test_a_deals_csv_that_is_not_a_file_is_called_what_it_is(tmp_path, kind):
    folder = write(tmp_path / "crm", {"managers.csv": MANAGERS})
    target = folder / "deals.csv"
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(DataError) as err:
        load_folder(folder)
    said = {"folder": "this is a folder, not a file", "fifo": "named pipe (FIFO)",
            "broken link": "broken symbolic link"}[kind]
    assert str(err.value).startswith("deals.csv: ") and said in str(err.value)


def test_a_configured_file_outside_the_folder_never_shows_its_contents(tmp_path):
    from crm.load import load_crm

    secret = tmp_path / "shadow"
    secret.write_text("root:$6$saltsalt$SECRETHASHVALUE:19000:0:99999:7:::\n"
                      "daemon:*:19000:0:99999:7:::\n", encoding="utf-8")
    folder = write(tmp_path / "crm", {"managers.csv": MANAGERS})
    with pytest.raises(DataError) as err:
        load_crm(_source(path=str(folder), files={"deals": str(secret)}))
    assert "SECRETHASH" not in str(err.value) and "root" not in str(err.value)
    with pytest.raises(DataError, match="leaves the data folder"):
        load_crm(_source(path=str(folder), files={"deals": "../shadow"}))
    # a real table outside the folder, named by absolute path: read, but cells never quoted
    other = tmp_path / "elsewhere.csv"
    other.write_text("deal_id,manager_id,stage,status,created_at\nd1,m1,КП,open,SECRETCELL\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_crm(_source(path=str(folder), files={"deals": str(other)}))
    assert "SECRETCELL" not in str(err.value) and "row 2" in str(err.value)
    other.write_text("deal_id,manager_id,stage,status,created_at\nSECRETID,m1,КП,open,2026-03-02\n"
                     "SECRETID,m1,КП,won,2026-03-02\n", encoding="utf-8")
    result = load_crm(_source(path=str(folder), files={"deals": str(other)}))
    assert result.data.deals["deal_id"].tolist() == ["SECRETID"]
    dup = [w for w in result.warnings if w.code == "duplicate_ids"]
    assert dup and "SECRETID" not in str(dup[0])


# --- hypothesis: any hostile cell in any typed column is a DataError or loads ------------------

HOSTILE = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "1e309", "1e308", "-1e308", "99999999999999999999",
                     "0001-01-01", "9999-12-31T23:59:59", "-1", "99999999999", "now", "today",
                     "\x00", "\u202e", "1e-400", "0x10", "1_000", "+-1", "--1", "..", "٣", "１２"]),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=",\n\r\""), max_size=30),
)
TYPED = [("deals.csv", "created_at"), ("deals.csv", "closed_at"), ("deals.csv", "amount"),
         ("managers.csv", "capacity"), ("managers.csv", "active"), ("stages.csv", "position")]


def _hostile_folder(folder: Path, file: str, column: str, value: str) -> Path:
    managers = "manager_id,name,capacity,active\nm1,Анна,1,true\nm2,Boris,1,true\n"
    deals = DEAL_HEADER + "d1,m1,КП,open,2026-03-02 10:00,,1000\nd2,m2,КП,won,2026-03-03,2026-03-05,5\n"
    stages = "stage,position\nКвалификация,1\nКП,2\n"
    files = {"managers.csv": managers, "deals.csv": deals, "stages.csv": stages}
    head, first, rest = files[file].split("\n", 2)
    names = head.split(",")
    cells = first.split(",")
    cells[names.index(column)] = value
    files[file] = "\n".join([head, ",".join(cells), rest])
    return write(folder, files)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(TYPED), value=HOSTILE)
def test_any_hostile_cell_is_a_data_error_or_loads(tmp_path_factory, place, value):
    folder = _hostile_folder(tmp_path_factory.mktemp("h"), *place, value)
    try:
        data = load_folder(folder, timezone="Asia/Almaty").data
    except DataError as err:
        assert err.file == place[0] and err.row in (None, 2)
        return
    for frame in (data.deals, data.managers):  # what loads is finite, sane and in range
        numbers = frame.select_dtypes("number").to_numpy(dtype=float)
        numbers = numbers[~np.isnan(numbers)]
        assert np.isfinite(numbers).all() and (np.abs(numbers) <= 1e15).all()
    for stamps in (data.deals["created_at"], data.deals["closed_at"].dropna()):
        assert stamps.between(pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(TYPED), value=HOSTILE)
def test_the_cli_exits_3_or_scans_for_any_hostile_cell_never_4(tmp_path_factory, capsys, place, value):
    from bot.cli import main

    folder = _hostile_folder(tmp_path_factory.mktemp("cli"), *place, value)
    code = main(["scan", "--data", str(folder), "--now", "2026-03-10T09:00:00+00:00"])
    err = capsys.readouterr().err
    assert code in (0, 3), err
    assert "unexpected error" not in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["0001-01-01", "inf", "now", "1e308"])
def test_the_cli_names_the_cell_and_exits_3(tmp_path, capsys, value):
    from bot.cli import main

    column = "amount" if value[0] in "i1" else "created_at"
    code = main(["scan", "--data", str(_one_deal(tmp_path, **{column: value})),
                 "--now", "2026-03-10T09:00:00+00:00"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"deals.csv, row 2, column '{column}'" in err and repr(value) in err


# --- issue 11 item 5: the encoding follows the evidence of the whole file ---------------------

NAMES = ["Анна Петрова", "Борис Ли", "Сёмин Ёжиков", "Айгерим Сапарова"] * 105  # 420 names


def _managers_bytes(encoding: str = "utf-8") -> bytes:
    return ("manager_id,name\n" + "".join(f"m{i},{n}\n" for i, n in enumerate(NAMES))).encode(encoding)


@pytest.mark.parametrize("stray", [b"\xe9", b"\xff", b"\x80", b"\xc3", b"\xe9\xe9\xe9"])
@pytest.mark.parametrize("row", [2, 200, 421])
def test_a_stray_byte_in_utf8_garbles_one_cell_not_the_file(tmp_path, stray, row):
    data = _managers_bytes()
    lines = data.split(b"\n")
    lines[row - 1] = lines[row - 1] + stray  # the end of that row's name
    folder = write(tmp_path, {"managers.csv": b"\n".join(lines), "deals.csv": DEALS.replace("m2", "m1")})
    result = load_folder(folder)
    names = result.data.managers["name"].tolist()
    assert sum(n == e for n, e in zip(names, NAMES)) == 419  # every other name intact
    assert names[row - 2].startswith(NAMES[row - 2]) and "\ufffd" in names[row - 2]
    bad = [w for w in result.warnings if w.code == "not_utf8"]
    assert len(bad) == 1 and bad[0].count == 1 and f"row {row}" in str(bad[0])


def test_real_cp1251_files_still_read_as_cp1251_without_a_warning(tmp_path):
    # "Сё" is a valid UTF-8 pair by accident in cp1251: the evidence still says cp1251
    folder = write(tmp_path, {"managers.csv": _managers_bytes("cp1251"),
                              "deals.csv": DEALS.replace("m2", "m1").encode("cp1251")})
    result = load_folder(folder)
    assert result.data.managers["name"].tolist() == NAMES
    assert not [w for w in result.warnings if w.code in ("not_utf8", "mixed_encoding")]


def test_evidence_is_weighed_over_chunks_without_splitting_letters(tmp_path, monkeypatch):
    import crm.readers

    monkeypatch.setattr(crm.readers, "_CHUNK_BYTES", 7)  # odd: chunks cut two-byte letters in half
    folder = write(tmp_path, {"managers.csv": _managers_bytes(), "deals.csv": DEALS.replace("m2", "m1")})
    result = load_folder(folder)
    assert result.data.managers["name"].tolist() == NAMES and result.warnings[0].code != "not_utf8"
    cp = write(tmp_path / "cp", {"managers.csv": _managers_bytes("cp1251"), "deals.csv": DEALS.replace("m2", "m1")})
    assert load_folder(cp).data.managers["name"].tolist() == NAMES


def test_a_stray_byte_after_a_utf8_bom_is_replaced_too(tmp_path):
    data = b"\xef\xbb\xbf" + _managers_bytes().replace(b"m5,", b"m5\xe9,", 1)
    folder = write(tmp_path, {"managers.csv": data, "deals.csv": DEALS.replace("m2", "m1")})
    result = load_folder(folder)
    assert result.data.managers["name"].tolist() == NAMES
    assert result.data.managers.loc[5, "manager_id"] == "m5\ufffd"
    assert any(w.code == "not_utf8" and "row 7" in str(w) for w in result.warnings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(st.characters(min_codepoint=0x410, max_codepoint=0x44F), min_size=3, max_size=12)
                      # «НЕТ», «НЕНАЗНАЧЕН» name nobody (crm.owners): the loader drops such a user
                      .filter(lambda n: not no_owner(pd.Series([n]))[0]),
                      min_size=5, max_size=40),
       stray=st.integers(min_value=0x80, max_value=0xFF), at=st.integers(min_value=0, max_value=39))
def test_hypothesis_one_bad_byte_never_turns_utf8_russian_into_cp1251(tmp_path_factory, names, stray, at):
    at %= len(names)
    rows = [f"m{i},{n}".encode() + (bytes([stray]) if i == at else b"") for i, n in enumerate(names)]
    data = b"manager_id,name\n" + b"\n".join(rows) + b"\n"
    folder = write(tmp_path_factory.mktemp("enc"), {"managers.csv": data,
                                                     "deals.csv": DEALS.replace("m2", "m1")})
    got = load_folder(folder).data.managers["name"].tolist()
    assert [g for i, g in enumerate(got) if i != at] == [n for i, n in enumerate(names) if i != at]
