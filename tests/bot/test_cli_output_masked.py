"""Every line the CLI prints about errors, warnings and skipped checks goes through the one
mask (bot.logsafe.redact -> crm.redact.mask) and the terminal filter (messages.escape)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot import cli
from bot.cli import main
from crm.errors import DataError, DataWarning

NOW = ["--now", "2026-03-05T12:00:00Z"]
SECRETS = ["postgresql://crm:hunter2-Secret@db.local/crm", "https://x.y/api?password=hunter2-Secret",
           "token=hunter2-Secret", "123456789:AAHunter2SecretHunter2SecretHunter2Sec"]
HOSTILE = ["\x1b[2J\x1b[31mred", "\x1b]52;c;aGVsbG8=\x07clip", "\x1b]0;title\x07", "over\rprint", "\u202egnp.exe"]


def _crm(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\n", encoding="utf-8")
    (folder / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\n"
                                      "d1,m1,Lead,open,2026-03-03T09:00:00Z\n", encoding="utf-8")
    (folder / "stage_history.csv").write_text("deal_id,stage,entered_at\nd1,Lead,2026-03-03T09:00:00Z\n",
                                              encoding="utf-8")
    return str(folder)


def _clean(text: str) -> None:
    assert "hunter2" not in text and "Hunter2" not in text, text
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text and "\u202e" not in text, text


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("kind", ["unexpected", "data", "config", "debug"])
def test_error_lines_are_masked(tmp_path, monkeypatch, capsys, secret, kind):
    from bot.config import ConfigError

    def boom(*a, **k):
        if kind == "data":
            raise DataError(f"cannot connect to {secret}", fix=f"check {secret}")
        if kind == "config":
            raise ConfigError("c.toml", [f"[state] url: {secret} is not reachable"])
        raise RuntimeError(f"connection to {secret} refused\x1b[31m")

    monkeypatch.setattr("bot.pipeline.scan", boom)
    argv = (["--debug"] if kind == "debug" else []) + ["scan", "--data", _crm(tmp_path / "crm"), *NOW]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == {"data": 3, "config": 2}.get(kind, 4)
    _clean(err)
    assert "***" in err


@pytest.mark.parametrize("hostile", HOSTILE)
def test_warning_and_skip_lines_cannot_drive_the_terminal_or_leak(capsys, hostile):
    cli.print_warnings([DataWarning("unknown_manager", "deals", 1, f"manager {hostile!s} is unknown",
                                     [f"row 2 ({hostile})"]),
                         DataWarning("x", "deals", 1, "source postgresql://u:hunter2-Secret@h/db")])
    cli.print_skipped({"stalled_deal": f"stage {hostile} has no history"},
                       {"lead_sla": [f"token=hunter2-Secret {hostile}"]})
    err = capsys.readouterr().err
    _clean(err)
    assert err.count("\n") == 4 and "warning: deals: manager" in err and "skipped stalled_deal: stage" in err


def test_check_config_lines_are_filtered(tmp_path, capsys):
    folder = Path(_crm(tmp_path / "crm"))
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\n", encoding="utf-8")
    (folder / "deals.csv").write_text("deal_id,manager_id,stage,status,created_at\n"
                                      "d1,m1,\x1b[31mLead\x1b[0m,open,2026-03-03T09:00:00Z\n"
                                      "d2,m9,Lead,open,2026-03-03T09:00:00Z\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[source]\npath = "crm"\n', encoding="utf-8")
    assert main(["check-config", str(config), *NOW]) == 0
    out = capsys.readouterr().out
    _clean(out)
    assert "[31mLead" in out and "warning:" in out  # the stage is quoted, no raw ESC reaches the terminal


def _stalled_hostile(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "managers.csv").write_text("manager_id,name\nm1,Anna\x1b[2J\nm2,Ben\nm3,Carl\n", encoding="utf-8")
    (folder / "deals.csv").write_text(
        "deal_id,manager_id,stage,status,created_at,title,source\n"
        "d1,m1,Lead,open,2026-03-03T09:00:00Z,\x1b]52;c;ZXZpbA==\x07Deal\u202eevil,\x1b]0;pwned\x07web\n"
        "d2,m2,Lead,open,2026-03-03T10:00:00Z,ok,web\nd3,m3,Lead,open,2026-03-04T08:00:00Z,ok,web\n",
        encoding="utf-8")
    (folder / "stage_history.csv").write_text(
        "deal_id,stage,entered_at\nd1,Lead,2026-02-05T09:00:00Z\nd2,Lead,2026-03-03T10:00:00Z\n"
        "d3,Lead,2026-03-04T08:00:00Z\n", encoding="utf-8")
    return str(folder)


def test_scan_explain_and_explain_strip_terminal_controls(tmp_path, capsys):
    import json

    folder = _stalled_hostile(tmp_path / "crm")
    assert main(["scan", "--data", folder, "--explain", "--lang", "en", *NOW]) == 0
    out = capsys.readouterr().out
    assert "fingerprint:" in out and "Deal" in out and "ZXZpbA==" not in out  # the evidence rows are there
    _clean(out)
    assert main(["scan", "--data", folder, "--format", "json", *NOW]) == 0
    fp = json.loads(capsys.readouterr().out)[0]["fingerprint"]
    assert main(["explain", fp, "--data", folder, *NOW]) == 0
    out = capsys.readouterr().out
    assert f"fingerprint: {fp}" in out and "Deal" in out
    _clean(out)
