"""Golden files: every detector x language x format, and two digests, against reviewed files.

A wording change shows up as a diff of tests/messages/golden/; after reviewing it, rewrite the
files with UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/messages -q
"""
from __future__ import annotations

import pytest
from msg_helpers import NOW, check_golden, check_slack_limits, slack_golden_text, telegram_golden_text, telegram_visible_text, stalled

from messages import samples, slack, telegram, terminal
from messages.digest import build_digest

DETECTORS = sorted(samples.all_samples())
LANGS = ("ru", "en")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("detector", DETECTORS)
def test_telegram_golden(detector, lang):
    payload = telegram.format_insight(samples.all_samples()[detector], lang, now=NOW)
    telegram_visible_text(payload["text"])
    check_golden(f"{detector}.{lang}.telegram.html", telegram_golden_text(payload))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("detector", DETECTORS)
def test_slack_golden(detector, lang):
    payload = slack.format_insight(samples.all_samples()[detector], lang, now=NOW)
    check_slack_limits(payload)
    check_golden(f"{detector}.{lang}.slack.json", slack_golden_text(payload))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("detector", DETECTORS)
def test_terminal_golden(detector, lang):
    text = terminal.format_insight(samples.all_samples()[detector], lang, now=NOW)
    check_golden(f"{detector}.{lang}.terminal.txt", text + "\n")


def manager_digest():
    """Данияр's morning: three stuck deals, a silent client and a lead waiting."""
    insights = [samples.silent_client(), samples.lead_sla(), samples.stalled_deal(),
                stalled("D-1201", "Монтаж вентиляции, БЦ «Нурлы Тау»", 41, 3_000_000, severity="critical"),
                stalled("D-1210", "Кабель ВВГнг 3x2,5 — 2 км", 16, 850_000)]
    return build_digest(insights, lang="ru", now=NOW, tz="Asia/Almaty", recipient_name="Данияр")


def director_digest():
    insights = [samples.conversion_drop(), samples.manager_load(), samples.loss_reasons()]
    return build_digest(insights, lang="en", now=NOW, tz="Asia/Almaty", max_items=2, recipient_role="director")


@pytest.mark.parametrize("which", ["manager_digest.ru", "director_digest.en"])
def test_digest_golden(which):
    digest = manager_digest() if which.startswith("manager") else director_digest()
    tg = telegram.format_digest(digest)
    for message in tg:
        telegram_visible_text(message["text"])
    check_golden(f"{which}.telegram.html", "\n=== next message ===\n".join(telegram_golden_text(m) for m in tg))
    sl = slack.format_digest(digest)
    for message in sl:
        check_slack_limits(message)
    check_golden(f"{which}.slack.json", slack_golden_text(sl))
    check_golden(f"{which}.terminal.txt", terminal.format_digest(digest) + "\n")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("variant", sorted(samples.variants()))
def test_variant_golden(variant, lang):
    """The other shapes (win rate, unassigned lead, under-loaded, missing reasons, escalated)."""
    insight = samples.variants()[variant]
    text = terminal.format_insight(insight, lang, now=NOW)
    payload = telegram.format_insight(insight, lang, now=NOW)
    telegram_visible_text(payload["text"])
    check_slack_limits(slack.format_insight(insight, lang, now=NOW))
    check_golden(f"variants/{variant}.{lang}.terminal.txt", text + "\n")
