"""A random company for conversion_drop: deals move through the pipeline with chances that
depend on their segment and on when they entered a stage, with random delays, so every seed is
a different sample of the same truth (planted drops are found, noise is not).
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from _builders_a import MANAGERS, NOW, STAGES, make_data

SOURCES = ("web", "referral", "partner", "expo", "instagram")
ALL_MANAGERS = ("m1", "m2", "m3")
REGIONS = ("north", "south")


def uniform_sources(age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array(SOURCES[:3]), size=len(age))


def company(seed: int, rate, *, n: int = 3000, days: float = 240, sources=uniform_sources,
            managers=None, stages=STAGES, derived: bool = False, delay=None):
    """CrmData of `n` deals created over `days` before NOW.

    rate(stage, entry_age_days, source, manager, region) -> chance (arrays) that a deal at
    `stage` moves on; `sources(age, rng)` and `managers(source, rng)` assign segments;
    delay(stage, rng, size) -> days to move on (default 2 + gamma(2, 3), about 8 days).
    Movers enter the next stage (or win after the last one); the others are lost 3-20 days
    after entering. Events after NOW have not happened (open deals).
    """
    rng = np.random.default_rng(seed)
    age = rng.uniform(0, days, n)
    src = sources(age, rng)
    mgr = managers(src, rng) if managers else rng.choice(np.array(ALL_MANAGERS), size=n)
    reg = rng.choice(np.array(REGIONS), size=n)
    delay = delay or (lambda s, r, size: 2 + r.gamma(2.0, 3.0, size))
    t = age.copy()  # days before NOW of the current stage entry
    alive = np.ones(n, dtype=bool)  # still moving through (not lost, not stopped by NOW)
    stage = np.full(n, stages[0], dtype=object)
    status = np.full(n, "open", dtype=object)
    closed = np.full(n, np.nan)
    hist = []
    for s, name in enumerate(stages):
        idx = np.flatnonzero(alive)
        hist.append(pd.DataFrame({"deal_id": idx, "stage": name, "ago": t[idx]}))
        stage[idx] = name
        moves = rng.random(len(idx)) < rate(s, t[idx], src[idx], mgr[idx], reg[idx])
        nxt = t[idx] - delay(s, rng, len(idx))
        lost_at = t[idx] - rng.uniform(3, 20, len(idx))
        happened_move = moves & (nxt >= 0)
        lost = ~moves & (lost_at >= 0)
        status[idx[lost]] = "lost"
        closed[idx[lost]] = lost_at[lost]
        alive[idx[~happened_move]] = False
        t[idx[happened_move]] = nxt[happened_move]
        if s == len(stages) - 1:
            won = idx[happened_move]
            status[won], closed[won] = "won", t[won]
    now = pd.Timestamp(NOW)
    ids = np.array([f"c{k:06d}" for k in range(n)])
    deals = pd.DataFrame({
        "deal_id": ids, "manager_id": mgr, "stage": stage, "status": status,
        "created_at": now - pd.to_timedelta(age, unit="D"),
        "closed_at": now - pd.to_timedelta(closed, unit="D"),
        "source": src, "region": reg, "amount": 1000.0, "currency": "KZT",
    })
    h = pd.concat(hist, ignore_index=True)
    history = pd.DataFrame({"deal_id": ids[h["deal_id"].to_numpy()], "stage": h["stage"].to_numpy(),
                            "entered_at": now - pd.to_timedelta(h["ago"].to_numpy(), unit="D")})
    if derived:  # what the loader derives: each deal entered the first stage at creation
        history = pd.DataFrame({"deal_id": ids, "stage": stages[0], "entered_at": deals["created_at"]})
    return make_data(managers=MANAGERS, deals=deals, stage_history=history, stages=stages, derived=derived)


def days_ago(n: float):
    return NOW - timedelta(days=n)
