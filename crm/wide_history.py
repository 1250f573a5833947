"""A stage history read from a deals export's per-stage entry-date columns.

HubSpot's deals export from the web UI can carry one column per stage of every pipeline,
`Date entered "Appointment Scheduled (Sales Pipeline)"` (the `hs_date_entered_<stage id>`
properties, labelled with the stage and, in brackets, its pipeline; HubSpot writes the label in
double or single quotes): when the deal entered that stage. Without a stage history file each
filled cell is one stage_history row (deal_id, stage = the label without its pipeline, entered_at
= the cell), so conversion_drop checks the stage pairs and stalled_deal counts idle time from the
real entry into the current stage, instead of the history derived from the deals' creation.

What these columns cannot tell, said in the load note: HubSpot keeps one date per stage, the
latest entry, so a deal that went back and entered a stage again is seen entering it once, at
the last time (its earlier stay and the move back are not seen). `Date exited`, `Time in`,
`Latest time in` and `Cumulative time in` columns are no entries and are not read; nor are the
closing stages' columns (Closed Won / Closed Lost: deals.status and closed_at say that). A cell
of one pipeline's column on a deal the Pipeline column puts in another pipeline (a deal moved
between pipelines) is not read: its stage is not one of the deal's pipeline.

Only the English label is read: HubSpot's web UI is not offered in Russian as far as we could
find, and no translated label of these properties (a Russian «Дата входа в этап», a German or
French one) could be confirmed in its documentation, so none is guessed: such an export gets the
derived history, as before. Dates follow [source.date_formats] stage_history, else the format
of deals.created_at (the same export writes both alike); a cell with the day alone is that day,
as everywhere (crm.validate.order_dates).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm.errors import DataWarning
from crm.normalize import (
    DATE_ONLY, ROW, STR, UTC_NS, _clean_text, _closing_stages, _closing_word, _placeholders, closing_words,
    coerce, date_only_cells,
)
from crm import several_files
from crm.readers import RawTable
from crm.schema import TABLES
from crm.source_config import SourceConfig
from crm.stages import CLOSING, derive_history

# `Date entered "Stage (Pipeline)"`, any case; the quotes as HubSpot and spreadsheets write them
_QUOTE_OPEN, _QUOTE_CLOSE = "[\"'\u201c\u201d\u2018\u2019\u00ab]", "[\"'\u201c\u201d\u2018\u2019\u00bb]"
_ENTERED = re.compile(rf"^\s*date\s+entered\s*{_QUOTE_OPEN}(?P<label>.+?){_QUOTE_CLOSE}\s*$", re.IGNORECASE)
# HubSpot's other per-stage columns: no entries
_NOT_ENTRIES = re.compile(rf"^\s*(date\s+exited|time\s+in|latest\s+time\s+in|cumulative\s+time\s+in)\s*{_QUOTE_OPEN}",
                          re.IGNORECASE)
_PIPELINE_SUFFIX = re.compile(r"^(?P<stage>.+?)\s*\((?P<pipeline>[^()]+)\)\s*$")
_SHOWN = 8  # stage names listed in a note


@dataclass
class Read:
    """What one deals file's entry-date columns gave: the canonical history rows (with the hidden
    date-only mark and row number crm.validate.order_dates reads), the headers each stage came
    from, and the notes to say once."""

    origin: str
    history: pd.DataFrame
    headers: dict[str, list[str]] = field(default_factory=dict)  # stage -> the columns it came from
    notes: list[DataWarning] = field(default_factory=list)
    show_values: bool = True
    left: dict = field(default_factory=dict)  # what was not read: closing, moved, empty, not_entries (read_note)


def entry_columns(columns) -> dict[object, str]:
    """The columns that are per-stage entry dates -> the label inside their quotes."""
    found = {}
    for c in columns:
        m = _ENTERED.match(str(c))
        if m and m.group("label").strip():
            found[c] = m.group("label").strip()
    return found


def split_label(label: str, pipelines: list[str]) -> tuple[str, str | None]:
    """(stage, pipeline) of a label "Qualified To Buy (Sales Pipeline)": a pipeline the deals
    name is cut off first (a stage may have brackets of its own, "Demo (online) (Sales)"), else
    the last bracket; a label with no bracket is the stage alone."""
    for p in sorted(pipelines, key=len, reverse=True):
        tail = f"({p})"
        if label.casefold().endswith(tail.casefold()) and label[:-len(tail)].strip():
            return label[:-len(tail)].strip(), p
    m = _PIPELINE_SUFFIX.match(label)
    if m:
        return m.group("stage").strip(), m.group("pipeline").strip()
    return label, None


def read(deals: pd.DataFrame, raw: RawTable, source: SourceConfig, timezone: str,
         used: set[str]) -> Read | None:
    """The stage history the entry-date columns of `raw` (a deals file) hold, or None when it has
    none. `deals`: the file's canonical deals (same row labels as raw.frame), whose deal_id and
    pipeline the cells are tied to; `used`: the file's columns the config already reads into a
    deals column (an explicit mapping wins: such a column is not a stage)."""
    from zoneinfo import ZoneInfo

    columns = {c: label for c, label in entry_columns(raw.frame.columns).items() if str(c) not in used}
    if not columns:
        return None
    frame = raw.frame
    tz = ZoneInfo(timezone)
    pipeline = deals["pipeline"] if "pipeline" in deals.columns else pd.Series(np.nan, index=deals.index, dtype=STR)
    pipeline = pipeline.astype(STR).str.strip()
    known_pipelines = [str(p) for p in pipeline.dropna().unique()[:1000]]
    deal_columns = source.columns.get("deals") or {}
    deal_values = _closing_stages("deals", deal_columns, source.values.get("deals") or {})
    stage_map = deal_values.get("stage", {})
    own_map = (source.values.get("stage_history") or {}).get("stage", {})
    words = closing_words(stage_map)
    formats = source.date_formats_for("stage_history")
    fmt = formats.get("entered_at") or source.date_formats_for("deals").get("created_at")
    entered_col = next(c for c in TABLES["stage_history"].columns if c.name == "entered_at")

    parts: list[pd.DataFrame] = []
    headers: dict[str, list[str]] = {}
    closing: list[str] = []
    moved = 0  # cells of another pipeline's column than the deal's
    empty: list[str] = []
    for order, (col, label) in enumerate(columns.items()):
        stage, of_pipeline = split_label(label, known_pipelines)
        if label in own_map and stage not in own_map:  # the whole label, as the note on unknown stages shows it
            stage = label
        if stage in own_map:  # [source.values.stage_history.stage] maps it below, in its own words
            name = stage
        else:
            name = str(stage_map.get(stage, stage))
        if name.lower() in CLOSING or _closing_word(stage, words):
            closing.append(stage)
            continue
        cells = frame[col]
        if raw.text and (cells.dtype == object or isinstance(cells.dtype, pd.StringDtype)):
            cells = _clean_text(cells)
            cells, _ = _placeholders(cells)
        filled = cells.notna().to_numpy(dtype=bool) & deals["deal_id"].notna().to_numpy(dtype=bool)
        if of_pipeline is not None and of_pipeline in known_pipelines:
            other = (pipeline.notna() & (pipeline.str.casefold() != of_pipeline.casefold())).to_numpy(
                dtype=bool, na_value=False)
            moved += int((filled & other).sum())
            filled &= ~other
        if not filled.any():
            empty.append(str(col))
            continue
        cells = cells[filled]
        dated = date_only_cells(cells, fmt)
        at = coerce(cells, entered_col, raw, tz, source_name=str(col), date_format=fmt,
                    date_key="stage_history.entered_at")
        part = pd.DataFrame({
            "deal_id": deals["deal_id"][filled].astype(STR),
            "stage": pd.Series(name, index=cells.index, dtype=STR),
            "entered_at": at.astype(UTC_NS),
            DATE_ONLY + "entered_at": dated if dated is not None else np.zeros(len(cells), dtype=bool),
            ROW: (cells.index.to_numpy() + raw.row_offset).astype(np.int32),
            "_order": np.int32(order),
        })
        parts.append(part)
        headers.setdefault(name, []).append(str(col))
    notes = []
    if not parts:
        notes.append(DataWarning(
            "stage_entry_columns_empty", "stage_history", len(columns),
            f"{raw.origin} has {len(columns)} \"Date entered\" column(s), but none holds a date for a deal: the stage "
            "history is derived from the deals",
        ))
        return Read(raw.origin, pd.DataFrame(), {}, notes, raw.show_values)
    history = pd.concat(parts, ignore_index=False)
    # one entry per deal and stage, the latest (two columns of one stage name: a deal of no known
    # pipeline; two rows of one deal: the later row is the newer state), in the file's row order
    history = (history.assign(_row=history.index.to_numpy())
               .sort_values(["_row", "entered_at", "_order"], kind="stable")
               .drop_duplicates(["deal_id", "stage"], keep="last")
               .drop(columns=["_row", "_order"]).reset_index(drop=True))
    if own_map:
        mapped = history["stage"].map(own_map)
        history["stage"] = mapped.where(mapped.notna(), history["stage"]).astype(STR)
        headers = {str(own_map.get(k, k)): v for k, v in headers.items()}
    left = {"closing": closing, "moved": moved, "empty": len(empty),
            "not_entries": sum(1 for c in frame.columns if _NOT_ENTRIES.match(str(c)))}
    return Read(raw.origin, history, headers, notes, raw.show_values, left)


def read_note(reads: list[Read]) -> DataWarning:
    """The one load note for the history read from one or several deals files: which files, how
    many columns became which stages, what a HubSpot stage date cannot tell, what was not read."""
    history = pd.concat([r.history for r in reads], ignore_index=True)
    stages = list(dict.fromkeys(history["stage"].tolist()))
    named = all(r.show_values for r in reads)
    shown = (": " + ", ".join(stages[:_SHOWN]) + (", ..." if len(stages) > _SHOWN else "")) if named else ""
    columns = max(sum(len(v) for v in r.headers.values()) for r in reads)
    closing = list(dict.fromkeys(c for r in reads for c in r.left["closing"]))
    n_closing = max(len(r.left["closing"]) for r in reads)
    moved = sum(r.left["moved"] for r in reads)
    not_entries, empty = max(r.left["not_entries"] for r in reads), max(r.left["empty"] for r in reads)
    left = []
    if closing:
        left.append(f"{n_closing} closing stage column(s)" + (f" ({', '.join(closing)})" if named else "")
                    + ": deals.status and closed_at say that")
    if moved:
        left.append(f"{moved:,} cell(s) of another pipeline's stage than the deal's Pipeline (a deal moved between "
                    "pipelines)")
    if not_entries:
        left.append(f"{not_entries} \"Date exited\" / \"Time in\" column(s): no entries")
    if empty:
        left.append(f"{empty} column(s) with no date")
    files = several_files.origin_of([r.origin for r in reads])
    return DataWarning(
        "stage_history_from_columns", "stage_history", len(history),
        f"no stage history file: read from the {columns} \"Date entered\" column(s) of {files} (HubSpot's stage "
        f"entry dates), {len(stages)} stage(s){shown}; {len(history):,} entries of {history['deal_id'].nunique():,} "
        "deal(s). HubSpot keeps one date per stage, the latest: a deal that went back and entered a stage again "
        "is seen entering it once, at the last time" + (f"; not read: {'; '.join(left)}" if left else ""),
        level="note",
    )


def not_read_note(raw: RawTable, history_origin: str) -> list[DataWarning]:
    """The one line saying a deals file's entry-date columns are not read, beside a stage history
    the source gives (the history file or table wins)."""
    n = len(entry_columns(raw.frame.columns))
    if not n:
        return []
    return [DataWarning(
        "stage_entry_columns_unused", "stage_history", n,
        f"the {n} \"Date entered\" column(s) of {raw.origin} are not read: the stage history comes from "
        f"{history_origin}",
    )]


def joined(reads: list[Read]) -> pd.DataFrame:
    """The history of one or several deals files (crm.several_files: each row's file beside its
    row number, as several_files keeps it)."""
    if len(reads) == 1:
        return reads[0].history
    frames = [r.history.assign(**{several_files.FILE: r.origin}) for r in reads if len(r.history)]
    return pd.concat(frames, ignore_index=True).drop_duplicates(["deal_id", "stage"], keep="last") \
        .reset_index(drop=True)


def fill_current(history: pd.DataFrame, deals: pd.DataFrame, reads: list[Read]) -> tuple[pd.DataFrame, list[DataWarning]]:
    """An entry for each deal whose current stage has no entry date (its column was not exported,
    or the cell is empty) while other stages have one: at its latest known entry (or at
    stage_changed_at when later), since it moved there no earlier, so its stay is not counted
    from an older stage's entry, and its stage is one of the pipeline. Deals with no entry date at
    all are left to `complete`."""
    named = all(r.show_values for r in reads)
    closing = deals["stage"].astype("string").str.lower().isin(CLOSING).fillna(False).to_numpy(dtype=bool)
    staged = deals["stage"].notna().to_numpy(dtype=bool) & ~closing
    has_any = deals["deal_id"].isin(history["deal_id"]).to_numpy(dtype=bool)
    at_current = np.asarray(pd.MultiIndex.from_frame(deals[["deal_id", "stage"]].astype(str)).isin(
        pd.MultiIndex.from_frame(history[["deal_id", "stage"]].astype(str))), dtype=bool)
    gap = staged & has_any & ~at_current
    if not gap.any():
        return history, []
    latest = history.groupby("deal_id", sort=False)["entered_at"].max()
    d = deals[gap]
    at = d["deal_id"].map(latest).astype(UTC_NS)
    if "stage_changed_at" in d.columns:
        changed = d["stage_changed_at"]
        at = changed.where(changed.notna() & (changed > at), at)
    added = pd.DataFrame({"deal_id": d["deal_id"].astype(STR), "stage": d["stage"].astype(STR),
                          "entered_at": at.astype(UTC_NS)})
    return _canonical(pd.concat([history, added], ignore_index=True)), [DataWarning(
        "stage_entry_missing", "stage_history", int(gap.sum()),
        f"{int(gap.sum()):,} deal(s) have no \"Date entered\" date for their current stage (its column not "
        "exported, or the cell empty): read as entering it at their latest known stage entry (or "
        "stage_changed_at, when later), so their idle time may be overstated; export that stage's "
        "\"Date entered\" column",
        [f"deal {i}: {s}" for i, s in d[["deal_id", "stage"]].head(3).itertuples(index=False)] if named else [],
    )]


def complete(history: pd.DataFrame, deals: pd.DataFrame, stages: list[str], reads: list[Read],
             pipeline_given: bool) -> tuple[pd.DataFrame, list[DataWarning]]:
    """The read history made whole for the detectors once the pipeline is known, each gap said once.

    `pipeline_given`: the pipeline comes from [source] stages or a stages table; then an entry
    into a stage that is not in it is not read, and its column is named (never matched to a stage
    by a guess: map it, or add the stage). A deal with no entry date at all gets the derived
    history (the first stage at creation, its current stage at stage_changed_at or creation), as
    without these columns. Entries of one instant (date-only cells of one day) come in the
    pipeline's order, not the columns' (an export lists them as the user picked them, often
    alphabetically)."""
    notes: list[DataWarning] = []
    named = all(r.show_values for r in reads)
    headers: dict[str, list[str]] = {}
    for r in reads:
        for k, v in r.headers.items():
            headers.setdefault(k, []).extend(h for h in v if h not in headers.get(k, []))
    if pipeline_given and len(history):
        unknown = ~history["stage"].isin(stages).to_numpy(dtype=bool)
        if unknown.any():
            names = history.loc[unknown, "stage"].value_counts()
            shown = []
            for s, n in names.head(_SHOWN).items():
                # only a stage written otherwise (case, spaces) is pointed at: "Quote Sent" is no typo of "Contract Sent"
                close = next((st for st in stages if _loose(st) == _loose(str(s))), None)
                hint = f", did you mean {close!r}?" if close else ""
                cols = " / ".join(headers.get(str(s), [repr(s)])) if named else f"stage {len(shown) + 1}"
                shown.append(f"{cols} ({n:,} deal(s){hint})")
            notes.append(DataWarning(
                "stage_column_unknown", "stage_history", int(unknown.sum()),
                f"{int(unknown.sum()):,} entry date(s) in {len(names)} \"Date entered\" stage(s) that are not in "
                "the pipeline ([source] stages or the stages table) are not read: "
                + "; ".join(shown) + (", ..." if len(names) > _SHOWN else "")
                + "; add the stage to the pipeline, or map the label to one of its stages: "
                "[source.values.stage_history.stage] \"<label>\" = \"<stage>\"",
            ))
            history = history[~unknown].reset_index(drop=True)
    bare = ~deals["deal_id"].isin(history["deal_id"]).to_numpy(dtype=bool)
    if bare.any():
        history = _canonical(pd.concat([history, derive_history(deals[bare], stages)], ignore_index=True))
        notes.append(DataWarning(
            "stage_entries_none", "stage_history", int(bare.sum()),
            f"{int(bare.sum()):,} deal(s) have no \"Date entered\" date at all: their history is derived (the first "
            "stage at creation, the current stage at stage_changed_at or creation)",
        ))
    position = {s: i for i, s in enumerate(stages)}
    pos = history["stage"].map(position).fillna(len(stages)).astype("int64")
    history = (history.assign(_pos=pos).sort_values(["deal_id", "entered_at", "_pos"], kind="stable")
               .drop(columns=["_pos"]).reset_index(drop=True))
    return history, notes


def _loose(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().casefold()


def _canonical(history: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"deal_id": history["deal_id"].astype(STR), "stage": history["stage"].astype(STR),
                         "entered_at": history["entered_at"].astype(UTC_NS)})
