"""A hand-made amoCRM deals export of a Kazakh company, built the way a reviewer of issue 9 would:
independent of tests/scenarios/_export_factory.py (its own company model, stage names, holiday
list and file layout), so a test built on it does not share the repository's assumptions.

The company: ТОО «Алатау Инжиниринг», Almaty (UTC+5, no DST), one amoCRM pipeline «Продажи».
- Managers («Пользователи», a list the admin typed in): 12 people in two groups. Two left
  (their last deals were created before they left; their removed names stay on their deals,
  marked «Нет» in «Активен»), one («Гульнара Исмаилова») never had a deal.
- Deals: created on the company's working days (Mon-Fri 09:00-18:00, minus the official KZ
  holidays hand-listed in HOLIDAYS with their weekend transfers, and the company's own 31 Dec),
  about `per_day` a working day, each given to an active manager at random (round-robin-like).
- The source is the deal's tag («Теги»: one of SOURCES, sometimes with an extra tag after a
  comma, as amoCRM writes several tags), the city a custom field «Город».
- Outcome: won with the source's probability (times the manager's own factor, within 0.8-1.2),
  else lost; closing after a lognormal number of calendar days (won: median 16, lost: median
  9), moved to the next working moment; deals not closed by `end` are open at a stage chosen
  by how far along their time they are. Closed deals show «Успешно реализовано» /
  «Закрыто и не реализовано» as their stage (amoCRM writes it so), with «Дата закрытия».
- Budgets written «1 200 000 ₸» (a space between thousands, the tenge sign), empty on some.
- Tasks («Задачи», a second list): the responsible manager completes a call or task on each
  open deal every 2-6 working days until it closes; the deal is linked by its ID.
- Dates written `dd.mm.yyyy hh:mm`, naive, in Almaty time.

Planted changes (`plant`), for deals created at or after `plant_at`:
  "calm"    nothing;
  "drop"    every deal's win chance times 0.55 (a company-wide drop);
  "source"  deals tagged «Instagram» (about 18% of deals) win with 0.06 instead of 0.38;
  "mix"     «Выставка» (win 0.08) goes from 6% to 40% of new deals; every source's own rate holds;
  "reasons" lost deals closed from `plant_at` on give «Дорого» 45% of the time (else uniform: 20%);
  "stop"    manager STOPPER completes no task and closes nothing from `plant_at` on (his deals
            stay open where they were), while new deals keep coming to him.
`drop_columns` removes columns from the file (e.g. «Дата закрытия», «Теги», «Причина отказа»).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np

STAGES = ("Первичный контакт", "Выявление потребности", "Коммерческое предложение",
          "Согласование договора", "Счёт выставлен")
WON, LOST = "Успешно реализовано", "Закрыто и не реализовано"
SOURCES = {"Сайт": (0.30, 0.30), "Instagram": (0.18, 0.38), "Рекомендация": (0.14, 0.45),
           "Холодный звонок": (0.20, 0.15), "Kaspi": (0.12, 0.25), "Выставка": (0.06, 0.08)}
CITIES = ("Алматы", "Астана", "Шымкент")
REASONS = ("Дорого", "Ушли к конкуренту", "Не отвечает", "Нет бюджета", "Сроки не устроили")
PRODUCTS = ("Насос ЦНС", "Компрессор", "Вентиляция цеха", "Кабель ВВГ", "Щит учёта", "Дизель-генератор",
            "Монтаж котельной", "Трансформатор", "Пусконаладка")
# (name, group, active, joined, left): joined/left bound the deals created for them
MANAGERS = (
    ("Арман Сейткали", "Алматы", True, None, None),
    ("Жанар Мукашева", "Алматы", True, None, None),
    ("Ильяс Турсынов", "Алматы", True, None, None),
    ("Мадина Касымова", "Алматы", True, None, None),
    ("Ерлан Досжанов", "Алматы", True, None, None),
    ("Светлана Ким", "Алматы", True, None, None),
    ("Бекзат Оспанов", "Астана", True, None, None),
    ("Асем Жунусова", "Астана", True, None, None),
    ("Даурен Абилов", "Астана", True, None, None),
    ("Виктор Пак", "Астана", False, None, date(2025, 10, 15)),
    ("Айдана Серикова", "Алматы", False, None, date(2026, 1, 20)),
    ("Гульнара Исмаилова", "Астана", True, None, None),  # never had a deal
)
NEVER = "Гульнара Исмаилова"
STOPPER = "Ильяс Турсынов"
# official days off in Kazakhstan 2025-2026 with the weekend transfers, written out by hand
HOLIDAYS = {date(2025, 7, 7), date(2025, 9, 1), date(2025, 10, 27), date(2025, 12, 16),
            date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 7), date(2026, 3, 9),
            date(2026, 3, 23), date(2026, 3, 24), date(2026, 3, 25), date(2026, 5, 1),
            date(2026, 5, 7), date(2026, 5, 11)}
COMPANY_OFF = {date(2025, 12, 31)}
FMT = "%d.%m.%Y %H:%M"


@dataclass
class Spec:
    seed: int = 1
    start: date = date(2025, 6, 2)
    end: datetime = datetime(2026, 4, 24, 18, 0)   # the export's moment, Almaty time (naive)
    per_day: float = 20.0
    plant: str = "calm"
    plant_at: date = date(2026, 2, 9)
    drop_columns: tuple[str, ...] = ()
    extra_tag_share: float = 0.05


def working(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS and d not in COMPANY_OFF


def _next_working_moment(t: datetime, rng: np.random.Generator) -> datetime:
    """t, or a random minute of the next working day when t is outside working hours."""
    while not working(t.date()) or t.time() >= time(18) or t.time() < time(9):
        day = t.date() if t.time() < time(9) else t.date() + timedelta(days=1)
        t = datetime.combine(day, time(9)) + timedelta(minutes=int(rng.integers(0, 540)))
    return t


def _money(v: int) -> str:
    return f"{v:,}".replace(",", " ") + " ₸"


def _reason(rng: np.random.Generator, planted: bool) -> str:
    """A lost deal's reason: uniform over REASONS; planted, «Дорого» on 45% of them."""
    if planted and rng.random() < 0.45 - 0.2:
        return REASONS[0]
    return REASONS[int(rng.integers(len(REASONS)))]


