"""`crm-pulse preview --recipient ID`: exactly what one person would get from the real data now.

The terminal twin of the chat's /preview (like `amtool template render`): the config's source
is loaded and scanned, the insights are routed, the notification log in the state database
(when the bot has one) decides what is due, and the digest is built and formatted by the very
functions delivery uses (bot.delivery.plan_digest, digest_payloads), so what is printed is
what the chat would show. Nothing is sent and nothing is recorded.

stdout holds only the message(s); what the log held back and why goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

FORMATS = ("text", "telegram", "slack")

# The notification log's reasons (bot.notify_log.decide) as an admin reads them in
# /preview and here.
PREVIEW_REASONS: dict[str, tuple[str, str]] = {
    "first": ("новые", "new"),
    "worse": ("стало хуже", "got worse"),
    "repeat_interval": ("пора напомнить", "reminder due"),
    "snoozed": ("отложено", "snoozed"),
    "suppressed": ("отмечено сделанным", "marked done"),
    "unchanged": ("без изменений", "unchanged"),
}


def preview_reasons(counts: dict[str, int], lang: str) -> str:
    """{"first": 7, "unchanged": 3} -> "новые: 7; без изменений: 3" (in the log's order of reasons)."""
    order = list(PREVIEW_REASONS)
    shown = sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    words = {k: v[0 if lang == "ru" else 1] for k, v in PREVIEW_REASONS.items()}
    return "; ".join(f"{words.get(k, k.replace('_', ' '))}: {n}" for k, n in shown if n)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipient", metavar="ID", required=True,
                   help="the id of a [[recipients]] or [[channels]] entry in the config")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (as the console channel prints it), telegram (the HTML and buttons sent), "
                        "slack (the Block Kit JSON sent); default: text")
    p.add_argument("--config", metavar="FILE", help="config.toml (default: ./config.toml)")
    p.add_argument("--now", metavar="TS", help="as if it were this moment (ISO; default: now)")
    p.add_argument("--no-state", action="store_true",
                   help="ignore the state database: preview as if nothing had been sent before")
    p.add_argument("--lang", choices=["ru", "en"],
                   help="preview in this language (default: the recipient's /lang choice, then their config language, "
                        "then the config's)")


