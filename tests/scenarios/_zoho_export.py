"""The deals list a Zoho CRM admin downloads (Deals → ⋯ → Export Deals, CSV), built on
tests/scenarios/_export_factory.py's company so the truth is known.

Known about the format (Zoho CRM's Deals module and its default layout): one row per deal with
the field labels as headers: Record Id, Deal Owner (the user's name), Deal Name, Amount, Stage,
Closing Date (a date field: the *expected* close date, required on every deal, so an open deal
has one, often in the past), Created Time, Modified Time (any edit, a workflow or a mass update
sets it), Last Activity Time (the last call, task, meeting or edit), Lead Source, Type,
Probability (%) and Expected Revenue (filled from the stage), Account Name, Contact Name,
Reason For Loss, Currency, Exchange Rate, Pipeline. The default stages, in order: Qualification,
Needs Analysis, Value Proposition, Identify Decision Makers, Proposal/Price Quote,
Negotiation/Review, then Closed Won and two lost stages, Closed Lost and Closed Lost to
Competition. No stage history (it is a related list, not a column), no users file.

Guesses (not checked against a real file): dates written "2025-03-14 10:22:00" (`date_style`
"iso") or as the user's display format "Mar 14, 2025 10:22 AM" (`"us"`), naive, in the user's
time zone; Closing Date of a closed deal moved to the day it closed (workflows usually do;
`planned_close_kept` leaves it at the planned day instead); a mass update on `mass_update`
touching every open deal's Modified Time; amounts with a decimal point and no grouping; the
Lead Source and Reason For Loss values below; lost deals to a competitor closed as "Closed Lost
to Competition".
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

OPEN_STAGES = ("Qualification", "Needs Analysis", "Value Proposition", "Identify Decision Makers",
               "Proposal/Price Quote", "Negotiation/Review")
WON, LOST, LOST_TO_COMPETITION = "Closed Won", "Closed Lost", "Closed Lost to Competition"
PROBABILITY = {**dict(zip(OPEN_STAGES, (10, 20, 40, 60, 75, 90))), WON: 100, LOST: 0, LOST_TO_COMPETITION: 0}
SOURCES = {"Сайт": "Web Download", "Звонок": "Cold Call", "Рекомендация": "External Referral",
           "Instagram": "Facebook", "Выставка": "Trade Show"}
REASONS = {"Цена": "Expensive", "Выбрали конкурента": "Lost to Competitor", "Нет бюджета": "No Budget",
           "Сроки поставки": "Delivery Time"}
NAMES = ("John Carter", "Maria Lopez", "David Kim", "Priya Shah", "Anna Novak", "Omar Haddad",
         "Lucas Silva", "Emma Brown", "Sergei Popov", "Julia Li", "Tom Becker", "Olga Smirnova")
PIPELINES = ("Standard", "Enterprise")
HEADERS = ("Record Id", "Deal Owner", "Deal Name", "Amount", "Stage", "Closing Date", "Created Time",
           "Modified Time", "Last Activity Time", "Lead Source", "Type", "Probability (%)",
           "Expected Revenue", "Account Name", "Contact Name", "Reason For Loss", "Currency",
           "Exchange Rate", "Pipeline")
BASE_ID = 5_725_767_000_000_000


def left_behind(record_id: str) -> bool:
    """A deal the factory's `abandoned` manager left behind (its id is 3 modulo 7 above BASE_ID)."""
    return (int(record_id.removeprefix("zcrm_")) - BASE_ID) % 7 == 3


