"""Grammar: Russian plural forms, numbers, money, dates and relative times, language choice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from messages import i18n

NBSP = "\u00a0"


@pytest.mark.parametrize("n, deal, day", [
    (0, "сделок", "дней"), (1, "сделка", "день"), (2, "сделки", "дня"), (5, "сделок", "дней"),
    (11, "сделок", "дней"), (21, "сделка", "день"), (22, "сделки", "дня"), (25, "сделок", "дней"),
    (101, "сделка", "день"), (1.5, "сделки", "дня"),
])
def test_russian_plural_forms(n, deal, day):
    assert i18n.noun(n, "deal", "ru") == deal
    assert i18n.noun(n, "day", "ru") == day


@pytest.mark.parametrize("n, text", [
    (0, "0 сделок"), (1, "1 сделка"), (2, "2 сделки"), (5, "5 сделок"), (11, "11 сделок"), (21, "21 сделка"),
    (22, "22 сделки"), (25, "25 сделок"), (101, "101 сделка"), (1.5, "1,5 сделки"), (1234, "1 234 сделки"),
])
def test_russian_counts_read_naturally(n, text):
    assert i18n.count(n, "deal", "ru").replace(NBSP, " ") == text


@pytest.mark.parametrize("n, text", [(1, "1 deal"), (2, "2 deals"), (0, "0 deals"), (1.5, "1.5 deals"), (1234, "1,234 deals")])
def test_english_counts(n, text):
    assert i18n.count(n, "deal", "en").replace(NBSP, " ") == text


def test_money_by_locale():
    assert i18n.money(1234567, "KZT", "ru").replace(NBSP, " ") == "1 234 567 ₸"
    assert i18n.money(1234567, "KZT", "en").replace(NBSP, " ") == "KZT 1,234,567"
    assert i18n.money(1500, "RUB", "ru").replace(NBSP, " ") == "1 500 ₽"
    assert i18n.money(1500.4, "USD", "en") == "$1,500"
    assert i18n.money(1500, None, "ru").replace(NBSP, " ") == "1 500"


def test_percent_and_numbers():
    assert i18n.percent(0.48, "ru") == "48%"
    assert i18n.percent(0.035, "ru") == "3,5%"
    assert i18n.percent(0.035, "en") == "3.5%"
    assert i18n.number(1234567.25, "ru").replace(NBSP, " ") == "1 234 567,2"


def test_dates_and_relative_times():
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    assert i18n.day_month("2026-10-01", "ru") == "1 октября"
    assert i18n.day_month("2026-10-01", "en") == "1 October"
    assert i18n.ago(now - timedelta(days=14), now, "ru") == "2 недели назад"
    assert i18n.ago(now - timedelta(days=14), now, "en") == "2 weeks ago"
    assert i18n.ago("2026-11-25T09:00:00+00:00", now, "ru") == "3 дня назад"


@pytest.mark.parametrize("setting, code, default, expected", [
    ("en", "ru", "ru", "en"),  # the recipient's own choice wins
    (None, "ru-RU", "en", "ru"),  # then Telegram's language_code
    (None, "en-US", "ru", "en"),
    (None, "kk", "ru", "ru"),  # a language we have no texts for: the config default
    (None, None, "en", "en"),
    ("", "", "ru", "ru"),
])
def test_pick_language(setting, code, default, expected):
    assert i18n.pick_language(setting, code, default) == expected


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="language must be one of"):
        i18n.pick_language(None, None, "de")
