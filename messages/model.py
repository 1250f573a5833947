"""Shapes shared between messages/ and the bot: buttons and their callback payloads.

A button's `action` is what comes back when a person presses it (Telegram callback_data,
Slack action value). It must stay under Telegram's 64-byte callback_data limit, so it is
`<verb>:<fingerprint>[:<arg>]` with short verbs:
    snooze:<fp>:1d   snooze:<fp>:7d   done:<fp>   useful:<fp>   notuseful:<fp>   details:<fp>
    unsnooze:<fp>    mq:<question_no>:<answer_no>   mq:back   mq:cancel   (maturity check)
"""
from __future__ import annotations

from dataclasses import dataclass

ACTION_VERBS = ("snooze", "unsnooze", "done", "useful", "notuseful", "details", "mq")


@dataclass(frozen=True)
class Button:
    label: str
    action: str

    def __post_init__(self) -> None:
        if len(self.action.encode("utf-8")) > 64:
            raise ValueError(f"button action over 64 bytes: {self.action!r}")


def parse_action(action: str) -> tuple[str, list[str]]:
    """'snooze:abc:7d' -> ('snooze', ['abc', '7d']); raises ValueError on an unknown verb."""
    verb, *args = action.split(":")
    if verb not in ACTION_VERBS:
        raise ValueError(f"unknown button action {action!r}")
    return verb, args
