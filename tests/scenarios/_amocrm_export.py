"""The deals export an amoCRM (Kommo) admin downloads from the web UI (Сделки → ⋯ → Экспорт, CSV
or Excel), built on tests/scenarios/_export_factory.py's company so the truth is known.

What is known about the real format (amoCRM help pages on export, and exports seen in the wild):
one row per deal; Russian headers in a Russian account: ID, Название сделки, Бюджет, Ответственный,
Дата создания, Кем создана, Дата изменения, Дата закрытия, Теги, Этап сделки, Воронка, then the
contact's and company's fields (Полное имя контакта, Компания контакта, ...), the utm_* fields and
every custom field under its own name (Источник, Причина отказа, ...); dates written
`25.03.2026 14:21:05`, naive, in the account's time zone; a closed deal shows its closing stage
(«Успешно реализовано» / «Закрыто и не реализовано») as its stage; «Неразобранное» is the
incoming stage before the first; pipelines share stage names; no stage history, no users file;
a removed user's name stays on their deals.

Kommo (amoCRM's international brand, `english=True`): the same export with English headers (ID,
Lead title, Budget, Responsible user, Date created, Created by, Last modified, Closed at, Tags,
Lead status, Pipeline, Contact, Company, utm_source, Source, Loss reason), the closing stages
"Closed - won" / "Closed - lost", "Incoming leads" before the first stage, the same
`dd.mm.yyyy hh:mm:ss` dates, and a budget of 0 where nobody filled it in.

What is a guess here: the exact header set and order (it depends on the account's fields and the
columns ticked), budgets written with a space or a non-breaking space between thousands
(`1 500 000`, as Russian Excel shows them) and empty or 0 when not set, the CSV's encoding and
delimiter (we write both UTF-8 with a BOM and `,`, and cp1251 with `;` as Russian Excel re-saves
it), an empty "Дата закрытия" on open deals, "Кем создана" as a person or «Робот», and «Дата
изменения» as the deal's latest touch.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _export_factory as factory
from _export_factory import STAGES, ExportSpec

WON, LOST, INCOMING = "Успешно реализовано", "Закрыто и не реализовано", "Неразобранное"
PIPELINES = ("Продажи", "Тендеры")
NAMES = ("Ержан Абенов", "Алия Сейтова", "Дмитрий Ким", "Динара Омарова", "Асель Нурланова",
         "Нурлан Жумабаев", "Марат Исаев", "Айгерим Бекова", "Сергей Попов", "Жанна Ли",
         "Тимур Ахметов", "Ольга Смирнова")
UTM = {"Сайт": "google", "Instagram": "instagram", "Звонок": "", "Рекомендация": "", "Выставка": ""}
FMT = "%d.%m.%Y %H:%M:%S"
# Kommo: the same columns under English titles (a guess at the exact wording), English stage names
EN_HEADERS = dict(zip(
    ("ID", "Название сделки", "Бюджет", "Ответственный", "Дата создания", "Кем создана",
     "Дата изменения", "Дата закрытия", "Теги", "Этап сделки", "Воронка", "Полное имя контакта",
     "Компания контакта", "utm_source", "Источник", "Причина отказа"),
    ("ID", "Lead title", "Budget", "Responsible user", "Date created", "Created by", "Last modified",
     "Closed at", "Tags", "Lead status", "Pipeline", "Contact", "Company", "utm_source", "Source",
     "Loss reason")))
EN_WON, EN_LOST, EN_INCOMING = "Closed - won", "Closed - lost", "Incoming leads"
EN_STAGES = dict(zip(STAGES, ("Initial contact", "Qualified", "Offer made", "Negotiation", "Contract")))
EN_PIPELINES = ("Sales", "Tenders")
EN_NAMES = ("John Carter", "Maria Lopez", "David Kim", "Priya Shah", "Anna Novak", "Omar Haddad",
            "Lucas Silva", "Emma Brown", "Sergei Popov", "Julia Li", "Tom Becker", "Olga Smirnova")
EN_SOURCES = {"Сайт": "Website", "Звонок": "Call", "Рекомендация": "Referral", "Instagram": "Instagram",
              "Выставка": "Trade show"}
EN_REASONS = {"Цена": "Price", "Выбрали конкурента": "Chose a competitor", "Нет бюджета": "No budget",
              "Сроки поставки": "Delivery time"}
HEADERS = ("ID", "Название сделки", "Бюджет", "Ответственный", "Дата создания", "Кем создана",
           "Дата изменения", "Дата закрытия", "Теги", "Этап сделки", "Воронка", "Полное имя контакта",
           "Компания контакта", "utm_source", "Источник", "Причина отказа")

# The deals part of the config README tells an amoCRM admin to write (a test adds head and files):
# «Этап сделки» is the stage and the status; only the closing stages are listed.
DEALS = '''[source.columns.deals]
deal_id = "ID"
title = "Название сделки"
amount = "Бюджет"
manager_id = "Ответственный"
created_at = "Дата создания"
closed_at = "Дата закрытия"
stage = "Этап сделки"
status = "Этап сделки"
pipeline = "Воронка"
client_id = "Компания контакта"
source = "Источник"
loss_reason = "Причина отказа"
[source.values.deals.status]
"Успешно реализовано" = "won"
"Закрыто и не реализовано" = "lost"
'''
# Kommo's, as README's example maps it (owner, budget, "Lead status"); KOMMO_MORE: the closing
# date and the rest a careful admin adds.
KOMMO = '''[source.columns.deals]
deal_id = "ID"
manager_id = "Responsible user"
amount = "Budget"
created_at = "Date created"
stage = "Lead status"
status = "Lead status"
{more}
[source.values.deals.status]
"Closed - won" = "won"
"Closed - lost" = "lost"
'''
KOMMO_MORE = 'closed_at = "Closed at"\ntitle = "Lead title"\nclient_id = "Company"\nloss_reason = "Loss reason"'


def kommo_recipe(more: str = KOMMO_MORE) -> str:
    return KOMMO.replace("{more}", more)


@dataclass
class AmoExport:
    spec: ExportSpec = field(default_factory=ExportSpec)
    tz: str = "Asia/Almaty"
    encoding: str = "utf8"          # "utf8": UTF-8 with a BOM and `,`; "cp1251": cp1251 and `;`; "xlsx"
    nbsp: bool = False              # thousands separated by a non-breaking space (else a space)
    second_pipeline: float = 0.25   # share of deals in «Тендеры» (same stage names)
    incoming_hours: float = 48      # open first-stage deals younger than this sit in «Неразобранное»
    empty_budget_share: float = 0.1
    english: bool = False           # Kommo: English headers, stages, names and a 0 budget when not filled


def _local(ts: str, tz: ZoneInfo) -> str:
    if not ts:
        return ""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz).strftime(FMT)


def _budget(value: float, sep: str) -> str:
    return f"{round(value):,}".replace(",", sep)


def build(w: AmoExport) -> list[dict]:
    """The export's rows (amoCRM's own headers), on the factory company in the account's zone."""
    tz = ZoneInfo(w.tz)
    tables = factory.company_tables(w.spec, tz)  # the company works 9-18 there
    rng = np.random.default_rng(w.spec.seed + 4242)
    end = w.spec.end
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(tables["managers"])}
    last_touch: dict[str, str] = {}
    for a in tables["activities"]:
        if a["done_at"] > last_touch.get(a["deal_id"], ""):
            last_touch[a["deal_id"]] = a["done_at"]
    sep = "\u00a0" if w.nbsp else " "
    rows = []
    for d in tables["deals"]:
        created = d["created_at"]
        t0 = datetime.fromisoformat(created.replace("Z", "+00:00"))
        stage = {"won": WON, "lost": LOST}.get(d["status"], d["stage"])
        if d["status"] == "open" and d["stage"] == STAGES[0] and end - t0 < timedelta(hours=w.incoming_hours):
            stage = INCOMING
        budget = "" if rng.random() < w.empty_budget_share else _budget(float(d["amount"]), sep)
        if not budget and rng.random() < 0.5:
            budget = "0"
        number = 20_000_000 + int(d["deal_id"][1:]) + (500_000 if d["deal_id"].startswith("x") else 0)
        touched = max(last_touch.get(d["deal_id"], ""), d["closed_at"] or "", created)
        owner = name_of[d["manager_id"]]
        rows.append({
            "ID": str(number),
            "Название сделки": d["title"].replace("Забытая сделка", "Сделка"),
            "Бюджет": budget,
            "Ответственный": owner,
            "Дата создания": _local(created, tz),
            "Кем создана": "Робот" if d["source"] in ("Сайт", "Instagram") else owner,
            "Дата изменения": _local(touched, tz),
            "Дата закрытия": _local(d["closed_at"], tz),
            "Теги": "опт" if rng.random() < 0.2 else "",
            "Этап сделки": stage,
            "Воронка": PIPELINES[1] if rng.random() < w.second_pipeline else PIPELINES[0],
            "Полное имя контакта": "Контакт " + d["client_id"].lstrip("cx"),
            "Компания контакта": d["client_id"].replace("c", "ТОО Клиент ", 1) if d["client_id"] else "",
            "utm_source": UTM.get(d["source"], ""),
            "Источник": d["source"],
            "Причина отказа": d["loss_reason"] if d["status"] == "lost" else "",
        })
    return [_english(r) for r in rows] if w.english else rows


