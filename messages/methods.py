"""Statistical methods and models in words a director can read, in both languages.

Detectors keep a machine identifier in facts ("method": "fisher_exact_one_sided", "model":
"boosting") for JSON consumers; this table is the one place that turns an identifier into words.
An identifier missing here is shown as itself rather than dropped (a new detector still says
something), and a test checks that every identifier the detectors define is in the table.
"""
from __future__ import annotations

import re
from typing import Any

from messages import i18n

# identifier -> (Russian, English)
METHODS: dict[str, tuple[str, str]] = {
    "fisher_exact_one_sided": ("односторонний точный тест Фишера", "one-sided Fisher exact test"),
    "segment_vs_rest_drop_difference_and_ratio_lr": ("сравнение падения в сегменте с остальными",
                                                     "the segment's drop compared with the rest's"),
    "cochran_mantel_haenszel_one_sided": ("односторонний тест Кохрана — Мантеля — Хензеля",
                                          "one-sided Cochran–Mantel–Haenszel test"),
    "conditional_poisson_binomial": ("точный условный тест Пуассона (доля в работе команды по ставке)",
                                     "exact conditional Poisson test (share of the team's work by capacity)"),
    "chi_square": ("критерий хи-квадрат", "chi-square test"),
    # predict/ model kinds (deal_risk, win_forecast "model")
    "boosting": ("градиентный бустинг", "gradient boosting"),
    "logistic": ("логистическая регрессия", "logistic regression"),
}

SEPARATOR = "+"  # a test made of two ("fisher_exact_one_sided+segment_vs_rest_..."): p is the larger of the two
# before identifiers were split: "fisher_exact_one_sided on counts / 2.3 (weekly swings) and X (larger p)"
_LEGACY = re.compile(r"^(\w+) on counts / ([\d.]+) \(weekly swings\)(?: and (\w+) \(larger p\))?$|^(\w+) and (\w+) \(larger p\)$")


def method_name(identifier: str, lang: str) -> str:
    """One identifier in words; an unknown one as itself."""
    ru, en = METHODS.get(identifier.strip(), (identifier.strip(), identifier.strip()))
    return ru if i18n.check_lang(lang) == "ru" else en


def _parts(method: str, overdispersion: Any) -> tuple[list[str], float]:
    phi = float(overdispersion) if isinstance(overdispersion, (int, float)) and not isinstance(overdispersion, bool) else 1.0
    old = _LEGACY.match(method.strip())
    if old:
        if old.group(1):
            return [old.group(1)] + ([old.group(3)] if old.group(3) else []), float(old.group(2))
        return [old.group(4), old.group(5)], phi
    return [p for p in (x.strip() for x in method.split(SEPARATOR)) if p], phi


def method_words(method: str, lang: str, *, overdispersion: Any = None) -> str:
    """facts["method"] (and facts["overdispersion"], the factor counts were divided by for weekly
    swings) in words: "односторонний точный тест Фишера; число сделок поделено на 2,3 — поправка на недельные колебания"."""
    parts, phi = _parts(method, overdispersion)
    if not parts:
        return method
    ru = i18n.check_lang(lang) == "ru"
    text = (" и " if ru else " and ").join(method_name(p, lang) for p in parts)
    if len(parts) > 1:
        text += "; p — большее из двух" if ru else "; p is the larger of the two"
    if phi > 1.0 and "fisher_exact_one_sided" in parts:
        shown = i18n.number(phi, lang, digits=1)
        text += (f"; число сделок поделено на {shown} — поправка на недельные колебания" if ru
                 else f"; deal counts divided by {shown} for weekly swings")
    return text


def p_shown(label: str, value: float, lang: str) -> str:
    """"p = 0,0037" in Russian, "p = 0.0037" in English; tiny values as "p < 0,001"."""
    if value < 0.001:
        return f"{label} < {i18n.number(0.001, lang, digits=3)}"
    text = f"{value:.2g}"
    return f"{label} = {text.replace('.', ',') if lang == 'ru' else text}"
