"""Text hygiene every formatter shares, in a module that imports nothing of ours (so slack,
digest and maturity can all use it without an import cycle).

`unicode_safe`: a string any encoder accepts (no lone surrogates). `terminal_safe`: a string
that cannot drive a terminal (used by messages.terminal and by every line the CLI prints). Slack's mrkdwn escape and
the CRM-string neutraliser live here too, the one copy for Slack (DESIGN.md: escaping lives in
one place per platform); messages.slack re-exports them.
"""
from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_safe(text: str) -> str:
    """`text` with every code point UTF-8 cannot encode (lone surrogates, as a JSON API's
    "\\ud800" or surrogateescape'd bytes leave them) replaced by U+FFFD; a split surrogate pair
    becomes the character it means. Without this one such string makes the UTF-16 length,
    the JSON body or the terminal raise."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# ESC [ ... final byte (CSI), ESC ] ... BEL or ESC \ (OSC), ESC P/X/^/_ ... ESC \ (strings),
# any other two-byte ESC sequence; and their 8-bit C1 forms.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
                      r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                      r"|\x1b[ -/]*[0-~]?")
# Every other C0/C1 control but newline, and the bidi embeddings, overrides and isolates.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with nothing a terminal would act on: escape sequences and control characters
    removed, tabs as spaces, newlines kept (and no lone surrogate, which print() cannot encode)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", unicode_safe(str(text)).replace("\t", " ")))


# --- Slack (the one copy: messages.slack and messages.maturity both use these) -------------

WJ = "\u2060"  # word joiner: invisible, stops Slack from seeing "@here" or "://"
LOOKALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})


def slack_escape(text: str) -> str:
    """Slack's three control characters in mrkdwn and plain fallback text: &, <, > become
    entities, so no text becomes a link, a mention or a <!channel>."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def neutralise(text: str) -> str:
    """A CRM string made inert in mrkdwn: escaped, no formatting markers, no mentions, no links."""
    text = slack_escape(text).translate(LOOKALIKES)
    return text.replace("@", "@" + WJ).replace("://", ":" + WJ + "//")


def plain_safe(text: str) -> str:
    """For plain_text objects (header, buttons): Slack does not parse them, but we still break
    anything that looks like a mention or a link, in case a client copies it elsewhere."""
    return text.replace("<", "<" + WJ).replace("@", "@" + WJ).replace("://", ":" + WJ + "//")
