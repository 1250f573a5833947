"""Languages, plural forms, numbers, money and dates for ru and en.

Numbers, money and dates come from Babel (CLDR data): "1 234 567 ₸" / "KZT 1,234,567", "2 недели
назад" / "2 weeks ago"; English plurals from CLDR's categories. Russian counted nouns, in any case,
come from messages.russian (pymorphy3): "1 сделка, 2 сделки, 5 сделок", "Передайте 21 сделку".
Every function takes the language explicitly; nothing here reads the clock (`now` is passed in).
"""
from __future__ import annotations

import re

from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

from babel import Locale
from babel.dates import format_date, format_timedelta
from babel.numbers import format_decimal, get_currency_symbol

Lang = Literal["ru", "en"]
LANGUAGES: tuple[str, ...] = ("ru", "en")

# Nouns we count. Russian: the phrase in the nominative singular (adjectives, then the noun);
# messages.russian declines it for any number and case ("Передайте 21 сделку", "из 5 сделок").
# English: the CLDR plural categories.
NOUNS: dict[str, dict[str, object]] = {
    "deal": {"ru": "сделка", "en": {"one": "deal", "other": "deals"}},
    "stage": {"ru": "этап", "en": {"one": "stage", "other": "stages"}},
    "day": {"ru": "день", "en": {"one": "day", "other": "days"}},
    "working_day": {"ru": "рабочий день", "en": {"one": "working day", "other": "working days"}},
    "working_hour": {"ru": "рабочий час", "en": {"one": "working hour", "other": "working hours"}},
    "hour": {"ru": "час", "en": {"one": "hour", "other": "hours"}},
    "email": {"ru": "письмо", "en": {"one": "email", "other": "emails"}},
    "open": {"ru": "открытие", "en": {"one": "open", "other": "opens"}},
    "lead": {"ru": "заявка", "en": {"one": "lead", "other": "leads"}},
    "next_lead": {"ru": "следующая заявка", "en": {"one": "lead", "other": "leads"}},
    "item": {"ru": "пункт", "en": {"one": "item", "other": "items"}},
    "lost_deal": {"ru": "проигранная сделка", "en": {"one": "lost deal", "other": "lost deals"}},
    "time": {"ru": "раз", "en": {"one": "time", "other": "times"}},
    "open_deal": {"ru": "открытая сделка", "en": {"one": "open deal", "other": "open deals"}},
    "new_lead": {"ru": "новая заявка", "en": {"one": "new lead", "other": "new leads"}},
    "week": {"ru": "неделя", "en": {"one": "week", "other": "weeks"}},
    "check": {"ru": "проверка", "en": {"one": "check", "other": "checks"}},
    "manager": {"ru": "менеджер", "en": {"one": "manager", "other": "managers"}},
    "activity": {"ru": "активность", "en": {"one": "activity", "other": "activities"}},
    "month": {"ru": "месяц", "en": {"one": "month", "other": "months"}},
}

# Babel knows the ₸ / ₽ signs only under the country's locale; ru alone spells "KZT".
_RU_TERRITORIES = ("ru_KZ", "ru_BY", "ru_KG", "ru_UA", "ru_MD")


def check_lang(lang: str) -> Lang:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {list(LANGUAGES)}, got {lang!r}")
    return lang  # type: ignore[return-value]


def pick_language(user_setting: str | None, telegram_code: str | None, default: str) -> Lang:
    """The recipient's own setting, then Telegram's language_code ("ru-RU" -> ru), then the config default.

    A Telegram code we have no texts for (e.g. "kk", "de") falls through to the default the admin chose.
    """
    for candidate in (user_setting, telegram_code):
        if candidate:
            primary = candidate.strip().lower().replace("_", "-").split("-")[0]
            if primary in LANGUAGES:
                return primary  # type: ignore[return-value]
    return check_lang(default)


@lru_cache(maxsize=None)
def _locale(lang: str) -> Locale:
    return Locale.parse(check_lang(lang))


@lru_cache(maxsize=4096)
def plural_form(n: float, lang: str) -> str:
    """CLDR plural category of n: ru 1 -> one, 2 -> few, 5 -> many, 1.5 -> other."""
    return _locale(lang).plural_form(abs(n))


def _word(word: str) -> dict[str, object]:
    try:
        return NOUNS[word]
    except KeyError:
        raise ValueError(f"no counted noun {word!r}; known: {sorted(NOUNS)} (add it to messages.i18n.NOUNS)") from None


def noun(n: float, word: str, lang: str, *, case: str = "nomn") -> str:
    """The noun in the form that agrees with n: noun(5, "deal", "ru") -> "сделок";
    noun(21, "deal", "ru", case="accs") -> "сделку" (Russian only; English has no cases)."""
    lang = check_lang(lang)
    forms = _word(word)[lang]
    if lang == "ru":
        from messages import russian

        return russian.agree(russian.shown_value(n), str(forms), case).removeprefix("{n}\u00a0")
    assert isinstance(forms, dict)
    return forms.get(plural_form(n, lang), forms["other"])


