"""Several pipelines in one export: said when pooled, one kept on request (`[source] pipelines`).

A company's pipelines (new sales, renewals) share stage names but not their pace or
conversion; pooled, they are judged as one funnel. The demo company's deals are split into
two pipelines here, in an export column named as amoCRM writes it ("Воронка").
"""
from __future__ import annotations

import pandas as pd
import pytest

from crm.demo import DEMO_NOW, export_csv, generate_demo
from crm.errors import DataError
from crm.load import load_crm
from crm.source_config import SourceConfig
from detectors import run_detectors


@pytest.fixture(scope="module")
def two_pipelines(tmp_path_factory):
    """The demo export with every third deal in «Продление» and the rest in «Продажи»."""
    folder = tmp_path_factory.mktemp("pipelines")
    export_csv(generate_demo().data, folder)
    deals = pd.read_csv(folder / "deals.csv", dtype=str).drop(columns="pipeline")  # the CRM's own name instead
    deals["Воронка"] = ["Продление" if i % 3 == 0 else "Продажи" for i in range(len(deals))]
    deals.to_csv(folder / "deals.csv", index=False)
    renewals = set(deals.loc[deals["Воронка"] == "Продление", "deal_id"])
    return folder, renewals


def _load(folder, **source):
    config = SourceConfig(path=str(folder), columns={"deals": {"pipeline": "Воронка"}}, **source)
    return load_crm(config, timezone="Asia/Almaty", now=DEMO_NOW)


def _codes(result):
    return {w.code: w for w in result.warnings}


def test_pooled_pipelines_are_said_with_their_sizes_and_the_key_that_keeps_one(two_pipelines):
    folder, renewals = two_pipelines
    result = _load(folder)
    assert renewals < set(result.data.deals["deal_id"])  # nothing left out unasked
    line = str(_codes(result)["several_pipelines"])
    assert "deals come from 2 pipelines (Продажи: " in line and "Продление: " in line
    assert "judged as one funnel" in line and '[source] pipelines = ["Продажи"]' in line


def test_an_unmapped_pipeline_column_is_named_as_useful(two_pipelines):
    folder, _ = two_pipelines
    result = load_crm(SourceConfig(path=str(folder)), timezone="Asia/Almaty", now=DEMO_NOW)
    useful = str(_codes(result)["unmapped_columns"])
    assert "'Воронка' could fill deals.pipeline" in useful


def test_one_pipeline_kept_with_its_history_activities_and_emails_only(two_pipelines):
    folder, renewals = two_pipelines
    everything = _load(folder).data
    result = _load(folder, pipelines=["продажи"])  # as the admin typed it: case does not matter
    data = result.data
    kept = set(data.deals["deal_id"])
    assert kept and not kept & renewals and kept | renewals == set(everything.deals["deal_id"])
    assert set(data.stage_history["deal_id"]) <= kept
    for table in (data.activities, data.emails):
        linked = table["deal_id"].dropna()
        assert len(linked) and set(linked) <= kept
    codes = _codes(result)
    assert "history_unknown_deal" not in codes and "several_pipelines" not in codes
    left = codes["other_pipelines"]
    assert left.count == len(renewals)
    assert f"{len(renewals):,} deal(s) of other pipelines (Продление: {len(renewals):,}) left out" in str(left)
    # what the people get: nothing about a renewal deal
    insights = run_detectors(data, {}, DEMO_NOW).insights
    assert insights
    assert not {str(i.subject.get("deal_id")) for i in insights} & renewals


def test_a_pipeline_that_no_deal_is_in_is_an_error_with_the_names_there_are(two_pipelines):
    folder, _ = two_pipelines
    with pytest.raises(DataError) as err:
        _load(folder, pipelines=["Продажы"])
    text = str(err.value)
    assert "no deal is in pipeline 'Продажы' (did you mean `Продажи`?)" in text
    assert "Продажи: " in text and "Продление: " in text


def test_pipelines_without_a_pipeline_column_say_how_to_map_it(two_pipelines):
    folder, _ = two_pipelines
    with pytest.raises(DataError, match=r"deals' pipeline column is absent or empty.*\[source.columns.deals\] pipeline = "):
        load_crm(SourceConfig(path=str(folder), pipelines=["Продажи"]), timezone="Asia/Almaty", now=DEMO_NOW)


def test_pipelines_with_an_empty_pipeline_column_say_so_too(two_pipelines, tmp_path):
    folder, _ = two_pipelines
    deals = pd.read_csv(folder / "deals.csv", dtype=str).assign(Воронка="")
    (tmp_path / "deals.csv").write_text(deals.to_csv(index=False), encoding="utf-8")
    for name in ("managers.csv", "stage_history.csv", "stages.csv"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(DataError, match=r"the deals' pipeline column is absent or empty"):
        _load(tmp_path, pipelines=["Продажи"])
