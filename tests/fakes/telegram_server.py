"""A fake Telegram Bot API server (aiohttp, 127.0.0.1, random port) for tests and benchmarks.

It implements the methods python-telegram-bot calls (getMe, setMyCommands, sendMessage,
sendPhoto (multipart), editMessageText, answerCallbackQuery, getUpdates long polling,
setWebhook, deleteWebhook ...), keeps everything it accepted per chat in order, can inject
faults (429 with parameters.retry_after, 500, slow answers, dropped connections), can enforce
Telegram's flood limits (30 messages/s overall, 1/s per chat) answering 429 when exceeded, and
lets a test push updates (a typed command, a pressed button) into getUpdates.

Point PTB at it with `base_url=server.base_url` (TelegramChannel appends "/bot").
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.faults import FaultPlan, fault_answer
from tests.fakes.local_server import LocalServer, decode_form_value

# Telegram's HTML parse mode: these tags only, properly nested, and no bare "<"; anything else
# is "Bad Request: can't parse entities", as the real API answers. (A bare "&" is let through:
# Telegram tolerates it, and a fake stricter than the real API would mislead.)
HTML_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                       "tg-spoiler", "a", "tg-emoji", "code", "pre", "blockquote"})
_HTML_TOKEN = re.compile(r"<(/?)([a-zA-Z][\w-]*)((?:\s+[^<>]*)?)>"
                         r"|<")


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse `text` in parse_mode HTML, or None."""
    stack: list[str] = []
    for m in _HTML_TOKEN.finditer(text):
        if m.group(0) == "<":
            return f"can't parse entities: unexpected {m.group(0)!r} at offset {m.start()}"
        if m.group(2) is None:
            continue
        closing, tag = m.group(1), m.group(2).lower()
        if tag not in HTML_TAGS:
            return f'can\'t parse entities: unsupported start tag "{tag}" at offset {m.start()}'
        if not closing:
            stack.append(tag)
        elif stack and stack[-1] == tag:
            stack.pop()
        else:
            return f'can\'t parse entities: unexpected end tag "{tag}" at offset {m.start()}'
    if stack:
        return f'can\'t parse entities: can\'t find end tag corresponding to start tag "{stack[-1]}"'
    return None


SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "editMessageText"})
BOT_USER = {
    "id": 777000111,
    "is_bot": True,
    "first_name": "CRM Pulse",
    "username": "crm_pulse_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class FloodLimits:
    """Telegram's limits as the fake enforces them: sliding windows on arrival time."""

    overall_per_second: int = 30
    per_chat_seconds: float = 1.0  # at most one message per chat in this many seconds
    _overall: deque[float] = field(default_factory=deque, init=False)
    _last_by_chat: dict[str, float] = field(default_factory=dict, init=False)

    exceeded: Counter = field(default_factory=Counter, init=False)  # "overall"/"chat" -> 429s

    def admit(self, chat_id: str, now: float) -> bool:
        while self._overall and now - self._overall[0] >= 1.0:
            self._overall.popleft()
        if len(self._overall) >= self.overall_per_second:
            self.exceeded["overall"] += 1
            return False
        last = self._last_by_chat.get(chat_id)
        if last is not None and now - last < self.per_chat_seconds:
            self.exceeded["chat"] += 1
            return False
        self._overall.append(now)
        self._last_by_chat[chat_id] = now
        return True


@dataclass
class Received:
    """One message as the fake accepted it."""

    method: str
    chat_id: str
    message_id: int
    text: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    photo: bytes | None = None
    at: float = 0.0

    @property
    def buttons(self) -> list[list[dict[str, str]]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [[{"text": b["text"], "callback_data": b.get("callback_data")} for b in row]
                for row in rows]


class FakeTelegramServer(LocalServer):
    def __init__(
        self,
        *,
        faults: FaultPlan | None = None,
        flood_limits: FloodLimits | None = None,
        blocked_chats: set[str] | None = None,
        missing_chats: set[str] | None = None,
        token: str | None = None,
    ) -> None:
        self.token = token  # when set, any other token gets 401 Unauthorized, as from Telegram
        self.faults = faults or FaultPlan()
        self.flood_limits = flood_limits
        self.blocked_chats = set(blocked_chats or ())
        self.missing_chats = set(missing_chats or ())
        self.messages: dict[str, list[Received]] = defaultdict(list)  # chat id -> accepted, in order
        self.edits: list[Received] = []
        self.calls: Counter[str] = Counter()  # method -> calls received
        self.statuses: Counter[int] = Counter()  # HTTP status -> answers given
        self.flood_429s = 0  # 429s given because a flood limit was exceeded
        self.commands: dict[str, list[dict[str, str]]] = {}  # scope/lang -> commands set
        self.callback_answers: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/_stats", self._stats)

    async def closing(self) -> None:
        self._new_update.set()  # wake a waiting getUpdates

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- what tests look at ----------------------------------------------------------------
    def texts(self, chat_id: str | int) -> list[str | None]:
        return [m.text for m in self.messages.get(str(chat_id), [])]

    def all_messages(self) -> list[Received]:
        return sorted((m for ms in self.messages.values() for m in ms), key=lambda m: m.at)

    async def _stats(self, request: web.Request) -> web.Response:
        """Counters for a client in another process (the fan-out benchmark)."""
        return web.json_response({
            "delivered": sum(len(v) for v in self.messages.values()),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "limits_exceeded": dict(self.flood_limits.exceeded) if self.flood_limits else {},
        })

    # ---- pushing updates (what a user does) ------------------------------------------------
    def push_text(self, user_id: int, text: str, *, chat_id: int | None = None,
                  language_code: str = "en", first_name: str = "Test") -> int:
        """A user types `text` ("/digest", "/lang en", "hello") in a private chat (or chat_id)."""
        chat = chat_id if chat_id is not None else user_id
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if chat == user_id else "group",
                     **({"first_name": first_name} if chat == user_id else {"title": "Team"})},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name,
                     "language_code": language_code},
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push({"message": message})

    def push_button(self, user_id: int, data: str, *, message_id: int, chat_id: int | None = None,
                    language_code: str = "en") -> int:
        """A user presses the inline button with callback_data `data` on message `message_id`."""
        chat = chat_id if chat_id is not None else user_id
        query = {
            "id": f"cq{next(self._update_ids)}",
            "from": {"id": user_id, "is_bot": False, "first_name": "Test",
                     "language_code": language_code},
            "chat_instance": f"ci{chat}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private" if chat == user_id else "group"},
                "from": BOT_USER,
                "text": "...",
            },
        }
        return self._push({"callback_query": query})

    def update_payload(self, update: dict[str, Any]) -> dict[str, Any]:
        """An update body as Telegram would POST it to a webhook (not queued)."""
        return {"update_id": next(self._update_ids), **update}

    def _push(self, update: dict[str, Any]) -> int:
        full = self.update_payload(update)
        self._updates.append(full)
        self._new_update.set()
        return full["update_id"]

    # ---- the API ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        self.calls[method] += 1
        if self.token is not None and request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        params: dict[str, Any] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params = await request.json()
            else:
                form = await request.post()
                for key, value in form.items():
                    params[key] = value.file.read() if hasattr(value, "file") else decode_form_value(value)
        params.update({k: decode_form_value(v) for k, v in request.query.items()})

        faulty = await fault_answer(
            self.faults, method, request,
            too_many=lambda: self._error(429, f"Too Many Requests: retry after {self.faults.retry_after}",
                                         {"retry_after": self.faults.retry_after}),
            server_error=lambda: self._error(500, "Internal Server Error"))
        if faulty is not None:
            return faulty

        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        try:
            result = handler(params) if method != "getUpdates" else await handler(params)
        except _ApiError as exc:
            return self._error(exc.code, exc.description, exc.parameters)
        return self._ok(result)

    def _ok(self, result: Any) -> web.Response:
        self.statuses[200] += 1
        return web.json_response({"ok": True, "result": result})

    def _error(self, code: int, description: str,
               parameters: dict[str, Any] | None = None) -> web.Response:
        self.statuses[code] += 1
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    def _check_chat(self, params: dict[str, Any], text_key: str = "text") -> str:
        chat_id = str(params.get("chat_id"))
        text = params.get(text_key)
        if params.get("parse_mode") == "HTML" and isinstance(text, str):
            problem = html_problem(text)
            if problem:
                raise _ApiError(400, f"Bad Request: {problem}")
        if chat_id in self.blocked_chats:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.missing_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        if self.flood_limits is not None and not self.flood_limits.admit(chat_id, time.monotonic()):
            self.flood_429s += 1
            raise _ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        return chat_id

    def _message(self, chat_id: str, received: Received) -> dict[str, Any]:
        chat_int = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        msg: dict[str, Any] = {
            "message_id": received.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_int, "type": "private" if not chat_id.startswith("-") else "group"},
            "from": BOT_USER,
        }
        if received.photo is not None:
            msg["photo"] = [{"file_id": f"ph{received.message_id}", "file_unique_id":
                             f"u{received.message_id}", "width": 800, "height": 400,
                             "file_size": len(received.photo)}]
            if received.text:
                msg["caption"] = received.text
        else:
            msg["text"] = received.text or ""
        if received.reply_markup:
            msg["reply_markup"] = received.reply_markup
        return msg

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        scope = params.get("scope") or {"type": "default"}
        key = json.dumps(scope, sort_keys=True) + "|" + (params.get("language_code") or "")
        self.commands[key] = params.get("commands") or []
        return True

    def _m_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = dict(params)
        return True

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": 0}

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params)
        received = Received("sendMessage", chat_id, next(self._message_ids), params.get("text"),
                            params.get("parse_mode"), params.get("reply_markup"),
                            at=time.monotonic())
        self.messages[chat_id].append(received)
        return self._message(chat_id, received)

    def _m_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params, "caption")
        photo = params.get("photo")
        if not isinstance(photo, bytes) or not photo:
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        received = Received("sendPhoto", chat_id, next(self._message_ids), params.get("caption"),
                            params.get("parse_mode"), params.get("reply_markup"), photo=photo,
                            at=time.monotonic())
        self.messages[chat_id].append(received)
        return self._message(chat_id, received)

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._check_chat(params)
        message_id = int(params["message_id"])
        for received in self.messages.get(chat_id, []):
            if received.message_id == message_id:
                if received.text == params.get("text") and received.reply_markup == params.get(
                        "reply_markup"):
                    raise _ApiError(400, "Bad Request: message is not modified")
                received.text = params.get("text")
                received.reply_markup = params.get("reply_markup")
                self.edits.append(received)
                return self._message(chat_id, received)
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.callback_answers.append(dict(params))
        return True

    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                pass
        return [u for u in self._updates if u["update_id"] >= offset][:limit]


class _ApiError(Exception):
    def __init__(self, code: int, description: str,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


async def _serve(flood: bool) -> None:
    server = await FakeTelegramServer(flood_limits=FloodLimits() if flood else None).start()
    print(f"port {server.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


if __name__ == "__main__":  # a server in its own process: python -m tests.fakes.telegram_server
    import argparse

    parser = argparse.ArgumentParser(description="fake Telegram Bot API on 127.0.0.1")
    parser.add_argument("--flood-limits", action="store_true",
                        help="enforce 30 msg/s overall and 1/s per chat with 429s")
    try:
        asyncio.run(_serve(parser.parse_args().flood_limits))
    except KeyboardInterrupt:
        pass
