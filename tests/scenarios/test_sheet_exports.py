"""Issue 9 on deal lists kept by hand: a Google Sheets CRM downloaded as .csv and .xlsx, and a
monday.com board exported to Excel, built by tests/scenarios/_sheet_exports.py on the
_export_factory company (the truth is known), with a config written from README only. Run
through the real CLI and asserted on what the admin reads and on what was loaded: no group
title, repeated header, subitem or totals row becomes a deal, an amount written "1.2 млн" is
1,200,000, a date without its year is an error that says so, and nothing is alerted from what
the sheet does not hold.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import _sheet_exports as sheets
from _cli import run_cli
from _export_factory import DIRECTOR, files, head, touches_recipe
from _sheet_exports import MONDAY_DEALS, SHEET_DEALS, MondayBoard, SheetCRM, monday_spec, sheet_spec

UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # 10:00 in Almaty, a Friday
NOW = END + timedelta(hours=3)
MONDAY_FILE = "Deals_pipeline_1764500000.xlsx"


def _sheet_config(tmp_path: Path, name: str, s: SheetCRM, kind: str, lang: str = "ru") -> Path:
    folder = tmp_path / name
    if kind == "csv":
        sheets.write_sheet_csv(folder, s)
    else:
        sheets.write_sheet_xlsx(folder, s)
    config = tmp_path / f"{name}.toml"
    config.write_text(head(lang, sheets.TZ, "KZT", name) + files(deals=f"crm.{kind}") + SHEET_DEALS
                      + "\n" + DIRECTOR, encoding="utf-8")
    return config


def _monday_config(tmp_path: Path, name: str, b: MondayBoard, touches: bool = False) -> Path:
    sheets.write_monday(tmp_path / name, b, MONDAY_FILE)
    config = tmp_path / f"{name}.toml"
    tables = files(deals=MONDAY_FILE, activities=MONDAY_FILE) if touches else files(deals=MONDAY_FILE)
    recipe = touches_recipe("Item ID", "Person", "Last updated") if touches else ""
    config.write_text(head("en", b.tz, "USD", name) + tables + MONDAY_DEALS + recipe + "\n" + DIRECTOR,
                      encoding="utf-8")
    return config


def _load(config: Path):
    from bot.config import load_config
    from crm.load import load_crm

    cfg = load_config(config)
    return load_crm(cfg.source, timezone=cfg.timezone, base_dir=config.parent)


def _expected_amount(cell: object, truth: dict) -> float | None:
    """What the sheet's «Сумма» cell means: the words scale the number typed before them."""
    if cell == "":
        return None
    if isinstance(cell, str) and cell.endswith(("млн", "тыс")):
        number, word = cell.split()
        return float(number) * (1e6 if word == "млн" else 1e3)
    return float(truth["amount"])


# --- the Google Sheet --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["csv", "xlsx"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_google_sheet_reads_as_the_sheet_holds_it(tmp_path, seed, kind):
    """A title above the header, blank rows between months, «Итого» at the bottom, amounts as
    "1 200 000 ₸", "1.2 млн", "850 тыс" or a bare number, dates "05.03.2025" and "5 марта 2025":
    every deal is read with its day, outcome and amount; the totals row is no deal (it stopped
    the load as a deal without an id), "1.2 млн" is 1,200,000 (it stopped the load as not a
    number). The .xlsx's «Архив» sheet is not read, and check-config says so."""
    s = SheetCRM(sheet_spec(seed=seed, end=END), with_year=True, colour_only=0.0,
                 archive_before=(END - timedelta(days=60)).date() if kind == "xlsx" else None)
    config = _sheet_config(tmp_path, "sheet", s, kind)
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    assert any("'Итого" in ln and "totals" in ln and "not read" in ln for ln in out.splitlines()), out
    archive_note = [ln for ln in out.splitlines() if "only the first sheet ('Сделки') is read" in ln]
    assert bool(archive_note) == (kind == "xlsx"), out
    if kind == "xlsx":
        assert "'Архив'" in archive_note[0], archive_note
    main, archive = sheets.sheet_rows(s)
    assert (len(archive) > 20) == (kind == "xlsx")
    rows = {r["№"]: r for r in main if r}
    truth = sheets.truth(s)
    deals = _load(config).data.deals
    assert sorted(deals["deal_id"].astype(int)) == sorted(rows)  # no totals, spacer or archive row
    tz = ZoneInfo(sheets.TZ)
    words = 0
    for _, d in deals.iterrows():
        n = int(d["deal_id"])
        t, cell = truth[n - 1], rows[n]["Сумма"]
        assert d["status"] == t["status"], (n, d["status"], t["status"])
        created = datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")).astimezone(tz).date()
        assert d["created_at"].tz_convert(tz).date() == created, (n, d["created_at"], created)
        expected = _expected_amount(cell, t)
        if expected is None:
            assert pd.isna(d["amount"]), (n, cell, d["amount"])
        else:
            assert d["amount"] == pytest.approx(expected), (n, cell, d["amount"])
        words += isinstance(cell, str) and cell.endswith(("млн", "тыс"))
    assert words > 5 and (deals["currency"] == "KZT").all()


