"""What hand-made exports of a real Kazakh admin tripped over: each case as the admin met it."""
from __future__ import annotations

import pandas as pd
import pytest
from crm_exports import DEALS, MANAGERS, write

from crm.errors import DataError
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig


# --- where the data folder is --------------------------------------------------------------

def test_source_path_naming_a_file_says_it_is_a_file_and_gives_its_folder(tmp_path):
    folder = write(tmp_path / "export", {"managers.csv": MANAGERS, "deals.csv": DEALS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(path="export/deals.csv"), base_dir=tmp_path)
    text = str(err.value)
    assert "is a file, not a folder" in text and "does not exist" not in text
    assert repr(str(folder)) in text  # the folder to give instead


def test_unset_path_says_the_config_folder_was_read(tmp_path):
    write(tmp_path, {"config.toml": "", "managers.csv": MANAGERS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(), base_dir=tmp_path)
    text = str(err.value)
    assert "no deals file" in text
    assert "[source] path is unset, so the folder of the config file itself was read" in text


def test_set_path_does_not_talk_about_an_unset_path(tmp_path):
    write(tmp_path / "export", {"managers.csv": MANAGERS})
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(path="export"), base_dir=tmp_path)
    assert "no deals file" in str(err.value) and "unset" not in str(err.value)


def test_an_xls_deals_file_is_named_not_reported_missing(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert text.startswith("deals.xls: old Excel .xls files are not read")
    assert "save it as deals.xlsx or deals.csv" in text
    assert "no deals file" not in text


# --- amounts with a currency sign ------------------------------------------------------------

def _deals(amounts: list[str], currency: list[str] | None = None) -> str:
    head = "deal_id;manager_id;stage;status;created_at;amount" + (";currency" if currency else "") + "\n"
    return head + "".join(
        f"d{i};m1;КП;open;2026-03-02 10:00;{a}" + (f";{currency[i]}" if currency else "") + "\n"
        for i, a in enumerate(amounts))


@pytest.mark.parametrize("amounts, number, currency", [
    (["1 234 567,00 ₸", "₸ 1 234 567", "1 234 567 тг", "1\u00a0234\u00a0567 ТЕНГЕ"], 1234567.0, "KZT"),
    (["1,234,567.00 KZT", "kzt 1234567", "1\u2009234\u2009567 тг.", "1\u202f234\u202f567,0 ₸"], 1234567.0, "KZT"),
    (["150 000 руб.", "150 000 RUB", "₽150000", "150\u00a0000 Руб"], 150000.0, "RUB"),
    (["$1,200", "1200 USD", "$ 1 200", "1,200.00 usd"], 1200.0, "USD"),
    (["1 200 €", "EUR 1200", "€1200,00", "1 200,0 eur"], 1200.0, "EUR"),
])
def test_amounts_with_a_currency_sign_are_read_and_fill_the_currency(tmp_path, amounts, number, currency):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": _deals(amounts)})
    result = load_folder(folder)
    assert result.data.deals["amount"].tolist() == [number] * 4
    assert result.data.deals["currency"].tolist() == [currency] * 4
    assert not [w for w in result.warnings if w.code == "mixed_currencies"]


def test_an_empty_currency_column_is_filled_but_a_filled_one_is_kept(tmp_path):
    folder = write(tmp_path / "empty", {"managers.csv": MANAGERS,
                                        "deals.csv": _deals(["100 ₸", "200 ₸"], ["", ""])})
    assert load_folder(folder).data.deals["currency"].tolist() == ["KZT", "KZT"]
    folder = write(tmp_path / "kept", {"managers.csv": MANAGERS,
                                       "deals.csv": _deals(["100 ₸", "200 ₸"], ["KZT", "USD"])})
    assert load_folder(folder).data.deals["currency"].tolist() == ["KZT", "USD"]


def test_mixed_currency_signs_without_a_currency_column_give_each_amount_its_own(tmp_path):
    """Salesforce's formatted export writes "USD 12,500.00" beside "EUR 9,100.00" and has no
    currency column: the currency was left empty, so every amount took the config's currency
    (an EUR deal was shown as "$8,528"). Each amount now keeps its own; only an amount with no
    sign among mixed ones is left empty, with one warning naming its row."""
    folder = write(tmp_path / "signed", {"managers.csv": MANAGERS,
                                         "deals.csv": _deals(["$1,200", "1 200 ₸", "500 ₸"])})
    result = load_folder(folder)
    assert result.data.deals["amount"].tolist() == [1200.0, 1200.0, 500.0]
    assert result.data.deals["currency"].tolist() == ["USD", "KZT", "KZT"]
    assert not [w for w in result.warnings if w.code == "mixed_currencies"]
    folder = write(tmp_path / "one_bare", {"managers.csv": MANAGERS,
                                           "deals.csv": _deals(["$1,200", "1 200 ₸", "500"])})
    result = load_folder(folder)
    assert result.data.deals["currency"].tolist()[:2] == ["USD", "KZT"]
    assert pd.isna(result.data.deals["currency"].iloc[2])
    mixed = [str(w) for w in result.warnings if w.code == "mixed_currencies"]
    assert len(mixed) == 1 and "USD (1), KZT (1)" in mixed[0] and "row 4" in mixed[0], mixed


def test_a_bad_amount_with_a_sign_shows_the_cell_as_written(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals(["100 ₸", "12 abc ₸"])})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "row 3, column 'amount': not a number (found '12 abc ₸')" in text


def test_plain_amounts_keep_the_decimal_comma_and_get_no_currency(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": _deals(["1,5", "1 200,50", "1\u2009200,50"])})
    deals = load_folder(folder).data.deals  # a thin space groups thousands like a plain one
    assert deals["amount"].tolist() == [1.5, 1200.5, 1200.5] and deals["currency"].isna().all()


# --- a title above the header ------------------------------------------------------------------

def _xlsx(path, rows):
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def _deals_under_a_title(header):
    return [["Отчёт по сделкам за 2026 год"], [], header,
            ["d1", "m1", "КП", "open", "2026-03-02 10:00", 100],
            ["d2", "m1", "КП", "open", "не дата", 200]]


def test_xlsx_with_a_title_row_finds_the_canonical_header_and_keeps_row_numbers(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS})
    _xlsx(tmp_path / "deals.xlsx", _deals_under_a_title(
        ["deal_id", "manager_id", "stage", "status", "created_at", "amount"]))
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "deals.xlsx, row 5, column 'created_at': not a date/time" in str(err.value)


def test_xlsx_with_a_title_row_finds_the_mapped_header(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS})
    rows = _deals_under_a_title(["ID", "Ответственный", "Этап", "Статус", "Дата создания", "Сумма"])
    rows[-1][4] = "03.03.2026"
    _xlsx(tmp_path / "deals.xlsx", rows)
    source = SourceConfig.model_validate({"path": ".", "columns": {"deals": {
        "deal_id": "ID", "manager_id": "Ответственный", "stage": "Этап", "status": "Статус",
        "created_at": "Дата создания", "amount": "Сумма"}}})
    deals = load_crm(source, base_dir=tmp_path).data.deals
    assert deals["deal_id"].tolist() == ["d1", "d2"] and deals["amount"].tolist() == [100.0, 200.0]


