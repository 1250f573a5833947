"""manager_load's words: one item names who is over and under, and the plan, in grammatical Russian."""
from __future__ import annotations

import pytest
from msg_helpers import NOW

from messages import samples, terminal


def plan_item(counts: list[int]):
    ins = samples.manager_load()
    moves = ins.facts["plan"]
    ins.facts["plan"] = {
        "open_deals": [{**moves["open_deals"][0], "count": n} for n in counts],
        "new_leads": [{**moves["new_leads"][0], "count": n} for n in counts],
    }
    return ins


@pytest.mark.parametrize("n, deals, leads", [
    (1, "1\u00a0сделку", "1\u00a0следующую заявку"), (2, "2\u00a0сделки", "2\u00a0следующие заявки"),
    (5, "5\u00a0сделок", "5\u00a0следующих заявок"), (21, "21\u00a0сделку", "21\u00a0следующую заявку"),
])
def test_russian_counts_agree_in_the_plan(n, deals, leads):
    text = terminal.format_insight(plan_item([n]), "ru", now=NOW).replace("\n   ", " ")
    assert f"Передайте {deals}: Ольга Ким → Арман Жумабеков" in text
    assert f"Направьте {leads}: Ольга Ким → Арман Жумабеков" in text


def test_one_item_names_everyone_with_loads_against_the_median():
    text = " ".join(terminal.format_insight(samples.manager_load(), "ru", now=NOW).split())
    assert text.count("Команда Алматы") == 1
    assert "Больше обычного: Ольга Ким — 46 (в 2,2 раза больше медианы)" in text
    assert "Меньше обычного: Арман Жумабеков — 11 (в 1,9 раза меньше медианы)" in text
    assert "медиана команды — 21" in text and "медиана команды — 33" in text
    en = " ".join(terminal.format_insight(samples.manager_load(), "en", now=NOW).split())
    # Данияр is in neither line above (a taker with room, not flagged): his count says why he takes
    assert "Hand over 12 deals: Ольга Ким → Арман Жумабеков; 4 deals: Ольга Ким → Данияр Ахметов (now 19)." in en
    assert "Route the next 11 leads: Ольга Ким → Арман Жумабеков; 2 leads: Ольга Ким → Данияр Ахметов (now 33)." in en
    assert "4 сделки: Ольга Ким → Данияр Ахметов (сейчас 19)." in text
