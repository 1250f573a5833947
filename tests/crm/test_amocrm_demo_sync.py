"""The demo company served by a fake amoCRM and synced gives the insights that scanning its CSV
export gives, wherever amoCRM can hold the data: the same deals, stages, statuses and stage
history, and word for word the same conversion, loss-reason, stalled-deal and lead-SLA insights
(the leads named by amoCRM's ids).

What amoCRM holds differently is said, not faked (tests/fakes/amocrm_demo.py): email opens
(silent_client is skipped); a lead and its deal are one record, so a waiting lead a manager has
accepted is also an open deal in the first stage (four more deals than the export), a converted
lead is its deal (created with it), junk leads were declined (deleted); a manager's capacity
(the half-time manager counts as full-time). So manager_load's numbers differ; the overloaded and
underloaded managers it names are the same."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.config import parse_config
from bot.pipeline import scan
from crm.connectors import amocrm
from crm.demo import export_csv, generate_demo
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig
from messages.render import insight_text
from tests.fakes.amocrm_demo import REGION_FIELD, SEGMENT_FIELD, SOURCE_FIELD, load_into
from tests.fakes.amocrm_server import FakeAmoCRM, ThreadedServer

SAME_WORDS = ("conversion_drop", "loss_reasons", "stalled_deal", "lead_sla")


# Another amoCRM, equally documented (tests/fakes/amocrm_server.py): it writes its own host into
# the next links, reads filter[type] as an array only, answers an empty page with 200 and an
# empty list, pages by 100 whatever is asked, and records the declined junk leads' deletions as
# entity_deleted events. The same insights must come out.
ANOTHER = {"link_host": "https://demo.amocrm.ru", "type_filter": "array", "empty_page": "empty",
           "max_limit": 100, "deletion_style": "entity_deleted"}


@pytest.fixture(scope="module", params=["ours", "another"])
def both(tmp_path_factory, request):
    demo = generate_demo()
    folder = tmp_path_factory.mktemp("demo_csv")
    export_csv(demo.data, folder)
    config = parse_config(demo.config_toml, source_name="demo", base_dir=Path("."))
    fake = FakeAmoCRM()
    if request.param == "another":
        for key, value in ANOTHER.items():
            setattr(fake, key, value)
    ids = load_into(fake, demo.data)
    mp = pytest.MonkeyPatch()
    mp.setenv("DEMO_AMO_TOKEN", fake.long_lived)
    try:
        with ThreadedServer(fake) as running:
            source = SourceConfig(
                kind="amocrm", base_url=f"http://127.0.0.1:{running.port}", token_env="DEMO_AMO_TOKEN",
                store=str(tmp_path_factory.mktemp("demo_store")), requests_per_second=100,
                custom_fields={"deals": {"source": SOURCE_FIELD, "region": REGION_FIELD},
                               "clients": {"region": REGION_FIELD, "segment": SEGMENT_FIELD}})
            amocrm.sync(source, None)
        synced = load_crm(source, timezone=config.timezone, now=demo.now)
    finally:
        mp.undo()
    exported = load_folder(folder, timezone=config.timezone, now=demo.now)
    return demo, config, ids, exported, synced


def _renamed(frame: pd.DataFrame, ids) -> pd.DataFrame:
    """The export's frame with amoCRM's ids in place of the demo's."""
    out = frame.copy()
    maps = {"deal_id": ids.deals, "client_id": ids.clients, "manager_id": ids.users}
    for col, mapping in maps.items():
        if col in out:
            out[col] = out[col].map(lambda v, m=mapping: str(m[v]) if v in m else None).astype(frame[col].dtype)
    return out


