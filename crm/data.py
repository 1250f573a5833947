"""CrmData: the one object every detector receives.

Frames follow crm.schema exactly: canonical column names, ids as pandas string dtype,
timestamps as tz-aware UTC (datetime64[ns, UTC]), amounts as float64, booleans as bool.
A table the source did not provide is None, never an empty stand-in, so a detector can say
which file it needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd


@dataclass
class CrmData:
    managers: pd.DataFrame
    deals: pd.DataFrame
    stage_history: pd.DataFrame
    stages: list[str]  # pipeline order, first stage first; won/lost are statuses, not stages
    clients: pd.DataFrame | None = None
    emails: pd.DataFrame | None = None
    email_opens: pd.DataFrame | None = None
    activities: pd.DataFrame | None = None
    leads: pd.DataFrame | None = None
    # Where each table came from ("deals.csv", "SELECT ... ") for messages and errors.
    origins: dict[str, str] = field(default_factory=dict)
    # True when stage_history was derived from deals (creation into the first stage):
    # conversion insights then have no real history to work with.
    stage_history_derived: bool = False
    # Per table, the source's columns read into no canonical one (crm.normalize): a detector
    # that cannot run can name the one that would let it ("Дата изменения" for stalled_deal).
    unread_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Per table, canonical column -> the source's column read into it (for the same kind of hint).
    read_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    # Owner values that name nobody: the `[source.fill] manager_id` constants ("No owner", where
    # the CRM cleared the owner). A lead written to one has no manager, not one called "No owner".
    no_owner: frozenset[str] = frozenset()
    # The managers file's placeholder rows the loader dropped (crm.owners: a catch-all user named
    # «Не назначен»), id -> name: their ids are in no_owner; the name is what messages quote.
    placeholder_names: dict[str, str] = field(default_factory=dict)
    # Read live (a CRM connector's synced store, a SQL database): complete up to the read, so a
    # quiet morning is no sign the data ended. A files export ends at its newest record.
    live: bool = False
    _filled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def has_column(self, table: str, column: str) -> bool:
        """The source gave `column` of `table` with at least one value.

        The loader fills an absent optional column with nulls (so every frame has every
        canonical column); a detector must not read such a column as "not done yet", so it
        asks here. Capacity and active get non-null defaults and always count as given.
        """
        key = (table, column)
        if key not in self._filled:
            frame = getattr(self, table, None)
            self._filled[key] = (isinstance(frame, pd.DataFrame) and column in frame.columns
                                 and bool(frame[column].notna().any()))
        return self._filled[key]

    def has(self, table: str) -> bool:
        return getattr(self, table, None) is not None

    def table(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)

    def table_names(self) -> list[str]:
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), pd.DataFrame)]
