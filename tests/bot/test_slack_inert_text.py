"""No live Slack mention or link out of CRM text: stage, manager and loss-reason names typed as
`<!channel> ping`, `<@U123>`, `<https://evil|click>` reach Slack (the fake server, through
slack_sdk) as inert text in every message the bot sends: digests, chart captions, "no longer
holds" notes and the `/pulse snoozed` list."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from bot.channels.base import Inbound
from bot.channels.slack import SlackChannel
from bot.config import parse_config
from bot.delivery import deliver, text_payload
from bot.handlers import Handlers
from bot.outbox import Outbox
from detectors.insight import Insight
from messages import samples
from messages.slack import format_text
from tests.bot.conftest import CONFIG_TOML, E2E_T0 as T0
from tests.bot.test_hostile_charts import _name_everyone
from tests.fakes.slack_server import BOT_TOKEN, FakeSlackServer

HOSTILE = ["<!channel> ping", "<!here>", "<@U123>", "<https://evil.example|click>", "&lt;b&gt;x",
           "<!subteam^S1|@sales>", "<#C999|general>", "@channel now", "see https://evil.example/x",
           "<mailto:a@b.c|mail>", "*bold* _it_ ~s~ `c`"]


def _mrkdwn_objects(node):
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node
        for v in node.values():
            yield from _mrkdwn_objects(v)
    elif isinstance(node, list):
        for v in node:
            yield from _mrkdwn_objects(v)


def live_markup(text: str | None, blocks: list | None) -> list[str]:
    """What Slack would turn into a mention, a link or a broadcast in this message."""
    problems = []
    texts = [text or ""]
    for obj in _mrkdwn_objects(blocks or []):
        if obj.get("verbatim") is not True:
            problems.append(f"mrkdwn not verbatim: {obj['text'][:60]!r}")
        texts.append(obj["text"])
    for t in texts:
        if "<" in t:  # the only way into Slack's <...> control sequences
            problems.append(f"raw '<' in {t[:80]!r}")
        if re.search(r"@(here|channel|everyone)\b", t):
            problems.append(f"broadcast word in {t[:80]!r}")
        if "://" in t or "mailto:a@b" in t:
            problems.append(f"linkable URL in {t[:80]!r}")
        if re.search(r"(?<!&amp;)&lt;b&gt;x", t):
            problems.append(f"'&lt;' from the data would show as '<': {t[:80]!r}")
    return problems


@pytest.mark.parametrize("name", HOSTILE)
def test_format_text_is_inert_and_verbatim(name):
    payload = format_text(f"Конверсия «{name}» упала\n• {name}")
    assert live_markup(payload["text"], payload["blocks"]) == []
    assert payload["blocks"] and all(b["type"] == "section" for b in payload["blocks"])
    assert text_payload("slack", name) == format_text(name)


def test_a_long_text_is_split_into_sections_within_slack_limits():
    payload = format_text("\n".join(f"{i}. {HOSTILE[i % len(HOSTILE)]} " + "x" * 200 for i in range(200)))
    assert 1 < len(payload["blocks"]) <= 20
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"])
    assert len(payload["text"]) <= 3000


def _hostile_insights() -> list[Insight]:
    conv = samples.conversion_drop()
    conv.facts.update(from_stage="<!channel> ping", to_stage="<@U123>")
    conv.subject.update(from_stage="<!channel> ping", to_stage="<@U123>")
    load = samples.manager_load()
    _name_everyone(load, "<!here> Ольга")
    loss = samples.loss_reasons()
    for row, name in zip(loss.facts["reasons"], ["<https://evil.example|click>", "&lt;b&gt;x", "<!channel> ping",
                                                  "@channel now"]):
        row["reason"] = name
    loss.facts["top_rising"] = "<https://evil.example|click> &lt;b&gt;x"
    deal = samples.stalled_deal(deal_id="D-HOSTILE", title="<!channel> ping <https://evil.example|click>",
                                manager_id="m2")
    deal.facts["stage"] = "<#C999|general>"
    return [conv, load, loss, deal]


def _all_posts(server):
    return [p for posts in server.posts.values() for p in posts if p.kind == "message"]


async def test_nothing_the_bot_sends_to_slack_holds_a_live_mention_or_link(sqlite_store):
    cfg = parse_config(CONFIG_TOML + '\n[slack]\nenabled = true\n[delivery]\nresolved_notes = true\n'
                       'critical_immediately = false\n'
                       '[[channels]]\nid = "slack-team"\nslack_channel_id = "C900"\n')
    outbox = Outbox(sqlite_store, clock=lambda: T0)
    insights = _hostile_insights()
    async with FakeSlackServer() as server:
        channel = SlackChannel(BOT_TOKEN, app_token="xapp-x", base_url=server.base_url, timeout=2)
        try:
            report = deliver(insights, cfg, sqlite_store, outbox, T0, exclude_detectors=())
            assert report.sent["slack-team"] and report.sent["boris"]
            await outbox.drain_until_idle({"slack": channel}, timeout=20)
            team = [p for p in server.posts["C900"] if p.kind == "message"]
            charts = [p for p in server.posts["C900"] if p.kind == "file"]
            assert len(charts) == 3  # conversion, load and loss-reason charts, each with its caption
            assert len(team) >= 4

            # a day later nothing holds any more: the "no longer holds" note names them all
            before = len(team)
            deliver([], cfg, sqlite_store, outbox, T0 + timedelta(days=1), exclude_detectors=())
            await outbox.drain_until_idle({"slack": channel}, timeout=20)
            notes = [p for p in server.posts["C900"] if p.kind == "message"][before:]
            assert notes and ("No longer holds" in notes[0].text or "Больше не актуально" in notes[0].text)

            # Boris snoozes the hostile deal and asks what he snoozed
            sqlite_store.snooze("boris", insights[3], T0 + timedelta(days=7), T0)
            handlers = Handlers(cfg, sqlite_store, clock=lambda: T0)
            sqlite_store.save_scan(insights, T0, T0)
            replies = await handlers(Inbound(channel="slack", user_id="U102", chat_id="D102", text="/snoozed"))
            for reply in replies:
                await channel.send(reply)
            snoozed = [p for p in server.posts["D102"] if p.kind == "message"][-1]
            assert "D-HOSTILE" in json.dumps(snoozed.blocks) or "ping" in snoozed.text
        finally:
            await channel.stop()

        posts = _all_posts(server)
        assert posts
        problems = {p.ts: live_markup(p.text, p.blocks) for p in posts}
        assert {ts: pr for ts, pr in problems.items() if pr} == {}
        shown = json.dumps([[p.text, p.blocks] for p in posts], ensure_ascii=False)
        assert "ping" in shown and "evil" in shown and "&amp;lt;b&amp;gt;x" in shown  # told, not dropped
