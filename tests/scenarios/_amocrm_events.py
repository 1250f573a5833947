"""amoCRM's «Аналитика → Список событий» (Kommo: Analytics → Events list) as an admin exports it,
beside the deals export of tests/scenarios/_amocrm_export.py, both from one factory company
(tests/scenarios/_export_factory.py), so the true stage history is known.

Known (amocrm.ru/support/analytics/list_events): the columns «Дата», «Автор» (a user, «Робот» or
an integration), «Объект» (a link to the entity: Сделка, Контакт, Компания, Задача, ...),
«Название» (the entity's name), «Событие», «Значение до», «Значение после»; Kommo: Date, Author,
Object, Name, Event, Value before, Value after. The list holds every kind of event, not only
stage changes.

Guessed here (no real export seen): the stage change worded «Изменение этапа продажи» (Kommo
"Lead status changed"), as amoCRM's API docs describe lead_status_changed; «Объект» written
either as the bare word «Сделка» / "Lead" or as the card's address
(https://<account>/leads/detail/<id>), half each; dates `dd.mm.yyyy hh:mm` in the account's zone,
newest first; the stage values bare, except the second pipeline's, written «Тендеры: Этап» (a
pipeline named with its stage); a close written as a move into «Успешно реализовано» /
«Закрыто и не реализовано»; the other events' wording («Входящий звонок», «Новая задача»,
«Новая сделка», «Изменение поля «Бюджет»»); a robot moving 30% of the deals.

Planted for the tests: `shared` deals renamed to one name («Поставка насосов», as real accounts
repeat names), and `deleted` deals left out of the deals export while their events stay in the
list (deleted in amoCRM after the events happened).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import _amocrm_export as amo
import _export_factory as factory

ACCOUNT = {False: "https://promtech.amocrm.ru", True: "https://promtech.kommo.com"}
RU = {"columns": ("Дата", "Автор", "Объект", "Название", "Событие", "Значение до", "Значение после"),
      "change": "Изменение этапа продажи", "new": "Новая сделка", "deal": "Сделка", "robot": "Робот",
      "calls": ("Входящий звонок", "Исходящий звонок"), "task": "Новая задача", "budget": "Изменение поля «Бюджет»",
      "contact": "Контакт", "task_obj": "Задача"}
EN = {"columns": ("Date", "Author", "Object", "Name", "Event", "Value before", "Value after"),
      "change": "Lead status changed", "new": "New lead", "deal": "Lead", "robot": "Robot",
      "calls": ("Incoming call", "Outgoing call"), "task": "New task", "budget": "Sale field changed",
      "contact": "Contact", "task_obj": "Task"}
SHARED_NAME = "Поставка насосов"
FMT = "%d.%m.%Y %H:%M"


@dataclass
class Events:
    deals: amo.AmoExport = field(default_factory=amo.AmoExport)
    shared: int = 12          # deals renamed to SHARED_NAME (their bare-word rows cannot all be told apart)
    deleted: int = 5          # deals whose events stay while the deal is gone from the deals export
    robot: float = 0.3        # share of stage moves made by «Робот»
    url_share: float = 0.5    # share of deal rows whose «Объект» is the card's address
    other_per_deal: float = 2.0  # calls, tasks, budget edits per deal (set aside)
    pipeline_prefix: bool = True  # the second pipeline's stages written «Тендеры: Этап»


@dataclass
class Written:
    folder: Path
    deals_file: str
    events_file: str
    changes: int = 0          # stage-change rows of deals (closings included)
    set_aside: int = 0        # other rows
    deleted_rows: int = 0     # stage changes of deleted deals
    robot_rows: int = 0
    url_rows: int = 0
    prefixed: int = 0


def write(folder: Path, e: Events) -> Written:
    """The deals export and the events list (CSV, UTF-8 with a BOM) in `folder`."""
    w = e.deals
    english = w.english
    words = EN if english else RU
    tz = ZoneInfo(w.tz)
    tables = factory.company_tables(w.spec, tz)
    rows = amo.build(w)
    rng = np.random.default_rng(w.spec.seed + 777)
    id_col, title_col, stage_col = ("ID", "Lead title", "Lead status") if english else ("ID", "Название сделки", "Этап сделки")
    pipe_col, owner_col = ("Pipeline", "Responsible user") if english else ("Воронка", "Ответственный")
    by_id = {r[id_col]: r for r in rows}
    number = {d["deal_id"]: str(20_000_000 + int(d["deal_id"][1:]) + (500_000 if d["deal_id"].startswith("x") else 0))
              for d in tables["deals"]}
    ids = sorted(by_id)
    picks = rng.choice(len(ids), size=e.shared + e.deleted, replace=False)
    for k in picks[:e.shared]:
        by_id[ids[k]][title_col] = SHARED_NAME
    gone = {ids[k] for k in picks[e.shared:]}
    won, lost = (amo.EN_WON, amo.EN_LOST) if english else (amo.WON, amo.LOST)
    stage_name = (lambda s: amo.EN_STAGES[s]) if english else (lambda s: s)
    second = amo.EN_PIPELINES[1] if english else amo.PIPELINES[1]
    history: dict[str, list[dict]] = {}
    for h in tables["stage_history"]:
        history.setdefault(h["deal_id"], []).append(h)
    out = Written(folder, amo.file_name(w), "amocrm_events.csv")
    events = []

    def local(ts: str) -> tuple[datetime, str]:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz)
        return t, t.strftime(FMT)

    def obj(num: str) -> str:
        if rng.random() < e.url_share:
            out.url_rows += 1
            return f"{ACCOUNT[english]}/leads/detail/{num}"
        return words["deal"]

    for d in tables["deals"]:
        num = number[d["deal_id"]]
        row = by_id.get(num)
        if row is None:
            continue
        title, owner = row[title_col], row[owner_col]
        prefix = f"{second}: " if e.pipeline_prefix and row[pipe_col] == second else ""
        robot = rng.random() < e.robot
        author = words["robot"] if robot else owner
        t, text = local(d["created_at"])
        events.append((t, [text, author, obj(num), title, words["new"], "", ""]))
        out.set_aside += 1
        steps = history.get(d["deal_id"], [])
        for prev, h in zip(steps, steps[1:]):
            t, text = local(h["entered_at"])
            events.append((t, [text, author, obj(num), title, words["change"], prefix + stage_name(prev["stage"]),
                               prefix + stage_name(h["stage"])]))
            out.changes += 1
            out.robot_rows += robot
            out.prefixed += 2 * bool(prefix)
            out.deleted_rows += num in gone
        if d["status"] in ("won", "lost") and steps:
            t, text = local(d["closed_at"])
            events.append((t, [text, author, obj(num), title, words["change"], prefix + stage_name(steps[-1]["stage"]),
                               won if d["status"] == "won" else lost]))
            out.changes += 1
            out.robot_rows += robot
            out.prefixed += bool(prefix)
            out.deleted_rows += num in gone
        for _ in range(int(rng.poisson(e.other_per_deal))):
            t0, _text = local(d["created_at"])
            kind = int(rng.integers(3))
            t = t0 + (datetime.fromisoformat((d["closed_at"] or d["created_at"]).replace("Z", "+00:00")).astimezone(tz)
                      - t0) * float(rng.random())
            if kind == 0:
                line = [t.strftime(FMT), owner, words["contact"], f"{words['contact']} {num}",
                        words["calls"][int(rng.integers(2))], "", ""]
            elif kind == 1:
                line = [t.strftime(FMT), owner, words["task_obj"], "Перезвонить", words["task"], "", ""]
            else:
                line = [t.strftime(FMT), owner, obj(num), title, words["budget"], "100 000", "120 000"]
            events.append((t, line))
            out.set_aside += 1
    rows = [r for r in rows if r[id_col] not in gone]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / out.deals_file, "w", newline="", encoding="utf-8-sig") as f:
        wr = csv.DictWriter(f, fieldnames=amo.headers(w))
        wr.writeheader()
        wr.writerows(rows)
    events.sort(key=lambda x: x[0], reverse=True)  # the list shows the newest first
    with open(folder / out.events_file, "w", newline="", encoding="utf-8-sig") as f:
        wr = csv.writer(f)
        wr.writerow(words["columns"])
        wr.writerows(line for _, line in events)
    return out
