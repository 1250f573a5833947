"""explain shows the evidence behind one insight, found by fingerprint, and says clearly when there is none."""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from _builders_b import NOW, ago, crm, deal, email, opened  # noqa: E402

from bot.cli import main  # noqa: E402
from bot.explain import NotFound, evidence_rows, find_insight, format_evidence  # noqa: E402
from detectors import run_detectors  # noqa: E402


def company():
    return crm(
        deals=[deal("d1", client_id="c1", title="Компрессор для ТОО Степь"), deal("d2", client_id="c2")],
        stage_history=[{"deal_id": "d1", "stage": "Квалификация", "entered_at": ago(30)},
                       {"deal_id": "d2", "stage": "Квалификация", "entered_at": ago(30)}],
        activities=[{"activity_id": "a1", "deal_id": "d1", "manager_id": "m1", "type": "call", "done_at": ago(12)},
                    {"activity_id": "a2", "deal_id": "d2", "manager_id": "m1", "type": "call", "done_at": ago(1)}],
        clients=[{"client_id": "c1", "name": "ТОО Степь", "manager_id": "m1"},
                 {"client_id": "c2", "name": "ТОО Река", "manager_id": "m1"}],
        emails=[email("e1", "c2", ago(20), subject="КП на компрессор"), email("e2", "c2", ago(9))],
        email_opens=[opened("e1", ago(20) + timedelta(seconds=3)), opened("e1", ago(6)), opened("e2", ago(2))],
    )


def by_detector(data):
    return {i.detector: i for i in run_detectors(data, {}, NOW).insights}


def test_evidence_lists_the_deal_and_the_last_touch():
    data = company()
    stalled = by_detector(data)["stalled_deal"]
    text = format_evidence(stalled, data)
    assert f"fingerprint: {stalled.fingerprint}" in text
    assert "    days_idle: 9\n" in text and "calendar_days_idle: 12" in text and "last_touch_kind: call" in text
    assert "Компрессор для ТОО Степь" in text  # the deal row from CrmData
    assert "a1" in text and "2026-11-15 09:00" in text  # the call that was the last touch


def test_email_evidence_shows_opens_and_how_soon_after_sending():
    data = company()
    silent = by_detector(data)["silent_client"]
    rows = evidence_rows(silent, data)["email_ids"]
    assert list(rows["email_id"]) == ["e1", "e2"]
    assert list(rows["opens"]) == [2, 1]
    assert rows["first_open_after"].iloc[0] == timedelta(seconds=3)  # the proxy open is visible here
    assert "КП на компрессор" in format_evidence(silent, data)


def test_find_by_full_or_unique_prefix():
    insights = run_detectors(company(), {}, NOW).insights
    fp = insights[0].fingerprint
    assert find_insight(insights, fp) is insights[0]
    assert find_insight(insights, fp[:8].upper()) is insights[0]
    with pytest.raises(NotFound, match="no insight with fingerprint 'ffffffffffff'"):
        find_insight(insights, "ffffffffffff")
    with pytest.raises(NotFound, match="no insight"):
        find_insight(insights, fp[:3])  # too short to be a prefix


def _export(data, folder: Path) -> Path:
    from crm.demo import export_csv

    export_csv(data, folder)
    return folder


def test_cli_explains_one_insight(tmp_path, capsys):
    data = company()
    stalled = by_detector(data)["stalled_deal"]
    folder = _export(data, tmp_path / "crm")
    code = main(["explain", stalled.fingerprint, "--data", str(folder), "--now", NOW.isoformat(), "--lang", "en"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Компрессор для ТОО Степь" in out.out and "stage_limit_days: 5" in out.out

    assert main(["explain", stalled.fingerprint, "--data", str(folder), "--now", NOW.isoformat(), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fingerprint"] == stalled.fingerprint and doc["facts"]["days_idle"] == 9  # working days (12 calendar)
    assert doc["evidence_rows"]["deal_ids"][0]["deal_id"] == "d1"
    assert doc["evidence_rows"]["activity_ids"][0]["type"] == "call"


def test_cli_unknown_fingerprint_exits_3_with_a_clear_message(tmp_path, capsys):
    folder = _export(company(), tmp_path / "crm")
    code = main(["explain", "0123456789abcdef", "--data", str(folder), "--now", NOW.isoformat()])
    err = capsys.readouterr().err
    assert code == 3
    assert "no insight with fingerprint '0123456789abcdef'" in err and "--now" in err


@pytest.mark.parametrize("lang, words, not_words", [
    ("ru", ["method=односторонний точный тест Фишера; число сделок поделено на 2,3 — поправка на недельные колебания",
            "method: критерий хи-квадрат", "method: точный условный тест Пуассона",
            '"method": "односторонний тест Кохрана — Мантеля — Хензеля"'],
     ["fisher_exact_one_sided", "chi_square", "conditional_poisson_binomial", "cochran_mantel", "one-sided Fisher"]),
    ("en", ["method=one-sided Fisher exact test; deal counts divided by 2.3 for weekly swings",
            "method: chi-square test", "method: exact conditional Poisson test",
            '"method": "one-sided Cochran–Mantel–Haenszel test"'],
     ["fisher_exact_one_sided", "chi_square", "conditional_poisson_binomial", "cochran_mantel", "тест Фишера"]),
])
def test_explain_names_the_statistical_method_in_words_of_the_language_asked(tmp_path, capsys, monkeypatch, lang,
                                                                           words, not_words):
    """A director who reads `explain` sees "односторонний точный тест Фишера", not an identifier;
    nested methods (the mix shift's) too. The JSON keeps the identifiers for programs."""
    from types import SimpleNamespace

    from bot import pipeline
    from messages import samples

    found = [samples.conversion_drop(), samples.loss_reasons(), samples.manager_load(),
             samples.conversion_drop_kinds()["conversion_drop_mix_shift"]]
    monkeypatch.setattr(pipeline, "scan", lambda config, now, data=None: SimpleNamespace(insights=found, data=data))
    folder = _export(company(), tmp_path / "crm")
    out = ""
    for insight in found:
        assert main(["explain", insight.fingerprint, "--data", str(folder), "--now", NOW.isoformat(),
                     "--lang", lang]) == 0
        out += capsys.readouterr().out
    for w in words:
        assert w in out, w
    for w in not_words:
        assert w not in out, w
    assert main(["explain", found[1].fingerprint, "--data", str(folder), "--now", NOW.isoformat(),
                 "--lang", lang, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["facts"]["method"] == "chi_square"
