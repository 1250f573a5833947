"""Soft problems: the load goes on, and the admin learns how many rows and which ones."""
from __future__ import annotations

import pandas as pd
import pydantic
import pytest
from crm_exports import DEALS, HISTORY, MANAGERS, write

from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig
from crm.stages import order_from_history


def _codes(result):
    return {w.code: w for w in result.warnings}


def test_clean_company_loads_without_warnings(company):
    result = load_folder(company)
    assert result.warnings == []
    assert len(result.data.deals) == 3 and len(result.data.stage_history) == 5
    assert result.data.stages == ["Квалификация", "КП"]  # ordered from the history
    assert result.data.clients is None and result.data.emails is None


def test_unknown_manager_negative_amount_and_foreign_stage_warn(tmp_path):
    deals = DEALS + "d4,m9,Отгрузка,open,2026-03-08 10:00,-50,KZT\n"
    history = HISTORY + "d4,Отгрузка,2026-03-08 10:00\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals,
                              "stage_history.csv": history,
                              "stages.csv": "stage,position\nКП,2\nКвалификация,1\n"})
    result = load_folder(folder)
    warn = _codes(result)
    assert result.data.stages == ["Квалификация", "КП"]
    assert warn["unknown_manager"].count == 1 and "deal d4 -> m9" in str(warn["unknown_manager"])
    assert warn["negative_amount"].count == 1 and "d4: -50" in str(warn["negative_amount"])
    stage_tables = {w.table for w in result.warnings if w.code == "stage_not_in_pipeline"}
    assert stage_tables == {"deals", "stage_history"}
    assert "'Отгрузка' (1)" in str(warn["stage_not_in_pipeline"])
    assert len(result.data.deals) == 4  # soft: nothing dropped


def test_history_for_unknown_deals_is_dropped_with_a_warning(tmp_path):
    history = HISTORY + "zz9,КП,2026-03-08 10:00\nzz9,Квалификация,2026-03-07 10:00\n"
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS,
                              "stage_history.csv": history})
    result = load_folder(folder)
    warn = _codes(result)["history_unknown_deal"]
    assert warn.count == 2 and "zz9" in str(warn)
    assert "zz9" not in set(result.data.stage_history["deal_id"])


def test_future_dates_warn_only_when_now_is_given(company):
    now = pd.Timestamp("2026-03-05 00:00", tz="UTC")
    warn = _codes(load_folder(company, now=now.to_pydatetime()))["future_dates"]
    assert warn.table in ("stage_history",) and warn.count == 2
    assert load_folder(company).warnings == []


def test_missing_history_is_derived_from_deals_and_said_so(tmp_path):
    folder = write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": DEALS,
                              "stages.csv": "stage,position\nКвалификация,1\nКП,2\n"})
    result = load_folder(folder)
    data = result.data
    assert data.stage_history_derived
    warn = _codes(result)["stage_history_derived"]
    assert "conversion insights need the real history" in str(warn)
    history = data.stage_history.sort_values("deal_id", kind="stable").reset_index(drop=True)
    assert history[["deal_id", "stage"]].values.tolist() == [
        ["d1", "Квалификация"], ["d2", "Квалификация"], ["d2", "КП"],
        ["d3", "Квалификация"], ["d3", "КП"]]
    created = data.deals.set_index("deal_id")["created_at"]
    assert history["entered_at"].tolist() == created.reindex(history["deal_id"]).tolist()
    assert str(history["entered_at"].dtype) == "datetime64[ns, UTC]"


def test_stage_order_from_history_uses_the_median_step():
    history = pd.DataFrame({
        "deal_id": ["a", "a", "a", "b", "b", "c", "c", "c"],
        "stage": ["Лид", "КП", "Договор", "Лид", "КП", "КП", "Лид", "Договор"],
        "entered_at": pd.to_datetime([1, 2, 3, 1, 2, 1, 2, 3], unit="D", utc=True),
    })
    # deal c went back to Лид once, but the typical order wins
    assert order_from_history(history) == ["Лид", "КП", "Договор"]


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"columns": {"deal": {"deal_id": "ID"}}}, "did you mean `deals`?"),
    ({"columns": {"deals": {"manger_id": "x"}}}, "deals.manger_id: unknown column of deals (did you mean `manager_id`?)"),
    ({"values": {"deals": {"statsu": {"A": "won"}}}}, "did you mean `status`?"),
    ({"fill": {"deals": {"curency": "KZT"}}}, "did you mean `currency`?"),
    ({"kind": "sql"}, "needs `url_env`"),
    ({"kind": "sql", "url": "postgresql://crm:secret@db/crm", "tables": {"deals": "d"}}, "contains a password"),
    ({"stages": ["A", "B", "A"]}, "'A' is listed twice"),
    ({"path": ".", "pth": "x"}, "pth"),
])
def test_source_config_rejects_typos_with_the_nearest_name(kwargs, says):
    with pytest.raises(pydantic.ValidationError) as err:
        SourceConfig(**kwargs)
    assert says in str(err.value)


