"""No digest on the company's days off: the digest due on an official holiday or a [calendar]
day off is not sent and its items go out in the next working day's digest; catch-up at start
does not send it; a transferred working Saturday gets its digest; the weekly report due on a
day off goes out on the next working day. One company calendar, whatever a recipient's zone."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs, build_scheduler
from bot.send_days import schedule_line

UTC = timezone.utc
ALMATY = timezone(timedelta(hours=5))  # Asia/Almaty's offset in 2027
MOSCOW = timezone(timedelta(hours=3))
DIGEST_TARGETS = {"anna", "boris", "dina", "sales-team"}
NO_CRITICAL = "\n[delivery]\ncritical_immediately = false\n"


def _at(y, m, d, hh=9, mm=0, tz=ALMATY):
    return datetime(y, m, d, hh, mm, tzinfo=tz).astimezone(UTC)


def _bot(config, store, scenario, at):
    """PulseJobs on a settable clock, and the real APScheduler jobs build_scheduler makes for them."""
    clock = SimpleNamespace(now=at)
    jobs = PulseJobs(config, store, Outbox(store, clock=lambda: clock.now), clock=lambda: clock.now,
                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    sched = build_scheduler(config, jobs)
    return jobs, clock, {j.id: j for j in sched.get_jobs()}


async def _fire(job):
    """Run a scheduled job as APScheduler would: its function with its arguments."""
    return await job.func(*job.args, **job.kwargs)


def _digest_days(store, tid):
    return sorted({r.dedup_key.split(":")[2][:10] for r in Outbox(store).rows(recipient=tid)
                   if r.dedup_key.startswith(f"digest:{tid}:")})


async def test_the_new_year_holiday_digest_is_skipped_and_the_next_working_day_delivers_it(
        config_toml, sqlite_store, scenario, caplog):
    config = parse_config(config_toml + NO_CRITICAL)
    jobs, clock, sched = _bot(config, sqlite_store, scenario, _at(2027, 1, 1))  # Fri 1 Jan 2027, KZ holiday
    digest = sched["digest 09:00 Asia/Almaty"]
    with caplog.at_level(logging.INFO, logger="crm_pulse.scheduler"):
        assert await _fire(digest) is None
        clock.now = _at(2027, 1, 1, 9, 0) + timedelta(minutes=1)
        await _fire(digest)  # the job again the same day (misfire, a second group): no second line
    assert Outbox(sqlite_store).rows() == []
    said = [r.getMessage() for r in caplog.records if "day off" in r.getMessage()]
    assert said == ["1 Jan 2027 is a day off of the company calendar (KZ: New Year's Day): no digest; "
                    "the next one goes out on Tue 5 Jan 2027"]
    for day in (_at(2027, 1, 2), _at(2027, 1, 3), _at(2027, 1, 4)):  # Sat, Sun, Mon (observed holiday)
        clock.now = day
        await _fire(digest)
    assert Outbox(sqlite_store).rows() == []

    clock.now = _at(2027, 1, 5)  # Tue 5 Jan: the first working day
    report = await _fire(digest)
    assert set(report.sent) == DIGEST_TARGETS
    assert report.sent["anna"] == [scenario[0].fingerprint]  # the item that waited over the holiday
    assert {scenario[1].fingerprint, scenario[2].fingerprint} <= set(report.sent["boris"])
    assert report.held == {t: [] for t in DIGEST_TARGETS}  # nothing the log held back, nothing lost
    for tid in DIGEST_TARGETS:
        assert _digest_days(sqlite_store, tid) == ["2027-01-05"], tid


async def test_catch_up_at_start_sends_no_holiday_digest(config_toml, sqlite_store, scenario):
    config = parse_config(config_toml + NO_CRITICAL)
    jobs, _, _ = _bot(config, sqlite_store, scenario, _at(2027, 1, 7, 13, 0))  # Thu 7 Jan: Christmas (KZ)
    assert await jobs.catch_up_digests() == []
    assert Outbox(sqlite_store).rows() == []
    restarted, _, _ = _bot(config, sqlite_store, scenario, _at(2027, 1, 8, 13, 0))  # Fri 8 Jan: a working day
    assert set(await restarted.catch_up_digests()) == DIGEST_TARGETS
    assert _digest_days(sqlite_store, "anna") == ["2027-01-08"]


async def test_a_configured_day_off_is_a_day_off_too(config_toml, sqlite_store, scenario):
    config = parse_config(config_toml + NO_CRITICAL + '\n[calendar]\ndays_off = ["2026-12-31"]\n')
    jobs, _, sched = _bot(config, sqlite_store, scenario, _at(2026, 12, 31))
    assert await _fire(sched["digest 09:00 Asia/Almaty"]) is None
    assert await jobs.catch_up_digests() == []
    assert Outbox(sqlite_store).rows() == []


async def test_a_transferred_working_saturday_gets_its_digest(config_toml, sqlite_store, scenario, caplog):
    moscow = config_toml.replace('timezone = "Asia/Almaty"', 'timezone = "Europe/Moscow"') + NO_CRITICAL
    config = parse_config(moscow)
    # Sat 20 Feb 2027 is worked in Russia (for Mon 22 Feb): the digest job fires on it
    jobs, clock, sched = _bot(config, sqlite_store, scenario, _at(2027, 2, 19, 12, 0, tz=MOSCOW))
    digest = sched["digest 09:00 Europe/Moscow"]
    assert digest.trigger.get_next_fire_time(None, clock.now) == _at(2027, 2, 20, tz=MOSCOW)
    # a schedule of chosen weekdays does not know which of them the Saturday stands for
    mwf, _, _ = _bot(parse_config(moscow + '\n[schedule]\ndigest_days = "mon,wed,fri"\n'), sqlite_store, scenario,
                     _at(2027, 2, 20, 12, 0, tz=MOSCOW))
    assert await mwf.catch_up_digests() == []
    clock.now = _at(2027, 2, 20, 12, 0, tz=MOSCOW)  # the bot was down at 09:00: caught up like any working day
    assert set(await jobs.catch_up_digests()) == DIGEST_TARGETS
    assert _digest_days(sqlite_store, "anna") == ["2027-02-20"]
    with caplog.at_level(logging.INFO, logger="crm_pulse.scheduler"):
        clock.now = _at(2027, 2, 27, tz=MOSCOW)  # an ordinary Saturday: no digest, nothing to explain
        assert await _fire(digest) is None
    assert not [r for r in caplog.records if "day off" in r.getMessage()]
    assert _digest_days(sqlite_store, "anna") == ["2027-02-20"]


async def test_recipients_in_other_zones_keep_the_company_calendar(config_toml, sqlite_store, scenario):
    cfg = parse_config(config_toml.replace('id = "boris"', 'id = "boris"\ntimezone = "Europe/Moscow"') + NO_CRITICAL)
    # Mon 22 Mar 2027: Nauryz in Kazakhstan (the company), a working day in Russia (Boris's zone)
    jobs, clock, sched = _bot(cfg, sqlite_store, scenario, _at(2027, 3, 22, tz=MOSCOW))
    assert await _fire(sched["digest 09:00 Europe/Moscow"]) is None
    # Tue 23 Feb 2027: a Russian holiday, a working day of the company in Almaty
    clock.now = _at(2027, 2, 23, tz=MOSCOW)
    report = await _fire(sched["digest 09:00 Europe/Moscow"])
    assert list(report.sent) == ["boris"]


def test_the_weekly_report_due_on_a_holiday_monday_goes_out_on_the_next_working_day(config_toml, sqlite_store,
                                                                                    caplog):
    config = parse_config(config_toml)
    _, _, sched = _bot(config, sqlite_store, [], _at(2027, 3, 18))
    trigger = sched["weekly"].trigger
    # Mon 22 Mar 2027 is Nauryz, 23 Mar too and 24 Mar its observed day off: Thursday 10:00
    with caplog.at_level(logging.INFO, logger="crm_pulse.scheduler"):
        assert trigger.get_next_fire_time(None, _at(2027, 3, 18)) == _at(2027, 3, 25, 10, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "the weekly report due Mon 22 Mar 2027 10:00 goes out on Thu 25 Mar 2027: 22 Mar 2027 is a day off of the "
        "company calendar (KZ: Nowruz Holiday)"]  # the earlier moved Mondays (8, 15 Mar) are past: not said
    # a restart during the holiday still finds the moved report
    assert trigger.get_next_fire_time(None, _at(2027, 3, 23, 15, 0)) == _at(2027, 3, 25, 10, 0)
    # after it, the next Monday as usual
    assert trigger.get_next_fire_time(_at(2027, 3, 25, 10, 0), _at(2027, 3, 25, 10, 0)) == _at(2027, 3, 29, 10, 0)
    # an ordinary Monday keeps its report
    assert trigger.get_next_fire_time(None, _at(2027, 2, 26)) == _at(2027, 3, 1, 10, 0)


def test_the_next_digest_is_today_until_its_time_and_skips_days_off(config_toml):
    config = parse_config(config_toml)
    line = schedule_line(config, _at(2026, 12, 31, 12, 0))  # after Thursday's digest
    assert line.endswith("next: Tue 5 Jan 2027 09:00 (none on 1 Jan 2027, 4 Jan 2027: days off of the "
                         "company calendar)")
    assert schedule_line(config, _at(2026, 12, 30, 8, 0)).endswith("next: Wed 30 Dec 2026 09:00")


def test_cron_weekdays_count_as_cron_counts_them(config_toml, sqlite_store):
    """"0 10 * * 1" is Monday in cron (APScheduler's own numbering would make it Tuesday)."""
    config = parse_config(config_toml + '\n[schedule]\nscan = "0 7 * * 1-5"\nweekly_report = "30 9 * * 0"\n')
    _, _, sched = _bot(config, sqlite_store, [], _at(2027, 2, 26, 12, 0))  # Friday noon
    assert sched["scan"].trigger.get_next_fire_time(None, _at(2027, 2, 26, 12, 0)) == _at(2027, 3, 1, 7, 0)  # Mon
    assert sched["weekly"].trigger.get_next_fire_time(None, _at(2027, 2, 26, 12, 0)) == _at(2027, 2, 28, 9, 30)  # Sun
    default = parse_config(config_toml)
    _, _, sched = _bot(default, sqlite_store, [], _at(2027, 2, 26, 12, 0))
    assert sched["weekly"].trigger.get_next_fire_time(None, _at(2027, 2, 26, 12, 0)) == _at(2027, 3, 1, 10, 0)  # Mon


def _tiny_export(tmp_path):
    crm = tmp_path / "crm"
    crm.mkdir()
    (crm / "managers.csv").write_text("manager_id,name\nm1,Айгерим\n", encoding="utf-8")
    (crm / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\nd1,m1,Lead,open,2026-12-01T09:00:00Z\n",
                                   encoding="utf-8")
    (crm / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,Lead,2026-12-01T09:00:00Z\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('timezone = "Asia/Almaty"\n[source]\npath = "crm"\n[[recipients]]\nid = "aigerim"\n'
                      'role = "manager"\nmanager_id = "m1"\n', encoding="utf-8")
    return config


def test_check_config_and_preview_name_the_next_digest_day(tmp_path, capsys):
    from bot.cli import main

    config = _tiny_export(tmp_path)
    assert main(["check-config", str(config), "--now", "2026-12-31T12:00:00+05:00"]) == 0
    out = capsys.readouterr().out
    assert ("digests: mon-fri at 09:00 Asia/Almaty, none on days off of the calendar; next: Tue 5 Jan 2027 09:00 "
            "(none on 1 Jan 2027, 4 Jan 2027: days off of the company calendar)") in out
    assert main(["preview", "--config", str(config), "--recipient", "aigerim", "--no-state",
                 "--now", "2027-01-04T08:00:00+05:00"]) == 0
    err = capsys.readouterr().err
    assert ("4 Jan 2027 is a day off of the company calendar (KZ: New Year's Day (observed)): the scheduler sends "
            "no digest today; the next one goes out on Tue 5 Jan 2027") in err
