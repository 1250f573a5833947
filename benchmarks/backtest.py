"""backtest over 180 days against one full scan, on 100,000 deals (target: ratio <= 20).

Data: benchmarks/scan.py's synthetic company at scale 0.1 (100,000 deals, 500,000 stage-history
rows, 1,000,000 email opens, 300 managers, plus clients, emails, activities, leads), generated
once as Parquet into benchmarks/.cache/scan-0.1/ and shared with that benchmark.

  scan     = crm.load.load_folder + detectors.run_detectors at one moment, every detector
  backtest = crm.load.load_folder once + bot.backtest.backtest over 180 daily runs with the
             default delivery dedup

Each is measured in a fresh child process. Prints both times, their ratio, and the time each
detector takes inside the backtest (per run), so the detector to optimise is obvious.

Measured 2026-11-28 in one run with --compare-with (2-core machine shared with three other
engineers; CPU seconds are steadier than wall): one scan 1.42 CPU s (2.2 s wall); backtest
37.1 CPU s (49 s wall), ratio 26 CPU / 22 wall, against 73.5 CPU s (92 s wall), ratio 52 / 42,
for the code of commit a9bab14 - 2.0x less CPU, target not met yet. Per run, before -> after:
manager_load 114 -> 39 ms, conversion_drop 83 -> 13 ms, loss_reasons 38 -> 4 ms, dedup
~32 -> ~10 ms (same insights and alerts; the 2.0x also holds perf-scan's stalled_deal work);
what remains is mostly silent_client (102 ms) and stalled_deal (69 ms), which build ~2,000
Insight objects a day.
Measured 2026-11-30 with --compare-with 189c2d9 (digests modelled on the default mon-fri KZ
calendar: the scan replayed on all 180 days, the dedup and digest cut on 125): scan 1.51 s;
backtest 14.1 s, ratio 9.3 wall / 9.4 CPU, against 13.3 s, 8.8 / 9.0 before (66,058 alerts
against 70,300). Replaying only the digest days measured 8.0 / 8.0 (against 9.3 / 9.4 in
that run) but loses the daily "found" counts the false-alarm scenarios read.
Run: .venv/bin/python benchmarks/backtest.py [--scale 0.1] [--days 180] [--compare-with DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scan import NOW, cached_dataset  # noqa: E402  (the shared synthetic company)


def phase_scan(folder: Path, days: int) -> dict:
    from crm.load import load_folder
    from detectors import run_detectors

    start, cpu = time.perf_counter(), time.process_time()
    data = load_folder(folder, now=NOW).data
    result = run_detectors(data, {}, NOW)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "insights": len(result.insights)}


def phase_backtest(folder: Path, days: int) -> dict:
    from bot.backtest import DigestSchedule, backtest
    from bot.config import parse_config
    from crm.load import load_folder

    start, cpu = time.perf_counter(), time.process_time()
    data = load_folder(folder, now=NOW).data
    loaded = time.perf_counter()
    # as `crm-pulse backtest` runs: digests on the default [schedule] and company calendar
    schedule = DigestSchedule.of(parse_config("", source_name="(defaults)"))
    report = backtest(data, {}, NOW - timedelta(days=days - 1), NOW, timedelta(days=1), timedelta(days=7),
                      schedule=schedule)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "load_seconds": loaded - start, "runs": len(report.runs),
            "alerts": len(report.alerts), "per_detector": report.seconds,
            "dedup_seconds": getattr(report, "dedup_seconds", None),
            "prepared": [n for n in report.detectors if _prepared(n)]}


def _prepared(name: str) -> bool:
    from detectors.registry import REGISTRY

    module = sys.modules.get(REGISTRY[name].detect.__module__)
    return callable(getattr(module, "prepare", None)) and callable(getattr(module, "detect_at", None))


def child(phase: str, folder: Path, days: int, script: Path = Path(__file__)) -> dict:
    out = subprocess.run([sys.executable, str(script), "--phase", phase, "--folder", str(folder), "--days", str(days)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(bt: dict, scan: dict, days: int) -> None:
    ratio = bt["seconds"] / scan["seconds"]
    print(f"backtest ({days} days, {bt['runs']} runs, one load): {bt['seconds']:.2f} s (load {bt['load_seconds']:.2f} s), "
          f"{bt['cpu_seconds']:.2f} CPU s, {bt['alerts']} alerts")
    print(f"ratio backtest/scan: {ratio:.1f} wall, {bt['cpu_seconds'] / scan['cpu_seconds']:.1f} CPU  (target <= 20)")
    for name, secs in sorted(bt["per_detector"].items(), key=lambda kv: -kv[1]):
        how = "prepared once + detect_at per run" if name in bt["prepared"] else "full detect per run"
        print(f"  {name:<16}{secs:>8.2f} s total {1000 * secs / bt['runs']:>8.1f} ms/run  ({how})")
    if bt.get("dedup_seconds") is not None:
        secs = bt["dedup_seconds"]
        print(f"  {'dedup':<16}{secs:>8.2f} s total {1000 * secs / bt['runs']:>8.1f} ms/run  (routing + notify_log rules)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of scan.py's full size (0.1 = 100,000 deals)")
    parser.add_argument("--days", type=int, default=180, help="days replayed")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="also run the backtest with the code in DIR (e.g. `git archive <commit> | tar -x -C DIR`), "
                             "for a before/after ratio measured in the same run")
    parser.add_argument("--phase", choices=["scan", "backtest"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        fn = phase_scan if args.phase == "scan" else phase_backtest
        print(json.dumps(fn(args.folder, args.days)))
        return 0

    folder, sizes = cached_dataset(args.scale)
    scan = child("scan", folder, args.days)
    bt = child("backtest", folder, args.days)
    print(f"data: {', '.join(f'{k} {v:,}' for k, v in sizes.items())}")
    print(f"one scan (load + all detectors):        {scan['seconds']:.2f} s, {scan['cpu_seconds']:.2f} CPU s, "
          f"{scan['insights']} insights")
    report(bt, scan, args.days)
    if args.compare_with:
        old = child("backtest", folder, args.days, args.compare_with / "benchmarks" / "backtest.py")
        old.setdefault("cpu_seconds", float("nan"))  # an older benchmark did not measure it
        print(f"\nthe same backtest with the code in {args.compare_with}:")
        report(old, scan, args.days)
        print(f"\nbefore/after: {old['seconds'] / bt['seconds']:.2f}x faster (wall), "
              f"{old['cpu_seconds'] / bt['cpu_seconds']:.2f}x (CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
