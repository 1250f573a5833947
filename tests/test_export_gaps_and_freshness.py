"""Real exports lack columns and go stale: an absent column is never "not done yet", and old data
is not judged for idle time (issue: insights that hold on real exports).

The exports are hand-made CSV folders read through the real loader and CLI, as an admin would.
"""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli import main
from bot.config import parse_config
from bot.outbox import Outbox
from bot.pipeline import scan
from bot.scheduler import PulseJobs
from bot.state import StateStore
from crm.freshness import freshness
from crm.load import load_folder

UTC = timezone.utc
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # Friday 11:00 in Almaty


def _write(folder: Path, table: str, rows: list[dict]) -> None:
    with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def export(folder: Path, *, lead_columns: tuple[str, ...] = (), last_event: datetime = NOW - timedelta(hours=2),
           loss_reason: bool = False) -> Path:
    """An amoCRM-like export: 4 managers, 60 deals (20 lost), 40 leads of the last three days.

    Leads carry only the columns in `lead_columns` beyond id, created_at and source; deals carry a
    loss_reason column only when asked. The newest record is `last_event`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder, "managers", [{"manager_id": f"m{k}", "name": f"Менеджер {k}"} for k in range(1, 5)])
    deals, history = [], []
    for k in range(60):
        created = last_event - timedelta(days=60 - k)
        status = "lost" if k % 3 == 0 else "open"
        row = {"deal_id": f"d{k}", "manager_id": f"m{k % 4 + 1}", "stage": "Новая", "status": status,
               "created_at": _iso(created), "closed_at": _iso(created + timedelta(days=1)) if status == "lost" else ""}
        if loss_reason:
            row["loss_reason"] = "Цена" if status == "lost" else ""
        deals.append(row)
        history.append({"deal_id": f"d{k}", "stage": "Новая", "entered_at": _iso(created)})
    deals[-1]["created_at"] = _iso(last_event)
    history[-1]["entered_at"] = _iso(last_event)
    _write(folder, "deals", deals)
    _write(folder, "stage_history", history)
    leads = []
    for k in range(40):
        created = last_event - timedelta(hours=2 + k * 1.7)
        row = {"lead_id": f"L{k}", "created_at": _iso(created), "source": "Сайт"}
        if "manager_id" in lead_columns:
            row["manager_id"] = f"m{k % 4 + 1}" if k % 5 else ""
        if "assigned_at" in lead_columns:
            row["assigned_at"] = _iso(created + timedelta(minutes=10)) if k % 5 else ""
        if "first_response_at" in lead_columns:
            row["first_response_at"] = _iso(created + timedelta(minutes=30)) if k % 2 else ""
        if "status" in lead_columns:
            row["status"] = "converted" if k % 4 == 0 else "new"
        leads.append(row)
    _write(folder, "leads", leads)
    return folder


def _scan(folder: Path, capsys, now: datetime = NOW) -> tuple[list[dict], str]:
    import json

    code = main(["scan", "--data", str(folder), "--now", now.isoformat(), "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out), out.err


def test_leads_without_assignment_or_answer_columns_raise_no_sla_breach(tmp_path, capsys):
    items, err = _scan(export(tmp_path / "x"), capsys)
    assert not [i for i in items if i["detector"] == "lead_sla"]
    assert ("skipped lead_sla: needs column assigned_at in leads (absent or empty in leads.csv) or column manager_id "
            "in leads (absent or empty in leads.csv) or column first_response_at in leads") in err


def test_owner_known_but_no_answer_column_checks_only_unassigned_leads(tmp_path, capsys):
    items, err = _scan(export(tmp_path / "x", lead_columns=("manager_id",)), capsys)
    kinds = {i["subject"]["kind"] for i in items if i["detector"] == "lead_sla"}
    assert kinds == {"unassigned"}  # leads with an empty manager cell really have no manager
    assert "partly skipped lead_sla: unanswered leads: not checked, needs column first_response_at in leads" in err


def test_all_columns_present_both_parts_run_and_handled_leads_are_quiet(tmp_path, capsys):
    cols = ("manager_id", "assigned_at", "first_response_at", "status")
    items, err = _scan(export(tmp_path / "x", lead_columns=cols), capsys)
    found = [i for i in items if i["detector"] == "lead_sla"]
    assert {i["subject"]["kind"] for i in found} == {"unassigned", "unanswered"}
    converted = {f"L{k}" for k in range(0, 40, 4)}
    # a lead that became a deal is not waiting (the leads behind the items: a recipient's many are one backlog)
    assert not converted & {k for i in found for k in i["evidence"]["lead_ids"]}
    assert "skipped lead_sla" not in err


def test_absent_loss_reason_column_is_a_line_not_a_weekly_alert(tmp_path, capsys):
    items, err = _scan(export(tmp_path / "x"), capsys)
    assert not [i for i in items if i["detector"] == "loss_reasons"]
    assert "skipped loss_reasons: needs column loss_reason in deals (absent or empty in deals.csv)" in err
    code = main(["check-config", str(_config_for(tmp_path / "x")), "--now", NOW.isoformat()])
    out = capsys.readouterr().out
    assert code == 0
    assert "loss_reasons     skipped: needs column loss_reason in deals" in out
    assert "lead_sla         skipped: needs column assigned_at in leads" in out


def _config_for(folder: Path) -> Path:
    path = folder / "config.toml"
    path.write_text('timezone = "Asia/Almaty"\n[source]\npath = "."\n', encoding="utf-8")
    return path


# --- freshness -------------------------------------------------------------------------------

def test_newest_record_ignores_planned_and_future_dates(tmp_path):
    folder = export(tmp_path / "x", lead_columns=("manager_id",), last_event=NOW - timedelta(days=5))
    data = load_folder(folder, timezone="Asia/Almaty").data
    fresh = freshness(data, NOW)
    assert fresh.table == "deals" and fresh.origin == "deals.csv"
    assert fresh.age == timedelta(days=5)
    # a deal dated in the future (a typo) does not make the export fresh
    data.deals.loc[0, "created_at"] = NOW + timedelta(days=30)
    assert freshness(data, NOW).age == timedelta(days=5)


def test_an_open_deals_planned_close_date_is_not_a_record(tmp_path):
    """Bitrix24 exports CLOSEDATE, the expected close date, for open deals too: an export taken 12
    days ago whose open deals are planned to close last week is 12 days old, not a week."""
    folder = export(tmp_path / "x", lead_columns=("manager_id",), last_event=NOW - timedelta(days=12))
    data = load_folder(folder, timezone="Asia/Almaty").data
    open_rows = data.deals.index[data.deals["status"] == "open"]
    data.deals.loc[open_rows, "closed_at"] = NOW - timedelta(days=7)  # planned, in the past by now
    fresh = freshness(data, NOW)
    assert fresh.age == timedelta(days=12), fresh
    # a won deal's close date is an event
    data.deals.loc[open_rows[0], "status"] = "won"
    assert freshness(data, NOW).age == timedelta(days=7)


def test_stale_export_silences_time_based_detectors_and_says_why(tmp_path, capsys):
    folder = export(tmp_path / "x", lead_columns=("manager_id", "first_response_at"), last_event=NOW - timedelta(days=11))
    items, err = _scan(folder, capsys)
    assert not [i for i in items if i["detector"] in ("lead_sla", "stalled_deal", "silent_client")]
    assert ("stale data: the data is 11.0 days old, 8 working days without a record (newest 2026-11-09 11:00 "
            "in deals.csv") in err
    for name in ("lead_sla", "stalled_deal"):
        assert f"skipped {name}: the data is 11.0 days old" in err
    # the same export scanned the day after its last record is judged
    items, err = _scan(folder, capsys, now=NOW - timedelta(days=10))
    assert [i for i in items if i["detector"] == "lead_sla"]
    assert "stale data" not in err


def test_check_config_shows_the_data_age(tmp_path, capsys):
    folder = export(tmp_path / "x", last_event=NOW - timedelta(days=11))
    assert main(["check-config", str(_config_for(folder)), "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert ("data age: newest record 2026-11-09 11:00 (Asia/Almaty) in deals.csv, 11.0 days before now: STALE "
            "(more working days without a record than [source] stale_after_days = 3)") in out
    (folder / "config.toml").write_text('timezone = "Asia/Almaty"\n[source]\npath = "."\nstale_after_days = 14\n')
    assert main(["check-config", str(folder / "config.toml"), "--now", NOW.isoformat()]) == 0
    assert "11.0 days before now: fresh (limit 14 working days without a record)" in capsys.readouterr().out


CONFIG = """
language = "ru"
timezone = "Asia/Almaty"
[source]
path = "{path}"
[telegram]
enabled = true
[[recipients]]
id = "boss"
role = "director"
telegram_id = 900
[[recipients]]
id = "ops"
role = "admin"
telegram_id = 901
language = "en"
[[recipients]]
id = "m1"
role = "manager"
manager_id = "m1"
telegram_id = 101
"""


async def test_admins_hear_about_stale_data_once_and_again_after_it_recovers(tmp_path):
    folder = export(tmp_path / "x", lead_columns=("manager_id",), last_event=NOW - timedelta(days=11))
    config = parse_config(CONFIG.format(path=folder))
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    clock = SimpleNamespace(now=NOW)
    box = Outbox(store, clock=lambda: clock.now)
    jobs = PulseJobs(config, store, box, clock=lambda: clock.now, scan_fn=scan)

    def notices() -> list:
        return [r for r in box.rows() if "stale" in str(r.payload).lower() or "устарел" in str(r.payload)]

    await jobs.run_scan()
    sent = notices()
    assert [r.recipient for r in sent] == ["ops"]  # the admin, not the director or the manager
    assert "The CRM data is stale: the newest record is from 09.11.2026 11:00 in deals.csv, 11\u00a0days ago" \
        in sent[0].payload["text"]
    assert not [r for r in box.rows() if r.recipient == "m1"]  # no stalled or SLA items on stale data
    clock.now = NOW + timedelta(hours=6)
    await jobs.run_scan()
    assert len(notices()) == 1  # once, not every scan
    # fresh data: the notice is closed; stale again later: the admin hears it again
    export(folder, lead_columns=("manager_id",), last_event=clock.now - timedelta(hours=1))
    clock.now += timedelta(hours=1)
    await jobs.run_scan()
    assert len(notices()) == 1
    clock.now += timedelta(days=3)  # Monday: only a weekend since the last record
    await jobs.run_scan()
    assert len(notices()) == 1
    clock.now += timedelta(days=5)  # Saturday: a whole working week without a record
    await jobs.run_scan()
    assert len(notices()) == 1  # the company rests: the admin hears it on Monday
    clock.now += timedelta(days=2)  # Monday 18:00
    await jobs.run_scan()
    assert len(notices()) == 2
    store.close()


ALMATY = timezone(timedelta(hours=5))


def _almaty(d: int, h: int) -> datetime:
    return datetime(2027, 1, d, h, 0, tzinfo=ALMATY).astimezone(UTC)  # the bot's clock is UTC

async def test_stale_data_found_on_new_year_reaches_the_admin_at_the_first_working_days_digest(tmp_path, capsys):
    """Stale data found on 1 January waits through the KZ New Year holidays and the weekend, and
    reaches the admin at the digest time (09:00) of Tue 5 Jan, from the digest job when no scan
    runs then; until then the notification log has not recorded it, and it is sent once."""
    from bot.scheduler import build_scheduler

    folder = export(tmp_path / "x", lead_columns=("manager_id",), last_event=datetime(2026, 12, 18, 6, 0, tzinfo=UTC))
    text = CONFIG.format(path=folder) + '[schedule]\nscan = "0 6 * * *"\n'  # one scan a day, at 06:00
    config = parse_config(text)
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    clock = SimpleNamespace(now=_almaty(1, 6))
    box = Outbox(store, clock=lambda: clock.now)
    jobs = PulseJobs(config, store, box, clock=lambda: clock.now, scan_fn=scan)
    digest = {j.id: j for j in build_scheduler(config, jobs).get_jobs()}["digest 09:00 Asia/Almaty"]

    def notices() -> list:
        return [r for r in box.rows() if r.recipient == "ops"]

    # Fri 1 Jan (New Year's Day), the weekend, Mon 4 Jan (a KZ day off), then Tue 5 Jan before 09:00
    for d, h in [(d, h) for d in (1, 2, 3, 4) for h in (6, 9)] + [(5, 6)]:
        clock.now = at = _almaty(d, h)
        await (jobs.run_scan() if h == 6 else digest.func(*digest.args))
        assert jobs.latest_notices and notices() == [], at  # stale all along, and not told yet

    clock.now = _almaty(5, 9)  # the first working day's digest time
    await digest.func(*digest.args)
    sent = notices()
    assert len(sent) == 1 and "The CRM data is stale" in sent[0].payload["text"]
    assert sent[0].created_at == clock.now
    clock.now = _almaty(6, 6)
    await jobs.run_scan()
    assert len(notices()) == 1  # once
    store.close()

    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    assert main(["preview", "--config", str(tmp_path / "config.toml"), "--recipient", "ops",
                 "--now", "2027-01-01T12:00:00+05:00", "--no-state"]) == 0
    err = capsys.readouterr().err
    assert "admin notice(s), sent apart from the digest: 1 (stale_data), waiting for Tue 5 Jan 2027 09:00" in err, err


async def test_without_an_admin_the_director_hears_about_stale_data(tmp_path):
    folder = export(tmp_path / "x", last_event=NOW - timedelta(days=11))
    config = parse_config(CONFIG.format(path=folder).replace('role = "admin"', 'role = "manager"\nmanager_id = "m2"'))
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(store, clock=lambda: NOW)
    await PulseJobs(config, store, box, clock=lambda: NOW, scan_fn=scan).run_scan()
    stale = [r for r in box.rows() if "устарели" in str(r.payload)]
    assert [r.recipient for r in stale] == ["boss"]
    assert "Данные CRM устарели: самая свежая запись — 09.11.2026 11:00 в deals.csv, 11\u00a0дней назад" \
        in stale[0].payload["text"]
    store.close()


@pytest.mark.parametrize("last, now, stale", [
    (datetime(2026, 11, 13, 13, 0, tzinfo=UTC), datetime(2026, 11, 17, 4, 0, tzinfo=UTC), False),  # Fri -> Tue
    (datetime(2026, 12, 31, 8, 0, tzinfo=UTC), datetime(2027, 1, 5, 4, 0, tzinfo=UTC), False),  # KZ New Year
    (datetime(2026, 11, 9, 6, 0, tzinfo=UTC), datetime(2026, 11, 16, 6, 0, tzinfo=UTC), True),  # a working week
])
def test_stale_counts_working_days_without_a_record(tmp_path, last, now, stale):
    """Weekends and official holidays of the company calendar (KZ from Asia/Almaty) are not silence."""
    folder = export(tmp_path / "x", last_event=last)
    config = parse_config(f'timezone = "Asia/Almaty"\n[source]\npath = "{folder}"\n')
    outcome = scan(config, now)
    assert (outcome.stale is not None) is stale, outcome.stale
