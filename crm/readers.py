"""Read one exported file (CSV, XLSX, Parquet) into a raw frame with the file's own names.

Real exports are messy: Russian Excel writes cp1251 with `;`, others UTF-8 with a BOM, or a
tab-separated "Unicode text". We detect the encoding and the delimiter instead of asking.
Anything that is not a table at all (binary, a saved web page) gets a clear DataError.
Renaming and type conversion happen later, in crm.normalize.
"""
from __future__ import annotations

import codecs
import csv
import html
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crm.errors import DataError, DataWarning

SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".parquet")
DELIMITERS = (",", ";", "\t", "|")  # "|": 1C and database dumps
_SAMPLE_BYTES = 64 * 1024
_CHUNK_BYTES = 16 * 1024 * 1024
# Limits that keep one hostile or mistaken file from taking the machine down. A CRM export
# of a million deals is a few hundred MB; the limit is `[source] max_file_mb`.
DEFAULT_MAX_FILE_MB = 1024
MAX_COLUMNS = 2000  # amoCRM/Bitrix24 exports with every custom field have a few hundred


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
    # Soft problems found while reading (bytes that were not text), reported with the load.
    notes: list[DataWarning] = field(default_factory=list)
    # False for a file outside the data folder: its cells are never shown in messages.
    show_values: bool = True
    # A file read again as another table (the deals file as activities, README's recipe): only
    # the columns the config maps are read, none by its canonical name (Salesforce's deals
    # "Type", New Customer, is no activity type).
    mapped_only: bool = False
    # Several files read as this one table (crm.several_files): each file's own reading; `frame`
    # is then their rows one after another, and `origin` their names.
    parts: list["RawTable"] = field(default_factory=list)

    def row_number(self, label: int) -> int:
        return int(label) + self.row_offset


def read_file(path: Path, columns: list[str] | None = None,
              expected: list[str] | None = None, *, max_mb: float = DEFAULT_MAX_FILE_MB) -> RawTable:
    """Read a CSV/TSV/XLSX/Parquet file; `columns` limits what Parquet reads (memory).

    `expected`: column names the table may have (mapped from config, else canonical); a
    spreadsheet whose first row does not hold them is searched for the row that does; a
    Parquet file without `columns` reads only these (case ignored).
    A file larger than `max_mb` megabytes is refused before it is read.
    """
    check_regular_file(path)
    try:
        size = path.stat().st_size
        if size > max_mb * 1024 * 1024:
            raise DataError(
                f"the file is {_size(size)}, more than the limit of {max_mb:,g} MB",
                file=path.name,
                fix="export fewer rows or columns (e.g. only the last two years), or raise the "
                "limit with [source] max_file_mb = ... if this machine has the memory "
                "(about three times the file size)",
            )
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return read_parquet(path, columns, expected, max_mb=max_mb)
        if suffix in (".xls", ".xlsx") and _is_html(_head(path)):
            return read_html_table(path, expected)  # Bitrix24's "Excel" export
        if suffix == ".xlsx":
            return read_xlsx(path, expected)
        if suffix == ".xls":
            raise DataError(
                "old Excel .xls files are not supported", file=path.name,
                fix="open it in Excel or LibreOffice and save it as .xlsx or .csv",
            )
        return read_csv(path, expected)
    except OSError as exc:
        raise unreadable(path, exc) from None
    except MemoryError:
        raise DataError(
            "the file does not fit in memory", file=path.name,
            fix="export fewer rows or columns, or lower [source] max_file_mb so such a file is "
            "refused before it is read",
        ) from None


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MB" if n >= 100 * 1024 else f"{n / 1024:,.0f} KB"


def unreadable(path: Path, exc: OSError) -> DataError:
    """An OSError while reading, in words: permission denied, a vanished file, a disk error."""
    reason = exc.strerror or exc.__class__.__name__
    fix = ("give the user that runs crm-pulse read access to it (e.g. chmod o+r, or add that "
           "user to the file's group)") if isinstance(exc, PermissionError) else \
        "check that the file is complete and the disk or network share is available"
    return DataError(f"cannot read the file ({reason})", file=path.name, fix=fix)


def check_regular_file(path: Path) -> None:
    """A table must be a regular file: say what a directory, pipe or dangling link is instead
    of ignoring it (or, for a named pipe, blocking forever on read)."""
    import os
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DataError(
                f"this is a broken symbolic link (it points to {os.readlink(path)!r}, which does not exist)",
                file=path.name, fix="point the link at the export, or put the file itself in the folder",
            ) from None
        raise DataError("the file does not exist", file=path.name,
                        fix="check the file name and the folder") from None
    except OSError as exc:
        raise unreadable(path, exc) from None
    if stat.S_ISREG(st.st_mode):
        return
    what = ("a folder" if stat.S_ISDIR(st.st_mode) else
            "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device or other special file")
    raise DataError(f"this is {what}, not a file", file=path.name,
                    fix="put the exported file itself under this name, or rename what is there")


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


def _filled_cells(row) -> list[object]:
    """The cells of a spreadsheet row that hold something: not None, NaN or blank text."""
    return [c for c in row if c is not None and not (isinstance(c, float) and c != c) and str(c).strip()]


def _looks_like_header(row: list[object], width: int) -> bool:
    """A row of text labels filling most of the table's width."""
    filled = _filled_cells(row)
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


