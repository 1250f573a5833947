"""The demo company served by a fake HubSpot and synced gives the insights that scanning its CSV
export gives, wherever HubSpot can hold the data: the same deals, stages, statuses, stage
history, emails and opens, and word for word the same conversion, loss-reason, stalled-deal and
silent-client and lead-SLA insights (HubSpot records email opens, and its leads object the
first response).

What HubSpot has no place for is said, not faked: a manager's capacity (the half-time manager
counts as full-time, so manager_load's numbers differ; the people it names are the same)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.config import parse_config
from bot.pipeline import scan
from crm.connectors import hubspot
from crm.demo import export_csv, generate_demo
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig
from messages.render import insight_text
from tests.fakes.amocrm_server import ThreadedServer
from tests.fakes.hubspot_demo import REGION_PROP, SEGMENT_PROP, SOURCE_PROP, load_into
from tests.fakes.hubspot_server import FakeHubSpot

SAME_WORDS = ("conversion_drop", "loss_reasons", "stalled_deal", "silent_client", "lead_sla")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    demo = generate_demo()
    folder = tmp_path_factory.mktemp("demo_csv")
    export_csv(demo.data, folder)
    config = parse_config(demo.config_toml, source_name="demo", base_dir=Path("."))
    fake = FakeHubSpot()
    ids = load_into(fake, demo.data)
    mp = pytest.MonkeyPatch()
    mp.setenv("DEMO_HUBSPOT_TOKEN", fake.token)
    mp.setattr(hubspot, "SEARCH_PER_SECOND", 100.0)  # this fake has no search limit: no need to wait
    try:
        with ThreadedServer(fake) as running:
            source = SourceConfig(
                kind="hubspot", base_url=f"http://127.0.0.1:{running.port}", token_env="DEMO_HUBSPOT_TOKEN",
                store=str(tmp_path_factory.mktemp("demo_store")), requests_per_second=100,
                custom_fields={"deals": {"source": SOURCE_PROP, "region": REGION_PROP},
                               "clients": {"region": REGION_PROP, "segment": SEGMENT_PROP},
                               "leads": {"source": SOURCE_PROP, "region": REGION_PROP}})
            hubspot.sync(source, None)
        synced = load_crm(source, timezone=config.timezone, now=demo.now)
    finally:
        mp.undo()
    exported = load_folder(folder, timezone=config.timezone, now=demo.now)
    return demo, config, ids, exported, synced


def _renamed(frame: pd.DataFrame, ids) -> pd.DataFrame:
    """The export's frame with HubSpot's ids in place of the demo's."""
    out = frame.copy()
    maps = {"deal_id": ids.deals, "client_id": ids.clients, "manager_id": ids.users, "email_id": ids.emails,
            "lead_id": ids.leads}
    for col, mapping in maps.items():
        if col in out:
            out[col] = out[col].map(lambda v, m=mapping: str(m[v]) if v in m else None).astype(frame[col].dtype)
    return out


def _same(a: pd.DataFrame, b: pd.DataFrame, ids, cols: list[str], key: list[str]) -> None:
    left = _renamed(a[cols], ids).sort_values(key).reset_index(drop=True)
    right = b[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_same_deals_stages_history_emails_and_opens(both):
    _demo, _config, ids, exported, synced = both
    assert not synced.warnings
    a, b = exported.data, synced.data
    assert b.stages == a.stages
    _same(a.deals, b.deals, ids, ["deal_id", "client_id", "manager_id", "title", "amount", "currency", "stage",
                                  "status", "created_at", "closed_at", "loss_reason", "source", "region"], ["deal_id"])
    _same(a.stage_history, b.stage_history, ids, ["deal_id", "entered_at", "stage"], ["deal_id", "entered_at", "stage"])
    _same(a.emails, b.emails, ids, ["email_id", "client_id", "manager_id", "deal_id", "direction", "sent_at",
                                    "subject"], ["email_id"])
    _same(a.email_opens, b.email_opens, ids, ["email_id", "opened_at"], ["email_id", "opened_at"])
    _same(a.clients, b.clients, ids, ["client_id", "name", "manager_id", "region", "segment"], ["client_id"])
    assert len(b.activities) == len(a.activities)
    _same(a.leads, b.leads, ids, ["lead_id", "created_at", "source", "region", "manager_id", "assigned_at",
                                  "first_response_at", "status"], ["lead_id"])


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_same_insights_where_hubspot_has_the_data(both, lang):
    demo, config, ids, exported, synced = both
    from_csv = scan(config, demo.now, data=exported.data)
    from_hs = scan(config, demo.now, data=synced.data)

    def texts(outcome, detector):
        return sorted(insight_text(i, lang, now=demo.now) for i in outcome.insights if i.detector == detector)

    def in_hubspot_ids(text: str) -> str:  # a lead is named by its id: HubSpot's is another
        for theirs, ours in ids.leads.items():
            text = text.replace(f" {theirs} ", f" {ours} ")
        return text

    for detector in SAME_WORDS:
        assert texts(from_csv, detector), detector  # the demo plants each of these
        assert texts(from_hs, detector) == sorted(in_hubspot_ids(t) for t in texts(from_csv, detector)), detector

    # manager_load: the same people named (HubSpot has no capacity: the half-time manager
    # counts as full-time, so the numbers differ)
    (csv_load,), (hs_load,) = ([i for i in o.insights if i.detector == "manager_load"] for o in (from_csv, from_hs))
    assert "Ержан Сапаров" in insight_text(hs_load, "ru", now=demo.now)
    assert "Алия Касымова" in insight_text(hs_load, "ru", now=demo.now)
    assert not from_hs.skipped  # HubSpot holds every table a detector needs
