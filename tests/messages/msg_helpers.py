"""Shared helpers for the messages tests: the fixed clock, hostile CRM strings, limit checks."""
from __future__ import annotations

import json
import os
import struct
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

from detectors.insight import Audience, Insight

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)  # 09:00 in Almaty
ALMATY = timezone(timedelta(hours=5))
GOLDEN = Path(__file__).parent / "golden"

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "tag": '<b>ООО "A&B"</b>',
    "entity": "&amp; Co",
    "channel": "<!channel> срочно",
    "here": "@here <!here> <!everyone>",
    "user": "<@U123ABC> привет",
    "link": "<http://evil.example|жми> http://evil.example/x",
    "bold": "*bold* клиент",
    "italic": "_x_ ~strike~ `code`",
    "emoji": "Кофейня 🚀☕️ 👨‍👩‍👧",
    "rtl": "שלום مرحبا \u202eтекст",
    "long": "ООО «Очень длинное название» " * 400,
}


def stalled(deal_id: str, title: str, days: int, amount: float, *, manager_id: str = "m2",
            severity: str = "warning", client: str = "ТОО «Алтын Строй»") -> Insight:
    return Insight(
        detector="stalled_deal", severity=severity, audience=Audience("manager", manager_id),
        subject={"deal_id": deal_id},
        facts={"deal_title": title, "client_name": client, "manager_id": manager_id, "manager_name": "Данияр Ахметов",
               "stage": "Переговоры", "amount": amount, "currency": "KZT", "days_idle": days, "stage_limit_days": 14,
               "last_touch_at": "2026-11-05T12:00:00+05:00", "last_touch_kind": "call", "escalated": False},
        evidence={"deal_ids": [deal_id]},
    )


def check_golden(name: str, actual: str) -> None:
    """Compare with tests/messages/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1, then review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"rendering of {name} changed; review the diff, then UPDATE_GOLDEN=1 if intended"


def telegram_golden_text(payload: dict) -> str:
    rows = "\n".join(" | ".join(f"{b['label']} -> {b['action']}" for b in row) for row in payload["buttons"])
    return f"{payload['text']}\n\n--- buttons ---\n{rows}\n"


def slack_golden_text(payload: dict | list) -> str:
    return json.dumps(payload, ensure_ascii=False, indent=1) + "\n"


class TelegramHtmlChecker(HTMLParser):
    """Fails on any tag Telegram's HTML mode does not know, and on unbalanced tags."""

    ALLOWED = {"b", "i", "u", "s", "code", "pre", "a", "tg-spoiler", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, f"tag <{tag}> would reach Telegram"
        self.stack.append(tag)
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def telegram_visible_text(html_text: str) -> str:
    checker = TelegramHtmlChecker()
    checker.feed(html_text)
    checker.close()
    assert not checker.stack, f"unclosed tags {checker.stack}"
    return "".join(checker.text)


def check_slack_limits(message: dict) -> None:
    """Block Kit limits a Slack message must respect, or chat.postMessage refuses it."""
    blocks = message["blocks"]
    assert isinstance(message["text"], str) and message["text"].strip(), "fallback text missing"
    assert len(message["text"]) <= 40000
    assert 1 <= len(blocks) <= 50, f"{len(blocks)} blocks"
    action_ids = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert len(block["text"]["text"]) <= 3000
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for el in block["elements"]:
                assert el["type"] == "button"
                assert 1 <= len(el["text"]["text"]) <= 75
                assert len(el["value"]) <= 2000 and len(el["action_id"]) <= 255
                action_ids.append(el["action_id"])
        else:
            raise AssertionError(f"unexpected block type {kind}")
    assert len(action_ids) == len(set(action_ids)), "action_id repeated within one message"


def slack_texts(message: dict, kind: str | None = None) -> list[str]:
    """Every text in a message (the fallback counts as mrkdwn); only `kind` ("mrkdwn"/"plain_text") if given."""
    found = [("mrkdwn", message["text"])]
    for block in message["blocks"]:
        if "text" in block:
            found.append((block["text"]["type"], block["text"]["text"]))
        for el in block.get("elements", []):
            obj = el["text"] if isinstance(el.get("text"), dict) else el
            found.append((obj["type"], obj["text"]))
    return [text for k, text in found if kind is None or k == kind]


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_phone_png(data: bytes | None) -> None:
    assert data is not None
    width, height = png_size(data)
    assert width >= 800 and height >= 450, f"{width}x{height} is too small to read on a phone"
    assert len(data) < 200 * 1024, f"{len(data)} bytes is over 200 KB"
