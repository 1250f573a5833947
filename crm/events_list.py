"""amoCRM / Kommo «Аналитика → Список событий» (Analytics → Events list), exported, read as stage_history.

amoCRM's export of deals («Сделки» → «Экспорт») has no stage history, so without this the
loader derives one (each deal at its first stage when created) and conversion_drop measures only
the win rate of new deals. The events list has the moves: a file given as stage_history whose
header holds the events list's columns is read as one, with no key to set
(`[source.files] stage_history = "events.xlsx"`). Columns, as amocrm.ru/support/analytics/list_events
names them: «Дата» (when), «Автор» (a user, «Робот» or an integration), «Объект» (a link to the
entity: Сделка, Контакт, Компания, Задача, Покупатель, Список), «Название» (the entity's name),
«Событие» (what happened), «Значение до», «Значение после»; Kommo: Date, Author, Object, Name,
Event, Value before, Value after.

What becomes of each row, the same history as the API path (crm.connectors.amocrm: the
`lead_status_changed` events, plus each lead's entry into its first stage at its creation):
- a deal's stage change («Изменение этапа продажи», the API's lead_status_changed as amoCRM's
  developer docs word it; Kommo "Lead status changed") -> (deal, stage = «Значение после», entered
  = «Дата»); a move into a closing stage («Успешно реализовано», «Закрыто и не реализовано» or
  what `[source.values.deals.status]` closes) is the deal's status, not a stage (crm.stages
  drops it, as the API path drops 142/143); a move into «Неразобранное» (the incoming leads) is
  no stage either;
- each deal with a stage change entered the stage its first change left («Значение до») when it
  was created; a deal with none entered its current stage when it was created (a closed one: the
  first of `[source] stages`, when given);
- every other row (a call, a task, a contact's change, a new deal) is set aside and counted in
  one line. Robots and integrations move deals too (amoCRM's Digital Pipeline): their rows count
  like a person's; the author is not read.

Linking a row to its deal: the deal id when the export carries one (a column mapped as
`[source.columns.stage_history] deal_id`, or a column named ID / «ID объекта»; else an id in
the «Объект» cell: the card's address `.../leads/detail/<id>`, an =HYPERLINK formula holding it,
or «Сделка #<id>»), else the deal's name («Название») when exactly one deal has it, or one of
several namesakes was the only one open then (crm.activities.link_titles, the rule activity lists
use); the rest are counted in one warning, never guessed. A deal none of whose changes could be
linked, while changes of its name into its current stage could not be told apart from its
namesakes', is at that stage since the latest of them (not since its creation: a deal moved
yesterday would be called idle for months), said in the load note.

Guessed, not seen in a real export (say so when it differs):
- the event's wording: «Изменение этапа продажи» is the description amoCRM's API docs give
  lead_status_changed; the export may word it otherwise («Этап сделки изменён», "Stage
  changed"). A few such wordings are known (STAGE_CHANGE); a list with none of them is an error
  naming the events it holds and the key that names the right one: `[source.values.stage_history.event]
  "<their words>" = "stage"` ("other" sets a known wording aside);
- what «Объект» holds: the interface shows a link; saved as CSV or XLSX it may be the word
  «Сделка», the address, or the entity's name. An XLSX cell's link target is not read, only its
  text: a file whose «Объект» is the bare word links by name;
- a stage written with its pipeline («Воронка: Этап», «Воронка / Этап», "Pipeline - Stage",
  «Этап (Воронка)»): read as the stage when the part after (or before the brackets) is a stage
  the deals or `stages` know, or the part before is a pipeline the deals name; said in one line.
  One that cannot be told is kept as written and named in a warning;
- the date as the interface writes it (01.10.2026 14:30); «Сегодня 14:30» / "Today" (the
  interface's words for recent days) is an unreadable date: an error naming the row, like any.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crm.activities import _key as title_key
from crm.activities import link_titles, shared_titles
from crm.errors import DataError, DataWarning
from crm.ids import positions
from crm.normalize import _closing_word, _header_key, closing_words, lower_text, normalize_table
from crm.readers import RawTable
from crm.stages import CLOSING
from crm.validate import utc_ns

EXAMPLES = 3

# The events list's columns: role -> header names (crm.normalize._header_key form).
HEADERS: dict[str, tuple[str, ...]] = {
    "date": ("дата", "date", "дата события", "event date"),
    "author": ("автор", "author"),
    "object": ("объект", "object", "сущность", "entity"),
    "name": ("название", "name", "название сущности", "entity name"),
    "event": ("событие", "event", "тип события", "event type"),
    "before": ("значение до", "value before", "значения до", "before"),
    "after": ("значение после", "value after", "значения после", "after"),
    # not a bare "ID": in an events list that may be the event's own id
    "id": ("id объекта", "object id", "entity id", "id сущности", "id сделки", "deal id", "lead id"),
}
NEEDED = ("date", "object", "event", "after")
# The header names a stage_history file may have besides the canonical ones (crm.load: the
# reader looks for the header row among them when a title sits above it).
HEADER_NAMES: tuple[str, ...] = tuple(n for role in ("date", "object", "event", "before", "after", "name")
                                      for n in HEADERS[role][:2])

# A deal's stage change as the list may word it (header-key form). Guessed: see the docstring.
STAGE_CHANGE = frozenset({
    "изменение этапа продажи", "изменение этапа сделки", "изменение этапа", "смена этапа", "смена этапа сделки",
    "этап сделки изменен", "этап сделки изменён", "этап изменен", "этап изменён", "изменение статуса сделки",
    "lead status changed", "lead stage changed", "stage changed", "status changed", "lead status change",
    "change of lead stage", "deal stage changed",
})
EVENT_TARGETS = ("stage", "other")  # what [source.values.stage_history.event] maps a wording to

# Patterns as text, without flags: pandas runs them in Arrow (RE2) over the whole column, where a
# compiled or flagged pattern would go cell by cell in Python. RE2's \\b knows no Cyrillic letters.
_END = r"(?:$|[\s:#№/.,(\-])"
_DEAL_OBJECT = r"(?i)^\s*(?:сделка|сделки|deal|deals|lead|leads)" + _END
_OTHER_OBJECT = (r"(?i)^\s*(?:контакт|компания|задача|покупатель|список|элемент|беседа|чат|contact|company|task|"
                 r"customer|list|catalog|talk|chat)")
_DEAL_URL = r"/leads/(?:detail/)?(\d+)"
_OTHER_URL = r"/(?:contacts|companies|customers|todo|tasks|catalogs)/"
_BARE_WORD = r"(?i)^\s*(?:сделка|deal|lead)\s*$"
# The incoming leads' status: no stage (the API path leaves it out of the history too).
INCOMING = frozenset({"неразобранное", "incoming leads", "incoming", "unsorted"})
_SEPARATORS = (": ", " / ", " → ", " -> ", " > ", " — ", " – ", " - ")
_IN_BRACKETS = re.compile(r"^(.+?)\s*\((.+)\)\s*$")


def roles(frame: pd.DataFrame, mapped: dict[str, str] | None = None) -> dict[str, str] | None:
    """Role -> the file's column when the header is an events list's (its date, object, event
    and value-after columns), else None. `mapped` ([source.columns.stage_history]) names the
    id, value-after and date columns when the file's own names differ."""
    mapped = mapped or {}
    by_key: dict[str, str] = {}
    for c in frame.columns:
        by_key.setdefault(_header_key(c), c)
    found = {role: next((by_key[n] for n in names if n in by_key), None) for role, names in HEADERS.items()}
    for role, canon in (("id", "deal_id"), ("after", "stage"), ("date", "entered_at")):
        if canon in mapped:
            if mapped[canon] not in frame.columns:
                return None  # read as a plain table: its error names the mapped column the file lacks
            found[role] = mapped[canon]
    if any(found[r] is None for r in NEEDED):
        return None
    return {r: c for r, c in found.items() if c is not None}


