"""The demo company served by a fake amoCRM and synced gives the insights that scanning its CSV
export gives, wherever amoCRM can hold the data: the same deals, stages, statuses and stage
history, and word for word the same conversion, loss-reason and stalled-deal insights.

What amoCRM has no place for is said, not faked: email opens (silent_client is skipped), the
leads table (lead_sla is skipped, manager_load checks open deals only) and a manager's capacity
(the half-time manager counts as full-time, so manager_load's numbers differ; the overloaded and
underloaded managers it names are the same)."""
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

SAME_WORDS = ("conversion_drop", "loss_reasons", "stalled_deal")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    demo = generate_demo()
    folder = tmp_path_factory.mktemp("demo_csv")
    export_csv(demo.data, folder)
    config = parse_config(demo.config_toml, source_name="demo", base_dir=Path("."))
    fake = FakeAmoCRM()
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
    cols = ["deal_id", "client_id", "manager_id", "title", "amount", "currency", "stage", "status",
            "created_at", "closed_at", "loss_reason", "source", "region"]
    left = _renamed(a.deals[cols], ids).sort_values("deal_id").reset_index(drop=True)
    right = b.deals[cols].sort_values("deal_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    key = ["deal_id", "entered_at", "stage"]
    left = _renamed(a.stage_history, ids)[key].sort_values(key).reset_index(drop=True)
    right = b.stage_history[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    assert b.deals.status.value_counts().to_dict() == a.deals.status.value_counts().to_dict()


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_same_insights_where_amocrm_has_the_data(both, lang):
    demo, config, _ids, exported, synced = both
    from_csv = scan(config, demo.now, data=exported.data)
    from_amo = scan(config, demo.now, data=synced.data)

    def texts(outcome, detector):
        return sorted(insight_text(i, lang, now=demo.now) for i in outcome.insights if i.detector == detector)

    for detector in SAME_WORDS:
        assert texts(from_csv, detector), detector  # the demo plants each of these
        assert texts(from_amo, detector) == texts(from_csv, detector), detector

    # manager_load: the same people named, on open deals (amoCRM has no capacity, no leads table)
    (csv_load,), (amo_load,) = ([i for i in o.insights if i.detector == "manager_load"] for o in (from_csv, from_amo))
    assert "Ержан Сапаров" in insight_text(amo_load, "ru", now=demo.now)
    assert "Алия Касымова" in insight_text(amo_load, "ru", now=demo.now)
    assert "new_leads" in " ".join(from_amo.partial["manager_load"])

    # what amoCRM cannot give is said once, by table
    assert "email_opens" in from_amo.skipped["silent_client"]
    assert "leads" in from_amo.skipped["lead_sla"]
    assert texts(from_csv, "silent_client") and texts(from_csv, "lead_sla")
