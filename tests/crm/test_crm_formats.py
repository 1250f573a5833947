"""Formats, encodings, timezones and the config mappings an admin writes."""
from __future__ import annotations

import pandas as pd
import pytest
from crm_exports import DEALS, HISTORY, MANAGERS, write

from crm.errors import DataError
from crm.load import load_crm, load_folder
from crm.readers import detect_delimiter, detect_encoding
from crm.source_config import SourceConfig


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251", "utf-16"])
def test_encodings_russian_excel_writes_are_detected(tmp_path, encoding):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS.replace(",", "\t")},
                   encoding=encoding)
    data = load_folder(folder).data
    assert data.managers.columns[0] == "manager_id"  # no BOM glued to the first header
    assert data.managers["name"].tolist() == ["Анна Петрова", "Boris Lee"]
    assert data.deals["stage"].tolist() == ["Квалификация", "КП", "КП"]


def test_detect_encoding_prefers_utf8_and_falls_back_to_cp1251():
    text = "Ответственный;Сумма\nИванов;100\n"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(text.encode("cp1251")) == "cp1251"
    assert detect_encoding(b"\xef\xbb\xbf" + text.encode("utf-8")) == "utf-8-sig"


@pytest.mark.parametrize("text", [
    "deal_id;manager_id;stage\nd1;m1;КП\n",
    "manager_id;name;team\nm1;Анна Петрова;Алматы\nm2;Борис Ли;Астана\n",
])
def test_short_cp1251_files_where_statistical_detection_guesses_wrong(text):
    # charset-normalizer 3 calls these big5 and cp874 (Thai): with only a few Cyrillic
    # letters, statistics are weak. UTF-8 first, then cp1251, is right for CRM exports.
    data = text.encode("cp1251")
    assert detect_encoding(data) == "cp1251"
    assert data.decode(detect_encoding(data)) == text


def test_delimiter_detection_is_not_fooled_by_commas_inside_values():
    sample = 'id;name;amount\n1;"Ltd, Almaty";1,5\n2;Beta;2,5\n'
    assert detect_delimiter(sample) == ";"
    assert detect_delimiter("a\tb\tc\n1\t2,5\t3\n") == "\t"
    assert detect_delimiter('a,b,c\n1,"x;y",3\n') == ","


def test_amounts_as_people_type_them(tmp_path):
    amounts = ['"1 500 000,50"', '"1,234.50"', '"1,234,567"', '"1,5"', "-7", "12.5", "",
               "\u00a0300\u00a0000"]
    deals = "deal_id,manager_id,stage,status,created_at,amount\n" + "".join(
        f"d{i},m1,КП,open,2026-03-02,{a}\n" for i, a in enumerate(amounts))
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    got = load_folder(folder).data.deals["amount"].tolist()
    assert got[:6] == [1_500_000.5, 1234.5, 1_234_567.0, 1.5, -7.0, 12.5]
    assert pd.isna(got[6]) and got[7] == 300_000.0


