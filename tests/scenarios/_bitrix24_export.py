"""The deals (and leads) list a Bitrix24 admin exports from the web UI (CRM → Сделки → ⚙ →
Экспорт: CSV or "Excel"), built on tests/scenarios/_export_factory.py's company so the truth is
known.

Known about the real format (Bitrix24's own UI and the REST field names in
/work/shared/crm_api/bitrix24): the list is exported with the column titles the portal shows in
its language (ID, Название, Ответственный, Стадия сделки, Направление, Сумма, Валюта, Дата
создания, Дата изменения, Дата начала, Дата завершения, Сделка закрыта, Источник, Компания,
Контакт, Комментарий, UTM Source); the owner is the user's display name (a fired user keeps
his name on his deals); the default stages of a direction (pipeline, CATEGORY_ID) are Новая,
Подготовка документов, Счёт на предоплату, В работе, Финальный счёт, closing with «Сделка
успешна» (WON) or «Сделка провалена» / «Анализ причины провала» (both of failure semantics);
every direction has its own copy of the stages, with the same names unless renamed; CLOSEDATE
(«Дата завершения») is the planned close date on an open deal; CLOSED is Y/N («Да»/«Нет»);
«Сумма» (OPPORTUNITY) with a currency per deal; timestamps are naive, in the portal's time
zone, written `25.03.2026 14:21:05`; no loss-reason field unless the company adds one; no stage
history; no users file. The "Excel" export is an HTML table saved with an .xls name (Excel
warns that the format and the extension do not match).

An owner who left is the factory's `inactive_flagged` manager: deals in the first two months
only, and (with `abandoned`) open deals left behind under his name.

Guesses (not checked against a real file): the CSV's delimiter (`;` here) and encoding (UTF-8
with a BOM here; cp1251 on request), how the HTML is laid out (a <meta charset>, one
<table border="1"> with a <thead> of <th> cells, entities such as &quot;, <br> inside
comments), that a stage deleted since shows its code (`C1:UC_3F9K2A`), the currency as an ISO
code (`currency_names`: as the currency's name), amounts with a decimal point and no grouping,
that «Дата завершения» of a closed deal is the day it closed (it may stay the planned date; the
list may also offer «Дата изменения стадии», MOVED_TIME, closer to the real closing), the leads
list's titles (ID, Название лида, Стадия, Источник, Дата создания, Ответственный) and stage
names (Необработанный лид, В работе, Качественный лид, Некачественный лид), and the source names
(Веб-сайт, Звонок, По рекомендации, Выставка; Instagram added by the company).
"""
from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _export_factory as factory
from _export_factory import STAGES, ExportSpec

B24_STAGES = ("Новая", "Подготовка документов", "Счёт на предоплату", "В работе", "Финальный счёт")
WON, LOST, APOLOGY = "Сделка успешна", "Сделка провалена", "Анализ причины провала"
DIRECTIONS = ("Общее", "Повторные продажи")
DELETED_STAGE = "C1:UC_3F9K2A"
B24_SOURCES = {"Сайт": "Веб-сайт", "Звонок": "Звонок", "Рекомендация": "По рекомендации",
               "Instagram": "Instagram", "Выставка": "Выставка"}
LEAD_STAGES = ("Необработанный лид", "В работе", "Качественный лид", "Некачественный лид")
NAMES = ("Ержан Сапаров", "Алия Нурланова", "Дмитрий Ковалёв", "Динара Ахметова", "Асель Каримова",
         "Нурлан Абенов", "Марат Исаев", "Айгерим Жумабаева", "Сергей Волков", "Жанна Омарова",
         "Тимур Бекмуханов", "Ольга Ким")
CURRENCIES = ("KZT", "RUB", "USD")
RATE = {"KZT": 1.0, "RUB": 5.5, "USD": 480.0}  # tenge per unit, for believable amounts
CURRENCY_NAMES = {"KZT": "Тенге", "RUB": "Российский рубль", "USD": "Доллар США"}
FMT = "%d.%m.%Y %H:%M:%S"

# The deals part of the config README tells a Bitrix24 admin to write (a test adds head, files and
# leads): «Стадия сделки» is the stage and the status, the closing stages listed, a deleted
# stage's code read as lost.
DEALS = '''[source.columns.deals]
deal_id = "ID"
title = "Название"
manager_id = "Ответственный"
stage = "Стадия сделки"
status = "Стадия сделки"
pipeline = "Направление"
amount = "Сумма"
currency = "Валюта"
created_at = "Дата создания"
closed_at = "Дата завершения"
source = "Источник"
client_id = "Компания"
[source.values.deals.status]
"Сделка успешна" = "won"
"Сделка провалена" = "lost"
"Анализ причины провала" = "lost"
"C1:UC_3F9K2A" = "lost"
'''
OPEN_STAGES = "".join(f'"{s}" = "open"\n' for s in B24_STAGES)  # listed too, though README needs only the closing ones
LEADS = '''[source.columns.leads]
lead_id = "ID"
created_at = "Дата создания"
source = "Источник"
manager_id = "Ответственный"
status = "Стадия"
'''


