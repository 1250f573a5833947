"""The maturity check end to end through the real python-telegram-bot and slack-bolt stacks,
against the fake Bot API / Web API servers on 127.0.0.1 (tests/fakes).

A person answers by pressing buttons and gets the result; types free text mid-way and gets the
reminder; the bot restarts mid-way (a new channel and a new MaturityFlow on the same database)
and the person finishes on the same message.
"""
from __future__ import annotations

import pytest
from maturity_helpers import Clock, Person, make_data, make_leads

from bot.channels.telegram import TelegramChannel
from bot.maturity.flow import MaturityFlow
from tests.channels.conftest import TOKEN, fast_limiter, wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.telegram_server import FakeTelegramServer

PEOPLE = {"42": Person("42", "director", None, "Aigul")}


def wire(flow: MaturityFlow):
    """What bot.handlers does for maturity events: find the person, pass the event on."""
    async def on_inbound(inbound):
        return await flow.handle(inbound, PEOPLE[inbound.user_id]) or []
    return on_inbound


async def start_bot(server: FakeTelegramServer, db_url: str, clock: Clock, data=None) -> TelegramChannel:
    flow = MaturityFlow(db_url, lambda: data, clock)
    channel = TelegramChannel(TOKEN, base_url=server.base_url, on_inbound=wire(flow),
                              rate_limiter=fast_limiter(), timeout=2.0, poll_timeout=1)
    await channel.start()
    return channel


async def test_telegram_buttons_reminder_restart_and_result(db_url, clock):
    data = make_data(leads=make_leads(40, minutes=1.0, managers=["m1", "m2", "m3"]))
    async with FakeTelegramServer(faults=FaultPlan()) as server:
        bot = await start_bot(server, db_url, clock, data)
        try:
            server.push_text(42, "/maturity", language_code="en")
            await wait_for(lambda: len(server.messages.get("42", [])) == 1)
            question = server.messages["42"][0]
            assert "Question 1 of 5" in question.text and question.parse_mode == "HTML"
            assert [b["callback_data"] for row in question.buttons for b in row] == \
                ["mq:1:1", "mq:1:2", "mq:1:3", "mq:cancel"]

            server.push_button(42, "mq:1:1", message_id=question.message_id)
            await wait_for(lambda: "Question 2 of 5" in (question.text or ""))
            assert len(server.messages["42"]) == 1  # edited in place, not a new message

            server.push_text(42, "which one do I pick?", language_code="en")
            await wait_for(lambda: len(server.messages["42"]) == 2)
            reminder = server.messages["42"][1]
            assert "Please choose an answer with a button" in reminder.text
            assert "1 — Automatically, by rules" in reminder.text

            server.push_button(42, "mq:2:1", message_id=question.message_id)
            await wait_for(lambda: "Question 3 of 5" in (question.text or ""))
        finally:
            await bot.stop()

        # the bot restarts: new channel, new flow, same database
        bot = await start_bot(server, db_url, clock, data)
        try:
            server.push_button(42, "mq:3:1", message_id=question.message_id)
            await wait_for(lambda: "Question 4 of 5" in (question.text or ""))
            server.push_button(42, "mq:4:1", message_id=question.message_id)
            await wait_for(lambda: "Question 5 of 5" in (question.text or ""))
            server.push_button(42, "mq:5:1", message_id=question.message_id)
            await wait_for(lambda: "Level 3" in (question.text or ""))
        finally:
            await bot.stop()
    assert "<b>Level 3: the system learns and advises</b>" in question.text
    assert "looks like automatic distribution by rules" in question.text
    assert question.buttons == []
    assert len(server.messages["42"]) == 2  # the question message (now the result) and the reminder
    assert len(server.callback_answers) == 5  # every press was answered (no spinning buttons)


async def test_slack_buttons_reminder_restart_and_result(db_url, clock):
    from bot.channels.slack import SlackChannel
    from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer

    people = {"U123": Person("U123", "manager", "ru", "Bolat")}

    async def start(server):
        flow = MaturityFlow(db_url, lambda: None, clock)

        async def on_inbound(inbound):
            return await flow.handle(inbound, people[inbound.user_id]) or []
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url, timeout=2,
                               on_inbound=on_inbound)
        await channel.start()
        await server.wait_socket()
        return channel

    def press(server, ts, action):
        return server.push_envelope("interactive", {
            "type": "block_actions", "user": {"id": "U123"}, "team": {"id": "T0TEST"},
            "api_app_id": "A0TEST", "trigger_id": "t1", "token": "legacy",
            "channel": {"id": "D123"}, "container": {"type": "message", "channel_id": "D123", "message_ts": ts},
            "message": {"ts": ts, "text": "..."},
            "actions": [{"type": "button", "action_id": action, "value": action, "block_id": "maturity",
                         "action_ts": "1.2"}]})

    async with FakeSlackServer() as server:
        bot = await start(server)
        try:
            await server.push_envelope("slash_commands", {
                "command": "/pulse", "text": "maturity", "user_id": "U123", "channel_id": "C777",
                "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t2",
                "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
            await wait_for(lambda: len(server.posts.get("D123", [])) == 1)
            question = server.posts["D123"][0]
            assert "Вопрос 1 из 5" in question.text
            assert question.action_ids == ["mq:1:1", "mq:1:2", "mq:1:3", "mq:cancel"]
            await press(server, question.ts, "mq:1:3")
            await wait_for(lambda: "Вопрос 2 из 5" in (question.text or ""))
            await server.push_envelope("events_api", {
                "team_id": "T0TEST", "api_app_id": "A0TEST", "type": "event_callback", "event_id": "Ev1",
                "event_time": 1, "event": {"type": "message", "channel_type": "im", "channel": "D123",
                                           "user": "U123", "text": "не знаю", "ts": "1.5"}})
            await wait_for(lambda: len(server.posts["D123"]) == 2)
            assert "выберите ответ кнопкой" in server.posts["D123"][1].text
        finally:
            await bot.stop()
        bot = await start(server)
        try:
            for q, a in [(2, 2), (3, 2), (4, 2), (5, 2)]:
                await press(server, question.ts, f"mq:{q}:{a}")
                nxt = f"Вопрос {q + 1} из 5" if q < 5 else "Уровень 1"
                await wait_for(lambda: nxt in (question.text or "") or nxt in str(question.blocks))
        finally:
            await bot.stop()
    assert question.action_ids == []
    assert "Уровень 1: разрозненные инструменты" in str(question.blocks)
    assert question.edits == 5
