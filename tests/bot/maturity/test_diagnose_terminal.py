"""`crm-pulse diagnose` as a person meets it in a terminal, typed answers on a fake stdin: the
intro names the keys the prompt takes, "b" has nowhere to go on the first question and says so,
going back shows the earlier answer, the text fits the terminal, Ctrl-C speaks the chosen
language, and the service department is asked in its own words."""
from __future__ import annotations

import argparse
import io

import pytest

from bot.cli import main
from bot.maturity import cli


class Tty(io.StringIO):
    """Output that says it is a terminal (as sys.stdout in a console window)."""

    def isatty(self) -> bool:
        return True


def diagnose(monkeypatch, typed: str, *argv: str, out: io.StringIO | None = None) -> tuple[int, str, str]:
    """Run diagnose with `typed` on stdin (input() reads it as from a pipe)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    out = out if out is not None else io.StringIO()
    err = io.StringIO()
    code = cli.run(p.parse_args(list(argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("lang", "keys"), [("en", "b = back, q = quit"), ("ru", "b — назад, q — выйти")])
def test_the_intro_names_the_keys_the_prompt_takes_not_the_chat_command(monkeypatch, lang, keys):
    code, out, _ = diagnose(monkeypatch, "q\n", "--lang", lang)
    intro = out.split("1 of 5" if lang == "en" else "1 из 5")[0]
    assert code == 0 and keys in intro
    assert "/cancel" not in out


def test_back_on_the_first_question_says_there_is_nothing_before(monkeypatch):
    code, out, _ = diagnose(monkeypatch, "b\n1\nq\n", "--lang", "en")
    assert code == 0
    assert "This is the first question: there is nothing before it." in out
    assert out.count("Question 1 of 5") == 1  # not drawn again
    assert "Question 2 of 5" in out  # the "1" after it answered the first question
    _, ru, _ = diagnose(monkeypatch, "b\nq\n", "--lang", "ru")
    assert "Это первый вопрос: назад некуда." in ru


def test_going_back_shows_the_earlier_answer_and_enter_keeps_it(monkeypatch):
    # 1 (one system), 2 (by hand), back from question 3 to 2, Enter keeps "by hand", then 1, 1, 2
    code, out, _ = diagnose(monkeypatch, "1\n2\nb\n\n1\n1\n2\n", "--lang", "en")
    assert code == 0
    again = out.split("Question 2 of 5")[2]  # question 2 shown the second time
    assert "Your earlier answer: 2. By hand or whoever grabs it first (press Enter to keep it)." in again
    assert "New leads are handed out by hand, or whoever grabs one first takes it." in out
    assert out.count("Question 3 of 5") == 2
    # a number replaces the earlier answer
    _, changed, _ = diagnose(monkeypatch, "1\n2\nb\n1\n1\n1\n2\n", "--lang", "en")
    assert "New leads are distributed automatically, by rules." in changed


def test_enter_without_an_earlier_answer_asks_for_a_number(monkeypatch):
    _, out, _ = diagnose(monkeypatch, "\nq\n", "--lang", "ru")
    assert "Нужен номер от 1 до 3." in out


def test_the_result_is_wrapped_to_the_terminals_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = diagnose(monkeypatch, "", "--answers", "1,2,1,1,2", "--lang", "ru", out=Tty())
    lines = out.splitlines()
    assert code == 0 and max(len(ln) for ln in lines) <= 59
    bullets = [i for i, ln in enumerate(lines) if ln.startswith("• ")]
    assert any(lines[i + 1].startswith("  ") and lines[i + 1].strip() for i in bullets)  # a bullet goes on under its text
    _, piped, _ = diagnose(monkeypatch, "", "--answers", "1,2,1,1,2", "--lang", "ru")
    assert " ".join(piped.split()) == " ".join(out.split())  # the same words, only the line breaks differ
    assert max(len(ln) for ln in piped.splitlines()) > 60  # a pipe gets whole lines


def test_the_questions_are_wrapped_too(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    _, out, _ = diagnose(monkeypatch, "q\n", "--lang", "en", out=Tty())
    assert max(len(ln) for ln in out.splitlines()) <= 49
    assert "open to see the whole picture of a" in " ".join(out.split())


def test_ctrl_c_stops_in_the_chosen_language_on_a_clean_line(monkeypatch):
    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(p.parse_args(["--lang", "ru"]), ask=interrupted, out=out, err=err)
    assert code == 130
    assert out.getvalue().endswith("\n\nПроверка прервана, ответы не сохранены.\n")
    assert "interrupted" not in out.getvalue() + err.getvalue()


class CtrlC(io.StringIO):
    """A stdin on which the person presses Ctrl-C at the first question."""

    def readline(self, *a) -> str:
        raise KeyboardInterrupt


def test_ctrl_c_through_the_command_line_is_not_the_english_fallback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.stdin", CtrlC())
    monkeypatch.chdir(tmp_path)  # no ./config.toml to pick up
    assert main(["diagnose", "--lang", "en"]) == 130
    captured = capsys.readouterr()
    assert "The check is stopped and the answers are not saved." in captured.out
    assert "interrupted" not in captured.err


def test_the_service_department_is_asked_in_its_own_words(monkeypatch):
    code, out, _ = diagnose(monkeypatch, "1\n2\n1\n2\n2\n", "--lang", "en", "--department", "service")
    assert code == 0
    assert "Automation maturity check — service" in out
    assert "How do new customer requests reach the service agents?" in out
    assert "escalate overdue requests to the head of service" in out
    assert "lead" not in out.split("Level")[0].lower()  # no question speaks of leads
    assert "New requests are routed by hand, or whoever grabs one first takes it." in out
    assert "Requests are routed by hand" in out
    _, ru, _ = diagnose(monkeypatch, "1\n2\n1\n2\n2\n", "--lang", "ru", "--department", "service")
    assert "Как новые обращения клиентов попадают к сотрудникам сервиса?" in ru
    assert "Новые обращения распределяют вручную, или их берёт тот, кто успел первым." in ru
    _, sales, _ = diagnose(monkeypatch, "1\n2\n1\n2\n2\n", "--lang", "en", "--department", "sales")
    assert "How do new leads reach the managers?" in sales and "New leads are handed out by hand" in sales


def test_service_leaves_out_the_sales_pipeline_hints_and_says_so(monkeypatch):
    code, out, err = diagnose(monkeypatch, "", "--answers", "1,2,1,2,2", "--lang", "en", "--department", "service",
                              "--demo")
    assert code == 0 and "CRM data:" not in out
    assert "not shown for service" in out
    _, sales, _ = diagnose(monkeypatch, "", "--answers", "1,2,1,2,2", "--lang", "en", "--demo")
    assert "CRM data:" in sales
