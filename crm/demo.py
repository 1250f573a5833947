"""A deterministic demo company: an industrial equipment seller in Kazakhstan.

`generate_demo(seed)` builds a year of CRM life (10 managers in Almaty, Astana and Shymkent,
about 3,400 deals in KZT through a five-stage Russian pipeline, stage history, emails with
opens, activities, leads) and plants a few TRUE situations that each detector must find with
its default thresholds, with plenty of normal life around them:

- conversion_drop: website leads ("Сайт") that reached "КП отправлено" in the last ~two months
  move on to "Переговоры" far less often than before; other sources are unchanged.
- silent_client: four clients stopped replying 3+ weeks ago but keep opening our emails on
  several days (besides decoys: a client opened only by a mail scanner seconds after sending,
  one who never opened, one silent for only a few days).
- manager_load: in Almaty one manager carries far more open deals and new leads per FTE than
  the team, one far fewer; the half-time manager has half the deals (balanced) and the
  inactive manager in Shymkent has none.
- stalled_deal: six open deals with no stage change and no touch for 16-34 days, beyond what
  their stage usually takes (three beyond 14 working days, so escalated); every other open
  deal was touched in the last few days.
- lead_sla: four leads still unassigned or unanswered after many working hours.
- loss_reasons: "Сроки поставки" (delivery time) became the main loss reason in the last
  five weeks.

Everything comes from one numpy Generator seeded with `seed` and a fixed `now` inside the data:
no clock, no disk (except `export_csv`, which writes where it is told).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from crm.data import CrmData
from crm.schema import TABLES

TZ = ZoneInfo("Asia/Almaty")
# A Wednesday late morning: the scan "runs" now; the data ends just before it.
DEMO_NOW = datetime(2026, 11, 18, 11, 30, tzinfo=TZ)
CURRENCY = "KZT"
COMPANY = "ТОО «ПромТехСнаб»"

STAGES = ["Новая заявка", "Квалификация", "КП отправлено", "Переговоры", "Договор"]
SOURCES = ["Сайт", "Звонок", "Выставка", "Рекомендация", "Тендер"]
SOURCE_WEIGHTS = [0.45, 0.19, 0.10, 0.13, 0.13]
LOSS_REASONS = ["Цена", "Сроки поставки", "Выбрали конкурента", "Нет бюджета", "Другое"]
# Share of each loss reason (the last column: left empty) before and during the shift.
LOSS_BASELINE = [0.36, 0.12, 0.25, 0.17, 0.07, 0.03]
LOSS_RECENT = [0.20, 0.45, 0.14, 0.11, 0.07, 0.03]
LOSS_SHIFT_DAYS = 35  # losses closed this many days before now follow LOSS_RECENT

# Probability of moving on from each stage (the last: Договор -> won) and mean days it takes.
P_NEXT = [0.78, 0.80, 0.56, 0.62, 0.78]
MEAN_DAYS = [3.0, 7.0, 9.0, 10.0, 8.0]
MAX_STEP_DAYS = 26.0  # nobody waits longer: keeps every move inside a 30-day horizon
# The planted drop: website deals entering "КП отправлено" this recently move on far less.
DROP_STAGE = 2
DROP_SOURCE = "Сайт"
DROP_DAYS = 60
DROP_P_NEXT = 0.08

N_DEALS = 3400
CITIES = ["Алматы", "Астана", "Шымкент"]

# id, name, city, capacity (FTE), active, weight (share of new deals and leads, per person)
MANAGERS = [
    ("m01", "Ержан Сапаров", "Алматы", 1.0, True, 2.4),       # overloaded
    ("m02", "Алия Касымова", "Алматы", 1.0, True, 0.3),       # underloaded
    ("m03", "Дмитрий Ковалёв", "Алматы", 1.0, True, 1.0),
    ("m04", "Динара Ахметова", "Алматы", 0.5, True, 0.5),     # half-time, half the deals
    ("m05", "Тимур Бекмуханов", "Астана", 1.0, True, 1.0),
    ("m06", "Наталья Павленко", "Астана", 1.0, True, 1.0),
    ("m07", "Асель Жумабаева", "Астана", 1.0, True, 1.0),
    ("m08", "Сергей Ким", "Шымкент", 1.0, True, 1.0),
    ("m09", "Гульнара Омарова", "Шымкент", 1.0, True, 1.0),
    ("m10", "Руслан Искаков", "Шымкент", 1.0, False, 1.0),   # left the company in spring
]
INACTIVE_SINCE_DAYS = 200  # m10 took no new deals in the last 200 days

EQUIPMENT = [
    "Компрессор винтовой", "Станок токарный с ЧПУ", "Погрузчик вилочный", "Генератор дизельный",
    "Насосная станция", "Сварочный аппарат", "Ленточный конвейер", "Котёл промышленный",
    "Гидравлический пресс", "Фрезерный станок", "Мостовой кран", "Дробильная установка",
]
NAME_A = ["Алтын", "Казах", "Дала", "Жетысу", "Сарыарка", "Тенгри", "Нур", "Атамекен",
          "Байтерек", "Сункар", "Каспий", "Алатау", "Есиль", "Тулпар", "Кайнар", "Сайрам"]
NAME_B = ["Строй", "Металл", "Агро", "Транс", "Энерго", "Пром", "Маш", "Сервис", "Логистик",
          "Цемент", "Нефть", "Руда"]
SEGMENTS = ["Производство", "Строительство", "Горнодобыча", "Агро", "Логистика"]
SUBJECTS = {
    0: "Знакомство: {eq}",
    2: "Коммерческое предложение: {eq}",
    3: "Условия поставки и оплаты: {eq}",
    4: "Договор на согласование: {eq}",
}


@dataclass(frozen=True)
class DemoCompany:
    data: CrmData
    now: datetime
    config_toml: str
    # What was planted, for tests and docs: detector -> ids of the subjects it should find.
    planted: dict[str, list[str]] = field(default_factory=dict)


class _Draws:
    """Scalar draws (the Generator API subset used here) from pre-drawn blocks of one Generator.

    Calling numpy for each of ~150,000 single numbers costs seconds; slicing blocks keeps the
    demo as deterministic and takes a fraction of that.
    """

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16) -> None:
        self.rng = rng
        self.block = block
        self._u: list[float] = []
        self._i = 0

    def random(self) -> float:
        if self._i >= len(self._u):
            self._u = self.rng.random(self.block).tolist()
            self._i = 0
        v = self._u[self._i]
        self._i += 1
        return v

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return low + int(self.random() * (high - low))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def exponential(self, scale: float) -> float:
        return -scale * math.log(1.0 - self.random())

    def lognormal(self, mean: float, sigma: float) -> float:
        z = math.sqrt(-2.0 * math.log(1.0 - self.random())) * math.cos(2.0 * math.pi * self.random())
        return math.exp(mean + sigma * z)


class _Book:
    """Rows of every table as they are generated; turned into canonical frames at the end."""

    def __init__(self, rng: np.random.Generator, now: datetime) -> None:
        self.rng = _Draws(rng)
        self.now = now
        self.now_local = now.astimezone(TZ)
        self.rows: dict[str, list[dict]] = {t: [] for t in TABLES if t != "stages"}
        self.n = {"deal": 0, "email": 0, "act": 0, "lead": 0, "client": 0}

    def next_id(self, kind: str, prefix: str) -> str:
        self.n[kind] += 1
        return f"{prefix}{self.n[kind]:05d}"

    def at(self, days: float) -> datetime:
        """A moment `days` before now (negative: past), rounded to the second."""
        t = self.now + timedelta(days=days)
        return t.replace(microsecond=0)

    def work_time(self, days: float) -> datetime:
        """The working moment (Mon-Fri 09:00-18:00 Almaty) on or before the day `days` from now."""
        local = self.now_local + timedelta(days=days)  # Almaty has no DST: wall-clock arithmetic is exact
        while local.weekday() >= 5:
            local -= timedelta(days=1)
        minute = int(self.rng.integers(9 * 60, 18 * 60))
        local = local.replace(hour=minute // 60, minute=minute % 60, second=int(self.rng.integers(0, 60)), microsecond=0)
        if local > self.now:
            local = (self.now - timedelta(minutes=int(self.rng.integers(30, 300)))).replace(microsecond=0)
        return local

    # --- table rows -------------------------------------------------------------------
    def client(self, name: str, manager_id: str, region: str, segment: str) -> str:
        cid = self.next_id("client", "c")
        self.rows["clients"].append(dict(client_id=cid, name=name, manager_id=manager_id, region=region, segment=segment))
        return cid

    def email(self, client_id: str, manager_id: str, deal_id: str | None, direction: str,
              sent_at: datetime, subject: str | None) -> str:
        eid = self.next_id("email", "e")
        self.rows["emails"].append(dict(email_id=eid, client_id=client_id, manager_id=manager_id, deal_id=deal_id,
                                        direction=direction, sent_at=sent_at, subject=subject))
        return eid

    def email_open(self, email_id: str, opened_at: datetime) -> None:
        self.rows["email_opens"].append(dict(email_id=email_id, opened_at=opened_at.replace(microsecond=0)))

    def activity(self, kind: str, deal_id: str | None, client_id: str | None, manager_id: str,
                 done_at: datetime | None, due_at: datetime | None = None) -> None:
        aid = self.next_id("act", "a")
        self.rows["activities"].append(dict(activity_id=aid, deal_id=deal_id, client_id=client_id, manager_id=manager_id,
                                            type=kind, due_at=due_at, done_at=done_at))

    def lead(self, created_at: datetime, source: str, region: str, manager_id: str | None,
             assigned_at: datetime | None, first_response_at: datetime | None, status: str) -> str:
        lid = self.next_id("lead", "L")
        self.rows["leads"].append(dict(lead_id=lid, created_at=created_at, source=source, region=region,
                                       manager_id=manager_id, assigned_at=assigned_at,
                                       first_response_at=first_response_at, status=status))
        return lid


def _company_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [(a, b, f) for a in NAME_A for b in NAME_B for f in ("ТОО", "АО", "ПК")]
    order = rng.permutation(len(combos))[:n]
    return [f"{combos[i][2]} «{combos[i][0]}{combos[i][1].lower()}»" for i in order]


def _pick(rng: "_Draws", probs) -> int:
    """Index drawn with the given probabilities (faster than rng.choice for one draw)."""
    cum = list(accumulate(float(x) for x in probs))
    return min(bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


class _RoundRobin:
    """Smooth weighted round-robin (as nginx balances upstreams): how a CRM routes new leads.

    Over any stretch of time each manager gets their weight's share, give or take one lead,
    so normal managers stay balanced and only the planted imbalance shows.
    """

    def __init__(self, weights: list[float]) -> None:
        self.weights = list(weights)
        self.current = [0.0] * len(weights)

    def next(self, allowed: list[bool] | None = None) -> int:
        w = [x if (allowed is None or allowed[i]) else 0.0 for i, x in enumerate(self.weights)]
        total = sum(w)
        for i, x in enumerate(w):
            self.current[i] += x
        best = max((i for i, x in enumerate(w) if x > 0), key=lambda i: self.current[i])
        self.current[best] -= total
        return best


def _loss_reason(rng: "_Draws", closed_days: float) -> str | None:
    probs = LOSS_RECENT if closed_days >= -LOSS_SHIFT_DAYS else LOSS_BASELINE
    k = _pick(rng, probs)
    return LOSS_REASONS[k] if k < len(LOSS_REASONS) else None


def _exchange(book: _Book, client_id: str, manager_id: str, deal_id: str, sent_days: float,
              subject: str) -> None:
    """Normal life: we write, a mail scanner may 'open' it at once, the client reads and mostly replies.

    An email that gets no reply gets no human open either, so normal clients never look silent.
    """
    rng = book.rng
    if sent_days >= -0.01:
        return
    sent = book.work_time(sent_days)
    eid = book.email(client_id, manager_id, deal_id, "out", sent, subject)
    if rng.random() < 0.3:
        book.email_open(eid, sent + timedelta(seconds=int(rng.integers(2, 40))))
    reply_days = sent_days + float(rng.uniform(0.1, 2.5))
    if rng.random() < 0.85 and reply_days < -0.02:
        opened = sent + timedelta(minutes=int(rng.integers(10, 180)))
        reply = max(book.work_time(reply_days), opened + timedelta(minutes=5))
        if reply < book.now:
            book.email_open(eid, opened)
            book.email(client_id, manager_id, deal_id, "in", reply, "Re: " + subject)


def _simulate_deal(book: _Book, manager: tuple, client_id: str, created_days: float, source: str) -> None:
    """One deal through the pipeline: stage entries, loss or win, activities, emails, lead."""
    rng = book.rng
    mid, _name, city, *_ = manager
    deal_id = book.next_id("deal", "d")
    eq = EQUIPMENT[int(rng.integers(len(EQUIPMENT)))]
    qty = (1, 1, 1, 2, 2, 3, 4)[int(rng.integers(7))]
    amount = min(max(rng.lognormal(math.log(6e6), 0.9), 5e5), 8e7) * qty
    amount = float(min(round(amount, -4), 8e7))
    title = f"{eq}" + (f" ×{qty}" if qty > 1 else "")

    # The lead this deal came from: answered quickly, in working hours.
    created = book.work_time(created_days)
    lead_created = created - timedelta(minutes=int(rng.integers(40, 240)))
    assigned = lead_created + timedelta(minutes=int(rng.integers(2, 25)))
    responded = assigned + timedelta(minutes=int(rng.integers(5, 15)))
    book.lead(lead_created, source, city, mid, assigned, responded, "converted")

    days = (created - book.now).total_seconds() / 86400
    history = [(STAGES[0], days)]
    status, closed_days, reason = "open", None, None
    k = 0
    while True:
        p = P_NEXT[k]
        if k == DROP_STAGE and source == DROP_SOURCE and history[-1][1] >= -DROP_DAYS:
            p = DROP_P_NEXT
        step = min(float(rng.exponential(MEAN_DAYS[k])) + 0.2, MAX_STEP_DAYS)
        nxt = days + step
        if nxt >= 0:
            break  # still in this stage at now
        if rng.random() < p:
            if k == len(STAGES) - 1:
                status, closed_days = "won", nxt
                break
            k += 1
            days = nxt
            history.append((STAGES[k], days))
        else:
            status, closed_days = "lost", nxt
            reason = _loss_reason(rng, nxt)
            break

    for stage, d in history:
        book.rows["stage_history"].append(dict(deal_id=deal_id, stage=stage, entered_at=book.at(d)))
    closed_at = book.at(closed_days) if closed_days is not None else None
    book.rows["deals"].append(dict(
        deal_id=deal_id, client_id=client_id, manager_id=mid, title=title, amount=amount,
        currency=CURRENCY, stage=history[-1][0], status=status, created_at=book.at(history[0][1]),
        closed_at=closed_at, loss_reason=reason, source=source, region=city,
    ))

    # Work done at each stage: a call or meeting, sometimes a task, and an email exchange.
    end_days = closed_days if closed_days is not None else 0.0
    for i, (stage, d) in enumerate(history):
        stage_end = history[i + 1][1] if i + 1 < len(history) else end_days
        span = max(stage_end - d, 0.05)
        for _ in range(int(rng.integers(1, 3))):
            t = min(d + rng.uniform(0, span), -0.001)  # never after now
            kind = ("call", "call", "meeting", "task", "email")[int(rng.integers(5))]
            done = book.at(t)
            book.activity(kind, deal_id, client_id, mid, done, due_at=done if kind == "task" else None)
        if i in SUBJECTS:
            _exchange(book, client_id, mid, deal_id, d + float(rng.uniform(0.02, min(span, 1.0))),
                      SUBJECTS[i].format(eq=eq))
    if status == "open":
        # A live deal is worked on: a call in the last few days, and the next task planned.
        last_entry = history[-1][1]
        t = max(last_entry, -float(rng.uniform(0.1, 5.0)))
        book.activity(("call", "meeting", "email")[int(rng.integers(3))], deal_id, client_id, mid, book.at(t))
        due = book.at(float(rng.uniform(0.5, 6.0)))
        book.activity("task", deal_id, client_id, mid, None, due_at=due)


def _plant_deal(book: _Book, manager: tuple, client_id: str, stage_k: int, idle_days: float,
                age_days: float, title: str, amount: float) -> str:
    """An open deal whose last stage change and last touch were `idle_days` ago."""
    mid, _n, city, *_ = manager
    deal_id = book.next_id("deal", "d")
    entries = np.linspace(-age_days, -idle_days, stage_k + 1)
    for k, d in enumerate(entries):
        book.rows["stage_history"].append(dict(deal_id=deal_id, stage=STAGES[k], entered_at=book.at(float(d))))
        book.activity("call", deal_id, client_id, mid, book.at(float(d) + 0.01))
    created = book.at(float(entries[0]))
    book.lead(created - timedelta(hours=2), "Звонок", city, mid, created - timedelta(hours=2) + timedelta(minutes=10),
              created - timedelta(hours=1), "converted")
    book.rows["deals"].append(dict(
        deal_id=deal_id, client_id=client_id, manager_id=mid, title=title, amount=amount, currency=CURRENCY,
        stage=STAGES[stage_k], status="open", created_at=created, closed_at=None, loss_reason=None,
        source="Звонок", region=city,
    ))
    return deal_id


def _plant_silent(book: _Book, manager: tuple, client_id: str, eq: str, *, last_reply_days: float,
                  sent_days: list[float], human_open_days: list[list[float]], machine: bool) -> str:
    """A client whose replies stopped; our later emails get the given opens."""
    mid = manager[0]
    deal_id = _plant_deal(book, manager, client_id, 2, last_reply_days + 3, last_reply_days + 25,
                          f"{eq} ×2", 24_500_000.0)
    first = book.email(client_id, mid, deal_id, "out", book.at(-last_reply_days - 1), f"Коммерческое предложение: {eq}")
    book.email_open(first, book.at(-last_reply_days - 0.9))
    book.email(client_id, mid, deal_id, "in", book.at(-last_reply_days), f"Re: Коммерческое предложение: {eq}")
    for sd, opens in zip(sent_days, human_open_days):
        sent = book.at(sd)
        eid = book.email(client_id, mid, deal_id, "out", sent, f"Напоминание: коммерческое предложение — {eq}")
        if machine:
            book.email_open(eid, sent + timedelta(seconds=int(book.rng.integers(3, 20))))
        for od in opens:
            book.email_open(eid, book.at(od))
    return deal_id


def generate_demo(seed: int = 7) -> DemoCompany:
    """The demo company: same seed, same frames, same insights."""
    rng = np.random.default_rng(seed)
    now = DEMO_NOW.astimezone(ZoneInfo("UTC"))
    book = _Book(rng, now)
    managers = {m[0]: m for m in MANAGERS}

    # Clients: each belongs to one manager, in proportion to how much that manager sells.
    names = iter(_company_names(rng, 500))
    clients_of: dict[str, list[str]] = {}
    for m in MANAGERS:
        n = max(6, int(40 * m[5]))
        clients_of[m[0]] = [book.client(next(names), m[0], m[2], SEGMENTS[int(rng.integers(len(SEGMENTS)))])
                            for _ in range(n)]

    # A year of deals, created on workdays, spread over managers by their weight.
    created = np.sort(rng.uniform(-365, -0.3, N_DEALS))
    router = _RoundRobin([m[5] for m in MANAGERS])
    everyone = [True] * len(MANAGERS)
    still_here = [bool(m[4]) for m in MANAGERS]
    for d in created:
        m = MANAGERS[router.next(everyone if d < -INACTIVE_SINCE_DAYS else still_here)]
        source = SOURCES[_pick(rng, SOURCE_WEIGHTS)]
        client_id = clients_of[m[0]][int(rng.integers(len(clients_of[m[0]])))]
        _simulate_deal(book, m, client_id, float(d), source)

    # Leads that never became deals (spam, wrong numbers), answered quickly all the same.
    junk_router = _RoundRobin([m[5] for m in MANAGERS])
    for d in np.sort(rng.uniform(-365, -0.3, 700)):
        m = MANAGERS[junk_router.next(still_here)]
        t = book.work_time(float(d))
        book.lead(t, SOURCES[_pick(rng, SOURCE_WEIGHTS)], m[2], m[0],
                  t + timedelta(minutes=int(rng.integers(2, 20))), t + timedelta(minutes=int(rng.integers(25, 60))), "junk")
    # Two leads that came in minutes ago: assigned, not yet answered, well inside the SLA.
    for minutes, mid in ((12, "m03"), (25, "m06")):
        t = now - timedelta(minutes=minutes)
        book.lead(t, "Сайт", managers[mid][2], mid, t + timedelta(minutes=3), None, "new")

    planted: dict[str, list[str]] = {}

    # silent_client: replies stopped 3-5 weeks ago, our emails still opened on several days.
    silent = []
    for mid, name, eq, last_reply, sends, opens in (
        ("m03", "ТОО «Караганда Литейный Завод»", "Дробильная установка", 32, [-28, -21, -12, -5],
         [[-27.8], [-20.5, -16.2], [-11.6], [-4.7, -2.1]]),
        ("m05", "АО «Павлодар Агрегат»", "Котёл промышленный", 26, [-22, -15, -6],
         [[-21.7, -19.1], [], [-5.8, -3.4]]),
        ("m06", "ТОО «Ақтөбе ТехМонтаж»", "Мостовой кран", 40, [-35, -24, -16, -6],
         [[-34.5], [-23.6], [-15.7, -10.2], [-5.9, -3.5]]),
        ("m08", "ТОО «Туркестан Агропром»", "Ленточный конвейер", 21, [-18, -10, -4],
         [[-17.8], [-9.6], [-3.9, -1.3]]),
    ):
        cid = book.client(name, mid, managers[mid][2], "Производство")
        _plant_silent(book, managers[mid], cid, eq, last_reply_days=last_reply, sent_days=sends,
                      human_open_days=opens, machine=True)
        silent.append(cid)
    planted["silent_client"] = silent
    # Decoys that must NOT be reported: only a mail scanner opens; never opened; silent 4 days.
    decoys = []
    for mid, name, eq, last_reply, sends, opens, machine in (
        ("m07", "ТОО «Экибастуз Энергомаш»", "Генератор дизельный", 30, [-25, -17, -5], [[], [], []], True),
        ("m09", "ТОО «Кызылорда Нефтесервис»", "Насосная станция", 28, [-24, -13, -4], [[], [], []], False),
        ("m05", "АО «Кокшетау Зерно»", "Погрузчик вилочный", 4, [-3.5, -1.5], [[-3.4], [-1.2]], True),
    ):
        cid = book.client(name, mid, managers[mid][2], "Производство")
        _plant_silent(book, managers[mid], cid, eq, last_reply_days=last_reply, sent_days=sends,
                      human_open_days=opens, machine=machine)
        decoys.append(cid)
    planted["silent_client_decoys"] = decoys

    # stalled_deal: open deals nobody has touched for longer than their stage usually takes
    # (the demo's own history: 80% move on within 8-11 working days); beyond 14 working days:
    # escalated. Idle times here are calendar days.
    stalled = []
    for mid, stage_k, idle, eq, amount in (
        ("m03", 1, 16.5, "Компрессор винтовой", 4_800_000.0),
        ("m05", 2, 18.5, "Станок токарный с ЧПУ", 18_700_000.0),
        ("m09", 3, 18.0, "Сварочный аппарат", 2_300_000.0),
        ("m06", 2, 24.0, "Гидравлический пресс", 31_000_000.0),
        ("m01", 3, 28.0, "Фрезерный станок", 12_400_000.0),
        ("m07", 4, 34.0, "Мостовой кран", 67_000_000.0),
    ):
        m = managers[mid]
        cid = book.client(next(names), mid, m[2], "Строительство")
        stalled.append(_plant_deal(book, m, cid, stage_k, idle, idle + 20, eq, amount))
    planted["stalled_deal"] = stalled

    # lead_sla: leads still waiting (working hours pass only Mon-Fri 09-18 Almaty).
    local_now = DEMO_NOW
    monday = (local_now - timedelta(days=local_now.weekday())).replace(hour=0, minute=0, second=0)
    slow = []
    for when, mid, assigned in (
        (monday + timedelta(hours=10, minutes=15), None, False),                   # unassigned since Monday
        (monday - timedelta(days=3) + timedelta(hours=15, minutes=40), None, False),  # since last Friday
        (monday + timedelta(hours=14), "m05", True),                               # assigned, no answer
        (monday + timedelta(days=1, hours=9, minutes=20), "m09", True),            # assigned Tuesday, no answer
    ):
        t = when.astimezone(ZoneInfo("UTC"))
        region = managers[mid][2] if mid else "Алматы"
        slow.append(book.lead(t, "Сайт", region, mid, t + timedelta(minutes=20) if assigned else None, None, "new"))
    planted["lead_sla"] = slow
    planted["manager_load"] = ["m01", "m02"]
    planted["conversion_drop"] = [f"{STAGES[DROP_STAGE]} -> {STAGES[DROP_STAGE + 1]}"]
    planted["loss_reasons"] = ["Сроки поставки"]

    data = _frames(book)
    return DemoCompany(data=data, now=now, config_toml=demo_config_toml(), planted=planted)


def _frames(book: _Book) -> CrmData:
    """Canonical frames (crm.schema dtypes), sorted by time like a CRM export would be."""
    frames: dict[str, pd.DataFrame] = {}
    for name, rows in book.rows.items():
        table = TABLES[name]
        df = pd.DataFrame(rows, columns=[c.name for c in table.columns])
        for col in table.columns:
            s = df[col.name]
            if col.kind == "str":
                df[col.name] = s.astype("str")
            elif col.kind == "datetime":
                df[col.name] = pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
            elif col.kind == "float":
                df[col.name] = s.astype("float64")
            elif col.kind == "int":
                df[col.name] = s.astype("int64")
            elif col.kind == "bool":
                df[col.name] = s.astype(bool)
        frames[name] = df
    mgr = pd.DataFrame({
        "manager_id": [m[0] for m in MANAGERS],
        "name": [m[1] for m in MANAGERS],
        "email": [f"{m[0]}@promtech.kz" for m in MANAGERS],
        "region": [m[2] for m in MANAGERS],
        "team": [m[2] for m in MANAGERS],
        "capacity": [float(m[3]) for m in MANAGERS],
        "active": [bool(m[4]) for m in MANAGERS],
    })
    for c in ("manager_id", "name", "email", "region", "team"):
        mgr[c] = mgr[c].astype("str")
    sh = frames["stage_history"].sort_values(["entered_at", "deal_id"], kind="stable").reset_index(drop=True)
    return CrmData(
        managers=mgr,
        deals=frames["deals"],
        stage_history=sh,
        stages=list(STAGES),
        clients=frames["clients"],
        emails=frames["emails"].sort_values(["sent_at", "email_id"], kind="stable").reset_index(drop=True),
        email_opens=frames["email_opens"].sort_values(["opened_at", "email_id"], kind="stable").reset_index(drop=True),
        activities=frames["activities"],
        leads=frames["leads"].sort_values(["created_at", "lead_id"], kind="stable").reset_index(drop=True),
        origins={name: "demo" for name in TABLES},
    )


def export_csv(data: CrmData, folder: str | Path) -> list[Path]:
    """Write every table as `<table>.csv` (UTF-8, ISO timestamps in UTC) plus stages.csv.

    The files are the canonical contract by example: `crm-pulse scan --data <folder>` reads them.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in data.table_names():
        df = data.table(name).copy()
        for col in df.columns:
            if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                df[col] = df[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif df[col].dtype == bool:
                df[col] = df[col].map({True: "true", False: "false"})
        path = out / f"{name}.csv"
        df.to_csv(path, index=False, encoding="utf-8")
        written.append(path)
    stages = pd.DataFrame({"stage": data.stages, "position": range(1, len(data.stages) + 1)})
    path = out / "stages.csv"
    stages.to_csv(path, index=False, encoding="utf-8")
    written.append(path)
    return written


def demo_config_toml(data_dir: str = "demo-data") -> str:
    """A complete config for the demo company: every active manager and the director as recipients."""
    lines = [
        f"# crm-pulse config for the demo company ({COMPANY}, industrial equipment).",
        "# `crm-pulse demo --export demo-data` writes the data this config points to.",
        'language = "ru"',
        'timezone = "Asia/Almaty"',
        f'currency = "{CURRENCY}"',
        "",
        "[source]",
        'kind = "files"',
        f'path = "{data_dir}"',
        "",
        "[detectors.stalled_deal]",
        "escalate_after_days = 14",
        "",
        "[delivery]",
        "max_items = 10",
        "",
        "[[recipients]]",
        'id = "director"',
        'name = "Директор по продажам"',
        'role = "director"',
        "admin = true",
        'telegram_id = "100000001"',
        "",
    ]
    for i, (mid, name, _city, _cap, active, _w) in enumerate(MANAGERS):
        if not active:
            continue
        lines += [
            "[[recipients]]",
            f'id = "{mid}"',
            f'name = "{name}"',
            'role = "manager"',
            f'manager_id = "{mid}"',
            f'telegram_id = "{100000010 + i}"',
            "",
        ]
    return "\n".join(lines)
