"""When things happen: scans on the config's cron, digests at each person's own time in their
own timezone, the weekly report. APScheduler runs the jobs; the state database's job lock
(pg advisory lock on PostgreSQL, a lease row on SQLite) makes sure that with two bot processes
only one scans or sends a digest at a time, and max_instances=1 keeps one process from
overlapping itself.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from typing import Any, Awaitable, Callable, Iterator

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from bot.admin_notice import notify_admins, stale_data_notice
from bot.config import Config, Recipient, cron_trigger, parse_hhmm
from bot.delivery import WEEKLY_DETECTORS, DeliveryReport, deliver, deliver_critical, scan_checks, targets
from bot.logsafe import redact
from bot.metrics import Metrics
from bot.outbox import Outbox
from bot.send_days import day_off_reason, fmt_day, is_digest_day, is_working_day, skipped_line
from bot.state import StateStore
from messages.i18n import count

log = logging.getLogger("crm_pulse.scheduler")
UTC = timezone.utc
JOB_NAMES = {"scan": ("проверка CRM по расписанию", "the scheduled CRM scan"),
             "sync": ("синхронизация с CRM", "the CRM sync"),
             "digest": ("рассылка сводок", "sending the digests"),
             "weekly": ("рассылка недельного отчёта", "the weekly report")}


def _now() -> datetime:
    return datetime.now(UTC)


def _say(lang: str | None, en: str, ru: str) -> str:
    """A job's answer to a person in their language; both (English first) for the log and
    callers that have no person."""
    return {"en": en, "ru": ru}.get(lang or "", f"{en} / {ru}")


def _default_scan(config: Config, now: datetime) -> Any:
    from bot.pipeline import scan

    return scan(config, now)


def syncs(config: Config) -> bool:
    """The source is a CRM API (crm.connectors): `run` syncs it before each scan and on its own cron."""
    from crm.connectors import CONNECTORS

    return config.source.kind in CONNECTORS


def _default_sync(config: Config) -> Any:
    from bot.logsafe import REDACTOR
    from crm.connectors import connector

    return connector(config.source.kind).sync(config.source, config.base_dir, on_secret=REDACTOR.add_values)


class PulseJobs:
    """The jobs themselves, callable without a scheduler (the /scan command, tests)."""

    def __init__(self, config: Config, store: StateStore, outbox: Outbox, *,
                 scan_fn: Callable[[Config, datetime], Any] = _default_scan,
                 sync_fn: Callable[[Config], Any] = _default_sync,
                 clock: Callable[[], datetime] = _now, holder: str | None = None,
                 max_scan_age: timedelta = timedelta(hours=6), metrics: Metrics | None = None) -> None:
        self.config = config
        self.store = store
        self.outbox = outbox
        self.scan_fn = scan_fn
        self.sync_fn = sync_fn
        # One sync or scan at a time in this process: the synced store (DuckDB) takes one writer
        # and no reader while it is written.
        self._data_lock = asyncio.Lock()
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.max_scan_age = max_scan_age
        self.latest_data: Any = None  # CrmData of the last scan in this process (maturity hints)
        # What the last scan in this process could not check (messages.digest.Checks): kept in
        # memory like latest_data, so a digest or /preview says it; None until the first scan.
        self.latest_checks: Any = None
        # The last scan's admin notices (bot.admin_notice): one found while the company rests
        # waits, and the digest job sends it at the working day's digest time.
        self.latest_notices: dict[str, dict[str, str]] | None = None
        # How admins hear about a job that fails: set by serve() to a direct send (not the outbox:
        # the state database may be what fails). None: the log only.
        self.alert: Callable[[dict[str, str]], Awaitable[None]] | None = None  # {lang: text}
        self.failing: dict[str, str] = {}  # job -> the error admins were told about
        self.metrics = metrics or Metrics(clock=clock)  # served at /metrics when [metrics] is enabled
        self._said_day_off: set[date] = set()  # days off already explained in the log

    async def _job_failed(self, job: str, error: BaseException) -> None:
        """Tell admins once per outage: the first failure of a job, not every run after it."""
        reason = redact(f"{type(error).__name__}: {error}".strip().splitlines()[0])[:500]
        if job in self.failing:
            log.warning("%s failed again (admins were told already): %s", job, reason)
            return
        self.failing[job] = reason
        await self._tell_admins({
            "en": f"⚠️ crm-pulse: {JOB_NAMES[job][1]} failed: {reason}. I will not repeat this until it "
                  "works again; details are in the log.",
            "ru": f"⚠️ crm-pulse: {JOB_NAMES[job][0]} не удалась: {reason}. Повторять не буду, пока не "
                  "заработает; подробности в журнале."})

    async def _job_ok(self, job: str) -> None:
        if self.failing.pop(job, None) is not None:
            await self._tell_admins({"en": f"✅ crm-pulse: {JOB_NAMES[job][1]} works again.",
                                     "ru": f"✅ crm-pulse: {JOB_NAMES[job][0]} снова работает."})

    async def _tell_admins(self, text: dict[str, str]) -> None:
        if self.alert is None:
            return
        try:
            await self.alert(text)
        except Exception:  # the alert is a courtesy; the log has the failure either way
            log.warning("could not tell the admins", exc_info=True)

    async def _guard(self, job: str, work: Awaitable[DeliveryReport | None]) -> DeliveryReport | None:
        """A scheduled job's failure is logged and told to admins once; the bot keeps running."""
        try:
            report = await work
        except Exception as e:
            log.exception("%s failed", job)
            await self._job_failed(job, e)
            return None
        await self._job_ok(job)
        return report

    async def run_scan(self, lang: str | None = None) -> str:
        """Scan now; critical insights go out at once. Returns a one-line summary for people:
        in `lang` (the /scan command passes the asker's language), in both when None."""
        try:
            return await self._scan(lang)
        except Exception as e:  # the state database, delivery: the bot keeps running
            log.exception("scan failed")
            self.metrics.scan_failed()
            await self._job_failed("scan", e)
            return redact(_say(lang, f"Scan failed: {e}", f"Проверка не удалась: {e}"))  # goes to a chat

    async def _scan(self, lang: str | None = None) -> str:
        now = self.clock()
        with self.store.exclusive("scan", self.holder, now) as got:
            if not got:
                log.info("scan skipped: another process is scanning")
                self.metrics.scan_skipped()
                return _say(lang, "A scan is already running, please wait.", "Проверка уже идёт, подождите.")
            started = time.monotonic()
            try:
                async with self._data_lock:
                    if syncs(self.config):  # a failed sync is told once; the scan reads what was synced
                        await self._sync_exclusive(now)
                    outcome = await asyncio.to_thread(self.scan_fn, self.config, now)
            except Exception as e:  # the bot keeps running; the previous scan's insights stay
                from crm.errors import DataError

                if isinstance(e, DataError):  # bad data: its message already says what to fix
                    log.error("scan failed: %s", e)
                else:
                    log.exception("scan failed")
                self.metrics.scan_failed(time.monotonic() - started)
                await self._job_failed("scan", e)
                return redact(_say(lang, f"Scan failed: {e}", f"Проверка не удалась: {e}"))  # goes to a chat
            for w in getattr(outcome, "warnings", None) or []:
                log.warning("data: %s", w)
            self.latest_data = getattr(outcome, "data", None)
            self.latest_checks = scan_checks(outcome, self.config)
            insights = list(outcome.insights)
            self.store.save_scan(insights, now, now)
            report = deliver_critical(insights, self.config, self.store, self.outbox, now)
            self.latest_notices = stale_data_notice(outcome, self.config)
            notify_admins(self.latest_notices, self.config, self.store, self.outbox, now)
            self.metrics.scan_ok(time.monotonic() - started, insights, _detector_names(self.config),
                                 _newest(outcome))
        await self._job_ok("scan")
        sent = sum(len(v) for v in report.sent.values())
        skipped = getattr(outcome, "skipped", {}) or {}
        if getattr(outcome, "stale", None):
            log.warning("data: %s", outcome.stale)
        log.info("scan: %d insight(s), %d critical sent at once, skipped: %s", len(insights), sent,
                 "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none")
        return _say(lang, f"Scan done: {count(len(insights), 'item', 'en')} found.",
                    f"Проверка готова. Найдено пунктов: {len(insights)}.")

    async def run_sync(self) -> str:
        """Pull what changed in the CRM into the store (API sources only, on `schedule.sync`).
        A failure is logged and told to admins once, and again when it works."""
        if not syncs(self.config):
            return "Nothing to sync / Синхронизировать нечего."
        async with self._data_lock:
            return await self._sync_exclusive(self.clock())

    async def _sync_exclusive(self, now: datetime) -> str:
        """One process syncs at a time (the state database's job lock, as for scans)."""
        with self.store.exclusive("sync", self.holder, now) as got:
            if not got:
                log.info("sync skipped: another process is syncing")
                return "A sync is already running / Синхронизация уже идёт."
            return await self._sync(now)

    async def _sync(self, now: datetime) -> str:
        try:
            report = await asyncio.to_thread(self.sync_fn, self.config)
        except Exception as e:
            log.error("sync failed: %s", redact(f"{type(e).__name__}: {e}"))
            self.metrics.sync_done(False)
            await self._job_failed("sync", e)
            return redact(f"Sync failed / Синхронизация не удалась: {e}")
        self.metrics.sync_done(True)
        await self._job_ok("sync")
        rows = getattr(report, "rows", {})
        log.info("sync: %d request(s), %s", getattr(report, "requests", 0),
                 ", ".join(f"{t} {n}" for t, n in sorted(rows.items())) or "nothing changed")
        return "Sync done / Синхронизация готова."

    async def load_latest_data(self) -> bool:
        """At start, when a scan is already stored: read the CRM data the next scan would read
        (no sync, no detectors, nothing sent), so /maturity has its data hints and the data's age
        is known before the next scheduled scan. False (logged) when the data cannot be read."""
        from bot.pipeline import load

        if self.latest_data is not None:
            return True
        now = self.clock()
        try:
            async with self._data_lock:
                loaded = await asyncio.to_thread(load, self.config, now)
        except Exception as e:  # the next scan says it again, to admins; the bot keeps starting
            log.warning("could not read the CRM data at start (the next scan tries again): %s",
                        redact(f"{type(e).__name__}: {e}".splitlines()[0]))
            return False
        if self.latest_data is None:  # a scan that finished meanwhile has the newer data
            from crm.freshness import freshness

            self.latest_data = loaded.data
            self.metrics.data_newest = _as_datetime(freshness(loaded.data, now).newest)
        return True

    async def _fresh_insights(self) -> list[Any] | None:
        latest = self.store.latest_scan()
        if latest is None or self.clock() - latest[0] > self.max_scan_age:
            await self.run_scan()
            latest = self.store.latest_scan()
        return latest[2] if latest else None

    async def catch_up_digests(self) -> list[str]:
        """At start: today's digests whose time has passed but that were never written (the bot
        was down at that time, or killed while writing them) are written now. Who already has
        today's digest in the outbox is left alone; the notification log keeps anyone from
        getting the same item twice either way. A day off of the company calendar has no digest
        to catch up (bot.send_days), and an earlier day's missed digest is never caught up: its
        items are in today's. Returns the targets caught up."""
        now = self.clock()
        due: list[str] = []
        for (when, tz_name), ids in digest_groups(self.config).items():
            tz = ZoneInfo(tz_name)
            local = now.astimezone(tz)
            t = parse_hhmm(when)
            midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
            if not is_digest_day(self.config, local.date()):
                continue  # a weekly rest day or a day off of the company calendar
            if datetime(local.year, local.month, local.day, t.hour, t.minute, tzinfo=tz) > now:
                continue  # its time is still ahead: the scheduler runs it
            written = self.store.outbox_keys_since("digest:", midnight.astimezone(UTC))
            day = local.date().isoformat()
            due += [tid for tid in ids if not any(k.startswith(f"digest:{tid}:{day}T") for k in written)]
        if due:
            log.info("catching up today's digest for %d target(s) that did not get it: %s", len(due),
                     ", ".join(due[:20]) + (" ..." if len(due) > 20 else ""))
            await self.run_digest(due)
        return due

    async def scheduled_digest(self, target_ids: list[str]) -> DeliveryReport | None:
        """The digest job: fires every day at the group's time; sends to the targets whose local
        day is a digest day of the company calendar (bot.send_days). A day off is said once a
        day in the log (INFO), with the next digest day; its items wait for that digest."""
        now = self.clock()
        today: list[str] = []
        everyone = targets(self.config)
        for tid in target_ids:
            tz = getattr(everyone.get(tid), "timezone", None) or self.config.timezone
            day = now.astimezone(ZoneInfo(tz)).date()
            if is_digest_day(self.config, day):
                today.append(tid)
            elif day not in self._said_day_off:
                line = skipped_line(self.config, day)
                if line is not None:  # a weekly rest day outside digest_days needs no word
                    self._said_day_off.add(day)
                    log.info("%s", line)
        report = await self.run_digest(today) if today else None
        self._notices_due()
        return report

    def _notices_due(self) -> None:
        """At digest time: the last scan's admin notices that waited for it (a holiday's stale
        data) go out now, when no scan comes at that time to send them."""
        if self.latest_notices is None:
            return
        now = self.clock()
        try:
            with self.store.exclusive("digest", self.holder, now) as got:
                if got and notify_admins(self.latest_notices, self.config, self.store, self.outbox, now):
                    self.outbox.wake.set()
        except Exception:  # the next scan tries again; the digest itself went out
            log.exception("admin notices at digest time failed")

    async def run_digest(self, target_ids: list[str]) -> DeliveryReport | None:
        return await self._guard("digest", self._deliver_fresh(only_targets=target_ids, with_checks=True))

    async def run_weekly(self) -> DeliveryReport | None:
        ids = [r.id for r in self.config.recipients if r.role == "director"] + [c.id for c in self.config.channels]
        return await self._guard("weekly", self._deliver_fresh(only_targets=ids, only_detectors=WEEKLY_DETECTORS,
                                                                exclude_detectors=(), kind="weekly"))

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