@dataclass
class EncodingEvidence:
    """What decoding the whole file as UTF-8 showed: bad sequences vs good non-ASCII letters."""

    encoding: str
    bad: int = 0  # byte sequences that are not UTF-8 (replaced by U+FFFD when read as UTF-8)
    good: int = 0  # non-ASCII characters that were valid UTF-8


def _utf8_counts(chunks) -> tuple[int, int]:
    """(bad sequences, good non-ASCII characters) over all chunks, in C-speed string ops."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    high = bytes(range(128, 256))
    bad = chars = ascii_bytes = 0
    pending = None
    for chunk in chunks:
        if pending is not None:
            text = decoder.decode(pending)
            bad += text.count("\ufffd") - pending.count(b"\xef\xbf\xbd")
            chars += len(text)
            ascii_bytes += len(pending.translate(None, high))
        pending = chunk
    last = pending or b""
    text = decoder.decode(last, final=True)
    bad += text.count("\ufffd") - last.count(b"\xef\xbf\xbd")
    chars += len(text)
    ascii_bytes += len(last.translate(None, high))
    return bad, max(chars - ascii_bytes - bad, 0)


def _all_utf8(chunks) -> bool:
    """Strict UTF-8 over all chunks: the common case, one fast pass with nothing counted."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for chunk in chunks:
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False


def weigh_encoding(chunks, head: bytes) -> EncodingEvidence:
    """Decide the encoding from the evidence in the whole file, not its first error.

    `chunks()` yields the file's bytes from the start (called again for a second pass).
    UTF-8 when every byte is UTF-8, or when the valid non-ASCII UTF-8 letters outnumber the bad
    sequences (a stray Latin-1 byte in a UTF-8 export: the few bad bytes are replaced and
    reported, the names stay readable). Otherwise cp1251, as Russian Excel writes it, even
    behind a UTF-8 BOM (a converter that added the mark but kept the bytes).
    """
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return EncodingEvidence("utf-16")
    if wide := utf16_without_bom(head):
        return EncodingEvidence(wide)
    bom = head.startswith(codecs.BOM_UTF8)
    if _all_utf8(chunks()):
        return EncodingEvidence("utf-8-sig" if bom else "utf-8")
    bad, good = _utf8_counts(chunks())
    if good > bad:  # a BOM does not outvote the bytes: cp1251 text behind one is still cp1251
        return EncodingEvidence("utf-8-sig" if bom else "utf-8", bad, good)
    return EncodingEvidence("cp1251", bad, good)


def utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le'/'-be' for UTF-16 text that lost its BOM (a script's "Unicode" export): a
    zero high byte on every digit, comma and Latin letter, so on one side of the pairs only (a
    Cyrillic letter's high byte is 04); else None (binary has zero bytes on both sides)."""
    pairs = len(head) // 2
    if pairs < 8:
        return None
    even, odd = head[0:2 * pairs:2].count(0), head[1:2 * pairs:2].count(0)
    if odd >= 0.3 * pairs and even <= 0.01 * pairs:
        return "utf-16-le"
    if even >= 0.3 * pairs and odd <= 0.01 * pairs:
        return "utf-16-be"
    return None


def detect_encoding(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1251 as Russian Excel writes it."""
    evidence = weigh_encoding(lambda: [data], data[:4])
    if evidence.encoding == "cp1251":
        _check_cp1251([data])
    return evidence.encoding


# Code pages other than Windows-1251 and UTF-8: Russian from a Mac, DOS or a Unix script, and
# Western European (Windows-1252, Mac Roman) from an EU or US CRM. Each decodes any byte, so only
# the words tell them apart: read as Windows-1251 they load as garbage ("Josй Mьller").
CODEPAGE_NAMES = {"koi8_r": "KOI8-R", "mac_cyrillic": "Mac Cyrillic", "cp866": "DOS (CP866)",
                  "cp1252": "Western European (Windows-1252)", "mac_roman": "Mac Roman"}
_WORD = re.compile("[A-Za-zÀ-ÖØ-öø-ÿА-Яа-яЁё]+")
_RUSSIAN_SHAPE = re.compile("[А-ЯЁ]?[а-яё]+|[А-ЯЁ]+")  # "Анна", "звонок", "ТОО": not "уЧБТПЮОЩК"
_LATIN_SHAPE = re.compile("[A-ZÀ-ÖØ-Þ]?[a-zß-öø-ÿ]+|[A-ZÀ-ÖØ-Þ]+")
_PLAIN = frozenset(chr(c) for c in range(128)) | frozenset("«»№—–…“”„’×₸\u00a0")


def _good_word(word: str) -> bool:
    """One script, shaped as people write it; a Latin word with few accents ("Müller", not "Ñâàðî")."""
    if _RUSSIAN_SHAPE.fullmatch(word):
        return True
    accents = sum(1 for c in word if c >= "\u00c0")
    return bool(_LATIN_SHAPE.fullmatch(word)) and accents * 3 <= len(word)


def _text_score(text: str) -> tuple[int, int]:
    """(score, good words) over the words with a non-ASCII letter: a letter of a well-shaped word
    counts 1, of a misshapen one -1, a symbol that is neither such a letter nor usual punctuation
    -2 (in letters, not words: garbage split into short words does not win by their number)."""
    words = [w for w in _WORD.findall(text) if not w.isascii()]
    good = [w for w in words if _good_word(w)]
    letters = sum(len(w) for w in good) * 2 - sum(len(w) for w in words)
    odd = sum(1 for c in text if c not in _PLAIN and not _WORD.match(c))
    return letters - 2 * odd, len(good)


def other_codepage(head: bytes) -> str | None:
    """The code page whose words read clearly better than Windows-1251's; None keeps Windows-1251."""
    best, (best_score, _) = None, _text_score(head.decode("cp1251", errors="replace"))
    for codepage in CODEPAGE_NAMES:
        score, good = _text_score(head.decode(codepage, errors="replace"))
        if score > best_score and good:
            best, best_score = codepage, score
    return best


def _check_cp1251(chunks, file: str | None = None) -> None:
    offset = 0
    for chunk in chunks:
        try:
            chunk.decode("cp1251")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"cannot tell the text encoding (byte {offset + exc.start} is neither UTF-8 nor cp1251)",
                file=file, fix="export the file as CSV UTF-8",
            ) from None
        offset += len(chunk)


def _file_chunks(path: Path):
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            yield chunk


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


def _head(path: Path, size: int = 2048) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def _is_html(data: bytes) -> bool:
    head = data[:2048].lstrip(codecs.BOM_UTF8 + b" \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<table", b"<meta")) or b"<html" in head[:512] \
        or b"<table" in head[:1024]


