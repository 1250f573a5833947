"""Scheduler jobs and `crm-pulse run`: scans, digests in each person's time, one scanner, tokens."""
import argparse
import asyncio
import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

from bot.app import missing_secrets, run, serve
from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs, build_scheduler, digest_groups

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)


def test_run_without_tokens_names_the_variable_and_exits_2(tmp_path, config_toml, capsys, monkeypatch):
    monkeypatch.delenv("CRM_PULSE_TELEGRAM_TOKEN", raising=False)
    monkeypatch.delenv("CRM_PULSE_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("CRM_PULSE_SLACK_APP_TOKEN", raising=False)
    f = tmp_path / "config.toml"
    f.write_text(config_toml + "\n[telegram]\nenabled = true\n[slack]\nenabled = true\n", encoding="utf-8")
    code = run(argparse.Namespace(config=str(f), log_level="ERROR"))
    err = capsys.readouterr().err
    assert code == 2
    assert "CRM_PULSE_TELEGRAM_TOKEN is not set" in err and "@BotFather" in err
    assert "CRM_PULSE_SLACK_BOT_TOKEN is not set" in err and "slack-app-manifest.yml" in err
    assert "CRM_PULSE_SLACK_APP_TOKEN is not set" in err
    assert "Traceback" not in err


def test_tokens_present_nothing_missing_and_never_printed(chat_config, monkeypatch):
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", "123:SECRET")
    monkeypatch.setenv("CRM_PULSE_SLACK_BOT_TOKEN", "xoxb-SECRET")
    monkeypatch.setenv("CRM_PULSE_SLACK_APP_TOKEN", "xapp-SECRET")
    assert missing_secrets(chat_config) == []


def test_bad_config_exits_2_with_the_problem(tmp_path, capsys):
    f = tmp_path / "config.toml"
    f.write_text('languag = "ru"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(f), log_level="ERROR")) == 2
    assert "languag: unknown key (did you mean `language`?)" in capsys.readouterr().err


def test_digest_jobs_follow_each_persons_time_and_zone(config_toml):
    cfg = parse_config(config_toml.replace('id = "boris"', 'id = "boris"\ndigest_time = "08:30"\ntimezone = "Europe/Moscow"'))
    groups = digest_groups(cfg)
    assert groups[("08:30", "Europe/Moscow")] == ["boris"]
    assert sorted(groups[("09:00", "Asia/Almaty")]) == ["anna", "dina", "sales-team"]
    noop = lambda *a: None
    sched = build_scheduler(cfg, SimpleNamespace(run_scan=noop, scheduled_digest=noop, run_weekly=noop))
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"scan", "digest 08:30 Europe/Moscow", "digest 09:00 Asia/Almaty", "weekly"}
    moscow = jobs["digest 08:30 Europe/Moscow"].trigger
    assert str(moscow.timezone) == "Europe/Moscow" and "hour='8'" in str(moscow) and "minute='30'" in str(moscow)
    assert all(j.max_instances == 1 for j in jobs.values())


async def test_scan_then_digest_delivers_and_records(chat_config, sqlite_store, scenario):
    box = Outbox(sqlite_store)
    jobs = PulseJobs(chat_config, sqlite_store, box, clock=lambda: NOW,
                     scan_fn=lambda cfg, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    summary = await jobs.run_scan()
    assert "7" in summary
    critical = {r.recipient for r in box.rows()}
    assert critical == {"boris", "dina", "sales-team"}  # escalated deal to Boris+Dina, the drop to Dina+team
    report = await jobs.run_digest(["anna", "boris"])
    assert report.sent["anna"] == [scenario[0].fingerprint]
    assert scenario[1].fingerprint in report.sent["boris"]


async def test_weekly_report_scans_when_stale_and_goes_to_directors_and_channels_only(chat_config, sqlite_store,
                                                                                   scenario):
    box = Outbox(sqlite_store)
    jobs = PulseJobs(chat_config, sqlite_store, box, clock=lambda: NOW,
                     scan_fn=lambda cfg, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    report = await jobs.run_weekly()  # no scan yet: it runs one first
    assert sqlite_store.latest_scan() is not None
    assert set(report.sent) == {"dina", "sales-team"}
    assert report.sent["dina"] == [scenario[6].fingerprint]  # loss reasons only
    assert box.wake.is_set()


async def test_only_one_scan_at_a_time(chat_config, store, scenario):
    """Two bot processes (two engines on PostgreSQL: two sessions) share one state."""
    from bot.state import StateStore

    gate = threading.Event()

    def slow_scan(cfg, now):
        gate.wait(5)
        return SimpleNamespace(insights=scenario, data=None, skipped={})
    other = StateStore.open(store.engine.url.render_as_string(hide_password=False), prefix=store.prefix)
    a = PulseJobs(chat_config, store, Outbox(store), clock=lambda: NOW, scan_fn=slow_scan, holder="p1")
    b = PulseJobs(chat_config, other, Outbox(other), clock=lambda: NOW, scan_fn=slow_scan, holder="p2")
    first = asyncio.create_task(a.run_scan())
    await asyncio.sleep(0.1)
    assert "already running" in await b.run_scan()
    gate.set()
    assert "Scan done" in await first
    other.close()


async def test_a_failing_data_source_is_reported_not_raised(chat_config, sqlite_store):
    def broken(cfg, now):
        raise ValueError("deals.csv, row 57, column created_at: '31.02.2026' is not a date")
    jobs = PulseJobs(chat_config, sqlite_store, Outbox(sqlite_store), clock=lambda: NOW, scan_fn=broken)
    assert "row 57" in await jobs.run_scan()
    assert sqlite_store.latest_scan() is None


async def test_serve_runs_scan_and_sends_through_the_channels(tmp_path, config_toml, scenario, fake_channel):
    # serve() runs on the wall clock: no quiet hours, or the director's alert waits whenever
    # the suite happens to run in the evening in Almaty
    quiet_free = config_toml.replace('quiet_hours = "21:00-08:00"\n', "")
    cfg = parse_config(quiet_free + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[telegram]\nenabled = true\n',
                       base_dir=tmp_path)
    tg = fake_channel("telegram")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": tg}, catch_up=False,  # digests: below
                                     scan_fn=lambda c, now: SimpleNamespace(insights=scenario, data=None, skipped={})))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len({m.address for m in tg.delivered}) < 3:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)
    assert {m.address for m in tg.delivered} == {"102", "900", "-100500"}  # critical items at once, nobody else