def _detector_names(config: Config) -> list[str]:
    """The detectors enabled in the config (each gets a series, 0 when quiet)."""
    return [name for name, spec in config.detector_specs().items() if getattr(spec, "enabled", True)]


def _newest(outcome: Any) -> datetime | None:
    """The newest record's time in a scan's data (crm.freshness; None for a scan without it)."""
    return _as_datetime(getattr(getattr(outcome, "freshness", None), "newest", None))


def _as_datetime(ts: Any) -> datetime | None:
    """A pandas Timestamp (or datetime, or None) as a datetime."""
    return ts.to_pydatetime() if hasattr(ts, "to_pydatetime") else ts


@contextlib.contextmanager
def quiet_apscheduler() -> Iterator[None]:
    """APScheduler says at INFO every job it adds ("Adding job tentatively" once per job), every
    run and every success: an hourly scan fills the journal with lines nobody acts on. Its
    logger goes to WARNING (missed runs and errors still show) unless the bot logs at DEBUG or
    someone set that logger's level; restored afterwards."""
    logger = logging.getLogger("apscheduler")
    before = logger.level
    if before == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


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


class WorkingDayTrigger(BaseTrigger):
    """A cron trigger whose fire times on a day off of the company calendar move to the same
    local time of the next working day (the weekly report due on a holiday Monday goes out on
    Tuesday, not a week later). Fire times that land on one instant are one run. Looks back
    far enough (`_LOOKBACK`) that a restart during a holiday still finds the moved run."""

    _LOOKBACK = timedelta(days=31)  # longer than any run of days off (RU New Year: 1-11 Jan)

    def __init__(self, cron: CronTrigger, config: Config) -> None:
        self.cron = cron
        self.config = config
        self.timezone = cron.timezone
        self._said: set[datetime] = set()

    def _moved(self, fire: datetime) -> datetime:
        local = fire.astimezone(self.timezone)
        day = local.date()
        if day_off_reason(self.config, day) is None:
            return fire
        nxt = day + timedelta(days=1)
        while not is_working_day(self.config, nxt) and nxt - day < self._LOOKBACK:
            nxt += timedelta(days=1)
        return datetime.combine(nxt, local.timetz().replace(tzinfo=None), self.timezone)

    def _say(self, fire: datetime, moved: datetime) -> None:
        """Once per moved run, when the scheduler plans it: why the report is not on its day."""
        if moved == fire or fire in self._said:
            return
        self._said.add(fire)
        day = fire.astimezone(self.timezone).date()
        log.info("the weekly report due %s %s goes out on %s: %s is a day off of the company calendar (%s)",
                 fmt_day(day, weekday=True), f"{fire.astimezone(self.timezone):%H:%M}",
                 fmt_day(moved.astimezone(self.timezone).date(), weekday=True), fmt_day(day),
                 day_off_reason(self.config, day))

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time or now
        fire = self.cron.get_next_fire_time(None, min(after, now) - self._LOOKBACK)
        while fire is not None:
            moved = self._moved(fire)
            if (moved > previous_fire_time) if previous_fire_time is not None else (moved >= now):
                self._say(fire, moved)
                return moved
            fire = self.cron.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return None

    def __str__(self) -> str:
        return f"working days of the company calendar, {self.cron}"


