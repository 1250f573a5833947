"""silent_client finds clients who read but do not answer, and nobody else."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from _builders_b import NOW, ago, crm, email, opened
from detectors.silent_client import SilentClientSpec, detect

UTC = timezone.utc
SPEC = SilentClientSpec()
S = timedelta(seconds=1)


def _clients() -> list[dict]:
    return [
        {"client_id": "c1", "name": "ТОО Астана Трейд", "manager_id": "m1"},
        {"client_id": "c2", "name": "ТОО Ответил", "manager_id": "m1"},
        {"client_id": "c3", "name": "ТОО Прокси", "manager_id": "m2"},
        {"client_id": "c4", "name": "ТОО Не открывал", "manager_id": "m2"},
        {"client_id": "c5", "name": "ТОО Недавно", "manager_id": "m1"},
        {"client_id": "c6", "name": "ТОО Один день", "manager_id": "m1"},
        {"client_id": "c7", "name": "ТОО Давно открывал", "manager_id": "m1"},
    ]


def mixed_data():
    """One truly silent client (c1) beside every look-alike that must stay quiet."""
    emails = [
        # c1: replied 25 days ago, then two of our emails, opened by a person on two days.
        email("e1in", "c1", ago(25), direction="in"),
        email("e1a", "c1", ago(20), subject="Коммерческое предложение"),
        email("e1b", "c1", ago(10), subject="Напоминание о КП"),
        # c2: opened our emails, then replied two days ago.
        email("e2a", "c2", ago(20)),
        email("e2in", "c2", ago(2), direction="in"),
        # c3: only a privacy proxy "opens", seconds after each send.
        email("e3a", "c3", ago(20), manager_id="m2"),
        email("e3b", "c3", ago(5), manager_id="m2"),
        # c4: never opened anything.
        email("e4a", "c4", ago(30), manager_id="m2"),
        email("e4b", "c4", ago(15), manager_id="m2"),
        # c5: silent for only five days.
        email("e5a", "c5", ago(5)),
        # c6: opened many times but all on one day.
        email("e6a", "c6", ago(20)),
        # c7: opened on two days, but the last open is ten days old.
        email("e7a", "c7", ago(30)),
    ]
    opens = [
        opened("e1a", ago(19)), opened("e1a", ago(19) + S * 5),  # the proxy open right after sending does not count
        opened("e1a", ago(20) + S * 3), opened("e1b", ago(10) + S * 2),
        opened("e1b", ago(3)), opened("e1b", ago(2, hours=1)),
        opened("e2a", ago(18)), opened("e2a", ago(3)),
        opened("e3a", ago(20) + S * 4), opened("e3b", ago(5) + S * 1),
        opened("e5a", ago(4)), opened("e5a", ago(2)),
        opened("e6a", ago(3, hours=2)), opened("e6a", ago(3, hours=1)), opened("e6a", ago(3)),
        opened("e7a", ago(20)), opened("e7a", ago(10)),
    ]
    return crm(clients=_clients(), emails=emails, email_opens=opens)


def test_only_the_client_who_reads_but_does_not_answer_is_found():
    found = detect(mixed_data(), SPEC, NOW)
    assert [i.subject for i in found] == [{"client_id": "c1"}]
    ins = found[0]
    assert ins.severity == "warning"
    assert ins.audience.role == "manager" and ins.audience.manager_id == "m1"
    f = ins.facts
    assert f["client_name"] == "ТОО Астана Трейд"
    assert f["manager_name"] == "Айгерим Садыкова"
    assert f["days_silent"] == 20
    assert f["unanswered_emails"] == 2
    assert f["human_opens"] == 4  # the two machine opens (3 s and 2 s after sending) are ignored
    assert f["open_days"] == 3
    assert f["last_open_at"] == ago(2, hours=1).isoformat()
    assert f["last_reply_at"] == ago(25).isoformat()
    assert f["last_email_subject"] == "Напоминание о КП"
    assert ins.evidence == {"email_ids": ["e1a", "e1b"]}


def test_thresholds_come_from_the_spec():
    data = mixed_data()
    # One open day is enough: the client who opened only on one day joins.
    loose = {i.subject["client_id"] for i in detect(data, SilentClientSpec(min_open_days=1), NOW)}
    assert loose == {"c1", "c6"}
    # A longer silence requirement drops c1 (silent 20 days).
    assert detect(data, SilentClientSpec(silence_days=21), NOW) == []
    # Counting every open as human makes the proxy-opened client look silent-but-reading.
    no_filter = {i.subject["client_id"] for i in detect(data, SilentClientSpec(min_seconds_after_send=0, min_open_days=1), NOW)}
    assert "c3" in no_filter


def test_the_clock_is_a_parameter_nothing_after_now_counts():
    data = mixed_data()

    def found_at(now):
        return {i.subject["client_id"]: i for i in detect(data, SPEC, now)}

    # Eleven days ago c1 had been silent only 9 days.
    assert "c1" not in found_at(ago(11))
    # Just before the open 3 days ago: silent 17 days but the only human open day was 19 days
    # ago (not recent); the opens 3 and 2 days ago lie in the future.
    assert "c1" not in found_at(ago(3) - S)
    at = found_at(ago(3))
    assert "c1" in at and at["c1"].facts["human_opens"] == 3
    # Back then c7's last open (10 days before today) was only 7 days old: it was silent too.
    assert "c7" in at and "c7" not in found_at(NOW)


def test_without_clients_table_name_and_manager_come_from_emails():
    data = mixed_data()
    data.clients = None
    ins = detect(data, SPEC, NOW)[0]
    assert ins.facts["client_name"] == "c1"
    assert ins.facts["manager_id"] == "m1"


def test_fingerprint_depends_on_client_only():
    a = detect(mixed_data(), SPEC, NOW)[0]
    b = detect(mixed_data(), SPEC, NOW + timedelta(days=1))[0]
    assert a.facts != b.facts and a.fingerprint == b.fingerprint


def test_bad_thresholds_are_rejected_with_the_key_name():
    with pytest.raises(ValidationError, match="silence_days"):
        SilentClientSpec(silence_days=0)
    with pytest.raises(ValidationError, match="timezone"):
        SilentClientSpec(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="silence_day"):
        SilentClientSpec.model_validate({"silence_day": 3})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), prefix=st.sampled_from(["x", "клиент-", "Z9_"]))
def test_shuffling_rows_and_renaming_ids_changes_nothing_but_ids(seed, prefix):
    base = mixed_data()
    expected = {i.subject["client_id"]: (i.facts, i.evidence) for i in detect(base, SPEC, NOW)}

    data = mixed_data()
    rename_c = {c: prefix + c for c in data.clients["client_id"]}
    rename_e = {e: prefix + e for e in data.emails["email_id"]}
    data.clients = data.clients.assign(client_id=data.clients["client_id"].map(rename_c)).sample(frac=1, random_state=seed % 2**31)
    data.emails = data.emails.assign(client_id=data.emails["client_id"].map(rename_c),
                                     email_id=data.emails["email_id"].map(rename_e)).sample(frac=1, random_state=seed % 2**31)
    data.email_opens = data.email_opens.assign(email_id=data.email_opens["email_id"].map(rename_e)).sample(frac=1, random_state=(seed + 1) % 2**31)
    got = {i.subject["client_id"]: (i.facts, i.evidence) for i in detect(data, SPEC, NOW)}
    assert set(got) == {prefix + c for c in expected}
    for cid, (facts, evidence) in expected.items():
        g_facts, g_ev = got[prefix + cid]
        assert g_facts == facts
        assert g_ev == {"email_ids": [prefix + e for e in evidence["email_ids"]]}


def test_distinct_open_days_agree_between_bitmap_and_hash_paths():
    import numpy as np

    from detectors.silent_client import _distinct_days

    clients = np.array([0, 0, 2, 2, 2, 0])
    candidate = np.array([True, False, True])
    near = np.array([5, 5, 7, 8, 7, 6])  # fits the bitmap
    assert _distinct_days(clients, near, candidate).tolist() == [2, 0, 2]
    far = near + np.array([0, 0, 0, 0, 0, 90_000_000])  # a 90-million-day span forces the hash path
    assert _distinct_days(clients, far, candidate).tolist() == [2, 0, 2]


def test_client_missing_from_the_clients_table_falls_back_to_its_id():
    for clients in ([], [{"client_id": "other", "name": "ТОО Другой", "manager_id": "m2"}]):
        data = crm(clients=clients, emails=[email("e1", "c1", ago(20)), email("e2", "c1", ago(15))],
                   email_opens=[opened("e1", ago(3)), opened("e2", ago(1))])
        (ins,) = detect(data, SPEC, NOW)
        assert ins.facts["client_name"] == "c1" and ins.facts["manager_id"] == "m1"


def test_a_single_scan_and_a_replay_agree_on_every_day():
    """detect() joins only the opens that can matter at `now`; a replay's prepare joins them all."""
    from detectors.silent_client import detect_at, prepare

    data = mixed_data()
    replay = prepare(data, SPEC)
    for days_back in (0, 3, 8, 15, 30):
        now = NOW - timedelta(days=days_back)
        single = [(i.subject, i.facts, i.evidence) for i in detect(data, SPEC, now)]
        assert single == [(i.subject, i.facts, i.evidence) for i in detect_at(replay, now)]
    assert detect(data, SPEC, NOW)  # the comparison covers days with insights


