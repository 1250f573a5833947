"""crm-pulse CLI, run in-process through main(argv): commands, output streams, exit codes,
and no traceback for any user mistake."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import cli
from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
MAVEN_CONFIG = REPO / "examples" / "maven" / "config.toml"
# Where examples/maven/README.md says to unzip the dataset, else the team's shared copy.
MAVEN_DATA = next((d for d in (REPO / "examples" / "maven" / "data",
                               REPO.parent / "shared" / "datasets" / "maven-crm-sales-opportunities")
                   if (d / "sales_pipeline.csv").is_file()), REPO / "examples" / "maven" / "data")
COMMANDS = ["scan", "check-config", "demo", "init", "run", "stats", "backtest", "explain", "diagnose"]


def small_crm(folder: Path, *, deals_header: str = "deal_id,manager_id,stage,status,created_at") -> Path:
    """A quiet little CRM: three managers, three fresh open deals, nothing to report."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\nm2,Ben\nm3,Carl\n", encoding="utf-8")
    (folder / "deals.csv").write_text(
        f"{deals_header}\nd1,m1,Lead,open,2026-03-03T09:00:00Z\nd2,m2,Lead,open,2026-03-03T10:00:00Z\n"
        "d3,m3,Lead,open,2026-03-04T08:00:00Z\n", encoding="utf-8")
    (folder / "stage_history.csv").write_text(
        "deal_id,stage,entered_at\nd1,Lead,2026-03-03T09:00:00Z\nd2,Lead,2026-03-03T10:00:00Z\n"
        "d3,Lead,2026-03-04T08:00:00Z\n", encoding="utf-8")
    return folder


def stalled_crm(folder: Path) -> Path:
    """The same CRM with deal d1 untouched for 27 days (19 working days): one escalated stalled deal."""
    small_crm(folder)
    (folder / "stage_history.csv").write_text(
        "deal_id,stage,entered_at\nd1,Lead,2026-02-05T09:00:00Z\nd2,Lead,2026-03-03T10:00:00Z\n"
        "d3,Lead,2026-03-04T08:00:00Z\n", encoding="utf-8")
    return folder


NOW = ["--now", "2026-03-04T09:30:00+00:00"]


# --- help -----------------------------------------------------------------------------------

def test_help_lists_every_command_and_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "exit codes" in out and "3  data error" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: crm-pulse {command}")
    assert "unavailable" not in out  # its module imports and declares its arguments


