"""config.toml -> a validated Config, or a ConfigError listing every problem at once.

The config is the admin's interface, so each problem names its key path
("detectors.conversion_drop.min_deals: must be >= 1, got 0"), unknown keys get the nearest
known one ("did you mean `min_deals`?"), and secrets are never read from the file: the file
only names the environment variables that hold them.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import types
import typing
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from detectors.registry import REGISTRY, DetectorSpec

from crm.source_config import SourceConfig


class ConfigError(Exception):
    """Every problem found in a config file; `.problems` are lines with key paths."""

    def __init__(self, source_name: str, problems: list[str]) -> None:
        self.source_name = source_name
        self.problems = problems
        n = len(problems)
        head = f"{source_name}: {n} problem{'s' if n != 1 else ''} in the config"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value: str) -> time:
    m = _HHMM.match(value.strip())
    if not m:
        raise ValueError(f'must be a time like "09:00" (24-hour HH:MM), got {value!r}')
    return time(int(m.group(1)), int(m.group(2)))


def _check_hhmm(value: str | None) -> str | None:
    if value is not None:
        parse_hhmm(value)
    return value


def _check_quiet(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    parts = value.split("-")
    if len(parts) != 2:
        raise ValueError(f'must be a range like "21:00-08:00", got {value!r}')
    for p in parts:
        if not _HHMM.match(p.strip()):
            raise ValueError(f'must be a range like "21:00-08:00" (from-to, 24-hour HH:MM), got {value!r}')
    return value.replace(" ", "")


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}: use an IANA name such as \"Asia/Almaty\" or \"Europe/Moscow\"") from None
    return value


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab weekday numbers 0..7


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday, 1 = Monday) in APScheduler's words: its
    from_crontab reads numbers as 0 = Monday, so "0 10 * * 1" would fire on Tuesdays. Numbers,
    ranges and steps become day names; names pass through."""
    if field == "*" or re.search(r"[a-zA-Z]", field):
        return field
    days: list[int] = []
    for part in field.split(","):
        rng, _, step = part.partition("/")
        lo, _, hi = ("0-6" if rng == "*" else rng).partition("-")
        a = int(lo)
        b = int(hi) if hi else (6 if step else a)
        if not (0 <= a <= 7 and 0 <= b <= 7 and a <= b) or (step and int(step) < 1):
            raise ValueError(f"weekday {part!r} is not 0-7 (0 or 7 = Sunday)")
        days += [d % 7 for d in range(a, b + 1, int(step) if step else 1)]
    return ",".join(_CRON_DAYS[d] for d in sorted(set(days), key=lambda d: (d + 6) % 7))


def cron_trigger(value: str, timezone: str | None = None) -> Any:
    """An APScheduler CronTrigger for a standard crontab line (minute hour day month weekday),
    weekdays numbered as cron numbers them (1 = Monday, 0 or 7 = Sunday)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(weekday),
                       timezone=timezone)


def _check_cron(value: str) -> str:
    try:
        cron_trigger(value)
    except ValueError as e:
        raise ValueError(f'must be a cron expression like "0 7 * * 1-5" (minute hour day month weekday), got {value!r}: {e}') from None
    return value


def _check_listen(value: str) -> str:
    """An address to bind: an IP address ("0.0.0.0", "127.0.0.1", "::") or a host name."""
    import ipaddress

    v = value.strip()
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", v):
        return v
    raise ValueError(f'must be an address to listen on, such as "0.0.0.0" (every interface) or "127.0.0.1", got {value!r}')


def _check_env_name(value: str | None, example: str = "CRM_PULSE_TELEGRAM_TOKEN") -> str | None:
    """A secret pasted where the NAME of its variable belongs is refused without echoing it
    (crm.redact.is_env_name: not a name, or a token, URL or random-looking key)."""
    from crm.redact import is_env_name

    if value is not None and not is_env_name(value):
        raise ValueError(
            f"must be the NAME of an environment variable (like {example}), not the secret itself; "
            f"got a value that is not a variable name (or looks like a key or token): remove it from the file, "
            f"put the secret in the environment variable {example} (the service's env file, or "
            f"`export {example}` in a shell) and write {example} here"
        )
    return value


def _env_validator(*fields: str, example: str | None = None) -> Any:
    """field_validator for *_env keys: the example in the message is the key's own default name."""
    def check(cls: type[BaseModel], v: str | None, info: ValidationInfo) -> str | None:
        default = cls.model_fields[info.field_name].default if info.field_name else None
        return _check_env_name(v, example or (default if isinstance(default, str) else "CRM_PULSE_SECRET"))
    return field_validator(*fields)(classmethod(check))