def read(raw: RawTable, columns: dict[str, str], deals: pd.DataFrame, values: dict[str, dict[str, str]],
         deal_values: dict[str, dict[str, str]], stages: list[str], timezone: str,
         date_formats: dict[str, str]) -> tuple[pd.DataFrame, list[DataWarning]]:
    """The stage history (crm.normalize's canonical frame, hidden columns included) from an
    events list, and its warnings. `columns`: roles(); `values`: [source.values.stage_history]
    (`event`: wordings, `stage`: stage values); `deal_values`: [source.values.deals] (its
    closing stages); `stages`: the pipeline's stages when known (config or stages table)."""
    frame = raw.frame
    warnings: list[DataWarning] = []
    if not len(frame):
        raise DataError(
            f"the events list {raw.origin} has its header and no rows", file=raw.origin,
            fix="export «Аналитика → Список событий» (Kommo: Analytics → Events list) again for the deals' period "
                "and pipelines, with the event «Изменение этапа продажи» included; or remove stage_history from "
                "[source.files] to have the history derived from the deals",
        )
    text = {r: _text(frame[c]) for r, c in columns.items() if r in ("object", "name", "event", "before", "after", "id")}
    event = text["event"]
    words = _event_words(values.get("event") or {})
    change = _header_key_series(event).isin(words).to_numpy(dtype=bool)
    if not change.any():
        raise DataError(
            f"the events list {raw.origin} holds no deal's stage change: none of its «{columns['event']}» cells "
            "is a wording crm-pulse knows for one", file=raw.origin, column=str(columns["event"]),
            more="Its events: " + _counted(event.value_counts()) + ".",
            fix="name the wording of a stage change in config: [source.values.stage_history.event] "
                "\"<the event's words>\" = \"stage\"; or export the events list with the event «Изменение этапа "
                "продажи» (Kommo: \"Lead status changed\") included",
        )
    obj = text["object"]
    other = (obj.str.contains(_OTHER_OBJECT) | obj.str.contains(_OTHER_URL)).fillna(False).to_numpy(dtype=bool)
    keep = change & ~other
    aside = _set_aside(event, obj, ~keep)

    rows = frame.index[keep]
    _refuse_relative_dates(raw, frame.loc[rows, columns["date"]], columns["date"])
    stage_names = _known_stages(deals, stages)
    pipelines = set(lower_text(deals["pipeline"]).dropna()) if "pipeline" in deals.columns else set()
    closing_words = _closing_words(deal_values)
    known = stage_names | {w for ws in closing_words.values() for w in ws}  # Kommo's "Closed - lost" is no pipeline
    after, split_a, odd_a = _stages(text["after"][rows], known, pipelines)
    before, split_b, odd_b = (_stages(text["before"][rows], known, pipelines) if "before" in text
                              else (pd.Series(pd.NA, index=rows, dtype="string"), 0, {}))
    after = _closing(after, closing_words)
    before = _closing(before, closing_words)
    if split_a + split_b:
        warnings.append(DataWarning(
            "events_pipeline_in_stage", "stage_history", split_a + split_b,
            f"{split_a + split_b:,} stage value(s) in {raw.origin} name their pipeline too («Воронка: Этап»): read as "
            "the stage alone (deals of several pipelines are judged as one funnel unless [source] pipelines keeps one)",
        ))
    odd = pd.Series({**odd_b, **odd_a}, dtype=int).sort_values(ascending=False) if (odd_a or odd_b) else None
    if odd is not None:
        warnings.append(DataWarning(
            "events_stage_unknown", "stage_history", int(odd.sum()),
            f"{int(odd.sum()):,} stage value(s) in {raw.origin} look like a pipeline and a stage but neither part is a "
            "stage the deals or [source] stages know: read as written; set [source] stages to your pipeline's "
            "stages, or map them in [source.values.stage_history.stage]",
            [f"{s!r} ({n})" for s, n in odd.head(EXAMPLES).items()],
        ))
    # a change into no stage (an empty value after) or into «Неразобранное» is set aside too
    nowhere = (after.isna() | lower_text(after).isin(INCOMING)).fillna(True).to_numpy(dtype=bool)
    if nowhere.any():
        aside = _set_aside(event, obj, ~keep | frame.index.isin(rows[nowhere]), " (no stage after)", frame.index.isin(rows[nowhere]))
        rows, after, before = rows[~nowhere], after[~nowhere], before[~nowhere]

    # the dates once (crm.normalize: formats, zone, date-only cells, row numbers), then the deals
    sub = RawTable(pd.DataFrame({columns["object"]: "?", columns["after"]: after,
                                 columns["date"]: frame.loc[rows, columns["date"]]}, index=rows),
                   raw.origin, row_offset=raw.row_offset, row_kind=raw.row_kind, text=raw.text,
                   show_values=raw.show_values)
    history, notes = normalize_table(
        "stage_history", sub, columns={"deal_id": columns["object"], "stage": columns["after"],
                                       "entered_at": columns["date"]},
        values={"stage": values.get("stage") or {}}, timezone=timezone, date_formats=date_formats)
    warnings += notes
    history_at = history["entered_at"]
    linked, how = _link(rows, text, deals, history_at)
    unlinked = linked.isna().to_numpy()
    if unlinked.all():
        names = (text["name"] if "name" in text else obj)[rows]
        shared = how == "shared"
        raise DataError(
            f"none of the {len(rows):,} stage changes in the events list {raw.origin} could be linked to a deal in "
            "deals", file=raw.origin, column=str(columns.get("name") or columns["object"]),
            more=(f"{int(shared.sum()):,} of them: " + shared_titles(names[shared].astype("string"), deals) + ". "
                  if shared.any() else "")
            + ("Names not found: " + ", ".join(repr(v) for v in names[~shared].dropna().drop_duplicates()
                                               .head(EXAMPLES)) + "." if (~shared).any() else ""),
            fix=("give deals that share a name names of their own, or export the list with the deal's id (the "
                 "card's address in «Объект», or an «ID объекта» column: a link in an XLSX cell is not read, only "
                 "its text); " if shared.any() else "")
            + "map the deals' name column ([source.columns.deals] title = \"Название сделки\" / \"Lead title\"), "
            "or export the events of the same deals (the same period and pipelines) as the deals file",
        )
    if unlinked.any():
        warnings.append(_unlinked_note(raw, rows[unlinked], text, how[unlinked], deals, len(rows)))
    ok = ~unlinked
    history = history[ok]
    history = history.assign(deal_id=linked[ok].astype(history["deal_id"].dtype).to_numpy())
    first_change = history["entered_at"].min()
    firsts, counts = _first_entries(history, before[ok], deals, stages, _namesake_moves(
        rows, unlinked & (how == "shared"), text, after, history_at))
    history = pd.concat([firsts, history], ignore_index=True) if len(firsts) else history.reset_index(drop=True)
    warnings.append(_summary(raw, columns, history, counts, how, ok, aside, deals, first_change))
    return history, warnings


