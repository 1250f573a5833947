"""backtest replays days with delivery's dedup: a persisting situation is one alert, not thirty."""
from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from _builders_b import crm, deal, email, opened  # noqa: E402

from bot.backtest import backtest, format_text, parse_every, replayers  # noqa: E402
from bot.cli import main  # noqa: E402
from bot.notify_log import Policy  # noqa: E402
from detectors.registry import REGISTRY  # noqa: E402
from detectors.working_hours import WorkCalendar  # noqa: E402

UTC = timezone.utc
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
END = T0 + timedelta(days=29)  # 30 daily runs
NO_WORSE = Policy(worse_by={})
ONLY_STALLED = {name: REGISTRY[name].spec(enabled=False) for name in REGISTRY if name != "stalled_deal"}
# stalled_deal counting calendar days (every day a working day) with fixed limits, so the days below are plain.
ONLY_STALLED["stalled_deal"] = REGISTRY["stalled_deal"].spec(
    calendar=WorkCalendar(workdays=(1, 2, 3, 4, 5, 6, 7)), default_limit_days=7, escalate_after_days=14,
    abandon_factor=100, abandon_after_days=1000)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def stalled_all_along():
    """dA: idle since 20 days before the period, so stalled and escalated on every run."""
    return crm(deals=[deal("dA", created=day(-40))],
               stage_history=[{"deal_id": "dA", "stage": "Квалификация", "entered_at": day(-20)}])


def stalled_in_a_live_export():
    """stalled_all_along as a live CRM exports it: m2 calls on another deal every day, so the
    data is fresh on every replayed day (an export whose newest record is 20 days old is
    stale, and a scan, like the backtest, would judge no idle time on it)."""
    return crm(deals=[deal("dA", created=day(-40)), deal("dZ", created=day(-40), manager_id="m2")],
               stage_history=[{"deal_id": "dA", "stage": "Квалификация", "entered_at": day(-20)},
                              {"deal_id": "dZ", "stage": "Квалификация", "entered_at": day(-40)}],
               activities=[{"activity_id": f"z{k}", "deal_id": "dZ", "manager_id": "m2", "type": "call",
                            "done_at": day(k) - timedelta(hours=3)} for k in range(-30, 31)])


def stalls_twice():
    """dB stalls on day 3, escalates on day 9, is called on day 15, stalls again on day 23, escalates on day 29."""
    return crm(deals=[deal("dB", created=day(-40), manager_id="m2")],
               stage_history=[{"deal_id": "dB", "stage": "Квалификация", "entered_at": day(-5)}],
               activities=[{"activity_id": "call1", "deal_id": "dB", "manager_id": "m2", "type": "call",
                            "done_at": day(15) - timedelta(hours=1)}])


def alert_days(report, recipient):
    return [(a.at - T0).days for a in report.alerts if a.recipient == recipient]


def test_a_persisting_stalled_deal_is_one_alert_not_thirty():
    report = backtest(stalled_all_along(), ONLY_STALLED, T0, END, timedelta(days=1), timedelta(days=60), policy=NO_WORSE)
    assert len(report.runs) == 30
    assert report.insight_days["stalled_deal"] == 30  # found on every run...
    assert alert_days(report, "m1") == [0]  # ...but sent once to the manager
    assert alert_days(report, "director") == [0]  # and once to the director (it is escalated)
    det = report.by_detector()["stalled_deal"]
    assert det.alerts == 1 and det.busiest == [("2026-10-01", 1)]
    assert det.per_week == round(1 / (30 / 7), 2)


def test_repeat_interval_and_getting_worse_bring_it_back():
    data = stalled_all_along()
    every_ten = backtest(data, ONLY_STALLED, T0, END, timedelta(days=1), timedelta(days=10), policy=NO_WORSE)
    assert alert_days(every_ten, "m1") == [0, 10, 20]
    # Delivery's default: sent again when idle 7 more days than at the last send.
    default = backtest(data, ONLY_STALLED, T0, END, timedelta(days=1), timedelta(days=60))
    assert alert_days(default, "m1") == [0, 7, 14, 21, 28]
    assert {a.reason for a in default.alerts} == {"first", "worse"}


