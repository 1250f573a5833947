"""Activity lists as a CRM's web UI exports them, made into touches the detectors can trust.

Three things such a list does that the canonical contract does not (README, activity exports):
- it holds planned and overdue tasks beside done ones, told apart only by a status column
  (`done`: «Выполнено» Да/Нет, "Done"/"To do", COMPLETED/NOT_STARTED), and its time column may be
  the planned end (Bitrix24's «Дата завершения»): a task nobody did is no touch, or it hides the
  stalled deal and the silent client it was meant for;
- it names the deal by its title ("Сделка: Поставка линолеума"), and titles repeat: a title is
  linked only when it names one deal (or one deal of the activity's client, or the only one of
  that title open then), never guessed, and what stays unlinked is counted in one line;
- it names the manager by display name where managers.csv has ids: the loader reads a name that
  is exactly one manager's as that manager, in every table (crm.validate.match_managers).
"""
from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from crm.errors import DataWarning
from crm.ids import positions

EXAMPLES = 3
_DEAL_PREFIX = re.compile(r"^\s*(?:сделка|deal)\s*[:#№]\s*", re.IGNORECASE)
# «Связано с» / a "Related to" column may name a contact, company or lead instead of a deal
_OTHER_PREFIX = re.compile(r"^\s*(?:контакт|компания|лид|клиент|contact|company|lead|organization|person)\s*:",
                           re.IGNORECASE)


def prepare(acts: pd.DataFrame, deals: pd.DataFrame, origin: str,
            read: dict[str, str] | None = None, now: datetime | None = None,
            ) -> tuple[pd.DataFrame, list[DataWarning]]:
    """The activities with plans set aside and deals linked by title, and one
    warning per thing done. `read`: canonical column -> the file's column (for the messages)."""
    read = read or {}
    acts = acts.copy()
    warnings: list[DataWarning] = []
    for step in (_due_as_done, _not_done, _future_done):
        note = step(acts, origin, read, now)
        if note:
            warnings.append(note)
    if "deal_id" in acts.columns:
        note = _deals_by_title(acts, deals, origin, read)
        if note:
            warnings.append(note)
    return acts, warnings


def _col(read: dict[str, str], name: str) -> str:
    return repr(read.get(name, name))


_DUE_NAMES = ("срок", "крайний срок", "срок выполнения", "deadline", "due", "due date", "due time")


def _due_as_done(acts: pd.DataFrame, origin: str, read: dict[str, str], now) -> DataWarning | None:
    """done_at read from a due-date column: a done task then counts when it was due, and, with no
    status column, a task nobody did counts as done on its due day. Said once, with what to map."""
    their = read.get("done_at")
    if their is None or re.sub(r"[\s_\-]+", " ", str(their)).strip().casefold() not in _DUE_NAMES:
        return None
    return DataWarning(
        "done_at_is_due", "activities", len(acts),
        f"{their!r} is read as activities.done_at in {origin}, but it is when each activity is due, not when it "
        "was done: a done call counts at its due time" + ("" if "done" in read else
                                                           ", and a task nobody did counts as a touch on its due day")
        + "; map the column with the time it was marked done (\"Marked as done time\", «Дата завершения»)"
        + ("" if "done" in read else " and the status column as done"),
    )


def _not_done(acts: pd.DataFrame, origin: str, read: dict[str, str], now) -> DataWarning | None:
    """A row whose status says not done keeps its due date but loses its done_at."""
    if "done" not in read or "done" not in acts.columns:
        return None
    pending = ~acts["done"].to_numpy(dtype=bool)
    if not pending.any():
        return None
    timed = pending & acts["done_at"].notna().to_numpy() if "done_at" in acts.columns else pending & False
    if timed.any():
        acts.loc[timed, "done_at"] = pd.NaT
    n = int(pending.sum())
    return DataWarning(
        "activities_not_done", "activities", n,
        f"{n:,} of {len(acts):,} activities in {origin} are not done, as {_col(read, 'done')} says (planned or "
        "overdue), so they count as no touch of their deal or client"
        + (f"; the time {int(timed.sum()):,} of them have in {_col(read, 'done_at')} is their planned end and is "
           "not read" if timed.any() else ""),
        [str(v) for v in acts.loc[pending, "activity_id"].head(EXAMPLES)],
    )