def test_unreachable_state_database_is_one_line_and_exit_75_after_retrying(tmp_path, capsys, monkeypatch):
    """Unreachable is temporary (the database may start after the bot): retried, then EX_TEMPFAIL
    so systemd tries again later, where exit 2 (a config problem) would leave the bot down."""
    monkeypatch.setattr("bot.app.START_BACKOFF", (0.0, 0.0))
    monkeypatch.setenv("MY_STATE", "postgresql+psycopg://bot:hunter2@127.0.0.1:1/nope")
    f = tmp_path / "config.toml"
    f.write_text('[state]\nurl_env = "MY_STATE"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(f), log_level="ERROR")) == 75
    err = capsys.readouterr().err
    assert "cannot open the state database postgresql+psycopg://bot:***@127.0.0.1:1/nope" in err
    assert "tried 3 times; exit 75" in err
    assert "hunter2" not in err and "Traceback" not in err


async def test_the_digest_job_knows_what_the_scan_could_not_check(chat_config, sqlite_store):
    """A scan with no leads table: Anna (who asked to hear quiet days) is not told "all quiet"."""
    anna = chat_config.recipient("anna").model_copy(update={"all_quiet": True})
    config = chat_config.model_copy(update={"recipients": [anna if r.id == "anna" else r for r in chat_config.recipients]})
    box = Outbox(sqlite_store)
    jobs = PulseJobs(config, sqlite_store, box, clock=lambda: NOW,
                     scan_fn=lambda cfg, now: SimpleNamespace(insights=[], data=None, partial={},
                                                              skipped={"lead_sla": "needs leads.csv (table not provided)"}))
    await jobs.run_scan()
    assert jobs.latest_checks is not None and list(jobs.latest_checks.skipped) == ["lead_sla"]
    await jobs.run_digest(["anna"])
    [text] = [r.payload["text"] for r in box.rows(recipient="anna") if r.channel == "telegram"]
    assert "всё спокойно" not in text and "нет таблицы leads.csv" in text