def test_resolved_then_back_is_new_and_escalation_reaches_the_director():
    report = backtest(stalls_twice(), ONLY_STALLED, T0, END, timedelta(days=1), timedelta(days=60), policy=NO_WORSE)
    assert alert_days(report, "m2") == [3, 9, 23, 29]
    assert [a.reason for a in report.alerts if a.recipient == "m2"] == ["first", "worse", "first", "worse"]
    assert alert_days(report, "director") == [9, 29]
    by_r = report.by_recipient()
    assert list(by_r) == ["director", "m2"] and by_r["m2"].alerts == 4
    assert report.by_detector()["stalled_deal"].alerts == 4  # day 9 and 29 each count once for the detector


def test_every_and_text_report():
    report = backtest(stalled_all_along(), ONLY_STALLED, T0, END, timedelta(weeks=1), timedelta(days=60), policy=NO_WORSE)
    assert len(report.runs) == 5
    text = format_text(report)
    assert "stalled_deal" in text and "every 7d (5 runs" in text
    assert "Айгерим Садыкова (m1)" in text
    # an export whose manager id is the name (amoCRM): the name once, not cut off in brackets
    report.recipient_names["m1"] = "m1"
    assert "\nm1 " in format_text(report) and "m1 (m1)" not in format_text(report)
    assert "skipped conversion_drop: disabled in config" in text
    assert parse_every("12h") == timedelta(hours=12)
    with pytest.raises(ValueError, match="like 1d, 12h or 1w"):
        parse_every("daily")


def test_prepared_replays_match_plain_detect_day_by_day():
    """The prepare/detect_at shortcut must not change a single insight."""
    data = stalls_twice()
    data.clients = crm(clients=[{"client_id": "c1", "name": "ТОО Степь", "manager_id": "m1"}]).clients
    data.emails = crm(emails=[email("o1", "c1", day(-30)), email("o2", "c1", day(-20)),
                              email("i1", "c1", day(5), direction="in"), email("o3", "c1", day(6))]).emails
    data.email_opens = crm(email_opens=[opened("o1", day(-29)), opened("o2", day(-3)), opened("o2", day(-1)),
                                        opened("o3", day(6) + timedelta(seconds=5)), opened("o3", day(18)),
                                        opened("o3", day(25))]).email_opens
    data.leads = crm(leads=[{"lead_id": "L1", "created_at": day(2) + timedelta(hours=-6), "manager_id": None},
                            {"lead_id": "L2", "created_at": day(10), "manager_id": "m1", "first_response_at": day(12)}]).leads
    fns, skipped = replayers(data, {})
    seen = set()
    for n in range(0, 30, 2):
        now = day(n) + timedelta(hours=n % 5)
        for name in ("silent_client", "stalled_deal", "lead_sla"):
            fast = [i.to_dict() for i in fns[name](now)]
            # The replay asks for no evidence (alerts are counted, never shown), so compare
            # everything else; the detectors' own tests compare the evidence of replays.
            plain = REGISTRY[name].detect(data, REGISTRY[name].spec(), now)
            assert fast == [i.to_dict() | {"evidence": {}} for i in plain]
            seen |= {name} if fast else set()
    assert seen == {"silent_client", "stalled_deal", "lead_sla"}  # the comparison was not vacuous


def _export(data, folder: Path) -> Path:
    from crm.demo import export_csv

    export_csv(data, folder)
    return folder


