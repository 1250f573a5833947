"""Slack HTTP mode: any request that is not Slack's gets 401, never 500 (a non-numeric
X-Slack-Request-Timestamp made bolt's int() raise), and the listen address is configurable."""
from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_channels
from bot.channels.slack import SlackChannel
from bot.config import ConfigError, parse_config
from tests.channels.conftest import Recorder, free_port, wait_for
from tests.fakes.slack_server import BOT_TOKEN, FakeSlackServer

SECRET = "0123456789abcdef0123456789abcdef"
BODY = urllib.parse.urlencode({
    "command": "/pulse", "text": "help", "user_id": "U123", "channel_id": "D123", "team_id": "T0TEST",
    "api_app_id": "A0TEST", "trigger_id": "t3", "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})


def _sign(body: bytes | str, ts: str, secret: str = SECRET) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()


@pytest.fixture
async def endpoint():
    async with FakeSlackServer() as server:
        port = free_port()
        recorder = Recorder("slack")
        channel = SlackChannel(BOT_TOKEN, signing_secret=SECRET, base_url=server.base_url, mode="http",
                               listen="127.0.0.1", port=port, on_inbound=recorder, timeout=2)
        await channel.start()
        try:
            yield f"http://127.0.0.1:{port}/slack/events", recorder, server
        finally:
            await channel.stop()


@pytest.mark.parametrize("timestamp", ["abc", "", "1e9", "12.5", "0x10", " 12", "١٢٣٤٥٦٧٨٩٠", "-1",
                                       "9" * 40, "NaN", "1700000000; drop"])
async def test_a_timestamp_that_is_not_a_number_is_401_not_500(endpoint, timestamp):
    url, recorder, _ = endpoint
    async with aiohttp.ClientSession() as http:
        headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": _sign(BODY, timestamp),
                   "Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(url, data=BODY, headers=headers) as r:
            assert r.status == 401
    assert recorder.inbound == []


async def test_undecodable_or_unsigned_bodies_are_401(endpoint):
    url, recorder, _ = endpoint
    ts = str(int(time.time()))
    body = b"\xff\xfe\x00garbage"
    async with aiohttp.ClientSession() as http:
        for headers in ({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": _sign(body, ts)},
                        {"X-Slack-Request-Timestamp": ts}, {}):
            async with http.post(url, data=body, headers=headers) as r:
                assert r.status == 401
    assert recorder.inbound == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timestamp=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
       signature=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
async def test_no_header_values_give_a_server_error(endpoint, timestamp, signature):
    url, recorder, _ = endpoint
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=BODY, headers={"X-Slack-Request-Timestamp": timestamp,
                                                      "X-Slack-Signature": signature,
                                                      "Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 401
    assert recorder.inbound == []


async def test_a_correctly_signed_request_still_works(endpoint):
    url, recorder, server = endpoint
    ts = str(int(time.time()))
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=BODY, headers={"X-Slack-Request-Timestamp": ts,
                                                      "X-Slack-Signature": _sign(BODY, ts),
                                                      "Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 200
    await wait_for(lambda: server.texts("D123") == ["got /help"])


async def test_the_listen_address_comes_from_the_config(monkeypatch):
    monkeypatch.setenv("CRM_PULSE_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CRM_PULSE_SLACK_SIGNING_SECRET", SECRET)
    async with FakeSlackServer() as server:
        port = free_port()
        cfg = parse_config(f'[slack]\nenabled = true\nmode = "http"\nlisten = "127.0.0.1"\nport = {port}\n'
                           f'base_url = "{server.base_url}"\n')
        channel = build_channels(cfg, Recorder("slack"))["slack"]
        await channel.start()
        try:
            assert [site.name for site in channel._http.sites] == [f"http://127.0.0.1:{port}"]
        finally:
            await channel.stop()
    assert parse_config("[slack]\n").slack.listen == "0.0.0.0"  # every interface, as before


@pytest.mark.parametrize("bad", ["", "127.0.0.1:3000", "http://0.0.0.0", "exa mple", "-bad-"])
def test_a_listen_address_that_is_not_one_is_refused(bad):
    with pytest.raises(ConfigError) as e:
        parse_config(f'[slack]\nlisten = "{bad}"\n')
    assert e.value.problems[0].startswith("slack.listen: must be an address to listen on")
