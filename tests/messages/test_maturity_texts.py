"""The maturity check's words: complete in both languages, within chat limits, escaped."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from bot.maturity.data_hints import DataHint
from bot.maturity.questionnaire import QUESTIONS, answers_from_numbers
from bot.maturity.scoring import score
from messages import maturity as m
from messages.model import Button, parse_action

LANGS = ("ru", "en")
NOW = datetime(2026, 11, 18, tzinfo=timezone.utc)
ALL_ANSWERS = [answers_from_numbers(list(c)) for c in itertools.product((1, 2, 3), (1, 2), (1, 2), (1, 2), (1, 2))]

LONG_HINTS = [
    DataHint("systems", "crm_coverage", {"clients": True, "emails_n": 1234567, "calls_n": 7654321, "meetings_n": 0}),
    DataHint("lead_distribution", "lead_assignment", {
        "leads_n": 123456, "window_start": "2026-05-22", "window_end": "2026-11-18", "assigned_n": 123000,
        "assigned_share": 0.996, "timed_n": 123000, "median_minutes": 3000.0, "fast_share": 0.01,
        "fast_minutes": 5.0, "managers_n": 40, "evenness_cv": 0.77, "signature": "mixed"}),
    DataHint("auto_actions", "auto_activities", {"activities_n": 99999, "column": "created_by", "marked_n": 99999,
                                                 "auto_n": 12345, "auto_share": 0.123}),
    DataHint("recommendations", "data_quality", {
        "deals_n": 5000, "closed_n": 400, "won_n": 100, "lost_n": 300, "needed_closed_n": 1000,
        "lost_with_reason_share": 0.4, "incomplete_share": 0.9,
        "empty_fields": [{"field": "client_id", "empty_share": 0.5}, {"field": "amount", "empty_share": 0.6},
                         {"field": "source", "empty_share": 0.7}]}),
    DataHint(None, "no_data"),
]


def test_every_question_option_and_level_has_both_languages():
    assert list(m.QUESTION_ORDER) == [q.id for q in QUESTIONS]
    for q in QUESTIONS:
        assert set(m.OPTIONS[q.id]) == set(q.option_ids()) == set(m.MEANINGS[q.id])
        for lang in LANGS:
            assert m.question_text(q.id, lang).endswith("?")
            for o in q.option_ids():
                assert 0 < len(m.option_label(q.id, o, lang)) <= 40
                assert len(m.answer_meaning(q.id, o, lang)) > 20
    for lang in LANGS:
        for label in ("1", "2", "2+", "3"):
            assert m.level_name(label, lang) and len(m.level_description(label, lang)) > 80
        for level in (1, 2, 3):
            assert 2 <= len(m.next_steps(level, lang)) <= 3
        assert len(m.caveats(lang)) == 3
        for key in m.UI:
            assert m.UI[key][lang]


def test_the_advice_carries_the_articles_facts():
    assert "источник правды" in m.next_steps(1, "ru")[0]
    assert "AI" in m.next_steps(1, "ru")[2]  # level 1: not AI yet
    assert "скоринг лидов" in m.next_steps(2, "ru")[1]  # level 2: one pilot
    assert "Measure the business effect" in m.next_steps(3, "en")[2]
    caveats = " ".join(m.caveats("en"))
    assert "not a grade" in caveats and "level 2 in sales and at level 1 in service" in caveats


def test_digest_hint_points_to_the_command():
    assert m.digest_hint("ru").endswith("Пять вопросов, две минуты: /maturity")
    assert m.digest_hint("en").endswith("/maturity")


@pytest.mark.parametrize("lang", LANGS)
def test_every_result_fits_telegram_and_slack_limits(lang):
    for answers in ALL_ANSWERS:
        result = score(answers)
        tg = m.format_result(result, LONG_HINTS, lang, "telegram", department="service")
        assert len(tg["text"]) <= 4096
        assert tg["text"].count("<b>") == tg["text"].count("</b>")
        sl = m.format_result(result, LONG_HINTS, lang, "slack", department="service")
        assert len(sl["blocks"]) <= 50
        for b in sl["blocks"]:
            limit = 150 if b["type"] == "header" else 3000
            assert len(b["text"]["text"]) <= limit
        plain = m.result_text(result, LONG_HINTS, lang)
        assert m.level_name(result.label, lang) in plain


@pytest.mark.parametrize("lang", LANGS)
def test_question_buttons_are_valid_actions(lang):
    for i, q in enumerate(QUESTIONS, 1):
        tg = m.format_question(q.id, i, 5, q.option_ids(), lang, "telegram")
        actions = [b["action"] for row in tg["buttons"] for b in row]
        for row in tg["buttons"]:
            for b in row:
                Button(b["label"], b["action"])  # under Telegram's 64-byte callback limit
                assert parse_action(b["action"])[0] == "mq"
        assert ("mq:back" in actions) is (i > 1) and actions[-1] == "mq:cancel"
        sl = m.format_question(q.id, i, 5, q.option_ids(), lang, "slack")
        elements = [e for b in sl["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert [e["value"] for e in elements] == actions
        assert len({e["action_id"] for e in elements}) == len(elements)
        assert all(len(e["text"]["text"]) <= 75 for e in elements)
        plain = m.format_question(q.id, i, 5, q.option_ids(), lang, "plain")["text"]
        assert f"  {len(q.options)}. " in plain


def test_hint_sentences_agree_with_numbers_in_russian():
    one = DataHint("lead_distribution", "lead_assignment", {
        "leads_n": 21, "window_start": "2026-11-01", "window_end": "2026-11-18", "assigned_share": 1.0,
        "median_minutes": 2.0, "fast_share": 1.0, "fast_minutes": 5.0, "managers_n": 2, "evenness_cv": 0.05,
        "signature": "automatic"})
    text = m.hint_text(one, "ru")
    assert "21\u00a0заявка" in text and "С 1 ноября по 18 ноября" in text and "2\u00a0мин" in text
    assert "у 2\u00a0менеджеров" in text
    assert "похоже на автоматическое распределение" in text
    assert m.hint_text(DataHint("x", "something_new"), "en") == "Data hint: something_new"


def test_outside_text_is_escaped_per_channel():
    entries = [(datetime(2026, 3, 1, tzinfo=timezone.utc), "1"), (datetime(2026, 11, 1, tzinfo=timezone.utc), "2")]
    groups = [("<script>x</script> & <!channel>", "sales", entries)]
    tg = m.format_history(groups, "en", NOW, "telegram")["text"]
    assert "<script>" not in tg and "&lt;script&gt;" in tg
    sl = str(m.format_history(groups, "en", NOW, "slack")["blocks"])
    assert "<!channel>" not in sl and "&lt;!channel&gt;" in sl
    assert "level 1 in March → level 2 now (1 November)" in tg


def test_history_months_in_russian_use_the_prepositional_case_and_the_year_when_older():
    entries = [(datetime(2025, 12, 5, tzinfo=timezone.utc), "1"), (datetime(2026, 3, 1, tzinfo=timezone.utc), "2"),
               (datetime(2026, 3, 20, tzinfo=timezone.utc), "2+"), (datetime(2026, 11, 1, tzinfo=timezone.utc), "3")]
    line = m.trend_line(entries, "ru", NOW)
    assert line == "уровень 1 в декабре 2025 → уровень 2 с элементами уровня 3 в марте → уровень 3 сейчас (1 ноября)"
    assert "Проверок ещё не было" in m.format_history([], "ru", NOW, "plain")["text"]
