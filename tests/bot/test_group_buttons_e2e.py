"""Buttons under a team chat's digest, through the real python-telegram-bot and slack-bolt stacks
and the fake APIs on 127.0.0.1: a director acts for the whole team (and the group is told), the
manager an item is about acts for themselves, anyone else and strangers get an answer only they
see (Telegram: the button's pop-up; Slack: an ephemeral message) and nothing lands in the group."""
from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.channels.slack import SlackChannel
from bot.channels.telegram import TelegramChannel, TelegramRateLimiter
from detectors.insight import Audience, Insight
from messages import samples
from messages.digest import TEAM_BUTTONS_NOTE
from tests.bot.conftest import E2E_T0 as T0, scenario_insights
from tests.channels.conftest import wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

GROUP = -100500


def _borises_segment() -> Insight:
    """A conversion drop in Boris's own deals: a team item that is about one manager."""
    base = samples.conversion_drop()
    return Insight("conversion_drop", "warning", Audience("director"),
                   {**base.subject, "dimension": "manager", "segment": "m2"},
                   {**base.facts, "kind": "segment_drop", "drivers": [],
                    "segment": {"dimension": "manager", "segment": "Борис", "segment_id": "m2"}},
                   {"deal_ids": ["D-BORIS"]})


@pytest.fixture
def scenario():
    return scenario_insights() + [_borises_segment()]


def _team_fps(scenario):
    drop, load, boris_drop = scenario[3], scenario[4], scenario[-1]
    return drop.fingerprint, load.fingerprint, boris_drop.fingerprint


@pytest.fixture
async def tg(pulse):
    async with FakeTelegramServer(faults=FaultPlan()) as server:
        p = pulse("\n[telegram]\nenabled = true\n[delivery]\ncritical_immediately = false\n")
        channel = TelegramChannel("123456:TEST-token", base_url=server.base_url, on_inbound=p.handlers,
                                  rate_limiter=TelegramRateLimiter(overall_per_second=1000, per_chat_seconds=0.0,
                                                                   max_retries=0),
                                  timeout=2.0, poll_timeout=1)
        await channel.start()
        try:
            await p.jobs.run_scan()
            await p.jobs.run_digest(["sales-team", "dina"])
            await p.outbox.drain_until_idle({"telegram": channel}, timeout=20)
            yield SimpleNamespace(server=server, p=p, channel=channel)
        finally:
            await channel.stop()


def _press(server, user, data, *, chat=GROUP, lang="ru"):
    msg = next(m for m in server.messages[str(chat)] if any(b["callback_data"] == data for row in m.buttons for b in row))
    return server.push_button(user, data, message_id=msg.message_id, chat_id=chat, language_code=lang)


async def _answered(server, n):
    """The n-th answerCallbackQuery, with show_alert as a bool (it comes form-encoded)."""
    await wait_for(lambda: len(server.callback_answers) >= n)
    answer = dict(server.callback_answers[n - 1])
    answer["show_alert"] = str(answer.get("show_alert")).lower() == "true"
    return answer


