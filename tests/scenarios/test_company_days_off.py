"""Company days off nobody declared, learned from the data (issue 9, section 6).

A company in Almaty that also rests on 31 Dec and 5 Jan (working days in KZ) made a hundred
deals look stalled on the first day back until the admin listed those days in [calendar]
days_off. The calendar now learns them: a past working day on which the company's people
recorded almost nothing. These tests check the rule on data of our own making (the export
factory and plain Poisson days), that a calm company learns nothing, and that a backtest
replay learns only from before its `now`, exactly as a scan at that moment would.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from _export_factory import ExportSpec, write_export
from bot.backtest import _calendars, replayers
from crm.load import load_folder
from detectors.registry import REGISTRY, run_detectors, with_company_calendar
from detectors.stats import ts_ns
from detectors.working_hours import company_calendar, company_days_off, learned_line, quiet_workdays

UTC = timezone.utc
ALMATY = timedelta(hours=5)
KZ_END = datetime(2026, 1, 6, 4, 30, tzinfo=UTC)  # Tuesday 6 Jan 2026, 09:30 in Almaty
REST = (date(2025, 12, 31), date(2026, 1, 5))  # 1-2 Jan official, 3-4 Jan a weekend: 31 Dec and 5 Jan not


def local(y: int, m: int, d: int, h: int = 12) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC) - ALMATY


@pytest.fixture(scope="module")
def kz(tmp_path_factory):
    folder = write_export(tmp_path_factory.mktemp("days") / "kz", ExportSpec(seed=3, end=KZ_END, days=120, holiday=REST))
    return load_folder(folder, timezone="Asia/Almaty").data


def poisson_days(mean: float, first: date, last: date, empty: tuple[date, ...] = (), seed: int = 0) -> np.ndarray:
    """UTC ns of `mean` things a working day (Poisson) in Almaty working hours, none on `empty`."""
    rng = np.random.default_rng(seed)
    out = []
    for d in pd.date_range(first, last, freq="D").date:
        if d.isoweekday() > 5 or d in empty:
            continue
        start = ts_ns(local(d.year, d.month, d.day, 9))
        out.append(start + rng.integers(0, 9 * 3600, rng.poisson(mean)) * 1_000_000_000)
    return np.concatenate(out).astype(np.int64)


@pytest.mark.parametrize("deals_per_month", [250, 100])
@pytest.mark.parametrize("seed", [11, 12])
def test_a_calm_company_learns_no_day_off_in_four_months(tmp_path, seed, deals_per_month):
    """No rest, four months, 250 or 100 deals a month (about 110 / 45 things a working day, so
    the rule is in force): not one working day is taken for a day off."""
    end = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    folder = write_export(tmp_path / "calm", ExportSpec(seed=seed, end=end, days=120, deals_per_month=deals_per_month,
                                                          leads_per_month=deals_per_month / 2))
    data = load_folder(folder, timezone="Asia/Almaty").data
    cal = company_days_off(data, company_calendar("Asia/Almaty"), end)
    assert cal.learned == () and learned_line(cal) is None


def test_the_days_a_company_rested_are_learned_and_nothing_else(kz):
    cal = company_days_off(kz, company_calendar("Asia/Almaty"), KZ_END)
    assert cal.learned == (date(2025, 12, 31), date(2026, 1, 5))
    # what the detectors count on: 30 Dec to 6 Jan is one working day, not three
    n = cal.working_day_number(np.array(["2025-12-30", "2026-01-06"], dtype="datetime64[D]"))
    assert n[1] - n[0] == 1
    # a day off the admin declared is not learned again; switched off, nothing is learned
    declared = company_calendar("Asia/Almaty", days_off=(date(2025, 12, 31),))
    assert company_days_off(kz, declared, KZ_END).learned == (date(2026, 1, 5),)
    off = company_calendar("Asia/Almaty", learn_days_off=False)
    assert company_days_off(kz, off, KZ_END) is off


def test_an_export_that_stopped_is_not_taken_for_a_rest(kz):
    """Scanned two weeks after the export ends: stale data (the time-based detectors stay
    silent and the admin is told), and the empty days since are the export's silence, not days
    off; the rest before the export's end is still known."""
    now = local(2026, 1, 20, 10)
    stale = run_detectors(kz, {}, now, stale="the data is 14.2 days old")
    assert stale.calendar.learned == (date(2025, 12, 31), date(2026, 1, 5))
    assert "lead_sla" in stale.skipped and "stalled_deal" in stale.skipped
    # the test can fail: without the stale verdict those empty days look like a rest
    _, fresh = with_company_calendar(kz, {}, now)
    assert date(2026, 1, 19) in fresh.learned


def test_a_small_company_is_never_guessed_at():
    """Six things a working day: an empty day is too likely by chance to mean anything, so none
    is taken for a day off, not even a real one. Forty a day: the one empty working day is."""
    cal = company_calendar("Asia/Almaty")
    now = ts_ns(local(2026, 3, 2, 8))
    small = poisson_days(6, date(2025, 11, 1), date(2026, 3, 1), empty=(date(2026, 2, 11),))
    assert len(quiet_workdays(small, cal, now)) == 0
    busy = poisson_days(40, date(2025, 11, 1), date(2026, 3, 1), empty=(date(2026, 2, 11),))
    assert quiet_workdays(busy, cal, now).tolist() == [date(2026, 2, 11)]


