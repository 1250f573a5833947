"""Build small CrmData by hand, typed exactly as crm.schema says (ids str, UTC timestamps).

Used by detectors-A's tests (conversion_drop, manager_load, loss_reasons) so each test states
only the rows it cares about.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from crm.data import CrmData
from crm.schema import TABLES

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
STAGES = ["new", "qualified", "proposal", "contract"]


def frame(table: str, rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows -> a frame with every column of `table`, optional ones filled with their default."""
    df = pd.DataFrame(rows).copy() if not isinstance(rows, pd.DataFrame) else rows.copy()
    spec = TABLES[table]
    out = {}
    for col in spec.columns:
        values = df[col.name] if col.name in df.columns else pd.Series([col.default] * len(df), dtype=object)
        values = values.reset_index(drop=True)
        if col.kind == "str":
            out[col.name] = values.astype("str").where(values.notna(), None).astype("str")
        elif col.kind == "datetime":
            out[col.name] = pd.to_datetime(values, utc=True)
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(values).astype("float64")
        elif col.kind == "int":
            out[col.name] = pd.to_numeric(values).astype("int64")
        elif col.kind == "bool":
            out[col.name] = values.astype(bool)
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def make_data(*, managers, deals, stage_history=(), stages=STAGES, leads=None, derived=False) -> CrmData:
    sh = frame("stage_history", list(stage_history) if not isinstance(stage_history, pd.DataFrame) else stage_history) \
        if len(stage_history) else frame("stage_history", pd.DataFrame(columns=["deal_id", "stage", "entered_at"]))
    return CrmData(
        managers=frame("managers", managers),
        deals=frame("deals", deals),
        stage_history=sh,
        stages=list(stages),
        leads=None if leads is None else frame("leads", leads),
        stage_history_derived=derived,
    )


def day(n: float, base: datetime = NOW) -> datetime:
    """`n` days before NOW (positive = past)."""
    return base - timedelta(days=n)


def delay(k: int, s: int) -> float:
    """Days a deal takes to leave a stage: 3..23, varied by deal so young cohorts are censored."""
    return 3 + 20 * (((k + 1) * 0.7548776662 + s * 0.5698402910) % 1.0)


_ALPHAS = [float(np.sqrt(p) % 1) for p in (2, 3, 5, 7, 11, 13, 17, 19)]


def pipeline(ages, rate, *, sources=("web", "referral", "partner"), managers=("m1", "m2", "m3"),
             regions=("north", "south"), stages=STAGES, now=NOW, id_prefix="d"):
    """Deals entering the first stage `ages` days before `now`, moving on deterministically.

    At each stage a deal converts when its quasi-random number u(k, stage) < rate(stage,
    entry_age_days, segments); converters reach the next stage (or win, after the last stage) 3
    to 23 days later (spread by `delay`), the others are lost 2 days after that. Steps that would happen after `now` have not
    happened yet, so young deals are still open: real right-censoring. Returns (deals, history).
    """
    deals, history = [], []
    for k, age in enumerate(ages):
        deal_id = f"{id_prefix}{k:06d}"
        source, manager = sources[k % len(sources)], managers[(k // len(sources)) % len(managers)]
        region = regions[(k // 7) % len(regions)]
        seg = {"source": source, "manager": manager, "region": region}
        entered = now - timedelta(days=age)
        status, closed, cur = "open", None, stages[0]
        for s, stage in enumerate(stages):
            if entered > now:
                break
            cur = stage
            history.append({"deal_id": deal_id, "stage": stage, "entered_at": entered})
            entry_age = (now - entered).total_seconds() / 86400
            u = ((k + 1) * _ALPHAS[s % len(_ALPHAS)]) % 1.0  # jointly equidistributed per stage
            if u < rate(s, entry_age, seg):
                nxt = entered + timedelta(days=delay(k, s))
                if nxt > now:
                    break
                if s + 1 == len(stages):
                    status, closed = "won", nxt
                entered = nxt
            else:
                lost_at = entered + timedelta(days=delay(k, s) + 2)
                if lost_at <= now:
                    status, closed = "lost", lost_at
                break
        deals.append({
            "deal_id": deal_id, "manager_id": manager, "stage": cur, "status": status,
            "created_at": now - timedelta(days=age), "closed_at": closed, "source": source,
            "region": region, "amount": 1000.0, "currency": "KZT",
            "loss_reason": "price" if status == "lost" else None,
        })
    return deals, history


MANAGERS = [{"manager_id": "m1", "name": "Aigerim"}, {"manager_id": "m2", "name": "Boris"},
            {"manager_id": "m3", "name": "Carla"}]


def spread(n: int, start_days_ago: float, end_days_ago: float) -> list[float]:
    """n ages evenly spread over (end, start] days ago."""
    if n == 0:
        return []
    step = (start_days_ago - end_days_ago) / n
    return [start_days_ago - step * (i + 0.5) for i in range(n)]
