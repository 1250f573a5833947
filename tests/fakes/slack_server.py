"""A fake Slack Web API server (aiohttp, 127.0.0.1, random port) for tests.

It implements what the bot calls through slack_sdk / slack-bolt: auth.test, chat.postMessage,
chat.postEphemeral (kept apart, in `ephemerals`: only that user sees it), chat.update, conversations.open, files.getUploadURLExternal + the upload URL +
files.completeUploadExternal (files_upload_v2), apps.connections.open and a Socket Mode
websocket (so the default Socket Mode path runs for real). Everything accepted is kept per
channel in order. Faults (429 with a Retry-After header, 500, slow, dropped connections) come
from a FaultPlan; channels can be marked archived / missing / not joined.

Point slack_sdk at it with `base_url=server.base_url` (".../api/").
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.faults import FaultPlan, fault_answer
from tests.fakes.local_server import LocalServer, decode_form_value

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
BOT_USER_ID = "UBOT000001"


@dataclass
class Posted:
    """One thing that appeared in a channel: a message or a shared file."""

    kind: str  # "message" | "file"
    channel: str
    ts: str
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None
    file: bytes | None = None
    title: str | None = None
    edits: int = 0

    @property
    def action_ids(self) -> list[str]:
        return [e.get("action_id") for b in self.blocks or [] if b.get("type") == "actions"
                for e in b.get("elements", [])]

    @property
    def action_values(self) -> list[str]:
        """The buttons' values: the action strings the bot gets back when one is pressed."""
        return [e.get("value") for b in self.blocks or [] if b.get("type") == "actions"
                for e in b.get("elements", [])]


@dataclass
class _Upload:
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeSlackServer(LocalServer):
    def __init__(self, *, faults: FaultPlan | None = None) -> None:
        self.faults = faults or FaultPlan()
        self.posts: dict[str, list[Posted]] = defaultdict(list)  # channel id -> in order
        # chat.postEphemeral: (channel, user, what only that user sees); never in `posts`
        self.ephemerals: list[tuple[str, str, Posted]] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.archived: set[str] = set()
        self.missing: set[str] = set()
        self.not_joined: set[str] = set()
        self.inactive_users: set[str] = set()
        self.acks: dict[str, dict[str, Any]] = {}  # socket mode envelope id -> ack body
        self._uploads: dict[str, _Upload] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._socket_open = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)

    async def closing(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # ---- what tests look at ----------------------------------------------------------------
    def texts(self, channel: str) -> list[str | None]:
        return [p.text for p in self.posts.get(channel, []) if p.kind == "message"]

    # ---- Socket Mode: what a user does ----------------------------------------------------
    async def wait_socket(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._socket_open.wait(), timeout)

    async def push_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver an event ("events_api", "interactive", "slash_commands") over Socket Mode."""
        envelope_id = f"env-{next(self._ids)}"
        body = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
                "retry_reason": ""}
        if not self._sockets:
            raise AssertionError("no Socket Mode connection is open")
        for ws in list(self._sockets):
            await ws.send_str(json.dumps(body))
        return envelope_id

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "connection_info": {"app_id": "A0TEST"},
                                      "debug_info": {"host": "fake"}}))
        self._socket_open.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    body = json.loads(msg.data)
                    if "envelope_id" in body:
                        self.acks[body["envelope_id"]] = body
        finally:
            self._sockets.discard(ws)
            if not self._sockets:
                self._socket_open.clear()
        return ws

    # ---- the Web API -----------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: decode_form_value(v) for k, v in request.query.items()}
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                params.update({k: decode_form_value(v) for k, v in form.items()})
        return params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        self.calls[method] += 1
        params = await self._params(request)
        faulty = await fault_answer(
            self.faults, method, request,
            too_many=lambda: self._answer({"ok": False, "error": "ratelimited"}, 429,
                                          headers={"Retry-After": str(self.faults.retry_after)}),
            server_error=lambda: self._answer({"ok": False, "error": "internal_error"}, 500))
        if faulty is not None:
            return faulty

        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or params.get("token", "")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return self._answer({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return self._answer({"ok": False, "error": "unknown_method"}, status=404)
        try:
            result = handler(params)
        except _SlackError as exc:
            return self._answer({"ok": False, "error": exc.code})
        return self._answer({"ok": True, **result})

    def _answer(self, body: dict[str, Any], status: int = 200,
                headers: dict[str, str] | None = None) -> web.Response:
        self.statuses[status] += 1
        return web.json_response(body, status=status, headers=headers)

    def _channel(self, channel: Any) -> str:
        channel = str(channel or "")
        if not channel or channel in self.missing:
            raise _SlackError("channel_not_found")
        if channel in self.archived:
            raise _SlackError("is_archived")
        if channel in self.not_joined:
            raise _SlackError("not_in_channel")
        if channel.startswith("U"):
            raise _SlackError("channel_not_found")  # the bot opens a DM first (im:write)
        return channel

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://fake.slack.test/", "team": "Test", "user": "crm-pulse",
                "team_id": "T0TEST", "user_id": BOT_USER_ID, "bot_id": "B0TEST",
                "is_enterprise_install": False}

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users") or "")
        if not users or "," in users:
            raise _SlackError("user_not_found")
        if users in self.inactive_users:
            raise _SlackError("account_inactive")
        return {"channel": {"id": "D" + users.removeprefix("U")}}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        if not params.get("text") and not params.get("blocks"):
            raise _SlackError("no_text")
        posted = Posted("message", channel, self._next_ts(), params.get("text"),
                        decode_form_value(params.get("blocks")))
        self.posts[channel].append(posted)
        return {"channel": channel, "ts": posted.ts,
                "message": {"text": posted.text, "ts": posted.ts, "bot_id": "B0TEST"}}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        user = str(params.get("user") or "")
        if not user:
            raise _SlackError("user_not_found")
        if not params.get("text") and not params.get("blocks"):
            raise _SlackError("no_text")
        posted = Posted("ephemeral", channel, self._next_ts(), params.get("text"),
                        decode_form_value(params.get("blocks")))
        self.ephemerals.append((channel, user, posted))
        return {"message_ts": posted.ts}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        for posted in self.posts.get(channel, []):
            if posted.ts == params.get("ts") and posted.kind == "message":
                posted.text = params.get("text")
                if "blocks" in params:  # as Slack: no blocks keeps the old ones, [] clears
                    posted.blocks = decode_form_value(params.get("blocks"))
                posted.edits += 1
                return {"channel": channel, "ts": posted.ts, "text": posted.text}
        raise _SlackError("message_not_found")

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        self._uploads[file_id] = _Upload(str(params.get("filename")), int(params.get("length")))
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="unknown upload")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()))
            upload.content = part.file.read() if hasattr(part, "file") else str(part).encode()
        else:
            upload.content = await request.read()
        if len(upload.content) != upload.length:
            return web.Response(status=400, text="length mismatch")
        return web.Response(text=f"OK - {len(upload.content)}")

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = decode_form_value(params.get("files")) or []
        channel = self._channel(params.get("channel_id")) if params.get("channel_id") else None
        done = []
        for item in files:
            upload = self._uploads.get(item.get("id"))
            if upload is None or upload.content is None:
                raise _SlackError("file_not_found")
            upload.title = item.get("title")
            if channel is not None:
                self.posts[channel].append(Posted("file", channel, self._next_ts(),
                                                  file=upload.content, title=upload.title))
            done.append({"id": item["id"], "title": upload.title, "name": upload.filename})
        return {"files": done}


class _SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