def test_each_day_is_judged_from_its_past_and_today_never():
    """quiet_workdays at any moment is the later answer cut at that moment's day: a day's
    verdict never depends on what came after it, and the day of `now` is never in it, even
    when nothing was recorded on it by then."""
    cal = company_calendar("Asia/Almaty")
    rest = (date(2026, 2, 11), date(2026, 2, 12), date(2026, 2, 20))
    t = poisson_days(40, date(2025, 12, 1), date(2026, 3, 6), empty=rest, seed=4)
    end = ts_ns(local(2026, 3, 6, 20))
    full = quiet_workdays(t, cal, end)
    assert full.tolist() == list(rest)
    seen = set()
    for now in range(ts_ns(local(2026, 2, 9, 0)), end, 7 * 3600 * 1_000_000_000):
        today = cal.local_days_ns(np.array([now]))[0]
        got = quiet_workdays(t, cal, now)
        assert got.tolist() == full[full < today].tolist(), pd.Timestamp(now, tz="UTC")
        assert not (got >= today).any()
        seen.add(len(got))
    assert seen == {0, 1, 2, 3}


def test_a_replay_learns_only_before_its_now_as_a_scan_then_would(kz):
    """The backtest counts the quiet days once and cuts them at each replayed moment: the
    calendar of every replay equals the one a scan at that moment gets, and holds no day from
    that moment's day on (on 31 Dec the company's rest that day is not known yet)."""
    cal = company_calendar("Asia/Almaty")
    at = _calendars(kz, KZ_END)
    seen = set()
    for now in pd.date_range(local(2025, 12, 29, 0), KZ_END, freq="5h").to_pydatetime():
        replay = at(cal, now)
        _, scan = with_company_calendar(kz, {}, now)
        assert replay == scan, now
        assert all(d < (now + ALMATY).date() for d in replay.learned), now
        seen.add(replay.learned)
    assert seen == {(), (date(2025, 12, 31),), (date(2025, 12, 31), date(2026, 1, 5))}


def test_a_replayed_lead_sla_equals_a_scan_at_that_moment(kz):
    """On Monday 5 Jan at 16:00 nobody can know yet that the company rests all day: web leads of
    that morning are late (a scan then says so, and so does the replay). A calendar learned at
    the end of the period would have hidden them."""
    fns, _ = replayers(kz, {}, until=KZ_END)
    late_known = company_days_off(kz, company_calendar("Asia/Almaty"), KZ_END)
    spec = REGISTRY["lead_sla"].spec()
    leaked = False
    for now in (local(2025, 12, 31, 16), local(2026, 1, 5, 16), KZ_END):
        specs, _ = with_company_calendar(kz, {}, now)
        plain = REGISTRY["lead_sla"].detect(kz, specs["lead_sla"], now)
        assert [i.to_dict() for i in fns["lead_sla"](now)] == [i.to_dict() | {"evidence": {}} for i in plain], now
        future = REGISTRY["lead_sla"].detect(kz, spec.model_copy(update={"calendar": late_known}), now)
        leaked |= len(future) < len(plain)
    assert leaked  # the comparison could tell a replay that learned from its future
    assert fns["lead_sla"](KZ_END) == []


def test_the_line_names_recent_days_and_counts_older_ones():
    cal = company_calendar("Asia/Almaty")
    days = [date(2025, 3, 3) + timedelta(weeks=k) for k in range(9)] + [date(2025, 12, 31), date(2026, 1, 5), date(2026, 1, 6)]
    line = learned_line(replace(cal, learned=tuple(days)))
    assert line.startswith("no work recorded on 3 earlier days and 24 Mar, 31 Mar, 7 Apr, 14 Apr, 21 Apr, "
                           "28 Apr, 31 Dec 2025, 5-6 Jan 2026: counted as days off; list them in "
                           "[calendar] days_off"), line


def test_backtest_names_the_days_it_learned(tmp_path):
    """The backtest says which days off it learned, as scan and check-config do (it said
    nothing, so an admin reading a calm January replay could not tell why)."""
    import contextlib
    import io

    from bot.cli import main

    folder = write_export(tmp_path / "kz", ExportSpec(seed=3, end=KZ_END, days=120, holiday=REST))
    cfg = tmp_path / "kz.toml"
    cfg.write_text(f'timezone = "Asia/Almaty"\n[source]\nkind = "files"\npath = "./{folder.name}"\n', encoding="utf-8")
    for extra, said in (("", True), ("[calendar]\nlearn_days_off = false\n", False)):
        cfg.write_text(cfg.read_text(encoding="utf-8").split("[calendar]")[0] + extra, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["backtest", "--config", str(cfg), "--from", "2025-12-29", "--to", "2026-01-06"])
        assert rc == 0, err.getvalue()
        line = [ln for ln in err.getvalue().splitlines() if ln.startswith("calendar: ")]
        if said:
            assert line == ["calendar: no work recorded on 31 Dec 2025, 5 Jan 2026: counted as days off; list them "
                            "in [calendar] days_off to make it explicit, or set learn_days_off = false"], err.getvalue()
        else:
            assert line == [], line
