"""A synthetic company whose win drivers are known: for the model's tests and benchmark.

Each deal gets a hidden engagement (high or low). Highly engaged deals are touched every few
days and are won far more often; the rest are touched every couple of weeks. Lost deals drop
out at a random stage, so later stages win more often (what the stage-only baseline knows),
and engagement adds what the baseline cannot see. `region` is pure noise: drawn at random,
unrelated to anything. Vectorised numpy, one seeded Generator, the clock passed in.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from crm.data import CrmData

STAGES = ["new", "qualified", "proposal", "negotiation", "contract"]
REGIONS = ["north", "south", "east", "west"]
SOURCES = ["web", "call", "referral"]
_DAY_NS = 86_400 * 10**9


def _ts(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ns, unit="ns", utc=True))


def planted_company(n_deals: int, now: datetime, *, span_days: int = 540, seed: int = 1,
                    engagement_effect: float = 2.4, managers: int = 10, drift: float = 0.0,
                    never_close: float = 0.0, never_close_from: float = 0.4, stuck_days: int = 120,
                    speedup: float = 1.0, quarter_rush: float = 0.0) -> CrmData:
    """`n_deals` deals created over `span_days` before `now`; win odds rise with engagement.

    `drift`: the log-odds of winning move by this much from the first deal created to the last
    (-1.5: a market turning, the newest deals win far less often than the oldest at the same
    engagement), a change of base rate no feature explains.

    `never_close`: the share of the deals created after `never_close_from` of the span (0 the
    oldest, 1 the newest) that nobody closes (Maven's export: its later cohorts are full of
    deals still "Engaging" at its end). They stay open, touched as open deals are, until a
    clean-up marks them lost `stuck_days` after creation: the pipeline's win share falls, then
    holds. Drawn from a generator of their own: the other deals are the same as without it.

    `speedup`: the newest deals move through each stage this many times as fast as the oldest
    (stays shrink steadily with the creation date): a company that closes faster lately, whose
    recent wins come sooner after a snapshot than its older ones did. The draws are the same.

    `quarter_rush`: the share of the won deals whose signing is held to the last two weeks of
    the quarter they would have closed in (Maven's export: a quarter's first month wins about half
    as often as its last), so how soon a pipeline's wins come depends on the date. Drawn from a
    generator of its own, as never_close."""
    rng = np.random.default_rng(seed)
    now_ns = pd.Timestamp(now).value
    created = now_ns - rng.integers(1, span_days * _DAY_NS, n_deals)
    engaged = rng.random(n_deals) < 0.5
    age = (created - (now_ns - span_days * _DAY_NS)) / (span_days * _DAY_NS)  # 0 oldest .. 1 newest
    p_win = 1 / (1 + np.exp(-(-1.6 + engagement_effect * engaged + drift * age)))
    will_win = rng.random(n_deals) < p_win
    n_st = len(STAGES)
    reached = np.where(will_win, n_st, rng.integers(1, n_st + 1, n_deals))  # stages entered
    pace = float(speedup) ** -age  # 1 for every deal when speedup is 1
    stay = (rng.exponential(6.0, (n_deals, n_st)) * pace[:, None] * _DAY_NS).astype(np.int64) + 3_600 * 10**9
    entry = created[:, None] + np.concatenate([np.zeros((n_deals, 1), np.int64), np.cumsum(stay, 1)[:, :-1]], 1)
    close = created + np.cumsum(stay, 1)[np.arange(n_deals), reached - 1]
    if never_close:
        stuck = (np.random.default_rng([seed, 1]).random(n_deals) < never_close) & (age >= never_close_from)
        close = np.where(stuck, created + stuck_days * _DAY_NS, close)
        will_win &= ~stuck
    if quarter_rush:
        held = will_win & (np.random.default_rng([seed, 2]).random(n_deals) < quarter_rush)
        q_end = (pd.DatetimeIndex(close[held]).to_period("Q") + 1).start_time.as_unit("ns").asi8  # the next quarter's start
        rush = np.random.default_rng([seed, 3]).integers(1, 14 * _DAY_NS, int(held.sum()))
        close[held] = np.maximum(close[held], q_end - rush)
    is_closed = close <= now_ns
    status = np.where(is_closed, np.where(will_win, "won", "lost"), "open")
    entered = (np.arange(n_st)[None, :] < reached[:, None]) & (entry <= now_ns)
    cur_stage = entered.sum(1) - 1
    deal_ids = np.char.add("D", np.arange(n_deals).astype(str))
    clients = max(1, n_deals // 4)
    client = rng.integers(0, clients, n_deals)
    manager = rng.integers(0, managers, n_deals)
    deals = pd.DataFrame({
        "deal_id": pd.array(deal_ids, dtype="string"),
        "client_id": pd.array(np.char.add("C", client.astype(str)), dtype="string"),
        "manager_id": pd.array(np.char.add("m", manager.astype(str)), dtype="string"),
        "title": pd.array(deal_ids, dtype="string"),
        "amount": np.round(rng.lognormal(13, 1.0, n_deals), -3),
        "currency": pd.array(["USD"] * n_deals, dtype="string"),
        "stage": pd.array(np.asarray(STAGES)[cur_stage], dtype="string"),
        "status": pd.array(status, dtype="string"),
        "created_at": _ts(created),
        "closed_at": _ts(np.where(is_closed, close, np.datetime64("NaT").astype(np.int64))),
        "loss_reason": pd.array([None] * n_deals, dtype="string"),
        "source": pd.array(np.asarray(SOURCES)[rng.integers(0, len(SOURCES), n_deals)], dtype="string"),
        "region": pd.array(np.asarray(REGIONS)[rng.integers(0, len(REGIONS), n_deals)], dtype="string"),
    })
    deals.loc[~is_closed, "closed_at"] = pd.NaT
    d_idx, s_idx = np.nonzero(entered)
    history = pd.DataFrame({
        "deal_id": pd.array(deal_ids[d_idx], dtype="string"),
        "stage": pd.array(np.asarray(STAGES)[s_idx], dtype="string"),
        "entered_at": _ts(entry[d_idx, s_idx]),
    })
    # Touches: engaged deals about every 3 days, the rest about every 15, while the deal is open.
    end = np.minimum(close, now_ns)
    rate = np.where(engaged, 1 / 3.0, 1 / 15.0)
    n_touch = rng.poisson((end - created) / _DAY_NS * rate)
    owner = np.repeat(np.arange(n_deals), n_touch)
    t = created[owner] + (rng.random(len(owner)) * (end - created)[owner]).astype(np.int64)
    acts = pd.DataFrame({
        "activity_id": pd.array(np.char.add("A", np.arange(len(owner)).astype(str)), dtype="string"),
        "deal_id": pd.array(deal_ids[owner], dtype="string"),
        "client_id": pd.array(np.char.add("C", client[owner].astype(str)), dtype="string"),
        "manager_id": pd.array(np.char.add("m", manager[owner].astype(str)), dtype="string"),
        "type": pd.array(np.asarray(["call", "meeting", "email"])[rng.integers(0, 3, len(owner))], dtype="string"),
        "due_at": _ts(t),
        "done_at": _ts(t),
    })
    mgrs = pd.DataFrame({
        "manager_id": pd.array([f"m{i}" for i in range(managers)], dtype="string"),
        "name": pd.array([f"Manager {i}" for i in range(managers)], dtype="string"),
        "email": pd.array([None] * managers, dtype="string"), "region": pd.array([None] * managers, dtype="string"),
        "team": pd.array([None] * managers, dtype="string"), "capacity": np.ones(managers), "active": np.ones(managers, bool),
    })
    return CrmData(managers=mgrs, deals=deals, stage_history=history, stages=list(STAGES), activities=acts,
                   origins={"deals": "planted", "stage_history": "planted", "activities": "planted"})


LEAD_SOURCES = ["web", "ads", "call", "referral"]


def planted_leads(n: int, now: datetime, *, span_days: int = 365, seed: int = 2, managers: int = 10,
                  referral_lift: float = 3.0, base_rate: float = 0.1, open_days: int = 14) -> pd.DataFrame:
    """`n` leads over `span_days` before `now` in the canonical leads table: a referral converts
    `referral_lift` times as often as any other source (`base_rate`); region and the time of
    day are noise. Leads created in the last `open_days` have no outcome yet (status "new")."""
    rng = np.random.default_rng(seed)
    now_ns = pd.Timestamp(now).value
    created = now_ns - rng.integers(1, span_days * _DAY_NS, n)
    source = np.asarray(LEAD_SOURCES)[rng.integers(0, len(LEAD_SOURCES), n)]
    p = np.where(source == "referral", base_rate * referral_lift, base_rate)
    converted = rng.random(n) < p
    fresh = created > now_ns - open_days * _DAY_NS
    status = np.where(fresh, "new", np.where(converted, "converted", "lost"))
    return pd.DataFrame({
        "lead_id": pd.array(np.char.add("L", np.arange(n).astype(str)), dtype="string"),
        "created_at": _ts(created),
        "source": pd.array(source, dtype="string"),
        "region": pd.array(np.asarray(REGIONS)[rng.integers(0, len(REGIONS), n)], dtype="string"),
        "manager_id": pd.array(np.char.add("m", rng.integers(0, managers, n).astype(str)), dtype="string"),
        "assigned_at": _ts(created),
        "first_response_at": _ts(np.full(n, np.datetime64("NaT").astype(np.int64))),
        "status": pd.array(status, dtype="string"),
    })