def find_target(config: Any, target_id: str) -> Any:
    """The recipient or team channel with this id; a usage error naming the close ones otherwise."""
    import difflib

    from bot.cli import UsageError
    from bot.delivery import targets

    everyone = targets(config)
    if target_id in everyone:
        return everyone[target_id]
    by_manager = [r for r in config.recipients if r.role == "manager" and str(r.manager_id) == target_id]
    if len(by_manager) == 1:  # the CRM's manager id is what an admin often has at hand
        return by_manager[0]
    if not everyone:
        raise UsageError("--recipient: the config has no [[recipients]] or [[channels]]; add them first "
                         "(see config.example.toml)")
    close = difflib.get_close_matches(target_id, list(everyone), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(sorted(everyone)[:10]) + (", ..." if len(everyone) > 10 else "")
    raise UsageError(f"--recipient: no recipient or channel with id {target_id!r}; {hint}known: {shown}")


def open_state(config: Any, *, no_state: bool) -> tuple[Any, str]:
    """(StateStore, note): the bot's state database read as delivery reads it, or an empty
    in-memory one when there is none yet (every item then counts as new)."""
    from bot.cli import UsageError
    from bot.config import ConfigError
    from bot.state import StateStore, db_reason, db_where, missing_sqlite_file

    if no_state:
        return StateStore.open("sqlite://"), "state: ignored (--no-state): every item counts as new"
    try:
        url = config.state_url()
    except ConfigError as e:
        raise UsageError(f"{e}\n(or add --no-state to preview as if nothing had been sent)") from None
    missing = missing_sqlite_file(url)
    if missing is not None:  # opening it would create an empty database next to the config
        return StateStore.open("sqlite://"), f"state: none yet ({missing}): every item counts as new"
    where = db_where(url)
    try:
        store = StateStore.open(url)
    except Exception as e:  # an unreachable or unreadable database: say where and why
        reason = db_reason(e)
        raise UsageError(f"cannot open the state database {where}: {reason} "
                         "(or add --no-state to preview as if nothing had been sent)") from None
    return store, f"state: {where}"


def render(plan: Any, fmt: str) -> str:
    """The plan's digest as the channel would carry it; the console channel's text for `text`."""
    from bot.delivery import digest_payloads
    from messages.terminal import terminal_safe

    channel = {"text": "console"}.get(fmt, fmt)
    payloads = digest_payloads(channel, plan.digest)
    if fmt == "slack":
        return terminal_safe(json.dumps(payloads, ensure_ascii=False, indent=2))
    if fmt == "telegram":
        parts = []
        for k, p in enumerate(payloads, start=1):
            rows = ["  ".join(f"[{b['label']}]" for b in row) for row in p.get("buttons") or []]
            head = f"--- message {k} of {len(payloads)} ---\n" if len(payloads) > 1 else ""
            parts.append(head + p["text"] + ("\n\n" + "\n".join(rows) if rows else ""))
        return terminal_safe("\n\n".join(parts))
    return "\n\n".join(p["text"] for p in payloads)


def summary_lines(target: Any, plan: Any, config: Any, total: int) -> list[str]:
    """For stderr: how many items the person has, which the digest shows, which the log holds back."""
    from bot.delivery import REMINDER, addresses

    def counted(pairs: list[tuple[Any, str]]) -> str:
        counts: dict[str, int] = {}
        for _, reason in pairs:
            counts[reason] = counts.get(reason, 0) + 1
        return preview_reasons(counts, "en")

    full = [(i, r) for i, r in plan.sent if r != REMINDER]
    reminded = [(i, r) for i, r in plan.sent if r == REMINDER]
    lines = [f"{target.id}: {total} item(s) for this person; the digest shows {len(full)} in full"
             + (f" ({counted(full)})" if full else "")
             + (f" and {len(reminded)} as \"still open\" reminder(s)" if reminded else "")]
    shown = len(plan.digest.items) if plan.digest is not None else len(full)
    if full and shown != len(full):
        # the digest's header counts its items: one manager's stalled deals are one item
        lines[0] += f", as {shown} digest item(s) (one manager's stalled deals are one item)"
    if plan.held:
        lines.append(f"held back by the notification log: {len(plan.held)} ({counted(plan.held)})")
    left = total - len(plan.sent) - len(plan.held)
    if left > 0:
        lines.append(f"over the digest's limit (delivery.max_items = {config.delivery.max_items}): {left}, "
                     "due again next time")
    if plan.digest is None:
        lines.append("no message would be sent (nothing due, and all_quiet is off)")
    reach = addresses(target, config)
    if not reach:
        lines.append(f"warning: {target.id} has no address on an enabled channel (telegram_id / slack_id): "
                     "nothing would actually be sent")
    else:
        lines.append("sent to: " + ", ".join(f"{c} {a}" for c, a in reach))
    return lines


def digest_day_line(target: Any, config: Any, now: datetime) -> str:
    """When this person's scheduled digest goes out: today's is skipped on a day off of the
    company calendar (bot.send_days), said with the day it waits for."""
    from bot.send_days import fmt_day, next_digest, skipped_line

    when = getattr(target, "digest_time", None) or config.schedule.digest_time
    tz = getattr(target, "timezone", None) or config.timezone
    today = now.astimezone(ZoneInfo(tz)).date()
    skipped = skipped_line(config, today, "the scheduler sends no digest today")
    if skipped is not None:
        return skipped
    nxt = next_digest(config, now, when, tz)
    return (f"next scheduled digest: {fmt_day(nxt.date(), weekday=True)} {nxt:%H:%M} {tz}" if nxt
            else "no scheduled digest within a year (check [schedule] digest_days and [calendar])")


def run(args: argparse.Namespace) -> int:
    from bot import pipeline
    from bot.admin_notice import due_notices, waits_until
    from bot.cli import config_or_default, print_skipped, print_warnings, err, parse_now
    from bot.delivery import WEEKLY_DETECTORS, plan_digest, scan_checks
    from bot.routing import route
    from bot.send_days import fmt_day

    config = config_or_default(args.config, None)
    target = find_target(config, args.recipient)
    now = parse_now(args.now, config.timezone)
    outcome = pipeline.scan(config, now)
    print_warnings(outcome.warnings)
    if outcome.stale:
        err(f"stale data: {outcome.stale}")
    if outcome.days_off:
        err(f"calendar: {outcome.days_off}")
    print_skipped(outcome.skipped, outcome.partial)
    # the daily digest's items, routed as delivery routes them (weekly detectors go in the weekly report)
    items = route([i for i in outcome.insights if i.detector not in WEEKLY_DETECTORS], config).get(target.id, [])
    store, state_note = open_state(config, no_state=args.no_state)
    try:
        plan = plan_digest(target, items, config, store, now, checks=scan_checks(outcome, config), lang=args.lang)
        notices = due_notices(target, outcome, config, store, now)
    finally:
        store.close()
    err(state_note)
    err(digest_day_line(target, config, now))
    for line in summary_lines(target, plan, config, len(items)):
        if notices and line.startswith("no message would be sent"):
            line = "no digest would be sent (nothing due, and all_quiet is off)"
        err(line)
    if notices:
        wait = waits_until(target, config, now)
        then = (f", waiting for {fmt_day(wait.date(), weekday=True)} {wait:%H:%M} (the company rests until then)"
                if wait else "")
        err(f"admin notice(s), sent apart from the digest: {len(notices)} ({', '.join(notices)}){then}")
    if plan.digest is not None:
        sys.stdout.write(render(plan, args.format) + "\n")
    for text in notices.values():
        sys.stdout.write(text + "\n")
    return 0

