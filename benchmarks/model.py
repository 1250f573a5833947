"""The win model at scale: training on 100,000 closed deals (target < 60 s) and scoring
1,000,000 open deals.

Data: predict.planted companies (engagement drives winning, region is noise), built in memory.
  train  = predict.model.train with the boosting model (features of every snapshot, calibrated
           fit; the backtest that chooses the model is timed separately with --backtest)
  score  = predict.features.prepare + features_at for every open deal + the calibrated model
Run: .venv/bin/python benchmarks/model.py [--scale 0.1] [--backtest]
`--scale` shrinks both sizes (a shared machine); the figures printed say which sizes ran.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predict.features import features_at, open_at, prepare, seconds_of  # noqa: E402
from predict.model import backtest, train  # noqa: E402
from predict.planted import planted_company  # noqa: E402

NOW = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)
TRAIN_CLOSED = 100_000
SCORE_OPEN = 1_000_000


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes (default 1.0)")
    ap.add_argument("--backtest", action="store_true", help="also time the backtest that chooses the model")
    ap.add_argument("--skip-score", action="store_true", help="only the training half")
    args = ap.parse_args()

    n_train = int(TRAIN_CLOSED * args.scale / 0.95)  # about 95% of a 540-day company is closed by now
    t = time.perf_counter()
    data = planted_company(n_train, NOW, seed=1)
    prep = prepare(data)
    closed = int(((prep.won | prep.lost) & (prep.closed >= 0)).sum())
    print(f"company: {len(data.deals):,} deals ({closed:,} closed), {len(data.activities):,} activities, "
          f"{len(data.stage_history):,} stage entries; built and prepared in {time.perf_counter() - t:.1f} s")
    if args.backtest:
        t = time.perf_counter()
        bt = backtest(prep, NOW)
        took = time.perf_counter() - t
        if isinstance(bt, str):
            print(f"backtest: {bt} ({took:.1f} s)")
        else:
            print(f"backtest: {bt.train_n:,} train / {bt.test_n:,} test snapshots, Brier {bt.brier:.4f} "
                  f"({bt.chosen}) vs stage-only {bt.baseline_brier:.4f}; {took:.1f} s")
    t = time.perf_counter()
    model = train(prep, NOW, kind="boosting")
    took = time.perf_counter() - t
    print(f"train: {model.reason}; {took:.1f} s (target < 60 s at {TRAIN_CLOSED:,} closed deals)")

    if args.skip_score:
        print(f"peak memory {_peak_mib():,.0f} MiB")
        return 0
    n_score = int(SCORE_OPEN * args.scale)
    # A company whose deals were all created in the last 3 days: nearly every one still open.
    t = time.perf_counter()
    fresh = planted_company(int(n_score * 1.05), NOW, seed=2, span_days=3)
    fprep = prepare(fresh)
    built = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    at = seconds_of(NOW)
    rows = open_at(fprep, at)
    frame = features_at(fprep, at, rows)
    feats = time.perf_counter() - t
    t = time.perf_counter()
    p = model.proba(frame)
    scored = time.perf_counter() - t
    cpu = time.process_time() - cpu
    print(f"score: {len(frame):,} open deals: features {feats:.1f} s + model {scored:.1f} s = {feats + scored:.1f} s "
          f"({len(frame) / max(feats + scored, 1e-9):,.0f} deals/s, {cpu:.1f} CPU s); mean chance {p.mean():.1%} "
          f"(data built in {built:.1f} s, not counted)")
    print(f"peak memory {_peak_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
