"""Two hand-kept deal lists, built on tests/scenarios/_export_factory.py's company so the truth
is known: a Google Sheets CRM (downloaded as .xlsx and as .csv) and a monday.com board exported
to Excel.

The Google Sheet, as small Russian-speaking teams keep one (not a product: these are the habits
seen in such sheets, not checked against one file): a title line above the header; columns «№»,
«Дата», «Клиент», «Менеджер» (first names only), «Этап» in free words («новый», «думает», «КП
отправлено», «переговоры», «счёт выставлен»; «оплатили» won, «отказ» and «слились» lost;
`free_words`: also «Оплатили», «оплачено», «отказались», «Слились»), «Сумма» written as the
manager typed it ("1 200 000 ₸", "1.2 млн", "850 тыс", a bare number or nothing) and
«Комментарий». «Дата» mixes "05.03.2025", "5 марта" and "05.03" (no year) in one
column; a blank spacer row between months; an «Итого» row with the sum at the bottom; a few
deals whose stage is only the cell's colour (the cell is empty). No closing date: nobody writes
down when a deal was paid (`closed_column`: a column «Закрыта» with that day). In the .xlsx a
full date is a date cell (Google Sheets turns a typed "05.03.2025" into one); the rest stays
text. Its second sheet, «Архив», holds the deals closed before `archive_before` (the first
sheet keeps the rest). Not modelled: Google Sheets turns a typed "05.03" into a date cell of
the current year, which no reader can tell from a real date.

The monday.com board ("Export board to Excel"; assumptions: monday's help pages were not
available to check, so this follows what exported boards are commonly described as; a per-group
sum row, if the export writes one, is not modelled): the board
name in the first row, a blank row, then per group a row with the group's title alone ("Active
deals", "Won", "Lost"), the header row repeated ("Name", "Item ID" (a column the admin adds:
monday's export has no id otherwise), "Person" (full names), "Status", "Deal Value", "Date",
"Timeline" ("2025-03-01 - 2025-03-14"), "Last updated" ("2025-03-14 10:22:00")), the group's
items, and a blank row. Under an item with subitems: a row "Subitems" + the subitems' own
header ("Name", "Owner", "Status", "Date") and the subitems, first cell empty. The item's
"Status" is its stage (won and lost deals are also in their group; the Status of a won deal is
"Won", of a lost one "Lost"). "Date" is the day the deal was created, "Last updated" the last
touch.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _export_factory as factory
from _export_factory import ExportSpec

TZ = "Asia/Almaty"
# --- the Google Sheet ----------------------------------------------------------------------------
SHEET_STAGES = ("новый", "думает", "КП отправлено", "переговоры", "счёт выставлен")
WON_WORD, LOST_WORDS = "оплатили", ("отказ", "слились")
SHEET_HEADERS = ("№", "Дата", "Клиент", "Менеджер", "Этап", "Сумма", "Комментарий")
CLOSED = "Закрыта"  # the column a sheet may add: the day a deal was paid or refused
MONTHS_RU = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
             "октября", "ноября", "декабря")
TITLE = "CRM отдела продаж (не удалять формулы!)"
TOTAL = "Итого"


def sheet_spec(**kw) -> ExportSpec:
    """The factory company walking the sheet's five open stages."""
    return ExportSpec(**{"stages": SHEET_STAGES, "n_managers": 4, "deals_per_month": 60, "days": 150,
                         "with_emails": False, **kw})


@dataclass
class SheetCRM:
    spec: ExportSpec = field(default_factory=sheet_spec)
    short_dates: float = 0.15     # share of «Дата» written "5 марта" (`with_year`: "5 марта 2025")
    with_year: bool = False       # True: every date has its year ("5 марта 2025", no "05.03")
    yearless: float = 0.1         # share written "05.03"
    million_words: float = 0.1    # share of amounts written "1.2 млн" / "850 тыс"
    tenge_sign: float = 0.3       # share written "1 200 000 ₸"
    empty_amount: float = 0.1
    colour_only: float = 0.03     # stage cells left empty (the stage is the cell's colour)
    free_words: float = 0.0       # share of closed deals with another word ("Оплатили", «отказались»)
    archive_before: date | None = None  # deals closed before this day go to the «Архив» sheet
    closed_column: bool = False   # a column «Закрыта» after «Комментарий»: the day it closed


def _day(ts: datetime, tz: ZoneInfo) -> date:
    return ts.astimezone(tz).date()


