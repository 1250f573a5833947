"""End to end through the real python-telegram-bot stack and the fake Bot API: a scan and the
morning digest reach each person with only their own items, buttons work (snooze, useful are
stored), and a stranger is refused with their id. Uses bot-core's jobs, handlers and outbox."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from tests.channels.conftest import TOKEN, fast_limiter, wait_for
from tests.fakes.telegram_server import FakeTelegramServer

scheduler = pytest.importorskip("bot.scheduler", reason="bot.scheduler (bot-core) not there")
handlers_mod = pytest.importorskip("bot.handlers", reason="bot.handlers (bot-core) not there")
from bot.channels.telegram import TelegramChannel  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.outbox import Outbox  # noqa: E402
from bot.state import StateStore  # noqa: E402
from detectors.insight import Audience, Insight  # noqa: E402
from messages import samples  # noqa: E402

NOW = datetime(2026, 10, 1, 4, 0, tzinfo=timezone.utc)  # 09:00 in Almaty

CONFIG = """
language = "ru"
timezone = "Asia/Almaty"

[telegram]
enabled = true

[delivery]
repeat_interval_days = 1

[[recipients]]
id = "anna"
name = "Анна"
role = "manager"
manager_id = "m1"
telegram_id = 101

[[recipients]]
id = "boris"
name = "Boris"
role = "manager"
manager_id = "m2"
telegram_id = 102
language = "en"
"""


def insights() -> list[Insight]:
    anna_client = Insight(
        detector="silent_client", severity="warning", audience=Audience("manager", "m1"),
        subject={"client_id": "C-ANNA"},
        facts={"client_name": "ТОО Аннин Клиент", "manager_id": "m1", "manager_name": "Анна",
               "days_silent": 20, "last_reply_at": None, "unanswered_emails": 2,
               "human_opens": 5, "open_days": 3, "last_open_at": "2026-09-30T10:00:00+05:00",
               "last_email_subject": "КП"},
        evidence={"email_ids": ["E1"]})
    boris_deal = samples.stalled_deal(deal_id="D-BORIS", title="Boris Steel Deal",
                                      manager_id="m2")
    return [anna_client, boris_deal]


@pytest.fixture
async def bot(tmp_path):
    config = parse_config(CONFIG + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n',
                          source_name="e2e.toml", base_dir=tmp_path)
    store = StateStore.open(config.state_url())
    outbox = Outbox(store, backoff_base=0.05, backoff_max=0.5)
    scan = insights()
    clock = SimpleNamespace(now=NOW)
    jobs = scheduler.PulseJobs(config, store, outbox, clock=lambda: clock.now,
                               scan_fn=lambda cfg, now: SimpleNamespace(insights=scan, data=None,
                                                                        skipped={}))
    handlers = handlers_mod.Handlers(config, store, clock=lambda: clock.now,
                                     scan_now=jobs.run_scan)
    async with FakeTelegramServer() as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url, on_inbound=handlers,
                                  rate_limiter=fast_limiter(), timeout=2.0, poll_timeout=1)
        await channel.start()
        try:
            yield SimpleNamespace(server=server, channel=channel, jobs=jobs, outbox=outbox,
                                  store=store, insights=scan, clock=clock)
        finally:
            await channel.stop()
            store.close()


async def morning(bot) -> None:
    await bot.jobs.run_scan()
    await bot.jobs.run_digest(["anna", "boris"])
    await bot.outbox.drain_until_idle({"telegram": bot.channel}, timeout=20, max_sleep=0.1)


async def test_each_manager_gets_only_their_own_items_and_buttons_work(bot):
    server = bot.server
    await morning(bot)

    anna = "\n".join(t or "" for t in server.texts(101))
    boris = "\n".join(t or "" for t in server.texts(102))
    assert "Аннин Клиент" in anna and "Boris Steel Deal" not in anna
    assert "Boris Steel Deal" in boris and "Аннин Клиент" not in boris

    digest = next(m for m in server.messages["101"] if m.buttons)
    actions = [b["callback_data"] for row in digest.buttons for b in row]
    anna_fp = bot.insights[0].fingerprint
    snooze = f"snooze:{anna_fp}:7d"
    assert snooze in actions
    useful = f"useful:{anna_fp}"
    assert useful in actions

    before = len(server.messages["101"])
    server.push_button(101, snooze, message_id=digest.message_id)
    await wait_for(lambda: len(server.callback_answers) == 1)
    await wait_for(lambda: any(e.fingerprint == anna_fp
                               for e in bot.store.snoozed("anna", NOW)))
    server.push_button(101, useful, message_id=digest.message_id)
    await wait_for(lambda: bot.store.feedback_counts().get("silent_client", (0, 0))[0] == 1)
    # answered once the handler has decided (so a refusal can be the press's pop-up)
    await wait_for(lambda: len(server.callback_answers) == 2)
    assert len(server.messages["101"]) >= before  # answered, nothing went to anyone else
    assert "Аннин" not in "\n".join(t or "" for t in server.texts(102))

    # Two days later the repeat interval (1 day) has passed: Boris hears about his deal again,
    # Anna's snoozed client stays quiet.
    anna_before, boris_before = len(server.texts(101)), len(server.texts(102))
    bot.clock.now = NOW + timedelta(days=2)
    await morning(bot)
    assert "Boris Steel Deal" in "\n".join(t or "" for t in server.texts(102)[boris_before:])
    assert not any("Аннин Клиент" in (t or "") for t in server.texts(101)[anna_before:])


async def test_a_stranger_is_refused_with_their_id(bot):
    bot.server.push_text(555777, "/start", language_code="en")
    await wait_for(lambda: len(bot.server.texts(555777)) == 1)
    [reply] = bot.server.texts(555777)
    assert "555777" in reply
    assert "Аннин" not in reply and "Boris Steel" not in reply


SLACK_CONFIG = """
language = "en"
timezone = "Asia/Almaty"