def is_html_table(path: Path) -> bool:
    """A web page saved with a spreadsheet name (Bitrix24's "Excel" export): read as a table."""
    try:
        return path.is_file() and _is_html(_head(path))  # is_file: never open a named pipe
    except OSError:
        return False


def _refuse_non_csv(data: bytes, name: str, *, whole: bool = True) -> None:
    """`data`: the file's first bytes; `whole` when that is all of it."""
    if whole and not data.strip():
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
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data[:_SAMPLE_BYTES] \
            and not utf16_without_bom(data[:_SAMPLE_BYTES]):
        raise DataError(
            "this is a binary file, not a CSV export", file=name,
            fix="export the table from the CRM as CSV (UTF-8 or Windows-1251) or XLSX",
        )


def read_csv(path: Path, expected: list[str] | None = None) -> RawTable:
    """Stream the file: the encoding is weighed over all of it in chunks, then pandas reads it
    from disk (never a second copy of the bytes in memory)."""
    name = path.name
    size = path.stat().st_size
    head = _head(path, _SAMPLE_BYTES)
    _refuse_non_csv(head, name, whole=len(head) >= size)
    evidence = weigh_encoding(lambda: _file_chunks(path), head)
    codepage = other_codepage(head) if evidence.encoding == "cp1251" else None
    if codepage:
        evidence.encoding = codepage  # every byte means a letter there: nothing to check
    elif evidence.encoding == "cp1251":
        _check_cp1251(_file_chunks(path), name)
    encoding = evidence.encoding
    sample = head.decode(encoding, errors="ignore")
    delimiter = detect_delimiter(sample)
    skip, guess, delimiter = _csv_header(sample, delimiter, expected)
    _refuse_too_wide(sample, delimiter, skip, name)
    _recovered.words = 0
    try:
        frame = pd.read_csv(
            path, sep=delimiter, encoding=encoding, dtype=str,
            encoding_errors=CP1251_WORDS if evidence.bad and encoding.startswith("utf-8") else
            "replace" if evidence.bad else "strict",
            keep_default_na=False, na_values=[""], skip_blank_lines=False, skiprows=skip,
        )
    except pd.errors.EmptyDataError:
        raise DataError("the file has no header row", file=name,
                        fix="the first row must hold the column names") from None
    except UnicodeError:
        raise DataError(f"the file is not valid {encoding} text", file=name,
                        fix="export the file as CSV UTF-8") from None
    except pd.errors.ParserError as exc:
        unclosed = re.search(r"EOF inside string starting at row (\d+)", str(exc))
        if unclosed:  # pandas counts rows from 0, the header included: a spreadsheet's row is one more
            raise DataError(
                "a value opens with a double quote (\") that is not closed where the value ends, so "
                "the rest of the file would be read as one cell", file=name, row=int(unclosed[1]) + 1,
                fix="close the quote or remove it in that row (a quote inside a value is written twice: "
                "\"\"), or export the file again",
            ) from None
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (f"row {found[2]} has {found[3]} values but the header has {found[1]} columns"
                  if found else str(exc).strip().splitlines()[0])
        raise DataError(
            f"the rows do not line up with the header: {detail}", file=name,
            fix=_above_header(guess) if guess else
            f"check that values containing {delimiter!r} are in double quotes",
        ) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas makes the first column the index when every row has one value more than the
        # header: a decimal comma in a comma-separated file, or a missing header name
        raise DataError(
            f"the rows do not line up with the header: row {skip + 2} has {len(frame.columns) + 1} "
            f"values but the header has {len(frame.columns)} columns", file=name,
            fix=_above_header(guess) if guess else
            f"check that values containing {delimiter!r} are in double quotes "
            "(e.g. numbers written with a decimal comma), and that every column has a name",
        )
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    _refuse_swallowed_rows(frame, delimiter, name, 2 + skip)
    bom_in_cp1251 = encoding == "cp1251" and head.startswith(codecs.BOM_UTF8)
    if bom_in_cp1251 and not skip:  # the BOM's three bytes read as cp1251 are 'п»ї'
        frame.columns = [frame.columns[0].removeprefix(_BOM_AS_CP1251).strip(), *frame.columns[1:]]
    if guess is None:
        _refuse_one_column(frame, expected, name)
    # skipped title lines: data label 0 is spreadsheet row skip + 2
    frame, footer = drop_footer(frame, name, 2 + skip)
    frame, sections = drop_sections(frame, name, 2 + skip, _title_above(sample, delimiter, skip))
    raw = RawTable(frame, name, row_offset=2 + skip, header_guess=guess,
                   notes=footer + sections + _header_notes(frame, name))
    raw.notes += _encoding_notes(raw, evidence, _recovered.words)
    if codepage:
        raw.notes.append(DataWarning(
            "other_codepage", name, 1,
            f"the text is in the {CODEPAGE_NAMES[codepage]} code page, not UTF-8 or Windows-1251 (only "
            f"that code page gives real words); read as {CODEPAGE_NAMES[codepage]}. Export the file again "
            "as CSV UTF-8 to be sure"))
    if bom_in_cp1251:
        raw.notes.append(DataWarning(
            "bom_not_utf8", name, 1,
            "the file starts with a UTF-8 mark (BOM) but its text is Windows-1251; read as "
            "Windows-1251. If names look garbled, export the file again as CSV UTF-8"))
    return raw