@lru_cache(maxsize=8192)  # a digest repeats the same few numbers; Babel re-parses its pattern each call
def number(x: float, lang: str, *, digits: int = 1) -> str:
    """Locale-grouped number, at most `digits` decimals: ru "1 234 567,5", en "1,234,567.5"."""
    pattern = "#,##0" + ("." + "#" * digits if digits > 0 else "")
    return format_decimal(x, format=pattern, locale=_locale(lang))


def count(n: float, word: str, lang: str, *, case: str = "nomn", before: str = "") -> str:
    """Number and agreeing noun: count(21, "day", "ru") -> "21 день"; count(1.5, "day", "ru") -> "1,5 дня";
    count(21, "deal", "ru", case="accs") -> "21 сделку" (after "Передайте"); count(5, "deal", "ru",
    case="gent") -> "5 сделок" (after "из"). `before`: a Russian adjective put before the number
    ("последний" -> "последние 5 дней"). Agreement follows the value as shown (1.04 -> "1 день"),
    never the formatted string ("1 234")."""
    lang = check_lang(lang)
    forms = _word(word)[lang]
    shown = number(n, lang)
    if lang == "ru":
        from messages import russian

        return russian.agree(russian.shown_value(n), str(forms), case, before).format(n=shown)
    assert isinstance(forms, dict)
    text = f"{shown}\u00a0{forms.get(plural_form(n, lang), forms['other'])}"
    before = _EN_BEFORE.get(before, "" if _CYRILLIC.search(before) else before)
    return f"{before} {text}" if before else text


# `before` is a Russian adjective for agreement; a template that passes it for both languages
# ("in последний 90 days" reached an English director) gets its English here, and an unknown
# Russian one is left out rather than printed inside English.
_EN_BEFORE = {"последний": "the last", "ближайший": "the next", "первый": "the first"}
_CYRILLIC = re.compile("[\u0400-\u04ff]")


def percent(rate: float, lang: str) -> str:
    """A 0..1 rate as a percentage people read at a glance: 0.48 -> "48%", 0.035 -> "3,5%"."""
    pct = rate * 100
    return number(round(pct, 1) if abs(pct) < 10 else round(pct), lang, digits=1) + "%"


def currency_symbol(currency: str, lang: str) -> str:
    code = currency.upper()
    symbol = get_currency_symbol(code, _locale(lang))
    if lang == "ru" and symbol == code:
        for territory in _RU_TERRITORIES:
            local = get_currency_symbol(code, territory)
            if local != code:
                return local
    return symbol


def money(amount: float, currency: str | None, lang: str) -> str:
    """Whole units, locale grouping, the currency's sign: ru "1 234 567 ₸", en "KZT 1,234,567", en "$1,500"."""
    value = number(round(amount), lang, digits=0)
    if not currency:
        return value
    symbol = currency_symbol(currency, lang)
    if lang == "ru":
        return f"{value}\u00a0{symbol}"
    return f"{symbol}\u00a0{value}" if symbol.isalpha() else f"{symbol}{value}"


def parse_when(value: str | date | datetime) -> date | datetime:
    """ISO strings from Insight facts back into date / datetime."""
    if isinstance(value, (date, datetime)):
        return value
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_month(value: str | date | datetime, lang: str, *, with_year: bool = False, tz: tzinfo | None = None) -> str:
    """"1 октября" / "1 October" (with the year when asked). A moment (facts hold them in UTC)
    is dated in `tz`, the company's timezone: an email opened at 01:54 in Almaty on 15 November
    was opened on 15 November, not on the UTC day before."""
    when = parse_when(value)
    if isinstance(when, datetime) and tz is not None and when.tzinfo is not None:
        when = when.astimezone(tz)
    day = when.date() if isinstance(when, datetime) else when
    return format_date(day, "d MMMM y" if with_year else "d MMMM", locale=_locale(lang))


def period(start: str | date, end: str | date, lang: str) -> str:
    """"1 сентября – 30 сентября" / "1 September – 30 September"."""
    return f"{day_month(start, lang)} – {day_month(end, lang)}"


def ago(value: str | datetime, now: datetime, lang: str) -> str:
    """Relative time: "2 недели назад" / "2 weeks ago" (Babel rounds to the largest fitting unit)."""
    when = parse_when(value)
    if not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=now.tzinfo)
    delta: timedelta = when - now
    return format_timedelta(delta, add_direction=True, threshold=1.1, locale=_locale(lang))


def format_short_date(value: str | date | datetime, lang: str) -> str:
    """Compact axis label: "1 окт." / "1 Oct"."""
    when = parse_when(value)
    day = when.date() if isinstance(when, datetime) else when
    return format_date(day, "d MMM", locale=_locale(lang))
