"""Answers -> level. Pure: the same five answers always give the same result.

Each rule below quotes the sentence of the article (seed/maturity-article.ru.txt) it rests
on, so a reader can check the scoring against the source:

R1 (level 1). «Если вы узнаёте себя в двух или более пунктах — скорее всего, вы здесь.»
   and per question: three or more systems, leads by hand, a system that only stores data
   are each «первый уровень». Level 2 needs at least two of the three foundation answers
   (systems, lead distribution, automatic actions) to point to level 2; otherwise level 1.
   (With three foundation questions, two or more level-1 answers always leave fewer than two
   level-2 answers, so the quoted sentence is part of this rule; the mixed case
   "two systems + one level-1 answer + one level-2 answer" is level 1 too, because
   «Перепрыгнуть уровни не выйдет»: level 2 must actually be in place.)
R2 (no level 3 on level 1). «AI на первом уровне ... AI на таких данных — бесполезная
   игрушка» and «без него разговоры про AI — пустой звук». Recommendations or bots on a
   level-1 foundation leave the level at 1 and add the warning `ai_before_foundation`.
R3 (level 3). «Четвёртый вопрос ... это признаки третьего уровня. Если таких рекомендаций
   нет — второй или ниже.» and «Пятый вопрос ... Если все обращения обрабатывают люди —
   второй или первый.» So level 3 needs both: recommendations AND bots. It also needs the
   whole of level 2 under it (one system, leads by rules, automatic actions), because level
   3 is built on level 2 («Перепрыгнуть уровни не выйдет»; «Менеджер работает в одном окне»).
R4 (level 2 with elements of level 3, label "2+"). «Если да — элементы третьего уровня»
   (bots) and «признаки третьего уровня» (recommendations): on a level-2 foundation, any
   level-3 answer that does not reach R3 gives "2+".
R5 (level 2). A level-2 foundation with neither level-3 answer is level 2.
Foundation answers that point to level 1 while the level is 2 or more are reported as gaps
(`Result.gaps`): the first thing to fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from bot.maturity.questionnaire import QUESTIONS, Signal, validate_answers

Label = Literal["1", "2", "2+", "3"]


@dataclass(frozen=True)
class Reason:
    """What one answer says: the question, the chosen option and its signal."""

    question_id: str
    option_id: str
    signal: Signal


@dataclass(frozen=True)
class Result:
    level: int  # 1, 2 or 3
    label: Label  # "2+" = level 2 with elements of level 3
    reasons: tuple[Reason, ...]  # one per question, in questionnaire order
    gaps: tuple[str, ...] = ()  # foundation question ids answered at level 1 while level >= 2
    warnings: tuple[str, ...] = ()  # "ai_before_foundation"

    def to_dict(self) -> dict:
        return {
            "level": self.level, "label": self.label,
            "reasons": [{"question_id": r.question_id, "option_id": r.option_id, "signal": r.signal} for r in self.reasons],
            "gaps": list(self.gaps), "warnings": list(self.warnings),
        }


def score(answers: Mapping[str, str]) -> Result:
    """{question_id: option_id} for all five questions -> Result (raises AnswerError if incomplete)."""
    validate_answers(answers)
    reasons = tuple(Reason(q.id, answers[q.id], q.option(answers[q.id]).signal) for q in QUESTIONS)
    foundation = [r for r, q in zip(reasons, QUESTIONS) if q.foundation]
    upper = [r for r, q in zip(reasons, QUESTIONS) if not q.foundation]

    level2_answers = sum(r.signal == "level2" for r in foundation)
    level3_answers = sum(r.signal == "level3" for r in upper)

    if level2_answers < 2:  # R1
        warnings = ("ai_before_foundation",) if level3_answers else ()  # R2
        return Result(1, "1", reasons, (), warnings)

    gaps = tuple(r.question_id for r in foundation if r.signal == "level1")
    if level2_answers == len(foundation) and level3_answers == len(upper):  # R3
        return Result(3, "3", reasons, gaps)
    if level3_answers:  # R4
        return Result(2, "2+", reasons, gaps)
    return Result(2, "2", reasons, gaps)  # R5