def build(s: Spec) -> dict[str, list[dict]]:
    """The three lists: «Сделки» (deals), «Пользователи» (managers), «Задачи» (tasks)."""
    rng = np.random.default_rng(s.seed)
    mfactor = {m[0]: float(rng.uniform(0.8, 1.2)) for m in MANAGERS}
    deals, tasks = [], []
    number = 31_000_000 + s.seed * 100_000
    d = s.start
    while d <= s.end.date():
        if working(d):
            for _ in range(rng.poisson(s.per_day)):
                created = datetime.combine(d, time(9)) + timedelta(minutes=int(rng.integers(0, 540)))
                if created >= s.end:
                    continue
                planted = d >= s.plant_at
                staff = [m[0] for m in MANAGERS if m[0] != NEVER
                         and (m[4] is None or d < m[4])]
                owner = staff[int(rng.integers(len(staff)))]
                names, shares = list(SOURCES), np.array([v[0] for v in SOURCES.values()])
                if s.plant == "mix" and planted:
                    k = names.index("Выставка")
                    shares = shares * (1 - 0.40) / (1 - shares[k])
                    shares[k] = 0.40
                source = names[int(rng.choice(len(names), p=shares / shares.sum()))]
                p_win = SOURCES[source][1] * mfactor[owner]
                if planted and s.plant == "drop":
                    p_win *= 0.55
                if planted and s.plant == "source" and source == "Instagram":
                    p_win = 0.06
                won = rng.random() < min(p_win, 0.95)
                days = float(np.exp(rng.normal(np.log(16 if won else 9), 0.6)))
                closed = _next_working_moment(created + timedelta(days=days), rng)
                stopped = s.plant == "stop" and owner == STOPPER and closed.date() >= s.plant_at
                number += int(rng.integers(1, 40))
                if closed <= s.end and not stopped:
                    stage, status = (WON if won else LOST), ("won" if won else "lost")
                else:
                    # open: how far along its way it is (a stopped manager's deal stays where it was)
                    upto = datetime.combine(s.plant_at, time(9)) if stopped else s.end
                    frac = max(0.0, min(0.99, (upto - created) / (closed - created)))
                    stage, status, closed = STAGES[int(frac * len(STAGES))], "open", None
                tags = source
                if rng.random() < s.extra_tag_share:
                    tags += ", повторный клиент"
                amount = int(rng.lognormal(np.log(1_500_000), 0.9) // 1000 * 1000)
                title = f"{PRODUCTS[int(rng.integers(len(PRODUCTS)))]} — {number % 1000}"
                company = f"ТОО «Клиент {int(rng.integers(1, 900)):03d}»"
                deals.append({
                    "ID": str(number), "Название сделки": title,
                    "Бюджет": "" if rng.random() < 0.07 else _money(amount),
                    "Ответственный": owner, "Дата создания": created.strftime(FMT),
                    "Дата закрытия": closed.strftime(FMT) if closed else "",
                    "Этап сделки": stage, "Воронка": "Продажи", "Теги": tags,
                    "Город": CITIES[int(rng.integers(3))],
                    "Причина отказа": _reason(rng, s.plant == "reasons" and closed is not None
                                              and closed.date() >= s.plant_at) if status == "lost" else "",
                    "Основной контакт": f"Контакт {number % 10000}",
                    "Компания": company, "Рабочий телефон": f"+7 701 {number % 10_000_000:07d}",
                    "_status": status,
                })
                # the manager's tasks on the deal, every 2-6 working days until it closes
                t = created + timedelta(hours=2)
                until = min(closed or s.end, s.end)
                if stopped:
                    until = min(until, datetime.combine(s.plant_at, time(9)))
                while True:
                    t = _next_working_moment(t + timedelta(days=float(rng.uniform(2, 6))), rng)
                    if t >= until:
                        break
                    tasks.append({"ID задачи": str(len(tasks) + 1), "Тип": ("Звонок", "Встреча", "Связаться")[int(rng.integers(3))],
                                  "Ответственный": owner, "ID сделки": str(number),
                                  "Срок": t.strftime(FMT), "Дата выполнения": t.strftime(FMT),
                                  "Выполнена": "Да"})
        d += timedelta(days=1)
    managers = [{"Имя": m[0], "Email": f"user{k}@alatau.kz", "Группа": f"Отдел продаж {m[1]}",
                 "Активен": "Да" if m[2] else "Нет"} for k, m in enumerate(MANAGERS)]
    for row in deals:
        for c in s.drop_columns:
            row.pop(c, None)
    return {"deals": deals, "managers": managers, "tasks": tasks}


CONFIG = '''language = "{lang}"
timezone = "Asia/Almaty"
currency = "KZT"

[source]
kind = "files"
path = "./export"
stages = ["Первичный контакт", "Выявление потребности", "Коммерческое предложение", "Согласование договора", "Счёт выставлен"]

[source.files]
deals = "amocrm_export_leads.csv"
managers = "Пользователи.csv"
activities = "Задачи.csv"

[source.columns.deals]
deal_id = "ID"
title = "Название сделки"
amount = "Бюджет"
manager_id = "Ответственный"
created_at = "Дата создания"
{closed}stage = "Этап сделки"
status = "Этап сделки"
pipeline = "Воронка"
client_id = "Компания"
region = "Город"
{source}{reason}
[source.values.deals.status]
"Успешно реализовано" = "won"
"Закрыто и не реализовано" = "lost"

[source.columns.managers]
manager_id = "Имя"
name = "Имя"
email = "Email"
team = "Группа"
active = "Активен"

[source.columns.activities]
activity_id = "ID задачи"
type = "Тип"
manager_id = "Ответственный"
deal_id = "ID сделки"
due_at = "Срок"
done_at = "Дата выполнения"
done = "Выполнена"
'''


def config_text(s: Spec, lang: str = "ru") -> str:
    """The config an admin writes from README alone for this export."""
    dropped = set(s.drop_columns)
    text = CONFIG.replace("{lang}", lang)
    text = text.replace("{closed}", "" if "Дата закрытия" in dropped else 'closed_at = "Дата закрытия"\n')
    text = text.replace("{source}", "" if "Теги" in dropped else 'source = "Теги"\n')
    text = text.replace("{reason}", "" if "Причина отказа" in dropped else 'loss_reason = "Причина отказа"\n')
    return text


def write(folder: Path, s: Spec, lang: str = "ru", recipients: str = "") -> Path:
    """The export folder (folder/export/...) and folder/config.toml; returns the config's path."""
    lists = build(s)
    out = folder / "export"
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("amocrm_export_leads.csv", lists["deals"]), ("Пользователи.csv", lists["managers"]),
                       ("Задачи.csv", lists["tasks"])):
        cols = [c for c in rows[0] if not c.startswith("_")]
        # amoCRM's CSV: UTF-8 with a BOM, `;` as Russian Excel opens it
        with open(out / name, "w", newline="", encoding="utf-8-sig") as f:
            w = csv.DictWriter(f, fieldnames=cols, delimiter=";", extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    cfg = folder / "config.toml"
    cfg.write_text(config_text(s, lang) + recipients, encoding="utf-8")
    return cfg


RECIPIENTS = '''
[[recipients]]
id = "director"
name = "Директор по продажам"
role = "director"
admin = true
telegram_id = 100000001

[[recipients]]
id = "arman"
name = "Арман Сейткали"
role = "manager"
manager_id = "Арман Сейткали"
telegram_id = 100000002

[[recipients]]
id = "ilyas"
name = "Ильяс Турсынов"
role = "manager"
manager_id = "Ильяс Турсынов"
telegram_id = 100000003
'''
