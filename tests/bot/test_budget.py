"""The daily budget: backtest warns about anyone who would get more than the budget a day,
names the detector and the subjects behind it, and can fail a CI run; reminders and the
digest's limit are counted the way the digest shows them."""
from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from _builders_b import crm, deal  # noqa: E402

from bot.backtest import DigestCut, backtest, format_text, replayers, subject_label  # noqa: E402
from bot.cli import main  # noqa: E402
from detectors.insight import Audience, Insight  # noqa: E402
from detectors.registry import REGISTRY, Detector, DetectorSpec, Need  # noqa: E402

UTC = timezone.utc
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
END = T0 + timedelta(days=29)  # 30 daily runs
DAY0 = date(2026, 10, 1)


class FloodSpec(DetectorSpec):
    fresh_per_day: int = 9


def flood(data, spec, now):
    """Planted volume. m1: `fresh_per_day` new deals every day (each holds one day), deal
    D-FLAP there every other day (so new each time), deal D-STUCK there every day, unchanged.
    m2: one new deal every third day."""
    n = (now.astimezone(UTC).date() - DAY0).days
    out = [Insight("flood", "warning", Audience("manager", "m1"), {"deal_id": f"F{n}-{j}"}, {"deal_title": f"Свежая {n}-{j}"})
           for j in range(spec.fresh_per_day)]
    if n % 2 == 0:
        out.append(Insight("flood", "warning", Audience("manager", "m1"), {"deal_id": "D-FLAP"}, {"deal_title": "Мигающая"}))
    out.append(Insight("flood", "warning", Audience("manager", "m1"), {"deal_id": "D-STUCK"}, {"deal_title": "Застрявшая"}))
    if n % 3 == 0:
        out.append(Insight("flood", "warning", Audience("manager", "m2"), {"deal_id": f"G{n}"}, {}))
    return out


@pytest.fixture
def only_flood(monkeypatch):
    """The planted detector registered for this test only; every real detector switched off."""
    real = list(REGISTRY)
    monkeypatch.setitem(REGISTRY, "flood", Detector("flood", FloodSpec, flood, (), "planted volume"))
    return {name: REGISTRY[name].spec(enabled=False) for name in real}


def company():
    return crm(deals=[deal("d1", created=T0 - timedelta(days=3)), deal("d2", created=T0 - timedelta(days=3), manager_id="m2")])


def test_a_recipient_with_about_ten_items_a_day_is_warned_with_detector_and_subjects(only_flood):
    report = backtest(company(), only_flood, T0, END)
    load = report.load()
    # m1: 9 fresh a day + D-FLAP on 15 of 30 days + D-STUCK once in full; D-STUCK then comes
    # back every 7 days unchanged, as a one-line reminder that the budget does not count
    assert load["m1"].items == 9 * 30 + 15 + 1 and load["m1"].items_per_day == pytest.approx(9.53, abs=0.01)
    # day 0 has 11 due (9 + D-FLAP + D-STUCK) for a digest of 10: D-STUCK, last of equal rank,
    # waits for day 1; its reminders follow on days 8, 15, 22 and 29
    assert load["m1"].reminders == 4 and load["m1"].held == 1
    assert load["m2"].items == 10 and load["m2"].items_per_day == pytest.approx(0.33, abs=0.01)
    [warning] = report.over_budget()  # m2 is within the budget: no warning for them
    assert warning.recipient == "m1" and warning.name == "Айгерим Садыкова"
    [(det, n, share, distinct, top)] = warning.detectors
    assert (det, n, share) == ("flood", 286, 1.0)
    assert distinct == 9 * 30 + 2
    assert top[0] == ("deal D-FLAP «Мигающая»", 15)  # the subject that keeps coming back leads
    text = format_text(report)
    assert ("warning: Айгерим Садыкова (m1) is over the daily budget of 5 item(s) a day: 9.53 a day"
            " (286 item(s) over 30 days; +0.13 reminder(s) a day; the digest's limit held back 0.03 more a day)") in text
    assert "flood: 100% of them (286), 272 subject(s); most often: deal D-FLAP «Мигающая» (15 items)" in text
    assert "m2" not in "\n".join(line for line in text.splitlines() if line.startswith("warning"))
    budget = report.to_dict()["budget"]
    assert budget["daily_budget"] == 5 and [w["recipient"] for w in budget["over"]] == ["m1"]
    assert budget["over"][0]["behind"][0]["most_often"][0] == {"subject": "deal D-FLAP «Мигающая»", "items": 15}
    assert report.to_dict()["recipients"]["m1"]["reminders"] == 4


