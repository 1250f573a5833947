"""HubSpot's `Date entered "<stage> (<pipeline>)"` columns read as the stage history, attacked
with an export written from README alone (not with tests/scenarios/_web_exports.py).

Builder assumptions (`_write`): a HubSpot deals export as CSV with README's mapping (Record ID,
Deal Name, Deal Stage as stage and status, Pipeline, Create Date, Close Date, Deal owner), dates
`YYYY-MM-DD HH:MM` in the portal's zone (America/New_York), one `Date entered` column per stage
of "Sales Pipeline", a cell holding when the deal last entered that stage. `[source] stages` is
set, as README asks when the labels should be checked.
"""
from __future__ import annotations

import csv
from pathlib import Path

from bot.config import load_config
from crm.load import load_crm

BASE = ["Record ID", "Deal Name", "Deal Stage", "Pipeline", "Amount", "Close Date", "Create Date", "Deal owner"]
MAP = '''[source.columns.deals]
deal_id = "Record ID"
title = "Deal Name"
stage = "Deal Stage"
status = "Deal Stage"
amount = "Amount"
closed_at = "Close Date"
created_at = "Create Date"
manager_id = "Deal owner"
pipeline = "Pipeline"
[source.values.deals.status]
"Closed Won" = "won"
"Closed Lost" = "lost"
'''


def _write(root: Path, stages: list[str], labels: list[str], deals: list[list[str]], more: str) -> Path:
    (root / "data").mkdir(parents=True)
    with open(root / "data" / "deals.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(BASE + [f'Date entered "{label} (Sales Pipeline)"' for label in labels])
        w.writerows(deals)
    listed = ", ".join(f'"{s}"' for s in stages)
    (root / "config.toml").write_text(
        f'language = "en"\ntimezone = "America/New_York"\ncurrency = "USD"\n[source]\nkind = "files"\n'
        f'path = "./data"\nstages = [{listed}]\n[source.files]\ndeals = "deals.csv"\n' + MAP + more
        + '[[recipients]]\nid = "director"\nname = "Director"\nrole = "director"\nadmin = true\n'
          'telegram_id = 100000001\n', encoding="utf-8")
    return root / "config.toml"


def test_a_label_mapped_as_the_unknown_stage_note_names_it_is_read(tmp_path):
    """The note on a "Date entered" stage that is not in `stages` names the whole label and says
    to map "<label>" in [source.values.stage_history.stage]; mapped so, the mapping had no effect
    (only the label without its pipeline was looked up) and the same note came back."""
    deals = [
        ["1", "Alpha", "Contract Sent", "Sales Pipeline", "100", "", "2026-10-01 09:00", "Ann",
         "2026-10-01 09:00", "2026-10-03 10:00", "2026-10-05 10:00"],
        ["2", "Beta", "Contract Sent", "Sales Pipeline", "100", "", "2026-10-01 09:00", "Ann",
         "2026-10-01 09:00", "2026-10-04 10:00", "2026-10-06 10:00"],
    ]
    cfg = _write(tmp_path, ["Appointment Scheduled", "Review", "Contract Sent"],
                 ["Appointment Scheduled", "Legal Review", "Contract Sent"], deals,
                 '[source.values.stage_history.stage]\n"Legal Review (Sales Pipeline)" = "Review"\n')
    c = load_config(cfg)
    res = load_crm(c.source, timezone=c.timezone, base_dir=c.base_dir)
    assert not [w.message for w in res.warnings if w.code == "stage_column_unknown"]
    h = res.data.stage_history
    review = h[h["stage"] == "Review"].set_index("deal_id")["entered_at"].dt.tz_convert("America/New_York")
    assert review.dt.strftime("%Y-%m-%d %H:%M").to_dict() == {"1": "2026-10-03 10:00", "2": "2026-10-04 10:00"}
