"""Turn a raw frame (the CRM's names and text) into a canonical one (crm.schema names/types).

Column mapping, value mapping, constant fills, then type coercion: ids to strings,
timestamps to tz-aware UTC, numbers to float. Everything is vectorised over whole columns:
a failing value is found by a mask afterwards and reported with its spreadsheet row.
"""
from __future__ import annotations

import re

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.errors import DataError, DataWarning
from crm.readers import RawTable
from crm.schema import TABLES, TYPE_WORDS, VALUE_SETS, Column, Table, yes_no_words
from crm.source_config import nearest

STR = pd.StringDtype(na_value=np.nan)  # pandas' default "str" dtype (Arrow-backed)
UTC_NS = "datetime64[ns, UTC]"
DATETIME_FORMATS = ("ISO8601", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y")
DATETIME_EXPECTED = (
    "a date/time such as 2026-10-01 14:30 (ISO, with or without offset), "
    "01.10.2026 14:30, 01.10.2026 or Unix seconds"
)
_HAS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"
_UNIX = r"^\d{9,13}(?:\.\d+)?$"
_MAX_ROWS_SHOWN = 5

# Columns whose date-only cells ("25.03.2026", no time) are marked for crm.validate.order_dates:
# a date-only close or stage entry is "some time that day", and midnight would put it before a
# creation time on the same day. The marks and the rows' numbers travel as hidden columns from
# here to crm.load.build, which drops them before the data leaves the loader.
DATE_ONLY_COLUMNS = {"deals": ("closed_at",), "stage_history": ("entered_at",)}
DATE_ONLY = "__date_only__"  # prefix of the hidden mark column: DATE_ONLY + "closed_at"
ROW = "__row__"  # hidden column: the row (or record) number in the file, for warnings
_TIME_OF_DAY = r"\d:\d"
_TIME_CODES = r"%[HIMSXTRcp]"


def normalize_table(
    table: str,
    raw: RawTable,
    *,
    columns: dict[str, str] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    fill: dict[str, object] | None = None,
    timezone: str = "UTC",
    date_formats: dict[str, str] | None = None,
    unread: list[str] | None = None,
    read: dict[str, str] | None = None,
    unused: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, list[DataWarning]]:
    """Canonical frame for `table` from `raw`, plus warnings about filled cells.

    `date_formats`: canonical date column -> the strptime format its cells are written in
    ([source.date_formats]), tried before the usual formats. `unread`, when given, receives the
    file's columns read into no canonical column (CrmData.unread_columns), `read` canonical ->
    the file's column read into it (CrmData.read_columns). `unused`: canonical columns this
    source has no use for (deals.stage_changed_at beside a real stage history), never suggested."""
    spec = TABLES[table]
    columns, values, fill, date_formats = columns or {}, values or {}, fill or {}, date_formats or {}
    tz = ZoneInfo(timezone)
    frame = raw.frame
    warnings: list[DataWarning] = []
    if _stage_is_status(table, columns, values) and columns["stage"] in frame.columns:
        stages = _clean_text(frame[columns["stage"]]) if raw.text else frame[columns["stage"]]
        _closing_typos(values["status"], stages, raw, columns["stage"])  # a typo is no kin
        values = _closing_kin(values, stages, warnings)
    values = _closing_stages(table, columns, values)
    rest_open = _stage_is_status(table, columns, values)
    found = list(frame.columns)
    lowered = {str(c).lower(): c for c in found}
    out: dict[str, pd.Series] = {}
    signs: pd.Series | None = None  # currency per deal, from signs in the amount cells
    cut_rows = pd.Series(False, index=frame.index)  # rows with a text cell cut to MAX_TEXT
    cut_columns: list[str] = []
    given: set[str] = set()  # canonical columns the file or config provided
    used: set[object] = set(columns.values())  # their columns read into a canonical one
    bad_text_rows = pd.Series(False, index=frame.index)  # rows with a cell that is not valid Unicode
    bad_text_columns: list[str] = []
    error_rows = pd.Series(False, index=frame.index)  # rows with an Excel error value (#N/A)
    error_columns: list[str] = []
    _absent_mapped(table, spec, columns, raw, found)
    for col in spec.columns:
        their = columns.get(col.name)
        if their is not None:
            source_name = their
        else:
            source_name = None if raw.mapped_only else col.name if col.name in frame.columns else lowered.get(col.name)
        if source_name is not None:
            given.add(col.name)
            used.add(source_name)
            if read is not None:
                read[col.name] = str(source_name)
        if source_name is None:
            if col.name in fill:
                out[col.name] = _constant(table, col, fill[col.name], frame.index, tz)
                warnings.append(DataWarning(
                    "filled", table, len(frame),
                    f"column {col.name} is absent: every row set to {fill[col.name]!r} "
                    f"from [source.fill.{table}]",
                ))
                continue
            if col.required:
                raise DataError(
                    f"required column {col.name!r} is missing", file=raw.origin,
                    more="Columns found: " + (_listed(found) or "none") + ".",
                    fix=_header_hint(raw) or _status_in_stage_hint(table, col.name, columns, frame)
                    or _id_hint(table, col.name, found)
                    or f"rename the column in the file, or map it in config: "
                    f"[source.columns.{table}] {col.name} = \"<your column name>\"",
                )
            out[col.name] = _default(col, frame.index)
            continue
        series = frame[source_name]
        as_written = None
        if series.dtype == object:
            series, unencodable = _replace_unencodable(series)
            if unencodable is not None:
                bad_text_rows |= unencodable
                bad_text_columns.append(str(source_name))
        if raw.text and (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
            series = _clean_text(series)
            as_written = series
            series, failed = _placeholders(series, keep=values.get(col.name) or {})
            if failed is not None:
                error_rows |= failed
                error_columns.append(str(source_name))
            series = _hyperlinks(series)
            if col.name.endswith("_id"):
                series = _float_ids(series)
        mapping = values.get(col.name)
        if mapping:
            series = _map_values(series, mapping)
        if rest_open and col.name == "status":  # its typos were checked above, with the kin
            series = _rest_open(series)
        if table == "deals" and col.name == "amount":
            series, signs = _amounts(series, col, raw, tz, source_name)
        else:
            if col.name in DATE_ONLY_COLUMNS.get(table, ()):
                dated = date_only_cells(series, date_formats.get(col.name))
                if dated is not None and dated.any():
                    out[DATE_ONLY + col.name] = pd.Series(dated, index=frame.index)
            series = coerce(series, col, raw, tz, source_name=source_name,
                            date_format=date_formats.get(col.name), date_key=f"{table}.{col.name}")
        if col.name in fill and series.isna().any():
            missing = series.isna()
            value = _constant(table, col, fill[col.name], pd.RangeIndex(1), tz).iloc[0]
            series = series.mask(missing, value)
            warnings.append(DataWarning(
                "filled", table, int(missing.sum()),
                f"{int(missing.sum())} empty {col.name} cells set to {fill[col.name]!r} "
                f"from [source.fill.{table}]",
                _rows(raw, missing),
            ))
        if col.kind == "str":
            series, long = _cut_long_text(series)
            if long is not None:
                cut_rows |= long
                cut_columns.append(source_name)
        if col.required:
            _require_values(table, col, series, raw, source_name, as_written)
        allowed = VALUE_SETS.get((table, col.name))
        if table == "activities" and col.name == "type":
            series = _type_words(series)
        if allowed:
            series = _check_enum(table, col.name, series, allowed, raw, source_name)
        if col.name == "currency":
            series, odd = _currency_codes(series, raw, table, source_name)
            warnings += odd
        out[col.name] = series
    if cut_columns:
        warnings.append(DataWarning(
            "long_text", table, int(cut_rows.sum()),
            f"{int(cut_rows.sum())} row(s) have text longer than {MAX_TEXT:,} characters in "
            f"{', '.join(repr(c) for c in cut_columns)}; cut to {MAX_TEXT:,} (a name or stage "
            "that long is an export error: check those cells)",
            _rows(raw, cut_rows),
        ))
    if bad_text_columns:
        warnings.append(DataWarning(
            "unencodable_text", table, int(bad_text_rows.sum()),
            f"{int(bad_text_rows.sum())} row(s) have characters that are not valid Unicode (lone "
            f"surrogates, as a broken API or decoder leaves them) in "
            f"{', '.join(repr(c) for c in bad_text_columns)}; each was replaced by \ufffd (a split pair joined) "
            "(fix those cells in the CRM)",
            _rows(raw, bad_text_rows),
        ))
    if error_columns:
        warnings.append(DataWarning(
            "excel_errors", table, int(error_rows.sum()),
            f"{int(error_rows.sum())} row(s) hold Excel error values (#N/A, #REF!, #ЗНАЧ! ...) in "
            f"{', '.join(repr(c) for c in error_columns)}: formulas that failed in the spreadsheet; "
            "read as empty cells (fix the formulas, or paste the values, and export again)",
            _rows(raw, error_rows),
        ))
    if signs is not None:
        warnings += _currency_from_signs(table, out, signs, raw, columns.get("amount") or "amount")
    if unread is not None:
        unread.extend(str(c) for c in found if c not in used)
    unmapped = None if raw.mapped_only else _unmapped_useful(table, found, used, given | set(fill) | unused)
    if unmapped:
        warnings.append(unmapped)
    touch = _touch_as_answer(table, columns)
    if touch:
        warnings.append(touch)
    if table in DATE_ONLY_COLUMNS:
        out[ROW] = pd.Series((frame.index.to_numpy() + raw.row_offset).astype(np.int32), index=frame.index)
    return pd.DataFrame(out, index=frame.index), warnings


def date_only_cells(series: pd.Series, date_format: str | None = None) -> np.ndarray | None:
    """Cells that hold a date and no time of day: text without "h:m" (not Unix seconds), a
    Python date (not datetime), or a spreadsheet's date column (every value at midnight: Excel
    writes a date cell as a datetime at 00:00). None when the column cannot say (aware
    timestamps, numbers, a configured format with time codes): those are read as timed."""
    if date_format and re.search(_TIME_CODES, date_format):
        forms = _with_date_part(date_format)
        if len(forms) == 1 or not (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
            return None
        # one format for the whole file: the cells only its date part reads hold no time
        text = series.astype(STR).str.strip()
        timed = pd.to_datetime(text, format=forms[0], errors="coerce").notna()
        dated = pd.to_datetime(text, format=forms[1], errors="coerce").notna()
        return (dated & ~timed).to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_dtype(series.dtype) and not isinstance(series.dtype, pd.DatetimeTZDtype):
        present = series.notna().to_numpy()
        return present if present.any() and _all_midnight(series[present]) else None
    if series.dtype == object:
        from datetime import date, datetime

        stamps = series.map(lambda v: isinstance(v, datetime))
        dated = series.map(lambda v: isinstance(v, date) and not isinstance(v, datetime))
        texts = series.map(lambda v: isinstance(v, str) and _text_date_only(v))
        if stamps.any() and _all_midnight(pd.to_datetime(series[stamps], utc=True, errors="coerce")):
            dated |= stamps
        return (dated | texts).to_numpy(dtype=bool)
    if isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
        timed = text.str.contains(_TIME_OF_DAY, regex=True) | text.str.fullmatch(_UNIX)
        return (text.notna() & (text != "") & ~timed.fillna(True).astype(bool)).to_numpy(dtype=bool, na_value=False)
    return None


def _all_midnight(stamps: pd.Series) -> bool:
    stamps = stamps.dropna()
    return bool(len(stamps)) and bool((stamps == stamps.dt.normalize()).all())


def _text_date_only(text: str) -> bool:
    text = text.strip()
    return bool(text) and not re.search(_TIME_OF_DAY, text) and not re.fullmatch(_UNIX, text)


# Column names exports use for an optional canonical column (lower-case, spaces/_/- as one
# space). A file column that matches one, while that canonical column is not given, is named
# in a warning: it is probably data a detector could use, silently dropped.
LOOKS_LIKE: dict[str, dict[str, tuple[str, ...]]] = {
    "managers": {
        "active": ("активен", "активный", "активна", "is active", "enabled", "работает"),
        "team": ("отдел", "команда", "группа", "подразделение", "department", "dept", "group", "division"),
        "capacity": ("ставка", "доля ставки", "загрузка", "fte", "rate", "workload"),
        "region": ("регион", "город", "филиал", "office", "city", "branch"),
        "email": ("почта", "e mail", "эл почта", "электронная почта", "mail"),
    },
    "clients": {
        "manager_id": ("ответственный", "менеджер", "owner", "responsible", "account owner"),
        "segment": ("сегмент", "отрасль", "тип клиента", "industry", "sector"),
        "region": ("регион", "город", "city"),
    },
    "deals": {
        "client_id": ("клиент", "компания", "контрагент", "компания контакта", "client", "company", "account",
                      "account name"),
        "title": ("название", "название сделки", "deal name", "lead title", "name"),
        "amount": ("сумма", "бюджет", "стоимость", "amount", "budget", "value", "deal value", "price"),
        "currency": ("валюта", "currency"),
        "closed_at": ("дата закрытия", "закрыта", "close date", "closed at", "closing date", "closed", "closed on"),
        "loss_reason": ("причина отказа", "причина проигрыша", "причина", "lost reason", "loss reason",
                        "reason for loss", "reason"),
        "source": ("источник", "канал", "lead source", "source", "utm source", "channel"),
        "region": ("регион", "город", "city"),
        "pipeline": ("pipeline", "воронка", "направление", "deal pipeline", "deal pipeline name", "deal pipeline id",
                     "категория", "category"),
        "stage_changed_at": ("last stage change date", "date entered current stage", "дата изменения стадии",
                             "дата смены этапа", "stage changed", "stage change date", "last stage update",
                             "последнее обновление этапа", "date last stage update"),
        "active": ("active", "активно", "активна", "активен", "is active"),
    },
    "leads": {
        "source": ("источник", "канал", "utm source", "lead source", "channel"),
        "manager_id": ("ответственный", "менеджер", "owner", "responsible"),
        "region": ("регион", "город", "city"),
        "assigned_at": ("дата назначения", "назначен", "assigned", "assigned on"),
        "first_response_at": ("первый ответ", "дата первого ответа", "first response", "responded at"),
        "status": ("статус",),
    },
    "activities": {
        "due_at": ("срок", "крайний срок", "deadline", "due", "due date"),
        "done_at": ("дата выполнения", "completed at", "marked as done time", "completion date", "done time",
                    "дата завершения"),
        "done": ("выполнено", "выполнена", "done", "completed", "task status", "статус", "status", "состояние"),
        "deal_id": ("сделка", "deal"),
        "client_id": ("клиент", "компания", "client", "company"),
        "manager_id": ("ответственный", "менеджер", "owner", "responsible"),
    },
}


# A deals column that says when each deal was last touched or changed: with no stage history,
# activities or emails, it can be read again as activities (README, web-UI exports), the one way
# a web-UI export tells stalled_deal when a deal was last touched. Best name first.
LAST_TOUCH_NAMES: tuple[str, ...] = (
    "last activity date", "last activity", "last activity time", "последняя активность", "дата последней активности",
    "дата изменения", "дата последнего изменения", "изменено", "дата обновления", "обновлено",
    "last modified date", "last modified", "modified time", "last modified time", "modified", "date modified", "modified at", "modified on",
    "updated", "updated at", "updated on", "update time", "last updated", "last updated on", "последнее обновление",
)


def last_touch_column(columns: list[str] | tuple[str, ...]) -> str | None:
    """The column among `columns` (a deals file's unread ones) whose header looks like a
    last-activity or last-modified date, the best-named first; None when none does."""
    ranked = [(LAST_TOUCH_NAMES.index(k), pos, c) for pos, c in enumerate(columns)
              if (k := _header_key(c)) in LAST_TOUCH_NAMES]
    return min(ranked)[2] if ranked else None


def _touch_as_answer(table: str, columns: dict[str, str]) -> DataWarning | None:
    """A leads column that changes on any edit («Дата изменения», "Last Activity Date") mapped as
    the assignment or the first answer: a lead nobody answered but a robot or a colleague touched
    then looks answered (Bitrix24: every lead, at creation), and lead_sla stays silent about it.
    Said once, with what to map instead."""
    if table != "leads":
        return None
    what = {"first_response_at": "the first answer to the client", "assigned_at": "a manager was assigned"}
    misread = [(canon, their) for canon in what if (their := columns.get(canon)) is not None
               and _header_key(their) in LAST_TOUCH_NAMES]
    if not misread:
        return None
    return DataWarning("touch_as_answer", table, len(misread), "; ".join(
        f"{their!r} is read as leads.{canon}, but it is when the lead was last changed or touched (any edit, a "
        f"robot, a comment), not when {what[canon]}: a lead nobody answered looks answered and lead_sla says "
        f"nothing about it; map a column the CRM fills at that moment, or leave {canon} unmapped (the check is then "
        "skipped and says which column would enable it)" for canon, their in misread))


def _header_key(name: object) -> str:
    return re.sub(r"[\s_\-.]+", " ", str(name).strip().lower()).strip()


def _unmapped_useful(table: str, found: list, used: set[object], given: set[str]) -> DataWarning | None:
    """One warning naming the file's unread columns that look like an optional canonical one.

    Per canonical column the best-named match is suggested, not the first in the file: amoCRM
    puts `utm_source` (empty for calls and referrals) before the `Источник` field."""
    best: dict[str, tuple[int, int, object]] = {}  # canonical -> (rank of the name, file position, column)
    for pos, their in enumerate(found):
        if their in used:
            continue
        key = _header_key(their)
        for canonical, names in LOOKS_LIKE.get(table, {}).items():
            if canonical not in given and key in names:
                best[canonical] = min(best.get(canonical, (len(names), pos, their)), (names.index(key), pos, their),
                                      key=lambda x: x[:2])
                break
    hints = [f"{str(their)!r} could fill {table}.{canonical} ([source.columns.{table}] {canonical} = \"{their}\")"
             for canonical, (_, _, their) in sorted(best.items(), key=lambda kv: kv[1][1])]
    if not hints:
        return None
    return DataWarning("unmapped_columns", table, len(hints),
                       "columns not read that look useful: " + "; ".join(hints)
                       + "; map them in config if they hold that (or ignore this)")


def _listed(names: list, limit: int = 40) -> str:
    """Column names for a message: each cut to 60 characters, at most `limit` of them."""
    shown = [n if len(n := str(c)) <= 60 else n[:59] + "…" for c in names[:limit]]
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _absent_mapped(table: str, spec: Table, columns: dict[str, str], raw: RawTable, found: list) -> None:
    """One error naming every column the config maps that the file lacks (not one per run), and
    for each the nearest of the file's columns no other key reads: a closing date is never told
    to read the creation date column the config already maps."""
    missing = [(col.name, columns[col.name]) for col in spec.columns
               if columns.get(col.name) is not None and columns[col.name] not in raw.frame.columns]
    if not missing:
        return
    free = [c for c in found if c not in set(columns.values())]
    fixes = [f"[source.columns.{table}] {name} = \"...\""
             + (f" (did you mean {close!r}?)" if (close := nearest(their, free)) else "")
             for name, their in missing]
    what = ", ".join(f"{their!r} (mapped to {table}.{name} in config)" for name, their in missing)
    verb = "is" if len(missing) == 1 else "are"
    raise DataError(
        f"column{'s' if len(missing) > 1 else ''} {what} {verb} not in the file", file=raw.origin,
        more="Columns found: " + _listed(found) + ".",
        fix=_header_hint(raw) or "correct " + "; ".join(fixes)
        + (", or remove the line" if len(missing) == 1 else ", or remove each line") + " whose column the export does not have (what needs it is then skipped and said)",
    )


def _header_hint(raw: RawTable) -> str | None:
    """For a table whose first row is a title: where its header seems to be."""
    if raw.header_guess is None:
        return None
    return (f"the header seems to be on row {raw.header_guess}; delete the rows above it "
            "(or map the column names found there in config)")


# --- values ------------------------------------------------------------------------------

# A currency sign or code before or after an amount, as hand-made exports write it:
# "1 234 567,00 ₸", "₸ 1 234 567", "1 234 567 тг", "1,234,567.00 KZT", "150 000 руб.", "$1,200".
_CURRENCY_SIGN = r"₸|₽|\$|€|тенге|тг\.?|руб\.?|kzt|rub|usd|eur"
# and a word for thousands or millions, as a sheet kept by hand has it: "1.2 млн", "850 тыс", "500к"
_MULTIPLIER = r"тыс\.?|млн\.?|млрд\.?|mln|mio|bn|k|m|к"
MULTIPLIER_OF = {"тыс": 1e3, "млн": 1e6, "млрд": 1e9, "k": 1e3, "к": 1e3, "m": 1e6, "mln": 1e6, "mio": 1e6,
                 "bn": 1e9}
_AMOUNT_WITH_SIGN = rf"(?i)^({_CURRENCY_SIGN})?(.*?\d)({_MULTIPLIER})?({_CURRENCY_SIGN})?$"
_SPACES = r"[\s\u00a0\u2007\u2009\u202f]"  # Arrow's regex \s is ASCII-only
CURRENCY_OF_SIGN = {
    "₸": "KZT", "тг": "KZT", "тенге": "KZT", "kzt": "KZT", "₽": "RUB", "руб": "RUB", "rub": "RUB",
    "$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR",
}


def _amounts(series: pd.Series, col: Column, raw: RawTable, tz: ZoneInfo,
             source_name: str) -> tuple[pd.Series, pd.Series | None]:
    """Deal amounts, plus the currency per row when the cells carry a sign ("150 000 руб.").
    A word for thousands or millions after the number ("1.2 млн", "850 тыс") multiplies it:
    read as a bare number, "1.2 млн" was an error, and dropping the word would make it 1.2.

    Plain numbers take the fast path; the signs and words are looked for only when that fails.
    """
    try:
        return coerce(series, col, raw, tz, source_name=source_name), None
    except DataError as first_error:
        if pd.api.types.is_numeric_dtype(series.dtype):
            raise
        text = _to_str(series)
        parts = text.str.replace(_SPACES, "", regex=True).str.extract(_AMOUNT_WITH_SIGN)
        sign = parts[0].combine_first(parts[3])
        scale = parts[2].str.lower().str.rstrip(".").map(MULTIPLIER_OF)
        if sign.isna().all() and scale.isna().all():
            raise first_error from None
        number = parts[1].where(parts[1].notna(), text).where(text.notna()).astype(STR)
        # "$1,200" is twelve hundred: after a dollar sign a lone comma groups thousands
        dollar_grouped = (sign == "$") & number.str.fullmatch(r"-?\d{1,3}(?:,\d{3})+").fillna(False)
        number = number.where(~dollar_grouped, number.str.replace(",", "", regex=False))
        try:
            numbers = coerce(number, col, raw, tz, source_name=source_name)
        except DataError as err:  # show the cell as the file has it, not the stripped number
            if err.row is not None:
                err.value = text.loc[err.row - raw.row_offset]
            raise err from None
        if scale.notna().any():
            numbers = numbers * scale.fillna(1.0).astype("float64")
            _check_magnitude(numbers, text, col, raw, source_name)
        if sign.isna().all():
            return numbers, None
        signs = sign.str.lower().str.rstrip(".").map(CURRENCY_OF_SIGN)
        return numbers, signs.astype(STR)


# A currency column written as the CRM shows it (Bitrix24's list: "Тенге", "Российский рубль")
# or as a sign: the ISO code it means. Lower case, without a trailing dot.
CURRENCY_OF_NAME = {
    **CURRENCY_OF_SIGN, "казахстанский тенге": "KZT", "рубль": "RUB", "российский рубль": "RUB", "rur": "RUB",
    "доллар": "USD", "доллар сша": "USD", "американский доллар": "USD", "us dollar": "USD",
    "евро": "EUR", "euro": "EUR", "белорусский рубль": "BYN", "гривна": "UAH", "узбекский сум": "UZS",
    "киргизский сом": "KGS",
}


def _currency_codes(series: pd.Series, raw: RawTable, table: str, source_name: str) -> tuple[pd.Series, list[DataWarning]]:
    """Currency names and signs as ISO codes ("Тенге" -> KZT, "usd" -> USD): a name was printed
    in every message as "247 738 РОССИЙСКИЙ РУБЛЬ". Anything else that is not three letters is
    kept, with one warning saying how to map it."""
    distinct = [v for v in series.dropna().unique() if not re.fullmatch(r"[A-Z]{3}", str(v))]
    if not distinct:  # the usual export: ISO codes already (decided on the distinct values only)
        return series, []
    code = {}
    for v in distinct:
        key = str(v).strip().lower().rstrip(".")
        code[v] = CURRENCY_OF_NAME.get(key) or (key.upper() if re.fullmatch(r"[a-z]{3}", key) else v)
    out = series.map(code).fillna(series).astype(STR)
    odd = series.isin([v for v, c in code.items() if not re.fullmatch(r"[A-Z]{3}", str(c))]).fillna(False).astype(bool)
    if not odd.any():
        return out, []
    counts = series[odd].value_counts()
    listed = ", ".join(f"{v!r} ({n})" for v, n in counts.head(5).items())
    return out, [DataWarning(
        "currency_not_iso", table, int(odd.sum()),
        f"{raw.origin} column {source_name!r}: {int(odd.sum())} currency value(s) are not ISO codes ({listed}); "
        f"amounts are shown with them as written; map each in config: [source.values.{table}.currency] "
        f"\"{counts.index[0]}\" = \"<ISO code, e.g. KZT>\"",
        _rows(raw, odd),
    )]


def _currency_from_signs(table: str, out: dict[str, pd.Series], signs: pd.Series, raw: RawTable,
                         source_name: str) -> list[DataWarning]:
    """Fill an absent or empty currency column from the amount signs: each amount's own
    ("USD 12,500.00" beside "EUR 9,100.00" in Salesforce's formatted export, which has no
    currency column). Left empty, every amount took the config's currency: €8,528 was "$8,528".
    Amounts without a sign take the sign of the others when all agree; when they differ, those
    are left empty with one warning."""
    if out["currency"].notna().any():
        return []
    counts = signs.value_counts()
    if len(counts) == 1:
        out["currency"] = pd.Series(counts.index[0], index=signs.index, dtype=STR)
        return []
    out["currency"] = signs.astype(STR)
    unsigned = (signs.isna() & out["amount"].notna()).to_numpy(dtype=bool)
    if not unsigned.any():
        return []
    listed = ", ".join(f"{c} ({n})" for c, n in counts.items())
    return [DataWarning(
        "mixed_currencies", table, int(unsigned.sum()),
        f"{raw.origin} column {source_name!r}: amounts carry different currencies ({listed}) and "
        f"{int(unsigned.sum())} amount(s) carry none, with no currency column to say theirs: their "
        "currency is left empty; add a currency column to the export",
        _rows(raw, pd.Series(unsigned, index=signs.index)),
    )]

# Longest text cell kept. Names, stages, reasons are short; a 50 MB cell would be copied into
# every insight's facts, JSON and message. Cut once here, so no later layer has to care.
MAX_TEXT = 1000


def _cut_long_text(series: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    """(the column with cells cut to MAX_TEXT, mask of the cut rows or None when none were).

    The byte lengths come from Arrow's offsets for free: most columns stop there.
    """
    try:
        longest = pc.max(pc.binary_length(pa.array(series, from_pandas=True))).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        longest = MAX_TEXT + 1  # not Arrow text: measure below
    if longest is None or longest <= MAX_TEXT:  # characters <= bytes
        return series, None
    long = (series.str.len() > MAX_TEXT).fillna(False).astype(bool)
    if not long.any():
        return series, None
    cut = series.where(~long, series.str.slice(0, MAX_TEXT - 1) + "…")
    return cut.astype(series.dtype), long


def _replace_unencodable(series: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    """(the column with every code point UTF-8 cannot encode replaced by U+FFFD, mask of the
    changed rows or None when none were).

    Python strings may hold lone surrogates ("\\ud800" from a JSON API, surrogateescape'd bytes):
    they pass through pandas and then make every encoder down the line raise (Arrow, JSON, the
    chat APIs, the terminal), so one cell would stop every digest. Split surrogate pairs are
    joined into the character they mean; lone ones become U+FFFD.
    """
    try:  # fast path: Arrow accepts the whole column, so every string in it is valid UTF-8
        pa.array(series, from_pandas=True, type=pa.string())
        return series, None
    except UnicodeEncodeError:
        pass
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # mixed types: look at the strings only
        if not any(isinstance(v, str) and not _encodable(v) for v in series.to_numpy()):
            return series, None
    bad = series.map(lambda v: isinstance(v, str) and not _encodable(v)).astype(bool)
    fixed = series.where(~bad, series[bad].map(
        lambda v: v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")))
    return fixed, bad


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text(series: pd.Series) -> pd.Series:
    """Strip spaces (and non-breaking spaces) around text cells; empty cells become missing."""
    if series.dtype == object:
        is_text = series.map(lambda v: isinstance(v, str))
        if not is_text.any():
            return series
        stripped = series.where(~is_text, series[is_text].str.strip(" \t\u00a0"))
        return stripped.where(~(is_text & (stripped == "")), None)
    stripped = series.str.strip(" \t\u00a0")
    return stripped.where(stripped != "")


# Cells that say "nothing here": a dash typed for "none", and the error values of a formula that
# failed (English and Russian Excel). Read as text they were a client "—" shared by many deals,
# a loss reason "-", a manager "#N/A"; in a number or date column they stopped the load.
DASHES = frozenset({"-", "—", "–", "−", "--", "---", "N/A", "n/a"})
EXCEL_ERRORS = frozenset({
    "#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#SPILL!", "#CALC!",
    "#GETTING_DATA", "#Н/Д", "#ССЫЛКА!", "#ЗНАЧ!", "#ДЕЛ/0!", "#ИМЯ?", "#ПУСТО!", "#ЧИСЛО!",
    "#ПЕРЕНОС!", "#ВЫЧИСЛ!"})
_PLACEHOLDERS = list(DASHES | EXCEL_ERRORS)


def _placeholders(series: pd.Series, keep=frozenset()) -> tuple[pd.Series, pd.Series | None]:
    """Dashes and Excel error values read as empty cells; the mask of the error cells (None:
    none), which the caller reports: a failed formula is worth fixing, a dash is not. `keep`: the
    values [source.values] maps for this column ("-" = "Новый"): the admin said what they mean."""
    hit = series.isin([v for v in _PLACEHOLDERS if v not in keep])
    if not hit.any():
        return series, None
    errors = hit & series.isin(list(EXCEL_ERRORS))
    blank = series.where(~hit, None) if series.dtype == object else series.where(~hit)
    return blank, (errors if errors.any() else None)


_HYPERLINK = re.compile(r'=\s*(?:HYPERLINK|ГИПЕРССЫЛКА)\(\s*"([^"]*)"\s*(?:[,;]\s*"([^"]*)"\s*)?\)',
                        re.IGNORECASE)


def _hyperlinks(series: pd.Series) -> pd.Series:
    """A cell holding Excel's =HYPERLINK("url", "text") formula (a CRM's report with links to
    each deal, saved as CSV) is read as the text Excel shows: the deal's id or name, not the
    formula (an id never matched its stage history)."""
    if not isinstance(series.dtype, pd.StringDtype) and series.dtype != object:
        return series
    maybe = (series.str.startswith("=").fillna(False).astype(bool) if series.dtype != object else
             series.map(lambda v: isinstance(v, str) and v.startswith("=")).astype(bool))
    if not maybe.any():
        return series
    shown = series[maybe].map(lambda v: (m[2] if m[2] is not None else m[1])
                              if isinstance(v, str) and (m := _HYPERLINK.fullmatch(v.strip())) else v)
    return series.where(~maybe, shown)


def _float_ids(series: pd.Series) -> pd.Series:
    """Ids Excel turned into floats ("123.0" for 123) read as the whole numbers they are, when
    every id in the column is written so: beside a file that says "123", not one id matched."""
    if not isinstance(series.dtype, pd.StringDtype) and series.dtype != object:
        return series
    sample = series.dropna()
    if not len(sample) or not sample.iloc[:50].astype(str).str.endswith(".0").all():
        return series  # the usual column is ruled out on its first ids
    text = sample.astype(str)
    if not text.str.fullmatch(r"\d+\.0").all():
        return series
    return series.where(series.isna(), series.astype(str).str.slice(stop=-2))


def _closing_stages(table: str, columns: dict[str, str], values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """When one of their columns is both the stage and the status (HubSpot's "Deal Stage" with
    "Closed Won", Maven's `deal_stage`), a value the status mapping calls won or lost is a
    closing stage, not a pipeline stage: read it as won/lost in the stage too (crm.stages then
    keeps it out of the pipeline), unless the admin mapped that stage value themselves."""
    their = columns.get("stage")
    if table != "deals" or their is None or their != columns.get("status"):
        return values
    closing = {k: v for k, v in values.get("status", {}).items() if str(v).lower() in ("won", "lost")}
    if not closing:
        return values
    return {**values, "stage": {**closing, **values.get("stage", {})}}


# Closing stages as web-UI exports write them in the stage column (amoCRM / Kommo, Bitrix24,
# HubSpot, Pipedrive wording), lower-case: a deals file without a status column whose stage
# column holds these has the status there.
_CLOSING_WORDS = {
    "won": ("успешно реализовано", "сделка успешна", "closed won", "closed - won", "won"),
    "lost": ("закрыто и не реализовано", "сделка провалена", "closed lost", "closed - lost", "lost"),
}


# Word stems a deal list kept by hand closes deals with, in free words («оплатили», «оплачено»,
# «отказались», «слился»): a stage whose first word begins with one is named like a closing stage.
_CLOSING_STEMS = {"won": ("оплатил", "оплачен"), "lost": ("отказ", "слил", "проигра")}


def closing_words(mapping: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Per status ("won", "lost"): the values a `[source.values.*]` mapping closes with it (lower
    case), then the default stems of _CLOSING_WORDS; the one list every reader matches against."""
    return {st: tuple(dict.fromkeys([k.strip().lower() for k, v in mapping.items() if str(v).lower() == st]
                                    + list(_CLOSING_WORDS[st])))
            for st in ("won", "lost")}


def _closing_word(value: str, words: dict[str, tuple[str, ...]]) -> str | None:
    """The status (won/lost) of a stage named like a closing one: equal to one of `words`, or
    beginning with one of several words followed by a space or punctuation ("Closed Lost to
    Competition" after "Closed Lost"; a single word is matched whole: "Lost contact, call
    back" is no kin of "Lost"), or a first word with a closing stem («отказались»; not «ожидаем
    оплату», whose first word is no closing one)."""
    low = value.strip().lower()
    for status, names in words.items():
        for w in names:
            if low == w or (" " in w and low.startswith(w) and re.match(r"[\s\-–—(/:,.]", low[len(w):])):
                return status
    first = re.split(r"[\s\-–—(/:,.!]", low, maxsplit=1)[0]
    for status, stems in _CLOSING_STEMS.items():
        if first.startswith(stems):
            return status
    return None


def _closing_kin(values: dict[str, dict[str, str]], text: pd.Series,
                 warnings: list[DataWarning]) -> dict[str, dict[str, str]]:
    """Stages the status mapping does not name are read as open; a second closing stage named
    like a mapped one (Zoho's "Closed Lost to Competition" beside "Closed Lost", Kommo's
    "Closed - lost ...") would silently be an open stage, last in the pipeline, its deals open
    for ever. Such a stage is read as its kin's status, with one warning saying how to confirm
    or overrule it."""
    mapping = values.get("status", {})
    words = closing_words(mapping)
    counts = text.dropna().astype(str).str.strip().value_counts()
    mapped = {k.strip() for k in mapping} | {k.strip() for k in values.get("stage", {})}
    kin = {v: st for v in counts.index[:10_000] if v not in mapped and (st := _closing_word(v, words))}
    if not kin:
        return values
    listed = "; ".join(f'"{v}" = "{st}"' for v, st in kin.items())
    warnings.append(DataWarning(
        "closing_stage_unmapped", "deals", int(sum(counts[v] for v in kin)),
        f"stage(s) named like a closing stage but not in [source.values.deals.status]: "
        f"{', '.join(f'{v!r} ({counts[v]} deals) read as {st}' for v, st in kin.items())}, "
        f"not as an open stage; to confirm, add [source.values.deals.status] {listed} "
        f"(map one to \"open\" if its deals are still open)",
    ))
    return {**values, "status": {**mapping, **kin}}


# Column names a sheet kept by hand numbers its rows with («№», "#"), or a board's id column.
_ID_NAMES = ("№", "#", "no", "no.", "n", "номер", "id", "item id", "record id", "ид")


def _id_hint(table: str, name: str, found: list) -> str | None:
    """The fix for a table without its id column: a numbering column the file has, or, for a
    list kept by hand that has none, what to add (an id is what ties a deal to its history and
    to what was already sent about it, so a row's position, which moves, cannot be one)."""
    key = TABLES[table].key
    if name != key:
        return None
    have = [c for c in found if str(c).strip().lower() in _ID_NAMES]
    if have:
        return f"map the id column in config: [source.columns.{table}] {key} = \"{have[0]}\""
    return (f"map the id column in config: [source.columns.{table}] {key} = \"<your column name>\"; a list kept "
            "by hand without one: add a column numbering the rows (1, 2, 3, ...) and keep each number with its "
            "row when the sheet is sorted or rows are inserted")


def _status_in_stage_hint(table: str, name: str, columns: dict[str, str], frame: pd.DataFrame) -> str | None:
    """The fix for a missing deals.status when the stage column holds the closing stages (an
    amoCRM export's «Этап сделки»): map that column as the status too, with its closing values."""
    stage = columns.get("stage") or ("stage" if "stage" in frame.columns else None)
    if table != "deals" or name != "status" or stage is None or stage not in frame.columns:
        return None
    values = frame[stage].dropna().astype(str).str.strip().unique()[:10_000]
    lines = [f'"{v}" = "{status}"' for status in _CLOSING_WORDS
             for v in values if _closing_word(v, _CLOSING_WORDS) == status]
    if not lines:
        return None
    return (f"the stage column {stage!r} holds the closing stages: map it as the status too, "
            f"[source.columns.deals] status = \"{stage}\", and its closing stages, "
            f"[source.values.deals.status] {'; '.join(lines)} (its other stages are read as open)")


def _stage_is_status(table: str, columns: dict[str, str], values: dict[str, dict[str, str]]) -> bool:
    """One column is both the stage and the status (amoCRM's "Этап сделки") and the status
    mapping names its closing stages: every other stage of it is an open deal's stage."""
    their = columns.get("stage")
    return (table == "deals" and their is not None and their == columns.get("status")
            and any(str(v).lower() in ("won", "lost") for v in values.get("status", {}).values()))


def _rest_open(status: pd.Series) -> pd.Series:
    """Stage values the status mapping does not close are "open", so a stage added in the CRM
    tomorrow does not stop the load (listing every open stage was the admin's only way)."""
    known = lower_text(status).isin(("open", "won", "lost")).to_numpy(dtype=bool, na_value=False)
    return status.mask(status.notna().to_numpy(dtype=bool) & ~known, "open").astype(STR)


def _closing_typos(mapping: dict[str, str], text: pd.Series, raw: RawTable, source_name) -> None:
    """Stages not mapped are read as open, so a closing stage misspelt in the mapping would
    silently make every won (or lost) deal open: one that matches no cell (`text`, the stage
    column cleaned as the load reads it) while a cell value is close to it stops the load,
    naming both."""
    present = set(text.dropna().astype(str).unique()[:10_000])
    for theirs, status in mapping.items():
        if str(status).lower() not in ("won", "lost") or theirs in present:
            continue
        close = nearest(theirs, sorted(present))
        if close is not None and mapping.get(close) is None:
            raise DataError(
                f"the closing stage {theirs!r} mapped to {status} in config is in no row, and the "
                f"column's other stages are read as open", file=raw.origin, column=source_name, value=close,
                fix=f"correct the mapping: [source.values.deals.status] \"{close}\" = \"{status}\"",
            )


def _map_values(series: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Replace their values by canonical ones; values not in the mapping stay as they are."""
    if series.dtype != object and not isinstance(series.dtype, pd.StringDtype):
        series = _to_str(series)
    mapped = series.map(mapping)
    return mapped.where(mapped.notna(), series).astype(STR)


def _type_words(series: pd.Series) -> pd.Series:
    """An activity list's own type words (Звонок, Задача, TODO, Deadline) as canonical types;
    other values stay for the enum check (and its "map it in config" error)."""
    words = lower_text(series).str.strip().map(TYPE_WORDS)
    return words.where(words.notna(), series).astype(STR)


def lower_text(series: pd.Series) -> pd.Series:
    """Lower-cased text; the column itself when its distinct values already are (no copy of millions)."""
    if isinstance(series.dtype, pd.StringDtype):
        distinct = series.dropna().unique()
        if len(distinct) <= 1000 and all(v == v.lower() for v in distinct):
            return series
    return series.str.lower()


def _check_enum(table, column, series, allowed, raw, source_name) -> pd.Series:
    lowered = lower_text(series)
    bad = lowered.notna() & ~lowered.isin(allowed)
    if bad.any():
        counts = series[bad].value_counts()
        listed = ", ".join(f"{v!r} ({n})" for v, n in counts.head(10).items())
        example = counts.index[0]
        raise DataError(
            f"unknown {column} value", file=raw.origin, row=raw.row_number(bad.idxmax()),
            row_kind=raw.row_kind, column=source_name, value=example,
            expected=" or ".join(allowed),
            more=f"Values that need a mapping: {listed}.",
            fix=f"map each of them to {', '.join(allowed)} in config, one line per value: "
            f"[source.values.{table}.{column}] \"{example}\" = \"<{'|'.join(allowed)}>\"",
        )
    return lowered.astype(STR)


def _require_values(table, col: Column, series: pd.Series, raw: RawTable, source_name,
                    as_written: pd.Series | None = None) -> None:
    """`as_written`: the cells before dashes and Excel errors were read as empty, to show them."""
    missing = series.isna()
    if missing.any():
        n = int(missing.sum())
        first = missing.idxmax()
        shown = None if as_written is None or pd.isna(as_written[first]) else as_written[first]
        raise DataError(
            f"{col.name} is empty" + (" (a placeholder: a dash, an Excel error or day zero)" if shown is not None else "")
            + f" in {n} row(s), but {table} needs a value in every row",
            file=raw.origin, row=raw.row_number(first), row_kind=raw.row_kind,
            column=source_name, value=shown,
            more=f"Rows: {', '.join(_rows(raw, missing))}.",
            # one constant for every empty id would make them duplicates: the row is the problem
            fix=(f"delete those rows (a row without an id is often the totals or a blank line at the end of "
                 f"an Excel export), or fill in their ids" if TABLES[table].key == col.name else
                 f"fill in the cells, or set a value for the empty ones in config: "
                 f"[source.fill.{table}] {col.name} = ..."
                 # a sheet kept by hand marks a stage by colouring the cell: no export carries it
                 + (" (a stage shown only by the cell's colour is not in the file: type it in)"
                    if col.name in ("stage", "status") and raw.text else "")),
        )


def _rows(raw: RawTable, mask: pd.Series) -> list[str]:
    labels = mask.index[mask.to_numpy()][:_MAX_ROWS_SHOWN]
    return [f"{raw.row_kind} {raw.row_number(i)}" for i in labels]


def _default(col: Column, index: pd.Index) -> pd.Series:
    if col.kind == "datetime":
        return pd.Series(pd.NaT, index=index, dtype=UTC_NS)
    if col.kind == "float":
        value = np.nan if col.default is None else float(col.default)
        return pd.Series(value, index=index, dtype="float64")
    if col.kind == "bool":
        return pd.Series(bool(col.default), index=index, dtype=bool)
    if col.kind == "int":
        return pd.Series(pd.NA, index=index, dtype="Int64")
    return pd.Series(np.nan if col.default is None else col.default, index=index, dtype=STR)


def _constant(table, col: Column, value, index, tz) -> pd.Series:
    """The configured fill value, parsed like a cell, repeated over `index`."""
    raw = RawTable(pd.DataFrame({col.name: [value]}, dtype=object),
                   f"config [source.fill.{table}] {col.name}", text=True)
    one = coerce(raw.frame[col.name], col, raw, tz, source_name=col.name)
    return pd.Series(one.iloc[0], index=index, dtype=one.dtype)


# --- types -------------------------------------------------------------------------------

def coerce(series: pd.Series, col: Column, raw: RawTable, tz: ZoneInfo, *, source_name: str,
           date_format: str | None = None, date_key: str | None = None):
    """Convert one column to the canonical dtype of `col`, or raise DataError at the bad row.

    `date_format` (a date column's configured strptime format) is tried first; `date_key`
    ("deals.created_at") lets an unreadable date's error say where to give the format."""
    if col.kind == "str":
        return _to_str(series)
    if col.kind == "datetime":
        return _to_datetime(series, raw, tz, source_name, date_format, date_key)
    if col.kind in ("float", "int"):
        return _to_number(series, col, raw, source_name)
    return _to_bool(series, col, raw, source_name)


def _to_str(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.StringDtype):
        return series if series.dtype == STR else series.astype(STR)
    if pd.api.types.is_float_dtype(series.dtype):
        whole = series.dropna()
        if (whole == np.floor(whole)).all():
            return series.astype("Int64").astype(STR)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(STR)
    if series.dtype == object:
        def one(v):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return None
            if isinstance(v, float) and v.is_integer():
                return str(int(v))
            return str(v)
        return series.map(one).astype(STR)
    return series.astype(STR)


def _decimal_mark(cleaned: pd.Series, money: bool = False) -> str | None:
    """The column's decimal mark, from its unambiguous cells: "," when some cell can only be a
    decimal comma ("1,5", "1.234,56") and none a decimal point, "." the other way round, else
    None (no evidence, or both: each cell is read on its own). A cell such as "12.500" or
    "12,500" is ambiguous alone; read cell by cell, an EU export's "12.500" became 12.5 next to
    its "1,5" (a thousandfold error, silent). `money`: amounts, which have two decimals at most."""
    comma = cleaned.str.fullmatch(r"-?\d*,(?:\d{1,2}|\d{4,})|-?\d{1,3}(?:\.\d{3})+,\d*|-?\d{1,3}(?:\.\d{3}){2,}")
    dot = cleaned.str.fullmatch(r"-?\d*\.(?:\d{1,2}|\d{4,})|-?\d{1,3}(?:,\d{3})+\.\d*|-?\d{1,3}(?:,\d{3}){2,}")
    comma, dot = bool(comma.fillna(False).any()), bool(dot.fillna(False).any())
    if comma != dot:
        return "," if comma else "."
    if money and not comma:
        # Money has two decimals: a column whose every dotted (or every comma) cell has groups of
        # exactly three digits ("12.500", "7.250") groups thousands.
        for sep, mark in ((".", ","), (",", ".")):
            marked = cleaned[cleaned.str.contains(sep, regex=False).fillna(False)]
            other = cleaned.str.contains("," if sep == "." else ".", regex=False).fillna(False).any()
            esc = re.escape(sep)
            if len(marked) and not other and bool(marked.str.fullmatch(rf"-?\d{{1,3}}(?:{esc}\d{{3}})+").all()):
                return mark
    return None


def _to_number(series: pd.Series, col: Column, raw: RawTable, source_name: str) -> pd.Series:
    original = series
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        text = _to_str(series)
        # "1 234,50" as Russian Excel writes it -> "1234.50"; "1,234.50" and "1,234,567"
        # (commas grouping thousands) -> "1234.50", "1234567"
        cleaned = text.str.replace(_SPACES, "", regex=True)
        # accountants' negatives: "(1 200)" and the minus sign U+2212 are -1200
        cleaned = cleaned.str.replace("\u2212", "-", regex=False).str.replace(r"^\((\d[^()]*)\)$", r"-\1", regex=True)
        mark = _decimal_mark(cleaned, money=col.name == "amount")
        if mark == ",":  # "1,5" elsewhere in the column: "12.500" is twelve thousand five hundred
            dots = cleaned.str.fullmatch(r"-?\d{1,3}(?:\.\d{3})+(?:,\d*)?").fillna(False)
            cleaned = cleaned.where(~dots, cleaned.str.replace(".", "", regex=False))
            cleaned = cleaned.str.replace(",", ".", regex=False)
        else:
            grouped = cleaned.str.contains(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d*)?$", regex=True)
            if mark != ".":  # "12,500" alone is Russian Excel's 12.5; beside "0.75" it is 12500
                grouped &= cleaned.str.contains(".", regex=False) | (cleaned.str.count(",") > 1)
            cleaned = cleaned.where(~grouped.fillna(False), cleaned.str.replace(",", "", regex=False))
            decimal_comma = cleaned.str.fullmatch(r"-?\d*,\d+").fillna(False)
            cleaned = cleaned.where(~decimal_comma, cleaned.str.replace(",", ".", regex=False))
        numbers = pd.to_numeric(cleaned, errors="coerce")
        bad = numbers.isna() & text.notna()
        if bad.any():
            _raise_bad(raw, bad, text, source_name, "not a number",
                       "a number such as 1500000 or 1 500 000,50")
        series = numbers
    series = series.astype("float64")
    _check_magnitude(series, original, col, raw, source_name)
    if col.kind == "int":
        bad = series.notna() & (series != np.floor(series))
        if bad.any():
            _raise_bad(raw, bad, series, source_name, "not a whole number", "a whole number")
        return series.astype("Int64") if series.isna().any() else series.astype("int64")
    return series


def _check_magnitude(series: pd.Series, original: pd.Series, col: Column, raw: RawTable,
                     source_name: str) -> None:
    """Finite, within the column's limit, and (for capacity) not negative or vanishingly small:
    such values would overflow sums, ratios and number formatting in every later layer."""
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    if col.smallest:
        expected = f"0, or a number between {col.smallest:g} and {col.limit:,.0f}" + (
            " (or as far below 0)" if col.signed else "")
    else:
        expected = f"a number between {f'-{col.limit:,.0f}' if col.signed else '0'} and {col.limit:,.0f}"
    checks = (
        (~np.isfinite(values) & ~np.isnan(values), "not a finite number"),
        (np.abs(np.nan_to_num(values)) > col.limit, "a number too large to be real"),
        (np.nan_to_num(values) < 0 if not col.signed else np.zeros(len(values), dtype=bool),
         "a negative number where only 0 or more makes sense"),
        ((np.abs(np.nan_to_num(values)) < col.smallest) & (np.nan_to_num(values) != 0),
         "a number too small to be real"),
    )
    for bad, problem in checks:
        if bad.any():
            _raise_bad(raw, pd.Series(bad, index=series.index), original, source_name, problem, expected)


def _to_bool(series: pd.Series, col: Column, raw: RawTable, source_name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.astype(bool)
    text = _to_str(series).str.strip().str.lower()
    yes, no = yes_no_words(col.name)
    result = pd.Series(bool(col.default), index=series.index, dtype=bool)
    result[text.isin(yes).fillna(False)] = True
    result[text.isin(no).fillna(False)] = False
    bad = text.notna() & ~text.isin(yes | no)
    if bad.any():
        word = str(series[bad].iloc[0]).strip()
        table = next(t for t, spec in TABLES.items() if col in spec.columns)
        _raise_bad(raw, bad, series, source_name, "not a yes/no value",
                   "true/false, yes/no, да/нет or 1/0" + (
                       " (or done/to do, completed/not_started, выполнено/не выполнено)" if col.name == "done" else ""),
                   f"correct the value in the file, or say what it means in config, one line per word: "
                   f"[source.values.{table}.{col.name}] \"{word}\" = \"true\" (or \"false\")")
    return result


# Dates a CRM can hold. Outside this window a value is a placeholder ("0001-01-01",
# "9999-12-31"), a typo or a number that is not a timestamp; pandas cannot even hold most of
# them in nanoseconds, so they are refused here with their row instead of failing later.
MIN_DATE = pd.Timestamp("1900-01-01", tz="UTC")
MAX_DATE = pd.Timestamp("2200-01-01", tz="UTC")
DATE_RANGE = f"between {MIN_DATE:%Y-%m-%d} and {MAX_DATE:%Y-%m-%d}"
_WIDE = "datetime64[us, UTC]"  # holds years 1..9999: parse here, check the range, then go to ns
_MIN_S, _MAX_S = MIN_DATE.timestamp(), MAX_DATE.timestamp()


def _to_datetime(series: pd.Series, raw: RawTable, tz: ZoneInfo, source_name: str,
                 date_format: str | None = None, date_key: str | None = None) -> pd.Series:
    """Tz-aware UTC nanoseconds; a value that is not a date, or is outside DATE_RANGE, is a DataError."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        wide = series.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        wide = _localize(series, tz)
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        wide = _from_unix(series.astype("float64"), raw, series, source_name)
    elif dtype == object:
        is_dt = series.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year"))
        if is_dt.any():
            wide = pd.Series(pd.NaT, index=series.index, dtype=_WIDE)
            stamps = _objects_to_datetime(series[is_dt], raw, source_name)
            if isinstance(stamps.dtype, pd.DatetimeTZDtype):
                wide[is_dt] = stamps.dt.tz_convert("UTC").astype(_WIDE)
            else:
                wide[is_dt] = _localize(stamps, tz).astype(_WIDE)
            rest = ~is_dt & series.notna()
            if rest.any():
                wide[rest] = _parse_text(_to_str(series[rest]), raw, tz, source_name, date_format, date_key)
        else:
            wide = _parse_text(_to_str(series), raw, tz, source_name, date_format, date_key)
    else:
        wide = _parse_text(_to_str(series), raw, tz, source_name, date_format, date_key)
    return _in_range(wide, series, raw, source_name)


def _objects_to_datetime(values: pd.Series, raw: RawTable, source_name: str) -> pd.Series:
    """Python date/datetime cells (Excel, SQL drivers); one that pandas cannot hold is a DataError."""
    try:
        return pd.to_datetime(values, utc=False)
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        pass
    ok = values.map(_one_stamp_ok)
    if (~ok).any():
        _raise_bad(raw, ~ok, values, source_name, "a date outside the range this loader accepts",
                   f"a date {DATE_RANGE}")
    return pd.to_datetime(values, utc=True)  # mixed offsets: keep each as UTC


def _one_stamp_ok(value: object) -> bool:
    try:
        pd.Timestamp(value)
        return True
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        return False


def _in_range(wide: pd.Series, original: pd.Series, raw: RawTable, source_name: str) -> pd.Series:
    """Refuse dates outside DATE_RANGE (with their row), then convert to UTC nanoseconds."""
    stamps = wide.array  # compare the integers: one pass, no Timestamp boxing
    lo, hi = MIN_DATE.as_unit(stamps.unit)._value, MAX_DATE.as_unit(stamps.unit)._value
    ints = stamps.asi8
    bad = (ints != np.iinfo(np.int64).min) & ((ints < lo) | (ints >= hi))
    if bad.any():
        _raise_bad(raw, pd.Series(bad, index=wide.index), original, source_name,
                   "a date outside the range this loader accepts",
                   f"a date {DATE_RANGE}; placeholders such as 0001-01-01 or 9999-12-31 "
                   "should be empty cells")
    return wide if wide.dtype == UTC_NS else wide.astype(UTC_NS)


# Text that can be a date starts with a digit: "now", "today", "-1" are not dates in an export.
_STARTS_WITH_DIGIT = r"^\s*\d"
# A date written with a Russian month name, as a sheet kept by hand has it: "5 марта 2025",
# "05 мар. 2025 г. 14:30" (strptime's %b knows only the machine's locale). Without a year
# ("5 марта") it is no date: see _NO_YEAR.
_RU_MONTH_DATE = (r"^\s*(\d{1,2})\s+([а-яё]{3,8})\.?(?:\s+(\d{4})(?:\s*г\.?)?)?"
                  r"(?:[\s,]+(\d{1,2}:\d{2}(?::\d{2})?))?\s*$")
_RU_MONTHS = {"янв": 1, "фев": 2, "мар": 3, "апр": 4, "май": 5, "мая": 5, "июн": 6, "июл": 7, "авг": 8,
              "сен": 9, "окт": 10, "ноя": 11, "дек": 12}
# Cells that name a day without its year ("05.03", "5/3") or a year or month without its day
# ("2025", "2025-03", which ISO parsing would read as 1 January or the 1st): the missing part is
# never guessed.
_NO_YEAR = r"^\s*\d{1,2}[./-]\d{1,2}\.?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$"
_NO_DAY = r"^\s*\d{4}(?:[-./]\d{1,2})?\s*$"


def _ru_month_dates(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """("dd.mm.yyyy[ HH:MM]" for the cells written with a Russian month name and a year, the
    rest unchanged; the cells with a Russian month name and no year)."""
    parts = text.str.lower().str.extract(_RU_MONTH_DATE)
    month = parts[1].str[:3].map(_RU_MONTHS)
    named = month.notna()
    dated = named & parts[2].notna()
    if dated.any():
        rewritten = (parts[0].str.zfill(2) + "." + month.map(lambda m: f"{int(m):02d}" if m == m else "")
                     + "." + parts[2] + (" " + parts[3]).fillna(""))
        text = text.where(~dated, rewritten)
    return text, named & parts[2].isna()


def _parse_text(text: pd.Series, raw: RawTable, tz: ZoneInfo, source_name: str,
                date_format: str | None = None, date_key: str | None = None) -> pd.Series:
    """Try each accepted format on the whole column; what none of them reads is an error.

    Returns microsecond UTC timestamps (the caller checks the range).
    """
    result = pd.Series(pd.NaT, index=text.index, dtype=_WIDE)
    original = text
    present = text.notna().to_numpy()
    if not present.any():
        return result
    # pandas reads "now" and "today" as the wall clock: such a cell would move with every run
    digit = text.str.contains(_STARTS_WITH_DIGIT, regex=True).fillna(False).to_numpy(dtype=bool).copy()
    no_year = text.str.contains(_NO_YEAR, regex=True).fillna(False)
    if text.str.contains("[а-яё]", case=False, regex=True).fillna(False).any():
        text, yearless = _ru_month_dates(text)
        no_year |= yearless.fillna(False)
    no_day = text.str.contains(_NO_DAY, regex=True).fillna(False).to_numpy(dtype=bool)
    no_year = no_year.to_numpy(dtype=bool)
    remaining = present & digit & ~no_year & ~no_day
    if date_format:
        # A format with a month name ("%b %d, %Y": Zoho's "Mar 14, 2025 10:22 AM") reads cells that
        # start with a letter; only the configured format is tried on them, and only on cells
        # holding a digit (never "now" or "today", which pandas would read as the wall clock).
        named = present & ~digit & text.str.contains(r"\d", regex=True).fillna(False).to_numpy(dtype=bool)
        if named.any():
            for fmt in _with_date_part(date_format):
                parsed = pd.to_datetime(text[named], format=fmt, errors="coerce")
                ok = parsed.notna().to_numpy()
                if ok.any():
                    where = np.flatnonzero(named)[ok]
                    result.iloc[where] = _localize(parsed[ok], tz).astype(_WIDE).to_numpy()
                    digit[where] = True  # read: not a bad cell below
                    named[where] = False
    with_offset = text.str.contains(_HAS_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
    aware = remaining & with_offset
    if aware.any():
        parsed = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce")
        ok = parsed.notna().to_numpy()
        result.iloc[np.flatnonzero(aware)[ok]] = parsed[ok].astype(_WIDE)
        remaining[np.flatnonzero(aware)[ok]] = False
    for fmt in (_with_date_part(date_format) if date_format else ()) + DATETIME_FORMATS:
        todo = remaining & ~with_offset
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        ok = parsed.notna().to_numpy()
        if ok.any():
            where = np.flatnonzero(todo)[ok]
            result.iloc[where] = _localize(parsed[ok], tz).astype(_WIDE).to_numpy()
            remaining[where] = False
    if remaining.any():
        unix = remaining & text.str.fullmatch(_UNIX).fillna(False).to_numpy(dtype=bool)
        if unix.any():
            numbers = pd.to_numeric(text[unix], errors="coerce")
            result.iloc[np.flatnonzero(unix)] = _from_unix(numbers, raw, text[unix], source_name).to_numpy()
            remaining[unix] = False
    if remaining.any():
        remaining &= ~_excel_days(text, remaining, result, tz)
    for partial, problem, fix in (
            (no_year, "a date without its year (the year is never guessed)",
             "; in a spreadsheet that shows dates without the year, give the column a date format with "
             "the year, then export again"),
            (no_day, "a year or a month without the day (the day is never guessed)",
             ", or leave the cell empty when the day is not known")):
        if (partial & present).any():
            _raise_bad(raw, pd.Series(partial & present, index=text.index), original, source_name, problem,
                       "a full date such as 05.03.2025 or 2025-03-05",
                       fix="write the full date in these cells (05.03.2025)" + fix)
    bad = (present & ~digit) | remaining
    if bad.any():
        expected = (f"the format {date_format!r} given in [source.date_formats], or " + DATETIME_EXPECTED
                    if date_format else DATETIME_EXPECTED)
        fix = (f"correct the value, or give the column's format in config: [source.date_formats] "
               + _format_hint(text[bad], date_key) if date_key and not date_format else None)
        _raise_bad(raw, pd.Series(bad, index=text.index), original, source_name,
                   "not a date/time this loader can read", expected, fix=fix)
    return result


# Excel's serial day numbers: a date column formatted as a number ("45678" is 2025-01-21), from
# 1954 to 2119 so no count or Unix time is taken for one; day 0 shows as "1900-01-00", an empty cell.
_EXCEL_DAYS = r"\d{5}(?:\.\d+)?"
_EXCEL_DAY_RANGE = (20_000, 80_000)
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_EXCEL_ZERO = ("1900-01-00", "00.01.1900", "0.1.1900", "1/0/1900", "1900-01-00 00:00:00",
               "00.01.1900 00:00", "00.01.1900 0:00", "00.01.1900 00:00:00")


def _excel_days(text: pd.Series, todo: np.ndarray, result: pd.Series, tz: ZoneInfo) -> np.ndarray:
    """Read Excel serial days (local wall-clock, as the sheet shows them) into `result`; day
    zero stays empty. Returns the cells read."""
    zero = todo & text.isin(_EXCEL_ZERO).fillna(False).to_numpy(dtype=bool)
    serial = todo & text.str.fullmatch(_EXCEL_DAYS).fillna(False).to_numpy(dtype=bool)
    if serial.any():
        days = pd.to_numeric(text[serial], errors="coerce").to_numpy(dtype="float64")
        inside = (days >= _EXCEL_DAY_RANGE[0]) & (days < _EXCEL_DAY_RANGE[1])
        serial[np.flatnonzero(serial)[~inside]] = False
        naive = _EXCEL_EPOCH + pd.to_timedelta(np.round(days[inside] * 86_400), unit="s")
        result.iloc[np.flatnonzero(serial)] = _localize(pd.Series(naive), tz).astype(_WIDE).to_numpy()
    return zero | serial


def _with_date_part(fmt: str) -> tuple[str, ...]:
    """A configured format, then its date part when it has a time: one format given for a whole
    file (`deals = "%b %d, %Y %I:%M %p"`) also reads its date-only columns (Zoho's Closing Date,
    "Mar 14, 2025")."""
    cut = re.search(r"[\sT,]*%[HIMSpf]", fmt)
    day = fmt[:cut.start()].rstrip() if cut else fmt
    return (fmt, day) if day != fmt and "%d" in day and "%Y" in day.replace("%y", "%Y") else (fmt,)


# Ways of writing dates that exports use and DATETIME_FORMATS does not read; the one that reads
# every unreadable cell is suggested in the error (US exports: HubSpot's "10/16/2025 11:55 AM").
_CANDIDATE_FORMATS = tuple(f"{d}{t}" for d in ("%m/%d/%Y", "%d/%m/%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y/%m/%d",
                                               "%m/%d/%y", "%d/%m/%y", "%d.%m.%y",
                                               "%b %d, %Y", "%d %b %Y", "%d-%b-%Y")
                           for t in (" %I:%M %p", " %I:%M:%S %p", " %H:%M", " %H:%M:%S", ""))


def _format_hint(bad: pd.Series, date_key: str) -> str:
    """`key = "<format>"` for the format that reads every unreadable cell, or a warning that
    day and month cannot be told apart when both orders read them (no day above 12)."""
    sample = pd.Series(bad.dropna().astype(str).str.strip().unique()[:500])
    fits = [f for f in _CANDIDATE_FORMATS
            if len(sample) and pd.to_datetime(sample, format=f, errors="coerce").notna().all()]
    codes = "(strptime codes: %d day, %m month, %Y year, %H:%M time, %I:%M %p 12-hour time)"
    if not fits:
        return f'{date_key} = "%d-%m-%Y %H:%M" {codes}'
    other = fits[0].replace("%m", "#").replace("%d", "%m").replace("#", "%d")  # day and month swapped
    if other in fits:
        return (f'{date_key} = "{fits[0]}" or "{other}": no day in these cells is above 12, so month-first '
                f"(US) and day-first cannot be told apart here; check one date in the CRM {codes}")
    return f'{date_key} = "{fits[0]}" {codes}'


_NAIVE_MIN = MIN_DATE.tz_localize(None) - pd.Timedelta(days=2)
_NAIVE_MAX = MAX_DATE.tz_localize(None) + pd.Timedelta(days=2)


def _localize(naive: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Naive timestamps are wall-clock time in the config timezone (result: UTC, unit kept).

    pandas' zone arithmetic silently wraps around for years like 0001 (to 1972); values far
    outside DATE_RANGE are only labelled UTC here, and _in_range refuses them.
    """
    far = (naive.notna() & ((naive < _NAIVE_MIN) | (naive > _NAIVE_MAX))).to_numpy(dtype=bool)
    if far.any():
        result = naive.dt.tz_localize("UTC")
        near = ~far
        if near.any():
            result[near] = _localize(naive[near], tz)
        return result
    local = naive.dt.tz_localize(
        tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    return local.dt.tz_convert("UTC")


def _from_unix(numbers: pd.Series, raw: RawTable, original: pd.Series, source_name: str) -> pd.Series:
    """Unix seconds; values above 10^11 can only be milliseconds (year 5138 otherwise).

    A number that is no time in DATE_RANGE either way (10^17, -1, inf) is a DataError.
    """
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    millis = np.abs(np.nan_to_num(values)) > 1e11
    seconds = np.where(millis, values / 1000.0, values)
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(values) & ~((seconds >= _MIN_S) & (seconds < _MAX_S))
    if bad.any():
        _raise_bad(raw, pd.Series(bad, index=numbers.index), original, source_name,
                   "a number that is not a Unix time in the range this loader accepts",
                   f"Unix seconds or milliseconds of a date {DATE_RANGE}")
    return pd.to_datetime(pd.Series(seconds, index=numbers.index), unit="s", utc=True).astype(_WIDE)


def _raise_bad(raw: RawTable, bad: pd.Series, values: pd.Series, source_name: str,
               problem: str, expected: str, fix: str | None = None) -> None:
    first = bad.idxmax()
    n = int(bad.sum())
    more = None
    if n > 1:
        more = f"{n} cells like this: {', '.join(_rows(raw, bad))}" + (", ..." if n > _MAX_ROWS_SHOWN else "") + "."
    raise DataError(
        problem, file=raw.origin, row=raw.row_number(first), row_kind=raw.row_kind,
        column=source_name, value=values.loc[first], expected=expected, more=more,
        fix=fix or "correct the value in the file (or re-export the column in one of the "
        "expected formats)",
    )

