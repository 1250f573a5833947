"""The words that landed with issue 9, as their readers get them: a lead judged at the export's
end, open deals with no amount in the forecast, an export without lost deals (in Russian)."""
from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from msg_helpers import NOW

from detectors.conversion_drop import LOST_LEFT_OUT_FIX
from detectors.insight import Audience, Insight
from messages import samples
from messages.digest import Checks, build_digest, unchecked_text
from messages.render import insight_text
from messages.terminal import format_digest

ALMATY = ZoneInfo("Asia/Almaty")
END = "2026-11-28T02:28:00+00:00"  # the export's newest record: 07:28 in Almaty, 09:00 is NOW


def _late(**facts) -> Insight:
    lead = samples.lead_sla()
    return replace(lead, facts={**lead.facts, "data_end": END, **facts})


def _text(insight: Insight, lang: str, **kw) -> str:
    return insight_text(insight, lang, **kw).replace("\xa0", " ")


def test_a_lead_judged_at_the_exports_end_says_its_hour_in_the_companys_time():
    """On the 28th, "the newest record is from 28 November" told nobody why a reply given this
    morning is missing; the hour does, in the company's time (07:28 in Almaty, 02:28 UTC)."""
    ru, en = (_text(_late(), lang, tz=ALMATY) for lang in ("ru", "en"))
    assert "Ожидание посчитано до последней записи в выгрузке (28 ноября, 07:28): что было позже, в ней не видно." in ru
    assert "The wait is counted up to the export's newest record (28 November, 07:28): anything later is not in it." in en
    # one lead's item does not speak of other leads; the English is not left in the Russian
    assert "следующей выгрузке" not in ru and "export" not in ru and "data" not in ru


def test_a_lead_judged_at_now_says_nothing_of_the_exports_end():
    ru = _text(samples.lead_sla(), "ru", tz=ALMATY)
    assert "выгрузк" not in ru and "Последняя запись" not in ru


def test_a_backlog_says_once_that_leads_due_later_wait_for_the_next_export():
    lead = samples.lead_sla()
    backlog = replace(lead, subject={"kind": "unanswered", "backlog": True, "manager_id": "m2"},
                      facts={**lead.facts, "data_end": END, "backlog": True, "leads": 7, "escalated_leads": 0,
                             "listed": [{"lead_id": f"L-{k}", "working_hours_waited": 9 - k} for k in range(5)]})
    ru, en = (_text(backlog, lang, tz=ALMATY) for lang in ("ru", "en"))
    assert ("Ожидание посчитано до последней записи в выгрузке (28 ноября, 07:28): что было позже, в ней не видно, "
            "а заявки, чей срок вышел после этого, проверим по следующей выгрузке.") in ru, ru
    assert ("The wait is counted up to the export's newest record (28 November, 07:28): anything later is not in "
            "it, and leads due after that will be checked with the next export.") in en, en


def test_the_digest_dates_the_exports_end_in_the_recipients_day():
    digest = build_digest([_late()], lang="ru", now=NOW, tz="Asia/Almaty")
    text = format_digest(digest).replace("\xa0", " ").replace("\n   ", " ")
    assert "(28 ноября, 07:28)" in text, text
    assert "назад" not in text.split("выгрузке")[1].split(")")[0]  # a moment, not "2 часа назад"


def _forecast(no_amount: int, expected_no_amount: float, unit: str = "amount", open_deals: int = 167) -> Insight:
    return Insight(
        detector="win_forecast", severity="info", audience=Audience("director"), subject={"kind": "forecast"},
        facts={"unit": unit, "currency": "KZT", "by": "model", "open_deals": open_deals, "no_amount": no_amount,
               "months": [{"month": "2026-11", "expected": 175e6, "low": 93e6, "high": 254e6,
                           "weighted_pipeline": 170e6, "expected_no_amount": expected_no_amount}]},
    )


def test_deals_with_no_amount_are_counted_of_the_open_deals_just_named():
    ru, en = (_text(_forecast(45, 4.6), lang) for lang in ("ru", "en"))
    assert ("Из открытых сейчас сделок (167); новые сделки месяца в прогноз не входят.\n"
            "У 45 из них сумма не указана (пусто или 0): в суммы выше они не входят; до конца месяца из них "
            "ожидается выиграть около 5 сделок.") in ru, ru
    assert ("45 of them have no amount (empty or 0): they are not in the sums above; about 5 of them are "
            "expected to be won by the month's end.") in en, en
    # "около" takes the genitive: one deal is "около 1 сделки", not "около 1 сделка"
    assert "ожидается выиграть около 1 сделки." in _text(_forecast(3, 1.2), "ru")


def test_no_deal_expected_among_those_with_no_amount_is_said_as_none():
    ru, en = (_text(_forecast(2, 0.3), lang) for lang in ("ru", "en"))
    assert "в суммы выше они не входят, и до конца месяца из них, скорее всего, не выиграют ни одной." in ru, ru
    assert "none of them is likely to be won by the month's end." in en and "0 deals" not in en, en


def test_a_forecast_in_deals_names_how_many_have_no_amount_once():
    some = _text(_forecast(117, 0, unit="deals"), "ru")
    assert "У 117 из них сумма не указана (пусто или 0), поэтому прогноз — в сделках, а не в деньгах." in some, some
    assert some.count("167") == 1  # the open deals are counted once, in the line before
    every = (_text(_forecast(167, 0, unit="deals"), lang) for lang in ("ru", "en"))
    assert next(every).count("Ни у одной из них не указана сумма (пусто или 0), поэтому прогноз — в сделках") == 1
    assert "None of them has an amount (empty or 0), so the forecast counts deals, not money." in next(every)


def test_the_russian_reason_for_an_export_without_lost_deals():
    reason = (f"no lost deal among 1,234 won deals in crm.lead.csv: the export leaves lost deals out, and conversion "
              f"read from it would be near 100%; {LOST_LEFT_OUT_FIX}")
    ru = unchecked_text(Checks.of(["conversion_drop"], {"conversion_drop": reason}, {}), "ru").replace("\xa0", " ")
    assert ("в crm.lead.csv нет ни одной проигранной сделки, только выигранные (1 234): в выгрузку не попали "
            "проигранные, и конверсия по ней была бы около 100%; выгрузите и их") in ru, ru
    assert "среди" not in ru and "won" not in ru and "Lost" not in ru, ru


def test_a_lead_written_to_someone_who_left_names_them_without_a_broken_case():
    """"записана на сотрудника Иван Петров" left the name in the nominative after "на сотрудника"."""
    lead = samples.lead_sla()
    gone = replace(lead, audience=Audience("director"), subject={"lead_id": "L-5531", "kind": "unassigned"},
                   facts={**lead.facts, "kind": "unassigned", "manager_id": None, "owner_gone": "Иван Петров"})
    ru, en = (_text(gone, lang, tz=ALMATY) for lang in ("ru", "en"))
    assert ("и записана на сотрудника, которого нет среди работающих менеджеров (Иван Петров): ответить некому. "
            "Норма — 2 рабочих часа.") in ru, ru
    assert "and is assigned to Иван Петров, who is not among the working managers: nobody will answer it." in en, en
