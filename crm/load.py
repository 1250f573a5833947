"""Load a CRM source into CrmData: read, normalise, resolve stages, validate.

`load_crm` follows `[source]` from config (files or SQL); `load_folder` reads a folder in
the canonical format (demo export, hand-made data). Either returns the data plus soft
warnings, or raises one DataError that tells the admin what to fix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from crm import events_list, several_files, wide_history
from crm.activities import prepare as prepare_activities
from crm.connectors import CONNECTORS
from crm.data import CrmData
from crm.errors import DataError, DataWarning
from crm.normalize import normalize_table
from crm.owners import no_owner, nobody_note, without_placeholders
from crm.readers import SUFFIXES, RawTable, is_html_table, read_file
from crm.schema import REQUIRED_TABLES, TABLE_NAMES, TABLES
from crm.source_config import SourceConfig
from crm.stages import (
    derive_history,
    derived_history_warning,
    drop_closing_entries,
    resolve_stages,
    snapshot_as_stage_dates,
    stage_probabilities,
)
from crm.validate import (archived_as_lost, archived_flag_check, check, closed_flag_check, dedupe,
                          drop_planned_closings, keep_pipelines, lost_left_out_warning, match_managers,
                          match_zero_padded, order_dates)


@dataclass
class LoadResult:
    data: CrmData
    warnings: list[DataWarning] = field(default_factory=list)


def load_folder(path: str | Path, *, timezone: str = "UTC", now: datetime | None = None) -> LoadResult:
    """A folder in the canonical format: file names are table names (.csv/.xlsx/.parquet)."""
    return load_crm(SourceConfig(path=str(path)), timezone=timezone, now=now)


def load_crm(
    source: SourceConfig,
    *,
    timezone: str = "UTC",
    base_dir: Path | None = None,
    now: datetime | None = None,
) -> LoadResult:
    """Read the source `[source]` describes. `base_dir` is the config file's folder.

    `now` (optional, tz-aware) enables the future-date check.
    """
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"unknown timezone {timezone!r}",
                        fix='use an IANA name such as "Asia/Almaty" or "Europe/Moscow"') from None
    if source.kind == "sql":
        from crm.sql import read_tables

        raws = read_tables(source, base_dir)
    elif source.kind in CONNECTORS:
        raws = read_store(source, base_dir)
    else:
        raws = _read_files(_folder(source, base_dir), source)
    return build(raws, source, timezone=timezone, now=now)


def build(raws: dict[str, RawTable], source: SourceConfig, *, timezone: str,
          now: datetime | None = None) -> LoadResult:
    """Raw frames by canonical table name -> validated CrmData."""
    if "deals" not in raws:
        where = "[source.tables]" if source.kind == "sql" else "the data folder"
        raise DataError(
            f"no deals table in {where}",
            fix="provide deals (e.g. deals.csv); it is the one table required (managers and stage "
            "history are derived from it when absent)",
        )
    warnings: list[DataWarning] = []
    frames: dict[str, pd.DataFrame] = {}
    unread: dict[str, tuple[str, ...]] = {}
    read: dict[str, dict[str, str]] = {}
    probability = None  # a probability column orders a guessed pipeline (read before the raw frame goes)
    if not source.stages and "stages" not in raws and "stage_history" not in raws:
        probability = stage_probabilities(raws["deals"].frame, source.columns.get("deals") or {},
                                          source.values.get("deals") or {})
    # amoCRM's events list given as stage_history: read once the deals are (crm.events_list)
    events = _events_list(raws.get("stage_history"), source)
    # A deals export's per-stage entry dates (HubSpot's `Date entered "<stage> (<pipeline>)"`) are
    # the stage history when the source gives none; a stage history file or table wins.
    wide = "stage_history" not in raws and source.kind in ("files", "sql")
    wide_reads: list[wide_history.Read] = []
    if not wide and source.kind in ("files", "sql"):
        warnings += wide_history.not_read_note(raws["deals"], raws["stage_history"].origin)
    for table, raw in raws.items():
        if table == "stage_history" and events is not None:
            continue
        unused = frozenset({"stage_changed_at"}) if table == "deals" and "stage_history" in raws else frozenset()
        files = raw.parts or [raw]
        warnings += [n for part in files if not part.mapped_only for n in part.notes]  # with a file's first reading
        done = [_normalize_file(table, part, source, timezone, unused, files, wide) for part in files]
        wide_reads += [part.history for part in done if part.history is not None]
        unread[table] = tuple(dict.fromkeys(c for part in done for c in part.unread))
        read[table] = {k: v for part in reversed(done) for k, v in part.read.items()}  # the first file's name wins
        if raw.parts:
            frame, notes = several_files.combine(table, done, source.fill.get(table))
            for part in files:
                del part.frame
            del raw.frame
        else:
            frame, notes = done[0].frame, done[0].notes
        frame, dup_notes = dedupe(table, frame)
        frames[table] = frame.reset_index(drop=True)
        if not raw.show_values:  # a file outside the data folder: counts, never its cells
            for note in notes + dup_notes:
                note.examples = [e for e in note.examples if e.startswith(("row ", "record "))]
        warnings += notes + dup_notes

    if events is not None:
        raw = raws["stage_history"]
        frames["stage_history"], notes = events_list.read(
            raw, events, frames["deals"], source.values.get("stage_history") or {}, source.values.get("deals") or {},
            _pipeline_stages(frames.get("stages"), source.stages), timezone, source.date_formats_for("stage_history"))
        if not raw.show_values:
            for note in notes:
                note.examples = [e for e in note.examples if e.startswith(("row ", "record "))]
        warnings += notes
        read["stage_history"] = {"deal_id": str(events["object"]), "stage": str(events["after"]),
                                 "entered_at": str(events["date"])}
        unread["stage_history"] = tuple(str(c) for c in raw.frame.columns if c not in events.values())
        del raw.frame
    for read_ in wide_reads:
        warnings += read_.notes
    wide_reads = [r for r in wide_reads if len(r.history)]
    if wide_reads:
        warnings.append(wide_history.read_note(wide_reads))
        frames["stage_history"] = wide_history.joined(wide_reads)
        raws["stage_history"] = RawTable(pd.DataFrame(), several_files.origin_of([r.origin for r in wide_reads])
                                         + ' ("Date entered" columns)', show_values=all(r.show_values for r in wide_reads))
        read["stage_history"] = {"deal_id": read["deals"].get("deal_id", "deal_id"),
                                 "stage": 'Date entered "<stage>"', "entered_at": 'Date entered "<stage>"'}
        unread["stage_history"] = ()

    nobody = {str(v) for t, fill in source.fill.items() if (v := fill.get("manager_id")) is not None}
    if "managers" not in frames:
        frames["managers"], note = managers_from_deals(frames, raws["deals"].origin, timezone, nobody)
        warnings.append(note)
    else:
        warnings += match_managers(frames)
    warnings += match_zero_padded(frames)
    # a managers row that is no person (a CRM's catch-all user «Не назначен»): its id names nobody
    frames["managers"], placeholder = without_placeholders(frames["managers"])
    nobody |= set(placeholder)
    # A CRM API source's connector keeps `[source] pipelines` itself (by id or name, as the CRM
    # has them; the deals' pipeline column holds names): here it gets only the warning when the
    # deals come from several pipelines.
    warnings += keep_pipelines(frames, source.pipelines if source.kind in ("files", "sql") else [])
    deals, notes = drop_planned_closings(archived_as_lost(frames["deals"]))
    warnings += notes + lost_left_out_warning(deals, raws["deals"].origin)
    history = frames.get("stage_history")
    if history is not None:
        deals, history, notes = snapshot_as_stage_dates(history, deals, raws["stage_history"].origin)
        warnings += notes
    if history is not None:
        history, deals, notes = drop_closing_entries(history, deals)
        warnings += notes
    deals, history, notes = order_dates(deals, history, {t: r.origin for t, r in raws.items()}, timezone,
                                        private={t for t, r in raws.items() if not r.show_values})
    warnings += notes
    if wide_reads and history is not None:
        history, notes = wide_history.fill_current(history, deals, wide_reads)
        warnings += notes
    stages, notes = resolve_stages(frames.get("stages"), source.stages, history, deals, probability)
    warnings += notes
    if wide_reads and history is not None:
        given = bool(source.stages) or (frames.get("stages") is not None and len(frames["stages"]) > 0)
        history, notes = wide_history.complete(history, deals, stages, wide_reads, given)
        warnings += notes
    derived = history is None
    if derived:
        history = derive_history(deals, stages)
        changed = int(deals["stage_changed_at"].notna().sum()) if "stage_changed_at" in deals.columns else 0
        warnings.append(derived_history_warning(len(deals), changed))

    warnings += [n for n in [nobody_note({**frames, "deals": deals}, frozenset(nobody), placeholder)] if n]
    data = CrmData(
        managers=frames["managers"], deals=deals, stage_history=history, stages=stages,
        clients=frames.get("clients"), emails=frames.get("emails"),
        email_opens=frames.get("email_opens"), activities=frames.get("activities"),
        leads=frames.get("leads"),
        origins={t: r.origin for t, r in raws.items()}, stage_history_derived=derived, unread_columns=unread,
        read_columns=read, no_owner=frozenset(nobody), placeholder_names=placeholder, live=source.kind != "files",
    )
    if derived:
        data.origins["stage_history"] = "derived from " + data.origins["deals"]
    if "managers" not in raws:
        data.origins["managers"] = "derived from " + data.origins["deals"]
    if data.activities is not None:
        data.activities, notes = prepare_activities(data.activities, deals, data.origins["activities"],
                                                    read.get("activities"), now)
        warnings += notes
    data, notes = check(data, now)
    return LoadResult(data, warnings + notes)


def _events_list(raw: RawTable | None, source: SourceConfig) -> dict[str, str] | None:
    """The events list's columns when the stage_history file is amoCRM's / Kommo's events list;
    None for a stage history in the contract's shape. A wording named in
    [source.values.stage_history.event] for a file that is no events list is an error: the key
    would be silently ignored."""
    if raw is None:
        return None
    found = events_list.roles(raw.frame, source.columns.get("stage_history"))
    if found is None and (source.values.get("stage_history") or {}).get("event"):
        raise DataError(
            "[source.values.stage_history.event] names the events of an amoCRM / Kommo events list, but the "
            "stage_history file is not one", file=raw.origin,
            more="Columns found: " + ", ".join(repr(str(c)) for c in list(raw.frame.columns)[:20]) + ".",
            fix="give the events list as stage_history (its columns «Дата», «Объект», «Событие», «Значение после»; "
                "Kommo: Date, Object, Event, Value after), or remove [source.values.stage_history.event]",
        )
    return found


def _pipeline_stages(stages: pd.DataFrame | None, configured: list[str] | None) -> list[str]:
    """The pipeline's stages when the config or a stages table gives them (first stage first)."""
    if stages is not None and len(stages):
        return [str(s) for s in stages.sort_values(["position", "stage"], kind="stable")["stage"]]
    return list(configured or [])


