"""Should this insight be sent to this person now? One pure function answers, with a reason.

Modelled on Alertmanager's `needsUpdate`: identity is the fingerprint, the previous send is a
log entry, the clock is a parameter, and the answer carries a named reason that is logged:
first, worse, repeat_interval, snoozed, suppressed (pressed "done"), unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # the detectors package loads pandas and scipy; the outbox process needs neither
    from detectors.insight import Insight

Reason = Literal["first", "worse", "repeat_interval", "snoozed", "suppressed", "unchanged"]


@dataclass(frozen=True)
class LogEntry:
    """What the notification log remembers about one insight sent to one recipient."""

    recipient: str
    fingerprint: str
    detector: str
    first_sent: datetime
    last_sent: datetime
    last_facts: dict[str, Any]
    last_severity: str = "info"
    state: Literal["open", "closed"] = "open"
    snoozed_until: datetime | None = None
    suppressed: bool = False  # "done" pressed: quiet until the situation changes or gets worse
    suppressed_facts: dict[str, Any] | None = None
    suppressed_severity: str | None = None
    send_count: int = 1


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: Reason


def _rate_drop(facts: dict[str, Any]) -> float | None:
    b, r = facts.get("baseline_rate"), facts.get("recent_rate")
    if b is None or r is None:
        return None
    return (float(b) - float(r)) * 100.0  # percentage points


def _num(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(facts: dict[str, Any]) -> float | None:
        v = facts.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return get


def _load_distance(facts: dict[str, Any]) -> float | None:
    """How far the most out-of-line person the team item names is from the median (|ratio - 1|)."""
    r = facts.get("max_distance")
    if isinstance(r, (int, float)):
        return float(r)
    r = facts.get("ratio")  # items logged before the one-item-per-team change
    return abs(float(r) - 1.0) if isinstance(r, (int, float)) else None


def _loss_share(facts: dict[str, Any]) -> float | None:
    if facts.get("kind") == "data_quality":
        v = facts.get("missing_share")
        return float(v) * 100.0 if isinstance(v, (int, float)) else None
    top = facts.get("top_rising")
    for r in facts.get("reasons") or []:
        if r.get("reason") == top:
            return float(r.get("recent_share", 0.0)) * 100.0
    return None


def _backlog_size(facts: dict[str, Any]) -> float | None:
    """ln of the leads a lead_sla backlog item counts waiting: its threshold is ln(1 + share),
    so "twice as many" reads 6 -> 12 and 40 -> 80 alike (a day's arrivals are no news to a big
    inbox, and a fixed count would be a lot to a small one). Not less: a backlog's count moves
    by a third from one day to the next as leads come and are answered (6 -> 9 -> 12 -> 9)."""
    n = facts.get("leads")
    return math.log(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


# rule (the detector, or BACKLOG) -> how "bad" an insight is, in the unit of its `worse`
# threshold in config (see rule_of)
BACKLOG = "lead_sla.backlog"
MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "conversion_drop": _rate_drop,  # points of conversion lost
    "silent_client": _num("days_silent"),
    "stalled_deal": _num("days_idle"),
    "lead_sla": _num("working_hours_waited"),  # one lead: working hours it has waited
    # A backlog (lead_sla's "N leads waiting" for one recipient): more leads waiting, not the
    # longest wait. That wait grows with the clock, so a backlog that simply kept waiting was
    # sent in full again every day or two; its escalated count is the clock too (a lead still
    # waiting tomorrow has passed escalate_after_hours). Persisting, it is a "still open" line.
    BACKLOG: _backlog_size,
    "manager_load": _load_distance,  # largest distance of a named person's load ratio from the team median
    "loss_reasons": _loss_share,  # share (points) of the top rising reason / of missing reasons
}


@dataclass(frozen=True)
class Policy:
    repeat_interval: timedelta = timedelta(days=7)
    # rule -> how much the measure must grow to count as worse (units per MEASURES)
    worse_by: dict[str, float] = field(default_factory=lambda: {
        "conversion_drop": 5.0, "silent_client": 7.0, "stalled_deal": 7.0,
        "lead_sla": 24.0, BACKLOG: math.log1p(1.0), "manager_load": 0.25, "loss_reasons": 10.0})

    @classmethod
    def from_config(cls, delivery: Any) -> "Policy":
        """From bot.config.DeliveryConfig."""
        w = delivery.worse
        return cls(
            repeat_interval=timedelta(days=delivery.repeat_interval_days),
            worse_by={
                "conversion_drop": w.conversion_drop.points, "silent_client": w.silent_client.days,
                "stalled_deal": w.stalled_deal.days, "lead_sla": w.lead_sla.hours,
                BACKLOG: math.log1p(w.lead_sla.backlog),
                "manager_load": w.manager_load.ratio, "loss_reasons": w.loss_reasons.points,
            },
        )


def rule_of(detector: str, facts: dict[str, Any]) -> str:
    """Which `worse` rule an item is measured by: its detector's, or BACKLOG for a lead_sla
    backlog item (not the leads written to someone who left: listed, never measured)."""
    if detector == "lead_sla" and facts.get("backlog") and not facts.get("owner_gone_id"):
        return BACKLOG
    return detector


def is_worse(detector: str, old_facts: dict[str, Any] | None, old_severity: str | None,
             insight: Insight, policy: Policy) -> bool:
    """Materially worse than when last seen: severity rose, or the detector's measure grew enough."""
    from detectors.insight import SEVERITY_RANK

    if old_severity is not None and SEVERITY_RANK.get(insight.severity, 0) > SEVERITY_RANK.get(old_severity, 0):
        return True
    rule = rule_of(detector, insight.facts)
    measure = MEASURES.get(rule)
    threshold = policy.worse_by.get(rule)
    if measure is None or threshold is None or old_facts is None:
        return False
    new_v, old_v = measure(insight.facts), measure(old_facts)
    if new_v is None or old_v is None:
        return False
    return new_v - old_v >= threshold - 1e-9


def decide(previous: LogEntry | None, insight: Insight, now: datetime, policy: Policy) -> Decision:
    """Send or not, and why. Pure: the caller records the decision in the log."""
    if previous is None or previous.state == "closed":
        return Decision(True, "first")
    if previous.snoozed_until is not None and now < previous.snoozed_until:
        return Decision(False, "snoozed")
    if previous.suppressed:
        if is_worse(insight.detector, previous.suppressed_facts, previous.suppressed_severity, insight, policy):
            return Decision(True, "worse")
        return Decision(False, "suppressed")
    if previous.send_count == 0:  # snoozed from /insights before any digest carried it
        return Decision(True, "first")
    if is_worse(insight.detector, previous.last_facts, previous.last_severity, insight, policy):
        return Decision(True, "worse")
    if now - previous.last_sent >= policy.repeat_interval:
        return Decision(True, "repeat_interval")
    return Decision(False, "unchanged")
