"""The demo company through the real detectors: every insight renders in every format, charts too.

This is where template and detector meet: a template that cannot use what a detector really
produces would fall back to the generic rendering, which this test refuses.
"""
from __future__ import annotations

import logging

import pytest
from msg_helpers import check_phone_png, check_slack_limits, telegram_visible_text

from messages import slack, telegram, terminal
from messages.charts import chart_for
from messages.digest import build_digest


@pytest.fixture(scope="module")
def demo_scan():
    from crm.demo import generate_demo
    from detectors.registry import REGISTRY, run_detectors

    demo = generate_demo()
    result = run_detectors(demo.data, {name: det.spec() for name, det in REGISTRY.items()}, demo.now)
    return demo, result.insights


def test_every_demo_insight_renders_with_its_own_template(demo_scan, caplog):
    demo, insights = demo_scan
    assert insights, "the demo company should produce insights"
    with caplog.at_level(logging.WARNING, logger="messages.render"):
        for insight in insights:
            for lang in ("ru", "en"):
                telegram_visible_text(telegram.format_insight(insight, lang, now=demo.now)["text"])
                check_slack_limits(slack.format_insight(insight, lang, now=demo.now))
                assert terminal.format_insight(insight, lang, now=demo.now)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_demo_digests_per_manager_fit_their_channels(demo_scan):
    demo, insights = demo_scan
    managers = {i.audience.manager_id for i in insights if i.audience.manager_id}
    for manager_id in managers:
        mine = [i for i in insights if i.audience.manager_id == manager_id]
        digest = build_digest(mine, lang="ru", now=demo.now, tz="Asia/Almaty")
        for message in telegram.format_digest(digest):
            telegram_visible_text(message["text"])
        for message in slack.format_digest(digest):
            check_slack_limits(message)


@pytest.mark.parametrize("detector", ["conversion_drop", "manager_load", "loss_reasons"])
def test_chart_from_demo_data(demo_scan, detector):
    _, insights = demo_scan
    charts = (chart_for(i, "ru") for i in insights if i.detector == detector)
    png = next((c for c in charts if c is not None), None)
    assert png is not None, f"the demo company should produce a {detector} insight with a chart"
    check_phone_png(png)
