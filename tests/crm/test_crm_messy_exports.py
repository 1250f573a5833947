"""What hand-made exports of a real Kazakh admin tripped over: each case as the admin met it."""
from __future__ import annotations

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


@pytest.mark.parametrize("content", [b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
                                     b"<html><body><table><tr><td>deal_id</td></tr></table></body></html>"])
def test_an_xls_deals_file_is_named_not_reported_missing(tmp_path, content):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.xls": content})
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


def test_mixed_currency_signs_without_a_currency_column_warn_and_fill_nothing(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals(["$1,200", "1 200 ₸", "500 ₸"])})
    result = load_folder(folder)
    assert result.data.deals["amount"].tolist() == [1200.0, 1200.0, 500.0]
    assert result.data.deals["currency"].isna().all()
    mixed = [str(w) for w in result.warnings if w.code == "mixed_currencies"]
    assert len(mixed) == 1 and "KZT (2), USD (1)" in mixed[0] and "add a currency column" in mixed[0]


def test_a_bad_amount_with_a_sign_shows_the_cell_as_written(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS,
                              "deals.csv": _deals(["100 ₸", "12 abc ₸"])})
    with pytest.raises(DataError) as err:
        load_folder(folder)
    text = str(err.value)
    assert "row 3, column 'amount': not a number (found '12 abc ₸')" in text


def test_plain_amounts_keep_the_decimal_comma_and_get_no_currency(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": _deals(["1,5", "1 200,50"])})
    deals = load_folder(folder).data.deals
    assert deals["amount"].tolist() == [1.5, 1200.5] and deals["currency"].isna().all()