_BOM_AS_CP1251 = codecs.BOM_UTF8.decode("cp1251")


def _header_notes(frame: pd.DataFrame, name: str) -> list[DataWarning]:
    """What the header hides: names that occur more than once (pandas keeps the first as named
    and calls the next 'name.1', so which one is read was never said: a copied column, two custom
    fields with one title), and columns with values under a blank name (never read)."""
    notes = []
    blank = [j for j, c in enumerate(frame.columns)
             if str(c).startswith("Unnamed: ") and frame.iloc[:, j].notna().any()]
    if blank:
        notes.append(DataWarning(
            "unnamed_columns", name, len(blank),
            f"{len(blank)} column(s) hold values but have no name in the header (column"
            f"{'s' if len(blank) > 1 else ''} {', '.join(str(j + 1) for j in blank[:5])}); not read: give them a "
            "name if they matter"))
    names = {str(c) for c in frame.columns}
    twice = sorted({m[1] for c in names if (m := re.fullmatch(r"(.+)\.(\d+)", c)) and m[1] in names})
    if not twice:
        return notes
    return notes + [DataWarning(
        "duplicate_columns", name, len(twice),
        f"the header names {', '.join(repr(t) for t in twice[:5])} more than once; the first column "
        "of each name is read, the others (named like 'name.1') are not: rename or delete the copies, "
        "or map the one you mean in [source.columns]",
    )]


def _refuse_swallowed_rows(frame: pd.DataFrame, delimiter: str, name: str, row_offset: int) -> None:
    """A quote opened in one row and closed rows later reads the rows between as one cell, and
    when the field count still fits, pandas says nothing: those records vanish. A multi-line cell
    holding a line with as many delimiters as a row has is such a swallow (an address or a
    comment over two lines has a few commas, not a row's worth)."""
    need = len(frame.columns) - 1
    if need < 2:
        return
    for col in frame.columns:
        cells = frame[col]
        multi = cells.str.contains("\n", regex=False).fillna(False).astype(bool)
        if not multi.any():
            continue
        for label, text in cells[multi].items():
            lines = text.split("\n")[1:]
            rowlike = [ln for ln in lines if ln.count(delimiter) >= need]
            if rowlike:
                raise DataError(
                    f"a value starts with a double quote (\") that is closed only {len(lines)} line(s) "
                    f"later, so {len(rowlike)} row(s) below it were read into this one cell", file=name,
                    row=int(label) + row_offset, column=str(col),
                    fix="remove the stray quote or close it where the value ends (a quote inside a "
                    "value is written twice: \"\"), or export the file again",
                )


def drop_footer(frame: pd.DataFrame, name: str, row_offset: int) -> tuple[pd.DataFrame, list[DataWarning]]:
    """Blank rows out; and a report's footer: after the last row of data, a blank row and then
    only rows of one cell (Salesforce's formatted export ends with the report's name, a copyright
    line, "Generated By: ..." and the company). Read as data, those lines became deals with an
    empty owner and no dates, and the load stopped on them."""
    filled = frame.notna().to_numpy().sum(axis=1) if len(frame.columns) > 1 else None
    notes: list[DataWarning] = []
    if filled is not None and len(filled):
        data_rows = (filled > 1).nonzero()[0]
        last = int(data_rows[-1]) if len(data_rows) else -1
        tail = filled[last + 1:]
        if last >= 0 and len(tail) > 1 and tail[0] == 0 and (tail > 0).any():
            lines = [row_offset + int(i) for i in range(last + 1, len(filled)) if filled[i]]
            span = f"row {lines[0]}" if len(lines) == 1 else f"rows {lines[0]}-{lines[-1]}"
            notes.append(DataWarning(
                "report_footer", name, len(lines),
                f"{len(lines)} line(s) below the table after a blank row ({span}) hold one cell each: "
                "a report's footer (its name, copyright, 'Generated By'), not records; not read"))
            frame = frame.iloc[:last + 1]
            filled = filled[:last + 1]
    blank = frame.isna().all(axis=1) if filled is None else pd.Series(filled == 0, index=frame.index)
    if blank.any():
        frame = frame[~blank]
    frame, totals = _drop_totals(frame, name, row_offset)
    return frame, notes + totals


# The first filled cell of a spreadsheet's totals line: "Итого", "Итого: 40 сделок", "Total 1 200".
_TOTALS = re.compile(r"(итого|итог|всего|total|totals|grand total|subtotal|сумма итого)\.?"
                     r"(\s*:.*|\s+\d.*)?", re.IGNORECASE | re.DOTALL)