# ---------------------------------------------------------------- delivery

class PointsWorse(_Strict):
    points: float = Field(5.0, gt=0, le=100, description="percentage points")


class DaysWorse(_Strict):
    days: float = Field(7.0, gt=0, le=3650)


class HoursWorse(_Strict):
    hours: float = Field(24.0, gt=0, le=87600)


class LeadSlaWorse(HoursWorse):
    # a backlog item ("N leads waiting"): worse when this share more leads wait (1.0: twice as
    # many, 6 -> 12), not when its longest wait grows (that is the clock)
    backlog: float = Field(1.0, gt=0, le=100)


class RatioWorse(_Strict):
    ratio: float = Field(0.25, gt=0, le=100)


class WorseThresholds(_Strict):
    """How much worse an already-sent insight must get to be sent again before repeat_interval."""

    conversion_drop: PointsWorse = PointsWorse(points=5.0)
    silent_client: DaysWorse = DaysWorse(days=7.0)
    stalled_deal: DaysWorse = DaysWorse(days=7.0)
    lead_sla: LeadSlaWorse = LeadSlaWorse(hours=24.0)
    manager_load: RatioWorse = RatioWorse(ratio=0.25)
    loss_reasons: PointsWorse = PointsWorse(points=10.0)


class DeliveryConfig(_Strict):
    repeat_interval_days: float = Field(7.0, gt=0, le=3650)
    max_items: int = Field(10, ge=1, le=50)
    critical_immediately: bool = True
    critical_max_messages: int = Field(3, ge=1, le=20)  # per person per scan; more wait for the digest
    # false: on the calendar's days off (and weekly rest days outside digest_days) critical
    # alerts wait for the next working day's work_start or digest (bot.send_days.critical_rest)
    critical_on_days_off: bool = False
    resolved_notes: bool = False
    # `backtest` warns about any recipient who would average more items a day than this
    daily_budget: float = Field(5.0, gt=0)
    worse: WorseThresholds = WorseThresholds()


# ---------------------------------------------------------------- channels

class TelegramConfig(_Strict):
    enabled: bool = False
    token_env: str = "CRM_PULSE_TELEGRAM_TOKEN"
    base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret_env: str | None = "CRM_PULSE_TELEGRAM_WEBHOOK_SECRET"
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(8443, ge=1, le=65535)

    _env = _env_validator("token_env", "webhook_secret_env")

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> "TelegramConfig":
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError('mode = "webhook" needs webhook_url (the public https URL Telegram will call)')
        return self


class SlackConfig(_Strict):
    enabled: bool = False
    bot_token_env: str = "CRM_PULSE_SLACK_BOT_TOKEN"
    app_token_env: str = "CRM_PULSE_SLACK_APP_TOKEN"
    signing_secret_env: str = "CRM_PULSE_SLACK_SIGNING_SECRET"
    mode: Literal["socket", "http"] = "socket"
    base_url: str = "https://slack.com/api/"
    listen: str = "0.0.0.0"  # HTTP mode: the address to listen on
    port: int = Field(3000, ge=1, le=65535)

    _env = _env_validator("bot_token_env", "app_token_env", "signing_secret_env")
    _listen = field_validator("listen")(classmethod(lambda cls, v: _check_listen(v)))


class StateConfig(_Strict):
    url: str = "sqlite:///crm-pulse-state.db"
    url_env: str | None = None

    _env = _env_validator("url_env", example="CRM_PULSE_STATE_URL")

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str) -> str:
        from sqlalchemy.engine import make_url

        from crm.redact import has_secret, mask
        from sqlalchemy.exc import ArgumentError

        try:
            u = make_url(v)
        except ArgumentError:
            raise ValueError('must be an SQLAlchemy URL such as "sqlite:///crm-pulse-state.db" or '
                             f'"postgresql+psycopg://bot@db/crm_pulse", got {mask(v)!r}') from None
        if u.password or has_secret(v):  # also ?password=... in the query
            raise ValueError("contains a password: put the whole URL in an environment variable and name it in state.url_env")
        problem = state_url_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class MetricsConfig(_Strict):
    """`crm-pulse run` serves /metrics (Prometheus) and /healthz here when enabled (bot.metrics)."""
    enabled: bool = False
    host: str = "127.0.0.1"  # the loopback only: "0.0.0.0" in a container, for the scraper
    port: int = Field(9464, ge=1, le=65535)

    _host = field_validator("host")(classmethod(lambda cls, v: _check_listen(v)))


WEBHOOK_KINDS = ("amocrm", "bitrix24")  # the CRMs that call a URL on a lead/deal change