def build_scheduler(config: Config, jobs: PulseJobs) -> AsyncIOScheduler:
    """An AsyncIOScheduler with every job from the config (not started). Digests fire daily at
    each group's time and `scheduled_digest` asks the company calendar (bot.send_days); the
    weekly report moves off the calendar's days off."""
    sched = AsyncIOScheduler(timezone=config.timezone)
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    sched.add_job(jobs.run_scan, cron_trigger(config.schedule.scan, config.timezone),
                  id="scan", name="scan the CRM", **common)
    for (when, tz), ids in sorted(digest_groups(config).items()):
        t = parse_hhmm(when)
        # every day: a transferred working Saturday gets a digest; scheduled_digest skips the rest
        sched.add_job(jobs.scheduled_digest, CronTrigger(hour=t.hour, minute=t.minute, timezone=tz),
                      args=[ids], id=f"digest {when} {tz}", name=f"digest at {when} {tz} for {', '.join(ids)}", **common)
    weekly = cron_trigger(config.schedule.weekly_report, config.timezone)
    sched.add_job(jobs.run_weekly, WorkingDayTrigger(weekly, config), id="weekly", name="weekly report", **common)
    if syncs(config):
        sched.add_job(jobs.run_sync, cron_trigger(config.schedule.sync, config.timezone),
                      id="sync", name="sync the CRM", **common)
    return sched
