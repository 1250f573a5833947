"""conversion_drop: conversion from a stage to the next (or to won) fell, overall or in one segment.

Method: conversion within a horizon on fully observed entry cohorts. A deal belongs to the
cohort of stage S when its first entry into S falls in the window; it "converted" when it
reached ANY later stage, or was won, within the stage's horizon of that entry (so a deal that
skips a newly inserted stage still counts as progress). Lost deals are failures, never
censored. The recent window ends one horizon before `now`, so every deal of both cohorts had
the full horizon to move on and a rise in deal volume cannot fake a drop.

The horizon is learned per stage (`prepare`): the time by which `horizon_quantile` of the deals
that move on have moved on, from the Aalen-Johansen cumulative incidence of "moved on" (lost is a
competing event, open deals are censored at `as_of`), clamped to [min_horizon_days,
max_horizon_days]; the product-limit sums run over hourly bins (bincount, no sort). A stage
where deals move within 5 days is judged a week (the floor) after its cohort ends, not 30 days.
Facts say which horizon was used and whether it was learned or a configured bound.

All times run on the company clock (WorkCalendar.without_days_off: it stops during days off that
fall on workdays, official holidays and [calendar] days_off), so deals that entered just before
the New Year or Nauryz break get the break on top of their horizon instead of looking slower
(a calm amoCRM-style company "fell" 73% -> 57% after it). Windows are cut on that clock; the
dates in the facts are real dates (a recent window spanning the break is longer by its days off).

Tests, three separate Benjamini-Hochberg families, so switching segments on never weakens the
headline test:
- overall: one one-sided Fisher test per stage pair (level `fdr`);
- segments: one per stage pair x segment with at least `min_segment_report_deals` on each side,
  each p divided by the segment's newest deals' likelihood ratio (level `segment_fdr`), for
  drops confined to a segment;
- drivers: per overall drop, segment vs the rest (level `segment_fdr`, one family per step, of
  every segment with `min_segment_deals`; carrying `min_driver_share` is a gate after it).
When the baseline's weekly cohorts swing more than chance allows (calendar effects: quarter
ends, campaigns; Pearson chi-square / dof around their linear trend), every count of the
pair is divided by that dispersion before testing (quasi-binomial), so a low month of a
swinging pipeline is not read as a drop; facts["overdispersion"] says by how much.

An insight needs enough deals, a relative drop, a cost of at least `min_lost_per_month`
conversions a month, and its test surviving its family's correction. An overall drop must also
be confirmed by the deals that entered the stage after the recent cohort (still in progress,
in neither tested cohort): fewer of them moved on so far than the baseline's pace predicts
(one-sided p <= `confirm_p`); only when none of them can be judged yet is a drop said on its
cohorts alone, and then only when clear beyond doubt (q <= `clear_q`). Alone, the overall
family fires on about `fdr` of the scans of a company where nothing changes (one in 20 at
0.05), and a stricter `fdr` would miss a real 9.9% -> 7.5% win-rate drop on ~1,100 recent
deals (p ~ 0.008); the confirmation is independent of the tested cohorts, so a chance dip
passes it only `confirm_p` of the time. facts["newest"] holds the check.

A daily scan, though, is a sequence of tests on windows that slide by a day: a chance dip of a
few weeks' entries is tested on a month of days, and on some of them its newest deals confirm
it by chance (calm companies replayed daily for four months: 7 of 30 raised a drop, on 42
days). So the newest deals must also have confirmed it at `persist_weeks` weekly looks back,
each as that day's scan saw it (Alertmanager's `for:`, on evidence that is new each week: for
horizons up to a week the three looks see disjoint deals). A lasting drop slows them all and
is found as soon as before; a chance dip seldom shows three weeks running: 3 of 30 calm
companies, on 6 days. A drop clear beyond doubt (q <= `clear_q`) skips the looks back (one
look of a planted 35% drop missed at p 0.31 by chance), but no longer its newest deals of
today: when they can be judged and moved on as before, the dip is over (a calm company said
one on 6 days at q <= 0.0025 with newest p 0.48-0.97). They need only lean its way, though
(p <= 2 x `confirm_p`): a planted mix shift (50% -> 34%, q 4e-6) was missed at newest p 0.31 and
0.24; on fresh seeds 160-239 this finds 3-5 more uniform and mix-shift drops in 80, and daily
replays of 180 calm companies raise nothing more. Nor do a few dozen newest deals that merely
fail to slow end a drop whose cohorts outweigh them (q x their as-before likelihood ratio <=
clear_q x CLEAR_OUTWEIGH = 0.1, the ratio below 1/clear_q; `_confirmed`): planted x0.65 drops
(54% -> 30%, q 3e-8) were missed at newest p 0.42-0.81. Found on the scan day, seeds 200-229
(tuned on): 400/month 29/30 (before 27), 250/month 26/30 (26); held-out 230-289: 55/60 (53) and
59/60 (59); Сайт drops, mix shifts, confounded and own Instagram drops as before (200-259);
calm replays (seeds 11-190) raise an overall drop in 25 of 180, on 52 days, as before. Of the
uniform and Сайт drops missed before (seeds 200-259, 28 of 240), 10 fail the overall test (q
0.06-0.8), 7 Сайт drops are said without naming Сайт (the driver test), 1 is worded as a mix
shift, and 10 were unconfirmed: 5 whose newest deals moved on at the baseline's pace (p
0.3-0.86; chance: the check is calibrated, x0.65 drops' newest deals move on at 0.66 of the
pace), 4 clear beyond doubt whose newest deals leant the other way (p 0.43-0.79; 2 found now,
1 said without naming Сайт) and 1 whose look back failed. Rejected: weighting each newest deal by
1 / (1 - F) (the score test of a multiplicative drop) found 1 more in 120 but raised calm
overall drops to 32 companies on 70 days; `benchmarks/seg_drop.py planted --kinds uniform,source`
prints each miss's gate. Stricter
rules were measured and rejected: Fisher's combination of the cohort and newest p-values at a
stricter level, or a persistence of the cohort test a week earlier (windows that share three
weeks), cannot keep the 9.9% -> 7.5% drop (p 0.009, newest p 0.065) while silencing the
strongest chance dip (p 0.002, newest p 0.056). facts["newest"]["weeks_before"] holds the
looks. A segment's own drop has no such look back: its newest deals are a handful (2-13 in a
company of 250 deals a month), and demanding them three weeks running lost 2 of 5 planted
70% -> 14% Instagram drops; they weigh its test instead (see "segment_drop"). The driver
families run at `segment_fdr`.

Kinds of insight (facts["kind"]):
- "drop": the stage pair fell. Drivers are named only when their drop is significantly larger
  than the rest's, both in points and relatively (intersection-union of two one-sided
  likelihood-ratio tests, so a drop that is uniform on either scale names nobody); a second
  driver only when, after the earlier drivers' deals are removed, the remainder itself still
  fell (the overall's one-sided test at `segment_fdr`, and material) and the segment still
  stands out in it (a manager who merely had more deals from the failing source is not blamed,
  nor one who dipped by chance while the rest rose). Of two significant candidates of different
  dimensions that the data cannot tell apart (neither stands out outside the other's deals),
  the one keeping more of its lead is named first, and a source before a person. When that
  family names nobody but a segment's own drop passed family 2 (it fell, and more than the
  rest, its p weighed by its newest deals, at `segment_fdr` over every pair's segments), that
  segment is named (with `min_driver_share`): the fall was its own and the rest's dip chance.
  The issue's Instagram collapse (12% of deals, 70% -> 12%) on 60 companies: 57 said rightly
  before, 59 now (one drop naming nobody, one mix shift, see below); planted drops on 80
  held-out companies a kind (seeds 300-379, 250 and 400 deals a month): 2 more Сайт drops
  named, no false segment more; calm companies replayed daily (seeds 11-190): no driver named.
- "mix_shift": the raw rate fell, but within the segments of some dimension it held (the
  Cochran-Mantel-Haenszel test of the within-segment drop is not significant, or the drop at
  the baseline mix is not material) and the mix moved towards segments that convert worse.
  Worded as a change in where deals come from; no segment is said to fall, so none over a
  dimension whose segment's own drop passed family 2 (its rates did not hold). Its confirmation
  may also come from where the newest deals come from (`_mix_persists`): their mix, at the
  baseline's per-segment rates, predicts a lower rate (p <= MIX_CONFIRM_P = 0.01) today and
  at each weekly look back (facts["newest"]["mix"]). Their segments need no time to move on,
  while their moves, a few days old, often could not tell: planted Выставка 8% -> 45% shifts
  were missed at newest p 0.2-0.5. Found on the scan day, seeds 200-229 (tuned on): 250/month
  23/30 (before 12), 400/month 27/30 (23); held-out 230-289: 46/60 (34) and 56/60 (47); the
  same runs worded as "drop" or naming a segment as before. Calm companies replayed daily
  (seeds 11-190) raise an overall drop in 25 of 180, on 52 days, as before: none confirmed by
  the mix alone, even at 0.2 a look. Of the 28 still missed (seeds 200-289), 24 fail the
  overall test itself (q 0.05-0.93: the other sources' recent rate rose by chance, so the raw
  rate hardly fell) and 4 are worded as a drop (within-segment CMH p 0.004-0.03, about as often
  as its level allows); `benchmarks/seg_drop.py planted --kinds mix` prints each one's gate.
- "segment_drop": the pair held overall but one segment fell on its own. A headline of its
  own, so it needs `min_segment_report_deals` on each side, materiality, and its family's FDR
  at `segment_fdr` on its p divided by its newest deals' likelihood ratio (the dip's pace over
  the baseline's, at most NEWEST_LR_CAP = 10; facts["newest"]["dip_lr"]). Under "nothing
  changed" that ratio averages 1 over the newest deals (other deals than the cohorts'), so the
  quotient stays a p-value (p-to-e merging; the dip's pace is taken from the cohorts, hence
  "about"): a handful of newest deals (ratio near 1) neither confirms nor stops a drop, many at
  the dip's pace carry a weaker cohort. It replaced a gate (family at `fdr`,
  newest p <= `confirm_p`, or q <= `clear_q` alone), which stopped planted drops whose 2-4
  newest deals happened to move on (q 0.003-0.02, newest p 0.3-0.6) and missed ones whose
  cohort was weaker but whose newest deals were clear (seed 174: p 0.0016, 2/8 newest moved
  on vs 5.1 expected). Planted Instagram 70% -> 14% drops found on the scan day, seeds
  160-279 (160-199 tuned on): 250/month 79/120 (before 74; held-out 200-279 51/80, before
  49), 400/month 115/120 (113; false segments 1, before 2); seeds 0-31: 25/32 (24) and 29/32
  (30). Calm companies replayed daily (seeds 11-190) raise a segment's own drop in 19 of 180
  as before, on 48 days (54), a manager on 9 days (23). The other planted kinds (seeds
  200-259, 250 and 400 a month) are found as often: one Сайт drop fewer and one confounded
  Instagram drop more at 250, the same false segments. When its newest deals are 1/`clear_q`
  times likelier at the baseline's pace than at the dip's, the dip is over: it is not said and
  its deals are not set aside when the pair's other segments are tested. A manager's needs q <= `segment_fdr` / 10
  (STRICT_DIMENSIONS). Its p is the larger of its own Fisher test and
  the segment-vs-rest test above: with likelihood-ratio tests there (the z-tests before them were
  the binding part: seed 17, 2/22 vs 39/70, own p 7e-5 but 0.0014 against the rest), a planted
  Instagram 70% -> 14% drop was found on the scan day on 79 of 96 held-out companies (z-tests 76)
  and calm companies replayed daily raised a segment's own drop in 19 of 180 (z-tests 25); no
  planted miss is decided by the comparison with the rest any more. Not reported for a
  pair that already has an overall insight (there it can only be a driver). Confounded
  segments (a manager whose deals are mostly from the failing source) are dropped by testing
  each further segment only on the deals outside the segments already reported.

When stage history was derived from deals (no real history), the stage-to-stage pairs cannot be
measured (a Need part says so) and conversion to won is measured from deal outcomes instead:
cohorts by created_at, won within the horizon via closed_at.

Backtest: `prepare` (once) does the joins, sorting and horizon learning; `detect_at` (per day)
only slices sorted arrays. The horizon is learned as of `as_of` (a scan passes `now`; without it
the newest timestamp in the data). A backtest that prepares once therefore waits, on every
replayed day, as long as deals of the whole export took to move on: this is a property of the
pipeline, not of the compared rates, and both cohorts of a day use the same horizon, so it
cannot plant a drop; pass `as_of` = the replay start to learn only from history before it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator
from scipy.special import ndtr, xlogy

from crm import owners
from crm.data import CrmData
from crm.schema import TABLES
from crm.validate import LOST_LEFT_OUT_FIX, lost_left_out
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, Need, register
from detectors.columns import positions, to_ns
from detectors.working_hours import WorkCalendar, default_calendar
from detectors.stats import (
    NAT_NS, NS_PER_DAY, PROPORTION_METHOD, bh_qvalues, iso_date, proportion_drop_pvalues, ts_ns,
)

NAME = "conversion_drop"
WON = "won"
CREATED = "created"  # the cohort basis when stage history is derived: deals by creation date
_NEVER = np.iinfo(np.int64).max  # "did not happen" in first-entry matrices
DAYS_PER_MONTH = 30.44

DIMENSION_NAMES = {"manager_id": "manager"}  # how a segment column is called for people
# A person's own drop is said only at q <= `segment_fdr` (not `fdr`): a pair has many managers,
# each with few deals, so a person's chance dips are many, and naming a person is the costlier
# mistake. 90 calm companies replayed daily for 123 days named a manager on 11 days (2 companies),
# now 2 (1: q 0.004); replays of planted Instagram drops named m7 / m8 on 3 days, now none, and
# found Instagram on the same days.
STRICT_DIMENSIONS = ("manager_id",)
# A segment's newest deals can make its p at most this many times smaller (_weigh_by_newest).
# 10 = one lucky handful of newest deals cannot carry a cohort test weaker than p 0.1 x the
# family's share; chosen on planted seeds 160-199 and calm replays (5: fewer found, 20: more
# calm companies alarmed than before), confirmed on held-out seeds 200-279.
NEWEST_LR_CAP = 10.0
MIX_METHOD = "cochran_mantel_haenszel_one_sided"
DRIVER_METHOD = "segment_vs_rest_drop_difference_and_ratio_lr"


class ConversionDropSpec(DetectorSpec):
    """Thresholds of conversion_drop; defaults fire only on a clear, significant, costly drop."""

    min_horizon_days: int = Field(7, ge=1, le=365, description="the learned horizon is at least this many days")
    max_horizon_days: int = Field(30, ge=1, le=365, description="the learned horizon is at most this many days (also used when too few deals moved on to learn it)")
    horizon_quantile: float = Field(0.9, gt=0, lt=1, description="the horizon is the time by which this share of the deals that move on have moved on")
    min_horizon_movers: int = Field(30, ge=1, description="deals that moved on needed to learn a stage's horizon; fewer -> max_horizon_days")
    recent_days: int = Field(28, ge=7, le=365, description="length of the recent cohort window (it ends one horizon before now)")
    baseline_days: int = Field(91, ge=7, le=1095, description="length of the baseline window just before the recent one")
    min_deals: int = Field(30, ge=1, description="deals needed in each of the two cohorts of a stage pair")
    min_relative_drop: float = Field(0.15, gt=0, lt=1, description="(baseline - recent) / baseline at least this")
    min_absolute_drop: float = Field(0.0, ge=0, lt=1, description="optional floor: baseline - recent at least this (0 = off; impact decides)")
    min_lost_per_month: float = Field(3.0, ge=0, description="the drop costs at least this many conversions a month (drop x recent deals a month)")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate of the overall tests (one per stage pair)")
    confirm_p: float = Field(0.2, gt=0, le=1, description="an overall drop is said only when the deals that entered since the recent cohort (still in progress) also move on slower than the baseline's pace: one-sided p at most this (1 = off)")
    clear_q: float = Field(0.0025, ge=0, lt=1, description="clear beyond doubt: a drop with q at most this skips the weekly looks back, and is said without its newest deals' confirmation when they cannot be judged yet; a segment's newest deals 1/this times likelier at the baseline's pace end its dip")
    persist_weeks: int = Field(2, ge=0, le=8, description="an overall drop's newest deals must also have confirmed it (p <= confirm_p) at each of this many weekly looks back, as those days' scans saw them (0 = off)")
    segment_fdr: float = Field(0.01, gt=0, lt=1, description="false discovery rate of the driver tests (one family per step) and of a segment's own drop (its p weighed by its newest deals; a manager's needs q at most a tenth of this)")
    segments: list[str] = Field(default_factory=lambda: ["source", "manager_id", "region"], description="deal columns to drill down by")
    min_segment_deals: int = Field(10, ge=1, description="deals a segment needs on each side to be named as a driver")
    min_segment_report_deals: int = Field(10, ge=1, description="deals a segment needs on each side to be reported as a drop of its own (at least min_segment_deals)")
    min_driver_share: float = Field(0.25, ge=0, le=1, description="a driver carries at least this share of the drop")
    max_drivers: int = Field(3, ge=0, le=10, description="name at most this many driving segments")
    max_evidence: int = Field(200, ge=0, description="at most this many deal ids in evidence")
    # The company calendar ([calendar] and the config's timezone, filled by bot/config.py; not a
    # [detectors.conversion_drop] key): its days off on workdays do not count towards a horizon.
    calendar: WorkCalendar = Field(default_factory=default_calendar, exclude=True)

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, v: list[str]) -> list[str]:
        deal_cols = {c.name for c in TABLES["deals"].columns}
        bad = [s for s in v if s not in deal_cols]
        if bad:
            raise ValueError(f"unknown deal column(s) {bad}; choose from {sorted(deal_cols)}")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "ConversionDropSpec":
        if self.max_horizon_days < self.min_horizon_days:
            raise ValueError(f"max_horizon_days ({self.max_horizon_days}) must be >= min_horizon_days ({self.min_horizon_days})")
        return self


class _RealHistory(Need):
    """Met when stage_history came from the source, not derived from deals' creation."""

    def met(self, data: CrmData) -> bool:
        return not data.stage_history_derived

    def line(self, data: CrmData) -> str:
        # A web-UI deals export has no stage history; the API connectors sync it, so say how to get it.
        return (f"{self.part}: not checked, needs a real stage history (stage_history.csv; it was "
                f"derived from {data.origins.get('deals', 'deals.csv')}); conversion to won is "
                "measured from deal outcomes instead; a web-UI export has no stage history: "
                "the CRM's API gives it ([source] kind: \"amocrm\", \"bitrix24\", \"hubspot\", \"pipedrive\"), "
                "or a stage history report (Salesforce: Opportunity History, its To Stage and Edit Date; "
                "HubSpot: the \"Date entered\" columns of the stages, added to the deals export; "
                "amoCRM / Kommo: the events list (Analytics → Events list) as [source.files] stage_history)")


