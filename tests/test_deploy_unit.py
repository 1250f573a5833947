"""The systemd unit agrees with the exit codes `run` uses: temporary failures (75) and crashes
are restarted without a limit, config (2) and missing-data-folder (3) exits are not looped."""
from __future__ import annotations

import configparser
from pathlib import Path

from bot.app import EXIT_TEMPFAIL

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "crm-pulse.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_temporary_failures_are_restarted_and_systemd_never_gives_up():
    unit = _unit()
    service = unit["Service"]
    prevented = set(service["RestartPreventExitStatus"].split())
    assert service["Restart"] in ("on-failure", "always")
    assert str(EXIT_TEMPFAIL) not in prevented and "4" not in prevented
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"


def test_config_and_missing_data_folder_exits_are_not_looped():
    service = _unit()["Service"]
    assert {"2", "3"} <= set(service["RestartPreventExitStatus"].split())
    assert int(service["RestartSec"]) >= 10 and int(service["RestartMaxDelaySec"]) >= 300


def test_the_setup_guide_documents_every_exit_code_the_unit_handles():
    guide = (UNIT.parents[1] / "docs" / "setup-telegram-slack.md").read_text(encoding="utf-8")
    for code in ("| 75 (EX_TEMPFAIL)", "| 2 |", "| 3 |", "StartLimitIntervalSec=0", "RequiresMountsFor", "ProtectHome"):
        assert code in guide
