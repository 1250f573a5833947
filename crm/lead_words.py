"""What a lead's status word says, across the CRMs' own lead lifecycles.

A web-UI export writes the CRM's words in `leads.status`, and the same word comes written two
ways ("Sales Qualified Lead" in HubSpot's UI, `salesqualifiedlead` in its export and API), so
statuses are compared by `key`: case, spaces, `_` and `-` ignored.

Some words mean one thing whatever the config lists say, like the contract's own `converted`:
- NOT_A_LEAD: the record is no lead at all. HubSpot's contacts export holds every contact, and
  a newsletter `subscriber` has no owner and nobody is meant to call it: read as a lead it was
  an "unassigned lead" alert and a lead to call first.
- ANSWERED: someone has worked on the lead (HubSpot's lifecycle past `lead` and lead statuses
  past `New`/`Open`; Bitrix24's «В работе», «Обработан»), so it is not waiting for an answer.
- CONVERTED: it became a deal (HubSpot's `opportunity`, `customer`), or was won (amoCRM's fixed
  status 142, what an API or SQL export holds: its leads are its deals); NOT_CONVERTED: amoCRM's
  143, lost.
- `worked_stages`: where the status is a deal stage (amoCRM's leads are its deals, in the
  company's own pipeline: «Первичный контакт», «Думает», «Счёт выставлен»), a lead at a stage
  after the pipeline's first (crm.stages' order, CrmData.stages; the CRM's incoming stage,
  «Неразобранное», is not the first) was moved on by someone: not waiting for a first call.

An owner cell that names nobody ("No owner", «Без ответственного») is no lead word: crm.owners.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

_SEPARATORS = re.compile(r"[\s_\-]+")

NOT_A_LEAD = frozenset({"subscriber"})
CONVERTED = frozenset({"opportunity", "customer", "evangelist", "142"})
NOT_CONVERTED = frozenset({"143"})
# where requests wait before anyone takes them (amoCRM's «Неразобранное»): before the first stage
INCOMING = frozenset({"неразобранное", "unsorted", "incoming", "incomingleads"})
ANSWERED = CONVERTED | frozenset({
    "salesqualifiedlead", "inprogress", "attemptedtocontact", "connected", "opendeal", "unqualified",
    "badtiming", "вработе", "обработан",
})


def worked_stages(stages: list[str]) -> frozenset[str]:
    """`key`s of the pipeline stages (in order, first stage first: CrmData.stages) after the
    first one that is not an incoming stage, won/lost (crm.stages.CLOSING) left out: a lead
    whose status is one of them was moved on by someone."""
    from crm.stages import CLOSING

    keyed = [k for k in (key(s) for s in stages) if k and k not in INCOMING and k not in CLOSING]
    return frozenset(keyed[1:]) - {keyed[0]} if keyed else frozenset()


def key(word: object) -> str:
    """'Sales Qualified Lead', 'sales_qualified_lead', 'salesqualifiedlead' -> 'salesqualifiedlead'."""
    return _SEPARATORS.sub("", str(word).strip().casefold())


def keys(words) -> set[str]:
    return {key(w) for w in words}


def status_keys(status: pd.Series) -> pd.Series:
    """`key` of each status; an empty status is ''. Keyed once per distinct word (a leads table
    has a handful of statuses and may have millions of rows)."""
    codes, words = pd.factorize(status, use_na_sentinel=True)
    keyed = np.array([key(w) for w in words] + [""], dtype=object)  # code -1 (empty) -> ""
    return pd.Series(keyed[codes], index=status.index, dtype=object)
