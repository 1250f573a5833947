"""A lead backlog that simply keeps waiting is a "still open" line, not a daily full resend
(issue 9 item 7); more leads waiting is still sent in full as worse.

The backlog comes from the real lead_sla detector, replayed each morning, and what is sent
from the real rule (bot.notify_log.decide, the log updated as delivery does) and from the
backtest's arrays (bot.backtest.Dedup), which must agree.
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from _builders_b import crm, deal  # noqa: E402

from bot.backtest import Dedup  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.notify_log import LogEntry, Policy, decide  # noqa: E402
from detectors.lead_sla import LeadSlaSpec, detect  # noqa: E402

ALMATY = ZoneInfo("Asia/Almaty")
MONDAY = datetime(2026, 11, 2, 10, 0, tzinfo=ALMATY)  # a plain working week (no KZ holiday)
SPEC = LeadSlaSpec(lookback_days=14)  # the leads stay in view for the whole replay


def inbox(waiting: int, more: int = 0, more_on: int = 3):
    """m1 is given `waiting` web leads on Monday at 10:00 and answers none; `more` more come
    `more_on` days later at 10:00 and wait too. m2 answered a lead the week before (so the
    export has first answers: a lead without one is waiting, not unknown), and m2's deal three
    weeks on makes the export newer than every replayed morning, so each morning is judged at
    its own time."""
    def lead(k: int, t: datetime) -> dict:
        return {"lead_id": f"L{k}", "created_at": t, "manager_id": "m1", "assigned_at": t, "source": "Сайт"}
    leads = [lead(k, MONDAY + timedelta(minutes=k)) for k in range(waiting)]
    leads += [lead(waiting + k, MONDAY + timedelta(days=more_on, minutes=k)) for k in range(more)]
    leads.append({**lead(-1, MONDAY - timedelta(days=7)), "manager_id": "m2", "first_response_at": MONDAY - timedelta(days=7)})
    return crm(leads=leads, deals=[deal("D1", manager_id="m2", created=MONDAY + timedelta(days=21))])


def replay(data, days: int, policy: Policy) -> list[tuple[int, str]]:
    """(day, reason) of each full send or reminder of m1's backlog item, one scan a morning
    at 09:00 from Tuesday on; checks the backtest's Dedup sends the same."""
    log: dict[str, LogEntry] = {}
    dedup = Dedup(policy)
    sent, fast = [], []
    for d in range(1, days + 1):
        now = MONDAY + timedelta(days=d, hours=-1)
        items = [i for i in detect(data, SPEC, now) if i.audience.manager_id == "m1"]
        assert len(items) == 1 and items[0].facts["backlog"], [i.subject for i in items]
        ins = items[0]
        decision = decide(log.get(ins.fingerprint), ins, now, policy)
        if decision.send:
            sent.append((d, decision.reason))
            log[ins.fingerprint] = LogEntry(
                recipient="m1", fingerprint=ins.fingerprint, detector=ins.detector, first_sent=now, last_sent=now,
                last_facts=ins.facts, last_severity=ins.severity)
        fast += [(d, why) for why in dedup.run(now, [("m1", ins)]) if why]
    assert fast == sent
    return sent


def full(sent: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(d, why) for d, why in sent if why != "repeat_interval"]


def test_a_backlog_that_keeps_waiting_is_sent_in_full_once():
    """Six leads nobody answers for 12 days (escalated, critical, from the first morning):
    their longest wait grows 9 working hours a working day. Sent in full on day 1, then one
    "still open" line a week later: the clock moving is no news (the +24 working hours rule
    sent it in full again on days 4, 9 and 12)."""
    sent = replay(inbox(6), 12, Policy())
    assert sent == [(1, "first"), (8, "repeat_interval")]


@pytest.mark.parametrize("more,worse", [(6, True), (5, False), (12, True)])
def test_more_leads_waiting_is_sent_in_full(more, worse):
    """Six waiting, then `more` come on Thursday: twice as many (12) or more is worse, sent in
    full on Friday morning; 11 of 6 is not (nor is the clock: the old rule sent each of them
    on Friday)."""
    sent = full(replay(inbox(6, more=more), 8, Policy()))
    assert sent == [(1, "first")] + ([(4, "worse")] if worse else []), sent


def test_the_share_follows_the_config():
    cfg = parse_config("[delivery.worse.lead_sla]\nhours = 24\nbacklog = 0.5\n")
    policy = Policy.from_config(cfg.delivery)
    assert (4, "worse") not in full(replay(inbox(6, more=2), 6, policy))  # 8 of 6: less than half again
    assert (4, "worse") in full(replay(inbox(6, more=3), 6, policy))
    with pytest.raises(Exception, match="backlog"):
        parse_config("[delivery.worse.lead_sla]\nbacklog = 0\n")
