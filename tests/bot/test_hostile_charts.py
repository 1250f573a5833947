"""One string never stops delivery: a loss reason "Дорого $$", a stage "$_$" or "$x^$" made
matplotlib's mathtext raise inside the chart and deliver() raise for everyone. Now CRM text is
never parsed as math, and a chart that fails for any other reason costs only that chart."""
from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import parse_config
from bot.delivery import deliver, route
from bot.outbox import Outbox
from detectors.insight import Insight
from messages import charts, samples
from tests.bot.conftest import CONFIG_TOML, NOW

HOSTILE = ["Дорого $$", "$_$", "$x^$", "$\\frac{1}{0}$", "$$$$", "50$ и 60$", "\\", "^_^", "%s %d {0} {}",
           "a\x00b", "\x1b[31mred", "\u202eRTL", "🔥" * 30, "x" * 5000, " ", "<!channel> $a$"]


def _name_everyone(load, name: str) -> None:
    """Every manager name in a manager_load insight (people, plan, chart rows) set to `name`+id."""
    for group in ("over", "under"):
        for p in load.facts.get(group, []):
            p["manager_name"] = name
    for moves in load.facts.get("plan", {}).values():
        for mv in moves:
            mv["from_manager_name"] = name
            mv["to_manager_name"] = name + "2"
    for metric in load.facts.get("metrics", {}).values():
        for row in metric.get("loads", []):
            row["manager_name"] = name + row["manager_id"]


def _insights(name: str) -> list[Insight]:
    conv = samples.conversion_drop()
    conv.facts.update(from_stage=name, to_stage=name)
    conv.subject.update(from_stage=name, to_stage=name)
    load = samples.manager_load()
    _name_everyone(load, name)
    loss = samples.loss_reasons()
    loss.facts["top_rising"] = name
    for k, row in enumerate(loss.facts["reasons"]):
        row["reason"] = f"{name} {k}"
    deal = samples.stalled_deal(deal_id="D-H", title=name, manager_id="m2")
    return [conv, load, loss, deal]


@pytest.fixture
def company():
    return parse_config(CONFIG_TOML + "\n[telegram]\nenabled = true\n[slack]\nenabled = true\n"
                        "[delivery]\ncritical_immediately = false\n"
                        '[[channels]]\nid = "slack-team"\nslack_channel_id = "C900"\n')


@pytest.mark.parametrize("name", HOSTILE, ids=lambda s: repr(s[:12]))
def test_every_recipient_gets_their_digest_whatever_the_names(name, company, sqlite_store, caplog):
    insights = _insights(name)
    outbox = Outbox(sqlite_store, clock=lambda: NOW)
    report = deliver(insights, company, sqlite_store, outbox, NOW, exclude_detectors=())
    routed = route(insights, company)
    expected = {tid: items for tid, items in routed.items() if items}
    assert set(expected) == {"boris", "dina", "sales-team", "slack-team"}
    for tid, items in expected.items():
        assert report.messages[tid] > 0, tid
        assert set(report.sent[tid]) == {i.fingerprint for i in items}, tid
    rows = outbox.rows(recipient="slack-team")
    with_chart = [r for r in rows if r.photo]
    assert len(with_chart) == 3  # math signs and all: the three charts are drawn, the text as typed
    for r in with_chart:
        assert r.photo[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chart_that_fails_costs_only_that_chart(company, sqlite_store, caplog, monkeypatch):
    real = charts.chart_for

    def flaky(insight, lang):
        if insight.detector == "manager_load":
            raise RuntimeError("font cache is broken")
        return real(insight, lang)

    monkeypatch.setattr(charts, "chart_for", flaky)
    insights = _insights("Дорого")
    outbox = Outbox(sqlite_store, clock=lambda: NOW)
    caplog.set_level(logging.WARNING, logger="crm_pulse.delivery")
    report = deliver(insights, company, sqlite_store, outbox, NOW, exclude_detectors=())
    load = insights[1]
    assert load.fingerprint in report.sent["slack-team"] and load.fingerprint in report.sent["dina"]
    team = outbox.rows(recipient="slack-team")
    assert len([r for r in team if r.photo]) == 2 and len([r for r in team if not r.photo]) >= 1
    failed = [r for r in caplog.records if "chart for manager_load" in r.getMessage()]
    assert failed and load.fingerprint in failed[0].getMessage() and failed[0].exc_info


def test_a_name_matplotlib_cannot_draw_costs_only_the_charts(sqlite_store, caplog):
    """A lone surrogate (JSON "\\ud800" from a CRM API) is refused by matplotlib's text engine."""
    company = parse_config(CONFIG_TOML + "\n[slack]\nenabled = true\n[delivery]\ncritical_immediately = false\n"
                           '[[channels]]\nid = "slack-team"\nslack_channel_id = "C900"\n')
    insights = _insights("Дорого \ud800")
    outbox = Outbox(sqlite_store, clock=lambda: NOW)
    report = deliver(insights, company, sqlite_store, outbox, NOW, exclude_detectors=())
    assert set(report.sent["slack-team"]) == {i.fingerprint for i in insights[:3]}
    rows = outbox.rows(recipient="slack-team")
    assert rows and not any(r.photo for r in rows)
    assert len([r for r in caplog.records if "not drawn" in r.getMessage()]) == 3


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(*[st.text(alphabet=list("$_^\\{}%&#~`*|ab Д\n\t"), max_size=8)] * 3).map("{0[0]}${0[1]}${0[2]}".format)
       | st.text(max_size=40))
def test_charts_draw_any_text(name):
    for insight in _insights(name)[:3]:
        png = charts.chart_for(insight, "ru")
        assert png is None or png[:4] == b"\x89PNG"