def _future_done(acts: pd.DataFrame, origin: str, read: dict[str, str], now) -> DataWarning | None:
    """Without a status column, a done_at after now is a plan (or a clock off): set aside, and
    the admin told which column would also set aside the overdue ones."""
    if now is None or "done" in read or "done_at" not in acts.columns:
        return None
    future = (acts["done_at"] > pd.Timestamp(now)).to_numpy(dtype=bool, na_value=False)
    if not future.any():
        return None
    acts.loc[future, "done_at"] = pd.NaT
    n = int(future.sum())
    return DataWarning(
        "activities_planned", "activities", n,
        f"{n:,} activities in {origin} have {_col(read, 'done_at')} after now: planned, not done, so not "
        "touches (if they were done, check the export's time zone). A task planned for a past day and "
        "never done still counts as a touch: map the list's status column as done "
        "([source.columns.activities] done = \"Выполнено\" / \"Done\" / \"Task Status\")",
        [str(v) for v in acts.loc[future, "activity_id"].head(EXAMPLES)],
    )


def _key(series: pd.Series) -> pd.Series:
    """Text as compared: no deal prefix, case and runs of spaces ignored."""
    text = series.astype("string").str.replace(_DEAL_PREFIX, "", regex=True)
    return text.str.replace(r"\s+", " ", regex=True).str.strip().str.casefold()


def _unique_lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """key -> value for the keys that occur once; keys that repeat are left out."""
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).dropna()
    once = ~frame["k"].duplicated(keep=False)
    return pd.Series(frame.loc[once, "v"].to_numpy(), index=frame.loc[once, "k"].to_numpy())


def _deals_by_title(acts: pd.DataFrame, deals: pd.DataFrame, origin: str, read: dict[str, str]
                    ) -> DataWarning | None:
    """Link activities that name a deal by its title; what cannot be linked to one deal for
    sure is left without a deal (a wrong deal would hide a stalled one) and counted."""
    deal_ids = deals["deal_id"].astype(str)
    given = acts["deal_id"]
    # an Arrow hash lookup: pandas' isin turns a million ids into Python strings first (seconds)
    unknown = given.notna().to_numpy(dtype=bool) & (positions(given.astype("string"), deal_ids.astype("string")) < 0)
    if not unknown.any():
        return None
    rows = acts.index[unknown]
    text = given[rows].astype("string")
    linked, shared, other = link_titles(text, deals, acts.loc[rows], "done_at")
    acts["deal_id"] = acts["deal_id"].astype(object)
    acts.loc[rows, "deal_id"] = linked.astype(object).where(linked.notna(), None).to_numpy()
    acts["deal_id"] = acts["deal_id"].astype(given.dtype)
    n, ok = len(rows), int(linked.notna().sum())
    nobody = n - ok - int(shared.sum()) - int(other.sum())
    parts = [f"{ok:,} linked to the one deal of that title (where titles repeat: the one of the activity's "
             "client, or the only one open at the activity's time)"]
    if shared.any():
        parts.append(f"{int(shared.sum()):,} not linked: " + shared_titles(text[shared], deals))
    if other.any():
        parts.append(f"{int(other.sum()):,} name a contact, company or lead, not a deal")
    if nobody:
        parts.append(f"{nobody:,} name no deal in deals")
    return DataWarning(
        "activity_deal_by_title", "activities", n,
        f"{n:,} activities in {origin} name their deal by a title or other text, not by its id "
        f"({_col(read, 'deal_id')}): " + "; ".join(parts) + ". Those not linked count as touches of no deal "
        "(stalled_deal may call a deal idle that was worked): map a deal id column if the export has one",
        [str(v) for v in text[~linked.notna().to_numpy()].drop_duplicates().head(EXAMPLES)],  # each text once
    )


