"""The five diagnostic questions of the maturity check, as data.

Every channel (Telegram, Slack, terminal) walks this one list, and scoring reads the
`signal` of each chosen option, so the questions, their order and what each answer says
about the level live in one place. Words (ru/en) live in messages.maturity, keyed by the
ids here. Source: /work/shared/seed/maturity-article.ru.txt, "Простая диагностика".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

# What one answer says about the level:
#   "level1"  - a sign of level 1 (scattered tools, manual work)
#   "level2"  - a sign of level 2 (connected systems, rules)
#   "between" - neither: the article does not place it (two systems)
#   "level3"  - a sign of level 3 (the system learns and recommends, bots answer)
#   "not3"    - "level 2 or lower": no level 3 sign, says nothing about 1 vs 2
Signal = Literal["level1", "level2", "between", "level3", "not3"]


@dataclass(frozen=True)
class Option:
    id: str
    signal: Signal


@dataclass(frozen=True)
class Question:
    id: str
    options: tuple[Option, ...]
    # True for the three questions that separate level 1 from level 2 (the "foundation");
    # False for the two that look for level 3.
    foundation: bool

    def option(self, option_id: str) -> Option:
        for o in self.options:
            if o.id == option_id:
                return o
        raise KeyError(option_id)

    def option_ids(self) -> list[str]:
        return [o.id for o in self.options]


QUESTIONS: tuple[Question, ...] = (
    # «Сколько систем нужно открыть менеджеру, чтобы получить полную картину по клиенту?
    #  Если одну — вы как минимум на втором уровне. Если три и больше — скорее всего, на первом.»
    Question("systems", (
        Option("one", "level2"),
        Option("two", "between"),
        Option("three_plus", "level1"),
    ), foundation=True),
    # «Как распределяются входящие заявки? Автоматически по правилам — второй уровень или
    #  выше. Вручную или «кто первый взял» — первый уровень.»
    Question("lead_distribution", (
        Option("rules", "level2"),
        Option("manual", "level1"),
    ), foundation=True),
    # «Есть ли автоматические действия, которые система делает без участия человека? Если да
    #  (создание задач, отправка напоминаний, эскалация просроченных сделок) — второй уровень.
    #  Если система только хранит данные — первый.»
    Question("auto_actions", (
        Option("yes", "level2"),
        Option("stores_only", "level1"),
    ), foundation=True),
    # «Система даёт рекомендации на основе данных? ... это признаки третьего уровня. Если таких
    #  рекомендаций нет — второй или ниже.»
    Question("recommendations", (
        Option("yes", "level3"),
        Option("no", "not3"),
    ), foundation=False),
    # «Часть обращений обрабатывается ботами без участия людей? Если да — элементы третьего
    #  уровня. Если все обращения обрабатывают люди — второй или первый.»
    Question("bots", (
        Option("yes", "level3"),
        Option("no", "not3"),
    ), foundation=False),
)

QUESTION_IDS: tuple[str, ...] = tuple(q.id for q in QUESTIONS)
DEPARTMENTS: tuple[str, ...] = ("sales", "service")


def question(question_id: str) -> Question:
    for q in QUESTIONS:
        if q.id == question_id:
            return q
    raise KeyError(question_id)


class AnswerError(ValueError):
    """Answers that do not fit the questionnaire; the message says which and what is allowed."""


def answers_from_numbers(numbers: list[int] | tuple[int, ...]) -> dict[str, str]:
    """[1, 2, 1, 1, 2] (1-based option numbers, one per question) -> {question_id: option_id}."""
    if len(numbers) != len(QUESTIONS):
        raise AnswerError(f"expected {len(QUESTIONS)} answers (one per question), got {len(numbers)}")
    out: dict[str, str] = {}
    for i, (q, n) in enumerate(zip(QUESTIONS, numbers), start=1):
        if not 1 <= n <= len(q.options):
            raise AnswerError(f"answer {i} (question `{q.id}`) must be 1..{len(q.options)}, got {n}")
        out[q.id] = q.options[n - 1].id
    return out


def parse_answers(text: str) -> dict[str, str]:
    """'1,2,1,1,2' -> answers; raises AnswerError with a message a person can act on."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    numbers: list[int] = []
    for p in parts:
        if not p.isdigit():
            raise AnswerError(f"answers are option numbers separated by commas, e.g. 1,2,1,1,2; got {p!r}")
        numbers.append(int(p))
    return answers_from_numbers(numbers)


def validate_answers(answers: Mapping[str, str]) -> None:
    """Every question answered once with one of its options; raises AnswerError otherwise."""
    unknown = sorted(set(answers) - set(QUESTION_IDS))
    if unknown:
        raise AnswerError(f"unknown question(s) {unknown}; questions are {list(QUESTION_IDS)}")
    for q in QUESTIONS:
        if q.id not in answers:
            raise AnswerError(f"question `{q.id}` is not answered")
        if answers[q.id] not in q.option_ids():
            raise AnswerError(f"question `{q.id}`: answer must be one of {q.option_ids()}, got {answers[q.id]!r}")