class WebhookConfig(_Strict):
    """`crm-pulse run` accepts amoCRM / Bitrix24 webhooks at /crm-webhook/<token> (bot.webhooks)
    and syncs (and scans) within seconds instead of at the next cron tick. Off by default.
    Same host and port as an enabled [metrics]: served by that server."""
    enabled: bool = False
    host: str = "127.0.0.1"  # "0.0.0.0" behind a reverse proxy / in a container
    port: int = Field(9465, ge=1, le=65535)
    token_env: str = "CRM_PULSE_WEBHOOK_TOKEN"  # the secret part of the URL (16+ letters, digits, - or _)
    application_token_env: str | None = None  # Bitrix24: auth[application_token] must match this
    debounce_seconds: float = Field(5.0, ge=0, le=600, allow_inf_nan=False)  # calls within it: one sync
    min_interval_seconds: float = Field(60.0, ge=0, le=3600, allow_inf_nan=False)  # between two webhook runs, at least
    scan: bool = True  # after the sync, scan: critical insights (a lead SLA breach) go out at once
    max_body_kb: int = Field(256, ge=1, le=10_240)

    _host = field_validator("host")(classmethod(lambda cls, v: _check_listen(v)))
    _env = _env_validator("token_env", "application_token_env", example="CRM_PULSE_WEBHOOK_TOKEN")


STATE_DIALECTS = ("sqlite", "postgresql")


