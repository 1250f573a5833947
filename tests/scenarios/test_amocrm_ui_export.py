"""Issue 9 on the deals export an amoCRM (Kommo) admin downloads from the web UI: one file with
amoCRM's Russian headers (tests/scenarios/_amocrm_export.py), no users file, no stage history,
and a config written from README and config.example.toml only. Run through the real CLI and
asserted on what the admin or a director would read.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _amocrm_export import DEALS, KOMMO_MORE, AmoExport, file_name, kommo_recipe, write
from _cli import run_cli
from _export_factory import DIRECTOR, ExportSpec, files, head, touches_recipe

UTC = timezone.utc
END = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # 16:00 in Almaty, a Friday
NOW = END + timedelta(hours=1)

# The recipe is _amocrm_export.DEALS (README's "Web-UI exports"); most tests also keep the sales
# pipeline and give its stage order, as an admin with two pipelines would.
STAGES = '["Неразобранное", "Новая заявка", "Квалификация", "КП отправлено", "Переговоры", "Договор"]'
KEEP_SALES = f'pipelines = ["Продажи"]\nstages = {STAGES}'


def spec(seed: int, **kw) -> ExportSpec:
    return ExportSpec(**{"seed": seed, "end": END, "days": 400, "n_managers": 8, "deals_per_month": 220,
                         "with_emails": False, "inactive_flagged": 1, **kw})


def exported(tmp_path: Path, name: str, w: AmoExport, *, lang: str = "ru", extra: str = KEEP_SALES) -> Path:
    """The export folder and the admin's config beside it; returns the config's path."""
    write(tmp_path / name, w)
    config = tmp_path / f"{name}.toml"
    text = head(lang, "Asia/Almaty", "KZT", name, source=f"{extra}\n") + files(deals=file_name(w)) + DEALS + DIRECTOR
    config.write_text(text, encoding="utf-8")
    return config


# --- "Этап сделки" is the stage and the status ----------------------------------------------------

def test_open_stages_need_no_mapping_when_the_stage_column_is_the_status(tmp_path):
    """README maps the two closing stages to won/lost; with `status = "Этап сделки"` every open
    stage (six per pipeline here) had to be mapped to "open" as well, or the load stopped with
    exit 3; and the day a manager added a stage in amoCRM, every scan stopped."""
    counts = set()
    for enc in ("utf8", "cp1251", "xlsx"):
        config = exported(tmp_path, enc, AmoExport(spec(1, days=150), encoding=enc, nbsp=enc == "cp1251"))
        rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
        assert rc == 0, out + err
        counts.add(next(ln for ln in out.splitlines() if ln.strip().startswith("deals ")).split()[1])
        stages = next(ln for ln in out.splitlines() if ln.strip().startswith("stages "))
        assert "Успешно" not in stages and "Закрыто" not in stages and "won" not in stages, stages
    assert len(counts) == 1 and int(counts.pop().replace(",", "")) > 500, counts  # every deal of «Продажи», each encoding


# --- stale data, as the admin previews it ------------------------------------------------------

def test_an_admin_previewing_a_stale_export_sees_the_notice_the_bot_would_send(tmp_path):
    """Twelve days after the export, `preview --recipient director` (the admin) said "no message
    would be sent", while the running bot sends the admins a stale-data notice on that scan."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=200)))
    later = (END + timedelta(days=13)).isoformat()
    rc, out, err = run_cli("preview", "--config", str(config), "--recipient", "director", "--now", later, "--no-state")
    assert rc == 0, err
    assert "no message would be sent" not in err, err
    assert out.startswith("Данные CRM устарели: самая свежая запись — 20.11.2026"), out
    assert "amocrm_export_leads.csv" in out and "Обновите выгрузку" in out, out
    # fresh data: no notice
    rc, out, err = run_cli("preview", "--config", str(config), "--recipient", "director", "--now", NOW.isoformat(),
                           "--no-state")
    assert rc == 0 and "устарели" not in out and "admin notice" not in err, out + err


