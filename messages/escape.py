"""Text hygiene every formatter shares, in a module that imports nothing of ours (so slack,
digest and maturity can all use it without an import cycle).

`unicode_safe`: a string any encoder accepts (no lone surrogates). Slack's mrkdwn escape and
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