_TOTALS_ROWS = 3  # a total, maybe a count and an average: never more below a table


def _drop_totals(frame: pd.DataFrame, name: str, row_offset: int) -> tuple[pd.DataFrame, list[DataWarning]]:
    """The totals lines Excel users add under a table ("Итого", "Total"): read as a record they
    stopped the load on an empty required cell whose fix ("fill in the cell") was wrong, or
    became a deal with a summed amount. Only the last rows, and only when their first filled
    cell is a totals word and at most half their cells are filled; said with their row numbers."""
    if len(frame.columns) < 2 or not len(frame):
        return frame, []
    cut, words = len(frame), []
    tail = frame.iloc[-_TOTALS_ROWS:].astype(object).to_numpy()
    for row in tail[::-1]:
        filled = _filled_cells(row)
        first = filled[0] if filled else None
        if first is None or not isinstance(first, str) or not (found := _TOTALS.fullmatch(first.strip())):
            break
        if 2 * len(filled) > len(row):
            break  # most cells filled: a record whose first word happens to be «Итого», not the totals
        cut -= 1
        words.append(found[1])
    if cut == len(frame):
        return frame, []
    rows = [row_offset + int(i) for i in frame.index[cut:]]
    span = f"row {rows[0]}, the last, begins" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}, the last, begin"
    return frame.iloc[:cut], [DataWarning(
        "totals_row", name, len(rows),
        f"{span} with {words[-1]!r}: a totals line, not a record; not read")]


# --- one Windows-1251 line in a UTF-8 file --------------------------------------------------

CP1251_WORDS = "crm-cp1251-words"
_RUSSIAN = re.compile("[А-Яа-яЁё]+")
_recovered = threading.local()  # how many words the handler below read as cp1251, per thread
_recovered.words = 0


