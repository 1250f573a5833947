"""CRM webhooks: amoCRM or Bitrix24 calls `POST /crm-webhook/<token>` when a lead or deal changes,
and `crm-pulse run` syncs (and, with `[webhook] scan = true`, scans and sends critical insights)
within seconds instead of at the next `schedule.sync` tick.

The call is only a nudge: its body is checked for shape (and Bitrix24's application token) but
its data is not used; the incremental sync reads the CRM's API as always, so a forged or
replayed call can at worst cause one extra sync. Calls within `debounce_seconds` of the first
coalesce into one run; a call while a run is going queues at most one more run after it.
The token is the secret part of the URL: compared in constant time, never logged (the server has
no access log, and a wrong one is answered 404 like any unknown path).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bot.config import Config
from bot.metrics import HttpServer

log = logging.getLogger("crm_pulse.webhooks")
PATH = "/crm-webhook/{token}"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,200}")
MAX_FIELDS = 5000  # amoCRM batches up to a few hundred entities per call, each a dozen fields
# amoCRM: leads[update][0][id]=1, contacts[add][0][id]=2, task[delete][0][id]=3 ...
_AMO_KEY = re.compile(r"([a-z_]+)\[([a-z_]+)\]\[(\d+)\]\[id\]")
_BITRIX_EVENT = re.compile(r"ON[A-Z0-9_]{2,80}")


class BadCall(ValueError):
    """A call we refuse: `status` is the HTTP answer, the message says why (no secrets in it)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CrmCall:
    """What a webhook call said changed: kind, {"leads update": 2, ...}, Bitrix24's app token."""
    kind: str
    changes: dict[str, int]
    application_token: str | None = None

    def describe(self) -> str:
        return ", ".join(f"{what} x{n}" for what, n in sorted(self.changes.items()))