def _normalize_file(table: str, raw: RawTable, source: SourceConfig, timezone: str, unused: frozenset[str],
                    files: list[RawTable], wide: bool = False) -> several_files.Part:
    """One file's canonical rows, its warnings, the columns read into nothing and those read
    (canonical -> theirs). `files`: every file of the table (one, or several: a mapped column
    some of them lack is then empty in those, crm.several_files.mapping_for). `wide`: a deals
    file's entry-date columns are read as the stage history (crm.wide_history)."""
    not_read: list[str] = []
    read: dict[str, str] = {}
    columns = source.columns.get(table)
    if columns and len(files) > 1:
        columns = several_files.mapping_for(columns, raw, files)
    try:
        frame, notes = normalize_table(
            table, raw, columns=columns, values=source.values.get(table),
            fill=source.fill.get(table), timezone=timezone, date_formats=source.date_formats_for(table),
            unread=not_read, read=read, unused=unused,
        )
    except DataError as err:
        if raw.show_values:
            raise
        raise _without_contents(err) from None
    history = None
    if table == "deals":
        notes += closed_flag_check(frame, raw.frame, not_read, raw.origin, raw.show_values)
        notes += archived_flag_check(frame, raw.frame, not_read, raw.origin)
        if wide and not raw.mapped_only:
            try:
                history = wide_history.read(frame, raw, source, timezone, set(read.values()))
            except DataError as err:
                if raw.show_values:
                    raise
                raise _without_contents(err) from None
            if history is not None:
                not_read = [c for c in not_read if c not in wide_history.entry_columns(raw.frame.columns)]
    if len(files) == 1:  # several: mapping_for reads the other files' columns, build frees them
        del raw.frame  # the raw columns are no longer needed: free them before the next table
    if frame.empty:
        notes.append(DataWarning("empty_table", table, 0, f"{raw.origin} has a header but no rows"))
    return several_files.Part(raw.origin, frame, read, notes, not_read, history)


