"""End to end through slack-bolt (Socket Mode) and the fake Slack Web API on 127.0.0.1:
the digest lands in the person's DM with only their items, a button snoozes, `/pulse snoozed`
lists it with an unsnooze button."""
import json

from bot.channels.slack import SlackChannel
from tests.bot.conftest import E2E_T0 as T0
from tests.channels.conftest import wait_for
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer


def _dump(server, channel):
    return "\n".join(json.dumps([p.text, p.blocks], ensure_ascii=False) for p in server.posts.get(channel, []))


async def test_slack_digest_button_and_slash_command(pulse):
    w = pulse("\n[slack]\nenabled = true\n[delivery]\ncritical_immediately = false\n")
    jobs, outbox, sqlite_store, scenario = w.jobs, w.outbox, w.store, w.scenario
    async with FakeSlackServer() as server:
        channel = SlackChannel(BOT_TOKEN, app_token=APP_TOKEN, base_url=server.base_url, timeout=2,
                               on_inbound=w.handlers)
        await channel.start()
        await server.wait_socket()
        try:
            await jobs.run_scan()
            await jobs.run_digest(["anna", "boris", "dina"])
            await outbox.drain_until_idle({"slack": channel}, timeout=20)
            boris = _dump(server, "D102")
            assert "Сделка Бориса" in boris and "Аннин" not in boris
            assert not server.posts.get("D101")  # Anna has no Slack id: nothing goes there

            fp = scenario[1].fingerprint
            post = next(p for p in server.posts["D102"] if f'"snooze:{fp}:7d"' in json.dumps(p.blocks))
            await server.push_envelope("interactive", {
                "type": "block_actions", "user": {"id": "U102"}, "team": {"id": "T0TEST"},
                "api_app_id": "A0TEST", "trigger_id": "t1", "token": "legacy",
                "channel": {"id": "D102"}, "container": {"type": "message", "channel_id": "D102",
                                                          "message_ts": post.ts},
                "message": {"ts": post.ts, "text": "..."},
                "actions": [{"type": "button", "action_id": "a1", "value": f"snooze:{fp}:7d",
                             "block_id": "b1", "action_ts": "1.2"}]})
            await wait_for(lambda: any("Snoozed until" in (t or "") for t in server.texts("D102")))
            assert [e.fingerprint for e in sqlite_store.snoozed("boris", T0)] == [fp]

            await server.push_envelope("slash_commands", {
                "command": "/pulse", "text": "snoozed", "user_id": "U102", "channel_id": "C777",
                "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t2",
                "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
            await wait_for(lambda: any((t or "").startswith("Snoozed:") for t in server.texts("D102")))
            assert f'"unsnooze:{fp}"' in _dump(server, "D102")
        finally:
            await channel.stop()