def _english(row: dict) -> dict:
    """The same row as Kommo writes it: English titles and stage names, 0 for an unfilled budget."""
    stage = {WON: EN_WON, LOST: EN_LOST, INCOMING: EN_INCOMING}.get(row["Этап сделки"]) or EN_STAGES[row["Этап сделки"]]
    owner = EN_NAMES[NAMES.index(row["Ответственный"])]
    row = {**row, "Этап сделки": stage, "Ответственный": owner, "Бюджет": row["Бюджет"].replace(" ", ",") or "0",
           "Название сделки": row["Название сделки"].replace("Сделка", "Deal"),
           "Кем создана": "Robot" if row["Кем создана"] == "Робот" else owner,
           "Теги": "wholesale" if row["Теги"] else "", "Воронка": EN_PIPELINES[PIPELINES.index(row["Воронка"])],
           "Полное имя контакта": row["Полное имя контакта"].replace("Контакт", "Contact"),
           "Компания контакта": row["Компания контакта"].replace("ТОО Клиент ", "Client LLC "),
           "Источник": EN_SOURCES.get(row["Источник"], row["Источник"]),
           "Причина отказа": EN_REASONS.get(row["Причина отказа"], row["Причина отказа"])}
    return {EN_HEADERS[k]: v for k, v in row.items()}


def headers(w: AmoExport) -> list[str]:
    return [EN_HEADERS[h] for h in HEADERS] if w.english else list(HEADERS)


def file_name(w: AmoExport) -> str:
    return "amocrm_export_leads.xlsx" if w.encoding == "xlsx" else "amocrm_export_leads.csv"


def write(folder: Path, w: AmoExport) -> Path:
    """The export file as the UI downloads it (no users file: the web UI has none)."""
    rows = build(w)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(w)
    if w.encoding == "xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.append(headers(w))
        for r in rows:
            ws.append([r[h] for h in headers(w)])
        wb.save(path)
        return path
    enc, delim = ("utf-8-sig", ",") if w.encoding == "utf8" else ("cp1251", ";")
    with open(path, "w", newline="", encoding=enc) as f:
        wr = csv.DictWriter(f, fieldnames=headers(w), delimiter=delim)
        wr.writeheader()
        wr.writerows(rows)
    return path
