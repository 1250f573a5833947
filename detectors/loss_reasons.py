"""loss_reasons: why we did not sell, recent period against a baseline (weekly, for directors).

Lost deals are placed in time by `closed_at` (lost deals without it cannot be placed and are
left out). Two kinds of insight, never both in one run:
- "data_quality": more than `max_missing_share` of the recent period's lost deals have no
  reason or a catch-all one ("other", "прочее", "другое": `other_values`). Insights built on
  empty fields are worthless, so the shift is not reported then.
A source with no loss-reason column at all (the Maven export) gets no insight: a weekly "100%
of lost deals have no reason" would repeat what the export's shape already says. The registry
Need turns it into one data-quality line in scan and check-config instead.
- "shift": the mix of named reasons changed (chi-square on reasons x period, rare reasons
  pooled, p <= `alpha`), with at least `min_lost` named reasons on each side, and the reason
  that grew most (`top_rising`) grew by at least `min_share_change` with a confidence interval
  for its rise (level 1 - alpha/k, k named reasons: Bonferroni, as it was picked as the largest)
  that excludes 0.
Why alpha 0.01 and the interval: the test runs every day on a sliding 28-day window, so a daily
replay makes ~120 correlated looks. At alpha 0.05 with no interval, 22 of 30 companies whose
mix never changed (1.5-6 lost deals a day) alerted on some day of a 120-day replay (150 of
3,600 days); now 1 of 30 (4 days: a 28-day chance run of one reason, p = 0.002, which one
window cannot tell from a real shift). The cost: a 20% -> 45% rise at 3-6 lost deals a day is
found a few days later (3-27 days after it began instead of 3-23); the demo's planted
"Сроки поставки" is found 9 days after its start, as before. On a larger company (about 9 lost
deals a day) 4 of 30 calm companies still got a false shift on some day of a 122-day replay, so
a shift is said only when the scan a week earlier (`persist_days`) saw the same reason rising:
1 of 30, and planted shifts are said 7 days later.

A scan is `detect_at(prepare(data, spec, since=baseline start), now)`; backtest calls
`prepare` once (lost deals, close times, cleaned reasons) and `detect_at` per day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.stats import norm

from crm.data import CrmData
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, Need, register
from detectors.columns import to_ns
from detectors.stats import NAT_NS, SHIFT_METHOD, category_shift_test, ts_ns
from detectors.working_hours import WorkCalendar, default_calendar

NAME = "loss_reasons"
NEED_REASON = Need(("deals.loss_reason",))


class LossReasonsSpec(DetectorSpec):
    """Thresholds of loss_reasons."""

    recent_days: int = Field(28, ge=7, le=365, description="the recent period ends now")
    baseline_days: int = Field(91, ge=7, le=1095, description="the baseline period just before it")
    min_lost: int = Field(30, ge=1, description="lost deals with a named reason needed in each period")
    alpha: float = Field(0.01, gt=0, lt=1, description="significance of the chi-square test and of the rising reason's interval")
    min_share_change: float = Field(0.10, gt=0, lt=1, description="the top rising reason's share must grow at least this")
    max_missing_share: float = Field(0.30, ge=0, le=1, description="warn when more lost deals than this have no usable reason")
    min_lost_for_quality: int = Field(10, ge=1, description="recent lost deals needed before judging data quality")
    other_values: list[str] = Field(default_factory=lambda: ["other", "others", "прочее", "другое", "иное", "-"],
                                    description="reasons that say nothing (compared case-insensitively)")
    # On 30 calm companies of tests/scenarios/_reviewer_amocrm.py (5 reasons, about 9 lost deals
    # a day, a daily 122-day replay) 4 got a false shift without it, 1 with 7; 20 of 20 planted
    # shifts (20% -> 45%) were found, each 7 days later.
    persist_days: int = Field(7, ge=0, le=28, description="a shift is said only when the scan this many days earlier saw the same reason rising (0 = off)")
    max_evidence: int = Field(200, ge=0, description="at most this many deal ids in evidence")
    # The company calendar (the config's timezone; filled by bot/config.py, not a config key):
    # the periods are whole days of the company's own, not UTC days.
    calendar: WorkCalendar = Field(default_factory=default_calendar, exclude=True)


def skip_reason(data: CrmData) -> str | None:
    """The data-quality line when reasons exist in the export but no lost deal carries one."""
    deals = data.deals
    if not data.has_column("deals", "loss_reason"):
        return None  # NEED_REASON already says so
    lost = (deals["status"] == "lost").to_numpy(dtype=bool, na_value=False)
    if lost.any() and not bool(deals["loss_reason"][lost].notna().any()):
        return (f"no lost deal has a loss_reason ({int(lost.sum()):,} lost deals in {data.origins.get('deals', 'deals.csv')}): "
                "record why deals are lost to get loss-reason insights")
    return None


@dataclass
class Prepared:
    """Lost deals with a close date, their close times and cleaned reasons, in deal order:
    what does not change from day to day (backtest prepares once and replays many days)."""

    spec: LossReasonsSpec
    closed: np.ndarray  # ns
    reason: pd.Series  # stripped text; NA when absent
    missing: np.ndarray  # no reason or a catch-all one
    codes: np.ndarray  # reason as an integer code (-1 = none)
    n_codes: int
    deal_ids: pd.Series
    column_present: bool


def prepare(data: CrmData, spec: LossReasonsSpec, since: int | None = None) -> Prepared | None:
    """The day-independent part; None when there are no lost deals to place in time.

    `since` (ns) leaves out deals lost before it: a scan passes its baseline start, backtest
    reads them all.
    """
    deals = data.deals
    lost = (deals["status"] == "lost").to_numpy(dtype=bool, na_value=False)
    if not lost.any() or "closed_at" not in deals.columns:
        return None
    # The loader fills an absent optional column with nulls, so "present" means "ever filled
    # on a lost deal".
    column_present = "loss_reason" in deals.columns and bool(deals["loss_reason"][lost].notna().any())
    if not column_present:  # no reason recorded on any lost deal: the Need's line says so
        return None
    t = to_ns(deals["closed_at"])
    rows = np.flatnonzero(lost & (t >= (NAT_NS + 1 if since is None else since)))  # NaT is the smallest int64
    reason = deals["loss_reason"].iloc[rows].reset_index(drop=True).astype("str").str.strip()
    empty = {v.casefold() for v in spec.other_values}
    missing = (reason.isna() | (reason == "") | reason.str.casefold().isin(empty)).to_numpy(dtype=bool, na_value=True)
    codes, uniques = pd.factorize(reason)
    return Prepared(spec=spec, closed=t[rows], reason=reason, missing=missing,
                    codes=np.asarray(codes, dtype=np.int64), n_codes=len(uniques),
                    deal_ids=deals["deal_id"].iloc[rows].reset_index(drop=True), column_present=column_present)


def _starts(spec: LossReasonsSpec, now_ns: int) -> tuple[int, int]:
    """(baseline start, recent start) in ns: the recent period is the last `recent_days` of the
    company's days including today, the baseline the `baseline_days` before it; each begins at
    the company's local midnight (WorkCalendar.day_start_ns)."""
    first = spec.calendar.local_days_ns(np.array([now_ns], dtype=np.int64))[0] - (spec.recent_days - 1)
    base, recent = spec.calendar.day_start_ns(np.array([first - spec.baseline_days, first]))
    return int(base), int(recent)