def test_the_russian_scan_says_the_datas_age_in_russian_numbers(tmp_path):
    """The scan's "не проверено" line said "данные устарели: ... 12.8 дн. назад": a decimal point
    and a clipped word where every other Russian line writes "12,8 дня"."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=200)))
    later = (END + timedelta(days=12, hours=19)).isoformat()
    rc, out, err = run_cli("scan", "--config", str(config), "--now", later)
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if "данные устарели" in ln)
    assert "12,8\u00a0дня назад" in line or "12,8 дня назад" in line, line
    assert not re.search(r"\d\.\d", line.split("stale_after_days")[0]), line


# --- a column the detector reads, left unmapped -------------------------------------------------

def test_the_stalled_line_names_the_last_modified_column_and_the_recipe_not_files_amocrm_cannot_export(tmp_path):
    """On this one-file export the "не проверено" line asked for stage_history.csv, activities or
    emails, which amoCRM's web UI cannot export; its own «Дата изменения» can stand in (README)."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=200)))
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if "не проверено" in ln)
    stalled = line.split("зависшие сделки (", 1)[1].split("; проверено не полностью")[0]
    assert "stage_history.csv" not in stalled and "колонка «Дата изменения» из файла сделок" in stalled, line
    assert '[source.files] activities = "amocrm_export_leads.csv"' in stalled, line
    assert ('[source.columns.activities] activity_id = "ID", deal_id = "ID", manager_id = "Ответственный", '
            'done_at = "Дата изменения"; [source.fill.activities] type = "task"; подробнее — в README') in stalled, line
    assert not re.search(r"\b[a-z]{2,} [a-z]{2,} [a-z]{2,}\b", line), line  # no English sentence inside
    en = exported(tmp_path, "amo_en", AmoExport(spec(2, days=200)), lang="en")
    rc, out, err = run_cli("scan", "--config", str(en), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if "not checked" in ln.lower())
    assert 'the deals column "Дата изменения" can stand in: read the deals file again as activities' in line, line
    # the recipe as the line gives it, written into the config, makes the detector run
    recipe = re.search(r'\[source\.files\] (activities = ".+?"); \[source\.columns\.activities\] (.+?); '
                       r'\[source\.fill\.activities\] (type = ".+?");', line)
    assert recipe, line
    text = en.read_text(encoding="utf-8").replace("[source.files]\n", f"[source.files]\n{recipe[1]}\n", 1)
    text += "[source.columns.activities]\n" + recipe[2].replace(", ", "\n") + f"\n[source.fill.activities]\n{recipe[3]}\n"
    en.write_text(text, encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(en), "--now", NOW.isoformat())
    assert rc == 0, err
    summary = next(ln for ln in out.splitlines() if "not checked" in ln.lower())
    assert "Nothing found by 4 of 6 checks" in summary and "stalled" not in summary, summary


