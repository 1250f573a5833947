"""The demo, end to end: `crm-pulse demo --export DIR` writes the canonical files, and a scan of
those files (as a script would run it, through the installed console script) finds exactly the
insights the in-memory demo finds."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import parse_config
from bot.pipeline import scan
from crm.demo import generate_demo


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


@pytest.fixture(scope="module")
def demo_fingerprints(demo):
    config = parse_config(demo.config_toml, source_name="demo", base_dir=Path("."))
    return sorted(i.fingerprint for i in scan(config, demo.now, data=demo.data).insights)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "data"
    assert main(["demo", "--export", str(folder)]) == 0
    return folder


def _console_script() -> str:
    here = Path(sys.executable).parent / "crm-pulse"
    return str(here) if here.is_file() else (shutil.which("crm-pulse") or "")


def test_export_writes_the_contract_and_a_config(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"managers.csv", "deals.csv", "stage_history.csv", "stages.csv", "emails.csv", "email_opens.csv",
            "activities.csv", "leads.csv", "clients.csv", "config.toml"} <= names


def test_scanning_the_export_gives_the_demo_insights(demo, demo_fingerprints, exported, capsys):
    capsys.readouterr()
    now = demo.now.isoformat()
    assert main(["scan", "--data", str(exported), "--now", now, "--format", "json"]) == 0
    from_data = json.loads(capsys.readouterr().out)
    assert sorted(i["fingerprint"] for i in from_data) == demo_fingerprints
    assert {i["detector"] for i in from_data} == {"conversion_drop", "silent_client", "manager_load",
                                                  "stalled_deal", "lead_sla", "loss_reasons"}
    assert all(i["text"] for i in from_data)
    # and through the exported config (thresholds, language, recipients of the demo)
    assert main(["scan", "--config", str(exported / "config.toml"), "--now", now, "--format", "json"]) == 0
    from_config = json.loads(capsys.readouterr().out)
    assert sorted(i["fingerprint"] for i in from_config) == demo_fingerprints


@pytest.mark.skipif(not _console_script(), reason="the crm-pulse console script is not installed (pip install -e .)")
def test_the_installed_command_prints_parseable_json(demo, demo_fingerprints, exported):
    proc = subprocess.run(
        [_console_script(), "scan", "--data", str(exported), "--now", demo.now.isoformat(), "--format", "json",
         "--fail-on-insights"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr  # insights found, as --fail-on-insights reports
    items = json.loads(proc.stdout)
    assert sorted(i["fingerprint"] for i in items) == demo_fingerprints
    assert "Traceback" not in proc.stderr and "insight(s)" in proc.stderr
