"""Issue 9 on the deals list a Zoho CRM admin downloads (Deals → Export Deals, CSV), built by
tests/scenarios/_zoho_export.py on the _export_factory company: one file, Zoho's labels, no
stage history, no users file, and a config written from README and config.example.toml only.
Run through the real CLI and asserted on what the admin or the director would read.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from _cli import run_cli
from _export_factory import DIRECTOR, Effect, files, head, touches_recipe
from _zoho_export import DEALS, FILE, LOST_TO_COMPETITION, OPEN_STAGES, ZohoExport, left_behind, write, zoho_spec

UTC = timezone.utc
END = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)  # 15:00 in New York, a Friday
NOW = END + timedelta(hours=1)


def spec(seed: int, **kw):
    return zoho_spec(**{"seed": seed, "end": END, "days": 400, "n_managers": 8, "deals_per_month": 220,
                        "with_emails": False, **kw})


def exported(tmp_path: Path, name: str, z: ZohoExport, *, lang: str = "en", activities: bool = False,
             extra: str = "") -> Path:
    """The export folder and the config an admin writes from README beside it; `activities`: the
    deals file read again as activities; `extra`: more closing stages (and tables) after README's."""
    write(tmp_path / name, z)
    config = tmp_path / f"{name}.{lang}.toml"
    tables = files(deals=FILE, activities=FILE) if activities else files(deals=FILE)
    config.write_text(head(lang, "America/New_York", "USD", name) + tables + DEALS + extra + "\n" + DIRECTOR,
                      encoding="utf-8")
    return config


def _deals(config: Path) -> pd.DataFrame:
    from bot.config import load_config
    from crm.load import load_crm

    cfg = load_config(config)
    return load_crm(cfg.source, timezone=cfg.timezone, base_dir=config.parent).data.deals


# --- two lost stages ----------------------------------------------------------------------------

def test_closed_lost_to_competition_is_lost_not_the_pipelines_last_open_stage(tmp_path):
    """With README's two closing lines ("Closed Won", "Closed Lost"), Zoho's second lost stage
    "Closed Lost to Competition" was read as an open stage: it became the last stage of the
    pipeline, its deals were open for ever (a tenth of all deals) and check-config said nothing
    about it. It is now lost, with one warning saying how to confirm it."""
    config = exported(tmp_path, "zoho", ZohoExport(spec(1)))
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    stages = next(ln for ln in out.splitlines() if ln.strip().startswith("stages "))
    assert "Closed" not in stages, stages
    warning = next(ln for ln in out.splitlines() if "named like a closing stage" in ln)
    assert f"'{LOST_TO_COMPETITION}' (" in warning and "read as lost" in warning, warning
    assert f'[source.values.deals.status] "{LOST_TO_COMPETITION}" = "lost"' in warning, warning
    deals = _deals(config)
    at_competition = deals["loss_reason"] == "Lost to Competitor"
    assert at_competition.sum() > 200 and (deals.loc[at_competition, "status"] == "lost").all()
    assert not (deals["stage"] == LOST_TO_COMPETITION).any()
    # confirmed in config: no warning; mapped to "open" by an admin who means it: open, no warning
    confirmed = exported(tmp_path, "zoho", ZohoExport(spec(1)), extra=f'"{LOST_TO_COMPETITION}" = "lost"')
    rc, out, err = run_cli("check-config", str(confirmed), "--now", NOW.isoformat())
    assert rc == 0 and "named like a closing stage" not in out + err, out + err
    kept_open = exported(tmp_path, "zoho", ZohoExport(spec(1)), extra=f'"{LOST_TO_COMPETITION}" = "open"')
    deals = _deals(kept_open)
    assert (deals.loc[deals["loss_reason"] == "Lost to Competitor", "status"] == "open").all()
    # an open stage that merely begins with the word "Lost" is no closing stage
    path = tmp_path / "zoho" / FILE
    path.write_text(path.read_text(encoding="utf-8").replace('"Needs Analysis"', '"Lost contact - call back"'),
                    encoding="utf-8")
    rc, out, err = run_cli("check-config", str(confirmed), "--now", NOW.isoformat())
    assert rc == 0 and "named like a closing stage" not in out + err, out + err
    deals = _deals(confirmed)
    assert (deals.loc[deals["stage"] == "Lost contact - call back", "status"] == "open").sum() > 5


def test_a_planted_win_rate_drop_survives_the_round_trip_and_a_calm_export_is_quiet(tmp_path):
    """End to end on the Zoho export: a calm company gets no conversion alarm; a uniform drop
    at the second stage is one director item that names no segment, in English and Russian.
    Open deals' planned Closing Dates are not closings (one warning), lost-to-competition deals
    are lost."""
    calm = exported(tmp_path, "calm", ZohoExport(spec(3)))
    rc, out, err = run_cli("scan", "--config", str(calm), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert not [i for i in json.loads(out) if i["detector"] in ("conversion_drop", "manager_load")], out
    assert re.search(r"\d+ open deal\(s\) have a closed_at: for an open deal that is a planned close date", err), err
    drop = ZohoExport(spec(4, effect=Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45)))
    for lang in ("en", "ru"):
        config = exported(tmp_path, "drop", drop, lang=lang)
        rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
        assert rc == 0, err
        drops = [i for i in json.loads(out) if i["detector"] == "conversion_drop"]
        assert len(drops) == 1 and not drops[0]["facts"].get("drivers"), drops
        assert ("Win rate" if lang == "en" else "выигрыва") in drops[0]["text"], drops[0]["text"]


