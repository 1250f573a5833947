"""The demo company served by a fake Pipedrive and synced gives the insights that scanning its CSV
export gives, wherever Pipedrive can hold the data: the same deals, stages, statuses, stage
history, emails and activities, and word for word the same insights of every detector whose
data Pipedrive holds whole.

What Pipedrive holds only in part is compared with the export reduced the same way
(tests/fakes/pipedrive_demo.as_pipedrive_holds_it): no assignment time of a lead, no converted
leads, no capacity or team of a manager. Pipedrive keeps no open times, so silent_client is
skipped, saying it needs email_opens."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.config import parse_config
from bot.pipeline import scan
from crm.connectors import pipedrive
from crm.demo import export_csv, generate_demo
from crm.load import load_crm, load_folder
from crm.source_config import SourceConfig
from messages.render import insight_text
from tests.fakes.amocrm_server import ThreadedServer
from tests.fakes.pipedrive_demo import REGION_FIELD, SEGMENT_FIELD, SOURCE_FIELD, as_pipedrive_holds_it, load_into
from tests.fakes.pipedrive_server import FakePipedrive

SAME_WORDS = ("conversion_drop", "loss_reasons", "stalled_deal")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    demo = generate_demo()
    folder = tmp_path_factory.mktemp("demo_csv")
    export_csv(demo.data, folder)
    config = parse_config(demo.config_toml, source_name="demo", base_dir=Path("."))
    fake = FakePipedrive()
    ids = load_into(fake, demo.data)
    mp = pytest.MonkeyPatch()
    mp.setenv("DEMO_PD_TOKEN", fake.token)
    try:
        with ThreadedServer(fake) as running:
            source = SourceConfig(
                kind="pipedrive", base_url=f"http://127.0.0.1:{running.port}", token_env="DEMO_PD_TOKEN",
                store=str(tmp_path_factory.mktemp("demo_store")),
                custom_fields={"deals": {"source": SOURCE_FIELD, "region": REGION_FIELD},
                               "clients": {"region": REGION_FIELD, "segment": SEGMENT_FIELD}})
            # thousands of per-deal flow and mail requests: no need to pace a local fake
            pipedrive.sync(source.model_copy(update={"requests_per_second": 0}), None)
        synced = load_crm(source, timezone=config.timezone, now=demo.now)
    finally:
        mp.undo()
    exported = load_folder(folder, timezone=config.timezone, now=demo.now)
    return demo, config, ids, exported, synced


def _renamed(frame: pd.DataFrame, ids) -> pd.DataFrame:
    """The export's frame with Pipedrive's ids in place of the demo's."""
    out = frame.copy()
    maps = {"deal_id": ids.deals, "client_id": ids.clients, "manager_id": ids.users, "email_id": ids.emails,
            "activity_id": ids.activities}
    for col, mapping in maps.items():
        if col in out:
            out[col] = out[col].map(lambda v, m=mapping: str(m[v]) if v in m else None).astype(frame[col].dtype)
    return out


def _same(left: pd.DataFrame, right: pd.DataFrame, key: list[str]) -> None:
    pd.testing.assert_frame_equal(left[right.columns].sort_values(key).reset_index(drop=True),
                                  right.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_same_deals_stages_history_emails_and_activities(both):
    demo, _config, ids, exported, synced = both
    assert not synced.warnings
    a, b = exported.data, synced.data
    assert b.stages == a.stages
    assert set(b.deals.pipeline) == {"Продажи"}  # the demo's one pipeline, which its export leaves unnamed
    _same(_renamed(a.deals, ids).assign(pipeline="Продажи"), b.deals, ["deal_id"])
    _same(_renamed(a.stage_history, ids), b.stage_history, ["deal_id", "entered_at", "stage"])
    _same(_renamed(a.clients, ids), b.clients, ["client_id"])
    _same(_renamed(a.emails, ids), b.emails, ["email_id"])
    held = as_pipedrive_holds_it(a)
    assert b.email_opens is None
    _same(_renamed(held.activities, ids), b.activities, ["activity_id"])
    _same(_renamed(held.leads, ids), b.leads, ["lead_id"])


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_same_insights_where_pipedrive_has_the_data(both, lang):
    demo, config, _ids, exported, synced = both
    held = as_pipedrive_holds_it(exported.data)
    from_csv = scan(config, demo.now, data=exported.data)
    from_held = scan(config, demo.now, data=held)
    from_pd = scan(config, demo.now, data=synced.data)

    def texts(outcome, detector):
        return sorted(insight_text(i, lang, now=demo.now) for i in outcome.insights if i.detector == detector)

    for detector in SAME_WORDS:
        assert texts(from_csv, detector), detector  # the demo plants each of these
        assert texts(from_pd, detector) == texts(from_csv, detector), detector
    assert texts(from_held, "lead_sla")  # still found on what Pipedrive can hold
    assert texts(from_pd, "lead_sla") == texts(from_held, "lead_sla")
    assert "email_opens" in from_pd.skipped["silent_client"] and texts(from_csv, "silent_client")
    assert set(from_pd.skipped) == {"silent_client"}, from_pd.skipped

    # manager_load: the same people named (Pipedrive has no capacity: the half-time manager
    # counts as full-time, so the numbers differ)
    (pd_load,) = [i for i in from_pd.insights if i.detector == "manager_load"]
    assert "Ержан Сапаров" in insight_text(pd_load, "ru", now=demo.now)
    assert "Алия Касымова" in insight_text(pd_load, "ru", now=demo.now)
