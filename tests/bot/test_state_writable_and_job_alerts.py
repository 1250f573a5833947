"""A state the bot cannot write is refused at start with a clear line (not every scan failing in
the log while the bot stays up sending nothing), and a scheduled job that fails tells the admins
once per outage, not every run."""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from bot.app import run, serve
from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs
from bot.state import StateStore
from tests.bot.conftest import NOW


def _read_only(path) -> "callable":
    """Make `path` read-only even for root (chattr +i) or by mode bits; returns the undo."""
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make a file read-only here")
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    os.chmod(path, 0o444)
    return lambda: os.chmod(path, 0o644)


def _query_only(store: StateStore) -> None:
    """Every connection of this store refuses writes from now on (a read-only database)."""
    @sa.event.listens_for(store.engine, "connect")
    def _ro(dbapi_conn, _rec):
        dbapi_conn.execute("PRAGMA query_only=ON")
    store.engine.dispose()


def test_a_read_only_state_file_is_refused_at_start(tmp_path, capsys, monkeypatch):
    async def started(*a, **kw):  # had it started, it would run until stopped: say so and return
        print("the bot started", file=__import__("sys").stderr)
    monkeypatch.setattr("bot.app.serve", started)
    db = tmp_path / "state.db"
    StateStore.open(f"sqlite:///{db}").close()  # an existing, current state file
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[state]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    undo = _read_only(db)
    try:
        code = run(argparse.Namespace(config=str(cfg), log_level="ERROR"))
    finally:
        undo()
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"cannot write to the state database sqlite:///{db}" in err
    assert "readonly" in err and "writable" in err and "Traceback" not in err


def test_check_writable_passes_on_a_normal_store_and_leaves_nothing(sqlite_store):
    sqlite_store.check_writable()
    with sqlite_store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(sqlite_store.t["locks"])).scalar() == 0


def test_check_writable_refuses_a_read_only_database(sqlite_store):
    _query_only(sqlite_store)
    with pytest.raises(sa.exc.OperationalError, match="readonly|read-only"):
        sqlite_store.check_writable()


class Alerts:
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def __call__(self, texts: dict[str, str]) -> None:
        self.sent.append(texts)


async def test_a_failing_scan_tells_admins_once_and_again_when_it_works(chat_config, sqlite_store, scenario):
    broken = {"on": True}

    def scan(cfg, now):
        if broken["on"]:
            raise FileNotFoundError("deals.csv: no such file in /data/crm")
        return SimpleNamespace(insights=scenario, data=None, skipped={})

    jobs = PulseJobs(chat_config, sqlite_store, Outbox(sqlite_store), clock=lambda: NOW, scan_fn=scan)
    jobs.alert = alerts = Alerts()
    for _ in range(4):  # four hourly scans fail: one message
        assert "Scan failed" in await jobs.run_scan()
    assert len(alerts.sent) == 1
    assert "deals.csv" in alerts.sent[0]["en"] and "will not repeat" in alerts.sent[0]["en"]
    assert "не удалась" in alerts.sent[0]["ru"]
    broken["on"] = False
    assert "Scan done" in await jobs.run_scan()
    assert len(alerts.sent) == 2 and "works again" in alerts.sent[1]["en"]
    await jobs.run_scan()
    assert len(alerts.sent) == 2  # working scans say nothing
    broken["on"] = True
    await jobs.run_scan()
    assert len(alerts.sent) == 3  # a new outage is told again


async def test_a_state_that_turns_read_only_fails_scans_and_digests_with_one_alert_each(chat_config, sqlite_store,
                                                                                      scenario):
    jobs = PulseJobs(chat_config, sqlite_store, Outbox(sqlite_store), clock=lambda: NOW,
                     scan_fn=lambda cfg, now: SimpleNamespace(insights=scenario, data=None, skipped={}))
    jobs.alert = alerts = Alerts()
    await jobs.run_scan()
    _query_only(sqlite_store)
    for _ in range(3):
        assert "Scan failed" in await jobs.run_scan()  # the bot keeps running, the job does not raise
        assert await jobs.run_digest(["anna", "boris"]) is None
    assert [a["en"].split(" failed")[0] for a in alerts.sent] == ["⚠️ crm-pulse: the scheduled CRM scan",
                                                                   "⚠️ crm-pulse: sending the digests"]
    assert all("readonly" in a["en"] for a in alerts.sent)


async def test_serve_sends_the_alert_to_admins_through_the_chats(tmp_path, config_toml, fake_channel, monkeypatch):
    monkeypatch.setenv("CRM_DB_URL", "postgresql+psycopg://crm:Pa55w0rd-Xq9@db.internal/crm")
    cfg = parse_config(config_toml + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[telegram]\nenabled = true\n'
                       '[slack]\nenabled = true\n[source]\nkind = "sql"\nurl_env = "CRM_DB_URL"\n'
                       '[source.tables]\nmanagers = "m"\ndeals = "d"\nstage_history = "h"\n', base_dir=tmp_path)
    from bot.logsafe import register_config_secrets, reset_logging

    register_config_secrets(cfg)
    tg, sl = fake_channel("telegram"), fake_channel("slack")
    stop = asyncio.Event()

    def scan(c, now):
        raise ConnectionError("connection to postgresql+psycopg://crm:Pa55w0rd-Xq9@db.internal/crm refused")

    try:
        task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": tg, "slack": sl}, scan_fn=scan,
                                         catch_up=False))  # the same whatever the hour
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tg.delivered and sl.delivered):
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 15)
    finally:
        reset_logging()
    assert [m.address for m in tg.delivered] == ["900"]  # Dina, the admin director, on Telegram
    assert [m.address for m in sl.delivered] == ["UADMIN"]  # root, the admin, on Slack
    said = tg.delivered[0].payload["text"]
    assert "проверка CRM по расписанию не удалась" in said and "db.internal" in said
    assert "Pa55w0rd" not in said + str(sl.delivered[0].payload)


async def test_the_scan_failure_reply_and_alert_hold_no_password(chat_config, sqlite_store):
    def scan(cfg, now):
        raise ConnectionError("could not connect to postgresql://crm:Pa55w0rd-Xq9@db.internal:5432/crm")

    jobs = PulseJobs(chat_config, sqlite_store, Outbox(sqlite_store), clock=lambda: NOW, scan_fn=scan)
    jobs.alert = alerts = Alerts()
    reply = await jobs.run_scan()  # what an admin's /scan gets back in the chat
    assert "db.internal" in reply and "Pa55w0rd" not in reply
    assert alerts.sent and "Pa55w0rd" not in str(alerts.sent)
