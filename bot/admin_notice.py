"""Notices for the people who run the bot (stale data, ...): once per situation, not every scan.

An admin notice is not an insight about the business, so it is not routed to managers or
directors' digests. It still goes through the notification log (bot.notify_log.decide), so a
notice that keeps holding is repeated only after the repeat interval, and one that stops
holding is closed and would be sent again if it came back. The log entries are kept under
"<recipient id>#admin": a digest closes what no longer holds for a recipient, and must not
close these.

Who hears it: recipients with role "admin" or `admin = true`; when the config names no admin,
the directors (somebody has to). When: on the company's working days from the admin's digest
time (bot.send_days.notice_wait); a notice found on a holiday stays due, unrecorded, and goes
out with the first scan or digest at or after the next working day's digest time.
"""
from __future__ import annotations

import logging
from datetime import datetime

from bot.channels.base import OutgoingMessage
from bot.config import Config, Recipient
from bot.delivery import addresses, target_language, text_payload
from bot.notify_log import Policy, decide
from bot.outbox import Outbox
from bot.state import StateStore
from detectors.insight import Audience, Insight

log = logging.getLogger("crm_pulse.admin")

DETECTOR = "admin_notice"


def admins(config: Config) -> list[Recipient]:
    chosen = [r for r in config.recipients if r.is_admin]
    return chosen or [r for r in config.recipients if r.role == "director"]


def _log_id(recipient: Recipient) -> str:
    return f"{recipient.id}#admin"


def notify_admins(notices: dict[str, dict[str, str]], config: Config, store: StateStore, outbox: Outbox,
                  now: datetime) -> list[str]:
    """Send each current notice ({key: {"ru": text, "en": text}}) to every admin who has not had
    it within the repeat interval; close notices that no longer hold. Returns who got one."""
    policy = Policy.from_config(config.delivery)
    sent_to: list[str] = []
    for person in admins(config):
        log_id = _log_id(person)
        store.close_missing(log_id, {_fingerprint(k) for k in notices}, now)
        lang = target_language(person, store, config)
        wait = waits_until(person, config, now)
        for key, texts, ghost, decision in _decisions(person, notices, store, now, policy):
            if not decision.send:
                continue
            if wait is not None:
                log.info("admin notice %s for %s waits for the working day: %s", key.split(":", 1)[0], person.id,
                         f"{wait:%Y-%m-%d %H:%M %Z}")
                continue
            text = texts.get(lang) or texts["en"]
            dedup = f"admin:{person.id}:{key}:{now.isoformat()}"
            messages = [OutgoingMessage(channel, address, text_payload(channel, text), dedup_key=f"{dedup}:{channel}")  # type: ignore[arg-type]
                        for channel, address in addresses(person, config)]
            if not messages:
                log.warning("admin notice %s: %s has no chat address", key, person.id)
                continue
            with store.engine.begin() as conn:
                if outbox.enqueue(person.id, messages, conn=conn):
                    store.record_sent(log_id, ghost, now, decision.reason, conn=conn)
                    sent_to.append(person.id)
    return sent_to


def _decisions(person: Recipient, notices: dict[str, dict[str, str]], store: StateStore, now: datetime,
               policy: Policy):
    """(key, texts, the notice as an insight, the notification log's decision) per notice."""
    for key, texts in notices.items():
        ghost = Insight(detector=DETECTOR, severity="warning", audience=Audience("director"),
                        subject={"key": key}, facts={"key": key}, fingerprint=_fingerprint(key))
        yield key, texts, ghost, decide(store.log_entry(_log_id(person), ghost.fingerprint), ghost, now, policy)


def waits_until(person: Recipient, config: Config, now: datetime) -> datetime | None:
    """When this admin's due notices may go out, None for now: the digest time of the next
    working day while the company rests (bot.send_days.notice_wait)."""
    from bot.delivery import target_timezone
    from bot.send_days import notice_wait

    return notice_wait(config, now, person.digest_time or config.schedule.digest_time,
                       target_timezone(person, config).key)


def due_notices(person: Recipient, outcome, config: Config, store: StateStore, now: datetime) -> dict[str, str]:
    """What notify_admins would send this person after the scan `outcome`, {kind: text} in their
    language, whether or not they wait (`waits_until`); empty for someone who is not an admin
    (for `preview`)."""
    if person.id not in {r.id for r in admins(config)}:
        return {}
    lang = target_language(person, store, config)
    return {key.split(":", 1)[0]: texts.get(lang) or texts["en"]
            for key, texts, _, decision in _decisions(person, stale_data_notice(outcome, config), store, now,
                                                     Policy.from_config(config.delivery)) if decision.send}


def _fingerprint(key: str) -> str:
    from detectors.insight import make_fingerprint

    return make_fingerprint(DETECTOR, {"key": key})


def stale_data_notice(outcome, config: Config) -> dict[str, dict[str, str]]:
    """The stale-data notice of one scan (empty when the data is fresh)."""
    from zoneinfo import ZoneInfo

    from messages.i18n import count

    fresh = getattr(outcome, "freshness", None)
    if getattr(outcome, "stale", None) is None or fresh is None:
        return {}
    source = {"files": config.source.path or ".", "sql": f"SQL ({config.source.url_env or 'url'})"}.get(
        config.source.kind,  # a Bitrix24 portal's address is inside its secret webhook URL: name the variable
        f"{config.source.kind} {config.source.base_url or '$' + str(config.source.webhook_env)}")
    limit = config.source.stale_after_days
    if fresh.newest is None:
        ru = (f"Данные CRM без дат до текущего момента (источник: {source}). Зависшие сделки, лиды без "
              "ответа и молчащих клиентов бот не проверяет, пока не появятся свежие данные.")
        en = (f"The CRM data has no dated records up to now (source: {source}). Stalled deals, waiting "
              "leads and silent clients are not checked until fresh data arrives.")
    else:
        newest = fresh.newest.tz_convert(ZoneInfo(config.timezone)).strftime("%d.%m.%Y %H:%M")
        days = fresh.age_days()
        ru = (f"Данные CRM устарели: самая свежая запись — {newest} в {fresh.origin}, "
              f"{count(days, 'day', 'ru')} назад (предел — [source] stale_after_days = {limit:g}). Пока данные "
              f"не обновятся, бот не проверяет зависшие сделки, лиды без ответа и молчащих клиентов. "
              f"Обновите выгрузку в {source}.")
        en = (f"The CRM data is stale: the newest record is from {newest} in {fresh.origin}, "
              f"{count(days, 'day', 'en')} ago (limit: [source] stale_after_days = {limit:g}). Until it is refreshed, "
              f"stalled deals, waiting leads and silent clients are not checked. Refresh the export in {source}.")
    return {f"stale_data:{source}": {"ru": ru, "en": en}}

