"""Helpers for the maturity tests: a person, a settable clock, tiny CRM frames, inbound events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from bot.channels.base import Inbound
from crm.data import CrmData

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


@dataclass
class Person:
    id: str
    role: str = "director"
    language: str | None = "en"
    name: str | None = None


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ts(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True)


def make_data(*, leads: pd.DataFrame | None = None, activities: pd.DataFrame | None = None,
              deals: pd.DataFrame | None = None, managers: pd.DataFrame | None = None) -> CrmData:
    if managers is None:
        managers = pd.DataFrame({"manager_id": pd.Series(["m1", "m2", "m3"], dtype="str"),
                                 "name": pd.Series(["Asel", "Bolat", "Dana"], dtype="str"),
                                 "capacity": [1.0, 1.0, 1.0], "active": [True, True, True]})
    if deals is None:
        deals = pd.DataFrame({
            "deal_id": pd.Series(["d1", "d2", "d3", "d4"], dtype="str"),
            "client_id": pd.Series(["c1", None, "c3", "c4"], dtype="str"),
            "manager_id": pd.Series(["m1", "m1", "m2", "m3"], dtype="str"),
            "amount": [100.0, None, 300.0, 400.0],
            "stage": pd.Series(["A", "A", "B", "B"], dtype="str"),
            "status": pd.Series(["won", "lost", "lost", "open"], dtype="str"),
            "created_at": ts(["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"]),
            "loss_reason": pd.Series([None, "Цена", None, None], dtype="str"),
            "source": pd.Series(["web", "web", "", "call"], dtype="str"),
        })
    history = pd.DataFrame({"deal_id": deals["deal_id"], "stage": deals["stage"], "entered_at": deals["created_at"]})
    return CrmData(managers=managers, deals=deals, stage_history=history, stages=["A", "B"],
                   leads=leads, activities=activities)


def make_leads(n: int, *, minutes: list[float] | float, managers: list[str], start: datetime = NOW - timedelta(days=30),
               assigned_at: bool = True) -> pd.DataFrame:
    created = [start + timedelta(hours=3 * i) for i in range(n)]
    waits = minutes if isinstance(minutes, list) else [minutes] * n
    return pd.DataFrame({
        "lead_id": pd.Series([f"L{i}" for i in range(n)], dtype="str"),
        "created_at": ts(created),
        "manager_id": pd.Series([managers[i % len(managers)] for i in range(n)], dtype="str"),
        "assigned_at": ts([c + timedelta(minutes=w) for c, w in zip(created, waits)]) if assigned_at
        else ts([None] * n),
    })


def tg(user: str = "100", *, text: str | None = None, action: str | None = None, message_id: str | None = None,
       channel: str = "telegram") -> Inbound:
    return Inbound(channel=channel, user_id=user, chat_id=f"chat{user}", text=text, action=action,
                   message_id=message_id)
