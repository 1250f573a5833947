"""Waiting leads written to someone stalled_deal and manager_load consider not working (issue 9).

An amoCRM/Bitrix24-like export of our own making (tests/scenarios/_export_factory.py), with no
`active` column in managers.csv (as most CRMs' user lists come), scanned through the real CLI:

- GONE (m6) stopped working IDLE_DAYS ago without anyone marking it: no deal created, no call,
  task or email by them or on their deals since, their deals closed after that left open (as a
  person who leaves them behind). The CRM's round robin still writes them a lead every day or
  two (assigned at creation), and nobody answers those. Before, each such lead was an
  "unanswered" item to m6, who reads nothing.
- SHARED (m7, «Отдел продаж») is the CRM's shared account: given deals and leads like everyone
  all along, but no call, task or email by it or on its deals ever, and nobody answers its leads.
- the control: CONTROL (m1) works; its two newest leads are left unanswered, and they are
  m1's own items, as before.

What the director must read: one lead_sla item per person not working (written_to, whatever the
count), and no lead_sla item addressed to GONE or SHARED. As stalled_deal reads them: being given
leads is work (detectors.people.PERSON_WORK), so both are "no contact" rather than "idle" (given
deals, no contact in the window, while the others record theirs).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from _cli import run_cli
from _export_factory import ExportSpec, read_rows, write_export, write_rows

UTC = timezone.utc
END = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)  # Thursday, 15:00 in Almaty
NOW = END + timedelta(minutes=30)
GONE, SHARED, CONTROL = "m6", "m7", "m1"
IDLE_DAYS = 100


def _t(s: str) -> datetime | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def company(root: Path, seed: int, *, gone: bool = True, shared: bool = True) -> Path:
    """Seven managers in one team, ~150 leads a month spread evenly. `gone`: GONE does nothing
    for the last IDLE_DAYS (see the module doc); `shared`: SHARED records no contact ever and
    its leads are not answered. The two newest leads of CONTROL are unanswered either way; with
    neither flag every other lead is answered (the factory's default)."""
    folder = write_export(root / f"{seed}-{gone}-{shared}",
                          ExportSpec(seed=seed, end=END, days=200, n_managers=7, n_teams=1,
                                     deals_per_month=250, leads_per_month=150))
    cutoff = END - timedelta(days=IDLE_DAYS)
    managers = read_rows(folder, "managers")
    for m in managers:
        del m["active"]  # no such column: nobody marked anyone
        if m["manager_id"] == SHARED:
            m["name"] = "Отдел продаж"
    write_rows(folder, "managers", managers)
    deals = read_rows(folder, "deals")
    if gone:  # nothing new for GONE; what was open at the cutoff stays open in their name
        deals = [d for d in deals if d["manager_id"] != GONE or _t(d["created_at"]) < cutoff]
        for d in deals:
            if d["manager_id"] == GONE and d["closed_at"] and _t(d["closed_at"]) >= cutoff:
                d.update(status="open", closed_at="", loss_reason="")
        write_rows(folder, "deals", deals)
    owner = {d["deal_id"]: d["manager_id"] for d in deals}
    for table, at in (("activities", "done_at"), ("emails", "sent_at")):
        rows = [r for r in read_rows(folder, table) if r["deal_id"] in owner or not r["deal_id"]]
        if gone:
            rows = [r for r in rows if GONE not in (r["manager_id"], owner.get(r["deal_id"])) or _t(r[at]) < cutoff]
        if shared:
            rows = [r for r in rows if SHARED not in (r["manager_id"], owner.get(r["deal_id"]))]
        write_rows(folder, table, rows)
    leads = read_rows(folder, "leads")
    for lead in leads:
        silent = (gone and lead["manager_id"] == GONE and _t(lead["created_at"]) >= cutoff) or (
            shared and lead["manager_id"] == SHARED)
        if silent:  # the round robin assigned it on arrival; nobody answered
            lead.update(assigned_at=lead["created_at"], first_response_at="", status="new")
    mine = sorted((x for x in leads if x["manager_id"] == CONTROL and _t(x["created_at"]) < END - timedelta(hours=6)),
                  key=lambda x: x["created_at"])[-2:]
    for lead in mine:
        lead.update(first_response_at="", status="new")
    write_rows(folder, "leads", leads)
    return folder


def scan(folder: Path) -> list[dict]:
    rc, out, err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat(), "--format", "json", "--lang", "en")
    assert rc == 0, err
    return json.loads(out)


def lead_items(items: list[dict]) -> list[dict]:
    return [i for i in items if i["detector"] == "lead_sla"]


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_leads_written_to_people_not_working_are_one_director_item_each(tmp_path, seed):
    items = lead_items(scan(company(tmp_path, seed)))
    addressed = {i["audience"]["manager_id"] for i in items if i["audience"]["role"] == "manager"}
    assert GONE not in addressed and SHARED not in addressed, addressed
    for who in (GONE, SHARED):
        theirs = [i for i in items if i["facts"].get("owner_gone_id") == who]
        assert len(theirs) == 1, (who, theirs)
        f = theirs[0]
        assert f["audience"]["role"] == "director" and f["subject"]["written_to"] == who
        assert f["facts"]["leads"] >= 1 and f["facts"]["owner_left"] == "no_contact"
        # said as what the data shows (no contact recorded), not "no longer works here"
        assert "who records no contact with clients" in f["text"] and "no longer works here" not in f["text"]
        assert "take this user out of the CRM's lead distribution" in f["text"]
    assert theirs[0]["facts"]["owner_gone"] == "Отдел продаж"
    # the control: a working manager's waiting leads are still theirs
    control = [i for i in items if i["audience"].get("manager_id") == CONTROL]
    assert control and all(i["facts"]["kind"] == "unanswered" and not i["facts"]["owner_gone"] for i in control)


@pytest.mark.parametrize("seed", [21, 24])
def test_without_them_every_waiting_lead_is_its_owners(tmp_path, seed):
    """The same company where GONE and SHARED work: their leads are answered, nobody's are
    the director's; only CONTROL's two waiting leads are told, to CONTROL."""
    items = lead_items(scan(company(tmp_path, seed, gone=False, shared=False)))
    assert not [i for i in items if i["facts"].get("owner_gone")]
    assert {i["audience"].get("manager_id") for i in items} == {CONTROL}


def test_a_replay_judges_who_works_as_a_scan_of_that_day_does(tmp_path):
    """The backtest's path (prepare once, detect_at per day: one Workforce answer per day) and a
    scan of each day agree, through the weeks GONE still counts as working (their last calls
    inside active_window_days) and after."""
    from crm.load import load_folder
    from detectors import lead_sla

    data = load_folder(company(tmp_path, 25)).data
    spec = lead_sla.LeadSlaSpec()
    state = lead_sla.prepare(data, spec)
    seen = set()
    for k in range(0, IDLE_DAYS, 4):
        now = END - timedelta(days=IDLE_DAYS - k, hours=1)
        def key(items):
            return sorted((i.fingerprint, i.audience.role, i.audience.manager_id, i.facts.get("owner_left")) for i in items)
        scanned = lead_sla.detect(data, spec, now)
        assert key(scanned) == key(lead_sla.detect_at(state, now)), now
        seen |= {(i.facts.get("owner_gone_id"), i.audience.manager_id) for i in scanned}
    assert (None, GONE) in seen and (GONE, None) in seen  # both sides of the window were replayed
