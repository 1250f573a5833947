"""bot.pipeline.scan: load the configured source (or use given data), run the detectors with
the config's thresholds, and say why a detector said nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.pipeline import ScanOutcome, scan
from crm.errors import DataError

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc)  # a Wednesday


def write_small_crm(folder: Path, *, idle_days: float = 10, history: bool = True) -> Path:
    """Three managers, three open deals; deal d1 idle for `idle_days`, the others touched today."""
    folder.mkdir(parents=True, exist_ok=True)
    ts = lambda d: (NOW - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    (folder / "managers.csv").write_text(
        "manager_id,name,team\nm1,Айгерим,Алматы\nm2,Ben,Алматы\nm3,Carl,Алматы\n", encoding="utf-8")
    (folder / "deals.csv").write_text(
        "deal_id,manager_id,title,stage,status,created_at,amount,currency\n"
        f"d1,m1,Компрессор,Lead,open,{ts(idle_days + 1)},1000000,KZT\n"
        f"d2,m2,Pump,Lead,open,{ts(0.5)},2000000,KZT\n"
        f"d3,m3,Press,Lead,open,{ts(0.4)},3000000,KZT\n", encoding="utf-8")
    if history:
        (folder / "stage_history.csv").write_text(
            "deal_id,stage,entered_at\n"
            f"d1,Lead,{ts(idle_days)}\nd2,Lead,{ts(0.5)}\nd3,Lead,{ts(0.4)}\n", encoding="utf-8")
    return folder


def config_for(folder: Path, extra: str = ""):
    text = f'timezone = "UTC"\n[source]\npath = "{folder.name}"\n{extra}'
    return parse_config(text, source_name="test.toml", base_dir=folder.parent)


def test_scan_loads_the_configured_folder_and_finds_the_idle_deal(tmp_path):
    config = config_for(write_small_crm(tmp_path / "crm"))
    out = scan(config, NOW)
    assert isinstance(out, ScanOutcome)
    assert len(out.data.deals) == 3
    stalled = [i for i in out.insights if i.detector == "stalled_deal"]
    assert [i.subject["deal_id"] for i in stalled] == ["d1"]
    assert out.counts()["stalled_deal"] == 1 and out.counts()["conversion_drop"] == 0


def test_thresholds_come_from_the_config(tmp_path):
    folder = write_small_crm(tmp_path / "crm")
    config = config_for(folder, "[detectors.stalled_deal]\ndefault_limit_days = 30\n")
    assert not [i for i in scan(config, NOW).insights if i.detector == "stalled_deal"]


def test_a_disabled_detector_and_missing_tables_are_explained(tmp_path):
    config = config_for(write_small_crm(tmp_path / "crm"), "[detectors.stalled_deal]\nenabled = false\n")
    out = scan(config, NOW)
    assert out.skipped["stalled_deal"] == "disabled in config"  # switched off by the admin: said
    # off by default and never switched on: not a check, so neither skipped nor counted
    assert "deal_risk" not in out.skipped and "deal_risk" not in out.counts()
    assert out.counts()["stalled_deal"] == 0
    assert "emails.csv" in out.skipped["silent_client"]
    assert "leads.csv" in out.skipped["lead_sla"]
    assert not [i for i in out.insights if i.detector == "stalled_deal"]


def test_derived_history_is_a_warning_and_a_skip_reason(tmp_path):
    config = config_for(write_small_crm(tmp_path / "crm", history=False))
    out = scan(config, NOW)
    assert out.data.stage_history_derived
    assert any("stage" in str(w) and "history" in str(w) for w in out.warnings)
    # conversion_drop runs (win rate of new deals from outcomes); only its stage pairs are skipped
    assert "conversion_drop" not in out.skipped
    assert any("stage history" in line for line in out.partial["conversion_drop"])


def test_given_data_is_used_without_touching_the_source(tmp_path):
    folder = write_small_crm(tmp_path / "crm")
    data = scan(config_for(folder), NOW).data
    missing = parse_config('[source]\npath = "does-not-exist"\n', source_name="x.toml", base_dir=tmp_path)
    out = scan(missing, NOW, data=data)
    assert out.data is data and out.warnings == []
    assert [i.subject["deal_id"] for i in out.insights if i.detector == "stalled_deal"] == ["d1"]


def test_a_missing_folder_is_a_data_error_that_says_how_to_fix(tmp_path):
    config = parse_config('[source]\npath = "nowhere"\n', source_name="x.toml", base_dir=tmp_path)
    with pytest.raises(DataError) as e:
        scan(config, NOW)
    assert "nowhere" in str(e.value)


def test_now_must_carry_a_timezone(tmp_path):
    with pytest.raises(ValueError):
        scan(config_for(write_small_crm(tmp_path / "crm")), NOW.replace(tzinfo=None))


def test_the_configs_currency_is_the_deals_currency_when_the_export_has_none(tmp_path):
    """amoCRM-style exports have a budget and no currency column; the top-level `currency` key
    is the currency of their amounts (the messages said "сумма 2 957 000", no currency)."""
    folder = write_small_crm(tmp_path / "crm")
    deals = (folder / "deals.csv").read_text(encoding="utf-8").splitlines()
    rows = [",".join(r.split(",")[:-1]) for r in deals]  # drop the currency column
    (folder / "deals.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = scan(parse_config('currency = "RUB"\ntimezone = "UTC"\n[source]\npath = "crm"\n',
                            source_name="t.toml", base_dir=tmp_path), NOW)
    assert out.data.deals["currency"].tolist() == ["RUB"] * 3
    stalled = [i for i in out.insights if i.detector == "stalled_deal"]
    assert stalled[0].facts["currency"] == "RUB"
    # a currency the export gives is kept; a deal without an amount gets none
    folder2 = write_small_crm(tmp_path / "crm2")
    text = (folder2 / "deals.csv").read_text(encoding="utf-8").replace(",3000000,KZT", ",,")
    (folder2 / "deals.csv").write_text(text, encoding="utf-8")
    out = scan(parse_config('currency = "RUB"\ntimezone = "UTC"\n[source]\npath = "crm2"\n',
                            source_name="t.toml", base_dir=tmp_path), NOW)
    assert out.data.deals["currency"].tolist()[:2] == ["KZT", "KZT"] and out.data.deals["currency"].isna().tolist()[2]
