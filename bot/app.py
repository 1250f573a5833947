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
from typing import Any

from bot.config import Config, ConfigError, load_config

log = logging.getLogger("crm_pulse.app")

TELEGRAM_HOW = ("create a bot with @BotFather in Telegram (/newbot) and copy the token it gives you, then "
                "`export {env}=<token>`")
SLACK_HOW = ("create the Slack app from slack-app-manifest.yml (api.slack.com/apps -> Create New App -> From a "
             "manifest), install it to the workspace, then `export {env}=<{what}>`")


def missing_secrets(config: Config) -> list[str]:
    """One line per secret an enabled channel needs but the environment does not hold."""
    out: list[str] = []
    tg = config.telegram
    if tg.enabled:
        if not config.secret(tg.token_env):
            out.append(f"telegram.token_env: environment variable {tg.token_env} is not set: " + TELEGRAM_HOW.format(env=tg.token_env))
        if tg.mode == "webhook" and tg.webhook_secret_env and not config.secret(tg.webhook_secret_env):
            out.append(f"telegram.webhook_secret_env: environment variable {tg.webhook_secret_env} is not set: "
                       "choose any random string (e.g. `openssl rand -hex 32`) and export it")
    sl = config.slack
    if sl.enabled:
        if not config.secret(sl.bot_token_env):
            out.append(f"slack.bot_token_env: environment variable {sl.bot_token_env} is not set: "
                       + SLACK_HOW.format(env=sl.bot_token_env, what="xoxb-... Bot User OAuth Token (OAuth & Permissions)"))
        if sl.mode == "socket" and not config.secret(sl.app_token_env):
            out.append(f"slack.app_token_env: environment variable {sl.app_token_env} is not set: "
                       + SLACK_HOW.format(env=sl.app_token_env, what="xapp-... app-level token with connections:write "
                                          "(Basic Information -> App-Level Tokens)"))
        if sl.mode == "http" and not config.secret(sl.signing_secret_env):
            out.append(f"slack.signing_secret_env: environment variable {sl.signing_secret_env} is not set: "
                       + SLACK_HOW.format(env=sl.signing_secret_env, what="Signing Secret (Basic Information)"))
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
            admin_chat_ids=[r.telegram_id for r in config.recipients if r.is_admin and r.telegram_id])
    if config.slack.enabled:
        from bot.channels.slack import SlackChannel

        sl = config.slack
        channels["slack"] = SlackChannel(
            config.secret(sl.bot_token_env) or "", app_token=config.secret(sl.app_token_env),
            signing_secret=config.secret(sl.signing_secret_env), base_url=sl.base_url, on_inbound=on_inbound,
            mode=sl.mode, port=sl.port)
    if not channels:
        from bot.channels.console import ConsoleChannel

        channels["console"] = ConsoleChannel()
    return channels


async def serve(config: Config, *, stop: asyncio.Event | None = None, channels: dict[str, Any] | None = None,
                scan_fn: Any = None, start_scan: bool = True) -> None:
    """Run everything until `stop` is set (SIGINT/SIGTERM set it when run from the CLI)."""
    from bot.handlers import Handlers
    from bot.outbox import Outbox
    from bot.scheduler import PulseJobs, build_scheduler
    from bot.state import StateStore

    stop = stop or asyncio.Event()
    store = StateStore.open(config.state_url())
    outbox = Outbox(store)
    jobs = PulseJobs(config, store, outbox, **({"scan_fn": scan_fn} if scan_fn else {}))
    handlers = Handlers(config, store, scan_now=jobs.run_scan, data_provider=lambda: jobs.latest_data,
                        checks_provider=lambda: jobs.latest_checks)
    channels = channels if channels is not None else build_channels(config, handlers)
    started: list[Any] = []
    scheduler = build_scheduler(config, jobs)
    sender: asyncio.Task[None] | None = None
    try:
        for ch in channels.values():
            if hasattr(ch, "start"):
                await ch.start()
                started.append(ch)
        scheduler.start()
        sender = asyncio.create_task(outbox.run_forever(channels, stop=stop))
        if start_scan and store.latest_scan() is None:
            asyncio.create_task(jobs.run_scan())
        log.info("crm-pulse running: channels %s, state %s", ", ".join(channels), store.engine.url.render_as_string())
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False) if scheduler.running else None
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
    logging.basicConfig(level=getattr(args, "log_level", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        config.state_url()
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    problems = missing_secrets(config)
    if problems:
        print(f"{config.source_name}: cannot start, {len(problems)} secret(s) missing from the environment:", file=sys.stderr)
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
    from bot.state import StateStore

    url = config.state_url()
    try:  # fail here, with a clear line, rather than inside the running service
        StateStore.open(url).close()
    except Exception as e:  # sqlalchemy/driver errors, or a state newer than this code
        from sqlalchemy.engine import make_url

        where = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        print(f"cannot open the state database {where}: {reason} (see [state] in {config.source_name})",
              file=sys.stderr)
        return 2
    folder = missing_data_folder(config)
    if folder is not None:  # every scan would fail: say it now, not once an hour in the log
        what = "is a file, not a folder" if folder.is_file() else "does not exist"
        print(f"data error: the data folder {str(folder)!r} {what}. Fix: set [source] path in "
              f"{config.source_name} to the folder with your CRM export (relative paths are relative "
              "to the config file)", file=sys.stderr)
        return 3
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (PermanentFailure, RetryLater) as e:  # a channel could not start: bad token, API unreachable
        print(f"cannot start: {e.reason}", file=sys.stderr)
        return 2
    return 0
