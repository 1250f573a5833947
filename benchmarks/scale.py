"""Does the daily volume hold for big companies? (issue 9: at most 5 items a day for anyone)

The tests use companies of 6-12 managers and 200-600 deals a month. Here: 48 managers in 4
teams, 3,000 deals and 3,000 leads a month, routed at random, as a `calm` company (touched every
0.5-2.5 days), a `tilt` one (calm, but m3 gets a fifth of the share of deals and leads: a real
imbalance, and how soon it is raised) and a `messy` one (touched every 1-10 days; 20% of deals and leads owned by a
catch-all CRM user "unassigned"; 4 people who left 70 days before the end with their open deals;
2 marked inactive; 3 agents who never had a deal; 1-4 Sep nobody worked; 120 deals one manager
left behind), each backtested as `crm-pulse backtest --data DIR` does (default config) from 20 Jul
to 30 Nov: the data ends on 20 Nov, so the last days replay an export 10 days stale.

Prints per company: items per digest day of the busiest recipients and the detector behind
each, the director's and the catch-all's, manager_load items (alerts and insights before the
dedup: the companies are randomly routed, so every one is a false alarm, except on `messy`,
where m5 really holds 120 deals left behind), stalled_deal items per manager (one per deal) and
hygiene items ("look abandoned", "left behind"), the stale days, and the run time (noted, not
asserted: the machine is shared).

    python benchmarks/scale.py --seeds 1-3 --kinds calm,messy   # ~15 s a company
    python benchmarks/scale.py --seeds 1 --keep /tmp/scale       # exports kept for other code

Run it with another tree first on PYTHONPATH (e.g. `git archive main | tar -x -C /tmp/base`)
and `--keep` the same folder to compare before and after on the same exports.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "tests" / "scenarios"))  # appended: a baseline tree first on PYTHONPATH wins

from _export_factory import ExportSpec, write_export  # noqa: E402


UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
FROM, TO = date(2026, 7, 20), date(2026, 11, 30)


def seeds(text: str) -> list[int]:
    """ "1-3,7" -> [1, 2, 3, 7], as seg_drop.seeds (not imported: it puts this tree's crm and
    detectors first on the path, and a baseline tree on PYTHONPATH must be the one measured)."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def spec(kind: str, seed: int) -> ExportSpec:
    big = dict(seed=seed, end=END, days=300, n_managers=48, n_teams=4, deals_per_month=3000, leads_per_month=3000,
               with_emails=False)
    if kind == "calm":
        return ExportSpec(**big)
    if kind == "tilt":  # calm, but m3 gets a fifth of the share of new deals and leads: a real imbalance
        return ExportSpec(**big, underloaded="m3")
    return ExportSpec(**big, touch_every=(1.0, 10.0), unassigned=0.2, departed=4, departed_ago=70, inactive_flagged=2,
                      idle_agents=3, holiday=(date(2026, 9, 1), date(2026, 9, 4)), abandoned=("m5", 120),
                      abandoned_days=(20, 280))


def replay(folder: Path):
    """The backtest `crm-pulse backtest --data folder` runs (default config), and its seconds."""
    from zoneinfo import ZoneInfo

    import bot.backtest as bt
    from bot.cli import config_or_default
    from bot.notify_log import Policy
    from crm.load import load_folder

    config = config_or_default(None, str(folder))
    tz = ZoneInfo(config.timezone)
    t = time.perf_counter()
    data = load_folder(folder, timezone=config.timezone, now=datetime.now(tz)).data
    kw = {}
    if hasattr(bt, "stale_rule"):
        kw["stale"] = bt.stale_rule(data, config.source.stale_after_days, config.timezone, config.work_calendar())
    at = datetime.strptime("09:00", "%H:%M").time()
    policy = Policy.from_config(config.delivery)
    report = bt.backtest(data, config.detector_specs(), datetime.combine(FROM, at, tz), datetime.combine(TO, at, tz),
                         timedelta(days=1), policy.repeat_interval, policy=policy, max_items=config.delivery.max_items,
                         daily_budget=config.delivery.daily_budget, schedule=bt.DigestSchedule.of(config), **kw)
    return report, time.perf_counter() - t


def describe(kind: str, seed: int, report, seconds: float) -> list[str]:
    loads = report.load()
    full = [a for a in report.alerts if a.reason != "repeat_interval"]
    behind: dict[str, Counter] = defaultdict(Counter)
    for a in full:
        behind[a.recipient][a.detector] += 1
    busiest = sorted(loads, key=lambda r: -loads[r].items_per_day)[:3]
    lines = [f"{kind} seed {seed}: {len(report.alerts)} alerts, {seconds:.1f} s"]
    for r in dict.fromkeys(busiest + [x for x in ("director", "unassigned") if x in loads]):
        top = behind[r].most_common(1)
        lines.append(f"  {r:<11} {loads[r].items_per_day:5.2f} items/day (+{loads[r].reminders_per_day:.2f} reminders), "
                     f"mostly {top[0][0] if top else '-'} ({top[0][1] if top else 0} of {loads[r].items})")
    over = [w.recipient for w in report.over_budget()]
    lines.append(f"  over the budget of {report.daily_budget:g}: {over or 'nobody'}")
    ml = [a for a in report.alerts if a.detector == "manager_load"]
    first = min((a.at for a in ml), default=None)
    lines.append(f"  manager_load: {len(ml)} alerts, {report.insight_days.get('manager_load', 0)} insights before dedup, "
                 f"teams {sorted({report.subjects.get(a.fingerprint, '?') for a in ml})}, "
                 f"first {first.date() if first else '-'}")
    per_deal = Counter(a.recipient for a in full if a.detector == "stalled_deal"
                       and report.subjects.get(a.fingerprint, "").startswith("deal "))
    hygiene = Counter(report.subjects.get(a.fingerprint, "?") for a in full if a.detector == "stalled_deal"
                      and not report.subjects.get(a.fingerprint, "").startswith("deal "))
    managers = [r for r in per_deal if r not in ("director", "unassigned")]
    if managers:
        vals = sorted(per_deal[r] for r in managers)
        lines.append(f"  stalled items per manager over {report.digest_days} digest days: median {vals[len(vals) // 2]}, "
                     f"max {vals[-1]}; unassigned {per_deal.get('unassigned', 0)}, director {per_deal.get('director', 0)}")
    lines.append(f"  hygiene items (abandoned / left behind): {sum(hygiene.values())} over {len(hygiene)} subjects")
    stale = getattr(report, "stale_runs", None)
    lines.append(f"  stale days replayed without idle-time detectors: {len({t.date() for t in stale}) if stale else 0}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--kinds", default="calm,messy")
    ap.add_argument("--keep", help="folder for the exports (reused when there)")
    args = ap.parse_args(argv)
    import detectors

    print(f"code: {Path(detectors.__file__).parents[1]}", flush=True)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scale"))
    for kind in args.kinds.split(","):
        for seed in seeds(args.seeds):
            folder = root / f"{kind}{seed}"
            if not (folder / "deals.csv").is_file():
                write_export(folder, spec(kind, seed))
            report, seconds = replay(folder)
            print("\n".join(describe(kind, seed, report, seconds)), flush=True)


if __name__ == "__main__":
    main()
