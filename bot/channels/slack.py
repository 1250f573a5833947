"""Slack channel: slack-bolt AsyncApp for inbound, slack_sdk AsyncWebClient for sending.

Socket Mode by default (no public URL needed: an app-level xapp- token); HTTP mode as an option,
where bolt verifies every request's signature (a wrong or stale one gets 401). Messages are
Block Kit (chat.postMessage), charts go up with files_upload_v2 before the text, the maturity
flow edits in place with chat.update. People reach the bot through buttons (app.action),
the slash command `/pulse <verb>` and direct messages; each becomes an `Inbound` for
`on_inbound`, whose replies are sent straight back.

Error mapping for the outbox: 429 (after one in-client retry honouring Retry-After), 5xx,
timeouts and connection errors -> RetryLater; channel_not_found, is_archived, not_in_channel,
account_inactive and other request errors -> PermanentFailure; a bad token -> RetryLater (every
message would fail the same way, so they wait until an admin fixes it).
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Literal

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.base import Inbound, OutgoingMessage, PermanentFailure, RetryLater, SendReceipt
from bot.channels.common import OnInbound, answer_inbound, send_reply

log = logging.getLogger(__name__)

# The bot token scopes this module needs, by what uses them; slack-app-manifest.yml asks for
# exactly these (a test keeps the two in step).
REQUIRED_SCOPES: dict[str, str] = {
    "chat:write": "chat.postMessage, chat.postEphemeral, chat.update",
    "files:write": "files_upload_v2 (files.getUploadURLExternal, files.completeUploadExternal)",
    "im:write": "conversations.open (a person's DM)",
    "im:history": "the message.im event (people writing to the bot)",
    "commands": "the /pulse slash command",
}

# Slack error codes that will not get better by retrying the same message.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "is_archived", "not_in_channel", "account_inactive", "user_not_found",
    "user_disabled", "cannot_dm_bot", "restricted_action", "invalid_blocks", "msg_too_long",
    "no_text", "too_many_attachments", "message_not_found", "cant_update_message",
    "edit_window_closed", "invalid_arguments",
})
# Slack error codes that are about the service or the token, not this message.
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "invalid_auth", "not_authed", "token_revoked", "token_expired", "team_added_to_org",
})


_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds as Slack sends them (ASCII digits only)


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _is_person(address: str) -> bool:
    """Slack user ids (U..., W...) need a DM opened first; C/G/D ids are conversations."""
    return address[:1] in ("U", "W")


class SlackChannel:
    name = "slack"

    def __init__(
        self,
        bot_token: str,
        *,
        app_token: str | None = None,
        signing_secret: str | None = None,
        base_url: str | None = None,
        on_inbound: OnInbound | None = None,
        mode: Literal["socket", "http"] = "socket",
        listen: str = "0.0.0.0",
        port: int = 3000,
        path: str = "/slack/events",
        command: str = "/pulse",
        timeout: float = 15.0,
        rate_limit_retries: int = 1,
        bot_token_env: str = "CRM_PULSE_SLACK_BOT_TOKEN",
        app_token_env: str = "CRM_PULSE_SLACK_APP_TOKEN",
    ) -> None:
        if not bot_token:
            raise ValueError("SlackChannel needs a bot token (xoxb-..., from the Slack app)")
        if mode not in ("socket", "http"):
            raise ValueError(f"slack mode must be 'socket' or 'http', got {mode!r}")
        if mode == "socket" and not app_token:
            raise ValueError("slack Socket Mode needs an app-level token (xapp-..., "
                             "scope connections:write)")
        if mode == "http" and not signing_secret:
            raise ValueError("slack HTTP mode needs the app's signing secret")
        self.mode = mode
        self.app_token = app_token
        self.token_envs = {"bot": bot_token_env, "app": app_token_env}  # named in a rejection
        self.on_inbound = on_inbound
        self.listen, self.port, self.path = listen, port, path
        self.command = command
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=(base_url or AsyncWebClient.BASE_URL).rstrip("/") + "/",
            timeout=int(max(1, round(timeout))),
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1),
                            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)],
        )
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret or "",
                            request_verification_enabled=(mode == "http"))
        self.app.action(re.compile(".*"))(self._on_action)
        self.app.command(command)(self._on_command)
        self.app.event("message")(self._on_message)
        self.app.error(self._on_error)
        self._socket: AsyncSocketModeHandler | None = None
        self._http: web.AppRunner | None = None
        self._dm_channels: dict[str, str] = {}  # user id -> DM channel id
        self._files_sent: dict[tuple[str, str], str] = {}  # (address, dedup_key) -> file id

    # ---- lifecycle -------------------------------------------------------------------------
    async def check_tokens(self) -> None:
        """Fail fast with a clear reason: a wrong token would otherwise only show up as a
        connection retried forever (Socket Mode) or as every message failing."""
        try:
            await self.client.auth_test()
            if self.mode == "socket":
                await self.client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            which = (f"the app-level token in {self.token_envs['app']} (xapp-..., needs connections:write)"
                     if exc.response.api_url.endswith("apps.connections.open")
                     else f"the bot token in {self.token_envs['bot']} (xoxb-..., OAuth & Permissions)")
            if code in ("invalid_auth", "not_authed", "token_revoked", "token_expired",
                        "account_inactive", "not_allowed_token_type"):
                raise PermanentFailure(f"Slack rejected {which}: {code}") from exc
            raise self._map_api_error("slack", exc) from exc
        except (asyncio.TimeoutError, aiohttp.ClientError, SlackClientError) as exc:
            raise RetryLater(f"slack unreachable: {exc!r}") from exc

    async def start(self) -> None:
        """Start receiving: a Socket Mode connection, or the signed-request HTTP endpoint."""
        await self.check_tokens()
        if self.mode == "socket":
            self._socket = AsyncSocketModeHandler(self.app, self.app_token)
            await self._socket.connect_async()
        else:
            web_app = web.Application()
            web_app.router.add_post(self.path, self._http_endpoint)
            self._http = web.AppRunner(web_app, access_log=None)
            await self._http.setup()
            try:
                await web.TCPSite(self._http, self.listen, self.port).start()
            except OSError as exc:  # the port is taken or not ours to bind
                raise PermanentFailure(f"slack HTTP mode cannot listen on {self.listen}:"
                                       f"{self.port}: {exc}") from exc

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        if self.client.session is not None and not self.client.session.closed:
            await self.client.session.close()

    async def _http_endpoint(self, request: web.Request) -> web.Response:
        """Bolt checks the signature; what it cannot even parse is refused here first: a
        timestamp that is not a number (bolt's int() raised: 500) or a body that is not UTF-8.
        Either way the request is not Slack's, so 401, as for a bad signature."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not _TIMESTAMP.fullmatch(timestamp) or "X-Slack-Signature" not in request.headers:
            return web.Response(status=401, text="invalid request")
        try:
            (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            return web.Response(status=401, text="invalid request")
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    # ---- sending ---------------------------------------------------------------------------
    async def _conversation(self, address: str) -> str:
        if not _is_person(address):
            return address
        channel = self._dm_channels.get(address)
        if channel is None:
            opened = await self.client.conversations_open(users=address)
            channel = self._dm_channels[address] = opened["channel"]["id"]
        return channel

    def _pooled_session(self) -> None:
        if self.client.session is None or self.client.session.closed:
            # One pooled HTTP session instead of a new connection per API call.
            self.client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.client.timeout))

    async def show_private(self, reply: OutgoingMessage) -> bool:
        """A reply only reply.private_to sees, in the channel where they pressed the button
        (chat.postEphemeral); False when Slack refuses (then it goes to their DM instead)."""
        if reply.private_to is None or _is_person(reply.address):
            return False
        self._pooled_session()
        try:
            await self.client.chat_postEphemeral(channel=reply.address, user=reply.private_to,
                                                 text=str(reply.payload.get("text") or ""),
                                                 blocks=reply.payload.get("blocks") or None)
            return True
        except (SlackApiError, SlackClientError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            log.warning("slack: ephemeral answer to %s in %s not shown (%r); sent to their DM",
                        reply.private_to, reply.address, exc)
            return False

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        self._pooled_session()
        payload = message.payload
        text = str(payload.get("text") or "")
        blocks = payload.get("blocks") or None
        try:
            channel = await self._conversation(message.address)
            if message.edit_message_id is not None:
                # blocks=[] must reach Slack: it removes the old buttons (None keeps them).
                updated = await self.client.chat_update(channel=channel,
                                                        ts=message.edit_message_id, text=text,
                                                        blocks=payload.get("blocks"))
                return SendReceipt(str(updated["ts"]), {"channel": channel})
            extra: dict[str, Any] = {"channel": channel}
            if message.photo_png is not None:
                key = (message.address, message.dedup_key)
                file_id = self._files_sent.get(key) if message.dedup_key else None
                if file_id is None:
                    uploaded = await self.client.files_upload_v2(
                        channel=channel, content=message.photo_png, filename="chart.png",
                        title=str(payload.get("chart_title") or "chart"))
                    file_id = uploaded["files"][0]["id"]
                    if message.dedup_key:
                        self._files_sent[key] = file_id
                extra["file_id"] = file_id
            posted = await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            self._files_sent.pop((message.address, message.dedup_key), None)
            return SendReceipt(str(posted["ts"]), extra)
        except SlackApiError as exc:
            mapped = self._map_api_error(message.address, exc)
            if isinstance(mapped, PermanentFailure):  # never retried: forget its upload
                self._files_sent.pop((message.address, message.dedup_key), None)
            raise mapped from exc
        except (asyncio.TimeoutError, aiohttp.ClientError, SlackClientError) as exc:
            raise RetryLater(f"slack unavailable: {exc!r}") from exc

    @staticmethod
    def _map_api_error(address: str, exc: SlackApiError) -> Exception:
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        data = getattr(response, "data", None)
        code = data.get("error", "") if isinstance(data, dict) else ""
        if status == 429 or code == "ratelimited":
            return RetryLater("slack 429 rate limited", _retry_after(response))
        if status >= 500 or code in TRANSIENT_ERRORS:
            return RetryLater(f"slack error {code or status}")
        if code in PERMANENT_ERRORS:
            return PermanentFailure(f"slack refused {address}: {code}")
        return PermanentFailure(f"slack rejected the message to {address}: {code or status}")

    # ---- receiving -------------------------------------------------------------------------
    async def _on_action(self, ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id") or body["user"]["id"]
        message_ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get(
            "message_ts")
        await self._dispatch(Inbound(
            channel="slack", user_id=body["user"]["id"], chat_id=channel,
            action=action.get("value") or action.get("action_id"),
            message_id=message_ts))

    async def _on_command(self, ack, command: dict[str, Any]) -> None:
        await ack()
        verb = (command.get("text") or "").strip() or "help"
        channel_id = command.get("channel_id") or ""
        # Answers go to the person's DM unless the command was typed there: the bot need not
        # be a member of the channel where someone typed /pulse.
        chat_id = channel_id if channel_id.startswith("D") else command["user_id"]
        await self._dispatch(Inbound(channel="slack", user_id=command["user_id"],
                                     chat_id=chat_id, text="/" + verb.lstrip("/")))

    async def _on_message(self, event: dict[str, Any]) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return  # only people writing to the bot directly
        text = (event.get("text") or "").strip()
        if not text or "user" not in event:
            return
        await self._dispatch(Inbound(channel="slack", user_id=event["user"],
                                     chat_id=event["channel"], text=text,
                                     message_id=event.get("ts")))

    async def _dispatch(self, inbound: Inbound) -> None:
        await answer_inbound(self, self.on_inbound, inbound, self.show_private)

    async def send_reply(self, reply: OutgoingMessage, *, attempts: int = 3) -> None:
        """Send an answer now, retrying briefly; a person is waiting for it."""
        await send_reply(self, reply, attempts=attempts)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.warning("slack: error while handling a request: %r", error)