def _utf8_starts(data, i: int) -> bool:
    """A valid UTF-8 character begins at data[i]."""
    lead = data[i]
    n = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if not n or i + n > len(data):
        return False
    try:
        bytes(data[i:i + n]).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _cp1251_words(exc: UnicodeError) -> tuple[str, int]:
    """Decoding error handler for UTF-8 files: a run of bytes that are not UTF-8 and spell a
    Russian word in Windows-1251 (a line pasted from an old export) is read as that word; any
    other bad byte becomes U+FFFD, as errors="replace" does. A word has two different letters
    ("КП" is one), so a stray byte or its repeats ("\\xe9", "ййй") is never taken for one; the run
    stops where valid UTF-8 begins, so the letters after a stray byte stay as written."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    data, end = exc.object, exc.start + 1
    while end < len(data) and data[end] >= 0x80 and not _utf8_starts(data, end):
        end += 1
    if end - exc.start >= 2:
        try:
            text = bytes(data[exc.start:end]).decode("cp1251")
        except UnicodeDecodeError:
            text = ""
        if _RUSSIAN.fullmatch(text) and len(set(text.lower())) > 1:
            _recovered.words = getattr(_recovered, "words", 0) + 1
            return text, end
    return "\ufffd", exc.end


codecs.register_error(CP1251_WORDS, _cp1251_words)


# A board export's blocks (monday.com: a group title row, the header again, the items; a
# "Subitems" header with the subitems under an item) and a hand-kept sheet's totals row.
GROUP_COLUMN = "Group"
_SUBITEMS = frozenset({"subitems", "subitem", "подэлементы", "подэлемент"})


def _cell_words(column: pd.Series) -> pd.Series:
    return column.astype(str).str.strip().str.lower().str.rstrip(":").where(column.notna(), "")


def drop_sections(frame: pd.DataFrame, name: str, row_offset: int,
                  title_above: str | None = None) -> tuple[pd.DataFrame, list[DataWarning]]:
    """Rows of a board export or a hand-kept sheet that are not records, taken out with one note
    each: the header repeated (one per group), a group's title alone on the row above it (kept
    in a new column "Group", so a board whose groups are stages can map it), a "Subitems" header
    and the subitem rows under it (first cell empty); a totals row at the end is drop_footer's. Read as records, a group title became a deal with no id and the subitems deals of
    their own. `title_above`: the one-cell row right above the header, a group's title when the
    header repeats."""
    width = len(frame.columns)
    if width < 3 or frame.empty:
        return frame, []
    notes: list[DataWarning] = []
    filled = frame.notna().sum(axis=1)
    # a repeated header repeats the first named column's name: only those rows are compared whole
    key = next((j for j, c in enumerate(frame.columns) if not str(c).startswith("Unnamed: ")), 0)
    candidates = frame[(_cell_words(frame.iloc[:, key]) == str(frame.columns[key]).strip().lower()).to_numpy()]
    same = pd.Series(0, index=candidates.index)
    for j, col in enumerate(frame.columns):
        same += (_cell_words(candidates.iloc[:, j]) == str(col).strip().lower()).astype(int)
    header_again = pd.Series(False, index=frame.index)
    header_again.loc[same.index] = (same >= 2) & (same == filled.loc[same.index])
    drop = header_again.copy()
    group = pd.Series(None, index=frame.index, dtype=object)
    positions = {label: k for k, label in enumerate(frame.index)}
    titles = 0
    for label in frame.index[header_again.to_numpy()]:
        k = positions[label] - 1
        while k >= 0 and filled.iloc[k] == 0:
            k -= 1
        if k >= 0 and filled.iloc[k] == 1 and not drop.iloc[k]:
            title = frame.iloc[k].dropna()
            group.iloc[k] = str(title.iloc[0]).strip()
            drop.iloc[k] = True
            titles += 1
    first = frame.iloc[:, 0]
    started = first.notna()
    sub_head = started & _cell_words(first).isin(_SUBITEMS) & (filled >= 2)
    block = started.cumsum()
    subitems = block.isin(set(block[sub_head])) & ~started & (filled > 0)
    drop |= sub_head | subitems
    if header_again.any():
        notes.append(DataWarning(
            "repeated_header", name, int(header_again.sum()),
            f"the header row is repeated {int(header_again.sum())} time(s) inside the table (a board "
            "export repeats it under each group's title): those rows are not read",
            [f"row {row_offset + int(i)}" for i in frame.index[header_again.to_numpy()][:5]]))
    if titles:
        marks = group.copy()
        if title_above is not None and pd.isna(marks.iloc[0]):
            marks.iloc[0] = title_above
        marks = marks.ffill()
        if GROUP_COLUMN not in frame.columns and marks.notna().any():
            frame = frame.assign(**{GROUP_COLUMN: marks})
        names = list(dict.fromkeys(([title_above] if title_above else []) + list(group.dropna())))
        count = titles + (title_above is not None)  # the first group's title is above the header
        notes.append(DataWarning(
            "group_titles", name, count,
            f"{count} row(s) hold only a group's title above the (repeated) header "
            f"({', '.join(repr(n) for n in names[:8])}): not records; each row below a title "
            f"has it in a column {GROUP_COLUMN!r} (map it in config if your groups are stages "
            "or outcomes)", [f"row {row_offset + int(i)}" for i in group.dropna().index[:5]]))
    if (sub_head | subitems).any():
        notes.append(DataWarning(
            "subitems", name, int(subitems.sum()),
            f"{int(subitems.sum())} subitem row(s) under {int(sub_head.sum())} 'Subitems' header(s) "
            "are not read (they are parts of an item, not records of this table)",
            [f"row {row_offset + int(i)}" for i in frame.index[sub_head.to_numpy()][:5]]))
    if drop.any():
        frame = frame[~drop.to_numpy()]
    return frame, notes


def _encoding_notes(raw: RawTable, evidence: EncodingEvidence, recovered: int = 0) -> list[DataWarning]:
    """Say what decoding did whenever the file was not clean text in one encoding."""
    if recovered:
        notes = [DataWarning(
            "cp1251_in_utf8", raw.origin, recovered,
            f"{recovered} word(s) in this UTF-8 file are written in Windows-1251 (a line pasted from "
            "another export?); read as Windows-1251. Export the file again as CSV UTF-8 to be sure",
        )]
        return notes + [n for n in _encoding_notes(raw, evidence) if n.count]
    if evidence.bad and evidence.encoding.startswith("utf-8"):
        frame = raw.frame
        hit = pd.Series(False, index=frame.index)
        for col in frame.columns:
            hit |= frame[col].str.contains("\ufffd", regex=False).fillna(False).astype(bool)
        rows = [f"row {raw.row_number(i)}" for i in frame.index[hit.to_numpy()][:5]]
        header = any("\ufffd" in str(c) for c in frame.columns)
        if not hit.any() and not header:
            return []  # the bad bytes were in lines not read (a title above the header, a footer)
        return [DataWarning(
            "not_utf8", raw.origin, int(hit.sum()) + int(header),
            f"{evidence.bad} byte sequence(s) are not UTF-8 in an otherwise UTF-8 file "
            f"({evidence.good} valid non-ASCII letters); the file was read as UTF-8 and the bad "
            f"bytes replaced by \ufffd in {int(hit.sum())} row(s)" + (" and the header" if header else "")
            + "; fix those cells in the CRM or export again as CSV UTF-8",
            (["the header"] if header else []) + rows,
        )]
    if evidence.encoding == "cp1251" and evidence.good and evidence.good * 10 >= evidence.bad:
        return [DataWarning(
            "mixed_encoding", raw.origin, evidence.good,
            f"read as Windows-1251 ({evidence.bad} byte sequence(s) are not UTF-8), but "
            f"{evidence.good} character(s) look like UTF-8: if names look garbled, the file mixes "
            "encodings; export it again as CSV UTF-8",
        )]
    return []


def _refuse_too_wide(sample: str, delimiter: str, skip: int, name: str) -> None:
    """Count the header's columns in the first 64 KB, before pandas parses every row."""
    lines = sample.splitlines()
    header = lines[skip] if len(lines) > skip else sample
    try:
        width = len(next(csv.reader([header], delimiter=delimiter)))
    except (csv.Error, StopIteration):
        width = header.count(delimiter) + 1
    if width > MAX_COLUMNS:
        raise DataError(
            f"the header has {'at least ' if len(lines) <= skip + 1 else ''}{width:,} columns, more than "
            f"the {MAX_COLUMNS:,} a CRM table can have", file=name,
            fix="export only the columns crm-pulse uses (see the README) or check that the "
            "file is the table you meant",
        )


def _refuse_one_column(frame: pd.DataFrame, expected: list[str] | None, name: str) -> None:
    """A 'table' of one column that is no expected name is not a CSV export (a config file,
    /etc/passwd, a list of notes). Said without echoing the line: it may hold secrets."""
    if len(frame.columns) != 1 or not expected:
        return
    if str(frame.columns[0]).strip().lower() in {e.strip().lower() for e in expected}:
        return
    raise DataError(
        "the first row is not a header of a table: it has no ',', ';', '|' or tab between column "
        "names (its content is not shown)", file=name,
        fix="export the table from the CRM as CSV (comma, semicolon or tab separated) or XLSX, "
        "and check that this is the file you meant",
    )