def test_under_the_budget_no_warning(only_flood):
    quiet = {**only_flood, "flood": FloodSpec(fresh_per_day=3)}  # m1: 3.5 a day
    report = backtest(company(), quiet, T0, END)
    assert report.load()["m1"].items_per_day == pytest.approx(3.53, abs=0.01)
    assert report.over_budget() == []
    assert "every recipient within the daily budget of 5 item(s) a day" in format_text(report)
    assert "warning" not in format_text(report)
    # the same report against a budget of 3 a day warns
    assert [w.recipient for w in backtest(company(), quiet, T0, END, daily_budget=3).over_budget()] == ["m1"]


def test_the_digest_limit_is_what_a_recipient_sees_and_the_rest_is_held_back(only_flood):
    many = {**only_flood, "flood": FloodSpec(fresh_per_day=14)}
    capped = backtest(company(), many, T0, END, max_items=10)
    uncapped = backtest(company(), many, T0, END, max_items=None)
    # every day 14 fresh + D-STUCK (+ D-FLAP on even days) are due, all of one rank; the digest
    # shows the first 10, the rest stay due: D-STUCK and D-FLAP wait behind the fresh ones
    assert capped.load()["m1"].items == 10 * 30 and capped.load()["m1"].reminders == 0
    assert capped.load()["m1"].held == 15 * 6 + 15 * 5
    assert uncapped.load()["m1"].items == 14 * 30 + 15 + 1 and uncapped.load()["m1"].held == 0
    assert capped.load()["m2"].items == uncapped.load()["m2"].items == 10


def test_cli_fail_on_budget_exits_1_and_the_json_names_the_recipient(only_flood, tmp_path, capsys):
    from crm.demo import export_csv

    folder = tmp_path / "crm"
    export_csv(company(), folder)
    config = tmp_path / "config.toml"
    off = "".join(f"[detectors.{name}]\nenabled = false\n" for name in only_flood)
    config.write_text(f'timezone = "UTC"\n[source]\nkind = "files"\npath = "{folder}"\n{off}', encoding="utf-8")
    common = ["backtest", "--config", str(config), "--from", "2026-10-01", "--to", "2026-10-30"]
    assert main([*common, "--format", "json"]) == 0  # a warning, but nobody asked to fail
    out = capsys.readouterr()
    assert [w["recipient"] for w in json.loads(out.out)["budget"]["over"]] == ["m1"]
    assert "1 recipient(s) over the daily budget of 5 item(s) a day" in out.err
    assert main([*common, "--fail-on-budget"]) == 1
    assert "warning: Айгерим Садыкова (m1) is over the daily budget" in capsys.readouterr().out
    assert main([*common, "--fail-on-budget", "--daily-budget", "12"]) == 0
    assert "every recipient within the daily budget of 12 item(s) a day" in capsys.readouterr().out
    config.write_text(config.read_text(encoding="utf-8").replace("[source]", "[delivery]\ndaily_budget = 10\n[source]"),
                      encoding="utf-8")
    assert main([*common, "--fail-on-budget"]) == 0  # the config's budget


def test_partly_skipped_parts_are_their_own_list(only_flood, monkeypatch):
    det = REGISTRY["flood"]
    monkeypatch.setitem(REGISTRY, "flood", Detector("flood", FloodSpec, flood, (), "planted volume",
                                                    needs=(Need(("deals.loss_reason",), part="loss check"),)))
    partial: dict[str, list[str]] = {}
    fns, skipped = replayers(company(), only_flood, partial=partial)
    assert "flood" in fns and "flood" not in skipped and not any("(part)" in k for k in skipped)
    assert partial == {"flood": ["loss check: not checked, needs column loss_reason in deals (absent or empty in deals.csv)"]}
    report = backtest(company(), only_flood, T0, T0 + timedelta(days=2))
    assert report.partial == partial and report.to_dict()["partial"] == partial
    assert ("partly skipped flood: loss check: not checked, needs column loss_reason in deals"
            in format_text(report))
    assert det is not REGISTRY["flood"]


def test_subject_labels_say_what_an_item_is_about():
    def ins(subject, facts=None):
        return Insight("x", "info", Audience("director"), subject, facts or {})

    assert subject_label(ins({"deal_id": "d7"}, {"deal_title": "Поставка"})) == "deal d7 «Поставка»"
    assert subject_label(ins({"lead_id": "L1", "kind": "unanswered"})) == "lead L1 (kind=unanswered)"
    assert subject_label(ins({"client_id": "C1"}, {"client_name": "ТОО Степь"})) == "client C1 «ТОО Степь»"
    assert subject_label(ins({"from_stage": "КП", "to_stage": "Счёт"})) == "stage КП → Счёт"
    assert subject_label(ins({"manager_id": "m3", "metric": "open_deals"}, {"manager_name": "Ольга"})) == \
        "manager m3 (Ольга) (metric=open_deals)"


