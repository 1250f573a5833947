"""The state store on SQLite and PostgreSQL: log, snooze, done, feedback, settings, migrations."""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from bot.state import MIGRATIONS, SCHEMA_VERSION, StateStore

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


def test_fresh_store_is_at_the_latest_version(store):
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == []  # idempotent


def test_record_sent_then_read_back(store, mk):
    i = mk("silent_client", subject={"client_id": "c1"}, days_silent=20)
    store.record_sent("anna", i, NOW, "first")
    e = store.log_entry("anna", i.fingerprint)
    assert e.last_sent == NOW and e.last_facts == {"days_silent": 20} and e.state == "open" and e.send_count == 1
    store.record_sent("anna", i, NOW + timedelta(days=7), "repeat_interval")
    e = store.log_entry("anna", i.fingerprint)
    assert e.first_sent == NOW and e.send_count == 2
    assert store.log_entry("boris", i.fingerprint) is None
    assert store.sent_counts() == {"silent_client": 2}


def test_close_missing_closes_only_what_disappeared(store, mk):
    a, b = mk(subject={"deal_id": "d1"}), mk(subject={"deal_id": "d2"})
    store.record_sent("anna", a, NOW, "first")
    store.record_sent("anna", b, NOW, "first")
    closed = store.close_missing("anna", {a.fingerprint}, NOW)
    assert [e.fingerprint for e in closed] == [b.fingerprint]
    assert store.log_entry("anna", b.fingerprint).state == "closed"
    assert store.log_entry("anna", a.fingerprint).state == "open"


def test_snooze_unsnooze_and_done(store, mk):
    i = mk(days_idle=10)
    store.snooze("anna", i, NOW + timedelta(days=1), NOW)  # snoozing before it was ever logged
    assert [e.fingerprint for e in store.snoozed("anna", NOW)] == [i.fingerprint]
    assert store.snoozed("anna", NOW + timedelta(days=2)) == []
    assert store.unsnooze("anna", i.fingerprint) is True
    assert store.snoozed("anna", NOW) == []
    store.mark_done("anna", i, NOW)
    e = store.log_entry("anna", i.fingerprint)
    assert e.suppressed and e.suppressed_facts == {"days_idle": 10}
    # the situation changes (insight disappears): done is lifted with the close
    store.close_missing("anna", set(), NOW)
    assert not store.log_entry("anna", i.fingerprint).suppressed


def test_feedback_last_vote_wins(store):
    store.record_feedback("anna", "fp1", "silent_client", True, NOW)
    store.record_feedback("anna", "fp1", "silent_client", False, NOW)
    store.record_feedback("boris", "fp1", "silent_client", True, NOW)
    store.record_feedback("boris", "fp2", "stalled_deal", True, NOW)
    assert store.feedback_counts() == {"silent_client": (1, 1), "stalled_deal": (1, 0)}


def test_language_setting_and_latest_scan(store, mk):
    assert store.language("anna") is None
    store.set_language("anna", "en", NOW)
    store.set_language("anna", "ru", NOW)
    assert store.language("anna") == "ru"
    assert store.latest_scan() is None
    for k in range(5):
        store.save_scan([mk(subject={"deal_id": f"d{k}"}, days_idle=k)], NOW + timedelta(hours=k), NOW)
    scanned_at, data_now, insights = store.latest_scan()
    assert scanned_at == NOW + timedelta(hours=4) and insights[0].subject == {"deal_id": "d4"}


def test_leases_exclude_other_holders_until_expiry(store):
    assert store.try_lease("x", "p1", NOW, NOW + timedelta(seconds=60))
    assert not store.try_lease("x", "p2", NOW, NOW + timedelta(seconds=60))
    assert store.try_lease("x", "p1", NOW, NOW + timedelta(seconds=60))  # renew own
    assert store.try_lease("x", "p2", NOW + timedelta(seconds=61), NOW + timedelta(seconds=120))  # expired
    store.release_lease("x", "p2")
    assert store.try_lease("x", "p3", NOW, NOW + timedelta(seconds=60))


def test_exclusive_job_lock_between_two_stores(store):
    other = StateStore(store.engine, store.prefix) if not store.is_postgres else StateStore.open(
        store.engine.url.render_as_string(hide_password=False), prefix=store.prefix)
    with store.exclusive("scan", "p1", NOW) as got1:
        assert got1
        with other.exclusive("scan", "p2", NOW) as got2:
            assert not got2
    with other.exclusive("scan", "p2", NOW) as got3:
        assert got3
    if store.is_postgres:
        other.close()


def test_v1_database_is_upgraded_in_place(tmp_path, mk):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:  # what crm-pulse 0.1 created
        MIGRATIONS[0](c, "")
        c.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
        c.execute(sa.text(
            "INSERT INTO notification_log (recipient, fingerprint, detector, first_sent, last_sent, last_facts,"
            " last_severity, state, suppressed) VALUES ('anna', 'fp1', 'stalled_deal', '2026-09-01 06:00:00',"
            " '2026-09-20 06:00:00', '{\"days_idle\": 12}', 'warning', 'open', 0)"))
        c.execute(sa.text(
            "INSERT INTO outbox (dedup_key, recipient, channel, address, payload, status, attempts, next_attempt_at,"
            " created_at) VALUES ('k1', 'anna', 'telegram', '101', '{\"text\": \"hi\"}', 'pending', 0,"
            " '2026-09-20 06:00:00', '2026-09-20 06:00:00')"))
    engine.dispose()
    store = StateStore.open(url)
    assert store.schema_version() == SCHEMA_VERSION
    e = store.log_entry("anna", "fp1")
    assert e.last_facts == {"days_idle": 12} and e.send_count == 1 and e.last_sent.tzinfo is not None
    store.record_feedback("anna", "fp1", "stalled_deal", True, NOW)  # a v2 table works
    from bot.outbox import Outbox
    rows = Outbox(store).rows(status="pending")
    assert [r.dedup_key for r in rows] == ["k1"] and rows[0].payload == {"text": "hi"}
    store.close()


def test_migrations_create_exactly_the_schema_the_store_queries(tmp_path):
    """An old file upgraded step by step ends with the columns the code declares as current."""
    from bot.state import _tables

    def columns(url):
        insp = sa.inspect(sa.create_engine(url))
        return {t: [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)]
                for t in insp.get_table_names()}

    old = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(old)
    with engine.begin() as c:
        MIGRATIONS[0](c, "")
        c.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
    engine.dispose()
    StateStore.open(old).close()
    declared = f"sqlite:///{tmp_path / 'declared.db'}"
    md = sa.MetaData()
    _tables(md, "")
    md.create_all(sa.create_engine(declared))
    assert columns(old) == columns(declared)
    assert ("send_count", "INTEGER", False) in columns(declared)["notification_log"]


def test_newer_database_than_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = StateStore.open(url)
    with store.engine.begin() as c:
        c.execute(sa.text(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}"))
    import pytest
    with pytest.raises(RuntimeError, match="upgrade crm-pulse"):
        store.migrate()
    store.close()


def test_processes_starting_together_migrate_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = f"from bot.state import StateStore; StateStore.open({url!r}).close()"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert StateStore.open(url).schema_version() == SCHEMA_VERSION