_RELATIVE_DAY = r"(?i)^\s*(?:сегодня|вчера|позавчера|today|yesterday)\b"


def _refuse_relative_dates(raw: RawTable, dates: pd.Series, column: str) -> None:
    """«Сегодня 14:30» / "Yesterday 09:10": the interface's words for recent days, copied with the
    list. No day can be read from them without knowing when the list was saved: an error that
    says so, not the generic "not a date" with a strptime format that cannot read them."""
    cells = dates.astype("string").str.strip()
    hit = cells.str.contains(_RELATIVE_DAY).fillna(False).to_numpy(dtype=bool)
    if not hit.any():
        return
    first = dates.index[hit][0]
    raise DataError(
        f"{int(hit.sum()):,} stage change(s) in the events list are dated with a word for a recent day, not a date",
        file=raw.origin, row=int(first) + raw.row_offset, row_kind=raw.row_kind, column=str(column),
        value=cells[first] if raw.show_values else None,
        fix="write the day's date instead (30.11.2026 14:05 for «Сегодня 14:05» in a list saved on 30.11.2026): "
            "amoCRM's screen writes recent days as «Сегодня» / «Вчера» (Kommo: Today / Yesterday); a list "
            "exported with «Экспорт» should carry full dates",
    )


def _text(series: pd.Series) -> pd.Series:
    out = series.astype("string[pyarrow]").str.strip()
    return out.where(out != "")


