"""Issue 9 on a HubSpot deals export that carries the stage history as wide columns, one per
stage: `Date entered "Qualified To Buy (Sales Pipeline)"` (tests/scenarios/_web_exports.py,
`stage_dates`; its assumptions in stage_date_columns' docstring). With no stage history file the
loader reads them as the history (crm/wide_history.py). Run through the real CLI with a config
written from README only; the same export with those columns taken out is what the loader saw
before (the history derived from the deals), so each test compares the two on one export.
"""
from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from _cli import run_cli
from _export_factory import Effect
from _web_exports import HS_STAGES, WebExport
from test_web_ui_exports import END, NOW, check_config, exported, spec, stages_line

DEALS = "hubspot-crm-exports-all-deals.csv"
AT = END - timedelta(days=56)  # the recent cohort (deals entering 4-8 weeks ago) is all after it


def export(tmp_path: Path, name: str, seed: int, drop: bool = False, touches: bool = False, **kw) -> Path:
    """The HubSpot export with its "Date entered" columns (US dates, one pipeline unless told),
    a planted halving of Qualified To Buy -> Presentation Scheduled when `drop`, and one deal
    created 60 days before the end that entered Presentation Scheduled 15 days before it."""
    effect = Effect("uniform", stage=1, at=AT, factor=0.45) if drop else Effect()
    w = WebExport("hubspot", spec(seed, effect=effect), dates="us", **{"second_pipeline": 0.0, "stage_dates": "datetime",
                                                                      "stalled": (60, 15), **kw})
    return exported(tmp_path, name, w, touches=touches)


def edit_deals(config: Path, change) -> None:
    """Rewrite the deals file: `change(header, rows) -> (header, rows)`."""
    path = config.parent / config.stem / DEALS
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    header, rows = change(list(rows[0]), rows)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def without_stage_dates(config: Path) -> None:
    """The same export as the loader read it before: the per-stage columns not there."""
    edit_deals(config, lambda header, rows: (
        [h for h in header if not h.startswith(("Date entered", "Date exited", "Cumulative time in"))], rows))


def scan(config: Path) -> tuple[list[dict], str]:
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    return json.loads(out), err


def pairs(items: list[dict]) -> list[tuple]:
    return [(i["subject"].get("from_stage"), i["subject"].get("to_stage"), i["subject"].get("cohort"))
            for i in items if i["detector"] == "conversion_drop"]


def planted_touch(items: list[dict]) -> str:
    """When stalled_deal saw the planted deal last touched (its own item, or a look-abandoned one)."""
    for i in items:
        if i["detector"] != "stalled_deal":
            continue
        if i["facts"].get("deal_title") == "Deal stalled":
            return i["facts"]["last_touch_at"]
        for x in i["facts"].get("examples") or []:
            if x["deal_title"] == "Deal stalled":
                return x["last_touch_at"]
    raise AssertionError([i["facts"] for i in items if i["detector"] == "stalled_deal"])


# --- the history is read, and shows what the derived one cannot ---------------------------------

def test_stage_dates_are_the_history_and_place_a_drop_the_derived_history_cannot(tmp_path):
    config = export(tmp_path, "hs", seed=4, drop=True)
    report = check_config(config)
    assert f'{DEALS} ("Date entered" columns)' in next(ln for ln in report.splitlines()
                                                     if ln.strip().startswith("stage_history ")), report
    assert stages_line(report) == list(HS_STAGES), report  # columns come alphabetically: the order is the moves'
    note = [ln for ln in report.splitlines() if "no stage history file: read from the" in ln]
    assert len(note) == 1, report  # said once
    # read as the admin asked: a note to check, not a problem to fix (nor are the closing stages mapped)
    assert note[0].strip().startswith("note: stage_history:"), note
    assert all(ln.strip().startswith("note:") for ln in report.splitlines() if "won/lost" in ln), report
    assert 'read from the 5 "Date entered" column(s)' in note[0] and "seen entering it once, at the last time" in note[0], note
    # the closing stages and the Date exited / Cumulative time in columns are no entries; the other
    # pipeline's columns hold no date here
    assert "not read: 4 closing stage column(s) (Closed Lost, Closed Won)" in note[0], note
    assert '"Date exited" / "Time in" column(s): no entries' in note[0], note
    assert "stage-to-stage conversion: not checked" not in report, report
    assert "no stage history in the source: derived" not in report, report
    read, _ = scan(config)
    assert pairs(read) == [("Qualified To Buy", "Presentation Scheduled", None)], pairs(read)

    without_stage_dates(config)  # before: the history derived from the deals
    report = check_config(config)
    assert "stage-to-stage conversion: not checked" in report, report
    derived, _ = scan(config)
    assert all(p[0] is None for p in pairs(derived)), pairs(derived)  # at most "the win rate of new deals fell"


