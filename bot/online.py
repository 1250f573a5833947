"""Prove the wiring before going live: `check-config --online` and `crm-pulse send-test --to ID`.

`check-config --online` calls each enabled chat API with the configured token and base URL
(Telegram getMe, Slack auth.test and, in Socket Mode, apps.connections.open) and opens the
state database as `run` would. `send-test` sends one harmless message to one recipient or team
channel through the real channel(s), straight through the channel, not the outbox: nothing is
recorded in the notification log, so it changes nothing about what people get later.

Exit codes: 0 all good; 2 a check failed that only the config or a token can fix (a rejected
token, a chat the bot cannot write to, no address); 75 an API or database not reachable now
(try again later).
"""
from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

EXIT_OK, EXIT_USAGE, EXIT_TEMPFAIL = 0, 2, 75


@dataclass
class Check:
    ok: bool
    line: str
    temporary: bool = False  # not reachable now (network, 5xx): may work in a minute


def exit_code(checks: list[Check]) -> int:
    if any(not c.ok and not c.temporary for c in checks):
        return EXIT_USAGE
    return EXIT_TEMPFAIL if any(not c.ok for c in checks) else EXIT_OK


async def _telegram(channel: Any, base_url: str) -> Check:
    from bot.channels.base import PermanentFailure, RetryLater

    try:
        await channel.open()  # getMe
        me = channel.app.bot
        return Check(True, f"telegram: getMe OK: @{me.username} (id {me.id}) at {base_url}")
    except PermanentFailure as e:
        return Check(False, f"telegram: FAILED: {e.reason}")
    except RetryLater as e:
        return Check(False, f"telegram: NOT REACHABLE at {base_url}: {e.reason}", temporary=True)
    finally:
        await channel.stop()


async def _slack(channel: Any, base_url: str, mode: str) -> Check:
    from bot.channels.base import PermanentFailure, RetryLater

    try:
        await channel.check_tokens()  # auth.test, and apps.connections.open in Socket Mode
        who = await channel.client.auth_test()
        socket = ", app-level token OK (Socket Mode)" if mode == "socket" else ""
        return Check(True, f"slack: auth.test OK: bot @{who.get('user')} in {who.get('team')}{socket} at {base_url}")
    except PermanentFailure as e:
        return Check(False, f"slack: FAILED: {e.reason}")
    except RetryLater as e:
        return Check(False, f"slack: NOT REACHABLE at {base_url}: {e.reason}", temporary=True)
    finally:
        await channel.stop()


def chat_checks(config: Any) -> list[Check]:
    """One Check per enabled chat: the API answers and accepts the configured token(s)."""
    from bot.app import build_channels, missing_secrets
    from bot.logsafe import redact, register_config_secrets

    register_config_secrets(config)
    missing = missing_secrets(config)
    if missing:
        return [Check(False, f"secret missing: {m}") for m in missing]
    if not config.telegram.enabled and not config.slack.enabled:
        return [Check(True, "chats: none enabled ([telegram] / [slack] enabled = true): nothing to call")]
    channels = build_channels(config, None)

    async def run_all() -> list[Check]:
        out = []
        if "telegram" in channels:
            out.append(await _telegram(channels["telegram"], config.telegram.base_url))
        if "slack" in channels:
            out.append(await _slack(channels["slack"], config.slack.base_url, config.slack.mode))
        return out

    checks = asyncio.run(run_all())
    for c in checks:  # an API's error text may quote a token back: never print one
        c.line = redact(c.line)
    return checks


def state_check(config: Any) -> Check:
    """The state database opens and takes writes, as `run` needs; a SQLite file not made yet is fine."""
    from pathlib import Path

    from bot.config import ConfigError
    from bot.state import StateStore, db_reason, db_where, missing_sqlite_file

    try:
        url = config.state_url()
    except ConfigError as e:
        return Check(False, f"state: FAILED: {e}")
    where = db_where(url)
    missing = missing_sqlite_file(url)
    if missing is not None:
        folder = Path(missing).parent
        import os

        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return Check(True, f"state: {where}: no file yet; `run` creates it (its folder is writable)")
        return Check(False, f"state: FAILED: {where}: the folder {folder} does not exist or is not writable "
                            "for this user; `run` could not create the file")
    try:
        store = StateStore.open(url)
        try:
            store.check_writable()
            version = store.schema_version()
        finally:
            store.close()
    except Exception as e:  # driver errors: say where and the first line of why
        from bot.app import _temporary_db_error

        reason = db_reason(e)
        return Check(False, f"state: FAILED: {where}: {reason}", temporary=_temporary_db_error(e, url))
    return Check(True, f"state: {where}: opened and writable (schema version {version})")


