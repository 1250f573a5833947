"""Scan results -> who gets what -> the notification log decides -> words -> the outbox.

Each recipient's digest is written to the outbox in the same transaction that records the
sends in the notification log, so a crash leaves either both or neither. Only the items a
digest actually shows are recorded as sent; the rest ("and 5 more") stay due for next time.
An item due only because its repeat interval passed (nothing got worse) is shown as a
one-line "still open" reminder, not in full again (messages.digest).
"""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from bot.channels.base import OutgoingMessage
from bot.config import Config, Recipient, TeamChannel, parse_hhmm
from bot.notify_log import Decision, LogEntry, Policy, decide
from bot.outbox import Outbox
from bot.routing import route
from bot.state import StateStore
from detectors.insight import Audience, Insight

log = logging.getLogger("crm_pulse.delivery")

WEEKLY_DETECTORS = frozenset({"loss_reasons", "win_forecast"})  # sent in the weekly report, not the daily digest
CHART_DETECTORS = frozenset({"conversion_drop", "manager_load", "loss_reasons"})
MAX_CHARTS = 3

Target = Recipient | TeamChannel


@dataclass
class DeliveryReport:
    """What one delivery run did, per recipient id (for logs, preview and tests)."""

    sent: dict[str, list[str]] = field(default_factory=dict)  # fingerprints recorded as sent
    held: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (fingerprint, reason) not sent
    reasons: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (fingerprint, reason) sent
    messages: dict[str, int] = field(default_factory=dict)  # outbox messages enqueued
    closed: dict[str, list[str]] = field(default_factory=dict)
    # fingerprints whose message could not be rendered for this recipient: nothing enqueued or
    # recorded for them, so they stay due (everyone else still got theirs)
    failed: dict[str, list[str]] = field(default_factory=dict)


def targets(config: Config) -> dict[str, Target]:
    out: dict[str, Target] = {r.id: r for r in config.recipients}
    out.update({c.id: c for c in config.channels})
    return out


def target_language(target: Target, store: StateStore | None, config: Config) -> str:
    """A person's /lang choice, then their config language, then the config default."""
    from messages.i18n import pick_language

    own = store.language(target.id) if store is not None and isinstance(target, Recipient) else None
    return pick_language(own or target.language, None, config.language)


def target_timezone(target: Target, config: Config) -> ZoneInfo:
    tz = getattr(target, "timezone", None) or config.timezone
    return ZoneInfo(tz)


def addresses(target: Target, config: Config) -> list[tuple[str, str]]:
    """(channel, address) pairs this target is reached at; console when no chat is enabled."""
    out: list[tuple[str, str]] = []
    tg_id = target.telegram_id if isinstance(target, Recipient) else target.telegram_chat_id
    sl_id = target.slack_id if isinstance(target, Recipient) else target.slack_channel_id
    if config.telegram.enabled and tg_id:
        out.append(("telegram", str(tg_id)))
    if config.slack.enabled and sl_id:
        out.append(("slack", str(sl_id)))
    if not out and not config.telegram.enabled and not config.slack.enabled:
        out.append(("console", target.id))
    return out


def in_quiet_hours(target: Target, now: datetime, config: Config) -> bool:
    spec = getattr(target, "quiet_hours", None)
    if not spec:
        return False
    start_s, end_s = spec.split("-")
    start, end = parse_hhmm(start_s), parse_hhmm(end_s)
    local = now.astimezone(target_timezone(target, config)).time().replace(second=0, microsecond=0)
    return _in_range(local, start, end)