def test_a_calm_export_with_stage_dates_raises_no_conversion_alarm(tmp_path):
    for seed in (1, 3):
        items, _ = scan(export(tmp_path, f"calm{seed}", seed=seed))
        assert not pairs(items), (seed, pairs(items))


def test_a_stalled_deals_idle_time_counts_from_its_real_entry_into_the_stage(tmp_path):
    """The deal was created 60 days before the data's end and entered Presentation Scheduled 15
    days before it, untouched since. Derived, its stay began at its creation (with the README's
    last-activity recipe stalled_deal runs at all): 42 working days, "looks abandoned"."""
    config = export(tmp_path, "hs", seed=5, touches=True)
    entered = (END - timedelta(days=15)).strftime("%Y-%m-%dT%H:%M")
    created = (END - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M")
    items, _ = scan(config)
    assert planted_touch(items).startswith(entered), planted_touch(items)
    without_stage_dates(config)
    items, _ = scan(config)
    assert planted_touch(items).startswith(created), planted_touch(items)


def test_stage_dates_without_a_time_keep_the_pipeline_order_and_no_entry_precedes_creation(tmp_path):
    """The day alone ("03/14/2026"): the first stage is entered on the day of the timed creation,
    and several stages on one day are ties the pipeline order breaks, not the columns' order."""
    config = export(tmp_path, "hs", seed=6, drop=True, stage_dates="date")
    report = check_config(config)
    assert stages_line(report) == list(HS_STAGES), report
    assert "earlier than the deal's created_at" not in report, report
    items, _ = scan(config)
    assert ("Qualified To Buy", "Presentation Scheduled", None) in pairs(items), pairs(items)


# --- what cannot be read, said -----------------------------------------------------------------

def test_a_label_that_is_no_stage_of_the_configured_pipeline_is_named_not_guessed(tmp_path):
    """`stages` as the admin typed them ("Qualified to Buy"); the deals of the Renewals pipeline,
    whose stages are not listed, are there too. Each column is named once, its entries not read;
    mapping the label, as the warning says, reads them."""
    stages = '["Appointment Scheduled", "Qualified to Buy", "Presentation Scheduled", "Decision Maker Bought-In", ' \
             '"Contract Sent"]'
    config = export(tmp_path, "hs", seed=2, second_pipeline=0.2)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('[source]\n', f'[source]\nstages = {stages}\n', 1), encoding="utf-8")
    report = check_config(config)
    line = next(ln for ln in report.splitlines() if "stage(s) that are not in the pipeline ([source] stages" in ln)
    assert ('Date entered "Qualified To Buy (Sales Pipeline)"' in line and "did you mean 'Qualified to Buy'" in line), line
    for renewal in ("Renewal Due", "Quote Sent", "Negotiation"):
        assert f'Date entered "{renewal} (Renewals)"' in line, line
    assert "Qualified To Buy (Renewals)" in line, line  # a shared name is one stage: said with one of its columns
    assert stages_line(report) == ["Appointment Scheduled", "Qualified to Buy", "Presentation Scheduled",
                                   "Decision Maker Bought-In", "Contract Sent"]
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[source.columns.deals]", '[source.values.stage_history.stage]\n"Qualified To Buy" = "Qualified to Buy"\n'
        '[source.columns.deals]', 1), encoding="utf-8")
    report = check_config(config)
    line = next(ln for ln in report.splitlines() if "stage(s) that are not in the pipeline ([source] stages" in ln)
    assert "Qualified To Buy (Sales Pipeline)" not in line and "Renewal Due (Renewals)" in line, line


def test_one_pipeline_kept_reads_no_other_pipelines_columns(tmp_path):
    config = export(tmp_path, "hs", seed=2, second_pipeline=0.2)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('[source]\n', '[source]\npipelines = ["Sales Pipeline"]\n', 1), encoding="utf-8")
    report = check_config(config)
    assert stages_line(report) == list(HS_STAGES), report
    assert "not in the pipeline" not in report, report


