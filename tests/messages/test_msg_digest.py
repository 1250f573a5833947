"""Digests: what a recipient gets in one run, in which order, split into sendable messages."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from msg_helpers import NOW, check_slack_limits, stalled, telegram_visible_text

from detectors.insight import Audience, Insight
from messages import samples, slack, telegram, terminal
from messages.digest import build_digest
from messages.model import parse_action
from messages.render import Line, insight_text
from messages.render import plain as plain_nbsp


def plain(ln: Line) -> str:
    """Rendered text with no-break spaces (between a number and its noun) shown as spaces."""
    return plain_nbsp(ln).replace("\u00a0", " ")


def lead(i: int, severity: str = "warning") -> Insight:
    return Insight(
        detector="lead_sla", severity=severity, audience=Audience("manager", "m2"),
        subject={"lead_id": f"L-{i}", "kind": "unanswered"},
        facts={"kind": "unanswered", "lead_source": "Сайт", "lead_region": "Алматы", "created_at": "2026-11-27T09:00:00+05:00",
               "working_hours_waited": 3 + i % 5, "sla_hours": 2, "manager_id": "m2", "manager_name": "Данияр",
               "escalated": False},
        evidence={"lead_ids": [f"L-{i}"]},
    )


def titles(digest) -> list[str]:
    return [plain(item.title) for item in digest.items]


def test_nothing_to_say_sends_nothing():
    assert build_digest([], lang="ru", now=NOW, tz="Asia/Almaty") is None


def test_all_quiet_line_when_the_recipient_asked_for_it():
    digest = build_digest([], lang="ru", now=NOW, tz="Asia/Almaty", all_quiet=True, recipient_name="Айгерим")
    assert digest is not None and digest.quiet and not digest.items
    [message] = telegram.format_digest(digest)
    assert "всё спокойно" in message["text"] and "Айгерим" in message["text"] and message["buttons"] == []
    assert "all quiet" in terminal.format_digest(build_digest([], lang="en", now=NOW, all_quiet=True))


def test_header_date_is_the_recipients_local_date():
    late_utc = datetime(2026, 11, 27, 20, 30, tzinfo=timezone.utc)  # already 28 Nov 01:30 in Almaty
    ru = build_digest([samples.lead_sla()], lang="ru", now=late_utc, tz="Asia/Almaty")
    assert "28 ноября" in plain(ru.header) and "1 пункт" in plain(ru.header)
    en = build_digest([samples.lead_sla()], lang="en", now=late_utc, tz="UTC")
    assert "27 November" in plain(en.header) and "1 item" in plain(en.header)


def test_most_important_first_then_grouped_by_detector_and_money():
    insights = [samples.loss_reasons(), lead(1, "info"), samples.conversion_drop(),
                stalled("D-1", "Малая", 20, 100_000, manager_id="a"), stalled("D-2", "Большая", 20, 9_000_000, manager_id="b"),
                samples.manager_load()]
    digest = build_digest(insights, lang="ru", now=NOW, tz="Asia/Almaty")
    detectors = [item.detector for item in digest.items]
    assert detectors[0] == "conversion_drop"  # the only critical one
    assert detectors.index("lead_sla") == len(detectors) - 1  # the only info one comes last
    stalled_titles = [t for item, t in zip(digest.items, titles(digest)) if item.detector == "stalled_deal"]
    assert "Большая" in stalled_titles[0] and "Малая" in stalled_titles[1]  # more money at stake first
    # grouped: the same detector's items are next to each other
    assert detectors == sorted(detectors, key=detectors.index)


def test_max_items_keeps_the_most_important_and_points_to_the_rest():
    insights = [lead(i) for i in range(16)] + [samples.conversion_drop()]
    digest = build_digest(insights, lang="ru", now=NOW, tz="Asia/Almaty", max_items=10)
    assert len(digest.items) == 10 and digest.more == 7 and digest.total == 17
    assert digest.items[0].detector == "conversion_drop"
    text = terminal.format_digest(digest).replace("\u00a0", " ")
    assert "17 пунктов" in text and "\n\nИ ещё 7: /insights\n\n" in text
    en = build_digest(insights, lang="en", now=NOW, max_items=10)
    assert plain(en.footer) == "And 7 more: /insights"


def test_a_managers_stalled_deals_become_one_item_oldest_first_with_a_row_per_deal():
    deals = [stalled("D-1", "Средняя", 20, 1_000_000), stalled("D-2", "Старая", 60, 2_000_000),
             stalled("D-3", "Свежая", 15, 500_000)]
    digest = build_digest(deals + [samples.silent_client()], lang="ru", now=NOW, tz="Asia/Almaty")
    [group] = [item for item in digest.items if item.detector == "stalled_deal"]
    body = [plain(b) for b in group.body]
    assert [b.split("«")[1].split("»")[0] for b in body[:3]] == ["Старая", "Средняя", "Свежая"]
    assert "3 500 000 ₸" in body[-1].replace("\u00a0", " ")
    assert group.fingerprints == [deals[1].fingerprint, deals[0].fingerprint, deals[2].fingerprint]
    # each deal can be snoozed, closed or opened on its own
    per_deal = [group.buttons[k] + group.buttons[k + 1] for k in range(0, len(group.buttons), 2)]
    for row, deal in zip(per_deal, [deals[1], deals[0], deals[2]], strict=True):
        assert {parse_action(b.action)[0] for b in row} == {"snooze", "done", "details"}
        assert all(deal.fingerprint in b.action for b in row)


def test_every_item_carries_all_its_buttons():
    digest = build_digest(list(samples.all_samples().values()), lang="en", now=NOW)
    for item in digest.items:
        actions = {b.action for row in item.buttons for b in row}
        fp = item.fingerprints[0]
        assert {f"snooze:{fp}:1d", f"snooze:{fp}:7d", f"done:{fp}", f"useful:{fp}", f"notuseful:{fp}",
                f"details:{fp}"} <= actions


def test_director_reading_a_managers_item_is_told_whose_it_is():
    escalated = samples.silent_client()
    digest = build_digest([escalated], lang="ru", now=NOW, tz="Asia/Almaty", recipient_role="director")
    title = plain(digest.items[0].title)
    assert "менеджера Данияра Ахметова" in title and "ваши" not in title
    assert "ваши" in plain(build_digest([escalated], lang="ru", now=NOW).items[0].title)


def sixty_item_digest(lang="ru"):
    insights = [lead(i) for i in range(30)] + [samples.conversion_drop() for _ in range(10)] + \
        [samples.loss_reasons() for _ in range(10)] + [samples.manager_load() for _ in range(10)]
    return build_digest(insights, lang=lang, now=NOW, tz="Asia/Almaty", max_items=60)


def test_telegram_splits_a_long_digest_between_items_never_inside_one():
    digest = sixty_item_digest()
    messages = telegram.format_digest(digest)
    assert len(messages) > 1
    seen_numbers = []
    for message in messages:
        assert len(message["text"].encode("utf-16-le")) // 2 <= 4096
        telegram_visible_text(message["text"])  # every message is balanced, valid HTML on its own
        numbers = [int(n) for n in re.findall(r"<b>(\d+)\. ", message["text"])]
        seen_numbers += numbers
        # the buttons of a message belong to the items in that message, and to all of them
        labelled = {int(b["label"].split(" ")[0]) for row in message["buttons"] for b in row}
        assert labelled == set(numbers)
        assert sum(len(r) for r in message["buttons"]) <= 100
    assert seen_numbers == list(range(1, 61))
    assert messages[0]["text"].replace("\u00a0", " ").startswith("<b>Сводка на 28 ноября: 60 пунктов</b>")


def test_slack_splits_a_long_digest_within_block_kit_limits():
    messages = slack.format_digest(sixty_item_digest("en"))
    assert len(messages) > 1
    for message in messages:
        check_slack_limits(message)
    sections = [b for m in messages for b in m["blocks"] if b["type"] == "section"]
    assert len(sections) == 60
    assert messages[0]["blocks"][0]["type"] == "header"


def test_terminal_digest_lists_every_item_with_its_id():
    digest = sixty_item_digest("en")
    text = terminal.format_digest(digest)
    assert text.count("\n   id: ") == 60


def test_main_text_has_no_statistics_but_details_do():
    for insight in samples.all_samples().values():
        for lang in ("ru", "en"):
            text = insight_text(insight, lang, now=NOW)
            assert not re.search(r"\b[pq] [=<]", text) and "p-value" not in text
    details = telegram_visible_text(telegram.format_insight(samples.conversion_drop(), "en", now=NOW)["text"])
    assert "q < 0.001" in details and "one-sided Fisher exact test" in details


def test_unknown_detector_gets_a_generic_rendering_not_a_crash():
    odd = Insight(detector="weekend_spike", severity="info", audience=Audience("director"), subject={"day": "sat"},
                  facts={"deals_on_weekend": 14, "share": 0.21, "note": "<b>x</b>", "nested": {"a": 1}})
    text = insight_text(odd, "ru")
    assert "Weekend spike" in text and "14" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in telegram.format_insight(odd, "ru")["text"]
    check_slack_limits(slack.format_insight(odd, "en"))


def test_known_detector_with_missing_facts_still_renders():
    broken = Insight(detector="stalled_deal", severity="warning", audience=Audience("manager", "m1"),
                     subject={"deal_id": "D-9"}, facts={"deal_title": "Без этапа"})
    assert "Без этапа" in insight_text(broken, "ru")


@pytest.mark.parametrize("bad", [0, -1])
def test_max_items_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_items"):
        build_digest([samples.lead_sla()], lang="ru", now=NOW, max_items=bad)


def test_conversion_to_a_win_is_worded_as_a_win_rate():
    insight = samples.conversion_drop()
    insight.facts.update(to_won=True, to_stage="won")
    ru, en = insight_text(insight, "ru", now=NOW), insight_text(insight, "en", now=NOW)
    assert "реже выигрываться: 48% → 31%" in ru and "«won»" not in ru
    assert en.startswith("Win rate after “КП отправлено” fell: 48% → 31%") and "lost after" in en


def test_right_to_left_crm_text_is_isolated_so_it_cannot_flip_our_words():
    insight = samples.silent_client()
    insight.facts["client_name"] = "שלום \u202eевил"
    text = insight_text(insight, "en", now=NOW)
    assert "\u2068שלום \u202eевил\u2069 has not answered" in text


def test_a_directors_digest_speaks_about_managers_not_to_them():
    """Routing gives a director escalated manager items; the words must not say "your deal"."""
    deal = samples.stalled_deal()
    deal.facts["escalated"] = True
    for role in ("director", None):  # None: inferred from the director-only conversion insight
        digest = build_digest([deal, samples.conversion_drop()], lang="ru", now=NOW, recipient_role=role)
        text = terminal.format_digest(digest)
        assert "Уточните у Данияра Ахметова следующий шаг" in text
        assert "Сделка «" in text and "» менеджера Данияра Ахметова стоит" in text
        assert "Договоритесь с клиентом" not in text and "сводку руководителя" not in text
    mine = terminal.format_digest(build_digest([deal], lang="ru", now=NOW, recipient_role="manager"))
    assert "Договоритесь с клиентом" in mine and "сводку руководителя" in mine


def test_only_a_directors_digest_points_to_the_maturity_check():
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    director = build_digest([samples.conversion_drop()], lang="ru", now=now, recipient_role="director")
    manager = build_digest([samples.silent_client()], lang="en", now=now, recipient_role="manager")
    assert terminal.format_digest(director).rstrip().endswith("Пять вопросов, две минуты: /maturity")
    assert "/maturity" not in terminal.format_digest(manager)


def test_still_open_items_are_one_line_each_at_the_end_in_every_format():
    from datetime import timedelta

    from messages.digest import MAX_STILL_OPEN

    new = samples.lead_sla()
    old = [(stalled(f"D-{k}", f"Старая {k}", 30, 1000 * (k + 1), manager_id="m2"), NOW - timedelta(days=7))
           for k in range(MAX_STILL_OPEN + 2)]
    for lang, head, more in (("ru", "Ещё открыто (7):", "…и ещё 2: /insights"),
                             ("en", "Still open (7):", "…and 2 more: /insights")):
        digest = build_digest([new], lang=lang, now=NOW, tz="Asia/Almaty", still_open=old)
        assert [fp for item in digest.items for fp in item.fingerprints] == [new.fingerprint]  # one full item
        assert "1 пункт" in plain(digest.header) or "1 item" in plain(digest.header)
        text = terminal.format_digest(digest)
        assert text.index(head) > text.index(plain_nbsp(digest.items[0].title)[:20])
        bullets = [ln for ln in text.splitlines() if ln.startswith("• ")]
        assert len(bullets) == MAX_STILL_OPEN and bullets[0].count("Старая 6") == 1 and more in text
        assert digest.reminded == [ins.fingerprint for ins, _ in old[::-1][:MAX_STILL_OPEN]]  # the largest first
        tg_text = "\n".join(m["text"] for m in telegram.format_digest(digest))
        assert tg_text.count("Старая") == MAX_STILL_OPEN and "Старая 0" not in tg_text
        # no buttons for a reminder: the one full item has its own, nothing else
        buttons = [b["action"] for m in telegram.format_digest(digest) for row in m["buttons"] for b in row]
        assert all(new.fingerprint in a for a in buttons)
        for message in slack.format_digest(digest):
            check_slack_limits(message)


def test_quiet_digest_says_nothing_found_by_k_of_n_checks_not_all_quiet():
    from messages.digest import Checks

    checks = Checks.of(["stalled_deal", "lead_sla", "silent_client"], {"silent_client": "needs emails.csv, email_opens.csv (table not provided)"},
                       {}, disabled=[])
    ru = build_digest([], lang="ru", now=NOW, all_quiet=True, checks=checks)
    assert "всё спокойно" not in plain(ru.header) and "ничего не найдено по 2 проверкам из 3" in plain(ru.header)
    assert plain(ru.unchecked) == "Не проверено: молчащие клиенты (нет таблиц emails.csv, email_opens.csv)."
    en = build_digest([], lang="en", now=NOW, all_quiet=True, checks=checks)
    assert "nothing found by 2 of 3 checks" in plain(en.header)
    # every enabled check ran: all quiet as before; a disabled one is not a missing check
    full = Checks.of(["stalled_deal", "lead_sla"], {"lead_sla": "disabled in config"}, {}, disabled=["lead_sla"])
    assert "всё спокойно" in plain(build_digest([], lang="ru", now=NOW, all_quiet=True, checks=full).header)
    # a manager with items is not told about checks; a director is
    manager = build_digest([samples.lead_sla()], lang="ru", now=NOW, checks=checks, recipient_role="manager")
    director = build_digest([samples.lead_sla()], lang="ru", now=NOW, checks=checks, recipient_role="director")
    assert manager.unchecked is None and "молчащие клиенты" in plain(director.unchecked)


def test_a_digests_unchecked_line_keeps_the_reason_and_leaves_the_advice_to_check_config():
    """A web-UI amoCRM export: the history line tells an admin where a stage history comes from
    (the CRM's API, Salesforce's and HubSpot's reports, a TOML key). A director reads the digest
    daily: the reason stays, the advice goes, check-config is named; the CLI keeps it all."""
    from messages.digest import Checks, unchecked_text

    from types import SimpleNamespace

    from detectors.conversion_drop import STAGE_PAIRS

    history = STAGE_PAIRS.line(SimpleNamespace(origins={"deals": "deals.csv"}))
    checks = Checks.of(["conversion_drop", "silent_client"],
                       {"silent_client": "needs emails.csv, email_opens.csv (table not provided)"},
                       {"conversion_drop": [history]})
    for lang, reason, pointer in (("ru", "Проверено не полностью: конверсия по этапам (конверсия между этапами: в данных "
                                         "нет истории этапов)", "Подробности для администратора бота — в crm-pulse check-config."),
                                  ("en", "Partly checked: conversion by stage (stage-to-stage conversion: the data has no "
                                         "stage history)", "Details for the bot's admin: crm-pulse check-config.")):
        line = plain(build_digest([samples.lead_sla()], lang=lang, now=NOW, checks=checks,
                                  recipient_role="director").unchecked)
        assert reason in line and line.endswith(pointer), line
        assert "Salesforce" not in line and "[source]" not in line and len(line) < 260, line
        assert "Salesforce" in unchecked_text(checks, lang)  # scan and /preview keep the advice
    # nothing to cut: no pointer
    short = Checks.of(["silent_client"], {"silent_client": "needs emails.csv, email_opens.csv (table not provided)"}, {})
    assert "check-config" not in unchecked_text(short, "ru", brief=True)


def _priced(deal_id: str, manager_id: str, amount: float, currency: str) -> Insight:
    one = stalled(deal_id, f"Сделка {deal_id}", 20, amount, manager_id=manager_id)
    return Insight(detector=one.detector, severity=one.severity, audience=one.audience, subject=one.subject,
                   facts={**one.facts, "currency": currency}, evidence=one.evidence)


def test_money_is_compared_within_one_currency_never_across():
    """The digest ordered by the raw number: 60,000 KZT (about $120) outranked a 50,000 USD deal
    and took the last place in a director's digest. Without exchange rates an amount counts by
    where it stands among the amounts in its own currency."""
    kzt_big, kzt_small, usd = (_priced("D-1", "m1", 2_000_000, "KZT"), _priced("D-2", "m2", 60_000, "KZT"),
                               _priced("D-3", "m3", 50_000, "USD"))
    digest = build_digest([kzt_small, kzt_big, usd], lang="en", now=NOW, max_items=2, recipient_role="director")
    kept = {fp for item in digest.items for fp in item.fingerprints}
    assert usd.fingerprint in kept and kzt_big.fingerprint in kept and kzt_small.fingerprint not in kept
    # within one currency the larger amount still comes first, as before
    one_currency = build_digest([kzt_small, kzt_big], lang="en", now=NOW, max_items=1, recipient_role="director")
    assert one_currency.items[0].fingerprints == [kzt_big.fingerprint]
    # the "still open" reminders follow the same rule
    reminded = build_digest([lead(1)], lang="en", now=NOW, still_open=[(kzt_small, None), (kzt_big, None), (usd, None)])
    lines = plain(reminded.still_open).splitlines()[1:]
    assert lines.index(next(x for x in lines if "D-3" in x)) < lines.index(next(x for x in lines if "D-2" in x)), lines