def test_closing_words_the_config_does_not_list_are_read_closed_with_one_warning(tmp_path):
    """The sheet's managers close deals in their own words: «оплачено», «Оплатили», «отказались»,
    «Слились» beside the mapped «оплатили», «отказ», «слились». «оплачено» and «отказались»
    were read as open stages (the deals open for ever, last in the pipeline); each is now read
    as its status with one warning that lists them with the lines to add."""
    s = SheetCRM(sheet_spec(seed=7, end=END), with_year=True, colour_only=0.0, free_words=0.4)
    config = _sheet_config(tmp_path, "words", s, "csv")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    warning = next(ln for ln in out.splitlines() if "named like a closing stage" in ln)
    for word, status in (("оплачено", "won"), ("Оплатили", "won"), ("отказались", "lost"), ("Слились", "lost")):
        assert f"'{word}' (" in warning and f'"{word}" = "{status}"' in warning, (word, warning)
    stages = next(ln for ln in out.splitlines() if ln.strip().startswith("stages "))
    assert "оплач" not in stages.lower() and "отказ" not in stages, stages
    truth = sheets.truth(s)
    deals = _load(config).data.deals
    assert (deals["status"].to_numpy() == [truth[int(n) - 1]["status"] for n in deals["deal_id"]]).all()


def test_a_sheet_calm_company_gets_no_alert_and_hears_what_is_not_checked(tmp_path):
    """The sheet has no closing date, no history and no touches: conversion, stalled deals and
    loss reasons are skipped with the column or table that would enable them, and nothing is
    sent to anyone (in Russian as configured)."""
    s = SheetCRM(sheet_spec(seed=3, end=END), with_year=True, colour_only=0.0)
    config = _sheet_config(tmp_path, "calm", s, "csv")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert json.loads(out) == [], out
    assert "skipped conversion_drop: needs column closed_at" in err, err
    assert "skipped stalled_deal" in err and "skipped loss_reasons: needs column loss_reason" in err, err
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0 and "конверсия по этапам (нужна колонка closed_at" in out, out


