"""detectors.working_hours: the country a timezone names (from the IANA tables wherever they
lie), and the company's midnight that periods of whole days begin at."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import detectors.working_hours as wh


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """IANA tables of our own making in place of the system's (the lru cache cleared around)."""
    monkeypatch.setattr(wh, "_tz_dirs", lambda: [tmp_path])
    wh.zone_countries.cache_clear()
    yield tmp_path
    wh.zone_countries.cache_clear()


def test_without_zone_tab_the_first_country_of_zone1970_tab_and_the_links_count(tables):
    (tables / "zone1970.tab").write_text(
        "# comment\nDE,DK,NO,SE,SJ\t+5230+01322\tEurope/Berlin\tmost of Germany\nUS\t+404251-0740023\tAmerica/New_York\n",
        encoding="utf-8")
    (tables / "tzdata.zi").write_text("Z Europe/Berlin 0:53:28 - LMT 1893 Ap\nL America/New_York US/Eastern\n",
                                      encoding="utf-8")
    assert wh.country_for_timezone("Europe/Berlin") == "DE"
    assert wh.country_for_timezone("US/Eastern") == "US"
    assert wh.country_for_timezone("America/Chicago") is None  # not in these tables


def test_zone_tab_wins_over_zone1970_tab(tables):
    (tables / "zone.tab").write_text("NO\t+5955+01045\tEurope/Oslo\n", encoding="utf-8")
    (tables / "zone1970.tab").write_text("DE,DK,NO,SE,SJ\t+5230+01322\tEurope/Berlin\n", encoding="utf-8")
    assert wh.zone_countries() == {"Europe/Oslo": "NO"}


def test_with_no_tables_anywhere_the_explicit_table_still_holds(tables):
    assert wh.country_for_timezone("Asia/Almaty") == "KZ" and wh.country_for_timezone("Europe/Moscow") == "RU"
    assert wh.country_for_timezone("America/New_York") is None


@pytest.mark.parametrize("zone, day, local_start", [
    ("Asia/Almaty", "2026-09-04", "2026-09-04T00:00:00+05:00"),
    ("America/New_York", "2026-09-04", "2026-09-04T00:00:00-04:00"),
    ("America/New_York", "2026-11-01", "2026-11-01T00:00:00-04:00"),  # DST ends at 02:00: midnight is still summer time
    ("America/Havana", "2026-03-08", "2026-03-08T01:00:00-04:00"),  # DST starts at midnight: the day begins at 01:00
])
def test_a_company_day_begins_at_its_local_midnight(zone, day, local_start):
    cal = wh.WorkCalendar(timezone=zone)
    got = cal.day_start_ns(np.array([day], dtype="datetime64[D]"))[0]
    assert got == pd.Timestamp(local_start).value
    # every instant of that local day maps back to the same start
    inside = np.array([got, got + 3_600 * 10**9 * 23 - 1], dtype=np.int64)
    assert cal.local_day_start_ns(inside).tolist() == [got, got]