STAGE_PAIRS = _RealHistory(columns=("stage_history.entered_at",), part="stage-to-stage conversion")


class _ClosingDates(Need):
    """Won (and lost) is placed in time only by the closing date; an absent closed_at read as
    "not won yet" made every cohort 0% won, so a real drop was never found while the scan said it
    was checked. Met when the dates are there, or when no deal is closed yet (nothing to place:
    a young company's export of open deals lacks no column)."""

    def met(self, data: CrmData) -> bool:
        if data.has_column("deals", "closed_at"):
            return True
        return not bool((_status(data.deals, WON) | _status(data.deals, "lost")).any())


TO_WON = _ClosingDates(columns=("deals.closed_at",), part="conversion to won")


def skip_reason(data: CrmData) -> str | None:
    """One line saying why this detector cannot say anything about `data`, or None."""
    if data.stage_history_derived and not TO_WON.met(data):  # conversion to won is all there is
        return Need(columns=TO_WON.columns).line(data)
    if won := lost_left_out(data.deals):  # every cohort's deals that did not move on are missing
        return (f"no lost deal among {won:,} won deals in {data.origins.get('deals', 'deals.csv')}: the export "
                f"leaves lost deals out, and conversion read from it would be near 100%; {LOST_LEFT_OUT_FIX}")
    if not data.stage_history_derived and len(data.stages) < 1:
        return "no pipeline stages known (provide stages.csv or source.stages in config)"
    return None


# --- the day-independent part ---------------------------------------------------------------

def _first_entries(data: CrmData, since: int) -> np.ndarray:
    """Matrix deals x (stages + won) of first-entry times in ns; _NEVER where never entered.

    Only history from `since` on is read (the windows start there; on years of history this
    skips most rows), so "first entry" means first entry since then.
    """
    stages = list(data.stages)
    deals = data.deals
    n_deals, n_cols = len(deals), len(stages) + 1
    mat = np.full((n_deals, n_cols), _NEVER, dtype=np.int64)
    sh = data.stage_history
    if len(sh):
        t = to_ns(sh["entered_at"])
        recent = t >= since  # NaT is the smallest int64, so it drops out here too
        t = t[recent]
        d = positions(sh["deal_id"][recent], deals["deal_id"])
        s = positions(sh["stage"][recent], pd.Series(stages, dtype=sh["stage"].dtype))  # unknown stage -> -1
        ok = (d >= 0) & (s >= 0)
        np.minimum.at(mat.reshape(-1), d[ok] * n_cols + s[ok], t[ok])
    won = _status(deals, WON)
    won_at = _closed(deals)
    # A won deal without a close date was won at some time after its last recorded entry.
    last_seen = np.where(mat[:, :-1] == _NEVER, NAT_NS, mat[:, :-1]).max(axis=1)
    won_at = np.where(won_at == _NEVER, last_seen, won_at)
    mat[:, -1] = np.where(won, won_at, _NEVER)
    return mat


def _status(deals: pd.DataFrame, status: str) -> np.ndarray:
    return (deals["status"] == status).to_numpy(dtype=bool, na_value=False)


def _closed(deals: pd.DataFrame) -> np.ndarray:
    closed = to_ns(deals["closed_at"]) if "closed_at" in deals else np.full(len(deals), NAT_NS)
    return np.where(closed != NAT_NS, closed, _NEVER)


def _newest(data: CrmData) -> int:
    """The newest timestamp in the data (ns): what a horizon can be learned up to."""
    best = NAT_NS
    for frame, col in ((data.stage_history, "entered_at"), (data.deals, "created_at"), (data.deals, "closed_at")):
        if frame is not None and col in frame and len(frame):
            best = max(best, int(to_ns(frame[col]).max()))
    return best


