"""Critical alerts sent right after a scan rest with the company: one found on a day off of the
calendar (or a weekend outside digest_days) is not sent that day; it stays due and goes out on
the next working day from its start of work (or in its digest). An admin can opt in to alerts on
days off; an ordinary working day is unchanged."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs, build_scheduler

UTC = timezone.utc
ALMATY = timezone(timedelta(hours=5))  # Asia/Almaty's offset in 2026-2027
OPT_IN = "\n[delivery]\ncritical_on_days_off = true\n"


def _at(y, m, d, hh=12, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=ALMATY).astimezone(UTC)


def _bot(config, store, scenario, at):
    clock = SimpleNamespace(now=at)
    jobs = PulseJobs(config, store, Outbox(store, clock=lambda: clock.now), clock=lambda: clock.now,
                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    return jobs, clock, {j.id: j for j in build_scheduler(config, jobs).get_jobs()}


def _critical_days(store, tid):
    """The local (Almaty) days on which `tid` was sent a critical alert at once."""
    return sorted({datetime.fromisoformat(r.dedup_key.split(":", 3)[3].rsplit(":", 1)[0]).astimezone(ALMATY)
                   .strftime("%Y-%m-%d %H:%M") for r in Outbox(store).rows(recipient=tid)
                   if r.dedup_key.startswith(f"critical:{tid}:")})


async def test_a_critical_found_on_new_year_waits_for_the_first_working_morning(config_toml, sqlite_store,
                                                                               scenario, caplog):
    escalated = scenario[2]  # Boris's deal, escalated: critical, to Boris and the director Dina
    assert escalated.severity == "critical"
    jobs, clock, _ = _bot(parse_config(config_toml), sqlite_store, scenario, _at(2027, 1, 1))  # Fri, KZ holiday
    with caplog.at_level(logging.INFO, logger="crm_pulse.delivery"):
        await jobs.run_scan()
    assert _critical_days(sqlite_store, "boris") == [] and _critical_days(sqlite_store, "dina") == []
    assert sqlite_store.log_entry("boris", escalated.fingerprint) is None  # still due: nothing recorded
    assert any("1 Jan 2027 is a day off of the company calendar (KZ: New Year's Day); they go out from "
               "Tue 5 Jan 2027 09:00 or in that day's digest" in r.getMessage() for r in caplog.records)
    # Sat, Sun, Mon 4 Jan (observed holiday), then the early hours of Tue 5 Jan: still waiting
    for at in (_at(2027, 1, 2), _at(2027, 1, 3), _at(2027, 1, 4), _at(2027, 1, 5, 0, 30), _at(2027, 1, 5, 8, 30)):
        clock.now = at
        await jobs.run_scan()
    assert Outbox(sqlite_store).rows() == []

    clock.now = _at(2027, 1, 5, 9, 0)  # the start of work on the first working day
    await jobs.run_scan()
    assert _critical_days(sqlite_store, "boris") == ["2027-01-05 09:00"]
    assert _critical_days(sqlite_store, "dina") == ["2027-01-05 09:00"]
    assert sqlite_store.log_entry("boris", escalated.fingerprint).send_count == 1


async def test_a_digest_before_the_start_of_work_carries_it(config_toml, sqlite_store, scenario):
    escalated = scenario[2]
    config = parse_config(config_toml + '\n[schedule]\ndigest_time = "08:00"\n')
    jobs, clock, sched = _bot(config, sqlite_store, scenario, _at(2027, 1, 1))
    await jobs.run_scan()
    clock.now = _at(2027, 1, 5, 8, 0)  # the digest scans again (the holiday's scan is old) and sends it
    digest = sched["digest 08:00 Asia/Almaty"]
    report = await digest.func(*digest.args)
    assert (escalated.fingerprint, "first") in report.reasons["boris"]
    assert escalated.fingerprint in report.sent["boris"]
    assert _critical_days(sqlite_store, "boris") == []  # in the digest, not as a separate alert


async def test_an_admin_can_opt_in_to_alerts_on_days_off(config_toml, sqlite_store, scenario):
    jobs, _, _ = _bot(parse_config(config_toml + OPT_IN), sqlite_store, scenario, _at(2027, 1, 1))
    await jobs.run_scan()
    assert _critical_days(sqlite_store, "boris") == ["2027-01-01 12:00"]
    assert _critical_days(sqlite_store, "dina") == ["2027-01-01 12:00"]


async def test_a_weekend_waits_for_monday_and_a_working_day_is_unchanged(config_toml, sqlite_store, scenario):
    jobs, clock, _ = _bot(parse_config(config_toml), sqlite_store, scenario, _at(2026, 12, 5))  # Saturday
    await jobs.run_scan()
    clock.now = _at(2026, 12, 7, 8, 0)  # Monday before work
    await jobs.run_scan()
    assert _critical_days(sqlite_store, "boris") == []
    clock.now = _at(2026, 12, 7, 9, 15)
    await jobs.run_scan()
    assert _critical_days(sqlite_store, "boris") == ["2026-12-07 09:15"]

    # Wed 2 Dec 2026 at 03:00 (after a working Tuesday): at once, as before; Dina's quiet hours hold hers
    fresh = [i for i in scenario]
    fresh[2] = type(fresh[2]).from_dict({**fresh[2].to_dict(), "subject": {"deal_id": "D-NIGHT"},
                                        "fingerprint": "night"})
    jobs, clock, _ = _bot(parse_config(config_toml), sqlite_store, fresh, _at(2026, 12, 2, 3, 0))
    await jobs.run_scan()
    assert "2026-12-02 03:00" in _critical_days(sqlite_store, "boris")
    assert "2026-12-02 03:00" not in _critical_days(sqlite_store, "dina")


def test_check_config_says_when_critical_alerts_go_out(tmp_path, capsys):
    from bot.cli import main
    from tests.bot.test_digest_days_off import _tiny_export

    config = _tiny_export(tmp_path)
    assert main(["check-config", str(config), "--now", "2026-12-31T12:00:00+05:00"]) == 0
    assert ("critical alerts: at once after each scan, never in a person's quiet_hours; on days off and rest days "
            "without a digest they wait for the next working day's 09:00 or its digest") in capsys.readouterr().out
    config.write_text(config.read_text(encoding="utf-8") + OPT_IN, encoding="utf-8")
    assert main(["check-config", str(config), "--now", "2026-12-31T12:00:00+05:00"]) == 0
    assert "critical alerts: at once after each scan, days off too" in capsys.readouterr().out
