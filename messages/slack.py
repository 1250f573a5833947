"""Slack output: Block Kit (header, section, context, actions) plus a plain-text fallback.

Our own words are mrkdwn-escaped (& < >). CRM strings are also neutralised, so a client named
"<!channel>", "*ООО*" or "http://x.y" can trigger no mention, no formatting and no link: the
mrkdwn markers * _ ~ ` become look-alike characters, a word joiner (U+2060) breaks "@here" and
"://", and every mrkdwn object is `verbatim` (no auto-linking). Slack's limits are enforced:
50 blocks per message (more -> several messages), 3,000 characters per section, 150 per
header, 75 per button label, 2,000 per button value, unique action_id within a message.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from detectors.insight import Insight
from messages.digest import Digest, DigestItem
from messages.escape import LOOKALIKES, WJ, neutralise, plain_safe, unicode_safe  # noqa: F401
from messages.escape import slack_escape as escape
from messages.model import Button
from messages.render import Line, RenderedInsight, fit_lines, plain, render_insight

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_FALLBACK = 3000
SEVERITY_MARK = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
def line_mrkdwn(ln: Line) -> str:
    out = []
    for span in ln:
        if span.kind == "name":
            out.append(neutralise(span.text))
        elif span.kind == "strong":
            out.append(f"*{escape(span.text)}*")
        else:
            out.append(escape(span.text))
    return "".join(out)


def line_fallback(ln: Line) -> str:
    return "".join(neutralise(s.text) if s.kind == "name" else escape(s.text) for s in ln)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit_lines(lines: list[str], limit: int, *, keep_last: bool = False) -> str:
    """Join lines, dropping whole lines (so no escape or marker is cut) to fit."""
    return _truncate("\n".join(fit_lines(lines, limit, keep_last=keep_last)), limit)


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def header_block(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _truncate(plain_safe(text), MAX_HEADER), "emoji": True}}


def section(lines: list[str], *, keep_last: bool = False) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(_fit_lines(lines, MAX_SECTION, keep_last=keep_last))}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(_truncate(text, MAX_SECTION))]}


MAX_TEXT_SECTIONS = 20  # a plain message longer than 20 x 3,000 characters is cut, never refused


def format_text(text: str) -> dict[str, Any]:
    """A plain message that may quote CRM strings (a chart caption, a "no longer holds" note, a
    command reply): we cannot tell our words from a stage or client name there, so every line
    is neutralised (no mention, link or formatting can come out of it), in verbatim sections of
    at most 3,000 characters, with the same neutralised text as the notification fallback."""
    lines = [neutralise(ln) for ln in unicode_safe(str(text)).split("\n")] or [""]
    sections: list[list[str]] = [[]]
    size = 0
    for ln in lines:
        ln = _truncate(ln, MAX_SECTION)
        if sections[-1] and size + len(ln) + 1 > MAX_SECTION:
            if len(sections) == MAX_TEXT_SECTIONS:
                break
            sections.append([])
            size = 0
        sections[-1].append(ln)
        size += len(ln) + 1
    blocks = [section(part) for part in sections if any(p.strip() for p in part)]
    return {"text": _fit_lines(lines, MAX_FALLBACK) or "…", "blocks": blocks or [section(["…"])]}


class ActionIds:
    """Unique action_id per message, still telling the bot which verb was pressed."""

    def __init__(self) -> None:
        self.n = 0

    def next(self, action: str) -> str:
        self.n += 1
        return f"{action.split(':', 1)[0]}-{self.n}"


def actions_blocks(rows: list[list[Button]], ids: ActionIds) -> list[dict[str, Any]]:
    buttons = [b for row in rows for b in row]
    blocks = []
    for start in range(0, len(buttons), MAX_ACTIONS_ELEMENTS):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": _truncate(plain_safe(b.label), MAX_BUTTON_TEXT), "emoji": True},
             "action_id": ids.next(b.action), "value": b.action[:MAX_BUTTON_VALUE]}
            for b in buttons[start:start + MAX_ACTIONS_ELEMENTS]]})
    return blocks


def _item_lines(title: str, body: list[Line], action: Line | None) -> list[str]:
    return [title] + _item_lines_no_title(body, action) if (body or action) else [title]


def _item_lines_no_title(body: list[Line], action: Line | None) -> list[str]:
    """The header block already shows the title; the section carries the rest."""
    lines = [line_mrkdwn(b) for b in body]
    if action:
        lines.append("👉 " + line_mrkdwn(action))
    return lines or ["…"]


def format_insight(insight: Insight, lang: str, *, now: datetime | None = None, details: bool = True,
                   refs: dict | None = None, you: bool = True) -> dict:
    """One insight as one message (details view or single alert), with its full buttons;
    `refs` names the evidence in the details (messages.render.render_insight); you=False: a
    director reads about a manager's item."""
    r = render_insight(insight, lang, now=now, refs=refs, you=you)
    blocks = [header_block(f"{SEVERITY_MARK[r.severity]} {plain(r.title)}"),
              section(_item_lines_no_title(r.body, r.action), keep_last=r.action is not None)]
    if details and r.details:
        blocks.append(context("\n".join(line_mrkdwn(d) for d in r.details)))
    blocks += actions_blocks(r.buttons, ActionIds())
    return {"text": _fallback_insight(r), "blocks": blocks}


def _fallback_insight(r: RenderedInsight) -> str:
    return _truncate("\n".join([line_fallback(r.title), *(line_fallback(b) for b in r.body)]), MAX_FALLBACK)


def _item_blocks(item: DigestItem, number: int, ids: ActionIds) -> list[dict[str, Any]]:
    title = f"*{number}. {SEVERITY_MARK[item.severity]} {line_mrkdwn(item.title)}*"
    return [section(_item_lines(title, item.body, item.action), keep_last=item.action is not None),
            *actions_blocks(item.buttons, ids)]


def format_digest(digest: Digest) -> list[dict]:
    """The digest as one or more Slack messages, each within Block Kit's limits."""
    head: list[dict[str, Any]] = [header_block(plain(digest.header))]
    if digest.subheader:
        head.append(context(line_mrkdwn(digest.subheader)))
    groups: list[tuple[list[dict[str, Any]], str]] = []
    ids = ActionIds()
    for number, item in enumerate(digest.items, start=1):
        groups.append((_item_blocks(item, number, ids), f"{number}. {line_fallback(item.title)}"))
    for line in digest.closing():
        groups.append(([context(line_mrkdwn(line))], line_fallback(line)))

    header_text = line_fallback(digest.header)
    messages: list[dict] = []
    blocks, fallback = list(head), [header_text]
    for group, summary in groups:
        if len(blocks) + len(group) > MAX_BLOCKS and len(blocks) > 0:
            messages.append({"text": _truncate("\n".join(fallback), MAX_FALLBACK), "blocks": blocks})
            blocks, fallback = [], [header_text]
        blocks += group
        fallback.append(summary)
    messages.append({"text": _truncate("\n".join(fallback), MAX_FALLBACK), "blocks": blocks})
    return _renumber_action_ids(messages)


def _renumber_action_ids(messages: list[dict]) -> list[dict]:
    """action_id only has to be unique within a message; keep them short and sequential per message."""
    for msg in messages:
        ids = ActionIds()
        for block in msg["blocks"]:
            for el in block.get("elements", []):
                if el.get("type") == "button":
                    el["action_id"] = ids.next(el["value"])
    return messages
