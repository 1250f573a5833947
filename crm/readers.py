"""Read one exported file (CSV, XLSX, Parquet) into a raw frame with the file's own names.

Real exports are messy: Russian Excel writes cp1251 with `;`, others UTF-8 with a BOM, or a
tab-separated "Unicode text". We detect the encoding and the delimiter instead of asking.
Anything that is not a table at all (binary, a saved web page) gets a clear DataError.
Renaming and type conversion happen later, in crm.normalize.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm.errors import DataError

SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".parquet")
DELIMITERS = (",", ";", "\t")
_SAMPLE_BYTES = 64 * 1024


@dataclass
class RawTable:
    """A frame as the source has it. Row label i is shown to people as `i + row_offset`."""

    frame: pd.DataFrame
    origin: str  # "deals.csv", "query for deals", ... used in every message
    row_offset: int = 2  # CSV/XLSX: header is row 1, first data row (label 0) is row 2
    row_kind: str = "row"  # "row" for spreadsheets, "record" for Parquet/SQL
    text: bool = True  # values came as text (CSV/XLSX): strip spaces before use
    # Spreadsheet row that looks like the real header when the first row does not (a title
    # above the table) and no row holding the expected names was found; said in errors.
    header_guess: int | None = None

    def row_number(self, label: int) -> int:
        return int(label) + self.row_offset


def read_file(path: Path, columns: list[str] | None = None,
              expected: list[str] | None = None) -> RawTable:
    """Read a CSV/TSV/XLSX/Parquet file; `columns` limits what Parquet reads (memory).

    `expected`: column names the table may have (mapped from config, else canonical); a
    spreadsheet whose first row does not hold them is searched for the row that does.
    """
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path, columns)
    if suffix == ".xlsx":
        return read_xlsx(path, expected)
    if suffix == ".xls":
        raise DataError(
            "old Excel .xls files are not supported"
            + (" (this one is a web page saved with an .xls name)" if _is_html(_head(path)) else ""),
            file=path.name, fix="open it in Excel or LibreOffice and save it as .xlsx or .csv",
        )
    return read_csv(path, expected)


# --- the header row ---------------------------------------------------------------------

HEADER_SEARCH_ROWS = 10  # a title block above the table is a few rows, not pages


def _score(cells: list[object], expected: set[str]) -> int:
    """How many cells of a row are expected column names (case and spaces ignored)."""
    return sum(1 for c in cells if isinstance(c, str) and c.strip().lower() in expected)


def find_header(header: list[object], rows: list[list[object]], expected: list[str] | None) -> int | None:
    """Index into `rows` of the row holding the column names, when the header read does not.

    Only looked for when the header holds fewer than two expected names; the row found must
    hold at least two and more than the header.
    """
    if not expected:
        return None
    names = {e.strip().lower() for e in expected}
    current = _score(header, names)
    if current >= 2:
        return None
    best, best_score = None, max(current, 1)
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        score = _score(row, names)
        if score > best_score:
            best, best_score = i, score
    return best


def _looks_like_header(row: list[object], width: int) -> bool:
    """A row of text labels filling most of the table's width."""
    filled = [c for c in row if c is not None and not (isinstance(c, float) and c != c) and str(c).strip()]
    return len(filled) >= max(2, (width + 1) // 2) and all(isinstance(c, str) for c in filled)


def _unique(names: list[str]) -> list[str]:
    """Column names as pandas would make them: empty -> 'Unnamed: j', repeats -> 'name.1'."""
    seen: dict[str, int] = {}
    out = []
    for j, name in enumerate(names):
        name = name or f"Unnamed: {j}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


# --- CSV ---------------------------------------------------------------------------------

_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx file?)", "save it with the .xlsx extension"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls file", "save it from Excel as .csv or .xlsx"),
    (b"PAR1", "a Parquet file", "give it the .parquet extension"),
    (b"%PDF", "a PDF document", "export the table from the CRM as CSV or XLSX"),
)


