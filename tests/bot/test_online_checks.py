"""`check-config --online` and `send-test` against the fake Telegram and Slack servers, run
through bot.cli.main with the real python-telegram-bot and slack_sdk clients."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot.cli import main
from tests.channels.conftest import free_port
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

TG_TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"


class Servers:
    """The fake APIs on an event loop in a background thread (the CLI runs its own loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.telegram = self._run(FakeTelegramServer(token=TG_TOKEN).start())
        self.slack = self._run(FakeSlackServer().start())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self._run(self.telegram.stop())
        self._run(self.slack.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture(scope="module")
def servers():
    s = Servers()
    yield s
    s.close()


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", TG_TOKEN)
    monkeypatch.setenv("CRM_PULSE_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CRM_PULSE_SLACK_APP_TOKEN", APP_TOKEN)


def write_config(folder: Path, telegram_url: str, slack_url: str, *, state: str = "sqlite:///state.db") -> Path:
    """A canonical export, one manager on Telegram and Slack, a team channel on Slack."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\n", encoding="utf-8")
    (folder / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\n"
                                      "d1,m1,Lead,open,2026-03-03T09:00:00Z\n", encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(f'''
language = "en"
[source]
path = "."
[state]
url = "{state}"
[telegram]
enabled = true
base_url = "{telegram_url}"
[slack]
enabled = true
base_url = "{slack_url}"
[[recipients]]
id = "anna"
name = "Anna"
role = "manager"
manager_id = "m1"
telegram_id = 101
slack_id = "U101"
language = "ru"
[[recipients]]
id = "nobody"
role = "director"
[[channels]]
id = "sales"
slack_channel_id = "C0SALES"
''', encoding="utf-8")
    return config


NOW = ["--now", "2026-03-04T09:00"]


def test_check_config_online_calls_both_apis_and_opens_the_state(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    before = (servers.telegram.calls["getMe"], servers.slack.calls["auth.test"])
    assert main(["check-config", str(config), *NOW, "--online"]) == 0
    out = capsys.readouterr().out
    assert "  online:" in out
    assert f"telegram: getMe OK: @" in out and servers.telegram.base_url in out
    assert "slack: auth.test OK: bot @crm-pulse in Test, app-level token OK (Socket Mode)" in out
    assert "state: sqlite:///" in out and "no file yet; `run` creates it" in out
    assert not (tmp_path / "crm" / "state.db").exists()  # checking creates nothing
    assert servers.telegram.calls["getMe"] > before[0] and servers.slack.calls["auth.test"] > before[1]
    assert TG_TOKEN not in out and BOT_TOKEN not in out


def test_check_config_online_says_which_token_was_refused(servers, tokens, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", "7000000001:AAHwrongwrongwrongwrongwrongwrongwro")
    monkeypatch.setenv("CRM_PULSE_SLACK_BOT_TOKEN", "xoxb-wrong")
    assert main(["check-config", str(config), *NOW, "--online"]) == 2
    out = capsys.readouterr().out
    assert "telegram: FAILED: Telegram rejected the bot token: check the environment variable CRM_PULSE_TELEGRAM_TOKEN" in out
    assert "slack: FAILED: Slack rejected the bot token in CRM_PULSE_SLACK_BOT_TOKEN" in out
    assert "AAHwrong" not in out and "xoxb-wrong" not in out


def test_check_config_online_an_unreachable_api_is_exit_75(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", f"http://127.0.0.1:{free_port()}", servers.slack.base_url)
    assert main(["check-config", str(config), *NOW, "--online"]) == 75
    out = capsys.readouterr().out
    assert "telegram: NOT REACHABLE at http://127.0.0.1:" in out and "slack: auth.test OK" in out


def test_check_config_online_an_existing_state_is_opened_and_written(servers, tokens, tmp_path, capsys):
    from bot.state import StateStore

    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    StateStore.open(f"sqlite:///{tmp_path / 'crm' / 'state.db'}").close()
    assert main(["check-config", str(config), *NOW, "--online"]) == 0
    assert "opened and writable (schema version" in capsys.readouterr().out


def test_check_config_without_online_calls_no_api(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    before = servers.telegram.calls["getMe"]
    assert main(["check-config", str(config), *NOW]) == 0
    assert "online:" not in capsys.readouterr().out and servers.telegram.calls["getMe"] == before


def test_send_test_reaches_the_person_on_every_chat_in_their_language(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    assert main(["send-test", "--to", "anna", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "sent to anna on telegram (101)" in out and "sent to anna on slack (U101)" in out
    tg = servers.telegram.texts("101")[-1]
    assert tg.startswith("✅ crm-pulse: проверочное сообщение для Anna") and "Telegram" in tg
    slack = [p for posts in servers.slack.posts.values() for p in posts if p.kind == "message"][-1]
    assert "проверочное сообщение" in slack.text and "Slack" in slack.text
    assert not (tmp_path / "crm" / "state.db").exists()  # nothing recorded


def test_send_test_to_a_team_channel(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    assert main(["send-test", "--to", "sales", "--config", str(config)]) == 0
    assert "sent to sales on slack (C0SALES)" in capsys.readouterr().out
    assert "a test message" in servers.slack.texts("C0SALES")[-1]


def test_send_test_mistakes_are_usage_errors(servers, tokens, tmp_path, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    assert main(["send-test", "--to", "ana", "--config", str(config)]) == 2
    assert "did you mean 'anna'?" in capsys.readouterr().err
    assert main(["send-test", "--to", "nobody", "--config", str(config)]) == 2
    assert "nobody has no address on an enabled chat" in capsys.readouterr().err


def test_send_test_a_refused_token_is_exit_2_without_the_token(servers, tokens, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "crm", servers.telegram.base_url, servers.slack.base_url)
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", "7000000001:AAHwrongwrongwrongwrongwrongwrongwro")
    code = main(["send-test", "--to", "anna", "--config", str(config)])
    captured = capsys.readouterr()
    assert "NOT sent to anna on telegram (101)" in captured.err and "sent to anna on slack" in captured.out
    assert code == 2 and "AAHwrong" not in captured.err
    assert "Telegram rejected the bot token: check the environment variable CRM_PULSE_TELEGRAM_TOKEN" in captured.err
