"""Terminal output: plain, readable text for `demo`, `scan` and tests (no markup, no colour codes).

CRM strings reach the admin's terminal here, so nothing in them may drive the terminal: ANSI
escape sequences (colours, cursor moves, OSC 8 links, OSC 52 clipboard writes, title changes),
other control characters (a carriage return that overprints the line, a backspace) and the
bidirectional overrides that display text in another order than it is stored are removed.
"""
from __future__ import annotations

import textwrap
from datetime import datetime

from detectors.insight import Insight
from messages.digest import Digest, DigestItem
from messages.escape import terminal_safe  # noqa: F401  (the one copy; re-exported for callers)
from messages.render import Line, plain, render_insight

WIDTH = 100
SEVERITY_TAG = {
    "ru": {"critical": "[срочно]", "warning": "[важно]", "info": "[к сведению]"},
    "en": {"critical": "[urgent]", "warning": "[important]", "info": "[fyi]"},
}


def _wrap(text: str, indent: str) -> list[str]:
    text = terminal_safe(text)
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def _block(title: str, body: list[Line], action: Line | None, lang: str) -> list[str]:
    lines = _wrap(title, "")
    for b in body:
        lines += _wrap(plain(b), "   ")
    if action:
        lines += _wrap(("→ " if lang == "ru" else "→ ") + plain(action), "   ")
    return lines


def format_insight(insight: Insight, lang: str, *, now: datetime | None = None, details: bool = True,
                   you: bool = True) -> str:
    r = render_insight(insight, lang, now=now, you=you)  # you=False: a director reads about a manager's item
    lines = _block(f"{SEVERITY_TAG[r.lang][r.severity]} {plain(r.title)}", r.body, r.action, r.lang)
    if details and r.details:
        lines.append("   " + ("Подробнее:" if r.lang == "ru" else "Details:"))
        for d in r.details:
            lines += _wrap(plain(d), "     ")
    return terminal_safe("\n".join(lines))


def _item(item: DigestItem, number: int, lang: str) -> list[str]:
    lines = _block(f"{number}. {SEVERITY_TAG[lang][item.severity]} {plain(item.title)}", item.body, item.action, lang)
    codes = ", ".join(item.fingerprints)
    lines.append(("   код: " if lang == "ru" else "   id: ") + codes)
    return lines


def format_digest(digest: Digest) -> str:
    head = terminal_safe(plain(digest.header))
    lines = [head, "=" * min(len(head), WIDTH)]
    if digest.subheader:
        lines.append(plain(digest.subheader))
    for number, item in enumerate(digest.items, start=1):
        lines.append("")
        lines += _item(item, number, digest.lang)
    for line in digest.closing():
        lines += ["", plain(line)]
    return terminal_safe("\n".join(lines))