@pytest.mark.parametrize(("seed", "kind", "drop"), [(3, "csv", False), (4, "xlsx", True)])
def test_a_sheet_with_a_closing_day_gets_a_real_drop_and_no_false_one(tmp_path, seed, kind, drop):
    """With a column «Закрыта» (the day a deal was paid or refused) mapped as closed_at, the win
    rate is measured from outcomes: a calm company hears nothing; a planted drop (the chance to
    move on from «думает» cut to 45% eight weeks ago) is one item that names no segment."""
    from _export_factory import Effect

    effect = Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45) if drop else Effect()
    s = SheetCRM(sheet_spec(seed=seed, end=END, days=400, deals_per_month=250, n_managers=6, effect=effect),
                 with_year=True, colour_only=0.0, closed_column=True)
    config = _sheet_config(tmp_path, "closing", s, kind)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'amount = "Сумма"\n', f'amount = "Сумма"\nclosed_at = "{sheets.CLOSED}"\n'), encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    items = json.loads(out)
    assert [i["detector"] for i in items] == (["conversion_drop"] if drop else []), items
    if drop:
        assert "выигрыва" in items[0]["text"] and not items[0]["facts"].get("drivers"), items[0]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_date_without_its_year_is_an_error_not_a_guess(tmp_path, kind):
    """"05.03" and "5 марта" beside "05.03.2025": no year is read (pandas' parsers would take
    1900 or the current year), the error says the year is missing, names the rows and says
    what to write; the usual "give a format" hint would not help (a format needs a year)."""
    s = SheetCRM(sheet_spec(seed=4, end=END), colour_only=0.0)
    config = _sheet_config(tmp_path, "yearless", s, kind)
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    text = out + err
    assert "column 'Дата': a date without its year (the year is never guessed)" in text, text
    assert "write the full date in these cells (05.03.2025)" in text and "date_formats" not in text, text
    main, _ = sheets.sheet_rows(s)
    yearless = [r["Дата"] for r in main if r and isinstance(r["Дата"], str)]
    found = text.split("(found '")[1].split("'")[0]
    assert found in yearless, (found, yearless[:5])
    assert f"{len(yearless)} cells like this" in text, text


def test_a_year_or_a_month_alone_is_no_date(tmp_path):
    """ISO parsing reads "2025" as 1 January 2025 and "2025-03" as 1 March: a sheet's «Дата»
    holding only a year or a month is refused, not put on the first of the month."""
    s = SheetCRM(sheet_spec(seed=5, end=END, days=60), with_year=True, colour_only=0.0)
    config = _sheet_config(tmp_path, "month", s, "csv")
    path = tmp_path / "month" / "crm.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[4].split(",")
    cells[1] = "2025-03"
    lines[4] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert "row 5, column 'Дата': a year or a month without the day" in out + err, out + err


def test_a_stage_shown_only_by_colour_is_an_error_that_says_to_type_it(tmp_path):
    s = SheetCRM(sheet_spec(seed=6, end=END), with_year=True, colour_only=0.05)
    config = _sheet_config(tmp_path, "colour", s, "xlsx")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    main, _ = sheets.sheet_rows(s)
    empty = sum(1 for r in main if r and r["Этап"] == "")
    assert empty > 2 and f"stage is empty in {empty} row(s)" in out + err, out + err
    assert "shown only by the cell's colour is not in the file: type it in" in out + err, out + err


