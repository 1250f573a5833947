"""`crm-pulse`: the command line. One parser, one subcommand per job, no tracebacks for users.

scan, check-config, demo and init live here; run, stats, backtest, explain, diagnose and preview live
in their owners' modules (`add_arguments(parser)` + `run(args) -> int`) and are imported only
when that command is asked for, so one broken module never breaks the whole CLI.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

EXIT_OK, EXIT_INSIGHTS, EXIT_USAGE, EXIT_DATA, EXIT_INTERNAL = 0, 1, 2, 3, 4
DEFAULT_CONFIG = "config.toml"  # what `init` writes and every command reads when not told otherwise

EPILOG = """exit codes:
  0  ok
  1  insights found (only with scan --fail-on-insights), or a recipient over the
     daily budget (only with backtest --fail-on-budget)
  2  usage or config error (every problem is listed)
  3  data error (file, row, column, value and how to fix it)
  4  unexpected internal error (run with --debug for the traceback)
"""

# Commands owned by other modules: name -> (module, one-line help).
EXTERNAL = {
    "run": ("bot.app", "run the bot: scheduled scans, digests, Telegram/Slack, buttons"),
    "stats": ("bot.stats", "what was sent, what people found useful, failed messages"),
    "health": ("bot.metrics", "is the running bot healthy? asks /healthz ([metrics]), else the state database"),
    "backtest": ("bot.backtest", "replay the detectors over past days: how many alerts people would get"),
    "explain": ("bot.explain", "the full evidence behind one insight (by fingerprint)"),
    "diagnose": ("bot.maturity.cli", "the five-question sales automation maturity check in the terminal"),
    "preview": ("bot.preview", "exactly what one recipient would get now: their digest as Telegram, Slack or text"),
    "send-test": ("bot.online", "send one harmless test message to one recipient through the real chat"),
    "sync": ("bot.sync", "pull what changed in the CRM (amoCRM, Bitrix24, HubSpot, Pipedrive API) into the local store that scan reads"),
    "model": ("bot.model_report", "level 3: backtest the win-likelihood model on your own history (model report)"),
}


class UsageError(Exception):
    """A bad command line or a missing file: exit 2 with this message."""


def shown(text: object) -> str:
    """A line for the admin's terminal: every secret masked by the one mask (bot.logsafe.redact:
    crm.redact.mask's shapes plus the configured secret values), and nothing in it (a CRM
    string in a warning, a file name in an error) that could drive the terminal."""
    from bot.logsafe import redact
    from messages.escape import terminal_safe

    return terminal_safe(redact(str(text)))


def err(*parts: Any) -> None:
    """Errors, warnings and notes go to stderr, always through `shown`."""
    print(shown(" ".join(str(p) for p in parts)), file=sys.stderr)


def say(text: str) -> None:
    """A stdout line that may quote config or CRM values (check-config's report)."""
    print(shown(text))


# --- shared helpers -------------------------------------------------------------------------

def parse_now(text: str | None, tz: str) -> datetime:
    """--now: ISO date or datetime; naive values are in the config's timezone; default: the clock."""
    if not text:
        return datetime.now(dt_timezone.utc)
    value = day_first(text.strip())
    if value is None:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--now: cannot read {text!r}; use ISO like 2026-11-18 or 2026-11-18T09:00 or "
                             "2026-11-18T09:00+05:00 (or 18.11.2026 09:00, in the config's timezone)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value


def day_first(text: str) -> datetime | None:
    """`18.11.2026` or `18.11.2026 09:00`, as Russian Excel and the CRM exports write dates."""
    for fmt in ("%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def config_or_default(path: str | None, data_dir: str | None):
    """The Config for --config FILE, or the defaults (every detector at default thresholds) for --data DIR."""
    from bot.config import load_config, parse_config

    if not path and not data_dir:
        if not Path(DEFAULT_CONFIG).is_file():
            raise UsageError(f"give --config FILE or --data DIR (there is no ./{DEFAULT_CONFIG} here; "
                             "create one with `crm-pulse init`)")
        path = DEFAULT_CONFIG
    if path:
        require_config_file(Path(path))
        return load_config(path)
    return parse_config("", source_name="(defaults)", base_dir=Path(data_dir or "."))


def require_config_file(path: Path) -> None:
    if path.is_dir():
        inside = path / DEFAULT_CONFIG
        hint = f"; did you mean {inside}?" if inside.is_file() else "; give the config file, not its folder"
        raise UsageError(f"{path} is a folder{hint}")
    if not path.is_file():
        raise UsageError(f"config file not found: {path} (create one with `crm-pulse init`)")


def load_for(args: argparse.Namespace, config, now: datetime):
    """(data, warnings) from --data DIR (canonical folder) or the config's [source]."""
    from bot import pipeline
    from crm.load import load_folder

    if getattr(args, "data", None):
        folder = Path(args.data)
        if folder.is_file():
            raise UsageError(f"--data: {folder} is a file; give the folder that holds the exports "
                             f"({folder.parent}), or name the file in a config's [source.files]")
        if not folder.is_dir():
            raise UsageError(f"--data: folder not found: {folder}")
        loaded = load_folder(folder, timezone=config.timezone, now=now)
    else:
        loaded = pipeline.load(config, now)
    return loaded.data, list(loaded.warnings)


def print_warnings(warnings: list[Any]) -> None:
    for w in warnings:
        err(f"{getattr(w, 'level', 'warning')}: {w}")


def print_skipped(skipped: dict[str, str], partial: dict[str, list[str]] | None = None) -> None:
    for name, reason in skipped.items():
        err(f"skipped {name}: {reason}")
    for name, lines in (partial or {}).items():
        for line in lines:
            err(f"partly skipped {name}: {line}")


# --- scan -----------------------------------------------------------------------------------

def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="a folder of CSV/XLSX/Parquet files in the canonical format (default thresholds)")
    src.add_argument("--config", metavar="FILE", help="config.toml: data source, thresholds, language (default: ./config.toml)")
    p.add_argument("--now", metavar="TS", help="scan as if it were this moment (ISO; default: now)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for scripts (stdout holds only the JSON array)")
    p.add_argument("--lang", choices=["ru", "en"], help="language of the texts (default: the config's)")
    p.add_argument("--fail-on-insights", action="store_true", help="exit 1 when any insight is found (for CI/cron)")
    p.add_argument("--explain", action="store_true", help="print the full evidence of every insight")


def run_scan(args: argparse.Namespace) -> int:
    from bot import pipeline

    config = config_or_default(args.config, args.data)
    now = parse_now(args.now, config.timezone)
    lang = args.lang or config.language
    data, warnings = load_for(args, config, now)
    outcome = pipeline.scan(config, now, data=data)
    print_warnings(warnings)
    if outcome.stale:
        err(f"stale data: {outcome.stale}")
    if outcome.days_off:
        err(f"calendar: {outcome.days_off}")
    print_skipped(outcome.skipped, outcome.partial)
    if args.format == "json":
        from messages.render import insight_text

        zone = ZoneInfo(config.timezone)
        items = [i.to_dict(text=insight_text(i, lang, now=now, tz=zone)) for i in outcome.insights]
        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
    else:
        from bot.delivery import scan_checks

        from messages.escape import terminal_safe

        print(terminal_safe(format_insights_text(outcome.insights, lang, now, explain=args.explain, data=outcome.data,
                                                 checks=scan_checks(outcome, config), tz=config.timezone)))
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts().items())
    err(f"{len(outcome.insights)} insight(s) at {local_time(now, config.timezone)}: {counts}")
    if args.fail_on_insights and outcome.insights:
        return EXIT_INSIGHTS
    return EXIT_OK


