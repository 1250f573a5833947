"""HubSpot- and Pipedrive-style deal exports as users download them from the web UI (not the
API), built on tests/scenarios/_export_factory.py's company so the truth is known.

What real UI exports have and the canonical contract does not: one deals file (no stage
history, no activities), the owner as a display name only, closing written as a stage
("Closed Won") or a status word ("Won"), two pipelines that share stage labels, stages deleted
since (HubSpot then shows the stage's internal id), empty amounts, a currency per deal, naive
timestamps in the portal's time zone written US (03/14/2025 10:22 AM), EU (14.03.2025 10:22) or
ISO, comma decimals with `;`, owners who left (HubSpot: blank owner; Pipedrive: the name stays),
an expected close date on open deals. The admin writes managers.csv by hand from the users page
(`managers_rows`).
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

HS_STAGES = ("Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
             "Decision Maker Bought-In", "Contract Sent")
HS_RENEWAL_STAGES = ("Renewal Due", "Qualified To Buy", "Quote Sent", "Negotiation", "Contract Sent")
PD_STAGES = ("Lead In", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started")
PD_PARTNER_STAGES = ("Lead In", "Contact Made", "Partner Review", "Proposal Made", "Negotiations Started")
HS_SOURCES = {"Сайт": "Organic Search", "Звонок": "Direct Traffic", "Рекомендация": "Referrals",
              "Instagram": "Paid Social", "Выставка": "Offline Sources"}
PD_SOURCES = {"Сайт": "Web forms", "Звонок": "Cold call", "Рекомендация": "Referral",
              "Instagram": "Paid social", "Выставка": "Trade show"}
REASONS_EN = {"Цена": "Price too high", "Выбрали конкурента": "Went with competitor",
              "Нет бюджета": "No budget", "Сроки поставки": "Timing"}
NAMES = ("Anna Schmidt", "Ben Carter", "Chloe Martin", "David Novak", "Emma Rossi", "Felix Weber",
         "Grace Kim", "Hugo Laurent", "Iris Jansen", "Jonas Berg", "Kate Moore", "Liam Fischer")
DATE_FORMATS = {"iso": "%Y-%m-%d %H:%M", "us": "%m/%d/%Y %I:%M %p", "eu": "%d.%m.%Y %H:%M"}
FILES = {"hubspot": "hubspot-crm-exports-all-deals.csv", "pipedrive": "deals-export.csv"}

# The deals part of the config README tells each admin to write (a test adds head, files, leads):
# one column is the stage and the status, the closing stages listed (HubSpot: and the ids of
# deleted stages, read as lost), the owner HubSpot cleared filled, Pipedrive's deleted stage named.
HUBSPOT = '''[source.columns.deals]
deal_id = "Record ID"
title = "Deal Name"
stage = "Deal Stage"
status = "Deal Stage"
amount = "Amount"
currency = "Deal currency code"
closed_at = "Close Date"
created_at = "Create Date"
manager_id = "Deal owner"
client_id = "Associated Company"
source = "Original Source Type"
loss_reason = "Closed Lost Reason"
[source.values.deals.status]
"Closed Won" = "won"
"Closed Lost" = "lost"
{open}"10400000" = "lost"
"10400001" = "lost"
"10400002" = "lost"
[source.fill.deals]
manager_id = "No owner"
'''
PIPEDRIVE = '''[source.columns.deals]
deal_id = "Deal - ID"
title = "Deal - Title"
stage = "Deal - Stage"
status = "Deal - Status"
amount = "Deal - Value"
currency = "Deal - Currency"
closed_at = "Deal - Deal closed on"
created_at = "Deal - Deal created"
manager_id = "Deal - Owner"
client_id = "Organization - Name"
source = "Deal - Source channel"
loss_reason = "Deal - Lost reason"
[source.fill.deals]
stage = "Deleted stage"
[source.values.deals.status]
"Open" = "open"
"Won" = "won"
"Lost" = "lost"
'''


def recipe(crm: str, open_stages: bool = False) -> str:
    """HUBSPOT or PIPEDRIVE; `open_stages`: HubSpot's open stages listed as "open" too (README
    lists only the closing ones: the others are read as open anyway)."""
    if crm != "hubspot":
        return PIPEDRIVE
    listed = "".join(f'"{s}" = "open"\n' for s in dict.fromkeys(HS_STAGES + HS_RENEWAL_STAGES)) if open_stages else ""
    return HUBSPOT.replace("{open}", listed)


@dataclass
class WebExport:
    crm: str = "hubspot"            # or "pipedrive"
    spec: ExportSpec = field(default_factory=ExportSpec)
    tz: str = "America/New_York"
    dates: str = "iso"              # "iso" | "us" | "eu"
    comma_decimals: bool = False    # 12500,50 and `;` as the delimiter
    grouped_thousands: bool = False  # 12.500,50 (with comma_decimals) or 12,500.50; whole amounts have no decimals
    second_pipeline: float = 0.2    # share of deals in the second pipeline
    deleted_stage_share: float = 0.03  # closed deals whose stage was deleted since (HubSpot: id)
    empty_amount_share: float = 0.15
    departed: int = 1               # managers who left (the last working ones): their deals stay
    # HubSpot only: the per-stage entry dates (`Date entered "<stage> (<pipeline>)"`), see
    # stage_date_columns: "" none, "datetime" written like the export's other dates, "date" the day only
    stage_dates: str = ""
    # HubSpot only, with stage_dates: one more open deal, "Deal stalled", created this many days
    # before the data's end and moved to "Presentation Scheduled" that many days before it, untouched since
    stalled: tuple[float, float] | None = None


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _local(ts: str, tz: ZoneInfo, fmt: str) -> str:
    if not ts:
        return ""
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz)
    return t.strftime(fmt)


def _amount(value: float, comma: bool, grouped: bool = False) -> str:
    """12500.5 -> "12500.5", "12500,5", or grouped as a German Excel shows it: "12.500,5"."""
    s = f"{value:.2f}".rstrip("0").rstrip(".")
    if grouped:
        whole, _, cents = s.partition(".")
        s = f"{int(whole):,}".replace(",", "." if comma else ",") + (("," if comma else ".") + cents if cents else "")
        return s
    return s.replace(".", ",") if comma else s


def build(w: WebExport) -> tuple[list[dict], list[dict]]:
    """The deals export (rows with the CRM's own headers) and the admin's managers.csv rows."""
    tz = ZoneInfo(w.tz)
    tables = factory.company_tables(w.spec, tz)  # the company works 9-18 there
    rng = np.random.default_rng(w.spec.seed + 777)
    fmt = DATE_FORMATS[w.dates]
    # the users page: everyone who ever had a deal (deactivated users stay listed; never-active
    # agents, `idle_agents`, are listed too)
    mgrs = [m for m in tables["managers"]]
    working = [m for m in mgrs if m["name"].split()[-1].startswith("W")]  # the factory's naming
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(tables["managers"])}
    departed = {m["manager_id"] for m in working[len(working) - w.departed:]} if w.departed else set()
    deactivated = {m["manager_id"] for m in mgrs if m["active"] == "false"}
    last_touch: dict[str, str] = {}
    for a in tables["activities"]:
        if a["done_at"] > last_touch.get(a["deal_id"], ""):
            last_touch[a["deal_id"]] = a["done_at"]
    if w.crm == "hubspot" and w.stalled and w.stage_dates:
        born, moved = (_plus_days(_iso(w.spec.end), -days) for days in w.stalled)
        tables["deals"].append({**tables["deals"][0], "deal_id": "d99999", "client_id": "c99999", "title": "Deal stalled",
                                "stage": STAGES[2], "status": "open", "created_at": born, "closed_at": "",
                                "loss_reason": "", "source": "Сайт",
                                "manager_id": next(m["manager_id"] for m in working[:1])})
        tables["stage_history"] += [{"deal_id": "d99999", "stage": STAGES[0], "entered_at": born},
                                    {"deal_id": "d99999", "stage": STAGES[2], "entered_at": moved}]
    rows = []
    seconds: dict[str, bool] = {}
    for d in tables["deals"]:
        k = STAGES.index(d["stage"])
        second = seconds[d["deal_id"]] = rng.random() < w.second_pipeline
        amount = "" if rng.random() < w.empty_amount_share else _amount(float(d["amount"]) / 450 if rng.random() < 0.5 else round(float(d["amount"]) / 450),
                                                                 w.comma_decimals, w.grouped_thousands)
        currency = "EUR" if rng.random() < 0.3 else ("USD" if w.crm == "hubspot" else "EUR")
        created, closed = d["created_at"], d["closed_at"]
        deleted = d["status"] != "open" and rng.random() < w.deleted_stage_share
        owner = name_of[d["manager_id"]]
        number = int(d["deal_id"][1:]) + (500_000 if d["deal_id"].startswith("x") else 0)
        if w.crm == "hubspot":
            if d["manager_id"] in departed:
                owner = ""  # HubSpot clears the owner of a removed user
            labels = HS_RENEWAL_STAGES if second else HS_STAGES
            stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(d["status"], labels[k])
            if deleted:
                stage = str(10_400_000 + int(rng.integers(3)))
            expected = closed or _plus_days(created, float(rng.uniform(10, 60)))
            rows.append({
                "Record ID": str(9_000_000_000 + number),
                "Deal Name": d["title"].replace("Забытая сделка", "Deal").replace("Сделка", "Deal"),
                "Deal Stage": stage,
                "Pipeline": "Renewals" if second else "Sales Pipeline",
                "Amount": amount,
                "Deal currency code": currency,
                "Close Date": _local(expected, tz, fmt),
                "Create Date": _local(created, tz, fmt),
                "Deal owner": owner,
                "Associated Company": "Company " + d["client_id"].lstrip("cx"),
                "Last Activity Date": _local(last_touch.get(d["deal_id"], ""), tz, fmt),
                "Original Source Type": HS_SOURCES.get(d["source"], "Other"),
                "Closed Lost Reason": REASONS_EN.get(d["loss_reason"], "") if rng.random() < 0.6 else "",
            })
        else:
            labels = PD_PARTNER_STAGES if second else PD_STAGES
            stage = labels[k] if not deleted else ""  # Pipedrive: a deleted stage's deals show none
            rows.append({
                "Deal - ID": str(number),
                "Deal - Title": d["title"].replace("Забытая сделка", "Deal").replace("Сделка", "Deal"),
                "Deal - Value": amount or ("0" if rng.random() < 0.5 else ""),
                "Deal - Currency": currency,
                "Deal - Owner": owner,
                "Deal - Stage": stage,
                "Deal - Pipeline": "Partners" if second else "Sales",
                "Deal - Status": d["status"].capitalize(),
                "Deal - Deal created": _local(created, tz, fmt),
                "Deal - Won time": _local(closed if d["status"] == "won" else "", tz, fmt),
                "Deal - Lost time": _local(closed if d["status"] == "lost" else "", tz, fmt),
                "Deal - Deal closed on": _local(closed, tz, fmt),
                "Deal - Lost reason": REASONS_EN.get(d["loss_reason"], ""),
                "Deal - Last activity date": _local(last_touch.get(d["deal_id"], ""), tz, "%Y-%m-%d"),
                "Deal - Expected close date": _local(_plus_days(created, 30), tz, "%Y-%m-%d"),
                "Organization - Name": "Org " + d["client_id"].lstrip("cx"),
                "Deal - Source channel": PD_SOURCES.get(d["source"], "Other"),
            })
    if w.crm == "hubspot" and w.stage_dates:
        dates = stage_date_columns(w, tables, seconds, tz, fmt)
        headers = _stage_date_headers()
        by_id = {str(9_000_000_000 + int(d["deal_id"][1:]) + (500_000 if d["deal_id"].startswith("x") else 0)): d["deal_id"]
                 for d in tables["deals"]}
        for row in rows:
            cells = dates[by_id[row["Record ID"]]]
            row.update({h: cells.get(h, "") for h in headers})
    managers = [{"manager_id": name_of[m["manager_id"]], "name": name_of[m["manager_id"]],
                 "email": name_of[m["manager_id"]].lower().replace(" ", ".") + "@example.com",
                 "team": m["team"].replace("Команда", "Team")}
                for m in mgrs if m["manager_id"] not in departed or w.crm == "pipedrive"]
    if w.crm == "pipedrive":  # the users page still lists them, deactivated
        gone = {name_of[x] for x in departed | deactivated}
        for m in managers:
            m["active"] = "false" if m["manager_id"] in gone else "true"
    return rows, managers


def stage_date_columns(w: WebExport, tables: dict[str, list[dict]], second: dict[str, bool],
                       tz: ZoneInfo, fmt: str) -> dict[str, dict[str, str]]:
    """deal_id -> the HubSpot columns of its stage dates, as the deals export from the web UI
    writes them when the admin picks them (the `hs_date_entered_<stage id>` properties). Assumed
    (HubSpot's property list: "Date entered \"Qualified To Buy (Sales Pipeline)\"", "Date exited
    ...", "Cumulative time in ..."): one entry column per stage of every pipeline, closing stages
    included, labelled "<stage> (<pipeline>)"; a cell holds when the deal last entered that stage
    (the factory never moves a deal back, so that is its only entry) and is empty for stages it
    never entered and for every stage of the other pipeline; won deals entered "Closed Won" at
    the close, lost ones "Closed Lost" (a deal whose stage was deleted since keeps the entries of
    the stages that still exist); "Date exited" holds when it left a stage and "Cumulative time
    in" the milliseconds spent there: neither is an entry. Dates are in the portal's time zone,
    in the export's date format, or the day alone (`stage_dates="date"`). The columns come in
    alphabetical order, as the export's column picker lists properties, not in pipeline order."""
    day_only = {"iso": "%Y-%m-%d", "us": "%m/%d/%Y", "eu": "%d.%m.%Y"}[w.dates]
    entry_fmt = day_only if w.stage_dates == "date" else fmt
    moves: dict[str, list[tuple[int, str]]] = {}
    for r in tables["stage_history"]:
        moves.setdefault(r["deal_id"], []).append((STAGES.index(r["stage"]), r["entered_at"]))
    out: dict[str, dict[str, str]] = {}
    for d in tables["deals"]:
        pipeline = "Renewals" if second[d["deal_id"]] else "Sales Pipeline"
        labels = HS_RENEWAL_STAGES if second[d["deal_id"]] else HS_STAGES
        path = [(labels[k], at) for k, at in moves.get(d["deal_id"], [])]
        if d["status"] != "open":
            path.append(("Closed Won" if d["status"] == "won" else "Closed Lost", d["closed_at"]))
        cells: dict[str, str] = {}
        for i, (stage, at) in enumerate(path):
            key = f"{stage} ({pipeline})"
            cells[f'Date entered "{key}"'] = _local(at, tz, entry_fmt)
            if i + 1 < len(path):
                left = path[i + 1][1]
                cells[f'Date exited "{key}"'] = _local(left, tz, fmt)
                spent = datetime.fromisoformat(left.replace("Z", "+00:00")) - datetime.fromisoformat(at.replace("Z", "+00:00"))
                cells[f'Cumulative time in "{key}"'] = str(int(spent.total_seconds() * 1000))
        out[d["deal_id"]] = cells
    return out


def _stage_date_headers() -> list[str]:
    keys = [f"{s} ({p})" for p, stages in (("Sales Pipeline", HS_STAGES), ("Renewals", HS_RENEWAL_STAGES))
            for s in stages + ("Closed Won", "Closed Lost")]
    return sorted(f'{kind} "{k}"' for kind in ("Date entered", "Date exited", "Cumulative time in") for k in keys)


def _plus_days(ts: str, days: float) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(days=days)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def write(folder: Path, w: WebExport) -> Path:
    """deals file as the UI downloads it (HubSpot: hubspot-crm-exports-all-deals.csv; Pipedrive:
    deals-export.csv) plus the admin's managers.csv."""
    rows, managers = build(w)
    folder.mkdir(parents=True, exist_ok=True)
    name = FILES[w.crm]
    delim = ";" if w.comma_decimals else ","
    with open(folder / name, "w", newline="", encoding="utf-8-sig" if w.crm == "hubspot" else "utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delim)
        wr.writeheader()
        wr.writerows(rows)
    with open(folder / "managers.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=list(managers[0]))
        wr.writeheader()
        wr.writerows(managers)
    return folder
