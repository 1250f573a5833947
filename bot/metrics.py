"""What the running bot is doing, for Prometheus and for a container's healthcheck.

`crm-pulse run` with `[metrics] enabled = true` serves two pages on `host:port` (127.0.0.1:9464
by default, off unless asked):
  /metrics  scans run and how long they took, insights per detector in the last scan, messages
            sent / failed for good / put back to retry per channel, the outbox by status, the
            age of the newest CRM record, the last successful scan and sync;
  /healthz  200 {"status": "ok"} while the scheduler runs and the last scan did not fail, else
            503 with the reasons (JSON), so Docker or a load balancer can act on it.
The pages are served on the bot's own event loop (aiohttp), not by prometheus_client's thread
server: a loop that hangs must make /healthz hang too, not answer "ok" from another thread.
Every metric lives in a private CollectorRegistry per Metrics object: two bots in one process
(tests) never collide, and nothing else's metrics leak into ours.

`crm-pulse health --config FILE` is the healthcheck command the Dockerfile runs: it asks /healthz
when metrics are enabled, and otherwise checks that the state database answers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("crm_pulse.metrics")
UTC = timezone.utc
SCAN_OUTCOMES = ("ok", "failed", "skipped")
MESSAGE_OUTCOMES = ("sent", "failed", "retried")
OUTBOX_STATUSES = ("pending", "sent", "failed")
# A scan takes from a second (a small export) to many minutes (a CRM sync first): buckets for both.
SCAN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def _now() -> datetime:
    return datetime.now(UTC)


class Metrics:
    """The bot's counters and gauges; the jobs and the outbox report into it (see bot.scheduler,
    bot.outbox). What is read at scrape time (the outbox, the data's age) comes from callables
    set by `serve`, so a scrape always shows the present, not the last scan's view."""

    def __init__(self, *, clock: Callable[[], datetime] = _now) -> None:
        self.clock = clock
        r = self.registry = CollectorRegistry()
        self.scans = Counter("crm_pulse_scans", "Scans run, by outcome (skipped: another process was scanning)",
                             ["outcome"], registry=r)
        self.scan_seconds = Histogram("crm_pulse_scan_duration_seconds",
                                      "How long a scan took (sync, load, detectors, critical alerts)",
                                      buckets=SCAN_BUCKETS, registry=r)
        self.insights = Gauge("crm_pulse_insights", "Insights the last successful scan found, per detector",
                              ["detector"], registry=r)
        self.messages = Counter("crm_pulse_messages",
                                "Messages the outbox sent, failed for good, or put back to retry, per channel",
                                ["channel", "outcome"], registry=r)
        self.syncs = Counter("crm_pulse_syncs", "CRM API syncs run, by outcome", ["outcome"], registry=r)
        self.webhooks = Counter("crm_pulse_webhook_calls",
                                "CRM webhook calls, by outcome (accepted; refused: a bad body or application "
                                "token; wrong_token: answered 404)", ["outcome"], registry=r)
        self.last_scan = Gauge("crm_pulse_last_successful_scan_timestamp_seconds",
                               "Unix time the last successful scan finished", registry=r)
        self.last_sync = Gauge("crm_pulse_last_successful_sync_timestamp_seconds",
                               "Unix time the last successful CRM API sync finished", registry=r)
        for outcome in SCAN_OUTCOMES:
            self.scans.labels(outcome)  # 0 from the start, so a rate() has a series to work on
        for outcome in ("ok", "failed"):
            self.syncs.labels(outcome)
        # Set by serve(): outbox status -> count, and the newest record's time in the scanned data.
        self.outbox_counts: Callable[[], Mapping[str, int]] | None = None
        self.data_newest: datetime | None = None
        r.register(_LiveCollector(self))

    # -- reported by the jobs and the outbox
    def scan_ok(self, seconds: float, insights: Iterable[Any], detectors: Iterable[str],
                newest: datetime | None) -> None:
        """A scan finished: its duration, its insights per detector (0 for a quiet one), the
        newest record it saw (None keeps the previous: a test scan without data)."""
        self.scans.labels("ok").inc()
        self.scan_seconds.observe(max(0.0, seconds))
        counts = {name: 0 for name in detectors}
        for i in insights:
            counts[i.detector] = counts.get(i.detector, 0) + 1
        for name, n in counts.items():
            self.insights.labels(name).set(n)
        self.last_scan.set(self.clock().timestamp())
        if newest is not None:
            self.data_newest = newest

    def scan_failed(self, seconds: float | None = None) -> None:
        self.scans.labels("failed").inc()
        if seconds is not None:
            self.scan_seconds.observe(max(0.0, seconds))

    def scan_skipped(self) -> None:
        self.scans.labels("skipped").inc()

    def sync_done(self, ok: bool) -> None:
        self.syncs.labels("ok" if ok else "failed").inc()
        if ok:
            self.last_sync.set(self.clock().timestamp())

    def message(self, channel: str, outcome: str) -> None:
        """One send attempt's outcome: sent, failed (for good) or retried (due again later)."""
        self.messages.labels(channel, outcome).inc()

    def channels(self, names: Iterable[str]) -> None:
        """Show 0 for every channel and outcome before the first message."""
        for name in names:
            for outcome in MESSAGE_OUTCOMES:
                self.messages.labels(name, outcome)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """The values read at scrape time: the outbox by status and the data's age."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []  # names known to the registry only when collected: nothing else registers them

    def collect(self) -> Iterable[Any]:
        m = self.m
        if m.outbox_counts is not None:
            try:
                counts = dict(m.outbox_counts())
            except Exception as e:  # the state database is down: the other metrics still come
                log.warning("metrics: could not read the outbox: %s", type(e).__name__)
            else:
                g = GaugeMetricFamily("crm_pulse_outbox_messages",
                                      "Messages in the outbox by status (pending: waiting to be sent)",
                                      labels=["status"])
                for status in (*OUTBOX_STATUSES, *sorted(set(counts) - set(OUTBOX_STATUSES))):
                    g.add_metric([status], counts.get(status, 0))
                yield g
        if m.data_newest is not None:
            age = (m.clock() - m.data_newest).total_seconds()
            yield GaugeMetricFamily("crm_pulse_data_age_seconds",
                                    "Seconds since the newest record in the CRM data of the last scan",
                                    value=max(0.0, age))


def health(scheduler_running: bool, failing: Mapping[str, str], *,
           sender_running: bool = True, starting: bool = False) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of /healthz: 503 with the reasons when the scheduler is not
    running, the outbox sender has stopped (nothing would be sent), or the last scan failed;
    503 "starting" while the chats and the scheduler start. Other failing jobs (a sync) are
    listed but do not make the bot unhealthy: the scan still reads what was synced before."""
    if starting:
        return 503, {"status": "starting", "reasons": ["the bot is starting (chats, scheduler)"]}
    reasons = []
    if not scheduler_running:
        reasons.append("the scheduler is not running")
    if not sender_running:
        reasons.append("the outbox sender has stopped: messages wait unsent (see the log)")
    if "scan" in failing:
        reasons.append(f"the last scan failed: {failing['scan']}")
    body: dict[str, Any] = {"status": "failing" if reasons else "ok", "scheduler": "running" if scheduler_running
                            else "stopped", "failing_jobs": dict(sorted(failing.items()))}
    if reasons:
        body["reasons"] = reasons
    return (503 if reasons else 200), body


class HttpServer:
    """A small aiohttp server on the bot's own loop (not a thread: a hung loop hangs it too).
    `routes` are callables that add pages to the aiohttp Application, so [webhook] can share
    the [metrics] port; `section` names the config section a taken port is reported under."""

    section = "server"

    def __init__(self, host: str, port: int, routes: Iterable[Callable[[Any], None]] = ()) -> None:
        self.host = host
        self.port = port
        self.routes = list(routes)
        self._runner: Any = None

    def pages(self) -> str:
        """What the server serves, for the start log line (never a secret path)."""
        return ""

    async def start(self) -> None:
        from aiohttp import web

        from bot.channels.base import PermanentFailure

        app = web.Application()
        for add in self.routes:
            add(app)
        runner = web.AppRunner(app, access_log=None)  # one INFO line per request is noise (and a webhook path is a secret)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as e:
            await runner.cleanup()
            raise PermanentFailure(
                f"[{self.section}] cannot listen on {self.host}:{self.port} ({e.strerror or e}): choose a free "
                f"port in [{self.section}] port, or stop what uses this one") from None
        self._runner = runner
        log.info("%s on http://%s:%d%s", self.section, self.host, self.port, self.pages())

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class MetricsServer(HttpServer):
    """/metrics and /healthz on host:port, on the running event loop."""

    section = "metrics"

    def __init__(self, metrics: Metrics, health_fn: Callable[[], tuple[int, dict[str, Any]]], host: str,
                 port: int, routes: Iterable[Callable[[Any], None]] = ()) -> None:
        super().__init__(host, port, [self._add_pages, *routes])
        self.metrics = metrics
        self.health_fn = health_fn

    def _add_pages(self, app: Any) -> None:
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)

    def pages(self) -> str:
        return "/metrics, health on /healthz" + (", CRM webhooks on /crm-webhook/<token>" if len(self.routes) > 1 else "")

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        body = await asyncio.to_thread(self.metrics.render)  # the outbox count is a database read
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        status, body = self.health_fn()
        return web.json_response(body, status=status)


