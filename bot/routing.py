"""Who receives which insight. The one place the privacy rule lives.

- a manager receives only manager-audience insights about their own manager_id;
- a director receives every director-audience insight plus anything escalated;
- a team channel receives director-audience insights that are not about one deal, client or lead;
- an admin-only recipient (role "admin") receives no insights, only admin commands.
"""
from __future__ import annotations

from typing import Any

from detectors.insight import Insight

PERSONAL_SUBJECT_KEYS = ("deal_id", "client_id", "lead_id")


def person_label(manager_id: object, name: object) -> str:
    """'m7 Айгерим Садыкова' for lists of people, or the name alone when the export's id is the
    name (amoCRM's "Ответственный" column), not 'Айгерим Садыкова Айгерим Садыкова'."""
    i, n = str(manager_id), str(name or "").strip()
    if not n:
        return i
    return n if n == i else f"{i} {n}"


def is_escalated(insight: Insight) -> bool:
    return insight.facts.get("escalated") is True


def for_manager(insight: Insight, manager_id: str) -> bool:
    a = insight.audience
    return a.role == "manager" and a.manager_id is not None and str(a.manager_id) == str(manager_id)


def for_director(insight: Insight) -> bool:
    return insight.audience.role == "director" or is_escalated(insight)


def for_team_channel(insight: Insight) -> bool:
    if insight.audience.role != "director":
        return False
    return not any(insight.subject.get(k) is not None for k in PERSONAL_SUBJECT_KEYS)


def insights_for(recipient: Any, insights: list[Insight]) -> list[Insight]:
    """The insights one configured recipient (bot.config.Recipient) may see."""
    if recipient.role == "manager":
        return [i for i in insights if for_manager(i, recipient.manager_id)]
    if recipient.role == "director":
        return [i for i in insights if for_director(i)]
    return []


def route(insights: list[Insight], config: Any) -> dict[str, list[Insight]]:
    """Recipient id / team channel id -> the insights meant for them (every id present).

    Same rules as insights_for, computed once per scan rather than once per person (a company
    with a thousand managers would otherwise pay a thousand passes over every insight)."""
    by_manager: dict[str, list[Insight]] = {}
    for i in insights:
        if i.audience.role == "manager" and i.audience.manager_id is not None:
            by_manager.setdefault(str(i.audience.manager_id), []).append(i)
    director = [i for i in insights if for_director(i)]
    team = [i for i in insights if for_team_channel(i)]
    out: dict[str, list[Insight]] = {}
    for r in config.recipients:
        if r.role == "manager":
            out[r.id] = list(by_manager.get(str(r.manager_id), []))
        elif r.role == "director":
            out[r.id] = list(director)
        else:
            out[r.id] = []
    for ch in config.channels:
        out[ch.id] = list(team)
    return out