def _header_key_series(series: pd.Series) -> pd.Series:
    """Each cell as a header key (lower-case, spaces/_/-/. as one space, ё as е), worked out once
    per distinct wording (a list repeats a few dozen of them)."""
    codes, uniques = pd.factorize(series)
    keys = pd.Series(uniques, dtype="string").str.lower().str.replace(r"[\s_\-.]+", " ", regex=True).str.strip() \
        .str.replace("ё", "е", regex=False).to_numpy(dtype=object)
    return pd.Series(np.where(codes >= 0, keys[np.maximum(codes, 0)] if len(keys) else None, None),
                     index=series.index, dtype="string")


def _event_words(mapping: dict[str, str]) -> frozenset[str]:
    """The stage-change wordings: the known ones, plus those the config names "stage", minus "other"."""
    norm = {re.sub(r"[\s_\-.]+", " ", str(k).lower()).strip().replace("ё", "е"): str(v).strip().lower()
            for k, v in mapping.items()}
    known = {w.replace("ё", "е") for w in STAGE_CHANGE}
    return frozenset((known | {k for k, v in norm.items() if v == "stage"}) - {k for k, v in norm.items() if v == "other"})


def _counted(counts: pd.Series, limit: int = 8) -> str:
    shown = ", ".join(f"{k!r} ({int(n):,})" for k, n in counts.head(limit).items())
    return (shown + (f" and {len(counts) - limit} more" if len(counts) > limit else "")) or "none"