def _in_range(t: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end  # wraps midnight: 21:00-08:00


def decisions(store: StateStore, target_id: str, items: Iterable[Insight], now: datetime,
              policy: Policy) -> list[tuple[Insight, Decision]]:
    """What the notification log says about each item for this target (one read of the log)."""
    return [(i, d) for i, d, _ in _decided(store, target_id, items, now, policy)]


def _decided(store: StateStore, target_id: str, items: Iterable[Insight], now: datetime,
             policy: Policy) -> list[tuple[Insight, Decision, LogEntry | None]]:
    entries = store.log_entries(target_id)
    return [(i, decide(entries.get(i.fingerprint), i, now, policy), entries.get(i.fingerprint)) for i in items]


def scan_checks(outcome: Any, config: Config) -> Any:
    """messages.digest.Checks of a pipeline.ScanOutcome: what that scan could not check."""
    from messages.digest import Checks

    specs = config.detector_specs()
    return Checks.of(specs, getattr(outcome, "skipped", None) or {}, getattr(outcome, "partial", None) or {},
                     disabled=[n for n, spec in specs.items() if not spec.enabled])


REMINDER = "repeat_interval"  # decide's reason for "unchanged, but not mentioned for a while"


def text_payload(channel: str, text: str) -> dict[str, Any]:
    """A plain-text message (chart caption, resolved note) in the channel's payload shape."""
    from messages.escape import unicode_safe

    text = unicode_safe(str(text))
    if channel == "telegram":
        return {"text": html.escape(text, quote=False), "buttons": []}
    if channel == "slack":  # a caption or note quotes stage, client and reason names: inert
        from messages.slack import format_text
        return format_text(text)
    return {"text": text}


def _enqueue_and_record(store: StateStore, outbox: Outbox, target_id: str, messages: list[OutgoingMessage],
                        sent: list[tuple[Insight, str]], now: datetime) -> list[int]:
    """Enqueue the messages and record their items as sent in one transaction, so a crash leaves
    both or neither. Nothing enqueued (no address, or this run's messages already stored) records
    nothing: the items stay due."""
    detectors = ",".join(sorted({i.detector for i, _ in sent}))[:300]
    with store.engine.begin() as conn:
        enqueued = outbox.enqueue(target_id, messages, conn=conn, detectors=detectors or None)
        if enqueued:
            for i, reason in sent:
                store.record_sent(target_id, i, now, reason, conn=conn)
    return enqueued


def _role(target: Target) -> str:
    return target.role if isinstance(target, Recipient) else "director"


def digest_payloads(channel: str, digest: Any) -> list[dict[str, Any]]:
    if channel == "telegram":
        from messages.telegram import format_digest
        return format_digest(digest)
    if channel == "slack":
        from messages.slack import format_digest
        return format_digest(digest)
    from messages.terminal import format_digest
    return [{"text": format_digest(digest)}]


def insight_payload(channel: str, insight: Insight, lang: str, now: datetime, *, details: bool = True,
                    refs: dict | None = None, role: str = "manager") -> dict[str, Any]:
    """One insight for one reader. `refs` (bot.explain.evidence_refs): the details name deals and
    clients instead of ids; `role` "director" words a manager's item for their head of sales
    (whose it is, what to ask them) instead of speaking to the manager."""
    you = role != "director"
    if channel == "telegram":
        from messages.telegram import format_insight
        return format_insight(insight, lang, now=now, details=details, refs=refs, you=you)
    if channel == "slack":
        from messages.slack import format_insight
        return format_insight(insight, lang, now=now, details=details, refs=refs, you=you)
    from messages.terminal import format_insight
    return {"text": format_insight(insight, lang, now=now, details=details, refs=refs, you=you)}


def _chart_messages(channel: str, address: str, items: list[Insight], lang: str, key: str) -> list[OutgoingMessage]:
    from messages.charts import chart_for
    from messages.render import insight_text

    out: list[OutgoingMessage] = []
    for insight in items:
        if len(out) >= MAX_CHARTS or insight.detector not in CHART_DETECTORS:
            continue
        try:
            png = chart_for(insight, lang)
            caption = insight_text(insight, lang).split("\n")[0][:900] if png else ""
        except Exception:  # one odd string in the data costs this chart, never the digest
            log.warning("delivery: chart for %s %s not drawn, the item goes out without it",
                        insight.detector, insight.fingerprint, exc_info=True)
            continue
        if not png:
            continue
        out.append(OutgoingMessage(channel, address, text_payload(channel, caption), photo_png=png,  # type: ignore[arg-type]
                                   dedup_key=f"{key}:{channel}:chart:{insight.fingerprint}"))
    return out


def deliver(insights: list[Insight], config: Config, store: StateStore, outbox: Outbox, now: datetime, *,
            only_targets: Iterable[str] | None = None, only_detectors: Iterable[str] | None = None,
            exclude_detectors: Iterable[str] | None = WEEKLY_DETECTORS, kind: str = "digest",
            close_missing: bool = True, charts: bool = True, checks: Any = None) -> DeliveryReport:
    """Digests for `only_targets` (default: everyone) from one scan's insights.

    `checks` (messages.digest.Checks of that scan), when known, lets a digest say what could
    not be checked instead of "all quiet"."""
    policy = Policy.from_config(config.delivery)
    only = set(only_detectors) if only_detectors is not None else None
    exclude = set(exclude_detectors or ())
    chosen = [i for i in insights if (only is None or i.detector in only) and i.detector not in exclude]
    routed = route(chosen, config)
    routed_all = route(insights, config) if close_missing and only is None else {}
    everyone = targets(config)
    report = DeliveryReport()
    for tid in (list(only_targets) if only_targets is not None else list(routed)):
        target = everyone.get(tid)
        if target is None:
            continue
        items = routed.get(tid, [])
        if close_missing and only is None:
            # what was sent before and no longer holds is closed (done/snooze lifted with it)
            current = {i.fingerprint for i in routed_all.get(tid, [])}
            closed = store.close_missing(tid, current, now)
            report.closed[tid] = [e.fingerprint for e in closed]
            if closed and config.delivery.resolved_notes:
                _resolved_note(target, closed, config, store, outbox, now)
        _deliver_one(target, items, config, store, outbox, now, policy, kind, report, charts, checks)
    return report


@dataclass
class DigestPlan:
    """One target's digest for a run, decided but not sent: what delivery enqueues and what
    `crm-pulse preview` prints (one path, so the preview is what people get)."""

    digest: Any  # messages.digest.Digest, or None: no message goes out
    sent: list[tuple[Insight, str]]  # (item, reason) the digest shows, recorded as sent on delivery
    held: list[tuple[Insight, str]]  # (item, reason) the notification log holds back
    due: list[tuple[Insight, str]]  # (item, reason) the log would send, shown or not
    lang: str
    tz: ZoneInfo


def plan_digest(target: Target, items: list[Insight], config: Config, store: StateStore, now: datetime,
                policy: Policy | None = None, checks: Any = None, lang: str | None = None) -> DigestPlan:
    """The notification log's decisions for `items`, and the digest they make (nothing written).
    `lang`: this language instead of the person's (preview --lang).

    Raises when the digest cannot be rendered (delivery turns that into one recipient's failure)."""
    from messages.digest import build_digest

    policy = policy or Policy.from_config(config.delivery)
    decided = _decided(store, target.id, items, now, policy)
    due = [(i, d.reason) for i, d, _ in decided if d.send]
    held = [(i, d.reason) for i, d, _ in decided if not d.send]
    lang = lang or target_language(target, store, config)
    tz = target_timezone(target, config)
    name = target.name or None
    # first / worse in full; unchanged but due again (repeat interval) as one "still open" line
    full = [i for i, d, _ in decided if d.send and d.reason != REMINDER]
    reminders = [(i, e.last_sent, e.last_facts) if e is not None else (i, None)
                 for i, d, e in decided if d.send and d.reason == REMINDER]
    digest = build_digest(full, lang=lang, now=now, tz=tz, max_items=config.delivery.max_items,
                          recipient_name=name if isinstance(target, Recipient) else None,
                          all_quiet=bool(getattr(target, "all_quiet", False)), recipient_role=_role(target),
                          still_open=reminders, checks=checks)
    if digest is None:
        return DigestPlan(None, [], held, due, lang, tz)
    if isinstance(target, TeamChannel):
        from messages.digest import for_team_chat
        digest = for_team_chat(digest)
    shown = {fp for item in digest.items for fp in item.fingerprints} | set(digest.reminded)
    return DigestPlan(digest, [(i, r) for i, r in due if i.fingerprint in shown], held, due, lang, tz)


def _deliver_one(target: Target, items: list[Insight], config: Config, store: StateStore, outbox: Outbox,
                 now: datetime, policy: Policy, kind: str, report: DeliveryReport, charts: bool = True,
                 checks: Any = None) -> None:
    try:
        plan = plan_digest(target, items, config, store, now, policy, checks)
        report.held[target.id] = [(i.fingerprint, r) for i, r in plan.held]
        messages = None if plan.digest is None else _render_messages(target, plan, config, now, kind, charts)
    except Exception:  # one recipient's unrenderable message costs that recipient, never the run
        _render_failed(report, target.id, kind, items)
        return
    if messages is None:
        report.sent[target.id], report.reasons[target.id], report.messages[target.id] = [], [], 0
        return
    sent = plan.sent
    enqueued = _enqueue_and_record(store, outbox, target.id, messages, sent, now)
    report.sent[target.id] = [i.fingerprint for i, _ in sent] if enqueued else []
    report.reasons[target.id] = [(i.fingerprint, r) for i, r in sent]
    report.messages[target.id] = len(enqueued)
    log.info("delivery: %s -> %s: %d item(s) (%s), %d held back", kind, target.id, len(sent),
             ", ".join(f"{r}" for _, r in sent) or "all quiet", len(plan.held))


def _render_messages(target: Target, plan: DigestPlan, config: Config, now: datetime, kind: str,
                     charts: bool) -> list[OutgoingMessage]:
    """The digest's messages for every address of `target`. Raises when a message cannot be
    rendered or encoded."""
    sent, lang, tz = plan.sent, plan.lang, plan.tz
    key = f"{kind}:{target.id}:{now.astimezone(tz).strftime('%Y-%m-%dT%H:%M')}"
    messages: list[OutgoingMessage] = []
    reachable = addresses(target, config)
    if not reachable:
        log.warning("delivery: %s has no address on an enabled channel (set telegram_id or slack_id in "
                    "[[recipients]] / [[channels]]); %d item(s) stay due", target.id, len(sent))
    for channel, address in reachable:
        for k, payload in enumerate(digest_payloads(channel, plan.digest)):
            messages.append(OutgoingMessage(channel, address, payload, dedup_key=f"{key}:{channel}:{k}"))  # type: ignore[arg-type]
        if charts and _role(target) == "director" and channel != "console":
            messages += _chart_messages(channel, address, [i for i, r in sent if r != REMINDER], lang, key)
    for m in messages:  # what the chat API will be sent must encode, or this recipient fails here
        json.dumps(m.payload, ensure_ascii=False).encode("utf-8")
    return messages


def _render_failed(report: DeliveryReport, target_id: str, kind: str, items: list[Insight]) -> None:
    log.error("delivery: %s for %s could not be rendered; nothing sent to them, %d item(s) stay due: %s",
              kind, target_id, len(items), ", ".join(f"{i.detector}/{i.fingerprint}" for i in items) or "none",
              exc_info=True)
    report.failed[target_id] = [i.fingerprint for i in items]
    report.sent[target_id], report.reasons[target_id], report.messages[target_id] = [], [], 0


RESOLVED_HEAD = {"ru": "✅ Больше не актуально:", "en": "✅ No longer holds:"}


def _resolved_note(target: Target, closed: list[Any], config: Config, store: StateStore, outbox: Outbox,
                   now: datetime) -> None:
    """One short note listing what stopped holding (only things this person was actually sent)."""
    from messages.render import insight_text

    sent = [e for e in closed if e.send_count > 0]
    if not sent:
        return
    lang = target_language(target, store, config)
    lines = [RESOLVED_HEAD[lang]]
    for e in sent[:10]:
        ghost = Insight(detector=e.detector, severity=e.last_severity, audience=Audience("director"),  # type: ignore[arg-type]
                        subject={}, facts=e.last_facts, fingerprint=e.fingerprint)
        try:
            title = insight_text(ghost, lang).split("\n")[0]
        except Exception:  # facts from an older version may not render: name the detector instead
            title = e.detector
        lines.append(f"• {title}")
    text = "\n".join(lines)
    key = f"resolved:{target.id}:{now.isoformat()}"
    messages = [OutgoingMessage(channel, address, text_payload(channel, text), dedup_key=f"{key}:{channel}")  # type: ignore[arg-type]
                for channel, address in addresses(target, config)]
    outbox.enqueue(target.id, messages)


def largest_first(items: list, limit: int, insight: Callable[[Any], Insight] = lambda x: x) -> list:
    """The `limit` items whose insight is largest by amount, in that order (stable): a burst of
    critical alerts is noise, so the largest few go at once and the rest wait for the digest."""
    return sorted(items, key=lambda x: -float(insight(x).facts.get("amount") or 0.0))[:limit]


def deliver_critical(insights: list[Insight], config: Config, store: StateStore, outbox: Outbox,
                     now: datetime) -> DeliveryReport:
    """Right after a scan: critical insights that are new or worse go out at once, one message
    each, except to people inside their quiet hours and on the company's days off until the
    next working day's start of work (bot.send_days.critical_rest): those are not recorded as
    sent, so they stay due and go out later or in the next digest. `report.held` names them."""
    from bot.send_days import critical_rest

    report = DeliveryReport()
    if not config.delivery.critical_immediately:
        return report
    policy = Policy.from_config(config.delivery)
    routed = route([i for i in insights if i.severity == "critical" and i.detector not in WEEKLY_DETECTORS], config)
    resting: dict[str, int] = {}  # held for the company's days off: count per "until" line
    for tid, target in targets(config).items():
        items = routed.get(tid, [])
        if not items or in_quiet_hours(target, now, config):
            continue
        rest = critical_rest(config, now, target_timezone(target, config).key)
        if rest is not None:
            waiting = [i.fingerprint for i, d in decisions(store, tid, items, now, policy)
                       if d.send and d.reason in ("first", "worse")]
            if waiting:
                report.held[tid] = [(fp, "day_off") for fp in waiting]
                line = _rest_line(config, *rest)
                resting[line] = resting.get(line, 0) + len(waiting)
            continue
        due = [(i, d.reason) for i, d in decisions(store, tid, items, now, policy)
               if d.send and d.reason in ("first", "worse")]
        if not due:
            continue
        due = largest_first(due, config.delivery.critical_max_messages, lambda p: p[0])
        lang = target_language(target, store, config)
        messages = []
        try:
            for channel, address in addresses(target, config):
                for i, _ in due:
                    # local now: the words date moments on the reader's calendar, not in UTC
                    payload = insight_payload(channel, i, lang, now.astimezone(target_timezone(target, config)),
                                              details=False, role=_role(target))
                    json.dumps(payload, ensure_ascii=False).encode("utf-8")
                    messages.append(OutgoingMessage(channel, address, payload,  # type: ignore[arg-type]
                                                    dedup_key=f"critical:{tid}:{i.fingerprint}:{now.isoformat()}:{channel}"))
        except Exception:  # this person's alerts wait for the digest; everyone else gets theirs now
            _render_failed(report, tid, "critical alert", [i for i, _ in due])
            continue
        enqueued = _enqueue_and_record(store, outbox, tid, messages, due, now)
        report.sent[tid] = [i.fingerprint for i, _ in due] if enqueued else []
        report.reasons[tid] = [(i.fingerprint, r) for i, r in due]
        report.messages[tid] = len(enqueued)
    for line, n in resting.items():
        log.info("delivery: %d critical alert(s) not sent at once: %s", n, line)
    return report


def _rest_line(config: Config, day_off: Any, until: datetime | None) -> str:
    """Why criticals wait and until when, for the log: "1 Jan 2027 is a day off of the company
    calendar (KZ: New Year's Day); they go out from Tue 5 Jan 2027 09:00 or in that day's digest"."""
    from bot.send_days import day_off_reason, fmt_day

    why = day_off_reason(config, day_off)
    what = (f"{fmt_day(day_off)} is a day off of the company calendar ({why})" if why
            else f"{fmt_day(day_off, weekday=True)} is a rest day without a digest")
    then = (f"they go out from {fmt_day(until.date(), weekday=True)} {until:%H:%M} or in that day's digest"
            if until else "they go out in the next digest")
    return f"{what}; {then} ([delivery] critical_on_days_off = true sends them on days off)"


def preview(insights: list[Insight], config: Config, store: StateStore, now: datetime) -> dict[str, dict[str, Any]]:
    """What a digest run would send now, per target, without sending or recording anything.

    `send` counts insights shown in full (at most max_items), `reminders` the one-line "still
    open" reminders (at most messages.digest.MAX_STILL_OPEN), `due` both before those limits."""
    from messages.digest import MAX_STILL_OPEN

    policy = Policy.from_config(config.delivery)
    routed = route([i for i in insights if i.detector not in WEEKLY_DETECTORS], config)
    out: dict[str, dict[str, Any]] = {}
    for tid, items in routed.items():
        reasons: dict[str, int] = {}
        full = remind = 0
        for _, d in decisions(store, tid, items, now, policy):
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
            full += d.send and d.reason != REMINDER
            remind += d.send and d.reason == REMINDER
        out[tid] = {"send": min(full, config.delivery.max_items), "reminders": min(remind, MAX_STILL_OPEN),
                    "due": full + remind, "total": len(items), "reasons": reasons}
    return out
