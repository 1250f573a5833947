"""The demo company: deterministic, in the canonical contract, and its planted situations are
found by each of the six detectors at their default thresholds (and nothing planted as a decoy is)."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from crm.demo import MANAGERS, STAGES, export_csv, generate_demo
from crm.load import load_folder
from crm.schema import TABLES
from detectors import run_detectors


@pytest.fixture(scope="module")
def demo():
    return generate_demo(7)


@pytest.fixture(scope="module")
def scan(demo):
    return run_detectors(demo.data, {}, demo.now)


def _found(scan, detector: str, key: str) -> list[str]:
    return sorted(str(i.subject[key]) for i in scan.insights if i.detector == detector)


def test_same_seed_gives_identical_frames(demo):
    again = generate_demo(7)
    assert again.now == demo.now
    assert again.data.stages == demo.data.stages
    for name in demo.data.table_names():
        pd.testing.assert_frame_equal(demo.data.table(name), again.data.table(name))
    assert again.config_toml == demo.config_toml


def test_frames_follow_the_canonical_contract(demo):
    data = demo.data
    for name in data.table_names():
        df = data.table(name)
        table = TABLES[name]
        assert list(df.columns) == [c.name for c in table.columns], name
        for col in table.columns:
            s = df[col.name]
            if col.kind == "datetime":
                assert str(s.dt.tz) == "UTC", (name, col.name)
            elif col.kind == "float":
                assert s.dtype == "float64", (name, col.name)
            elif col.kind == "bool":
                assert s.dtype == bool, (name, col.name)
        if table.key:
            assert df[table.key].is_unique, name
    assert data.stages == STAGES
    assert set(data.stage_history["stage"]) <= set(STAGES)
    assert set(data.deals["status"]) == {"open", "won", "lost"}
    assert set(data.deals["deal_id"]) >= set(data.stage_history["deal_id"])


def test_a_realistic_company(demo):
    data, now = demo.data, demo.now
    m = data.managers
    assert len(m) == 10 and set(m["team"]) == {"Алматы", "Астана", "Шымкент"}
    assert (m["capacity"] == 0.5).sum() == 1 and (~m["active"]).sum() == 1
    deals = data.deals
    assert 2000 <= len(deals) <= 4000
    assert (deals["currency"] == "KZT").all()
    assert deals["amount"].between(500_000, 80_000_000).all()
    assert deals["created_at"].min() >= now - timedelta(days=366)
    # nothing happened after `now` (planned tasks are due in the future, not done)
    for table, col in [("deals", "created_at"), ("deals", "closed_at"), ("stage_history", "entered_at"),
                       ("emails", "sent_at"), ("email_opens", "opened_at"), ("activities", "done_at"),
                       ("leads", "created_at"), ("leads", "first_response_at")]:
        assert (data.table(table)[col].dropna() <= now).all(), (table, col)
    # the inactive manager has no open deals and took nothing new for months
    gone = m.loc[~m["active"], "manager_id"].iloc[0]
    theirs = deals[deals["manager_id"] == gone]
    assert len(theirs) > 0 and (theirs["status"] != "open").all()
    lost = deals[deals["status"] == "lost"]
    assert set(lost["loss_reason"].dropna()) == {"Цена", "Сроки поставки", "Выбрали конкурента", "Нет бюджета", "Другое"}
    assert set(deals["source"]) == {"Сайт", "Звонок", "Выставка", "Рекомендация", "Тендер"}
    # mail scanners "open" some emails seconds after sending
    opens = data.email_opens.merge(data.emails[["email_id", "sent_at"]], on="email_id")
    machine = (opens["opened_at"] - opens["sent_at"]) < pd.Timedelta(seconds=60)
    assert machine.sum() > 500 and (~machine).sum() > 500
    assert set(data.activities["type"]) >= {"call", "meeting", "task", "email"}


def test_every_detector_finds_its_plant_and_runs_in_full(scan):
    counts = {}
    for i in scan.insights:
        counts[i.detector] = counts.get(i.detector, 0) + 1
    assert scan.skipped == {}  # the opt-in detectors (deal_risk, win_forecast) left off are not "skipped"
    assert set(counts) == {"conversion_drop", "silent_client", "manager_load", "stalled_deal", "lead_sla", "loss_reasons"}


def test_conversion_drop_at_the_planted_stage_only_driven_by_website(scan):
    drops = [i for i in scan.insights if i.detector == "conversion_drop"]
    assert len(drops) == 1
    f = drops[0].facts
    assert (f["from_stage"], f["to_stage"]) == ("КП отправлено", "Переговоры")
    assert f["recent_rate"] < f["baseline_rate"] - 0.05
    assert f["recent_n"] >= 30 and f["baseline_n"] >= 30
    top = f["drivers"][0]
    assert (top["dimension"], top["segment"]) == ("source", "Сайт")


def test_silent_clients_found_and_decoys_not(demo, scan):
    found = _found(scan, "silent_client", "client_id")
    assert found == sorted(demo.planted["silent_client"])
    assert not set(found) & set(demo.planted["silent_client_decoys"])
    assert len(found) in (3, 4)


def test_underloaded_and_overloaded_manager_in_one_team_only(demo, scan):
    loads = [i for i in scan.insights if i.detector == "manager_load"]
    assert len(loads) == 1  # one item for the team's imbalance, both metrics, both sides
    f = loads[0].facts
    assert {r["manager_id"] for r in f["over"] + f["under"]} == {"m01", "m02"}
    assert {r["manager_id"] for r in f["over"]} == {"m01"} and {r["manager_id"] for r in f["under"]} == {"m02"}
    # the half-time manager (half the deals) and the inactive one are never flagged
    half = next(m[0] for m in MANAGERS if m[3] == 0.5)
    gone = next(m[0] for m in MANAGERS if not m[4])
    assert {half, gone}.isdisjoint(r["manager_id"] for r in f["over"] + f["under"])
    assert gone not in {r["manager_id"] for m in f["metrics"].values() for r in m["loads"]}


def test_stalled_deals_exactly_the_planted_ones_some_escalated(demo, scan):
    stalled = [i for i in scan.insights if i.detector == "stalled_deal"]
    assert sorted(i.subject["deal_id"] for i in stalled) == sorted(demo.planted["stalled_deal"])
    escalated = [i for i in stalled if i.facts["escalated"]]
    assert 1 <= len(escalated) < len(stalled)
    assert all(i.facts["days_idle"] > 14 for i in escalated)


def test_slow_leads_found_and_fresh_ones_not(demo, scan):
    assert _found(scan, "lead_sla", "lead_id") == sorted(demo.planted["lead_sla"])
    kinds = {i.subject["kind"] for i in scan.insights if i.detector == "lead_sla"}
    assert kinds == {"unassigned", "unanswered"}


def test_loss_reason_shift_to_delivery_time(scan):
    shifts = [i for i in scan.insights if i.detector == "loss_reasons" and i.subject.get("kind") == "shift"]
    assert len(shifts) == 1
    assert shifts[0].facts["top_rising"] == "Сроки поставки"
    assert not [i for i in scan.insights if i.detector == "loss_reasons" and i.subject.get("kind") == "data_quality"]


def test_scan_is_stable_run_to_run(demo, scan):
    # identical frames are proven above; here: the detectors give the same answer twice
    again = run_detectors(demo.data, {}, demo.now)
    assert [i.to_dict() for i in again.insights] == [i.to_dict() for i in scan.insights]


def test_export_round_trips_through_the_loader(demo, tmp_path):
    paths = export_csv(demo.data, tmp_path)
    assert {p.name for p in paths} == {f"{t}.csv" for t in demo.data.table_names()} | {"stages.csv"}
    loaded = load_folder(tmp_path, timezone="Asia/Almaty", now=demo.now)
    assert loaded.warnings == []
    assert loaded.data.stages == demo.data.stages
    for name in demo.data.table_names():
        pd.testing.assert_frame_equal(loaded.data.table(name).reset_index(drop=True),
                                      demo.data.table(name).reset_index(drop=True), check_dtype=False)


def test_config_has_every_active_manager_and_a_director(demo, tmp_path):
    from bot.config import parse_config

    config = parse_config(demo.config_toml, source_name="demo", base_dir=tmp_path)
    assert config.language == "ru" and config.currency == "KZT"
    managers = {r.manager_id for r in config.recipients if r.role == "manager"}
    active = {m[0] for m in MANAGERS if m[4]}
    assert managers == active
    directors = [r for r in config.recipients if r.role == "director"]
    assert [r.name for r in directors] == ["Директор по продажам"]