# -- `crm-pulse health`: the container's healthcheck ------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.toml", help="config file (default: config.toml)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for /healthz (default: 10)")


def probe_url(host: str, port: int) -> str:
    """The /healthz URL to ask from the same host: a bot listening on every interface is asked
    on the loopback one."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def run(args: argparse.Namespace) -> int:
    """Exit 0 when healthy, 1 when not (what Docker's HEALTHCHECK understands), one line why."""
    from bot.config import ConfigError, load_config
    from bot.logsafe import redact

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(redact(str(e)), file=sys.stderr)
        return 1
    if config.metrics.enabled:
        return _ask_healthz(probe_url(config.metrics.host, config.metrics.port), args.timeout)
    from bot.state import StateStore, db_reason, db_where

    url = config.state_url()
    try:  # without /healthz: healthy = the state database opens and answers
        store = StateStore.open(url, migrate=False)
        try:
            version = store.schema_version()
        finally:
            store.close()
    except Exception as e:
        print(redact(f"unhealthy: the state database {db_where(url)} does not answer: {db_reason(e)}"), file=sys.stderr)
        return 1
    print(f"ok: the state database answers (schema {version}); enable [metrics] for a check of the scheduler and scans")
    return 0


def _ask_healthz(url: str, timeout: float) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.loads(r.read().decode("utf-8") or "{}")
            print(f"ok: {url} says {body.get('status', 'ok')}")
            return 0
    except urllib.error.HTTPError as e:
        try:
            reasons = json.loads(e.read().decode("utf-8")).get("reasons") or [f"HTTP {e.code}"]
        except (ValueError, AttributeError):
            reasons = [f"HTTP {e.code}"]
        print(f"unhealthy: {'; '.join(reasons)}", file=sys.stderr)
    except (OSError, ValueError) as e:  # refused, timed out: the bot is not serving
        print(f"unhealthy: {url} does not answer ({getattr(e, 'reason', None) or e})", file=sys.stderr)
    return 1
