"""Every one of the 3*2*2*2*2 = 48 answer combinations with the result stated by hand.

Columns: the five answers as 1-based option numbers
  systems: 1 one, 2 two, 3 three or more | leads: 1 by rules, 2 by hand |
  auto actions: 1 yes, 2 only stores data | recommendations: 1 yes, 2 no | bots: 1 yes, 2 no
then the expected label, the foundation gaps, and whether the "AI before foundation" warning is
raised. The rules and the article sentences behind them are in bot/maturity/scoring.py.
"""
from __future__ import annotations

import itertools

import pytest

from bot.maturity.questionnaire import AnswerError, answers_from_numbers, parse_answers
from bot.maturity.scoring import score

W = True  # warning ai_before_foundation expected
N = False

TABLE = [
    # answers      label  gaps                     warning
    ("1,1,1,1,1", "3",  (),                      N),
    ("1,1,1,1,2", "2+", (),                      N),
    ("1,1,1,2,1", "2+", (),                      N),
    ("1,1,1,2,2", "2",  (),                      N),
    ("1,1,2,1,1", "2+", ("auto_actions",),       N),
    ("1,1,2,1,2", "2+", ("auto_actions",),       N),
    ("1,1,2,2,1", "2+", ("auto_actions",),       N),
    ("1,1,2,2,2", "2",  ("auto_actions",),       N),
    ("1,2,1,1,1", "2+", ("lead_distribution",),  N),
    ("1,2,1,1,2", "2+", ("lead_distribution",),  N),
    ("1,2,1,2,1", "2+", ("lead_distribution",),  N),
    ("1,2,1,2,2", "2",  ("lead_distribution",),  N),
    ("1,2,2,1,1", "1",  (),                      W),
    ("1,2,2,1,2", "1",  (),                      W),
    ("1,2,2,2,1", "1",  (),                      W),
    ("1,2,2,2,2", "1",  (),                      N),
    ("2,1,1,1,1", "2+", (),                      N),
    ("2,1,1,1,2", "2+", (),                      N),
    ("2,1,1,2,1", "2+", (),                      N),
    ("2,1,1,2,2", "2",  (),                      N),
    ("2,1,2,1,1", "1",  (),                      W),
    ("2,1,2,1,2", "1",  (),                      W),
    ("2,1,2,2,1", "1",  (),                      W),
    ("2,1,2,2,2", "1",  (),                      N),
    ("2,2,1,1,1", "1",  (),                      W),
    ("2,2,1,1,2", "1",  (),                      W),
    ("2,2,1,2,1", "1",  (),                      W),
    ("2,2,1,2,2", "1",  (),                      N),
    ("2,2,2,1,1", "1",  (),                      W),
    ("2,2,2,1,2", "1",  (),                      W),
    ("2,2,2,2,1", "1",  (),                      W),
    ("2,2,2,2,2", "1",  (),                      N),
    ("3,1,1,1,1", "2+", ("systems",),            N),
    ("3,1,1,1,2", "2+", ("systems",),            N),
    ("3,1,1,2,1", "2+", ("systems",),            N),
    ("3,1,1,2,2", "2",  ("systems",),            N),
    ("3,1,2,1,1", "1",  (),                      W),
    ("3,1,2,1,2", "1",  (),                      W),
    ("3,1,2,2,1", "1",  (),                      W),
    ("3,1,2,2,2", "1",  (),                      N),
    ("3,2,1,1,1", "1",  (),                      W),
    ("3,2,1,1,2", "1",  (),                      W),
    ("3,2,1,2,1", "1",  (),                      W),
    ("3,2,1,2,2", "1",  (),                      N),
    ("3,2,2,1,1", "1",  (),                      W),
    ("3,2,2,1,2", "1",  (),                      W),
    ("3,2,2,2,1", "1",  (),                      W),
    ("3,2,2,2,2", "1",  (),                      N),
]

LEVEL_OF_LABEL = {"1": 1, "2": 2, "2+": 2, "3": 3}


def test_table_covers_every_combination_once():
    rows = [r[0] for r in TABLE]
    every = {",".join(map(str, c)) for c in itertools.product((1, 2, 3), (1, 2), (1, 2), (1, 2), (1, 2))}
    assert len(rows) == len(set(rows)) == 48
    assert set(rows) == every


@pytest.mark.parametrize(("answers", "label", "gaps", "warning"), TABLE)
def test_score(answers, label, gaps, warning):
    result = score(parse_answers(answers))
    assert result.label == label
    assert result.level == LEVEL_OF_LABEL[label]
    assert result.gaps == gaps
    assert ("ai_before_foundation" in result.warnings) is warning


def test_reasons_follow_the_answers_in_question_order():
    result = score(parse_answers("3,1,2,1,2"))
    assert [(r.question_id, r.option_id, r.signal) for r in result.reasons] == [
        ("systems", "three_plus", "level1"),
        ("lead_distribution", "rules", "level2"),
        ("auto_actions", "stores_only", "level1"),
        ("recommendations", "yes", "level3"),
        ("bots", "no", "not3"),
    ]


@pytest.mark.parametrize(("text", "needle"), [
    ("1,2,1", "expected 5 answers"),
    ("1,3,1,1,1", "answer 2 (question `lead_distribution`) must be 1..2, got 3"),
    ("4,1,1,1,1", "must be 1..3"),
    ("1,x,1,1,1", "option numbers"),
])
def test_bad_answers_say_what_is_wrong(text, needle):
    with pytest.raises(AnswerError, match=None) as e:
        parse_answers(text)
    assert needle in str(e.value)


def test_incomplete_answers_are_refused():
    answers = answers_from_numbers([1, 1, 1, 1, 1])
    del answers["bots"]
    with pytest.raises(AnswerError, match="`bots` is not answered"):
        score(answers)
    with pytest.raises(AnswerError, match="must be one of"):
        score({**answers_from_numbers([1, 1, 1, 1, 1]), "bots": "maybe"})


RANK = {"1": 0, "2": 1, "2+": 2, "3": 3}
# Per question, the options from "less automated" to "more automated" (by option number).
BETTER = [(3, 2), (2, 1), (2, 1), (2, 1), (2, 1)]


@pytest.mark.parametrize("answers", [r[0] for r in TABLE])
def test_a_more_automated_answer_never_lowers_the_result(answers):
    """Consistency of the rules: moving any one answer up never moves the level down."""
    numbers = [int(x) for x in answers.split(",")]
    base = RANK[score(answers_from_numbers(numbers)).label]
    for q, (worse, better) in enumerate(BETTER):
        steps = [(3, 2), (2, 1)] if q == 0 else [(worse, better)]
        for lo, hi in steps:
            if numbers[q] == lo:
                up = numbers.copy()
                up[q] = hi
                assert RANK[score(answers_from_numbers(up)).label] >= base, (answers, q)
