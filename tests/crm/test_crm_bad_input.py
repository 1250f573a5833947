"""Each messy-export case from issue 2: the load works, or one clear error says what to fix."""
from __future__ import annotations

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


def test_missing_managers_file_lists_files_found(tmp_path):
    folder = write(tmp_path, {"deals.csv": DEALS, "notes.txt": "x"})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    assert "no managers" in str(err.value) and "deals.csv" in str(err.value)


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
