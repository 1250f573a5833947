"""amoCRM / Kommo events list («Список событий») given as stage_history, attacked with exports
written from README alone (not with tests/scenarios/_amocrm_events.py).

Builder assumptions (`_company`): an amoCRM deals export with README's mapping («ID»,
«Название сделки», «Этап сделки» as stage and status, «Воронка», closing stages listed in
[source.values.deals.status]); the events list's columns «Дата», «Автор», «Объект»,
«Название», «Событие», «Значение до», «Значение после» (Kommo: English ones) in CSV, newest
first, dates `DD.MM.YYYY HH:MM` in the account's zone (Asia/Almaty); a stage change worded
«Изменение этапа продажи» / "Lead status changed"; «Объект» the card's address
(`https://acme.amocrm.ru/leads/detail/<id>`) unless a test writes the bare word «Сделка» (the
row then links by name only). `[source] stages` is set, as README asks. The truth of each deal's
moves is what the builder wrote, so a test compares the loaded history with it.
"""
from __future__ import annotations

import csv
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.config import load_config
from crm.errors import DataError
from crm.load import load_crm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scenarios"))
from _cli import run_cli  # noqa: E402

STAGES = ["Первичный контакт", "Переговоры", "Принимают решение", "Согласование договора"]
WON, LOST = "Успешно реализовано", "Закрыто и не реализовано"
CHANGE = "Изменение этапа продажи"
URL = "https://acme.amocrm.ru/leads/detail/"
F = "%d.%m.%Y %H:%M"
RU = {"deals": ["ID", "Название сделки", "Бюджет", "Ответственный", "Дата создания", "Дата закрытия", "Этап сделки",
                "Воронка"],
      "events": ["Дата", "Автор", "Объект", "Название", "Событие", "Значение до", "Значение после"],
      "map": '''[source.columns.deals]
deal_id = "ID"
title = "Название сделки"
amount = "Бюджет"
manager_id = "Ответственный"
created_at = "Дата создания"
closed_at = "Дата закрытия"
stage = "Этап сделки"
status = "Этап сделки"
pipeline = "Воронка"
[source.values.deals.status]
"Успешно реализовано" = "won"
"Закрыто и не реализовано" = "lost"
'''}


class Company:
    """Deals and their events as amoCRM would list them; `moves[deal]` is the truth."""

    def __init__(self) -> None:
        self.deals: list[list[str]] = []
        self.events: list[list[str]] = []
        self.moves: dict[str, list[tuple[str, datetime]]] = {}

    def deal(self, i: int, name: str, path: list[tuple[str, datetime]], status: str = "open",
             closed: datetime | None = None, obj: str | None = None, listed: bool = True) -> None:
        """`path`: (stage, entered) from the creation on; `obj`: «Объект» as written (default the
        card's address); `listed`: False for a deal deleted since (its events stay)."""
        closing = {"won": WON, "lost": LOST}.get(status)
        if listed:
            self.deals.append([str(i), name, "1000", "Иван" if i % 2 else "Пётр", path[0][1].strftime(F),
                               closed.strftime(F) if closed else "", closing or path[-1][0], "Продажи"])
        self.moves[str(i)] = path
        where = obj or f"{URL}{i}"
        for (a, _), (b, t) in zip(path, path[1:]):
            self.events.append([t.strftime(F), "Иван", where, name, CHANGE, a, b])
        if closing:
            self.events.append([closed.strftime(F), "Робот", where, name, CHANGE, path[-1][0], closing])

    def write(self, root: Path, *, events: list[list[str]] | None = None, words: dict = RU,
              stages: list[str] = STAGES, more: str = "") -> Path:
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        rows = sorted(self.events if events is None else events, key=lambda r: r[0][6:10] + r[0][3:5] + r[0][:2]
                      + r[0][11:], reverse=True)
        for name, header, body in (("deals.csv", words["deals"], self.deals), ("events.csv", words["events"], rows)):
            with open(data / name, "w", newline="", encoding="utf-8-sig") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(body)
        stage_list = ", ".join(f'"{s}"' for s in stages)
        (root / "config.toml").write_text(
            f'language = "ru"\ntimezone = "Asia/Almaty"\ncurrency = "KZT"\n[source]\nkind = "files"\npath = "./data"\n'
            f'stages = [{stage_list}]\n{more}[source.files]\ndeals = "deals.csv"\nstage_history = "events.csv"\n'
            + words["map"]
            + '[[recipients]]\nid = "director"\nname = "Director"\nrole = "director"\nadmin = true\n'
              'telegram_id = 100000001\n', encoding="utf-8")
        return root / "config.toml"


