"""Statistical methods and models are said in words, in the reader's language; identifiers stay in facts."""
from __future__ import annotations

import re

import pytest
from msg_helpers import NOW

import detectors.conversion_drop as conversion_drop
import detectors.loss_reasons as loss_reasons
import detectors.manager_load as manager_load
import detectors.stats as stats
import predict.model as model
from detectors.insight import Audience, Insight
from messages import samples
from messages.methods import METHODS, method_words
from messages.render import plain, render_insight

LATIN_IDENTIFIER = re.compile(r"[a-z]+_[a-z_]+")


def details(insight: Insight, lang: str) -> str:
    return "\n".join(plain(d) for d in render_insight(insight, lang, now=NOW).details)


def stats_line(insight: Insight, lang: str) -> str:
    return next(line for line in details(insight, lang).splitlines() if line.startswith(("Статистика", "Statistics")))


def with_facts(insight: Insight, **facts) -> Insight:
    return Insight(detector=insight.detector, severity=insight.severity, audience=insight.audience,
                   subject=insight.subject, facts={**insight.facts, **facts}, evidence=insight.evidence)


def test_every_method_a_detector_names_has_words():
    """A new *_METHOD constant or model kind without words would print an identifier to a director."""
    named = {value for module in (stats, conversion_drop, manager_load, loss_reasons)
             for key, value in vars(module).items() if key.endswith("_METHOD") and isinstance(value, str)}
    named |= set(model.KINDS)
    assert named >= {"fisher_exact_one_sided", "chi_square", "conditional_poisson_binomial"}
    assert named - set(METHODS) == set()


@pytest.mark.parametrize("detector_method, ru_words, en_words", [
    ("fisher_exact_one_sided", "односторонний точный тест Фишера", "one-sided Fisher exact test"),
    ("conditional_poisson_binomial", "точный условный тест Пуассона", "exact conditional Poisson test"),
    ("chi_square", "критерий хи-квадрат", "chi-square test"),
])
def test_method_in_words_in_both_languages_and_no_identifier_in_russian(detector_method, ru_words, en_words):
    insight = with_facts(samples.manager_load(), method=detector_method, overdispersion=1.0)
    ru, en = stats_line(insight, "ru"), stats_line(insight, "en")
    assert ru_words in ru and en_words in en
    assert not LATIN_IDENTIFIER.search(ru) and not LATIN_IDENTIFIER.search(en)
    assert insight.facts["method"] == detector_method  # the JSON keeps the identifier for machines


def test_weekly_swings_are_said_with_the_russian_decimal_comma():
    insight = with_facts(samples.conversion_drop(), method="fisher_exact_one_sided", overdispersion=2.3)
    assert "метод: односторонний точный тест Фишера; число сделок поделено на 2,3 — поправка на недельные колебания" in stats_line(insight, "ru")
    assert "method: one-sided Fisher exact test; deal counts divided by 2.3 for weekly swings" in stats_line(insight, "en")
    plain_fisher = stats_line(with_facts(insight, overdispersion=1.0), "ru")
    assert "недельные" not in plain_fisher  # nothing was divided, nothing is said


def test_a_segment_drop_names_both_tests_and_which_p_is_shown():
    text = stats_line(samples.conversion_drop_kinds()["conversion_drop_segment"], "ru")
    assert "односторонний точный тест Фишера и сравнение падения в сегменте с остальными" in text
    assert "p — большее из двух" in text and not LATIN_IDENTIFIER.search(text)


def test_an_insight_stored_before_the_split_still_reads_in_words():
    """The outbox may hold insights made by the previous version ("X on counts / 2.3 (weekly swings)")."""
    old = "fisher_exact_one_sided on counts / 2.3 (weekly swings) and segment_vs_rest_drop_difference_and_ratio_lr (larger p)"
    text = method_words(old, "ru")
    assert text.startswith("односторонний точный тест Фишера и сравнение падения") and "поделено на 2,3" in text


def test_an_unknown_method_is_shown_as_itself():
    insight = with_facts(samples.loss_reasons(), method="bootstrap_permutation")
    assert "метод: bootstrap_permutation" in stats_line(insight, "ru")


@pytest.mark.parametrize("p, ru, en", [(0.0037, "p = 0,0037", "p = 0.0037"), (0.0004, "p < 0,001", "p < 0.001"),
                                       (0.15, "p = 0,15", "p = 0.15")])
def test_p_values_use_the_russian_decimal_comma(p, ru, en):
    insight = with_facts(samples.loss_reasons(), p_value=p)
    assert ru in stats_line(insight, "ru") and en in stats_line(insight, "en")


def test_deal_risk_names_its_model_in_words():
    insight = Insight(detector="deal_risk", severity="warning", audience=Audience("manager", "m1"),
                      subject={"deal_id": "D-1"},
                      facts={"deal_id": "D-1", "deal_title": "Поставка", "client_name": "ТОО Ромашка", "manager_id": "m1",
                             "manager_name": "Данияр Ахметов", "stage": "Переговоры", "amount": 100, "currency": "KZT",
                             "p_now": 0.2, "p_before": 0.5, "lookback_days": 14, "stage_win_rate": 0.4,
                             "days_since_touch": 12.0, "touches_14d": 0, "similar_n": 40, "similar_won": 8,
                             "factors": [], "model": "boosting"})
    ru = details(insight, "ru")
    assert "модель: градиентный бустинг" in ru and "boosting" not in ru
    assert "model: gradient boosting" in details(insight, "en")