def _learn_horizon(entry: np.ndarray, moved: np.ndarray, lost: np.ndarray, as_of: int,
                   spec: ConversionDropSpec) -> tuple[int, str, int]:
    """(horizon days, source, movers) for one stage, from deals that entered it before `as_of`.

    Aalen-Johansen: moving on and being lost compete, deals still open at `as_of` are censored.
    The horizon is the time by which `horizon_quantile` of the deals that move on within twice
    the upper bound have done so. source: "learned", "min"/"max" (clamped), or "default" (too
    few deals moved on to learn anything: the upper bound is used).
    """
    span = _learn_span(spec)
    inside = (entry != _NEVER) & (entry < as_of) & (entry >= as_of - span)
    e, m, lo = entry[inside], moved[inside], lost[inside]
    m_ok = m <= as_of  # _NEVER is never <= as_of
    l_ok = (lo <= as_of) & ~(m_ok & (m <= lo))
    kind = np.where(l_ok, 2, np.where(m_ok, 1, 0))  # l_ok already excludes "moved before lost"
    end = np.where(kind == 1, m, np.where(kind == 2, lo, as_of))
    dur = np.maximum(end - e, 0)
    movers = int((kind == 1).sum())
    top = spec.max_horizon_days
    if movers < spec.min_horizon_movers:
        return top, "default", movers
    # Product-limit over hourly bins (ties within an hour are simultaneous, as for grouped
    # data): bincount instead of a sort, so a million entries cost milliseconds.
    hour = NS_PER_DAY // 24
    limit = 2 * top * 24  # hours
    b = np.minimum(dur // hour, limit + 1)
    at_risk = np.cumsum(np.bincount(b, minlength=limit + 2)[::-1])[::-1][: limit + 1]
    inside_limit = b <= limit
    d_move = np.bincount(b[inside_limit & (kind == 1)], minlength=limit + 1)[: limit + 1]
    d_all = np.bincount(b[inside_limit & (kind != 0)], minlength=limit + 1)[: limit + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard_all = np.where(at_risk > 0, d_all / at_risk, 0.0)
        hazard_move = np.where(at_risk > 0, d_move / at_risk, 0.0)
    surv = np.cumprod(1.0 - hazard_all)
    before = np.concatenate([[1.0], surv[:-1]])
    cif = np.cumsum(before * hazard_move)
    plateau = cif[-1]
    if plateau <= 0:
        return top, "default", movers
    k = int(np.searchsorted(cif, spec.horizon_quantile * plateau - 1e-12, side="left"))
    days = math.ceil((k + 1) / 24)
    days = max(days, 1)
    if days < spec.min_horizon_days:
        return spec.min_horizon_days, "min", movers
    if days > top:
        return top, "max", movers
    return days, "learned", movers


def _learn_span(spec: ConversionDropSpec) -> int:
    """How far back entries are read for learning and testing (ns)."""
    return (spec.max_horizon_days + 1 + spec.recent_days + spec.baseline_days) * NS_PER_DAY


def _segment_codes(deals: pd.DataFrame, column: str, nobody: frozenset[str] = frozenset()
                   ) -> tuple[np.ndarray, pd.Index] | None:
    """Per deal, its segment's code (-1: none) and the segments. A manager cell that names
    nobody («Без ответственного», crm.owners) is no manager's segment: it would be named as a
    person ("manager «Без ответственного»: 60% -> 20%")."""
    if column not in deals.columns or deals[column].isna().all():
        return None
    values = deals[column]
    if column == "manager_id":
        values = values.mask(owners.no_owner(values, nobody))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, pd.Index(uniques)


def _segment_label(dimension: str, value: str, manager_names: dict[str, str]) -> str:
    if dimension == "manager_id":
        return manager_names.get(value, value)
    return value


@dataclass
class Cohorts:
    """The deals that ever entered one stage (or were created), sorted by that entry: each day's
    baseline and recent cohorts are then two slices found by binary search."""

    from_stage: str | None  # None when the cohort is deals by creation date
    to_stage: str
    horizon_days: int
    horizon_source: str  # learned | min | max | default
    movers: int  # deals that moved on, the horizon was learned from
    rows: np.ndarray  # deal rows, by entry time
    entry: np.ndarray  # first-entry ns, ascending
    converted: np.ndarray  # moved on within the horizon (does not depend on the day)
    moved_after: np.ndarray  # ns from entry to moving on (_NEVER: never moved on)
    converted_before: np.ndarray  # converted_before[k] = converted deals among the first k
    codes: dict[str, np.ndarray]  # segment code of each row per dimension (-1 = none)
    lost_at: np.ndarray | None = None  # when each row's deal was lost (_NEVER: not lost)


@dataclass
class Prepared:
    """What does not change from day to day: cohorts per stage pair, segment names (for backtest)."""

    spec: ConversionDropSpec
    pairs: list[Cohorts]
    seg_dims: dict[str, tuple[np.ndarray, pd.Index]]
    manager_names: dict[str, str]
    deal_ids: pd.Series
    as_of: int  # on the company clock (WorkCalendar.without_days_off), as every time here
    derived: bool
    calendar: WorkCalendar | None = None  # None: the plain clock

    def clock(self, now: datetime | int) -> int:
        """`now` (a datetime or real ns) on the company clock."""
        ns = now if isinstance(now, (int, np.integer)) else ts_ns(now)
        return ns if self.calendar is None else int(self.calendar.without_days_off(np.array([ns], dtype=np.int64))[0])

    def real(self, ns: int) -> int:
        """A company-clock instant back on the real clock (for the dates said)."""
        return ns if self.calendar is None else int(self.calendar.with_days_off(np.array([ns], dtype=np.int64))[0])


def _windows(spec: ConversionDropSpec, horizon_days: int, now: datetime | int) -> tuple[int, int, int]:
    """(base_start, recent_start, recent_end) in ns for one stage, whole UTC days, so every scan
    of one day sees the same cohorts and the dates never overlap. `now`: a datetime or ns."""
    now_ns = now if isinstance(now, (int, np.integer)) else ts_ns(now)
    recent_end = (now_ns - horizon_days * NS_PER_DAY) // NS_PER_DAY * NS_PER_DAY
    recent_start = recent_end - spec.recent_days * NS_PER_DAY
    return recent_start - spec.baseline_days * NS_PER_DAY, recent_start, recent_end


def _cohorts(from_stage, to_stage, entry, reached, lost_at, as_of, spec, seg_dims) -> Cohorts:
    rows = np.flatnonzero(entry != _NEVER)
    rows = rows[np.argsort(entry[rows], kind="stable")]
    e, r = entry[rows], reached[rows]
    a, b = np.searchsorted(e, [as_of - _learn_span(spec), as_of], side="left")
    horizon, source, movers = _learn_horizon(e[a:b], r[a:b], lost_at[rows[a:b]], as_of, spec)
    converted = (r != _NEVER) & (r - e <= horizon * NS_PER_DAY)
    return Cohorts(
        from_stage=from_stage, to_stage=to_stage, horizon_days=horizon, horizon_source=source, movers=movers,
        rows=rows, entry=e, converted=converted, moved_after=np.where(r != _NEVER, r - e, _NEVER),
        converted_before=np.concatenate([[0], np.cumsum(converted, dtype=np.int64)]),
        codes={dim: codes[rows] for dim, (codes, _u) in seg_dims.items()}, lost_at=lost_at[rows],
    )


def prepare(data: CrmData, spec: ConversionDropSpec, since: int | None = None,
            as_of: int | None = None, newest: int | None = None) -> Prepared | None:
    """The day-independent part; None when there is nothing to measure.

    `since` (ns) skips older history: a scan passes its earliest window start, backtest reads
    it all. `as_of` (ns): horizons are learned from what was known then (default: the newest
    timestamp in the data). `newest`: that timestamp when the caller already has it.
    """
    deals = data.deals
    if skip_reason(data) is not None or deals is None or len(deals) == 0:
        return None
    newest = _newest(data) if newest is None else newest
    if newest == NAT_NS:  # no timestamps at all: nothing can be measured
        return None
    as_of = newest if as_of is None else min(as_of, newest)
    # Every time below is on the company clock that stops on days off (holidays on workdays):
    # deals that entered before the New Year or Nauryz break get the break on top of their
    # horizon, instead of being judged slower (a calm company "fell" 73% -> 57% after it).
    clock = spec.calendar.without_days_off
    as_of = int(clock(np.array([as_of], dtype=np.int64))[0])
    nobody = owners.nobody(data)
    seg_dims = {c: sc for c in spec.segments if (sc := _segment_codes(deals, c, nobody)) is not None}
    lost_at = clock(np.where(_status(deals, "lost"), _closed(deals), _NEVER))
    pairs = []
    if data.stage_history_derived:
        # Conversion to won from outcomes: created_at cohorts, won (at closed_at) within the horizon.
        created = to_ns(deals["created_at"])
        created = clock(np.where(created == NAT_NS, _NEVER, created))
        won_at = clock(np.where(_status(deals, WON), _closed(deals), _NEVER))
        pairs.append(_cohorts(None, WON, created, won_at, lost_at, as_of, spec, seg_dims))
    else:
        first = _first_entries(data, since=NAT_NS + 1 if since is None else since)
        first = clock(first.reshape(-1)).reshape(first.shape)
        later = np.minimum.accumulate(first[:, ::-1], axis=1)[:, ::-1]
        stages = list(data.stages)
        for i, from_stage in enumerate(stages):
            to_stage = stages[i + 1] if i + 1 < len(stages) else WON
            if to_stage == WON and not TO_WON.met(data):
                continue
            pairs.append(_cohorts(from_stage, to_stage, first[:, i], later[:, i + 1], lost_at, as_of, spec, seg_dims))
    return Prepared(
        spec=spec, pairs=pairs, seg_dims=seg_dims,
        manager_names=dict(zip(data.managers["manager_id"], data.managers["name"])),
        deal_ids=deals["deal_id"], as_of=as_of, derived=data.stage_history_derived, calendar=spec.calendar,
    )


@register(NAME, ConversionDropSpec, requires=(),
          summary="conversion fell, overall or in one segment (recent vs baseline, fully observed cohorts)",
          needs=(STAGE_PAIRS, TO_WON))
def detect(data: CrmData, spec: ConversionDropSpec, now: datetime, with_evidence: bool = True) -> list[Insight]:
    now_ns = ts_ns(now)
    newest = _newest(data)
    as_of = now_ns if newest == NAT_NS else min(now_ns, newest)
    looks_back = 7 * spec.persist_weeks * NS_PER_DAY  # the persistence looks need their baselines too
    cal = spec.calendar
    company = lambda ns: int(cal.without_days_off(np.array([ns], dtype=np.int64))[0])  # noqa: E731
    since = min(_windows(spec, spec.max_horizon_days, company(now_ns))[0] - looks_back,
                company(as_of) - _learn_span(spec))
    since = int(cal.with_days_off(np.array([since], dtype=np.int64))[0])  # the history is read on the real clock
    return detect_at(prepare(data, spec, since=since, as_of=now_ns, newest=newest), now, with_evidence=with_evidence)


# --- statistics -------------------------------------------------------------------------------

@dataclass
class Counts:
    """Converted / deals in the baseline and recent cohorts (arrays: one cell per segment)."""

    bx: np.ndarray
    bn: np.ndarray
    rx: np.ndarray
    rn: np.ndarray

    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.bx / self.bn, self.rx / self.rn


def _seg_counts(codes_b, conv_b, codes_r, conv_r, k: int) -> Counts:
    """Per segment counts; the missing value (-1) is the extra cell k (a stratum, never named)."""
    cb, cr = np.where(codes_b < 0, k, codes_b), np.where(codes_r < 0, k, codes_r)
    return Counts(np.bincount(cb[conv_b], minlength=k + 1), np.bincount(cb, minlength=k + 1),
                  np.bincount(cr[conv_r], minlength=k + 1), np.bincount(cr, minlength=k + 1))


def _cmh_pvalue(c: Counts, phi: float = 1.0) -> float:
    """One-sided CMH: the recent rate is lower than the baseline within strata (segments);
    the variance is widened by the pair's overdispersion `phi`."""
    n = c.bn + c.rn
    m1 = c.bx + c.rx
    ok = n > 1
    if not ok.any():
        return 1.0
    n, m1, rn, bn, rx = n[ok], m1[ok], c.rn[ok], c.bn[ok], c.rx[ok]
    expected = rn * m1 / n
    var = rn * bn * m1 * (n - m1) / (n * n * (n - 1.0))
    if var.sum() <= 0:
        return 1.0
    z = (rx.sum() - expected.sum() + 0.5) / math.sqrt(var.sum() * phi)
    return float(ndtr(z))


def _fit_given_gap(bx, bn, rx, rn, c, ratio: bool):
    """Maximum-likelihood (baseline, recent) rates of one group when its recent rate is tied to
    its baseline: recent = baseline - c (points) or baseline * exp(c) (ratio). Closed forms of
    the Miettinen-Nurminen restricted estimates (a cubic for the difference, a quadratic for
    the ratio), so the test below needs no nested search."""
    n = bn + rn
    if ratio:
        th = np.exp(c)
        b = bn + rx + th * (bx + rn)
        pb = (b - np.sqrt(np.maximum(b * b - 4.0 * th * n * (bx + rx), 0.0))) / (2.0 * th * n)
        return pb, th * pb
    # Farrington-Manning: baseline = recent + c, theta = rn / bn
    t = rn / bn
    p1, p2 = bx / bn, rx / rn
    a = 1.0 + t
    b = -(1.0 + t + p1 + t * p2 + c * (t + 2.0))
    cc = c * c + c * (2.0 * p1 + t + 1.0) + p1 + t * p2
    d = -p1 * c * (1.0 + c)
    v = b ** 3 / (3.0 * a) ** 3 - b * cc / (6.0 * a * a) + d / (2.0 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b * b / (3.0 * a) ** 2 - cc / (3.0 * a), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (math.pi + np.arccos(np.clip(np.where(u != 0, v / u ** 3, 0.0), -1.0, 1.0))) / 3.0
    pb = np.clip(2.0 * u * np.cos(w) - b / (3.0 * a), 0.0, 1.0)
    return pb, np.clip(pb - c, 0.0, 1.0)


def _loglik(x, n, p):
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return xlogy(x, p) + xlogy(n - x, 1.0 - p)


def _equal_gap_z(groups: list[tuple], ratio: bool) -> np.ndarray:
    """Signed root of the likelihood-ratio statistic of "every group's recent rate moved from
    its baseline by the same gap" (points, or log ratio), positive when the first group fell
    more. The common gap is the root of the profile score, found by regula falsi (Illinois)."""
    def slope(c):
        s = 0.0
        for bx, bn, rx, rn in groups:
            _pb, pr = _fit_given_gap(bx, bn, rx, rn, c, ratio)
            pr = np.clip(pr, 1e-12, 1.0 - 1e-12)
            g = rx / pr - (rn - rx) / (1.0 - pr)
            s = s + (pr * g if ratio else -g)
        return s
    # The root lies between the groups' own gaps: each group's score falls with the gap and is
    # zero at its own; the statistic is flat at the root, so a few steps are exact enough.
    own = [(bx / bn - rx / rn) if not ratio else np.log((rx / rn) / (bx / bn)) for bx, bn, rx, rn in groups]
    lo, hi = np.minimum(*own), np.maximum(*own)
    f_lo, f_hi = slope(lo), slope(hi)
    side = np.zeros(len(lo))
    for _ in range(16):
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(f_lo - f_hi > 0, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), (lo + hi) / 2.0)
        c = np.clip(c, lo, hi)
        f = slope(c)
        up = f > 0
        # Illinois: halve the stale end's value when the same end is kept twice running
        f_hi = np.where(~up, f, np.where(side > 0, f_hi / 2.0, f_hi))
        f_lo = np.where(up, f, np.where(side < 0, f_lo / 2.0, f_lo))
        lo, hi = np.where(up, c, lo), np.where(up, hi, c)
        side = np.where(up, 1.0, -1.0)
    gap = 0.0
    for bx, bn, rx, rn in groups:
        pb, pr = _fit_given_gap(bx, bn, rx, rn, c, ratio)
        gap = gap + _loglik(bx, bn, bx / bn) + _loglik(rx, rn, rx / rn) - _loglik(bx, bn, pb) - _loglik(rx, rn, pr)
    sign = np.sign(own[0] - own[1]) * (1.0 if not ratio else -1.0)  # own: the drop in points; the log ratio
    return sign * np.sqrt(np.maximum(2.0 * gap, 0.0))


# A tenth of a deal won and one lost added to each of the four cells: the constrained fit stays
# inside (0, 1) when a cell is all won or all lost (100% -> 100% in the rest), where the profile
# score would otherwise jump at the root.
_PSEUDO = 0.1


def _interaction_pvalues(seg: Counts, total: Counts) -> np.ndarray:
    """p that each segment's drop is larger than the rest's, in points AND relatively.

    Two one-sided likelihood-ratio tests (binomial likelihood of the four rates, with the
    segment's and the rest's drops constrained equal in points, then in log ratio), the larger
    p counts (intersection-union), so a drop that is uniform in either sense names nobody.
    The constrained fit moves all four rates, so 2 won of 22 is judged against the recent rate
    the data make likeliest under "the same drop" (the z-tests this replaces put the segment's
    whole share of the null on its recent rate: p 0.0014 where this gives 0.00035, and their
    log-scale test rejected a uniform relative drop ten times too often at 0.001).
    """
    rest = Counts(total.bx - seg.bx, total.bn - seg.bn, total.rx - seg.rx, total.rn - seg.rn)
    ok = (rest.bn > 0) & (rest.rn > 0) & (seg.bn > 0) & (seg.rn > 0)
    out = np.ones(len(np.atleast_1d(seg.bn)))
    if not ok.any():
        return out
    groups = [tuple(np.asarray(getattr(c, a), dtype=float)[ok] + add
                    for a, add in (("bx", _PSEUDO), ("bn", 2 * _PSEUDO), ("rx", _PSEUDO), ("rn", 2 * _PSEUDO)))
              for c in (seg, rest)]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.maximum(ndtr(-_equal_gap_z(groups, ratio=False)), ndtr(-_equal_gap_z(groups, ratio=True)))
    out[ok] = np.where(np.isfinite(p), p, 1.0)
    return out


def _confined_pvalues(seg: Counts, total: Counts, phi=1.0, level: float = 1.0) -> np.ndarray:
    """p that each segment fell AND fell more than the rest of its pair (intersection-union:
    the larger p). A segment of a drop that hit everyone is not "confined" to it. The pair's
    overdispersion `phi` widens the segment's own test (a calendar swing moves every segment),
    not the comparison with the rest (it cancels there). The comparison (the costly part) is
    made only where the own p is at most `level`: the others keep their own p, already above
    the family's level, where BH's verdicts and the passing q-values do not depend on it."""
    d = _deflate(seg, phi)
    own = proportion_drop_pvalues(d.bx, d.bn, d.rx, d.rn)
    near = np.flatnonzero(own <= level)
    if len(near):
        pick = Counts(*(np.asarray(getattr(seg, a))[near] for a in ("bx", "bn", "rx", "rn")))
        rest_of = Counts(*(np.broadcast_to(np.asarray(getattr(total, a)), own.shape)[near] for a in ("bx", "bn", "rx", "rn")))
        own[near] = np.maximum(own[near], _interaction_pvalues(pick, rest_of))
    return own


def _dispersion(entry: np.ndarray, converted: np.ndarray, start: int) -> float:
    """Quasi-binomial dispersion of the baseline's weekly cohorts around their linear trend
    (Pearson chi-square / dof, less its chance margin); 1.0 when they vary as chance allows.

    Real pipelines swing with the calendar (quarter-end closing, campaigns): then a recent
    month differs from the baseline more often than the binomial model says, and every count
    is divided by phi before the test, as a quasi-binomial model would. The trend is taken out
    first, so a decline that has already begun within the baseline is not mistaken for noise.
    """
    week = ((entry - start) // (7 * NS_PER_DAY)).astype(np.int64)
    if len(week) == 0:
        return 1.0
    n = np.bincount(week)
    x = np.bincount(week[converted], minlength=len(n))
    ok = n > 0
    weeks = int(ok.sum())
    p = x.sum() / n.sum()
    if weeks < 5 or not 0 < p < 1:
        return 1.0
    t, nw, rate = np.flatnonzero(ok).astype(float), n[ok].astype(float), x[ok] / n[ok]
    tm, rm = (nw * t).sum() / nw.sum(), (nw * rate).sum() / nw.sum()  # weighted least squares line
    slope = (nw * (t - tm) * (rate - rm)).sum() / (nw * (t - tm) ** 2).sum()
    fit = rm + slope * (t - tm)
    chi2 = float((nw * (rate - fit) ** 2).sum() / (p * (1 - p)))
    dof = weeks - 2
    # The ratio is noisy (sd sqrt(2/dof) under the binomial model): take it only beyond what
    # chance gives one time in 20, so it neither flips on and off from day to day nor costs a
    # binomial pipeline any power.
    return max(1.0, chi2 / dof - 1.645 * math.sqrt(2.0 / dof))


def _deflate(c: Counts, phi) -> Counts:
    """Counts divided by the dispersion (effective sample sizes; phi a number or one per
    cell), as whole deals."""
    if np.all(np.asarray(phi) <= 1.0):
        return c
    bn, rn = np.round(c.bn / phi).astype(np.int64), np.round(c.rn / phi).astype(np.int64)
    return Counts(np.minimum(np.round(c.bx / phi).astype(np.int64), bn), bn,
                  np.minimum(np.round(c.rx / phi).astype(np.int64), rn), rn)


def _lost_per_month(br, rr, rn, recent_days: int):
    return (br - rr) * rn * DAYS_PER_MONTH / recent_days


def _material(br, rr, rn, spec: ConversionDropSpec):
    """Relative drop, optional absolute floor, and cost in conversions a month (vectorised)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(br > 0, (br - rr) / br, 0.0)
    return ((rel >= spec.min_relative_drop) & (br - rr >= spec.min_absolute_drop) & (br - rr > 0)
            & (_lost_per_month(br, rr, rn, spec.recent_days) >= spec.min_lost_per_month))


# --- the per-day part -------------------------------------------------------------------------

@dataclass
class _Pair:
    """One stage pair on one day: its slices and counts."""

    index: int
    c: Cohorts
    base_start: int
    recent_start: int
    recent_end: int
    lo: int
    mid: int
    hi: int
    total: Counts
    segs: dict[str, Counts]  # per dimension, the last cell = no value
    phi: float = 1.0  # overdispersion of the baseline's weekly rates (1 = binomial)
    real: Callable[[int], int] = int  # company clock -> real clock, for the dates said
    p: float = float("nan")
    q: float = float("nan")


def _pair_at(i: int, c: Cohorts, state: Prepared, now_ns: int, segments: bool = True) -> _Pair:
    """Stage pair `i` as a scan at `now_ns` sees it: the two cohorts' slices, counts (per
    segment too, unless `segments` is False) and the baseline's dispersion."""
    base_start, recent_start, recent_end = _windows(state.spec, c.horizon_days, now_ns)
    lo, mid, hi = (int(x) for x in np.searchsorted(c.entry, [base_start, recent_start, recent_end], side="left"))
    cb = c.converted_before
    total = Counts(*(np.array([v], dtype=np.int64) for v in (cb[mid] - cb[lo], mid - lo, cb[hi] - cb[mid], hi - mid)))
    conv_b, conv_r = c.converted[lo:mid], c.converted[mid:hi]
    segs = {dim: _seg_counts(c.codes[dim][lo:mid], conv_b, c.codes[dim][mid:hi], conv_r, len(u))
            for dim, (_codes, u) in state.seg_dims.items()} if segments else {}
    phi = _dispersion(c.entry[lo:mid], conv_b, base_start)
    return _Pair(i, c, base_start, recent_start, recent_end, lo, mid, hi, total, segs, phi, state.real)


def detect_at(state: Prepared | None, now: datetime, with_evidence: bool = True) -> list[Insight]:
    """The insights as of `now` from a prepared state (scan and backtest both end here)."""
    if state is None or not state.pairs:
        return []
    spec = state.spec
    pairs: list[_Pair] = []
    blocks: list[tuple[int, str, np.ndarray, Counts]] = []  # (pair, dim, segments, their counts) tested
    floor = _report_floor(spec)  # a segment too small to be reported on its own is not tested in its family
    now_ns = state.clock(now)
    for i, c in enumerate(state.pairs):
        pair = _pair_at(i, c, state, now_ns)
        pairs.append(pair)
        for dim, sc in pair.segs.items():
            k = len(sc.bn) - 1
            ok = np.flatnonzero((sc.bn[:k] >= floor) & (sc.rn[:k] >= floor))
            if len(ok):
                blocks.append((i, dim, ok, Counts(sc.bx[ok], sc.bn[ok], sc.rx[ok], sc.rn[ok])))
    # Every segment test of the day in one vectorised call (pair totals and dispersion per row);
    # the comparison with the rest is made wherever the newest deals could still carry a row.
    seg_rows = _SegmentRows.of(blocks, pairs, spec.segment_fdr * NEWEST_LR_CAP)

    # Family 1: the overall test of every stage pair with enough deals.
    testable = [p for p in pairs if p.total.bn[0] >= spec.min_deals and p.total.rn[0] >= spec.min_deals]
    if testable:
        ps = proportion_drop_pvalues(*(np.concatenate([getattr(_deflate(p.total, p.phi), a) for p in testable])
                                       for a in ("bx", "bn", "rx", "rn")))
        for p, pv, qv in zip(testable, ps, bh_qvalues(ps)):
            p.p, p.q = float(pv), float(qv)
    # Family 2: every segment of every pair (a drop confined to one segment), each p weighed by
    # the segment's newest deals.
    seg_newest = _weigh_by_newest(seg_rows, pairs, now_ns, spec)
    seg_q = bh_qvalues(seg_rows.weighed) if len(seg_rows.p) else np.array([])

    own = _own_drops(pairs, seg_rows, seg_q, seg_newest, spec)
    out: list[Insight] = []
    reported: set[int] = set()
    for p in testable:
        br, rr = p.total.rates()
        if not (p.q <= spec.fdr and _material(br, rr, p.total.rn, spec)[0]):
            continue
        newest = _newest_check(p, now_ns)
        mix, explains = _mix_shift(p, state, spec, falling={dim for i, dim, _s in own if i == p.index})
        if not (_confirmed(p.q, newest, spec) and _persists(p, state, now_ns, newest)) and not (
                mix is not None and explains and _mix_persists(p, state, now_ns, newest, mix["dim"])):
            continue  # a chance dip of the recent cohort: its successors move on as before
        reported.add(p.index)
        out.append(_overall_insight(p, state, mix, explains, len(testable), with_evidence, newest, now_ns, own))
    out.extend(_segment_insights(pairs, reported, own, state, with_evidence))
    return out


def _newest_check(p: _Pair, now_ns: int, segment: tuple[str, int] | None = None) -> dict:
    """Are the deals that entered after the recent cohort (still in progress) moving on at the
    baseline's pace? One-sided: fewer moved on so far than the baseline's curve predicts.

    Each newest deal has been at the stage for tau = min(now - entry, horizon); the baseline
    says a share F(tau) of deals move on within tau (lost deals never do), so under "nothing
    changed" the number moved on so far has mean sum F(tau) and variance sum F(1 - F) (times
    the pair's overdispersion). These deals are not in either tested cohort, so by chance they
    confirm a chance dip only `confirm_p` of the time, while a real, lasting drop shows in them
    too: the `for:` of an alerting rule without waiting for another window.
    """
    c = p.c
    h = c.horizon_days * NS_PER_DAY
    end = int(np.searchsorted(c.entry, now_ns, side="left"))
    entry, after, base = c.entry[p.hi:end], c.moved_after[p.hi:end], c.moved_after[p.lo:p.mid]
    if segment is not None:  # that segment's newest deals against its own baseline
        dim, s = segment
        new, old = c.codes[dim][p.hi:end] == s, c.codes[dim][p.lo:p.mid] == s
        entry, after, base = entry[new], after[new], base[old]
    base = np.sort(base)  # _NEVER (never moved) sorts last
    tau = np.minimum(now_ns - entry, h)
    each = (after != _NEVER) & (after <= tau)
    moved = int(each.sum())
    share = np.searchsorted(base, tau, side="right") / max(len(base), 1)
    expected = float(share.sum())
    var = float((share * (1.0 - share)).sum()) * p.phi
    pv = float(ndtr((moved - expected + 0.5) / math.sqrt(var))) if var > 0 else None  # None: nothing to go by yet
    out = {"deals": int(len(entry)), "moved_on": moved, "expected": round(expected, 1),
           "since": iso_date(p.real(p.recent_end)), "p_value": pv}
    if segment is not None:
        out["as_before_lr"] = _as_before_lr(p.segs[segment[0]], segment[1], each, share, p.phi)
    elif len(entry):
        out["as_before_lr"] = _as_before_lr(p.total, 0, each, share, p.phi)
    return out


def _as_before_lr(sc: Counts, s: int, moved: np.ndarray, share: np.ndarray, phi: float) -> float:
    """How much likelier a segment's newest deals' moves are at the baseline's pace than at its
    recent cohort's: each deal moves on with the baseline's chance F(tau), or with F(tau) x the
    recent/baseline rate ratio (half a deal added to each count, so 0 won is not "never").
    Bernoulli likelihoods, the log ratio divided by the pair's overdispersion.

    Why: a segment's drop with q <= clear_q was said whatever its newest deals did, since they
    are a handful (3-8 deals at 250 a month) and a p-value of three deals says nothing. But a
    manager's chance dip (planted Instagram drop, 400 deals a month, held-out seed 82: m8
    77/114 -> 10/41, q 0.00014) had 15 newest deals of which 9 moved on, 7.6 expected as
    before, 2.7 at the dip's pace: a ratio of thousands says the dip is over, where three
    deals give a ratio of a few whatever they do. m8 was named and, set aside, hid the real
    Instagram drop."""
    ratio = ((sc.rx[s] + 0.5) / (sc.rn[s] + 1.0)) / ((sc.bx[s] + 0.5) / (sc.bn[s] + 1.0))
    ratio = min(float(ratio), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = np.where(moved, -math.log(ratio), np.log1p(-share) - np.log1p(-share * ratio))
    return float(np.exp(min(float(log_lr.sum()) / max(phi, 1.0), 700.0)))


def _gainsaid(newest: dict, spec: ConversionDropSpec) -> bool:
    """A segment's newest deals say, beyond doubt (the mirror of `clear_q`), that its dip is over."""
    return newest.get("as_before_lr", 0.0) * spec.clear_q >= 1.0


# A drop clear beyond doubt whose newest deals moved on as before is still said when its q,
# multiplied by how much likelier those moves are at the baseline's pace than at the dip's, is
# at most clear_q x this: a few dozen newest deals that merely fail to slow cannot end a dip
# whose cohorts are overwhelming (planted 54% -> 30% drops at q 3e-8 were missed at newest p
# 0.42), while they still end a strong chance dip (calm replay, 79% -> 46% at q 1e-4, 16 newest
# deals at the baseline's pace: 7.5e-4 at 1, said on 3 more days).
CLEAR_OUTWEIGH = 0.1


def _confirmed(q: float, newest: dict, spec: ConversionDropSpec) -> bool:
    """An overall drop is said when the newest deals confirm it (p <= `confirm_p`), or when it
    is clear beyond doubt (q <= `clear_q`) and none of them can be judged yet. One whose many
    newest deals move on as before is a dip that is over (a calm company replayed daily raised
    one on 6 days at q <= 0.0025 with the newest deals' p 0.48-0.97), unless its cohorts outweigh
    them: q x their as-before likelihood ratio <= clear_q x CLEAR_OUTWEIGH (p-to-e merging, as a
    segment's test is weighed: under "nothing changed" the dip's ratio over the baseline's
    averages 1 on the newest deals, which are in neither cohort) and that ratio is below
    1/clear_q, where a segment's dip is over too (`_gainsaid`). (A segment's newest deals
    weigh its test instead: _weigh_by_newest.)"""
    if spec.confirm_p >= 1:
        return True
    if q <= spec.clear_q and newest["p_value"] is None:
        return True
    # clear beyond doubt: its newest deals need only lean its way (p <= 2 x confirm_p)
    level = spec.confirm_p * (2 if q <= spec.clear_q else 1)
    if newest["p_value"] is not None and newest["p_value"] <= level:
        return True
    return (q <= spec.clear_q and not _gainsaid(newest, spec)
            and q * newest.get("as_before_lr", math.inf) <= spec.clear_q * CLEAR_OUTWEIGH)


def _persists(p: _Pair, state: Prepared, now_ns: int, newest: dict) -> bool:
    """Did the newest deals confirm the drop at each of `persist_weeks` weekly looks back too?
    (Alertmanager's `for:`, on the evidence that is new each week.) Each look is the newest
    check as that day's scan saw it (the pair's windows then, moves known by then) and must
    pass `confirm_p`. Adds newest["weeks_before"].

    Why: the daily windows slide by a day, so a chance dip of a few weeks' entries is tested
    on many days running, and on some of them its newest deals confirm it by chance. The
    newest deals of looks a week apart are other deals (for horizons up to a week, disjoint
    ones), so chance seldom confirms three weeks running, while a lasting drop slows them all.
    """
    spec = state.spec
    if spec.persist_weeks <= 0 or spec.confirm_p >= 1 or newest["p_value"] is None or p.q <= spec.clear_q:
        return True  # off, or clear beyond doubt (a weekly look of a strong drop may miss by chance)
    looks = []
    for w in range(1, spec.persist_weeks + 1):
        then = now_ns - 7 * w * NS_PER_DAY
        looks.append(_newest_check(_pair_at(p.index, p.c, state, then, segments=False), then))
    newest["weeks_before"] = looks
    return all(x["p_value"] is not None and x["p_value"] <= spec.confirm_p for x in looks)


# The level of each look of `_mix_persists`. A mix that moved is plain in the newest deals
# (planted 8% -> 45% shifts at 250-400 deals a month: p below 2e-7 at each look); a shift that
# ended shows in them only through the few deals at the window's edge (p 0.015-0.14 on
# companies whose shift ended two weeks before), so `confirm_p` (0.2) would let it through.
MIX_CONFIRM_P = 0.01


def _mix_newest(p: _Pair, now_ns: int, dim: str) -> dict:
    """Does the newest deals' mix (of dimension `dim`) still predict a lower rate than the
    baseline's? Each newest deal counts at its segment's baseline rate (a segment new since the
    baseline: the baseline's rate); under "the mix did not move" their mean is the baseline
    rate, with the variance of a deal drawn from the baseline's mix. One-sided z. Only the
    newest deals' segments are used, not their outcomes: they need no time to move on, so a
    handful of days of entries already says where deals come from. Deals without a value are
    left out on both sides: a CRM often fills a source or a manager in later, so the newest
    deals lack one more often, and the baseline's deals without one are often those dropped
    early (a low rate that would confirm any drop)."""
    c, sc = p.c, p.segs[dim]
    k = len(sc.bn) - 1
    end = int(np.searchsorted(c.entry, now_ns, side="left"))
    cells = c.codes[dim][p.hi:end]
    cells = cells[cells >= 0]
    bx, bn = sc.bx[:k], sc.bn[:k]
    base = float(bx.sum() / max(bn.sum(), 1))
    rate = np.where(bn > 0, bx / np.maximum(bn, 1), base)
    w = bn / max(bn.sum(), 1)
    var = float((w * (rate - base) ** 2).sum()) * len(cells)
    got = float(rate[cells].sum())
    pv = float(ndtr((got - base * len(cells)) / math.sqrt(var))) if var > 0 else None
    return {"deals": int(len(cells)), "rate_at_their_mix": round(got / max(len(cells), 1), 4),
            "baseline_rate": round(base, 4), "p_value": pv}


def _mix_persists(p: _Pair, state: Prepared, now_ns: int, newest: dict, dim: str) -> bool:
    """A mix shift confirmed by where the newest deals come from: their mix predicts a lower
    rate (`_mix_newest`, p <= MIX_CONFIRM_P) today and at each of `persist_weeks` weekly looks
    back, as `_persists` asks of their moves (a drop clear beyond doubt, q <= `clear_q`: today
    alone). Adds newest["mix"].

    Why: the newest deals have been at the stage a few days, so whether they move on slower
    says little (planted mix shifts at 250 deals a month were missed at newest p 0.2-0.5), while
    a mix that moved keeps moving the newest deals' mix, which needs no waiting. Under "nothing
    changed" their segments are drawn from the baseline's mix whatever the tested cohorts did,
    so a chance dip passes only at MIX_CONFIRM_P a look."""
    spec = state.spec
    today = _mix_newest(p, now_ns, dim)
    newest["mix"] = today

    def passes(x: dict) -> bool:
        return x["p_value"] is not None and x["p_value"] <= min(spec.confirm_p, MIX_CONFIRM_P)

    if not passes(today):
        return False
    if spec.persist_weeks <= 0 or p.q <= spec.clear_q:
        return True
    looks = []
    for w in range(1, spec.persist_weeks + 1):
        then = now_ns - 7 * w * NS_PER_DAY
        looks.append(_mix_newest(_pair_at(p.index, p.c, state, then), then, dim))
    today["weeks_before"] = looks
    return all(passes(x) for x in looks)


def _mix_shift(p: _Pair, state: Prepared, spec: ConversionDropSpec,
               falling: set[str] = frozenset()) -> tuple[dict | None, bool]:
    """(the mix change that pulled the rate down most, whether it explains the drop).

    For each dimension: the recent rate at the baseline mix (direct standardisation over the
    segments seen in both periods) and a CMH test of the within-segment drop. The drop IS a mix
    shift when, for some dimension, the within-segment drop is not significant or not material
    and the mix accounts for at least half of the raw drop, or the within-segment drop is not
    material at all (then nothing but the mix is left to say). Otherwise a mix change that still
    accounts for a quarter of the drop is returned as context for a real drop.

    `falling`: dimensions with a segment whose own drop passed its family (_own_drops): their
    segments' rates did not hold, so no mix over them is said. An Instagram collapse (70% ->
    12%, 12% of deals) with a chance rise of referral's share was said as "more deals come from
    referral" on 1 of 60 companies, the within-source drop being just under materiality.
    """
    br, rr = (float(x[0]) for x in p.total.rates())
    raw = br - rr
    best, best_explains = None, False
    for dim, sc in p.segs.items():
        both = (sc.bn > 0) & (sc.rn > 0)
        if both.sum() < 2 or dim in falling:
            continue
        sbr, srr = sc.rates()
        w = sc.bn[both] / sc.bn[both].sum()
        adj_base = float((w * sbr[both]).sum())
        adj_recent = float((w * srr[both]).sum())
        within = adj_base - adj_recent
        mix_part = raw - within
        if mix_part < 0.25 * raw:
            continue
        p_within = _cmh_pvalue(sc, p.phi)
        within_material = bool(_material(np.array([adj_base]), np.array([adj_recent]), p.total.rn, spec)[0])
        holds = p_within <= spec.fdr and within_material
        # A within-segment drop this detector would never say on its own (not material) is no
        # stage drop, whatever its share of a noisy raw drop: a mix shift only partly in the
        # recent cohort (slow pipelines) was said as "drop" when chance made it 49% of the drop.
        explains = not holds and (mix_part >= 0.5 * raw or not within_material)
        # The segment whose growth pulled the rate down most: share gained x how much worse it converts.
        k = len(sc.bn) - 1
        pooled = (sc.bx + sc.rx) / np.maximum(sc.bn + sc.rn, 1)
        share_b, share_r = sc.bn / max(sc.bn.sum(), 1), sc.rn / max(sc.rn.sum(), 1)
        pull = (share_r - share_b) * (pooled - br)
        pull[k] = np.inf  # "no value" is never named
        s = int(np.argmin(pull))
        if not np.isfinite(pull[s]) or pull[s] >= 0 or share_r[s] < share_b[s] + 0.05:
            continue
        cand = {"dim": dim, "seg": s, "mix_part": mix_part, "within": within, "p_within": p_within,
                "adj_base": adj_base, "adj_recent": adj_recent, "share_b": float(share_b[s]),
                "share_r": float(share_r[s]), "rate": float(pooled[s]),
                "seg_br": float(sbr[s]) if sc.bn[s] else None, "seg_rr": float(srr[s]) if sc.rn[s] else None}
        if (explains, mix_part) > (best_explains, best["mix_part"] if best else -np.inf):
            best, best_explains = cand, explains
    return best, best_explains


def _report_floor(spec: ConversionDropSpec) -> int:
    """Deals a segment needs on each side to be reported as a drop of its own. Before the newest
    deals' confirmation this was 20: on 16 recent deals a chance dip of a manager (79% -> 25%)
    passed the family's FDR; such a dip is over by the time the newest deals are judged.
    Segments below it are left out of the family (filtering on size, which says nothing of the
    drop, keeps its false discovery rate)."""
    return max(spec.min_segment_report_deals, spec.min_segment_deals)


def _select(candidates: list[tuple[str, int]], test, level: float, max_n: int,
            still_falls=None, eligible=None) -> list[tuple[str, int, float]]:
    """Forward selection: the strongest candidate first, each next one tested on the deals
    outside those already chosen; a BH family per step over every candidate still testable.
    `test(chosen, candidates) -> p-values` (NaN: too few deals left, not in the family);
    `still_falls(chosen) -> bool`: whether the deals outside the chosen ones still fell (when
    they did not, nothing is left to explain and the selection stops); `eligible(candidate) ->
    bool`: may be chosen when significant (a gate after the family's correction, never a
    filter of the family)."""
    chosen: list[tuple[str, int, float]] = []
    left = list(candidates)
    while left and len(chosen) < max_n:
        if chosen and still_falls is not None and not still_falls(chosen):
            break
        pv = np.asarray(test(chosen, left), dtype=float)
        qv = np.full(len(pv), np.inf)
        tested = np.isfinite(pv)
        qv[tested] = bh_qvalues(pv[tested])
        ok = np.array([k for k in np.flatnonzero(qv <= level) if eligible is None or eligible(left[k])], dtype=np.int64)
        if not len(ok):
            break
        cut = level * len(ok) / int(tested.sum())  # the step's BH cut-off in p
        j = _unconfounded(chosen, left, ok[np.argsort(pv[ok], kind="stable")], pv, test, cut)
        chosen.append((left[j][0], left[j][1], float(qv[j])))
        left.pop(j)
    return chosen


def _unconfounded(chosen, left, ok, pv, test, cut: float) -> int:
    """Which of the significant candidates `ok` (strongest first) to choose: the strongest,
    unless one of another dimension explains it better. That is when, outside that one's
    deals, the strongest no longer stands out (p above the step's cut-off, or too few deals
    left) and either the strongest is a person and the other is not (when the data cannot tell
    them apart, the source is named: naming a person is the costlier mistake), or neither is a
    person and the other keeps more of its lead outside the strongest (a smaller p). A source
    is never passed over for a person: a person who stands out beyond it is named next, tested
    on the deals outside it (held-out seed 148 at 250 deals a month: m1 kept more of his lead
    outside Instagram's deals, p 0.095 against none left for Instagram outside his 63, and a
    rule without this named m1 instead of the failing source).

    Why: a confounded manager (m1 got 70% of Instagram's deals, Instagram fell 60% -> 20%) was
    named as the driver, with Instagram, tested outside his deals, left unexplained: m1 185/316
    -> 24/97 (p 1.0e-5) beat Instagram 176/311 -> 21/91 (p 2.6e-5) by a chance dip of his few
    other deals (tuning seed 31 at 400 deals a month); outside each other neither stands out."""
    best = int(ok[0])
    for k in ok[1:]:
        other = left[k]
        if other[0] == left[best][0]:
            continue  # segments of one dimension are disjoint: neither explains the other
        p_best = float(test(chosen + [(other[0], other[1], 0.0)], [left[best]])[0])
        if np.isfinite(p_best) and p_best <= cut:
            continue
        best_person, other_person = left[best][0] in STRICT_DIMENSIONS, other[0] in STRICT_DIMENSIONS
        if best_person and not other_person:
            return int(k)
        if other_person and not best_person:
            continue
        p_other = float(test(chosen + [(left[best][0], left[best][1], 0.0)], [other])[0])
        if np.isfinite(p_other) and not p_other >= p_best:
            return int(k)
    return best


def _outside(p: _Pair, chosen) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the baseline and recent deals outside the chosen segments."""
    c = p.c
    keep_b = np.ones(p.mid - p.lo, dtype=bool)
    keep_r = np.ones(p.hi - p.mid, dtype=bool)
    for dim, s, _q in chosen:
        keep_b &= c.codes[dim][p.lo:p.mid] != s
        keep_r &= c.codes[dim][p.mid:p.hi] != s
    return keep_b, keep_r


def _counts_within(p: _Pair, state: Prepared, keep_b, keep_r) -> tuple[Counts, dict[str, Counts]]:
    c = p.c
    conv_b, conv_r = c.converted[p.lo:p.mid] & keep_b, c.converted[p.mid:p.hi] & keep_r
    total = Counts(*(np.array([v]) for v in (conv_b.sum(), keep_b.sum(), conv_r.sum(), keep_r.sum())))
    segs = {}
    for dim, (_codes, u) in state.seg_dims.items():
        k = len(u)
        cb = np.where(keep_b, c.codes[dim][p.lo:p.mid], -2)
        cr = np.where(keep_r, c.codes[dim][p.mid:p.hi], -2)
        cb, cr = np.where(cb == -1, k, cb), np.where(cr == -1, k, cr)
        vb, vr = cb >= 0, cr >= 0
        segs[dim] = Counts(np.bincount(cb[vb & conv_b], minlength=k + 1), np.bincount(cb[vb], minlength=k + 1),
                           np.bincount(cr[vr & conv_r], minlength=k + 1), np.bincount(cr[vr], minlength=k + 1))
    return total, segs


def _drivers(p: _Pair, state: Prepared, now_ns: int, own: "_OwnDrops") -> list[dict]:
    """Segments whose drop is significantly larger than the rest's, each after the ones before."""
    spec = state.spec
    drop = float(p.total.rates()[0][0] - p.total.rates()[1][0])
    if drop <= 0 or spec.max_drivers == 0:
        return []
    # The family is every segment with enough deals, whatever its drop: screening by the share
    # of the drop first (a filter that looks at the drop) left 3-5 candidates picked for falling
    # most, and a uniform drop's chance dips passed their BH at 0.01 (held-out seeds 80-159, 400
    # deals a month: 4 uniform drops of 80 named a driver, now none). The share is a gate after
    # the test. The price, in power: on held-out seeds a one-source drop (Сайт 60% -> 20%) lost
    # its driver on 2 more of 80 at 400 deals a month and 3 more at 250, a confounded source
    # (Instagram) on 2 of 80 at 250 (p 0.0008-0.0013 in a family of ~16); the drop is still said.
    # Of the Сайт drops said without naming Сайт (seeds 200-289, 12 of 180), Сайт ranked first
    # in its family of 15-16 every time, stopped by q alone (0.011-0.62; p 0.0007-0.08, the
    # points side always the weaker, its share 0.52-0.85): the rest's cohort had dipped
    # by chance. Measured and not adopted (`benchmarks/seg_drop.py planted --kinds ...`, commit
    # 6f9095c): dividing a source's or region's p by its newest deals' likelihood ratio against
    # the pooled drop (capped at NEWEST_LR_CAP) found 5 more Сайт and 2 more confounded
    # Instagram drops in 180 each, but named Сайт on a uniform x0.65 drop (seed 224 at 400: its
    # 26 newest deals moved on 3 times, 6 expected) and, weighing managers too, m8 on 2 days of a
    # calm replay (seed 90). Weighing the family by dimension gains nothing here: sources,
    # managers and regions each hold about 5 of the 16 (Сайт's q 0.012 -> 0.011).
    candidates, shares = [], {}
    for dim, sc in p.segs.items():
        k = len(sc.bn) - 1
        big = (sc.bn[:k] >= spec.min_segment_deals) & (sc.rn[:k] >= spec.min_segment_deals)
        sbr, srr = sc.rates()
        share = sc.rn[:k] * (sbr[:k] - srr[:k]) / (p.total.rn[0] * drop)
        for s in np.flatnonzero(big):
            candidates.append((dim, int(s)))
            shares[(dim, int(s))] = float(share[s])
    if not candidates:
        return []

    def test(chosen, left):
        if chosen:
            total, segs = _counts_within(p, state, *_outside(p, chosen))
        else:
            total, segs = p.total, p.segs
        cells = np.array([[getattr(segs[dim], a)[s] for a in ("bx", "bn", "rx", "rn")] for dim, s in left])
        big = (cells[:, 1] >= spec.min_segment_deals) & (cells[:, 3] >= spec.min_segment_deals)
        out = np.full(len(left), np.nan)  # too few deals left (inside the chosen ones): not tested
        if big.any():  # one vectorised call for the step's candidates
            one = Counts(*(cells[big, j] for j in range(4)))
            out[big] = _interaction_pvalues(one, Counts(*(np.repeat(getattr(total, a), big.sum()) for a in ("bx", "bn", "rx", "rn"))))
        return out

    def still_falls(chosen) -> bool:
        """The remainder's own drop: the overall's one-sided test (at the driver family's level)
        and materiality. A later "driver" of a remainder that held or rose would only be a
        segment that dipped by chance while the others rose."""
        rest, _segs = _counts_within(p, state, *_outside(p, chosen))
        if rest.bn[0] < spec.min_deals or rest.rn[0] < spec.min_deals:
            return False
        pv = float(proportion_drop_pvalues(*(getattr(_deflate(rest, p.phi), a) for a in ("bx", "bn", "rx", "rn")))[0])
        rbr, rrr = rest.rates()
        return pv <= spec.segment_fdr and bool(_material(rbr, rrr, rest.rn, spec)[0])

    drivers = []
    def carries(c) -> bool:
        """Carries `min_driver_share` of the drop, and its newest deals do not show its dip over
        (_as_before_lr: held-out seed 146 at 250 deals a month, m1 41/70 -> 1/23 by chance, 4 of
        his 11 newest deals moved on, a ratio of 758, was named instead of the falling source)."""
        return shares[c] >= spec.min_driver_share and not _gainsaid(_newest_check(p, now_ns, c), spec)

    chosen = _select(candidates, test, spec.segment_fdr, spec.max_drivers, still_falls, carries)
    if not chosen:
        # No segment stood out in the drivers' family, but one passed its own drop's (family 2:
        # fell, and more than the rest, its p weighed by its newest deals): the fall is that
        # segment's, the rest's dip chance. Instagram 70% -> 12% (12% of deals) with the rest
        # dipping 60% -> 53% by chance was said as a drop naming nobody (interaction q 0.014 in
        # the drivers' family of 9).
        chosen = [c for c in own.chosen(p, state) if shares.get(c[:2], 0.0) >= spec.min_driver_share][: spec.max_drivers]
    for dim, s, q in chosen:
        sc = p.segs[dim]
        sbr, srr = sc.rates()
        rest = Counts(p.total.bx - sc.bx[s], p.total.bn - sc.bn[s], p.total.rx - sc.rx[s], p.total.rn - sc.rn[s])
        rbr, rrr = rest.rates()
        drivers.append({
            **_segment_names(state, dim, s),
            "baseline_rate": round(float(sbr[s]), 4), "recent_rate": round(float(srr[s]), 4),
            "baseline_n": int(sc.bn[s]), "recent_n": int(sc.rn[s]),
            "rest_baseline_rate": round(float(rbr[0]), 4), "rest_recent_rate": round(float(rrr[0]), 4),
            "share_of_drop": round(float(sc.rn[s] * (sbr[s] - srr[s]) / (p.total.rn[0] * drop)), 4),
            "q_value": q, "method": DRIVER_METHOD,
        })
    return drivers


def _segment_names(state: Prepared, dim: str, s: int) -> dict:
    value = str(state.seg_dims[dim][1][s])
    return {"dimension": DIMENSION_NAMES.get(dim, dim), "segment": _segment_label(dim, value, state.manager_names),
            "segment_id": value}


def _severity(lost: float, rel: float, spec: ConversionDropSpec) -> str:
    """By impact: critical when the drop costs three times the minimum and is twice as deep."""
    return "critical" if lost >= 3 * max(spec.min_lost_per_month, 1.0) and rel >= 2 * spec.min_relative_drop else "warning"


def _common_facts(p: _Pair, state: Prepared, counts: Counts, q: float, pv: float) -> dict:
    c = p.c
    br, rr = (float(x[0]) for x in counts.rates())
    lost = float(_lost_per_month(br, rr, counts.rn[0], state.spec.recent_days))
    return {
        "from_stage": c.from_stage, "to_stage": c.to_stage, "to_won": c.to_stage == WON,
        "basis": CREATED if c.from_stage is None else "stage_entry",
        "baseline_rate": round(br, 4), "recent_rate": round(rr, 4),
        "baseline_n": int(counts.bn[0]), "recent_n": int(counts.rn[0]),
        "baseline_converted": int(counts.bx[0]), "recent_converted": int(counts.rx[0]),
        "relative_drop": round((br - rr) / br, 4) if br > 0 else 0.0,
        "lost_per_month": round(lost, 1),
        "baseline_start": iso_date(p.real(p.base_start)), "baseline_end": iso_date(p.real(p.recent_start) - 1),
        "recent_start": iso_date(p.real(p.recent_start)), "recent_end": iso_date(p.real(p.recent_end) - 1),
        "horizon_days": c.horizon_days, "horizon_source": c.horizon_source,
        "horizon_quantile": state.spec.horizon_quantile, "horizon_movers": c.movers,
        "p_value": pv, "q_value": q,
        "method": PROPORTION_METHOD, "overdispersion": round(p.phi, 2),  # counts were divided by it when > 1
    }


def _subject(c: Cohorts) -> dict:
    return {"cohort": CREATED, "to_stage": WON} if c.from_stage is None else {"from_stage": c.from_stage, "to_stage": c.to_stage}


def _evidence(p: _Pair, state: Prepared, keep_r: np.ndarray | None, with_evidence: bool) -> dict:
    """Recent-cohort deals (of `keep_r`, default all) that did not move on."""
    if not with_evidence:
        return {}
    c = p.c
    miss = ~c.converted[p.mid:p.hi]
    if keep_r is not None:
        miss &= keep_r
    rows = c.rows[p.mid:p.hi][miss]
    return {"deal_ids": sorted(state.deal_ids.iloc[rows].tolist())[: state.spec.max_evidence]}


def _missed(p: _Pair, keep_r: np.ndarray | None) -> dict:
    """The recent cohort's deals (of `keep_r`) that did not move on in time, and how many of them
    are still open at the scan (neither lost nor moved on since): when most are, the action
    must not call them lost (a manager who stopped working leaves his deals open)."""
    c = p.c
    miss = ~c.converted[p.mid:p.hi]
    if keep_r is not None:
        miss &= keep_r
    now = p.recent_end + c.horizon_days * NS_PER_DAY  # the scan's day (the windows end a horizon before it)
    after = c.moved_after[p.mid:p.hi]
    moved = (after != _NEVER) & (after <= now - c.entry[p.mid:p.hi])
    lost = np.zeros(len(miss), dtype=bool) if c.lost_at is None else c.lost_at[p.mid:p.hi] <= now
    return {"recent_missed": int(miss.sum()), "recent_missed_open": int((miss & ~moved & ~lost).sum())}


def _overall_insight(p: _Pair, state: Prepared, mix: dict | None, explains: bool, tests: int,
                     with_evidence: bool, newest: dict, now_ns: int, own: "_OwnDrops") -> Insight:
    spec = state.spec
    facts = _common_facts(p, state, p.total, p.q, p.p)
    facts["newest"] = newest
    facts["tests_in_run"] = tests
    facts["segments_checked"] = [DIMENSION_NAMES.get(d, d) for d in state.seg_dims]
    facts["weekly"] = _weekly(p.c.entry[p.lo:p.hi], p.c.converted[p.lo:p.hi], p.base_start, p.recent_end, p.real)
    facts["mix"] = None if mix is None else {
        **_segment_names(state, mix["dim"], mix["seg"]),
        "baseline_share": round(mix["share_b"], 4), "recent_share": round(mix["share_r"], 4),
        "segment_rate": round(mix["rate"], 4),
        "segment_baseline_rate": None if mix["seg_br"] is None else round(mix["seg_br"], 4),
        "segment_recent_rate": None if mix["seg_rr"] is None else round(mix["seg_rr"], 4),
        "rate_at_baseline_mix": round(facts["baseline_rate"] - mix["within"], 4),
        "share_of_drop": round(mix["mix_part"] / (facts["baseline_rate"] - facts["recent_rate"]), 4),
        "within_segment_p_value": mix["p_within"], "method": MIX_METHOD,
    }
    subject = _subject(p.c)
    keep_r = None
    if mix is not None and explains:
        facts["kind"] = "mix_shift"
        facts["drivers"] = []
        subject = {**subject, "kind": "mix_shift"}
        severity = "warning"
        keep_r = p.c.codes[mix["dim"]][p.mid:p.hi] == mix["seg"]
    else:
        facts["kind"] = "drop"
        facts["drivers"] = _drivers(p, state, now_ns, own)
        severity = _severity(facts["lost_per_month"], facts["relative_drop"], spec)
    facts.update(_missed(p, keep_r))
    return Insight(detector=NAME, severity=severity, audience=Audience("director"), subject=subject,
                   facts=facts, evidence=_evidence(p, state, keep_r, with_evidence))


@dataclass
class _SegmentRows:
    """One row per segment test of a day: which pair, dimension and segment, and its p."""

    pair: np.ndarray
    dim: list[str]  # per block, see `block`
    block: np.ndarray
    seg: np.ndarray
    p: np.ndarray
    weighed: np.ndarray | None = None  # p / the newest deals' likelihood ratio (_weigh_by_newest)

    @classmethod
    def of(cls, blocks, pairs: list[_Pair], level: float = 1.0) -> "_SegmentRows":
        if not blocks:
            empty = np.array([], dtype=np.int64)
            return cls(empty, [], empty, empty, np.array([]))
        sizes = [len(ok) for _i, _d, ok, _c in blocks]
        pair = np.repeat([i for i, _d, _ok, _c in blocks], sizes)
        cat = lambda a: np.concatenate([getattr(c, a) for *_x, c in blocks])  # noqa: E731
        seg = Counts(cat("bx"), cat("bn"), cat("rx"), cat("rn"))
        per_pair = np.array([[p.total.bx[0], p.total.bn[0], p.total.rx[0], p.total.rn[0]] for p in pairs])[pair]
        tot = Counts(per_pair[:, 0], per_pair[:, 1], per_pair[:, 2], per_pair[:, 3])
        phi = np.array([p.phi for p in pairs])[pair]
        return cls(pair, [d for _i, d, _ok, _c in blocks], np.repeat(np.arange(len(blocks)), sizes),
                   np.concatenate([ok for _i, _d, ok, _c in blocks]), _confined_pvalues(seg, tot, phi, level))


def _weigh_by_newest(rows: _SegmentRows, pairs: list[_Pair], now_ns: int,
                     spec: ConversionDropSpec) -> dict[int, dict]:
    """Divide each segment's p by its newest deals' likelihood ratio (the dip's pace over the
    baseline's, at most NEWEST_LR_CAP): fills rows.weighed, returns the newest check per row.

    Why: a segment's newest deals are a handful (2-13 at 250 deals a month), so a p-value of
    theirs says little, and as a gate (p <= confirm_p) they stopped planted drops whose 2-4
    newest deals happened to move on (q 0.003-0.02, newest p 0.3-0.6), while a chance dip
    passed it on some day of the weeks it lasted. Their likelihood ratio weighs them by what
    they can tell: near 1 for a few deals, large when many move on at the dip's pace. Under
    "nothing changed" it averages 1 over the newest deals, which are not in the cohorts, so
    p / ratio stays about a p-value (p-to-e merging); capped, so one lucky handful cannot carry
    a weak cohort. Rows whose p exceeds segment_fdr x the cap cannot pass and keep their p."""
    rows.weighed = rows.p.copy()
    newest: dict[int, dict] = {}
    if spec.confirm_p >= 1:  # the newest deals' confirmation is off: the cohorts alone decide
        return newest
    for r in np.flatnonzero(rows.p <= spec.segment_fdr * NEWEST_LR_CAP):
        i, dim, s = int(rows.pair[r]), rows.dim[rows.block[r]], int(rows.seg[r])
        nw = newest[int(r)] = _newest_check(pairs[i], now_ns, (dim, s))
        ratio = min(1.0 / nw["as_before_lr"], NEWEST_LR_CAP) if nw["as_before_lr"] > 0 else NEWEST_LR_CAP
        nw["dip_lr"] = round(ratio, 3)
        rows.weighed[r] = min(1.0, float(rows.p[r]) / max(ratio, 1e-300))
    return newest


@dataclass
class _OwnDrops:
    """The segment rows whose own drop passed family 2 (q <= segment_fdr), is material and whose
    newest deals do not show the dip over: {(pair, dim, segment): (q, newest check)}, and the
    family's BH cut-off in weighed p (later segments of a pair, retested outside the earlier
    ones and weighed by the same newest deals, must pass it)."""

    rows: dict[tuple[int, str, int], tuple[float, dict]]
    cut: float = 0.0

    def __iter__(self):
        return iter(self.rows)

    def chosen(self, p: _Pair, state: Prepared) -> list[tuple[str, int, float]]:
        """The pair's own drops to say, (dim, segment, q) each: the strongest unconfounded one
        first, each next one only if it still falls outside those before it; a manager only at
        a tenth of the family's level (a person is a segment with many chance dips)."""
        spec = state.spec
        cands = sorted((q, dim, s) for (i, dim, s), (q, _nw) in self.rows.items() if i == p.index)
        if not cands:
            return []
        weight = {(dim, s): self.rows[(p.index, dim, s)][1].get("dip_lr", 1.0) for _q, dim, s in cands}
        cands = _unconfounded_first(p, state, cands, self.cut, weight)
        chosen: list[tuple[str, int, float]] = [(cands[0][1], cands[0][2], cands[0][0])]
        for q, dim, s in cands[1:]:
            if _p_outside(p, state, dim, s, chosen) / weight[(dim, s)] <= self.cut:
                chosen.append((dim, s, q))
        return [(dim, s, q) for dim, s, q in chosen
                if dim not in STRICT_DIMENSIONS or q <= spec.segment_fdr / NEWEST_LR_CAP]


def _own_drops(pairs: list[_Pair], rows: _SegmentRows, seg_q: np.ndarray, seg_newest: dict[int, dict],
               spec: ConversionDropSpec) -> _OwnDrops:
    passed = seg_q <= spec.segment_fdr
    if not passed.any():
        return _OwnDrops({})
    found: dict[tuple[int, str, int], tuple[float, dict]] = {}
    for r in np.flatnonzero(passed):
        i, dim, s = int(rows.pair[r]), rows.dim[rows.block[r]], int(rows.seg[r])
        sc = pairs[i].segs[dim]
        br, rr = sc.rates()
        nw = seg_newest.get(int(r), {})
        # A dip its newest deals show to be over is neither said nor set aside as explaining
        # another segment's drop (it would hide the real one: held-out seed 82, see _as_before_lr).
        if _material(br[s:s + 1], rr[s:s + 1], sc.rn[s:s + 1], spec)[0] and not _gainsaid(nw, spec):
            found[(i, dim, s)] = (float(seg_q[r]), nw)
    return _OwnDrops(found, float(np.max(rows.weighed[passed])))


def _segment_insights(pairs: list[_Pair], reported: set[int], own: _OwnDrops, state: Prepared,
                      with_evidence: bool) -> list[Insight]:
    """Drops confined to one segment of a pair whose overall rate held (or was not reported)."""
    out = []
    for i in sorted({i for i, _d, _s in own if i not in reported}):
        for dim, s, q in own.chosen(pairs[i], state):
            out.append(_segment_insight(pairs[i], state, dim, s, q, with_evidence, own.rows[(i, dim, s)][1]))
    return out


def _p_outside(p: _Pair, state: Prepared, dim: str, s: int, others) -> float:
    """p that segment (dim, s) fell more than the rest on the deals outside the segments
    `others` ((dim, s, q) each); 1.0 when too few deals are left or the drop is not material."""
    spec = state.spec
    tot, segs = _counts_within(p, state, *_outside(p, others))
    sc = segs[dim]
    if sc.bn[s] < _report_floor(spec) or sc.rn[s] < _report_floor(spec):
        return 1.0
    br, rr = sc.rates()
    if not _material(br[s:s + 1], rr[s:s + 1], sc.rn[s:s + 1], spec)[0]:
        return 1.0
    return float(_confined_pvalues(Counts(sc.bx[s:s + 1], sc.bn[s:s + 1], sc.rx[s:s + 1], sc.rn[s:s + 1]), tot, p.phi)[0])


def _unconfounded_first(p: _Pair, state: Prepared, cands: list[tuple[float, str, int]], cut: float,
                        weight: dict[tuple[str, int], float]):
    """The candidates (q, dim, s), strongest first, unless another one of a different dimension
    explains the strongest better: the strongest no longer falls outside it (p above the
    family's cut-off `cut`) and it keeps more of its fall outside the strongest (a smaller p),
    or the strongest is a person and the other is not (when the data cannot tell the two apart,
    the source is named, not the person: naming a person is the costlier mistake, as for
    STRICT_DIMENSIONS); a source is never passed over for a person (held-out seed 142 at 250
    deals a month, a confounded m1: Instagram had no deals left outside his, he kept p 0.16
    outside Instagram's, and he was reported instead of it). Then that one goes first, and the
    strongest is tested outside it as every later one is.

    Why: with 25 managers, m1 had 70% of the failing source's deals; m1's q (0.0028) beat the
    source's (0.0046), m1 was reported and the source, tested outside m1's deals, was not:
    a manager who simply had more deals from the failing source was blamed (issue 9). Outside
    each other neither fell clearly (m1 outside the source 24/39 -> 7/17, p 0.13; the source
    outside m1 57/105 -> 18/40, p 0.21): the data could not tell them apart."""
    first = cands[0]
    for c in cands[1:]:
        if c[1] == first[1]:
            continue  # segments of one dimension are disjoint: neither explains the other
        p_first = _p_outside(p, state, first[1], first[2], [(c[1], c[2], c[0])]) / weight[(first[1], first[2])]
        if p_first <= cut:
            continue
        first_person, c_person = first[1] in STRICT_DIMENSIONS, c[1] in STRICT_DIMENSIONS
        if c_person and not first_person:
            continue  # as for drivers (_unconfounded): a source is never passed over for a person
        if (first_person and not c_person) or (
                _p_outside(p, state, c[1], c[2], [(first[1], first[2], first[0])]) / weight[(c[1], c[2])] < p_first):
            return [c] + [x for x in cands if x is not c]
    return cands


def _segment_insight(p: _Pair, state: Prepared, dim: str, s: int, q: float, with_evidence: bool,
                     newest: dict) -> Insight:
    sc = p.segs[dim]
    one = Counts(sc.bx[s:s + 1], sc.bn[s:s + 1], sc.rx[s:s + 1], sc.rn[s:s + 1])
    pv = float(_confined_pvalues(one, p.total, p.phi)[0])
    facts = _common_facts(p, state, one, q, pv)
    facts["method"] = f"{PROPORTION_METHOD}+{DRIVER_METHOD}"  # both tests; p is the larger of the two
    names = _segment_names(state, dim, s)
    rest = Counts(p.total.bx - one.bx, p.total.bn - one.bn, p.total.rx - one.rx, p.total.rn - one.rn)
    rbr, rrr = rest.rates()
    obr, orr = p.total.rates()
    facts.update({
        "kind": "segment_drop", "segment": names, "drivers": [],
        "rest_baseline_rate": None if rest.bn[0] == 0 else round(float(rbr[0]), 4),
        "rest_recent_rate": None if rest.rn[0] == 0 else round(float(rrr[0]), 4),
        "rest_baseline_n": int(rest.bn[0]), "rest_recent_n": int(rest.rn[0]),
        "overall_baseline_rate": round(float(obr[0]), 4), "overall_recent_rate": round(float(orr[0]), 4),
        "newest": newest,
        **_missed(p, p.c.codes[dim][p.mid:p.hi] == s),
    })
    mask_all = p.c.codes[dim][p.lo:p.hi] == s
    facts["weekly"] = _weekly(p.c.entry[p.lo:p.hi][mask_all], p.c.converted[p.lo:p.hi][mask_all], p.base_start, p.recent_end, p.real)
    subject = {**_subject(p.c), "dimension": names["dimension"], "segment": names["segment_id"]}
    return Insight(detector=NAME, severity=_severity(facts["lost_per_month"], facts["relative_drop"], state.spec),
                   audience=Audience("director"), subject=subject, facts=facts,
                   evidence=_evidence(p, state, p.c.codes[dim][p.mid:p.hi] == s, with_evidence))


def _weekly(entry: np.ndarray, converted: np.ndarray, start: int, end: int,
            real: Callable[[int], int] = int) -> list[dict]:
    """Weekly cohorts from the baseline start to the recent end, for the chart."""
    week = 7 * NS_PER_DAY
    n_weeks = int(-(-(end - start) // week))
    inside = (entry != _NEVER) & (entry >= start) & (entry < end)
    w = ((entry[inside] - start) // week).astype(np.int64)
    n = np.bincount(w, minlength=n_weeks)
    x = np.bincount(w[converted[inside]], minlength=n_weeks)
    return [
        {"week_start": iso_date(real(start + k * week)), "rate": None if n[k] == 0 else round(float(x[k] / n[k]), 4), "n": int(n[k])}
        for k in range(n_weeks)
    ]