async def test_telegram_team_chat_buttons(tg):
    server, p = tg.server, tg.p
    drop, load, boris_drop = _team_fps(p.scenario)
    group_before = len(server.texts(GROUP))
    team = "\n".join(t or "" for t in server.texts(GROUP))
    assert TEAM_BUTTONS_NOTE["ru"] in team  # the group's digest says what its buttons do

    # a stranger: a pop-up only they see, nothing in the group
    _press(server, 555, f"snooze:{drop}:1d", lang="en")
    answer = await _answered(server, 1)
    assert answer["show_alert"] is True and "555" in answer["text"] and "send it to your admin" in answer["text"]  # their Telegram language

    # a manager the item is not about: told who may act, in a pop-up; nothing changes
    _press(server, 101, f"snooze:{drop}:7d")
    answer = await _answered(server, 2)
    assert answer["show_alert"] is True and "руководитель (для всех)" in answer["text"]
    assert "неактуален" not in answer["text"]
    assert p.store.snoozed("sales-team", T0) == [] and p.store.snoozed("anna", T0) == []

    # Boris, the manager the segment drop is about: snoozed for him only, said in a pop-up (English)
    _press(server, 102, f"snooze:{boris_drop}:7d")
    answer = await _answered(server, 3)
    assert answer["text"] == "Snoozed for you until 08.10 09:00. A director snoozes it for the whole team."
    assert [e.fingerprint for e in p.store.snoozed("boris", T0)] == [boris_drop]
    assert p.store.snoozed("sales-team", T0) == []

    # anyone listed may rate an item
    _press(server, 101, f"useful:{load}")
    answer = await _answered(server, 4)
    assert answer["text"] == "Спасибо, учту."
    assert p.store.feedback_counts() == {"manager_load": (1, 0)}
    assert len(server.texts(GROUP)) == group_before  # none of the above reached the group

    # the director: snoozed for the whole team and for herself; the group is told who did it
    _press(server, 900, f"snooze:{drop}:7d")
    await wait_for(lambda: len(server.texts(GROUP)) > group_before)
    note = server.texts(GROUP)[-1]
    assert note.startswith("⏸ Отложено для всей команды до 08.10 09:00 (Дина): ")
    assert {e.fingerprint for e in p.store.snoozed("sales-team", T0)} == {drop}
    assert {e.fingerprint for e in p.store.snoozed("dina", T0)} == {drop}
    answer = await _answered(server, 5)
    assert not answer.get("text")  # the spinner is stopped; the group note says the rest
    assert len(server.callback_answers) == 5  # every press answered exactly once

    # a stranger typing a command in the group: the refusal goes to their own chat, not the group
    server.push_text(556, "/insights", chat_id=GROUP)
    await wait_for(lambda: server.texts(556))
    assert "556" in server.texts(556)[0]
    assert not any("556" in (t or "") for t in server.texts(GROUP))

    # the next team digest holds the snoozed item back; Boris's own snooze does not touch the team's
    p.clock.now = T0 + timedelta(days=2)
    await p.jobs.run_scan()
    report = await p.jobs.run_digest(["sales-team"])
    assert report is not None
    assert dict(report.held["sales-team"])[drop] == "snoozed"
    assert dict(report.held["sales-team"])[boris_drop] != "snoozed"


async def _slack_press(server, user, value, channel="C500"):
    await server.push_envelope("interactive", {
        "type": "block_actions", "user": {"id": user}, "team": {"id": "T0TEST"}, "api_app_id": "A0TEST",
        "trigger_id": "t1", "token": "legacy", "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1.000001"},
        "message": {"ts": "1.000001", "text": "..."},
        "actions": [{"type": "button", "action_id": "a1", "value": value, "block_id": "b1", "action_ts": "1.2"}]})


async def test_slack_team_channel_buttons_answer_strangers_ephemerally(pulse, scenario):
    p = pulse("\n[slack]\nenabled = true\n[delivery]\ncritical_immediately = false\n")
    p.config.channels[0].slack_channel_id = "C500"
    p.config.recipients[2].slack_id = "U900"  # Dina, the director
    drop, _, boris_drop = _team_fps(p.scenario)
    async with FakeSlackServer() as server:
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url, timeout=2, on_inbound=p.handlers)
        await channel.start()
        await server.wait_socket()
        try:
            await p.jobs.run_scan()
            await p.jobs.run_digest(["sales-team"])
            await p.outbox.drain_until_idle({"slack": channel}, timeout=20)
            posted = json.dumps([[x.text, x.blocks] for x in server.posts["C500"]], ensure_ascii=False)
            assert TEAM_BUTTONS_NOTE["ru"] in posted and f"snooze:{drop}:7d" in posted
            in_channel = len(server.posts["C500"])

            await _slack_press(server, "U555", f"snooze:{drop}:7d")  # a stranger
            await wait_for(lambda: len(server.ephemerals) == 1)
            where, who, shown = server.ephemerals[0]
            assert (where, who) == ("C500", "U555") and "U555" in shown.text
            await _slack_press(server, "U102", f"done:{boris_drop}")  # Boris, the segment's manager
            await wait_for(lambda: len(server.ephemerals) == 2)
            assert server.ephemerals[1][:2] == ("C500", "U102")
            assert server.ephemerals[1][2].text.startswith("Marked done for you.")
            assert p.store.log_entry("boris", boris_drop).suppressed
            assert len(server.posts["C500"]) == in_channel  # nothing posted for everyone

            await _slack_press(server, "U900", f"done:{drop}")  # the director: for the team
            await wait_for(lambda: len(server.posts["C500"]) > in_channel)
            assert server.posts["C500"][-1].text.startswith("✅ Отмечено сделанным для всей команды (Дина): ")
            assert p.store.log_entry("sales-team", drop).suppressed
        finally:
            await channel.stop()
