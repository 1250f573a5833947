"""`run` with a CRM API source: every scan syncs first, the sync also runs on its own cron, and a
failing sync is told to admins once (and again when it works), while scans go on with what was
synced before."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.outbox import Outbox
from bot.scheduler import PulseJobs, build_scheduler
from crm.load import load_crm
from tests.fakes.amocrm_server import FakeAmoCRM, ThreadedServer

T0 = 1_790_000_000
NOW = datetime.fromtimestamp(T0 + 5 * 86400, tz=timezone.utc)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def __call__(self, texts: dict[str, str]) -> None:
        self.sent.append(texts)


def _lead(i: int, at: int) -> dict:
    return {"id": i, "name": f"Сделка {i}", "price": 1000, "responsible_user_id": 1, "status_id": 10,
            "pipeline_id": 1, "created_at": at, "updated_at": at, "closed_at": None}


@pytest.fixture
def fake(monkeypatch):
    server = FakeAmoCRM()
    server.add_pipeline(1, "Продажи", [(10, "Новая"), (11, "КП")])
    server.add_user(1, "Анна", "anna@example.kz")
    for i in range(1, 6):
        server.put_lead(_lead(i, T0 + i * 3600))
    monkeypatch.setenv("SCHED_AMO_TOKEN", server.long_lived)
    with ThreadedServer(server) as running:
        yield running


def _config(fake: FakeAmoCRM, tmp_path: Path):
    return parse_config(f"""
timezone = "UTC"
[source]
kind = "amocrm"
base_url = "http://127.0.0.1:{fake.port}"
token_env = "SCHED_AMO_TOKEN"
store = "store"
requests_per_second = 100
[[recipients]]
id = "boss"
name = "Директор"
role = "director"
admin = true
telegram_id = "100"
""", source_name="test.toml", base_dir=tmp_path)


async def test_each_scan_syncs_first_and_a_failing_sync_is_told_once(fake, tmp_path, sqlite_store):
    config = _config(fake, tmp_path)
    jobs = PulseJobs(config, sqlite_store, Outbox(sqlite_store), clock=lambda: NOW)
    jobs.alert = alerts = Alerts()
    assert "Scan done" in await jobs.run_scan()
    assert fake.api_calls("leads") and len(jobs.latest_data.deals) == 5

    fake.put_lead(_lead(6, T0 + 4 * 86400))
    assert "Sync done" in await jobs.run_sync()
    assert "6" in set(load_crm(config.source, base_dir=tmp_path).data.deals.deal_id)

    fake.long_lived = "rotated-by-someone-else-42"  # the token in the environment no longer works
    for _ in range(3):
        assert "Sync failed" in await jobs.run_sync()
    assert "Scan done" in await jobs.run_scan()  # the scan goes on with what was synced
    assert len(jobs.latest_data.deals) == 6
    assert len(alerts.sent) == 1
    assert "the CRM sync failed" in alerts.sent[0]["en"] and "refused the credentials" in alerts.sent[0]["en"]
    assert "синхронизация с CRM" in alerts.sent[0]["ru"]
    assert "long-lived-token" not in str(alerts.sent)

    fake.long_lived = config.secret("SCHED_AMO_TOKEN")
    assert "Sync done" in await jobs.run_sync()
    assert len(alerts.sent) == 2 and "works again" in alerts.sent[1]["en"]


def test_the_sync_job_runs_on_its_own_cron(fake, tmp_path, sqlite_store):
    config = _config(fake, tmp_path)
    sched = build_scheduler(config, PulseJobs(config, sqlite_store, Outbox(sqlite_store)))
    job = sched.get_job("sync")
    assert job is not None and "*/15" in str(job.trigger)


def test_a_files_source_has_no_sync_job(sqlite_store, tmp_path):
    config = parse_config('[source]\npath = "."\n', source_name="t.toml", base_dir=tmp_path)
    sched = build_scheduler(config, PulseJobs(config, sqlite_store, Outbox(sqlite_store)))
    assert sched.get_job("sync") is None


def test_run_refuses_to_start_without_the_crm_token(tmp_path, monkeypatch):
    from bot.app import missing_secrets

    monkeypatch.delenv("SCHED_AMO_TOKEN", raising=False)
    config = parse_config('[source]\nkind = "amocrm"\nbase_url = "https://a.amocrm.ru"\ntoken_env = "SCHED_AMO_TOKEN"\n',
                          source_name="t.toml", base_dir=tmp_path)
    (line,) = missing_secrets(config)
    assert line.startswith("source.token_env: environment variable SCHED_AMO_TOKEN is not set")
    monkeypatch.setenv("SCHED_AMO_TOKEN", "x" * 20)
    assert missing_secrets(config) == []
