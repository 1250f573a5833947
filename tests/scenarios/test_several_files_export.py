"""Issue 9 on exports that come as several files per table, run through the real CLI: HubSpot's
calls and tasks exported separately (the calls file has no "Task Type" or "Task Status"), and the
deals exported month by month because the CRM caps an export's rows, the files overlapping at
their edges (a deal in two months' files, once in an older state). Compared in the same run with
the same company exported as one file per table: the admin must see the same insights.
"""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
from _activity_exports import FILES, ActivityExport, config, write
from _cli import run_cli
from test_activity_exports import NOW, _loaded, _stalled, spec


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict], drop: tuple[str, ...] = ()) -> None:
    names = [k for k in rows[0] if k not in drop]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _split(folder: Path) -> tuple[int, str]:
    """The one-file export cut as HubSpot and a row-capped CRM give it; returns the number of
    monthly deals files and the id of the deal whose older state is in an earlier file."""
    tasks = _rows(folder / FILES["hubspot"])
    (folder / FILES["hubspot"]).unlink()
    _write(folder / "calls.csv", [t for t in tasks if t["Task Type"] == "CALL"], drop=("Task Type", "Task Status"))
    _write(folder / "tasks.csv", [t for t in tasks if t["Task Type"] != "CALL"])
    deals = _rows(folder / "deals.csv")
    (folder / "deals.csv").unlink()
    month = lambda d: datetime.fromisoformat(d["created_at"].replace("Z", "+00:00")).strftime("%Y-%m")  # noqa: E731
    months = sorted({month(d) for d in deals})
    by_month = {m: [d for d in deals if month(d) == m] for m in months}
    stale = ""
    for a, b in zip(months, months[1:]):  # the next month's first deals also in this month's file
        edge = [dict(d) for d in by_month[b][:3]]
        won = next((d for d in by_month[b][3:] if d["status"] == "won" and d["closed_at"]), None)
        if won is not None and not stale:  # exported before it was won: open, no close date
            edge.append(dict(won, status="open", closed_at=""))
            stale = won["deal_id"]
        by_month[a] = by_month[a] + edge
    for m, rows in by_month.items():
        _write(folder / f"deals_{m}.csv", rows)
    return len(months), stale


@pytest.mark.parametrize("seed", [5, 11])
def test_calls_tasks_and_monthly_deals_give_what_one_file_each_gives(tmp_path, seed):
    a = ActivityExport(spec(seed), crm="hubspot")
    write(tmp_path / "one", a)
    write(tmp_path / "split", a)
    n_files, stale = _split(tmp_path / "split")
    assert n_files > 6 and stale
    (tmp_path / "one.toml").write_text(config("one", a), encoding="utf-8")
    text = config("split", a).replace(f'activities = "{FILES["hubspot"]}"', 'activities = ["calls.csv", "tasks.csv"]')
    text = text.replace('deals = "deals.csv"', 'deals = "deals_*.csv"')
    text += '[source.fill.activities]\ntype = "call"\n'
    (tmp_path / "split.toml").write_text(text, encoding="utf-8")

    one, split = _loaded(tmp_path / "one.toml").data, _loaded(tmp_path / "split.toml").data
    assert len(split.deals) == len(one.deals) and len(split.activities) == len(one.activities)
    assert split.deals.set_index("deal_id").loc[stale, "status"] == "won"
    assert (split.activities["type"].value_counts().to_dict() == one.activities["type"].value_counts().to_dict())
    assert _stalled(tmp_path / "split.toml") == _stalled(tmp_path / "one.toml")

    rc, out, err = run_cli("check-config", str(tmp_path / "split.toml"), "--now", NOW.isoformat())
    assert rc == 0, out + err
    acts = next(ln for ln in out.splitlines() if ln.strip().startswith("activities "))
    deals = next(ln for ln in out.splitlines() if ln.strip().startswith("deals "))
    assert "calls.csv, tasks.csv" in acts and f"({n_files} files)" in deals, out
    differ = [ln for ln in out.splitlines() if "differ in columns" in ln]
    assert len(differ) == 1 and "calls.csv" in differ[0] and "Task Type" in differ[0], out
    assert sum("different content" in ln for ln in out.splitlines()) == 1, out


SALES = ("deal_id,manager_id,stage,status,created_at,closed_at,amount\n"
         "s1,m1,Квалификация,open,2026-11-02 10:00,,1000\n"
         "s2,m2,КП,won,2026-11-03 11:30,2026-11-10 12:00,2500\n")
TENDERS = ("deal_id,manager_id,stage,status,created_at,closed_at,amount\n"
           "t1,m1,Заявка подана,open,2026-11-04 10:00,,9000\n")


def _pipelines_config(tmp_path: Path, files_line: str) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "managers.csv").write_text("manager_id,name\nm1,Анна Петрова\nm2,Boris Lee\n", encoding="utf-8")
    (folder / "Продажи.csv").write_text(SALES, encoding="utf-8")
    (folder / "Тендеры.csv").write_bytes(TENDERS.encode("cp1251"))  # saved by another person's Excel
    config = tmp_path / "crm-pulse.toml"
    config.write_text('language = "ru"\ntimezone = "Asia/Almaty"\ncurrency = "KZT"\n[source]\npath = "./exports"\n'
                      f'[source.files]\n{files_line}\n', encoding="utf-8")
    return config


def test_a_pipeline_per_file_is_read_and_listed_by_check_config(tmp_path):
    config = _pipelines_config(tmp_path, 'deals = ["Продажи.csv", "Тендеры.csv"]')
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    deals = next(ln for ln in out.splitlines() if ln.strip().startswith("deals "))
    assert "3 rows" in deals and "Продажи.csv, Тендеры.csv" in deals, out
    assert "Заявка подана" in out  # the Windows-1251 file's stage, read as written


def test_a_pattern_matching_nothing_stops_check_config_with_the_pattern_named(tmp_path):
    config = _pipelines_config(tmp_path, 'deals = "deals_*.csv"')
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc != 0
    assert "no file matches 'deals_*.csv'" in out + err and "Продажи.csv" in out + err, out + err
