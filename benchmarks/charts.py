"""How long each chart takes and how big it is (target: < 0.5 s and < 200 KB each).

Prints figures; the first call is shown apart because it pays matplotlib's one-off font
loading. Run: .venv/bin/python benchmarks/charts.py [--out DIR]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messages import samples  # noqa: E402
from messages.charts import chart_for  # noqa: E402

REPEATS = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the PNGs to this folder")
    args = parser.parse_args()
    insights = [samples.conversion_drop(), samples.manager_load(), samples.loss_reasons()]
    start = time.perf_counter()
    chart_for(insights[0], "ru")
    print(f"first chart (includes font loading): {time.perf_counter() - start:.3f} s")
    print("wall = elapsed time (inflated when the machine is shared); cpu = this process's CPU time")
    print(f"{'chart':<18}{'lang':<6}{'wall s':>8}{'max s':>8}{'cpu s':>8}{'KB':>8}{'cpu/0.5s':>10}")
    for insight in insights:
        for lang in ("ru", "en"):
            times, cpu, png = [], [], b""
            for _ in range(REPEATS):
                t, c = time.perf_counter(), time.process_time()
                png = chart_for(insight, lang) or b""
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            med, cpu_med = statistics.median(times), statistics.median(cpu)
            print(f"{insight.detector:<18}{lang:<6}{med:>8.3f}{max(times):>8.3f}{cpu_med:>8.3f}"
                  f"{len(png) / 1024:>8.1f}{cpu_med / 0.5:>10.2f}")
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{insight.detector}-{lang}.png").write_bytes(png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