def _stalled(deal_id, manager, amount, severity="warning"):
    from messages import samples

    ins = samples.stalled_deal(deal_id=deal_id, title=deal_id, amount=amount, manager_id=manager)
    ins.severity = severity
    return ins


def _lead(i, severity="warning"):
    return Insight("lead_sla", severity, Audience("director"), {"lead_id": f"L{i}", "kind": "unassigned"},
                   {"kind": "unassigned", "working_hours_waited": 5, "sla_hours": 2, "created_at": "2026-10-01T09:00:00+00:00"})


def test_the_digest_model_shows_exactly_what_build_digest_shows():
    """DigestCut (arrays, no rendering) against messages.digest.build_digest on random days."""
    from messages.digest import build_digest

    rng = np.random.default_rng(5)
    for _ in range(40):
        items, codes = [], []
        for j in range(int(rng.integers(1, 40))):
            severity = ["info", "warning", "critical"][int(rng.integers(0, 3))]
            if rng.random() < 0.5:
                ins = _stalled(f"D{j}", f"m{int(rng.integers(1, 4))}", float(rng.integers(1, 10**6)), severity)
            else:
                ins = _lead(j, severity)
            items.append(("director", ins))
            codes.append(3 if rng.random() < 0.3 else int(rng.integers(1, 3)))
        code = np.array(codes)
        shown = DigestCut(items, 10, 5)(np.arange(len(items)), code)
        full = [ins for (_, ins), c in zip(items, codes) if c != 3]
        still = [(ins, None) for (_, ins), c in zip(items, codes) if c == 3]
        digest = build_digest(full, lang="ru", now=T0, max_items=10, recipient_role="director", still_open=still)
        expected = {fp for item in digest.items for fp in item.fingerprints} | set(digest.reminded)
        assert {ins.fingerprint for (_, ins), s in zip(items, shown) if s} == expected


# --- digest days -----------------------------------------------------------------------------

MON = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)  # a Monday; four weeks to Sunday 1 November


class WeekSpec(DetectorSpec):
    per_day: int = 4


def every_day(data, spec, now):
    """Planted: `per_day` new deals of m1 every calendar day, weekends too, each holding three
    days (the day it came up and the two after), oldest first; on Saturdays one more that holds
    that Saturday only."""
    today = now.astimezone(UTC).date()
    out = [Insight("week", "warning", Audience("manager", "m1"), {"deal_id": f"W{today - timedelta(days=age)}-{j}"}, {})
           for age in (2, 1, 0) for j in range(spec.per_day)]
    if today.isoweekday() == 6:
        out.append(Insight("week", "warning", Audience("manager", "m1"), {"deal_id": f"SAT{today}"}, {}))
    return out


@pytest.fixture
def only_week(monkeypatch):
    real = list(REGISTRY)
    monkeypatch.setitem(REGISTRY, "week", Detector("week", WeekSpec, every_day, (), "planted weekly rhythm"))
    return {name: REGISTRY[name].spec(enabled=False) for name in real}


def _config(text: str = ""):
    from bot.config import parse_config

    return parse_config(f'timezone = "UTC"\n[calendar]\ncountry = "none"\nlearn_days_off = false\n{text}',
                        source_name="test")


def test_weekend_items_land_in_mondays_digest_under_its_one_cut(only_week):
    """What m1 reads: Monday's digest holds Saturday's, Sunday's and Monday's deals (12) and
    shows 10, the 2 it had no room for come on Tuesday; 28 a week over 5 digests is 5.6 a digest
    day, over the budget of 5. Replaying every calendar day as a digest said 4.3 a day, within."""
    from bot.backtest import DigestSchedule

    end = MON + timedelta(days=27)
    report = backtest(company(), only_week, MON, end, schedule=DigestSchedule.of(_config()))
    shown = Counter(a.at.date() for a in report.alerts if a.reason != "repeat_interval")
    assert {d.isoweekday() for d in shown} == {1, 2, 3, 4, 5}  # nothing is read on a weekend
    assert [shown[MON.date() + timedelta(days=7 * w + k)] for w in range(4) for k in range(5)] == [10, 6, 4, 4, 4] * 4
    load = report.load()["m1"]
    assert (load.items, load.items_per_day, load.held) == (112, 5.6, 8)
    assert not any("SAT" in report.subjects[a.fingerprint] for a in report.alerts)
    # 31 Oct's would wait for a digest after the period; Friday's deals were in Friday's digest
    assert report.unread["week"] == 3
    assert "(never read: 3 insight(s) came up after a digest and went away before the next one: week 3)" in format_text(report)
    [warning] = report.over_budget()
    assert warning.recipient == "m1"
    assert "(112 item(s) over 20 digest days; the digest's limit held back 0.4 more a day)" in format_text(report)
    assert report.to_dict()["digest_days"] == 20 and report.to_dict()["days"] == 28


