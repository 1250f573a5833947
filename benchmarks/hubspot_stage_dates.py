"""Before/after on one HubSpot web-UI export: its `Date entered "<stage> (<pipeline>)"` columns
read as the stage history (crm/wide_history.py) vs the history derived from the deals, which is
what the loader did before (measured as the same export with those columns taken out: the old
loader never read them).

Per seed, a calm company and one whose Qualified To Buy -> Presentation Scheduled conversion was
planted to fall to 45% of its rate 8 weeks before the end (tests/scenarios/_web_exports.py,
220 deals a month over 400 days, one pipeline, US dates), each with one deal created 60 days
before the end that entered Presentation Scheduled 15 days before it, untouched since. Prints the
stage pairs conversion_drop checks, the drops it reports, the stalled_deal items and when the
planted deal was last touched (calendar days, kind). `touch`: the README's last-activity recipe
(the deals file read again as activities) in both configs.

    PYTHONPATH=. python benchmarks/hubspot_stage_dates.py 7 8 9 10 11 12 [touch]

Measured 2026-11-30 on seeds 7-12 (held out: the tests use 1-6):
  pairs checked: derived 1 (new deals -> won); read 5 (the 4 stage pairs and Contract Sent -> won)
  planted drop: read named Qualified To Buy -> Presentation Scheduled on 5 of 6 (not seed 10);
                derived said "the win rate of new deals fell" on 4 of 6 (8, 10, 11, 12), no pair
  calm: no conversion drop on 6 of 6, either way
  stalled_deal without touches: derived skipped (0 items); read 4-14 items a company (deals past
                their stage's 80% time with no stage change: the export holds no calls)
  with the touch recipe (seeds 7-10): 1 item either way, the planted deal: derived "looks
                abandoned", idle since its creation (42 working days); read idle 15 calendar
                days (10 working) since it entered Presentation Scheduled
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "scenarios"))

from _cli import run_cli  # noqa: E402
from _export_factory import Effect  # noqa: E402
from _web_exports import WebExport  # noqa: E402
from test_web_ui_exports import END, NOW, exported, spec  # noqa: E402

from bot import pipeline  # noqa: E402
from bot.config import load_config  # noqa: E402
from detectors import conversion_drop  # noqa: E402


def strip_stage_dates(folder: Path) -> None:
    f = folder / "hubspot-crm-exports-all-deals.csv"
    with open(f, encoding="utf-8-sig", newline="") as src:
        rows = list(csv.DictReader(src))
    keep = [c for c in rows[0] if not c.startswith(("Date entered", "Date exited", "Cumulative time in"))]
    with open(f, "w", newline="", encoding="utf-8-sig") as out:
        w = csv.DictWriter(out, fieldnames=keep, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def measure(cfg: Path) -> tuple[list[str], list[str], int, list]:
    data = pipeline.load(load_config(cfg), NOW).data
    state = conversion_drop.prepare(data, conversion_drop.ConversionDropSpec())
    pairs = [f"{c.from_stage or 'new deals'} -> {c.to_stage}" for c in state.pairs] if state else []
    rc, out, err = run_cli("scan", "--config", str(cfg), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    items = json.loads(out)
    drops = [f"{i['subject'].get('from_stage') or 'new deals'} -> {i['subject'].get('to_stage')}"
             for i in items if i["detector"] == "conversion_drop"]
    stalled = [i for i in items if i["detector"] == "stalled_deal"]
    planted = []
    for i in stalled:
        if i["facts"].get("deal_title") == "Deal stalled":
            planted.append((i["facts"]["calendar_days_idle"], i["facts"]["last_touch_kind"]))
        planted += [("looks abandoned", x["days_idle"], "working days") for x in i["facts"].get("examples") or []
                    if x["deal_title"] == "Deal stalled"]
    return pairs, drops, len(stalled), planted


def main(argv: list[str]) -> None:
    touches = "touch" in argv
    at = END - timedelta(days=56)
    tmp = Path(tempfile.mkdtemp(prefix="hs-stage-dates-"))
    try:
        for seed in [int(a) for a in argv if a.isdigit()]:
            for name, effect in (("drop", Effect("uniform", stage=1, at=at, factor=0.45)), ("calm", Effect())):
                w = WebExport("hubspot", spec(seed, effect=effect), dates="us", second_pipeline=0.0,
                              stage_dates="datetime", stalled=(60, 15))
                cfg = exported(tmp, f"{name}{seed}", w, touches=touches)
                read = measure(cfg)
                strip_stage_dates(tmp / f"{name}{seed}")
                derived = measure(cfg)
                for label, (pairs, drops, stalled, planted) in (("derived", derived), ("read", read)):
                    print(f"seed {seed} {name} {label:>7}: {len(pairs)} pair(s) {pairs}; drops {drops}; "
                          f"stalled items {stalled}; planted deal {planted}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
