"""One recipient's unrenderable text costs that recipient only: lone surrogates render safely
on every platform, and a message that still cannot be rendered leaves its items due for that
one person while everyone else gets theirs."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest

from bot.delivery import deliver, deliver_critical
from bot.outbox import Outbox
from detectors.insight import Insight

NOW = datetime(2026, 10, 1, 4, 0, tzinfo=timezone.utc)  # 09:00 in Almaty
HOSTILE = ["\ud800", "ТОО \udcff Клиент", "x\udfff\ud800y", "\ud83d"]


def _with_client_name(scenario: list[Insight], name: str) -> list[Insight]:
    anna = scenario[0]
    hostile = Insight.from_dict({**anna.to_dict(), "facts": {**anna.facts, "client_name": name}})
    return [hostile, *scenario[1:]]


def _payload_text(box: Outbox, recipient: str) -> str:
    # what the chat API is sent must encode as UTF-8 (httpx and the Slack SDK do exactly this)
    return "\n".join(json.dumps(r.payload, ensure_ascii=False) for r in box.rows(recipient=recipient)).encode().decode()


@pytest.mark.parametrize("name", HOSTILE)
def test_lone_surrogates_in_crm_text_are_delivered_as_replacement_chars(sqlite_store, chat_config, scenario, name):
    box = Outbox(sqlite_store)
    items = _with_client_name(scenario, name)
    report = deliver(items, chat_config, sqlite_store, box, NOW, charts=True)
    assert not report.failed
    anna = _payload_text(box, "anna")
    assert "\ufffd" in anna and "Аннин" not in anna
    assert report.sent["anna"] == [items[0].fingerprint]
    assert "Сделка Бориса" in _payload_text(box, "boris")
    assert {r.channel for r in box.rows(recipient="boris")} == {"telegram", "slack"}


def test_a_critical_alert_with_a_surrogate_goes_out(sqlite_store, chat_config, scenario):
    items = _with_client_name(scenario, "\ud800")
    items[0].severity = "critical"
    box = Outbox(sqlite_store)
    report = deliver_critical(items, chat_config, sqlite_store, box, NOW)
    assert report.sent["anna"] == [items[0].fingerprint] and not report.failed
    assert "\ufffd" in _payload_text(box, "anna")


def test_an_unrenderable_digest_costs_only_its_recipient(sqlite_store, chat_config, scenario, caplog):
    anna = scenario[0]
    # facts a template cannot render (a wrong type from an older or broken producer)
    broken = Insight.from_dict({**anna.to_dict(), "facts": {**anna.facts, "days_silent": "много"}})
    items = [broken, *scenario[1:]]
    box = Outbox(sqlite_store)
    with caplog.at_level(logging.ERROR, logger="crm_pulse.delivery"):
        report = deliver(items, chat_config, sqlite_store, box, NOW, charts=False)
    assert report.failed == {"anna": [broken.fingerprint]}
    assert box.rows(recipient="anna") == [] and report.sent["anna"] == []
    assert sqlite_store.log_entry("anna", broken.fingerprint) is None  # stays due: not recorded as sent
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "anna" in logged and f"silent_client/{broken.fingerprint}" in logged
    # everyone else got theirs
    assert "Сделка Бориса" in _payload_text(box, "boris")
    assert "Горящая сделка Бориса" in _payload_text(box, "dina")
    assert report.sent["boris"]
    # once the data is fixed, the held item goes out at the next run
    report = deliver(scenario, chat_config, sqlite_store, box, NOW.replace(hour=5), charts=False)
    assert report.sent["anna"] == [anna.fingerprint] and not report.failed


def test_an_unrenderable_critical_alert_costs_only_its_recipient(sqlite_store, chat_config, scenario):
    anna = scenario[0]
    broken = Insight.from_dict({**anna.to_dict(), "severity": "critical",
                                "facts": {**anna.facts, "days_silent": "много"}})
    box = Outbox(sqlite_store)
    report = deliver_critical([broken, *scenario[1:]], chat_config, sqlite_store, box, NOW)
    assert report.failed == {"anna": [broken.fingerprint]}
    assert sqlite_store.log_entry("anna", broken.fingerprint) is None
    assert report.sent.get("boris")  # Boris's critical deal still went out at once


@pytest.mark.parametrize("text", HOSTILE)
def test_formatters_never_raise_on_surrogates(text):
    from messages.render import Span
    from messages.slack import format_text, line_mrkdwn
    from messages.telegram import line_html, tg_len
    from messages.terminal import terminal_safe

    assert tg_len(text) >= 1  # Telegram's UTF-16 length, measured without raising
    for out in (line_html((Span(text, "name"),)), line_mrkdwn((Span(text, "name"),)),
                json.dumps(format_text(text), ensure_ascii=False), terminal_safe(text)):
        out.encode("utf-8")
