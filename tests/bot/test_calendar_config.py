"""[calendar]: one company calendar for lead_sla and stalled_deal, its country from the timezone
when not given, and calendar keys under a detector refused with a pointer to [calendar]."""
from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path

import pytest

from bot.config import CalendarConfig, ConfigError, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def calendars(text: str):
    specs = parse_config(text).detector_specs()
    return specs["lead_sla"].calendar, specs["stalled_deal"].calendar


def test_one_calendar_for_both_detectors_with_the_country_from_the_timezone():
    lead, stalled = calendars("")
    assert lead is stalled and lead.country == "KZ" and lead.timezone == "Asia/Almaty"
    assert date(2026, 1, 2) in lead.days_off
    lead, _ = calendars('timezone = "Europe/Moscow"')
    assert lead.country == "RU" and date(2026, 1, 8) in lead.days_off
    lead, _ = calendars('timezone = "Europe/Berlin"')
    assert lead.country == "DE" and date(2026, 12, 26) in lead.days_off
    lead, _ = calendars('timezone = "Etc/UTC"')
    assert lead.country is None and lead.days_off == ()


@pytest.mark.parametrize("zone, country", [
    ("America/New_York", "US"), ("America/Los_Angeles", "US"), ("US/Eastern", "US"), ("Europe/Berlin", "DE"),
    ("Asia/Dubai", "AE"), ("Europe/London", "GB"), ("Asia/Calcutta", "IN"), ("Europe/Kiev", "UA"),
    ("Asia/Almaty", "KZ"), ("Asia/Novosibirsk", "RU"), ("Etc/UTC", None), ("UTC", None),
    ("Europe/Simferopol", None),  # the tables themselves disagree there: the explicit table says no country
])
def test_the_country_comes_from_any_timezone_through_the_iana_tables(zone, country):
    from detectors.working_hours import country_for_timezone

    assert country_for_timezone(zone) == country


def test_every_zone_of_a_country_the_holidays_package_knows_gets_its_holidays():
    """Not a list: all the system's zones (bar the generic ones) find a country."""
    from zoneinfo import available_timezones

    from detectors.working_hours import timezone_country

    generic = ("Etc/", "GMT", "UTC", "UCT", "Universal", "Zulu", "Greenwich", "Factory", "localtime", "posix",
               "right", "CET", "EET", "MET", "WET", "EST", "MST", "HST", "CST6CDT", "PST8PDT")
    named = [z for z in available_timezones() if not z.startswith(generic) and z != "Europe/Simferopol"]
    assert len(named) > 300
    assert [z for z in named if timezone_country(z) is None] == []


def test_a_country_the_holidays_package_does_not_know_means_no_holidays_said_once(monkeypatch):
    import detectors.working_hours as wh

    monkeypatch.setattr(wh, "holidays_known", lambda code: code != "DE")
    assert wh.country_for_timezone("Europe/Berlin") is None
    line = CalendarConfig().describe("Europe/Berlin")
    assert "no official holidays: the holidays package does not know DE" in line
    assert line.count("DE") == 1


def test_the_calendar_section_sets_country_days_and_hours():
    lead, stalled = calendars('''
timezone = "Asia/Almaty"
[calendar]
country = "RU"
days_off = [2026-12-30]
working_days = [2026-12-26]
workdays = [1, 2, 3, 4, 5, 6]
work_start = "10:00"
work_end = "19:00"
[detectors.stalled_deal]
default_limit_days = 4
''')
    assert stalled.country == "RU" and stalled.timezone == "Asia/Almaty"
    assert stalled.workdays == (1, 2, 3, 4, 5, 6) and (stalled.work_start, stalled.work_end) == (time(10), time(19))
    assert date(2026, 12, 30) in stalled.days_off and stalled.working_days == (date(2026, 12, 26),)
    assert lead == stalled
    off, _ = calendars('[calendar]\ncountry = "none"\n')
    assert off.country is None and off.days_off == ()


def test_check_config_line_says_where_the_holidays_come_from():
    assert "official holidays of KZ (from the timezone Asia/Almaty)" in CalendarConfig().describe("Asia/Almaty")
    assert ("official holidays of US (from the timezone America/New_York; nationwide ones only: add your region's "
            "own to [calendar] days_off)" in CalendarConfig().describe("America/New_York"))
    assert ("official holidays of DE (nationwide ones only: add your region's own to [calendar] days_off)"
            in CalendarConfig(country="DE").describe("UTC"))
    assert "no official holidays: timezone Etc/UTC names no country" in CalendarConfig().describe("Etc/UTC")
    assert "country switched off" in CalendarConfig(country="none").describe("Asia/Almaty")


@pytest.mark.parametrize("text, expected", [
    ("[detectors.lead_sla]\nworkdays = [1, 2, 3]\n",
     "detectors.lead_sla.workdays: the working calendar is one for the whole company (lead_sla and stalled_deal "
     "share it): write this as `workdays` under [calendar], not under [detectors.lead_sla] (line 2)"),
    ('[detectors.lead_sla]\nholidays = ["2026-12-16"]\n', "write this as `days_off` under [calendar]"),
    ('[detectors.lead_sla]\ntimezone = "UTC"\n', "write this as the config's top-level `timezone`"),
    ('[detectors.stalled_deal]\nwork_start = "10:00"\n', "detectors.stalled_deal.work_start: the working calendar"),
    ('[detectors.stalled_deal.calendar]\ncountry = "KZ"\n', "write this as [calendar] as a table"),
    ('[calendar]\ncountry = "KZZ"\n', 'calendar.country: unknown country \'KZZ\' (did you mean "KZ"?)'),
    ('[calendar]\nworkdays = [0, 1]\n', "calendar.workdays: must be ISO weekday numbers"),
    ('[calendar]\nwork_start = "19:00"\n', "work_start 19:00 must be before work_end 18:00"),
    ('[calendar]\ndays_off = ["31.12.2026"]\n', "calendar.days_off[0]"),
])
def test_calendar_mistakes_name_the_key_and_the_fix(text, expected):
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert any(expected in p for p in e.value.problems), e.value.problems


def test_the_example_shows_the_calendar_defaults():
    shown = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["calendar"]
    assert CalendarConfig(**shown) == CalendarConfig()
    assert set(CalendarConfig.model_fields) - set(shown) == {"country"}  # shown commented out: it follows the timezone


def test_check_config_prints_the_calendar_in_use(tmp_path, capsys):
    from bot.cli import main

    crm = tmp_path / "crm"
    crm.mkdir()
    (crm / "managers.csv").write_text("manager_id,name\nm1,Айгерим\n", encoding="utf-8")
    (crm / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\nd1,m1,Lead,open,2026-03-01T09:00:00Z\n",
                                   encoding="utf-8")
    (crm / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,Lead,2026-03-01T09:00:00Z\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('timezone = "Europe/Berlin"\n[source]\npath = "crm"\n', encoding="utf-8")
    assert main(["check-config", str(config), "--now", "2026-03-04T09:30:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert ("calendar: MTWTF-- 09:00-18:00 Europe/Berlin, official holidays of DE (from the timezone Europe/Berlin; "
            "nationwide ones only: add your region's own to [calendar] days_off)") in out