def test_deals_without_an_entry_date_for_their_stage_are_said_and_read_as_before(tmp_path):
    """The admin left "Contract Sent" out of the export's columns, and 5 deals have no date at all."""
    config = export(tmp_path, "hs", seed=1)
    blank: list[str] = []

    def change(header, rows):
        for r in rows:
            if r["Deal Stage"] == "Appointment Scheduled" and len(blank) < 5:
                blank.append(r["Record ID"])
                for h in header:
                    if h.startswith("Date entered"):
                        r[h] = ""
        return [h for h in header if "Contract Sent (Sales" not in h], rows

    edit_deals(config, change)
    at_contract = sum(1 for r in csv.DictReader(open(config.parent / "hs" / DEALS, encoding="utf-8-sig"))
                      if r["Deal Stage"] == "Contract Sent")
    report = check_config(config)
    assert f"{at_contract} deal(s) have no \"Date entered\" date for their current stage" in report, report
    assert "5 deal(s) have no \"Date entered\" date at all: their history is derived" in report, report
    assert stages_line(report) == list(HS_STAGES), report


def test_an_unreadable_entry_date_names_its_column_and_row(tmp_path):
    config = export(tmp_path, "hs", seed=1)
    column = 'Date entered "Presentation Scheduled (Sales Pipeline)"'

    def change(header, rows):
        row = next(r for r in rows if r[column])
        row[column] = "next Tuesday"
        return header, rows

    edit_deals(config, change)
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert column in out + err and "row " in out + err and "next Tuesday" in out + err, out + err


# --- an explicit stage history wins ----------------------------------------------------------------

def test_a_stage_history_file_wins_over_the_columns_and_says_so(tmp_path):
    config = export(tmp_path, "hs", seed=1)
    folder = config.parent / "hs"
    (folder / "stage_history.csv").write_text("Record ID,Stage,Entered\n", encoding="utf-8")
    with open(folder / DEALS, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "stage_history.csv", "a", encoding="utf-8", newline="") as f:
        for r in rows:
            if r['Date entered "Appointment Scheduled (Sales Pipeline)"']:
                f.write(f'{r["Record ID"]},Appointment Scheduled,{r["Create Date"]}\n')
    text = config.read_text(encoding="utf-8").replace(
        '[source.files]\n', '[source.files]\nstage_history = "stage_history.csv"\n', 1)
    text = text.replace("[source.date_formats]\n", '[source.columns.stage_history]\ndeal_id = "Record ID"\n'
                        'stage = "Stage"\nentered_at = "Entered"\n[source.date_formats]\nstage_history = "%m/%d/%Y %I:%M %p"\n')
    config.write_text(text, encoding="utf-8")
    report = check_config(config)
    assert "stage_history.csv" in next(ln for ln in report.splitlines() if ln.strip().startswith("stage_history ")), report
    assert f'"Date entered" column(s) of {DEALS} are not read: the stage history comes from stage_history.csv' in report
    assert "no stage history file: read from" not in report, report


def test_an_export_split_in_two_files_gives_the_same_history_said_once(tmp_path):
    config = export(tmp_path, "hs", seed=1)
    whole = check_config(config)
    rows_line = next(ln for ln in whole.splitlines() if ln.strip().startswith("stage_history "))
    folder = config.parent / "hs"
    with open(folder / DEALS, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    (folder / DEALS).unlink()
    for i, part in enumerate((rows[:1000], rows[1000:])):
        with open(folder / f"hubspot-part{i}.csv", "w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(part)
    config.write_text(config.read_text(encoding="utf-8").replace(f'deals = "{DEALS}"', 'deals = "hubspot-part*.csv"'),
                      encoding="utf-8")
    split = check_config(config)
    line = next(ln for ln in split.splitlines() if ln.strip().startswith("stage_history "))
    assert line.split("rows")[0] == rows_line.split("rows")[0], (line, rows_line)  # the same number of entries
    notes = [ln for ln in split.splitlines() if "no stage history file: read from the" in ln]
    assert len(notes) == 1 and "hubspot-part0.csv, hubspot-part1.csv" in notes[0], notes


def test_a_cell_of_another_pipelines_stage_is_not_read(tmp_path):
    """A Renewals deal with a date in a Sales Pipeline column (it moved between pipelines): that
    stage is not one of its pipeline's, so the cell is not read, and the note counts it."""
    config = export(tmp_path, "hs", seed=2, second_pipeline=0.2)
    before = next(ln for ln in check_config(config).splitlines() if ln.strip().startswith("stage_history "))

    def change(header, rows):
        row = next(r for r in rows if r["Pipeline"] == "Renewals" and r["Deal Stage"] == "Renewal Due")
        row['Date entered "Contract Sent (Sales Pipeline)"'] = row["Create Date"]
        return header, rows

    edit_deals(config, change)
    report = check_config(config)
    assert next(ln for ln in report.splitlines() if ln.strip().startswith("stage_history ")) == before, report
    assert "1 cell(s) of another pipeline's stage than the deal's Pipeline" in report, report
