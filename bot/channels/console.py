"""Console channel: prints what would be sent, for `demo`, dry runs and tests.

It accepts any payload (the terminal text, or a Telegram/Slack payload in a dry run of a real
configuration): Telegram HTML is shown as plain text, buttons as [labels], a chart as a line
naming the PNG (written to `chart_dir` when one is given, so a demo can open it).
"""
from __future__ import annotations

import html
import itertools
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.channels.base import OutgoingMessage, SendReceipt

_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")


def plain_text(payload: dict[str, Any]) -> str:
    """The readable text of a payload: HTML tags dropped and entities decoded."""
    text = str(payload.get("text") or "")
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub("", re.sub(r"<br\s*/?>", "\n", text)))
    return text


def _safe(text: str) -> str:
    from messages.terminal import terminal_safe  # CRM names in it: nothing may drive the terminal

    return terminal_safe(text)


def _labels(payload: dict[str, Any]) -> list[str]:
    rows = payload.get("buttons")
    if rows:
        return [b["label"] for row in rows for b in row]
    return [e["text"]["text"] for block in payload.get("blocks") or []
            if block.get("type") == "actions" for e in block.get("elements", [])
            if isinstance(e.get("text"), dict)]


class ConsoleChannel:
    name = "console"

    def __init__(self, stream: TextIO | None = None, *, chart_dir: Path | None = None,
                 width: int = 72) -> None:
        self.stream = stream
        self.chart_dir = Path(chart_dir) if chart_dir is not None else None
        self.width = width
        self.sent: list[OutgoingMessage] = []
        self._ids = itertools.count(1)

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        out = self.stream or sys.stdout
        message_id = str(next(self._ids))
        edit = f" (replaces message {message.edit_message_id})" if message.edit_message_id else ""
        out.write(_safe(f"── to {message.address} via {message.channel}{edit} ") + "─" * 8 + "\n")
        if message.photo_png is not None:
            out.write(self._chart_line(message, message_id) + "\n")
        out.write(_safe(plain_text(message.payload)).rstrip() + "\n")
        labels = _labels(message.payload)
        if labels:
            out.write(_safe("  ".join(f"[{label}]" for label in labels)) + "\n")
        out.write("\n")
        out.flush()
        self.sent.append(message)
        return SendReceipt(message_id)

    def _chart_line(self, message: OutgoingMessage, message_id: str) -> str:
        size = len(message.photo_png or b"")
        if self.chart_dir is None:
            return f"[chart: PNG, {size} bytes]"
        self.chart_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.-]+", "_", message.dedup_key or f"chart-{message_id}")[:80]
        path = self.chart_dir / f"{safe}.png"
        path.write_bytes(message.photo_png or b"")
        return f"[chart: {path}]"
