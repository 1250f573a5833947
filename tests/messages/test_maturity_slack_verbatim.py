"""The maturity check's Slack payloads: every mrkdwn object verbatim (no auto-linked URL), the
one Slack escape (messages.escape) used, fallback texts inert too."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.maturity.questionnaire import QUESTIONS, answers_from_numbers
from bot.maturity.scoring import score
from messages import maturity as m

HOSTILE = "<!channel> ping <https://evil.example|click> & see https://evil.example <@U123>"


def _mrkdwn_objects(node):
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node
        for v in node.values():
            yield from _mrkdwn_objects(v)
    elif isinstance(node, list):
        for v in node:
            yield from _mrkdwn_objects(v)


def _payloads():
    result = score(answers_from_numbers([1, 1, 1, 1, 1]))
    q = QUESTIONS[0]
    yield m.format_note(HOSTILE, "slack")
    yield m.format_question(q.id, 1, 5, q.option_ids(), "ru", "slack", note=HOSTILE)
    for dept in ("service", HOSTILE):
        try:
            yield m.format_result(result, [], "en", "slack", department=dept)
        except (KeyError, ValueError):  # department is an id from a fixed list
            continue


@pytest.mark.parametrize("payload", list(_payloads()), ids=lambda p: p["text"][:20])
def test_every_section_is_verbatim_and_nothing_live_remains(payload):
    objects = list(_mrkdwn_objects(payload["blocks"]))
    assert objects and all(o.get("verbatim") is True for o in objects)
    for text in [payload["text"], *(o["text"] for o in objects)]:
        assert "<!channel>" not in text and "<https://" not in text and "<@U123>" not in text


def test_the_note_is_escaped_once_not_twice():
    note = m.format_note("a & b < c", "slack")
    assert note["blocks"][0]["text"]["text"] == "a &amp; b &lt; c"
    assert note["text"] == "a &amp; b &lt; c"


def test_one_slack_escape_in_the_code():
    root = Path(m.__file__).parent
    holders = sorted(p.name for p in root.glob("*.py") if '"&amp;"' in p.read_text(encoding="utf-8"))
    assert holders == ["escape.py"]
