"""One notion of "who is working" for stalled_deal, manager_load and check-config (issue 9).

An amoCRM/Bitrix24-like export of our own making (tests/scenarios/_export_factory.py): six
managers in one team who all log calls and emails, and m3, an account the CRM gives deals and
leads to (3x the others' share, or a fifth of it) that nobody calls or writes for: every
activity and email by m3 or on m3's deals is taken out, while the pipeline still moves their
deals (stage changes) and 15 of their deals are left untouched for months. stalled_deal calls
m3 "records no contact" and hands their stalled deals to the director. The director must not
read, in the same digest, manager_load naming m3 as over-loaded ("route leads away") or
under-loaded ("hand them deals"), nor as a giver or taker of its plan, and check-config must
list m3 among the managers not compared. With m3's calls kept, m3 is an ordinary manager the
planted imbalance is named for (so the test can fail).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from _cli import run_cli
from _export_factory import ExportSpec, read_rows, write_export, write_rows

UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
NOW = END + timedelta(hours=1)
WHO = "m3"


def company(root: Path, seed: int, load: str, *, silent: bool = True) -> Path:
    """Six managers in one team; WHO gets 3x the share of new deals and leads (`load` "over")
    or a fifth of it ("under") and 15 more deals left untouched 100-190 days ago. `silent`:
    no activity or email by WHO or on WHO's deals (the CRM's stage changes stay)."""
    spec = ExportSpec(seed=seed, end=END, days=200, n_managers=6, n_teams=1, deals_per_month=300,
                      leads_per_month=80, abandoned=(WHO, 15),
                      **({"overloaded": WHO} if load == "over" else {"underloaded": WHO}))
    folder = write_export(root / f"{seed}-{load}-{silent}", spec)
    if silent:
        theirs = {r["deal_id"] for r in read_rows(folder, "deals") if r["manager_id"] == WHO}
        for table in ("activities", "emails"):
            write_rows(folder, table, [r for r in read_rows(folder, table)
                                       if r["manager_id"] != WHO and r["deal_id"] not in theirs])
    return folder


def scan(folder: Path) -> list[dict]:
    rc, out, err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat(), "--format", "json", "--lang", "en")
    assert rc == 0, err
    return json.loads(out)


def named_by_manager_load(items: list[dict]) -> set[str]:
    """Everyone a manager_load item names: flagged, compared (its loads) or in its plan."""
    out = set()
    for i in items:
        if i["detector"] != "manager_load":
            continue
        f = i["facts"]
        out |= {x["manager_id"] for x in f["over"] + f["under"]}
        out |= {r["manager_id"] for m in f["metrics"].values() for r in m["loads"]}
        out |= {p[k] for moves in f["plan"].values() for p in moves for k in ("from_manager_id", "to_manager_id")}
    return out


def left_behind(items: list[dict]) -> dict[str, str]:
    return {i["facts"]["manager_id"]: i["facts"]["owner_gone"] for i in items
            if i["detector"] == "stalled_deal" and i["facts"].get("owner_gone")}


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("load", ["over", "under"])
def test_an_owner_stalled_deal_calls_gone_is_never_named_by_manager_load(tmp_path, seed, load):
    items = scan(company(tmp_path, seed, load))
    assert left_behind(items) == {WHO: "no_contact"}
    assert WHO not in named_by_manager_load(items)
    config = tmp_path / "config.toml"
    config.write_text(f'[source]\npath = "{seed}-{load}-True"\n', encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    (line,) = [ln for ln in out.splitlines() if "not compared" in ln]
    assert "1 manager(s) not compared: given deals, but no call, task or email" in line and line.split(": ")[-1].startswith(f"{WHO} "), line
    # the same company with WHO's calls kept: an ordinary manager, named for the planted imbalance
    kept = scan(company(tmp_path, seed, load, silent=False))
    assert WHO not in left_behind(kept)
    assert WHO in {x["manager_id"] for i in kept if i["detector"] == "manager_load"
                   for x in i["facts"]["over" if load == "over" else "under"]}


def test_replayed_days_agree_too(tmp_path):
    """A backtest prepares once and replays day by day: on no day does manager_load name
    someone that day's stalled_deal hands over as gone (idle, no contact, inactive)."""
    from crm.load import load_folder
    from detectors import manager_load, stalled_deal

    data = load_folder(company(tmp_path, 13, "over"), now=NOW).data
    ml = manager_load.prepare(data, manager_load.ManagerLoadSpec())
    sd = stalled_deal.prepare(data, stalled_deal.StalledDealSpec())
    gone_days = 0
    for back in range(0, 120, 4):
        then = NOW - timedelta(days=back)
        gone = {k for k, why in left_behind([i.to_dict() for i in stalled_deal.detect_at(sd, then)]).items()
                if why != "unknown"}
        gone_days += bool(gone)
        assert not gone & named_by_manager_load([i.to_dict() for i in manager_load.detect_at(ml, then)]), then
    assert gone_days >= 10  # m3 was handed over on many of the days looked at
