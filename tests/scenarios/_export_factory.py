"""An amoCRM/Bitrix24-like company export, written as the CSV files an admin would hand to
`crm-pulse scan --data DIR`, with the truth known because we planted it.

The company: managers in teams (plus, on request, agents who never had a deal and people marked
active=false), deals from several sources walking a five-stage pipeline (each stage moves on
with a probability and after an exponential wait, otherwise the deal is lost with a reason),
managers touching their open deals every few days (activities), an email thread per deal that
the client answers, and leads answered within the hour. Knobs: volume, sources and their
shares, stage speeds, one planted conversion effect, absent columns or tables, a holiday period
in which nobody works (web leads still arrive), deals left behind by one manager, and where the
data ends.

Timestamps are written in UTC with a Z; the company works 09:00-18:00 in Asia/Almaty (UTC+5).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

UTC = timezone.utc
UNASSIGNED = "unassigned"  # the catch-all owner of ExportSpec.unassigned
LOCAL = timedelta(hours=5)  # Asia/Almaty
STAGES = ("Новая заявка", "Квалификация", "КП отправлено", "Переговоры", "Договор")
SOURCES = {"Сайт": 0.35, "Звонок": 0.25, "Рекомендация": 0.2, "Instagram": 0.12, "Выставка": 0.08}
REGIONS = ("Алматы", "Астана", "Шымкент")
REASONS = {"Цена": 0.35, "Выбрали конкурента": 0.25, "Нет бюджета": 0.2, "Сроки поставки": 0.2}
FIRST = ("Ержан", "Алия", "Дмитрий", "Динара", "Асель", "Нурлан", "Марат", "Айгерим", "Сергей",
         "Жанна", "Тимур", "Ольга", "Бауыржан", "Камила", "Арман", "Елена")


@dataclass(frozen=True)
class Effect:
    """One planted change in the chance to move on from `stage` (an index into STAGES) for
    deals that entered that stage at or after `at`.

    kind:
      "none"        nothing changes;
      "uniform"     every deal's chance is multiplied by `factor`;
      "compensated" like "uniform", and those deals' chance at the next stage is divided by
                    `factor` (at most 1): the stage pair falls while the win rate of new deals
                    holds (a drop only a stage history shows);
      "source"      only deals of `source` move on with `after` instead of `before`;
      "mix"         `source` always converts at `before` (others at the base rate), but from
                    `at` on its share of new deals becomes `share_after`: every source's own
                    rate is unchanged;
      "confound"    like "source", and manager `manager` gets `manager_share` of that source's
                    deals (a manager who simply had more deals from the failing source).
    For "source"/"confound", `share` sets the source's share of deals; for "mix", its share
    before `at` (default: as in `sources`).
    """
    kind: str = "none"
    stage: int = 1
    at: datetime | None = None
    factor: float = 1.0
    source: str = "Instagram"
    share: float | None = None
    before: float | None = None
    after: float | None = None
    share_after: float | None = None
    manager: str = "m1"
    manager_share: float = 0.7


@dataclass
class ExportSpec:
    seed: int = 0
    end: datetime = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # the newest moment in the data
    days: int = 200  # deals are created over this many days before `end`
    n_managers: int = 8
    n_teams: int = 2
    idle_agents: int = 0  # in managers.csv, never had a deal, lead or activity
    inactive_flagged: int = 0  # active=false: had deals in the first two months only, all closed
    overloaded: str | None = None  # this manager gets 3x the share of new deals and leads
    underloaded: str | None = None  # this one gets a fifth of the share
    deals_per_month: float = 250
    leads_per_month: float = 120
    sources: dict[str, float] = field(default_factory=lambda: dict(SOURCES))
    stages: tuple[str, ...] = STAGES  # the pipeline, in order; advance and stage_days need one entry each
    advance: tuple[float, ...] = (0.8, 0.6, 0.55, 0.7, 0.8)  # chance to move on (the last: to win)
    stage_days: tuple[float, ...] = (1.5, 3.0, 4.0, 4.0, 3.0)  # mean calendar days before moving on
    effect: Effect = field(default_factory=Effect)
    absent: frozenset[str] = frozenset()  # "table" or "table.column" left out of the export
    holiday: tuple[date, date] | None = None  # nobody works on these days (inclusive)
    touch_every: tuple[float, float] = (0.5, 2.5)  # calendar days between touches of an open deal
    with_emails: bool = True
    # (manager, n): n more open deals of that manager, entered Квалификация `abandoned_days` before
    # `end` and never touched since (left behind, as real CRMs are full of)
    abandoned: tuple[str, int] | None = None
    abandoned_days: tuple[float, float] = (100, 190)  # how long ago those deals entered Квалификация
    # share of deals and leads owned by a catch-all CRM user "unassigned" (in managers.csv, no
    # team): nobody calls those deals, they only move through the pipeline (a CRM's "Не назначен")
    unassigned: float = 0.0
    # people who left (active=false) `departed_ago` days before `end`: they got deals like the
    # others until then; their open deals stay open in their name and nobody touches them since
    departed: int = 0
    departed_ago: float = 60


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.isoformat(timespec="seconds").replace("+00:00", "Z")


class _Company:
    def __init__(self, spec: ExportSpec):
        self.s = spec
        self.rng = np.random.default_rng(spec.seed)
        self.ghost_rng = np.random.default_rng(spec.seed + 10_000)  # apart, so ghosts do not change the rest
        self.start = spec.end - timedelta(days=spec.days)

    # -- time helpers -----------------------------------------------------------------------
    def _in_holiday(self, t: datetime) -> bool:
        h = self.s.holiday
        return h is not None and h[0] <= (t + LOCAL).date() <= h[1]

    def _after_holiday(self, t: datetime) -> datetime:
        """Work planned inside the holiday happens on the first day after it, in the morning."""
        if not self._in_holiday(t):
            return t
        day = self.s.holiday[1] + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        minutes = float(self.rng.uniform(10, 120))
        return datetime(day.year, day.month, day.day, 9, tzinfo=UTC) - LOCAL + timedelta(minutes=minutes)

    def _work_moment(self, lo: datetime, hi: datetime) -> datetime:
        """A random moment in working hours on a weekday between lo and hi (not in the holiday)."""
        for _ in range(50):
            t = lo + (hi - lo) * float(self.rng.random())
            loc = t + LOCAL
            if loc.weekday() < 5 and 9 <= loc.hour < 18 and not self._in_holiday(t):
                return t
        return t

    # -- the company --------------------------------------------------------------------------
    def managers(self) -> list[dict]:
        s, rows = self.s, []
        n_idle, n_inactive = s.n_managers + s.idle_agents, s.n_managers + s.idle_agents + s.inactive_flagged
        for k in range(1, n_inactive + s.departed + 1):
            kind = ("working" if k <= s.n_managers else "idle" if k <= n_idle else "inactive" if k <= n_inactive
                    else "departed")
            rows.append({"manager_id": f"m{k}", "name": f"{FIRST[(k - 1) % len(FIRST)]} {kind.capitalize()[:1]}{k}",
                         "email": f"m{k}@example.kz", "region": REGIONS[(k - 1) % s.n_teams % len(REGIONS)],
                         "team": f"Команда {(k - 1) % s.n_teams + 1}", "capacity": "1.0",
                         "active": "false" if kind in ("inactive", "departed") else "true", "_kind": kind})
        if s.unassigned:
            rows.append({"manager_id": UNASSIGNED, "name": "Не назначен", "email": "", "region": "", "team": "",
                         "capacity": "1.0", "active": "true", "_kind": "unassigned"})
        return rows

    def build(self) -> dict[str, list[dict]]:
        s, rng, e = self.s, self.rng, self.s.effect
        mgrs = self.managers()
        working = [m["manager_id"] for m in mgrs if m["_kind"] == "working"]
        inactive = [m["manager_id"] for m in mgrs if m["_kind"] == "inactive"]
        departed = [m["manager_id"] for m in mgrs if m["_kind"] == "departed"]
        left_at = s.end - timedelta(days=s.departed_ago)
        weights = np.array([3.0 if m == s.overloaded else 0.2 if m == s.underloaded else 1.0 for m in working])
        weights /= weights.sum()
        all_ids = working + departed  # who takes new deals before the departed left
        all_w = np.r_[weights * len(working), np.ones(len(departed))]
        all_w /= all_w.sum()
        src_names = list(s.sources)
        shares = np.array([s.sources[n] for n in src_names], dtype=float)
        if e.kind in ("source", "confound", "mix") and e.share is not None:
            i = src_names.index(e.source)
            rest = np.delete(np.arange(len(shares)), i)
            shares[rest] *= (1 - e.share) / shares[rest].sum()
            shares[i] = e.share
        shares /= shares.sum()
        shares_after = shares.copy()
        if e.kind == "mix" and e.share_after is not None:
            i = src_names.index(e.source)
            rest = np.delete(np.arange(len(shares)), i)
            shares_after[rest] *= (1 - e.share_after) / shares_after[rest].sum()
            shares_after[i] = e.share_after

        n_deals = int(rng.poisson(s.deals_per_month * s.days / 30.4))
        created = sorted(self._work_moment(self.start, s.end) for _ in range(n_deals))
        deals, history, acts, emails, opens, clients = [], [], [], [], [], []
        a_id = e_id = 0
        for n, t0 in enumerate(created):
            did, cid = f"d{n + 1:05d}", f"c{n + 1:05d}"
            shifted = e.kind == "mix" and e.at is not None and t0 >= e.at
            src = src_names[rng.choice(len(src_names), p=shares_after if shifted else shares)]
            mgr = working[rng.choice(len(working), p=weights)]
            if departed and t0 < left_at:
                mgr = all_ids[rng.choice(len(all_ids), p=all_w)]
            if s.unassigned and rng.random() < s.unassigned:
                mgr = UNASSIGNED
            if e.kind == "confound" and src == e.source and rng.random() < e.manager_share:
                mgr = e.manager
            if inactive and t0 < self.start + timedelta(days=45) and self.ghost_rng.random() < 0.3:
                mgr = inactive[int(self.ghost_rng.integers(len(inactive)))]
            region = REGIONS[int(rng.integers(len(REGIONS)))]
            t, k, status, closed, reason = t0, 0, "open", None, ""
            hit = False  # "compensated": this deal entered the stage after `at`
            history.append({"deal_id": did, "stage": s.stages[0], "entered_at": _iso(t0)})
            while True:
                p = s.advance[k]
                if e.kind == "compensated" and hit and k == e.stage + 1:
                    p = min(1.0, p / e.factor)
                if k == e.stage and e.kind != "none":
                    late = e.at is not None and t >= e.at
                    if e.kind in ("uniform", "compensated") and late:
                        p *= e.factor
                        hit = True
                    elif e.kind in ("source", "confound") and src == e.source:
                        p = e.after if late else e.before
                    elif e.kind == "mix" and src == e.source:
                        p = e.before
                wait = timedelta(days=float(rng.exponential(s.stage_days[k])) + 0.05)
                t_next = self._after_holiday(t + wait)
                if mgr in inactive:
                    t_next = min(t_next, self.start + timedelta(days=55))
                if t_next > s.end or (mgr in departed and t_next > left_at):
                    break
                if rng.random() < p:
                    k += 1
                    t = t_next
                    if k == len(s.stages):
                        status, closed, k = "won", t, len(s.stages) - 1
                        break
                    history.append({"deal_id": did, "stage": s.stages[k], "entered_at": _iso(t)})
                else:
                    status, closed = "lost", t_next
                    reason = list(REASONS)[rng.choice(len(REASONS), p=list(REASONS.values()))]
                    break
            if mgr in inactive and status == "open":  # people who left closed their deals
                status, closed, reason = "lost", min(t + timedelta(days=1), s.end), "Нет бюджета"
            deals.append({"deal_id": did, "client_id": cid, "manager_id": mgr, "title": f"Сделка {n + 1}",
                          "amount": f"{float(rng.lognormal(14, 0.8)):.0f}", "currency": "KZT",
                          "stage": s.stages[k], "status": status, "created_at": _iso(t0),
                          "closed_at": _iso(closed), "loss_reason": reason, "source": src, "region": region})
            clients.append({"client_id": cid, "name": f"ТОО «Клиент {n + 1}»", "manager_id": mgr,
                            "region": region, "segment": "B2B"})
            # touches of the deal while it is open
            stop = closed or s.end
            if mgr in departed:
                stop = min(stop, left_at)
            if mgr == UNASSIGNED:
                stop = t0  # nobody calls a deal nobody owns
            ta = t0 + timedelta(hours=1)
            while ta < stop:
                ta = self._after_holiday(ta)
                if ta >= stop:
                    break
                a_id += 1
                acts.append({"activity_id": f"a{a_id:06d}", "deal_id": did, "client_id": cid, "manager_id": mgr,
                             "type": ("call", "meeting", "task", "call")[a_id % 4], "due_at": "", "done_at": _iso(ta)})
                ta = ta + timedelta(days=float(rng.uniform(*s.touch_every)))
            if s.with_emails:
                sent = t0 + timedelta(hours=1)
                reply = t0 + timedelta(hours=20)
                if reply < s.end:
                    e_id += 1
                    emails.append({"email_id": f"e{e_id:06d}", "client_id": cid, "manager_id": mgr, "deal_id": did,
                                   "direction": "out", "sent_at": _iso(sent), "subject": "Коммерческое предложение"})
                    opens.append({"email_id": f"e{e_id:06d}", "opened_at": _iso(sent + timedelta(hours=2))})
                    e_id += 1
                    emails.append({"email_id": f"e{e_id:06d}", "client_id": cid, "manager_id": mgr, "deal_id": did,
                                   "direction": "in", "sent_at": _iso(reply), "subject": "Re: Коммерческое предложение"})
        if s.abandoned:
            who, count = s.abandoned
            for j in range(count):
                did, cid = f"x{j + 1:05d}", f"cx{j + 1:05d}"
                t0 = s.end - timedelta(days=float(rng.uniform(*s.abandoned_days)) + 1)
                t1 = t0 + timedelta(days=1)
                deals.append({"deal_id": did, "client_id": cid, "manager_id": who, "title": f"Забытая сделка {j + 1}",
                              "amount": "1000000", "currency": "KZT", "stage": s.stages[1], "status": "open",
                              "created_at": _iso(t0), "closed_at": "", "loss_reason": "", "source": "Сайт",
                              "region": REGIONS[0]})
                clients.append({"client_id": cid, "name": f"ТОО «Забытый {j + 1}»", "manager_id": who,
                                "region": REGIONS[0], "segment": "B2B"})
                history += [{"deal_id": did, "stage": s.stages[0], "entered_at": _iso(t0)},
                            {"deal_id": did, "stage": s.stages[1], "entered_at": _iso(t1)}]
        leads = self._leads(working, weights)
        managers = [{k: v for k, v in m.items() if not k.startswith("_")} for m in mgrs]
        stages = [{"stage": st, "position": i + 1} for i, st in enumerate(s.stages)]
        return {"managers": managers, "deals": deals, "stage_history": history, "stages": stages,
                "clients": clients, "activities": acts, "emails": emails, "email_opens": opens, "leads": leads}

    def _leads(self, working: list[str], weights: np.ndarray) -> list[dict]:
        s, rng, rows = self.s, self.rng, []
        lead_start = s.end - timedelta(days=min(s.days, 120))
        n = int(rng.poisson(s.leads_per_month * min(s.days, 120) / 30.4))
        holiday_days = 0 if s.holiday is None else (s.holiday[1] - s.holiday[0]).days + 1
        for k in range(n):
            if holiday_days and rng.random() < 0.03 * holiday_days:  # web forms keep coming in
                day = s.holiday[0] + timedelta(days=int(rng.integers(holiday_days)))
                t = datetime(day.year, day.month, day.day, 10, tzinfo=UTC) - LOCAL + timedelta(
                    hours=float(rng.uniform(0, 8)))
                if t > s.end:
                    continue
                answered = self._after_holiday(t)  # ... and are answered after the holiday
                assigned = answered - timedelta(minutes=5)
            else:  # in working hours, answered within the hour
                t = self._work_moment(lead_start, s.end)
                assigned = t + timedelta(minutes=float(rng.uniform(2, 20)))
                answered = assigned + timedelta(minutes=float(rng.uniform(5, 35)))
            mgr = working[rng.choice(len(working), p=weights)]
            if s.unassigned and rng.random() < s.unassigned:
                mgr = UNASSIGNED
            done = answered <= s.end
            rows.append({"lead_id": f"L{k + 1:05d}", "created_at": _iso(t),
                         "source": list(s.sources)[int(rng.integers(len(s.sources)))],
                         "region": REGIONS[int(rng.integers(len(REGIONS)))], "manager_id": mgr,
                         "assigned_at": _iso(assigned if assigned <= s.end else None),
                         "first_response_at": _iso(answered if done else None),
                         "status": ("converted" if rng.random() < 0.3 else "in_work") if done else "new"})
        rows.sort(key=lambda r: r["created_at"])
        return rows


def _t(text: str) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def as_of(tables: dict[str, list[dict]], moment: datetime) -> dict[str, list[dict]]:
    """The pipeline tables (managers, stages, deals, stage_history, clients) as the export stood
    at `moment`: later rows gone, deals closed after it open again at the stage they were in.
    One company generated up to its last scan gives the export of each earlier scan day."""
    hist = [r for r in tables["stage_history"] if _t(r["entered_at"]) <= moment]
    last = {r["deal_id"]: r["stage"] for r in hist}  # rows are in order within a deal
    deals = []
    for r in tables["deals"]:
        if _t(r["created_at"]) > moment:
            continue
        closed = _t(r["closed_at"])
        if closed is not None and closed > moment:
            r = {**r, "status": "open", "closed_at": "", "loss_reason": "", "stage": last[r["deal_id"]]}
        deals.append(r)
    keep, clients = {r["deal_id"] for r in deals}, {r["client_id"] for r in deals}
    return {"managers": tables["managers"], "stages": tables["stages"], "deals": deals,
            "stage_history": [r for r in hist if r["deal_id"] in keep],
            "clients": [r for r in tables["clients"] if r["client_id"] in clients]}


def company_tables(spec: ExportSpec, tz) -> dict[str, list[dict]]:
    """The company's tables as if it worked 09:00-18:00 in zone `tz` (a ZoneInfo) instead of
    Almaty: what the web-UI export builders (HubSpot/Pipedrive, amoCRM, Bitrix24) start from."""
    global LOCAL
    old = LOCAL
    LOCAL = datetime(2026, 1, 15, tzinfo=tz).utcoffset()
    try:
        return _Company(spec).build()
    finally:
        LOCAL = old


def write_export(folder: Path, spec: ExportSpec, at: datetime | None = None) -> Path:
    """Write the company as CSV files into `folder` (created); returns the folder. With `at`:
    only the pipeline tables, as they stood then (see `as_of`)."""
    tables = _Company(spec).build()
    if at is not None:
        tables = as_of(tables, at)
    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        if table in spec.absent or not rows:
            continue
        cols = [c for c in rows[0] if f"{table}.{c}" not in spec.absent]
        with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    return folder


def write_rows(folder: Path, table: str, rows: list[dict]) -> None:
    """Rewrite one table (a test editing the export by hand, as an admin's CRM would have it)."""
    with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_rows(folder: Path, table: str) -> list[dict]:
    with open(folder / f"{table}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- the config an admin writes beside a web-UI export ---------------------------------------------
# Each builder (_web_exports, _amocrm_export, _bitrix24_export, _salesforce_export, _zoho_export,
# _lead_exports) keeps its CRM's recipe, the [source.*] tables README tells that admin to write;
# a test composes head() + files() + recipes + DIRECTOR, so a recipe is written out once.

DIRECTOR = '''[[recipients]]
id = "director"
name = "Director"
role = "director"
admin = true
telegram_id = 100000001
'''


def head(lang: str, tz: str, currency: str, folder: str, source: str = "") -> str:
    """The config's first lines: language, zone, currency and [source] reading `./folder`;
    `source`: more [source] keys (pipelines, stages)."""
    return (f'language = "{lang}"\ntimezone = "{tz}"\ncurrency = "{currency}"\n'
            f'[source]\nkind = "files"\npath = "./{folder}"\n{source}')


def files(**names: str) -> str:
    """[source.files]: table -> file name, in the order given."""
    return "[source.files]\n" + "".join(f'{table} = "{name}"\n' for table, name in names.items())


def touches_recipe(deal_id: str, owner: str, done_at: str) -> str:
    """README's recipe for an export with no stage history: the deals file read again as
    activities (the test adds `activities = "<deals file>"` to files()), `done_at` the column with
    each deal's latest touch."""
    return (f'[source.columns.activities]\nactivity_id = "{deal_id}"\ndeal_id = "{deal_id}"\n'
            f'manager_id = "{owner}"\ndone_at = "{done_at}"\n[source.fill.activities]\ntype = "task"\n')