def managers_from_deals(frames: dict[str, pd.DataFrame], origin: str, timezone: str,
                        nobody: set[str] = frozenset()) -> tuple[pd.DataFrame, DataWarning]:
    """The managers an export without a managers table implies: everyone a deal (or a lead, an
    activity, an email) names, the id as the name, active, capacity 1, no team. A deals export
    from a CRM's web UI has no users file beside it, and its owner column already holds names.
    `nobody`: the `[source.fill] manager_id` constants (an owner the CRM cleared, "No owner"); they
    and the words crm.owners reads as nobody («Без ответственного») are not a person, so those
    deals stay without a manager (stalled_deal hands them to the director)."""
    ids = pd.concat([frames[t]["manager_id"] for t in ("deals", "leads", "activities", "emails")
                     if t in frames and "manager_id" in frames[t].columns], ignore_index=True)
    ids = pd.Series(pd.unique(ids.dropna().astype(str)), dtype=str)
    ids = ids[~no_owner(ids, frozenset(nobody))].reset_index(drop=True)
    raw = RawTable(pd.DataFrame({"manager_id": ids, "name": ids}), origin="derived from " + origin,
                   row_offset=1, row_kind="record", text=False)
    managers, _ = normalize_table("managers", raw, timezone=timezone)
    note = _external_ids_note(ids, origin)
    return managers.reset_index(drop=True), note or DataWarning(
        "managers_derived", "managers", len(managers),
        f"no managers table: the {len(managers)} people the deals name (manager_id) are the managers, "
        "each named as written there, all active, capacity 1, one team; give a managers file (manager_id, "
        "name, active, team, capacity) to mark who left, split teams and name people",
    )