def _set_aside(event: pd.Series, obj: pd.Series, mask: np.ndarray, note: str = "",
               noted: np.ndarray | None = None) -> tuple[int, pd.Series]:
    """(rows set aside, their count per event wording, with the object's kind when no deal's;
    `note` added to the label of the `noted` rows)."""
    event, obj = event[mask], obj[mask]
    kind = obj.str.extract(r"^\s*([^\s:#№/]+)", expand=False).str.capitalize()
    url = obj.str.extract(r"/(contacts|companies|customers|todo|tasks|catalogs)/", expand=False)
    kind = kind.where(url.isna(), url)
    label = event.fillna("(no event)")
    deal = obj.str.contains(_DEAL_OBJECT).fillna(False) | obj.str.contains("/leads/", regex=False).fillna(False) \
        | obj.isna()
    label = label.where(deal, label + " (" + kind.fillna("?") + ")")
    if noted is not None:
        label = label.where(~noted[mask], label + note)
    return int(mask.sum()), label.value_counts()


def _link(rows: pd.Index, text: dict[str, pd.Series], deals: pd.DataFrame, at: pd.Series
          ) -> tuple[pd.Series, np.ndarray]:
    """Each stage change's deal id (NA: not linked) and how: "id", "name", or why not:
    "shared" (namesakes), "nothing" (no deal of that id or name). `at`: the rows' times."""
    deal_ids = deals["deal_id"].astype("string")
    linked = pd.Series(pd.NA, index=rows, dtype="string")
    how = np.full(len(rows), "nothing", dtype=object)

    def take(candidates: pd.Series) -> None:
        todo = linked.isna().to_numpy()
        cand = candidates.astype("string").to_numpy()
        hit = todo & (positions(pd.Series(cand, dtype="string"), deal_ids) >= 0)
        linked.iloc[np.flatnonzero(hit)] = cand[hit]
        how[hit] = "id"

    if "id" in text:
        take(text["id"][rows].str.replace(r"\.0$", "", regex=True))
    obj = text["object"][rows]
    take(obj.str.extract(_DEAL_URL, expand=False))
    context = pd.DataFrame({"at": at.to_numpy()}, index=rows)
    # the object's text («Сделка #4512», «Сделка: Поставка»), then the entity's name
    names = text["name"][rows] if "name" in text else None
    id_keys = set(title_key(deal_ids))
    for source in (obj.where(~obj.str.match(_BARE_WORD).fillna(False)), names):
        todo = linked.isna().to_numpy()
        if source is None or not todo.any():
            continue
        given = source[todo]
        has = given.notna().to_numpy()
        if not has.any():
            continue
        idx = np.flatnonzero(todo)[has]
        found, shared, _ = link_titles(given[has], deals, context.iloc[idx], "at")
        hit = found.notna().to_numpy()
        linked.iloc[idx[hit]] = found[hit].to_numpy()
        ids_written = title_key(given[has][hit]).isin(id_keys).to_numpy()
        how[idx[hit]] = np.where(ids_written, "id", "name")
        how[idx[~hit & shared]] = "shared"
    return linked, how


def _unlinked_note(raw: RawTable, rows: pd.Index, text: dict[str, pd.Series], how: np.ndarray,
                   deals: pd.DataFrame, total: int) -> DataWarning:
    names = (text["name"] if "name" in text else text["object"])[rows]
    shared = how == "shared"
    parts = []
    if shared.any():
        parts.append(f"{int(shared.sum()):,}: " + shared_titles(names[shared].astype("string"), deals))
    if (~shared).any():
        titled = "title" in deals.columns and deals["title"].notna().any()
        parts.append(f"{int((~shared).sum()):,}: no deal in deals has that id or name (a deal deleted, renamed, "
                     "or outside the deals export)" + ("" if titled else "; deals has no names to link by: map the "
                     "deals' name column, [source.columns.deals] title = \"Название сделки\" (Kommo: \"Lead title\")"))
    return DataWarning(
        "events_unlinked", "stage_history", len(rows),
        f"{len(rows):,} of {total:,} stage changes in {raw.origin} are linked to no deal and not read: "
        + "; ".join(parts) + ". Export the deals and the events list for the same period and pipelines; where "
        "deals share a name, give them names of their own, or export the list with the deal's id",
        [str(v) for v in names.dropna().drop_duplicates().head(EXAMPLES)],
    )


