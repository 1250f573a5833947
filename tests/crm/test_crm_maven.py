"""The real Maven export loads with the mapping kept in examples/maven.

The dataset is not in the repository: it is read from examples/maven/data/ (where its README
says to unzip it), else from shared/datasets next to the repository (the team's machines)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crm.load import load_crm
from crm.source_config import SourceConfig

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "maven" / "config.toml"
SETTINGS = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
CANDIDATES = [(CONFIG.parent / SETTINGS["source"]["path"]).resolve(),
              CONFIG.parents[2].parent / "shared" / "datasets" / "maven-crm-sales-opportunities"]
DATASET = next((d for d in CANDIDATES if (d / "sales_pipeline.csv").is_file()), CANDIDATES[0])

pytestmark = pytest.mark.skipif(
    not (DATASET / "sales_pipeline.csv").is_file(),
    reason=f"Maven dataset not found at {DATASET}",
)


@pytest.fixture(scope="module")
def maven():
    source = SourceConfig(**{**SETTINGS["source"], "path": str(DATASET)})
    return load_crm(source, timezone=SETTINGS["timezone"], base_dir=CONFIG.parent)


def test_every_deal_manager_and_account_loads(maven):
    data = maven.data
    assert len(data.deals) == 8800
    assert len(data.managers) == 35
    assert len(data.clients) == 85
    assert data.deals["status"].value_counts().to_dict() == {"won": 4238, "lost": 2473, "open": 2089}
    assert set(data.deals["stage"]) == {"Prospecting", "Engaging"}
    assert data.stages == ["Prospecting", "Engaging"]
    assert data.deals["manager_id"].isin(data.managers["manager_id"]).all()
    assert data.deals["created_at"].notna().all()
    assert data.deals["currency"].eq("USD").all()
    won = data.deals[data.deals["status"] == "won"]
    assert won["closed_at"].notna().all() and won["amount"].gt(0).all()
    # the export's days are Pacific days
    first = data.deals.set_index("deal_id").loc["1C1I7A6R", "created_at"]
    assert first.isoformat() == "2016-10-20T07:00:00+00:00"


def test_the_gaps_of_the_export_are_reported(maven):
    warnings = {(w.code, w.table): w for w in maven.warnings}
    assert {w.code for w in maven.warnings} == {"filled", "stage_history_derived"}
    filled = [w for w in maven.warnings if w.code == "filled"]
    assert sorted(w.count for w in filled) == [500, 8800]  # prospecting dates, currency column
    assert maven.data.stage_history_derived
    assert "conversion insights need the real history" in str(warnings[("stage_history_derived", "stage_history")])