def local_time(moment: datetime, tz: str) -> str:
    """A moment as an admin reads it: wall-clock time in the config's timezone, named."""
    return f"{moment.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M} ({tz})"


def format_insights_text(insights: list, lang: str, now: datetime, *, explain: bool = False, data=None,
                         checks=None, tz: str | None = None) -> str:
    """Terminal rendering of each insight, most severe first; evidence too with --explain.

    `checks` (messages.digest.Checks): "nothing needs attention" is said only when every enabled
    check ran in full; otherwise the text names what could not be checked, also after insights."""
    from messages.digest import nothing_found_text, unchecked_text

    if not insights:
        return nothing_found_text(checks, lang)
    from messages import terminal

    ordered = sorted(insights, key=lambda i: (-i.severity_rank, i.detector))
    blocks = []
    for i in ordered:
        block = terminal.format_insight(i, lang, tz=ZoneInfo(tz) if tz else None)
        if explain:
            block += "\n" + _explain_block(i, data, lang, tz)
        blocks.append(block)
    missing = unchecked_text(checks, lang) if checks is not None else None
    if missing:
        blocks.append(missing[:1].upper() + missing[1:] + ".")
    return "\n\n".join(blocks)


def _explain_block(insight, data, lang: str, tz: str | None = None) -> str:
    """Evidence behind one insight, rendered as `crm-pulse explain` renders it."""
    from bot.explain import format_evidence  # only when --explain is asked for

    return format_evidence(insight, data, lang, tz=tz)