def _replay_matches_detect(data, days_back):
    """A prepared replay walked forward, then back, equals plain detect on every day; without
    evidence it is the same insights with empty evidence."""
    from dataclasses import replace

    from detectors.silent_client import detect_at, prepare

    with_ev, without_ev = prepare(data, SPEC), prepare(data, SPEC)
    walk = [NOW - timedelta(days=d) for d in sorted(days_back, reverse=True)]
    for now in walk + walk[::-1]:
        expected = detect(data, SPEC, now)
        assert detect_at(with_ev, now) == expected
        assert detect_at(without_ev, now, with_evidence=False) == [replace(i, evidence={}) for i in expected]


def test_a_replay_without_evidence_equals_detect_minus_evidence_on_every_day():
    data = mixed_data()
    _replay_matches_detect(data, range(0, 31))
    assert any(i.evidence["email_ids"] for i in detect(data, SPEC, NOW))  # the comparison is not vacuous


def test_latest_email_ties_break_by_id_with_and_without_evidence():
    """Two unanswered emails sent at the same instant: the subject shown is the one with the
    greatest id, whether or not evidence ids are collected."""
    sent = ago(20)
    data = crm(emails=[email("e9", "c1", sent, subject="Девятое"), email("e2", "c1", sent, subject="Второе"),
                       email("e1", "c1", ago(25), subject="Первое")],
               email_opens=[opened("e2", ago(3)), opened("e9", ago(1))])
    (ins,) = detect(data, SPEC, NOW)
    assert ins.facts["last_email_subject"] == "Девятое" and ins.evidence["email_ids"] == ["e1", "e2", "e9"]
    _replay_matches_detect(data, (0, 1, 2, 5))