def state_url_problem(url: str) -> str | None:
    """Why `run` could not open this state URL, found before it starts: an unparseable URL, a
    database kind other than SQLite/PostgreSQL (a typo like "sqlit:///"), a driver not installed.
    Never quotes the URL (it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        return ('not a database URL: use one like "sqlite:///crm-pulse-state.db" or '
                '"postgresql+psycopg://user:password@host/db"')
    if u.get_backend_name() not in STATE_DIALECTS:
        close = difflib.get_close_matches(u.get_backend_name(), STATE_DIALECTS, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return (f"the state database must be SQLite or PostgreSQL, got {u.get_backend_name()!r}{hint}: "
                'e.g. "sqlite:///crm-pulse-state.db" or "postgresql+psycopg://bot@db/crm_pulse"')
    try:
        u.get_dialect().import_dbapi()
    except NoSuchModuleError:
        return f"no SQLAlchemy driver {u.drivername!r}: use sqlite:/// or postgresql+psycopg://"
    except ImportError as e:
        return (f"the database driver for {u.drivername!r} is not installed ({e.name or e}): install it, "
                "e.g. `pip install 'psycopg[binary]'` for postgresql+psycopg")
    return None


class ScheduleConfig(_Strict):
    scan: str = "0 * * * *"
    digest_time: str = "09:00"
    digest_days: str = "mon-fri"
    weekly_report: str = "0 10 * * 1"
    sync: str = "*/15 * * * *"

    _cron = field_validator("scan", "weekly_report", "sync")(classmethod(lambda cls, v: _check_cron(v)))
    _hhmm = field_validator("digest_time")(classmethod(lambda cls, v: _check_hhmm(v)))

    @field_validator("digest_days")
    @classmethod
    def _days(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger(day_of_week=v)
        except ValueError:
            raise ValueError(f'must be weekdays like "mon-fri" or "mon,wed,fri" or "*", got {v!r}') from None
        return v


class Recipient(_Strict):
    id: str = Field(min_length=1)
    name: str = ""
    role: Literal["manager", "director", "admin"] = "manager"
    admin: bool = False  # a manager or director who may also use admin commands
    manager_id: str | None = None
    telegram_id: str | None = None
    slack_id: str | None = None
    language: Literal["ru", "en"] | None = None
    timezone: str | None = None
    digest_time: str | None = None
    quiet_hours: str | None = None
    all_quiet: bool = False  # send a short "all quiet" note on days with nothing to report

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))
    _hhmm = field_validator("digest_time")(classmethod(lambda cls, v: _check_hhmm(v)))
    _quiet = field_validator("quiet_hours")(classmethod(lambda cls, v: _check_quiet(v)))

    @field_validator("telegram_id", "slack_id", "manager_id", mode="before")
    @classmethod
    def _ids_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("telegram_id")
    @classmethod
    def _telegram_user_id(cls, v: str | None) -> str | None:
        """A bot can only write to a person by their numeric id; a @username never gets a message."""
        if v is not None and not re.fullmatch(r"\d+", v.strip()):
            raise ValueError(
                f'must be the person\'s numeric Telegram id (like 123456789), got "{v}": a @username '
                "cannot receive bot messages; ask them to send /start to the bot, which replies with their id"
            )
        return v.strip() if v is not None else v

    @model_validator(mode="after")
    def _manager_needs_id(self) -> "Recipient":
        if self.role == "manager" and not self.manager_id:
            raise ValueError('role = "manager" needs manager_id (their id in the CRM managers table)')
        return self

    @property
    def is_admin(self) -> bool:
        return self.admin or self.role == "admin"

    @property
    def display_name(self) -> str:
        return self.name or self.id


class TeamChannel(_Strict):
    id: str = Field(min_length=1)
    name: str = ""
    telegram_chat_id: str | None = None
    slack_channel_id: str | None = None
    language: Literal["ru", "en"] | None = None

    @field_validator("telegram_chat_id", "slack_channel_id", mode="before")
    @classmethod
    def _ids_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _needs_target(self) -> "TeamChannel":
        if not self.telegram_chat_id and not self.slack_channel_id:
            raise ValueError("a team channel needs telegram_chat_id and/or slack_channel_id")
        return self


# ---------------------------------------------------------------- calendar

class CalendarConfig(_Strict):
    """[calendar]: the company's working calendar, shared by lead_sla (hours) and stalled_deal (days).

    The timezone is the config's top-level `timezone`. `country` unset: taken from the timezone
    (the IANA tables: Asia/Almaty -> KZ, America/New_York -> US, Europe/Berlin -> DE; see
    detectors.working_hours.timezone_country); "" or "none": no official holidays."""

    country: str | None = None
    days_off: list[date] = Field(default_factory=list)
    working_days: list[date] = Field(default_factory=list)
    workdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    work_start: str = "09:00"
    work_end: str = "18:00"
    # Past working days on which the company's people recorded almost nothing count as days
    # off too (detectors.working_hours.company_days_off); check-config and scan name them.
    learn_days_off: bool = True

    _hhmm = field_validator("work_start", "work_end")(classmethod(lambda cls, v: _check_hhmm(v)))

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        from detectors.working_hours import check_country

        return check_country(v)

    @field_validator("workdays")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 or d > 7 for d in v):
            raise ValueError(f"must be ISO weekday numbers 1 (Monday) .. 7 (Sunday), got {v}")
        return v

    @model_validator(mode="after")
    def _hours_in_order(self) -> "CalendarConfig":
        if parse_hhmm(self.work_start) >= parse_hhmm(self.work_end):
            raise ValueError(f"work_start {self.work_start} must be before work_end {self.work_end}")
        return self

    def build(self, timezone: str) -> Any:
        """The detectors.working_hours.WorkCalendar this section describes in `timezone`."""
        from detectors.working_hours import company_calendar

        return company_calendar(timezone, country=self.country, days_off=tuple(self.days_off),
                                working_days=tuple(self.working_days), workdays=tuple(self.workdays),
                                work_start=parse_hhmm(self.work_start), work_end=parse_hhmm(self.work_end),
                                learn_days_off=self.learn_days_off)

    def describe(self, timezone: str) -> str:
        """One line for check-config: which official holidays are used, and why."""
        from detectors.working_hours import holidays_known, holidays_scope, timezone_country

        def of(code: str, source: str) -> str:
            notes = [n for n in (source, holidays_scope(code)) if n]  # the fix, if any, last
            return f"official holidays of {code}" + (f" ({'; '.join(notes)})" if notes else "")

        zone_code = timezone_country(timezone)
        if self.country == "":
            official = "no official holidays (country switched off)"
        elif self.country:
            official = of(self.country, "")
        elif zone_code and holidays_known(zone_code):
            official = of(zone_code, f"from the timezone {timezone}")
        elif zone_code:
            official = (f"no official holidays: the holidays package does not know {zone_code} (the country of "
                        f"timezone {timezone}); list them in [calendar] days_off")
        else:
            official = (f"no official holidays: timezone {timezone} names no country "
                        "(set calendar.country, e.g. \"US\")")
        days = "".join("MTWTFSS"[d - 1] if d in self.workdays else "-" for d in range(1, 8))
        n_off, n_work = len(self.days_off), len(self.working_days)
        extra = f", {n_off} extra day{'s' if n_off != 1 else ''} off" if n_off else ""
        extra += f", {n_work} extra working day{'s' if n_work != 1 else ''}" if n_work else ""
        learn = "" if self.learn_days_off else ", days off not learned from the data (learn_days_off = false)"
        return f"calendar: {days} {self.work_start}-{self.work_end} {timezone}, {official}{extra}{learn}"


# Keys that belong to [calendar] (and the old lead_sla spellings of them): refused under a
# detector with a pointer to [calendar], because one calendar is shared by every detector.
_CALENDAR_KEYS = {"calendar", "country", "days_off", "working_days", "workdays", "work_start", "work_end",
                  "learn_days_off", "holidays", "timezone"}
_CALENDAR_MAP = {"holidays": "days_off"}


class _FileConfig(_Strict):
    """The TOML file's shape; detectors are validated separately against the registry."""

    language: Literal["ru", "en"] = "ru"
    timezone: str = "Asia/Almaty"
    currency: str = "KZT"
    source: SourceConfig = Field(default_factory=SourceConfig)
    detectors: dict[str, Any] = {}  # each section is checked (once) by _validate_detectors
    delivery: DeliveryConfig = DeliveryConfig()
    telegram: TelegramConfig = TelegramConfig()
    slack: SlackConfig = SlackConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    webhook: WebhookConfig = WebhookConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    calendar: CalendarConfig = CalendarConfig()
    recipients: list[Recipient] = []
    channels: list[TeamChannel] = []

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", v.strip()):
            raise ValueError(f'must be a 3-letter ISO currency code such as "KZT", "RUB" or "USD", got "{v}"')
        return v.strip().upper()


