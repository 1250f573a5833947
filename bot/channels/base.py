"""The one small interface every channel (telegram, slack, console) implements.

The outbox stores an OutgoingMessage as JSON before sending and calls `Channel.send`;
the channel maps its API's answers onto three outcomes so delivery can decide what to do:
returns normally (sent), raises RetryLater (429/5xx/timeout/connection: try again later),
raises PermanentFailure (blocked by the user, chat not found, channel archived: record and
show the admin, never retry).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

ChannelName = Literal["telegram", "slack", "console"]


@dataclass
class OutgoingMessage:
    channel: ChannelName
    address: str  # Telegram chat id, Slack user/channel id, or a console label
    # Channel-ready payload from messages/: Telegram {"text": html, "buttons": [[{label, action}]]},
    # Slack {"text": fallback, "blocks": [...]}, console {"text": plain}.
    payload: dict[str, Any]
    photo_png: bytes | None = None  # a chart sent before/with the text
    dedup_key: str = ""  # unique per logical message; the outbox refuses a second copy
    edit_message_id: str | None = None  # edit this earlier message in place (maturity flow)
    # An answer only this user may see, where they pressed a button (a group): Telegram shows it
    # as the button's pop-up (answerCallbackQuery show_alert), Slack as an ephemeral message.
    # Where that cannot be done it goes to the user's own chat, never to `address` for all to see.
    private_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("photo_png")
        return d


@dataclass
class Inbound:
    """What a person did in a chat, channel-neutral, for bot.handlers."""

    channel: ChannelName
    user_id: str  # Telegram user id / Slack user id, as a string
    chat_id: str  # where to answer: Telegram chat id / Slack channel or DM id
    text: str | None = None  # a command or free text: "/snoozed", "/lang en", "hello"
    action: str | None = None  # a pressed button's action string (messages.model)
    language_code: str | None = None  # Telegram's user.language_code, if any
    message_id: str | None = None  # the message the button was on (for edit in place)


@dataclass
class SendReceipt:
    message_id: str  # the API's id of what was sent (for edits, e.g. the maturity flow)
    extra: dict[str, Any] = field(default_factory=dict)


class RetryLater(Exception):
    def __init__(self, reason: str, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_seconds = after_seconds


class PermanentFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel(Protocol):
    name: ChannelName

    async def send(self, message: OutgoingMessage) -> SendReceipt: ...