# --- check-config ---------------------------------------------------------------------------

def add_check_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", default="config.toml", help="the config to check (default: ./config.toml)")
    p.add_argument("--now", metavar="TS", help="check dates against this moment (default: now)")
    p.add_argument("--online", action="store_true", help="also call the chat APIs with the tokens (Telegram getMe, "
                   "Slack auth.test), open the state database and, for a CRM API source, prove its credentials "
                   "(exit 2 for a refused token, 75 when one is unreachable now)")


def run_check_config(args: argparse.Namespace) -> int:
    from bot import pipeline
    from bot.config import load_config
    from detectors import REGISTRY
    from detectors.registry import not_opted_in, unchecked_parts, why_skipped, with_company_calendar
    from crm.freshness import freshness
    from detectors.working_hours import learned_line

    path = Path(args.file)
    require_config_file(path)
    config = load_config(path)
    now = parse_now(args.now, config.timezone)
    loaded = pipeline.load(config, now)
    data = loaded.data
    problems = pipeline.config_problems(config, data)
    if problems:  # keys that name what the data does not have: typos, said like every other one
        from bot.config import ConfigError
        raise ConfigError(str(path), problems)
    stale = pipeline.stale_line(freshness(data, now), config.source.stale_after_days, config.timezone, now,
                                config.work_calendar())
    specs, calendar = with_company_calendar(data, config.detector_specs(), now, stale=stale is not None)
    notes = pipeline.detector_notes(data)
    say(f"OK: {path}")
    say(f"  language {config.language}, timezone {config.timezone}, currency {config.currency}")
    say(f"  {config.calendar.describe(config.timezone)}")
    from bot.send_days import critical_line, schedule_line
    say(f"  {schedule_line(config, now)}")
    say(f"  {critical_line(config)}")
    if calendar is not None and learned_line(calendar):
        say(f"    {learned_line(calendar)}")
    say(f"  source: {config.source.kind}" + (f" {config.source.path}" if config.source.path else ""))
    from crm.connectors import CONNECTORS
    if config.source.kind in CONNECTORS:  # where the synced records are (never the URL's password)
        from crm.connectors import engine
        say(f"  store: {engine.open_store(config.source, config.base_dir).describe(config.source.kind)}")
    say("  tables:")
    for name in data.table_names():
        origin = data.origins.get(name, "")
        say(f"    {name:<14} {len(data.table(name)):>9,} rows  {origin}")
    say(f"    stages         {' -> '.join(data.stages) if data.stages else '(none)'}")
    say("  " + data_age_line(data, config, now))
    say("  detectors:")
    idle: list[tuple[str, str]] = []  # managers with no recent work: never "active" in the notes below
    for name, det in REGISTRY.items():
        spec = specs.get(name) or det.spec()
        why = why_skipped(data, det, spec)
        if not_opted_in(det, spec):
            state = f"off (opt-in: [detectors.{name}] enabled = true)"
        elif why is not None:
            state = "skipped: " + why
        elif name in notes:
            state = "skipped: " + notes[name]
        else:
            state = "enabled"
        say(f"    {name:<16} {state}")
        if why is None and name not in notes:
            for line in unchecked_parts(data, det):
                say(f"    {'':<16} partly: {line}")
            if name == "manager_load":
                from bot.routing import person_label
                from detectors.manager_load import not_working
                off = not_working(data, spec, now)
                why = {"idle": "no deal, lead or activity",
                       "no_contact": "given deals, but no call, task or email by them or on their deals"}
                for reason, people in off.items():
                    if people:
                        shown = ", ".join(person_label(i, n) for i, n in people[:10]) + (", ..." if len(people) > 10 else "")
                        say(f"    {'':<16} {len(people)} manager(s) not compared: {why[reason]} in the last "
                            f"{spec.active_window_days} days: {shown}")
                idle = [x for people in off.values() for x in people]
    roles: dict[str, int] = {}
    for r in config.recipients:
        roles[r.role] = roles.get(r.role, 0) + 1
    say("  recipients: " + (", ".join(f"{n} {role}(s)" for role, n in roles.items()) or "none"))
    for line in recipient_lines(config, data, idle={i for i, _n in idle}):
        say(line)
    if config.channels:
        say(f"  team channels: {len(config.channels)}")
    for line in secret_lines(config):
        say(line)
    for w in loaded.warnings:
        say(f"  {getattr(w, 'level', 'warning')}: {w}")
    if getattr(args, "online", False):
        from bot.online import online_lines

        lines, code = online_lines(config)
        for line in lines:
            say(line)
        return code
    return EXIT_OK


