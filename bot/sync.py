"""`crm-pulse sync`: pull what changed in the CRM (a CRM API kind: amoCRM, Bitrix24, HubSpot, Pipedrive) into the local store.

`--check` only proves the credentials: it lists the account's pipelines (which are included)
and users, and writes nothing but a refreshed OAuth token. Secrets come from the environment
variables the config names; their values, and every token amoCRM hands out during the run,
are masked in every log line and message (bot.logsafe).
Exit codes: 0 ok, 2 config error, 3 the CRM or the store failed (what and how to fix it).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

EXIT_OK, EXIT_USAGE, EXIT_DATA = 0, 2, 3

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None, help="config file (default: ./config.toml)")
    parser.add_argument("--check", action="store_true",
                        help="prove the credentials: list pipelines and users, sync nothing")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for scripts")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from bot.cli import DEFAULT_CONFIG, require_config_file
    from bot.config import load_config
    from bot.logsafe import REDACTOR, redact, register_config_secrets
    from crm.connectors import CONNECTORS, connector

    out = out or sys.stdout
    path = Path(args.config or DEFAULT_CONFIG)
    require_config_file(path)  # the other commands' check: a folder given is named as such
    config = load_config(path)
    register_config_secrets(config)
    kind = config.source.kind
    if kind not in CONNECTORS:
        print(f"crm-pulse sync: [source] kind is {kind!r}: there is nothing to sync; set kind to one of "
              f"{', '.join(CONNECTORS)} to read a CRM's API", file=sys.stderr)
        return EXIT_USAGE
    module = connector(kind)
    try:
        if args.check:
            found = module.check(config.source, config.base_dir, on_secret=REDACTOR.add_values)
            _print_check(found, args.format, out)
            return EXIT_OK
        report = module.sync(config.source, config.base_dir, on_secret=REDACTOR.add_values)
    except Exception as exc:  # the CLI's data-error path prints it; mask what the CRM echoed
        from crm.errors import DataError

        if isinstance(exc, DataError):
            raise
        raise DataError(f"the {kind} sync failed: {redact(f'{type(exc).__name__}: {exc}')}",
                        fix="run it again: it resumes from the last complete sync; "
                        "if it keeps failing, run with --debug") from None
    if args.format == "json":
        json.dump({"kind": report.kind, "rows": report.rows, "requests": report.requests,
                   "deleted": report.deleted, "seconds": round(report.seconds, 1),
                   "missing": getattr(report, "missing", {})}, out, ensure_ascii=False)
        out.write("\n")
    else:
        rows = ", ".join(f"{t} {n}" for t, n in sorted(report.rows.items())) or "nothing changed"
        print(f"synced {kind} in {report.seconds:.1f} s, {report.requests} request(s): {rows}"
              + (f"; {report.deleted} deleted record(s) removed" if report.deleted else ""), file=out)
        for what in getattr(report, "missing", {}).values():
            print(f"not synced: {what}", file=out)
    log.info("sync %s: %d requests, %s", kind, report.requests, report.rows)
    return EXIT_OK


def _print_check(found: dict, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(found, out, ensure_ascii=False)
        out.write("\n")
        return
    print(f"credentials ok: account {found.get('account')!r}", file=out)
    print("pipelines:", file=out)
    for p in found["pipelines"]:
        mark = "included" if p["included"] else "not included"
        print(f"  {p['id']} {p['name'] or '(name not served)'} ({mark}): " + ", ".join(str(s) for s in p["statuses"]),
              file=out)
    print("users:", file=out)
    for u in found["users"]:
        print(f"  {u['id']} {u['name']}" + ("" if u["active"] else " (inactive)"), file=out)