def load(cfg: Path):
    c = load_config(cfg)
    return load_crm(c.source, timezone=c.timezone, base_dir=c.base_dir)


def history(res, deal: str) -> list[tuple[str, str]]:
    h = res.data.stage_history
    h = h[h["deal_id"] == deal].sort_values("entered_at", kind="stable")
    return list(zip(h["stage"], h["entered_at"].dt.tz_convert("Asia/Almaty").dt.strftime(F)))


def note(res, code: str) -> str:
    return " ".join(w.message for w in res.warnings if w.code == code)


T0 = datetime(2026, 10, 1, 10, 0)


def test_namesakes_told_apart_by_time_load_when_no_deal_is_closed(tmp_path):
    """Two open deals share a name and «Объект» is the bare word (an XLSX whose link is not
    read): the load crashed (TypeError) when no deal in the deals file was closed yet."""
    c = Company()
    c.deal(1, "Дубль", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=3))], obj="Сделка")
    c.deal(2, "Дубль", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=4))], obj="Сделка")
    c.deal(3, "Альфа", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=1)), (STAGES[2], T0 + timedelta(days=2))])
    res = load(c.write(tmp_path))
    assert "'Дубль': 2 deals" in note(res, "events_unlinked")
    assert history(res, "3") == [(s, t.strftime(F)) for s, t in c.moves["3"]]


def test_all_rows_lost_to_namesakes_say_the_names_are_shared_not_missing(tmp_path):
    """Every change names deals that share their name: the error said "Names not found" and
    told to map the name column the config already maps."""
    c = Company()
    c.deal(1, "Дубль", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=3))], obj="Сделка")
    c.deal(2, "Дубль", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=4))], obj="Сделка")
    with pytest.raises(DataError) as e:
        load(c.write(tmp_path))
    text = str(e.value)
    assert "'Дубль': 2 deals" in text and "not found" not in text
    assert "names of their own" in text and "ID объекта" in text


def _busy_company(seed: int) -> Company:
    """120 deals over three months moving every 4-40 hours, half won and half lost, so
    stalled_deal learns its limits; then two open namesakes «Дубль», created 1 October, both
    moved into «Переговоры» one and two days before the scan (their rows say only «Сделка»)."""
    rng = np.random.default_rng(seed)
    now = datetime(2026, 11, 30, 11, 0)
    c = Company()
    for i in range(1, 121):
        t = datetime(2026, 9, 1, 9) + timedelta(hours=float(rng.uniform(0, 24 * 85)))
        path = [(STAGES[0], t)]
        for s in STAGES[1:]:
            t += timedelta(hours=float(rng.uniform(4, 40)))
            if t > now - timedelta(hours=1):
                break
            path.append((s, t))
        closed = t + timedelta(hours=float(rng.uniform(4, 30)))
        if closed < now - timedelta(hours=1):
            c.deal(i, f"Сделка {i}", path, "won" if rng.random() < 0.5 else "lost", closed)
        else:
            c.deal(i, f"Сделка {i}", path)
    c.deal(201, "Дубль", [(STAGES[0], T0), (STAGES[1], now - timedelta(days=2))], obj="Сделка")
    c.deal(202, "Дубль", [(STAGES[0], T0), (STAGES[1], now - timedelta(days=1, hours=3))], obj="Сделка")
    return c


@pytest.mark.parametrize("seed", [1, 7])
def test_namesakes_moved_yesterday_are_not_reported_abandoned(tmp_path, seed):
    """The namesakes' moves cannot be told apart, so neither is linked: they were read as at
    «Переговоры» since their creation, and the scan called both deals abandoned for 41 days
    though each moved one or two days ago. Their stay now counts from the latest move of their
    name into their stage, and the load says so."""
    cfg = _busy_company(seed).write(tmp_path)
    res = load(cfg)
    assert "sharing a name with others" in note(res, "events_list")
    for deal in ("201", "202"):
        (stage, at), = history(res, deal)
        assert stage == STAGES[1] and at.startswith(("29.11.2026", "28.11.2026"))
    rc, out, err = run_cli("scan", "--config", str(cfg), "--now", "2026-11-30T06:00:00+00:00", "--format", "json")
    assert rc == 0, err
    stalled = [i for i in json.loads(out) if i["detector"] == "stalled_deal"]
    assert not any("Дубль" in json.dumps(i, ensure_ascii=False) for i in stalled), stalled
    assert not any(i["subject"].get("kind") == "abandoned" for i in stalled), stalled


