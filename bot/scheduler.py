"""When things happen: scans on the config's cron, digests at each person's own time in their
own timezone, the weekly report. APScheduler runs the jobs; the state database's job lock
(pg advisory lock on PostgreSQL, a lease row on SQLite) makes sure that with two bot processes
only one scans or sends a digest at a time, and max_instances=1 keeps one process from
overlapping itself.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.admin_notice import notify_admins, stale_data_notice
from bot.config import Config, Recipient, parse_hhmm
from bot.delivery import WEEKLY_DETECTORS, DeliveryReport, deliver, deliver_critical, scan_checks, targets
from bot.outbox import Outbox
from bot.state import StateStore

log = logging.getLogger("crm_pulse.scheduler")
UTC = timezone.utc


def _now() -> datetime:
    return datetime.now(UTC)


def _default_scan(config: Config, now: datetime) -> Any:
    from bot.pipeline import scan

    return scan(config, now)


class PulseJobs:
    """The jobs themselves, callable without a scheduler (the /scan command, tests)."""

    def __init__(self, config: Config, store: StateStore, outbox: Outbox, *,
                 scan_fn: Callable[[Config, datetime], Any] = _default_scan,
                 clock: Callable[[], datetime] = _now, holder: str | None = None,
                 max_scan_age: timedelta = timedelta(hours=6)) -> None:
        self.config = config
        self.store = store
        self.outbox = outbox
        self.scan_fn = scan_fn
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.max_scan_age = max_scan_age
        self.latest_data: Any = None  # CrmData of the last scan in this process (maturity hints)
        # What the last scan in this process could not check (messages.digest.Checks): kept in
        # memory like latest_data, so a digest or /preview says it; None until the first scan.
        self.latest_checks: Any = None

    async def run_scan(self) -> str:
        """Scan now; critical insights go out at once. Returns a one-line summary for people."""
        now = self.clock()
        with self.store.exclusive("scan", self.holder, now) as got:
            if not got:
                log.info("scan skipped: another process is scanning")
                return "A scan is already running / Проверка уже идёт."
            try:
                outcome = await asyncio.to_thread(self.scan_fn, self.config, now)
            except Exception as e:  # the bot keeps running; the previous scan's insights stay
                from crm.errors import DataError

                if isinstance(e, DataError):  # bad data: its message already says what to fix
                    log.error("scan failed: %s", e)
                else:
                    log.exception("scan failed")
                return f"Scan failed / Проверка не удалась: {e}"
            for w in getattr(outcome, "warnings", None) or []:
                log.warning("data: %s", w)
            self.latest_data = getattr(outcome, "data", None)
            self.latest_checks = scan_checks(outcome, self.config)
            insights = list(outcome.insights)
            self.store.save_scan(insights, now, now)
            report = deliver_critical(insights, self.config, self.store, self.outbox, now)
            notify_admins(stale_data_notice(outcome, self.config), self.config, self.store, self.outbox, now)
        sent = sum(len(v) for v in report.sent.values())
        skipped = getattr(outcome, "skipped", {}) or {}
        if getattr(outcome, "stale", None):
            log.warning("data: %s", outcome.stale)
        log.info("scan: %d insight(s), %d critical sent at once, skipped: %s", len(insights), sent,
                 "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none")
        return f"Scan done: {len(insights)} insight(s) / Проверка готова: находок {len(insights)}."

    async def _fresh_insights(self) -> list[Any] | None:
        latest = self.store.latest_scan()
        if latest is None or self.clock() - latest[0] > self.max_scan_age:
            await self.run_scan()
            latest = self.store.latest_scan()
        return latest[2] if latest else None

    async def run_digest(self, target_ids: list[str]) -> DeliveryReport | None:
        return await self._deliver_fresh(only_targets=target_ids, with_checks=True)

    async def run_weekly(self) -> DeliveryReport | None:
        ids = [r.id for r in self.config.recipients if r.role == "director"] + [c.id for c in self.config.channels]
        return await self._deliver_fresh(only_targets=ids, only_detectors=WEEKLY_DETECTORS,
                                          exclude_detectors=(), kind="weekly")

    async def _deliver_fresh(self, with_checks: bool = False, **options: Any) -> DeliveryReport | None:
        """Deliver (bot.delivery.deliver `options`) from a scan no older than max_scan_age, one
        process at a time; None when there is no scan or another process is delivering.
        `with_checks`: tell deliver what the latest scan could not check (read after any fresh scan)."""
        insights = await self._fresh_insights()
        if insights is None:
            return None
        if with_checks:
            options["checks"] = self.latest_checks
        now = self.clock()
        with self.store.exclusive("digest", self.holder, now) as got:
            if not got:
                return None
            report = await asyncio.to_thread(deliver, insights, self.config, self.store, self.outbox, now, **options)
        self.outbox.wake.set()
        return report


def digest_groups(config: Config) -> dict[tuple[str, str], list[str]]:
    """(HH:MM, timezone) -> target ids, so people sharing a time share one job."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tid, target in targets(config).items():
        if isinstance(target, Recipient) and target.role == "admin":
            continue
        when = getattr(target, "digest_time", None) or config.schedule.digest_time
        tz = getattr(target, "timezone", None) or config.timezone
        groups[(when, tz)].append(tid)
    return dict(groups)


def build_scheduler(config: Config, jobs: PulseJobs) -> AsyncIOScheduler:
    """An AsyncIOScheduler with every job from the config (not started)."""
    sched = AsyncIOScheduler(timezone=config.timezone)
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    sched.add_job(jobs.run_scan, CronTrigger.from_crontab(config.schedule.scan, timezone=config.timezone),
                  id="scan", name="scan the CRM", **common)
    for (when, tz), ids in sorted(digest_groups(config).items()):
        t = parse_hhmm(when)
        sched.add_job(jobs.run_digest, CronTrigger(day_of_week=config.schedule.digest_days, hour=t.hour,
                                                   minute=t.minute, timezone=tz),
                      args=[ids], id=f"digest {when} {tz}", name=f"digest at {when} {tz} for {', '.join(ids)}", **common)
    sched.add_job(jobs.run_weekly, CronTrigger.from_crontab(config.schedule.weekly_report, timezone=config.timezone),
                  id="weekly", name="weekly report", **common)
    return sched