def data_age_line(data, config, now: datetime) -> str:
    """How old the newest record is, and whether the time-based detectors will judge it."""
    from bot.pipeline import stale_line
    from crm.freshness import freshness
    from detectors.registry import NEEDS_FRESH_DATA

    fresh = freshness(data, now)
    stale = stale_line(fresh, config.source.stale_after_days, config.timezone, now, config.work_calendar())
    if fresh.newest is None:
        return f"data age: unknown: {stale}"
    newest = fresh.newest.tz_convert(ZoneInfo(config.timezone)).strftime("%Y-%m-%d %H:%M")
    head = f"data age: newest record {newest} ({config.timezone}) in {fresh.origin}, {fresh.age_days():.1f} days before now"
    if stale:
        return f"{head}: STALE (more working days without a record than [source] stale_after_days = {config.source.stale_after_days:g}); " \
               f"{', '.join(sorted(NEEDS_FRESH_DATA))} will stay silent until fresh data arrives"
    return f"{head}: fresh (limit {config.source.stale_after_days:g} working days without a record)"


def recipient_lines(config, data, idle: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Recipients whose manager_id is not in the managers table (they would never get a digest),
    and active managers nobody configured, so a typo in an id is seen before the first digest.
    `idle`: managers with no work in manager_load's window (listed once above as not compared):
    a person who left is not advised to get a digest."""
    import difflib

    from bot.routing import person_label

    managers = data.managers
    ids = [str(v) for v in managers["manager_id"]]
    names = dict(zip(ids, (str(v) for v in managers["name"]))) if "name" in managers.columns else {}
    known = set(ids)
    lines = []
    for r in config.recipients:
        if r.role != "manager" or r.manager_id in known:
            continue
        by_name = [i for i, n in names.items() if n.casefold() == str(r.manager_id).casefold()]
        close = by_name or difflib.get_close_matches(str(r.manager_id), ids, n=1, cutoff=0.6)
        hint = f" (did you mean `{close[0]}`, {names.get(close[0], close[0])}?)" if close else ""
        lines.append(f"  warning: recipients (id {r.id!r}).manager_id: {r.manager_id!r} is not in the managers "
                     f"table, so {r.display_name} will get no digest{hint}")
    covered = {r.manager_id for r in config.recipients if r.role == "manager"}
    active = managers["active"].fillna(True).astype(bool) if "active" in managers.columns else None
    if active is not None:
        gone = {i for i, a in zip(ids, active) if not a}
        for r in config.recipients:
            if r.role == "manager" and r.manager_id in gone:
                lines.append(f"  note: recipients (id {r.id!r}): {person_label(r.manager_id, names.get(r.manager_id))} is marked "
                             "inactive in the managers table: their stalled deals go to the director to hand over "
                             "(remove the entry if they left)")
    uncovered = [i for n, i in enumerate(ids)
                 if i not in covered and i not in idle and (active is None or active.iloc[n])]
    if uncovered and config.recipients:
        shown = ", ".join(person_label(i, names.get(i, "")) for i in uncovered[:5]) + (", ..." if len(uncovered) > 5 else "")
        lines.append(f"  note: {len(uncovered)} active manager(s) have no [[recipients]] entry and get no digest: {shown}")
    return lines


def secret_lines(config) -> list[str]:
    """For each enabled chat platform: which environment variables it reads and whether they are set.

    The values are never printed; only "set" or "NOT SET". A configured name that looks like
    the secret itself (crm.redact.is_env_name) is not printed either.
    """
    needs: list[tuple[str, str | None]] = []
    if config.telegram.enabled:
        needs.append(("telegram", config.telegram.token_env))
        if config.telegram.mode == "webhook":
            needs.append(("telegram webhook", config.telegram.webhook_secret_env))
    if config.slack.enabled:
        needs.append(("slack", config.slack.bot_token_env))
        needs.append(("slack", config.slack.app_token_env if config.slack.mode == "socket" else config.slack.signing_secret_env))
    from crm.redact import env_name, is_env_name

    lines = []
    for what, env in needs:
        if not env:
            continue
        if not is_env_name(env):  # a secret pasted where the NAME belongs: never print it back
            lines.append(f"  {what}: {env_name(env)}; write the NAME of the environment variable "
                         "there (e.g. CRM_PULSE_TELEGRAM_TOKEN) and export the secret in it")
            continue
        state = "set" if config.secret(env) else "NOT SET: export it before `crm-pulse run`"
        lines.append(f"  {what}: ${env} {state}")
    return lines


# --- demo -----------------------------------------------------------------------------------

def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=["ru", "en"], help="language of the digests (default: the demo config's, ru)")
    p.add_argument("--export", metavar="DIR", help="write the demo data as canonical CSV files (plus a config.toml for them) and exit")
    p.add_argument("--charts", metavar="DIR", help="also write the charts of the insights as PNG files here")
    p.add_argument("--now", metavar="TS", help="scan the demo as if at this moment (default: the moment fixed in the demo data)")
    p.add_argument("--seed", type=int, default=7, help="another seed gives another demo company (default 7)")
    p.add_argument("--force", action="store_true", help="with --export: write into a folder that is not empty")


def run_demo(args: argparse.Namespace) -> int:
    from bot import pipeline
    from bot.config import parse_config
    from crm.demo import export_csv, generate_demo

    if args.export:
        folder = _export_target(Path(args.export), force=args.force)
        demo = generate_demo(args.seed)
        paths = _export_demo(demo, folder, lambda d: [*export_csv(demo.data, d), _write_config(d)])
        for p in paths:
            err(f"wrote {p}")
        # The demo's clock is fixed inside the data: scan "as of" that moment to see the demo's insights.
        err(f"try: crm-pulse scan --config {folder / 'config.toml'} --now {demo.now.isoformat()}")
        return EXIT_OK
    charts = _charts_folder(Path(args.charts)) if args.charts else None  # before the work, not after
    demo = generate_demo(args.seed)
    config = parse_config(demo.config_toml, source_name="demo config", base_dir=Path("."))
    now = parse_now(args.now, config.timezone) if args.now else demo.now
    lang = args.lang or config.language
    outcome = pipeline.scan(config, now, data=demo.data)
    print_skipped(outcome.skipped)
    print(render_demo(config, outcome, now, lang))
    if charts is not None:
        written = write_charts(outcome.insights, charts, lang)
        err(f"wrote {len(written)} chart(s) to {args.charts}")
    return EXIT_OK


def _charts_folder(folder: Path) -> Path:
    """--charts DIR: a folder (made if missing); an existing file there is a usage error."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--charts: {folder} is a file, not a folder; give a folder for the PNG files "
                         "(it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--charts: cannot create {folder}: {e.strerror or e}; choose a folder you can write to") from None
    return folder


