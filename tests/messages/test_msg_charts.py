"""Charts: valid PNGs, small enough for a chat, wide enough to read on a phone."""
from __future__ import annotations

import pytest

from detectors.insight import Audience, Insight
from messages import samples
from messages.charts import chart_for
from msg_helpers import check_phone_png


def test_conversion_chart():
    check_phone_png(chart_for(samples.conversion_drop(), "ru"))


def test_manager_load_chart():
    check_phone_png(chart_for(samples.manager_load(), "en"))


def test_loss_reasons_chart():
    check_phone_png(chart_for(samples.loss_reasons(), "ru"))


def test_charts_differ_by_language():
    """The axis words follow the reader's language (the Russian chart is not the English one)."""
    assert chart_for(samples.loss_reasons(), "ru") != chart_for(samples.loss_reasons(), "en")


@pytest.mark.parametrize("insight", [
    samples.stalled_deal(), samples.silent_client(), samples.lead_sla(),
    Insight("loss_reasons", "warning", Audience("director"), {"kind": "data_quality"},
            {"kind": "data_quality", "lost_n": 100, "missing_n": 40, "missing_share": 0.4, "threshold": 0.2}),
    Insight("conversion_drop", "warning", Audience("director"), {"from_stage": "a", "to_stage": "b"},
            {"from_stage": "a", "to_stage": "b", "weekly": []}),
    Insight("mystery", "info", Audience("director"), {}, {}),
], ids=["stalled", "silent", "lead", "loss-data-quality", "no-weekly-series", "unknown"])
def test_no_chart_where_a_picture_adds_nothing(insight):
    assert chart_for(insight, "ru") is None
