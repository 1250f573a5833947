"""What the Telegram and Slack channels do alike with what a person writes or presses: hand it
to the bot's handler (bot.handlers) and send the answers straight back, retrying briefly,
because a person is waiting. A failing handler is logged and never stops the channel."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Awaitable, Callable, Sequence

from bot.channels.base import Channel, Inbound, OutgoingMessage, PermanentFailure, RetryLater

log = logging.getLogger(__name__)

OnInbound = Callable[[Inbound], Awaitable[Sequence[OutgoingMessage]]]
# Shows a reply only to reply.private_to where they are (a pop-up, an ephemeral message);
# False when it could not, and the reply then goes to that user's own chat.
ShowPrivate = Callable[[OutgoingMessage], Awaitable[bool]]


async def answer_inbound(channel: Channel, on_inbound: OnInbound | None, inbound: Inbound,
                         show_private: ShowPrivate | None = None,
                         before_send: Callable[[], Awaitable[object]] | None = None) -> None:
    """Run the handler for `inbound` and send its replies through `channel`; a private reply
    (OutgoingMessage.private_to) is shown by `show_private` first, else sent to the user's own
    chat. `before_send` runs once the private ones are shown, before the rest are sent (Telegram
    stops the button's spinner there)."""
    if on_inbound is None:
        log.info("%s: no handler for inbound %s", channel.name, inbound)
        return
    try:
        replies = await on_inbound(inbound)
    except Exception:
        log.exception("%s: handling %s from user %s failed", channel.name,
                      inbound.text or inbound.action, inbound.user_id)
        return
    outgoing: list[OutgoingMessage] = []
    for reply in replies or ():
        if reply.private_to is not None:
            if show_private is not None and await show_private(reply):
                continue
            reply = dataclasses.replace(reply, address=reply.private_to, private_to=None)
        outgoing.append(reply)
    if before_send is not None:
        await before_send()
    for reply in outgoing:
        await send_reply(channel, reply)


async def send_reply(channel: Channel, reply: OutgoingMessage, *, attempts: int = 3) -> None:
    """Send an answer now, retrying a few times within seconds; give up with a warning."""
    for attempt in range(1, attempts + 1):
        try:
            await channel.send(reply)
            return
        except RetryLater as exc:
            if attempt == attempts:
                log.warning("%s: reply to %s not sent: %s", channel.name, reply.address, exc.reason)
                return
            await asyncio.sleep(min(exc.after_seconds or 0.5 * attempt, 5.0))
        except PermanentFailure as exc:
            log.warning("%s: reply to %s failed: %s", channel.name, reply.address, exc.reason)
            return