@dataclass
class Bitrix24Export:
    spec: ExportSpec = field(default_factory=ExportSpec)
    tz: str = "Asia/Almaty"
    second_direction: float = 0.25   # share of deals in «Повторные продажи»
    apology_share: float = 0.3       # lost deals left at «Анализ причины провала»
    deleted_stage_share: float = 0.02  # closed deals of the second direction whose stage was deleted since
    currency_mix: tuple[float, float, float] = (0.7, 0.2, 0.1)  # KZT, RUB, USD
    empty_amount_share: float = 0.1
    encoding: str = "utf-8-sig"      # or "cp1251"
    currency_names: bool = False     # «Валюта» as the list shows it (Тенге, Российский рубль, Доллар США), not the code


def _local(ts: str, tz: ZoneInfo) -> str:
    if not ts:
        return ""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz).strftime(FMT)


def _plus_days(ts: str, days: float) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(days=days)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def build(b: Bitrix24Export) -> dict[str, list[dict]]:
    """{"deals": rows, "leads": rows} with Bitrix24's own titles, plus "truth": the factory's tables
    and who is who (names of the working, the fired, the never-active)."""
    tz = ZoneInfo(b.tz)
    tables = factory.company_tables(b.spec, tz)
    rng = np.random.default_rng(b.spec.seed + 2424)
    mgrs = tables["managers"]
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(mgrs)}
    working = [m["manager_id"] for m in mgrs if m["name"].split()[-1].startswith("W")]
    deals = []
    for d in tables["deals"]:
        k = STAGES.index(d["stage"])
        second = rng.random() < b.second_direction
        if d["status"] == "won":
            stage = WON
        elif d["status"] == "lost":
            stage = APOLOGY if rng.random() < b.apology_share else LOST
            if second and rng.random() < b.deleted_stage_share / max(b.second_direction, 1e-9):
                stage = DELETED_STAGE
        else:
            stage = B24_STAGES[k]
        cur = CURRENCIES[int(rng.choice(3, p=b.currency_mix))]
        amount = "" if rng.random() < b.empty_amount_share else f"{float(d['amount']) / RATE[cur]:.2f}"
        created, closed = d["created_at"], d["closed_at"]
        planned = closed or _plus_days(created, float(rng.uniform(14, 45)))
        modified = closed or min(_plus_days(created, float(rng.uniform(0, 3))), factory._iso(b.spec.end))
        number = int(d["deal_id"][1:]) + (50_000 if d["deal_id"].startswith("x") else 0)
        deals.append({
            "ID": str(number),
            "Название": d["title"],
            "Ответственный": name_of[d["manager_id"]],
            "Стадия сделки": stage,
            "Направление": DIRECTIONS[1] if second else DIRECTIONS[0],
            "Сумма": amount,
            "Валюта": CURRENCY_NAMES[cur] if b.currency_names else cur,
            "Дата создания": _local(created, tz),
            "Дата изменения": _local(modified, tz),
            "Дата начала": _local(created, tz)[:10],
            "Дата завершения": _local(planned, tz)[:10],
            "Сделка закрыта": "Да" if d["status"] != "open" else "Нет",
            "Источник": B24_SOURCES.get(d["source"], "Другое"),
            "Компания": "ТОО \"Клиент " + d["client_id"] + "\"",
            "Контакт": "",
            "Комментарий": (d["loss_reason"] + "<br>перезвонить в квартале") if d["loss_reason"] and rng.random() < 0.3 else "",
            "UTM Source": "instagram" if d["source"] == "Instagram" else "",
        })
    leads = []
    for n, lead in enumerate(tables["leads"]):
        stage = {"converted": LEAD_STAGES[2], "in_work": LEAD_STAGES[1], "new": LEAD_STAGES[0]}[lead["status"]]
        if lead["status"] == "in_work" and rng.random() < 0.2:
            stage = LEAD_STAGES[3]
        leads.append({"ID": str(n + 1), "Название лида": f"Заявка {n + 1}", "Стадия": stage,
                      "Источник": B24_SOURCES.get(lead["source"], "Другое"),
                      "Дата создания": _local(lead["created_at"], tz),
                      "Ответственный": name_of[lead["manager_id"]]})
    truth = {"tables": tables, "name_of": name_of, "working": [name_of[m] for m in working],
             "left": [name_of[m["manager_id"]] for m in mgrs if m["active"] == "false"]}
    return {"deals": deals, "leads": leads, "truth": truth}


def _csv(path: Path, rows: list[dict], encoding: str) -> None:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)


def html_table(rows: list[dict]) -> str:
    """Bitrix24's "Excel" export: an HTML page holding one table (the guess described above)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(v).replace('&lt;br&gt;', '<br>')}</td>"
                                      for v in r.values()) + "</tr>" for r in rows)
    return ('<meta http-equiv="Content-type" content="text/html;charset=utf-8" />\n'
            f'<table border="1">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n')


def write(folder: Path, b: Bitrix24Export, excel: bool = False, leads: bool = True) -> dict:
    """deals (DEAL_<date>.csv, or .xls holding an HTML table) and leads (LEAD_<date>.csv/.xls) as
    the UI downloads them; returns build()'s truth."""
    built = build(b)
    folder.mkdir(parents=True, exist_ok=True)
    for table in ("deals", "leads") if leads else ("deals",):
        name = ("DEAL" if table == "deals" else "LEAD") + "_20261120"
        if excel:
            (folder / f"{name}.xls").write_text(html_table(built[table]), encoding="utf-8")
        else:
            _csv(folder / f"{name}.csv", built[table], b.encoding)
    return built["truth"]