def test_a_holiday_week_shifts_the_digest_to_the_next_working_day(only_week):
    """Days off Mon 12 - Wed 14 Oct: no digest then; Thursday's carries what still holds (Tue's,
    Wed's and Thu's deals: 12, cut to 10); Saturday's to Monday's deals came up and went away
    without a digest. The report says how many digest days the period had."""
    from bot.backtest import DigestSchedule

    config = _config("days_off = [2026-10-12, 2026-10-13, 2026-10-14]\n")
    end = MON + timedelta(days=27)
    report = backtest(company(), only_week, MON, end, schedule=DigestSchedule.of(config))
    shown = Counter(a.at.date() for a in report.alerts if a.reason != "repeat_interval")
    week2 = [shown[date(2026, 10, d)] for d in range(12, 17)]
    assert week2 == [0, 0, 0, 10, 6]
    assert report.digest_days == 17
    assert report.period_line() == "28 days, 17 digest days (mon-fri, 3 days off of the calendar)"
    assert report.load()["m1"].items == 28 * 3 + 16  # the 12 of Sat 10 - Mon 12 never read
    assert report.unread["week"] == 12 + 3  # and the Saturday-only ones of 10, 17 and 24 Oct
    assert "28 days, 17 digest days (mon-fri, 3 days off of the calendar)" in format_text(report)


