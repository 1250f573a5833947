"""crm.events_list: a stage value written with its pipeline, read as the stage only when one part
is told for sure (a stage the deals or `stages` know, or a pipeline the deals name); otherwise
kept as written and named."""
from __future__ import annotations

import pandas as pd

from crm.events_list import _stages, roles


def test_a_pipeline_written_with_the_stage_is_read_off_only_when_one_part_is_known():
    known = {"переговоры", "кп: отправлено", "договор"}
    values = pd.Series(["Продажи: Переговоры", "Переговоры", "КП: отправлено", "Тендеры / Договор",
                        "Договор (Тендеры)", "Новый этап: Другое", "Этап без воронки", None], dtype="string")
    out, split, odd = _stages(values, known, {"тендеры"})
    assert out.tolist()[:6] == ["Переговоры", "Переговоры", "КП: отправлено", "Договор", "Договор", "Новый этап: Другое"]
    assert out.tolist()[6] == "Этап без воронки" and pd.isna(out.tolist()[7])
    assert split == 3 and odd == {"Новый этап: Другое": 1}
    # a pipeline the deals name is enough, even for a stage no deal is at now
    out, split, odd = _stages(pd.Series(["Тендеры: Аудит"], dtype="string"), known, {"тендеры"})
    assert out.tolist() == ["Аудит"] and split == 1 and not odd


def test_the_header_is_recognised_in_russian_and_english_and_a_plain_history_is_not():
    ru = pd.DataFrame(columns=["Дата", "Автор", "Объект", "Название", "Событие", "Значение до", "Значение после"])
    en = pd.DataFrame(columns=["Date", "Author", "Object", "Name", "Event", "Value before", "Value after"])
    assert roles(ru)["after"] == "Значение после" and roles(en)["object"] == "Object"
    assert roles(pd.DataFrame(columns=["deal_id", "stage", "entered_at"])) is None
    # a renamed column named in [source.columns.stage_history]
    odd = ru.rename(columns={"Значение после": "Новое значение"})
    assert roles(odd) is None and roles(odd, {"stage": "Новое значение"})["after"] == "Новое значение"


def test_a_mapped_column_the_events_list_lacks_is_not_silently_replaced_by_the_recognised_one():
    ru = pd.DataFrame(columns=["Дата", "Автор", "Объект", "Название", "Событие", "Значение до", "Значение после"])
    assert roles(ru, {"stage": "Значение после (этап)"}) is None  # the plain reading then names it missing
