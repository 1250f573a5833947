"""The admin's terminal: --version, preview of one person's digest, defaults and usage errors
(issue 12), run in-process through bot.cli.main like test_cli.py."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    expected = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert out == f"crm-pulse {expected}"
    assert re.fullmatch(r"crm-pulse \d+\.\d+\.\d+\S*", out)


# --- preview --------------------------------------------------------------------------------

DEMO_NOW = "2026-11-18T06:30:00+00:00"


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    """The demo company exported as CSV + config.toml (console channel, no state yet)."""
    folder = tmp_path_factory.mktemp("demo") / "crm"
    assert main(["demo", "--export", str(folder)]) == 0
    return folder


def _preview(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["preview", "--config", str(config), "--now", DEMO_NOW, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _delivered_text(config_path: Path, store, recipient: str) -> str:
    """What a real digest run enqueues for one recipient on the console channel."""
    from datetime import datetime

    from bot import pipeline
    from bot.config import load_config
    from bot.delivery import deliver, scan_checks
    from bot.outbox import Outbox

    config = load_config(config_path)
    now = datetime.fromisoformat(DEMO_NOW)
    outcome = pipeline.scan(config, now)
    box = Outbox(store)
    deliver(outcome.insights, config, store, box, now, charts=False, checks=scan_checks(outcome, config))
    return "\n\n".join(r.payload["text"] for r in box.rows(recipient=recipient))


def test_preview_prints_exactly_the_digest_delivery_would_send(demo_export, tmp_path, capsys):
    from bot.state import StateStore

    config = demo_export / "config.toml"
    code, out, err = _preview(capsys, config, "--recipient", "m01")
    assert code == 0
    assert "every item counts as new" in err and "the digest shows" in err
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert out == _delivered_text(config, store, "m01") + "\n"
    finally:
        store.close()
    assert "Ержан Сапаров" in out  # m01's own digest, addressed to them


def test_preview_shows_only_that_managers_items(demo_export, capsys):
    _, mine, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "m01")
    _, director, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "director")
    # the director sees deals of several managers; the manager none of the others' deals
    codes = lambda text: set(re.findall(r"(?:код|id): ([0-9a-f, ]+)", text))
    assert codes(mine) and codes(director)
    # her name in whatever case the sentence needs ("Асель Жумабаева", "у Асель Жумабаевой")
    assert "Асель Жумабаев" in director and "Асель Жумабаев" not in mine


def test_preview_in_another_language_without_editing_the_config(demo_export, capsys):
    """An admin of a Russian company checks what an English-speaking hire would read."""
    _, ru, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "director", "--no-state")
    _, en, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "director", "--no-state", "--lang", "en")
    assert "Сводка" in ru.splitlines()[0] or "сводка" in ru.splitlines()[0]
    assert "digest for" in en.splitlines()[0] and "Самое важное" not in en and "Most important first" in en


def test_preview_follows_the_notification_log_in_the_state(demo_export, tmp_path, capsys):
    """After a digest went out, a preview at the same moment holds those items back as unchanged."""
    import shutil

    from bot.config import load_config
    from bot.state import StateStore

    folder = tmp_path / "crm"
    shutil.copytree(demo_export, folder)
    config = folder / "config.toml"
    store = StateStore.open(load_config(config).state_url())
    try:
        _delivered_text(config, store, "m01")
    finally:
        store.close()
    code, out, err = _preview(capsys, config, "--recipient", "m01")
    assert code == 0
    assert "state: sqlite:///" in err
    assert "held back by the notification log: 1 (unchanged: 1)" in err
    assert out == ""  # nothing is due: no message would go out
    code, out, err = _preview(capsys, config, "--recipient", "m01", "--no-state")
    assert code == 0 and "Ержан Сапаров" in out


def test_preview_as_telegram_html_with_buttons_and_as_slack_blocks(demo_export, capsys):
    code, out, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "m01", "--format", "telegram")
    assert code == 0
    assert out.startswith("<b>") and "👉 <i>" in out and ("[1 · ✅ Сделано]" in out or "[1 · ✅ Done]" in out)
    code, out, _ = _preview(capsys, demo_export / "config.toml", "--recipient", "director", "--format", "slack")
    assert code == 0
    messages = json.loads(out)
    assert messages and all("blocks" in m and "text" in m for m in messages)
    assert messages[0]["blocks"][0]["type"] == "header"


def test_preview_unknown_recipient_is_a_usage_error_with_a_suggestion(demo_export, capsys):
    code, out, err = _preview(capsys, demo_export / "config.toml", "--recipient", "dirctor")
    assert code == 2 and out == ""
    assert "did you mean 'director'?" in err and "Traceback" not in err


def test_preview_without_a_config_here_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["preview", "--recipient", "m01"]) == 2
    assert "crm-pulse init" in capsys.readouterr().err


def test_preview_is_listed_with_its_help(capsys):
    assert main(["--help"]) == 0
    assert "preview" in capsys.readouterr().out
    assert main(["preview", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: crm-pulse preview") and "--recipient" in out and "telegram" in out


# --- backtest and diagnose read ./config.toml and mapped exports -----------------------------

def mapped_export(root: Path) -> tuple[Path, Path]:
    """An amoCRM-like export with Russian file and column names, and a config.toml (in another
    folder) that maps it: (export folder, config file)."""
    export = root / "export"
    export.mkdir(parents=True)
    (export / "Менеджеры.csv").write_text("Код;ФИО\nm1;Анна Ли\nm2;Борис Ким\n", encoding="utf-8")
    rows = ["ID;Ответственный;Этап;Статус;Создана"]
    for k in range(30):
        status = ("В работе", "Успешно", "Отказ")[k % 3]
        rows.append(f"d{k};m{1 + k % 2};{'Договор' if k % 3 == 0 else 'Квалификация'};{status};"
                    f"2026-0{1 + k % 3}-{10 + k % 15}T09:00:00")
    (export / "Сделки.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    conf_dir = root / "conf"
    conf_dir.mkdir()
    config = conf_dir / "config.toml"
    config.write_text("""
