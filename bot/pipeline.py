"""One scan: load the configured CRM source (unless data is given) and run every detector.

The same function serves `crm-pulse scan`, `demo`, `check-config`, the scheduler and the chat
`/scan` command, so a detector sees the same data and thresholds everywhere. `now` is a
parameter: the caller owns the clock.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm.data import CrmData
from crm.freshness import freshness
from detectors import REGISTRY, Insight, run_detectors
from detectors.stats import ts_ns
from detectors.working_hours import learned_line

if TYPE_CHECKING:  # bot.config imports pydantic models of every detector; only for types here
    from bot.config import Config


@dataclass
class ScanOutcome:
    data: CrmData
    insights: list[Insight] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> one clear line why
    partial: dict[str, list[str]] = field(default_factory=dict)  # detector -> parts not checked, why
    warnings: list[Any] = field(default_factory=list)  # crm.errors.DataWarning from loading
    freshness: Any = None  # crm.freshness.Freshness of the data at the scan's `now`
    stale: str | None = None  # why the data counts as too old (None: fresh enough)
    not_opted_in: set[str] = field(default_factory=set)  # off-by-default detectors left off
    days_off: str | None = None  # the days off learned from the data (working_hours.learned_line)

    def counts(self) -> dict[str, int]:
        """Insights per detector, every detector that ran or was skipped listed (0 when quiet)."""
        out = {name: 0 for name in REGISTRY if name not in self.not_opted_in}
        for i in self.insights:
            out[i.detector] = out.get(i.detector, 0) + 1
        return out


def load(config: "Config", now: datetime | None = None):
    """The LoadResult of the config's [source]; raises crm.errors.DataError with the fix."""
    from crm.load import load_crm

    loaded = load_crm(config.source, timezone=config.timezone, base_dir=config.base_dir, now=now)
    return with_currency(loaded, config.currency)


def with_currency(loaded: Any, currency: str) -> Any:
    """The config's `currency` for deals whose amount has none (an export without a currency
    column, as amoCRM's and most CRMs' are): the key promised it, and the messages said
    "сумма 2 957 000" without one. [source.fill.deals] currency, when given, was applied first."""
    deals = loaded.data.deals
    if "currency" not in deals.columns or "amount" not in deals.columns:
        return loaded
    missing = deals["currency"].isna() & deals["amount"].notna()
    if not missing.any():
        return loaded
    deals = deals.assign(currency=deals["currency"].mask(missing, currency))
    return replace(loaded, data=replace(loaded.data, deals=deals))


def detector_notes(data: CrmData) -> dict[str, str]:
    """Why an enabled detector that has its tables will still say nothing about this data.

    Detectors may expose `skip_reason(data) -> str | None` in their module (e.g.
    conversion_drop when stage history was derived from deals); the scan reports it.
    """
    notes = {}
    for name, det in REGISTRY.items():
        module = sys.modules.get(det.detect.__module__)
        reason_fn = getattr(module, "skip_reason", None)
        if callable(reason_fn):
            reason = reason_fn(data)
            if reason:
                notes[name] = reason
    return notes


def config_problems(config: "Config", data: CrmData) -> list[str]:
    """Detector keys that name what this data does not have (a stage_limits typo), with the key
    path. Detectors may expose `config_problems(data, spec) -> list[str]` in their module."""
    problems = []
    specs = config.detector_specs()
    for name, det in REGISTRY.items():
        spec = specs.get(name)
        check = getattr(sys.modules.get(det.detect.__module__), "config_problems", None)
        if spec is None or not spec.enabled or not callable(check):
            continue
        problems += [f"detectors.{name}.{p}" for p in check(data, spec)]
    return problems


def scan(config: "Config", now: datetime, data: CrmData | None = None) -> ScanOutcome:
    """Load (unless `data` is given) and run the enabled detectors with the config's thresholds."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    warnings: list[Any] = []
    if data is None:
        loaded = load(config, now)
        data, warnings = loaded.data, list(loaded.warnings)
    fresh = freshness(data, now)
    stale = stale_line(fresh, config.source.stale_after_days, config.timezone, now, config.work_calendar())
    result = run_detectors(data, config.detector_specs(), now, stale=stale)
    skipped = dict(result.skipped)
    partial = dict(result.partial)
    for name, reason in detector_notes(data).items():  # says nothing on this data: skipped, no parts
        skipped.setdefault(name, reason)
        partial.pop(name, None)
    return ScanOutcome(data=data, insights=list(result.insights), skipped=skipped,
                       partial=partial, warnings=warnings, freshness=fresh, stale=stale,
                       not_opted_in=set(result.not_opted_in),
                       days_off=None if result.calendar is None else learned_line(result.calendar))


def idle_working_days(fresh: Any, now: datetime, calendar: Any) -> int | None:
    """Working days of the company calendar strictly between the newest record's local day and
    today: a Friday-evening export read on Monday morning has none, the New Year holidays add
    none. None when the data has no dated record. The calendar is the configured one, never
    with days off learned from the data: days an export stopped recording would look rested."""
    import numpy as np

    if fresh.newest is None:
        return None
    ns = np.array([fresh.newest.value, ts_ns(now)], dtype=np.int64)
    days = calendar.local_days_ns(ns)
    n = calendar.working_day_number(days)
    return max(0, int(n[1] - n[0]) - int(calendar.is_working_day(days[:1])[0]))


def stale_line(fresh: Any, limit_days: float, tz: str, now: datetime, calendar: Any) -> str | None:
    """One line for people when more than `limit_days` working days passed without a record;
    None when the data is fresh."""
    from zoneinfo import ZoneInfo

    idle = idle_working_days(fresh, now, calendar)
    if idle is None:
        return "the data has no dated records up to now, so idle time cannot be judged"
    if idle <= limit_days:
        return None
    newest = fresh.newest.tz_convert(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    return (f"the data is {fresh.age_days():.1f} days old, {idle} working days without a record (newest "
            f"{newest} in {fresh.origin}; limit [source] stale_after_days = {limit_days:g} working days): idle "
            "deals, waiting leads and silent clients are not judged on it - export fresh data")
