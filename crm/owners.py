"""Owner cells that name nobody, in every table that has an owner (deals, leads, activities, emails).

CRMs and admins write a word in the owner column of a record nobody owns: amoCRM «Не назначен»,
«Без ответственного», Bitrix24 «Не указан», "Unassigned", "—", and HubSpot's blank owner filled
with the `[source.fill] manager_id` constant ("No owner", CrmData.no_owner). Read as a name, it
became a manager who got stalled items, was a manager_load teammate to route leads to, and was
named as a person ("Без ответственного has 40 open deals"). It is nobody: its deals are the
director's to hand over, its leads "not assigned to anyone".

A CRM's catch-all user exported in the users file (a managers row literally named «Не назначен»)
is the same placeholder: the loader drops the row (`without_placeholders`) and adds its id to
CrmData.no_owner, so the deals written to its id name nobody too.

A whole cell is compared, by `crm.lead_words.key` (case, spaces, `_`, `-` ignored): "Noah Owner"
and «Неназначенова» are people.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from crm.errors import DataWarning
from crm.lead_words import key, keys

NO_OWNER = frozenset({
    "noowner", "unassigned", "notassigned", "nobody", "none", "noone", "безответственного",
    "нетответственного", "неназначен", "неназначено", "ответственныйненазначен", "неуказан", "нет",
    "n/a", "н/д", "—", "–", "",  # "" is a dash or a blank written as text ("-", "_"): no name at all
})

OWNER_TABLES = ("deals", "leads", "activities", "emails")


def no_owner(owner: pd.Series, filled: frozenset[str] = frozenset()) -> np.ndarray:
    """Per owner cell: it names nobody (NO_OWNER, or one of `filled`: the configured fill
    constants and the managers file's placeholder ids, CrmData.no_owner); an empty cell is not
    counted here (it already has no owner). Keyed once per distinct value."""
    words = NO_OWNER | keys(filled)
    codes, values = pd.factorize(owner, use_na_sentinel=True)
    said = np.array([key(v) in words for v in values] + [False], dtype=bool)
    return said[codes]


def placeholders(managers: pd.DataFrame) -> frozenset[str]:
    """manager_ids of the managers rows that are no person: the id or the name names nobody
    (a CRM's catch-all user «Не назначен» exported with the real users)."""
    if managers is None or not len(managers):
        return frozenset()
    mask = no_owner(managers["manager_id"].astype("string"))
    if "name" in managers.columns:
        mask |= no_owner(managers["name"].astype("string"))
    return frozenset(str(m) for m in managers["manager_id"][mask])


def nobody(data) -> frozenset[str]:
    """What `no_owner` reads as nobody besides NO_OWNER for `data` (a CrmData): its fill
    constants and placeholder ids, and the placeholder rows of a managers table the loader did not
    clean (a CrmData built by hand)."""
    return data.no_owner | placeholders(data.managers)


def names_nobody(data, owner: pd.Series) -> np.ndarray:
    """Per owner cell of any table of `data`: it names nobody."""
    return no_owner(owner, nobody(data))


def without_placeholders(managers: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The managers without the placeholder rows, and those rows as id -> name."""
    gone = placeholders(managers)
    if not gone:
        return managers, {}
    drop = managers["manager_id"].astype(str).isin(gone).to_numpy(dtype=bool)
    names = managers["name"] if "name" in managers.columns else managers["manager_id"]
    dropped = {str(m): str(n) for m, n in zip(managers["manager_id"][drop], names[drop])}
    return managers[~drop].reset_index(drop=True), dropped


def nobody_note(tables: dict[str, pd.DataFrame | None], filled: frozenset[str],
                dropped: dict[str, str] | None = None) -> DataWarning | None:
    """check-config's one line: how many deals, leads, activities and emails have an owner cell
    that names nobody, and which words (and managers rows) were read so."""
    counts: dict[str, int] = {}
    words: dict[str, int] = {}
    for table in OWNER_TABLES:
        frame = tables.get(table)
        if frame is None or "manager_id" not in frame.columns:
            continue
        owner = frame["manager_id"]
        mask = no_owner(owner, filled)
        if mask.any():
            counts[table] = int(mask.sum())
            for word, n in owner[mask].astype(str).value_counts().items():
                word = (dropped or {}).get(word, word)  # a placeholder user by its name, not its id
                words[word] = words.get(word, 0) + int(n)
    if not counts and not dropped:
        return None
    said = ", ".join(f"{n:,} {_NOUN[t] if n == 1 else t}" for t, n in counts.items()) or "no record"
    message = f"{said} name nobody as their owner: not a manager, never told nor compared"
    if counts.get("deals"):
        message += "; their stalled deals go to the director to hand over"
    if counts.get("leads"):
        message += ", their leads as not assigned to anyone" if counts.get("deals") else \
            "; their leads go to the director as not assigned to anyone"
    examples = [f"{w!r} ({n:,})" for w, n in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))]
    if dropped:
        message += (f"; the managers file's {len(dropped)} placeholder user(s) are not managers "
                    f"(a CRM's catch-all user, not a person: rename it in the managers file if it is one)")
        examples += [f"managers: {n!r} ({m})" if n != m else f"managers: {n!r}" for m, n in sorted(dropped.items())]
    # count: the words and rows read so, every one of them an example (no ", ..." after them)
    return DataWarning("no_owner", "owners", len(examples), message, examples)


_NOUN = {"deals": "deal", "leads": "lead", "activities": "activity", "emails": "email"}
