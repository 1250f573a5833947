"""The container deploy: a small non-root image with a healthcheck, and a compose file that
runs the bot with PostgreSQL as its state.

Building and starting need a Docker daemon (skipped with the reason where there is none); what
can be checked without one is checked always: the files' shape, and the config compose mounts
passing `check-config --online` against a real PostgreSQL state, as the container would run it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
DOCKER_CONFIG = REPO / "deploy" / "docker" / "config.toml"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


def test_the_image_is_two_stage_slim_non_root_with_a_healthcheck():
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = _stages(text)
    assert len(stages) == 2, "build stage + runtime stage"
    final = stages[-1]
    assert final.startswith("python:3.12-slim")
    assert "COPY --from=build /opt/crm-pulse /opt/crm-pulse" in final
    user = re.search(r"(?m)^USER (\S+)", final)
    assert user and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r"(?m)^HEALTHCHECK .*", final) and "crm-pulse" in final.split("HEALTHCHECK", 1)[1]
    assert "pip install" not in final and "apt-get" not in text  # no compiler or pip cache in the image
    assert 'CMD ["run", "--config", "/etc/crm-pulse/config.toml"]' in final
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    for heavy in (".git", ".venv", "tests", "benchmarks", ".env", "*.db"):
        assert heavy in ignored


def test_compose_runs_the_bot_with_postgresql_state():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    db, bot = doc["services"]["db"], doc["services"]["bot"]
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    url = bot["environment"]["CRM_PULSE_STATE_URL"]
    assert url.startswith("postgresql+psycopg://crm_pulse:${POSTGRES_PASSWORD}@db:5432/crm_pulse")
    assert any(v.endswith(":/etc/crm-pulse/config.toml:ro") for v in bot["volumes"])
    assert any(v.endswith(":/data:ro") for v in bot["volumes"])
    assert "${POSTGRES_PASSWORD:?" in db["environment"]["POSTGRES_PASSWORD"]  # no default password
    config = DOCKER_CONFIG.read_text(encoding="utf-8")
    assert 'url_env = "CRM_PULSE_STATE_URL"' in config and 'path = "/data"' in config


@pytest.fixture
def fresh_pg_database():
    """An empty PostgreSQL database of its own (dropped afterwards), as compose's db starts."""
    sa = pytest.importorskip("sqlalchemy")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({type(e).__name__})")
    name = f"crm_pulse_compose_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_the_compose_config_checks_out_online_against_postgresql_state(fresh_pg_database, tmp_path,
                                                                      monkeypatch, capsys):
    """The config compose mounts, with the state URL compose sets: the state opens and takes writes."""
    data = tmp_path / "data"
    assert main(["demo", "--export", str(data)]) == 0
    capsys.readouterr()
    config = tmp_path / "config.toml"
    text = DOCKER_CONFIG.read_text(encoding="utf-8").replace('path = "/data"', f'path = "{data.as_posix()}"')
    config.write_text(text.replace("[telegram]\nenabled = true", "[telegram]\nenabled = false"), encoding="utf-8")
    monkeypatch.setenv("CRM_PULSE_STATE_URL", fresh_pg_database)
    assert main(["check-config", str(config), "--now", "2026-11-18T06:30:00+00:00", "--online"]) == 0
    out = capsys.readouterr().out
    # the URL came from an *_env variable, so the CLI's one secret filter masks its whole value
    assert "state: ***: opened and writable (schema version" in out
    assert fresh_pg_database not in out


def _docker_ready() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "no Docker daemon: " + (probe.stderr.strip().splitlines() or ["docker info failed"])[-1]
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        return "docker compose (v2) is not installed"
    return None


@pytest.mark.slow
def test_the_image_builds_and_compose_starts_the_bot_against_postgresql(tmp_path):
    reason = _docker_ready()
    if reason:
        pytest.skip(reason)
    tag = f"crm-pulse:test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-t", tag, str(REPO)], check=True, timeout=1800)
    version = subprocess.run(["docker", "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("crm-pulse ")
    whoami = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True,
                            text=True, timeout=120)
    assert whoami.stdout.strip() == "10001"
    # compose: the config (chats off) and demo data next to a copy of compose.yaml
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(COMPOSE, project / "compose.yaml")
    assert main(["demo", "--export", str(project / "crm-export")]) == 0
    (project / "config.toml").write_text(DOCKER_CONFIG.read_text(encoding="utf-8").replace(
        "[telegram]\nenabled = true", "[telegram]\nenabled = false"), encoding="utf-8")
    (project / ".env").write_text("POSTGRES_PASSWORD=compose-test-password\n", encoding="utf-8")
    name = f"crmpulse{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", name, "-f", str(project / "compose.yaml")]
    try:
        # the copied compose.yaml builds from its own folder: point it at the image built above
        (project / "compose.yaml").write_text((project / "compose.yaml").read_text(encoding="utf-8").replace(
            "    build: .\n    image: crm-pulse:local\n", f"    image: {tag}\n"), encoding="utf-8")
        subprocess.run([*compose, "up", "-d", "--wait", "db"], check=True, timeout=300, cwd=project)
        check = subprocess.run([*compose, "run", "--rm", "bot", "check-config", "/etc/crm-pulse/config.toml",
                                "--now", "2026-11-18T06:30:00+00:00", "--online"],
                               capture_output=True, text=True, timeout=600, cwd=project)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "state: postgresql+psycopg://crm_pulse:***@db:5432/crm_pulse: opened and writable" in check.stdout
        assert "compose-test-password" not in check.stdout + check.stderr
    finally:
        subprocess.run([*compose, "down", "-v"], timeout=300, cwd=project)
        subprocess.run(["docker", "rmi", "-f", tag], timeout=120)


def test_the_systemd_unit_and_its_docs_agree():
    unit = (REPO / "deploy" / "crm-pulse.service").read_text(encoding="utf-8")
    docs = (REPO / "docs" / "setup-telegram-slack.md").read_text(encoding="utf-8")
    documentation = re.search(r"(?m)^Documentation=file://(\S+)$", unit).group(1)
    # the docs' install step puts the repository where the unit's Documentation= points
    assert documentation.startswith("/opt/crm-pulse/src/") and "/opt/crm-pulse/src" in docs
    assert documentation.removeprefix("/opt/crm-pulse/src/") == "docs/setup-telegram-slack.md"
    venv_steps = [line for line in docs.splitlines() if "-m venv /opt/crm-pulse" in line or "pip install /opt" in line]
    assert venv_steps and all(line.startswith("sudo ") for line in venv_steps)  # /opt belongs to root
    assert "ProtectHome=true" in unit and "ProtectHome" in docs and "/srv/crm-pulse/export" in docs
    assert "/home" in docs  # says why the exports cannot stay there