def test_amount_words_scale_the_number_and_a_word_alone_is_no_amount(tmp_path):
    """"1.2 млн", "1,5 млн ₸", "850 тыс", "2k" are read scaled (the tenge sign on some makes the
    column's currency, as without the words); a cell "млн" with no number is still an error
    naming the cell."""
    folder = tmp_path / "words"
    folder.mkdir()
    rows = ["№,Дата,Клиент,Менеджер,Этап,Сумма", '1,05.03.2025,А,Алия,думает,1.2 млн',
            '2,06.03.2025,Б,Тимур,думает,"1,5 млн ₸"', "3,07.03.2025,В,Алия,отказ,850 тыс",
            "4,08.03.2025,Г,Тимур,оплатили,2k", "5,09.03.2025,Д,Алия,думает,1 200 000 ₸",
            "6,10.03.2025,Е,Тимур,думает,500к", "7,11.03.2025,Ж,Алия,думает,75 тыс. ₸"]
    (folder / "crm.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "words.toml"
    config.write_text(head("ru", sheets.TZ, "USD", "words") + files(deals="crm.csv") + SHEET_DEALS
                      + "\n" + DIRECTOR, encoding="utf-8")
    deals = _load(config).data.deals.set_index("deal_id")
    assert deals["amount"].to_dict() == {"1": 1.2e6, "2": 1.5e6, "3": 8.5e5, "4": 2e3, "5": 1.2e6, "6": 5e5, "7": 7.5e4}
    assert (deals["currency"] == "KZT").all()
    (folder / "crm.csv").write_text("\n".join(rows + ["8,12.03.2025,З,Алия,думает,млн"]) + "\n", encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3 and "row 9, column 'Сумма': not a number (found 'млн')" in out + err, out + err


# --- the monday.com board ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_a_monday_board_reads_items_not_group_titles_headers_or_subitems(tmp_path, seed):
    """The board's name, each group's title ("Won") and the header repeated under it, and the
    "Subitems" blocks: none is a deal (a group title stopped the load as a deal without an id).
    Every item is read once with its outcome; the group titles are named in one warning."""
    b = MondayBoard(monday_spec(seed=seed, end=END))
    config = _monday_config(tmp_path, "board", b)
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    assert "the header row is repeated 2 time(s)" in out, out
    assert "3 row(s) hold only a group's title" in out and "('Active deals', 'Won', 'Lost'): not records" in out, out
    groups = sheets.monday_groups(b)
    items = [i for g in groups.values() for i in g]
    subs = sum(len(i["_subitems"]) for i in items)
    assert subs > 20 and f"{subs} subitem row(s)" in out, out
    deals = _load(config).data.deals
    assert sorted(deals["deal_id"]) == sorted(i["Item ID"] for i in items)
    outcome = {i["Item ID"]: {"Won": "won", "Lost": "lost"}.get(g, "open") for g, its in groups.items() for i in its}
    assert (deals["status"] == deals["deal_id"].map(outcome)).all()
    assert not deals["title"].str.startswith(("Call for", "Send quote for")).any()
    # the group titles travel in a column "Group": a board whose groups are the outcomes maps it
    by_group = config.read_text(encoding="utf-8").replace('status = "Status"', 'status = "Group"').replace(
        '"Lost" = "lost"\n', '"Lost" = "lost"\n"Active deals" = "open"\n')
    config.write_text(by_group, encoding="utf-8")
    deals = _load(config).data.deals
    assert (deals["status"] == deals["deal_id"].map(outcome)).all()
    assert set(deals.loc[deals["status"] == "open", "stage"]) <= set(sheets.MONDAY_STAGES)


def test_a_monday_board_with_its_last_updated_as_touches_is_quiet_when_calm(tmp_path):
    """README's last-activity recipe on the board: the subitems are not read as touches either,
    stalled deals are checked, and a calm company gets nothing."""
    b = MondayBoard(monday_spec(seed=3, end=END))
    config = _monday_config(tmp_path, "calm", b, touches=True)
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert "skipped stalled_deal" not in err, err
    assert json.loads(out) == [], out


@pytest.mark.parametrize("seed", [1, 2])
def test_deals_left_behind_on_a_monday_board_are_found_and_only_they(tmp_path, seed):
    """Six deals one person left at Discovery months ago (nobody updated them since): with the
    last-activity recipe they are one stalled_deal item to that person naming exactly those six;
    the subitems' dates (a "Call" subitem is no update of its item) play no part."""
    b = MondayBoard(monday_spec(seed=seed, end=END, abandoned=("m2", 6)))
    config = _monday_config(tmp_path, "left", b, touches=True)
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    items = json.loads(out)
    left = {i["Item ID"] for g in sheets.monday_groups(b).values() for i in g if sheets.left_behind(i["Item ID"])}
    assert len(left) == 6
    assert [i["detector"] for i in items] == ["stalled_deal"], items
    assert set(items[0]["evidence"]["deal_ids"]) == left, items[0]["evidence"]


def test_a_sheet_without_an_id_mapping_is_told_which_column_or_what_to_add(tmp_path):
    """A sheet's deals have no id field: the error names the «№» column the sheet has, and, for a
    sheet without one, says to add a numbering column (a row's position moves, so it is no id)."""
    s = SheetCRM(sheet_spec(seed=8, end=END, days=60), with_year=True, colour_only=0.0)
    config = _sheet_config(tmp_path, "noid", s, "csv")
    config.write_text(config.read_text(encoding="utf-8").replace('deal_id = "№"\n', ""), encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3 and 'Fix: map the id column in config: [source.columns.deals] deal_id = "№"' in out + err, out + err
    path = tmp_path / "noid" / "crm.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("№,", "Шаг,", 1), encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3 and "add a column numbering the rows (1, 2, 3, ...)" in out + err, out + err
