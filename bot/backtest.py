"""`crm-pulse backtest`: how many alerts would people have received with this config?

Replays the detectors at one moment per day (or per `--every`) over a past period on the data
as it is now, with the same dedup as delivery (bot.notify_log.decide: an insight that
persists is not a new alert until the repeat interval passes or it gets materially worse; one
that stops holding is closed and would be new again). Reports alerts per detector and per
recipient (the manager of a personal insight, or "director"), per week, and the busiest days.

Digests go out on `[schedule] digest_days` of the company calendar (bot.send_days): the scan
is replayed every day, as the scheduler scans every day, but items are shown and recorded as
sent only at a digest, which holds what is due by then (a weekend's items are in Monday's
digest, under its one max_items cut); what came up and went away between two digests was
never read and is counted apart. The per-day figures and the budget are per digest day.

What a recipient would see is modelled as the digest shows it: a "first" or "worse" item in
full, a "repeat_interval" one (persisting, nothing got worse) as a one-line "still open"
reminder; at most `max_items` full items per digest (a manager's stalled deals are one item)
and messages.digest.MAX_STILL_OPEN reminders, ranked as the digest ranks them, the rest held
back and still due at the next run, as delivery leaves them. Critical alerts sent at once
after a scan (`[delivery] critical_immediately`, Criticals) are full items too, between digests
or not. The daily budget counts the full items only; reminders are shown beside it. A
recipient averaging more full items a day than `daily_budget` gets a warning naming the
detectors and the subjects behind most of them.

Cost: the data is loaded once. Detectors whose module offers `prepare(data, spec) -> state`
and `detect_at(state, now)` (all six built in) do their joins, sorting and id factorising
once and then only cheap array masks or binary searches per day; others run their plain
`detect` per day. The level-3 detectors (deal_risk, win_forecast) refit their model at most
once per week of replayed time (predict.model.fitted), never on knowledge after the day. The dedup decides a whole run at once over arrays (Dedup). Target: 180 days on 100,000 deals at most 20x one scan
(benchmarks/backtest.py measures that ratio).
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import time as clock
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import numpy as np

from bot.routing import for_director
from crm.activities import read_from_deals_file
from crm.data import CrmData
from detectors.insight import Insight
from detectors.registry import NEEDS_FRESH_DATA, REGISTRY, DetectorSpec, not_opted_in, unchecked_parts, why_skipped

DIRECTOR = "director"
EXIT_OVER_BUDGET = 1  # with --fail-on-budget; the exit code scan --fail-on-insights uses for "found"


@dataclass(frozen=True)
class Alert:
    at: datetime
    detector: str
    recipient: str  # manager_id or "director"
    fingerprint: str
    reason: str  # first | worse | repeat_interval (bot.notify_log reasons that send)
    at_once: bool = False  # a critical alert sent right after a scan, not in a digest


REMINDER = "repeat_interval"  # shown as a one-line reminder; "first" and "worse" in full


@dataclass
class Load:
    """What one recipient would have seen, per day on average over the replayed period."""

    items: int  # insights shown in full (first / worse), critical alerts sent at once included
    reminders: int  # one-line "still open" reminders (repeat_interval)
    held: int  # (run, insight) pairs due but held back by the digest's limits
    items_per_day: float
    reminders_per_day: float
    held_per_day: float
    critical: int = 0  # of `items`, critical alerts sent at once after a scan (Criticals)


@dataclass
class BudgetWarning:
    """A recipient over the daily budget, and what is behind most of their items."""

    recipient: str
    name: str
    load: Load
    # (detector, full items, share of the recipient's full items, distinct subjects,
    #  the most frequent subjects as (label, items)), the biggest first, covering most of them
    detectors: list[tuple[str, int, float, int, list[tuple[str, int]]]]


@dataclass
class Summary:
    alerts: int
    per_week: float
    busiest: list[tuple[str, int]]  # (ISO date, alerts) most first, at most 3


@dataclass(frozen=True)
class DigestSchedule:
    """The days digests go out on (bot.send_days on the config's [schedule] digest_days and
    [calendar]): the backtest shows and records items only on them, as delivery does."""

    days: str  # [schedule] digest_days, as written ("mon-fri")
    weekdays: frozenset[int]  # its ISO weekdays
    is_digest: Callable[[date], bool]

    @classmethod
    def of(cls, config: Any) -> "DigestSchedule":
        from functools import lru_cache

        from bot.send_days import digest_weekdays, is_digest_day

        spec = config.schedule.digest_days
        return cls(spec, digest_weekdays(spec), lru_cache(maxsize=None)(lambda d: is_digest_day(config, d)))


@dataclass(frozen=True)
class Criticals:
    """Critical alerts sent at once after each scan ([delivery] critical_immediately), as
    bot.delivery.deliver_critical sends them: "first" or "worse" ones, the largest (by amount)
    `max_messages` per recipient per scan, none while the company rests (bot.send_days.
    critical_rest in the config's timezone); the rest wait for the digest. Quiet hours are not
    modelled: they delay an alert, they do not drop it."""

    max_messages: int
    rests: Callable[[datetime], bool]

    @classmethod
    def of(cls, config: Any) -> "Criticals | None":
        from bot.send_days import critical_rest

        if not config.delivery.critical_immediately:
            return None
        return cls(config.delivery.critical_max_messages,
                   lambda now: critical_rest(config, now, config.timezone) is not None)

    def cut(self, items: list[tuple[str, Insight]]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """Dedup.run's `keep` for one scan's critical items: first/worse only, the largest few each."""
        from bot.delivery import largest_first

        def keep(k: np.ndarray, code: np.ndarray) -> np.ndarray:
            shown = np.zeros(len(k), dtype=bool)
            due: dict[str, list[int]] = defaultdict(list)  # recipient -> positions of first/worse items
            for j in range(len(k)):
                if code[j] in (1, 2):
                    due[items[int(k[j])][0]].append(j)
            for js in due.values():
                shown[largest_first(js, self.max_messages, lambda j: items[int(k[j])][1])] = True
            return shown
        return keep


def digest_runs(runs: list[datetime], end: datetime, schedule: DigestSchedule | None) -> list[datetime]:
    """The replayed moments a digest goes out: a run on a day without a digest (a weekend, a day
    off of the calendar) moves to the next digest day at the same local time, whose digest
    carries what is due by then; one digest a day (the first such moment: with runs every 12h
    the evening one is a scan only), none after `end`."""
    if schedule is None:
        return runs
    out: list[datetime] = []
    for t in runs:
        d = t.date()
        for _ in range(400):  # bot.send_days' horizon: a schedule with no digest day in a year
            if schedule.is_digest(d):
                break
            d += timedelta(days=1)
        else:
            continue
        moved = datetime.combine(d, t.timetz()) if d != t.date() else t
        if moved <= end:
            out.append(moved)
    first: dict[date, datetime] = {}
    for t in sorted(out):
        first.setdefault(t.date(), t)
    return list(first.values())


@dataclass
class BacktestReport:
    start: datetime
    end: datetime
    every: timedelta
    repeat_interval: timedelta
    runs: list[datetime]
    alerts: list[Alert] = field(default_factory=list)
    insight_days: Counter = field(default_factory=Counter)  # detector -> insights found summed over runs (before dedup)
    # detector -> insights found between two digests and gone by the next: nobody read them
    unread: Counter = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)
    partial: dict[str, list[str]] = field(default_factory=dict)  # detector -> parts not checked, why
    detectors: list[str] = field(default_factory=list)
    recipient_names: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # detector -> time spent (prepare + every run)
    dedup_seconds: float = 0.0  # time spent deciding what would have been sent
    daily_budget: float = 5.0  # full items a day per recipient before a warning
    max_items: int | None = 10  # the digest's limit on full items (None: not modelled)
    held: Counter = field(default_factory=Counter)  # recipient -> (run, insight) due but held back by the digest
    subjects: dict[str, str] = field(default_factory=dict)  # fingerprint -> what it is about, for the warnings
    learned_days: str | None = None  # working_hours.learned_line of the last replay's calendar
    period_days: float | None = None  # calendar days replayed (None: len(runs) * every)
    schedule: DigestSchedule | None = None  # None: a digest every run (no [schedule] modelled)
    # recipients with a chat in the config (None: everyone would get a digest, as with --data);
    # the others are never warned as over budget, only said to receive nothing
    receivers: frozenset[str] | None = None
    digest_runs: int | None = None  # replayed moments at which a digest went out (None: every run)
    criticals: Criticals | None = None  # critical alerts sent at once after a scan (None: not modelled)
    # runs at which the data was stale (stale_rule): the detectors that need fresh data were
    # not replayed there, as a scan skips them; and the last such run's reason
    stale_runs: list[datetime] = field(default_factory=list)
    stale_reason: str | None = None

    @property
    def calendar_days(self) -> float:
        return self.period_days if self.period_days is not None else len(self.runs) * self.every / timedelta(days=1)

    @property
    def weeks(self) -> float:
        return max(self.calendar_days / 7, 1e-9)

    @property
    def digest_days(self) -> int | float:
        """Days a digest went out in the period: what a recipient reads, so the per-day averages
        are per digest day (every calendar day when no schedule is modelled)."""
        if self.schedule is None:
            return self.calendar_days
        return sum(self.schedule.is_digest(d) for d in self._period())

    @property
    def days(self) -> float:
        return max(self.digest_days, 1e-9)

    def _period(self) -> list[date]:
        first = self.start.date()
        return [first + timedelta(days=k) for k in range(int(round(self.calendar_days)))]

    def period_line(self) -> str:
        """'123 days, 85 digest days (mon-fri, 3 days off of the calendar)'."""
        n = f"{self.calendar_days:g} day{'s' if self.calendar_days != 1 else ''}"
        if self.schedule is None:
            return n
        weekdays = self.schedule.weekdays
        off = sum(1 for d in self._period() if d.isoweekday() in weekdays and not self.schedule.is_digest(d))
        worked = sum(1 for d in self._period() if d.isoweekday() not in weekdays and self.schedule.is_digest(d))
        why = [self.schedule.days]
        if off:
            why.append(f"{off} day{'s' if off != 1 else ''} off of the calendar")
        if worked:
            why.append(f"{worked} worked weekend day{'s' if worked != 1 else ''}")
        k = self.digest_days
        return f"{n}, {k:g} digest day{'s' if k != 1 else ''} ({', '.join(why)})"

    def receives(self, recipient: str) -> bool:
        return self.receivers is None or recipient in self.receivers

    def load(self) -> dict[str, Load]:
        """Per recipient (as by_recipient orders them): full items, reminders, held back, per day."""
        full: Counter = Counter()
        remind: Counter = Counter()
        at_once: Counter = Counter()
        for a in self.alerts:
            (remind if a.reason == REMINDER else full)[a.recipient] += 1
            at_once[a.recipient] += a.at_once
        days = self.days
        out = {}
        for r in self.by_recipient():
            f, m, h = full[r], remind[r], self.held.get(r, 0)
            out[r] = Load(f, m, h, round(f / days, 2), round(m / days, 2), round(h / days, 2), at_once[r])
        return out

    def over_budget(self) -> list[BudgetWarning]:
        """Every recipient averaging more full items a day than the budget, the busiest first."""
        return self._over(self.receives)

    def unreached(self) -> list[BudgetWarning]:
        """Recipients with items who have no chat in the config: they would receive nothing, so
        they are not over any budget; what they would get once given a chat, over it or not."""
        return self._over(lambda r: not self.receives(r), every=True)

    def _over(self, which: Callable[[str], bool], every: bool = False) -> list[BudgetWarning]:
        loads = self.load()
        over = [r for r, x in loads.items() if which(r) and (every and x.items
                                                              or x.items / self.days > self.daily_budget + 1e-9)]
        if not over:
            return []
        per: dict[str, dict[str, Counter]] = {r: defaultdict(Counter) for r in over}
        for a in self.alerts:
            if a.reason != REMINDER and a.recipient in per:
                per[a.recipient][a.detector][a.fingerprint] += 1
        out = []
        for r in sorted(over, key=lambda r: (-loads[r].items_per_day, r)):
            total = loads[r].items
            behind: list[tuple[str, int, float, int, list[tuple[str, int]]]] = []
            covered = 0
            for det, fps in sorted(per[r].items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
                n = sum(fps.values())
                top = sorted(fps.items(), key=lambda kv: (-kv[1], self.subjects.get(kv[0], kv[0])))[:3]
                behind.append((det, n, round(n / total, 3), len(fps), [(self.subjects.get(fp, fp), k) for fp, k in top]))
                covered += n
                if covered >= 0.8 * total or len(behind) == 3:  # "most of them"
                    break
            name = "director" if r == DIRECTOR else self.recipient_names.get(r, r)
            out.append(BudgetWarning(r, name, loads[r], behind))
        return out

    def _summary(self, alerts: list[tuple[str, Any]]) -> Summary:
        per_day = Counter(day for day, _ in alerts)
        busiest = sorted(per_day.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        return Summary(len(alerts), round(len(alerts) / self.weeks, 2), busiest)

    def by_detector(self) -> dict[str, Summary]:
        """Alerts per detector: one per insight and run it was sent in, whoever received it."""
        seen: dict[str, set] = defaultdict(set)
        for a in self.alerts:
            seen[a.detector].add((a.at.date().isoformat(), a.fingerprint, a.at))
        return {d: self._summary(sorted((day, fp) for day, fp, _ in seen.get(d, set()))) for d in self.detectors}

    def by_recipient(self) -> dict[str, Summary]:
        """Alerts each recipient would have received (escalated insights reach the director too)."""
        per: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for a in self.alerts:
            per[a.recipient].append((a.at.date().isoformat(), a.fingerprint))
        order = sorted(per, key=lambda r: (r != DIRECTOR, -len(per[r]), r))
        return {r: self._summary(per[r]) for r in order}

    def to_dict(self) -> dict[str, Any]:
        loads = self.load()

        def s(x: Summary) -> dict[str, Any]:
            return {"alerts": x.alerts, "per_week": x.per_week, "busiest_days": [{"date": d, "alerts": n} for d, n in x.busiest]}
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(), "runs": len(self.runs),
            "every_hours": self.every / timedelta(hours=1), "repeat_interval_days": self.repeat_interval / timedelta(days=1),
            "weeks": round(self.weeks, 2), "days": self.calendar_days, "digest_days": self.digest_days,
            "digest_schedule": self.schedule.days if self.schedule is not None else None,
            "per_day": "per digest day" if self.schedule is not None else "per replayed day",
            "digest_runs": self.digest_runs,
            "detectors": {d: s(x) | {"insights_before_dedup": self.insight_days.get(d, 0),
                                     "never_read": self.unread.get(d, 0)} for d, x in self.by_detector().items()},
            "recipients": {r: s(x) | {"name": self.recipient_names.get(r, r)} | _load_dict(loads[r])
                           for r, x in self.by_recipient().items()},
            "budget": {
                "daily_budget": self.daily_budget, "digest_max_items": self.max_items,
                "counts": "items shown in full (first/worse) after the dedup and the digest's limits"
                          + (", and critical alerts sent at once after a scan" if self.criticals else "")
                          + "; one-line still-open reminders are counted apart",
                "over": [{"recipient": w.recipient, "name": w.name, **_load_dict(w.load),
                          "behind": [{"detector": d, "items": n, "share": share, "subjects": distinct,
                                      "most_often": [{"subject": lbl, "items": k} for lbl, k in top]}
                                     for d, n, share, distinct, top in w.detectors]}
                         for w in self.over_budget()],
                "no_chat": [{"recipient": w.recipient, "name": w.name, **_load_dict(w.load)} for w in self.unreached()],
            },
            "skipped": self.skipped,
            "partial": self.partial,
            "stale_days": [t.date().isoformat() for t in self.stale_runs],
        }


def _load_dict(x: Load) -> dict[str, Any]:
    return {"items": x.items, "items_per_day": x.items_per_day, "critical_at_once": x.critical, "reminders": x.reminders,
            "reminders_per_day": x.reminders_per_day, "held_back": x.held, "held_back_per_day": x.held_per_day}


def subject_label(insight: Insight) -> str:
    """What an insight is about, for a person reading the budget warning: 'deal d17 «Поставка»'."""
    s, f = insight.subject, insight.facts
    known = ("deal_id", "lead_id", "client_id", "from_stage", "to_stage", "stage", "manager_id")
    if "deal_id" in s:
        title = f.get("deal_title") or f.get("title")
        head = f"deal {s['deal_id']}" + (f" «{title}»" if title and str(title) != str(s["deal_id"]) else "")
    elif "lead_id" in s:
        head = f"lead {s['lead_id']}"
    elif "client_id" in s:
        name = f.get("client_name")
        head = f"client {s['client_id']}" + (f" «{name}»" if name and str(name) != str(s["client_id"]) else "")
    elif "from_stage" in s or "to_stage" in s:
        head = f"stage {s.get('from_stage', '?')} → {s.get('to_stage', '?')}"
    elif "stage" in s:
        head = f"stage {s['stage']}"
    elif "manager_id" in s:
        name = f.get("manager_name")
        head = f"manager {s['manager_id']}" + (f" ({name})" if name else "")
    else:
        head = ""
    rest = ", ".join(f"{k}={v}" for k, v in s.items() if k not in known)
    if not head:
        return rest or insight.fingerprint
    return f"{head} ({rest})" if rest else head


def replayers(data: CrmData, specs: dict[str, DetectorSpec], seconds: dict[str, float] | None = None,
              partial: dict[str, list[str]] | None = None, as_of: datetime | None = None,
              until: datetime | None = None,
              specs_at: Callable[[datetime], dict[str, DetectorSpec]] | None = None,
              ) -> tuple[dict[str, Callable[[datetime], list[Insight]]], dict[str, str]]:
    """One `now -> insights` function per enabled detector, prepared once where the module allows it.

    Insights from a prepared detector may come without evidence ids (see below); everything
    else equals the detector's plain `detect`. Returns them and the detectors skipped (why).

    `seconds`, when given, receives the time each prepare took; `partial`, the parts of
    running detectors that an absent column switches off (registry.unchecked_parts).
    `as_of` (the first replayed day): a detector that learns norms in `prepare` (an
    `as_of` parameter) learns them only from what was known then, so no replayed day is
    judged with knowledge from after it.

    A detector that counts working time gets, at each replayed `now`, the company calendar with
    the days off the data shows before that `now` (as a scan then would: registry.
    with_company_calendar): the quiet days are counted once up to `until` (the last replayed
    moment) and cut at each `now`; a detector is prepared again only when that set changes.
    `specs_at` (_specs_on_calendar): given by backtest, which reads the last day's calendar too.
    """
    out: dict[str, Callable[[datetime], list[Insight]]] = {}
    skipped: dict[str, str] = {}
    specs_at = specs_at or _specs_on_calendar(data, specs, until)
    for name, det in REGISTRY.items():
        spec = specs.get(name) or det.spec()
        if not_opted_in(det, spec):
            continue
        why = why_skipped(data, det, spec)
        if why is not None:
            skipped[name] = why
            continue
        parts = unchecked_parts(data, det)
        if parts and partial is not None:
            partial[name] = parts
        module = sys.modules.get(det.detect.__module__)
        prepare, detect_at = getattr(module, "prepare", None), getattr(module, "detect_at", None)
        on_calendar = getattr(spec, "calendar", None) is not None and "calendar" in type(spec).model_fields
        if callable(prepare) and callable(detect_at):
            learn = ({"as_of": int(as_of.timestamp() * 1e9)}
                     if as_of is not None and "as_of" in inspect.signature(prepare).parameters else {})
            # The backtest counts and dedups insights: evidence ids are never read, so a
            # detector that can skip collecting them (`with_evidence=False`) is asked to.
            kw = {"with_evidence": False} if "with_evidence" in inspect.signature(detect_at).parameters else {}

            def prepared(sp: DetectorSpec, timed: bool = True, _name=name, _prep=prepare, _learn=learn) -> Any:
                t = clock.perf_counter()
                state = _prep(data, sp, **_learn)
                if seconds is not None and timed:
                    seconds[_name] = clock.perf_counter() - t
                return state

            if on_calendar:  # prepared now on the first replay's calendar, again when it changes
                out[name] = _on_calendar(name, specs_at, prepared, detect_at, kw, as_of)
            else:
                out[name] = lambda now, _s=prepared(spec), _f=detect_at, _kw=kw: _f(_s, now, **_kw)
        elif on_calendar:
            out[name] = lambda now, _d=det.detect, _n=name: _d(data, specs_at(now)[_n], now)
        else:
            out[name] = lambda now, _d=det.detect, _sp=spec: _d(data, _sp, now)
    return out, skipped


def _specs_on_calendar(data: CrmData, specs: dict[str, DetectorSpec], until: datetime | None,
                       stale: Callable[[datetime], str | None] | None = None,
                       ) -> Callable[[datetime], dict[str, DetectorSpec]]:
    """now -> the specs a scan at `now` runs with (registry.with_company_calendar), the quiet
    days counted once (_calendars); the last answer is kept (every detector asks per replay).
    `stale` (stale_rule): on a day the data is stale, the quiet days after its newest recorded
    work are the export's silence, not days off, as a scan then counts them."""
    from detectors.registry import with_company_calendar
    from detectors.working_hours import company_days_off

    calendar_at = _calendars(data, until)
    last: dict[datetime, dict[str, DetectorSpec]] = {}

    def at(now: datetime) -> dict[str, DetectorSpec]:
        if now not in last:
            last.clear()
            if stale is not None and stale(now) is not None:
                learn = lambda cal: company_days_off(data, cal, now, stale=True)  # noqa: E731
            else:
                learn = lambda cal: calendar_at(cal, now)  # noqa: E731
            last[now] = with_company_calendar(data, specs, now, learn=learn)[0]
        return last[now]
    return at


def stale_rule(data: CrmData, limit_days: float, timezone: str, calendar: Any) -> Callable[[datetime], str | None]:
    """now -> why a scan at `now` would find the data stale (bot.pipeline.stale_line with
    [source] stale_after_days and the configured calendar), None when fresh: the replay of a
    day after the export stopped must not count the export's silence as idle deals and waiting
    leads that no scan would send. The newest event before each day is indexed once
    (crm.freshness.newest_by_day); the data is read again only on a day that index calls stale
    (an event earlier that same day may still make it fresh), and the answer is kept per day."""
    from bot.pipeline import stale_line
    from crm.freshness import Freshness, freshness, newest_before_day, newest_by_day

    index = newest_by_day(data)
    seen: dict[datetime, str | None] = {}

    def at(now: datetime) -> str | None:
        if now not in seen:
            prev = newest_before_day(index, now)
            rough = None if prev is None else Freshness(prev, None, None, now - prev.to_pydatetime())
            if rough is not None and stale_line(rough, limit_days, timezone, now, calendar) is None:
                seen[now] = None  # fresh already by the days before: a later event only adds to it
            else:
                seen[now] = stale_line(freshness(data, now), limit_days, timezone, now, calendar)
        return seen[now]
    return at


def _calendars(data: CrmData, until: datetime | None) -> Callable[[Any, datetime], Any]:
    """(calendar, now) -> the calendar working_hours.company_days_off gives a scan at `now`: the
    quiet days are counted once per calendar up to `until` and cut at each `now` (a day is
    judged only from itself and the days before it, so the cut equals a count at `now`)."""
    from crm.freshness import work_instants
    from detectors.stats import ts_ns
    from detectors.working_hours import company_days_off, learned_before, quiet_workdays

    quiet: dict[Any, Any] = {}
    cut: dict[tuple[Any, int], Any] = {}  # (calendar, quiet days before now) -> the same calendar object

    def at(calendar: Any, now: datetime) -> Any:
        if not calendar.learn_days_off:
            return calendar
        if until is None or now > until:
            return company_days_off(data, calendar, now)
        if calendar not in quiet:
            quiet[calendar] = quiet_workdays(work_instants(data, until), calendar, ts_ns(until))
        days = quiet[calendar]
        today = calendar.local_days_ns(np.array([ts_ns(now)], dtype=np.int64))[0]
        key = (calendar, int(np.searchsorted(days, today)))
        if key not in cut:
            cut[key] = learned_before(calendar, days, ts_ns(now))
        return cut[key]
    return at


def _on_calendar(name: str, specs_at: Callable[[datetime], dict[str, DetectorSpec]], prepared: Callable[..., Any],
                 detect_at: Callable[..., list[Insight]], kw: dict[str, Any],
                 first: datetime | None) -> Callable[[datetime], list[Insight]]:
    """A replayer whose state is prepared on the calendar of each `now`: once per distinct set of
    learned days off (one on a company that never rests unannounced). `first`: the first
    replayed moment, whose state is prepared at once (its time is the prepare time reported);
    a later one is prepared inside the replay that needs it (and timed with it)."""
    states: dict[Any, Any] = {}
    if first is not None:
        spec = specs_at(first)[name]
        states[spec.calendar] = prepared(spec)

    def run(now: datetime) -> list[Insight]:
        spec = specs_at(now)[name]
        if spec.calendar not in states:
            states[spec.calendar] = prepared(spec, False)
        return detect_at(states[spec.calendar], now, **kw)
    return run


def _period_days(runs: list[datetime], every: timedelta) -> float:
    """Calendar days the runs stand for: each run its `every`, or the whole days they span when
    runs are less than a day apart (two runs a day are one day, not half of two)."""
    if not runs:
        return 0.0
    if every < timedelta(days=1):
        return float((runs[-1].date() - runs[0].date()).days + 1)
    return len(runs) * every / timedelta(days=1)


def recipients_of(insight: Insight) -> list[str]:
    """Who delivery would send it to, by bot.routing's rule: the manager, and/or the director."""
    out = []
    if insight.audience.role == "manager" and insight.audience.manager_id is not None:
        out.append(str(insight.audience.manager_id))
    if for_director(insight):
        out.append(DIRECTOR)
    return out


def run_times(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    if every <= timedelta(0):
        raise ValueError("every must be positive")
    out, t = [], start
    while t <= end:
        out.append(t)
        t += every
    return out


class Dedup:
    """Delivery's dedup (bot.notify_log.decide) for all of one run's insights at once.

    A backtest sends nothing and never snoozes or suppresses, so of decide's reasons only
    first, worse, repeat_interval and unchanged can occur, and the log entry of a (recipient,
    fingerprint) needs only: open or closed, when it was last sent, and the severity and
    "how bad" measure (bot.notify_log.MEASURES) it was last sent with. Those live in arrays
    indexed by a slot per (recipient, fingerprint), so each run is a few array operations
    instead of a decide() call and a LogEntry per insight and recipient, and closing what no
    longer holds costs nothing per remembered entry. tests/bot/test_backtest.py checks it
    agrees with decide() run after run.
    """

    REASONS = ("unchanged", "first", "worse", "repeat_interval")  # decide's names, by code

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.slots: dict[tuple[str, str], int] = {}
        self.open = np.zeros(0, dtype=bool)
        self.last_sent = np.zeros(0, dtype=np.int64)  # microseconds since `origin`
        self.last_rank = np.zeros(0, dtype=np.int64)
        self.last_measure = np.zeros(0, dtype=float)  # NaN: the measure said nothing
        self.origin: datetime | None = None
        self.repeat_us = policy.repeat_interval // timedelta(microseconds=1)

    def _grow(self, n: int) -> None:
        extra = n - len(self.open)
        if extra > 0:
            self.open = np.concatenate([self.open, np.zeros(extra, dtype=bool)])
            self.last_sent = np.concatenate([self.last_sent, np.zeros(extra, dtype=np.int64)])
            self.last_rank = np.concatenate([self.last_rank, np.zeros(extra, dtype=np.int64)])
            self.last_measure = np.concatenate([self.last_measure, np.full(extra, np.nan)])

    def run(self, now: datetime, items: list[tuple[str, Insight]],
            keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, close: bool = True) -> list[str | None]:
        """Decide one run: `items` are (recipient, insight) in delivery order; returns for each
        the reason it is sent, or None when it is not. Entries not seen in this run are closed
        (if the situation comes back it is new again), as delivery does; not with `close=False`
        (the critical alerts sent at once after a scan: the digest closes, they do not).

        `keep(k, code)`, given the item indices `k` and their reason codes (0: not sent), says
        which the digest shows; a due item it does not show is not recorded as sent and stays
        due (its index goes to `self.held`), as delivery leaves what a digest had no room for."""
        from bot.notify_log import MEASURES, rule_of
        from detectors.insight import SEVERITY_RANK

        if self.origin is None:
            self.origin = now
        now_us = (now - self.origin) // timedelta(microseconds=1)
        n = len(items)
        slots, rank_of, worse_by = self.slots, SEVERITY_RANK, self.policy.worse_by
        slot = np.empty(n, dtype=np.int64)
        rank = np.empty(n, dtype=np.int64)
        measure = np.full(n, np.nan)
        threshold = np.full(n, np.nan)
        rules: dict[str, tuple] = {}  # rule (notify_log.rule_of) -> (measure function, threshold) when both exist
        for k, (recipient, ins) in enumerate(items):
            key = (recipient, ins.fingerprint)
            sl = slots.get(key)
            if sl is None:
                sl = slots[key] = len(slots)
            slot[k] = sl
            rank[k] = rank_of.get(ins.severity, 0)
            name = rule_of(ins.detector, ins.facts)
            rule = rules.get(name)
            if rule is None:
                fn, thr = MEASURES.get(name), worse_by.get(name)
                rule = rules[name] = (fn, thr) if fn is not None and thr is not None else ()
            if rule:
                v = rule[0](ins.facts)
                if v is not None:
                    measure[k] = v
                threshold[k] = rule[1]
        # the k-th time a slot appears in this run (almost always 0)
        occurrence = np.zeros(n, dtype=np.int64)
        if n:
            order = np.argsort(slot, kind="stable")
            s_sorted = slot[order]
            starts = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
            if not starts.all():
                group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
                occurrence[order] = np.arange(n) - group_start
        self._grow(len(self.slots))
        reason = np.zeros(n, dtype=np.int64)
        self.held: list[int] = []
        # A slot twice in one run is decided in turns, the second against what the first left.
        for turn in range(int(occurrence.max()) + 1 if n else 0):
            k = np.flatnonzero(occurrence == turn)
            sl = slot[k]
            first = ~self.open[sl]
            with np.errstate(invalid="ignore"):
                grew = (measure[k] - self.last_measure[sl]) >= threshold[k] - 1e-9  # NaN anywhere: False
            worse = (rank[k] > self.last_rank[sl]) | grew
            repeat = now_us - self.last_sent[sl] >= self.repeat_us
            code = np.select([first, worse, repeat], [1, 2, 3], 0)
            if keep is not None and (code > 0).any():
                shown = keep(k, code)
                self.held += k[(code > 0) & ~shown].tolist()
                code = np.where(shown, code, 0)
            reason[k] = code
            sent = k[code > 0]
            self.open[slot[sent]] = True
            self.last_sent[slot[sent]] = now_us
            self.last_rank[slot[sent]] = rank[sent]
            self.last_measure[slot[sent]] = measure[sent]
        if close:
            current = np.zeros(len(self.open), dtype=bool)
            current[slot] = True
            self.open &= current
        return [self.REASONS[c] if c else None for c in reason.tolist()]


class DigestCut:
    """Which of one run's due items the digests would show (Dedup.run's `keep`).

    Per recipient, as messages.digest.build_digest does: full items (first/worse) ranked by
    severity, then money at stake, a manager's stalled deals taken together as one item, the
    top `max_items` kept; reminders (repeat_interval) ranked the same way, the top
    `max_reminders` kept. Ties go by order of appearance, a manager's stalled group after single
    items of equal rank as in the digest (between two groups of exactly equal severity and
    amount the digest goes by manager id, this by appearance). Attributes are read only for
    the due items, and only when some digest could be over a limit.
    """

    def __init__(self, items: list[tuple[str, Insight]], max_items: int, max_reminders: int) -> None:
        self.items, self.max_items, self.max_reminders = items, max_items, max_reminders

    def __call__(self, k: np.ndarray, code: np.ndarray) -> np.ndarray:
        from detectors.insight import SEVERITY_RANK
        from messages.digest import _money

        shown = np.ones(len(k), dtype=bool)
        due = np.flatnonzero(code > 0)
        if len(due) <= min(self.max_items, self.max_reminders):
            return shown  # no digest can be over a limit
        rec_ids: dict[str, int] = {}
        groups: dict[tuple[str, str], int] = {}
        n = len(due)
        rec, sev, money, cand = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
                                 np.zeros(n), np.empty(n, dtype=np.int64))
        is_group = np.zeros(n, dtype=bool)
        reminder = code[due] == 3
        for j, pos in enumerate(due.tolist()):
            r, ins = self.items[int(k[pos])]
            rec[j] = rec_ids.setdefault(r, len(rec_ids))
            sev[j] = SEVERITY_RANK.get(ins.severity, 0)
            if ins.detector == "stalled_deal":
                money[j] = _money(ins)
                if ins.audience.manager_id and not reminder[j]:
                    cand[j] = groups.setdefault((r, str(ins.audience.manager_id)), len(groups))
                    is_group[j] = True
                    continue
            cand[j] = -1 - j  # a candidate of its own
        keep = np.ones(n, dtype=bool)
        for part, limit in ((~reminder, self.max_items), (reminder, self.max_reminders)):
            idx = np.flatnonzero(part)
            if len(idx) <= limit:
                continue
            uc, inv = np.unique(cand[idx], return_inverse=True)
            m = len(uc)
            c_sev, c_money = np.zeros(m, dtype=np.int64), np.zeros(m)
            c_rec, c_first = np.empty(m, dtype=np.int64), np.full(m, n, dtype=np.int64)
            np.maximum.at(c_sev, inv, sev[idx])
            np.add.at(c_money, inv, money[idx])
            np.minimum.at(c_first, inv, idx)
            c_rec[inv] = rec[idx]
            c_group = np.zeros(m, dtype=bool)
            c_group[inv] = is_group[idx]
            # a "group" of one stalled deal is a single item in the digest
            sizes = np.bincount(inv, minlength=m)
            c_group &= sizes > 1
            order = np.lexsort((c_first, c_group, -c_money, -c_sev, c_rec))
            r_sorted = c_rec[order]
            starts = np.r_[True, r_sorted[1:] != r_sorted[:-1]]
            rank = np.arange(m) - np.maximum.accumulate(np.where(starts, np.arange(m), 0))
            c_keep = np.empty(m, dtype=bool)
            c_keep[order] = rank < limit
            keep[idx] = c_keep[inv]
        shown[due] = keep
        return shown


def backtest(data: CrmData, specs: dict[str, DetectorSpec], start: datetime, end: datetime,
             every: timedelta = timedelta(days=1), repeat_interval: timedelta = timedelta(days=7), *,
             policy: Any = None, progress: Callable[[Iterator[datetime], int], Iterator[datetime]] | None = None,
             max_items: int | None = 10, daily_budget: float = 5.0, schedule: DigestSchedule | None = None,
             receivers: frozenset[str] | None = None, criticals: Criticals | None = None,
             stale: Callable[[datetime], str | None] | None = None) -> BacktestReport:
    """Replay every enabled detector at each run time from start to end and dedup like delivery.

    `policy` is a bot.notify_log.Policy (its worse-by thresholds; repeat_interval wins);
    `progress` wraps the iteration over run times (a progress bar), given the count;
    `max_items` is the digest's limit on full items ([delivery] max_items; None: every due item
    counts as shown); `daily_budget` the full items a day per recipient before a warning.

    `schedule` (DigestSchedule.of(config)): the detectors run at every run time, as the scheduled
    scan does on every day, but items are shown and recorded as sent (the dedup) only at the
    moments a digest goes out (digest_runs), as delivery builds each digest from that moment's
    scan: what came up over a weekend and still holds on Monday is in Monday's digest, under its
    one max_items cut; what came up and went away between two digests was never read (counted
    in `unread`, never in the budget). Averages are per digest day. None: a digest at every
    run. `receivers`: who has a chat (None: everyone), see BacktestReport.receivers.

    `criticals` (Criticals.of(config)): after every run's scan, digest or not, critical alerts
    go out at once as delivery sends them, recorded like any sent item (the digest does not
    repeat them) and counted in the budget: a recipient flooded by criticals between digests
    shows it. None: criticals wait for the digest like any item.
    `stale` (stale_rule; None: data always fresh): at a run where the data is stale, the
    detectors in NEEDS_FRESH_DATA find nothing, as a scan skips them, and the calendar learns no
    days off from the export's silence.
    """
    from bot.delivery import WEEKLY_DETECTORS
    from bot.notify_log import Policy
    from bot.pipeline import detector_notes
    from messages.digest import MAX_STILL_OPEN

    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    policy = replace(policy or Policy(), repeat_interval=repeat_interval)
    every_run = run_times(start, end, every)
    digests = set(digest_runs(every_run, end, schedule))
    runs = sorted(digests.union(every_run))  # a scan at every run, and at each digest a run moved to
    if schedule is None:
        runs = every_run
    seconds: dict[str, float] = {}
    partial: dict[str, list[str]] = {}
    specs_at = _specs_on_calendar(data, specs, end, stale)
    fns, skipped = replayers(data, specs, seconds, partial, as_of=start, until=end, specs_at=specs_at)
    for name, reason in detector_notes(data).items():  # as scan reports them: it would say nothing,
        if name in fns:                                 # so it is skipped, not replayed, and has no parts
            skipped.setdefault(name, reason)
            del fns[name]
            partial.pop(name, None)
    report = BacktestReport(start, end, every, repeat_interval, runs, skipped=skipped, partial=partial,
                            detectors=list(fns), seconds=seconds, daily_budget=daily_budget, max_items=max_items,
                            period_days=_period_days(every_run, every), schedule=schedule,
                            receivers=receivers, digest_runs=len(digests), criticals=criticals)
    report.recipient_names = {str(k): str(v) for k, v in zip(data.managers["manager_id"], data.managers["name"])}
    report.learned_days = _learned_days(specs_at(end))
    dedup = Dedup(policy)
    it: Iterator[datetime] = iter(runs)
    if progress is not None:
        it = progress(it, len(runs))
    between: dict[str, set[str]] = defaultdict(set)  # detector -> fingerprints new since the last digest
    at_digest: dict[str, set[str]] = {}  # detector -> fingerprints the last digest's scan found
    read_at_once: dict[str, set[str]] = defaultdict(set)  # detector -> criticals sent at once since the last digest
    for now in it:
        items: list[tuple[str, Insight]] = []
        names: list[str] = []
        urgent: list[tuple[str, Insight]] = []  # (recipient, critical insight) for the at-once alerts
        urgent_names: list[str] = []
        digest = now in digests
        why_stale = stale(now) if stale is not None else None
        if why_stale is not None:
            report.stale_runs.append(now)
            report.stale_reason = why_stale
        for name, fn in fns.items():
            t = clock.perf_counter()
            found = [] if why_stale is not None and name in NEEDS_FRESH_DATA else fn(now)
            seconds[name] = seconds.get(name, 0.0) + clock.perf_counter() - t
            report.insight_days[name] += len(found)
            t = clock.perf_counter()
            if criticals is not None and name not in WEEKLY_DETECTORS:
                for ins in found:
                    if ins.severity == "critical":
                        for r in recipients_of(ins):
                            urgent.append((r, ins))
                            urgent_names.append(name)
            if not digest:  # a scan with no digest: what it finds waits for the next one
                between[name].update(ins.fingerprint for ins in found if recipients_of(ins))
                report.dedup_seconds += clock.perf_counter() - t
                continue
            if schedule is not None:
                now_found = {ins.fingerprint for ins in found}
                read = read_at_once.pop(name, set())
                if between.get(name):
                    report.unread[name] += len(between.pop(name) - now_found - at_digest.get(name, set()) - read)
                at_digest[name] = now_found
            for ins in found:
                for r in recipients_of(ins):
                    items.append((r, ins))
                    names.append(name)
            report.dedup_seconds += clock.perf_counter() - t
        if urgent and not criticals.rests(now):  # type: ignore[union-attr]
            t = clock.perf_counter()
            for name, (r, ins), why in zip(urgent_names, urgent, dedup.run(now, urgent, criticals.cut(urgent),  # type: ignore[union-attr]
                                                                           close=False)):
                if why is not None:
                    report.alerts.append(Alert(now, name, r, ins.fingerprint, why, at_once=True))
                    report.subjects.setdefault(ins.fingerprint, subject_label(ins))
                    if not digest:
                        read_at_once[name].add(ins.fingerprint)
            report.dedup_seconds += clock.perf_counter() - t
        if not digest:
            continue
        t = clock.perf_counter()
        cut = DigestCut(items, max_items, MAX_STILL_OPEN) if max_items is not None else None
        for name, (r, ins), why in zip(names, items, dedup.run(now, items, cut)):
            if why is not None:
                report.alerts.append(Alert(now, name, r, ins.fingerprint, why))
                if ins.fingerprint not in report.subjects:
                    report.subjects[ins.fingerprint] = subject_label(ins)
        for k in dedup.held:
            report.held[items[k][0]] += 1
        report.dedup_seconds += clock.perf_counter() - t
    return report


# --- text ---------------------------------------------------------------------------------

def _days(td: timedelta) -> str:
    d = td / timedelta(days=1)
    return f"{d:g}d" if d >= 1 else f"{td / timedelta(hours=1):g}h"


def _digests(report: BacktestReport) -> str:
    n = report.digest_runs
    return f", {n} with a digest" if n is not None and n != len(report.runs) else ""


def format_text(report: BacktestReport) -> str:
    lines = [
        f"Backtest {report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M} {report.start.tzname() or ''}".rstrip()
        + f", every {_days(report.every)} ({len(report.runs)} runs{_digests(report)}, {report.weeks:.1f} weeks),"
        f" repeat interval {_days(report.repeat_interval)}",
        *([f"{report.period_line()}: items are shown and counted on digest days only, each digest with what is due"
           " since the last one"] if report.schedule is not None else []),
        "",
    ]

    def busiest(s: Summary) -> str:
        return ", ".join(f"{d} ({n})" for d, n in s.busiest) or "-"

    header = f"{'detector':<18} {'alerts':>7} {'per week':>9} {'found':>8}  busiest days"
    lines += [header, "-" * len(header)]
    for name, s in report.by_detector().items():
        lines.append(f"{name:<18} {s.alerts:>7} {s.per_week:>9.1f} {report.insight_days.get(name, 0):>8}  {busiest(s)}")
    lines.append("(found = insights found summed over all runs, before dedup)")
    if sum(report.unread.values()):
        lines.append(f"(never read: {sum(report.unread.values())} insight(s) came up after a digest and went away before"
                     " the next one: " + ", ".join(f"{d} {n}" for d, n in report.unread.most_common() if n) + ")")
    lines.append("")
    header = f"{'recipient':<28} {'alerts':>7} {'per week':>9} {'items/day':>9} {'reminders/day':>13}  busiest days"
    lines += [header, "-" * len(header)]
    recips = report.by_recipient()
    loads = report.load()
    if not recips:
        lines.append("nobody would have been alerted")
    for r, s in recips.items():
        name = report.recipient_names.get(r, r)
        who = "director" if r == DIRECTOR else name if name == r else f"{name} ({r})"
        x = loads[r]
        lines.append(f"{who[:28]:<28} {s.alerts:>7} {s.per_week:>9.1f} {x.items_per_day:>9.1f} {x.reminders_per_day:>13.1f}"
                     f"  {busiest(s)}")
    limit = (f"after the dedup and the digest's limit of {report.max_items}" if report.max_items is not None
             else "after the dedup")
    per = "; a day = a digest day" if report.schedule is not None else ""
    if report.criticals is not None:
        limit += ", and the critical alerts sent at once after a scan"
    lines.append(f"(alerts = items + reminders; items = shown in full {limit}; reminders = one-line"
                 f" \"still open\" lines for what persists unchanged, not counted in the budget{per})")
    lines.append("")
    lines += budget_lines(report)
    for name, why in report.skipped.items():
        lines.append(f"skipped {name}: {why}")
    for name, parts in report.partial.items():
        for line in parts:
            lines.append(f"partly skipped {name}: {line}")
    stale_line = stale_days_line(report)
    if stale_line:
        lines.append(stale_line)
    return "\n".join(lines)


def stale_days_line(report: BacktestReport) -> str | None:
    """One line for the replayed days on which the data was stale, as a scan then says it."""
    n = len({t.date() for t in report.stale_runs})
    if not n:
        return None
    on = [d for d in report.detectors if d in NEEDS_FRESH_DATA]
    return (f"stale data on {n} replayed day{'s' if n != 1 else ''} from {report.stale_runs[0]:%Y-%m-%d}: "
            f"{', '.join(on) or 'the time-based detectors'} not replayed there, as a scan would not run them "
            f"({report.stale_reason})")


def budget_lines(report: BacktestReport) -> list[str]:
    """The daily budget: one warning per recipient over it, with what is behind their items."""
    over = report.over_budget()
    budget = f"{report.daily_budget:g} item(s) a day"
    days = f"{report.days:g} digest days" if report.schedule is not None else f"{report.days:g} days"
    counted = "; critical alerts sent at once counted" if report.criticals is not None else ""
    lines = [] if over else [f"every recipient within the daily budget of {budget} ([delivery] daily_budget{counted})"]
    for w in over:
        extra = f", {w.load.critical} of them critical alerts sent at once after a scan" if w.load.critical else ""
        extra += f"; +{w.load.reminders_per_day:g} reminder(s) a day" if w.load.reminders else ""
        if w.load.held_per_day:
            extra += f"; the digest's limit held back {w.load.held_per_day:g} more a day"
        lines.append(f"warning: {_who(w)} is over the daily budget of {budget}: {w.load.items_per_day:g} a day"
                     f" ({w.load.items} item(s) over {days}{extra})")
        for det, n, share, distinct, top in w.detectors:
            often = ", ".join(f"{label} ({k} item{'s' if k != 1 else ''})" for label, k in top)
            lines.append(f"    {det}: {share:.0%} of them ({n}), {distinct} subject(s); most often: {often}")
    if over:
        lines.append("(raise the detectors' thresholds behind them, or [delivery] repeat_interval_days / max_items,"
                     " and backtest again)")
    return lines + unreached_lines(report)


def _who(w: BudgetWarning) -> str:
    return "director" if w.recipient == DIRECTOR else w.name if w.name == w.recipient else f"{w.name} ({w.recipient})"


_UNREACHED_SHOWN = 10


def unreached_lines(report: BacktestReport) -> list[str]:
    """Who has items but no chat in the config's [[recipients]]: nothing reaches them, so no
    budget applies; said once, with what they would get, so an admin adding them knows."""
    lost = report.unreached()
    if not lost:
        return []
    over = [w for w in lost if w.load.items_per_day > report.daily_budget + 1e-9]
    head = (f"{len(lost)} recipient(s) with items have no chat in [[recipients]] and would receive nothing"
            + (f"; given one, {len(over)} would be over the daily budget" if over else "") + ":")
    lines = [head]
    for w in lost[:_UNREACHED_SHOWN]:
        top = w.detectors[0][0] if w.detectors else "-"
        flag = " (over the budget)" if w in over else ""
        lines.append(f"    {_who(w)}: {w.load.items_per_day:g} item(s) a day{flag}, mostly {top}")
    if len(lost) > _UNREACHED_SHOWN:
        lines.append(f"    ... and {len(lost) - _UNREACHED_SHOWN} more")
    lines.append("(add a [[recipients]] entry with a telegram_id or slack_id for whoever should read them)")
    return lines


# --- CLI ----------------------------------------------------------------------------------

def parse_every(text: str) -> timedelta:
    """'1d', '12h', '1w' -> timedelta."""
    t = text.strip().lower()
    units = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
    try:
        n, unit = float(t[:-1]), units[t[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"cannot read {text!r}: use a number and a unit, like 1d, 12h or 1w") from None
    if n <= 0:
        raise ValueError(f"{text!r} must be positive")
    return n * unit


_DAY_FIRST = re.compile(r"\d\d\.\d\d\.\d{4}")


def parse_day(text: str, option: str) -> date:
    """--from/--to: ISO 2026-10-01, or 01.10.2026 as Russian Excel and the CRM exports write it."""
    t = text.strip()
    if _DAY_FIRST.fullmatch(t):
        from bot.cli import day_first  # the --now reader: one notion of a day-first date

        found = day_first(t)
        if found is not None:
            return found.date()
    else:
        try:
            return date.fromisoformat(t)
        except ValueError:
            pass
    raise ValueError(f"{option}: cannot read {text!r}; give a day as ISO, like 2026-10-01, or as 01.10.2026")


def _swapped(d_from: date, d_to: date) -> str:
    return (f"backtest: --from {d_from} is after --to {d_to}; swap them: "
            f"--from {d_to} --to {d_from}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="config.toml: data source, thresholds, delivery dedup (default: ./config.toml)")
    src.add_argument("--data", metavar="DIR", help="a folder of canonical CSV/XLSX/Parquet files (default thresholds)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day to replay (default: 90 days before --to)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day to replay (default: the latest day in the data)")
    p.add_argument("--every", default="1d", help="time between replayed scans: 1d, 12h, 1w (default 1d)")
    p.add_argument("--at", default="09:00", metavar="HH:MM", help="time of day of each replayed scan, in the config's timezone (default 09:00)")
    p.add_argument("--repeat-interval", metavar="DAYS", type=float,
                   help="days before a persisting insight is sent again (default: the config's delivery.repeat_interval_days)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--daily-budget", metavar="N", type=float,
                   help="full items a day per recipient before a warning (default: the config's delivery.daily_budget, 5)")
    p.add_argument("--fail-on-budget", action="store_true",
                   help=f"exit {EXIT_OVER_BUDGET} when any recipient is over the daily budget (for CI)")


def _latest_day(data: CrmData, tz: ZoneInfo) -> date:
    import pandas as pd

    stamps = [data.deals["created_at"].max(), data.stage_history["entered_at"].max()]
    stamps += [data.deals["closed_at"].max()] if "closed_at" in data.deals.columns else []
    stamps = [s for s in stamps if s is not None and not pd.isna(s)]
    if not stamps:
        raise ValueError("the data has no dates: give --to")
    return max(stamps).tz_convert(tz).date()


def _progress(stream) -> Callable[[Iterator[datetime], int], Iterator[datetime]] | None:
    if not stream.isatty():
        return None

    def wrap(it: Iterator[datetime], total: int) -> Iterator[datetime]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("backtest {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(file=stream), transient=True) as bar:
            task = bar.add_task("", total=total)
            for t in it:
                bar.update(task, description=f"{t:%Y-%m-%d}")
                yield t
                bar.advance(task)
    return wrap


def snapshot_touches_line(data: CrmData) -> str | None:
    """A deals export read a second time as activities (HubSpot's "Last Activity Date",
    Pipedrive's "Last activity date") holds each deal's latest touch as of the export only: on a
    replayed day before it the deal's touches are unknown, so stalled_deal does not judge it that
    day (it was judged untouched since its creation: 436-550 stalled alerts over 20 weeks on our
    exports where a scan of the export's own day found none). Said, so the counts are read right."""
    if not read_from_deals_file(data):
        return None
    return (f"note: activities are read from the deals file ({data.origins['activities']}): one latest touch per "
            "deal as of the export, so on each replayed day stalled_deal judges only the deals whose touch is "
            "known by then; its counts below are for those deals (a scan of the export's own day judges all)")


def _learned_days(specs: dict[str, DetectorSpec]) -> str | None:
    """The company days off the replays learned from the data, from the last replay's specs (all
    are known by then), as scan and check-config say them; None when none or nothing counts
    working time."""
    from detectors.working_hours import learned_line

    calendars = [sp.calendar for sp in specs.values() if sp.enabled and getattr(sp, "calendar", None) is not None]
    return learned_line(calendars[0]) if calendars else None


def receivers(config: Any) -> frozenset[str] | None:
    """Who would read a digest: "director" and the manager ids of [[recipients]] reached at some
    chat (bot.delivery.addresses). None when the config names no recipients (`--data`, or a
    config not yet filled in): then every manager is someone who would get a digest."""
    from bot.delivery import addresses

    if not config.recipients:
        return None
    out = set()
    for r in config.recipients:
        if not addresses(r, config):
            continue
        if r.role == "director":
            out.add(DIRECTOR)
        elif r.role == "manager" and r.manager_id is not None:
            out.add(str(r.manager_id))
    return frozenset(out)


def run(args: argparse.Namespace) -> int:
    from bot.cli import UsageError, config_or_default, load_for, err, print_warnings
    from bot.notify_log import Policy
    from detectors.working_hours import parse_hhmm

    config = config_or_default(args.config, args.data)
    tz = ZoneInfo(config.timezone)
    try:
        every = parse_every(args.every)
        at = parse_hhmm(args.at, "--at")
        d_to = parse_day(args.date_to, "--to") if args.date_to else None
        d_from = parse_day(args.date_from, "--from") if args.date_from else None
    except ValueError as e:
        raise UsageError(f"backtest: {e}") from None
    if d_from is not None and d_to is not None and d_from > d_to:  # say so before loading the data
        raise UsageError(_swapped(d_from, d_to))
    # The clock here only guards against typo dates in the future; replays use their own `now`.
    data, warnings = load_for(args, config, datetime.now(tz))
    print_warnings(warnings)
    snapshot = snapshot_touches_line(data)
    if snapshot:
        err(snapshot)
    if d_to is None:
        try:
            d_to = _latest_day(data, tz)
        except ValueError as e:
            raise UsageError(f"backtest: {e}") from None
    d_from = d_from or d_to - timedelta(days=90)
    if d_from > d_to:
        raise UsageError(_swapped(d_from, d_to))
    policy = Policy.from_config(config.delivery)
    repeat = timedelta(days=args.repeat_interval) if args.repeat_interval else policy.repeat_interval
    if repeat <= timedelta(0):
        raise UsageError("backtest: --repeat-interval must be positive")
    budget = args.daily_budget if args.daily_budget is not None else config.delivery.daily_budget
    if budget <= 0:
        raise UsageError("backtest: --daily-budget must be positive")
    report = backtest(data, config.detector_specs(), datetime.combine(d_from, at, tz), datetime.combine(d_to, at, tz),
                      every, repeat, policy=policy, progress=_progress(sys.stderr),
                      max_items=config.delivery.max_items, daily_budget=budget,
                      schedule=DigestSchedule.of(config), receivers=receivers(config), criticals=Criticals.of(config),
                      stale=stale_rule(data, config.source.stale_after_days, config.timezone, config.work_calendar()))
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        print(format_text(report))
    if report.learned_days:
        err(f"calendar: {report.learned_days}")
    over = report.over_budget()
    err(f"{len(report.alerts)} alert(s) over {len(report.runs)} run(s)"
        + (f"; {len(over)} recipient(s) over the daily budget of {budget:g} item(s) a day" if over else ""))
    if args.fail_on_budget and over:
        return EXIT_OVER_BUDGET
    return 0
