"""Temporary failures at start (the chat API or the state database unreachable) are retried
with backoff and end in exit 75 (EX_TEMPFAIL, systemd tries again later), not exit 2, which
the unit treats as a config problem and never restarts."""
from __future__ import annotations

import argparse

import pytest

from bot.app import run
from bot.channels.base import PermanentFailure, RetryLater
from tests.channels.conftest import free_port

TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.setattr("bot.app.START_BACKOFF", (0.0, 0.0, 0.0))
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", TOKEN)
    f = tmp_path / "config.toml"
    f.write_text(f'[state]\nurl = "sqlite:///state.db"\n[telegram]\nenabled = true\n'
                 f'base_url = "http://127.0.0.1:{free_port()}"\n', encoding="utf-8")
    return f


def test_an_unreachable_telegram_api_is_retried_then_exit_75(config_file, capsys):
    assert run(argparse.Namespace(config=str(config_file), log_level="ERROR")) == 75
    err = capsys.readouterr().err
    assert "telegram unreachable" in err and "tried 4 times; exit 75" in err
    assert TOKEN.split(":")[1] not in err and "Traceback" not in err


def test_a_chat_api_that_comes_back_is_started_after_all(config_file, monkeypatch):
    calls = []

    async def serve(config, **kw):
        calls.append(1)
        if len(calls) < 3:
            raise RetryLater("telegram unreachable: ConnectError")
    monkeypatch.setattr("bot.app.serve", serve)
    assert run(argparse.Namespace(config=str(config_file), log_level="ERROR")) == 0
    assert len(calls) == 3


def test_a_refused_token_is_not_retried(config_file, monkeypatch, capsys):
    calls = []

    async def serve(config, **kw):
        calls.append(1)
        raise PermanentFailure("Telegram rejected the bot token: check the environment variable X")
    monkeypatch.setattr("bot.app.serve", serve)
    assert run(argparse.Namespace(config=str(config_file), log_level="ERROR")) == 2
    assert calls == [1] and "rejected the bot token" in capsys.readouterr().err


@pytest.mark.parametrize("message, temporary", [
    ("connection failed: Connection refused\n\tIs the server running on that host?", True),
    ("could not translate host name \"db\" to address: Name or service not known", True),
    ("connection timeout expired", True),
    ("FATAL:  password authentication failed for user \"bot\"", False),
    ("FATAL:  database \"crm\" does not exist", False),
])
def test_which_database_errors_are_worth_waiting_for(message, temporary):
    from sqlalchemy.exc import OperationalError

    from bot.app import _temporary_db_error

    assert _temporary_db_error(OperationalError("connect", {}, Exception(message)),
                               "postgresql+psycopg://bot@db/crm") is temporary
    assert _temporary_db_error(OperationalError("connect", {}, Exception("unable to open database file")),
                               "sqlite:////nope/state.db") is False