def test_without_the_closing_date_conversion_is_said_unchecked_not_calm(tmp_path):
    """An admin who did not map "Дата закрытия" (README's example maps only the owner and the
    budget) was told conversion to won "is measured from deal outcomes instead" and "nothing
    found": every won deal had no closing date, so each cohort was 0% won and a planted
    15% -> 5% drop was never found."""
    from _export_factory import Effect

    planted = AmoExport(spec(4, days=260, effect=Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45)))
    config = exported(tmp_path, "amo", planted)
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert [i["detector"] for i in json.loads(out)].count("conversion_drop") == 1, out
    config.write_text(config.read_text(encoding="utf-8").replace('closed_at = "Дата закрытия"\n', ""), encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    assert "skipped conversion_drop: needs column closed_at in deals (absent or empty in amocrm_export_leads.csv)" in err, err
    assert "measured from deal outcomes instead" not in err, err
    summary = next(ln for ln in out.splitlines() if "не проверено" in ln)
    assert "конверсия по этапам (нужна колонка closed_at в amocrm_export_leads.csv (её нет или она пуста))" in summary, summary


def test_the_unread_columns_hint_names_the_source_field_not_the_sparse_utm_column(tmp_path):
    """With only README's example mapping, check-config suggested `source = "utm_source"` (the
    first match in amoCRM's column order, empty for calls and referrals) over the «Источник»
    field, and did not name «Компания контакта» for client_id."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=120)), extra="")
    text = config.read_text(encoding="utf-8")
    for key in ("title", "closed_at", "pipeline", "client_id", "source", "loss_reason"):
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(f"{key} = "))
    config.write_text(text + "\n", encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    hint = next(ln for ln in (out + err).splitlines() if "columns not read that look useful" in ln)
    assert 'source = "Источник"' in hint and "utm_source" not in hint, hint
    assert 'client_id = "Компания контакта"' in hint and 'closed_at = "Дата закрытия"' in hint, hint


def test_a_missing_status_is_found_in_the_stage_column(tmp_path):
    """amoCRM has no status column: closing is a stage («Успешно реализовано»). An admin who
    mapped only `stage = "Этап сделки"` was told to "rename the column in the file, or map it"
    with no hint that the status is that same column."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=120), encoding="cp1251"))
    text = config.read_text(encoding="utf-8").replace('status = "Этап сделки"\n', "")
    config.write_text(text.split("[source.values.deals.status]")[0] + "[[recipients]]" + text.split("[[recipients]]")[1],
                      encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert "required column 'status' is missing" in out + err, out + err
    fix = (out + err).split("Fix: ", 1)[1]
    assert 'status = "Этап сделки"' in fix and '"Успешно реализовано" = "won"' in fix and '"Закрыто и не реализовано" = "lost"' in fix, fix


def test_the_guessed_stage_order_is_shown_whole_as_a_guess_to_check(tmp_path):
    """Without `stages`, check-config said "set `stages = [...]` ... (e.g. Неразобранное,
    Квалификация, Новая заявка, КП отправлено, Договор, ...)": five of six stages, in a guessed
    order that is wrong here (Новая заявка comes before Квалификация, Переговоры before Договор),
    offered as the example to copy."""
    config = exported(tmp_path, "amo", AmoExport(spec(1)), extra='pipelines = ["Продажи"]')
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    line = next(ln for ln in (out + err).splitlines() if "pipeline order guessed" in ln)
    assert "e.g." not in line and "can be wrong" in line, line
    guessed = line.split("can be wrong: ", 1)[1].split(";", 1)[0].split(" -> ")
    assert sorted(guessed) == sorted(["Неразобранное", "Новая заявка", "Квалификация", "КП отправлено",
                                      "Переговоры", "Договор"]), guessed


def test_with_a_real_history_but_no_closing_date_conversion_to_won_is_a_partial_line(tmp_path):
    """With a stage history, the last stage's conversion to won was measured from a closing date
    the export did not have (every cohort 0% won) and nobody was told."""
    from _export_factory import write_export

    folder = write_export(tmp_path / "crm", spec(3, days=150, absent=frozenset({"deals.closed_at"})))
    rc, out, err = run_cli("scan", "--data", str(folder), "--now", NOW.isoformat())
    assert rc == 0, err
    assert "partly skipped conversion_drop: conversion to won: not checked, needs column closed_at in deals" in err, err
    summary = next(ln for ln in out.splitlines() if "проверено не полностью" in ln or "not fully" in ln)
    assert "конверсия в выигрыш: не проверено, нужна колонка closed_at в deals.csv" in summary, summary


def test_a_misspelt_closing_stage_stops_the_load_instead_of_leaving_every_won_deal_open(tmp_path):
    """Stages the mapping does not close are open; a typo in «Успешно реализовано» must not make
    every won deal an open one in silence."""
    config = exported(tmp_path, "amo", AmoExport(spec(2, days=120)))
    config.write_text(config.read_text(encoding="utf-8").replace('"Успешно реализовано" = "won"',
                                                                 '"Успешно реализованно" = "won"'), encoding="utf-8")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 3, out + err
    assert "'Успешно реализованно' mapped to won in config is in no row" in out + err, out + err
    assert 'Fix: correct the mapping: [source.values.deals.status] "Успешно реализовано" = "won"' in out + err, out + err


# --- Kommo: the same export with English headers ------------------------------------------------

def kommo(tmp_path: Path, name: str, w: AmoExport, more: str = KOMMO_MORE) -> Path:
    write(tmp_path / name, w)
    config = tmp_path / f"{name}.toml"
    text = (head("en", "Asia/Almaty", "KZT", name, source='pipelines = ["Sales"]\n') + files(deals=file_name(w))
            + kommo_recipe(more) + DIRECTOR)
    config.write_text(text, encoding="utf-8")
    return config


def test_kommo_unread_columns_hint_names_the_closing_date_conversion_needs(tmp_path):
    """An admin who mapped what README's example maps (owner, budget) was told conversion_drop
    "needs column closed_at", but the hint on columns not read named Company and Loss reason,
    not Kommo's "Closed at" (nor "Lead title"): the one column that switches the detector on."""
    config = kommo(tmp_path, "kommo", AmoExport(spec(2, days=150), english=True), more="")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    assert "needs column closed_at in deals" in out, out
    hint = next(ln for ln in (out + err).splitlines() if "columns not read that look useful" in ln)
    for fix in ('closed_at = "Closed at"', 'title = "Lead title"', 'client_id = "Company"',
                'loss_reason = "Loss reason"'):
        assert fix in hint, hint
    stages = next(ln for ln in out.splitlines() if ln.strip().startswith("stages "))
    assert "Closed" not in stages and stages.split()[1:3] == ["Incoming", "leads"], stages


def test_kommo_planted_drop_survives_the_round_trip_and_a_calm_export_is_quiet(tmp_path):
    """Kommo's English export (0 budgets where nobody filled one, "Closed - won"/"Closed - lost"
    in the status column): a calm company gets no conversion alarm; a uniform drop at the second
    stage is one director item that names no segment."""
    from _export_factory import Effect

    calm = kommo(tmp_path, "calm", AmoExport(spec(3, days=260), english=True))
    rc, out, err = run_cli("scan", "--config", str(calm), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert not [i for i in json.loads(out) if i["detector"] in ("conversion_drop", "manager_load")], out
    planted = AmoExport(spec(4, days=260, effect=Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45)),
                        english=True)
    config = kommo(tmp_path, "drop", planted)
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    drops = [i for i in json.loads(out) if i["detector"] == "conversion_drop"]
    assert len(drops) == 1 and not drops[0]["facts"].get("drivers"), drops
    assert drops[0]["text"].startswith("Win rate"), drops[0]["text"]


def test_kommo_zero_budgets_are_said_beside_the_abandoned_deals_sum(tmp_path):
    """Kommo writes 0 for a budget nobody filled in. A manager's 15 abandoned deals were "worth"
    the sum of the filled ones ("Their amount in the CRM: KZT 8,000,000") with no word that 7 of
    them had no budget at all; the line now says how many have none, in both languages."""
    import csv

    w = AmoExport(spec(9, days=300, abandoned=("m2", 15), abandoned_days=(40, 80)), english=True,
                  empty_budget_share=0.3)
    config = kommo(tmp_path, "kommo", w)
    text = config.read_text(encoding="utf-8").replace(
        'deals = "amocrm_export_leads.csv"\n', 'deals = "amocrm_export_leads.csv"\nactivities = "amocrm_export_leads.csv"\n')
    config.write_text(text + touches_recipe("ID", "Responsible user", "Last modified"), encoding="utf-8")
    with open(tmp_path / "kommo" / "amocrm_export_leads.csv", encoding="utf-8-sig", newline="") as f:
        left = [r["Budget"] for r in csv.DictReader(f) if int(r["ID"]) >= 20_500_000 and r["Pipeline"] == "Sales"]
    zero = left.count("0")
    assert len(left) >= 5 and 0 < zero < len(left), left
    filled = f"{1_000_000 * (len(left) - zero):,}"
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    assert f"Deals that look abandoned: {len(left)}\n" in out, out
    assert re.search(rf"Their amount in the CRM: KZT\s{filled} \(no amount on {zero} of them\)\.", out), out
    config.write_text(config.read_text(encoding="utf-8").replace('language = "en"', 'language = "ru"'), encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    assert f"(у {zero} из них суммы нет)." in out and filled.replace(",", "\u00a0") in out, out