class Config(_FileConfig):
    """The validated config. `base_dir` is the folder relative paths are resolved against."""

    detectors: dict[str, DetectorSpec] = {}  # type: ignore[assignment]
    base_dir: Path = Path(".")
    source_name: str = "config.toml"
    _work_calendar: Any = PrivateAttr(default=None)

    def detector_specs(self) -> dict[str, DetectorSpec]:
        """Every registered detector's spec: configured ones as given, the rest at defaults;
        a spec with a `calendar` field gets the company calendar ([calendar] + timezone), one
        with a `timezone` field its section left out the config's timezone (silent_client's
        "distinct days" are the company's days, not Almaty's), and one with an
        `active_window_days` field manager_load's."""
        cal = self.work_calendar()
        out = {}
        for name, det in REGISTRY.items():
            spec = self.detectors.get(name) or det.spec()
            if "calendar" in type(spec).model_fields:
                spec = spec.model_copy(update={"calendar": cal})
            if "timezone" in type(spec).model_fields and "timezone" not in spec.model_fields_set:
                spec = spec.model_copy(update={"timezone": self.timezone})
            out[name] = spec
        # One notion of "working" ([detectors.manager_load] active_window_days) for every
        # detector that tells a person who left from one who works (stalled_deal).
        window = out["manager_load"].active_window_days if "manager_load" in out else None
        for name, spec in out.items():
            if window is not None and name != "manager_load" and "active_window_days" in type(spec).model_fields:
                out[name] = spec.model_copy(update={"active_window_days": window})
        return out

    def work_calendar(self) -> Any:
        """The company calendar (detectors.working_hours.WorkCalendar), built once per config."""
        if self._work_calendar is None:
            self._work_calendar = self.calendar.build(self.timezone)
        return self._work_calendar

    def recipient(self, recipient_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.id == recipient_id), None)

    def find_person(self, channel: str, user_id: str) -> Recipient | None:
        """The recipient behind a Telegram/Slack user id (console: the recipient id)."""
        for r in self.recipients:
            if channel == "telegram" and r.telegram_id == str(user_id):
                return r
            if channel == "slack" and r.slack_id == str(user_id):
                return r
            if channel == "console" and r.id == str(user_id):
                return r
        return None

    def state_url(self) -> str:
        """The state database URL: from the env var named in state.url_env, else state.url
        with a relative SQLite path resolved against the config's folder."""
        if self.state.url_env:
            value = os.environ.get(self.state.url_env)
            if not value:
                raise ConfigError(self.source_name, [
                    f"state.url_env: environment variable {self.state.url_env} is not set "
                    "(it should hold the state database URL, e.g. postgresql+psycopg://user:password@host/db)"])
            problem = state_url_problem(value.strip())
            if problem:  # said here, naming the variable, not as a crash inside the engine
                raise ConfigError(self.source_name, [
                    f"state.url_env: environment variable {self.state.url_env}: {problem}"])
            return value.strip()
        url = self.state.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite://" and ":memory:" not in url:
            rel = url[len(prefix):]
            return prefix + str((self.base_dir / rel).resolve())
        return url

    def secret(self, env_name: str | None) -> str | None:
        """Read a secret from the environment (never from the file, never printed)."""
        if not env_name:
            return None
        value = os.environ.get(env_name, "").strip()
        return value or None


# ---------------------------------------------------------------- error formatting