def sheet_rows(s: SheetCRM) -> tuple[list[dict], list[dict]]:
    """(main sheet rows, archive rows), each a dict of SHEET_HEADERS -> a Python value (a date,
    a number or text); a main-sheet row {} is a blank spacer. Row order: by «Дата»."""
    tz = ZoneInfo(TZ)
    tables = factory.company_tables(s.spec, tz)
    rng = np.random.default_rng(s.spec.seed + 4242)
    name_of = {m["manager_id"]: factory.FIRST[k % len(factory.FIRST)] for k, m in enumerate(tables["managers"])}
    main: list[dict] = []
    archive: list[dict] = []
    month = None
    for n, d in enumerate(sorted(tables["deals"], key=lambda r: r["created_at"]), start=1):
        created, closed = factory._t(d["created_at"]), factory._t(d["closed_at"])
        day = _day(created, tz)
        u = rng.random()
        year = f" {day.year}" if s.with_year else ""
        when: object = (f"{day.day} {MONTHS_RU[day.month - 1]}{year}" if u < s.short_dates else
                        day.strftime("%d.%m") + year.replace(" ", ".") if u < s.short_dates + s.yearless else day)
        if d["status"] == "won":
            stage = WON_WORD if rng.random() >= s.free_words else ("Оплатили", "оплачено")[int(rng.integers(2))]
        elif d["status"] == "lost":
            stage = (LOST_WORDS[int(rng.integers(2))] if rng.random() >= s.free_words else
                     ("отказались", "Слились")[int(rng.integers(2))])
        else:
            stage = d["stage"]
        if rng.random() < s.colour_only:
            stage = ""
        amount = float(d["amount"])
        v = rng.random()
        if v < s.empty_amount:
            cell: object = ""
        elif v < s.empty_amount + s.million_words:
            cell = (f"{amount / 1e6:.1f} млн".replace(".0 ", " ") if amount >= 1e6 else f"{round(amount / 1e3)} тыс")
        elif v < s.empty_amount + s.million_words + s.tenge_sign:
            cell = f"{amount:,.0f} ₸".replace(",", " ")
        else:
            cell = amount
        row = {"№": n, "Дата": when, "Клиент": "ТОО " + d["client_id"].replace("c", "Клиент ", 1),
               "Менеджер": name_of[d["manager_id"]], "Этап": stage, "Сумма": cell,
               "Комментарий": "перезвонить" if rng.random() < 0.2 else ""}
        if s.closed_column:
            row[CLOSED] = "" if closed is None else _day(closed, tz)
        if s.archive_before and closed is not None and _day(closed, tz) < s.archive_before:
            archive.append(row)
            continue
        if month is not None and day.month != month:
            main.append({})  # a blank row between months
        month = day.month
        main.append(row)
    return main, archive


def truth(s: SheetCRM) -> list[dict]:
    """The factory's deals in the sheet's order (row k of sheet_rows' deals is truth()[k])."""
    tables = factory.company_tables(s.spec, ZoneInfo(TZ))
    return sorted(tables["deals"], key=lambda r: r["created_at"])


def _text(value: object) -> str:
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


def _total(rows: list[dict]) -> float:
    """What the sheet's =СУММ() shows: only the cells that are numbers."""
    return float(sum(r["Сумма"] for r in rows if isinstance(r.get("Сумма"), float)))


def headers(s: SheetCRM) -> tuple[str, ...]:
    return SHEET_HEADERS + ((CLOSED,) if s.closed_column else ())


def write_sheet_csv(folder: Path, s: SheetCRM, name: str = "crm.csv") -> Path:
    """File → Download → CSV of the first sheet: UTF-8, `,`, dates as displayed (dd.mm.yyyy)."""
    main, _ = sheet_rows(s)
    cols = headers(s)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([TITLE] + [""] * (len(cols) - 1))
        w.writerow(cols)
        for r in main:
            w.writerow([_text(r.get(h, "")) for h in cols])
        w.writerow([""] * len(cols))
        w.writerow(["", TOTAL, "", "", "", _text(_total(main))] + [""] * (len(cols) - 6))
    return path


def write_sheet_xlsx(folder: Path, s: SheetCRM, name: str = "crm.xlsx") -> Path:
    """File → Download → Microsoft Excel: both sheets, full dates as date cells."""
    from openpyxl import Workbook

    main, archive = sheet_rows(s)
    cols = headers(s)
    wb = Workbook()
    for ws, rows in ((wb.active, main), (wb.create_sheet("Архив"), archive)):
        ws.append([TITLE])
        ws.append(list(cols))
        for r in rows:
            ws.append([None if r.get(h, "") == "" else r[h] for h in cols])
    wb.active.title = "Сделки"
    wb.active.append([])
    wb.active.append([None, TOTAL, None, None, None, _total(main)] + [None] * (len(cols) - 6))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    wb.save(path)
    return path