def _known_stages(deals: pd.DataFrame, stages: list[str]) -> set[str]:
    names = set(lower_text(deals["stage"]).dropna()) if "stage" in deals.columns else set()
    return (names | {str(s).strip().lower() for s in stages}) - set(CLOSING)


def _stages(values: pd.Series, known: set[str], pipelines: set[str]) -> tuple[pd.Series, int, dict[str, int]]:
    """Each value as a stage: as written when it is a known stage (or has no separator), else the
    stage part of «Воронка: Этап» / «Этап (Воронка)» when one part is a known stage or the other
    a known pipeline. Returns (stages, values read without their pipeline, values that look
    like a pipeline and a stage but could not be told: value -> rows)."""
    counts = values.dropna().value_counts()
    resolved: dict[str, str] = {}
    odd: dict[str, int] = {}
    split = 0
    for value, n in counts.items():
        v = str(value)
        if v.lower() in known:
            continue
        stage = _split(v, known, pipelines)
        if stage is not None:
            resolved[v] = stage
            split += int(n)
        elif known and (any(s in v for s in _SEPARATORS) or _IN_BRACKETS.match(v)):
            odd[v] = int(n)
    out = values.map(lambda v: resolved.get(v, v) if isinstance(v, str) else v).astype("string")
    return out, split, odd


def _split(value: str, known: set[str], pipelines: set[str]) -> str | None:
    for sep in _SEPARATORS:
        start = value.find(sep)
        while start > 0:
            head, tail = value[:start].strip(), value[start + len(sep):].strip()
            if tail and (tail.lower() in known or (head.lower() in pipelines and tail)):
                return tail
            start = value.find(sep, start + 1)
    m = _IN_BRACKETS.match(value)
    if m and (m[1].strip().lower() in known or m[2].strip().lower() in pipelines):
        return m[1].strip()
    return None


def _closing_words(deal_values: dict[str, dict[str, str]]) -> dict[str, tuple[str, ...]]:
    """Closing stages: amoCRM's and Kommo's own, and those [source.values.deals.status] closes."""
    return closing_words(deal_values.get("status", {}) | deal_values.get("stage", {}))


def _closing(stages: pd.Series, words: dict[str, tuple[str, ...]]) -> pd.Series:
    """A move into a closing stage is the deal's status: its stage becomes won/lost (crm.stages
    then drops it, as the API path drops statuses 142/143)."""
    distinct = stages.dropna().unique()
    status = {v: st for v in distinct if (st := _closing_word(str(v), words))}
    return stages.map(lambda v: status.get(v, v) if isinstance(v, str) else v).astype("string") if status else stages


def _namesake_moves(rows: pd.Index, shared: np.ndarray, text: dict[str, pd.Series], after: pd.Series,
                   at: pd.Series) -> pd.DataFrame:
    """The stage changes not linked because several deals share the name: (name key, stage
    after, when), one row each."""
    names = text["name"] if "name" in text else text["object"]
    return pd.DataFrame({"key": title_key(names[rows[shared]].astype("string")).to_numpy(),
                         "stage": lower_text(after[rows[shared]]).to_numpy(),
                         "at": at.to_numpy()[shared]})