def test_same_deals_stages_and_history(both):
    demo, _config, ids, exported, synced = both
    assert not synced.warnings
    a, b = exported.data, synced.data
    assert b.stages == a.stages
    accepted = {str(i) for i in ids.accepted}  # waiting leads a manager accepted: deals in amoCRM
    assert len(accepted) == 4
    extra = b.deals[b.deals.deal_id.isin(accepted)]
    assert set(extra.stage) == {a.stages[0]} and set(extra.status) == {"open"} and extra.manager_id.notna().all()
    deals = b.deals[~b.deals.deal_id.isin(accepted)]
    cols = ["deal_id", "client_id", "manager_id", "title", "amount", "currency", "stage", "status",
            "created_at", "closed_at", "loss_reason", "source", "region"]
    left = _renamed(a.deals[cols], ids).sort_values("deal_id").reset_index(drop=True)
    right = deals[cols].sort_values("deal_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    key = ["deal_id", "entered_at", "stage"]
    left = _renamed(a.stage_history, ids)[key].sort_values(key).reset_index(drop=True)
    right = b.stage_history[~b.stage_history.deal_id.isin(accepted)][key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    assert deals.status.value_counts().to_dict() == a.deals.status.value_counts().to_dict()


def test_waiting_leads_are_the_same_and_converted_ones_are_their_deals(both):
    demo, _config, ids, exported, synced = both
    a, b = exported.data.leads, synced.data.leads
    cols = ["created_at", "source", "region", "manager_id", "assigned_at", "first_response_at", "status"]
    waiting = a[a.status == "new"].copy()
    waiting["lead_id"] = waiting.lead_id.map(lambda v: str(ids.leads[v]))
    waiting["manager_id"] = waiting.manager_id.map(lambda v: str(ids.users[v]) if isinstance(v, str) else None)
    left = waiting.set_index("lead_id")[cols].sort_index()
    right = b.set_index("lead_id").loc[left.index, cols]
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    # every deal started in the first stage: each is a lead, created with the deal, as amoCRM holds it
    deals = synced.data.deals.set_index("deal_id")
    converted = b[~b.lead_id.isin(left.index)].set_index("lead_id")
    assert set(converted.index) == set(deals.index) - left.index.to_series().pipe(set)
    assert (converted.created_at == deals.loc[converted.index, "created_at"]).all()
    assert set(converted.status) == {"new", "converted", "won", "lost"}
    assert len(b) == len(demo.data.deals) + len(left)  # the demo's 700 junk leads were declined: gone


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_same_insights_where_amocrm_has_the_data(both, lang):
    demo, config, ids, exported, synced = both
    from_csv = scan(config, demo.now, data=exported.data)
    from_amo = scan(config, demo.now, data=synced.data)

    def texts(outcome, detector, lead_ids=None):
        out = [insight_text(i, lang, now=demo.now) for i in outcome.insights if i.detector == detector]
        for ours, amo in (lead_ids or {}).items():
            out = [t.replace(ours, str(amo)) for t in out]
        return sorted(out)

    for detector in SAME_WORDS:
        assert texts(from_csv, detector), detector  # the demo plants each of these
        assert texts(from_amo, detector) == texts(from_csv, detector, ids.leads), detector
    assert len(texts(from_amo, "lead_sla")) == 4  # two without a manager, two without an answer

    # manager_load: the same people named over and under, on open deals and new leads
    (csv_load,), (amo_load,) = ([i for i in o.insights if i.detector == "manager_load"] for o in (from_csv, from_amo))
    def named(insight, role):
        return {e["manager_id"] for e in insight.facts[role]}

    assert named(csv_load, "over") == {"m01"} and named(amo_load, "over") == {str(ids.users["m01"])}
    assert "m02" in named(csv_load, "under") and str(ids.users["m02"]) in named(amo_load, "under")
    assert {e["metric"] for e in amo_load.facts["over"]} == {"open_deals", "new_leads"}
    assert "manager_load" not in from_amo.partial and "lead_sla" not in from_amo.skipped

    # what amoCRM cannot give is said once, by table
    assert "email_opens" in from_amo.skipped["silent_client"]
    assert texts(from_csv, "silent_client")
