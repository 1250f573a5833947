"""conversion_drop: stage-to-stage conversion fell in a recent period against a baseline.

Method: conversion within a fixed horizon on fully observed entry cohorts.
A deal belongs to the cohort of stage S when its first entry into S falls in the window; it
"converted" when it reached any later stage, or was won, within `horizon_days` of that entry.
Lost deals are failures (a competing event), never censored. The recent window ends
`horizon_days` before `now`, so every deal in either cohort has had the full horizon to move on.

Why this and not "share that moved on so far": deals that entered last week have not had time
to move on, so the raw share is always lower for young cohorts and reports a drop whenever deal
volume rises. With every cohort observed for the same fixed horizon, volume cannot bias the
rate; the price is that a drop is seen `horizon_days` later, which `horizon_days` tunes.
A Kaplan-Meier / cumulative-incidence estimate would see drops sooner but is harder to explain
to a director in one sentence ("of deals that reached Proposal in May, 41% reached Contract
within 30 days").

Tests: every adjacent pair of `CrmData.stages` plus last stage -> won, overall and per segment
(`segments`), one-sided Fisher exact, Benjamini-Hochberg across every test of the run. An
insight fires for a stage pair only when the overall drop has enough deals on both sides, is
large relatively and absolutely, and survives the correction. Its `drivers` are the segments
that carry most of the drop (share_of_drop: how much of the overall drop disappears if that
segment had kept its baseline rate).

When stage_history was derived from deals (no real history), there is nothing to measure:
the detector returns no insights; `skip_reason(data)` says why for the scan summary.

A scan reads only history from the baseline start on ("first entry" = first since then), which
on years of history skips most rows. Backtest calls `prepare` once and `detect_at` per day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from crm.data import CrmData
from crm.schema import TABLES
from detectors.insight import Audience, Insight
from detectors.registry import DetectorSpec, register
from detectors.stats import (
    NAT_NS, NS_PER_DAY, PROPORTION_METHOD, bh_qvalues, iso_date, positions, proportion_drop_pvalues,
    to_ns, ts_ns,
)

NAME = "conversion_drop"
WON = "won"
_NEVER = np.iinfo(np.int64).max  # "did not happen" in first-entry matrices

DIMENSION_NAMES = {"manager_id": "manager"}  # how a segment column is called for people


class ConversionDropSpec(DetectorSpec):
    """Thresholds of conversion_drop; defaults fire only on a clear, significant drop."""

    horizon_days: int = Field(30, ge=1, le=365, description="a deal converts if it moves on within this many days of entering the stage")
    recent_days: int = Field(28, ge=7, le=365, description="length of the recent cohort window (it ends horizon_days before now)")
    baseline_days: int = Field(91, ge=7, le=1095, description="length of the baseline window just before the recent one")
    min_deals: int = Field(30, ge=1, description="deals needed in each of the two cohorts")
    min_relative_drop: float = Field(0.15, gt=0, lt=1, description="(baseline - recent) / baseline at least this")
    min_absolute_drop: float = Field(0.05, gt=0, lt=1, description="baseline - recent at least this (0.05 = 5 points)")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate across all tests of a run")
    segments: list[str] = Field(default_factory=lambda: ["source", "manager_id", "region"], description="deal columns to drill down by")
    min_segment_deals: int = Field(10, ge=1, description="deals a segment needs on each side to be named as a driver")
    min_driver_share: float = Field(0.25, ge=0, le=1, description="a driver carries at least this share of the drop")
    max_drivers: int = Field(3, ge=0, le=10, description="name at most this many driving segments")
    max_evidence: int = Field(200, ge=0, description="at most this many deal ids in evidence")

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, v: list[str]) -> list[str]:
        deal_cols = {c.name for c in TABLES["deals"].columns}
        bad = [s for s in v if s not in deal_cols]
        if bad:
            raise ValueError(f"unknown deal column(s) {bad}; choose from {sorted(deal_cols)}")
        return v


def skip_reason(data: CrmData) -> str | None:
    """One line saying why this detector cannot say anything about `data`, or None."""
    if data.stage_history_derived:
        return ("no stage history: it was derived from deals' creation, so conversion between "
                "stages cannot be measured (provide stage_history.csv)")
    if len(data.stages) < 1:
        return "no pipeline stages known (provide stages.csv or source.stages in config)"
    return None


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
    won = (deals["status"] == WON).to_numpy(dtype=bool, na_value=False)
    closed = to_ns(deals["closed_at"]) if "closed_at" in deals else np.full(n_deals, NAT_NS)
    won_at = np.where(closed != NAT_NS, closed, _NEVER)
    # A won deal without a close date was won at some time after its last recorded entry.
    last_seen = np.where(mat[:, :-1] == _NEVER, np.iinfo(np.int64).min, mat[:, :-1]).max(axis=1)
    won_at = np.where(won_at == _NEVER, last_seen, won_at)
    mat[:, -1] = np.where(won, won_at, _NEVER)
    return mat


def _segment_codes(deals: pd.DataFrame, column: str) -> tuple[np.ndarray, pd.Index] | None:
    if column not in deals.columns or deals[column].isna().all():
        return None
    codes, uniques = pd.factorize(deals[column], use_na_sentinel=True)
    return codes, pd.Index(uniques)


def _segment_label(dimension: str, value: str, manager_names: dict[str, str]) -> str:
    if dimension == "manager_id":
        return manager_names.get(value, value)
    return value


@dataclass
class Cohorts:
    """The deals that ever entered one stage, sorted by that entry: each day's baseline and
    recent cohorts are then two slices found by binary search."""

    from_stage: str
    to_stage: str
    rows: np.ndarray  # deal rows, by entry time
    entry: np.ndarray  # first-entry ns, ascending
    converted: np.ndarray  # moved on within the horizon (does not depend on the day)
    converted_before: np.ndarray  # converted_before[k] = converted deals among the first k
    codes: dict[str, np.ndarray]  # segment code of each row per dimension (-1 = none)


@dataclass
class Prepared:
    """What does not change from day to day: cohorts per stage pair, segment names (for backtest)."""

    spec: ConversionDropSpec
    pairs: list[Cohorts]
    seg_dims: dict[str, tuple[np.ndarray, pd.Index]]
    manager_names: dict[str, str]
    deal_ids: pd.Series


def _windows(spec: ConversionDropSpec, now: datetime) -> tuple[int, int, int, int]:
    """(horizon, base_start, recent_start, recent_end) in ns, whole UTC days, so every scan of
    one day sees the same cohorts and the dates never overlap."""
    horizon = spec.horizon_days * NS_PER_DAY
    recent_end = (ts_ns(now) - horizon) // NS_PER_DAY * NS_PER_DAY
    recent_start = recent_end - spec.recent_days * NS_PER_DAY
    return horizon, recent_start - spec.baseline_days * NS_PER_DAY, recent_start, recent_end


def prepare(data: CrmData, spec: ConversionDropSpec, since: int | None = None) -> Prepared | None:
    """The day-independent part; None when there is nothing to measure (see skip_reason).

    `since` (ns) skips older history: a scan passes its baseline start, backtest reads it all.
    """
    deals = data.deals
    if skip_reason(data) is not None or deals is None or len(deals) == 0:
        return None
    first = _first_entries(data, since=NAT_NS + 1 if since is None else since)
    later = np.minimum.accumulate(first[:, ::-1], axis=1)[:, ::-1]
    horizon = spec.horizon_days * NS_PER_DAY
    seg_dims = {c: sc for c in spec.segments if (sc := _segment_codes(deals, c)) is not None}
    stages = list(data.stages)
    pairs = []
    for i, from_stage in enumerate(stages):
        entry = first[:, i]
        rows = np.flatnonzero(entry != _NEVER)
        rows = rows[np.argsort(entry[rows], kind="stable")]
        e, reached = entry[rows], later[rows, i + 1]
        converted = (reached != _NEVER) & (reached - e <= horizon)
        pairs.append(Cohorts(
            from_stage=from_stage, to_stage=stages[i + 1] if i + 1 < len(stages) else WON,
            rows=rows, entry=e, converted=converted,
            converted_before=np.concatenate([[0], np.cumsum(converted, dtype=np.int64)]),
            codes={dim: codes[rows] for dim, (codes, _u) in seg_dims.items()},
        ))
    return Prepared(
        spec=spec, pairs=pairs, seg_dims=seg_dims,
        manager_names=dict(zip(data.managers["manager_id"], data.managers["name"])),
        deal_ids=deals["deal_id"],
    )


@register(NAME, ConversionDropSpec, requires=(), summary="stage-to-stage conversion dropped (recent vs baseline, fully observed cohorts)")
def detect(data: CrmData, spec: ConversionDropSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, since=_windows(spec, now)[1]), now)


def detect_at(state: Prepared | None, now: datetime) -> list[Insight]:
    """The insights as of `now` from a prepared state (scan and backtest both end here)."""
    if state is None or not state.pairs:
        return []
    spec, seg_dims = state.spec, state.seg_dims
    manager_names = state.manager_names
    horizon, base_start, recent_start, recent_end = _windows(spec, now)

    # One row per test: pair index, dimension (None = overall), segment code, counts.
    cols: dict[str, list] = {"pair": [], "dim": [], "seg": [], "bx": [], "bn": [], "rx": [], "rn": []}

    def add(pair: int, dim: str | None, seg, bx, bn, rx, rn) -> None:
        n = len(seg)
        cols["pair"].append(np.full(n, pair, dtype=np.int64))
        cols["dim"].append(np.full(n, dim, dtype=object))
        for key, v in (("seg", seg), ("bx", bx), ("bn", bn), ("rx", rx), ("rn", rn)):
            cols[key].append(np.asarray(v, dtype=np.int64))

    slices = []
    for i, c in enumerate(state.pairs):
        lo, mid, hi = np.searchsorted(c.entry, [base_start, recent_start, recent_end], side="left")
        slices.append((lo, mid, hi))
        cb = c.converted_before
        add(i, None, [-1], [cb[mid] - cb[lo]], [mid - lo], [cb[hi] - cb[mid]], [hi - mid])
        conv_b, conv_r = c.converted[lo:mid], c.converted[mid:hi]
        for dim, (_codes, uniques) in seg_dims.items():
            k = len(uniques)
            code_b, code_r = c.codes[dim][lo:mid], c.codes[dim][mid:hi]
            vb, vr = code_b >= 0, code_r >= 0
            bn = np.bincount(code_b[vb], minlength=k)
            bx = np.bincount(code_b[vb & conv_b], minlength=k)
            rn = np.bincount(code_r[vr], minlength=k)
            rx = np.bincount(code_r[vr & conv_r], minlength=k)
            s = np.flatnonzero((bn > 0) | (rn > 0))
            add(i, dim, s, bx[s], bn[s], rx[s], rn[s])

    arr = {k: np.concatenate(v) for k, v in cols.items()}
    # Only cells where a drop could fire count as tests: fewer tests, less correction. The
    # others need no p-value either (drivers read q, which only tests have).
    testable = (arr["bn"] >= spec.min_deals) & (arr["rn"] >= spec.min_deals)
    arr["p"] = np.full(len(testable), np.nan)
    arr["q"] = np.full(len(testable), np.nan)
    if testable.any():
        arr["p"][testable] = proportion_drop_pvalues(arr["bx"][testable], arr["bn"][testable],
                                                     arr["rx"][testable], arr["rn"][testable])
        arr["q"][testable] = bh_qvalues(arr["p"][testable])
    with np.errstate(invalid="ignore", divide="ignore"):
        arr["br"] = arr["bx"] / arr["bn"]
        arr["rr"] = arr["rx"] / arr["rn"]
    tests: pd.DataFrame | None = None  # the table, built only when some pair drops (for its drivers)

    out: list[Insight] = []
    for k in np.flatnonzero(testable & (arr["seg"] == -1)):  # the overall test of each pair
        t = SimpleNamespace(**{c: v[k] for c, v in arr.items()})
        abs_drop = t.br - t.rr
        rel_drop = abs_drop / t.br if t.br > 0 else 0.0
        if not (abs_drop >= spec.min_absolute_drop and rel_drop >= spec.min_relative_drop and t.q <= spec.fdr):
            continue
        if tests is None:
            tests = pd.DataFrame(arr)
        seg_rows = tests[(tests["pair"] == t.pair) & tests["dim"].notna()]
        drivers = _drivers(seg_rows, t, seg_dims, manager_names, spec)
        c = state.pairs[t.pair]
        lo, mid, hi = slices[t.pair]
        weekly = _weekly(c.entry[lo:hi], c.converted[lo:hi], base_start, recent_end)
        evidence = sorted(state.deal_ids.iloc[c.rows[mid:hi][~c.converted[mid:hi]]].tolist())[: spec.max_evidence]
        severity = "critical" if rel_drop >= 2 * spec.min_relative_drop and abs_drop >= 2 * spec.min_absolute_drop else "warning"
        from_stage, to_stage = c.from_stage, c.to_stage
        facts = {
            "from_stage": from_stage, "to_stage": to_stage, "to_won": to_stage == WON,
            "baseline_rate": round(float(t.br), 4), "recent_rate": round(float(t.rr), 4),
            "baseline_n": int(t.bn), "recent_n": int(t.rn),
            "baseline_converted": int(t.bx), "recent_converted": int(t.rx),
            "relative_drop": round(float(rel_drop), 4),
            "baseline_start": iso_date(base_start), "baseline_end": iso_date(recent_start - 1),
            "recent_start": iso_date(recent_start), "recent_end": iso_date(recent_end - 1),
            "horizon_days": spec.horizon_days,
            "p_value": float(t.p), "q_value": float(t.q), "method": PROPORTION_METHOD,
            "tests_in_run": int(testable.sum()),
            "drivers": drivers, "weekly": weekly,
        }
        out.append(Insight(
            detector=NAME, severity=severity, audience=Audience("director"),
            subject={"from_stage": from_stage, "to_stage": to_stage},
            facts=facts, evidence={"deal_ids": evidence},
        ))
    return out


def _drivers(seg_rows: pd.DataFrame, overall, seg_dims, manager_names, spec: ConversionDropSpec) -> list[dict]:
    """Segments that carry most of the overall drop, largest share first."""
    drop = overall.br - overall.rr
    if drop <= 0 or seg_rows.empty:
        return []
    # Both sides need enough deals for the segment's own rates to mean something.
    seg_rows = seg_rows[(seg_rows["rn"] >= spec.min_segment_deals) & (seg_rows["bn"] >= spec.min_segment_deals)]
    # Counterfactual: had the segment kept its baseline rate.
    base_rate = seg_rows["br"]
    share = (seg_rows["rn"] / overall.rn) * (base_rate - seg_rows["rr"]) / drop
    # The rest of the same dimension (overall minus this segment), to see whether the drop is
    # concentrated here rather than spread evenly (an even drop has no driver worth naming).
    with np.errstate(invalid="ignore", divide="ignore"):
        rest_br = (overall.bx - seg_rows["bx"]) / (overall.bn - seg_rows["bn"])
        rest_rr = (overall.rx - seg_rows["rx"]) / (overall.rn - seg_rows["rn"])
    seg_drop = base_rate - seg_rows["rr"]
    rest_drop = (rest_br - rest_rr).fillna(0.0)
    concentrated = (seg_drop >= rest_drop + spec.min_absolute_drop) & (seg_drop >= spec.min_relative_drop * base_rate)
    seg_rows = seg_rows.assign(share=share)
    seg_rows = seg_rows[concentrated & (seg_rows["share"] >= spec.min_driver_share)].sort_values(["share", "dim", "seg"], ascending=[False, True, True])
    drivers = []
    for r in seg_rows.head(spec.max_drivers).itertuples():
        uniques = seg_dims[r.dim][1]
        value = str(uniques[r.seg])
        drivers.append({
            "dimension": DIMENSION_NAMES.get(r.dim, r.dim),
            "segment": _segment_label(r.dim, value, manager_names),
            "segment_id": value,
            "baseline_rate": round(float(r.br), 4),
            "recent_rate": round(float(r.rr), 4),
            "baseline_n": int(r.bn), "recent_n": int(r.rn),
            "share_of_drop": round(float(r.share), 4),
            "q_value": None if np.isnan(r.q) else float(r.q),
        })
    return drivers


def _weekly(entry: np.ndarray, converted: np.ndarray, start: int, end: int) -> list[dict]:
    """Weekly cohorts from the baseline start to the recent end, for the chart."""
    week = 7 * NS_PER_DAY
    n_weeks = int(-(-(end - start) // week))
    inside = (entry != _NEVER) & (entry >= start) & (entry < end)
    w = ((entry[inside] - start) // week).astype(np.int64)
    n = np.bincount(w, minlength=n_weeks)
    x = np.bincount(w[converted[inside]], minlength=n_weeks)
    return [
        {"week_start": iso_date(start + k * week), "rate": None if n[k] == 0 else round(float(x[k] / n[k]), 4), "n": int(n[k])}
        for k in range(n_weeks)
    ]