def _local_date(spec: LossReasonsSpec, ns: int) -> str:
    """The company's date of an instant, for the periods said in facts."""
    return str(spec.calendar.local_days_ns(np.array([ns], dtype=np.int64))[0])


def _rise_interval(table: pd.DataFrame, reason: str, alpha: float) -> tuple[float, float]:
    """Interval for the rise of `reason`'s share (recent - baseline), two independent
    proportions (Wald), at level 1 - alpha / k with k the number of named reasons: the reason
    was picked as the largest rise among k, so one interval per reason is paid for (Bonferroni).
    A shift is only reported when the interval excludes 0: the chi-square alone also fires on a
    spread of small chance moves, with no single reason that really grew."""

    k = max(len(table), 1)
    z = float(norm.ppf(1 - alpha / (2 * k)))
    n_r, n_b = float(table["recent_n"].sum()), float(table["baseline_n"].sum())
    p_r, p_b = float(table.at[reason, "recent_share"]), float(table.at[reason, "baseline_share"])
    d = p_r - p_b
    se = float(np.sqrt(p_r * (1 - p_r) / n_r + p_b * (1 - p_b) / n_b))
    return d - z * se, d + z * se


@register(NAME, LossReasonsSpec, requires=(), summary="loss reasons shifted (chi-square) or are mostly empty/'other'",
          needs=(NEED_REASON,))
def detect(data: CrmData, spec: LossReasonsSpec, now: datetime) -> list[Insight]:
    since = _starts(spec, ts_ns(now - timedelta(days=spec.persist_days)))[0]  # the look a week back needs its baseline
    return detect_at(prepare(data, spec, since=since), now)


