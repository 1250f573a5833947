"""crm.owners: which owner cells name nobody, and which managers rows are no person."""
from __future__ import annotations

import pandas as pd

from crm.owners import no_owner, nobody_note, without_placeholders


def test_whole_cells_that_name_nobody_whatever_their_case_and_spaces():
    cells = pd.Series(["Без ответственного", "  НЕ НАЗНАЧЕН ", "Unassigned", "no_owner", "—", "-", "Не указан",
                       "Noah Owner", "Неназначенова", "Unassigned Sales", "Нетребко", None, "Custom nobody"],
                      dtype="string")
    said = no_owner(cells, frozenset({"Custom nobody"})).tolist()
    assert said == [True] * 7 + [False] * 5 + [True]


def test_a_managers_row_named_like_nobody_is_dropped_and_a_person_is_kept():
    managers = pd.DataFrame({"manager_id": ["7001", "7002", "7003", "Unassigned"],
                             "name": ["Не назначен", "Noah Owner", "Неназначенова", "Unassigned"]})
    kept, dropped = without_placeholders(managers)
    assert kept["name"].tolist() == ["Noah Owner", "Неназначенова"]
    assert dropped == {"7001": "Не назначен", "Unassigned": "Unassigned"}


def test_the_check_config_line_counts_every_table_and_names_the_words():
    deals = pd.DataFrame({"manager_id": ["m1", "Без ответственного", "7001", "Без ответственного"]})
    leads = pd.DataFrame({"manager_id": ["No owner", "m1"]})
    note = nobody_note({"deals": deals, "leads": leads, "activities": None}, frozenset({"No owner", "7001"}),
                       {"7001": "Не назначен"})
    text = str(note)
    assert text.startswith("owners: 3 deals, 1 lead name nobody as their owner"), text
    assert "'Без ответственного' (2), 'No owner' (1), 'Не назначен' (1), managers: 'Не назначен' (7001))" in text, text
    assert nobody_note({"deals": pd.DataFrame({"manager_id": ["m1"]})}, frozenset()) is None
