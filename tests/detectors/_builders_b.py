"""Hand-built small CrmData for the operational detectors' tests (silent_client, stalled_deal,
lead_sla) and for backtest/explain: rows as dicts, dtypes exactly as crm.schema says.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from crm.data import CrmData
from crm.schema import TABLES

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday
STAGES = ["Новый", "Квалификация", "КП отправлено", "Переговоры"]


def ago(days: float = 0, hours: float = 0, seconds: float = 0, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days, hours=hours, seconds=seconds)


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """A canonical frame for `table`: missing optional columns filled with their default."""
    spec = TABLES[table]
    cols = {}
    for c in spec.columns:
        values = [r.get(c.name, c.default) for r in rows]
        if c.kind == "str":
            cols[c.name] = pd.Series(values, dtype="str")
        elif c.kind == "datetime":
            cols[c.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype("datetime64[ns, UTC]")
        elif c.kind == "float":
            cols[c.name] = pd.Series(values, dtype="float64")
        elif c.kind == "int":
            cols[c.name] = pd.Series(values, dtype="int64")
        else:
            cols[c.name] = pd.Series(values, dtype="bool")
    return pd.DataFrame(cols)


MANAGERS = [
    {"manager_id": "m1", "name": "Айгерим Садыкова", "team": "Алматы"},
    {"manager_id": "m2", "name": "Иван Петров", "team": "Алматы"},
]


def crm(*, managers: list[dict] | None = None, deals: list[dict] | None = None,
        stage_history: list[dict] | None = None, **optional: list[dict] | None) -> CrmData:
    """CrmData from row lists; optional tables (clients, emails, ...) stay None unless given."""
    kw = {name: frame(name, rows) for name, rows in optional.items() if rows is not None}
    return CrmData(
        managers=frame("managers", managers if managers is not None else MANAGERS),
        deals=frame("deals", deals or []),
        stage_history=frame("stage_history", stage_history or []),
        stages=list(STAGES),
        **kw,
    )


def deal(deal_id: str, *, stage: str = "Квалификация", status: str = "open", created: datetime | None = None,
         manager_id: str = "m1", client_id: str | None = None, **kw) -> dict:
    return {"deal_id": deal_id, "client_id": client_id, "manager_id": manager_id, "title": f"Сделка {deal_id}",
            "amount": 1_500_000.0, "currency": "KZT", "stage": stage, "status": status,
            "created_at": created or ago(60), **kw}


def email(email_id: str, client_id: str, sent: datetime, *, direction: str = "out", manager_id: str | None = "m1",
          deal_id: str | None = None, subject: str | None = None) -> dict:
    return {"email_id": email_id, "client_id": client_id, "manager_id": manager_id, "deal_id": deal_id,
            "direction": direction, "sent_at": sent, "subject": subject or f"Письмо {email_id}"}


def opened(email_id: str, at: datetime) -> dict:
    return {"email_id": email_id, "opened_at": at}
