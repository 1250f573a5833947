"""`crm-pulse model report`: how good the win model is on the company's own history, in numbers.

A time-based backtest (trained on what was known at a cutoff, tested on the snapshots after
it): AUC, Brier score, the reliability table and the expected calibration error (ECE), each
next to the stage-only baseline's; which features move the Brier score when shuffled; the
forecast's error month by month next to the weighted pipeline's; and the forecast for this
month and the next. Pure: data, the clock and the rules in, a dict out (`format_text` words it).

The forecast: for each open deal, P(won) (the model; the stage's win rate when there is no
usable model) times the share of won deals at its stage that closed within the month's
window from their snapshot (learned from history at the same point of the latest quarters:
`Timing`), times its amount. The weighted pipeline
next to it is the same sum with the stage's win rate: the classic "stage probability x
amount", given the same timing so the two differ only in the probability. The interval is the
10th-90th percentile of simulated outcomes (each deal won or not, independently). When the
amount cannot be used (absent, filled in only at closing, or empty or 0 on most deals), the
forecast counts deals; otherwise the open deals with no amount are left out of the money and
counted apart (`no_amount`, `expected_no_amount`).
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from crm.data import CrmData
from predict.features import AMOUNT_UNFILLED, DAY, Prepared, amounts_usable, features_at, open_at, prepare, seconds_of, stage_at
from predict.model import (
    Backtest, HistoryRule, StageBaseline, WinModel, auc, backtest, brier, closed_counts, predict_proba, reliability,
    recent_follow, score, settle_seconds, settled_rows, train,
)

DRAWS = 2000
ECE_TARGET = 0.05  # calibration error above which the report warns that chances are not odds
_R = 4  # decimals in the JSON


def _month_start(t: int, shift: int = 0) -> int:
    ts = pd.Timestamp(t, unit="s", tz="UTC")
    y, m = ts.year, ts.month + shift
    y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
    return int(pd.Timestamp(year=y, month=m, day=1, tz="UTC").value // 10**9)


def _day(t: int) -> str:
    return f"{pd.Timestamp(t, unit='s', tz='UTC'):%Y-%m-%d}"


QUARTERS_BACK = 8  # the same point of past quarters, at most two years back...
# ...each as that moment and a week after, never before: a month's forecast is made on its first
# day, and a week earlier can be the previous quarter's closing rush (the planted rush, seed 3:
# the forecast missed 10.8% of the won total without that week, 26.2% with it; Maven 26.0% both)
PHASE_DAYS = (0, 7)
MIN_WINS = 200  # wins within the follow-up that stop the search back: the latest quarters that are enough
MIN_STAGE_WINS = 30  # a stage with fewer has the timing of all stages


def _months_back(t: int, k: int) -> int:
    return int((pd.Timestamp(t, unit="s", tz="UTC") - pd.DateOffset(months=k)).value // 10**9)


def _win_share_by(lag: np.ndarray, follow: np.ndarray, win: np.ndarray, closed: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """The product-limit (Aalen-Johansen) share won by each lag, from rows each followed for
    `follow` (censored there; the unit of `lag`), a loss competing with a win: (the lags a deal
    closed at, the share won by each, the longest follow-up). `closed`: closed within the
    follow-up; `win`: won within it. Every row is a deal open at lag 0."""
    x = np.where(closed, lag, follow).astype(float)
    times = np.unique(x[closed])
    if not len(times):
        return times, np.zeros(0), float(follow.max()) if len(follow) else 0.0
    at_risk = len(x) - np.searchsorted(np.sort(x), times, "left")
    where = np.searchsorted(times, x)
    d_win = np.bincount(where[win], minlength=len(times))[:len(times)]
    d_all = np.bincount(where[closed], minlength=len(times))[:len(times)]
    open_before = np.concatenate([[1.0], np.cumprod(1 - d_all / at_risk)[:-1]])
    return times, np.cumsum(open_before * d_win / at_risk), float(follow.max())


class Timing:
    """How soon won deals close after a moment, by stage, as known at `known_by`: the share of
    the wins within the horizon that come in a window after the moment.

    Sales run on quarters: on Maven's export a quarter's first month wins little and its last
    weeks much, so how soon the wins of a pipeline come depends on where in the quarter it is
    looked at (of the wins after 5 July, 20% came within 31 days; after 2 August, 54%). Pooled over
    all snapshots that comes out 35% every month. For a moment `at` the timing is therefore
    learned from the deals open at the same point of the latest quarters (3, 6, ... months
    earlier, and a week after), each followed up to `known_by` and censored there (a
    product-limit estimate: the latest quarters, only partly followed, still count for the early
    days, where a month's forecast needs them); the search stops at the latest quarters holding
    MIN_WINS wins and a moment followed for the whole horizon, so a company that closes faster
    lately is timed on its recent pace. When no such moment is within reach (a history shorter
    than that), past the longest follow-up the shape comes from `labelled` (snapshots followed a
    whole horizon), scaled to join (no labelled wins: the moments' shape alone); with fewer than
    MIN_STAGE_WINS wins at those moments, from the labelled rows alone. A stage with too few wins
    there has all stages' timing. Nothing after `known_by` is read: a deal closed later counts
    as still open, followed to `known_by`."""

    def __init__(self, prep: Prepared, known_by: int, horizon: int, labelled: pd.DataFrame, *,
                 max_rows: int = 20_000, seed: int = 0):
        from predict.model import history_start

        self.prep, self.known_by, self.horizon = prep, int(known_by), int(horizon)
        self.first = history_start(prep, self.known_by)
        self.max_rows, self.seed = max_rows, seed
        won = labelled[labelled["won"] == 1]
        # int64: an empty frame of rows (no snapshot a horizon before `known_by`) has object columns
        dt = (prep.closed[won["row"].to_numpy(np.int64)] - won["at"].to_numpy(np.int64)) / DAY
        self.all = np.sort(dt)
        self.by_stage: dict[str, np.ndarray] = {}
        if "stage" in won:
            for stage, idx in won.groupby(won["stage"].astype(str)).indices.items():
                if len(idx) >= MIN_STAGE_WINS:
                    self.by_stage[stage] = np.sort(dt[idx])
        self._at: dict[int, dict] = {}

    def _open_moments(self, at: int) -> list[tuple[int, np.ndarray]]:
        """(moment, deals open then) for the same point of the latest quarters before `known_by`,
        back until they hold MIN_WINS wins within their follow-up and one was followed for the
        whole horizon (the share of wins a window holds is a share of the horizon's)."""
        out, wins, whole = [], 0, False
        for k in range(1, QUARTERS_BACK + 1):
            base = _months_back(at, 3 * k)
            for s in (base + d * DAY for d in PHASE_DAYS):
                if self.first <= s < self.known_by:
                    rows = open_at(self.prep, s)
                    lag = self.prep.closed[rows] - s
                    wins += int((self.prep.won[rows] & (lag > 0) & (lag <= min(self.horizon, self.known_by - s))).sum())
                    out.append((s, rows))
                    whole |= s + self.horizon <= self.known_by
            if wins >= MIN_WINS and whole:
                break
        return out

    def moments(self, at: int) -> list[int]:
        """The moments the timing for `at` is learned from."""
        return sorted(s for s, _ in self._open_moments(at))

    def _curves(self, at: int) -> dict:
        """stage ("" for all) -> (event lags in days, cumulative share won, longest follow-up in days),
        for the stages with MIN_STAGE_WINS wins at the moments of `at`."""
        if at in self._at:
            return self._at[at]
        rng = np.random.default_rng(self.seed)
        parts = []
        for s, rows in self._open_moments(at):
            if len(rows) > self.max_rows:
                rows = np.sort(rng.choice(rows, self.max_rows, replace=False))
            follow = min(self.horizon, self.known_by - s)
            lag = self.prep.closed[rows] - s
            closed = (self.prep.closed[rows] >= 0) & (lag > 0) & (lag <= follow)
            st = stage_at(self.prep, rows, s)
            parts.append((lag / DAY, np.full(len(rows), follow / DAY), closed & self.prep.won[rows], closed,
                          st.astype(str) if st is not None else np.full(len(rows), "")))
        curves: dict = {}
        if parts:
            lag, follow, win, closed, stage = (np.concatenate(a) for a in zip(*parts))
            for key in ["", *(k for k in np.unique(stage) if k)]:
                m = np.ones(len(stage), bool) if key == "" else stage == key
                if win[m].sum() >= MIN_STAGE_WINS:
                    curves[key] = _win_share_by(lag[m], follow[m], win[m], closed[m])
        self._at[at] = curves
        return curves

    @staticmethod
    def _share_before(dist: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Share of the labelled wins (their lags in days, sorted) that came before `days`."""
        return np.searchsorted(dist, days, "left") / len(dist) if len(dist) else np.zeros(len(days))

    def _cdf(self, key: str, curves: dict, days: np.ndarray) -> np.ndarray:
        """Share of the wins within the horizon that come before `days` after the moment."""
        if key not in curves:
            key = "" if "" in curves else key
        dist = self.by_stage.get(key, self.all)
        if key not in curves:
            return self._share_before(dist, days)
        times, cum, reach = curves[key]
        reach = min(reach, self.horizon / DAY)
        total = float(cum[np.searchsorted(times, reach, "right") - 1]) if len(times) and times[0] <= reach else 0.0
        if total <= 0:
            return self._share_before(dist, days)
        i = np.searchsorted(times, np.minimum(days, reach), "left")
        matched = np.where(i > 0, cum[np.maximum(i - 1, 0)], 0.0) / total
        # past the longest follow-up, the labelled shape, scaled so the two join at `reach`
        joint = 1.0
        if reach < self.horizon / DAY and len(dist):
            joint = float(self._share_before(dist, np.array([np.nextafter(reach, np.inf)]))[0])
        past = self._share_before(dist, days) if len(dist) else np.ones(len(days))
        return np.where(days <= reach, joint * matched, past)

    def share(self, at: int, stages: pd.Series | None, start_days: np.ndarray | float, end_days: np.ndarray | float,
              n: int) -> np.ndarray:
        """P(close in [start, end) days after `at` | won within the horizon), per deal open at `at`."""
        start = np.broadcast_to(np.asarray(start_days, float), (n,))
        end = np.broadcast_to(np.asarray(end_days, float), (n,))
        curves = self._curves(int(at))
        out = np.empty(n)
        keys = stages.astype(str).to_numpy() if stages is not None else np.full(n, "")
        for key in np.unique(keys):
            m = keys == key
            out[m] = np.clip(self._cdf(key, curves, end[m]) - self._cdf(key, curves, start[m]), 0.0, 1.0)
        return out


def _simulate(values: np.ndarray, probs: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """10th and 90th percentile of the sum of values each won with its probability."""
    if not len(values):
        return 0.0, 0.0
    if len(values) > 50_000:  # normal approximation: the sum of many small independent bets
        mean, sd = float((values * probs).sum()), float(np.sqrt((values ** 2 * probs * (1 - probs)).sum()))
        return max(0.0, mean - 1.2816 * sd), mean + 1.2816 * sd
    rng = np.random.default_rng(seed)
    totals = np.zeros(DRAWS)
    chunk = max(1, 2_000_000 // DRAWS)
    for i in range(0, len(values), chunk):
        v, p = values[i:i + chunk], probs[i:i + chunk]
        totals += (rng.random((DRAWS, len(v))) < p) @ v
    lo, hi = np.percentile(totals, [10, 90])
    return float(lo), float(hi)


def forecast_unit(prep: Prepared) -> str:
    """"amount" when amounts are usable (predict.features.amounts_usable), else "deals"."""
    return "amount" if amounts_usable(prep) else "deals"


def _values(prep: Prepared, rows: np.ndarray) -> np.ndarray:
    """Each deal's worth in the forecast's unit: 1 a deal, or its amount (0 where none is filled in:
    not in the sum, and counted apart by `forecast`)."""
    if forecast_unit(prep) == "deals":
        return np.ones(len(rows))
    return np.nan_to_num(prep.amount[rows], nan=0.0).clip(min=0)


def forecast(prep: Prepared, model: WinModel | None, baseline: StageBaseline, timing: Timing, at: int,
             months: int = 2, seed: int = 0) -> dict:
    """Expected won value in this month (from `at` to its end) and the next ones, from deals open at `at`."""
    if model is not None and model.usable and baseline is model.baseline:
        # the scan's one scoring of the open deals (predict.model.score), shared with deal_risk
        # and the deals likely to close: on a million open deals, each scoring is seconds
        frame = score(model, prep, at)
        p, p_stage = frame["p_win"].to_numpy(), frame["p_stage"].to_numpy()
    else:
        frame = features_at(prep, at, open_at(prep, at))
        p = model.proba(frame) if model is not None and model.usable else baseline.predict(frame)
        p_stage = baseline.predict(frame)
    rows = frame["row"].to_numpy()
    values = _values(prep, rows)
    unit = forecast_unit(prep)
    # no amount (empty or 0): not in a sum of money, and said how many; not said when the export
    # has no amount column or it is filled in only at closing (prep.dropped says so)
    unfilled = np.isnan(prep.amount[rows])
    if "amount" not in prep.features and prep.dropped.get("amount") != AMOUNT_UNFILLED:
        unfilled = np.zeros(len(rows), dtype=bool)
    stages = frame["stage"] if "stage" in frame else None
    out = []
    for k in range(months):
        start, end = max(at, _month_start(at, k)), _month_start(at, k + 1)
        q = timing.share(at, stages, (start - at) / DAY, (end - at) / DAY, len(frame))
        lo, hi = _simulate(values, p * q, seed)
        out.append({
            "month": f"{pd.Timestamp(start, unit='s', tz='UTC'):%Y-%m}",
            "expected": round(float((values * p * q).sum()), 2),
            "low": round(lo, 2), "high": round(hi, 2),
            "weighted_pipeline": round(float((values * p_stage * q).sum()), 2),
            # deals expected won among those with no amount, beside a sum of money that leaves them out
            "expected_no_amount": round(float((p * q)[unfilled].sum()), 2),
        })
    return {"unit": unit, "by": "model" if model is not None and model.usable else "stage_baseline",
            "open_deals": int(len(frame)), "no_amount": int(unfilled.sum()),
            "pipeline_total": round(float(values.sum()), 2),
            "weighted_pipeline_classic": round(float((values * p_stage).sum()), 2),
            "months": out}


def forecast_now(prep: Prepared, now: datetime, rule: HistoryRule = HistoryRule(), *, months: int = 2,
                 seed: int = 0, model: WinModel | None = None) -> tuple[dict | None, str]:
    """(the forecast from the deals open now, or None below the minimum history; the model's reason).

    A model that does not beat the stage-only baseline is not used: the forecast is then the
    weighted pipeline with timing, and says so (`by`: stage_baseline). `model`: one already
    trained on `prep` at `now` with `rule`."""
    t = seconds_of(now)
    model = model if model is not None else train(prep, t, rule, seed=seed)
    if model.usable:
        timing = _timing_now(prep, t, model.train_rows, seed)
        return forecast(prep, model, model.baseline, timing, t, months, seed), model.reason
    if rule.shortfall(*closed_counts(prep, t)):
        return None, model.reason
    if model.train_rows is not None:  # fitted with the verdict (predict.model.train)
        rows, baseline = model.train_rows, model.baseline
    else:
        rows = settled_rows(prep, t, seed=seed)
        baseline = StageBaseline().fit(rows, follow=recent_follow(prep, t, rows, seed=seed))
    if rows.empty:
        return None, model.reason
    return forecast(prep, None, baseline, _timing_now(prep, t, rows, seed), t, months, seed), model.reason


def _timing_now(prep: Prepared, t: int, labelled: pd.DataFrame, seed: int) -> Timing:
    """The close timing as known at `t`, over the horizon the fit at `t` labels with."""
    return Timing(prep, t, settle_seconds(prep, t), labelled, seed=seed)


def forecast_error(prep: Prepared, bt: Backtest, now: int) -> list[dict]:
    """For each whole month after the backtest cutoff: what the model and the weighted pipeline
    expected to be won that month from the deals open at its start, and what was (`actual`).

    `won_in_month` is everything won that month, deals created during it included: the pipeline
    at the month's start cannot know those, so the gap between the two is what a forecast from
    the pipeline leaves out by design, not its error. Errors are in the unit (amount or deals)
    and relative to `actual` (None when nothing was won: a ratio to zero says nothing)."""
    timing = Timing(prep, bt.cutoff, bt.horizon, _train_rows_of(bt, prep, now), seed=bt.seed)
    out = []
    start = _month_start(bt.cutoff, 1) if _month_start(bt.cutoff) < bt.cutoff else _month_start(bt.cutoff)
    while _month_start(start, 1) <= now:
        end = _month_start(start, 1)
        frame = features_at(prep, start, open_at(prep, start))
        if len(frame):
            rows = frame["row"].to_numpy()
            values = _values(prep, rows)
            q = timing.share(start, frame["stage"] if "stage" in frame else None, 0.0, (end - start) / DAY, len(frame))
            p = predict_proba(bt.model, frame, bt.features)
            p_stage = bt.baseline.predict(frame)
            won_in = prep.won[rows] & (prep.closed[rows] >= start) & (prep.closed[rows] < end)
            actual = float(values[won_in].sum())
            all_won = np.flatnonzero(prep.won & (prep.closed >= start) & (prep.closed < end))
            model_v, weighted_v = float((values * p * q).sum()), float((values * p_stage * q).sum())
            out.append({
                "month": f"{pd.Timestamp(start, unit='s', tz='UTC'):%Y-%m}", "open_deals": int(len(frame)),
                "actual": round(actual, 2), "won_in_month": round(float(_values(prep, all_won).sum()), 2),
                "model": round(model_v, 2), "weighted_pipeline": round(weighted_v, 2),
                "model_error": round(model_v - actual, 2), "weighted_error": round(weighted_v - actual, 2),
                "model_error_pct": round((model_v - actual) / actual, _R) if actual else None,
                "weighted_error_pct": round((weighted_v - actual) / actual, _R) if actual else None,
            })
        start = end
    return out


def _train_rows_of(bt: Backtest, prep: Prepared, now: int) -> pd.DataFrame:
    """The snapshots the backtest run at `now` trained on (not kept with it, to spare memory),
    rebuilt for the close timing learned as of the cutoff: its grid runs back from `now` minus
    the horizon (predict.model.backtest), not from the cutoff's, which can hold no snapshot at
    all (Maven as of 2017-11-15: 1,207 training snapshots, none on the other grid)."""
    from predict.features import snapshot_rows
    from predict.model import snapshot_seconds

    snaps = [s for s in snapshot_seconds(prep, now - bt.horizon, bt.step_days) if s <= bt.cutoff - bt.horizon]
    return snapshot_rows(prep, snaps, bt.cutoff, horizon=bt.horizon, max_rows=bt.max_rows, seed=bt.seed)


def factor_importance(bt: Backtest, seed: int = 0) -> list[dict]:
    """How much worse the backtest's Brier score gets when one feature is shuffled (0: it does not matter)."""
    rng = np.random.default_rng(seed)
    base = brier(bt.y, bt.p)
    out = []
    for f in bt.features:
        shuffled = bt.test_rows.copy()
        shuffled[f] = shuffled[f].to_numpy()[rng.permutation(len(shuffled))]
        out.append({"feature": f, "brier_increase": round(brier(bt.y, predict_proba(bt.model, shuffled, bt.features)) - base, 5)})
    return sorted(out, key=lambda r: -r["brier_increase"])


def model_report(data: CrmData, now: datetime, rule: HistoryRule = HistoryRule(), *, prep: Prepared | None = None,
                 step_days: int | None = None, seed: int = 0) -> dict:
    """Everything `crm-pulse model report` prints, as one JSON-ready dict."""
    prep = prep or prepare(data)
    t_now = seconds_of(now)
    won, lost = closed_counts(prep, t_now)
    report: dict = {"now": pd.Timestamp(now).isoformat(), "closed_deals": won + lost, "won": won, "lost": lost,
                    "rule": {"min_closed": rule.min_closed, "min_won": rule.min_won, "min_lost": rule.min_lost},
                    "features": list(prep.features), "dropped_features": dict(prep.dropped),
                    "auc": None, "brier": None, "ece": None, "baseline_auc": None, "baseline_brier": None,
                    "baseline_ece": None, "forecast_error": [], "forecast": None}
    bt = backtest(prep, t_now, rule, step_days=step_days, seed=seed)
    if isinstance(bt, str):
        report.update(used=False, reason=bt)
        return report
    table, ece = reliability(bt.y, bt.p)
    base_table, base_ece = reliability(bt.y, bt.p_base)
    model = train(prep, t_now, rule, step_days=step_days, seed=seed, check=bt)
    report.update(
        used=model.usable, reason=model.reason, model=bt.chosen,
        backtest={"cutoff": _day(bt.cutoff), "train_snapshots": bt.train_n, "test_snapshots": bt.test_n,
                  "test_deals": bt.test_deals, "win_rate": round(float(bt.y.mean()), _R),
                  "mean_chance": round(float(bt.p.mean()), _R), "horizon_days": round(bt.horizon / DAY, 1)},
        candidates=[{"kind": c.kind, "brier": round(c.brier, _R), "auc": None if c.auc is None else round(c.auc, _R)}
                    for c in bt.candidates],
        auc=_r(auc(bt.y, bt.p)), brier=_r(bt.brier), ece=_r(ece), brier_gain=_r(bt.gain), p_value=_sig(bt.p_value),
        baseline_auc=_r(auc(bt.y, bt.p_base)), baseline_brier=_r(bt.baseline_brier), baseline_ece=_r(base_ece),
        reliability=table, baseline_reliability=base_table,
        factors=factor_importance(bt, seed),
        forecast_error=forecast_error(prep, bt, t_now),
    )
    # as the bot forecasts now: the used model, or the stage rates and timing as of now (not the cutoff's)
    report["forecast"] = forecast_now(prep, now, rule, seed=seed, model=model)[0]
    report["forecast_accuracy"] = forecast_accuracy(report["forecast_error"])
    return report


def forecast_accuracy(months: list[dict]) -> dict | None:
    """The months' errors in one line each for the model and the weighted pipeline: the mean
    absolute error (in the unit) and the absolute errors summed over the sum actually won.

    Not the mean of the months' percentages: one month whose pipeline happened to win little
    (a quarter's first month) turns 300 expected against 70 won into 330% and swamps the rest."""
    if not months:
        return None
    actual = float(sum(m["actual"] for m in months))
    out: dict = {"months": len(months), "actual": round(actual, 2)}
    for key, err in (("model", "model_error"), ("weighted_pipeline", "weighted_error")):
        total = float(sum(abs(m[err]) for m in months))
        out[key] = {"mean_abs_error": round(total / len(months), 2),
                    "abs_error_share": _r(total / actual) if actual else None,
                    "bias_share": _r(float(sum(m[err] for m in months)) / actual) if actual else None}
    return out


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), _R)


def _sig(x: float) -> float:
    """A p-value to 2 significant digits, as the text shows it: rounded to 4 decimals, 2.6e-10
    became "p = 0"."""
    return float(f"{x:.2g}")


def _num(x: float, unit: str) -> str:
    return f"{x:,.0f}" if unit == "amount" else f"{x:,.1f}"


def format_text(r: dict) -> str:
    """The report for the admin's terminal."""
    lines = [f"Win model report at {r['now']}",
             f"history: {r['closed_deals']} closed deals with a closing date ({r['won']} won, {r['lost']} lost); "
             f"minimum {r['rule']['min_closed']} closed, {r['rule']['min_won']} won, {r['rule']['min_lost']} lost"]
    for f, why in r["dropped_features"].items():
        lines.append(f"not a feature: {f}: {why}")
    lines.append(("USED: " if r.get("used") else "NOT USED: ") + r["reason"])
    if r["brier"] is None:
        return "\n".join(lines)
    b = r["backtest"]
    lines += ["", f"backtest: trained on what was known on {b['cutoff']} ({b['train_snapshots']} snapshots), "
                  f"tested on {b['test_snapshots']} later snapshots of {b['test_deals']} deals "
                  f"(won within {b['horizon_days']:.0f} days of a snapshot: {b['win_rate']:.1%})",
              f"{'':<22}{'model':>10}{'stage only':>12}",
              f"{'AUC':<22}{_fmt(r['auc']):>10}{_fmt(r['baseline_auc']):>12}",
              f"{'Brier (lower=better)':<22}{_fmt(r['brier']):>10}{_fmt(r['baseline_brier']):>12}",
              f"{'ECE (calibration)':<22}{_fmt(r['ece']):>10}{_fmt(r['baseline_ece']):>12}",
              f"model vs stage only: Brier {r['brier_gain']:+.1%} better (one-sided p = {r['p_value']:.2g}, per deal)",
              *([f"calibration: chances were off by {r['ece'] * 100:.1f} points on average on the backtest (aim: at most 5): "
                 f"the chances averaged {r['backtest']['mean_chance']:.1%} where {r['backtest']['win_rate']:.1%} were won: "
                 "read them as a ranking of deals more than as odds"] if r["ece"] > ECE_TARGET else []),
              "candidates: " + ", ".join(f"{c['kind']} Brier {c['brier']:.4f}" for c in r["candidates"]),
              "", "reliability (model): predicted -> observed (n)"]
    for row in r["reliability"]:
        lines.append(f"  {row['from']:.1f}-{row['to']:.1f}: {row['predicted']:.1%} -> {row['observed']:.1%} ({row['n']})")
    lines += ["", "what moves the Brier score when shuffled (0 = does not matter):"]
    for f in r["factors"][:8]:
        lines.append(f"  {f['feature']:<18} {f['brier_increase']:+.4f}")
    if r["forecast_error"]:
        unit = r["forecast"]["unit"] if r.get("forecast") else "amount"
        lines += ["", f"forecast by month from the deals open at its start ({unit}): "
                      "won from them | model | weighted pipeline  (all won that month, new deals included)"]
        for m in r["forecast_error"]:
            lines.append(f"  {m['month']}: {_num(m['actual'], unit)} | {_num(m['model'], unit)} | "
                         f"{_num(m['weighted_pipeline'], unit)}  ({_num(m['won_in_month'], unit)})")
        acc = r.get("forecast_accuracy")
        if acc:
            for key, label in (("model", "model"), ("weighted_pipeline", "weighted pipeline")):
                a = acc[key]
                share = "" if a["abs_error_share"] is None else (
                    f", {a['abs_error_share']:.1%} of the {_num(acc['actual'], unit)} won over {acc['months']} months"
                    f" (net {a['bias_share']:+.1%})")
                lines.append(f"  {label}: off by {_num(a['mean_abs_error'], unit)} a month on average{share}")
    fc = r.get("forecast")
    if fc:
        lines += ["", f"forecast ({fc['unit']}, by {fc['by'].replace('_', ' ')}) from {fc['open_deals']} open deals:"]
        for m in fc["months"]:
            lines.append(f"  {m['month']}: expected {_num(m['expected'], fc['unit'])} "
                         f"(80% interval {_num(m['low'], fc['unit'])}-{_num(m['high'], fc['unit'])}); "
                         f"weighted pipeline {_num(m['weighted_pipeline'], fc['unit'])}")
        lines.append(f"  classic weighted pipeline (stage rate x {fc['unit']}, no timing): "
                     f"{_num(fc['weighted_pipeline_classic'], fc['unit'])} of {_num(fc['pipeline_total'], fc['unit'])} open")
        if fc.get("no_amount") and fc["unit"] == "amount":
            lines.append(f"  {fc['no_amount']:,} of the {fc['open_deals']:,} open deals have no amount (empty or 0): not in "
                         f"these sums; {fc['months'][0]['expected_no_amount']:.1f} of them expected won by the month's end")
        elif fc.get("no_amount"):
            lines.append(f"  counted in deals, not money: {fc['no_amount']:,} of the {fc['open_deals']:,} open deals have "
                         "no amount (empty or 0)")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