# Odoo's "import-compatible" export writes a salesperson as the user's external id
# ("__export__.res_users_7_1a2b3c4d", or "base.user_admin" for the first user), not the name.
_EXTERNAL_ID = re.compile(r"^(__export__\.\w+|base\.user_\w+)$")


def _external_ids_note(ids: pd.Series, origin: str) -> DataWarning | None:
    """The managers warning when the owners the deals name are record ids, not people's names:
    every message would then call a person "__export__.res_users_9_00011667"."""
    machine = ids[ids.str.match(_EXTERNAL_ID)]
    if machine.empty:
        return None
    return DataWarning(
        "managers_external_ids", "managers", len(machine),
        f"no managers table, and {'all ' if len(machine) == len(ids) else ''}{len(machine):,}"
        f"{'' if len(machine) == len(ids) else f' of the {len(ids):,}'} owners the deals in {origin} name are record ids, "
        f"not names: messages would call people by them; export again without "
        "\"I want to update data (import-compatible export)\" (Odoo then writes the salesperson's name), or give a "
        "managers file (manager_id = that id, name = the person's name)",
        [str(v) for v in machine.head(3)],
    )


def read_store(source: SourceConfig, base_dir: Path | None) -> dict[str, RawTable]:
    """The canonical tables of a CRM API source from its synced store (read-only): they then go
    through the same normalisation and checks as an exported file."""
    from crm.connectors import connector, engine

    store = engine.open_store(source, base_dir)
    con = store.read(source.kind)
    try:
        frames = connector(source.kind).raw_tables(con, source)
    finally:
        con.close()
    origin = f"{source.kind} store {store.where(source.kind)}"
    return {t: RawTable(f, f"{origin}: {t}", row_offset=1, row_kind="record", text=False)
            for t, f in frames.items()}