language = "en"
timezone = "Europe/Moscow"

[source]
path = "../export"
stages = ["Квалификация", "Договор"]

[source.files]
managers = "Менеджеры.csv"
deals = "Сделки.csv"

[source.columns.managers]
manager_id = "Код"
name = "ФИО"

[source.columns.deals]
deal_id = "ID"
manager_id = "Ответственный"
stage = "Этап"
status = "Статус"
created_at = "Создана"

[source.values.deals.status]
"В работе" = "open"
"Успешно" = "won"
"Отказ" = "lost"
""", encoding="utf-8")
    return export, config


DIAG = ["diagnose", "--answers", "1,2,1,1,2"]


def test_diagnose_reads_a_mapped_export_through_the_config(tmp_path, capsys):
    export, config = mapped_export(tmp_path)
    assert main([*DIAG, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Automation maturity check" in out  # the config's language, not the Russian default
    assert "CRM data:" in out  # the hints were computed from the export
    assert main([*DIAG, "--config", str(config), "--data", str(export), "--lang", "ru"]) == 0
    assert "По данным CRM" in capsys.readouterr().out


def test_diagnose_data_on_a_mapped_export_without_a_config_says_to_add_one(tmp_path, monkeypatch, capsys):
    export, config = mapped_export(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([*DIAG, "--data", str(export)]) == 3
    err = capsys.readouterr().err
    assert "no deals file" in err and "add --config FILE" in err
    # run where the config lives (./config.toml maps this export): it is used
    monkeypatch.chdir(config.parent)
    assert main([*DIAG, "--data", str(export)]) == 0
    assert "CRM data:" in capsys.readouterr().out


def test_diagnose_config_not_found_is_a_usage_error(tmp_path, capsys):
    assert main([*DIAG, "--config", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_backtest_defaults_to_config_toml_here(tmp_path, monkeypatch, capsys):
    _, config = mapped_export(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["backtest", "--from", "2026-03-01", "--to", "2026-03-05"]) == 2
    assert "no ./config.toml here" in capsys.readouterr().err
    monkeypatch.chdir(config.parent)
    assert main(["backtest", "--from", "2026-03-01", "--to", "2026-03-05"]) == 0
    out = capsys.readouterr().out
    assert "Backtest 2026-03-01" in out and "(5 runs," in out


# --- mapping mistakes, said at check-config ---------------------------------------------------

def _check(capsys, config: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["check-config", str(config), "--now", "2026-03-20T09:00", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_value_mapped_to_a_non_canonical_target_is_a_config_error_at_its_key(tmp_path, capsys):
    _, config = mapped_export(tmp_path)
    text = config.read_text(encoding="utf-8").replace('"В работе" = "open"', '"В работе" = "opened"')
    config.write_text(text + '\n[source.values.managers.active]\n"Уволен" = "нет-нет"\n', encoding="utf-8")
    code, out, err = _check(capsys, config)
    assert code == 2 and out == ""
    assert 'source.values.deals.status."В работе": \'opened\' is not a status crm-pulse knows (did you mean `open`?)' in err
    assert 'source.values.managers.active."Уволен": \'нет-нет\' is not a yes/no value' in err
    assert "unknown status value" not in err  # not blamed on the data


def test_a_canonical_target_in_any_case_is_accepted(tmp_path, capsys):
    _, config = mapped_export(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace('= "won"', '= "Won"'), encoding="utf-8")
    code, out, _ = _check(capsys, config)
    assert code == 0 and out.startswith("OK:")


def test_stage_limits_naming_an_unknown_stage_gets_did_you_mean(tmp_path, capsys):
    _, config = mapped_export(tmp_path)
    base = config.read_text(encoding="utf-8")
    config.write_text(base + '\n[detectors.stalled_deal]\nstage_limits = { "Догвор" = 10, "Квалификация" = 5 }\n',
                      encoding="utf-8")
    code, out, err = _check(capsys, config)
    assert code == 2 and out == ""
    assert "detectors.stalled_deal.stage_limits: 'Догвор' is not a stage in the data" in err
    assert "did you mean `Договор`?" in err and "Квалификация'" not in err
    config.write_text(base + '\n[detectors.stalled_deal]\nstage_limits = { "Договор" = 10 }\n', encoding="utf-8")
    assert _check(capsys, config)[0] == 0


def test_unmapped_columns_that_look_useful_are_named_once_with_their_canonical_column(tmp_path, capsys):
    export, config = mapped_export(tmp_path)
    (export / "Менеджеры.csv").write_text("Код;ФИО;Активен;Отдел;Ставка;Department;Заметки\n"
                                         "m1;Анна Ли;да;Продажи;1;S;x\nm2;Борис Ким;да;Продажи;0,5;S;y\n",
                                         encoding="utf-8")
    code, out, _ = _check(capsys, config)
    assert code == 0
    lines = [line for line in out.splitlines() if "look useful" in line]
    assert len(lines) == 1
    line = lines[0]
    for their, canonical in (("Активен", "active"), ("Отдел", "team"), ("Ставка", "capacity")):
        assert f"'{their}' could fill managers.{canonical} ([source.columns.managers] {canonical} = \"{their}\")" in line
    assert "Department" not in line and "Заметки" not in line  # team is suggested once; notes fit nothing
    # once mapped, nothing is said
    config.write_text(config.read_text(encoding="utf-8").replace(
        'name = "ФИО"', 'name = "ФИО"\nactive = "Активен"\nteam = "Отдел"\ncapacity = "Ставка"'), encoding="utf-8")
    code, out, _ = _check(capsys, config)
    assert code == 0 and "look useful" not in out


def test_english_headers_are_recognised_too(tmp_path, capsys):
    export, config = mapped_export(tmp_path)
    (export / "Менеджеры.csv").write_text("Код;ФИО;Is Active;Department;FTE\nm1;Анна Ли;yes;S;1\nm2;Борис Ким;no;S;1\n",
                                         encoding="utf-8")
    code, out, _ = _check(capsys, config)
    assert code == 0
    assert "'Is Active' could fill managers.active" in out and "'Department' could fill managers.team" in out
    assert "'FTE' could fill managers.capacity" in out


def test_a_date_format_per_column_or_per_file_reads_day_first_dashed_dates(tmp_path, capsys):
    export, config = mapped_export(tmp_path)
    deals = export / "Сделки.csv"
    text = deals.read_text(encoding="utf-8")
    dashed = re.sub(r"2026-(\d\d)-(\d\d)T09:00:00", r"\2-\1-2026 19:58", text)
    assert "10-01-2026 19:58" in dashed
    deals.write_text(dashed, encoding="utf-8")
    code, out, err = _check(capsys, config)
    assert code == 3
    assert "'10-01-2026 19:58'" in err
    assert '[source.date_formats] deals.created_at = "%d-%m-%Y %H:%M"' in err  # the fix names the option
    base = config.read_text(encoding="utf-8")
    for option in ('deals.created_at = "%d-%m-%Y %H:%M"', 'deals = "%d-%m-%Y %H:%M"'):
        config.write_text(base + f"\n[source.date_formats]\n{option}\n", encoding="utf-8")
        code, out, err = _check(capsys, config)
        assert code == 0, err
        # 19:58 Moscow time on 14 March is the newest deal: read as day-month-year, in the config's timezone
        assert "newest record 2026-03-" in out and " 19:58 (Europe/Moscow)" in out


def test_a_date_format_that_cannot_read_a_date_is_a_config_error(tmp_path, capsys):
    _, config = mapped_export(tmp_path)
    base = config.read_text(encoding="utf-8")
    config.write_text(base + '\n[source.date_formats]\ndeals.created_at = "%d-%m"\ndeals.stage = "%d.%m.%Y"\n'
                      'dealz = "%Y"\n', encoding="utf-8")
    code, _, err = _check(capsys, config)
    assert code == 2
    assert "source.date_formats.deals.created_at: '%d-%m' does not hold a whole date" in err
    assert "source.date_formats.deals.stage: not a date column of deals" in err
    assert "dealz: unknown table (did you mean `deals`?)" in err


def test_several_missing_files_are_listed_in_one_error(tmp_path, capsys):
    export, config = mapped_export(tmp_path)
    (export / "Менеджеры.csv").unlink()
    (export / "Сделки.csv").rename(export / "deals-2026.csv")
    config.write_text(config.read_text(encoding="utf-8").replace(
        'deals = "Сделки.csv"', 'deals = "Сделки.csv"\nclients = "Клиенты.csv"'), encoding="utf-8")
    code, _, err = _check(capsys, config)
    assert code == 3
    assert "3 problems with the files in" in err
    for name in ("'Менеджеры.csv' named in [source.files] managers", "'Сделки.csv' named in [source.files] deals",
                 "'Клиенты.csv' named in [source.files] clients"):
        assert name in err
    assert "deals-2026.csv" in err  # what is there, to pick from


def test_a_canonical_folder_without_deals_says_which_file_to_give(tmp_path, capsys):
    """Deals are the one required table (managers and stage history are derived from them)."""
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "stage_history.csv").write_text("deal_id,stage,entered_at\n", encoding="utf-8")
    assert main(["scan", "--data", str(folder)]) == 3
    err = capsys.readouterr().err
    assert "no deals file" in err and "managers" not in err.split("Files found")[0]
    assert 'deals.csv' in err


# --- times in the config's timezone ------------------------------------------------------------

def _stalled_in_almaty(root: Path) -> Path:
    """Deal d1 idle since 5 Feb 09:00 UTC (14:00 in Almaty); a config in Asia/Almaty."""
    folder = root / "crm"
    folder.mkdir(parents=True)
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\nm2,Ben\nm3,Carl\n", encoding="utf-8")
    (folder / "deals.csv").write_text(
        "deal_id,manager_id,stage,status,created_at\nd1,m1,Lead,open,2026-02-05T09:00:00Z\n"
        "d2,m2,Lead,open,2026-03-03T10:00:00Z\nd3,m3,Lead,open,2026-03-04T08:00:00Z\n", encoding="utf-8")
    (folder / "stage_history.csv").write_text(
        "deal_id,stage,entered_at\nd1,Lead,2026-02-05T09:00:00Z\nd2,Lead,2026-03-03T10:00:00Z\n"
        "d3,Lead,2026-03-04T08:00:00Z\n", encoding="utf-8")
    config = folder / "config.toml"
    config.write_text('language = "en"\ntimezone = "Asia/Almaty"\n[source]\npath = "."\n', encoding="utf-8")
    return config


def test_scan_summary_and_explain_table_show_the_configs_timezone(tmp_path, capsys):
    config = _stalled_in_almaty(tmp_path)
    now = ["--now", "2026-03-04T09:30:00+00:00"]
    assert main(["scan", "--config", str(config), *now, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "insight(s) at 2026-03-04 14:30 (Asia/Almaty)" in captured.err
    fingerprint = json.loads(captured.out)[0]["fingerprint"]
    assert main(["explain", fingerprint, "--config", str(config), *now]) == 0
    out = capsys.readouterr().out
    assert "(times in Asia/Almaty)" in out and "(times in UTC)" not in out
    row = next(line for line in out.splitlines() if line.strip().startswith("d1 "))
    assert "2026-02-05 14:00" in row and "2026-02-05 09:00" not in row
    assert main(["scan", "--config", str(config), *now, "--explain"]) == 0
    assert "2026-02-05 14:00" in capsys.readouterr().out


# --- demo --charts ---------------------------------------------------------------------------

def test_demo_charts_into_an_existing_file_is_a_usage_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("mine\n", encoding="utf-8")
    assert main(["demo", "--charts", str(readme)]) == 2
    captured = capsys.readouterr()
    assert "--charts:" in captured.err and "is a file, not a folder" in captured.err
    assert "unexpected error" not in captured.err and captured.out == ""  # said before any work
    assert readme.read_text(encoding="utf-8") == "mine\n"
    inside_a_file = readme / "charts"
    assert main(["demo", "--charts", str(inside_a_file)]) == 2
    assert "--charts: cannot create" in capsys.readouterr().err


# --- the Maven example on a fresh clone ------------------------------------------------------

MAVEN_URL = "https://mavenanalytics.io/data-playground/crm-sales-opportunities"
MAVEN_SHARED = REPO.parent / "shared" / "datasets" / "maven-crm-sales-opportunities"


def test_the_readmes_say_where_to_download_the_maven_export_and_where_to_put_it():
    for readme in (REPO / "README.md", REPO / "examples" / "maven" / "README.md"):
        text = readme.read_text(encoding="utf-8")
        assert MAVEN_URL in text and "examples/maven/data/" in text, readme
        assert "shared/datasets" not in text, readme  # a folder next to the team's clones, not a user's
    config = tomllib.loads((REPO / "examples" / "maven" / "config.toml").read_text(encoding="utf-8"))
    assert config["source"]["path"] == "data"  # = examples/maven/data/, where the READMEs say
    assert "/examples/maven/data/" in (REPO / ".gitignore").read_text(encoding="utf-8")


@pytest.mark.skipif(not (MAVEN_SHARED / "sales_pipeline.csv").is_file(), reason="no copy of the Maven dataset here")
def test_the_maven_example_works_when_the_files_are_unzipped_where_the_readme_says(tmp_path, monkeypatch, capsys):
    import shutil

    clone = tmp_path / "crm-pulse"
    (clone / "examples" / "maven").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "maven" / "config.toml", clone / "examples" / "maven" / "config.toml")
    shutil.copytree(MAVEN_SHARED, clone / "examples" / "maven" / "data")
    monkeypatch.chdir(clone)
    assert main(["check-config", "examples/maven/config.toml", "--now", "2018-01-02"]) == 0
    assert re.search(r"deals +8,800 rows  sales_pipeline\.csv", capsys.readouterr().out)