def link_titles(text: pd.Series, deals: pd.DataFrame, context: pd.DataFrame, at: str
                ) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Each text's deal when it names exactly one: a deal id written as text ("Сделка: 4512"), a
    title one deal has, or a title several share and only one of them fits (the one of the
    row's client, else the only one open at the row's time `context[at]`); never a guess.
    `context`: the rows of `text` (same order), with `at` and optionally client_id.
    Returns (deal id or NA per text, where several deals share the title and nothing tells
    which, where the text names a contact, company or lead instead)."""
    deal_ids = deals["deal_id"].astype(str)
    text = text.astype("string")
    other = text.str.contains(_OTHER_PREFIX).fillna(False).to_numpy(dtype=bool)
    key = _key(text)
    linked = key.map(_unique_lookup(_key(deal_ids), deal_ids))  # "Сделка: 4512": an id after all
    shared = np.zeros(len(text), dtype=bool)
    if "title" in deals.columns and deals["title"].notna().any():
        titles = _key(deals["title"])
        linked = linked.astype("string").fillna(key.map(_unique_lookup(titles, deal_ids)).astype("string"))
        counts = titles.value_counts()
        shared = (key.map(counts).fillna(0) > 1).to_numpy() & linked.isna().to_numpy()
        if shared.any():
            linked[shared] = _among_namesakes(context.loc[context.index[shared]], key[shared], deals, titles, at)
            shared &= linked.isna().to_numpy()
    linked[other] = pd.NA
    return linked, shared, other


def shared_titles(text: pd.Series, deals: pd.DataFrame) -> str:
    """'several deals have their title and nothing tells which (...)', with the commonest titles."""
    counts = _key(deals["title"]).value_counts()
    common = text.str.replace(_DEAL_PREFIX, "", regex=True).value_counts().head(EXAMPLES)
    return ("several deals have their title and nothing tells which ("
            + ", ".join(f"{t!r}: {int(counts.get(_key(pd.Series([t])).iloc[0], 0))} deals" for t in common.index) + ")")


# How namesakes are told apart, in order: the activity's client, then the time alone (the one
# deal of that title open then). Not the manager: a colleague standing in on a deal would be
# joined to a namesake of their own (1% of the joins wrong when 30% are stand-ins).
BY = ("client_id", "")


def _among_namesakes(acts: pd.DataFrame, key: pd.Series, deals: pd.DataFrame, titles: pd.Series,
                     at: str = "done_at") -> np.ndarray:
    """For activities whose title several deals share: the one such deal of the activity's
    client, else the only one, that existed (created, not closed more than a day before) when
    the activity was done; None where there is not exactly one."""
    day = pd.Timedelta(days=1)
    mine = pd.DataFrame({"row": np.arange(len(acts)), "key": key.to_numpy(),
                         "at": acts[at].to_numpy() if at in acts.columns else pd.NaT})
    theirs = pd.DataFrame({"key": titles.to_numpy(), "deal": deals["deal_id"].astype(str).to_numpy(),
                           # .array keeps the zone: no deal closed (all NaT) is still comparable with `at`
                           "from": (deals["created_at"] - day).array,
                           "to": (deals["closed_at"] + day).array if "closed_at" in deals.columns else pd.NaT})
    out = np.full(len(acts), None, dtype=object)
    for by in BY:
        todo = pd.isna(out)
        if by and (by not in acts.columns or by not in deals.columns) or not todo.any():
            continue
        left = mine[todo].assign(by=_key(acts[by].astype("string")).to_numpy()[todo] if by else "")
        right = theirs.assign(by=_key(deals[by].astype("string")).to_numpy() if by else "")
        left, right = left.dropna(subset=["by"]), right.dropna(subset=["by"])
        pairs = left.merge(right, on=["key", "by"])
        alive = pairs["at"].isna() | ((pairs["at"] >= pairs["from"]) & (pairs["to"].isna() | (pairs["at"] <= pairs["to"])))
        pairs = pairs[alive.to_numpy(dtype=bool)]
        one = pairs.groupby("row")["deal"].agg(["first", "size"])
        one = one[one["size"] == 1]
        out[one.index.to_numpy()] = one["first"].to_numpy()
    return out


def read_from_deals_file(data) -> bool:
    """The activities are the deals file read a second time (README's last-activity recipe:
    HubSpot's "Last Activity Date", Pipedrive's "Last activity date"): one latest touch per
    deal as of the export, so a day before that touch knows nothing of the deal's touches."""
    acts, deals = data.origins.get("activities"), data.origins.get("deals")
    return data.activities is not None and len(data.activities) > 0 and acts is not None and acts == deals
