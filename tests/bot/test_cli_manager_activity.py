"""check-config names the managers manager_load does not compare, once, and nothing else does."""
from __future__ import annotations

from pathlib import Path

import pytest

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


RECENT = "2026-02-20T10:00:00Z"  # two weeks before NOW, inside the 90-day window
LONG_AGO = "2025-03-01T08:00:00Z"


@pytest.mark.parametrize("table, text, counts", [
    ("activities", f"activity_id,deal_id,manager_id,type,done_at\na1,d5,m5,call,{RECENT}\n", True),
    ("activities", f"activity_id,deal_id,manager_id,type,done_at\na1,d5,,call,{RECENT}\n", True),  # his deal's
    ("emails", f"email_id,client_id,manager_id,direction,sent_at\ne1,c1,m5,out,{RECENT}\n", True),
    ("emails", f"email_id,client_id,manager_id,direction,sent_at\ne1,c1,m5,in,{RECENT}\n", False),  # the client's
    ("leads", f"lead_id,created_at,manager_id\nL1,{RECENT},m5\n", True),  # given a lead
    ("leads", f"lead_id,created_at,manager_id,assigned_at\nL1,{LONG_AGO},m5,{RECENT}\n", True),
    ("leads", f"lead_id,created_at,manager_id,first_response_at\nL1,{LONG_AGO},m5,{RECENT}\n", True),
    ("deals", f"deal_id,manager_id,stage,status,created_at,closed_at\nd5,m5,Lead,won,{LONG_AGO},{RECENT}\n", True),
    ("stage_history", f"deal_id,stage,entered_at\nd5,Lead,{LONG_AGO}\nd5,Won,{RECENT}\n", False),  # not his column
])
def test_which_dated_things_are_a_managers_work(tmp_path, capsys, table, text, counts):
    """Emil's last deal is a year old; one thing two weeks ago decides whether he is compared:
    the company's own work of crm.freshness on the tables that name a manager (an outgoing
    email, an activity, a won deal's close, a lead assigned or answered) and a lead he was
    given, not a client's email nor a stage entered on his deal by whoever moved it."""
    folder = crm(tmp_path / "crm")
    (folder / "clients.csv").write_text("client_id,name\nc1,Acme\n", encoding="utf-8")
    path = folder / f"{table}.csv"
    if table == "deals":  # Emil's deal d5, now won
        kept = [ln for ln in path.read_text(encoding="utf-8").splitlines()[1:] if not ln.startswith("d5,")]
        text += "".join(f"{ln},\n" for ln in kept)
    path.write_text(text, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    listed = next(ln for ln in out.splitlines() if "not compared" in ln)
    assert ("m5 Emil" not in listed) is counts, listed
    assert "m4 Dana" in listed
