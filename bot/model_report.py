"""`crm-pulse model report`: the win model's time-based backtest on the company's own data.

Loads the data as scan does, takes the honesty rules (minimum history) from
[detectors.deal_risk], and prints predict.report's numbers: AUC, Brier score, reliability and
ECE next to the stage-only baseline, the forecast's error by month next to the weighted
pipeline's, and the forecast for this month and the next. It says plainly when there is too
little history or the model does not beat the baseline (and so is not used).
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", title="actions")
    sub.required = True
    p = sub.add_parser("report", help="backtest the win model on this company's history: AUC, Brier, calibration, "
                                      "forecast error, against the stage-only baseline")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="config.toml (default: ./config.toml); rules from [detectors.deal_risk]")
    src.add_argument("--data", metavar="DIR", help="a folder of canonical CSV/XLSX/Parquet files (default rules)")
    p.add_argument("--now", metavar="TS", help="report as if it were this moment (ISO; default: now, or the newest "
                                               "record when the data is older than [source] stale_after_days)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for scripts")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors")


def as_of_newest_if_stale(data, config, now):
    """`now`, or the data's newest record when the data is stale (bot.pipeline.stale_line).

    An export last touched years ago, reported as of today, would count every deal still open
    in it as forgotten for years: "won within T" would be 0 for all of them, the backtest's cutoff
    would fall after the data ends, and the report would say "not enough history" about a
    company with thousands of closed deals. Its history is judged as of its own end instead,
    and the admin is told so on stderr."""
    from zoneinfo import ZoneInfo

    from bot.cli import err
    from bot.pipeline import stale_line
    from crm.freshness import freshness

    fresh = freshness(data, now)
    if fresh.newest is None or not stale_line(fresh, config.source.stale_after_days, config.timezone, now,
                                              config.work_calendar()):
        return now
    newest = fresh.newest.tz_convert(ZoneInfo(config.timezone))
    err(f"note: the data's newest record is {newest:%Y-%m-%d %H:%M} ({config.timezone}) in {fresh.origin}, "
        f"{fresh.age_days():.0f} days ago: the report is made as of that moment, not today; pass --now to choose another")
    return newest.to_pydatetime()


def run(args: argparse.Namespace) -> int:
    from bot.cli import EXIT_OK, config_or_default, load_for, print_warnings, parse_now, say
    from predict.model import HistoryRule
    from predict.report import format_text, model_report

    config = config_or_default(args.config, args.data)
    now = parse_now(args.now, config.timezone)
    data, warnings = load_for(args, config, now)
    print_warnings(warnings)
    if not args.now:
        now = as_of_newest_if_stale(data, config, now)
    spec = config.detector_specs()["deal_risk"]
    rule = HistoryRule(spec.min_closed_deals, spec.min_won, spec.min_lost)
    report = model_report(data, now, rule)
    if args.format == "json":
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        for line in format_text(report).split("\n"):
            say(line)
    return EXIT_OK
