"""Soft checks across tables: problems worth telling the admin that do not stop the scan.

Each check returns a DataWarning with a count and the first few examples. Only five checks
change the data, and they say so: duplicate ids keep the last row, history rows for deals
that do not exist are dropped, an open deal's closed_at (a planned date) is not read, deals
of pipelines outside `[source] pipelines` are left out (keep_pipelines), and no deal closes or
enters a stage before it was created (order_dates).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.data import CrmData
from crm.errors import DataError, DataWarning
from crm.ids import positions
from crm.normalize import DATE_ONLY, ROW, lower_text
from crm.owners import no_owner
from crm.schema import FALSE_WORDS, TABLES, TRUE_WORDS
from crm.several_files import FILE
from crm.stages import CLOSING

EXAMPLES = 3


def _examples(values: pd.Series) -> list[str]:
    return [str(v) for v in values.head(EXAMPLES).tolist()]


def isin(series: pd.Series, values: pd.Series | list[str]) -> pd.Series:
    """Series.isin that stays in Arrow for string columns.

    pandas turns every value of `values` into a Python object first, which costs seconds
    when checking 5,000,000 history rows against 1,000,000 deal ids.
    """
    try:
        left, right = pa.array(series), pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return series.isin(values)
    text = (pa.types.is_string(left.type) or pa.types.is_large_string(left.type))
    if not text or not (pa.types.is_string(right.type) or pa.types.is_large_string(right.type)
                        or pa.types.is_null(right.type)):
        return series.isin(values)
    mask = pc.is_in(left, value_set=pc.unique(right.cast(left.type)))
    return pd.Series(mask.fill_null(False).to_numpy(zero_copy_only=False), index=series.index)


def _all_distinct(ids: pd.Series) -> bool:
    """True when no id repeats, answered without pandas' full duplicated() pass.

    Exports sorted by id (most are) are checked by one comparison of neighbours; otherwise
    one Arrow hash of the ids counts the distinct ones. False only means "look closer".
    """
    try:
        arr = pa.array(ids, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return False
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or arr.null_count:
        return False
    if len(arr) < 2:
        return True
    if pc.all(pc.greater(arr[1:], arr[:-1])).as_py():
        return True
    return len(pc.unique(arr)) == len(arr)


def dedupe(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[DataWarning]]:
    """Keep the last row of each id (a later export line is the newer state)."""
    key = TABLES[table].key
    if key is None or key not in frame.columns or _all_distinct(frame[key]):
        return frame, []
    dup = frame[key].duplicated(keep="last")
    if not dup.any():
        return frame, []
    ids = frame.loc[dup, key].drop_duplicates()
    warning = DataWarning(
        "duplicate_ids", table, int(dup.sum()),
        f"{len(ids)} {key} value(s) appear more than once; kept the last row of each and "
        f"ignored {int(dup.sum())} earlier row(s)",
        _examples(ids),
    )
    return frame[~dup], [warning]


def archived_as_lost(deals: pd.DataFrame) -> pd.DataFrame:
    """An archived deal (deals.active false) that is not won is lost: Odoo marks a lost
    opportunity by archiving it (Active = False, Probability 0) and leaves it at the stage it was
    lost at, so read by its stage alone it stayed open for ever (a tenth to half of the deals,
    stalled and counted as load). Its Closed Date is when it was lost."""
    if "active" not in deals.columns or "status" not in deals.columns:
        return deals
    archived = deals["active"].eq(False).to_numpy(dtype=bool, na_value=False)
    lost = archived & (deals["status"] == "open").to_numpy(dtype=bool, na_value=False)
    if not lost.any():
        return deals
    deals = deals.copy()
    deals.loc[lost, "status"] = "lost"
    return deals


# Won deals without a single lost one: no real pipeline loses nothing, the export left them out.
MIN_WON_WITHOUT_LOST = 30
LOST_LEFT_OUT_FIX = ("export the lost deals too (Odoo hides a lost opportunity as archived: add the "
                     "\"Lost\" or \"Archived\" filter to the list before exporting, and map "
                     "[source.columns.deals] active = \"Active\"; elsewhere: a list filtered to open or won deals)")


def lost_left_out(deals: pd.DataFrame) -> int:
    """The won deals' count when the deals hold at least MIN_WON_WITHOUT_LOST won and no lost
    one (the export was filtered: Odoo's default list hides lost, archived, opportunities), else 0.
    Read as it is, every win rate is near 100% and a later cohort, with more deals still open,
    looks like a fall."""
    if "status" not in deals.columns:
        return 0
    status = deals["status"]
    won = int((status == "won").sum())
    return won if won >= MIN_WON_WITHOUT_LOST and not bool((status == "lost").any()) else 0


def lost_left_out_warning(deals: pd.DataFrame, origin: str) -> list[DataWarning]:
    """One warning when the export holds one side of the outcomes only: won and open deals and no
    lost one (Odoo's default list), or lost deals alone (Odoo's "Lost" or "Archived" list)."""
    won = lost_left_out(deals)
    status = deals["status"] if "status" in deals.columns else pd.Series(dtype=object)
    lost = int((status == "lost").sum())
    if not won and lost >= MIN_WON_WITHOUT_LOST and lost == len(status):
        return [DataWarning(
            "only_lost_deals", "deals", lost,
            f"all {lost:,} deals in {origin} are lost: the export holds lost deals alone (Odoo's \"Lost\" or "
            "\"Archived\" filter without the open and won deals), so there is no open deal to watch and no win "
            "to measure; export the list with every deal, open, won and lost",
        )]
    if not won:
        return []
    return [DataWarning(
        "no_lost_deals", "deals", won,
        f"{won:,} won deal(s) and not one lost deal in {origin}: the export leaves lost deals out, so a "
        "win rate read from it would be near 100%; conversion_drop is skipped and loss reasons are not "
        f"judged until it has them: {LOST_LEFT_OUT_FIX}",
    )]


def drop_planned_closings(deals: pd.DataFrame) -> tuple[pd.DataFrame, list[DataWarning]]:
    """An open deal has not closed: its closed_at is the date someone plans to close it
    (HubSpot's "Close Date", Bitrix24's CLOSEDATE, Pipedrive's expected close date mapped by
    mistake). Read as an event it kept a manager who left "active" until the planned date, and
    dates in the future were blamed on the export's timezone. Emptied, with one warning."""
    if "closed_at" not in deals.columns or "status" not in deals.columns:
        return deals, []
    planned = (deals["status"] == "open").to_numpy(dtype=bool, na_value=False) & deals["closed_at"].notna().to_numpy()
    if not planned.any():
        return deals, []
    rows = deals.loc[planned, ["deal_id", "closed_at"]]
    deals = deals.copy()
    deals.loc[planned, "closed_at"] = pd.NaT
    return deals, [DataWarning(
        "planned_close_date", "deals", int(planned.sum()),
        f"{int(planned.sum()):,} open deal(s) have a closed_at: for an open deal that is a planned close "
        "date, not a closing; not read (a closing date counts only for won and lost deals)",
        [f"deal {d}: {c:%Y-%m-%d}" for d, c in rows.head(EXAMPLES).itertuples(index=False)],
    )]


PIPELINE_LISTED = 6  # pipelines named in a warning or error, the largest first


# Yes/no columns of a deals export that say whether a deal is closed (Salesforce's "Closed",
# Bitrix24's «Сделка закрыта») and whether it was won (Salesforce's "Won"), compared by
# crm.normalize's header key.
CLOSED_FLAG_NAMES = ("closed", "is closed", "isclosed", "сделка закрыта", "закрыта", "закрыто")
WON_FLAG_NAMES = ("won", "is won", "iswon", "выиграна", "успешна")


def _flag(deals: pd.DataFrame, raw_frame: pd.DataFrame, unread: list[str], names: tuple[str, ...],
          words: frozenset[str]) -> pd.Series | None:
    """Per deal, whether the first unread yes/no column named like `names` holds one of `words`;
    None when there is no such column."""
    from crm.normalize import _header_key

    col = next((c for c in unread if _header_key(c) in names), None)
    if col is None:
        return None
    cells = lower_text(raw_frame[col].reindex(deals.index).astype("string").str.strip())
    return pd.Series(cells.isin(words).fillna(False).to_numpy(dtype=bool), index=deals.index).rename(col)


def archived_flag_check(deals: pd.DataFrame, raw_frame: pd.DataFrame, unread: list[str],
                        origin: str) -> list[DataWarning]:
    """Deals read as open that an unread active column (Odoo's «Активно») calls archived: Odoo's
    lost deals, left at the stage they were lost at. Read as open they stalled for ever (115
    stalled items on one export) and counted as load. `deals` keeps `raw_frame`'s row labels."""
    from crm.normalize import LOOKS_LIKE

    archived = _flag(deals, raw_frame, unread, LOOKS_LIKE["deals"]["active"], FALSE_WORDS)
    if archived is None or "status" not in deals.columns or not len(deals):
        return []
    wrong = archived.to_numpy() & (deals["status"] == "open").to_numpy(dtype=bool, na_value=False)
    if not wrong.any():
        return []
    return [DataWarning(
        "open_but_archived", "deals", int(wrong.sum()),
        f"{int(wrong.sum()):,} deal(s) are read as open, but column {archived.name!r} of {origin} says they are archived "
        "(Odoo archives a lost deal and leaves it at its stage): read as open they stall and count as load. "
        f'Map it: [source.columns.deals] active = "{archived.name}" (archived deals that are not won are then lost)',
    )]


def closed_flag_check(deals: pd.DataFrame, raw_frame: pd.DataFrame, unread: list[str], origin: str,
                      show_values: bool = True) -> list[DataWarning]:
    """Deals read as open that the export's own closed flag, left unread, calls closed: their stage
    is a closing stage missing from `[source.values.deals.status]` (a company's own "Closed - No
    Decision" beside Salesforce's Closed Won / Closed Lost). Read as open, such deals stalled at a
    closed stage forever and counted as a manager's load. A won flag beside it says, per stage,
    whether to map it to won or lost. `deals` keeps `raw_frame`'s row labels."""
    flag = lambda names: _flag(deals, raw_frame, unread, names, TRUE_WORDS)  # noqa: E731
    closed = flag(CLOSED_FLAG_NAMES)
    if closed is None or "status" not in deals.columns or "stage" not in deals.columns or not len(deals):
        return []
    wrong = closed.to_numpy() & (deals["status"] == "open").to_numpy(dtype=bool, na_value=False)
    if not wrong.any():
        return []
    won = flag(WON_FLAG_NAMES)
    stages = deals.loc[wrong, "stage"].value_counts()
    if won is not None:
        won_share = won[wrong].groupby(deals.loc[wrong, "stage"]).mean()
        status = {st: "won" if won_share.get(st, 0) > 0.5 else "lost" for st in stages.index}
    else:
        status = {st: "lost" for st in stages.index}
    if show_values:
        listed = ", ".join(f"{v!r} ({n})" for v, n in stages.head(5).items())
        lines = ", ".join(f'"{st}" = "{status[st]}"' for st in stages.index[:5])
    else:
        listed, lines = f"{len(stages)} stage(s)", '"<stage>" = "lost"'
    said = f" (column {won.name!r} tells won from lost)" if won is not None else ' (or "won")'
    return [DataWarning(
        "open_but_closed", "deals", int(wrong.sum()),
        f"{int(wrong.sum()):,} deal(s) are read as open, but column {closed.name!r} of {origin} says they are closed: "
        f"their stage is a closing one that [source.values.deals.status] does not list ({listed}); "
        f"read as open they stall and count as load. Map it: [source.values.deals.status] {lines}{said}",
    )]


def _pipeline_counts(deals: pd.DataFrame) -> pd.Series:
    return deals["pipeline"].dropna().astype(str).str.strip().value_counts()


def _counted(counts: pd.Series) -> str:
    shown = "; ".join(f"{name}: {n:,}" for name, n in counts.head(PIPELINE_LISTED).items())
    more = len(counts) - PIPELINE_LISTED
    return shown + (f"; {more} more" if more > 0 else "")


def keep_pipelines(frames: dict[str, pd.DataFrame], wanted: list[int | str]) -> list[DataWarning]:
    """Deals of the pipelines in `wanted` (`[source] pipelines`, names or ids as the deals'
    `pipeline` column writes them), in place in `frames`, with the stage history, activities and
    emails of the deals left out; none wanted: all deals, and one warning when they come from
    several pipelines. A company's pipelines (new sales, renewals, a partner channel) share
    stage names but not their pace or conversion: pooled, a quiet renewals pipeline makes sales
    look stalled, and a shift between pipelines reads as a conversion drop."""
    deals = frames["deals"]
    has = "pipeline" in deals.columns and deals["pipeline"].notna().any()
    if not wanted:
        counts = _pipeline_counts(deals) if has else pd.Series(dtype=int)
        if len(counts) < 2:
            return []
        first = str(counts.index[0]).replace('"', '\\"')
        return [DataWarning(
            "several_pipelines", "deals", int(counts.sum()),
            f"deals come from {len(counts)} pipelines ({_counted(counts)}): their stages, conversion and "
            f"idle limits are judged as one funnel; to judge one, set [source] pipelines = [\"{first}\"] "
            "(a config per pipeline for each)",
        )]
    if not has:
        raise DataError(
            "[source] pipelines names the pipelines to keep, but the deals' pipeline column is absent or empty",
            fix="map the export's pipeline column: [source.columns.deals] pipeline = \"<its name>\" "
                "(\"Pipeline\", \"Воронка\", \"Направление\"), or remove `pipelines`",
        )
    names = deals["pipeline"].astype("string").str.strip().str.casefold()
    keys = {str(w).strip().casefold() for w in wanted}
    counts = _pipeline_counts(deals)
    present = {str(c).casefold() for c in counts.index}
    unknown = [str(w) for w in wanted if str(w).strip().casefold() not in present]
    if unknown:
        from crm.source_config import nearest

        close = nearest(unknown[0], [str(c) for c in counts.index])
        hint = f" (did you mean `{close}`?)" if close else ""
        raise DataError(
            f"[source] pipelines: no deal is in pipeline {', '.join(repr(u) for u in unknown)}{hint}",
            fix=f"use the names (or ids) the deals' pipeline column holds: {_counted(counts)}",
        )
    keep = names.isin(keys).to_numpy(dtype=bool, na_value=False)
    if keep.all():
        return []
    frames["deals"] = deals[keep].reset_index(drop=True)
    kept_ids = frames["deals"]["deal_id"]
    for table in ("stage_history", "activities", "emails"):
        frame = frames.get(table)
        if frame is not None and "deal_id" in frame.columns:
            other = frame["deal_id"].notna() & ~isin(frame["deal_id"], kept_ids)
            if other.any():
                frames[table] = frame[~other.to_numpy(dtype=bool)].reset_index(drop=True)
    left = counts[~counts.index.astype(str).str.casefold().isin(keys)]
    no_pipeline = int(deals["pipeline"].isna().sum())
    return [DataWarning(
        "other_pipelines", "deals", int((~keep).sum()),
        f"{int((~keep).sum()):,} deal(s) of other pipelines ({_counted(left)}"
        + (f"; no pipeline: {no_pipeline:,}" if no_pipeline else "")
        + ") left out, with their stage history, activities and emails: [source] pipelines keeps "
        + ", ".join(str(w) for w in wanted),
    )]


MANAGER_REFS = ("deals", "leads", "activities", "emails", "clients")


def _person_key(values: pd.Series) -> pd.Series:
    """A name or id as people retype it: case, ё/е and runs of spaces ignored."""
    return (values.astype(str).str.casefold().str.replace("ё", "е", regex=False)
            .str.replace(r"\s+", " ", regex=True).str.strip())


def match_managers(frames: dict[str, pd.DataFrame]) -> list[DataWarning]:
    """Managers named in another case or spacing, or by their name where the managers file has
    an id ("АЛИЯ КАСЫМОВА " for m02, as amoCRM's "Ответственный" column holds it), read as that
    manager (in place); one warning per table. Only a key that fits exactly one manager is used:
    two people with one name stay unknown, and check() says so."""
    managers = frames["managers"]
    known = managers["manager_id"]
    keys = pd.concat([_person_key(known), _person_key(managers["name"])], ignore_index=True)
    ids = pd.concat([known, known], ignore_index=True).astype(str)
    pairs = pd.DataFrame({"key": keys, "id": ids}).drop_duplicates()
    unique = pairs[~pairs["key"].duplicated(keep=False)]
    lookup = dict(zip(unique["key"], unique["id"]))
    warnings: list[DataWarning] = []
    for table in MANAGER_REFS:
        frame = frames.get(table)
        if frame is None or "manager_id" not in frame.columns:
            continue
        unknown = frame["manager_id"].notna() & ~isin(frame["manager_id"], known)
        if not unknown.any():
            continue
        written = frame.loc[unknown, "manager_id"]
        distinct = pd.Series(written.unique())
        found = pd.Series(_person_key(distinct).map(lookup).to_numpy(), index=distinct.to_numpy())
        found = found.dropna()
        if found.empty:
            continue
        mapped = written.map(found)
        hit = mapped.notna()
        frame.loc[mapped.index[hit], "manager_id"] = mapped[hit].to_numpy()
        n = int(hit.sum())
        warnings.append(DataWarning(
            "manager_by_name", table, n,
            f"{n:,} row(s) name their manager in another case or spacing, or by name, not as the "
            "managers table's manager_id; read as that manager (write the id as in managers to be sure)",
            [f"{w!r} -> {m}" for w, m in found.head(EXAMPLES).items()],
        ))
    return warnings


# (table, column, the table whose key it names): the references an id's lost zeros would break.
REFERENCES = (("stage_history", "deal_id", "deals"), ("activities", "deal_id", "deals"),
              ("emails", "deal_id", "deals"), ("deals", "client_id", "clients"),
              ("emails", "client_id", "clients"), ("activities", "client_id", "clients"),
              ("email_opens", "email_id", "emails"))


def _leading_zero(values: pd.Series) -> bool:
    try:
        return bool(pc.any(pc.starts_with(pa.array(values, from_pandas=True), "0")).as_py())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        return False


def match_zero_padded(frames: dict[str, pd.DataFrame]) -> list[DataWarning]:
    """Numeric ids whose leading zeros one file kept and another lost ("000123" in deals, 123 in
    the history: Excel drops them when it opens a CSV) read as the id of the table they name (in
    place), when the number fits exactly one; one warning per reference. Checked only when one
    side has an id starting with 0 (a cheap test on millions of rows)."""
    warnings: list[DataWarning] = []
    for table, column, target in REFERENCES:
        frame, keys_frame = frames.get(table), frames.get(target)
        if frame is None or keys_frame is None or column not in frame.columns or column not in keys_frame.columns:
            continue
        keys, refs = keys_frame[column], frame[column]
        if not (_leading_zero(keys) or _leading_zero(refs)):
            continue
        unknown = refs.notna() & ~isin(refs, keys)
        if not unknown.any():
            continue
        digits = keys.dropna().astype(str)
        digits = digits[digits.str.fullmatch(r"\d+")]
        stripped = digits.str.lstrip("0")
        unique = ~stripped.duplicated(keep=False)
        lookup = dict(zip(stripped[unique], digits[unique]))
        written = refs[unknown].astype(str)
        mapped = written.str.lstrip("0").map(lookup).where(written.str.fullmatch(r"\d+"))
        hit = mapped.notna()
        if not hit.any():
            continue
        frame.loc[mapped.index[hit], column] = mapped[hit].to_numpy()
        n = int(hit.sum())
        warnings.append(DataWarning(
            "ids_without_zeros", table, n,
            f"{n:,} {column} value(s) match an id in {target} only once leading zeros are set aside ({table} "
            f"and {target} write them differently: Excel drops them when it opens a CSV); read as that id "
            "(export both from the CRM without opening them in Excel to be sure)",
            [f"{w} -> {m}" for w, m in zip(written[hit].head(EXAMPLES), mapped[hit].head(EXAMPLES))],
        ))
    return warnings


def _unknown_managers(frame: pd.DataFrame, table: str, id_column: str, known: pd.Series,
                      consequence: str, nobody: frozenset[str] = frozenset()) -> list[DataWarning]:
    """One warning for the rows of `table` naming a manager_id the managers table lacks; an
    owner cell that names nobody (crm.owners: «Без ответственного») is no manager to add."""
    unknown = frame["manager_id"].notna() & ~isin(frame["manager_id"], known) & ~no_owner(frame["manager_id"], nobody)
    if not unknown.any():
        return []
    rows = frame.loc[unknown, [id_column, "manager_id"]]
    n, noun = int(unknown.sum()), {"activities": "activity"}.get(table, table[:-1])
    return [DataWarning(
        "unknown_manager", table, n,
        f"{n} {noun}(s) name a manager_id that is not in managers ({rows['manager_id'].nunique()} unknown "
        f"manager(s)); {consequence}",
        [f"{noun} {d} -> {m}" for d, m in rows.head(EXAMPLES).itertuples(index=False)],
    )]


# an export whose deals all name one person, while managers lists at least this many who work
ONE_OWNER_MANAGERS = 3
ONE_OWNER_DEALS = 30


def one_owner_export(deals: pd.DataFrame, managers: pd.DataFrame,
                     nobody: frozenset[str] = frozenset()) -> list[DataWarning]:
    """Every deal names one person while managers lists others who work: the list was most
    likely exported with a one-person filter (Odoo's default "My Pipeline", amoCRM «Мои
    сделки», a Pipedrive owner filter). The others then look idle and their deals are silent,
    so it is said once, with the filter to remove."""
    named = deals["manager_id"][deals["manager_id"].notna() & ~no_owner(deals["manager_id"], nobody)]
    owners = named.astype(str).unique()
    if len(owners) != 1 or len(named) < ONE_OWNER_DEALS:
        return []
    working = managers
    if "active" in managers.columns:
        working = managers[managers["active"].astype("boolean").fillna(True)]
    if len(working) < ONE_OWNER_MANAGERS or owners[0] not in set(working["manager_id"].astype(str)):
        return []
    return [DataWarning(
        "one_owner_export", "deals", len(named),
        f"every deal belongs to {owners[0]}, one of the {len(working)} working people in managers: was the list "
        "exported with a one-person filter (Odoo's \"My Pipeline\", amoCRM «Мои сделки», a Pipedrive owner "
        "filter)? Export every owner's deals, or mark the people who do not sell active = false",
    )]


def check(data: CrmData, now: datetime | None = None) -> tuple[CrmData, list[DataWarning]]:
    """Cross-table checks; returns the data (orphan history dropped) and the warnings."""
    warnings: list[DataWarning] = []
    deals, managers, history = data.deals, data.managers, data.stage_history

    known_managers = managers["manager_id"]
    warnings += _unknown_managers(deals, "deals", "deal_id", known_managers,
                                  "their insights have no recipient until the manager is added", data.no_owner)
    warnings += one_owner_export(deals, managers, data.no_owner)
    leads = data.leads
    if leads is not None and "manager_id" in leads.columns:
        warnings += _unknown_managers(leads, "leads", "lead_id", known_managers,
                                      "nobody can answer them, so lead_sla tells the director they have no manager: "
                                      "add the person to managers, or reassign the leads", data.no_owner)

    acts = data.activities
    if acts is not None and "manager_id" in acts.columns:
        warnings += _unknown_managers(acts, "activities", "activity_id", known_managers,
                                      "their calls and tasks count as nobody's work: add the person to managers, "
                                      "or write the manager_id (or the name managers has) in the export",
                                      data.no_owner)
    orphan = ~isin(history["deal_id"], deals["deal_id"])
    if orphan.any():
        warnings.append(DataWarning(
            "history_unknown_deal", "stage_history", int(orphan.sum()),
            f"{int(orphan.sum())} history row(s) belong to deals that are not in deals; ignored",
            _examples(history.loc[orphan, "deal_id"].drop_duplicates()),
        ))
        history = history[~orphan].reset_index(drop=True)
        data.stage_history = history

    if data.stages:
        pipeline = pd.Series(data.stages, dtype=history["stage"].dtype)
        for table, frame in (("stage_history", history), ("deals", deals)):
            # won/lost (a closing stage the config mapped) is a status, handled by stages.py
            closing = lower_text(frame["stage"]).isin(CLOSING).fillna(False).to_numpy(dtype=bool)
            outside = frame["stage"].notna() & ~isin(frame["stage"], pipeline) & ~closing
            if outside.any():
                names = frame.loc[outside, "stage"].value_counts()
                warnings.append(DataWarning(
                    "stage_not_in_pipeline", table, int(outside.sum()),
                    f"{int(outside.sum())} row(s) use {len(names)} stage(s) that are not in "
                    "the pipeline; add them to the stages table or [source] stages, or map "
                    f"them in [source.values.{table}.stage] (closing stages to \"won\"/\"lost\")",
                    [f"{s!r} ({n})" for s, n in names.head(EXAMPLES).items()],
                ))

    if "amount" in deals.columns:
        negative = deals["amount"] < 0
        if negative.any():
            rows = deals.loc[negative, ["deal_id", "amount"]]
            warnings.append(DataWarning(
                "negative_amount", "deals", int(negative.sum()),
                f"{int(negative.sum())} deal(s) have a negative amount",
                [f"deal {d}: {a:g}" for d, a in rows.head(EXAMPLES).itertuples(index=False)],
            ))

    warnings.extend(several_values(deals, "deals"))
    warnings.extend(_bulk_touches(data))
    if now is not None:
        warnings.extend(_future_dates(data, pd.Timestamp(now)))
    return data, warnings


SEGMENT_COLUMNS = ("source", "region")  # conversion_drop's segments besides the manager
_LIST_SEPARATOR = r"\s*[,;]\s*"


def several_values(frame: pd.DataFrame, table: str) -> list[DataWarning]:
    """A segment column holding several values in one cell (amoCRM's «Теги», a multi-select
    field): each combination would be a segment of its own, so a source's drop is split across
    «Instagram», «Instagram, повторный клиент» and the rest. Said only when a part of such a cell
    is a whole value of the column elsewhere (so the comma lists values; «ТОО «Альфа, Бета»» is
    a name), and for at least 2% of the filled cells (5 at least); never rewritten."""
    out = []
    for column in SEGMENT_COLUMNS:
        if column not in frame.columns:
            continue
        counts = frame[column].dropna().astype(str).str.strip().value_counts()
        if counts.empty:
            continue
        listed = counts.index.str.contains(_LIST_SEPARATOR, regex=True)
        single = set(counts.index[~listed])
        lists = [v for v in counts.index[listed]
                 if len(parts := [x for x in pd.Series(v).str.split(_LIST_SEPARATOR, regex=True)[0] if x]) > 1
                 and any(x in single for x in parts)]
        n = int(counts[lists].sum()) if lists else 0
        if n < max(5, 0.02 * counts.sum()):
            continue
        out.append(DataWarning(
            "several_values", table, n,
            f"{n} {table} hold several values in one {column} cell: each combination is a segment of its own, so a "
            f"{column}'s drop is split across them; map a column with one value per record (amoCRM: a one-value "
            "field such as «Источник», not «Теги»)",
            [f"{v!r} ({int(counts[v])})" for v in lists[:EXAMPLES]],
        ))
    return out


BULK_MIN = 20  # open deals whose latest touch shares one minute: no manager works that way


def _bulk_touches(data: CrmData) -> list[DataWarning]:
    """A mass update or a robot stamps one minute on many deals at once. When that minute is
    the latest touch of many open deals (a "Modified Time" / «Дата изменения» read as
    activities, README), stalled_deal measures their idle time from an edit nobody worked:
    said once, with the minute and the count, so the admin can pick a last-activity column."""
    acts = data.activities
    if acts is None or not len(acts) or not {"deal_id", "done_at"} <= set(acts.columns):
        return []
    is_open = (data.deals["status"] == "open").to_numpy(dtype=bool, na_value=False)
    mine = acts[isin(acts["deal_id"], data.deals.loc[is_open, "deal_id"]).to_numpy(dtype=bool)]
    latest = mine.groupby("deal_id", sort=False)["done_at"].max().dropna()
    if len(latest) < BULK_MIN:
        return []
    counts = latest.dt.floor("min").value_counts()
    minute, n = counts.index[0], int(counts.iloc[0])
    if n < max(BULK_MIN, 0.1 * len(latest)):
        return []
    where = data.origins.get("activities", "activities")
    return [DataWarning(
        "bulk_touch", "activities", n,
        f"{n} of {len(latest)} open deals were last touched in the same minute, "
        f"{minute.strftime('%Y-%m-%d %H:%M')} UTC ({where}): a mass update or a robot, not a manager's work; "
        "stalled_deal counts their idle time from it, so stalled deals go unseen; read a last-activity "
        "column as done_at instead of a last-modified one, if the export has one",
        _examples(latest[latest.dt.floor("min") == minute].index.to_series()),
    )]


def _future_dates(data: CrmData, now: pd.Timestamp) -> list[DataWarning]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = []
    for table in data.table_names():
        frame = data.table(table)
        spec = TABLES[table]
        for col in spec.columns:
            if col.kind != "datetime" or col.name not in frame.columns:
                continue
            if col.name == "due_at":
                continue  # tasks are due in the future by nature
            future = frame[col.name] > now
            if future.any():
                key = spec.key or next(
                    (c for c in ("deal_id", "email_id") if c in frame.columns), None)
                ex = frame.loc[future, [key, col.name]] if key else frame.loc[future, [col.name]]
                # a closed deal "closed" next week: the planned date, left as it was when the deal
                # closed (Zoho's Closing Date is a planned date the CRM does not move)
                planned = (table == "deals" and col.name == "closed_at"
                           and "; on closed deals it is often the planned close date, not updated when the deal "
                               "closed: correct it in the CRM, or map a column that holds the real closing date"
                           or "")
                out.append(DataWarning(
                    "future_dates", table, int(future.sum()),
                    f"{int(future.sum())} {col.name} value(s) are later than now "
                    f"({now.isoformat()}); check the export's timezone or clock{planned}",
                    [" ".join(str(v) for v in row) for row in ex.head(EXAMPLES).itertuples(index=False)],
                ))
    return out


DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min


def order_dates(deals: pd.DataFrame, history: pd.DataFrame | None, origins: dict[str, str],
                timezone: str = "UTC", private: frozenset[str] | set[str] = frozenset(),
                ) -> tuple[pd.DataFrame, pd.DataFrame | None, list[DataWarning]]:
    """No deal closes, or enters a stage, before it was created; the hidden columns of
    crm.normalize (date-only marks, row numbers) are read and dropped here.

    A date-only close or stage entry ("Дата завершения" 25.03.2026, as Bitrix24 and most web
    exports write it) says "that day", not "at midnight": on the day of a timed creation (or of
    a timed stage entry) it is read as the latest of those that day, so a deal created at 14:00
    and closed the same day takes 0 hours, not -14. Never later than a time the data holds, so
    a date-only close today is not a future record and does not make stale data look fresh (the
    end of the day would do both). Genuinely inconsistent rows are told once per kind, with
    examples, and mended so no detector sees a negative duration: a stage entered before the
    creation moves the creation back to it (the events are logged when they happen; created_at
    is the field imports rewrite), silently within a day (clocks and date-only cells), with a
    warning beyond; a close on an earlier day than the creation is read as closed at creation.
    `private`: tables read from files outside the data folder: their examples give the row only."""
    rows = _row_places(deals)
    told = _Told(origins, ZoneInfo(timezone), frozenset(private), rows)
    warnings: list[DataWarning] = []
    created = utc_ns(deals["created_at"])
    created_before = created.copy()
    entries = None
    if history is not None and len(history) and len(deals) and deals["deal_id"].is_unique:
        entries = _entries_after_creation(history, deals, created, told, warnings)
        history = history.assign(entered_at=_stamps(entries[1], history["entered_at"]))
    if history is not None:
        history = history.drop(columns=[c for c in history.columns if c.startswith((DATE_ONLY, ROW))])
    if "closed_at" in deals.columns:
        closed = _closes_after_creation(deals, created, created_before, entries, told, warnings)
        deals = deals.assign(closed_at=_stamps(closed, deals["closed_at"]))
    if (created != created_before).any():
        deals = deals.assign(created_at=_stamps(created, deals["created_at"]))
    deals = deals.drop(columns=[c for c in deals.columns if c.startswith((DATE_ONLY, ROW))])
    return deals, history, warnings


@dataclass(frozen=True)
class _Told:
    """How order_dates' examples name a row: file and row number, local times, and nothing
    more for `private` tables."""

    origins: dict[str, str]
    tz: ZoneInfo
    private: frozenset[str]
    deal_rows: np.ndarray | None  # each deal's row in its file (crm.normalize's ROW), None: unknown


def _entries_after_creation(history: pd.DataFrame, deals: pd.DataFrame, created: np.ndarray, told: _Told,
                            warnings: list[DataWarning]) -> tuple[np.ndarray, np.ndarray]:
    """Stage entries before their deal's creation: a date-only one on a timed creation's day is
    at creation; any other moves `created` back to it (in place), with a warning beyond a day.
    Returns each history row's deal (row in `deals`, -1: none) and entry instant (ns)."""
    hist_rows = _row_places(history)
    pos = positions(history["deal_id"], deals["deal_id"])
    entered = utc_ns(history["entered_at"])
    known = (pos >= 0) & (entered != _NAT)
    hc = np.where(known, created[np.where(known, pos, 0)], _NAT)
    known &= hc != _NAT
    mark = DATE_ONLY + "entered_at"
    if mark in history.columns:  # a date-only entry on the day of a timed creation: at creation
        same_day = known & history[mark].to_numpy(dtype=bool) & (entered < hc) & (hc - entered < DAY_NS)
        entered = np.where(same_day, hc, entered)
    early = known & (entered < hc)
    far = early & (hc - entered > DAY_NS)
    if far.any():
        warnings.append(DataWarning(
            "entered_before_created", "stage_history", int(far.sum()),
            f"{int(far.sum())} stage entr(ies) of {len(np.unique(pos[far]))} deal(s) are more than a day "
            "earlier than the deal's created_at; read as created at its first stage entry (so no "
            "time at a stage is negative); correct created_at in the CRM (an import or a migration "
            "often sets it to the import's date)",
            [_where(told.origins, "stage_history", hist_rows, i) if told.private & {"deals", "stage_history"} else
             f"{_where(told.origins, 'stage_history', hist_rows, i)}: deal {history['deal_id'].iat[i]} "
             f"entered {history['stage'].iat[i]!r} {_local(entered[i], told.tz)}, created "
             f"{_local(hc[i], told.tz)} ({_where(told.origins, 'deals', told.deal_rows, pos[i])})"
             for i in np.flatnonzero(far)[:EXAMPLES]],
        ))
    np.minimum.at(created, pos[early], entered[early])
    return pos, entered


def _closes_after_creation(deals: pd.DataFrame, created: np.ndarray, created_before: np.ndarray,
                           entries: tuple[np.ndarray, np.ndarray] | None, told: _Told,
                           warnings: list[DataWarning]) -> np.ndarray:
    """Each deal's close (ns): a date-only one is the latest known time of its day (the
    creation, a stage entry: `entries` as _entries_after_creation returns them); one before
    the creation is read as at the creation, with a warning."""
    closed = utc_ns(deals["closed_at"])
    mark = DATE_ONLY + "closed_at"
    if mark in deals.columns:  # a date-only close: the latest known time of that day
        dated = deals[mark].to_numpy(dtype=bool) & (closed != _NAT)
        latest = created.copy()
        if entries is not None:
            pos, entered = entries
            ok = (pos >= 0) & (entered != _NAT)
            day = np.where(ok, closed[np.where(ok, pos, 0)], _NAT)
            in_day = ok & dated[np.where(ok, pos, 0)] & (entered >= day) & (entered - day < DAY_NS)
            np.maximum.at(latest, pos[in_day], entered[in_day])
        later = dated & (latest > closed) & (latest - closed < DAY_NS)
        closed = np.where(later, latest, closed)
    before = (closed != _NAT) & (closed < created)
    if before.any():
        warnings.append(DataWarning(
            "closed_before_created", "deals", int(before.sum()),
            f"{int(before.sum())} deal(s) closed before they were created: read as closed when created, "
            "so no time to close is negative; correct closed_at or created_at in the CRM (a close date "
            "without a time on the day of creation is fine: it reads as that day)",
            [_where(told.origins, "deals", told.deal_rows, i) if "deals" in told.private else
             f"{_where(told.origins, 'deals', told.deal_rows, i)}: deal {deals['deal_id'].iat[i]} created "
             f"{_local(created_before[i], told.tz)}, closed {_local(closed[i], told.tz)}"
             for i in np.flatnonzero(before)[:EXAMPLES]],
        ))
        closed = np.where(before, created, closed)
    return closed


def utc_ns(series: pd.Series) -> np.ndarray:
    """Timestamps (with a zone or UTC without one) as int64 nanoseconds; NaT is the smallest int64."""
    return pd.DatetimeIndex(series).as_unit("ns").asi8.copy()


def _stamps(ns: np.ndarray, like: pd.Series) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ns.astype("datetime64[ns]"), tz="UTC"), index=like.index, dtype=like.dtype)


def _local(ns: int, tz: ZoneInfo) -> str:
    """A UTC instant as the export writes it: local wall time, the date alone at midnight."""
    t = pd.Timestamp(int(ns), tz="UTC").tz_convert(tz)
    return f"{t:%d.%m.%Y}" if t == t.normalize() else f"{t:%d.%m.%Y %H:%M}"


def _row_places(frame: pd.DataFrame) -> np.ndarray | None:
    """Each row's number in its file (crm.normalize's ROW), or "<file> row <n>" when the table
    came from several files (crm.several_files keeps each row's file beside it)."""
    if ROW not in frame.columns:
        return None
    if FILE in frame.columns:
        return (frame[FILE].astype(str) + " row " + frame[ROW].astype(str)).to_numpy()
    return frame[ROW].to_numpy()


def _where(origins: dict[str, str], table: str, rows: np.ndarray | None, i: int) -> str:
    name = origins.get(table, f"{table}.csv")
    if rows is None:
        return name
    return rows[i] if isinstance(rows[i], str) else f"{name} row {int(rows[i])}"