def detect_encoding(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1251 as Russian Excel writes it."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1251")
        return "cp1251"
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot tell the text encoding (byte {exc.start} is neither UTF-8 nor cp1251)",
            fix="export the file as CSV UTF-8",
        ) from None


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits the header into the most fields, consistently over rows."""
    lines = [line for line in sample.splitlines()[:30] if line.strip()]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line in half
    best, best_score = ",", (-1, -1)
    for delim in DELIMITERS:
        try:
            rows = list(csv.reader(lines, delimiter=delim))
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows[1:] if len(r) == width)
        score = (int(width > 1) and consistent, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(2048)


def _is_html(data: bytes) -> bool:
    head = data[:2048].lstrip(codecs.BOM_UTF8 + b" \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<table", b"<meta")) or b"<html" in head[:512] \
        or b"<table" in head[:1024]


def _refuse_non_csv(data: bytes, name: str) -> None:
    if not data.strip():
        raise DataError(
            "the file is empty", file=name,
            fix="export the table again: the first row must hold the column names",
        )
    for magic, what, fix in _MAGIC:
        if data.startswith(magic):
            raise DataError(f"this is not a CSV file but {what}", file=name, fix=fix)
    head = data[:2048].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in head[:512]:
        raise DataError(
            "this is a web page (HTML/XML), not a CSV export", file=name,
            fix="the download probably returned a login or error page; export the table "
            "from the CRM again and save the CSV file itself",
        )
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data[:_SAMPLE_BYTES]:
        raise DataError(
            "this is a binary file, not a CSV export", file=name,
            fix="export the table from the CRM as CSV (UTF-8 or Windows-1251) or XLSX",
        )


def read_csv(path: Path, expected: list[str] | None = None) -> RawTable:
    name = path.name
    data = path.read_bytes()
    _refuse_non_csv(data, name)
    try:
        encoding = detect_encoding(data)
    except DataError as exc:
        raise DataError(exc.problem, file=name, fix=exc.fix) from None
    sample = data[:_SAMPLE_BYTES].decode(encoding, errors="ignore")
    delimiter = detect_delimiter(sample)
    skip, guess, delimiter = _csv_header(sample, delimiter, expected)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=delimiter, encoding=encoding, dtype=str,
            keep_default_na=False, na_values=[""], skip_blank_lines=False, skiprows=skip,
        )
    except pd.errors.EmptyDataError:
        raise DataError("the file has no header row", file=name,
                        fix="the first row must hold the column names") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (f"row {found[2]} has {found[3]} values but the header has {found[1]} columns"
                  if found else str(exc).strip().splitlines()[0])
        raise DataError(
            f"the rows do not line up with the header: {detail}", file=name,
            fix=_above_header(guess) if guess else
            f"check that values containing {delimiter!r} are in double quotes",
        ) from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    blank = frame.isna().all(axis=1)
    if blank.any():
        frame = frame[~blank]
    # skipped title lines: data label 0 is spreadsheet row skip + 2
    return RawTable(frame, name, row_offset=2 + skip, header_guess=guess)


def _above_header(row: int) -> str:
    return f"the header seems to be on row {row}; delete the rows above it"


def _csv_header(sample: str, delimiter: str, expected: list[str] | None) -> tuple[int, int | None, str]:
    """(lines to skip, guessed header row, delimiter) for a CSV with a title above its header."""
    lines = sample.splitlines()[:HEADER_SEARCH_ROWS + 2]
    if len(lines) <= HEADER_SEARCH_ROWS + 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line in half
    if len(lines) < 2:
        return 0, None, delimiter
    try:
        header = next(csv.reader(lines[:1], delimiter=delimiter))
    except csv.Error:
        return 0, None, delimiter
    if expected and _score(header, {e.strip().lower() for e in expected}) >= 2:
        return 0, None, delimiter  # the usual file: nothing more to look at
    best: tuple[int, int, str] | None = None  # (score, line, delimiter)
    names = {e.strip().lower() for e in expected or []}
    for delim in DELIMITERS:
        try:
            rows = list(csv.reader(lines, delimiter=delim))
        except csv.Error:
            continue
        found = find_header(rows[0] if rows else [], rows[1:], expected)
        if found is not None and (best is None or _score(rows[found + 1], names) > best[0]):
            best = (_score(rows[found + 1], names), found + 1, delim)
    if best is not None:
        return best[1], None, best[2]
    # Nothing names the columns: a title is a narrow first line above rows as wide as the data.
    below = detect_delimiter("\n".join(lines[1:]) + "\n")
    try:
        rows = list(csv.reader(lines, delimiter=below))
    except csv.Error:
        return 0, None, delimiter
    width = len(rows[-1])
    if width > 1 and sum(1 for c in rows[0] if c.strip()) < width:  # a header fills every column
        for i, row in enumerate(rows[1:HEADER_SEARCH_ROWS + 1], start=1):
            if len(row) == width and _looks_like_header(row, width):
                return 0, i + 1, delimiter
    return 0, None, delimiter


# --- XLSX and Parquet ----------------------------------------------------------------------

def read_xlsx(path: Path, expected: list[str] | None = None) -> RawTable:
    name = path.name
    import zipfile

    from openpyxl.utils.exceptions import InvalidFileException

    _refuse_non_xlsx(_head(path), name)
    try:
        frame = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise DataError(
            f"cannot open this Excel file ({exc.__class__.__name__}: {exc})", file=name,
            fix="open it in Excel and save it again as .xlsx, or export CSV instead",
        ) from None
    if frame.columns.empty:
        raise DataError("the first sheet is empty", file=name,
                        fix="put the table on the first sheet, column names in row 1")
    frame.columns = [str(c).strip() for c in frame.columns]
    top = frame.iloc[:HEADER_SEARCH_ROWS].astype(object).to_numpy().tolist()
    found = find_header(list(frame.columns), top, expected)
    guess = None
    if found is not None:
        # The real header is data row `found`; the labels below keep their spreadsheet rows.
        cells = top[found]
        frame = frame.iloc[found + 1:]
        frame.columns = _unique([
            "" if c is None or (isinstance(c, float) and c != c) else str(c).strip() for c in cells])
    elif sum(c.startswith("Unnamed: ") for c in frame.columns) * 2 > len(frame.columns):
        guess = next((i + 2 for i, row in enumerate(top) if _looks_like_header(row, len(frame.columns))), None)
    blank = frame.isna().all(axis=1)
    if blank.any():
        frame = frame[~blank]
    return RawTable(frame, name, header_guess=guess)


def _refuse_non_xlsx(head: bytes, name: str) -> None:
    """An .xlsx is a ZIP archive; CRMs also save web pages and old formats under that name."""
    if head.startswith(b"PK\x03\x04") or not head.strip():
        return
    fix = ("open it in Excel or LibreOffice and save it as an Excel workbook (.xlsx) or as CSV, "
           "then put that file in the folder")
    if _is_html(head):
        raise DataError(
            "this is a web page (an HTML table) saved with an .xlsx name, not an Excel workbook; "
            "Bitrix24 \"Excel\" exports are like this", file=name, fix=fix)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError("this is an old Excel .xls file saved with an .xlsx name", file=name, fix=fix)
    if head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"<?xml"):
        raise DataError("this is an XML file (an Excel 2003 XML spreadsheet?) saved with an .xlsx name",
                        file=name, fix=fix)


def read_parquet(path: Path, columns: list[str] | None = None) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = path.name
    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read this Parquet file ({exc})", file=name,
                        fix="write the file again with pandas/pyarrow, or export CSV") from None
    present = pfile.schema_arrow.names
    wanted = present if columns is None else [c for c in present if c in set(columns)]
    table = pfile.read(columns=wanted)
    # self_destruct frees Arrow buffers as columns convert: the big files fit in memory twice
    # otherwise. Strings become pandas' Arrow-backed "str" dtype (no Python objects).
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    return RawTable(frame, name, row_offset=1, row_kind="record", text=False)
