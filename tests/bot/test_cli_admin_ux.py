"""The admin's terminal: --version, preview of one person's digest, defaults and usage errors
(issue 12), run in-process through bot.cli.main like test_cli.py."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    expected = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert out == f"crm-pulse {expected}"
    assert re.fullmatch(r"crm-pulse \d+\.\d+\.\d+\S*", out)
