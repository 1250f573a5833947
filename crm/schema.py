"""The canonical CRM data contract: tables, columns, types, which are required.

Every source (files, SQL, demo) produces frames with exactly these column names and
dtypes, so detectors never see a CRM's own naming. See DESIGN.md, "Contracts".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["str", "float", "int", "bool", "datetime"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True
    default: object = None  # filled in when an optional column is absent
    # Numbers: the largest magnitude accepted. Beyond it a value is a typo or garbage (a
    # 20-digit amount, 1e308) that would overflow sums and formatting later; inf/nan never pass.
    limit: float = 1e15
    # The smallest magnitude other than 0 (capacity 1e-300 FTE would make a load of 1e300).
    smallest: float = 0.0
    # Whether negative numbers make sense (amounts: refunds; capacity: never).
    signed: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str | None  # the id column, unique per row, or None
    required: bool = False

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, kind: Kind, required: bool = True, default: object = None,
       limit: float = 1e15, smallest: float = 0.0, signed: bool = True) -> Column:
    return Column(name, kind, required, default, limit, smallest, signed)


DEAL_STATUSES = ("open", "won", "lost")
EMAIL_DIRECTIONS = ("out", "in")
ACTIVITY_TYPES = ("call", "meeting", "task", "email", "note")
# Columns whose values must be one of a fixed set after [source.values] mapping.
VALUE_SETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("deals", "status"): DEAL_STATUSES,
    ("emails", "direction"): EMAIL_DIRECTIONS,
    ("activities", "type"): ACTIVITY_TYPES,
}
# What a yes/no column (managers.active) accepts, lower-cased.
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t", "да", "истина", "1.0"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f", "нет", "ложь", "0.0"})
# activities.done: the status words activity lists write (Bitrix24 «Выполнено» Да/Нет, Pipedrive
# "Done" / "To do", HubSpot "Task Status" COMPLETED / NOT_STARTED ...), besides yes/no. A row not
# done is a plan, not a touch: crm.activities clears its done_at.
DONE_WORDS = frozenset({"done", "completed", "complete", "выполнено", "выполнена", "выполнен", "завершено",
                        "завершена", "сделано", "закрыто", "closed"})
NOT_DONE_WORDS = frozenset({"to do", "todo", "not done", "not_started", "not started", "in_progress", "in progress",
                            "waiting", "deferred", "planned", "scheduled", "open", "pending", "не выполнено",
                            "не выполнена", "не выполнен", "запланировано", "запланирована", "в работе",
                            "ожидает", "отложено", "открыто"})
YES_NO_WORDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {"done": (DONE_WORDS, NOT_DONE_WORDS)}


def yes_no_words(column: str) -> tuple[frozenset[str], frozenset[str]]:
    """(words read as true, words read as false) for a yes/no column, lower-case."""
    yes, no = YES_NO_WORDS.get(column, (frozenset(), frozenset()))
    return TRUE_WORDS | yes, FALSE_WORDS | no


# activities.type as activity lists write it (Bitrix24 «Тип», Pipedrive "Type", HubSpot "Task
# Type"; amoCRM's two built-in task types «Связаться» and «Встреча»), lower-case; read before [source.values] mappings are checked, which win over these.
TYPE_WORDS: dict[str, str] = {
    "звонок": "call", "входящий звонок": "call", "исходящий звонок": "call", "телефонный звонок": "call",
    "встреча": "meeting", "письмо": "email", "e-mail": "email", "эл. письмо": "email", "задача": "task",
    "дело": "task", "связаться": "task", "комментарий": "note", "заметка": "note", "примечание": "note",
    "todo": "task", "to-do": "task", "deadline": "task", "lunch": "meeting", "demo": "meeting",
}

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("managers", (
            _c("manager_id", "str"), _c("name", "str"), _c("email", "str", False),
            _c("region", "str", False), _c("team", "str", False),
            _c("capacity", "float", False, 1.0, limit=1000, smallest=0.01, signed=False), _c("active", "bool", False, True),
        ), key="manager_id"),  # optional: derived from the people the deals name (crm.load)
        Table("clients", (
            _c("client_id", "str"), _c("name", "str"), _c("manager_id", "str", False),
            _c("region", "str", False), _c("segment", "str", False),
        ), key="client_id"),
        Table("deals", (
            _c("deal_id", "str"), _c("client_id", "str", False), _c("manager_id", "str"),
            _c("title", "str", False), _c("amount", "float", False, limit=1e15), _c("currency", "str", False),
            _c("stage", "str"), _c("status", "str"), _c("created_at", "datetime"),
            _c("closed_at", "datetime", False), _c("loss_reason", "str", False),
            _c("source", "str", False), _c("region", "str", False), _c("pipeline", "str", False),
            # when the deal entered its current stage (Salesforce's "Last Stage Change Date",
            # Bitrix24's «Дата изменения стадии»): a stage history derived from the deals uses it
            _c("stage_changed_at", "datetime", False),
            # false: the deal is archived; one that is not won is lost (Odoo archives a lost
            # opportunity and leaves it at the stage it was lost at: Active = False, Probability 0)
            _c("active", "bool", False, True),
        ), key="deal_id", required=True),
        Table("stage_history", (
            _c("deal_id", "str"), _c("stage", "str"), _c("entered_at", "datetime"),
        ), key=None, required=True),
        Table("stages", (_c("stage", "str"), _c("position", "int", limit=1e9)), key="stage"),
        Table("emails", (
            _c("email_id", "str"), _c("client_id", "str"), _c("manager_id", "str", False),
            _c("deal_id", "str", False), _c("direction", "str"), _c("sent_at", "datetime"),
            _c("subject", "str", False),
        ), key="email_id"),
        Table("email_opens", (_c("email_id", "str"), _c("opened_at", "datetime")), key=None),
        Table("activities", (
            _c("activity_id", "str"), _c("deal_id", "str", False), _c("client_id", "str", False),
            _c("manager_id", "str", False), _c("type", "str"), _c("due_at", "datetime", False),
            _c("done_at", "datetime", False),
            # done or not (a status column): an activity not done is planned or overdue, no touch
            _c("done", "bool", False, True),
        ), key="activity_id"),
        Table("leads", (
            _c("lead_id", "str"), _c("created_at", "datetime"), _c("source", "str", False),
            _c("region", "str", False), _c("manager_id", "str", False),
            _c("assigned_at", "datetime", False), _c("first_response_at", "datetime", False),
            _c("status", "str", False),
        ), key="lead_id"),
    )
}

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
REQUIRED_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.required)
