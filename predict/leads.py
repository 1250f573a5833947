"""Lead scoring: which new leads convert, learned from the company's own leads that carry an outcome.

A lead's outcome is its status (canonical `leads.status`): one of `converted` (it became a deal,
a qualified lead) or `not_converted` (lost, junk); any other status (new, in progress, empty) is
no outcome yet, and those are the leads to rank. The features are what is known the moment a
lead arrives and nothing after it (a response time is not known for a lead nobody has called):
its source, region, the part of the day and whether it came on a weekend.

The honesty rules of the deal model (predict.model) hold here too: below a minimum of outcomes
(`LeadRule`) nothing is fitted and the reason says how far off it is; a regularised logistic
model is backtested on a time-based split (trained on the leads created before a cutoff, tested
on the later ones) against the base rate (every lead converts at the past average), and used
only if its Brier score is at least MIN_GAIN lower and not by chance (one-sided t-test over the
test leads, p < ALPHA). The leads have no conversion date, so outcomes are the statuses as they
are now: the split keeps what is learned from earlier leads, but a lead still undecided after
the cutoff counts as no outcome, not as lost.

Each ranked lead comes with its reason in words a manager trusts: the trait of the lead whose
past leads converted best compared with the average ("source referral: 36% of 400 past leads
converted, 12% on average").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm import lead_words
from predict.model import ALPHA, MIN_GAIN, brier

FEATURES = ("source", "region", "daypart", "weekend")
MISSING = "(none)"
MIN_SHARE_N = 20  # a reason rests on at least this many past leads with the trait...
REASON_LIFT = 1.2  # ...converting at least 1.2 times the average...
REASON_Z = 2.0  # ...and clearly so (standard errors above the average)
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class LeadRule:
    """The least outcomes before leads are scored: leads with an outcome, converted and not among them."""

    min_outcomes: int = 200
    min_converted: int = 30
    min_not_converted: int = 30

    def shortfall(self, converted: int, not_converted: int) -> str | None:
        n = converted + not_converted
        gaps = []
        if n < self.min_outcomes:
            gaps.append(f"{self.min_outcomes - n} more with an outcome")
        if converted < self.min_converted:
            gaps.append(f"{self.min_converted - converted} more converted")
        if not_converted < self.min_not_converted:
            gaps.append(f"{self.min_not_converted - not_converted} more not converted")
        if not gaps:
            return None
        return (f"not enough lead outcomes to score leads: {n} leads with an outcome ({converted} converted, "
                f"{not_converted} not); needs at least {self.min_outcomes} with >= {self.min_converted} converted "
                f"and >= {self.min_not_converted} not: " + ", ".join(gaps))


NOT_A_LEAD = -2  # outcomes(): the record is no lead (a HubSpot subscriber): neither learned from nor ranked


def outcomes(leads: pd.DataFrame, converted: list[str], not_converted: list[str]) -> np.ndarray:
    """Per lead: 1 converted, 0 not converted, -1 no outcome yet (or no status), NOT_A_LEAD.
    Statuses compare as crm.lead_words.key (case, spaces, `_`, `-` ignored)."""
    if "status" not in leads:
        return np.full(len(leads), -1, np.int8)
    status = lead_words.status_keys(leads["status"]).to_numpy(object)
    # the canonical outcomes (the contract's words, what [source.values.leads.status] maps to) and
    # the CRMs' own words for a lead that became a deal (HubSpot's customer) always count
    yes = lead_words.keys(converted) | {"converted"} | lead_words.CONVERTED
    no = lead_words.keys(not_converted) | {lead_words.key("not_converted")} | lead_words.NOT_CONVERTED
    out = np.full(len(leads), -1, np.int8)
    out[np.isin(status, list(no))] = 0
    out[np.isin(status, list(yes))] = 1
    out[np.isin(status, list(lead_words.NOT_A_LEAD))] = NOT_A_LEAD
    return out


def lead_features(leads: pd.DataFrame) -> pd.DataFrame:
    """The features of each lead as it arrives (in the lead's own UTC clock: the part of the day
    is a pattern of when people write, not of the company's office hours)."""
    created = pd.to_datetime(leads["created_at"], utc=True)
    hour = created.dt.hour
    out = pd.DataFrame(index=leads.index)
    for c in ("source", "region"):
        if c in leads and leads[c].notna().any():
            out[c] = leads[c].astype("string").fillna(MISSING).astype(str)
    out["daypart"] = np.select([hour < 6, hour < 12, hour < 18], ["night", "morning", "afternoon"], "evening")
    out["weekend"] = np.where(created.dt.day_of_week >= 5, "weekend", "weekday")
    return out


def _estimator():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.pipeline import Pipeline

    return Pipeline([("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_SHARE_N)),
                     ("clf", LogisticRegression(C=0.1, max_iter=2000))])


@dataclass
class LeadBacktest:
    cutoff: pd.Timestamp
    train_n: int
    test_n: int
    base_rate: float
    brier: float
    baseline_brier: float
    p_value: float

    @property
    def gain(self) -> float:
        return 1 - self.brier / self.baseline_brier if self.baseline_brier > 0 else 0.0

    def beats_baseline(self) -> bool:
        return self.gain >= MIN_GAIN and self.p_value < ALPHA


@dataclass
class LeadModel:
    """What `train_leads` returns: a usable model, or the reason there is none."""

    usable: bool
    reason: str
    features: tuple[str, ...] = ()
    model: object = None
    base_rate: float = 0.0
    backtest: LeadBacktest | None = None
    rates: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)  # feature -> value -> (rate, n)

    def proba(self, x: pd.DataFrame) -> np.ndarray:
        if not self.usable:
            raise ValueError(f"no lead model: {self.reason}")
        return self.model.predict_proba(x[list(self.features)])[:, 1] if len(x) else np.zeros(0)


def _fit(x: pd.DataFrame, y: np.ndarray):
    model = _estimator()
    model.fit(x, y)
    return model


def backtest_leads(x: pd.DataFrame, y: np.ndarray, created: pd.Series, test_share: float = 0.3) -> LeadBacktest | str:
    """Train on the leads created before the cutoff, test on the later ones, against the base rate."""
    from scipy.stats import ttest_1samp

    order = np.argsort(created.to_numpy(), kind="stable")
    cut = int(len(order) * (1 - test_share))
    train, test = order[:cut], order[cut:]
    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
        return "not enough lead outcomes on both sides of the backtest cutoff: converted and not converted are needed in each"
    model = _fit(x.iloc[train], y[train])
    p = model.predict_proba(x.iloc[test])[:, 1]
    base = float(y[train].mean())
    diff = (base - y[test]) ** 2 - (p - y[test]) ** 2
    p_value = 1.0 if not np.std(diff) > 0 else float(ttest_1samp(diff, 0.0, alternative="greater").pvalue)
    return LeadBacktest(pd.Timestamp(created.to_numpy()[order[cut]]), len(train), len(test), base,
                        brier(y[test], p), brier(y[test], np.full(len(test), base)), p_value)


def trait_rates(x: pd.DataFrame, y: np.ndarray) -> dict[str, dict[str, tuple[float, int]]]:
    """Past conversion by each value of each feature: (share converted, leads)."""
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for c in x.columns:
        g = pd.DataFrame({"v": x[c].to_numpy(), "y": y}).groupby("v")["y"].agg(["mean", "count"])
        out[c] = {str(v): (float(r["mean"]), int(r["count"])) for v, r in g.iterrows()}
    return out


def _unrecognised(leads: pd.DataFrame, y: np.ndarray, conv: int, lost: int) -> str | None:
    """When no status says converted (or none says not), the statuses that said neither: a CRM's
    own names (Bitrix24's "Качественный лид") are not in the lists, and the admin must be told
    which to add, not only that there are "0 converted"."""
    if conv and lost or "status" not in leads:
        return None
    other = leads["status"][y == -1].dropna().astype(str).str.strip()
    counts = other[other != ""].value_counts()
    if counts.empty:
        return None
    shown = ", ".join(f"'{v}' ({n})" for v, n in counts.head(6).items()) + (", ..." if len(counts) > 6 else "")
    return (f"no lead status says {'converted' if not conv else 'not converted'} ({conv} converted, {lost} not; "
            f"statuses that say neither: {shown}): list yours in [detectors.lead_score] converted_statuses "
            "and not_converted_statuses")


def train_leads(leads: pd.DataFrame, now: pd.Timestamp, rule: LeadRule, converted: list[str],
                not_converted: list[str]) -> LeadModel:
    """The lead model as of `now` (leads created by then), or the reason there is none."""
    leads = leads[pd.to_datetime(leads["created_at"], utc=True) <= now]
    y_all = outcomes(leads, converted, not_converted)
    done = y_all >= 0
    conv, lost = int((y_all == 1).sum()), int((y_all == 0).sum())
    why = _unrecognised(leads, y_all, conv, lost) or rule.shortfall(conv, lost)
    if why:
        return LeadModel(False, why)
    x = lead_features(leads[done])
    y = y_all[done].astype(int)
    bt = backtest_leads(x, y, pd.to_datetime(leads.loc[done, "created_at"], utc=True))
    if isinstance(bt, str):
        return LeadModel(False, bt)
    if not bt.beats_baseline():
        return LeadModel(False, (f"the lead model does not beat the base rate on the backtest: Brier {bt.brier:.4f} vs "
                                 f"{bt.baseline_brier:.4f} for every lead at the average {bt.base_rate:.0%} "
                                 f"({bt.gain:+.1%}, p = {bt.p_value:.2g}; needs at least {MIN_GAIN:.0%} better with "
                                 f"p < {ALPHA}); its ranking would add nothing"), backtest=bt)
    model = _fit(x, y)
    return LeadModel(True, (f"logistic model on {len(y)} leads with an outcome; backtest Brier {bt.brier:.4f} vs the "
                            f"base rate's {bt.baseline_brier:.4f} ({bt.gain:.1%} better, p = {bt.p_value:.2g})"),
                     features=tuple(x.columns), model=model, base_rate=float(y.mean()), backtest=bt,
                     rates=trait_rates(x, y))


def best_reason(model: LeadModel, row: pd.Series) -> dict | None:
    """The lead's trait whose past leads converted best above the average: at least MIN_SHARE_N
    of them, at least REASON_LIFT times the average and REASON_Z standard errors above it (a
    trait converting 16% against 15% on average is noise, not a reason to call first)."""
    best = None
    base = model.base_rate
    for c in model.features:
        v = str(row[c])
        if v == MISSING or v not in model.rates.get(c, {}):
            continue
        rate, n = model.rates[c][v]
        if n < MIN_SHARE_N or rate < REASON_LIFT * base:
            continue
        if base * (1 - base) > 0 and (rate - base) / np.sqrt(base * (1 - base) / n) < REASON_Z:
            continue
        if best is None or rate > best["rate"]:
            best = {"feature": c, "value": v, "rate": round(rate, 4), "n": n}
    return best