def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else (args[0] if args else tp)
            if not models and len(args) <= 1:
                return tp
            if models:
                return tp
        else:
            return tp


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class a location inside `model` points at (for 'did you mean')."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(str(part))
            if f is None:
                return None
            tp = f.annotation
        elif typing.get_origin(tp) in (list, tuple) and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def did_you_mean(key: str, known: list[str] | Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _fmt_loc(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                label = f"[{part}] (id {item['id']!r})"
            out += label
            node = item
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return repr(v)


# "key: ..." at the start of a validator message; a key may hold quoted parts ("В работе").
_KEYED = r'^((?:[^\s:"]+|"[^"]*")+): '


def _value_problem(path: str, msg: str, value: Any) -> str:
    """One validator message under its key path: a message that starts with the key it is about
    ("stages: ...", "deals.manger_id: ...", "dealz: unknown table") is put under that key once."""
    m = re.match(_KEYED, msg)
    if m:
        key, rest = m.group(1), msg[m.end():]
        last = path.rsplit(".", 1)[-1]
        if key == last:  # the validator repeated the key the path already ends with
            return f"{path}: {rest}"
        if "." in key or (isinstance(value, dict) and key.strip("\"'") in value):
            return f"{path}.{msg}"
    return f"{path}: {msg}"


def _fmt_error(err: dict[str, Any], model: type[BaseModel], data: dict[str, Any], prefix: tuple[Any, ...] = ()) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    path = _fmt_loc(prefix + loc, data) or "(top level)"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), parent.model_fields) if parent else ""
        return f"{path}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "greater_than_equal":
        return f"{path}: must be >= {ctx.get('ge')}, got {_fmt_value(value)}"
    if kind == "greater_than":
        return f"{path}: must be > {ctx.get('gt')}, got {_fmt_value(value)}"
    if kind == "less_than_equal":
        return f"{path}: must be <= {ctx.get('le')}, got {_fmt_value(value)}"
    if kind == "less_than":
        return f"{path}: must be < {ctx.get('lt')}, got {_fmt_value(value)}"
    if kind == "literal_error":
        return f"{path}: must be one of {ctx.get('expected')}, got {_fmt_value(value)}"
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        return f"{path}: must be a number, got {_fmt_value(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{path}: must be true or false, got {_fmt_value(value)}"
    if kind == "string_type":
        return f"{path}: must be text in quotes, got {_fmt_value(value)}"
    if kind in ("string_too_short", "string_too_long"):
        return f"{path}: {err['msg'].lower()}, got {_fmt_value(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: must be a table ([{path}] or {{ ... }}), got {_fmt_value(value)}"
    if kind == "list_type":
        return f"{path}: must be a list (or [[{path}]] tables), got {_fmt_value(value)}"
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts = msg.split("; ")
        if len(parts) > 1 and not all(re.match(_KEYED, part) for part in parts):
            parts = [msg]  # one sentence with a semicolon, not a list of keyed problems
        return "\n".join(_value_problem(path, part, value) for part in parts)
    return f"{path}: {err['msg']}, got {_fmt_value(value)}"


# ---------------------------------------------------------------- parsing

def _toml_error_message(e: tomllib.TOMLDecodeError) -> str:
    lineno = getattr(e, "lineno", None)
    colno = getattr(e, "colno", None)
    msg = getattr(e, "msg", str(e))
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
    if m:  # Python 3.11-3.13 put the position inside the message
        lineno, colno = int(m.group(1)), int(m.group(2))
        msg = msg[:m.start()] + msg[m.end():]
    where = f"line {lineno}, column {colno}: " if lineno else ""
    return f"{where}TOML syntax error: {msg} (check quotes, brackets and `key = value` on that line)"


def _cross_checks(data: dict[str, Any]) -> list[str]:
    """Checks across entries (duplicate ids), on the raw data so they run even when other keys are wrong."""
    problems: list[str] = []
    recipients = [r for r in data.get("recipients", []) if isinstance(r, dict)] if isinstance(data.get("recipients"), list) else []
    channels = [c for c in data.get("channels", []) if isinstance(c, dict)] if isinstance(data.get("channels"), list) else []
    seen: dict[str, str] = {}
    for section, items in (("recipients", recipients), ("channels", channels)):
        for i, r in enumerate(items):
            rid = r.get("id")
            if not isinstance(rid, str):
                continue
            if rid in seen:
                problems.append(f"{section}[{i}] (id {rid!r}).id: used twice (also {seen[rid]})")
            seen.setdefault(rid, f"{section}[{i}]")
    for attr in ("telegram_id", "slack_id", "manager_id"):
        owners: dict[str, str] = {}
        for i, r in enumerate(recipients):
            v = r.get(attr)
            if v is None or (attr == "manager_id" and r.get("role", "manager") != "manager"):
                continue
            v = str(v)
            if v in owners:
                problems.append(f"recipients[{i}] (id {r.get('id')!r}).{attr}: {v} already belongs to {owners[v]}")
            owners.setdefault(v, repr(r.get("id")))
    problems += _webhook_checks(data)
    return problems


