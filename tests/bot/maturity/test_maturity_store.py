"""Sessions and history survive a new store on the same database: SQLite and PostgreSQL."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from maturity_helpers import NOW

from bot.maturity.store import HistoryEntry, MaturityStore, Session
from tests.bot.conftest import PG_URL, require_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_and_prefix(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}", ""
        return
    require_postgres()
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield PG_URL, prefix
    store = MaturityStore(PG_URL, prefix=prefix)
    store.drop_all()
    store.close()


def test_session_round_trip_and_resume_in_a_new_store(url_and_prefix):
    url, prefix = url_and_prefix
    store = MaturityStore(url, prefix=prefix)
    s = Session("u1", "telegram", "c1", "ru", NOW, NOW, department="sales", answers={"systems": "two"})
    store.save_session(s)
    s.answers["lead_distribution"] = "manual"
    s.updated_at = NOW + timedelta(minutes=1)
    store.save_session(s)  # update in place, one row per person

    again = MaturityStore(url, prefix=prefix).get_session("u1")
    assert again == s and again.step == 2
    assert list(again.answers) == ["systems", "lead_distribution"]  # order kept: "back" pops the last
    assert again.updated_at.tzinfo is not None
    assert store.delete_session("u1") and not store.delete_session("u1")
    assert store.get_session("u1") is None


def test_complete_moves_the_session_into_history(url_and_prefix):
    url, prefix = url_and_prefix
    store = MaturityStore(url, prefix=prefix)
    store.save_session(Session("u1", "slack", "D1", "en", NOW, NOW))
    entries = [
        HistoryEntry("u1", "director", NOW - timedelta(days=200), {"systems": "three_plus"}, 1, "1",
                     [{"question_id": None, "kind": "no_data", "facts": {}}], person_name="Aigul"),
        HistoryEntry("u2", "manager", NOW - timedelta(days=10), {"systems": "one"}, 2, "2", department="service"),
        HistoryEntry("u1", "director", NOW, {"systems": "one"}, 2, "2+", person_name="Aigul"),
    ]
    for e in entries:
        assert store.complete(e) == e.id
    assert store.get_session("u1") is None
    own = store.history("u1")
    assert [(h.label, h.completed_at) for h in own] == [("1", NOW - timedelta(days=200)), ("2+", NOW)]
    assert own[0].hints == [{"question_id": None, "kind": "no_data", "facts": {}}]
    everyone = MaturityStore(url, prefix=prefix).history()
    assert [h.person_id for h in everyone] == ["u1", "u2", "u1"]
    assert everyone[1].department == "service" and everyone[1].person_role == "manager"
