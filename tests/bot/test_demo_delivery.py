"""End to end on the demo company: scan -> route -> log -> digest -> outbox, privacy on real data."""
import json
from datetime import timedelta

import pytest

from bot.config import parse_config
from bot.delivery import deliver
from bot.outbox import Outbox


@pytest.fixture(scope="module")
def demo_scan():
    from bot.pipeline import scan
    from crm.demo import generate_demo

    demo = generate_demo()
    config = parse_config(demo.config_toml + "\n[telegram]\nenabled = true\n", source_name="demo.toml")
    outcome = scan(config, demo.now, data=demo.data)
    return demo, config, outcome


def test_every_manager_gets_only_their_own_clients_and_deals(demo_scan, sqlite_store):
    demo, config, outcome = demo_scan
    personal = [i for i in outcome.insights if i.audience.role == "manager"]
    assert personal, "the demo plants manager-level situations"
    box = Outbox(sqlite_store)
    report = deliver(outcome.insights, config, sqlite_store, box, demo.now, charts=False)
    by_fp = {i.fingerprint: i for i in outcome.insights}
    managers = [r for r in config.recipients if r.role == "manager"]
    got_something = 0
    for r in managers:
        for fp in report.sent[r.id]:
            assert by_fp[fp].audience.manager_id == r.manager_id
        text = "\n".join(json.dumps(row.payload, ensure_ascii=False) for row in box.rows(recipient=r.id))
        others = {i.facts.get("client_name") or i.facts.get("deal_title") for i in personal
                  if i.audience.manager_id != r.manager_id}
        mine = {i.facts.get("client_name") or i.facts.get("deal_title") for i in personal
                if i.audience.manager_id == r.manager_id}
        for name in others - mine - {None}:
            assert name not in text, f"{r.id} was shown {name!r}, which belongs to another manager"
        got_something += bool(report.sent[r.id])
    assert got_something >= 3
    assert report.sent["director"]
    # the next morning nothing already shown is repeated; only what did not fit the digest comes now
    again = deliver(outcome.insights, config, sqlite_store, box, demo.now + timedelta(days=1), charts=False)
    for rid, fps in again.sent.items():
        assert not set(fps) & set(report.sent[rid])
        assert all(reason == "first" for _, reason in again.reasons[rid])
