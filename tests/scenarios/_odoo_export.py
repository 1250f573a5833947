"""The "Pipeline" list an Odoo CRM user exports (CRM → Pipeline → list view → select all →
Export, or "Export All"), built on tests/scenarios/_export_factory.py's company so the truth is
known.

Known about the format (Odoo's crm.lead model, its export dialog and its lost/won rules, from
Odoo's source and documentation): one row per opportunity, headed by the field labels in the
user's language; won is a stage (`stage_id.is_won`, "Won") with Probability 100; a LOST deal is
archived: Active = False, Probability 0, it keeps the stage it was lost at and gets a Lost
Reason; marking won or lost sets Closed Date (`date_closed`); "Last Stage Update"
(`date_last_stage_update`) is when the deal entered its current stage, and is the only stage
timing (no stage history in the list); "Expected Closing" (`date_deadline`) is a date, the
planned close; "Expected Revenue" is in the company's currency ("Currency" = company_currency),
so a multi-company database mixes currencies in one column; many-to-one fields are display
names ("Mitchell Admin"). The list's default filter hides archived records: unless the user
adds the "Archived"/"Lost" filter (or removes the default one), the export has NO lost deal.
With "I want to update data (import-compatible export)" ticked the header is the technical
field names (`user_id/id` for the salesperson's external id, "__export__.res_users_7_1a2b3c4d").
Datetimes are naive, in the exporting user's time zone (Odoo 12 on, odoo/odoo#29576 "Export
converts the value in the user's TZ"; until Odoo 11 always UTC), so a user whose Preferences
have no time zone exports UTC (`user_tz_unset`); Date fields (Expected Closing) are plain days.

Guesses (not checked against a real file): the Russian labels (Возможность, Клиент, Продавец,
Команда продаж, Этап, Ожидаемый доход, Вероятность, Создано, Ожидаемое закрытие, Дата закрытия,
Причина проигрыша, Активно, Последнее обновление этапа, Валюта, Компания, Источник) and stage
names (Новая, Квалифицирована, Предложение, Выиграно); booleans written True/False in csv;
datetimes "2025-03-14 10:22:05", dates "2025-03-14"; amounts with a decimal point, no grouping.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _export_factory as factory
from _export_factory import ExportSpec

UTC = timezone.utc
OPEN_STAGES = {"en": ("New", "Qualified", "Proposition"), "ru": ("Новая", "Квалифицирована", "Предложение")}
WON = {"en": "Won", "ru": "Выиграно"}
PROBABILITY = (10.0, 30.0, 60.0)  # an open deal's Probability at each open stage (PLS moves it; roughly)
LABELS = {  # canonical meaning -> the column's label in the UI language, and its technical name
    "id": ("ID", "ID", "id"),
    "title": ("Opportunity", "Возможность", "name"),
    "client": ("Customer", "Клиент", "partner_id"),
    "owner": ("Salesperson", "Продавец", "user_id/id"),
    "team": ("Sales Team", "Команда продаж", "team_id"),
    "stage": ("Stage", "Этап", "stage_id"),
    "amount": ("Expected Revenue", "Ожидаемый доход", "expected_revenue"),
    "currency": ("Currency", "Валюта", "company_currency"),
    "probability": ("Probability", "Вероятность", "probability"),
    "created": ("Created on", "Создано", "create_date"),
    "deadline": ("Expected Closing", "Ожидаемое закрытие", "date_deadline"),
    "closed": ("Closed Date", "Дата закрытия", "date_closed"),
    "stage_update": ("Last Stage Update", "Последнее обновление этапа", "date_last_stage_update"),
    "updated": ("Last Updated on", "Последнее обновление", "write_date"),
    "reason": ("Lost Reason", "Причина проигрыша", "lost_reason_id"),
    "active": ("Active", "Активно", "active"),
    "source": ("Source", "Источник", "source_id"),
    "company": ("Company", "Компания", "company_id"),
}
SOURCES = {"Сайт": "Website", "Звонок": "Phone", "Рекомендация": "Referral", "Instagram": "Instagram",
           "Выставка": "Trade Show"}
REASONS = {"en": {"Цена": "Too expensive", "Выбрали конкурента": "We don't have people/skills",
                  "Нет бюджета": "Not enough stock", "Сроки поставки": "Delivery time"},
           "ru": {"Цена": "Слишком дорого", "Выбрали конкурента": "Выбрали конкурента",
                  "Нет бюджета": "Нет бюджета", "Сроки поставки": "Сроки поставки"}}
NAMES = ("Mitchell Admin", "Marc Demo", "Anna Petrova", "Ivan Sokolov", "Aigerim Zhumabayeva", "Omar Haddad",
         "Julia Li", "Tom Becker", "Olga Smirnova", "Lucas Silva", "Emma Brown", "Sergei Popov")
COMPANIES = (("My Company (Almaty)", "KZT", 1.0), ("My Company (Moscow)", "RUB", 5.5))  # name, currency, tenge per unit
TEAMS = ("Sales", "Website")


def odoo_spec(**kw) -> ExportSpec:
    """The factory company walking Odoo's three default open stages, then Won."""
    return ExportSpec(**{"stages": OPEN_STAGES["en"], "advance": (0.8, 0.6, 0.6),
                         "stage_days": (2.0, 4.0, 5.0), **kw})


@dataclass
class OdooExport:
    spec: ExportSpec = field(default_factory=odoo_spec)
    lang: str = "en"                  # the UI language: labels, stage names, lost reasons
    tz: str = "Asia/Almaty"           # the user's time zone (a plain export's datetimes are in it)
    archived: bool = True             # the "Archived" filter added: lost deals are in the export
    only_archived: bool = False       # the "Archived" filter alone: the lost deals and nothing else
    import_compatible: bool = False   # technical headers, external ids for the salesperson
    user_tz_unset: bool = False       # the exporting user has no time zone: datetimes in UTC
    second_company: float = 0.0       # share of deals in the second company (its own currency)
    fmt: str = "csv"                  # "csv" or "xlsx"


