"""One table exported as several files: HubSpot's calls and tasks (both activities), a deals
export split by month because the CRM caps an export's rows (amoCRM, Bitrix24, Pipedrive), a
pipeline per file. `[source.files] deals = "deals_*.csv"` or `activities = ["calls.csv",
"tasks.csv"]`.

Each file is read and normalised on its own (encoding, separator, header row, date formats and
the column mapping per file: an error names the file and row); here the canonical frames are put
together. Files cut by date overlap at their edges, so a record in several files is kept once.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crm.errors import DataError, DataWarning
from crm.normalize import DATE_ONLY, ROW
from crm.readers import RawTable
from crm.schema import TABLES

PATTERN_CHARS = frozenset("*?[")
PART = "__part__"  # hidden: which file (its position in the list) a row came from
FILE = ROW + "file"  # hidden beside ROW: the file a row number belongs to; dropped with ROW
# Dates that say when a record was planned, not when something happened: not a newer state.
PLANNED = frozenset({("activities", "due_at")})
_SHOWN = 3


def is_pattern(name: str) -> bool:
    return any(c in PATTERN_CHARS for c in name)


def matching(folder: Path, table: str, pattern: str, listing: str) -> list[Path]:
    """The files a glob pattern names in the data folder, sorted by name (deals_2025-01.csv
    before deals_2025-02.csv: the order that breaks ties between versions of one record).
    Folders that match are left out; none at all is an error naming the pattern."""
    if not Path(pattern).is_absolute() and ".." in Path(pattern).parts:
        raise DataError(f"[source.files] {table} = {pattern!r} leaves the data folder",
                        fix="name files inside the data folder, or give the full absolute path of files elsewhere")
    # the folder's own name is no pattern ("exports [2026]"); an absolute pattern replaces it
    found = sorted((Path(p) for p in glob.glob(os.path.join(glob.escape(str(folder)), pattern))),
                   key=lambda p: p.name)
    found = [p for p in found if not p.is_dir()]
    if not found:
        raise DataError(
            f"no file matches {pattern!r} named in [source.files] {table} (in {folder})",
            more=f"Files found: {listing}. The pattern is matched as a shell does: * is any text, "
            "? one character, and capital letters count.",
            fix=f"correct [source.files] {table} = \"...\": a pattern that matches your files, or their "
            f"names as a list, e.g. {table} = [\"file1.csv\", \"file2.csv\"]",
        )
    return found


def pattern_hint(table: str, names: list[str]) -> str | None:
    """`deals_*.csv` when the folder holds several files named like one table's parts
    (deals_2025-01.csv, deals_2025-02.csv) and no `deals.csv`: the fix to suggest."""
    parts = sorted(n for n in names if re.fullmatch(rf"{re.escape(table)}[ _.-].+\.(csv|tsv|txt|xlsx|parquet)", n, re.I))
    if len(parts) < 2:
        return None
    suffixes = {Path(n).suffix for n in parts}
    return parts[0][:len(table) + 1] + "*" + (suffixes.pop() if len(suffixes) == 1 else "")


def unique_paths(paths: list[Path]) -> list[Path]:
    """Each file once, at its first place: a file both listed and matched is read once."""
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def joined(parts: list[RawTable]) -> RawTable:
    """One RawTable standing for several files: `parts` keeps each file's own reading; `frame`
    is their raw rows one after another (what looks across the whole table before it is
    normalised, e.g. the stage probabilities, reads it)."""
    frame = pd.concat([p.frame for p in parts], ignore_index=True, sort=False)
    return RawTable(frame, origin_of([p.origin for p in parts]), row_offset=parts[0].row_offset,
                    row_kind=parts[0].row_kind, text=all(p.text for p in parts),
                    show_values=all(p.show_values for p in parts),
                    mapped_only=all(p.mapped_only for p in parts), parts=parts)


def origin_of(names: list[str]) -> str:
    """How messages and check-config name the files of a table: every one when they are few,
    else the first and the last with the count (twelve monthly files on one line)."""
    if len(names) <= 6:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ... {names[-1]} ({len(names)} files)"


def mapping_for(columns: dict[str, str], part: RawTable, parts: list[RawTable]) -> dict[str, str]:
    """`[source.columns.<table>]` for one of several files: a mapped column that this file lacks
    but another has (a field added in March) is left out here, so its rows have it empty; one no
    file has stays, and its error names the file."""
    def has(p: RawTable, name: str) -> bool:
        return name in p.frame.columns

    return {ours: theirs for ours, theirs in columns.items()
            if has(part, theirs) or not any(has(p, theirs) for p in parts)}


@dataclass
class Part:
    """One file's normalised rows, the canonical columns read from it (-> its column name), its
    warnings and its columns read into none."""

    origin: str
    frame: pd.DataFrame
    read: dict[str, str]
    notes: list[DataWarning] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    history: object = None  # a deals file's stage history from its entry-date columns (crm.wide_history.Read)


def combine(table: str, parts: list[Part], fill: dict[str, object] | None = None
            ) -> tuple[pd.DataFrame, list[DataWarning]]:
    """The files' rows as one canonical frame, plus what the admin should know: a column some
    files lack (said once), ids found in several files with different content.

    A record in several files (a deal in two monthly exports) is kept once. Which version: the
    one whose newest date is later (deals: closed_at of a closed deal, stage_changed_at,
    created_at; activities: done_at, never due_at, a plan; leads: first_response_at,
    assigned_at, created_at) - a deal open in January's file and won in February's is won; on
    a tie (or no date) the one in the later file of the list (patterns: in file-name order).
    Not the files' modification times: a copy or a download rewrites them. A table without an id
    (stage_history) keeps a row once when the same row is in several files."""
    warnings = merge_notes(parts) + [w for w in [_missing_columns(table, parts, fill or {})] if w]
    frames = []
    for i, p in enumerate(parts):
        extra = {PART: np.int32(i)}
        if ROW in p.frame.columns:
            extra[FILE] = p.origin
        frames.append(p.frame.assign(**extra))
    frame = _same_dtypes(pd.concat(frames, ignore_index=True, sort=False), [p.frame for p in parts])
    key = TABLES[table].key
    if key is None or key not in frame.columns:
        frame = _drop_repeated_rows(frame)
    else:
        frame, note = _one_version(table, key, frame, parts)
        warnings += [note] if note else []
    return frame.drop(columns=[PART]).reset_index(drop=True), warnings


def merge_notes(parts: list[Part]) -> list[DataWarning]:
    """The files' warnings, each kind said once: the first file's words, the count over all
    files, and examples that name their file (row 5 of which file?). A file's "column x is
    absent: every row set to ..." is left out when another file has x: combine says it, naming
    the file (its "every row" was that file's rows only)."""
    read = set().union(*(p.read for p in parts))
    by_kind: dict[tuple[str, str], list[tuple[str, DataWarning]]] = {}
    for part in parts:
        for note in part.notes:
            if note.code == "filled" and any(note.message.startswith(f"column {c} is absent") for c in read):
                continue
            same = re.sub(r"[\d,.]+", "#", note.message.replace(part.origin, "<file>"))  # counts and file aside
            by_kind.setdefault((note.code, same), []).append((part.origin, note))
    out = []
    for (code, _same), found in by_kind.items():
        if len(found) == 1 or len({o for o, _ in found}) == 1:
            out += [n for _, n in found]
            continue
        first = found[0][1]
        total = sum(n.count for _, n in found)
        examples = [f"{o} {e}" if e.startswith(("row ", "record ")) else e for o, n in found for e in n.examples]
        out.append(DataWarning(code, first.table, total,
                               f"{first.message} (the same in {len(found) - 1} more file(s): {total:,} in all)",
                               examples[:_SHOWN]))
    return out


def _missing_columns(table: str, parts: list[Part], fill: dict[str, object]) -> DataWarning | None:
    """A canonical column read from some files and absent from others: one warning for the table."""
    columns = list(dict.fromkeys(c for p in parts for c in p.read))
    said, rows = [], 0
    for column in columns:
        lacking = [p for p in parts if column not in p.read]
        if not lacking:
            continue
        n = sum(len(p.frame) for p in lacking)
        rows = max(rows, n)
        theirs = next(p.read[column] for p in parts if column in p.read)
        default = TABLES[table].column(column).default
        what = (f"[source.fill.{table}] {column} used there" if column in fill
                else f"read as {str(default).lower()} there (the default)" if default is not None else "left empty there")
        said.append(f"{column} (column {theirs!r}) is not in {_listed([p.origin for p in lacking])} "
                    f"({n:,} row(s)): {what}")
    if not said:
        return None
    return DataWarning("column_not_in_every_file", table, rows,
                       "the files differ in columns: " + "; ".join(said)
                       + " (a field added later, or exported with other columns chosen)")


def _one_version(table: str, key: str, frame: pd.DataFrame, parts: list[Part]
                 ) -> tuple[pd.DataFrame, DataWarning | None]:
    """Each id in several files kept from one file only (combine's rule); ids whose versions
    differ in a column every file has are counted in one warning."""
    last = frame.drop_duplicates([key, PART], keep="last")  # within a file the last row is its state
    shared = last[key].duplicated(keep=False) & last[key].notna()
    if not shared.any():
        return frame, None
    over = last[shared]
    compared = [c for c in over.columns if not c.startswith("__") and all(c in p.read for p in parts) and c != key]
    signature = pd.util.hash_pandas_object(over[compared], index=False) if compared else pd.Series(0, index=over.index)
    differs = signature.groupby(over[key]).nunique()
    differs = differs[differs > 1].index
    order = over.assign(__newest__=_newest(table, over)).sort_values(["__newest__", PART], kind="stable")
    winner = order.drop_duplicates(key, keep="last").set_index(key)[PART]
    chosen = frame[key].map(winner)
    keep = chosen.isna() | (chosen == frame[PART])
    note = None
    if len(differs):
        shown = list(differs[:_SHOWN])
        files = over[over[key].isin(shown)].groupby(key)[PART].unique()
        examples = [f"{i} ({', '.join(parts[int(j)].origin for j in sorted(files[i]))})" for i in shown]
        dates = ", ".join(_newest_columns(table, frame)) or "none"
        note = DataWarning(
            "differs_between_files", table, len(differs),
            f"{len(differs)} {key} value(s) are in several files with different content; kept the version with the "
            f"latest date ({dates}), or the one in the later file when those are equal. If the files hold different "
            f"records that share ids (each numbered on its own), give them as separate exports instead",
            examples)
    return frame[keep.to_numpy()], note


def _newest_columns(table: str, frame: pd.DataFrame) -> list[str]:
    return [c.name for c in TABLES[table].columns
            if c.kind == "datetime" and (table, c.name) not in PLANNED and c.name in frame.columns]


def _newest(table: str, frame: pd.DataFrame) -> np.ndarray:
    """Each row's latest date that records something done (ns; the oldest possible when none):
    a deal's closed_at only once it is closed (an open deal's is the planned close)."""
    newest = np.full(len(frame), np.iinfo(np.int64).min, dtype=np.int64)
    for column in _newest_columns(table, frame):
        values = pd.to_datetime(frame[column], utc=True, errors="coerce")
        ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        known = values.notna().to_numpy().copy()
        if table == "deals" and column == "closed_at" and "status" in frame.columns:
            known &= frame["status"].isin(["won", "lost"]).to_numpy(dtype=bool, na_value=False)
        newest = np.where(known, np.maximum(newest, ns), newest)
    return newest


def _drop_repeated_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A row of a table without ids kept once when several files hold it (a stage entry in two
    monthly exports); repeats inside one file are the file's own business."""
    data = [c for c in frame.columns if not c.startswith("__")]
    first_part = frame.groupby(data, dropna=False, sort=False)[PART].transform("min")
    return frame[(frame[PART] == first_part).to_numpy()]


def _same_dtypes(frame: pd.DataFrame, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Each column as the files' normalised frames typed it: a column empty in one file must not
    turn a date column into objects. A hidden yes/no mark (crm.normalize's date-only cells) that
    only some files have is false in the others, never NaN read as true."""
    for column in frame.columns:
        typed = next((f[column].dtype for f in frames if column in f.columns and f[column].notna().any()), None)
        if typed is None or frame[column].dtype == typed:
            continue
        if typed == bool:
            if column.startswith(DATE_ONLY):
                frame[column] = frame[column].fillna(False).astype(bool)
            continue  # a canonical yes/no column has its default in every file: no gap to fill
        frame[column] = frame[column].astype(typed)
    return frame


def _listed(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