def _webhook_checks(data: dict[str, Any]) -> list[str]:
    """[webhook] needs a CRM that calls webhooks as the source, and may share [metrics]'s port only
    on the same host (one server serves both)."""
    hook = data.get("webhook") if isinstance(data.get("webhook"), dict) else {}
    if hook.get("enabled") is not True:
        return []
    out: list[str] = []
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    kind = source.get("kind", "files")
    if kind not in WEBHOOK_KINDS:
        out.append(f"webhook.enabled: webhooks come from amoCRM or Bitrix24, but [source] kind is {kind!r}: "
                   'set [source] kind = "amocrm" or "bitrix24" (with its API keys), or set webhook.enabled = false')
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    if (metrics.get("enabled") is True and hook.get("port", 9465) == metrics.get("port", 9464)
            and hook.get("host", "127.0.0.1") != metrics.get("host", "127.0.0.1")):
        out.append(f"webhook.host: the webhooks share port {hook.get('port', 9465)} with [metrics], so they are served by "
                   f"the same server and must listen on the same host ({metrics.get('host', '127.0.0.1')!r}): "
                   "set the same host in both, or give [webhook] its own port")
    return out


def _validate_detectors(raw: Any, problems: list[str]) -> dict[str, DetectorSpec]:
    specs: dict[str, DetectorSpec] = {}
    if not isinstance(raw, dict):
        return specs
    for name, section in raw.items():
        det = REGISTRY.get(name)
        if det is None:
            hint = did_you_mean(name, REGISTRY) or f" (known: {', '.join(sorted(REGISTRY)) or 'none registered'})"
            problems.append(f"detectors.{name}: unknown detector{hint}")
            continue
        if not isinstance(section, dict):
            problems.append(f"detectors.{name}: must be a table [detectors.{name}], got {_fmt_value(section)}")
            continue
        moved = sorted(k for k in section if k in _CALENDAR_KEYS and k not in det.spec.model_fields
                       or k == "calendar")
        for key in moved:
            where = "the config's top-level `timezone`" if key == "timezone" else \
                ("[calendar] as a table" if key == "calendar" else f"`{_CALENDAR_MAP.get(key, key)}` under [calendar]")
            problems.append(f"detectors.{name}.{key}: the working calendar is one for the whole company "
                            f"(lead_sla and stalled_deal share it): write this as {where}, not under [detectors.{name}]")
        if name != "manager_load" and "active_window_days" in section:
            # one notion of who is working (detectors.people): filled from manager_load's, so a
            # value here would be overridden without a word
            moved.append("active_window_days")
            problems.append(f"detectors.{name}.active_window_days: who is working is one answer for every detector "
                            f"(stalled_deal, lead_sla, lead_score, deal_risk, silent_client, manager_load): write it as "
                            f"`active_window_days` under [detectors.manager_load], not under [detectors.{name}]")
        section = {k: v for k, v in section.items() if k not in moved}
        try:
            specs[name] = det.spec.model_validate(section)
        except ValidationError as e:
            for err in e.errors():
                problems.extend(_fmt_error(err, det.spec, {"detectors": {name: section}},
                                           prefix=("detectors", name)).split("\n"))
    return specs


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")
_PATH_HEAD = re.compile(r"^([A-Za-z0-9_\-]+)((?:\[\d+\](?: \(id '[^']*'\))?|\.[A-Za-z0-9_\-]+)*)")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in dotted.split("."))


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Where each table and key is defined: (path parts, array indexes as ints) -> 1-based line."""
    where: dict[tuple[Any, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    current: tuple[Any, ...] = ()
    for n, line in enumerate(text.splitlines(), start=1):
        h = _HEADER.match(line)
        if h and not _KEY.match(line):
            parts = _split_key(h.group(2))
            if h.group(1) == "[[":
                counts[parts] = counts.get(parts, -1) + 1
                current = parts + (counts[parts],)
            else:
                # a sub-table of the latest array element: [recipients.x] after [[recipients]]
                base: tuple[Any, ...] = parts
                for arr, idx in counts.items():
                    if parts[:len(arr)] == arr and len(parts) > len(arr):
                        base = arr + (idx,) + parts[len(arr):]
                current = base
            where.setdefault(current, n)
            continue
        k = _KEY.match(line)
        if k:
            where.setdefault(current + _split_key(k.group(1)), n)
    return where


def _with_line(problem: str, lines: dict[tuple[Any, ...], int]) -> str:
    """Append "(line N)" when the problem's key path can be found in the file."""
    m = _PATH_HEAD.match(problem)
    if not m or problem.startswith("line "):
        return problem
    path: list[Any] = [m.group(1)]
    for part in re.findall(r"\[(\d+)\]|\.([A-Za-z0-9_\-]+)", m.group(2)):
        path.append(int(part[0]) if part[0] else part[1])
    while path:
        n = lines.get(tuple(path))
        if n:
            return f"{problem} (line {n})"
        path.pop()
    return problem