def _write_config(folder: Path) -> Path:
    from crm.demo import demo_config_toml

    path = folder / "config.toml"
    path.write_text(demo_config_toml(data_dir="."), encoding="utf-8")
    return path


def _export_target(folder: Path, *, force: bool) -> Path:
    """The folder --export may write to: new or empty, or anything with --force.

    A folder holding other files is refused: the demo's config.toml and CSVs would overwrite
    an admin's own, or mix demo tables into a real export."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--export: {folder} is a file, not a folder; give a new folder name")
    if folder.is_dir() and not force:
        present = sorted(p.name for p in folder.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise UsageError(f"--export: {folder} is not empty ({shown}); give a new folder, "
                             "or add --force to write the demo files over what is there")
    return folder


def _export_demo(demo, folder: Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Write into a scratch folder next to the target, then move the files in: a failure
    (disk full, no permission) leaves no half-written export behind."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".crm-pulse-demo-", dir=folder))
    except OSError as e:
        raise UsageError(f"--export: cannot create {folder}: {e.strerror or e}; choose a folder you can write to") from None
    try:
        written = write(scratch)
        final = []
        for p in written:
            target = folder / p.name
            os.replace(p, target)
            final.append(target)
        return final
    except OSError as e:
        raise UsageError(f"--export: cannot write the demo files to {folder}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def render_demo(config, outcome, now: datetime, lang: str) -> str:
    """Per recipient, what they would receive: routed, digested and rendered for the terminal."""
    from bot.routing import route
    from crm.demo import COMPANY
    from messages import terminal
    from messages.digest import build_digest

    by_recipient = route(outcome.insights, config)
    people = {r.id: r for r in config.recipients}
    ordered = sorted(people.values(), key=lambda r: (r.role != "director", r.id))
    out = []
    total = len(outcome.insights)
    local = now.astimezone(ZoneInfo(config.timezone))
    head = (f"Демо: {COMPANY} (промышленное оборудование), {local:%d.%m.%Y %H:%M}. Всего находок: {total}.\n"
            "Ниже — что получит каждый получатель в чате."
            if lang == "ru" else
            f"Demo: {COMPANY} (industrial equipment), {local:%Y-%m-%d %H:%M}. Insights in total: {total}.\n"
            "Below: what each recipient would receive in chat.")
    out.append(head)
    for r in ordered:
        items = by_recipient.get(r.id, [])
        role = {"director": ("директор", "director"), "manager": ("менеджер", "manager")}.get(r.role, (r.role, r.role))
        title = f"━━ {r.display_name} ({role[0 if lang == 'ru' else 1]}) ━━"
        digest = build_digest(items, lang=lang, now=now, tz=r.timezone or config.timezone,
                              max_items=config.delivery.max_items, recipient_name=r.display_name)
        if digest is None:
            body = "(сегодня ничего — сообщение не отправляется)" if lang == "ru" else "(nothing today: no message is sent)"
        else:
            body = terminal.format_digest(digest)
        out.append(f"\n{title}\n{body}")
    return "\n".join(out)


def write_charts(insights: list, folder: Path, lang: str) -> list[Path]:
    from messages.charts import chart_for

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in insights:
        png = chart_for(i, lang)
        if png:
            path = folder / f"{i.detector}-{i.fingerprint}.png"
            path.write_bytes(png)
            written.append(path)
    return written


# --- init -----------------------------------------------------------------------------------

def add_init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="overwrite an existing config.toml")
    p.add_argument("--path", default="config.toml", help="where to write it (default: ./config.toml)")
    from bot.source_templates import SOURCE_TEMPLATES

    p.add_argument("--crm", choices=list(SOURCE_TEMPLATES),
                   help="read this CRM's API instead of exported files: [source] is written for it")


def example_config_path() -> Path:
    """config.example.toml: next to the packages (a clone, editable install) or shipped inside bot/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config.example.toml", here / "config.example.toml"):
        if candidate.is_file():
            return candidate
    raise UsageError("config.example.toml not found next to the crm-pulse package; "
                     "install from a clone of the repository (pip install -e .)")


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.path)
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists; use --force to overwrite it")
    if not args.crm:
        shutil.copyfile(example_config_path(), target)
        print(f"wrote {target}: edit [source] to point at your CRM export, then run `crm-pulse check-config {target}`")
        return EXIT_OK
    from bot.source_templates import with_source

    target.write_text(with_source(example_config_path().read_text(encoding="utf-8"), args.crm), encoding="utf-8")
    print(f"wrote {target} for {args.crm}: fill in [source] and export the environment variable it names, "
          f"then run `crm-pulse sync --config {target} --check`")
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------