def test_header_only_table_loads_empty_with_a_warning(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": "deal_id,manager_id,stage,status,created_at\n"})
    result = load_folder(folder)
    assert len(result.data.deals) == 0
    assert str(result.data.deals["created_at"].dtype) == "datetime64[ns, UTC]"
    assert any(w.code == "empty_table" and w.table == "deals" for w in result.warnings)


def test_naive_times_are_in_the_config_timezone_and_come_out_utc(tmp_path):
    deals = ("deal_id,manager_id,stage,status,created_at,closed_at\n"
             "d1,m1,КП,won,2026-03-02 10:00,02.03.2026 18:30\n"
             "d2,m1,КП,open,2026-03-02T10:00:00+03:00,\n"
             "d3,m1,КП,open,1772424000,\n"
             "d4,m1,КП,open,02.03.2026,\n")
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    deals_out = load_folder(folder, timezone="Asia/Almaty").data.deals.set_index("deal_id")
    assert str(deals_out["created_at"].dtype) == "datetime64[ns, UTC]"
    assert deals_out.loc["d1", "created_at"] == pd.Timestamp("2026-03-02 05:00", tz="UTC")
    assert deals_out.loc["d1", "closed_at"] == pd.Timestamp("2026-03-02 13:30", tz="UTC")
    # an explicit offset wins over the config timezone
    assert deals_out.loc["d2", "created_at"] == pd.Timestamp("2026-03-02 07:00", tz="UTC")
    # Unix seconds are UTC by definition
    assert deals_out.loc["d3", "created_at"] == pd.Timestamp(1772424000, unit="s", tz="UTC")
    assert deals_out.loc["d4", "created_at"] == pd.Timestamp("2026-03-01 19:00", tz="UTC")
    assert pd.isna(deals_out.loc["d2", "closed_at"])


def test_dst_gap_and_overlap_do_not_crash(tmp_path):
    deals = ("deal_id,manager_id,stage,status,created_at\n"
             "d1,m1,КП,open,2026-03-29 02:30\n"    # does not exist in Berlin
             "d2,m1,КП,open,2026-10-25 02:30\n")   # happens twice in Berlin
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    created = load_folder(folder, timezone="Europe/Berlin").data.deals["created_at"]
    assert created.notna().all()
    assert created.iloc[1] == pd.Timestamp("2026-10-25 01:30", tz="UTC")  # standard time


def test_unknown_timezone_is_a_clear_error(company):
    with pytest.raises(DataError, match="unknown timezone 'Asia/Almty'"):
        load_folder(company, timezone="Asia/Almty")


def _frames():
    managers = pd.DataFrame({"manager_id": ["m1", "m2"], "name": ["Анна", "Boris"],
                             "capacity": [1.0, 0.5], "active": [True, False]})
    deals = pd.DataFrame({
        "deal_id": [101, 102, 103], "manager_id": ["m1", "m2", "m1"],
        "stage": ["Квалификация", "КП", "КП"], "status": ["open", "won", "lost"],
        "created_at": pd.to_datetime(["2026-03-02 10:00", "2026-03-03 11:00", "2026-03-04 12:00"]),
        "amount": [1000.0, 2500.5, None],
    })
    history = pd.DataFrame({
        "deal_id": ["101", "102", "102", "103", "103"],
        "stage": ["Квалификация", "Квалификация", "КП", "Квалификация", "КП"],
        "entered_at": pd.to_datetime(["2026-03-02 10:00", "2026-03-03 11:00", "2026-03-05 00:00",
                                      "2026-03-04 12:00", "2026-03-06 00:00"]).tz_localize("UTC"),
    })
    return managers, deals, history


def _check_round_trip(result):
    data = result.data
    assert data.deals["deal_id"].tolist() == ["101", "102", "103"]  # ints became id strings
    assert data.deals["amount"].iloc[1] == pytest.approx(2500.5)
    assert pd.isna(data.deals["amount"].iloc[2])
    assert data.managers["active"].tolist() == [True, False]
    assert data.managers["capacity"].tolist() == [1.0, 0.5]
    # naive file times are Almaty wall-clock (UTC+5)
    assert data.deals["created_at"].iloc[0] == pd.Timestamp("2026-03-02 05:00", tz="UTC")
    assert data.stage_history["entered_at"].iloc[2] == pd.Timestamp("2026-03-05", tz="UTC")
    assert data.stages == ["Квалификация", "КП"]
    assert not data.stage_history_derived
    assert result.warnings == []


def test_xlsx_round_trip(tmp_path):
    managers, deals, history = _frames()
    for name, frame in (("managers", managers), ("deals", deals)):
        frame.to_excel(tmp_path / f"{name}.xlsx", index=False)
    history.assign(entered_at=history["entered_at"].dt.tz_localize(None)).to_excel(
        tmp_path / "stage_history.xlsx", index=False)
    result = load_folder(tmp_path, timezone="Asia/Almaty")
    # Excel cannot hold a timezone: history times written as UTC wall-clock read as Almaty
    history_times = result.data.stage_history["entered_at"]
    assert history_times.iloc[2] == pd.Timestamp("2026-03-04 19:00", tz="UTC")
    result.data.stage_history["entered_at"] = history_times + pd.Timedelta(hours=5)
    _check_round_trip(result)


def test_parquet_round_trip(tmp_path):
    managers, deals, history = _frames()
    for name, frame in (("managers", managers), ("deals", deals), ("stage_history", history)):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    _check_round_trip(load_folder(tmp_path, timezone="Asia/Almaty"))


def test_broken_xlsx_is_a_clear_error(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS, "deals.xlsx": b"this is not a zip"})
    with pytest.raises(DataError, match=r"deals\.xlsx: cannot open this Excel file"):
        load_folder(tmp_path)


