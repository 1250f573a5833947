"""Russian grammar for our messages: counted nouns in any case, people's names in any case.

Why a module of its own: Russian needs more than CLDR's plural categories. After "Передайте" a
count is in the accusative ("1 сделку, 2 сделки, 5 сделок"), after "из" in the genitive ("из 21
сделки"), an adjective before the noun agrees differently from the noun ("2 рабочих дня", but
"2 новые заявки"), and a person's name must be declined ("ответа Тимура Бекмуханова").

- Word forms come from pymorphy3's OpenCorpora dictionary (shipped in pymorphy3-dicts-ru, no
  network); the agreement rule (which case and number follow a numeral) is written here, once.
- Surnames and patronymics are declined by petrovich's rules (the pytrovich package), by gender;
  first names by pymorphy3's dictionary, which also tells which token is a first name and its
  gender. Anything we cannot read as a Russian-style personal
  name (a company, a Latin name, a single word that is not a first name) gives None, and the
  caller uses a construction that needs no case ("менеджер: Тимур Бекмуханов").

A scan renders thousands of items with the same few numbers and names: everything is cached.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

Case = Literal["nomn", "gent", "datv", "accs", "ablt", "loct"]
CASES: tuple[str, ...] = ("nomn", "gent", "datv", "accs", "ablt", "loct")


# --- the two libraries, loaded once, on first use --------------------------------------------

@lru_cache(maxsize=1)
def morph():  # -> pymorphy3.MorphAnalyzer
    """The analyzer (about 0.1 s and 25 MB on first use; dictionaries ship in pymorphy3-dicts-ru)."""
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=1)
def _petrovich():  # -> pytrovich.maker.PetrovichDeclinationMaker
    """petrovich's rules (the pytrovich port: the PyPI "petrovich" 2.0 wheel installs a top-level
    `tests` package that shadows ours)."""
    from pytrovich.maker import PetrovichDeclinationMaker

    return PetrovichDeclinationMaker()


def check_case(case: str) -> str:
    if case not in CASES:
        raise ValueError(f"Russian case must be one of {list(CASES)}, got {case!r}")
    return case


# --- counted nouns ------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _lemma_parse(word: str, pos: tuple[str, ...]):
    """The dictionary entry of `word` (nominative singular) as part of speech `pos`."""
    for p in morph().parse(word):
        if p.tag.POS in pos and p.normal_form == word.lower() and "nomn" in p.tag and "sing" in p.tag:
            return p
    for p in morph().parse(word):  # e.g. a lemma the dictionary spells differently (ё)
        if p.tag.POS in pos:
            return p
    raise ValueError(f"pymorphy3 does not know {word!r} as {'/'.join(pos)}: spell it in the nominative singular")


@lru_cache(maxsize=2048)
def _inflect(word: str, pos: tuple[str, ...], grammemes: frozenset[str]) -> str:
    p = _lemma_parse(word, pos)
    form = p.inflect(set(grammemes))
    if form is None:
        raise ValueError(f"pymorphy3 has no form {sorted(grammemes)} of {word!r}")
    return _same_case_letters(word, form.word)


def _same_case_letters(model: str, word: str) -> str:
    """pymorphy3 answers in lower case; keep a capital the lemma had."""
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def _index(n: float) -> int | None:
    """0: agrees like 1 (1, 21, 101), 1: like 2 (2-4, 22-24), 2: like 5 (0, 5-20, 25...); None: a fraction."""
    if n != int(n):
        return None
    k = abs(int(n))
    if k % 10 == 1 and k % 100 != 11:
        return 0
    if 2 <= k % 10 <= 4 and not 12 <= k % 100 <= 14:
        return 1
    return 2


def shown_value(n: float, digits: int = 1) -> float:
    """The value a reader sees once the number is formatted with at most `digits` decimals:
    agreement follows what is read ("1 день", not "1 дня", for 1.04)."""
    value = round(float(n), digits)
    return float(int(value)) if value == int(value) else value


@lru_cache(maxsize=8192)
def agree(n: float, phrase: str, case: str = "nomn", before: str = "") -> str:
    """`phrase` (adjectives then a noun, nominative singular: "рабочий день") in the form that
    follows the number n in `case`; `before` is an adjective put before the number
    ("последний" -> "последние 5 дней"); the result has "{n}" where the number goes.

    agree(2, "рабочий день") -> "{n} рабочих дня"; agree(21, "сделка", "accs") -> "{n} сделку";
    agree(2, "новая заявка") -> "{n} новые заявки"; agree(5, "проверка", "datv") -> "{n} проверкам";
    agree(2, "день", before="последний") -> "последние {n} дня".
    """
    check_case(case)
    *adjectives, head = phrase.split()
    noun = _lemma_parse(head, ("NOUN",))
    gender = noun.tag.gender or "masc"
    anim = noun.tag.animacy or "inan"
    idx = _index(n)
    if idx is None:  # "1,5 дня", "2,5 рабочего часа": the genitive singular whatever the case
        noun_g, adj_g = {"sing", "gent"}, {"sing", "gent", gender}
    elif idx == 0:
        noun_g, adj_g = {"sing", case}, {"sing", case, gender}
        if case == "accs" and gender == "masc":
            adj_g.add(anim)
    elif case in ("nomn", "accs") and not (case == "accs" and anim == "anim"):
        noun_g = {"sing", "gent"} if idx == 1 else {"plur", "gent"}
        # "2 новые заявки" but "2 рабочих дня": only a feminine noun keeps a nominative adjective
        adj_g = {"plur", "nomn"} if idx == 1 and gender == "femn" else {"plur", "gent"}
    else:  # oblique cases, and an animate accusative ("двух менеджеров"), take the plural of the case
        real = "gent" if case == "accs" else case
        noun_g, adj_g = {"plur", real}, {"plur", real}
    words = [_inflect(a, ("ADJF", "PRTF"), frozenset(adj_g)) for a in adjectives]
    words.append(_same_case_letters(head, _inflect(head, ("NOUN",), frozenset(noun_g))))
    out = "{n}\u00a0" + " ".join(words)
    if before:
        if idx == 0:
            pre = {"sing", case, gender} | ({anim} if case == "accs" and gender == "masc" else set())
        else:
            pre = {"plur", case} | ({"inan"} if case == "accs" else set())
        out = _inflect(before, ("ADJF", "PRTF"), frozenset(pre)) + " " + out
    return out


# --- people's names -------------------------------------------------------------------------

_CYRILLIC_WORD = re.compile(r"^[А-ЯЁ][а-яё]+(?:-[А-ЯЁ][а-яё]+)?$")
_PATRONYMIC = re.compile(r"(вич|вна|чна|ична|оглы|кызы)$")
_PETROVICH_CASE = {"gent": "GENITIVE", "datv": "DATIVE", "accs": "ACCUSATIVE", "ablt": "INSTRUMENTAL",
                   "loct": "PREPOSITIONAL"}


def _first_name(token: str):  # -> pymorphy3 Parse | None
    """pymorphy3's parse of `token` as a first name in the nominative (its gender: .tag.gender),
    or None when the dictionary does not know it as one."""
    if "-" in token:
        return None
    names = [p for p in morph().parse(token)
             if "Name" in p.tag and p.tag.gender in ("masc", "femn") and p.normal_form == token.lower()]
    if not names:
        return None
    score: dict[str, float] = {}
    for p in names:
        score[p.tag.gender] = score.get(p.tag.gender, 0.0) + p.score
    gender = max(score, key=score.get)
    return next(p for p in names if p.tag.gender == gender)


def _decline_first(parse, token: str, case: str) -> str:
    """A first name from the dictionary (it knows "Ольги", and that "Айгерим" does not change)."""
    form = parse.inflect({"sing", case})
    return _same_case_letters(token, form.word) if form is not None else token


def _patronymic(token: str) -> bool:
    if _PATRONYMIC.search(token.lower()):
        return True
    return any("Patr" in p.tag for p in morph().parse(token))


@lru_cache(maxsize=4096)
def person(full_name: str, case: str) -> str | None:
    """A person's name in `case`: person("Тимур Бекмуханов", "gent") -> "Тимура Бекмуханова",
    person("Ольга Ким", "datv") -> "Ольге Ким"; None when it does not read as a Russian-style
    personal name (companies, Latin letters, a single word that is not a first name, initials)."""
    check_case(case)
    text = " ".join(str(full_name or "").split())
    tokens = text.split(" ")
    if not text or len(tokens) > 3 or not all(_CYRILLIC_WORD.match(t) for t in tokens):
        return None
    if case == "nomn":
        return text
    parses = [_first_name(t) for t in tokens]
    firsts = [k for k, p in enumerate(parses) if p is not None]
    if not firsts:
        return None
    if len(tokens) == 1:
        first, roles = 0, ["firstname"]
    else:
        # "Имя Фамилия" or "Фамилия Имя [Отчество]": the first name is the token the dictionary
        # knows as one; when both are (e.g. "Марат Тимур"), the usual order "Имя Фамилия" wins.
        first = firsts[0]
        roles = []
        for k, t in enumerate(tokens):
            if k == first:
                roles.append("firstname")
            elif len(tokens) == 3 and k > first and _patronymic(t):
                roles.append("middlename")
            else:
                roles.append("lastname")
        if roles.count("lastname") != 1:
            return None
    from pytrovich.enums import Case as PCase, Gender, NamePart

    sex = Gender.MALE if parses[first].tag.gender == "masc" else Gender.FEMALE
    to_case = PCase[_PETROVICH_CASE[case]]
    out = []
    for token, role in zip(tokens, roles):
        if role == "firstname":
            out.append(_decline_first(parses[first], token, case))
        else:  # petrovich: surnames and patronymics by their endings and the person's gender
            part = NamePart.LASTNAME if role == "lastname" else NamePart.MIDDLENAME
            out.append(_petrovich().make(part, sex, to_case, token))
    return " ".join(out)
