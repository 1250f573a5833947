"""Hostile CRM strings: nothing a client or deal is called can break or hijack a message."""
from __future__ import annotations

import html
import re

import pytest
from msg_helpers import HOSTILE, NOW, check_slack_limits, slack_texts, stalled, telegram_visible_text

from detectors.insight import Audience, Insight
from messages import slack, telegram, terminal
from messages.digest import build_digest
from messages.render import MAX_NAME_CHARS


def silent(client_name: str) -> Insight:
    return Insight(
        detector="silent_client", severity="warning", audience=Audience("manager", "m1"), subject={"client_id": "C1"},
        facts={"client_name": client_name, "manager_id": "m1", "manager_name": client_name, "days_silent": 12,
               "last_reply_at": None, "unanswered_emails": 2, "human_opens": 3, "open_days": 2,
               "last_open_at": "2026-11-27T10:00:00+00:00", "last_email_subject": client_name},
        evidence={"email_ids": ["E1"]},
    )


def hostile_insights(value: str) -> list[Insight]:
    return [silent(value), stalled("D-1", value, 30, 1_000_000, client=value),
            stalled("D-2", "Обычная сделка", 20, 500_000, client=value)]


@pytest.mark.parametrize("key", sorted(set(HOSTILE) - {"long"}))
def test_telegram_shows_crm_text_exactly_and_never_as_markup(key):
    value = HOSTILE[key]
    payload = telegram.format_insight(silent(value), "ru", now=NOW)
    visible = telegram_visible_text(payload["text"])  # raises on any tag that is not ours
    assert value in visible  # the client's name shows as written, after Telegram decodes entities
    assert html.escape(value, quote=False) in payload["text"]
    if "<" in value:
        assert value not in payload["text"]


def test_telegram_client_named_like_html_shows_as_written():
    payload = telegram.format_insight(silent('<b>ООО "A&B"</b>'), "en", now=NOW)
    assert '&lt;b&gt;ООО "A&amp;B"&lt;/b&gt;' in payload["text"]
    assert '<b>ООО "A&B"</b>' in telegram_visible_text(payload["text"])


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_telegram_digest_with_hostile_names_is_valid_html_within_limits(key):
    digest = build_digest(hostile_insights(HOSTILE[key]), lang="ru", now=NOW, tz="Asia/Almaty")
    for message in telegram.format_digest(digest):
        telegram_visible_text(message["text"])
        assert len(message["text"].encode("utf-16-le")) // 2 <= 4096


MENTION = re.compile(r"<[!@#]")
AUTO_FORMAT = re.compile(r"(^|\s)[*_~`]\S")


def neutral_in_slack(message: dict) -> None:
    for text in slack_texts(message):
        assert not MENTION.search(text), f"mention syntax reaches Slack: {text[:120]!r}"
        assert "<http" not in text and "://" not in text, "a link reaches Slack"
        assert "@here" not in text and "@channel" not in text and "@everyone" not in text
    for text in slack_texts(message, "mrkdwn"):
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), "an unescaped & reaches Slack"


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_slack_neutralises_mentions_links_and_markup(key):
    value = HOSTILE[key]
    single = slack.format_insight(silent(value), "en", now=NOW)
    digest = slack.format_digest(build_digest(hostile_insights(value), lang="en", now=NOW, tz="Asia/Almaty"))
    for message in [single, *digest]:
        check_slack_limits(message)
        neutral_in_slack(message)
        for block in message["blocks"]:
            if block.get("text", {}).get("type") == "mrkdwn":
                assert block["text"]["verbatim"] is True  # no auto-linking of URLs or #channels


def test_slack_crm_formatting_markers_do_not_format():
    message = slack.format_insight(silent("*bold* _x_ ~s~ `c`"), "en", now=NOW)
    section = next(b for b in message["blocks"] if b["type"] == "section")["text"]["text"]
    for marker in "*_~`":
        assert marker not in section.replace("*", "") or marker == "*"  # our own bold is the only *
    # The CRM words are still there, readable, with look-alike characters instead of markers.
    assert "∗bold∗ ˍxˍ ∼s∼ ˋcˋ" in section


def test_slack_emoji_and_right_to_left_text_pass_through():
    value = HOSTILE["emoji"] + " " + HOSTILE["rtl"]
    message = slack.format_insight(silent(value), "ru", now=NOW)
    assert any(value in t for t in slack_texts(message))


def test_very_long_names_are_shortened_not_allowed_to_break_limits():
    value = HOSTILE["long"]
    tg = telegram.format_insight(silent(value), "ru", now=NOW)
    assert len(tg["text"]) <= 4096
    assert value[: MAX_NAME_CHARS - 1] in tg["text"] and value not in tg["text"]
    sl = slack.format_insight(silent(value), "ru", now=NOW)
    check_slack_limits(sl)
    assert terminal.format_insight(silent(value), "ru", now=NOW).count("…") >= 1


def test_hostile_names_in_terminal_are_plain():
    text = terminal.format_insight(silent(HOSTILE["tag"]), "ru", now=NOW)
    assert HOSTILE["tag"] in text  # the terminal shows it literally, no escaping noise


def test_an_oversized_item_loses_body_lines_but_keeps_its_title_and_the_thing_to_do():
    long = HOSTILE["long"]
    deals = [stalled(f"D-{k}", f"{k} {long}", 20 + k, 1_000_000, client=long) for k in range(12)]
    digest = build_digest(deals, lang="ru", now=NOW)
    [sl] = slack.format_digest(digest)
    check_slack_limits(sl)
    section = next(b for b in sl["blocks"] if b["type"] == "section")["text"]["text"]
    assert section.startswith("*1. ") and "\n…\n👉 " in section
    [tg] = telegram.format_digest(digest)
    telegram_visible_text(tg["text"])
    assert "👉 <i>Начните с первой" in tg["text"]


def test_fit_lines_keeps_whole_lines():
    from messages.render import fit_lines

    lines = ["title", "a" * 50, "b" * 50, "do this"]
    assert fit_lines(lines, 70, keep_last=True) == ["title", "a" * 50, "…", "do this"]
    assert fit_lines(lines, 1000, keep_last=True) == lines
    assert fit_lines(lines, 20) == ["title", "…"]