def detect_at(state: Prepared | None, now: datetime, look_back: bool = True) -> list[Insight]:
    """The insights as of `now` from a prepared state (scan and backtest both end here). A shift
    is said only when the scan `persist_days` earlier saw the same reason rising (`look_back`)."""
    if state is None:
        return []
    spec = state.spec
    now_ns = ts_ns(now)
    base_start, recent_start = _starts(spec, now_ns)
    t = state.closed
    in_recent = (t >= recent_start) & (t < now_ns)
    if not in_recent.any():
        return []
    in_base = (t >= base_start) & (t < recent_start)
    # Only lost deals of the two periods matter: work on those rows alone.
    rows = np.flatnonzero(in_recent | in_base)
    in_recent, in_base, missing = in_recent[rows], in_base[rows], state.missing[rows]
    deal_ids = state.deal_ids.iloc[rows].reset_index(drop=True)
    reason = state.reason.iloc[rows].reset_index(drop=True)
    column_present = state.column_present
    periods = {
        "recent_start": _local_date(spec, recent_start), "recent_end": _local_date(spec, now_ns - 1),
        "baseline_start": _local_date(spec, base_start), "baseline_end": _local_date(spec, recent_start - 1),
    }

    lost_n = int(in_recent.sum())
    missing_recent = in_recent & missing
    missing_n = int(missing_recent.sum())
    share = missing_n / lost_n
    if lost_n >= spec.min_lost_for_quality and share > spec.max_missing_share:
        ids = sorted(deal_ids[missing_recent].tolist())[: spec.max_evidence]
        return [Insight(
            detector=NAME, severity="warning" if share >= 0.5 else "info", audience=Audience("director"),
            subject={"kind": "data_quality"},
            facts={"kind": "data_quality", "lost_n": lost_n, "missing_n": missing_n,
                   "missing_share": round(share, 4), "threshold": spec.max_missing_share,
                   "column_present": column_present, **periods},
            evidence={"deal_ids": ids},
        )]

    named_recent = in_recent & ~missing
    named_base = in_base & ~missing
    if named_recent.sum() < spec.min_lost or named_base.sum() < spec.min_lost:
        return []
    # No reason's share moved enough: nothing to report, whatever the test says. Checked on
    # integer codes first (the same shares as the table below), as most days end here.
    code = state.codes[rows]
    recent_counts = np.bincount(code[named_recent], minlength=state.n_codes)
    base_counts = np.bincount(code[named_base], minlength=state.n_codes)
    if np.abs(recent_counts / recent_counts.sum() - base_counts / base_counts.sum()).max() < spec.min_share_change:
        return []
    rc = reason[named_recent].value_counts()
    bc = reason[named_base].value_counts()
    test = category_shift_test(bc, rc)
    table = pd.concat([bc.rename("baseline_n"), rc.rename("recent_n")], axis=1).fillna(0).astype(int)
    table["baseline_share"] = table["baseline_n"] / table["baseline_n"].sum()
    table["recent_share"] = table["recent_n"] / table["recent_n"].sum()
    table["change"] = table["recent_share"] - table["baseline_share"]
    table.index = table.index.astype(str)
    if test.p_value > spec.alpha:
        return []
    table = table.sort_values(["recent_share", "baseline_share"], ascending=False)
    top_rising = table.sort_values(["change"], ascending=False, kind="mergesort").index[0]
    low, high = _rise_interval(table, top_rising, spec.alpha)
    if table.at[top_rising, "change"] < spec.min_share_change or low <= 0:
        return []
    if look_back and spec.persist_days and not any(
            i.facts.get("kind") == "shift" and i.facts["top_rising"] == str(top_rising)
            for i in detect_at(state, now - timedelta(days=spec.persist_days), look_back=False)):
        return []  # a 28-day chance run of one reason: a week earlier it was not there
    rising_ids = deal_ids[named_recent & (reason == top_rising).to_numpy(dtype=bool, na_value=False)].tolist()
    return [Insight(
        detector=NAME, severity="warning", audience=Audience("director"),
        subject={"kind": "shift"},
        facts={
            "kind": "shift", **periods,
            "recent_n": int(table["recent_n"].sum()), "baseline_n": int(table["baseline_n"].sum()),
            # every lost deal of each period (the shares above are of those with a named
            # reason) and the periods' lengths: "209 vs 666" alone read as losses falling 3x
            "recent_lost": lost_n, "baseline_lost": int(in_base.sum()),
            "recent_days": spec.recent_days, "baseline_days": spec.baseline_days,
            "p_value": test.p_value, "statistic": round(test.statistic, 3), "method": SHIFT_METHOD,
            "reasons": [
                {"reason": name, "baseline_share": round(float(r.baseline_share), 4), "recent_share": round(float(r.recent_share), 4),
                 "baseline_n": int(r.baseline_n), "recent_n": int(r.recent_n)}
                for name, r in table.iterrows()
            ],
            "top_rising": str(top_rising),
            "top_rising_change_ci": [round(low, 4), round(high, 4)],
        },
        evidence={"deal_ids": sorted(str(x) for x in rising_ids)[: spec.max_evidence]},
    )]
