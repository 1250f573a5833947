"""Activity lists as users export them from a CRM's web UI: Bitrix24 «Дела» (CRM → Дела →
Экспорт), Pipedrive Activities (Activities → ⋯ → Export), HubSpot tasks (Tasks → Export), built
on tests/scenarios/_export_factory.py's company so the truth is known.

The deals, history and clients are the factory's canonical files (written as a company with a
deals database or a deals export already mapped would give them), but with what these activity
lists need from them: deal titles that repeat (a few generic titles, «Поставка», shared by
deals of different clients) and the client's name as its id (what the lists name). managers.csv
holds ids (m1, m2 ...) and the people's display names; the activity lists name the display name.

Besides the factory's done activities (calls, meetings, tasks at the moment they were done),
every open deal has a PLANNED task (not done, due in the next days), and the deals left behind
(`ExportSpec.abandoned`) have a task nobody did: due a few days ago (overdue) or ahead (a robot
reminder). Neither is a touch: a deal whose only "activity" is a reminder is still stalled.

Known about the formats (vendors' API field lists: Bitrix24 crm.activity COMPLETED Y/N,
DEADLINE, END_TIME, the planned end of an activity not done; Pipedrive activities done,
due_date, due_time, marked_as_done_time, add_time; HubSpot tasks hs_task_status COMPLETED /
NOT_STARTED, hs_timestamp the due date). Guesses, not checked against a real file:
- Bitrix24: titles «ID», «Тип» (Звонок/Встреча/Задача/Письмо), «Тема», «Ответственный»,
  «Срок», «Выполнено» (Да/Нет), «Дата создания», «Дата завершения» (END_TIME: for an activity
  not done the planned end, the deadline here), «Связано с» ("Сделка: <title>"), «Направление»
  (Входящий/Исходящий); `;`-separated UTF-8 with a BOM, local time `25.03.2026 14:21:05`.
- Pipedrive: "ID", "Subject", "Type" (Call/Meeting/Task/Deadline/Email), "Done" (Done/To do),
  "Due date" (2026-03-25), "Due time" (14:30, empty for all-day), "Deal" (title), "Person",
  "Organization", "Assigned to user" (name), "Marked as done time", "Add time"; local time ISO.
- HubSpot tasks: "Record ID", "Task Title", "Task Type" (CALL/EMAIL/TODO), "Task Status"
  (COMPLETED/NOT_STARTED), "Due Date", "Activity date" (the due date for a task), "Associated
  Deal" (name), "Activity assigned to"; no completion time column, so a done task is read at its
  due date (reps mark them done about then, here within a day). Local time `2026-03-25 14:30`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _export_factory as factory
from _export_factory import ExportSpec

GENERIC = ("Поставка", "Поставка линолеума", "Ремонт офиса", "Сервисный договор")  # titles that repeat
NAMES = ("Ержан Сапаров", "Алия Нурланова", "Дмитрий Ковалёв", "Динара Ахметова", "Асель Каримова",
         "Нурлан Абенов", "Марат Исаев", "Айгерим Жумабаева", "Сергей Волков", "Жанна Омарова",
         "Тимур Бекмуханов", "Ольга Ким")
FILES = {"bitrix24": "ACTIVITY_20261120.csv", "pipedrive": "activities-export.csv",
         "hubspot": "hubspot-crm-exports-all-tasks.csv"}
B24_TYPES = {"call": "Звонок", "meeting": "Встреча", "task": "Задача", "email": "Письмо"}
PD_TYPES = {"call": "Call", "meeting": "Meeting", "task": "Task", "email": "Email"}
HS_TYPES = {"call": "CALL", "meeting": "TODO", "task": "TODO", "email": "EMAIL"}

# [source.columns.activities] an admin writes from README's recipe for each list.
RECIPES = {
    "bitrix24": '''[source.columns.activities]
activity_id = "ID"
type = "Тип"
manager_id = "Ответственный"
due_at = "Срок"
done_at = "Дата завершения"
done = "Выполнено"
deal_id = "Связано с"
''',
    "pipedrive": '''[source.columns.activities]
activity_id = "ID"
type = "Type"
manager_id = "Assigned to user"
due_at = "Due date"
done_at = "Marked as done time"
done = "Done"
deal_id = "Deal"
client_id = "Organization"
''',
    "hubspot": '''[source.columns.activities]
activity_id = "Record ID"
type = "Task Type"
manager_id = "Activity assigned to"
due_at = "Due Date"
done_at = "Activity date"
done = "Task Status"
deal_id = "Associated Deal"
''',
}


@dataclass
class ActivityExport:
    spec: ExportSpec
    crm: str = "bitrix24"  # or "pipedrive", "hubspot"
    tz: str = "Asia/Almaty"
    generic_share: float = 0.15  # deals with a generic title shared with others
    planned: bool = True  # open deals have a planned task, abandoned ones a task nobody did
    colleague_share: float = 0.0  # done activities recorded by another manager than the deal's (a stand-in)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def build(a: ActivityExport) -> dict:
    """{"tables": canonical tables to write (managers, deals, stage_history, stages, clients),
    "activities": the list's rows, "truth": canonical activities (done ones at their done time,
    planned ones with only due_at), "names": manager id -> display name, "abandoned": their ids}."""
    tz = ZoneInfo(a.tz)
    tables = factory.company_tables(a.spec, tz)
    rng = np.random.default_rng(a.spec.seed + 777)
    end = a.spec.end
    name_of = {m["manager_id"]: NAMES[k % len(NAMES)] for k, m in enumerate(tables["managers"])}
    managers = [{**m, "name": name_of[m["manager_id"]]} for m in tables["managers"]]
    client_name = {c["client_id"]: c["name"] for c in tables["clients"]}
    deals, title_of = [], {}
    for d in tables["deals"]:
        generic = rng.random() < a.generic_share
        title = (GENERIC[int(rng.integers(len(GENERIC)))] if generic
                 else f"{d['title']} — {client_name[d['client_id']]}")
        title_of[d["deal_id"]] = title
        deals.append({**d, "title": title, "client_id": client_name[d["client_id"]]})
    clients = [{**c, "client_id": c["name"]} for c in tables["clients"]]
    truth = [dict(r, client_id=client_name[r["client_id"]]) for r in tables["activities"]]
    for r in truth:
        r["_subject"] = {"call": "Звонок клиенту", "meeting": "Встреча", "task": "Отправить КП"}[r["type"]]
        r["_created"] = factory._iso(_t(r["done_at"]) - timedelta(days=float(rng.uniform(0, 3))))
        r["_done"] = True
        if rng.random() < a.colleague_share:
            others = [m for m in name_of if m != r["manager_id"] and m.startswith("m")]
            r["manager_id"] = others[int(rng.integers(len(others)))]
    abandoned = [d["deal_id"] for d in deals if d["deal_id"].startswith("x")]
    n = len(truth)
    if a.planned:
        for d in deals:
            if d["status"] != "open":
                continue
            n += 1
            if d["deal_id"].startswith("x"):  # left behind: a reminder nobody did, overdue or ahead
                due = end + timedelta(days=float(rng.uniform(-5, 6)))
                created = _t(d["created_at"]) + timedelta(days=1)
            else:
                due = end + timedelta(days=float(rng.uniform(0.5, 10)))
                created = end - timedelta(days=float(rng.uniform(0, 3)))
            truth.append({"activity_id": f"a{n:06d}", "deal_id": d["deal_id"], "client_id": d["client_id"],
                          "manager_id": d["manager_id"], "type": "task", "due_at": factory._iso(due), "done_at": "",
                          "_subject": "Перезвонить клиенту", "_created": factory._iso(created), "_done": False})
    rows = [_row(a.crm, r, title_of, name_of, tz, rng) for r in truth]
    for r in truth:
        r.pop("_subject"), r.pop("_created"), r.pop("_done")
    managers = [{k: v for k, v in m.items()} for m in managers]
    return {"tables": {"managers": managers, "deals": deals, "stage_history": tables["stage_history"],
                       "stages": tables["stages"], "clients": clients},
            "activities": rows, "truth": truth, "names": name_of, "abandoned": abandoned, "title_of": title_of}


def _local(t: datetime | None, tz: ZoneInfo, fmt: str) -> str:
    return "" if t is None else t.astimezone(tz).strftime(fmt)


def _row(crm: str, r: dict, title_of: dict, name_of: dict, tz: ZoneInfo, rng) -> dict:
    done = r["_done"]
    done_at = _t(r["done_at"]) if done else None
    due = _t(r["due_at"]) if r["due_at"] else done_at + timedelta(hours=float(rng.uniform(-20, 2)))
    created = _t(r["_created"])
    title = title_of[r["deal_id"]]
    who = name_of[r["manager_id"]]
    if crm == "bitrix24":
        f = "%d.%m.%Y %H:%M:%S"
        return {"ID": r["activity_id"][1:].lstrip("0"), "Тип": B24_TYPES[r["type"]], "Тема": r["_subject"],
                "Ответственный": who, "Срок": _local(due, tz, f), "Выполнено": "Да" if done else "Нет",
                "Дата создания": _local(created, tz, f),
                # END_TIME: the planned end of an activity not done yet
                "Дата завершения": _local(done_at if done else due, tz, f),
                "Связано с": f"Сделка: {title}", "Направление": "Исходящий"}
    if crm == "pipedrive":
        all_day = not done and rng.random() < 0.3
        return {"ID": r["activity_id"][1:].lstrip("0"), "Subject": r["_subject"], "Type": PD_TYPES[r["type"]],
                "Done": "Done" if done else "To do", "Due date": _local(due, tz, "%Y-%m-%d"),
                "Due time": "" if all_day else _local(due, tz, "%H:%M"), "Deal": title,
                "Person": "", "Organization": r["client_id"], "Assigned to user": who,
                "Marked as done time": _local(done_at, tz, "%Y-%m-%d %H:%M:%S"),
                "Add time": _local(created, tz, "%Y-%m-%d %H:%M:%S")}
    # HubSpot: a done task is marked done about its due date
    due = done_at - timedelta(hours=float(rng.uniform(0, 20))) if done else due
    f = "%Y-%m-%d %H:%M"
    return {"Record ID": str(90_000_000 + int(r["activity_id"][1:])), "Task Title": r["_subject"],
            "Task Type": HS_TYPES[r["type"]], "Task Status": "COMPLETED" if done else "NOT_STARTED",
            "Due Date": _local(due, tz, f), "Activity date": _local(due, tz, f),
            "Associated Deal": title, "Activity assigned to": who}


def _csv(path: Path, rows: list[dict], delimiter: str = ",", encoding: str = "utf-8") -> None:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)


def write(folder: Path, a: ActivityExport, canonical: bool = False) -> dict:
    """The canonical tables as CSV and the activity list as the UI downloads it (FILES[crm]);
    `canonical`: the truth as activities.csv instead, for a same-run comparison. Returns build()."""
    built = build(a)
    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in built["tables"].items():
        factory.write_rows(folder, table, rows)
    if canonical:
        factory.write_rows(folder, "activities", built["truth"])
    elif a.crm == "bitrix24":
        _csv(folder / FILES["bitrix24"], built["activities"], ";", "utf-8-sig")
    else:
        _csv(folder / FILES[a.crm], built["activities"])
    return built


def config(folder: str, a: ActivityExport, canonical: bool = False, lang: str = "ru") -> str:
    """The admin's config beside `write`'s folder, from README's recipe for the list."""
    names = {t: f"{t}.csv" for t in ("managers", "deals", "stage_history", "stages", "clients")}
    names["activities"] = "activities.csv" if canonical else FILES[a.crm]
    return (factory.head(lang, a.tz, "KZT", folder) + factory.files(**names)
            + ("" if canonical else RECIPES[a.crm]) + factory.DIRECTOR)
