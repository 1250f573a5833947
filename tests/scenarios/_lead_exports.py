"""Lead exports as admins download them from the web UI, built on
tests/scenarios/_export_factory.py's company (its leads: created in working hours, assigned
within 20 minutes, answered within the hour, 30% converted) so the truth is known.

None of these lists carries an assignment or a first-response time; that is the point: the
lead SLA must not read their absence, nor a "changed" or "last activity" date, as an answer.

- Bitrix24 «Лиды» (CRM → Лиды → ⚙ → Экспорт): ID, Название лида, Статус, Ответственный, Дата
  создания, Дата изменения, Источник, Кем создан, Комментарий статуса. The default statuses:
  Не обработан, В работе, Обработан, Качественный лид (converted: a deal or contact was made
  from it), Некачественный лид. Timestamps naive in the portal's zone, `25.03.2026 14:21:05`;
  `;` and UTF-8 with a BOM, as _bitrix24_export.py writes the deals list.
- amoCRM «Неразобранное»: amoCRM's leads are its deals (the export has _amocrm_export.py's
  headers; here a second download, amocrm_export_leads_2026-11-20.csv, beside the deals one). An incoming request nobody accepted yet sits in the
  incoming stage «Неразобранное» with no responsible user; once accepted it has an owner and
  walks the pipeline like any deal, closing as «Успешно реализовано» / «Закрыто и не
  реализовано». Declined requests are deleted in amoCRM, not exported.
- HubSpot contacts (Contacts → Export): Record ID, First Name, Last Name, Email, Lifecycle
  Stage (subscriber, lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer;
  `hubspot_labels`: as the UI shows them, "Marketing Qualified Lead"), Lead Status (New, Open,
  In Progress, Attempted to contact, Connected, Unqualified; empty for contacts that are no
  lead), Contact owner (blank when nobody owns the contact), Create Date, Last Activity Date,
  Became a Lead Date, Original Source. Newsletter subscribers are contacts too: no owner, no
  lead status, created long before they (may) become a lead.
- Pipedrive Leads inbox (Leads → ⋯ → Export): Title, Owner, Source, Lead created, Labels (Hot,
  Warm, Cold), Value. The inbox holds open leads only: a lead converted into a deal leaves it;
  the owner is always set (a deactivated user's name stays).

`unaccepted`: the newest leads nobody took yet (no owner, no answer): amoCRM's unsorted ones, a
HubSpot lead without an owner, a Bitrix24 lead «Не обработан» without «Ответственный».

Guesses (not checked against a real file): the exact header sets and their order, Bitrix24's
«Кем создан» for web forms (here «Робот»), HubSpot's date format (`2026-03-25 14:21`, the
account's zone) and that a contact converted into a deal has no Last Activity Date of its own
when the work was logged on the deal (here a third of them), Pipedrive's `Lead created`
format (ISO with seconds).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _amocrm_export
import _bitrix24_export
import _export_factory as factory
import _web_exports
from _export_factory import STAGES, ExportSpec

B24_STATUSES = ("Не обработан", "В работе", "Обработан", "Качественный лид", "Некачественный лид")
B24_HEADERS = ("ID", "Название лида", "Статус", "Ответственный", "Дата создания", "Дата изменения", "Источник",
               "Кем создан", "Комментарий статуса")
B24_SOURCES = {"Сайт": "Веб-сайт", "Звонок": "Звонок", "Рекомендация": "По рекомендации",
               "Instagram": "Instagram", "Выставка": "Выставка"}
# the owners as each CRM's deals builder names them, so a leads file and a deals file of one company agree
NAMES = {"bitrix24": _bitrix24_export.NAMES, "amocrm": _amocrm_export.NAMES, "hubspot": _web_exports.NAMES,
         "pipedrive": _web_exports.NAMES}
EN_NAMES = _web_exports.NAMES
INCOMING, WON, LOST = "Неразобранное", "Успешно реализовано", "Закрыто и не реализовано"
AMO_HEADERS = ("ID", "Название сделки", "Бюджет", "Ответственный", "Дата создания", "Кем создана",
               "Дата изменения", "Дата закрытия", "Теги", "Этап сделки", "Воронка", "Полное имя контакта",
               "Компания контакта", "utm_source", "Источник", "Причина отказа")
LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
LIFECYCLE_LABELS = {"subscriber": "Subscriber", "lead": "Lead", "marketingqualifiedlead": "Marketing Qualified Lead",
                    "salesqualifiedlead": "Sales Qualified Lead", "opportunity": "Opportunity", "customer": "Customer"}
HS_HEADERS = ("Record ID", "First Name", "Last Name", "Email", "Lifecycle Stage", "Lead Status", "Contact owner",
              "Create Date", "Last Activity Date", "Became a Lead Date", "Original Source")
HS_SOURCES = {"Сайт": "Organic Search", "Звонок": "Direct Traffic", "Рекомендация": "Referrals",
              "Instagram": "Paid Social", "Выставка": "Offline Sources"}
PD_HEADERS = ("Title", "Owner", "Source", "Lead created", "Labels", "Value")
PD_SOURCES = {"Сайт": "Web forms", "Звонок": "Manually created", "Рекомендация": "Manually created",
              "Instagram": "Web forms", "Выставка": "Import"}
RU_FMT, HS_FMT, PD_FMT = "%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"
ZONES = {"bitrix24": "Asia/Almaty", "amocrm": "Asia/Almaty", "hubspot": "America/New_York", "pipedrive": "Europe/Berlin"}
FILES = {"bitrix24": "LEAD_20261120.csv", "amocrm": "amocrm_export_leads_2026-11-20.csv",
         "hubspot": "hubspot-crm-exports-all-contacts.csv", "pipedrive": "leads-export.csv"}
# [source.columns.leads] as README ("Lead lists") tells each admin to map the list
LEADS = {
    "bitrix24": '''[source.columns.leads]
lead_id = "ID"
created_at = "Дата создания"
source = "Источник"
manager_id = "Ответственный"
status = "Статус"
''',
    "amocrm": '''[source.columns.leads]
lead_id = "ID"
created_at = "Дата создания"
source = "Источник"
manager_id = "Ответственный"
status = "Этап сделки"
''',
    "hubspot": '''[source.columns.leads]
lead_id = "Record ID"
created_at = "Create Date"
source = "Original Source"
manager_id = "Contact owner"
status = "Lifecycle Stage"
''',
    "pipedrive": '''[source.columns.leads]
lead_id = "Title"
created_at = "Lead created"
source = "Source"
manager_id = "Owner"
''',
}


def recipe(crm: str) -> str:
    """The [source.*] tables for the CRM's deals export (its builder's recipe) and this leads list
    beside it, the leads columns last (a test may add keys to them)."""
    if crm == "bitrix24":
        tables, deals = {"deals": "DEAL_20261120.csv"}, _bitrix24_export.DEALS
    elif crm == "amocrm":
        tables, deals = {"deals": "amocrm_export_leads.csv"}, _amocrm_export.DEALS
    else:
        tables, deals = {"deals": _web_exports.FILES[crm], "managers": "managers.csv"}, _web_exports.recipe(crm)
    return factory.files(**tables, leads=FILES[crm]) + deals + LEADS[crm]


@dataclass
class LeadExport:
    crm: str = "bitrix24"            # "bitrix24" | "amocrm" | "hubspot" | "pipedrive"
    spec: ExportSpec = field(default_factory=ExportSpec)
    tz: str | None = None            # the account's zone; None: ZONES[crm], as the deals builders use
    subscribers: int = 0             # HubSpot: newsletter contacts (no owner, no lead status), created in the last `days`
    unowned_customers: float = 0.0   # HubSpot: share of converted leads whose contact owner is blank (the deal has one)
    hubspot_labels: bool = False     # Lifecycle Stage as the UI shows it ("Sales Qualified Lead"), not the internal value
    unaccepted: int = 0              # the newest this many leads nobody took yet: no owner, no answer (amoCRM: «Неразобранное»)


def _t(ts: str) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


def _local(t: datetime | None, tz: ZoneInfo, fmt: str) -> str:
    return "" if t is None else t.astimezone(tz).strftime(fmt)


def build(x: LeadExport) -> dict:
    """{"leads": rows with the CRM's own headers, "truth": {"tables": the factory's tables,
    "name_of": manager id -> the owner name written, "waiting": ids (as exported) of leads nobody
    answered by the export's end, "converted": ids of converted leads, "not_leads": ids of
    contacts that are no lead}}."""
    tz = ZoneInfo(x.tz or ZONES[x.crm])
    tables = factory.company_tables(x.spec, tz)
    rng = np.random.default_rng(x.spec.seed + 5151)
    names = NAMES[x.crm]
    name_of = {m["manager_id"]: names[k % len(names)] for k, m in enumerate(tables["managers"])}
    end = x.spec.end
    rows, waiting, converted, not_leads = [], [], [], []
    leads = tables["leads"]
    for n, lead in enumerate(leads):
        created, assigned, answered = _t(lead["created_at"]), _t(lead["assigned_at"]), _t(lead["first_response_at"])
        status = lead["status"]  # converted | in_work | new (nobody answered by `end`)
        if n >= len(leads) - x.unaccepted:
            assigned = answered = None
            status = "new"
        junk = status == "in_work" and rng.random() < 0.2
        owner = name_of[lead["manager_id"]] if assigned is not None else ""
        touched = answered + timedelta(days=float(rng.uniform(0, 6))) if answered else created
        touched = min(touched, end)
        row_id = {"bitrix24": str(n + 1), "amocrm": str(30_000_000 + n + 1),
                  "hubspot": str(70_000_000 + n + 1), "pipedrive": f"Lead {n + 1}"}[x.crm]
        (waiting if status == "new" else converted if status == "converted" else []).append(row_id)
        if x.crm == "bitrix24":
            st = {"new": B24_STATUSES[0], "converted": B24_STATUSES[3]}.get(status) or (
                B24_STATUSES[4] if junk else B24_STATUSES[1] if rng.random() < 0.5 else B24_STATUSES[2])
            rows.append({"ID": row_id, "Название лида": f"Заявка с сайта №{n + 1}", "Статус": st, "Ответственный": owner,
                         "Дата создания": _local(created, tz, RU_FMT), "Дата изменения": _local(touched, tz, RU_FMT),
                         "Источник": B24_SOURCES[lead["source"]],
                         "Кем создан": "Робот" if lead["source"] in ("Сайт", "Instagram") else owner,
                         "Комментарий статуса": "дубль" if junk else ""})
        elif x.crm == "amocrm":
            if status == "new" and assigned is None:
                stage = INCOMING  # nobody accepted it yet: no responsible user
            elif status == "converted":
                stage = WON if rng.random() < 0.6 else STAGES[int(rng.integers(2, len(STAGES)))]
            else:
                stage = LOST if junk else STAGES[int(rng.integers(0, 2))]
            closed = touched if stage in (WON, LOST) else None
            rows.append({"ID": row_id, "Название сделки": f"Заявка {n + 1}", "Бюджет": "", "Ответственный": owner,
                         "Дата создания": _local(created, tz, RU_FMT), "Кем создана": "Робот",
                         "Дата изменения": _local(touched, tz, RU_FMT), "Дата закрытия": _local(closed, tz, RU_FMT),
                         "Теги": "", "Этап сделки": stage, "Воронка": "Продажи",
                         "Полное имя контакта": f"Контакт {n + 1}", "Компания контакта": "",
                         "utm_source": "instagram" if lead["source"] == "Instagram" else "",
                         "Источник": lead["source"], "Причина отказа": "Дубль" if stage == LOST else ""})
        elif x.crm == "hubspot":
            if status == "converted":
                life = "customer" if rng.random() < 0.5 else "opportunity"
                lead_status = "Connected"
                if rng.random() < x.unowned_customers:
                    owner = ""
                last = "" if rng.random() < 1 / 3 else _local(touched, tz, HS_FMT)
            elif status == "new":
                life, lead_status, last = "lead", "New", ""
            else:
                life = LIFECYCLE[1 + int(rng.integers(3))]
                lead_status = "Unqualified" if junk else ("Open", "In Progress", "Attempted to contact", "Connected")[
                    int(rng.integers(4))]
                last = _local(touched, tz, HS_FMT)
            rows.append(_hs_row(x, row_id, n, life, lead_status, owner, created, last, created, lead["source"], tz))
        else:  # pipedrive: converted leads left the inbox
            if status == "converted":
                continue
            label = "Cold" if junk else ("Hot", "Warm", "")[int(rng.integers(3))]
            rows.append({"Title": f"Lead {n + 1} deal", "Owner": name_of[lead["manager_id"]],
                         "Source": PD_SOURCES[lead["source"]], "Lead created": _local(created, tz, PD_FMT),
                         "Labels": label, "Value": "" if rng.random() < 0.5 else str(int(rng.integers(5, 80)) * 100)})
    if x.crm == "hubspot":
        start = end - timedelta(days=x.spec.days)
        for k in range(x.subscribers):
            t = start + (end - start) * float(rng.random())
            row_id = str(80_000_000 + k + 1)
            not_leads.append(row_id)
            rows.append(_hs_row(x, row_id, 10_000 + k, "subscriber", "", "", t, "", None, "Сайт", tz))
        rows.sort(key=lambda r: r["Create Date"])
    return {"leads": rows, "truth": {"tables": tables, "name_of": name_of, "waiting": waiting,
                                     "converted": converted, "not_leads": not_leads}}


def _hs_row(x: LeadExport, row_id: str, n: int, life: str, lead_status: str, owner: str, created: datetime,
            last: str, became: datetime | None, source: str, tz: ZoneInfo) -> dict:
    return {"Record ID": row_id, "First Name": EN_NAMES[n % len(EN_NAMES)].split()[0], "Last Name": f"Client{n + 1}",
            "Email": f"client{n + 1}@example.com",
            "Lifecycle Stage": LIFECYCLE_LABELS[life] if x.hubspot_labels else life, "Lead Status": lead_status,
            "Contact owner": owner, "Create Date": _local(created, tz, HS_FMT), "Last Activity Date": last,
            "Became a Lead Date": _local(became, tz, HS_FMT), "Original Source": HS_SOURCES[source]}


def write(folder: Path, x: LeadExport) -> dict:
    """The leads file as the UI downloads it (FILES[crm]); returns build()'s truth."""
    built = build(x)
    folder.mkdir(parents=True, exist_ok=True)
    delim, enc = (";", "utf-8-sig") if x.crm == "bitrix24" else (",", "utf-8-sig" if x.crm != "pipedrive" else "utf-8")
    headers = {"bitrix24": B24_HEADERS, "amocrm": AMO_HEADERS, "hubspot": HS_HEADERS, "pipedrive": PD_HEADERS}[x.crm]
    with open(folder / FILES[x.crm], "w", newline="", encoding=enc) as f:
        w = csv.DictWriter(f, fieldnames=list(headers), delimiter=delim)
        w.writeheader()
        w.writerows(built["leads"])
    return built["truth"]