# The config an admin writes for the sheet from README (a test adds head and files).
SHEET_DEALS = '''[source.columns.deals]
deal_id = "№"
created_at = "Дата"
client_id = "Клиент"
manager_id = "Менеджер"
stage = "Этап"
status = "Этап"
amount = "Сумма"
[source.values.deals.status]
"оплатили" = "won"
"отказ" = "lost"
"слились" = "lost"
'''

# --- the monday.com board ------------------------------------------------------------------------
BOARD = "Deals pipeline"
GROUPS = ("Active deals", "Won", "Lost")
MONDAY_STAGES = ("New", "Discovery", "Proposal", "Negotiation", "Contract sent")
MONDAY_HEADERS = ("Name", "Item ID", "Person", "Status", "Deal Value", "Date", "Timeline", "Last updated")
SUB_HEADERS = ("Subitems", "Name", "Owner", "Status", "Date")
NAMES = ("Alex Morgan", "Dana Cruz", "Ken Ito", "Lea Roth", "Omar Said", "Sara Nyberg", "Tim Vance", "Uma Patel")


ITEM_BASE = 1_800_000_000


def left_behind(item_id: str) -> bool:
    """An item the factory's `abandoned` manager left behind (its id is 1 modulo 3 above ITEM_BASE)."""
    return (int(item_id) - ITEM_BASE) % 3 == 1


def monday_spec(**kw) -> ExportSpec:
    return ExportSpec(**{"stages": MONDAY_STAGES, "n_managers": 6, "deals_per_month": 80, "days": 200,
                         "with_emails": False, **kw})


@dataclass
class MondayBoard:
    spec: ExportSpec = field(default_factory=monday_spec)
    tz: str = "Europe/Berlin"
    subitems: float = 0.2   # share of items with two subitems under them


def monday_groups(b: MondayBoard) -> dict[str, list[dict]]:
    """Group title -> its items (dicts over MONDAY_HEADERS, plus "_subitems": rows over SUB_HEADERS)."""
    tz = ZoneInfo(b.tz)
    tables = factory.company_tables(b.spec, tz)
    rng = np.random.default_rng(b.spec.seed + 5151)
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(tables["managers"])}
    touched: dict[str, str] = {}
    for a in tables["activities"]:
        touched[a["deal_id"]] = max(touched.get(a["deal_id"], ""), a["done_at"])
    groups: dict[str, list[dict]] = {g: [] for g in GROUPS}
    for d in tables["deals"]:
        created, closed = factory._t(d["created_at"]), factory._t(d["closed_at"])
        last = max(factory._t(touched.get(d["deal_id"], "")) or created, closed or created)
        group = {"won": "Won", "lost": "Lost"}.get(d["status"], "Active deals")
        status = {"won": "Won", "lost": "Lost"}.get(d["status"], d["stage"])
        start = created.astimezone(tz).date()
        item = {"Name": d["title"].replace("Забытая сделка", "Deal").replace("Сделка", "Deal"),
                "Item ID": str(ITEM_BASE + int(d["deal_id"].lstrip("dx")) * 3 + d["deal_id"].startswith("x")),
                "Person": name_of[d["manager_id"]], "Status": status,
                "Deal Value": round(float(d["amount"]) / 500), "Date": start.isoformat(),
                "Timeline": f"{start.isoformat()} - {(start + timedelta(days=int(rng.integers(7, 30)))).isoformat()}",
                "Last updated": last.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), "_subitems": []}
        if rng.random() < b.subitems:
            item["_subitems"] = [{"Subitems": "", "Name": f"{what} for {item['Name']}", "Owner": item["Person"],
                                  "Status": "Done" if rng.random() < 0.5 else "Working on it",
                                  "Date": (start + timedelta(days=k + 1)).isoformat()}
                                 for k, what in enumerate(("Call", "Send quote"))]
        groups[group].append(item)
    return groups


def write_monday(folder: Path, b: MondayBoard, name: str = "Deals_pipeline_1764500000.xlsx") -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = BOARD
    ws.append([BOARD])
    ws.append([])
    for group, items in monday_groups(b).items():
        ws.append([group])
        ws.append(list(MONDAY_HEADERS))
        for item in items:
            ws.append([item[h] for h in MONDAY_HEADERS])
            if item["_subitems"]:
                ws.append(list(SUB_HEADERS))
                for sub in item["_subitems"]:
                    ws.append([sub[h] or None for h in SUB_HEADERS])
        ws.append([])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    wb.save(path)
    return path


# The config README tells a monday.com admin to write (a test adds head and files).
MONDAY_DEALS = '''[source.columns.deals]
deal_id = "Item ID"
title = "Name"
manager_id = "Person"
stage = "Status"
status = "Status"
amount = "Deal Value"
created_at = "Date"
[source.values.deals.status]
"Won" = "won"
"Lost" = "lost"
'''