def test_no_command_and_unknown_command_are_usage_errors(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_broken_module_disables_only_its_own_command(monkeypatch, capsys):
    monkeypatch.setitem(cli.EXTERNAL, "stats", ("bot.no_such_module", "broken on purpose"))
    assert main(["stats"]) == 2
    assert "stats` is unavailable" in capsys.readouterr().err
    assert main(["--help"]) == 0  # the rest of the CLI still works


# --- scan -----------------------------------------------------------------------------------

def test_scan_json_prints_only_one_json_array(tmp_path, capsys):
    folder = stalled_crm(tmp_path / "crm")
    assert main(["scan", "--data", str(folder), *NOW, "--format", "json", "--lang", "en"]) == 0
    captured = capsys.readouterr()
    items = json.loads(captured.out)
    assert [i["detector"] for i in items] == ["stalled_deal"]
    item = items[0]
    assert item["subject"] == {"deal_id": "d1"} and item["facts"]["escalated"] is True
    assert set(item) >= {"detector", "fingerprint", "severity", "audience", "subject", "facts", "evidence", "text"}
    assert "d1" in item["text"] or "Lead" in item["text"]
    # the summary and the skip lines go to stderr
    assert "1 insight(s)" in captured.err and "skipped silent_client" in captured.err


def test_scan_text_and_explain(tmp_path, capsys):
    folder = stalled_crm(tmp_path / "crm")
    assert main(["scan", "--data", str(folder), *NOW, "--lang", "en", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "Lead" in out
    assert "d1" in out  # the evidence: the deal behind the insight


def test_fail_on_insights(tmp_path, capsys):
    assert main(["scan", "--data", str(stalled_crm(tmp_path / "a")), *NOW, "--fail-on-insights"]) == 1
    capsys.readouterr()
    assert main(["scan", "--data", str(small_crm(tmp_path / "b")), *NOW, "--fail-on-insights"]) == 0
    out = capsys.readouterr().out
    # no leads or emails: silence from checks that could not run is not "nothing to worry about"
    assert "Ничего тревожного" not in out
    assert "Ничего не найдено по " in out and " из 6;" in out and "SLA по заявкам (нет таблицы leads.csv)" in out


def test_nothing_needs_attention_only_when_every_enabled_check_ran(tmp_path, capsys):
    folder = small_crm(tmp_path / "crm")
    config = tmp_path / "config.toml"
    config.write_text(f'[source]\nkind = "files"\npath = "{folder}"\n'
                      + "".join(f"[detectors.{name}]\nenabled = false\n"
                                for name in ("lead_sla", "silent_client", "loss_reasons", "manager_load")),
                      encoding="utf-8")
    assert main(["scan", "--config", str(config), *NOW, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    # without activities, stalled deals are judged on stage changes alone: said, not hidden
    assert out.strip().startswith("Nothing found by 2 of 2 checks; partly checked: stalled deals (calls, meetings")
    (folder / "activities.csv").write_text("activity_id,deal_id,type,done_at\na1,d1,call,2026-03-03T12:00:00Z\n",
                                           encoding="utf-8")
    assert main(["scan", "--config", str(config), *NOW, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    # the checks this data cannot feed are switched off by the admin: the two left both ran in full
    assert out.strip() == "Nothing needs attention."
    assert main(["scan", "--data", str(folder), *NOW, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "Nothing needs attention" not in out
    assert out.startswith("Nothing found by ") and " of 6 checks; not checked: " in out
    assert "lead SLA (needs leads.csv" in out and "silent clients (needs emails.csv, email_opens.csv" in out


def test_data_error_exit_3_with_the_fix_and_no_traceback(tmp_path, capsys):
    folder = small_crm(tmp_path / "crm", deals_header="deal_id,owner,stage,status,created_at")
    assert main(["scan", "--data", str(folder), *NOW]) == 3
    err = capsys.readouterr().err
    assert "manager_id" in err and "deals" in err
    assert "Traceback" not in err


def test_config_error_exit_2_lists_every_problem(tmp_path, capsys):
    small_crm(tmp_path / "crm")
    bad = tmp_path / "config.toml"
    bad.write_text('[source]\npath = "crm"\n[detectors.conversion_drop]\nmin_deals = 0\n'
                   '[detectors.silent_client]\nsilence_day = 3\n', encoding="utf-8")
    assert main(["scan", "--config", str(bad), *NOW]) == 2
    err = capsys.readouterr().err
    assert "detectors.conversion_drop.min_deals" in err
    assert "silence_days" in err  # did you mean
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["scan", "--config", "no/such/config.toml"], "config file not found"),
    (["scan", "--data", "no/such/dir"], "folder not found"),
    (["scan", "--data", ".", "--now", "yesterday-ish"], "--now"),
    (["check-config", "no/such/config.toml"], "config file not found"),
])
def test_usage_mistakes_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unexpected_error_is_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("detector exploded")

    monkeypatch.setattr("bot.pipeline.scan", boom)
    folder = str(small_crm(tmp_path / "crm"))
    assert main(["scan", "--data", folder, *NOW]) == 4
    err = capsys.readouterr().err
    assert "detector exploded" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", "scan", "--data", folder, *NOW]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and "detector exploded" in err  # printed through the CLI's mask


# --- check-config ---------------------------------------------------------------------------

def test_check_config_ok_summarises_tables_and_detectors(tmp_path, capsys):
    small_crm(tmp_path / "crm")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n[detectors.loss_reasons]\nenabled = false\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK")
    assert "deals" in out and "3 rows" in out
    assert "loss_reasons     skipped: disabled in config" in out
    assert "silent_client    skipped: needs emails.csv, email_opens.csv" in out
    assert "stalled_deal     enabled" in out


def test_check_config_names_amocrm_style_managers_once_and_flags_an_inactive_recipient(tmp_path, capsys):
    """amoCRM exports name the responsible person, so the manager id IS the name: listed once
    ("Ким Алина", not "Ким Алина Ким Алина"). A recipient whose manager the file marks
    inactive is noted: their stalled deals go to the director."""
    crm = tmp_path / "crm"
    crm.mkdir()
    (crm / "managers.csv").write_text("manager_id,name,active\nКим Алина,Ким Алина,false\nОспанов Арман,Оспанов Арман,true\n"
                                      "m3,Carl,true\nИсаева Камила,Исаева Камила,true\n", encoding="utf-8")
    (crm / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\nd1,Ким Алина,Lead,open,2026-03-03T09:00:00Z\n"
                                   "d2,m3,Lead,open,2026-03-03T10:00:00Z\n", encoding="utf-8")
    (crm / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,Lead,2026-03-03T09:00:00Z\n"
                                           "d2,Lead,2026-03-03T10:00:00Z\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n[[recipients]]\nid = "alina"\nrole = "manager"\n'
                      'manager_id = "Ким Алина"\n[[recipients]]\nid = "boss"\nrole = "director"\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    assert "Оспанов Арман Оспанов Арман" not in out and "Оспанов Арман" in out, out
    assert "m3 Carl" in out, out
    assert "recipients (id 'alina'): Ким Алина is marked inactive" in out, out


def test_check_config_data_error_exit_3(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "missing-folder"\n', encoding="utf-8")
    assert main(["check-config", str(config)]) == 3
    assert "missing-folder" in capsys.readouterr().err


def test_check_config_default_file_is_config_toml_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small_crm(tmp_path / "crm-export")
    (tmp_path / "config.toml").write_text('[source]\npath = "crm-export"\n', encoding="utf-8")
    assert main(["check-config"]) == 0


# --- init -----------------------------------------------------------------------------------

def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    written = (tmp_path / "config.toml").read_text(encoding="utf-8")
    assert written == (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert main(["init"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["init", "--force"]) == 0


def test_the_initialised_config_is_valid(tmp_path, monkeypatch):
    from bot.config import load_config

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert load_config(tmp_path / "config.toml").language == "ru"


# --- demo -----------------------------------------------------------------------------------

def _sections(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("━━")]


def test_demo_prints_digests_for_managers_and_the_director_in_russian(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    sections = _sections(out)
    assert sections[0].startswith("━━ Директор по продажам (директор)")
    managers_with_items = [s for s in out.split("\n━━ ")[1:] if "(менеджер)" in s.splitlines()[0] and "сводка" in s]
    assert len(managers_with_items) >= 3
    assert "КП отправлено" in out and "₸" in out


def test_demo_in_english_writes_charts(tmp_path, capsys):
    charts = tmp_path / "charts"
    assert main(["demo", "--lang", "en", "--charts", str(charts)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Demo: ")
    assert "(director)" in out and sum("(manager)" in s for s in _sections(out)) >= 3
    assert "digest" in out
    pngs = list(charts.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert any(p.name.startswith("conversion_drop-") for p in pngs)


# --- the real Maven export ------------------------------------------------------------------

@pytest.mark.skipif(not MAVEN_CONFIG.is_file() or not MAVEN_DATA.is_dir(),
                    reason="examples/maven/config.toml or the Maven dataset is not present")
def test_scan_on_the_maven_export_gives_insights_or_clear_skip_reasons(tmp_path, capsys):
    config = tmp_path / "config.toml"  # the example's mapping, pointed at wherever the data is
    config.write_text(MAVEN_CONFIG.read_text(encoding="utf-8").replace('path = "data"', f'path = "{MAVEN_DATA.as_posix()}"'),
                      encoding="utf-8")
    code = main(["scan", "--config", str(config), "--now", "2018-01-02", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0
    items = json.loads(captured.out)
    assert isinstance(items, list)
    assert "partly skipped conversion_drop: stage-to-stage conversion: not checked" in captured.err
    assert "skipped silent_client: needs emails.csv" in captured.err
    assert "Traceback" not in captured.err


def test_check_config_names_secret_variables_but_never_prints_them(tmp_path, monkeypatch, capsys):
    small_crm(tmp_path / "crm")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n[telegram]\nenabled = true\ntoken_env = "TEST_PULSE_TG"\n'
                      '[slack]\nenabled = true\nbot_token_env = "TEST_PULSE_SLACK"\n', encoding="utf-8")
    monkeypatch.setenv("TEST_PULSE_TG", "123456:very-secret-token")
    monkeypatch.delenv("TEST_PULSE_SLACK", raising=False)
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    assert "$TEST_PULSE_TG set" in out
    assert "$TEST_PULSE_SLACK NOT SET" in out
    assert "very-secret-token" not in out


# --- init --crm -------------------------------------------------------------------------------

def test_init_for_amocrm_writes_a_config_that_reads_amocrm(tmp_path, monkeypatch, capsys):
    import tomllib

    from bot.config import load_config

    monkeypatch.chdir(tmp_path)
    assert main(["init", "--crm", "amocrm"]) == 0
    assert "crm-pulse sync --config config.toml --check" in capsys.readouterr().out
    config = load_config(tmp_path / "config.toml")
    assert config.source.kind == "amocrm" and config.source.base_url == "https://yourcompany.amocrm.ru"
    assert config.source.token_env == "CRM_PULSE_AMOCRM_TOKEN" and config.source.path is None
    written = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    example = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    assert set(written["source"]) == {"kind", "base_url", "token_env"}
    assert {k: v for k, v in written.items() if k != "source"} == {k: v for k, v in example.items() if k != "source"}


@pytest.mark.parametrize("crm, keys", [
    ("bitrix24", {"kind": "bitrix24", "webhook_env": "CRM_PULSE_BITRIX24_WEBHOOK"}),
    ("hubspot", {"kind": "hubspot", "base_url": "https://api.hubapi.com", "token_env": "CRM_PULSE_HUBSPOT_TOKEN"}),
    ("pipedrive", {"kind": "pipedrive", "base_url": "https://yourcompany.pipedrive.com",
                   "token_env": "CRM_PULSE_PIPEDRIVE_TOKEN"}),
])
def test_init_for_other_crms_writes_their_source_block(tmp_path, crm, keys):
    import tomllib

    from bot.config import load_config

    assert main(["init", "--crm", crm, "--path", str(tmp_path / "c.toml")]) == 0
    written = tomllib.loads((tmp_path / "c.toml").read_text(encoding="utf-8"))
    assert written["source"] == keys
    assert "calendar" in written and "detectors" in written  # the rest of the example is kept
    assert load_config(tmp_path / "c.toml").source.kind == crm  # what init writes, the connector accepts


def test_init_with_an_unknown_crm_is_a_usage_error_listing_the_choices(tmp_path, capsys):
    assert main(["init", "--crm", "salesforce", "--path", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert "salesforce" in err and all(crm in err for crm in ("amocrm", "bitrix24", "hubspot", "pipedrive"))
    assert not (tmp_path / "c.toml").exists()