FORMATS = {"iso": ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"), "us": ("%b %d, %Y %I:%M %p", "%b %d, %Y")}


def zoho_spec(**kw) -> ExportSpec:
    """The factory company walking Zoho's six open stages (a tenth of deals skip none)."""
    return ExportSpec(**{"stages": OPEN_STAGES, "advance": (0.85, 0.75, 0.7, 0.75, 0.7, 0.75),
                         "stage_days": (1.5, 2.5, 3.0, 3.0, 3.5, 3.0), **kw})


@dataclass
class ZohoExport:
    spec: ExportSpec = field(default_factory=zoho_spec)
    tz: str = "America/New_York"
    date_style: str = "iso"             # "iso": 2025-03-14 10:22:00; "us": Mar 14, 2025 10:22 AM
    to_competition: bool = True         # lost to a competitor: "Closed Lost to Competition"
    planned_close_kept: float = 0.0     # share of closed deals whose Closing Date stays the planned day
    mass_update: date | None = None     # a mass update that day set every open deal's Modified Time
    empty_amount_share: float = 0.08
    second_pipeline: float = 0.2


def _fmt(ts: datetime | None, tz: ZoneInfo, fmt: str) -> str:
    return "" if ts is None else ts.astimezone(tz).strftime(fmt)


def build(z: ZohoExport) -> list[dict]:
    """The export's rows with Zoho's labels, on the factory company in the user's zone."""
    tz = ZoneInfo(z.tz)
    tables = factory.company_tables(z.spec, tz)
    rng = np.random.default_rng(z.spec.seed + 7373)
    t = factory._t
    stamp, day = FORMATS[z.date_style]
    last_touch: dict[str, str] = {}
    for a in tables["activities"]:
        if a["done_at"] > last_touch.get(a["deal_id"], ""):
            last_touch[a["deal_id"]] = a["done_at"]
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(tables["managers"])}
    bulk = None if z.mass_update is None else datetime(z.mass_update.year, z.mass_update.month,
                                                       z.mass_update.day, 15, tzinfo=tz)
    rows = []
    for d in tables["deals"]:
        created, closed = t(d["created_at"]), t(d["closed_at"])
        planned = created + timedelta(days=float(rng.uniform(14, 60)))
        if d["status"] == "won":
            stage = WON
        elif d["status"] == "lost":
            stage = LOST_TO_COMPETITION if z.to_competition and d["loss_reason"] == "Выбрали конкурента" else LOST
        else:
            stage = OPEN_STAGES[z.spec.stages.index(d["stage"])]
        closing = planned if closed is None or rng.random() < z.planned_close_kept else closed
        touched = max(t(last_touch.get(d["deal_id"], "")) or created, closed or created)
        modified = touched
        if bulk is not None and closed is None and created < bulk <= z.spec.end:
            modified = max(modified, bulk)
        amount = None if rng.random() < z.empty_amount_share else round(float(d["amount"]) / 480, 2)  # tenge -> USD
        prob = PROBABILITY[stage]
        rows.append({
            "Record Id": "zcrm_" + str(BASE_ID + int(d["deal_id"].lstrip("dx")) * 7
                                       + (3 if d["deal_id"].startswith("x") else 0)),
            "Deal Owner": name_of[d["manager_id"]],
            "Deal Name": d["title"].replace("Забытая сделка", "Deal").replace("Сделка", "Deal"),
            "Amount": "" if amount is None else f"{amount:.2f}",
            "Stage": stage,
            "Closing Date": _fmt(closing, tz, day),
            "Created Time": _fmt(created, tz, stamp),
            "Modified Time": _fmt(modified, tz, stamp),
            "Last Activity Time": _fmt(touched, tz, stamp),
            "Lead Source": SOURCES.get(d["source"], "-None-"),
            "Type": "Existing Business" if rng.random() < 0.3 else "New Business",
            "Probability (%)": str(prob),
            "Expected Revenue": "" if amount is None else f"{amount * prob / 100:.2f}",
            "Account Name": d["client_id"].replace("c", "Client Inc ", 1) if d["client_id"] else "",
            "Contact Name": "Contact " + d["client_id"].lstrip("cx"),
            "Reason For Loss": REASONS.get(d["loss_reason"], "") if d["status"] == "lost" else "",
            "Currency": "USD",
            "Exchange Rate": "1",
            "Pipeline": PIPELINES[1] if rng.random() < z.second_pipeline else PIPELINES[0],
        })
    return rows


FILE = "Deals_2026_11_20.csv"
# The deals part of the config README tells a Zoho admin to write (a test adds head and files):
# "Stage" is the stage and the status, the closing stages as README's example lists them, one won
# and one lost (a test may list more right after them).
DEALS = '''[source.columns.deals]
deal_id = "Record Id"
title = "Deal Name"
amount = "Amount"
currency = "Currency"
manager_id = "Deal Owner"
created_at = "Created Time"
closed_at = "Closing Date"
stage = "Stage"
status = "Stage"
pipeline = "Pipeline"
client_id = "Account Name"
source = "Lead Source"
loss_reason = "Reason For Loss"
[source.values.deals.status]
"Closed Won" = "won"
"Closed Lost" = "lost"
'''


def write(folder: Path, z: ZohoExport) -> Path:
    """The CSV as "Export Deals" downloads it (UTF-8, `,`, every field quoted)."""
    rows = build(z)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=list(HEADERS), quoting=csv.QUOTE_ALL)
        wr.writeheader()
        wr.writerows(rows)
    return path
