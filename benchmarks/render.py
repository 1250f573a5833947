"""How long words take: one insight, and a 60-insight digest in Telegram and Slack form.

Figures are per call, medians of several runs, plus the digest's cost per insight so a
larger fan-out can be estimated. Run: .venv/bin/python benchmarks/render.py
"""
from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messages import samples, slack, telegram  # noqa: E402
from messages.digest import build_digest  # noqa: E402
from messages.render import insight_text  # noqa: E402

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)


def median_ms(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    six = list(samples.all_samples().values())
    many = [v for _ in range(10) for v in samples.all_samples().values()]
    single = median_ms(lambda: [insight_text(i, "ru", now=NOW) for i in six]) / len(six)
    digest = median_ms(lambda: build_digest(many, lang="ru", now=NOW, tz="Asia/Almaty", max_items=60))
    d = build_digest(many, lang="ru", now=NOW, tz="Asia/Almaty", max_items=60)
    tg = median_ms(lambda: telegram.format_digest(d))
    sl = median_ms(lambda: slack.format_digest(d))
    print(f"one insight, plain text:        {single:8.2f} ms  (mean over the six detectors)")
    print(f"60-insight digest (build):      {digest:8.2f} ms  ({digest / 60:.2f} ms per insight)")
    print(f"  -> Telegram messages:         {tg:8.2f} ms  ({len(telegram.format_digest(d))} messages)")
    print(f"  -> Slack messages:            {sl:8.2f} ms  ({len(slack.format_digest(d))} messages)")
    print(f"digest per insight / single:    {digest / 60 / single:8.2f}x  (grouping, ranking, buttons)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
