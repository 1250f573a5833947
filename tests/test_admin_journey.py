"""The admin's path, as an admin walks it: the installed `crm-pulse` command from `init` to
`explain`, and the mistakes an admin makes on the way, each answered by one clear message with
the right exit code (0 ok, 2 usage/config, 3 data) and no traceback."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main, parse_now

DEMO_NOW = "2026-11-18T06:30:00+00:00"  # the moment fixed inside the demo data (seed 7)


def _console_script() -> str:
    here = Path(sys.executable).parent / "crm-pulse"
    if not here.is_file():
        pytest.skip("the crm-pulse console script is not installed next to this Python")
    return str(here)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_PULSE_")}
    done = subprocess.run([_console_script(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_init_export_check_scan_explain_with_the_installed_command(tmp_path):
    done = _cli(tmp_path, "init")
    assert done.returncode == 0 and (tmp_path / "config.toml").is_file(), done.stderr
    assert _cli(tmp_path, "init").returncode == 2  # never overwrites the admin's config silently

    done = _cli(tmp_path, "demo", "--export", "exports/demo")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "exports" / "demo" / "deals.csv").is_file()

    # the admin points [source] at the export, as the comment in the file says
    config = tmp_path / "config.toml"
    text = config.read_text(encoding="utf-8")
    assert 'path = "./crm-export"' in text
    config.write_text(text.replace('path = "./crm-export"', 'path = "exports/demo"'), encoding="utf-8")

    done = _cli(tmp_path, "check-config", "config.toml", "--now", DEMO_NOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: config.toml") and "deals              3,413 rows" in done.stdout

    done = _cli(tmp_path, "scan", "--config", "config.toml", "--now", DEMO_NOW, "--format", "json")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)  # stdout holds only the JSON array
    assert {i["detector"] for i in items} >= {"stalled_deal", "silent_client", "conversion_drop"}
    stalled = next(i for i in items if i["detector"] == "stalled_deal")

    done = _cli(tmp_path, "explain", stalled["fingerprint"][:10], "--config", "config.toml", "--now", DEMO_NOW)
    assert done.returncode == 0, done.stderr
    assert f"fingerprint: {stalled['fingerprint']}" in done.stdout
    assert stalled["facts"]["deal_title"] in done.stdout


def test_init_and_help_answer_without_loading_the_data_libraries(tmp_path):
    code = ("import sys; from bot.cli import main; "
            f"rc = main(['init', '--path', {str(tmp_path / 'c.toml')!r}]); "
            "print(rc, 'pandas' in sys.modules, 'scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout + done.stderr


# --- check-config: every problem once, under its own key ------------------------------------

def _check(tmp_path: Path, toml: str, capsys) -> tuple[int, list[str]]:
    path = tmp_path / "c.toml"
    path.write_text(toml, encoding="utf-8")
    code = main(["check-config", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line.strip() for line in err.splitlines() if line.strip().startswith("- ")]


def test_source_typos_are_listed_one_per_key(tmp_path, capsys):
    code, problems = _check(tmp_path, '[source]\nstages = ["Новая", "Новая"]\n[source.files]\n'
                                      'dealz = "Сделки.csv"\nleads = ""\n', capsys)
    assert code == 2
    assert problems == [
        "- source.files.dealz: unknown table (did you mean `deals`?) (line 4)",
        "- source.files.leads: must not be empty (line 5)",
        "- source.stages: 'Новая' is listed twice (line 2)",
    ]


def test_a_detector_that_is_not_a_table_is_reported_once(tmp_path, capsys):
    code, problems = _check(tmp_path, "[detectors]\nsilent_client = 3\n", capsys)
    assert code == 2 and problems == ["- detectors.silent_client: must be a table [detectors.silent_client], got 3 (line 2)"]


def test_currency_must_be_an_iso_code(tmp_path, capsys):
    code, problems = _check(tmp_path, 'currency = "тенге"\n', capsys)
    assert code == 2 and problems == ['- currency: must be a 3-letter ISO currency code such as "KZT", "RUB" '
                                      'or "USD", got "тенге" (line 1)']


def test_a_token_pasted_into_a_slack_key_names_that_keys_variable_and_is_never_echoed(tmp_path, capsys):
    code, problems = _check(tmp_path, '[slack]\nbot_token_env = "xoxb-1111-2222-SECRETSECRET"\n', capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith("- slack.bot_token_env: must be the NAME of an environment variable "
                                  "(like CRM_PULSE_SLACK_BOT_TOKEN)")
    assert "export CRM_PULSE_SLACK_BOT_TOKEN" in problems[0] and "SECRETSECRET" not in problems[0]


def test_a_database_url_under_kind_files_is_not_silently_ignored(tmp_path, capsys):
    code, problems = _check(tmp_path, '[source]\nurl_env = "CRM_DB"\n', capsys)
    assert code == 2 and problems[0].startswith('- source: url_env only applies to kind = "sql"')


# --- demo --export: never over the admin's files, never half-written ---------------------------

def test_demo_export_refuses_a_folder_with_files_and_leaves_them_alone(tmp_path, capsys):
    (tmp_path / "config.toml").write_text("# mine\n", encoding="utf-8")
    assert main(["demo", "--export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not empty (config.toml)" in err and "--force" in err
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == "# mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_demo_export_to_an_unwritable_place_is_one_line_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    assert main(["demo", "--export", str(blocker / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crm-pulse: --export: cannot create") and "Traceback" not in err
    assert main(["demo", "--export", str(blocker)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# --- the other commands' arguments ------------------------------------------------------------

def test_now_accepts_the_day_first_dates_of_russian_excel():
    assert parse_now("18.11.2026", "Asia/Almaty").isoformat() == "2026-11-18T00:00:00+05:00"
    assert parse_now("18.11.2026 09:30", "Asia/Almaty").isoformat() == "2026-11-18T09:30:00+05:00"
    assert parse_now("2026-11-18T09:30+00:00", "Asia/Almaty").isoformat() == "2026-11-18T09:30:00+00:00"


def test_now_in_a_bad_format_is_a_usage_error(tmp_path, capsys):
    assert main(["scan", "--data", str(tmp_path), "--now", "18/11/2026"]) == 2
    err = capsys.readouterr().err
    assert "--now: cannot read '18/11/2026'" in err and "18.11.2026 09:00" in err


@pytest.mark.parametrize("fingerprint, said", [
    ("zzzzzz", "'zzzzzz' is not a fingerprint: fingerprints are 16 characters 0-9 and a-f"),
    ("c39", "'c39' has 3 characters: give the whole fingerprint (16 characters) or a unique prefix of at least 6"),
])
def test_explain_refuses_what_cannot_be_a_fingerprint_before_loading_anything(tmp_path, capsys, fingerprint, said):
    # the folder does not exist: the fingerprint is checked first, so no data error is reached
    assert main(["explain", fingerprint, "--data", str(tmp_path / "nowhere")]) == 2
    assert said in capsys.readouterr().err


def test_diagnose_with_an_unknown_timezone_is_a_usage_error(tmp_path, capsys):
    assert main(["diagnose", "--answers", "1,2,1,1,2", "--timezone", "Almaty", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--timezone: unknown timezone 'Almaty'" in err and "Asia/Almaty" in err


def test_run_with_a_missing_data_folder_stops_before_starting(tmp_path, capsys):
    from bot.app import run

    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "./crm-export"\n[state]\nurl = "sqlite:///state.db"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(config), log_level="ERROR")) == 3
    err = capsys.readouterr().err
    assert f"the data folder '{tmp_path / 'crm-export'}' does not exist" in err and "[source] path" in err


def test_scan_and_explain_read_the_config_init_wrote_when_not_told_otherwise(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scan"]) == 2
    assert "give --config FILE or --data DIR (there is no ./config.toml here" in capsys.readouterr().err
    (tmp_path / "config.toml").write_text('[source]\npath = "./crm-export"\n', encoding="utf-8")
    assert main(["scan"]) == 3  # it read ./config.toml: the folder it names is missing
    assert "the data folder" in capsys.readouterr().err
    assert main(["explain", "61ece94a5439b707"]) == 3


def test_a_folder_given_as_the_config_points_at_the_file_inside(tmp_path, capsys):
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    assert main(["check-config", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder; did you mean {tmp_path / 'config.toml'}?" in capsys.readouterr().err


def test_check_config_warns_about_a_recipient_whose_manager_id_is_not_in_the_data(tmp_path, capsys):
    export = tmp_path / "crm-export"
    export.mkdir()
    (export / "managers.csv").write_text("manager_id,name\nm01,Анна Петрова\nm02,Борис Ли\nm03,Ерлан Жаксылыков\n",
                                         encoding="utf-8")
    # everyone works (a deal each): a manager with no work is listed as not compared, not as active
    (export / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\nd1,m01,КП,open,2026-03-02\n"
                                      "d2,m02,КП,open,2026-03-03\nd3,m03,КП,open,2026-03-04\n", encoding="utf-8")
    (export / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,КП,2026-03-02\nd2,КП,2026-03-03\n"
                                              "d3,КП,2026-03-04\n", encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        '[source]\npath = "crm-export"\n'
        '[[recipients]]\nid = "anna"\nmanager_id = "m01"\n'
        '[[recipients]]\nid = "boris"\nname = "Борис"\nmanager_id = "Борис Ли"\n', encoding="utf-8")
    assert main(["check-config", str(tmp_path / "config.toml"), "--now", "2026-03-10"]) == 0
    out = capsys.readouterr().out
    assert ("warning: recipients (id 'boris').manager_id: 'Борис Ли' is not in the managers table, so Борис "
            "will get no digest (did you mean `m02`, Борис Ли?)") in out
    assert "'m01'" not in out
    assert "note: 2 active manager(s) have no [[recipients]] entry and get no digest: m02 Борис Ли, m03 Ерлан" in out


def test_data_given_a_file_asks_for_its_folder(tmp_path, capsys):
    (tmp_path / "deals.csv").write_text("deal_id\n", encoding="utf-8")
    assert main(["scan", "--data", str(tmp_path / "deals.csv")]) == 2
    assert f"--data: {tmp_path / 'deals.csv'} is a file; give the folder that holds the exports ({tmp_path})" \
        in capsys.readouterr().err


def test_a_telegram_username_instead_of_the_numeric_id_is_refused_with_how_to_find_it(tmp_path, capsys):
    code, problems = _check(tmp_path, '[[recipients]]\nid = "ivan"\nrole = "director"\ntelegram_id = "@ivan"\n', capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith("- recipients[0] (id 'ivan').telegram_id: must be the person's numeric Telegram id")
    assert "send /start to the bot" in problems[0] and "(line 4)" in problems[0]