[slack]
enabled = true

[[recipients]]
id = "anna"
name = "Anna"
role = "manager"
manager_id = "m1"
slack_id = "U101"

[[recipients]]
id = "boris"
name = "Boris"
role = "manager"
manager_id = "m2"
slack_id = "U102"
"""


async def test_slack_digest_button_and_stranger_end_to_end(tmp_path):
    from bot.channels.slack import SlackChannel
    from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer

    config = parse_config(SLACK_CONFIG + f'\n[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n',
                          source_name="e2e.toml", base_dir=tmp_path)
    store = StateStore.open(config.state_url())
    outbox = Outbox(store, backoff_base=0.05, backoff_max=0.5)
    scan = insights()
    jobs = scheduler.PulseJobs(config, store, outbox, clock=lambda: NOW,
                               scan_fn=lambda cfg, now: SimpleNamespace(insights=scan, data=None,
                                                                        skipped={}))
    handlers = handlers_mod.Handlers(config, store, clock=lambda: NOW, scan_now=jobs.run_scan)
    async with FakeSlackServer() as server:
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url,
                               on_inbound=handlers, timeout=2)
        await channel.start()
        try:
            await server.wait_socket()
            await jobs.run_scan()
            await jobs.run_digest(["anna", "boris"])
            await outbox.drain_until_idle({"slack": channel}, timeout=20, max_sleep=0.1)
            anna = "\n".join(t or "" for t in server.texts("D101"))
            boris = "\n".join(t or "" for t in server.texts("D102"))
            assert "Аннин Клиент" in anna and "Boris Steel Deal" not in anna
            assert "Boris Steel Deal" in boris and "Аннин Клиент" not in boris

            digest = next(p for p in server.posts["D101"] if p.action_values)
            useful = next(a for a in digest.action_values if a.startswith("useful:"))
            await server.push_envelope("interactive", {
                "type": "block_actions", "user": {"id": "U101"}, "team": {"id": "T0TEST"},
                "api_app_id": "A0TEST", "trigger_id": "t", "token": "legacy",
                "channel": {"id": "D101"}, "message": {"ts": digest.ts, "text": "..."},
                "actions": [{"type": "button", "action_id": "useful-1", "value": useful,
                             "block_id": "b", "action_ts": "1"}]})
            await wait_for(lambda: store.feedback_counts().get("silent_client", (0, 0))[0] == 1)

            await server.push_envelope("events_api", {
                "team_id": "T0TEST", "api_app_id": "A0TEST", "type": "event_callback",
                "event_id": "Ev9", "event_time": 1, "event": {
                    "type": "message", "channel_type": "im", "channel": "D999", "user": "U999",
                    "text": "hi", "ts": "2.1"}})
            await wait_for(lambda: len(server.texts("D999")) == 1)
            assert "U999" in server.texts("D999")[0]
        finally:
            await channel.stop()
            store.close()