MAX_NESTING = 16  # the deepest real key is [source.values.<table>.<column>]: 4 levels
MAX_NUMBER = 1e15  # beyond any amount, count or threshold a CRM config needs; floats stay exact
# Durations by the key's name: past these every timedelta/date computation overflows or means nothing.
UNIT_LIMITS = (("days", 36500), ("hours", 876000), ("minutes", 52_560_000), ("seconds", 3_153_600_000))
UNIT_KEYS = {"stage_limits": "days"}  # a table of durations whose name does not say so


def _unit_limit(key: str) -> tuple[str, float] | None:
    words = UNIT_KEYS.get(key.lower(), key.lower()).split("_")  # min_seconds_after_send, silence_days
    for unit, limit in UNIT_LIMITS:
        if unit in words:
            return unit, limit
    return None


def _number_problems(node: Any, loc: tuple[Any, ...], data: dict[str, Any], problems: list[str],
                     unit: tuple[str, float] | None = None) -> Any:
    """Every number finite and within bounds (TOML has inf and nan, and `1e308` parses), every
    table or list at most MAX_NESTING deep; returns the data without the refused values, so each
    is reported once, here, with its key path (not again as whatever the model would make of it)."""
    path = _fmt_loc(loc, data) or "(top level)"
    if len(loc) > MAX_NESTING and isinstance(node, (dict, list)):
        problems.append(f"{path}: nested more than {MAX_NESTING} levels deep; no key of the config "
                        "is (check for a runaway [ or {)")
        return None
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            cleaned = _number_problems(value, loc + (key,), data, problems, _unit_limit(str(key)) or unit)
            if cleaned is not None or value is None:
                out[key] = cleaned
        return out
    if isinstance(node, list):
        return [c for i, v in enumerate(node)
                if (c := _number_problems(v, loc + (i,), data, problems, unit)) is not None]
    if isinstance(node, float) and not math.isfinite(node):
        problems.append(f"{path}: must be a finite number, got {_fmt_value(node)}")
        return None
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        shown = f"{node:g}" if isinstance(node, float) else str(node)
        if unit is not None and abs(node) > unit[1]:
            problems.append(f"{path}: must be at most {unit[1]} {unit[0]} (100 years), got {shown}")
            return None
        if abs(node) > MAX_NUMBER:
            problems.append(f"{path}: must be between -{MAX_NUMBER:g} and {MAX_NUMBER:g}, got {shown}")
            return None
    return node


def _load_toml(text: str, source_name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source_name, [_toml_error_message(e)]) from None
    except RecursionError:  # tomllib recurses once per level: "[[[[[[..." hundreds deep
        raise ConfigError(source_name, [
            f"lists or inline tables are nested hundreds of levels deep; no key of the config is nested "
            f"more than {MAX_NESTING} (check for a runaway [ or {{)"]) from None


def parse_config(text: str, *, source_name: str = "config.toml", base_dir: Path | str | None = None) -> Config:
    """Validate config text; raise ConfigError with every problem found."""
    raw = _load_toml(text, source_name)
    import detectors  # noqa: F401  (registers every detector, so names and specs are known)

    problems: list[str] = []
    data = _number_problems(raw, (), raw, problems)
    file_cfg: _FileConfig | None = None
    try:
        file_cfg = _FileConfig.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            problems.extend(_fmt_error(err, _FileConfig, data).split("\n"))
    specs = _validate_detectors(data.get("detectors", {}), problems)
    problems.extend(_cross_checks(data))
    if problems:
        lines = key_lines(text)
        raise ConfigError(source_name, [_with_line(p, lines) for p in problems])
    assert file_cfg is not None
    fields = file_cfg.model_dump(exclude={"detectors", "source"})
    return Config(
        **fields, source=file_cfg.source, detectors=specs,
        base_dir=Path(base_dir) if base_dir is not None else Path("."), source_name=source_name,
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; relative paths inside resolve against its folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(str(p), [f"file not found: {p} (create one with `crm-pulse init`, or pass --config PATH)"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), ["the file is not UTF-8 text: save it as UTF-8 in your editor"]) from None
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read the file: {e.strerror}"]) from None
    return parse_config(text, source_name=str(p), base_dir=p.resolve().parent)