def test_two_files_for_one_table_is_ambiguous(tmp_path, company):
    (company / "deals.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match="more than one file for deals"):
        load_folder(company)


# --- the mappings an admin writes -------------------------------------------------------

AMO_DEALS = (
    "ID;Ответственный;Этап сделки;Дата создания;Бюджет\n"
    "501;Анна Петрова;Успешно реализовано;02.03.2026 10:00;1 200 000\n"
    "502;Анна Петрова;Переговоры;03.03.2026 11:00;300 000,50\n"
    "503;Boris Lee;Закрыто и не реализовано;04.03.2026 12:00;\n"
)
AMO_SOURCE = {
    "path": "amo",
    "files": {"deals": "Сделки.csv", "managers": "users.csv"},
    "columns": {
        "deals": {"deal_id": "ID", "manager_id": "Ответственный", "stage": "Этап сделки",
                  "status": "Этап сделки", "created_at": "Дата создания", "amount": "Бюджет"},
        "managers": {"manager_id": "Имя", "name": "Имя"},
    },
    "values": {"deals": {
        "status": {"Успешно реализовано": "won", "Закрыто и не реализовано": "lost",
                   "Переговоры": "open"},
        "stage": {"Успешно реализовано": "Переговоры", "Закрыто и не реализовано": "Переговоры"},
    }},
    "fill": {"deals": {"currency": "KZT"}},
    "stages": ["Первичный контакт", "Переговоры"],
}


def test_column_value_mapping_and_one_column_feeding_two(tmp_path):
    write(tmp_path / "amo", {"Сделки.csv": AMO_DEALS}, encoding="cp1251")
    write(tmp_path / "amo", {"users.csv": "Имя,Отдел\nАнна Петрова,A\nBoris Lee,B\n"})
    result = load_crm(SourceConfig(**AMO_SOURCE), timezone="Asia/Almaty", base_dir=tmp_path)
    deals = result.data.deals.set_index("deal_id")
    assert deals["status"].to_dict() == {"501": "won", "502": "open", "503": "lost"}
    assert deals["stage"].tolist() == ["Переговоры"] * 3
    assert deals["manager_id"].tolist() == ["Анна Петрова", "Анна Петрова", "Boris Lee"]
    assert deals.loc["502", "amount"] == pytest.approx(300000.5)
    assert deals["currency"].tolist() == ["KZT"] * 3
    assert result.data.managers["name"].tolist() == ["Анна Петрова", "Boris Lee"]
    assert result.data.stages == ["Первичный контакт", "Переговоры"]
    assert result.data.origins["deals"] == "Сделки.csv"
    codes = sorted(w.code for w in result.warnings)
    assert codes == ["filled", "stage_history_derived", "unmapped_columns"]
    # users.csv's "Отдел" is not mapped: said once, with the column it could fill
    unmapped = [str(w) for w in result.warnings if w.code == "unmapped_columns"]
    assert unmapped == ["managers: columns not read that look useful: 'Отдел' could fill managers.team "
                        "([source.columns.managers] team = \"Отдел\"); map them in config if they hold that "
                        "(or ignore this)"]


def test_fill_for_empty_cells_is_reported_with_rows(tmp_path):
    deals = DEALS.replace("2026-03-03 11:30", "")
    write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": HISTORY})
    # before d2's first stage entry: a later date is a deal entering stages before it existed
    # (warned, and read as created at its first entry: crm.validate.order_dates)
    source = SourceConfig(path=".", fill={"deals": {"created_at": "2026-03-01"}})
    result = load_crm(source, base_dir=tmp_path)
    created = result.data.deals.set_index("deal_id")["created_at"]
    assert created["d2"] == pd.Timestamp("2026-03-01", tz="UTC")
    filled = [w for w in result.warnings if w.code == "filled"]
    assert filled[0].count == 1 and "row 3" in str(filled[0])


def test_mapped_column_absent_from_file_suggests_the_nearest(tmp_path, company):
    source = SourceConfig(path=str(company),
                          columns={"deals": {"manager_id": "manager"}})
    with pytest.raises(DataError) as err:
        load_crm(source)
    assert "'manager' (mapped to deals.manager_id in config) is not in the file" in str(err.value)
    assert "(did you mean 'manager_id'?)" in str(err.value)


def test_bad_fill_value_points_at_the_config(tmp_path, company):
    source = SourceConfig(path=str(company), fill={"deals": {"closed_at": "soon"}})
    with pytest.raises(DataError, match=r"config \[source.fill.deals\] closed_at"):
        load_crm(source)


def test_parquet_with_their_own_names_reads_only_the_mapped_columns(tmp_path):
    managers, deals, _ = _frames()
    managers.to_parquet(tmp_path / "managers.parquet", index=False)
    theirs = deals.rename(columns={"manager_id": "Responsible", "deal_id": "ID"}).assign(
        notes=["long text"] * 3, Stage=deals["stage"]).drop(columns=["stage"])
    theirs.to_parquet(tmp_path / "deals.parquet", index=False)
    source = SourceConfig(path=".", columns={"deals": {"manager_id": "Responsible",
                                                       "deal_id": "ID"}})
    result = load_crm(source, base_dir=tmp_path)
    deals_out = result.data.deals
    assert deals_out["manager_id"].tolist() == ["m1", "m2", "m1"]
    assert deals_out["stage"].tolist() == ["Квалификация", "КП", "КП"]  # "Stage" matched
    assert "notes" not in deals_out.columns
    assert result.data.stages == ["Квалификация", "КП"]  # order of creation, and said so
    assert "stage_order_guessed" in {w.code for w in result.warnings}
