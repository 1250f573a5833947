"""The real slack-bolt / slack_sdk stack against the fake Slack Web API (and Socket Mode)."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse

import aiohttp
import pytest

from bot.channels.base import OutgoingMessage, PermanentFailure, RetryLater
from bot.channels.slack import SlackChannel
from tests.channels.conftest import Recorder, free_port, wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.sendloop import deliver_all
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer

PNG = b"\x89PNG\r\n\x1a\n" + b"chart" * 40
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Сделка стоит 20 дней*"}},
    {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Отложить"},
         "action_id": "snooze:fp1:1d", "value": "snooze:fp1:1d"},
        {"type": "button", "text": {"type": "plain_text", "text": "Готово"},
         "action_id": "done:fp1", "value": "done:fp1"}]},
]


def digest(address: str, text: str, **kw) -> OutgoingMessage:
    return OutgoingMessage("slack", address, {"text": text, "blocks": BLOCKS}, **kw)


def sender(server: FakeSlackServer, **kw) -> SlackChannel:
    return SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url, timeout=2, **kw)


@pytest.fixture
async def slack(slack_server):
    channel = sender(slack_server)
    yield channel
    await channel.stop()


async def test_a_digest_to_a_person_opens_a_dm_and_posts_blocks(slack_server, slack):
    receipt = await slack.send(digest("U123", "Сделка стоит 20 дней"))
    [posted] = slack_server.posts["D123"]
    assert posted.text == "Сделка стоит 20 дней" and posted.blocks == BLOCKS
    assert posted.action_ids == ["snooze:fp1:1d", "done:fp1"]
    assert receipt.message_id == posted.ts and receipt.extra["channel"] == "D123"
    await slack.send(digest("U123", "второе"))
    assert slack_server.calls["conversations.open"] == 1  # the DM id is remembered


async def test_a_chart_is_uploaded_with_files_upload_v2_before_the_text(slack_server, slack):
    await slack.send(digest("C777", "Конверсия упала", photo_png=PNG, dedup_key="k1"))
    kinds = [(p.kind, p.file if p.kind == "file" else p.text) for p in slack_server.posts["C777"]]
    assert kinds == [("file", PNG), ("message", "Конверсия упала")]
    for method in ("files.getUploadURLExternal", "files.completeUploadExternal"):
        assert slack_server.calls[method] == 1


async def test_a_retried_message_does_not_upload_its_chart_twice(slack_server, slack):
    slack_server.faults.fail_next("500", method="chat.postMessage")
    message = digest("C777", "Конверсия упала", photo_png=PNG, dedup_key="k1")
    with pytest.raises(RetryLater):
        await slack.send(message)
    await slack.send(message)
    assert [p.kind for p in slack_server.posts["C777"]] == ["file", "message"]


async def test_edit_in_place_uses_chat_update(slack_server, slack):
    first = await slack.send(digest("C777", "Вопрос 1 из 5"))
    await slack.send(OutgoingMessage("slack", "C777", {"text": "Вопрос 2 из 5", "blocks": []},
                                     edit_message_id=first.message_id))
    [posted] = slack_server.posts["C777"]
    assert posted.text == "Вопрос 2 из 5" and posted.edits == 1
    assert posted.action_ids == []  # the old buttons are gone


@pytest.mark.parametrize("setup, code", [
    (lambda s: s.archived.add("C1"), "is_archived"),
    (lambda s: s.missing.add("C1"), "channel_not_found"),
    (lambda s: s.not_joined.add("C1"), "not_in_channel"),
])
async def test_dead_channels_are_permanent_failures(slack_server, slack, setup, code):
    setup(slack_server)
    with pytest.raises(PermanentFailure) as info:
        await slack.send(digest("C1", "hi"))
    assert code in info.value.reason


async def test_a_deactivated_user_is_a_permanent_failure(slack_server, slack):
    slack_server.inactive_users.add("U9")
    with pytest.raises(PermanentFailure, match="account_inactive"):
        await slack.send(digest("U9", "hi"))


async def test_429_is_retried_in_the_client_honouring_retry_after(slack_server, slack):
    slack_server.faults.fail_next("429", method="chat.postMessage")
    started = time.monotonic()
    await slack.send(digest("C777", "hi"))
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert slack_server.texts("C777") == ["hi"] and slack_server.statuses[429] == 1


async def test_429_after_the_client_retry_is_retry_later_with_the_delay(slack_server):
    channel = sender(slack_server, rate_limit_retries=0)
    try:
        slack_server.faults.fail_next("429", method="chat.postMessage")
        with pytest.raises(RetryLater) as info:
            await channel.send(digest("C777", "hi"))
        assert info.value.after_seconds == 1
    finally:
        await channel.stop()


@pytest.mark.parametrize("fault", ["500", "drop"])
async def test_server_errors_and_dropped_connections_are_retry_later(slack_server, slack, fault):
    slack_server.faults.fail_next(fault, method="chat.postMessage", count=2)
    with pytest.raises(RetryLater):
        await slack.send(digest("C777", "hi"))
    assert slack_server.texts("C777") == []


async def test_a_timeout_is_retry_later():
    async with FakeSlackServer(faults=FaultPlan(slow_seconds=1.6)) as server:
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url,
                               timeout=1)
        try:
            server.faults.fail_next("slow", method="chat.postMessage")
            with pytest.raises(RetryLater):
                await channel.send(digest("C777", "hi"))
        finally:
            await channel.stop()


async def test_under_faults_every_message_arrives_once_in_order():
    faults = FaultPlan(share=0.3, slow_seconds=0.1, seed=3,
                       methods=frozenset({"chat.postMessage", "files.completeUploadExternal",
                                          "files.getUploadURLExternal"}))
    async with FakeSlackServer(faults=faults) as server:
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url,
                               timeout=2, rate_limit_retries=0)
        try:
            addresses = ["C1", "C2", "C3", "C4"]
            messages = [digest(a, f"{a}-{i}", dedup_key=f"{a}-{i}",
                               photo_png=PNG if i == 0 else None)
                        for i in range(6) for a in addresses]
            report = await deliver_all(channel, messages)
        finally:
            await channel.stop()
    assert set(faults.injected) == {"429", "500", "slow", "drop"}
    assert report.retries >= 4 and not report.failed
    for a in addresses:
        assert server.texts(a) == [f"{a}-{i}" for i in range(6)]
        assert [p.kind for p in server.posts[a]].count("file") == 1


# ---- inbound over Socket Mode (the default) -------------------------------------------------

@pytest.fixture
async def socket_bot(slack_server):
    recorder = Recorder("slack")
    channel = sender(slack_server, on_inbound=recorder)
    await channel.start()
    await slack_server.wait_socket()
    channel.recorder = recorder
    yield channel
    await channel.stop()


async def test_socket_mode_button_press_arrives_with_its_action(slack_server, socket_bot):
    receipt = await socket_bot.send(digest("C777", "Сделка стоит 20 дней"))
    envelope = await slack_server.push_envelope("interactive", {
        "type": "block_actions", "user": {"id": "U123"}, "team": {"id": "T0TEST"},
        "api_app_id": "A0TEST", "trigger_id": "t1", "token": "legacy",
        "channel": {"id": "C777"}, "container": {"type": "message", "channel_id": "C777",
                                                  "message_ts": receipt.message_id},
        "message": {"ts": receipt.message_id, "text": "..."},
        "actions": [{"type": "button", "action_id": "snooze:fp1:1d", "value": "snooze:fp1:1d",
                     "block_id": "b1", "action_ts": "1.2"}]})
    await wait_for(lambda: slack_server.texts("C777")[-1:] == ["got snooze:fp1:1d"])
    [inbound] = socket_bot.recorder.inbound
    assert (inbound.channel, inbound.user_id, inbound.chat_id) == ("slack", "U123", "C777")
    assert inbound.action == "snooze:fp1:1d" and inbound.message_id == receipt.message_id
    await wait_for(lambda: envelope in slack_server.acks)


async def test_socket_mode_slash_command_answers_in_the_persons_dm(slack_server, socket_bot):
    envelope = await slack_server.push_envelope("slash_commands", {
        "command": "/pulse", "text": "lang en", "user_id": "U123", "channel_id": "C777",
        "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t2",
        "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
    await wait_for(lambda: slack_server.texts("D123") == ["got /lang en"])
    assert socket_bot.recorder.inbound[0].text == "/lang en"
    await wait_for(lambda: envelope in slack_server.acks)


async def test_socket_mode_direct_message_arrives_and_bot_messages_are_ignored(slack_server,
                                                                              socket_bot):
    base = {"team_id": "T0TEST", "api_app_id": "A0TEST", "type": "event_callback",
            "event_id": "Ev1", "event_time": 1}
    await slack_server.push_envelope("events_api", {**base, "event": {
        "type": "message", "channel_type": "im", "channel": "D123", "user": "UBOT000001",
        "bot_id": "B0TEST", "text": "my own digest", "ts": "1.1"}})
    await slack_server.push_envelope("events_api", {**base, "event_id": "Ev2", "event": {
        "type": "message", "channel_type": "im", "channel": "D123", "user": "U123",
        "text": "/digest", "ts": "1.2"}})
    await wait_for(lambda: slack_server.texts("D123") == ["got /digest"])
    assert [i.text for i in socket_bot.recorder.inbound] == ["/digest"]


# ---- HTTP mode: bolt verifies the signature ------------------------------------------------

def signed(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest_ = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest_}",
            "Content-Type": "application/x-www-form-urlencoded"}


async def test_http_mode_rejects_bad_or_stale_signatures_and_accepts_good_ones(slack_server):
    recorder = Recorder("slack")
    port = free_port()
    channel = SlackChannel(BOT_TOKEN, signing_secret=SECRET, base_url=slack_server.base_url,
                           mode="http", listen="127.0.0.1", port=port, on_inbound=recorder,
                           timeout=2)
    await channel.start()
    try:
        body = urllib.parse.urlencode({
            "command": "/pulse", "text": "digest", "user_id": "U123", "channel_id": "D123",
            "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t3",
            "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
        url = f"http://127.0.0.1:{port}/slack/events"
        async with aiohttp.ClientSession() as http:
            for headers in (signed(body, secret="wrong-secret"),
                            signed(body, timestamp=int(time.time()) - 600),
                            {"Content-Type": "application/x-www-form-urlencoded"}):
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 401
            assert recorder.inbound == []
            async with http.post(url, data=body, headers=signed(body)) as response:
                assert response.status == 200
        await wait_for(lambda: slack_server.texts("D123") == ["got /digest"])
        action = {"type": "block_actions", "user": {"id": "U5"}, "team": {"id": "T0TEST"},
                  "api_app_id": "A0TEST", "channel": {"id": "C9"}, "message": {"ts": "9.9"},
                  "actions": [{"type": "button", "action_id": "done:fp1", "value": "done:fp1",
                               "block_id": "b", "action_ts": "1"}], "token": "legacy"}
        body = urllib.parse.urlencode({"payload": json.dumps(action)})
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=body, headers=signed(body)) as response:
                assert response.status == 200
        await wait_for(lambda: len(recorder.inbound) == 2)
        assert recorder.inbound[1].action == "done:fp1" and recorder.inbound[1].chat_id == "C9"
    finally:
        await channel.stop()


def test_the_manifest_asks_for_exactly_the_scopes_the_code_uses():
    from pathlib import Path

    from bot.channels.slack import REQUIRED_SCOPES

    manifest = (Path(__file__).resolve().parents[2] / "slack-app-manifest.yml").read_text()
    scopes_block = manifest.split("  scopes:\n    bot:\n", 1)[1].split("settings:", 1)[0]
    scopes = {line.strip().removeprefix("- ") for line in scopes_block.splitlines()
              if line.strip().startswith("- ")}
    assert scopes == set(REQUIRED_SCOPES)
    assert "socket_mode_enabled: true" in manifest and "command: /pulse" in manifest
    assert "- message.im" in manifest and "is_enabled: true" in manifest


@pytest.mark.parametrize("bot_token, app_token, which", [
    ("xoxb-wrong", APP_TOKEN, "bot token"),
    (BOT_TOKEN, "xapp-wrong", "app-level token"),
])
async def test_a_wrong_token_stops_start_with_which_one(slack_server, bot_token, app_token, which):
    channel = SlackChannel(bot_token, app_token=app_token, base_url=slack_server.base_url,
                           timeout=2)
    try:
        with pytest.raises(PermanentFailure, match=which):
            await channel.start()
    finally:
        await channel.stop()


async def test_http_mode_on_a_taken_port_is_a_clear_failure(slack_server):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        channel = SlackChannel(BOT_TOKEN, signing_secret=SECRET, base_url=slack_server.base_url,
                               mode="http", listen="127.0.0.1", port=taken.getsockname()[1])
        try:
            with pytest.raises(PermanentFailure, match="cannot listen"):
                await channel.start()
        finally:
            await channel.stop()
