"""The detector registry: name -> (spec model, detect function, tables it needs).

A detector module calls `register(...)` at import; `detectors/__init__.py` imports every
module so the registry is complete. `run_detectors` is what scan, demo, backtest and the bot
all call, so a detector behaves the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from crm.data import CrmData
from detectors.insight import Insight


class DetectorSpec(BaseModel):
    """Base of every detector's typed spec. Unknown keys are errors (a typo silently changes behaviour)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


DetectFn = Callable[[CrmData, Any, datetime], list[Insight]]


@dataclass(frozen=True)
class Need:
    """Columns a detector (or one part of it) cannot work without.

    `columns` are "table.column"; the need is met when ANY of them was given with values
    (CrmData.has_column), so alternatives such as "leads.assigned_at" or "leads.manager_id"
    are one Need. `part` None means the whole detector; otherwise it names what is skipped
    ("unanswered leads"), and the rest of the detector runs. A detector reads its own Needs
    with `met` before using a column: an absent column is never read as "not done yet".
    """

    columns: tuple[str, ...]
    part: str | None = None

    def met(self, data: CrmData) -> bool:
        return any(data.has_column(*c.split(".", 1)) for c in self.columns)

    def line(self, data: CrmData) -> str:
        """'needs column first_response_at in leads (absent or empty in leads.csv)'."""
        wants = []
        for c in self.columns:
            table, column = c.split(".", 1)
            if not data.has(table):
                article = "an" if column[:1] in "aeiou" else "a"
                wants.append(f"{table}.csv with {article} {column} column (table not provided)")
                continue
            origin = data.origins.get(table, f"{table}.csv")
            wants.append(f"column {column} in {table} (absent or empty in {origin})")
        head = f"{self.part}: not checked, " if self.part else ""
        return head + "needs " + " or ".join(wants)


@dataclass(frozen=True)
class Detector:
    name: str
    spec: type[DetectorSpec]
    detect: DetectFn
    requires: tuple[str, ...]  # CrmData tables beyond the required three, e.g. ("emails", "email_opens")
    summary: str  # one line for --help and check-config
    needs: tuple[Need, ...] = ()  # columns of the whole detector and of its parts


REGISTRY: dict[str, Detector] = {}

# Detectors that judge how long nothing has happened (idle deals, waiting leads, silent
# clients): on data that stopped arriving they would report the export's silence as the
# people's, so on stale data they do not run (crm.freshness; bot.pipeline.scan decides).
# deal_risk too: "no touch for 12 days" and the chance it pulls down would be the export's age.
NEEDS_FRESH_DATA = frozenset({"stalled_deal", "lead_sla", "silent_client", "deal_risk"})


def register(name: str, spec: type[DetectorSpec], requires: tuple[str, ...], summary: str,
             needs: tuple[Need, ...] = ()) -> Callable[[DetectFn], DetectFn]:
    def wrap(fn: DetectFn) -> DetectFn:
        if name in REGISTRY:
            raise ValueError(f"detector {name!r} registered twice")
        REGISTRY[name] = Detector(name, spec, fn, requires, summary, needs)
        return fn
    return wrap


@dataclass
class ScanResult:
    insights: list[Insight] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> one clear line why
    partial: dict[str, list[str]] = field(default_factory=dict)  # detector -> parts not checked, why
    # opt-in detectors (off by default) the config did not switch on: not a check, not "skipped"
    not_opted_in: set[str] = field(default_factory=set)
    # the company calendar the detectors counted working time on, with the days off learned
    # from the data (working_hours.company_days_off); None when no detector counts working time
    calendar: Any = None


class SkipNote:
    """Why a detector's last run on one CrmData said nothing (too little history, a model no
    better than its baseline), for its module's `skip_reason(data)`: the scan reports it. The data
    is held weakly, so a note never outlives the load it was about."""

    def __init__(self) -> None:
        self._last: tuple[Any, str] | None = None

    def set(self, data: CrmData, reason: str | None) -> None:
        import weakref

        self._last = None if reason is None else (weakref.ref(data), reason)

    def get(self, data: CrmData) -> str | None:
        return self._last[1] if self._last is not None and self._last[0]() is data else None


def missing_tables(data: CrmData, det: Detector) -> list[str]:
    return [t for t in det.requires if not data.has(t)]


def not_opted_in(det: Detector, spec: DetectorSpec) -> bool:
    """An opt-in detector (off by default) the config left off: not a check anyone expects, so
    scans and backtests do not list it as skipped; check-config says how to turn it on."""
    return not spec.enabled and not det.spec().enabled


def why_skipped(data: CrmData, det: Detector, spec: DetectorSpec) -> str | None:
    """The one line saying why a detector does not run on this data at all, or None.

    Disabled, a table absent, or a column the whole detector needs absent or empty: scan,
    check-config, backtest and /preview all ask here, so they say the same thing.
    """
    if not spec.enabled:
        return "disabled in config"
    missing = missing_tables(data, det)
    if missing:
        return "needs " + ", ".join(f"{t}.csv" for t in missing) + " (table not provided)"
    for need in det.needs:
        if need.part is None and not need.met(data):
            return need.line(data)
    return None


def unchecked_parts(data: CrmData, det: Detector) -> list[str]:
    """Lines for the parts of a running detector that an absent or empty column switches off."""
    return [need.line(data) for need in det.needs if need.part is not None and not need.met(data)]


def with_company_calendar(data: CrmData, specs: dict[str, DetectorSpec], now: datetime, *, stale: bool = False,
                          learn: Callable[[Any], Any] | None = None) -> tuple[dict[str, DetectorSpec], Any]:
    """Every registered detector's spec (given or default), those that count working time (a
    `calendar` field) on the company calendar plus the days off the data shows before `now`
    (detectors.working_hours.company_days_off; `stale`: the export stopped), and that calendar
    (None: no enabled detector counts working time). `learn` stands in for company_days_off
    (the backtest counts the quiet days once and cuts them at each `now`). Scan, /preview,
    check-config and backtest all come through here."""
    from detectors.working_hours import company_days_off

    learn = learn or (lambda cal: company_days_off(data, cal, now, stale=stale))
    out: dict[str, DetectorSpec] = {}
    done: dict[Any, Any] = {}  # usually one calendar shared by every spec: learned once
    shown = None
    for name, det in REGISTRY.items():
        spec = specs.get(name) or det.spec()
        cal = getattr(spec, "calendar", None)
        if spec.enabled and cal is not None and "calendar" in type(spec).model_fields:
            if cal not in done:
                done[cal] = learn(cal)
            spec = spec.model_copy(update={"calendar": done[cal]})
            shown = shown or done[cal]
        out[name] = spec
    return out, shown


def run_detectors(data: CrmData, specs: dict[str, DetectorSpec], now: datetime, *,
                  stale: str | None = None) -> ScanResult:
    """Run every enabled detector; a detector whose tables are absent is skipped with a reason.

    `stale`, when given, says why the data is too old to judge idle time by: the detectors in
    NEEDS_FRESH_DATA are then skipped with that line.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = ScanResult()
    specs, result.calendar = with_company_calendar(data, specs, now, stale=stale is not None)
    for name, det in REGISTRY.items():
        spec = specs[name]
        if not_opted_in(det, spec):
            result.not_opted_in.add(name)
            continue
        why = why_skipped(data, det, spec)
        if why is None and stale is not None and name in NEEDS_FRESH_DATA:
            why = stale
        if why is not None:
            result.skipped[name] = why
            continue
        parts = unchecked_parts(data, det)
        if parts:
            result.partial[name] = parts
        result.insights.extend(det.detect(data, spec, now))
    return result
