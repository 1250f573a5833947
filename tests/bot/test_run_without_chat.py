"""`run` with no chat enabled refuses to start, as the docs say, instead of "sending" to its own
stdout and recording those sends in the notification log (which then held the same items back
for days once Telegram was switched on)."""
from __future__ import annotations

import argparse

from bot.app import run
from bot.state import StateStore


def test_run_with_no_chat_enabled_refuses_and_records_nothing(tmp_path, capsys, monkeypatch):
    started = []

    async def serve(*a, **kw):
        started.append(True)
    monkeypatch.setattr("bot.app.serve", serve)
    (tmp_path / "export").mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text('[source]\npath = "export"\n[state]\nurl = "sqlite:///state.db"\n'
                   '[telegram]\nenabled = false\ntoken_env = "ACME_TG"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(cfg), log_level="ERROR")) == 2
    err = capsys.readouterr().err
    assert "cannot start: no chat is enabled" in err and "ACME_TG" in err and "crm-pulse demo" in err
    assert started == []
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.log_entries("anyone") == {} and store.latest_scan() is None
    finally:
        store.close()


def test_run_with_a_chat_enabled_gets_past_the_check(tmp_path, capsys, monkeypatch):
    started = []

    async def serve(*a, **kw):
        started.append(True)
    monkeypatch.setattr("bot.app.serve", serve)
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8")
    cfg = tmp_path / "config.toml"
    cfg.write_text('[state]\nurl = "sqlite:///state.db"\n[telegram]\nenabled = true\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(cfg), log_level="ERROR")) == 0
    assert started == [True]