LOCAL: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "scan": ("load the CRM data, run every enabled detector, print the insights", add_scan_arguments, run_scan),
    "check-config": ("validate config.toml and the data source it points to", add_check_config_arguments, run_check_config),
    "demo": ("run the whole pipeline on a demo company and print what each person would get", add_demo_arguments, run_demo),
    "init": ("write config.toml from the documented example", add_init_arguments, run_init),
}


def _chosen_command(argv: list[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; an external command's module is imported only when it is the one asked for."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="crm-pulse", description="Proactive plain-language CRM insights in Telegram and Slack.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"crm-pulse {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name, (help_text, add_args, run) in LOCAL.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_args(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors")
        p.set_defaults(func=run)
    chosen = _chosen_command(argv)
    for name, (module_name, help_text) in EXTERNAL.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name != chosen:
            continue
        try:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
        except Exception as e:  # a broken or missing module disables only its own command
            reason = f"`{name}` is unavailable: {module_name} failed to load ({type(e).__name__}: {e})"
            p.description = reason
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=_unavailable(reason))
    return parser


def version() -> str:
    """The installed distribution's version; from pyproject.toml when run from a clone without install."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("crm-pulse")
    except PackageNotFoundError:
        import re

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M) \
            if pyproject.is_file() else None
        return found.group(1) if found else "unknown"


def _unavailable(reason: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        err(reason)
        return EXIT_USAGE
    return run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2): argparse already printed
        return int(e.code or 0)
    debug = bool(getattr(args, "debug", False))
    from bot.logsafe import configure_logging, reset_logging

    # Library warnings reach stderr as before (message only), but through the secret filter;
    # `run` replaces this with its own timestamped handler.
    configure_logging(None, fmt="%(message)s", as_last_resort=True)
    try:
        return _dispatch(args, debug)
    finally:
        reset_logging()


def _dispatch(args: argparse.Namespace, debug: bool) -> int:
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        err(f"crm-pulse: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:  # `crm-pulse demo | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except Exception as e:
        # DataError and ConfigError can only come from modules the command imported, so they are
        # looked up, not imported here: `init` and `--help` stay free of pandas and scipy.
        data_errors, config_errors = sys.modules.get("crm.errors"), sys.modules.get("bot.config")
        if data_errors is not None and isinstance(e, data_errors.DataError):
            err(f"data error: {e}")
            return EXIT_DATA
        if config_errors is not None and isinstance(e, config_errors.ConfigError):
            err(str(e))
            return EXIT_USAGE
        if debug:  # the traceback too goes through the mask: a connection URL may be in it
            import traceback

            err(traceback.format_exc().rstrip())
            return EXIT_INTERNAL
        err(f"crm-pulse: unexpected error: {type(e).__name__}: {e}")
        err("run with --debug for the traceback")
        return EXIT_INTERNAL


if __name__ == "__main__":
    # `python -m bot.cli`: run the imported module's main, so UsageError raised by a command
    # module (which imports bot.cli) is the class _dispatch catches, not __main__'s twin.
    from bot.cli import main as _main

    sys.exit(_main())
