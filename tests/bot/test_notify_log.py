"""decide(): the named reason for sending or not, table-driven like Alertmanager's needsUpdate."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from bot.config import parse_config
from bot.notify_log import Decision, LogEntry, Policy, decide
from detectors.insight import Audience, Insight

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
POLICY = Policy()


def ins(detector="silent_client", severity="warning", **facts):
    return Insight(detector, severity, Audience("manager", "m1"), {"client_id": "c1"}, facts)


def entry(detector="silent_client", days_ago=1, severity="warning", **kw):
    facts = kw.pop("facts", {})
    return LogEntry(recipient="anna", fingerprint="fp", detector=detector, first_sent=NOW - timedelta(days=30),
                    last_sent=NOW - timedelta(days=days_ago), last_facts=facts, last_severity=severity, **kw)


CASES = [
    # (name, previous, insight, expected)
    ("never sent", None, ins(days_silent=20), Decision(True, "first")),
    ("closed then back", entry(state="closed", facts={"days_silent": 20}), ins(days_silent=20), Decision(True, "first")),
    ("sent yesterday, same", entry(facts={"days_silent": 20}), ins(days_silent=21), Decision(False, "unchanged")),
    ("silence grew 7 days", entry(facts={"days_silent": 20}), ins(days_silent=27), Decision(True, "worse")),
    ("silence grew 6 days", entry(facts={"days_silent": 20}), ins(days_silent=26), Decision(False, "unchanged")),
    ("repeat interval passed", entry(days_ago=7, facts={"days_silent": 20}), ins(days_silent=21), Decision(True, "repeat_interval")),
    ("snoozed", entry(days_ago=8, snoozed_until=NOW + timedelta(hours=1), facts={"days_silent": 20}),
     ins(days_silent=40), Decision(False, "snoozed")),
    ("snooze expired, interval not", entry(days_ago=2, snoozed_until=NOW - timedelta(minutes=1), facts={"days_silent": 20}),
     ins(days_silent=20), Decision(False, "unchanged")),
    ("done, unchanged, interval passed", entry(days_ago=30, suppressed=True, suppressed_facts={"days_silent": 20},
     suppressed_severity="warning", facts={"days_silent": 20}), ins(days_silent=25), Decision(False, "suppressed")),
    ("done, then worse", entry(days_ago=30, suppressed=True, suppressed_facts={"days_silent": 20},
     suppressed_severity="warning", facts={"days_silent": 20}), ins(days_silent=28), Decision(True, "worse")),
    ("severity rose", entry(facts={"days_silent": 20}), ins(severity="critical", days_silent=20), Decision(True, "worse")),
    ("drop grew 5 points", entry("conversion_drop", facts={"baseline_rate": 0.40, "recent_rate": 0.30}),
     ins("conversion_drop", baseline_rate=0.40, recent_rate=0.25), Decision(True, "worse")),
    ("drop grew 4 points", entry("conversion_drop", facts={"baseline_rate": 0.40, "recent_rate": 0.30}),
     ins("conversion_drop", baseline_rate=0.40, recent_rate=0.26), Decision(False, "unchanged")),
    ("stall grew 7 days", entry("stalled_deal", facts={"days_idle": 15}), ins("stalled_deal", days_idle=22), Decision(True, "worse")),
    ("unknown detector: only severity", entry("new_thing", facts={"x": 1}), ins("new_thing", x=100), Decision(False, "unchanged")),
    ("lead waited 24h more", entry("lead_sla", facts={"working_hours_waited": 5}), ins("lead_sla", working_hours_waited=29),
     Decision(True, "worse")),
    ("backlog: same leads, waited 30h more", entry("lead_sla", facts={"backlog": True, "leads": 6, "working_hours_waited": 9}),
     ins("lead_sla", backlog=True, leads=6, working_hours_waited=39), Decision(False, "unchanged")),
    ("backlog: 6 -> 12 leads", entry("lead_sla", facts={"backlog": True, "leads": 6, "working_hours_waited": 9}),
     ins("lead_sla", backlog=True, leads=12, working_hours_waited=9), Decision(True, "worse")),
    ("backlog: 6 -> 11 leads", entry("lead_sla", facts={"backlog": True, "leads": 6, "working_hours_waited": 9}),
     ins("lead_sla", backlog=True, leads=11, working_hours_waited=40), Decision(False, "unchanged")),
    ("backlog: escalated", entry("lead_sla", facts={"backlog": True, "leads": 6, "working_hours_waited": 5}),
     ins("lead_sla", severity="critical", backlog=True, leads=6, working_hours_waited=9), Decision(True, "worse")),
    ("leads written to someone who left: not measured", entry("lead_sla", facts={"backlog": True, "leads": 2,
     "owner_gone_id": "x7"}), ins("lead_sla", backlog=True, leads=6, owner_gone_id="x7"), Decision(False, "unchanged")),
    ("snoozed before ever sent, snooze over", entry(days_ago=1, snoozed_until=NOW - timedelta(hours=1), send_count=0,
     facts={"days_silent": 20}), ins(days_silent=20), Decision(True, "first")),
    ("snoozed before ever sent, still snoozed", entry(days_ago=1, snoozed_until=NOW + timedelta(hours=1), send_count=0,
     facts={"days_silent": 20}), ins(days_silent=20), Decision(False, "snoozed")),
    ("facts missing the measure", entry(facts={}), ins(days_silent=90), Decision(False, "unchanged")),
]


@pytest.mark.parametrize("name,previous,insight,expected", CASES, ids=[c[0] for c in CASES])
def test_decide(name, previous, insight, expected):
    assert decide(previous, insight, NOW, POLICY) == expected


def test_policy_from_config_uses_the_admins_thresholds():
    cfg = parse_config("[delivery]\nrepeat_interval_days = 2\n[delivery.worse.silent_client]\ndays = 3\n")
    policy = Policy.from_config(cfg.delivery)
    prev = entry(days_ago=1, facts={"days_silent": 20})
    assert decide(prev, ins(days_silent=23), NOW, policy) == Decision(True, "worse")
    assert decide(replace(prev, last_sent=NOW - timedelta(days=2)), ins(days_silent=21), NOW, policy).reason == "repeat_interval"