def test_cli_counts_digest_days_and_does_not_warn_about_people_nothing_reaches(only_week, tmp_path, capsys):
    """Through the CLI: the report line, and a manager over the budget but without a
    [[recipients]] entry is said to receive nothing, not warned, and fails no CI run."""
    from crm.demo import export_csv

    folder = tmp_path / "crm"
    export_csv(company(), folder)
    config = tmp_path / "config.toml"
    off = "".join(f"[detectors.{name}]\nenabled = false\n" for name in only_week)
    base = (f'timezone = "UTC"\n[calendar]\ncountry = "none"\nlearn_days_off = false\n'
            f'[source]\nkind = "files"\npath = "{folder}"\n{off}')
    config.write_text(base, encoding="utf-8")
    common = ["backtest", "--config", str(config), "--from", "2026-10-05", "--to", "2026-11-01"]
    assert main([*common, "--fail-on-budget"]) == 1  # no [[recipients]]: every manager would read one
    out = capsys.readouterr().out
    assert "28 days, 20 digest days (mon-fri)" in out
    assert "warning: Айгерим Садыкова (m1) is over the daily budget of 5 item(s) a day: 5.6 a day" in out
    config.write_text(base + '[[recipients]]\nid = "boss"\nrole = "director"\n'
                             '[[recipients]]\nid = "m2"\nrole = "manager"\nmanager_id = "m2"\n', encoding="utf-8")
    assert main([*common, "--fail-on-budget", "--format", "json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget"]
    assert budget["over"] == [] and [w["recipient"] for w in budget["no_chat"]] == ["m1"]
    assert main(common) == 0
    out = capsys.readouterr().out
    assert "over the daily budget of 5 item(s) a day: 5.6" not in out
    assert ("1 recipient(s) with items have no chat in [[recipients]] and would receive nothing;"
            " given one, 1 would be over the daily budget:") in out
    assert "    Айгерим Садыкова (m1): 5.6 item(s) a day (over the budget), mostly week" in out


def test_one_digest_a_day_whatever_the_replay_step():
    """Runs every 12h from Friday: Friday's morning run is the digest, its evening run a scan;
    the weekend's runs are scans whose items wait for Monday morning's digest; a weekly run on
    a Saturday moves to Monday."""
    from bot.backtest import DigestSchedule, digest_runs, run_times

    schedule = DigestSchedule.of(_config())
    fri = datetime(2026, 10, 9, 9, 0, tzinfo=UTC)
    runs = run_times(fri, fri + timedelta(days=3, hours=12), timedelta(hours=12))
    assert digest_runs(runs, runs[-1], schedule) == [fri, fri + timedelta(days=3)]
    sat = fri + timedelta(days=1)
    weekly = run_times(sat, sat + timedelta(days=14), timedelta(weeks=1))
    assert digest_runs(weekly, weekly[-1], schedule) == [sat + timedelta(days=2), sat + timedelta(days=9)]


# --- critical alerts sent at once between digests --------------------------------------------

class AlarmSpec(DetectorSpec):
    per_scan: int = 4


def alarms(data, spec, now):
    """Planted: every scan, `per_scan` new critical deals of m1 (amounts 1000, 2000, ...), each
    holding for that scan only."""
    stamp = now.astimezone(UTC).strftime("%m%d%H")
    return [Insight("alarm", "critical", Audience("manager", "m1"), {"deal_id": f"A{stamp}-{j}"},
                    {"amount": 1000.0 * (j + 1)}) for j in range(spec.per_scan)]


@pytest.fixture
def only_alarms(monkeypatch):
    real = list(REGISTRY)
    monkeypatch.setitem(REGISTRY, "alarm", Detector("alarm", AlarmSpec, alarms, (), "planted criticals"))
    return {name: REGISTRY[name].spec(enabled=False) for name in real}


def test_critical_alerts_sent_at_once_between_digests_count_in_the_budget(only_alarms):
    """Scans every 12h, digests on weekday mornings: each weekday m1 gets 3 critical alerts at
    once after the morning scan (the largest; the 4th is in the digest) and 3 after the evening
    scan, 7 a digest day, over the budget of 5. Modelling only the digest said 4 a day, within
    it, and called the evening's alerts never read. Weekend criticals wait, as delivery holds them."""
    from bot.backtest import Criticals, DigestSchedule

    config = _config()
    end = MON + timedelta(days=27)
    common = dict(every=timedelta(hours=12), schedule=DigestSchedule.of(config))
    digest_only = backtest(company(), only_alarms, MON, end, **common)
    assert digest_only.load()["m1"].items == 20 * 4 and digest_only.over_budget() == []

    report = backtest(company(), only_alarms, MON, end, **common, criticals=Criticals.of(config))
    load = report.load()["m1"]
    assert (load.items, load.critical, load.items_per_day) == (20 * 7, 20 * 6, 7.0)
    tue = [a for a in report.alerts if a.at.date() == date(2026, 10, 6)]
    assert sorted((a.at.hour, a.at_once, report.subjects[a.fingerprint]) for a in tue) == [
        (9, False, "deal A100609-0"),  # the smallest waits for the digest, which repeats none of the others
        (9, True, "deal A100609-1"), (9, True, "deal A100609-2"), (9, True, "deal A100609-3"),
        (21, True, "deal A100621-1"), (21, True, "deal A100621-2"), (21, True, "deal A100621-3")]
    assert not [a for a in report.alerts if a.at.isoweekday() > 5]  # the company rests
    assert report.unread["alarm"] < digest_only.unread["alarm"]  # what went out at once was read
    [warning] = report.over_budget()
    text = format_text(report)
    assert ("warning: Айгерим Садыкова (m1) is over the daily budget of 5 item(s) a day: 7 a day (140 item(s) over "
            "20 digest days, 120 of them critical alerts sent at once after a scan)") in text
    assert "and the critical alerts sent at once after a scan" in text
    assert report.to_dict()["recipients"]["m1"]["critical_at_once"] == 120


def test_cli_counts_critical_alerts_unless_they_wait_for_the_digest(only_alarms, tmp_path, capsys):
    from crm.demo import export_csv

    folder = tmp_path / "crm"
    export_csv(company(), folder)
    config = tmp_path / "config.toml"
    off = "".join(f"[detectors.{name}]\nenabled = false\n" for name in only_alarms)
    base = (f'timezone = "UTC"\n[calendar]\ncountry = "none"\nlearn_days_off = false\n'
            f'[source]\nkind = "files"\npath = "{folder}"\n{off}')
    config.write_text(base, encoding="utf-8")
    common = ["backtest", "--config", str(config), "--from", "2026-10-05", "--to", "2026-11-01", "--every", "12h",
              "--fail-on-budget"]
    assert main(common) == 1
    assert "7 a day (140 item(s) over 20 digest days, 120 of them critical alerts sent at once" in capsys.readouterr().out
    config.write_text(base + "[delivery]\ncritical_immediately = false\n", encoding="utf-8")
    assert main(common) == 0
    assert "every recipient within the daily budget of 5 item(s) a day ([delivery] daily_budget)" in \
        capsys.readouterr().out
