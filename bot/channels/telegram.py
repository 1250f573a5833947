"""Telegram channel: python-telegram-bot v22 for sending, the command menu and inbound updates.

Sending maps the Bot API's answers onto the channel contract (bot.channels.base): 429 ->
RetryLater(after retry_after), timeouts / connection errors / 5xx -> RetryLater, blocked by the
user / chat not found / any other 400 -> PermanentFailure. Flood limits are respected before a
request leaves (`TelegramRateLimiter`: 30 messages/s overall, one per second per private chat,
20 per minute per group), so a fan-out to many people gets no 429s in the first place.

Inbound: long polling by default, a webhook (with secret_token checked by PTB) as an option.
Commands, free text and button presses become `Inbound` and go to `on_inbound`; its replies are
sent straight back (they are answers, not scheduled notifications, so they skip the outbox).
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.channels.base import Inbound, OutgoingMessage, PermanentFailure, RetryLater, SendReceipt
from bot.channels.common import OnInbound, ShowPrivate, answer_inbound, send_reply
from bot.channels.console import plain_text

log = logging.getLogger(__name__)

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token
CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption; longer texts go as a second message
CALLBACK_TEXT_LIMIT = 200  # Telegram's limit for a button press's pop-up (answerCallbackQuery text)
ANSWER_WITHIN = 1.0  # seconds: a slow handler still gets the button's spinner stopped by then

# The command menu people see next to the input field ({command: {lang: description}}).
MENU_COMMANDS: dict[str, dict[str, str]] = {
    "start": {"en": "Start and show what I can do", "ru": "Начать и показать, что я умею"},
    "help": {"en": "Commands and buttons", "ru": "Команды и кнопки"},
    "insights": {"en": "Everything found, snoozed and done marked", "ru": "Всё найденное, с отложенным и сделанным"},
    "digest": {"en": "Today's digest", "ru": "Сводка на сегодня"},
    "snoozed": {"en": "What I snoozed", "ru": "Что я отложил"},
    "lang": {"en": "Language: /lang ru or /lang en", "ru": "Язык: /lang ru или /lang en"},
    "maturity": {"en": "Automation maturity check", "ru": "Проверка зрелости автоматизации"},
    "cancel": {"en": "Cancel the current dialogue", "ru": "Отменить текущий диалог"},
}
ADMIN_COMMANDS: dict[str, dict[str, str]] = {
    "preview": {"en": "What would be sent now, to whom", "ru": "Что и кому ушло бы сейчас"},
    "stats": {"en": "Usefulness per check", "ru": "Полезность по проверкам"},
    "scan": {"en": "Run a scan now", "ru": "Запустить проверку сейчас"},
}


class Pacer:
    """At most `rate` requests in any `window` seconds as the server sees them, evenly spaced.

    A request counts from the moment it is let go until `window` seconds after its answer came
    back: the server saw it somewhere in between, so however late the client's event loop or
    the network delivers requests, the server never counts more than `rate` in a window. Slots
    are kept on an ideal schedule, so a late wake-up is made up by the next request going at
    once (up to `catch_up` slots) instead of being lost. Used as `async with pacer:` around
    the request itself (that is how AIORateLimiter uses its overall limiter).
    """

    def __init__(self, rate: float, window: float = 1.0, *, catch_up: int = 2) -> None:
        self.rate = max(1, int(rate))
        self.window = window
        self.interval = window / rate
        self.catch_up = catch_up
        self._next = 0.0
        self._in_flight = 0
        self._done: list[float] = []  # heap of answer times still inside the window
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        async with self._lock:  # first come, first served
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                while self._done and self._done[0] + self.window <= now:
                    heapq.heappop(self._done)
                wait = self._next - now
                if self._in_flight + len(self._done) >= self.rate:
                    if not self._done:  # all in flight: wait for an answer
                        self._changed.clear()
                        await self._changed.wait()
                        continue
                    wait = max(wait, self._done[0] + self.window - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._next = max(self._next, now - self.catch_up * self.interval) + self.interval
            self._in_flight += 1

    async def __aexit__(self, *exc: object) -> None:
        self._in_flight -= 1
        heapq.heappush(self._done, asyncio.get_running_loop().time())
        self._changed.set()


class TelegramRateLimiter(AIORateLimiter):
    """AIORateLimiter, paced smoothly and with a per-chat limit for private chats.

    AIORateLimiter's overall limiter is a leaky bucket that lets a burst of 30 through at once
    and then 30 more within the same second; Telegram (and the fake server) count a sliding
    second, so a `Pacer` spaces requests evenly instead. Private chats get at most one message
    per `per_chat_seconds`, counted from the previous request's answer (so neither waiting for
    the overall limit nor network delays can shorten the gap the server sees). `margin` (>= 1)
    stretches both windows a little further.
    A RetryAfter still pauses every request (AIORateLimiter's behaviour), up to `max_retries`.
    """

    __slots__ = ("_chat_locks", "_chat_next", "_chat_period")

    def __init__(self, *, overall_per_second: float = 30, per_chat_seconds: float = 1.0,
                 group_per_minute: float = 20, max_retries: int = 1,
                 margin: float = 1.02) -> None:
        super().__init__(overall_max_rate=overall_per_second, overall_time_period=1,
                         group_max_rate=group_per_minute, group_time_period=60,
                         max_retries=max_retries)
        # Used by AIORateLimiter only as `async with`, so the Pacer fits in its place.
        self._base_limiter = (Pacer(overall_per_second, margin)  # type: ignore[assignment]
                              if overall_per_second else None)
        self._chat_period = per_chat_seconds * margin
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._chat_next: dict[int, float] = {}  # chat id -> earliest time of its next request

    def _chat_lock(self, chat_id: int, now: float) -> asyncio.Lock:
        if len(self._chat_locks) > 4096:  # forget idle chats so memory stays bounded
            for key, lock in list(self._chat_locks.items()):
                if not lock.locked() and self._chat_next.get(key, 0.0) <= now:
                    del self._chat_locks[key]
                    self._chat_next.pop(key, None)
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
        return lock

    async def process_request(self, callback, args, kwargs, endpoint, data,  # type: ignore[override]
                              rate_limit_args):
        chat_id = data.get("chat_id")
        private = None
        with contextlib.suppress(TypeError, ValueError):
            private = int(chat_id) if chat_id is not None and int(chat_id) > 0 else None
        if private is None or not self._chat_period:
            return await super().process_request(callback, args, kwargs, endpoint, data,
                                                 rate_limit_args)
        loop = asyncio.get_running_loop()
        async with self._chat_lock(private, loop.time()):
            wait = self._chat_next.get(private, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)

            async def stamped(*a: Any, **kw: Any) -> Any:
                # counted from the answer: the server saw the request before that
                try:
                    return await callback(*a, **kw)
                finally:
                    self._chat_next[private] = loop.time() + self._chat_period

            return await super().process_request(stamped, args, kwargs, endpoint, data,
                                                 rate_limit_args)


def _retry_seconds(exc: RetryAfter) -> float:
    # the private timedelta avoids PTB's deprecation warning about the public int attribute
    value = getattr(exc, "_retry_after", None) or exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _permanent(address: str, exc: TelegramError) -> PermanentFailure:
    """Why a message to `address` can never be delivered, in words for the admin."""
    if isinstance(exc, Forbidden):
        return PermanentFailure(f"telegram refused chat {address}: {exc.message}"
                                " (the user blocked the bot or it was removed)")
    if isinstance(exc, ChatMigrated):
        return PermanentFailure(f"telegram group {address} became a supergroup with id "
                                f"{exc.new_chat_id}: put that id in config.toml")
    return PermanentFailure(f"telegram rejected the message to {address}: {exc.message}")


def _chat(address: str) -> int | str:
    """Numeric chat ids as int ("-100123" too); "@channel" names as they are."""
    try:
        return int(address)
    except ValueError:
        return address


def _markup(payload: dict[str, Any]) -> InlineKeyboardMarkup | None:
    rows = payload.get("buttons") or []
    keyboard = [[InlineKeyboardButton(b["label"], callback_data=b["action"]) for b in row]
                for row in rows if row]
    return InlineKeyboardMarkup(keyboard) if keyboard else None


def _command_text(text: str, bot_username: str | None) -> str | None:
    """'/lang@crm_pulse_bot en' -> '/lang en' (groups add the bot's name to commands);
    None for a command addressed to another bot in the same group."""
    if not text.startswith("/"):
        return text
    head, _, rest = text.partition(" ")
    command, _, target = head.partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    return f"{command} {rest}".strip() if rest else command


class _Turns:
    """Updates from one chat are handled one at a time in arrival order; chats in parallel."""

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    def reserve(self, key: str) -> _Turn:
        """Take a place in the chat's line now (no await), enter it later with `async with`."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous = self._tails.get(key)
        self._tails[key] = mine
        return _Turn(self, key, previous, mine)


class _Turn:
    def __init__(self, turns: _Turns, key: str, previous: asyncio.Future[None] | None,
                 mine: asyncio.Future[None]) -> None:
        self.turns, self.key, self.previous, self.mine = turns, key, previous, mine

    def _done(self) -> None:
        if not self.mine.done():
            self.mine.set_result(None)
        if self.turns._tails.get(self.key) is self.mine:
            del self.turns._tails[self.key]

    async def __aenter__(self) -> None:
        if self.previous is None:
            return
        try:
            await asyncio.shield(self.previous)
        except asyncio.CancelledError:  # give our place up only after the one before us
            self.previous.add_done_callback(lambda _: self._done())
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._done()


class TelegramChannel:
    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        on_inbound: OnInbound | None = None,
        mode: Literal["polling", "webhook"] = "polling",
        webhook_url: str | None = None,
        secret_token: str | None = None,
        listen: str = "127.0.0.1",
        port: int = 8443,
        url_path: str | None = None,
        admin_chat_ids: Sequence[int | str] = (),
        rate_limiter: TelegramRateLimiter | None = None,
        timeout: float = 10.0,
        poll_timeout: float = 10.0,
        token_env: str = "CRM_PULSE_TELEGRAM_TOKEN",
    ) -> None:
        if not token:
            raise ValueError("TelegramChannel needs a bot token (from @BotFather)")
        self.token_env = token_env  # named when Telegram rejects the token: the config's variable
        if mode not in ("polling", "webhook"):
            raise ValueError(f"telegram mode must be 'polling' or 'webhook', got {mode!r}")
        if mode == "webhook" and not webhook_url:
            raise ValueError("telegram webhook mode needs webhook_url (the public https URL)")
        self.mode = mode
        self.on_inbound = on_inbound
        self.webhook_url = webhook_url
        self.secret_token = secret_token
        self.listen, self.port = listen, port
        # By default the local path is the public URL's path (https://bot.example.com/telegram).
        self.url_path = url_path if url_path is not None else (
            urlsplit(webhook_url).path.strip("/") if webhook_url else "") or "telegram"
        self.admin_chat_ids = [_chat(str(c)) for c in admin_chat_ids]
        self.poll_timeout = poll_timeout
        # "https://api.telegram.org" (or a self-hosted Bot API server); a trailing /bot is fine.
        root = (base_url or "https://api.telegram.org").rstrip("/").removesuffix("/bot")
        self.app: Application = (
            Application.builder()
            .token(token)
            .base_url(root + "/bot")
            .base_file_url(root + "/file/bot")
            .rate_limiter(rate_limiter or TelegramRateLimiter())
            .connect_timeout(timeout).read_timeout(timeout).write_timeout(timeout)
            .pool_timeout(timeout)
            .get_updates_connect_timeout(timeout).get_updates_read_timeout(timeout)
            .get_updates_pool_timeout(timeout)
            .job_queue(None)  # scheduling is bot.scheduler's job, not PTB's
            # One person's slow request (an admin's /scan) must not hold up everyone else;
            # updates from the same chat still run one at a time, in order (see _Turns).
            .concurrent_updates(64)
            .build()
        )
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        # New messages only (an edited old command must not run again).
        self.app.add_handler(MessageHandler(filters.TEXT & filters.UpdateType.MESSAGE,
                                            self._on_text))
        self.app.add_error_handler(self._on_error)
        self._opened = False
        self._receiving = False
        self._open_lock = asyncio.Lock()
        # (address, dedup_key) -> photo message id: a retried photo+text message does not
        # send its photo twice when only the text part failed.
        self._photos_sent: dict[tuple[str, str], int] = {}
        self._turns = _Turns()

    # ---- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect for sending only (getMe); `start` also receives updates."""
        async with self._open_lock:
            if not self._opened:
                try:
                    await self.app.initialize()
                except InvalidToken as exc:
                    raise PermanentFailure(
                        f"Telegram rejected the bot token: check the environment variable "
                        f"{self.token_env} (the token @BotFather gave, like 123456789:AAH...)") from exc
                except (NetworkError, TimedOut) as exc:
                    raise RetryLater(f"telegram unreachable: {exc}") from exc
                self._opened = True

    async def start(self) -> None:
        """Open, publish the command menu and start receiving (polling or webhook)."""
        if self.mode == "webhook" and self.secret_token is not None and not _SECRET_TOKEN.match(
                self.secret_token):
            raise PermanentFailure("the Telegram webhook secret must be 1-256 characters of "
                                   "A-Z, a-z, 0-9, _ and - (e.g. from `openssl rand -hex 32`)")
        await self.open()
        await self.set_commands()
        updater = self.app.updater
        assert updater is not None
        try:
            if self.mode == "polling":
                await updater.start_polling(timeout=int(self.poll_timeout), poll_interval=0.0,
                                            bootstrap_retries=3)
            else:
                await updater.start_webhook(listen=self.listen, port=self.port,
                                            url_path=self.url_path, webhook_url=self.webhook_url,
                                            secret_token=self.secret_token, bootstrap_retries=3)
        except (BadRequest, InvalidToken) as exc:  # e.g. a webhook URL Telegram cannot use
            raise PermanentFailure(f"telegram refused to start {self.mode}: {exc.message}") from exc
        except TelegramError as exc:
            raise RetryLater(f"telegram unavailable while starting {self.mode}: {exc.message}"
                             ) from exc
        except OSError as exc:  # the webhook port is taken or not ours to bind
            raise PermanentFailure(f"telegram webhook cannot listen on {self.listen}:"
                                   f"{self.port}: {exc}") from exc
        await self.app.start()
        self._receiving = True

    async def stop(self) -> None:
        if self._receiving:
            assert self.app.updater is not None
            if self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            self._receiving = False
        if self._opened:
            await self.app.shutdown()
            self._opened = False

    async def set_commands(self) -> None:
        """The menu in English (default) and Russian; admins also see their commands.

        A menu that cannot be set is logged, not fatal: the commands work without it (an admin
        who never wrote to the bot is "chat not found" until they do).
        """
        for lang in ("en", "ru"):
            code = None if lang == "en" else lang
            menu = [BotCommand(c, d[lang]) for c, d in MENU_COMMANDS.items()]
            admin_menu = menu + [BotCommand(c, d[lang]) for c, d in ADMIN_COMMANDS.items()]
            scopes: list[tuple[Any, list[BotCommand]]] = [(None, menu)] + [
                (BotCommandScopeChat(chat_id), admin_menu) for chat_id in self.admin_chat_ids]
            for scope, commands in scopes:
                try:
                    await self.app.bot.set_my_commands(commands, scope=scope, language_code=code)
                except TelegramError as exc:
                    log.warning("telegram: could not set the command menu (%s, %s): %s",
                                lang, getattr(scope, "chat_id", "everyone"), exc)

    # ---- sending ---------------------------------------------------------------------------
    async def send(self, message: OutgoingMessage) -> SendReceipt:
        try:
            await self.open()
        except PermanentFailure as exc:  # a bad token is not this message's fault: it waits
            raise RetryLater(exc.reason) from exc
        try:
            try:
                return await self._deliver(message, str(message.payload.get("text") or ""),
                                           ParseMode.HTML)
            except BadRequest as exc:
                if "can't parse entities" not in exc.message.lower():
                    raise
                # Better the words without formatting than no message at all.
                log.warning("telegram: HTML refused (%s); sending %s as plain text",
                            exc.message, message.dedup_key or "a message")
                return await self._deliver(message, plain_text(message.payload), None)
        except RetryAfter as exc:
            raise RetryLater("telegram 429 too many requests", _retry_seconds(exc)) from exc
        except (Forbidden, ChatMigrated, BadRequest) as exc:
            self._photos_sent.pop((message.address, message.dedup_key), None)  # never retried
            raise _permanent(message.address, exc) from exc
        except InvalidToken as exc:
            # The token is wrong for every message: keep them queued until an admin fixes it.
            raise RetryLater(f"telegram rejected the bot token: {exc.message}") from exc
        except (TimedOut, NetworkError) as exc:  # 5xx, timeouts, dropped connections
            raise RetryLater(f"telegram unavailable: {exc.message}") from exc
        except TelegramError as exc:
            raise RetryLater(f"telegram error: {exc.message}") from exc

    async def _deliver(self, message: OutgoingMessage, text: str,
                       parse_mode: str | None) -> SendReceipt:
        chat_id = _chat(message.address)
        markup = _markup(message.payload)
        bot = self.app.bot
        if message.edit_message_id is not None:
            try:
                sent = await bot.edit_message_text(
                    text, chat_id=chat_id, message_id=int(message.edit_message_id),
                    parse_mode=parse_mode, reply_markup=markup)
            except BadRequest as exc:
                if "not modified" in exc.message.lower():  # the same button pressed twice
                    return SendReceipt(str(message.edit_message_id))
                raise
            message_id = getattr(sent, "message_id", message.edit_message_id)
            return SendReceipt(str(message_id))
        if message.photo_png is None:
            sent = await bot.send_message(chat_id, text, parse_mode=parse_mode,
                                          reply_markup=markup)
            return SendReceipt(str(sent.message_id))
        if len(text) <= CAPTION_LIMIT:  # one message: the chart with the text as its caption
            sent = await bot.send_photo(chat_id, photo=InputFile(message.photo_png,
                                                                 filename="chart.png"),
                                        caption=text or None, parse_mode=parse_mode,
                                        reply_markup=markup)
            return SendReceipt(str(sent.message_id), {"photo_message_id": str(sent.message_id)})
        key = (message.address, message.dedup_key)
        photo_id = self._photos_sent.get(key) if message.dedup_key else None
        if photo_id is None:
            photo = await bot.send_photo(chat_id, photo=InputFile(message.photo_png,
                                                                  filename="chart.png"))
            photo_id = photo.message_id
            if message.dedup_key:
                self._photos_sent[key] = photo_id
        sent = await bot.send_message(chat_id, text, parse_mode=parse_mode, reply_markup=markup)
        self._photos_sent.pop(key, None)
        return SendReceipt(str(sent.message_id), {"photo_message_id": str(photo_id)})

    # ---- receiving -------------------------------------------------------------------------
    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        user = update.effective_user
        if msg is None or user is None or msg.text is None:
            return
        if msg.chat.type != "private" and not msg.text.startswith("/"):
            return  # in a group, only commands are for the bot; people talk to each other
        text = _command_text(msg.text, self.app.bot.username if self._opened else None)
        if text is None:
            return  # "/help@some_other_bot"
        await self._dispatch(Inbound(
            channel="telegram", user_id=str(user.id), chat_id=str(msg.chat_id), text=text,
            language_code=user.language_code, message_id=str(msg.message_id)))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every press is answered exactly once (answerCallbackQuery stops the button's spinner).
        A private reply (a refusal, a "snoozed for you" in a group) becomes that answer's
        pop-up, seen only by who pressed; otherwise the answer is empty and goes out as soon as
        the handler has decided (before its replies are sent), or after ANSWER_WITHIN seconds
        if the handler is slow."""
        query = update.callback_query
        if query is None:
            return
        message = query.message
        chat_id = message.chat.id if message is not None else query.from_user.id
        turn = self._turns.reserve(str(chat_id))  # keep its place in line while we answer
        answered = False

        async def answer(text: str | None = None) -> bool:
            nonlocal answered
            if answered:
                return False
            answered = True
            try:
                await query.answer(text=text[:CALLBACK_TEXT_LIMIT] if text else None, show_alert=bool(text))
                return True
            except TelegramError as exc:
                log.warning("telegram: could not answer a button press: %s", exc)
                return False

        async def show_private(reply: OutgoingMessage) -> bool:
            text = plain_text(reply.payload).strip()
            return bool(text) and len(text) <= CALLBACK_TEXT_LIMIT and await answer(text)

        async def answer_soon() -> None:
            await asyncio.sleep(ANSWER_WITHIN)
            await answer()

        timer = asyncio.create_task(answer_soon())
        try:
            await self._dispatch(Inbound(
                channel="telegram", user_id=str(query.from_user.id), chat_id=str(chat_id),
                action=query.data, language_code=query.from_user.language_code,
                message_id=str(message.message_id) if message is not None else None), turn, show_private,
                answer)
        finally:
            timer.cancel()
            await answer()

    async def _dispatch(self, inbound: Inbound, turn: _Turn | None = None,
                        show_private: ShowPrivate | None = None,
                        before_send: Callable[[], Awaitable[object]] | None = None) -> None:
        async with turn or self._turns.reserve(inbound.chat_id):
            await self._handle(inbound, show_private, before_send)

    async def _handle(self, inbound: Inbound, show_private: ShowPrivate | None = None,
                      before_send: Callable[[], Awaitable[object]] | None = None) -> None:
        await answer_inbound(self, self.on_inbound, inbound, show_private, before_send)

    async def send_reply(self, reply: OutgoingMessage, *, attempts: int = 3) -> None:
        """Send an answer now, retrying briefly; a person is waiting for it."""
        await send_reply(self, reply, attempts=attempts)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.warning("telegram: error while handling an update: %s", context.error)