def test_a_list_shorter_than_the_deals_is_said(tmp_path):
    """Deals created in June, the list exported from October: the load said nothing (the check
    compared the deals' creation with the creation entries the reader itself adds)."""
    c = Company()
    june = datetime(2026, 6, 1, 10, 0)
    c.deal(1, "Старая", [(STAGES[0], june), (STAGES[1], june + timedelta(days=5))])
    c.deal(2, "Новая", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=1))])
    events = [e for e in c.events if e[0][3:5] >= "10"]  # from October on
    res = load(c.write(tmp_path, events=events))
    said = note(res, "events_list")
    assert "were created before its first change (2026-10-02)" in said and "from the deals' first day" in said


def test_kommo_closing_statuses_are_not_called_an_unknown_pipeline_and_stage(tmp_path):
    """Kommo's own "Closed - lost" (a dash, like "Pipeline - Stage") was warned as a value whose
    pipeline and stage are both unknown, though it was read rightly as the loss."""
    en = {"deals": ["ID", "Lead title", "Budget", "Responsible user", "Date created", "Closed at", "Lead status",
                    "Pipeline"],
          "events": ["Date", "Author", "Object", "Name", "Event", "Value before", "Value after"],
          "map": RU["map"].replace("Название сделки", "Lead title").replace("Бюджет", "Budget")
          .replace("Ответственный", "Responsible user").replace("Дата создания", "Date created")
          .replace("Дата закрытия", "Closed at").replace("Этап сделки", "Lead status").replace("Воронка", "Pipeline")
          .replace(WON, "Closed - won").replace(LOST, "Closed - lost")}
    stages = ["Initial contact", "Negotiation", "Decision"]
    c = Company()
    c.deal(1, "Alpha", [(stages[0], T0), (stages[1], T0 + timedelta(days=1))], "lost", T0 + timedelta(days=3))
    c.deal(2, "Beta", [(stages[0], T0), (stages[1], T0 + timedelta(days=2))], "won", T0 + timedelta(days=4))
    for r in c.deals:
        r[6] = {LOST: "Closed - lost", WON: "Closed - won"}.get(r[6], r[6])
    for e in c.events:
        e[4], e[6] = "Lead status changed", {LOST: "Closed - lost", WON: "Closed - won"}.get(e[6], e[6])
    res = load(c.write(tmp_path, words=en, stages=stages))
    assert not [w for w in res.warnings if w.code == "events_stage_unknown"]
    assert res.data.deals.set_index("deal_id")["status"].to_dict() == {"1": "lost", "2": "won"}


@pytest.mark.parametrize("word", ["Сегодня", "Вчера", "Yesterday"])
def test_recent_days_written_as_words_are_an_error_that_says_what_to_write(tmp_path, word):
    """«Сегодня 14:05»: the error offered a strptime format, which cannot read it."""
    c = Company()
    c.deal(1, "Альфа", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=1)), (STAGES[2], T0 + timedelta(days=2))])
    events = [list(e) for e in c.events]
    events[-1][0] = f"{word} 14:05"
    with pytest.raises(DataError) as e:
        load(c.write(tmp_path, events=events))
    text = str(e.value)
    assert "events.csv" in text and "row " in text and f"{word} 14:05" in text
    assert "date_formats" not in text and "30.11.2026 14:05" in text


def test_an_empty_events_list_says_it_is_empty(tmp_path):
    """A list with its header only: the error told to name the wording of a stage change."""
    c = Company()
    c.deal(1, "Альфа", [(STAGES[0], T0), (STAGES[1], T0 + timedelta(days=1))])
    with pytest.raises(DataError) as e:
        load(c.write(tmp_path, events=[]))
    text = str(e.value)
    assert "no rows" in text and "[source.values.stage_history.event]" not in text
