"""Terminal output: plain, readable text for `demo`, `scan` and tests (no markup, no colour codes).

CRM strings reach the admin's terminal here, so nothing in them may drive the terminal: ANSI
escape sequences (colours, cursor moves, OSC 8 links, OSC 52 clipboard writes, title changes),
other control characters (a carriage return that overprints the line, a backspace) and the
bidirectional overrides that display text in another order than it is stored are removed.
"""
from __future__ import annotations

import re
import shutil
import textwrap
from datetime import datetime, tzinfo

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


_MARKER = re.compile(r"^(\s*(?:[•*-]\s+|\d+[.)]\s+)?)")


def terminal_width(limit: int = WIDTH) -> int:
    """Columns to wrap to: the terminal's (or $COLUMNS), one short of it so the cursor never
    wraps on its own, and at most `limit` so a wide window still reads as a column."""
    columns = shutil.get_terminal_size((limit + 1, 24)).columns
    return max(20, min(limit, columns - 1))


def wrap_text(text: str, width: int) -> str:
    """Plain text made safe for the terminal and wrapped to `width` (see terminal_width): a
    bullet ("• "), a numbered line ("2. ") or an indented line continues under its own text,
    not under its marker. Blank lines and underlines ("=====") are kept."""
    out: list[str] = []
    for line in terminal_safe(text).split("\n"):
        if len(line) <= width or not line.strip() or set(line.strip()) == {"="}:
            out.append(line[:width] if line.strip() and set(line.strip()) == {"="} else line)
            continue
        lead = _MARKER.match(line).group(1)  # type: ignore[union-attr]
        if len(lead) > width // 2:  # a marker wider than half the line: do not indent under it
            lead = ""
        out += textwrap.wrap(line[len(lead):].strip(), width, initial_indent=lead,
                             subsequent_indent=" " * len(lead), break_long_words=True,
                             break_on_hyphens=False) or [lead.rstrip()]
    return "\n".join(out)


def _block(title: str, body: list[Line], action: Line | None, lang: str) -> list[str]:
    lines = _wrap(title, "")
    for b in body:
        lines += _wrap(plain(b), "   ")
    if action:
        lines += _wrap(("→ " if lang == "ru" else "→ ") + plain(action), "   ")
    return lines


def format_insight(insight: Insight, lang: str, *, now: datetime | None = None, details: bool = True,
                   refs: dict | None = None, you: bool = True, tz: tzinfo | None = None) -> str:
    # you=False: a director reads about a manager's item; tz: the company's, for dates
    r = render_insight(insight, lang, now=now, refs=refs, you=you, tz=tz)
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
