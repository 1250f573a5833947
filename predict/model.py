"""Training, calibration and the honesty rules of the win-likelihood model.

Rows are snapshots: every deal open at a snapshot date, with its features then and its
outcome after (predict.features). Two candidates are fitted, a gradient-boosted tree model
and a regularised logistic model, each calibrated (isotonic on large histories, sigmoid on
small ones; the folds keep all snapshots of one deal together, or the calibration would see
the deal it calibrates). The one with the better Brier score on a time-based backtest is
chosen, and it is used only if it beats the stage-only baseline (each stage's past win rate):
a model that cannot beat "deals at this stage win 23% of the time" has nothing to add.
After calibration: a deal open longer than any won deal took gets next to no chance
(longest_win_days), and the log-odds are moved to the recent win rate (the anchor).

Below a minimum of history (`HistoryRule`) nothing is fitted at all and the reason says how
far the company is from enough.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

from predict.features import CATEGORICAL, DAY, Prepared, features_at, open_at, seconds_of, snapshot_rows

KINDS = ("boosting", "logistic")
# Snapshot rows a fit learns from, a uniform sample beyond: 60,000 rows pin a win rate to about
# +-0.4 points and a boosting with 15-leaf trees has plenty; 150,000 cost a cold scan of a
# million deals 2.5 times more CPU than this for no measurable gain (benchmarks/scan.py --model).
MAX_ROWS = 60_000
MIN_GAIN = 0.01  # a model must lower the baseline's Brier score by at least 1% to be used...
ALPHA = 0.05  # ...and the improvement must not be chance (one-sided, per deal)
MISSING = "(none)"


@dataclass(frozen=True)
class HistoryRule:
    """The least history a model is fitted on: closed deals, and won and lost among them."""

    min_closed: int = 200
    min_won: int = 50
    min_lost: int = 50

    def shortfall(self, won: int, lost: int) -> str | None:
        """None when enough; else one line saying what there is and how much more is needed."""
        closed = won + lost
        gaps = []
        if closed < self.min_closed:
            gaps.append(f"{self.min_closed - closed} more closed")
        if won < self.min_won:
            gaps.append(f"{self.min_won - won} more won")
        if lost < self.min_lost:
            gaps.append(f"{self.min_lost - lost} more lost")
        if not gaps:
            return None
        return (f"not enough history to predict: {closed} closed deals with a closing date ({won} won, {lost} lost); "
                f"needs at least {self.min_closed} closed with >= {self.min_won} won and >= {self.min_lost} lost: "
                + ", ".join(gaps))


def closed_counts(prep: Prepared, by: int) -> tuple[int, int]:
    """Won and lost deals with a closing date at or before second `by`."""
    dated = (prep.closed >= 0) & (prep.closed <= by)
    return int((dated & prep.won).sum()), int((dated & prep.lost).sum())


def history_start(prep: Prepared, until: int) -> int:
    """Where the snapshots begin: the first recorded closing (else the first deal's creation).

    Before the first closing the export shows only the deals that survived into its window:
    Maven's deals were engaged from October 2016 but none closed before March 2017, so the
    ones that did close in between are simply not in it. Snapshots there would see a pipeline
    of survivors and learn that deals take months to close and mostly win."""
    dated = prep.closed[(prep.closed >= 0) & (prep.closed <= until) & (prep.won | prep.lost)]
    if len(dated):
        return int(dated.min())
    return int(prep.created[prep.created >= 0].min()) if (prep.created >= 0).any() else until


def snapshot_seconds(prep: Prepared, until: int, step_days: int) -> list[int]:
    """Snapshot moments every `step_days`, backwards from `until` to the history's start."""
    first = history_start(prep, until)
    step = step_days * DAY
    n = max(0, (until - first) // step)
    return [until - k * step for k in range(int(n), 0, -1)]


def settle_seconds(prep: Prepared, by: int) -> int:
    """The horizon of "won within": the 90th percentile of (closed - created) among deals closed
    by `by`, at most a third of the history, at least a day.

    A snapshot's label is whether the deal was won within this horizon (features.won_within),
    so snapshots later than `by` minus it are not labelled yet and are left out of training and
    testing. Nine deals in ten close within it, so "won within" is nearly "won" for a live deal,
    and near 0 for one forgotten in the pipeline (which a label "won, among the closed" never saw)."""
    dated = (prep.closed >= 0) & (prep.closed <= by) & (prep.created >= 0)
    if not dated.any():
        return DAY
    took = np.quantile(prep.closed[dated] - prep.created[dated], 0.9)
    span = by - int(prep.created[prep.created >= 0].min())
    return int(max(DAY, min(took, span / 3)))


def auto_step_days(prep: Prepared, until: int) -> int:
    """About 60 snapshots over the history, never denser than weekly."""
    first = history_start(prep, until)
    return max(7, int((until - first) / DAY / 60))


# --- the recent win rate ----------------------------------------------------------------------

def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def shifted(p: np.ndarray, shift: float) -> np.ndarray:
    from scipy.special import expit

    return p if shift == 0 else expit(_logit(p) + shift)


def intercept_shift(p: np.ndarray, won: np.ndarray, min_each: int = 10, reach: np.ndarray | None = None) -> float | None:
    """The log-odds shift after which the chances `p` add up to the wins seen (`won`, 0/1).
    None with fewer than `min_each` won or not won: too few to say the rate moved.

    Win rates drift (a new market, a tougher quarter, a pipeline filling with forgotten deals):
    a model fitted over the whole history predicts its average, so its chances run high after a
    fall. Moving every deal's log-odds by one number keeps their order and spread and puts their
    level where the latest period's is.

    `reach` (per row, 0..1; 1 when omitted): the share of a row's chance that could have shown
    as a win yet. A deal followed for 20 days of a 100-day horizon can only show the wins that
    come within 20 days, so it adds p * reach to the wins expected, not p (follow_rows)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    won = np.asarray(won, float)
    reach = np.ones(len(won)) if reach is None else np.asarray(reach, float)
    seen = float(won.sum())
    if seen < min_each or float(reach.sum()) - seen < min_each:
        return None
    lo = _logit(p)
    return float(brentq(lambda d: float((expit(lo + d) * reach).sum()) - seen, -20.0, 20.0, xtol=1e-6))


# The chance of a deal open longer than any won deal took (longest_win_days): none so old was
# ever won, so "won within the horizon" is as good as never; kept above 0 for the log-odds.
PAST_LONGEST_CHANCE = 0.001
MIN_WINS_FOR_LONGEST = 30  # fewer wins say too little about how long a win can take


def longest_win_days(prep: Prepared, by: int) -> float | None:
    """The longest any deal won by second `by` took from its creation to its win, in days;
    None with fewer than MIN_WINS_FOR_LONGEST such wins.

    A fit learns from snapshots a whole horizon old, and on a short history those hold few old
    deals: Maven's backtest fitted in July learns from March and April, when no deal in the
    export was older than 170 days, and its trees carry the chance of a 130-day-old deal over to
    every older one (about 19%). Deals that old, forgotten in the pipeline, filled a sixth of the
    July-September pipeline and none was won; no won deal had ever taken more than 138 days.
    What the fit knows at its moment (the wins' durations) says so; its training rows do not."""
    won = prep.won & (prep.closed >= 0) & (prep.closed <= by) & (prep.created >= 0)
    if int(won.sum()) < MIN_WINS_FOR_LONGEST:
        return None
    return float((prep.closed[won] - prep.created[won]).max()) / DAY


def past_longest(x: pd.DataFrame, q: np.ndarray, longest: float | None) -> np.ndarray:
    """`q` with PAST_LONGEST_CHANCE for the rows of `x` open longer than `longest` days."""
    if longest is None or "days_open" not in x or not len(q):
        return q
    return np.where(x["days_open"].to_numpy(float) > longest, PAST_LONGEST_CHANCE, q)


class Anchored:
    """A calibrated classifier whose log-odds are moved by `shift` (intercept_shift on the
    latest quarter of its training rows), and whose deals open longer than `longest` days (the
    longest any win took: longest_win_days) get PAST_LONGEST_CHANCE. Picklable, sklearn-shaped
    for predict_proba."""

    def __init__(self, model, shift: float, longest: float | None = None):
        self.model, self.shift, self.longest = model, float(shift), longest
        self.classes_ = getattr(model, "classes_", np.array([0, 1]))

    def finish(self, x: pd.DataFrame, p: np.ndarray) -> np.ndarray:
        """The calibrated chances `p` of the rows of `x`, shifted, then the longest-win rule."""
        return past_longest(x, shifted(p, self.shift), getattr(self, "longest", None))

    def predict_proba(self, x) -> np.ndarray:
        q = self.finish(x, self.model.predict_proba(x)[:, 1])
        return np.column_stack([1 - q, q])


def _columns_once(ct, x: pd.DataFrame, cached: dict) -> list | None:
    """What the fitted ColumnTransformer `ct` computes per transformer (its blocks, before
    stacking), with the categorical transformers run on each distinct combination of their
    columns only and spread back to the rows; None if `ct` is not shaped as make_estimator
    builds it (the caller then runs sklearn's own path).

    The categories (rare ones grouped, then encoded) are mapped by Python dictionaries inside
    the encoders, and pandas' string columns are converted back and forth on the way: on a
    million open deals that was half the scoring, done again by each calibration fold. A
    million deals have a few thousand combinations of stage, source, region and manager."""
    blocks = []
    for name, trans, cols in ct.transformers_:
        cols = list(cols)
        if isinstance(trans, str):
            if trans == "drop" or not cols:
                continue
            if trans != "passthrough":
                return None
            blocks.append(x[cols])
        elif cols and all(c in CATEGORICAL for c in cols):
            key = tuple(cols)
            if key not in cached:  # shared by the folds: the combinations do not depend on the fit
                code = np.zeros(len(x), np.int64)
                for c in cols:
                    part, uniq = pd.factorize(x[c], use_na_sentinel=False)
                    code, _ = pd.factorize(code * len(uniq) + part)  # renumbered: never overflows
                first = np.zeros(int(code.max()) + 1 if len(code) else 0, np.int64)
                first[code[::-1]] = np.arange(len(code) - 1, -1, -1)
                cached[key] = (code, x[cols].iloc[first])
            code, distinct = cached[key]
            out = trans.transform(distinct)
            blocks.append(out[code])
        else:
            blocks.append(trans.transform(x[cols]))
    return blocks


def _calibrated_proba(model, x: pd.DataFrame) -> np.ndarray | None:
    """The chance of class 1 exactly as `model.predict_proba(x)[:, 1]` (an Anchored or plain
    CalibratedClassifierCV over make_estimator pipelines), with each fold's column handling
    done by _columns_once; None if the model is not shaped so."""
    import copy

    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    anchored = None
    if isinstance(model, Anchored):
        anchored, model = model, model.model
    folds = getattr(model, "calibrated_classifiers_", None)
    if not folds or len(model.classes_) != 2:
        return None
    cached: dict = {}
    mean = np.zeros((len(x), 2))
    for fold in folds:
        pipe = fold.estimator
        if not (isinstance(pipe, Pipeline) and len(pipe.steps) == 2 and isinstance(pipe[0], ColumnTransformer)
                and pipe[0].transformer_weights is None):
            return None
        blocks = _columns_once(pipe[0], x, cached)
        if blocks is None:
            return None
        xt = pipe[0]._hstack(blocks, n_samples=len(x))
        bare = copy.copy(fold)  # the fold's calibration, on the classifier without its column step
        bare.estimator = pipe[-1]
        mean += bare.predict_proba(xt)
    mean /= len(folds)
    return mean[:, 1] if anchored is None else anchored.finish(x, mean[:, 1])


RECENT_SHARE = 0.25  # the latest quarter of the training snapshots' dates sets the win rate


def recent_rows(rows: pd.DataFrame) -> np.ndarray:
    """Mask of the rows from the latest RECENT_SHARE of their snapshot dates (none with fewer
    than 4 dates: there is no "latest period" to speak of)."""
    at = rows["at"].to_numpy() if "at" in rows else np.zeros(len(rows))
    dates = np.unique(at)
    if len(dates) < 4:
        return np.zeros(len(at), bool)
    return at >= dates[int(len(dates) * (1 - RECENT_SHARE))]


FOLLOW_ROWS = 20_000  # followed-up snapshot rows the anchor is fitted on, a uniform sample beyond


def win_reach(prep: Prepared, labelled: pd.DataFrame, follow: np.ndarray) -> np.ndarray:
    """For each follow-up length (seconds), the share of the `labelled` rows' wins (won within
    the horizon) that came within that long of their snapshot: how much of a row's chance of
    winning within the horizon could have shown by then. 0 everywhere when nothing was won."""
    won = labelled[labelled["won"] == 1]
    lags = np.sort(prep.closed[won["row"].to_numpy(np.int64)] - won["at"].to_numpy(np.int64))
    if not len(lags):
        return np.zeros(len(follow))
    return np.searchsorted(lags, np.asarray(follow), side="right") / len(lags)


def follow_rows(prep: Prepared, known_by: int, horizon: int, step_days: int, labelled: pd.DataFrame, *,
                max_rows: int = FOLLOW_ROWS, seed: int = 0) -> pd.DataFrame:
    """The deals open at the latest RECENT_SHARE of snapshot dates up to `known_by`, each followed
    only up to `known_by` (`won`: won by then, within the horizon), with `reach` (win_reach):
    what the anchor is fitted on (intercept_shift). Empty with fewer than 4 snapshot dates.

    The labelled rows end a whole horizon before `known_by`: anchored to their latest quarter,
    the chances keep the win rate of months ago (on Maven's export, March when the cutoff is in
    July, while the newer deals were filling with ones that never close). These rows are the
    recent months, censored at `known_by`: a deal still open then counts as not won so far, and
    its chance counts only for the share of wins that come that soon. Nothing after `known_by`."""
    snaps = snapshot_seconds(prep, known_by, step_days)
    if len(snaps) < 4:
        return pd.DataFrame(columns=["deal_id", "row", *prep.features, "at", "won", "follow", "reach"])
    recent = snaps[int(len(snaps) * (1 - RECENT_SHARE)):]
    rows = snapshot_rows(prep, recent, known_by, horizon=horizon, max_rows=max_rows, seed=seed, partial=True)
    rows["reach"] = win_reach(prep, labelled, rows["follow"].to_numpy())
    return rows


def _shift_to(labelled: pd.DataFrame, follow: pd.DataFrame | None, p_follow: np.ndarray | None, p_recent) -> float:
    """The anchor's shift: to the followed-up recent rows (follow_rows, chances `p_follow`) when
    they hold enough wins and non-wins to say, else to the latest quarter of the labelled rows
    (recent_rows; `p_recent(mask)` gives their chances, asked for only then)."""
    if follow is not None and len(follow):
        shift = intercept_shift(p_follow, follow["won"].to_numpy(float), reach=follow["reach"].to_numpy(float))
        if shift is not None:
            return shift
    recent = recent_rows(labelled)
    if not recent.any():
        return 0.0
    return intercept_shift(p_recent(recent), labelled["won"].to_numpy(float)[recent]) or 0.0


# --- the stage-only baseline -------------------------------------------------------------------

@dataclass
class StageBaseline:
    """Each stage's win rate among past snapshots at that stage (shrunk toward the overall rate
    by `prior` pseudo-deals, so a stage seen 3 times does not get 0% or 100%)."""

    overall: float = 0.5
    rates: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    prior: float = 10.0
    shift: float = 0.0  # log-odds moved to the latest period's win rate, as the model's are

    def fit(self, rows: pd.DataFrame, anchor: bool = True, follow: pd.DataFrame | None = None) -> "StageBaseline":
        """Stage rates over all `rows`, then (`anchor`) moved to the recent win rate exactly as
        the model is (_shift_to: the `follow` rows, else the latest quarter of `rows`): the
        baseline it must beat gets the same help."""
        y = rows["won"].to_numpy(float)
        self.overall = float(y.mean()) if len(y) else 0.5
        if "stage" in rows:
            g = rows.groupby(rows["stage"].astype(str))["won"].agg(["sum", "count"])
            self.rates = {s: float((r["sum"] + self.prior * self.overall) / (r["count"] + self.prior)) for s, r in g.iterrows()}
            self.counts = {s: int(r["count"]) for s, r in g.iterrows()}
        self.shift = 0.0
        if anchor and len(rows):
            self.shift = _shift_to(rows, follow, None if follow is None else self.predict(follow),
                                   lambda recent: self.predict(rows[recent]))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if "stage" not in frame or not self.rates:
            return shifted(np.full(len(frame), self.overall), self.shift)
        return shifted(frame["stage"].astype(str).map(self.rates).fillna(self.overall).to_numpy(float), self.shift)


# --- candidates --------------------------------------------------------------------------------

def _columns(features: tuple[str, ...]) -> tuple[list[str], list[str]]:
    cats = [c for c in features if c in CATEGORICAL]
    return [c for c in features if c not in CATEGORICAL], cats


class RareToOther:
    """Categories seen fewer than `min_count` times in training become one "(other)"
    category, and only the `max_keep` most frequent are kept (the boosting takes at most 255).

    The encoders' own `min_frequency` counts with a Python Counter over object arrays: four
    seconds a cold fit on 150,000 rows. pandas' value_counts hashes in C."""

    def __init__(self, min_count: int = 20, max_keep: int = 250):
        self.min_count, self.max_keep = min_count, max_keep

    def fit(self, x: pd.DataFrame, y=None) -> "RareToOther":
        self.keep_ = {}
        for c in x.columns:
            counts = x[c].value_counts()
            self.keep_[c] = frozenset(counts[counts >= self.min_count].index[: self.max_keep])
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        out = x.copy()
        for c in x.columns:
            out[c] = x[c].where(x[c].isin(self.keep_[c]), OTHER).to_numpy(object)
        return out

    def fit_transform(self, x: pd.DataFrame, y=None) -> pd.DataFrame:
        return self.fit(x).transform(x)

    def get_feature_names_out(self, names=None):
        return np.asarray(names if names is not None else list(self.keep_), object)

    def set_output(self, *, transform=None) -> "RareToOther":
        return self


OTHER = "(other)"


def _prepared_x(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    num, cats = _columns(features)
    x = frame[num].astype(float).copy()
    for c in cats:
        x[c] = frame[c].astype(object).where(frame[c].notna(), MISSING).astype(str).to_numpy(object)
    return x


def make_estimator(kind: str, features: tuple[str, ...], seed: int = 0):
    """An unfitted sklearn pipeline: column handling + the classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    num, cats = _columns(features)
    if kind == "boosting":
        pre = ColumnTransformer([
            ("cat", make_pipeline(RareToOther(20, 250), OrdinalEncoder(handle_unknown="use_encoded_value",
                                                                        unknown_value=-1)), cats),
            ("num", "passthrough", num),
        ], verbose_feature_names_out=False)
        clf = HistGradientBoostingClassifier(
            learning_rate=0.1, max_iter=100, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0,
            categorical_features=list(range(len(cats))), early_stopping=False, random_state=seed)
        return Pipeline([("pre", pre), ("clf", clf)])
    if kind == "logistic":
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                FunctionTransformer(np.log1p, feature_names_out="one-to-one"), StandardScaler())
        pre = ColumnTransformer([
            ("num", numeric, num),
            ("cat", make_pipeline(RareToOther(20, 1000), OneHotEncoder(handle_unknown="ignore")), cats),
        ], verbose_feature_names_out=False)
        return Pipeline([("pre", pre), ("clf", LogisticRegression(C=0.3, max_iter=2000))])
    raise ValueError(f"unknown model kind {kind!r}; one of {KINDS}")


def fit_calibrated(kind: str, rows: pd.DataFrame, features: tuple[str, ...], seed: int = 0, anchor: bool = True,
                   follow: pd.DataFrame | None = None, longest: float | None = None):
    """The candidate fitted on `rows` and calibrated on folds that keep each deal's snapshots
    together; with `anchor`, its log-odds then moved (Anchored) so that its chances on the
    `follow` rows (follow_rows) add up to the wins seen there so far, or, when those are too few
    or not given, its out-of-fold chances on the latest quarter of `rows` (recent_rows) average
    the share won there. `longest` (longest_win_days as of the fit): deals open longer get
    PAST_LONGEST_CHANCE, before the anchor is fitted too (they would pull every other chance down)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GroupKFold

    x, y = _prepared_x(rows, features), rows["won"].to_numpy(int)
    # numeric features must not be negative for log1p: days and counts never are; amounts can be (refunds)
    if "amount" in x:
        x["amount"] = x["amount"].clip(lower=0)
    from threadpoolctl import threadpool_limits

    folds = list(GroupKFold(n_splits=3).split(x, y, groups=rows["deal_id"].astype(str)))
    method = "isotonic" if len(rows) >= 3000 else "sigmoid"
    model = CalibratedClassifierCV(make_estimator(kind, features, seed), method=method, cv=folds)
    # One thread: the boosting's OpenMP workers spin-wait, and on a machine busy with other work
    # (the bot's own scan, a shared CI box) that made a fit three times slower, not faster.
    with threadpool_limits(limits=1):
        model.fit(x, y)
        if not anchor:
            return model if longest is None else Anchored(model, 0.0, longest)
        p_follow = (predict_proba(Anchored(model, 0.0, longest), follow, features)
                    if follow is not None and len(follow) else None)

        def p_recent(recent: np.ndarray) -> np.ndarray:
            """Out of fold: each recent row scored by the fold's estimator that never saw its deal."""
            p = np.empty(len(y))
            for (_, test), fold in zip(folds, model.calibrated_classifiers_):
                test = test[recent[test]]
                if len(test):
                    p[test] = fold.predict_proba(x.iloc[test])[:, 1]
            return past_longest(x[recent], p[recent], longest)

        shift = _shift_to(rows, follow, p_follow, p_recent)
    return Anchored(model, shift, longest)


SMALL_FRAME = 20_000  # rows: below this, one thread predicts faster than a team


def predict_proba(model, frame: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    x = _prepared_x(frame, features)
    if "amount" in x:
        x["amount"] = x["amount"].clip(lower=0)
    if not len(x):
        return np.zeros(0)
    if len(x) >= SMALL_FRAME:
        return _proba_of(model, x)
    from threadpoolctl import threadpool_limits

    # The explanations score one deal at a time (what-ifs, neighbours): starting the boosting's
    # OpenMP team for every tree of a one-row frame cost more than the prediction, many times
    # more on a busy machine.
    with threadpool_limits(limits=1):
        return _proba_of(model, x)


def _proba_of(model, x: pd.DataFrame) -> np.ndarray:
    p = _calibrated_proba(model, x)
    return model.predict_proba(x)[:, 1] if p is None else p


# --- metrics -----------------------------------------------------------------------------------

def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[list[dict], float]:
    """Rows (predicted range, mean predicted, observed win share, n) and the ECE: the
    n-weighted mean gap between what was predicted and what happened."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        mp, obs, n = float(p[m].mean()), float(y[m].mean()), int(m.sum())
        ece += n * abs(mp - obs)
        rows.append({"from": round(float(edges[b]), 2), "to": round(float(edges[b + 1]), 2),
                     "predicted": round(mp, 4), "observed": round(obs, 4), "n": n})
    return rows, (ece / len(y) if len(y) else float("nan"))


# --- the model as used -------------------------------------------------------------------------

@dataclass
class WinModel:
    """What `train` returns: a usable model, or the reason there is none."""

    usable: bool
    reason: str  # why it is used or not, one line for the admin
    features: tuple[str, ...] = ()
    kind: str | None = None
    model: object = None
    baseline: StageBaseline = field(default_factory=StageBaseline)
    train_rows: pd.DataFrame | None = None  # the snapshots it learned from (neighbours, typical values)
    train_p: np.ndarray | None = None
    trained_at: int = 0
    dropped: dict[str, str] = field(default_factory=dict)
    rule: HistoryRule | None = None  # the history rule it was fitted under (predict.model.fitted)
    # the backtest behind the verdict, when one ran: brier, baseline_brier, gain, p_value, model
    check: dict = field(default_factory=dict)

    def proba(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.usable:
            raise ValueError(f"no model: {self.reason}")
        return predict_proba(self.model, frame, self.features)


@dataclass
class Candidate:
    kind: str
    brier: float
    auc: float | None


@dataclass
class Backtest:
    """A time-based backtest: trained on what was known at `cutoff`, tested on snapshots after it."""

    cutoff: int
    train_n: int
    test_n: int
    test_deals: int
    candidates: list[Candidate]
    chosen: str | None
    y: np.ndarray
    p: np.ndarray
    p_base: np.ndarray
    test_rows: pd.DataFrame
    model: object = None
    baseline: StageBaseline = field(default_factory=StageBaseline)
    features: tuple[str, ...] = ()
    horizon: int = 0  # seconds: `won` is "won within this long after the snapshot"
    step_days: int = 7
    max_rows: int = MAX_ROWS
    seed: int = 0

    @property
    def brier(self) -> float:
        return brier(self.y, self.p)

    @property
    def baseline_brier(self) -> float:
        return brier(self.y, self.p_base)

    @property
    def gain(self) -> float:
        """Relative Brier improvement over the baseline (0.05 = 5% lower)."""
        return 1 - self.brier / self.baseline_brier if self.baseline_brier > 0 else 0.0

    @property
    def p_value(self) -> float:
        """One-sided test that the model's squared errors are lower than the baseline's, with
        each test deal one observation (its snapshots are not independent of each other)."""
        from scipy.stats import ttest_1samp

        diff = pd.Series((self.p_base - self.y) ** 2 - (self.p - self.y) ** 2)
        per_deal = diff.groupby(self.test_rows["deal_id"].astype(str).to_numpy()).mean().to_numpy()
        if len(per_deal) < 3 or not np.std(per_deal) > 0:
            return 1.0
        return float(ttest_1samp(per_deal, 0.0, alternative="greater").pvalue)

    def beats_baseline(self, min_gain: float = MIN_GAIN, alpha: float = ALPHA) -> bool:
        """Better than the stage's win rate by at least `min_gain` and not by chance (p < alpha)."""
        return self.chosen is not None and self.gain >= min_gain and self.p_value < alpha


def backtest(prep: Prepared, now: datetime | int, rule: HistoryRule = HistoryRule(), *, test_share: float = 0.3,
             step_days: int | None = None, max_rows: int = MAX_ROWS, kinds: tuple[str, ...] = KINDS,
             seed: int = 0, anchor: bool = True) -> Backtest | str:
    """Train on snapshots whose horizon ended by a cutoff (labels known then), test on the
    snapshots from the cutoff on (labels known by now), every deal open at a snapshot labelled
    "won within the horizon" or not. The model and the baseline are both anchored (`anchor`) to
    the recent win rate as it was known at the cutoff (follow_rows: the latest snapshots, followed
    up to the cutoff and no further), as the live fit is at its moment. Returns the reason
    instead when history is too short, before or after the cutoff."""
    t_now = now if isinstance(now, int) else seconds_of(now)
    why = rule.shortfall(*closed_counts(prep, t_now))
    if why:
        return why
    settle = settle_seconds(prep, t_now)
    step = step_days or auto_step_days(prep, t_now)
    snaps = snapshot_seconds(prep, t_now - settle, step)
    if len(snaps) < 4:
        return f"not enough history to backtest: the deals span only {len(snaps)} snapshot(s) of {step} days"
    cutoff = snaps[int(len(snaps) * (1 - test_share))]
    train = snapshot_rows(prep, [s for s in snaps if s <= cutoff - settle], cutoff, horizon=settle,
                          max_rows=max_rows, seed=seed)
    test = snapshot_rows(prep, [s for s in snaps if s >= cutoff], t_now, horizon=settle, max_rows=max_rows, seed=seed)
    won, lost = int(train["won"].sum()), int(len(train) - train["won"].sum())
    if won < 20 or lost < 20 or test["won"].nunique() < 2:
        return (f"not enough history before the backtest cutoff ({pd.Timestamp(cutoff, unit='s', tz='UTC'):%Y-%m-%d}): "
                f"{won} won and {lost} lost snapshots to learn from, {len(test)} to test on")
    # the recent months as known at the cutoff, censored there: the live fit's anchor, simulated
    follow = follow_rows(prep, cutoff, settle, step, train, seed=seed) if anchor else None
    base = StageBaseline().fit(train, anchor, follow)
    y = test["won"].to_numpy(int)
    p_base = base.predict(test)
    cands, best, best_p, best_model = [], None, None, None
    longest = longest_win_days(prep, cutoff)  # as known at the cutoff, as the live fit's is at its moment
    for kind in kinds:
        model = fit_calibrated(kind, train, prep.features, seed, anchor, follow, longest)
        p = predict_proba(model, test, prep.features)
        c = Candidate(kind, brier(y, p), auc(y, p))
        cands.append(c)
        if best is None or c.brier < best.brier:
            best, best_p, best_model = c, p, model
    return Backtest(cutoff=cutoff, train_n=len(train), test_n=len(test), test_deals=int(test["deal_id"].nunique()),
                    candidates=cands, chosen=best.kind if best else None, y=y, p=best_p, p_base=p_base,
                    test_rows=test, model=best_model, baseline=base, features=prep.features, horizon=settle,
                    step_days=step, max_rows=max_rows, seed=seed)


def train(prep: Prepared, now: datetime | int, rule: HistoryRule = HistoryRule(), *, kind: str | None = None,
          step_days: int | None = None, max_rows: int = MAX_ROWS, seed: int = 0,
          check: Backtest | str | None = None) -> WinModel:
    """The model to score open deals with at `now`, or the reason there is none.

    `kind` None: backtest both candidates and keep the better, and only if it beats the
    stage-only baseline (pass `check` to reuse a backtest already run). A given `kind` skips
    the backtest (benchmarks, tests that time the fit)."""
    t_now = now if isinstance(now, int) else seconds_of(now)
    why = rule.shortfall(*closed_counts(prep, t_now))
    if why:
        return WinModel(False, why, dropped=prep.dropped)
    verdict, scores = "", {}
    if kind is None:
        bt = check if check is not None else backtest(prep, t_now, rule, step_days=step_days, max_rows=max_rows, seed=seed)
        if isinstance(bt, str):
            return WinModel(False, bt, dropped=prep.dropped)
        scores = {"brier": round(bt.brier, 4), "baseline_brier": round(bt.baseline_brier, 4),
                  "gain": round(bt.gain, 4), "p_value": round(bt.p_value, 4), "model": bt.chosen}
        if not bt.beats_baseline():
            # what the weighted pipeline forecast needs (stage rates and close timing as of now),
            # kept with the verdict so the next scans of this history do not rebuild it
            rows = settled_rows(prep, t_now, step_days=step_days, max_rows=max_rows, seed=seed)
            follow = recent_follow(prep, t_now, rows, step_days=step_days, seed=seed)
            return WinModel(False, (f"the model does not beat the stage-only baseline on the backtest: Brier "
                                    f"{bt.brier:.4f} ({bt.chosen}) vs {bt.baseline_brier:.4f} for each stage's win rate "
                                    f"({bt.gain:+.1%}, p = {bt.p_value:.2g}; needs at least {MIN_GAIN:.0%} better "
                                    f"with p < {ALPHA}); predictions would add nothing to the weighted pipeline"),
                            baseline=StageBaseline().fit(rows, follow=follow), train_rows=rows, trained_at=t_now,
                            dropped=prep.dropped, check=scores)
        kind = bt.chosen
        verdict = (f"; backtest Brier {bt.brier:.4f} vs the stage-only baseline's {bt.baseline_brier:.4f} "
                   f"({bt.gain:.1%} better, p = {bt.p_value:.2g})")
    rows = settled_rows(prep, t_now, step_days=step_days, max_rows=max_rows, seed=seed)
    follow = recent_follow(prep, t_now, rows, step_days=step_days, seed=seed)
    model = fit_calibrated(kind, rows, prep.features, seed, follow=follow, longest=longest_win_days(prep, t_now))
    return WinModel(True, f"{kind} model on {len(rows)} snapshots of {rows['deal_id'].nunique()} deals{verdict}",
                    features=prep.features, kind=kind, model=model, baseline=StageBaseline().fit(rows, follow=follow),
                    train_rows=rows, train_p=predict_proba(model, rows, prep.features), trained_at=t_now,
                    dropped=prep.dropped, check=scores)


CACHE_SIZE = 4  # fitted models kept in the process: a company, its replays, a second rule
_models: "OrderedDict[str, WinModel]" = OrderedDict()  # history key -> the model fitted on that history
_prepared: tuple | None = None  # (weakref to the data, Prepared): the last prepare, one entry


def history_key(prep: Prepared, t: int, rule: HistoryRule) -> str:
    """A hash of everything the fit learns its outcomes from: the deals closed by second `t`
    (ids, won or lost, closing second), plus the rule and the feature columns.

    Two scans with the same key would fit the same model (the features of the same closed
    deals, as of the same past snapshots), so the second one reuses the first's. A new closed
    deal, a reopened or re-dated one, other rules or another column set change the key."""
    import hashlib

    memo = (t, rule)  # deal_risk and win_forecast ask the same of one load: hashed once
    if memo in prep.history_keys:
        return prep.history_keys[memo]
    done = (prep.closed >= 0) & (prep.closed <= t) & (prep.won | prep.lost)
    ids = prep.deal_ids[done].astype(str)
    order = np.argsort(ids, kind="stable")
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((rule, prep.features, sorted(prep.dropped))).encode())
    h.update("\x1f".join(ids[order].tolist()).encode())
    h.update(prep.won[done][order].tobytes())
    h.update(prep.closed[done][order].astype(np.int64).tobytes())
    prep.history_keys[memo] = h.hexdigest()
    return prep.history_keys[memo]


def _prepared_for(data) -> Prepared:
    import weakref

    from predict.features import prepare

    global _prepared
    if _prepared is not None and _prepared[0]() is data:
        return _prepared[1]
    prep = prepare(data)
    _prepared = (weakref.ref(data), prep)
    return prep


def _on(model: WinModel, prep: Prepared) -> WinModel:
    """The cached model with its training rows pointing at `prep`'s positions (a new load of the
    same company orders its deals differently; predict.report.Timing reads closings by row)."""
    rows = model.train_rows
    if rows is None or not len(rows):
        return model
    at = rows["row"].to_numpy()
    if (at < len(prep.deal_ids)).all() and (prep.deal_ids[at] == rows["deal_id"].to_numpy()).all():
        return model  # already at its positions (ids are unique): no index of a million ids to build
    where = pd.Index(prep.deal_ids).get_indexer(rows["deal_id"].to_numpy())
    if (where < 0).any():  # cannot happen with an equal history key; refuse rather than misread
        raise ValueError("a cached model's training deal is missing from the data")
    if np.array_equal(where, rows["row"].to_numpy()):
        return model
    rows = rows.copy()
    rows["row"] = where
    return replace(model, train_rows=rows)


def fitted(data, now: datetime | int, rule: HistoryRule = HistoryRule(), *,
           max_age_days: int = 0) -> tuple[Prepared, WinModel]:
    """(prepared data, trained model) for `data` at `now`, fitted only when the history changed.

    The fit (a backtest of two candidates and a final fit) is the expensive part of a scan,
    and it depends only on the closed deals (`history_key`): deal_risk and win_forecast share
    one, and the next scan of the same company reuses it until a deal closes. Never a model
    fitted after `now` (a replay going backwards would learn from its future).

    `max_age_days` (a replay: bot.backtest via the detectors' `detect_at`): a model fitted at
    most this many days of replayed time before `now`, on the history as it was then, is
    reused even though deals closed since: a backtest refits at most weekly, not per day."""
    t_now = now if isinstance(now, int) else seconds_of(now)
    prep = _prepared_for(data)
    key = history_key(prep, t_now, rule)
    hit = _models.get(key)
    if hit is None and max_age_days > 0:
        for k, m in reversed(_models.items()):
            if (0 <= t_now - m.trained_at < max_age_days * DAY and m.rule == rule
                    and history_key(prep, m.trained_at, rule) == k):
                hit, key = m, k
                break
    if hit is not None and hit.trained_at <= t_now:
        _models.move_to_end(key)
        hit = _models[key] = _on(hit, prep)  # remapped once: deal_risk and win_forecast share this object
        return prep, hit
    model = train(prep, t_now, rule)
    model.trained_at, model.rule = t_now, rule
    _models[key] = model
    while len(_models) > CACHE_SIZE:
        _models.popitem(last=False)
    return prep, model


def forget_fitted() -> None:
    """Drop every cached fit (tests; a long-running process that wants its memory back)."""
    global _prepared, _scored
    _models.clear()
    _prepared = _scored = None


def settled_rows(prep: Prepared, t_now: int, *, step_days: int | None = None, max_rows: int = MAX_ROWS,
                 seed: int = 0) -> pd.DataFrame:
    """Snapshots up to `t_now` minus the horizon, each open deal labelled "won within the horizon"."""
    step = step_days or auto_step_days(prep, t_now)
    horizon = settle_seconds(prep, t_now)
    return snapshot_rows(prep, snapshot_seconds(prep, t_now - horizon, step), t_now, horizon=horizon,
                         max_rows=max_rows, seed=seed)


def recent_follow(prep: Prepared, t_now: int, labelled: pd.DataFrame, *, step_days: int | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """follow_rows at `t_now` with the horizon and step settled_rows uses (`labelled`: its rows)."""
    step = step_days or auto_step_days(prep, t_now)
    return follow_rows(prep, t_now, settle_seconds(prep, t_now), step, labelled, seed=seed)


_scored: tuple | None = None  # (weakref model, weakref prep, second, frame): the last scoring, one entry


def score(model: WinModel, prep: Prepared, at: datetime | int) -> pd.DataFrame:
    """Every deal open at `at`: its features, `p_win` (the model) and `p_stage` (the baseline).

    The last result is kept: deal_risk and win_forecast's deals likely to close score the same
    open deals with the same model in one scan (seconds on a million open deals). Read-only."""
    import weakref

    global _scored
    t = at if isinstance(at, int) else seconds_of(at)
    if _scored is not None and _scored[0]() is model and _scored[1]() is prep and _scored[2] == t:
        return _scored[3]
    frame = features_at(prep, t, open_at(prep, t))
    frame["p_win"] = model.proba(frame)
    frame["p_stage"] = model.baseline.predict(frame)
    _scored = (weakref.ref(model), weakref.ref(prep), t, frame)
    return frame