def _title_above(sample: str, delimiter: str, skip: int) -> str | None:
    """The one filled cell of the line right above a header found below the first line."""
    if skip < 1:
        return None
    try:
        rows = list(csv.reader(sample.splitlines()[skip - 1:skip], delimiter=delimiter))
    except csv.Error:
        return None
    cells = [c.strip() for c in rows[0] if c.strip()] if rows else []
    return cells[0] if len(cells) == 1 else None


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
    _refuse_wide_xlsx(path, name)
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            frame = pd.read_excel(book, sheet_name=0, dtype=object)
            others = _other_sheets(book, name)
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
    frame, footer = drop_footer(frame, name, 2)
    above = top[found - 1] if found else None
    title = _filled_cells(above) if above is not None else []
    frame, sections = drop_sections(frame, name, 2, str(title[0]).strip() if len(title) == 1 else None)
    return RawTable(frame, name, header_guess=guess,
                    notes=footer + sections + others + _header_notes(frame, name))


def _other_sheets(book: pd.ExcelFile, name: str) -> list[DataWarning]:
    """One note naming the workbook's other sheets that hold something: only the first sheet is
    read, and a sheet CRM keeps its closed deals on a second one («Архив»). They are not read
    on a guess (another sheet may be a summary, a pivot or a price list), but not in silence."""
    filled = []
    for sheet in book.sheet_names[1:]:
        rows = pd.read_excel(book, sheet_name=sheet, header=None, dtype=object, nrows=50).dropna(how="all")
        if len(rows) > 1:
            filled.append(f"{sheet!r} ({len(rows)}{'+' if len(rows) >= 50 else ''} rows)")
    if not filled:
        return []
    return [DataWarning(
        "other_sheets", name, len(filled),
        f"only the first sheet ({book.sheet_names[0]!r}) is read; the workbook's other sheet(s) "
        f"{', '.join(filled)} are not: if they hold more records of this table (an archive of "
        "closed deals), move those rows to the first sheet or download each sheet as its own file")]


def read_html_table(path: Path, expected: list[str] | None = None) -> RawTable:
    """A web page holding one table, saved with an .xls/.xlsx name: Bitrix24's "Excel" export.

    Read without lxml (pandas.read_html needs it): the first table's rows, <th> and <td> cells as
    text (entities decoded, <br> as a line break); the first row is the header.
    """
    name = path.name
    data = path.read_bytes()
    meta = re.search(rb"charset\s*=\s*[\"']?([\w-]+)", data[:4096], re.IGNORECASE)
    encoding = meta[1].decode("ascii").lower() if meta else detect_encoding(data)
    try:
        text = data.decode(encoding)
    except (LookupError, UnicodeError):
        encoding = detect_encoding(data)
        text = data.decode(encoding, errors="replace")
    rows = _table_rows(text)
    if not rows:
        raise DataError("this web page (saved with an Excel name) holds no table", file=name,
                        fix="export the list from the CRM again, or as CSV")
    width = max(len(r) for r in rows)
    if width > MAX_COLUMNS:
        raise DataError(
            f"the table has {width:,} columns, more than the {MAX_COLUMNS:,} a CRM table can have",
            file=name, fix="export only the columns crm-pulse uses (see the README)")
    rows = [r + [""] * (width - len(r)) for r in rows]
    header, body = rows[0], rows[1:]
    found = find_header(header, body[:HEADER_SEARCH_ROWS], expected)
    skip = 0
    if found is not None:
        header, body, skip = body[found], body[found + 1:], found + 1
    frame = pd.DataFrame(body, columns=_unique([c.strip() for c in header]), dtype=object)
    frame = frame.replace("", None)
    frame.index = pd.RangeIndex(len(frame))
    frame, footer = drop_footer(frame, name, 2 + skip)
    return RawTable(frame, name, row_offset=2 + skip, notes=footer + _header_notes(frame, name))


_HTML_SKIP = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<(/?)(table|tr|td|th|br)\b[^>]*>", re.IGNORECASE)
_HTML_OTHER_TAG = re.compile(r"<[^>]*>")


_HTML_TABLE = re.compile(r"<table\b[^>]*>", re.IGNORECASE)
_HTML_TABLE_END = re.compile(r"</table\s*>", re.IGNORECASE)
_HTML_ROW = re.compile(r"<tr\b[^>]*>", re.IGNORECASE)
_HTML_CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)(?=<t[dh]\b|</t[dh]\s*>|</tr\s*>|$)", re.IGNORECASE | re.DOTALL)


def _cell_text(raw: str) -> str:
    """A cell's text: other tags dropped, entities decoded, <br> a line break, spaces collapsed."""
    if "<" in raw or "&" in raw or "\n" in raw:
        raw = _HTML_OTHER_TAG.sub("", re.sub(r"\s*<br\b[^>]*>\s*", "\0", raw, flags=re.IGNORECASE))
        return "\n".join(" ".join(ln.split()) for ln in html.unescape(raw).split("\0")).strip()
    return " ".join(raw.split())


