"""Issue 9 on the deals and leads lists a Bitrix24 admin exports from the web UI (CRM → Сделки →
⚙ → Экспорт: CSV or "Excel", which is an HTML table named .xls), built by
tests/scenarios/_bitrix24_export.py on the _export_factory company, with a config written from
README and config.example.toml only. Run through the real CLI and asserted on what the admin or
the director would read.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from _bitrix24_export import DEALS, LEADS, OPEN_STAGES, Bitrix24Export, write
from _cli import run_cli
from _export_factory import DIRECTOR, Effect, ExportSpec, files, head, touches_recipe

UTC = timezone.utc
END = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # 16:00 in Almaty, a Friday
NOW = END + timedelta(hours=1)

ENGLISH_PHRASE = re.compile(r"\b[a-z]{2,} [a-z]{2,} [a-z]{2,}\b")  # three English words in a row


def spec(seed: int, **kw) -> ExportSpec:
    return ExportSpec(**{"seed": seed, "end": END, "days": 400, "n_managers": 8, "deals_per_month": 220,
                         "with_emails": False, **kw})


def exported(tmp_path: Path, name: str, b: Bitrix24Export, *, excel: bool = False, lang: str = "ru") -> Path:
    """The export folder and the config an admin writes from README ("Web-UI exports") beside it."""
    write(tmp_path / name, b, excel=excel)
    config = tmp_path / f"{name}.{lang}.toml"
    ext = "xls" if excel else "csv"
    text = (head(lang, "Asia/Almaty", "KZT", name) + files(deals=f"DEAL_20261120.{ext}", leads=f"LEAD_20261120.{ext}")
            + DEALS + OPEN_STAGES + LEADS + DIRECTOR)
    config.write_text(text, encoding="utf-8")
    return config


def _load(config: Path):
    from bot.config import load_config
    from crm.load import load_crm

    cfg = load_config(config)
    return load_crm(cfg.source, timezone=cfg.timezone, base_dir=config.parent).data


# --- the "Excel" export is an HTML table named .xls ---------------------------------------------

def test_the_excel_export_reads_as_its_csv_twin(tmp_path):
    """Bitrix24's "Excel" export was refused ("old Excel .xls files are not supported (this one is
    a web page ...)"): it is the first file a Bitrix24 admin tries. It now gives the same deals
    and leads as the CSV export of the same list: entities decoded, <br> kept as a line break."""
    b = Bitrix24Export(spec(1))
    csv_data = _load(exported(tmp_path, "csv", b))
    xls_data = _load(exported(tmp_path, "xls", b, excel=True))
    cols = ["deal_id", "manager_id", "stage", "status", "pipeline", "amount", "currency", "created_at",
            "closed_at", "source", "client_id", "title"]
    pd.testing.assert_frame_equal(csv_data.deals[cols].reset_index(drop=True),
                                  xls_data.deals[cols].reset_index(drop=True))
    pd.testing.assert_frame_equal(csv_data.leads.reset_index(drop=True), xls_data.leads.reset_index(drop=True))
    assert len(xls_data.deals) > 2000 and xls_data.deals["client_id"].str.contains('"').all()


def test_a_planted_drop_in_an_excel_export_is_found_in_russian_and_english(tmp_path):
    """End to end on the .xls an admin downloads: check-config passes, a calm company is quiet, a
    uniform drop of the win rate is one director item naming no segment, in either language."""
    calm = exported(tmp_path, "calm", Bitrix24Export(spec(3)), excel=True)
    rc, out, err = run_cli("check-config", str(calm), "--now", NOW.isoformat())
    assert rc == 0 and "DEAL_20261120.xls" in out, out + err
    rc, out, err = run_cli("scan", "--config", str(calm), "--now", NOW.isoformat(), "--format", "json")
    assert rc == 0, err
    assert not [i for i in json.loads(out) if i["detector"] in ("conversion_drop", "manager_load")], out
    at = END - timedelta(days=56)
    drop = Bitrix24Export(spec(4, effect=Effect("uniform", stage=1, at=at, factor=0.45)))
    for lang in ("ru", "en"):
        config = exported(tmp_path, "drop", drop, excel=True, lang=lang)
        rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat(), "--format", "json")
        assert rc == 0, err
        drops = [i for i in json.loads(out) if i["detector"] == "conversion_drop"]
        assert len(drops) == 1 and not drops[0]["facts"].get("drivers"), drops
        if lang == "ru":
            text = drops[0]["text"].split("Статистика")[0]
            assert "выигрыва" in text and not ENGLISH_PHRASE.findall(text), text


def test_stale_export_summary_in_russian_writes_the_age_as_russian_does(tmp_path):
    """A Bitrix24 export read 12 days later: the Russian summary said "11.8 дн. назад" (an English
    decimal point and a cut word in a Russian sentence)."""
    config = exported(tmp_path, "old", Bitrix24Export(spec(1)))
    rc, out, err = run_cli("scan", "--config", str(config), "--now", (END + timedelta(days=11.8)).isoformat())
    assert rc == 0, err
    summary = next(ln for ln in out.splitlines() if "данные устарели" in ln)
    assert re.search(r"11,9\s?дня назад", summary), summary
    assert not re.search(r"\d\.\d+ дн", summary), summary


# README's recipe for a deals-only export, with Bitrix24's «Дата изменения» as the latest touch.
def with_touches(config: Path) -> Path:
    text = config.read_text(encoding="utf-8")
    text = text.replace('leads = "LEAD_20261120.csv"\n', 'leads = "LEAD_20261120.csv"\nactivities = "DEAL_20261120.csv"\n')
    config.write_text(text + touches_recipe("ID", "Ответственный", "Дата изменения"), encoding="utf-8")
    return config


def test_preview_counts_what_the_digest_shows(tmp_path):
    """A manager who left 15 deals behind (his name stays on them, as Bitrix24 keeps a fired
    user's name): one director item; another manager's two stalled deals are one grouped item.
    The preview said "3 item(s) for this person; the digest shows 3 in full" above a digest
    headed "2 items": the admin could not tell which count is right."""
    gone = spec(7, inactive_flagged=1, abandoned=("m9", 15), abandoned_days=(95, 110))
    config = with_touches(exported(tmp_path, "gone", Bitrix24Export(gone), lang="en"))
    rc, out, err = run_cli("preview", "--config", str(config), "--recipient", "director", "--now", NOW.isoformat(),
                           "--no-state")
    assert rc == 0, err
    assert "Stalled deals of a manager with no work in the CRM (Сергей Волков): 15" in out, out
    header = re.search(r"your digest for \d+\s\w+: (\d+)\sitems", out)
    summary = re.search(r"director: (\d+) item\(s\) for this person; the digest shows (\d+) in full", out + err)
    assert header and summary, out + err
    if int(summary[2]) != int(header[1]):
        assert f"as {header[1]} digest item(s)" in out + err, out + err
    assert int(summary[2]) > int(header[1])  # the case this test is about: grouping happened


# --- Bitrix24's lead stages as outcomes -----------------------------------------------------------

LEAD_SCORE = '\n[detectors.lead_score]\nenabled = true\n'


def test_bitrix24_lead_stages_count_as_outcomes_by_default(tmp_path):
    """«Качественный лид» / «Некачественный лид» are Bitrix24's closing lead stages: with the
    default lists lead_score learns from them (it said "0 leads with an outcome")."""
    config = exported(tmp_path, "leads", Bitrix24Export(spec(1)))
    config.write_text(config.read_text(encoding="utf-8") + LEAD_SCORE, encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped lead_score"))
    got = re.search(r"\((\d+) converted, (\d+) not\)", line)
    assert got and int(got[1]) > 100 and int(got[2]) > 40, line


def test_lead_statuses_no_list_knows_are_named_with_where_to_list_them(tmp_path):
    """Statuses in neither list (here: lists narrowed to English words): lead_score said "0 leads
    with an outcome (0 converted, 0 not)" and never which statuses it had seen or where to list
    them."""
    config = exported(tmp_path, "leads", Bitrix24Export(spec(1)))
    config.write_text(config.read_text(encoding="utf-8") + LEAD_SCORE
                      + 'converted_statuses = ["converted"]\nnot_converted_statuses = ["lost"]\n', encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped lead_score"))
    assert "'Качественный лид' (" in line and "converted_statuses and not_converted_statuses" in line, line
    summary = next(ln for ln in out.splitlines() if "не проверено" in ln)
    part = summary.split("кому звонить первым (", 1)[1].split("); ", 1)[0]
    assert "ни один статус заявки" in part and "'Качественный лид' (" in part, part
    assert not ENGLISH_PHRASE.findall(part.replace("converted_statuses", "").replace("not_converted_statuses", "")), part


def test_leads_mapped_to_not_converted_count_as_not_converted(tmp_path):
    """predict.leads names the outcomes `converted` and `not_converted`; an admin who mapped
    [source.values.leads.status] "Некачественный лид" = "not_converted" got 0 not converted
    (the word was in no list), so lead_score could never learn."""
    config = exported(tmp_path, "leads", Bitrix24Export(spec(1)))
    config.write_text(config.read_text(encoding="utf-8") + LEAD_SCORE + '''
[source.values.leads.status]
"Качественный лид" = "converted"
"Некачественный лид" = "not_converted"
''', encoding="utf-8")
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("skipped lead_score"))
    got = re.search(r"\((\d+) converted, (\d+) not\)", line)
    assert got and int(got[1]) > 100 and int(got[2]) > 40, line


def test_currency_names_are_read_as_their_codes(tmp_path):
    """«Валюта» written as the list shows it ("Российский рубль", "Тенге", "Доллар США") was kept
    as written and printed in every message as "сумма 247 738 РОССИЙСКИЙ РУБЛЬ"; a name no table
    knows is one warning that says how to map it."""
    gone = spec(7, inactive_flagged=1, abandoned=("m9", 15), abandoned_days=(95, 110))
    config = with_touches(exported(tmp_path, "cur", Bitrix24Export(gone, currency_names=True)))
    deals = _load(config).deals
    assert set(deals["currency"].dropna()) == {"KZT", "RUB", "USD"}, deals["currency"].value_counts()
    rc, out, err = run_cli("scan", "--config", str(config), "--now", NOW.isoformat())
    assert rc == 0, err
    assert "сумма" in out and not re.search(r"РУБЛЬ|ТЕНГЕ|ДОЛЛАР", out), out
    assert re.search(r"сумма [\d\s\u00a0]+(₸|₽|\$)", out), out
    path = tmp_path / "cur" / "DEAL_20261120.csv"
    path.write_text(path.read_text(encoding="utf-8-sig").replace(";Доллар США;", ";Драхма;"), encoding="utf-8-sig")
    rc, out, err = run_cli("check-config", str(config), "--now", NOW.isoformat())
    assert rc == 0, out + err
    assert "not ISO codes ('Драхма' (" in out and '[source.values.deals.currency] "Драхма" = "<ISO code' in out, out
