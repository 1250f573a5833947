"""A rejected token names the environment variable the config actually reads (not a hard-coded
TELEGRAM_BOT_TOKEN), and never the token itself."""
from __future__ import annotations

import pytest

from bot.app import build_channels
from bot.channels.base import PermanentFailure
from bot.config import parse_config
from tests.fakes.faults import FaultPlan
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

WRONG_TG = "7000000001:AAHwrongwrongwrongwrongwrongwrong12"


@pytest.mark.parametrize("env", ["MY_COMPANY_TG_TOKEN", "CRM_PULSE_TELEGRAM_TOKEN"])
async def test_a_rejected_telegram_token_names_the_configured_variable(env, monkeypatch):
    monkeypatch.setenv(env, WRONG_TG)
    async with FakeTelegramServer(faults=FaultPlan(), token="7000000001:AAHtherightonetherightone1234567") as server:
        cfg = parse_config(f'[telegram]\nenabled = true\ntoken_env = "{env}"\nbase_url = "{server.base_url}"\n')
        channel = build_channels(cfg, None)["telegram"]
        try:
            with pytest.raises(PermanentFailure) as e:
                await channel.start()
        finally:
            await channel.stop()
    assert f"check the environment variable {env}" in e.value.reason
    assert "TELEGRAM_BOT_TOKEN" not in e.value.reason and WRONG_TG not in e.value.reason


@pytest.mark.parametrize("which, env_key", [("bot", "bot_token_env"), ("app", "app_token_env")])
async def test_a_rejected_slack_token_names_the_configured_variable(which, env_key, monkeypatch):
    from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN

    monkeypatch.setenv("ACME_SLACK_BOT", "xoxb-wrong" if which == "bot" else BOT_TOKEN)
    monkeypatch.setenv("ACME_SLACK_APP", "xapp-wrong" if which == "app" else APP_TOKEN)
    async with FakeSlackServer() as server:
        cfg = parse_config('[slack]\nenabled = true\nbot_token_env = "ACME_SLACK_BOT"\n'
                           f'app_token_env = "ACME_SLACK_APP"\nbase_url = "{server.base_url}"\n')
        channel = build_channels(cfg, None)["slack"]
        try:
            with pytest.raises(PermanentFailure) as e:
                await channel.start()
        finally:
            await channel.stop()
    expected = "ACME_SLACK_BOT" if which == "bot" else "ACME_SLACK_APP"
    assert expected in e.value.reason and "wrong" not in e.value.reason
