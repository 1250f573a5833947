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
    assert "21\u00a0заявка" in text and "С 1 ноября по 18 ноября — 21\u00a0заявка" in text and "2\u00a0мин" in text
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


# --- the result reads as sentences, not as repeated button labels ------------------------------

def _why_lines(answers, lang, hints=()):
    """The result's "why" section as plain lines (up to the next heading)."""
    text = m.result_text(score(answers), hints, lang)
    lines = text.split("\n")
    start = lines.index(m.ui("why", lang)) + 1
    out = []
    for ln in lines[start:]:
        if not ln.strip():
            break
        out.append(ln)
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_each_answer_in_the_result_is_a_sentence_about_the_company_not_a_button_label(lang):
    for q in QUESTIONS:
        for o in q.option_ids():
            sentence = m.answer_sentence(q.id, o, lang)
            assert sentence[0].isupper() and sentence.endswith(".") and len(sentence.split()) >= 5, sentence
            assert m.option_label(q.id, o, lang).lower().rstrip(".") != sentence.lower().rstrip(".")
    for answers in ALL_ANSWERS:
        why = " ".join(_why_lines(answers, lang))
        for q in QUESTIONS:
            assert m.answer_sentence(q.id, answers[q.id], lang) in why
        for topic in m.TOPICS.values():  # the old "Topic: label." shape is gone
            assert f"{topic[lang]}:" not in why


def test_the_answers_that_read_wrong_before_now_read_right():
    ru = " ".join(_why_lines(answers_from_numbers([1, 2, 2, 2, 2]), "ru"))
    assert "Картина по клиенту: одну." not in ru
    assert "Всю картину по клиенту менеджер видит в одной системе." in ru
    assert "Новые заявки распределяют вручную, или их берёт тот, кто успел первым." in ru
    en = " ".join(_why_lines(answers_from_numbers([2, 1, 1, 1, 1]), "en"))
    assert "Picture of a client: two." not in en
    assert "A manager opens two systems to see the whole picture of a client." in en
    assert "Bots handle part of the customer inquiries without people." in en


@pytest.mark.parametrize("lang, prefix", [("ru", "По данным CRM: "), ("en", "CRM data: ")])
def test_a_data_hint_after_the_colon_goes_on_in_lower_case(lang, prefix):
    hints = [DataHint("lead_distribution", "lead_assignment", {
                 "leads_n": 21, "window_start": "2026-05-22", "window_end": "2026-05-29", "assigned_share": 0.5,
                 "median_minutes": None, "managers_n": 2, "evenness_cv": None, "signature": "manual"}),
             DataHint("systems", "crm_coverage", {"clients": True, "emails_n": 3, "calls_n": 0, "meetings_n": 0}),
             DataHint("auto_actions", "no_activities", {}),
             DataHint("recommendations", "data_quality", {
                 "closed_n": 10, "won_n": 5, "lost_n": 5, "needed_closed_n": 1000, "lost_with_reason_share": None,
                 "incomplete_share": 0})]
    notes = [ln.strip() for ln in _why_lines(answers_from_numbers([1, 2, 2, 2, 2]), lang, hints)
             if ln.strip().startswith(prefix)]
    assert len(notes) == 4
    for note in notes:
        after = note[len(prefix):]
        assert not after[:1].isupper() or after.split(" ", 1)[0].isupper(), note
    if lang == "ru":
        assert "По данным CRM: с 22 мая по 29 мая — 21\u00a0заявка" in " ".join(notes)
        assert "По данным CRM: За" not in " ".join(notes)
    else:
        assert "CRM data: the data has no activities" in " ".join(notes)


def test_history_shows_a_level_in_words_never_the_code():
    entries = [(datetime(2026, 3, 20, tzinfo=timezone.utc), "2+"), (datetime(2026, 11, 1, tzinfo=timezone.utc), "2+")]
    for lang, want in (("ru", "уровень 2 с элементами уровня 3 в марте → уровень 2 с элементами уровня 3 сейчас"),
                       ("en", "level 2 with elements of level 3 in March → level 2 with elements of level 3 now")):
        for fmt in ("plain", "telegram", "slack"):
            shown = str(m.format_history([(None, None, entries)], lang, NOW, fmt))
            assert want in shown and "2+" not in shown, (lang, fmt)
    for label in ("1", "2", "2+", "3"):
        assert m.level_short(label, "ru").startswith("уровень ") and "+" not in m.level_short(label, "ru")
