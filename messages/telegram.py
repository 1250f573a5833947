"""Telegram output: HTML parse mode, every string escaped, messages under 4,096 characters.

A payload is {"text": html, "buttons": [[{"label", "action"}]]}. A long digest is split
between items (each item is a self-contained run of complete tags), never inside one.
"""
from __future__ import annotations

import html
from datetime import datetime

from detectors.insight import Insight
from messages.digest import Digest, DigestItem
from messages.model import Button
from messages.render import Line, RenderedInsight, fit_lines, render_insight

MAX_CHARS = 4096
MAX_BUTTONS = 100  # Telegram refuses bigger inline keyboards
SEVERITY_MARK = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units), measured on the HTML to stay safe."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2  # never raises, whatever the text


def line_html(ln: Line) -> str:
    out = []
    for span in ln:
        text = html.escape(span.text, quote=False)
        out.append(f"<b>{text}</b>" if span.kind == "strong" else text)
    return "".join(out)


def buttons_json(rows: list[list[Button]]) -> list[list[dict[str, str]]]:
    return [[{"label": b.label, "action": b.action} for b in row] for row in rows]


def item_html(item: DigestItem, number: int) -> str:
    lines = [f"<b>{number}. {SEVERITY_MARK[item.severity]} {line_html(item.title)}</b>"]
    lines += [line_html(b) for b in item.body]
    if item.action:
        lines.append(f"👉 <i>{line_html(item.action)}</i>")
    return "\n".join(fit_lines(lines, MAX_CHARS - 200, tg_len, keep_last=item.action is not None))


def insight_html(r: RenderedInsight, *, details: bool = True) -> str:
    lines = [f"{SEVERITY_MARK[r.severity]} <b>{line_html(r.title)}</b>"]
    lines += [line_html(b) for b in r.body]
    if r.action:
        lines.append(f"👉 <i>{line_html(r.action)}</i>")
    if details and r.details:
        lines.append("")
        lines.append("<b>Подробнее</b>" if r.lang == "ru" else "<b>Details</b>")
        lines += [line_html(d) for d in r.details]
    return "\n".join(fit_lines(lines, MAX_CHARS, tg_len))


def format_insight(insight: Insight, lang: str, *, now: datetime | None = None, details: bool = True,
                   refs: dict | None = None, you: bool = True) -> dict:
    """One insight as one message (the details view, or a single alert), with its full buttons;
    `refs` names the evidence in the details (messages.render.render_insight); you=False: a
    director reads about a manager's item."""
    r = render_insight(insight, lang, now=now, refs=refs, you=you)
    return {"text": insight_html(r, details=details), "buttons": buttons_json(r.buttons)}


def format_digest(digest: Digest) -> list[dict]:
    """The digest as one or more messages; each message carries the buttons of its own items."""
    head = [f"<b>{line_html(digest.header)}</b>"]
    if digest.subheader:
        head.append(line_html(digest.subheader))
    blocks: list[tuple[str, list[list[Button]]]] = [("\n".join(head), [])]
    for number, item in enumerate(digest.items, start=1):
        blocks.append((item_html(item, number), item.buttons))
    for line in digest.closing():
        blocks.append((line_html(line), []))

    messages: list[dict] = []
    text, rows = "", []
    for block, block_rows in blocks:
        joined = f"{text}\n\n{block}" if text else block
        n_buttons = sum(len(r) for r in rows) + sum(len(r) for r in block_rows)
        if text and (tg_len(joined) > MAX_CHARS or n_buttons > MAX_BUTTONS):
            messages.append({"text": text, "buttons": buttons_json(rows)})
            text, rows = block, list(block_rows)
        else:
            text, rows = joined, rows + list(block_rows)
    messages.append({"text": text, "buttons": buttons_json(rows)})
    return messages
