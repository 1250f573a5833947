"""check-config names the managers manager_load does not compare, once, and nothing else does."""
from __future__ import annotations

from pathlib import Path

from bot.cli import main

NOW = ["--now", "2026-03-04T09:30:00+00:00"]


def crm(folder: Path) -> Path:
    """Three working managers, one account that never had anything, one whose last deal is a year old,
    and one marked inactive (left on purpose: not listed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "managers.csv").write_text(
        "manager_id,name,active\nm1,Anna,true\nm2,Ben,true\nm3,Carl,true\nm4,Dana,true\nm5,Emil,true\nm6,Fay,false\n",
        encoding="utf-8")
    (folder / "deals.csv").write_text(
        "deal_id,manager_id,stage,status,created_at\nd1,m1,Lead,open,2026-03-03T09:00:00Z\n"
        "d2,m2,Lead,open,2026-03-03T10:00:00Z\nd3,m3,Lead,open,2026-03-04T08:00:00Z\n"
        "d5,m5,Lead,open,2025-03-01T08:00:00Z\n", encoding="utf-8")
    (folder / "stage_history.csv").write_text(
        "deal_id,stage,entered_at\nd1,Lead,2026-03-03T09:00:00Z\nd2,Lead,2026-03-03T10:00:00Z\n"
        "d3,Lead,2026-03-04T08:00:00Z\nd5,Lead,2025-03-01T08:00:00Z\n", encoding="utf-8")
    return folder


def test_check_config_lists_managers_not_compared_once(tmp_path, capsys):
    crm(tmp_path / "crm")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    line = "2 manager(s) not compared: no deal, lead or activity in the last 90 days: m4 Dana, m5 Emil"
    assert out.count("not compared") == 1 and line in out
    assert "Fay" not in out.split("not compared")[1].splitlines()[0]


def test_the_window_follows_the_config(tmp_path, capsys):
    crm(tmp_path / "crm")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n[detectors.manager_load]\nactive_window_days = 400\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    assert "1 manager(s) not compared: no deal, lead or activity in the last 400 days: m4 Dana" in out