def crm_check(config: Any) -> Check | None:
    """A CRM API source: the connector's own `sync --check` (credentials, pipelines, users), with
    nothing synced. None for exports and databases (the data check above covers them)."""
    from crm.connectors import CONNECTORS, connector

    kind = config.source.kind
    if kind not in CONNECTORS:
        return None
    from bot.logsafe import REDACTOR, redact
    from crm.errors import DataError

    try:
        found = connector(kind).check(config.source, config.base_dir, on_secret=REDACTOR.add_values)
    except DataError as e:  # refused credentials, a missing variable: the config or a token must change
        return Check(False, redact(f"crm: FAILED: {kind}: {e.problem}" + (f" ({e.fix})" if e.fix else "")))
    except Exception as e:  # the connection, a 5xx after the retries: may work in a minute
        return Check(False, redact(f"crm: FAILED: {kind} not reachable now: {type(e).__name__}: {e}"), temporary=True)
    pipelines = found.get("pipelines") or []
    included = [str(p["name"]) for p in pipelines if p.get("included")]
    users = found.get("users") or []
    active = sum(1 for u in users if u.get("active", True))
    return Check(True, f"crm: {kind} credentials OK (account {found.get('account')!r}): "
                       f"{len(included)} of {len(pipelines)} pipeline(s) included ({', '.join(included) or 'none'}), "
                       f"{active} active user(s); `crm-pulse sync --check` lists them")


def online_lines(config: Any) -> tuple[list[str], int]:
    """The `check-config --online` section: lines to print and the exit code they make."""
    crm = crm_check(config)
    checks = [*chat_checks(config), state_check(config), *([crm] if crm else [])]
    return ["  online:"] + [f"    {c.line}" for c in checks], exit_code(checks)


# --- send-test ------------------------------------------------------------------------------

TEST_TEXT = {
    "ru": "✅ crm-pulse: проверочное сообщение для {name}. Если вы его видите, доставка в {channel} "
          "работает. Делать ничего не нужно.",
    "en": "✅ crm-pulse: a test message for {name}. If you can read this, delivery to {channel} works. "
          "Nothing to do.",
}
CHANNEL_NAMES = {"telegram": "Telegram", "slack": "Slack"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", metavar="ID", required=True, help="the id of a [[recipients]] or [[channels]] entry")
    p.add_argument("--config", metavar="FILE", help="config.toml (default: ./config.toml)")


def run(args: argparse.Namespace) -> int:
    from bot.app import build_channels, missing_secrets
    from bot.channels.base import OutgoingMessage, PermanentFailure, RetryLater
    from bot.cli import UsageError, config_or_default, err
    from bot.delivery import addresses, target_language, text_payload
    from bot.logsafe import redact, register_config_secrets
    from bot.preview import find_target

    config = config_or_default(args.config, None)
    register_config_secrets(config)
    target = find_target(config, args.to)
    if not config.telegram.enabled and not config.slack.enabled:
        raise UsageError("send-test: no chat is enabled: set `enabled = true` under [telegram] or [slack]")
    reach = addresses(target, config)
    if not reach:
        raise UsageError(f"send-test: {target.id} has no address on an enabled chat: set telegram_id or "
                         "slack_id (telegram_chat_id / slack_channel_id for a team channel)")
    missing = missing_secrets(config)
    if missing:
        raise UsageError("send-test: " + "; ".join(missing))
    lang = target_language(target, None, config)
    name = getattr(target, "display_name", None) or target.id
    channels = build_channels(config, None)

    async def send_all() -> list[Check]:
        out = []
        for channel, address in reach:
            ch = channels[channel]
            text = TEST_TEXT[lang].format(name=name, channel=CHANNEL_NAMES.get(channel, channel))
            message = OutgoingMessage(channel, address, text_payload(channel, text))  # type: ignore[arg-type]
            try:
                # a refused token is said as such (send alone would call it "try again later")
                await (ch.check_tokens() if channel == "slack" else ch.open())
                receipt = await ch.send(message)
                out.append(Check(True, f"sent to {target.id} on {channel} ({address}): message {receipt.message_id}"))
            except PermanentFailure as e:
                out.append(Check(False, f"NOT sent to {target.id} on {channel} ({address}): {e.reason}"))
            except RetryLater as e:
                out.append(Check(False, f"NOT sent to {target.id} on {channel} ({address}): {e.reason} "
                                        "(try again later)", temporary=True))
            finally:
                await ch.stop()
        return out

    checks = asyncio.run(send_all())
    for c in checks:
        (print if c.ok else err)(redact(c.line))
    return exit_code(checks)