def test_distinct_open_days_are_the_companys_days_from_the_config_timezone():
    """A Berlin company: the client opened our email on Monday at 20:00 and Tuesday at 09:00,
    two Berlin days (one day in Almaty, where 20:00 Berlin is already Tuesday). The config's
    timezone decides; the detector's own default (Asia/Almaty) would see one day."""
    from zoneinfo import ZoneInfo

    from bot.config import parse_config

    berlin = ZoneInfo("Europe/Berlin")
    mon = datetime(2026, 11, 23, 20, 0, tzinfo=berlin).astimezone(UTC)
    tue = datetime(2026, 11, 24, 9, 0, tzinfo=berlin).astimezone(UTC)
    data = crm(clients=_clients()[:1], emails=[email("e1", "c1", ago(20))],
               email_opens=[opened("e1", mon), opened("e1", tue)])
    spec = parse_config('timezone = "Europe/Berlin"\n').detector_specs()["silent_client"]
    assert spec.timezone == "Europe/Berlin"
    assert [i.subject["client_id"] for i in detect(data, spec, NOW)] == ["c1"]
    assert detect(data, SPEC, NOW) == []  # counted on Almaty's days: one day, not enough
    kept = parse_config('timezone = "Europe/Berlin"\n[detectors.silent_client]\ntimezone = "Asia/Almaty"\n')
    assert kept.detector_specs()["silent_client"].timezone == "Asia/Almaty"  # a section's own setting stays


def test_a_client_whose_owner_names_nobody_goes_to_who_wrote_last():
    """A client owned by «Не назначен» (crm.owners): the manager who sent the last email hears
    it, not a "manager" named «Не назначен» that nobody is."""
    clients = [dict(c, manager_id="Не назначен") if c["client_id"] == "c1" else c for c in _clients()]
    data = mixed_data()
    data.clients = crm(clients=clients).clients
    (ins,) = detect(data, SPEC, NOW)
    assert ins.audience.role == "manager" and ins.audience.manager_id == "m1"
    assert ins.facts["manager_name"] == "Айгерим Садыкова"


def test_a_client_whose_manager_is_not_working_is_the_directors():
    """c1's manager m1 is marked active = false (detectors.people.Workforce: not working, as
    stalled_deal and manager_load read it): the item goes to the director, who is told to hand
    the client over; nobody would read it under m1's name."""
    data = mixed_data()
    data.managers = data.managers.assign(active=data.managers["manager_id"].ne("m1"))
    (ins,) = detect(data, SPEC, NOW)
    assert ins.audience.role == "director" and ins.facts["owner_left"] == "inactive"
    from messages.render import insight_text
    assert "not working now: hand the client to a working manager" in insight_text(ins, "en")
    assert "передайте клиента работающему менеджеру" in insight_text(ins, "ru")
