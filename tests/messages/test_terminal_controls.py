"""CRM strings cannot drive the admin's terminal: `scan`, `demo` and the console channel print
no escape sequence, control character or bidi override that came from the data."""
from __future__ import annotations

import asyncio
import io
import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.base import OutgoingMessage
from bot.channels.console import ConsoleChannel
from messages import samples
from messages.digest import build_digest
from messages.terminal import format_digest, format_insight, terminal_safe

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
HOSTILE = ["\x1b[31mRED\x1b[0m", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
           "\x1b]52;c;cm0gLXJmIH4=\x07", "\x1b[2J\x1b[H", "ok\rOVERWRITTEN", "a\x08\x08b", "\x9b31mC1",
           "\u202egnp.exe", "\x1b]0;title\x07", "\x00nul", "\x1bc"]
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _named(name: str):
    client = samples.silent_client()
    client.facts.update(client_name=name, manager_name=name, last_email_subject=name)
    deal = samples.stalled_deal(title=name)
    deal.facts["stage"] = name
    return [client, deal]


@pytest.mark.parametrize("name", HOSTILE)
def test_scan_and_demo_output_holds_no_control_from_the_data(name):
    insights = _named(name)
    texts = [format_insight(i, lang, now=NOW) for i in insights for lang in ("ru", "en")]
    digest = build_digest(insights, lang="ru", now=NOW, tz=timezone.utc, max_items=10, recipient_name=name)
    texts.append(format_digest(digest))
    for text in texts:
        assert not FORBIDDEN.search(text), repr(text)
    visible = re.sub(r"\s+", "", terminal_safe(name))  # the name is still shown (whitespace aside)
    assert not visible or any(visible in re.sub(r"\s+", "", t) for t in texts)


@pytest.mark.parametrize("name", HOSTILE)
def test_the_console_channel_prints_no_control_from_the_data(name):
    out = io.StringIO()
    console = ConsoleChannel(out)
    html = f"<b>{name}</b> &#27;[31m &#x9b;1m"  # a Telegram payload shown in a dry run, entities and all
    asyncio.run(console.send(OutgoingMessage("telegram", name, {"text": html,
                                                               "buttons": [[{"label": name, "action": "x"}]]})))
    assert not FORBIDDEN.search(out.getvalue()), repr(out.getvalue())


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60))
def test_any_name_prints_safely(name):
    text = format_insight(_named(name)[0], "en", now=NOW)
    assert not FORBIDDEN.search(text), repr(text)


def test_ordinary_text_is_unchanged():
    s = "Конверсия «КП» упала: 48% → 31%\n   → позвоните 👨‍👩‍👧 ok"
    assert terminal_safe(s) == s
