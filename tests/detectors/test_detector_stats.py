"""detectors.stats against known values (R's p.adjust, Fisher's tea, exact binomial tails)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from detectors.stats import (
    bh_qvalues, category_shift_test, iso_date, proportion_drop_pvalues, rate_vs_rest_pvalues, ts_ns,
)
from detectors.columns import positions, to_ns


def test_bh_matches_r_p_adjust():
    # p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") == c(0.02, 0.04, 0.04, 0.02)
    assert bh_qvalues([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bh_is_monotone_capped_and_skips_nan():
    q = bh_qvalues([0.9, np.nan, 0.5, 0.99])
    assert np.isnan(q[1])
    # three real tests: 0.5*3/1=1.5 -> capped by the later ones, min(1.35, 0.99) ...
    assert q[0] == pytest.approx(0.99) and q[2] == pytest.approx(0.99) and q[3] == pytest.approx(0.99)
    assert bh_qvalues([]).size == 0


def test_fisher_one_sided_lady_tasting_tea():
    # 1 of 4 recent vs 3 of 4 baseline: P = 17/70
    assert proportion_drop_pvalues([3], [4], [1], [4])[0] == pytest.approx(17 / 70)


@pytest.mark.parametrize("bx,bn,rx,rn", [(40, 100, 25, 100), (300, 1000, 280, 1000), (5, 30, 9, 30), (0, 10, 0, 12)])
def test_fisher_matches_scipy(bx, bn, rx, rn):
    expected = st.fisher_exact([[rx, rn - rx], [bx, bn - bx]], alternative="less").pvalue
    assert proportion_drop_pvalues([bx], [bn], [rx], [rn])[0] == pytest.approx(expected, rel=1e-9)


def test_fisher_no_test_for_an_empty_side():
    assert np.isnan(proportion_drop_pvalues([3], [0], [1], [4])[0])


def test_rate_vs_rest_exact_binomial_tails():
    # 9 of 10 with half the capacity: P(X >= 9 | n=10, p=.5) = 11/1024
    assert rate_vs_rest_pvalues([9], [1.0], [10], [2.0], ["over"])[0] == pytest.approx(11 / 1024)
    # 1 of 10: P(X <= 1) = 11/1024 as well
    assert rate_vs_rest_pvalues([1], [1.0], [10], [2.0], ["under"])[0] == pytest.approx(11 / 1024)
    # exactly the expected share is nowhere near significant
    assert rate_vs_rest_pvalues([10], [0.5], [40], [2.0], ["over"])[0] > 0.4


def test_category_shift_matches_scipy_and_detects_shift():
    b = pd.Series({"price": 50, "timing": 30, "competitor": 20})
    r = pd.Series({"price": 20, "timing": 30, "competitor": 50})
    res = category_shift_test(b, r)
    stat, p, dof, _ = st.chi2_contingency(np.array([[50, 30, 20], [20, 30, 50]]))
    assert res.p_value == pytest.approx(p) and res.statistic == pytest.approx(stat) and res.dof == dof == 2
    assert res.p_value < 1e-4


def test_category_shift_same_mix_is_not_significant_and_rare_cells_pool():
    b = pd.Series({"price": 40, "timing": 40, "rare1": 1, "rare2": 1})
    r = pd.Series({"price": 20, "timing": 20, "rare2": 1})
    res = category_shift_test(b, r)
    assert res.p_value > 0.5
    assert set(res.pooled) == {"rare1", "rare2"}
    assert category_shift_test(pd.Series({"a": 5}), pd.Series({"a": 9})).p_value == 1.0


def test_time_helpers_ignore_resolution():
    s_us = pd.Series(pd.to_datetime(["2026-10-01T10:00:00Z", None], utc=True)).astype("datetime64[us, UTC]")
    s_ns = s_us.astype("datetime64[ns, UTC]")
    assert list(to_ns(s_us)) == list(to_ns(s_ns))
    assert to_ns(s_us)[0] == ts_ns(pd.Timestamp("2026-10-01T10:00:00Z"))
    assert iso_date(to_ns(s_us)[0]) == "2026-10-01"
    with pytest.raises(ValueError):
        ts_ns(pd.Timestamp("2026-10-01"))
    assert not math.isnan(float(to_ns(s_us)[1]))  # NaT is a sentinel int, not a float NaN


@pytest.mark.parametrize("dtype", ["str", object, "string[python]"])
def test_positions_finds_ids_and_marks_unknown_and_missing(dtype):
    keys = pd.Series(["d1", "d2", "d3"], dtype=dtype)
    values = pd.Series(["d3", "zz", None, "d1", "d3"], dtype=dtype)
    assert positions(values, keys).tolist() == [2, -1, -1, 0, 2]
    assert positions(values.iloc[:0], keys).tolist() == []


def test_to_ns_reads_nanosecond_columns_as_stored_and_hands_out_a_fresh_array():
    """The loader's nanosecond columns are copied as stored (no index round trip): the same
    instants as converting them, whatever the zone, and the caller may change the result."""
    text = ["2026-10-01T10:00:00.000000007Z", None, "1960-05-05T01:02:03Z"]
    utc = pd.Series(pd.to_datetime(text, utc=True, format="ISO8601")).astype("datetime64[ns, UTC]")
    expected = [ts_ns(pd.Timestamp(text[0])), np.iinfo(np.int64).min, ts_ns(pd.Timestamp(text[2]))]
    for col in (utc, utc.dt.tz_convert("Asia/Almaty"), utc.dt.tz_localize(None)):
        got = to_ns(col)
        assert got.dtype == np.int64 and got.tolist() == expected, col.dtype
        got[:] = 0
        assert to_ns(col).tolist() != [0, 0, 0]  # a copy, not the column's own memory