def _without_contents(err: DataError) -> DataError:
    """The error for a file outside the data folder: where and what, never what the file holds."""
    return DataError(
        err.problem, file=err.file, row=err.row, row_kind=err.row_kind, column=err.column,
        expected=err.expected,
        more="Cells and column names of files outside the data folder are not shown.",
        fix="check that [source.files] names the export you meant",
    )


def _folder(source: SourceConfig, base_dir: Path | None) -> Path:
    folder = Path(source.path) if source.path else Path(".")
    if not folder.is_absolute() and base_dir is not None:
        folder = Path(base_dir) / folder
    try:
        is_file, is_dir = folder.is_file(), folder.is_dir()
    except OSError as exc:
        raise _folder_unreadable(folder, exc) from None
    if is_file:
        raise DataError(
            f"the data folder {str(folder)!r} is a file, not a folder",
            fix=f"set [source] path to the folder that holds the exports ({str(folder.parent)!r}); "
            f"to read this file under another name, add [source.files] <table> = \"{folder.name}\"",
        )
    if not is_dir:
        raise DataError(
            f"the data folder {str(folder)!r} does not exist",
            fix="set [source] path to the folder with your CRM export "
            "(relative paths are relative to the config file)",
        )
    return folder


def _folder_unreadable(folder: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot open the data folder {str(folder)!r} ({exc.strerror or exc.__class__.__name__})",
        fix="give the user that runs crm-pulse read and execute access to the folder "
        "(e.g. chmod o+rx, or add that user to the folder's group)",
    )


def _their_columns(table: str, source: SourceConfig) -> list[str]:
    """Column names a table may have: mapped names plus canonical ones."""
    mapped = source.columns.get(table, {})
    names = {c.name for c in TABLES[table].columns} | set(mapped.values())
    if table == "stage_history":  # or amoCRM's events list (crm.events_list)
        names |= set(events_list.HEADER_NAMES)
    return sorted(names)


def _listing(folder: Path) -> dict[str, Path]:
    """Every entry of the folder by lower-case name, files or not: a `deals.csv` that is a folder,
    a pipe or a dangling link is named as such when read, not silently skipped."""
    try:
        return {p.name.lower(): p for p in folder.iterdir()}
    except OSError as exc:
        raise _folder_unreadable(folder, exc) from None


def _read_files(folder: Path, source: SourceConfig) -> dict[str, RawTable]:
    listing = _listing(folder)
    paths: dict[str, list[Path]] = {}
    problems: list[DataError] = []
    for table in TABLE_NAMES:  # every file named in config and every required table, before reading any
        try:
            found = _find_files(folder, listing, table, source.files_for(table))
        except DataError as e:
            problems.append(e)
            continue
        if found:
            paths[table] = found
    absent = [t for t in REQUIRED_TABLES if t not in paths and t != "stage_history"
              and t not in source.files and (folder / (t + ".xls")).name.lower() not in listing]
    if len(problems) + len(absent) > 1:
        raise _all_missing(folder, listing, source, problems, absent)
    if problems:
        raise problems[0]
    raws: dict[str, RawTable] = {}
    own: dict[Path, str] = {}  # a file -> the table it is read as first (deals first)
    for table in sorted(paths, key=lambda t: t != "deals"):
        for path in paths[table]:
            own.setdefault(path.resolve(), table)
    for table, found in paths.items():
        parts = []
        for path in found:
            raw = read_file(path, expected=_their_columns(table, source), max_mb=source.max_file_mb)
            raw.show_values = _inside(path, folder)
            raw.mapped_only = own[path.resolve()] != table
            parts.append(raw)
        raws[table] = parts[0] if len(parts) == 1 else several_files.joined(parts)
    for table in REQUIRED_TABLES:
        if table not in raws and table != "stage_history":
            old_excel = listing.get(table + ".xls")
            if old_excel is not None:
                raise DataError(
                    "old Excel .xls files are not read", file=old_excel.name,
                    fix=f"open it in Excel or LibreOffice and save it as {table}.xlsx or {table}.csv "
                    "in the same folder",
                )
            more = "Files found: " + _names(listing) + "."
            if not source.path:
                more += (" [source] path is unset, so the folder of the config file itself was read; "
                         "set path = \"<folder with the exports>\" if they are elsewhere.")
            pattern = several_files.pattern_hint(table, [p.name for p in listing.values()])
            raise DataError(
                f"no {table} file in {folder}",
                more=more,
                # files named like one table's parts: reading them all is the likely fix, so it comes first
                fix=(f"read them all as one table: [source.files] {table} = \"{pattern}\" in config; or name one "
                     f"file: [source.files] {table} = \"<file name>\"") if pattern else
                (f"export it as {table}.csv (or .xlsx/.parquet), or name your file in "
                 f"config: [source.files] {table} = \"<file name>\""),
            )
    return raws


