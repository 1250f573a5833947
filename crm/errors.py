"""The two ways the data layer talks back to an admin: one hard error, or soft warnings.

A DataError stops the load and says, in one message, where the problem is (file, row as a
spreadsheet shows it, column), what was found, what was expected and how to fix it.
A DataWarning lets the load go on and says how many rows are affected, with a few examples.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class DataError(Exception):
    """Bad input the loader cannot work around. `str(err)` is the whole message for the user.

    `row` is what a person sees: in a CSV/XLSX file the header is row 1 and the first data
    row is row 2; for Parquet and SQL it is the record number (1 = first record).
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        row_kind: str = "row",
        column: str | None = None,
        value: object = None,
        expected: str | None = None,
        fix: str | None = None,
        more: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.row = row
        self.row_kind = row_kind
        self.column = column
        self.value = value
        self.expected = expected
        self.fix = fix
        self.more = more
        super().__init__(self.message())

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"{self.row_kind} {self.row}")
        if self.column:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def message(self) -> str:
        where = self.where()
        text = f"{where}: {self.problem}" if where else self.problem
        if self.value is not None:
            text += f" (found {_shown(self.value)})"
        if self.expected:
            text += f"; expected {self.expected}"
        text += "."
        if self.more:
            text += f" {self.more}"
        if self.fix:
            text += f" Fix: {self.fix}"
        return text

    def __str__(self) -> str:
        return self.message()


@dataclass
class DataWarning:
    """A soft problem: the load went on. `str(w)` is one line with the count and examples."""

    code: str  # e.g. "duplicate_ids", "unknown_manager", "future_dates"
    table: str
    count: int
    message: str  # what happened and what the loader did about it
    examples: list[str] = field(default_factory=list)
    # "note": what the loader read as it should (a stage history read from HubSpot's columns,
    # closing stages mapped as asked), said so an admin can check it, not a problem to fix
    level: str = "warning"

    def __str__(self) -> str:
        text = f"{self.table}: {self.message}"
        if self.examples:
            more = ", ...)" if self.count > len(self.examples) else ")"
            text += " (e.g. " + ", ".join(self.examples) + more
        return text


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Spaces Excel writes inside numbers ("1 234 567,00"): shown as the space a person sees, not as \xa0.
_SPACES = {"\\xa0": "\u00a0", "\\u202f": "\u202f", "\\u2009": "\u2009"}


def _shown(value: object) -> str:
    """The value quoted as in Python (control characters escaped), but non-breaking and thin
    spaces kept as spaces: '5 330 000,00 ₸', not '5\\xa0330\\xa0000,00 ₸'."""
    text = repr(_short(value))
    for escaped, space in _SPACES.items():
        text = text.replace(escaped, space)
    return text
