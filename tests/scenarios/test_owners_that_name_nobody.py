"""Owner cells that name nobody, in every table, as an admin meets them (issue 9; crm.owners).

An amoCRM/Bitrix24-like export of our own making (tests/scenarios/_export_factory.py) where a
share of the deals and leads belongs to «Без ответственного» or "Unassigned", with no managers
file (the managers are the owners the deals name) and with one, and a managers file that lists
the CRM's catch-all user «Не назначен». Run through the real CLI (scan, check-config): that word
is nobody's name. Nobody receives an item as it, manager_load never compares or names it, its
stalled deals are the director's "no owner" item, its leads "not assigned to anyone", and
check-config says in one line how many records name nobody and which words were read so. People
whose names look like those words ("Noah Owner", «Неназначенова») stay managers.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from _cli import run_cli
from _export_factory import ExportSpec, read_rows, write_export, write_rows

UTC = timezone.utc
END = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
NOW = END + timedelta(hours=1)
PEOPLE = {"m1": "Noah Owner", "m2": "Неназначенова"}  # real people whose names look like the words


def company(root: Path, word: str, share: float, seed: int, *, managers_file: bool) -> tuple[Path, dict[str, int]]:
    """A 6-manager company whose `share` of deals and leads, and the last two days' leads, are
    written to `word`; nobody works those deals (their activities are gone) nor answers the leads.
    m1's and m2's records name them PEOPLE (as a web-UI export names owners). Returns the folder
    and how many deals and leads name nobody."""
    folder = write_export(root / f"{seed}-{share}", ExportSpec(seed=seed, end=END, days=200, n_managers=6,
                                                               deals_per_month=400, leads_per_month=80,
                                                               with_emails=False))
    rng = np.random.default_rng(seed + 1)
    rename = dict(PEOPLE) if not managers_file else {}
    deals = read_rows(folder, "deals")
    nobody = {r["deal_id"] for r in deals if rng.random() < share}
    recent = (END - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    counts = {"deals": 0, "leads": 0}
    for table in ("deals", "leads", "activities", "clients"):
        out = []
        for r in read_rows(folder, table):
            if table == "activities" and r["deal_id"] in nobody:
                continue  # nobody calls about a deal nobody owns
            r = {**r, "manager_id": rename.get(r["manager_id"], r["manager_id"])}
            if table == "deals" and r["deal_id"] in nobody or table == "leads" and (
                    rng.random() < share or r["created_at"] >= recent):
                r["manager_id"] = word
                counts[table] += 1
                if table == "leads" and r["created_at"] >= recent:  # waiting for somebody
                    r = {**r, "assigned_at": "", "first_response_at": "", "status": "new"}
            out.append(r)
        write_rows(folder, table, out)
    if not managers_file:
        (folder / "managers.csv").unlink()
    return folder, counts


def scan(folder: Path, lang: str) -> list[dict]:
    rc, out, err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat(), "--format", "json", "--lang", lang)
    assert rc == 0, err
    return json.loads(out)


def check_config(folder: Path) -> str:
    config = folder.parent / f"{folder.name}.toml"
    config.write_text(f'timezone = "Asia/Almaty"\n[source]\nkind = "files"\npath = "./{folder.name}"\n', encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    return out + err


def nobody_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if "name nobody as their owner" in ln]
    return line


def assert_nobody_is_no_person(insights: list[dict], ids: set[str]) -> None:
    """No item goes to, compares or names any of `ids` as a person."""
    assert not [i for i in insights if i["audience"].get("manager_id") in ids]
    for i in insights:
        assert i["subject"].get("manager_id") not in ids, i["subject"]
        assert i["facts"].get("manager_id") not in ids, (i["detector"], i["facts"].get("manager_id"))
    for item in (i for i in insights if i["detector"] == "manager_load"):
        named = {r["manager_id"] for r in item["facts"]["over"] + item["facts"]["under"]}
        compared = {r["manager_id"] for m in item["facts"]["metrics"].values() for r in m["loads"]}
        assert not (named | compared) & ids, (named, compared)


@pytest.mark.parametrize("word, share, lang, seed", [
    ("Без ответственного", 0.04, "ru", 3),  # a handful: was an "under-loaded teammate" to route leads to
    ("Unassigned", 0.4, "en", 3),            # a flood: was "over-loaded", and its stalled deals its items
    ("Без ответственного", 0.4, "ru", 11),   # held out: another company
    ("unassigned", 0.04, "en", 12),
])
def test_without_a_managers_file_an_owner_that_names_nobody_is_no_manager(tmp_path, word, share, lang, seed):
    folder, counts = company(tmp_path, word, share, seed, managers_file=False)
    insights = scan(folder, lang)
    assert_nobody_is_no_person(insights, {word})
    left = [i for i in insights if i["detector"] == "stalled_deal" and i["facts"].get("owner_gone") == "nobody"]
    if share > 0.1:  # hundreds of deals nobody works: some have stalled, one director item
        (item,) = left
        assert item["audience"] == {"role": "director", "manager_id": None}, item["audience"]
        assert item["facts"]["owner_words"] == [word]
        title = item["text"].splitlines()[0]
        assert title.startswith({"ru": "Сделки без ответственного стоят без движения",
                                 "en": "Stalled deals with no owner"}[lang]), item["text"]
    leads = [i for i in insights if i["detector"] == "lead_sla"]
    assert leads and all(i["audience"]["role"] == "director" and i["facts"]["kind"] == "unassigned" for i in leads)
    text = check_config(folder)
    assert "managers               6 rows  derived" in text, text  # the 6 people, Noah Owner among them
    line = nobody_line(text)
    assert f"{counts['deals']:,} deals, {counts['leads']:,} leads name nobody" in line, line
    assert f"'{word}' ({counts['deals'] + counts['leads']:,})" in line, line
    assert not any(p in line for p in PEOPLE.values()), line


def test_with_a_managers_file_a_word_for_nobody_is_not_a_manager_to_add(tmp_path):
    """The managers file lists the people; the deals' "Unassigned" was "not a listed manager
    (Unassigned)" and check-config asked to add it to managers."""
    folder, counts = company(tmp_path, "Unassigned", 0.4, 5, managers_file=True)
    insights = scan(folder, "en")
    assert_nobody_is_no_person(insights, {"Unassigned"})
    assert not [i for i in insights if i["facts"].get("owner_gone") == "unknown"]
    (item,) = [i for i in insights if i["facts"].get("owner_gone") == "nobody"]
    assert "The CRM names nobody as their owner (“Unassigned”)" in item["text"], item["text"]
    text = check_config(folder)
    assert "not in managers" not in text, text
    assert f"{counts['deals']:,} deals, {counts['leads']:,} leads name nobody" in nobody_line(text)


def test_a_managers_file_user_named_ne_naznachen_is_the_crms_catch_all_not_a_person(tmp_path):
    """amoCRM exports its catch-all user «Не назначен» with the real users (here id u900): it
    got every stalled deal of its own as a manager item. It is nobody from its first deal."""
    folder, _ = company(tmp_path, "u900", 0.3, 7, managers_file=True)
    managers = read_rows(folder, "managers")
    write_rows(folder, "managers", managers + [{**managers[0], "manager_id": "u900", "name": "Не назначен", "team": ""}])
    insights = scan(folder, "ru")
    assert_nobody_is_no_person(insights, {"u900"})
    (item,) = [i for i in insights if i["facts"].get("owner_gone") == "nobody"]
    assert "В CRM у них нет ответственного («Не назначен»)" in item["text"], item["text"]
    text = check_config(folder)
    assert "managers               6 rows  managers.csv" in text, text
    line = nobody_line(text)
    assert "placeholder user" in line and "managers: 'Не назначен' (u900)" in line, line
