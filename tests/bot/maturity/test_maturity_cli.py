"""`crm-pulse diagnose`: scripted answers, the interactive walk, data hints from a folder or the demo."""
from __future__ import annotations

import argparse
import io
import json

import pytest

from bot.maturity import cli


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def run(*argv: str, typed: list[str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    feed = iter(typed or [])

    def ask(prompt: str) -> str:
        out.write(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    code = cli.run(parse(*argv), ask=ask, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_scripted_answers_print_the_level_reasons_steps_and_caveats():
    code, out, err = run("--answers", "1,2,1,1,2", "--lang", "en")
    assert code == 0 and err == ""
    assert "Level 2 with elements of level 3" in out
    assert "New leads are handed out by hand, or whoever grabs one first takes it." in out
    assert "What to fix first" in out and "set up distribution rules" in out
    assert "lead scoring" in out
    assert "crm-pulse diagnose --department sales|service" in out  # the terminal way, not a chat command
    assert "CRM data" not in out  # no --data: no hints


def test_russian_is_the_default():
    code, out, _ = run("--answers", "3,2,2,2,2")
    assert code == 0 and "Уровень 1: разрозненные инструменты" in out
    assert "источник правды" in out


@pytest.mark.parametrize(("answers", "needle"), [
    ("1,2,1", "expected 5 answers"),
    ("1,2,1,1,9", "must be 1..2, got 9"),
])
def test_bad_answers_exit_2_with_the_reason(answers, needle):
    code, out, err = run("--answers", answers)
    assert code == 2 and out == ""
    assert needle in err and "--answers" in err


def test_missing_data_folder_exits_2(tmp_path):
    code, _, err = run("--answers", "1,1,1,1,1", "--data", str(tmp_path / "nope"))
    assert code == 2 and "folder not found" in err


def test_broken_data_exits_3_with_the_loaders_message(tmp_path):
    (tmp_path / "managers.csv").write_text("manager_id,name\nm1,Asel\n", encoding="utf-8")
    (tmp_path / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\nd1,m1,A,open,not-a-date\n",
                                        encoding="utf-8")
    (tmp_path / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,A,2026-10-01\n", encoding="utf-8")
    code, out, err = run("--answers", "1,1,1,1,1", "--data", str(tmp_path))
    assert code == 3 and out == ""
    assert err.startswith("data error:") and "deals.csv" in err and "Traceback" not in err


def test_interactive_walk_with_a_wrong_key_and_back(tmp_path):
    code, out, _ = run("--lang", "en", typed=["3", "x", "2", "b", "1", "2", "2", "2"])
    assert code == 0
    assert "Question 1 of 5" in out and "Question 5 of 5" in out
    assert "Please type a number from 1 to 2." in out
    assert out.count("Question 2 of 5") == 2 and out.count("Question 3 of 5") == 2  # "b" on question 3 went back
    assert "Level 1: scattered tools" in out
    assert "New leads are distributed automatically, by rules." in out  # the answer after going back


def test_interactive_quit_and_end_of_input_stop_without_a_result():
    code, out, _ = run("--lang", "en", typed=["1", "q"])
    assert code == 0 and "The check is stopped" in out and "Next steps" not in out
    code, out, _ = run("--lang", "en", typed=["1"])
    assert code == 0 and "Next steps" not in out


def _three_deals(tmp_path):
    """Two managers, three closed deals (one won), a loss reason on one of the two lost."""
    (tmp_path / "managers.csv").write_text("manager_id,name\nm1,Asel\nm2,Bolat\n", encoding="utf-8")
    (tmp_path / "deals.csv").write_text(
        "deal_id,manager_id,client_id,amount,stage,status,created_at,closed_at,loss_reason,source\n"
        "d1,m1,c1,100,A,won,2026-09-01,2026-09-10,,web\n"
        "d2,m2,,200,A,lost,2026-09-02,2026-09-12,,web\n"
        "d3,m2,c3,300,A,lost,2026-09-03,2026-09-13,Цена,\n", encoding="utf-8")
    (tmp_path / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,A,2026-09-01\nd2,A,2026-09-02\nd3,A,2026-09-03\n",
                                                encoding="utf-8")


def test_data_folder_adds_hints_next_to_the_answers(tmp_path):
    _three_deals(tmp_path)
    code, out, err = run("--answers", "1,1,1,2,2", "--data", str(tmp_path), "--lang", "en", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["label"] == "2" and doc["answers"]["systems"] == "one"
    kinds = {h["kind"]: h for h in doc["hints"]}
    assert set(kinds) == {"crm_coverage", "no_leads", "no_activities", "data_quality", "model_history_short"}
    assert kinds["model_history_short"]["facts"]["missing"] == {"closed": 197, "won": 49, "lost": 48}
    assert "CRM data: too little history to predict deals yet" in doc["text"]
    q = kinds["data_quality"]["facts"]
    assert (q["closed_n"], q["lost_n"], q["lost_with_reason_share"]) == (3, 2, 0.5)
    assert "A loss reason is recorded for 50% of lost deals." in doc["text"]
    assert "CRM data: the data has no leads" in doc["text"]


@pytest.mark.slow
def test_demo_data_hints(tmp_path):
    """Acceptance: diagnose --answers ... --data DIR on the demo company's exported CSVs."""
    from crm.demo import export_csv, generate_demo

    export_csv(generate_demo().data, tmp_path)
    code, out, err = run("--answers", "1,1,2,2,2", "--data", str(tmp_path), "--lang", "en")
    assert code == 0, err
    assert "Level 2: connected systems and rules" in out
    assert "Median time from a lead's creation to its assignment" in out
    assert "loss reason is recorded for" in out
    assert "do not record who created them" in out


def test_the_model_hint_takes_the_minimum_history_from_the_config(tmp_path):
    _three_deals(tmp_path)
    (tmp_path / "config.toml").write_text('[source]\npath = "."\n\n[detectors.deal_risk]\n'
                                          'min_closed_deals = 20\nmin_won = 10\nmin_lost = 10\n', encoding="utf-8")
    code, out, err = run("--answers", "1,1,1,2,2", "--data", str(tmp_path), "--lang", "en", "--format", "json")
    assert code == 0, err
    [hint] = [h for h in json.loads(out)["hints"] if h["kind"] == "model_history_short"]
    assert hint["facts"]["missing"] == {"closed": 17, "won": 9, "lost": 8}
