"""The company calendar outside Kazakhstan and Russia: a US (America/New_York) and a German
(Europe/Berlin) company get their official holidays from the timezone alone (the IANA zone
tables), so the morning after Christmas is not a flood of stalled deals and waiting leads.

The companies are small (60 deals a month): too few records a day for days off to be learned
from the data (detectors.working_hours.LEARN_MIN_MEDIAN), so the official calendar is all that
stands between them and the flood. Measured on seeds 0-2 (country from the timezone vs
country = "none", stalled + lead_sla items): US 0 vs 6, 3, 1; DE 0 vs 8, 2, 8.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from _cli import run_cli
from _export_factory import ExportSpec, company_tables, write_rows

# zone -> (the company's break: the official holidays and the weekend after them, the next morning)
BREAKS = {
    "America/New_York": ((date(2025, 12, 25), date(2025, 12, 25)), datetime(2025, 12, 26, 8, 30)),  # Thu: federal
    "Europe/Berlin": ((date(2025, 12, 25), date(2025, 12, 28)), datetime(2025, 12, 29, 8, 30)),  # Thu-Fri + weekend
}


def _company(tmp_path: Path, zone: str, seed: int) -> tuple[Path, datetime]:
    days_off, local_morning = BREAKS[zone]
    tz = ZoneInfo(zone)
    now = (local_morning - datetime(2026, 1, 15, tzinfo=tz).utcoffset()).replace(tzinfo=timezone.utc)
    spec = ExportSpec(seed=seed, end=now, days=200, touch_every=(1.0, 3.0), stage_days=(1.0, 1.5, 2.0, 2.0, 1.5),
                      holiday=days_off, deals_per_month=60, leads_per_month=30)
    folder = tmp_path / f"{zone.replace('/', '_')}{seed}"
    folder.mkdir()
    for table, rows in company_tables(spec, tz).items():
        if rows:
            write_rows(folder, table, rows)
    return folder, now


def _config(folder: Path, zone: str, calendar: str = "") -> Path:
    path = folder.parent / f"{folder.name}{'-off' if calendar else ''}.toml"
    path.write_text(f'timezone = "{zone}"\n[source]\nkind = "files"\npath = "./{folder.name}"\n{calendar}\n',
                    encoding="utf-8")
    return path


def _items(config: Path, now: datetime) -> Counter:
    rc, out, err = run_cli("scan", "--config", str(config), "--now", now.isoformat(), "--format", "json")
    assert rc == 0, err
    return Counter(i["detector"] for i in json.loads(out) if i["detector"] in ("stalled_deal", "lead_sla"))


@pytest.mark.parametrize("zone, country", [("America/New_York", "US"), ("Europe/Berlin", "DE")])
def test_the_morning_after_christmas_is_no_flood_with_the_country_from_the_timezone(tmp_path, zone, country):
    with_country, without = Counter(), Counter()
    for seed in (0, 2):
        folder, now = _company(tmp_path, zone, seed)
        with_country.update(_items(_config(folder, zone), now))
        without.update(_items(_config(folder, zone, '[calendar]\ncountry = "none"'), now))
    assert sum(with_country.values()) == 0, with_country
    assert sum(without.values()) >= 5, without  # the same scan with no official holidays: the test can fail


def test_check_config_names_the_country_and_that_it_came_from_the_timezone(tmp_path):
    folder, now = _company(tmp_path, "America/New_York", 1)
    rc, out, err = run_cli("check-config", str(_config(folder, "America/New_York")), "--now", now.isoformat())
    assert rc == 0, out + err
    line = next(ln for ln in (out + err).splitlines() if "calendar:" in ln)
    assert ("official holidays of US (from the timezone America/New_York; nationwide ones only: add your region's "
            "own to [calendar] days_off)") in line