def test_cli_json_report(tmp_path, capsys):
    folder = _export(stalled_in_a_live_export(), tmp_path / "crm")
    code = main(["backtest", "--data", str(folder), "--from", "2026-10-01", "--to", "2026-10-30", "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    # October 2026 on the default calendar (Asia/Almaty: KZ): 22 weekdays, Mon 26 Oct a day off
    # (Republic Day moved from Sunday): a scan every day, 21 with a digest
    assert report["runs"] == 30 and report["days"] == 30 and report["digest_days"] == report["digest_runs"] == 21
    # Default specs and delivery policy: first send (idle 14 working days), again when escalated
    # the next day, after the 7-day repeat interval, then once it looks abandoned (idle over 20
    # working days: one hygiene item with its own identity) and weekly after that.
    assert report["detectors"]["stalled_deal"]["alerts"] == 6
    assert report["recipients"]["m1"]["alerts"] == 6 and report["recipients"]["m1"]["name"] == "Айгерим Садыкова"
    assert report["detectors"]["stalled_deal"]["insights_before_dedup"] == 30
    assert "silent_client" in report["skipped"]


def test_a_detector_that_would_say_nothing_is_skipped_once_not_also_partly(tmp_path, capsys):
    """Deals alone: stalled_deal cannot know when a deal was last touched. The backtest and the
    scan say so once, as skipped, and neither replays it nor lists its parts as partly skipped."""
    from bot.cli import main as cli

    folder = _export(stalled_in_a_live_export(), tmp_path / "crm")
    for name in ("stage_history.csv", "activities.csv", "emails.csv", "email_opens.csv"):
        (folder / name).unlink(missing_ok=True)
    code = main(["backtest", "--data", str(folder), "--from", "2026-10-01", "--to", "2026-10-03"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = (out.out + out.err).splitlines()
    assert [ln for ln in lines if ln.startswith("skipped stalled_deal:")], lines
    assert not [ln for ln in lines if "partly skipped stalled_deal" in ln], lines
    assert not [ln for ln in lines if ln.startswith("stalled_deal ")], lines  # no row of zeros
    code = cli(["scan", "--data", str(folder), "--now", "2026-10-03T09:00:00+00:00"])
    out = capsys.readouterr()
    assert code == 0, out.err
    text = out.out + out.err
    assert "stalled_deal" in text and "partly skipped stalled_deal" not in text, text


def test_cli_mistakes_exit_2_with_a_clear_line(tmp_path, capsys):
    folder = _export(stalled_in_a_live_export(), tmp_path / "crm")
    assert main(["backtest", "--data", str(folder), "--every", "daily"]) == 2
    assert "like 1d, 12h or 1w" in capsys.readouterr().err
    assert main(["backtest", "--data", str(folder), "--from", "2026-10-30", "--to", "2026-10-01"]) == 2
    assert "is after --to" in capsys.readouterr().err
    assert main(["backtest", "--data", str(folder), "--from", "1.10.2026"]) == 2
    assert "ISO" in capsys.readouterr().err
    assert main(["backtest", "--data", str(tmp_path / "nowhere")]) == 2


def test_progress_bar_only_on_a_terminal():
    import io

    from bot.backtest import _progress

    assert _progress(io.StringIO()) is None  # piped: no bar, nothing but the report

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    wrap = _progress(stream)
    runs = [day(n) for n in range(3)]
    assert list(wrap(iter(runs), len(runs))) == runs  # the bar passes every run through
    report = backtest(stalled_all_along(), ONLY_STALLED, T0, day(2), progress=wrap)
    assert len(report.runs) == 3


# --- the array dedup against bot.notify_log.decide ------------------------------------------

def decide_loop(runs, policy):
    """What delivery would send, one decide() per (recipient, insight), the log updated as
    delivery does: `runs` is [(now, [(recipient, insight)])]; returns [(run, recipient, fp, reason)]."""
    from bot.notify_log import LogEntry, decide

    log: dict[tuple[str, str], LogEntry] = {}
    sent = []
    for k, (now, items) in enumerate(runs):
        for r, ins in items:
            prev = log.get((r, ins.fingerprint))
            d = decide(prev, ins, now, policy)
            if d.send:
                sent.append((k, r, ins.fingerprint, d.reason))
                log[(r, ins.fingerprint)] = LogEntry(
                    recipient=r, fingerprint=ins.fingerprint, detector=ins.detector,
                    first_sent=prev.first_sent if prev and prev.state == "open" else now, last_sent=now,
                    last_facts=ins.facts, last_severity=ins.severity,
                    send_count=(prev.send_count + 1) if prev and prev.state == "open" else 1)
        current = {(r, ins.fingerprint) for r, ins in items}
        log = {key: (e if key in current else dataclasses.replace(e, state="closed")) for key, e in log.items()}
    return sent


def dedup_loop(runs, policy):
    from bot.backtest import Dedup

    dedup, sent = Dedup(policy), []
    for k, (now, items) in enumerate(runs):
        sent += [(k, r, ins.fingerprint, why) for (r, ins), why in zip(items, dedup.run(now, items)) if why]
    return sent


def stalled(deal_id, days_idle, severity="warning", manager="m1"):
    from detectors.insight import Audience, Insight

    return Insight("stalled_deal", severity, Audience("manager", manager), {"deal_id": deal_id},
                   {"days_idle": days_idle, "escalated": severity == "critical"})


def test_dedup_agrees_with_decide_on_a_persisting_and_a_worsening_situation():
    persisting = [(day(n), [("m1", stalled("dA", 20))]) for n in range(30)]  # same facts every day
    worsening = [(day(n), [("m1", stalled("dB", 10 + n, "critical" if n >= 12 else "warning"))]
                  + ([("director", stalled("dB", 10 + n, "critical"))] if n >= 12 else [])) for n in range(30)]
    for runs in (persisting, worsening):
        for policy in (Policy(), NO_WORSE, Policy(repeat_interval=timedelta(days=4))):
            assert dedup_loop(runs, policy) == decide_loop(runs, policy)
    assert [(k, why) for k, _r, _f, why in dedup_loop(persisting, Policy())] == [(0, "first"), (7, "repeat_interval"),
                                                                                 (14, "repeat_interval"), (21, "repeat_interval"),
                                                                                 (28, "repeat_interval")]
    got = dedup_loop(worsening, Policy(repeat_interval=timedelta(days=60)))
    assert [(k, r, why) for k, r, _f, why in got] == [(0, "m1", "first"), (7, "m1", "worse"), (12, "m1", "worse"),
                                                      (12, "director", "first"), (19, "m1", "worse"),
                                                      (19, "director", "worse"), (26, "m1", "worse"), (26, "director", "worse")]


def test_dedup_agrees_with_decide_on_random_histories():
    """Insights of every measure that come and go, change severity, move both ways, and
    sometimes appear twice in one run: the arrays must send exactly what decide() sends."""
    import numpy as np

    from detectors.insight import Audience, Insight

    def facts(detector, x, sid=""):
        if detector == "lead_sla" and sid in ("s8", "s20"):  # backlogs: measured by the leads waiting
            return {"backlog": True, "leads": 4 + int(x), "working_hours_waited": x * 3}
        return {"conversion_drop": {"baseline_rate": 0.5, "recent_rate": 0.5 - x / 100},
                "manager_load": {"ratio": 1 + x / 10}, "lead_sla": {"working_hours_waited": x * 3},
                "loss_reasons": {"kind": "shift", "top_rising": "price", "reasons": [{"reason": "price", "recent_share": x / 50}]},
                "silent_client": {"days_silent": x}, "stalled_deal": {"days_idle": None if x > 25 else x}}[detector]

    rng = np.random.default_rng(3)
    detectors = ["conversion_drop", "manager_load", "lead_sla", "loss_reasons", "silent_client", "stalled_deal"]
    subjects = [(detectors[j % 6], f"s{j}") for j in range(24)]
    level = {s: float(rng.integers(0, 20)) for s in subjects}
    runs = []
    for n in range(60):
        items = []
        for det, sid in subjects:
            if rng.random() < 0.25:
                continue  # gone this run: closed, new again when it comes back
            level[(det, sid)] = max(0.0, level[(det, sid)] + float(rng.normal(1.5, 4)))
            severity = ["info", "warning", "critical"][int(rng.integers(0, 3))]
            ins = Insight(det, severity, Audience("director"), {"id": sid}, facts(det, level[(det, sid)], sid))
            items.append(("director" if rng.random() < 0.8 else "m1", ins))
            if rng.random() < 0.05:
                items.append((items[-1][0], Insight(det, "critical", Audience("director"), {"id": sid},
                                                    facts(det, level[(det, sid)] + 10, sid))))
        runs.append((T0 + timedelta(hours=13 * n), items))
    for policy in (Policy(), NO_WORSE, Policy(repeat_interval=timedelta(days=2))):
        expected = decide_loop(runs, policy)
        assert dedup_loop(runs, policy) == expected
        assert {why for *_x, why in expected} == {"first", "worse", "repeat_interval"}


def test_cli_reads_day_first_dates_and_says_to_swap_reversed_ones(tmp_path, capsys):
    folder = _export(stalled_in_a_live_export(), tmp_path / "crm")
    code = main(["backtest", "--data", str(folder), "--from", "01.10.2026", "--to", "30.10.2026", "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["runs"] == 30
    assert main(["backtest", "--data", str(folder), "--from", "30.10.2026", "--to", "2026-10-01"]) == 2
    err = capsys.readouterr().err
    assert "--from 2026-10-30 is after --to 2026-10-01; swap them: --from 2026-10-01 --to 2026-10-30" in err
    assert main(["backtest", "--data", str(folder), "--from", "2026-13-01"]) == 2
    err = capsys.readouterr().err
    assert "--from: cannot read '2026-13-01'" in err and "Invalid isoformat" not in err
