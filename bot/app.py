"""`crm-pulse run --config FILE`: the bot as a long-running service.

Builds the enabled channels (Telegram, Slack, or the console when neither is enabled), the
scheduler, the outbox sender and the inbound handlers, and runs until SIGINT/SIGTERM. An
enabled channel without its token is refused up front with the variable's name and where to
get the token (exit code 2), never a traceback from deep inside a library.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from typing import Any

from bot.config import Config, ConfigError, load_config

log = logging.getLogger("crm_pulse.app")
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: a database or chat API not reachable at start; try again later
START_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0)  # seconds between tries at start (~90 s in all)

TELEGRAM_HOW = ("create a bot with @BotFather in Telegram (/newbot) and copy the token it gives you, then "
                "`export {env}=<token>`")
SLACK_HOW = ("create the Slack app from slack-app-manifest.yml (api.slack.com/apps -> Create New App -> From a "
             "manifest), install it to the workspace, then `export {env}=<{what}>`")


def missing_secrets(config: Config) -> list[str]:
    """One line per secret an enabled channel or the CRM source needs but the environment does not hold."""
    return [f"{key}: environment variable {name} is not set: {how}"
            for key, name, how in _needed_secrets(config) if not config.secret(name)]


def _needed_secrets(config: Config) -> list[tuple[str, str, str]]:
    """(config key, environment variable, how to get its value) for every secret the config asks for."""
    out: list[tuple[str, str, str]] = []
    tg = config.telegram
    if tg.enabled:
        out.append(("telegram.token_env", tg.token_env, TELEGRAM_HOW.format(env=tg.token_env)))
        if tg.mode == "webhook" and tg.webhook_secret_env:
            out.append(("telegram.webhook_secret_env", tg.webhook_secret_env,
                        "choose any random string (e.g. `openssl rand -hex 32`) and export it"))
    sl = config.slack
    if sl.enabled:
        out.append(("slack.bot_token_env", sl.bot_token_env,
                    SLACK_HOW.format(env=sl.bot_token_env, what="xoxb-... Bot User OAuth Token (OAuth & Permissions)")))
        if sl.mode == "socket":
            out.append(("slack.app_token_env", sl.app_token_env,
                        SLACK_HOW.format(env=sl.app_token_env, what="xapp-... app-level token with connections:write "
                                         "(Basic Information -> App-Level Tokens)")))
        if sl.mode == "http":
            out.append(("slack.signing_secret_env", sl.signing_secret_env,
                        SLACK_HOW.format(env=sl.signing_secret_env, what="Signing Secret (Basic Information)")))
    src = config.source
    if src.kind == "amocrm":  # the CRM API the bot syncs from (docs/connectors.md)
        keys = ("token_env",) if src.token_env else ("client_id_env", "client_secret_env", "refresh_token_env")
        for key in keys:
            name = getattr(src, key)
            out.append((f"source.{key}", name, "create it in amoCRM (Settings -> Integrations; docs/connectors.md), "
                        f"then `export {name}=<value>`"))
    if src.kind == "hubspot":
        out.append(("source.token_env", src.token_env, "create a private app in HubSpot (Settings -> Integrations -> "
                    f"Private Apps; docs/connect-hubspot.md) and `export {src.token_env}=<its access token>`"))
    if src.kind == "bitrix24":
        out.append(("source.webhook_env", src.webhook_env, "create an inbound webhook in Bitrix24 (Developer resources "
                    "-> Other -> Inbound webhook, scopes crm and user; docs/connect-bitrix24.md), then "
                    f"`export {src.webhook_env}='https://yourcompany.bitrix24.ru/rest/1/<code>/'`"))
    if src.kind == "pipedrive" and src.token_env:
        out.append(("source.token_env", src.token_env, "copy your API token in Pipedrive (Personal preferences -> API; "
                    f"docs/connect-pipedrive.md), then `export {src.token_env}=<token>`"))
    return out


def missing_data_folder(config: Config) -> "Path | None":
    """The [source] folder of a files source when it does not exist (a typo, or `init` not yet edited).

    A database may be down for a while and come back, so only the folder is checked up front."""
    from pathlib import Path

    if config.source.kind != "files":
        return None
    folder = Path(config.source.path or ".")
    if not folder.is_absolute():
        folder = config.base_dir / folder
    return None if folder.is_dir() else folder


def build_channels(config: Config, on_inbound: Any) -> dict[str, Any]:
    """The channel objects for the enabled chats (console when none is enabled)."""
    channels: dict[str, Any] = {}
    if config.telegram.enabled:
        from bot.channels.telegram import TelegramChannel

        tg = config.telegram
        channels["telegram"] = TelegramChannel(
            config.secret(tg.token_env) or "", base_url=tg.base_url, on_inbound=on_inbound, mode=tg.mode,
            webhook_url=tg.webhook_url, secret_token=config.secret(tg.webhook_secret_env),
            listen=tg.webhook_listen, port=tg.webhook_port,
            admin_chat_ids=[r.telegram_id for r in config.recipients if r.is_admin and r.telegram_id],
            token_env=tg.token_env)
    if config.slack.enabled:
        from bot.channels.slack import SlackChannel

        sl = config.slack
        channels["slack"] = SlackChannel(
            config.secret(sl.bot_token_env) or "", app_token=config.secret(sl.app_token_env),
            signing_secret=config.secret(sl.signing_secret_env), base_url=sl.base_url, on_inbound=on_inbound,
            mode=sl.mode, listen=sl.listen, port=sl.port, bot_token_env=sl.bot_token_env,
            app_token_env=sl.app_token_env)
    if not channels:
        from bot.channels.console import ConsoleChannel

        channels["console"] = ConsoleChannel()
    return channels


async def tell_admins(config: Config, channels: dict[str, Any], store: Any, texts: dict[str, str]) -> None:
    """A message to every admin straight through the channels, not the outbox: what it reports
    may be the state database failing. Each admin in their language; one failed send is logged."""
    from bot.admin_notice import admins
    from bot.channels.base import OutgoingMessage
    from bot.delivery import addresses, target_language, text_payload

    for admin in admins(config):  # the admins, or the directors when the config names none
        try:
            lang = target_language(admin, store, config)
        except Exception:  # the state database may be the very thing that fails
            lang = admin.language or config.language
        for channel, address in addresses(admin, config):
            ch = channels.get(channel)
            if ch is None:
                continue
            message = OutgoingMessage(channel, address, text_payload(channel, texts.get(lang) or texts["en"]))  # type: ignore[arg-type]
            try:
                await (ch.send_reply(message) if hasattr(ch, "send_reply") else ch.send(message))
            except Exception as e:
                log.warning("could not tell admin %s on %s: %s", admin.id, channel, e)


async def serve(config: Config, *, stop: asyncio.Event | None = None, channels: dict[str, Any] | None = None,
                scan_fn: Any = None, start_scan: bool = True, catch_up: bool = True,
                clock: Any = None) -> None:
    """Run everything until `stop` is set (SIGINT/SIGTERM set it when run from the CLI).
    At start: a first scan when there is none (else the stored data is read, for /maturity's
    hints), then today's digests that are due and were not written (catch_up); /metrics and
    /healthz when [metrics] is enabled. `clock` replaces the wall clock for the jobs (tests)."""
    from bot.scheduler import quiet_apscheduler

    with quiet_apscheduler():
        await _serve(config, stop=stop, channels=channels, scan_fn=scan_fn, start_scan=start_scan,
                     catch_up=catch_up, clock=clock)


async def _serve(config: Config, *, stop: asyncio.Event | None, channels: dict[str, Any] | None, scan_fn: Any,
                 start_scan: bool, catch_up: bool, clock: Any) -> None:
    from bot.handlers import Handlers
    from bot.metrics import MetricsServer, health
    from bot.outbox import Outbox
    from bot.scheduler import PulseJobs, build_scheduler
    from bot.state import StateStore

    stop = stop or asyncio.Event()
    store = StateStore.open(config.state_url())
    outbox = Outbox(store)
    jobs = PulseJobs(config, store, outbox, **({"scan_fn": scan_fn} if scan_fn else {}),
                     **({"clock": clock} if clock else {}))
    handlers = Handlers(config, store, scan_now=jobs.run_scan, data_provider=lambda: jobs.latest_data,
                        checks_provider=lambda: jobs.latest_checks)
    channels = channels if channels is not None else build_channels(config, handlers)
    jobs.alert = lambda texts: tell_admins(config, channels, store, texts)
    outbox.observe = jobs.metrics.message
    jobs.metrics.outbox_counts = outbox.counts
    jobs.metrics.channels(channels)
    started: list[Any] = []
    scheduler = build_scheduler(config, jobs)
    sender: asyncio.Task[None] | None = None
    starting: asyncio.Task[None] | None = None

    def current_health() -> tuple[int, dict[str, Any]]:
        if sender is None:  # the chats and the scheduler are still starting
            return health(False, {}, starting=True)
        return health(scheduler.running, jobs.failing, sender_running=not sender.done())
    hook_routes: list[Any] = []
    trigger: Any = None
    if config.webhook.enabled:  # a CRM's call runs the scheduled job's own path (sync, or scan = sync + alerts)
        from bot.webhooks import WebhookServer, endpoint_for, shares_metrics_port

        endpoint = endpoint_for(config, jobs.run_scan if config.webhook.scan else jobs.run_sync,
                                lambda outcome: jobs.metrics.webhooks.labels(outcome).inc())
        trigger = endpoint.trigger
        for outcome in ("accepted", "refused", "wrong_token"):
            jobs.metrics.webhooks.labels(outcome)  # 0 from the start, as the other counters
        hook_routes.append(endpoint.add_to)
        if not shares_metrics_port(config):
            started.append(WebhookServer(config.webhook.host, config.webhook.port, hook_routes))
            hook_routes = []
    if config.metrics.enabled:  # started first: a port taken stops the start before any chat is touched
        started.insert(0, MetricsServer(jobs.metrics, current_health, config.metrics.host, config.metrics.port,
                                        hook_routes))
    try:
        for server in started:
            await server.start()
        for ch in channels.values():
            if hasattr(ch, "start"):
                try:
                    await ch.start()
                except BaseException:  # half started (opened, then a later step failed): close it
                    if hasattr(ch, "stop"):
                        try:
                            await ch.stop()
                        except Exception as e:
                            log.warning("stopping %s after a failed start: %s", getattr(ch, "name", ch), e)
                    raise
                started.append(ch)
        scheduler.start()
        sender = asyncio.create_task(outbox.run_forever(channels, stop=stop))

        async def at_start() -> None:
            if start_scan and store.latest_scan() is None:
                await jobs.run_scan()
            elif start_scan:  # a restart: the stored insights stand, the data is read for /maturity
                await jobs.load_latest_data()
            if catch_up:  # after the first scan, so the two do not race for the scan lock
                await jobs.catch_up_digests()
        starting = asyncio.create_task(at_start())
        log.info("crm-pulse running: channels %s, state %s", ", ".join(channels), store.engine.url.render_as_string())
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False) if scheduler.running else None
        if trigger is not None:  # a webhook's sync that is running gets to finish writing the store
            await trigger.close()
        if starting is not None and not starting.done():  # let a first scan/catch-up finish writing
            try:
                await asyncio.wait_for(asyncio.shield(starting), 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                starting.cancel()
        if sender is not None:
            outbox.wake.set()
            try:
                await asyncio.wait_for(sender, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                sender.cancel()
        for ch in reversed(started):
            if hasattr(ch, "stop"):
                try:
                    await ch.stop()
                except Exception as e:  # shutting down anyway; say what failed
                    log.warning("stopping %s: %s", getattr(ch, "name", ch), e)
        store.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.toml", help="config file (default: config.toml)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def run(args: argparse.Namespace) -> int:
    from bot.logsafe import configure_logging, reset_logging

    configure_logging(getattr(args, "log_level", "INFO"))  # every line through the secret filter
    try:
        return _run(args)
    finally:  # the process ends here; called in-process (tests), leave logging as it was
        reset_logging()


def _run(args: argparse.Namespace) -> int:
    from bot.logsafe import redact, register_config_secrets

    try:
        config = load_config(args.config)
        register_config_secrets(config)
        config.state_url()
    except ConfigError as e:
        print(redact(str(e)), file=sys.stderr)
        return 2
    from bot.webhooks import webhook_problems

    problems = missing_secrets(config) + webhook_problems(config)
    if problems:
        print(f"{config.source_name}: cannot start, {len(problems)} secret(s) missing from the environment or unusable:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await serve(config, stop=stop)

    from bot.channels.base import PermanentFailure, RetryLater
    from bot.state import StateStore, db_reason, db_where

    url = config.state_url()
    for attempt, wait in enumerate((*START_BACKOFF, None), start=1):
        stage = "open"
        try:  # fail here, with a clear line, rather than inside the running service
            store = StateStore.open(url)
            try:
                stage = "write to"
                store.check_writable()
            finally:
                store.close()
            break
        except Exception as e:  # sqlalchemy/driver errors, or a state newer than this code
            where = db_where(url)
            reason = db_reason(e)
            temporary = stage == "open" and _temporary_db_error(e, url)
            if temporary and wait is not None:  # the database may be starting with the machine
                log.warning(redact(f"state database {where} unreachable ({reason}); trying again in {wait:g} s"))
                time.sleep(wait)
                continue
            fix = f"see [state] in {config.source_name}"
            if stage == "write to":  # opened fine, but every scan and send would fail to record
                fix = ("the bot records every message it sends there: make it writable for the user the bot "
                       "runs as (for SQLite the file and its folder: it writes -wal and -shm files next to it), "
                       f"or point [state] in {config.source_name} at a writable place")
            elif temporary:
                fix = f"tried {attempt} times; exit {EXIT_TEMPFAIL}: try again later (systemd restarts the bot)"
            print(redact(f"cannot {stage} the state database {where}: {reason} ({fix})"), file=sys.stderr)
            return EXIT_TEMPFAIL if temporary else 2
    folder = missing_data_folder(config)
    if folder is not None:  # every scan would fail: say it now, not once an hour in the log
        what = "is a file, not a folder" if folder.is_file() else "does not exist"
        print(f"data error: the data folder {str(folder)!r} {what}. Fix: set [source] path in "
              f"{config.source_name} to the folder with your CRM export (relative paths are relative "
              "to the config file)", file=sys.stderr)
        return 3
    if not config.telegram.enabled and not config.slack.enabled:
        # A service that "sends" to its own stdout would record those sends in the notification
        # log and hold the same items back for days once a chat is switched on.
        print(f"{config.source_name}: cannot start: no chat is enabled. Set `enabled = true` under "
              f"[telegram] (and export {config.telegram.token_env}) or [slack] (and export "
              f"{config.slack.bot_token_env}); to see what would be sent without a chat, run "
              "`crm-pulse scan --config FILE` or `crm-pulse demo`", file=sys.stderr)
        return 2
    for attempt, wait in enumerate((*START_BACKOFF, None), start=1):
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        except PermanentFailure as e:  # a channel refused to start: a bad token, a port taken
            print(redact(f"cannot start: {e.reason}"), file=sys.stderr)
            return 2
        except RetryLater as e:  # the chat API unreachable (DNS, network, 5xx): not the config's fault
            if wait is not None:
                log.warning(redact(f"cannot start yet: {e.reason}; trying again in {wait:g} s"))
                time.sleep(wait)
                continue
            print(redact(f"cannot start: {e.reason} (tried {attempt} times; exit {EXIT_TEMPFAIL}: try again "
                         "later, systemd restarts the bot)"), file=sys.stderr)
            return EXIT_TEMPFAIL
        return 0
    return 0


def _temporary_db_error(error: BaseException, url: str) -> bool:
    """A database server not reachable yet (refused, DNS, timeout) may be fine in a minute; a
    wrong password, a missing database or an SQLite path problem will not be."""
    from sqlalchemy import exc

    if url.startswith("sqlite"):
        return "database is locked" in str(error).lower()
    if not isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)):
        return False
    text = str(getattr(error, "orig", None) or error).lower()
    permanent = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
                 "permission denied", "authentication failed")
    return not any(p in text for p in permanent)