def parse_call(kind: str, body: bytes) -> CrmCall:
    """The form-encoded body of a webhook call from `kind` ("amocrm" | "bitrix24"), checked for
    shape; BadCall(400) says what is wrong. Pure: no clock, no config."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCall("the body is not UTF-8 text") from None
    if not text.strip():
        raise BadCall("the body is empty: expected the CRM's form-encoded webhook fields")
    try:
        fields = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS)
    except ValueError as e:
        raise BadCall(f"the body is not form-encoded (application/x-www-form-urlencoded): {e}") from None
    keys = {k for k, _ in fields}
    looks_bitrix = "event" in keys
    if kind == "bitrix24":
        if not looks_bitrix:
            raise BadCall("not a Bitrix24 outbound webhook call: the `event` field is missing "
                          "([source] kind is bitrix24)")
        values = dict(fields)
        event = values["event"].strip().upper()
        if not _BITRIX_EVENT.fullmatch(event):
            raise BadCall(f"`event` must be a Bitrix24 event name such as ONCRMDEALUPDATE, got {event[:80]!r}")
        entity_id = values.get("data[FIELDS][ID]", "").strip()
        if not entity_id.isdigit():
            raise BadCall("`data[FIELDS][ID]` must be the id of the changed record (digits)")
        return CrmCall("bitrix24", {event: 1}, values.get("auth[application_token]") or None)
    if kind != "amocrm":
        raise BadCall(f"webhooks come from amoCRM or Bitrix24, not {kind!r}")
    if looks_bitrix:
        raise BadCall("this is a Bitrix24 call, but [source] kind is amocrm")
    changes: Counter[str] = Counter()
    for key, value in fields:
        m = _AMO_KEY.fullmatch(key)
        if m is None or m.group(1) == "account":
            continue
        if not value.strip().isdigit():
            raise BadCall(f"`{key[:80]}` must be a record id (digits)")
        changes[f"{m.group(1)} {m.group(2)}"] += 1
    if not changes:
        raise BadCall("not an amoCRM webhook call: no field like `leads[update][0][id]`")
    return CrmCall("amocrm", dict(changes))


class SyncTrigger:
    """Runs `job` once soon after `poke()`, coalescing pokes: those within `delay` seconds of the
    first share one run, and pokes while a run is going ask for at most one more (after another
    `delay`), so a burst of 100 changes costs two syncs, not 100. Runs start at least `min_gap`
    seconds apart: a CRM whose leads change every few seconds gets a sync (and scan) a minute,
    not one back to back with the next."""

    def __init__(self, job: Callable[[], Awaitable[Any]], delay: float, min_gap: float = 0.0) -> None:
        self.job = job
        self.delay = delay
        self.min_gap = min_gap
        self.runs = 0  # finished runs, for tests and the log
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._again = False
        self._last_start: float | None = None  # loop time of the last run's start

    def poke(self) -> str:
        """Ask for a run; says what happened: "scheduled", "coalesced" or "queued" (after the running one)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._fire())
            return "scheduled"
        if self._running:
            already = self._again
            self._again = True
            return "coalesced" if already else "queued"
        return "coalesced"

    async def _fire(self) -> None:
        await asyncio.sleep(self.delay)
        while True:
            loop = asyncio.get_running_loop()
            if self._last_start is not None:  # pokes that arrive meanwhile still share this run
                await asyncio.sleep(max(0.0, self._last_start + self.min_gap - loop.time()))
            self._last_start = loop.time()
            self._again = False
            self._running = True
            try:
                await self.job()  # PulseJobs' run_sync / run_scan: they log and tell admins themselves
            except Exception:  # one failed run must not stop later webhooks from syncing
                log.exception("the sync a webhook asked for failed")
            finally:
                self._running = False
                self.runs += 1
            if not self._again:
                return
            await asyncio.sleep(self.delay)

    async def close(self, wait: float = 10.0) -> None:
        """At shutdown: a run that is going gets `wait` seconds to finish; a pending one is dropped
        (the scheduled sync picks the change up after a restart)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._running:
            try:
                await asyncio.wait_for(asyncio.shield(task), wait)
                return
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # cancelled on purpose; a job error was logged in _fire
            log.debug("webhook sync cancelled at shutdown")


class WebhookEndpoint:
    """The `POST /crm-webhook/<token>` page: added to the [metrics] server or its own one."""

    def __init__(self, kind: str, token: str, trigger: SyncTrigger, *, application_token: str | None = None,
                 max_body: int = 256 * 1024, observe: Callable[[str], None] | None = None) -> None:
        self.kind = kind
        self.observe = observe or (lambda outcome: None)  # Metrics.webhooks: accepted / refused / wrong_token
        self._token = token.encode("utf-8")
        self._app_token = application_token.encode("utf-8") if application_token else None
        self.trigger = trigger
        self.max_body = max_body
        self._last_warning = float("-inf")

    def add_to(self, app: Any) -> None:
        app.router.add_route("*", PATH, self.handle)

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        token = request.match_info.get("token", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(token, self._token):
            self.observe("wrong_token")
            self._warn("a call to /crm-webhook/ with a wrong token was answered 404 (the token is not logged; "
                       "check the URL registered in the CRM)")
            raise web.HTTPNotFound()
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        if request.content_length is not None and request.content_length > self.max_body:
            return self._refuse(413, f"the body is {request.content_length} bytes, more than webhook.max_body_kb allows")
        body = await request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            return self._refuse(413, "the body is larger than webhook.max_body_kb allows")
        try:
            call = parse_call(self.kind, body)
        except BadCall as e:
            return self._refuse(e.status, str(e))
        if self._app_token is not None:
            given = (call.application_token or "").encode("utf-8")
            if not hmac.compare_digest(given, self._app_token):
                return self._refuse(403, "auth[application_token] does not match webhook.application_token_env "
                                         "(copy the token Bitrix24 shows for the outbound webhook)")
        self.observe("accepted")
        outcome = self.trigger.poke()
        log.info("webhook from %s (%s): sync %s", call.kind, call.describe(),
                 {"scheduled": f"in {self.trigger.delay:g} s", "coalesced": "already due, joined it",
                  "queued": "after the running one"}[outcome])
        return web.json_response({"status": "accepted", "sync": outcome})

    def _refuse(self, status: int, reason: str) -> Any:
        from aiohttp import web

        self.observe("refused")
        self._warn(f"a webhook call was refused ({status}): {reason}")
        return web.json_response({"status": "refused", "reason": reason}, status=status)

    def _warn(self, line: str) -> None:
        """At most one warning a minute: a scanner hammering the port must not flood the journal."""
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(line)
        else:
            log.debug(line)


class WebhookServer(HttpServer):
    """[webhook] on its own host:port (when it does not share the [metrics] one)."""

    section = "webhook"

    def pages(self) -> str:
        return "/crm-webhook/<token>"


def webhook_problems(config: Config) -> list[str]:
    """Why [webhook] cannot start, one line each (what and how to fix), before anything starts."""
    hook = config.webhook
    if not hook.enabled:
        return []
    token = config.secret(hook.token_env)
    how = f"choose a random one (`openssl rand -hex 24`), `export {hook.token_env}=<it>` and register the URL " \
          "https://<your host>/crm-webhook/<it> in the CRM (docs/connectors.md)"
    if not token:
        return [f"webhook.token_env: environment variable {hook.token_env} is not set: {how}"]
    if not TOKEN_RE.fullmatch(token):
        return [f"webhook.token_env: the token in {hook.token_env} must be 16 to 200 letters, digits, - or _ "
                f"(it is part of the URL and the only thing keeping strangers out): {how}"]
    if hook.application_token_env and not config.secret(hook.application_token_env):
        return [f"webhook.application_token_env: environment variable {hook.application_token_env} is not set: "
                "copy the application token Bitrix24 shows for the outbound webhook and export it, or remove the key"]
    return []


def endpoint_for(config: Config, job: Callable[[], Awaitable[Any]],
                 observe: Callable[[str], None] | None = None) -> WebhookEndpoint:
    """The endpoint [webhook] describes, running `job` (debounced) on each valid call."""
    hook = config.webhook
    return WebhookEndpoint(config.source.kind, config.secret(hook.token_env) or "",
                           SyncTrigger(job, hook.debounce_seconds, hook.min_interval_seconds),
                           application_token=config.secret(hook.application_token_env),
                           max_body=hook.max_body_kb * 1024, observe=observe)


def shares_metrics_port(config: Config) -> bool:
    return config.metrics.enabled and config.metrics.port == config.webhook.port