def _stamp(ts: datetime | None, zone) -> str:
    return "" if ts is None else ts.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def deal_key(row_id: str) -> str:
    """The factory's deal id behind an exported ID (both the plain and the external form)."""
    return row_id.rsplit("_", 2)[-2] if row_id.startswith("__export__") else row_id


def build(o: OdooExport) -> list[dict]:
    """The export's rows, keyed by the labels the export writes."""
    tz = ZoneInfo(o.tz)
    tables = factory.company_tables(o.spec, tz)
    rng = np.random.default_rng(o.spec.seed + 4242)
    t = factory._t
    zone = UTC if o.user_tz_unset else tz
    k = 2 if o.import_compatible else (0 if o.lang == "en" else 1)
    label = {name: v[k] for name, v in LABELS.items()}
    last_touch: dict[str, str] = {}
    for a in tables["activities"]:  # a logged call or a done activity writes the opportunity
        if a["done_at"] > last_touch.get(a["deal_id"], ""):
            last_touch[a["deal_id"]] = a["done_at"]
    entered: dict[str, str] = {}
    for h in tables["stage_history"]:
        entered[h["deal_id"]] = h["entered_at"]  # in order within a deal: the last is the current stage
    users = {m["manager_id"]: (NAMES[j % len(NAMES)], j + 7) for j, m in enumerate(tables["managers"])}
    stages = dict(zip(o.spec.stages, OPEN_STAGES[o.lang]))
    rows = []
    for n, d in enumerate(tables["deals"]):
        if (d["status"] == "lost" and not o.archived) or (d["status"] != "lost" and o.only_archived):
            continue
        created, closed = t(d["created_at"]), t(d["closed_at"])
        company, currency, rate = COMPANIES[1] if rng.random() < o.second_company else COMPANIES[0]
        stage = WON[o.lang] if d["status"] == "won" else stages[d["stage"]]
        prob = 100.0 if d["status"] == "won" else 0.0 if d["status"] == "lost" else PROBABILITY[o.spec.stages.index(d["stage"])]
        stage_update = closed if d["status"] == "won" else t(entered[d["deal_id"]])
        name, uid = users[d["manager_id"]]
        key = d["deal_id"]
        rows.append({
            label["id"]: f"__export__.crm_lead_{key}_{n:08x}",
            label["title"]: d["title"].replace("Забытая сделка", "Opportunity").replace("Сделка", "Opportunity"),
            label["client"]: d["client_id"].replace("c", "Client ", 1),
            label["owner"]: f"__export__.res_users_{uid}_{uid * 7919:08x}" if o.import_compatible else name,
            label["team"]: TEAMS[uid % 2],
            label["stage"]: stage,
            label["amount"]: f"{float(d['amount']) / rate:.2f}",
            label["currency"]: currency,
            label["probability"]: f"{prob:.2f}",
            label["created"]: _stamp(created, zone),
            label["deadline"]: (created + timedelta(days=float(rng.uniform(10, 45)))).astimezone(tz).strftime("%Y-%m-%d"),
            label["closed"]: _stamp(closed, zone) if d["status"] != "open" else "",
            label["stage_update"]: _stamp(stage_update, zone),
            label["updated"]: _stamp(max(t(last_touch.get(key, "")) or created, closed or created, stage_update), zone),
            label["reason"]: REASONS[o.lang].get(d["loss_reason"], "") if d["status"] == "lost" else "",
            label["active"]: "False" if d["status"] == "lost" else "True",
            label["source"]: SOURCES.get(d["source"], ""),
            label["company"]: company,
        })
    return rows


def file_name(o: OdooExport) -> str:
    return f"crm.lead.{o.fmt}"


def write(folder: Path, o: OdooExport) -> Path:
    """The file as Odoo's export downloads it (csv: UTF-8, `,`, every field quoted; or xlsx)."""
    rows = build(o)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(o)
    if o.fmt == "xlsx":  # typed cells, as Odoo's xlsx writer makes them: numbers, dates, booleans
        import pandas as pd

        frame = pd.DataFrame(rows)
        k = 2 if o.import_compatible else (0 if o.lang == "en" else 1)
        col = {name: v[k] for name, v in LABELS.items()}
        for name in ("amount", "probability"):
            frame[col[name]] = frame[col[name]].astype(float)
        for name in ("created", "closed", "stage_update", "updated", "deadline"):
            frame[col[name]] = pd.to_datetime(frame[col[name]].replace("", None))
        frame[col["active"]] = frame[col["active"]] == "True"
        frame.to_excel(path, index=False)
        return path
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
        wr.writeheader()
        wr.writerows(rows)
    return path


def deals_recipe(o: OdooExport) -> str:
    """[source.columns.deals] and [source.values.deals.status] as the proposed README recipe says."""
    k = 2 if o.import_compatible else (0 if o.lang == "en" else 1)
    lab = {name: v[k] for name, v in LABELS.items()}
    cols = {"deal_id": "id", "title": "title", "amount": "amount", "currency": "currency", "manager_id": "owner",
            "created_at": "created", "closed_at": "closed", "stage": "stage", "status": "stage",
            "stage_changed_at": "stage_update", "client_id": "client", "source": "source", "loss_reason": "reason",
            "active": "active"}
    lines = "".join(f'{c} = "{lab[v]}"\n' for c, v in cols.items())
    return f'[source.columns.deals]\n{lines}[source.values.deals.status]\n"{WON[o.lang]}" = "won"\n'