def test_xlsx_with_a_title_and_unknown_names_says_where_the_header_seems_to_be(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS})
    _xlsx(tmp_path / "deals.xlsx", _deals_under_a_title(["ID", "Кто", "Этап", "Статус", "Создана", "Сумма"]))
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    text = str(err.value)
    assert "required column 'deal_id' is missing" in text
    assert "the header seems to be on row 3; delete the rows above it" in text


def test_csv_with_a_title_line_finds_the_header_and_keeps_row_numbers(tmp_path):
    deals = ("Выгрузка сделок;;;;\n;;;;\n"
             "deal_id;manager_id;stage;status;created_at\n"
             "d1;m1;КП;open;2026-03-02 10:00\n"
             "d2;m1;КП;open;вчера\n")
    write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "deals.csv, row 5, column 'created_at': not a date/time" in str(err.value)
    write(tmp_path, {"deals.csv": deals.replace("вчера", "2026-03-03")})
    assert load_folder(tmp_path).data.deals["deal_id"].tolist() == ["d1", "d2"]


@pytest.mark.parametrize("title", ["Выгрузка сделок", "Выгрузка сделок;;;", "Выгрузка;сделок"])
def test_csv_title_line_without_known_names_says_where_the_header_seems_to_be(tmp_path, title):
    deals = title + "\nID;Кто;Этап;Статус\nd1;m1;КП;open\n"
    write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals})
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "the header seems to be on row 2; delete the rows above it" in str(err.value)


# --- files that are not what their name says -----------------------------------------------------

def _html_table(rows: list[list[str]], charset: str = "utf-8") -> bytes:
    """A list exported as Bitrix24 does for "Excel": an HTML table with an Excel name."""
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>\n" for r in rows[1:])
    page = (f'<meta http-equiv="Content-type" content="text/html;charset={charset}" />\n'
            f'<table border="1"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n')
    return page.encode(charset)


HTML_DEALS = [["deal_id", "manager_id", "stage", "status", "created_at", "title"],
              ["d1", "m1", "Квалификация", "open", "02.03.2026 10:00:00", "ТОО &quot;Арман&quot; &amp; Ко"],
              ["d2", "m2", "КП", "won", "03.03.2026 11:30:00", "Поставка<br>второй этап"],
              ["d3", "m1", "КП", "lost", "04.03.2026 09:15:00", ""]]