def _all_missing(folder: Path, listing: dict[str, Path], source: SourceConfig, problems: list[DataError],
                 absent: list[str]) -> DataError:
    """One error for every file that is not there (named in [source.files], or a required
    table), so an admin fixes them all in one go instead of one per run."""
    lines = [p.problem for p in problems] + [f"no {t} file" for t in absent]
    fixes = [f"[source.files] {t} = \"<file name>\" (or export it as {t}.csv)" for t in absent]
    fixes += [p.fix for p in problems if p.fix]
    more = "Files found: " + _names(listing) + "."
    if not source.path:
        more += (" [source] path is unset, so the folder of the config file itself was read; "
                 "set path = \"<folder with the exports>\" if they are elsewhere.")
    return DataError(f"{len(lines)} problems with the files in {folder}: " + "; ".join(lines), more=more,
                     fix="; ".join(fixes))


def _names(listing: dict[str, Path]) -> str:
    names = sorted(p.name for p in listing.values())
    shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
    return shown or "none"


def _inside(path: Path, folder: Path) -> bool:
    """The file (after following links) is in the data folder: only then are its cells quoted."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def _find_files(folder: Path, listing: dict[str, Path], table: str, configured: list[str] | None) -> list[Path]:
    """The files of one table: the default `<table>.csv` one, or each name and glob pattern
    `[source.files]` gives (crm.several_files), each file once."""
    if configured is None:
        found = _find_file(folder, listing, table, None)
        return [found] if found is not None else []
    paths: list[Path] = []
    for name in configured:
        if several_files.is_pattern(name) and not (folder / name).exists():  # "deals [2025].csv" is a name
            paths += several_files.matching(folder, table, name, _names(listing))
        else:
            paths.append(_find_file(folder, listing, table, name))
    return several_files.unique_paths(paths)


def _find_file(folder: Path, listing: dict[str, Path], table: str, configured: str | None) -> Path | None:
    if configured is not None:
        named = Path(configured)
        if not named.is_absolute() and ".." in named.parts:
            raise DataError(
                f"[source.files] {table} = {configured!r} leaves the data folder",
                fix="name a file inside the data folder, or give the full absolute path of a "
                "file elsewhere",
            )
        path = folder / named
        if not (path.exists() or path.is_symlink()):
            raise DataError(
                f"file {configured!r} named in [source.files] {table} is not in {folder}",
                more="Files found: " + _names(listing) + ".",
                fix=f"correct [source.files] {table} = \"...\"",
            )
        return path
    found = [listing[table + s] for s in SUFFIXES if table + s in listing]
    if table + ".xls" in listing and is_html_table(listing[table + ".xls"]):
        found.append(listing[table + ".xls"])  # Bitrix24's "Excel" export: an HTML table
    if len(found) > 1:
        raise DataError(
            f"more than one file for {table}: {', '.join(p.name for p in found)}",
            file=str(folder), fix="keep one of them, or choose one in config: "
            f"[source.files] {table} = \"{found[0].name}\"",
        )
    return found[0] if found else None
