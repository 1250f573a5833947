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

    def row_number(self, label: int) -> int:
        return int(label) + self.row_offset


def read_file(path: Path, columns: list[str] | None = None) -> RawTable:
    """Read a CSV/TSV/XLSX/Parquet file; `columns` limits what Parquet reads (memory)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path, columns)
    if suffix == ".xlsx":
        return read_xlsx(path)
    if suffix == ".xls":
        raise DataError(
            "old Excel .xls files are not supported", file=path.name,
            fix="open it in Excel or LibreOffice and save it as .xlsx or .csv",
        )
    return read_csv(path)


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


def read_csv(path: Path) -> RawTable:
    name = path.name
    data = path.read_bytes()
    _refuse_non_csv(data, name)
    try:
        encoding = detect_encoding(data)
    except DataError as exc:
        raise DataError(exc.problem, file=name, fix=exc.fix) from None
    sample = data[:_SAMPLE_BYTES].decode(encoding, errors="ignore")
    delimiter = detect_delimiter(sample)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=delimiter, encoding=encoding, dtype=str,
            keep_default_na=False, na_values=[""], skip_blank_lines=False,
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
            fix=f"check that values containing {delimiter!r} are in double quotes",
        ) from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    blank = frame.isna().all(axis=1)
    if blank.any():
        frame = frame[~blank]
    return RawTable(frame, name)


# --- XLSX and Parquet ----------------------------------------------------------------------

def read_xlsx(path: Path) -> RawTable:
    name = path.name
    import zipfile

    from openpyxl.utils.exceptions import InvalidFileException

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
    blank = frame.isna().all(axis=1)
    if blank.any():
        frame = frame[~blank]
    return RawTable(frame, name)


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