@pytest.mark.parametrize("name", ["deals.xls", "deals.xlsx"])
@pytest.mark.parametrize("charset", ["utf-8", "windows-1251"])
def test_an_html_table_saved_with_an_excel_name_is_read(tmp_path, name, charset):
    """Bitrix24's "Excel" export is a web page holding one table, named .xls: it was refused;
    it is read as the table it is (found in the folder by its name, entities decoded, <br> a
    line break, the meta charset honoured)."""
    write(tmp_path, {"managers.csv": MANAGERS, name: _html_table(HTML_DEALS, charset)})
    deals = load_folder(tmp_path).data.deals
    assert deals["deal_id"].tolist() == ["d1", "d2", "d3"]
    assert deals["title"].tolist()[:2] == ['ТОО "Арман" & Ко', "Поставка\nвторой этап"]
    assert deals["status"].tolist() == ["open", "won", "lost"]


def test_an_html_table_with_a_bad_value_names_the_row_excel_shows(tmp_path):
    rows = [r[:] for r in HTML_DEALS]
    rows[2][4] = "вчера"
    write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": _html_table(rows)})
    with pytest.raises(DataError, match=r"deals\.xls, row 3, column 'created_at'"):
        load_folder(tmp_path)


def test_a_web_page_without_a_table_saved_as_xls_says_so(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": "<html><head><title>Вход</title></head></html>"})
    with pytest.raises(DataError, match=r"deals\.xls: this web page \(saved with an Excel name\) holds no table"):
        load_folder(tmp_path)


def test_an_old_xls_saved_as_xlsx_says_so(tmp_path):
    write(tmp_path, {"managers.csv": MANAGERS, "deals.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64})
    with pytest.raises(DataError, match=r"deals\.xlsx: this is an old Excel \.xls file saved with an \.xlsx name"):
        load_folder(tmp_path)


def test_amocrm_closed_deals_without_a_stage_history_are_not_stages_outside_the_pipeline(tmp_path):
    """amoCRM exports a closed deal at its closing stage and no stage history. With the closing
    stages mapped to won/lost, as the loader's own warning advises, nothing is "outside the
    pipeline", and the derived history does not make a won deal enter "won" when created."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Пользователи.csv").write_text("ФИО\nКим Алина\nОспанов Арман\n", encoding="utf-8")
    (folder / "Сделки.csv").write_text(
        "ID;Ответственный;Этап сделки;Дата создания;Дата закрытия\n"
        "1;Ким Алина;Переговоры;01.03.2026 10:00;\n"
        "2;Ким Алина;Успешно реализовано;02.03.2026 11:00;10.03.2026 12:00\n"
        "3;Оспанов Арман;Закрыто и не реализовано;03.03.2026 12:00;09.03.2026 15:00\n", encoding="utf-8")
    closing = {"Успешно реализовано": "won", "Закрыто и не реализовано": "lost"}
    source = SourceConfig(
        path="export", stages=["Первичный контакт", "Переговоры"],
        files={"deals": "Сделки.csv", "managers": "Пользователи.csv"},
        columns={"deals": {"deal_id": "ID", "manager_id": "Ответственный", "stage": "Этап сделки",
                           "status": "Этап сделки", "created_at": "Дата создания", "closed_at": "Дата закрытия"},
                 "managers": {"manager_id": "ФИО", "name": "ФИО"}},
        values={"deals": {"stage": closing, "status": closing | {"Переговоры": "open"}}})
    loaded = load_crm(source, base_dir=tmp_path, timezone="Asia/Almaty")
    assert not [w for w in loaded.warnings if w.code == "stage_not_in_pipeline"], [str(w) for w in loaded.warnings]
    history = loaded.data.stage_history
    assert set(history["stage"]) == {"Первичный контакт", "Переговоры"}
    assert sorted(history.loc[history["deal_id"] == "2", "stage"]) == ["Первичный контакт"]
    assert loaded.data.deals["status"].tolist() == ["open", "won", "lost"]


def test_an_html_table_written_loosely_is_read_cell_by_cell(tmp_path):
    """Upper-case tags, cells never closed, markup inside cells, a second table after the first."""
    page = ("<HTML><BODY><!-- export --><TABLE border=1><TR><TH>deal_id<TH>manager_id<TH>stage<TH>status"
            "<TH>created_at<TR><TD>d1<TD><b>m1</b><TD>Новая<TD>open<TD>02.03.2026 10:00:00"
            "<TR><TD>d2<TD>m2<TD>КП<TD>won<TD> 03.03.2026  11:30:00 </TABLE><table><tr><td>итого</td></tr></table>")
    write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": page})
    deals = load_folder(tmp_path).data.deals
    assert deals["deal_id"].tolist() == ["d1", "d2"] and deals["manager_id"].tolist() == ["m1", "m2"]