def _table_rows(text: str) -> list[list[str]]:
    """Rows of the first <table>, by C-speed regexes over the few tags a table is made of
    (html.parser took 13 s for a 100,000-row export, this under 3 s); a table holding another table
    takes the slower scanner that keeps the inner one's text in its cell."""
    text = _HTML_SKIP.sub("", text)
    start = _HTML_TABLE.search(text)
    if start is None:
        return []
    end = _HTML_TABLE_END.search(text, start.end())
    inner = text[start.end():end.start() if end else len(text)]
    if _HTML_TABLE.search(inner):
        return _nested_table_rows(text)
    return [[_cell_text(c) for c in _HTML_CELL.findall(chunk)] for chunk in _HTML_ROW.split(inner)[1:]]


def _nested_table_rows(text: str) -> list[list[str]]:
    """Rows of the first top-level <table> when it holds another (its text stays in its cell)."""
    rows: list[list[str]] = []
    row: list[str] | None = None
    cell_start: int | None = None
    depth = 0

    def end_cell(at: int) -> None:
        nonlocal cell_start
        if cell_start is not None and row is not None:
            row.append(_cell_text(text[cell_start:at]))
        cell_start = None

    for m in _HTML_TAG.finditer(text):
        closing, tag = m[1] == "/", m[2].lower()
        if tag == "table":
            if not closing:
                depth += 1
                continue
            depth -= 1
            if depth == 0:
                end_cell(m.start())
                if row is not None:
                    rows.append(row)
                break
        elif depth != 1 or tag == "br":
            continue
        elif tag == "tr":
            end_cell(m.start())
            if row is not None:
                rows.append(row)
            row = [] if not closing else None
        elif closing:
            end_cell(m.start())
        else:  # <td>/<th>: a cell left open ends where the next begins
            end_cell(m.start())
            if row is None:
                row = []
            cell_start = m.end()
    else:
        end_cell(len(text))
        if row is not None:
            rows.append(row)
    return rows


def _refuse_wide_xlsx(path: Path, name: str) -> None:
    """The sheet's declared size, read before its cells: a 100,000-column sheet is refused."""
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError):
        return  # pd.read_excel says what is wrong with the file
    try:
        width = book.worksheets[0].max_column if book.worksheets else None
    except (ValueError, TypeError, KeyError):
        width = None
    finally:
        book.close()
    if width is not None and width > MAX_COLUMNS:
        raise DataError(
            f"the first sheet has {width:,} columns, more than the {MAX_COLUMNS:,} a CRM table can have",
            file=name, fix="export only the columns crm-pulse uses (see the README)")


def _refuse_non_xlsx(head: bytes, name: str) -> None:
    """An .xlsx is a ZIP archive; CRMs also save web pages and old formats under that name."""
    if head.startswith(b"PK\x03\x04") or not head.strip():
        return
    fix = ("open it in Excel or LibreOffice and save it as an Excel workbook (.xlsx) or as CSV, "
           "then put that file in the folder")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError("this is an old Excel .xls file saved with an .xlsx name", file=name, fix=fix)
    if head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"<?xml"):
        raise DataError("this is an XML file (an Excel 2003 XML spreadsheet?) saved with an .xlsx name",
                        file=name, fix=fix)


def read_parquet(path: Path, columns: list[str] | None = None,
                 expected: list[str] | None = None, *, max_mb: float = DEFAULT_MAX_FILE_MB) -> RawTable:
    """Only the columns asked for (`columns` exactly, else `expected` with case ignored).

    Any damage (empty, truncated, not Parquet at all, an unreadable column) is a DataError.
    Parquet is compressed, so `max_mb` also bounds the uncompressed size of the columns read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = path.name
    fix = "write the file again with pandas/pyarrow, or export CSV"
    try:
        pfile = pq.ParquetFile(path)
        present = pfile.schema_arrow.names
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(f"cannot read this Parquet file ({_first_line(exc)})", file=name,
                        fix=fix) from None
    if len(present) > MAX_COLUMNS:
        raise DataError(
            f"the file has {len(present):,} columns, more than the {MAX_COLUMNS:,} a CRM table can have",
            file=name, fix="write only the columns crm-pulse uses (see the README)")
    if columns is not None:
        wanted = [c for c in present if c in set(columns)]
    elif expected is not None:
        lowered = {e.lower() for e in expected}
        wanted = [c for c in present if c.lower() in lowered]
    else:
        wanted = present
    _refuse_big_parquet(pfile, wanted, max_mb, name)
    try:
        table = pfile.read(columns=wanted)
        # self_destruct frees Arrow buffers as columns convert: the big files fit in memory twice
        # otherwise. Strings become pandas' Arrow-backed "str" dtype (no Python objects).
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        raise DataError(f"cannot read the rows of this Parquet file ({_first_line(exc)})",
                        file=name, fix=fix) from None
    del table
    return RawTable(frame, name, row_offset=1, row_kind="record", text=False)


def _refuse_big_parquet(pfile, wanted: list[str], max_mb: float, name: str) -> None:
    """The uncompressed size of the columns to read, from the footer, against the limit."""
    meta = pfile.metadata
    indexes = [i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] in set(wanted)]
    total = sum(meta.row_group(g).column(i).total_uncompressed_size
                for g in range(meta.num_row_groups) for i in indexes)
    if total > max_mb * 1024 * 1024:
        raise DataError(
            f"the columns to read hold {total / 1024 / 1024:,.0f} MB uncompressed "
            f"({meta.num_rows:,} rows), more than the limit of {max_mb:,g} MB", file=name,
            fix="export fewer rows (e.g. only the last two years), or raise the limit with "
            "[source] max_file_mb = ... if this machine has the memory",
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _cut(text.splitlines()[0]) if text else exc.__class__.__name__


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
