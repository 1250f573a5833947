"""Shared statistics for the statistical detectors (conversion_drop, manager_load, loss_reasons).

"Statistics before alarms" (DESIGN.md): every alarm needs a test, and a run that tests many
things at once must correct for it. These helpers are small, vectorised over numpy arrays (a
scan may test hundreds of stage x segment cells) and checked against known values in
tests/detectors/test_stats.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

NS_PER_DAY = 86_400 * 10**9
NAT_NS = np.iinfo(np.int64).min  # what pandas uses for NaT in int64 views


def bh_qvalues(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), same order as the input.

    q_i = min over j with p_j >= p_i of p_j * m / rank_j, capped at 1 (as R's p.adjust "BH").
    A test is significant at false-discovery rate `fdr` when q <= fdr. NaN p-values are not
    counted as tests and come back as NaN.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def proportion_drop_pvalues(base_x, base_n, recent_x, recent_n) -> np.ndarray:
    """One-sided Fisher exact p-values for "the recent rate is lower than the baseline rate".

    Vectorised: each position is one 2x2 table (successes / trials on both sides). Fisher's test
    conditions on the total successes, so under H0 the recent successes follow a hypergeometric
    distribution; the p-value is P(X <= recent_x). Exact at every sample size, so no switch
    between a z-test and an exact test is needed. Empty sides give NaN (no test).
    """
    bx, bn, rx, rn = (np.asarray(a, dtype=np.int64) for a in (base_x, base_n, recent_x, recent_n))
    total = bn + rn
    successes = bx + rx
    with np.errstate(invalid="ignore", divide="ignore"):
        p = _st.hypergeom.cdf(rx, total, successes, rn)
    p = np.where((bn > 0) & (rn > 0), np.clip(p, 0.0, 1.0), np.nan)
    return np.atleast_1d(p).astype(float)


PROPORTION_METHOD = "fisher_exact_one_sided"


def rate_vs_rest_pvalues(value, capacity, team_value, team_capacity, direction) -> np.ndarray:
    """Exact conditional Poisson test of one person's count against the rest of their team.

    If everyone in a team draws work at the same rate per unit of capacity, then given the
    team total K, one person's count k is Binomial(K, c / C) (c their capacity, C the team's).
    `direction` "over" gives P(X >= k), "under" gives P(X <= k). Counts are whole numbers.
    """
    k = np.asarray(value, dtype=np.int64)
    c = np.asarray(capacity, dtype=float)
    n = np.asarray(team_value, dtype=np.int64)
    share = np.clip(c / np.asarray(team_capacity, dtype=float), 0.0, 1.0)
    over = np.asarray(direction) == "over"
    p_over = _st.binom.sf(k - 1, n, share)
    p_under = _st.binom.cdf(k, n, share)
    return np.atleast_1d(np.clip(np.where(over, p_over, p_under), 0.0, 1.0)).astype(float)


LOAD_METHOD = "conditional_poisson_binomial"


@dataclass(frozen=True)
class ShiftTest:
    statistic: float
    p_value: float
    dof: int
    pooled: tuple[str, ...]  # categories pooled into one cell because they were too rare to test alone


def category_shift_test(baseline: pd.Series, recent: pd.Series, *, min_expected: float = 5.0) -> ShiftTest:
    """Chi-square test that the mix of categories differs between two periods.

    `baseline` and `recent` are counts indexed by category. Categories whose expected count in
    either period is below `min_expected` are pooled into one cell first (the chi-square
    approximation is poor for tiny cells); if fewer than two cells remain there is no test and
    the p-value is 1.0.
    """
    table = pd.concat([baseline.rename("b"), recent.rename("r")], axis=1).fillna(0).astype(float)
    table = table[(table["b"] + table["r"]) > 0]
    if len(table) < 2 or table["b"].sum() == 0 or table["r"].sum() == 0:
        return ShiftTest(0.0, 1.0, 0, ())
    col_tot = table.sum(axis=0)
    row_tot = table.sum(axis=1)
    expected_min = np.minimum(row_tot * col_tot["b"], row_tot * col_tot["r"]) / col_tot.sum()
    rare = expected_min < min_expected
    pooled: tuple[str, ...] = ()
    if rare.sum() >= 1 and len(table) > 2:
        pooled = tuple(str(i) for i in table.index[rare])
        kept = table[~rare]
        pooled_row = table[rare].sum(axis=0).to_frame().T
        table = pd.concat([kept, pooled_row], ignore_index=True)
    if len(table) < 2:
        return ShiftTest(0.0, 1.0, 0, pooled)
    stat, p, dof, _ = _st.chi2_contingency(table.to_numpy().T, correction=len(table) == 2)
    return ShiftTest(float(stat), float(p), int(dof), pooled)


SHIFT_METHOD = "chi_square"


# --- time arrays -------------------------------------------------------------------------
# Detectors work on int64 nanoseconds so windows and horizons are plain integer comparisons,
# whatever resolution (ns, us) the loader produced; detectors.columns.to_ns converts columns.

def ts_ns(moment) -> int:
    """One tz-aware datetime -> int64 ns since epoch UTC."""
    t = pd.Timestamp(moment)
    if t.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(t.tz_convert("UTC").as_unit("ns").value)


def iso_date(ns: int) -> str:
    """int64 ns -> '2026-10-01' (UTC date), for facts."""
    return pd.Timestamp(ns, tz="UTC").date().isoformat()


def iso_datetime(ns: int) -> str | None:
    """int64 ns -> ISO datetime with offset, or None for NaT."""
    if ns == NAT_NS:
        return None
    return pd.Timestamp(ns, tz="UTC").isoformat()