# --- Zoho's own date style ----------------------------------------------------------------------

def test_month_name_dates_read_with_one_format_for_the_file(tmp_path):
    """Zoho writes dates as the user's display format, "Oct 16, 2025 04:55 PM" (and Closing Date
    "Oct 22, 2025"). The error suggested `"%d-%m-%Y %H:%M"`, and even the right format given in
    [source.date_formats] was refused: a cell starting with a letter was never tried. With
    `deals = "%b %d, %Y %I:%M %p"` the export now reads as its ISO twin, the date-only Closing
    Date included (read as that day: no "closed before created" warnings)."""
    us = exported(tmp_path, "us", ZohoExport(spec(1), date_style="us"))
    rc, out, err = run_cli("check-config", str(us), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert '[source.date_formats] deals.created_at = "%b %d, %Y %I:%M %p"' in out + err, out + err
    us.write_text(us.read_text(encoding="utf-8") + '[source.date_formats]\ndeals = "%b %d, %Y %I:%M %p"\n',
                  encoding="utf-8")
    rc, out, err = run_cli("check-config", str(us), "--now", NOW.isoformat())
    assert rc == 0, out + err
    assert "closed before they were created" not in out + err, out + err
    iso = exported(tmp_path, "iso", ZohoExport(spec(1)))
    cols = ["deal_id", "status", "created_at", "closed_at"]
    a, b = _deals(us)[cols], _deals(iso)[cols]
    # the display format has no seconds (a same-day Closing Date reads as no earlier than the creation)
    b = b.assign(created_at=b["created_at"].dt.floor("min"), closed_at=b["closed_at"].dt.floor("min"))
    a = a.assign(closed_at=a["closed_at"].dt.floor("min"))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert a["closed_at"].notna().sum() > 1500


def test_words_in_a_date_column_stay_errors_with_a_month_name_format(tmp_path):
    """Letters are now tried with the configured format; "now" (which pandas reads as the wall
    clock) must still be a bad cell, not today's date."""
    config = exported(tmp_path, "us", ZohoExport(spec(2, days=120), date_style="us"))
    path = tmp_path / "us" / FILE
    text = path.read_text(encoding="utf-8").splitlines()
    cells = text[5].split('","')
    cells[6] = "now"
    text[5] = '","'.join(cells)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8") + '[source.date_formats]\ndeals = "%b %d, %Y %I:%M %p"\n',
                      encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert "row 6, column 'Created Time': not a date/time" in out + err and "'now'" in out + err, out + err


# --- when deals were last touched -----------------------------------------------------------------

def test_stalled_line_offers_last_activity_time_and_its_recipe_runs(tmp_path):
    """The "not checked" line for stalled_deal named no column (Zoho's "Last Activity Time" and
    "Modified Time" were not known names); "Modified Time" is set by any mass update, so after
    one on Monday every deal looked touched. Following the recipe then stopped the load: the
    deals file read as activities took Zoho's "Type" (New Business) as the activity type. The
    line now offers "Last Activity Time", and its recipe finds the 20 deals one manager left."""
    z = ZohoExport(spec(7, abandoned=("m3", 20), abandoned_days=(40, 60)), mass_update=date(2026, 11, 16))
    config = exported(tmp_path, "zoho", z, extra=f'"{LOST_TO_COMPETITION}" = "lost"')
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped stalled_deal"))
    recipe = re.search(r'\[source\.files\] (activities = ".+?"); \[source\.columns\.activities\] (.+?); '
                       r'\[source\.fill\.activities\] (type = ".+?");', line)
    assert recipe and 'done_at = "Last Activity Time"' in recipe[2], line
    text = config.read_text(encoding="utf-8").replace("[source.files]\n", f"[source.files]\n{recipe[1]}\n", 1)
    text += "[source.columns.activities]\n" + recipe[2].replace(", ", "\n") + f"\n[source.fill.activities]\n{recipe[3]}\n"
    config.write_text(text, encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    stalled = [i for i in json.loads(out) if i["detector"] == "stalled_deal"]
    left = {r for r in pd.read_csv(tmp_path / "zoho" / FILE, dtype=str)["Record Id"] if left_behind(r)}
    abandoned = [i for i in stalled if i["subject"].get("kind") == "abandoned"]
    assert len(left) == 20 and len(abandoned) == 1, [i["text"][:200] for i in stalled]
    assert set(abandoned[0]["evidence"]["deal_ids"]) == left, abandoned[0]["evidence"]


def test_a_mass_update_read_as_touches_is_said_not_taken_for_work(tmp_path):
    """An admin who reads "Modified Time" as the touches (the only such column in a Kommo
    export) after Monday's mass update: the 20 deals one manager left behind looked touched on
    Monday, stalled_deal found nothing, and nothing said why. check-config and the scan now say
    that 20 open deals were last touched in one minute, a mass update; with "Last Activity Time"
    nothing is said."""
    z = ZohoExport(spec(7, abandoned=("m3", 20), abandoned_days=(40, 60)), mass_update=date(2026, 11, 16))
    for column in ("Modified Time", "Last Activity Time"):
        config = exported(tmp_path, "zoho", z, activities=True,
                          extra=f'"{LOST_TO_COMPETITION}" = "lost"\n' + touches_recipe("Record Id", "Deal Owner", column))
        rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
        assert rc == 0, out + err
        said = [ln for ln in out.splitlines() if "last touched in the same minute" in ln]
        if column == "Last Activity Time":
            assert not said, said
            continue
        assert len(said) == 1 and "20 of " in said[0] and "2026-11-16 20:00 UTC" in said[0], said  # 15:00 in New York
        assert "a mass update or a robot" in said[0] and "last-activity column" in said[0], said
        rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
        assert rc == 0 and "last touched in the same minute" in err, err
        assert not [i for i in json.loads(out) if i["subject"].get("kind") == "abandoned"], out


def test_a_planned_closing_date_left_on_closed_deals_is_named_as_the_likely_cause(tmp_path):
    """Zoho does not move Closing Date when a deal closes: closed deals keep the planned day, some
    of them next week. The warning said only "check the export's timezone or clock"; it now names
    the planned date as the likely cause. A planted drop is still found through such dates, and a
    calm export stays quiet."""
    calm = exported(tmp_path, "calm", ZohoExport(spec(11), planned_close_kept=0.4),
                    extra=f'"{LOST_TO_COMPETITION}" = "lost"')
    rc, out, err = run_cli("scan", "--config", str(calm), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if "closed_at value(s) are later than now" in ln)
    assert "often the planned close date, not updated when the deal closed" in line, line
    assert not [i for i in json.loads(out) if i["detector"] == "conversion_drop"], out
    drop = ZohoExport(spec(12, effect=Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45)),
                      planned_close_kept=0.4)
    # The generated company works every weekday, US federal holidays included: its calendar says
    # so (with the US days off the clock stops on Columbus and Veterans Day, and this seed's
    # drop, p = 0.018 on the plain clock, moves to another cohort; over seeds 12-17 the drop is
    # found 4 of 6 times either way).
    config = exported(tmp_path, "drop", drop, extra=f'"{LOST_TO_COMPETITION}" = "lost"\n[calendar]\ncountry = "none"')
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert len([i for i in json.loads(out) if i["detector"] == "conversion_drop"]) == 1, out


def test_without_a_status_the_fix_lists_both_lost_stages(tmp_path):
    """An admin who mapped only `stage = "Stage"`: the fix offered "Closed Won" and "Closed Lost"
    but not "Closed Lost to Competition", so the config it suggested left those deals open."""
    config = exported(tmp_path, "zoho", ZohoExport(spec(2, days=120)))
    text = config.read_text(encoding="utf-8").replace('status = "Stage"\n', "")
    config.write_text(text.split("[source.values.deals.status]")[0] + "[[recipients]]" + text.split("[[recipients]]")[1],
                      encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    fix = (out + err).split("Fix: ", 1)[1]
    for line in ('"Closed Won" = "won"', '"Closed Lost" = "lost"', f'"{LOST_TO_COMPETITION}" = "lost"'):
        assert line in fix, fix


def test_the_guessed_stage_order_follows_the_exports_probability_column(tmp_path):
    """Without `stages`, the order was guessed from the age of the open deals at each stage: on
    this export (a manager's 20 deals left at Needs Analysis) it put Needs Analysis last and
    Proposal after Negotiation; over 24 Zoho exports of ours it was right on 4. Zoho sets each
    deal's "Probability (%)" from its stage (10 ... 90): the guess now follows it, says so, and
    still asks for `stages`."""
    z = ZohoExport(spec(7, abandoned=("m3", 20), abandoned_days=(40, 60)))
    config = exported(tmp_path, "zoho", z, extra=f'"{LOST_TO_COMPETITION}" = "lost"')
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    stages = next(ln for ln in out.splitlines() if ln.strip().startswith("stages "))
    assert stages.split("stages", 1)[1].strip().split(" -> ") == list(OPEN_STAGES), stages
    line = next(ln for ln in out.splitlines() if "pipeline order guessed" in ln)
    assert "from the deals' 'Probability (%)'" in line and "Needs Analysis (20)" in line, line
    assert "set `stages = [...]`" in line, line
    # without the column, the age of the open deals decides (and is wrong here)
    path = tmp_path / "zoho" / FILE
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["Probability (%)"])
    frame.to_csv(path, index=False)
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    line = next(ln for ln in out.splitlines() if "pipeline order guessed" in ln)
    assert "age of the open deals" in line and "Probability" not in line, line