def test_source_config_lists_every_typo_at_once():
    with pytest.raises(pydantic.ValidationError) as err:
        SourceConfig(columns={"deals": {"manger_id": "x", "stag": "y"}, "deal": {"id": "z"}})
    text = str(err.value)
    assert "did you mean `manager_id`?" in text and "did you mean `stage`?" in text
    assert "deal: unknown table (did you mean `deals`?)" in text


def test_closing_stages_mapped_to_won_lost_become_statuses_not_stages(tmp_path):
    """amoCRM logs "Успешно реализовано" as a stage; mapped to won it leaves the pipeline."""
    deals = ("deal_id,manager_id,stage,status,created_at\n"
             "d1,m1,Квалификация,open,2026-03-02 10:00\n"
             "d2,m2,Успешно реализовано,Успешно реализовано,2026-03-03 11:30\n"
             "d3,m1,Закрыто и не реализовано,Закрыто и не реализовано,2026-03-04 09:15\n")
    history = HISTORY + ("d2,Успешно реализовано,2026-03-09 12:00\n"
                         "d3,Закрыто и не реализовано,2026-03-10 12:00\n")
    write(tmp_path, {"managers.csv": MANAGERS, "deals.csv": deals, "stage_history.csv": history})
    closing = {"Успешно реализовано": "won", "Закрыто и не реализовано": "lost"}
    source = SourceConfig(path=".", values={"deals": {"status": closing, "stage": closing},
                                            "stage_history": {"stage": closing}})
    result = load_crm(source, base_dir=tmp_path)
    data = result.data
    assert data.stages == ["Квалификация", "КП"]
    assert len(data.stage_history) == 5
    assert data.deals.set_index("deal_id")["stage"].to_dict() == {
        "d1": "Квалификация", "d2": "КП", "d3": "КП"}
    assert data.deals.set_index("deal_id")["status"].to_dict() == {
        "d1": "open", "d2": "won", "d3": "lost"}
    codes = {w.code: w.count for w in result.warnings}
    assert codes == {"closing_stage_entries": 2, "closing_stage_on_deal": 2}


def _one_owner_folder(tmp_path, owners, managers_extra=""):
    managers = MANAGERS + "m3,Ержан Сапаров,Алматы\n" + managers_extra
    rows = "".join(f"x{i},{owners[i % len(owners)]},Квалификация,open,2026-03-02 10:00,1000,KZT\n" for i in range(40))
    return write(tmp_path, {"managers.csv": managers, "deals.csv": DEALS.splitlines()[0] + "\n" + rows})


def test_an_export_of_one_persons_deals_is_said_once_with_the_filter_to_remove(tmp_path):
    """Odoo's Pipeline list opens on "My Pipeline": exported as is, every deal is the exporting
    salesperson's while managers lists three people who sell. Said once, naming the filter."""
    warn = _codes(load_folder(_one_owner_folder(tmp_path / "one", ["m1"])))
    assert "one_owner_export" in warn and "My Pipeline" in str(warn["one_owner_export"])
    assert warn["one_owner_export"].count == 40
    # two owners, or the others marked as not selling, is no sign of a filter
    assert "one_owner_export" not in _codes(load_folder(_one_owner_folder(tmp_path / "two", ["m1", "m2"])))
    quiet = write(tmp_path / "inactive", {
        "managers.csv": "manager_id,name,team,active\nm1,Анна,Алматы,true\nm2,Boris,Астана,false\nm3,Ержан,Алматы,false\n",
        "deals.csv": DEALS.splitlines()[0] + "\n" + "".join(
            f"x{i},m1,Квалификация,open,2026-03-02 10:00,1000,KZT\n" for i in range(40))})
    assert "one_owner_export" not in _codes(load_folder(quiet))


def test_tags_mapped_as_source_are_said_to_split_segments():
    """amoCRM's «Теги» mapped as source: «Instagram, повторный клиент» is a segment of its own
    beside «Instagram». Said with the commonest combinations; a comma inside a name whose parts
    are no values («ТОО «Альфа, Бета»») and a handful of lists are not."""
    import pandas as pd

    from crm.validate import several_values

    tags = ["Instagram"] * 60 + ["Сайт"] * 30 + ["Instagram, повторный клиент"] * 8 + ["Сайт;Выставка"] * 3
    said = several_values(pd.DataFrame({"source": tags}), "deals")
    assert [(w.code, w.count) for w in said] == [("several_values", 11)]
    assert "'Instagram, повторный клиент' (8)" in said[0].examples and "«Теги»" in said[0].message
    names = ["Сайт"] * 60 + ["ТОО «Альфа, Бета»"] * 30
    assert several_values(pd.DataFrame({"source": names}), "deals") == []
    few = ["Instagram"] * 300 + ["Instagram, повторный клиент"] * 5
    assert several_values(pd.DataFrame({"source": few}), "deals") == []  # under 2% of the cells