def _first_entries(history: pd.DataFrame, before: pd.Series, deals: pd.DataFrame, stages: list[str],
                   namesakes: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each deal's entry into its first stage at its creation, as the API path has it: the stage
    its first change left, or (no change in the list) its current stage; a closed deal without a
    change, the first of `stages` when known. Never after the deal's first change.

    A deal with no change linked whose name has changes that could not be told apart
    (`namesakes`: several deals share the name) into its current stage after its creation
    entered that stage at the latest of them, not at its creation: one of them is its own move,
    so counting its stay from its creation would call a deal moved yesterday idle for months
    (its stay may be understated instead: said in the unlinked warning)."""
    entered = utc_ns(history["entered_at"])
    first = history.iloc[entered.argsort(kind="stable")].drop_duplicates("deal_id")
    left = before.loc[first.index]
    left = left.where(~lower_text(left).isin(set(CLOSING) | INCOMING).fillna(False).to_numpy(dtype=bool))
    pos = positions(first["deal_id"].astype("string"), deals["deal_id"].astype("string"))
    created = utc_ns(deals["created_at"])[np.maximum(pos, 0)]
    at = np.minimum(created, utc_ns(first["entered_at"]))  # NaT (the smallest int64) never wins here: both are set
    with_change = pd.DataFrame({"deal_id": first["deal_id"].to_numpy(), "stage": left.to_numpy(),
                                "entered_at": pd.to_datetime(at, utc=True)})
    with_change = with_change[with_change["stage"].notna().to_numpy(dtype=bool)]
    moved = positions(deals["deal_id"].astype("string"), history["deal_id"].astype("string").drop_duplicates()
                      .reset_index(drop=True)) >= 0
    still = deals[~moved]
    # a deal waiting in «Неразобранное» is no deal yet (the API path leaves it out too)
    still = still[~lower_text(still["stage"]).isin(INCOMING).fillna(False).to_numpy(dtype=bool)]
    closing = lower_text(still["stage"]).isin(CLOSING).fillna(False).to_numpy(dtype=bool)
    stage = still["stage"].where(~closing, stages[0] if stages else None)
    entered = still["created_at"].reset_index(drop=True)
    late = 0
    if len(namesakes) and "title" in still.columns:
        keyed = pd.DataFrame({"n": np.arange(len(still)), "key": title_key(still["title"].astype("string")).to_numpy(),
                              "stage": lower_text(still["stage"]).to_numpy(), "created": entered.to_numpy()})
        pairs = keyed.merge(namesakes, on=["key", "stage"])
        pairs = pairs[(pairs["at"] >= pairs["created"]).to_numpy(dtype=bool)]
        if len(pairs):
            latest = pairs.groupby("n")["at"].max()
            entered.iloc[latest.index.to_numpy()] = latest.to_numpy()
            late = len(latest)
    without = pd.DataFrame({"deal_id": still["deal_id"].to_numpy(), "stage": stage.to_numpy(),
                            "entered_at": entered})
    unknown = int(without["stage"].isna().sum())
    without = without[without["stage"].notna().to_numpy(dtype=bool)]
    out = pd.concat([with_change, without], ignore_index=True)
    out = pd.DataFrame({c: out[c].astype(history[c].dtype) for c in ("deal_id", "stage", "entered_at")})
    for c in history.columns:  # crm.normalize's hidden columns: row 0, no file row behind them
        if c not in out.columns:
            out[c] = np.zeros(len(out), dtype=history[c].dtype) if c.startswith("__row") else False
    return out, {"without_change": len(still) - late, "closed_unknown": unknown, "namesakes": late}


def _summary(raw: RawTable, columns: dict[str, str], history: pd.DataFrame, counts: dict[str, int],
             how: np.ndarray, ok: np.ndarray, aside: tuple[int, pd.Series], deals: pd.DataFrame,
             first: pd.Timestamp) -> DataWarning:
    """`first`: the list's first stage change read (not the creation entries added to it)."""
    n_aside, by_event = aside
    by_id, by_name = int((how[ok] == "id").sum()), int((how[ok] == "name").sum())
    early = int((deals["created_at"] < first).sum()) if pd.notna(first) else 0
    text = (f"{raw.origin} is amoCRM's events list («{columns['event']}», «{columns['after']}»): "
            f"{by_id + by_name:,} stage changes of deals read as the stage history ({by_id:,} linked by the deal's id, "
            f"{by_name:,} by its name); {counts['without_change']:,} deal(s) have no change in it and are at their "
            "current stage since their creation"
            + (f" ({counts['closed_unknown']:,} closed ones have no stage: set [source] stages)" if counts["closed_unknown"] else "")
            + (f"; {counts['namesakes']:,} deal(s) sharing a name with others are at their current stage since the "
               "latest move of that name into it (which of them moved is not known: their idle time may be "
               "understated)" if counts["namesakes"] else "")
            + (f"; {early:,} deal(s) were created before its first change ({first:%Y-%m-%d}): any move they made "
               "before it is not in it (each entered the stage its first change in the list left, or its current "
               "one, at its creation); if the deals reach further back than the list, export the events list from "
               "the deals' first day" if early else "")
            + f". Set aside {n_aside:,} row(s) that are no deal's stage change: {_counted(by_event, 6)}")
    return DataWarning("events_list", "stage_history", by_id + by_name, text,
                       level="note" if not (early or counts["namesakes"] or counts["closed_unknown"]) else "warning")
