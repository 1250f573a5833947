"""The words that landed with issue 9, as their readers get them: a lead judged at the export's
end, open deals with no amount in the forecast, an export without lost deals (in Russian)."""
from __future__ import annotations

import re
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


# --- every reason line the scan can give, read in Russian -------------------------------------

def _reason_lines() -> set[str]:
    """Every skip and partial line the registry, the detectors' skip_reason and the pipeline give,
    made from the demo company with one table or column taken away at a time (assumptions: the
    demo has every table and column; a table is absent as None, a column as all-empty)."""
    from datetime import datetime, timezone

    import pandas as pd

    from bot.pipeline import stale_line
    from crm.demo import generate_demo
    from crm.freshness import Freshness
    from detectors import conversion_drop, loss_reasons, stalled_deal
    from detectors.registry import REGISTRY, unchecked_parts, why_skipped
    from detectors.working_hours import WorkCalendar
    from predict.leads import LeadRule
    from predict.model import HistoryRule

    demo = generate_demo().data
    data = replace(demo, origins={t: f"{t}.csv" for t in ("managers", "deals", "stage_history", "clients", "emails",
                                                           "email_opens", "activities", "leads")})

    def without(d, table: str, column: str | None = None):
        if column is None:
            return replace(d, **{table: None})
        frame = getattr(d, table).copy()
        frame[column] = None
        return replace(d, **{table: frame})

    lines = set()
    for det in REGISTRY.values():
        spec = det.spec()
        lines.add(why_skipped(data, det, spec.model_copy(update={"enabled": False})))
        for t in det.requires:
            lines.add(why_skipped(without(data, t), det, spec))
        if len(det.requires) > 1:
            d = data
            for t in det.requires:
                d = without(d, t)
            lines.add(why_skipped(d, det, spec))
        for need in det.needs:
            tables = {c.split(".", 1)[0] for c in need.columns}
            d_cols, d_tables = data, data
            for c in need.columns:
                t, col = c.split(".", 1)
                d_cols = without(d_cols, t, col)
            for t in tables - {"deals", "managers", "stage_history"}:
                d_tables = without(d_tables, t)
            for d in (d_cols, d_tables):
                lines.add(need.line(d))
        lines.update(unchecked_parts(replace(data, stage_history_derived=True), det))
    # the detectors' own skip_reason lines
    lines.add(conversion_drop.skip_reason(without(replace(data, stage_history_derived=True), "deals", "closed_at")))
    lines.add(conversion_drop.skip_reason(replace(data, deals=data.deals[data.deals["status"] != "lost"])))
    lines.add(conversion_drop.skip_reason(replace(data, stages=[])))
    bare = replace(data, stage_history_derived=True, activities=None, emails=None, email_opens=None)
    lines.add(stalled_deal.skip_reason(bare))
    lines.add(stalled_deal.skip_reason(replace(bare, unread_columns={"deals": ("Дата изменения",)},
                                               origins={**data.origins, "deals": "amocrm_export_leads.csv"},
                                               read_columns={"deals": {"deal_id": "ID", "manager_id": "Ответственный"}})))
    lost = data.deals["status"] == "lost"
    lines.add(loss_reasons.skip_reason(replace(data, deals=data.deals.assign(
        loss_reason=data.deals["loss_reason"].where(~lost, None)))))
    now = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)
    old = pd.Timestamp("2026-10-01T09:00:00Z")
    lines.add(stale_line(Freshness(old, "deals", "deals.csv", now - old.to_pydatetime()), 3, "Asia/Almaty", now,
                         WorkCalendar()))
    lines.add(stale_line(Freshness(None, None, None, None), 3, "Asia/Almaty", now, WorkCalendar()))
    lines.add(HistoryRule().shortfall(120, 30))
    lines.add(LeadRule().shortfall(10, 70))
    lines.discard(None)
    return lines


# names a Russian line keeps as they are: file, column and TOML names, CRM products and their
# own labels, quoted values
_KEPT = re.compile(r"(?:колонк\w* |задайте )\w+|\b\w+ = |«[^»]*»|\"[^\"]*\"|'[^']*'|\[[^\]]*\]|\S+\.csv|\b\w*_\w*\b|crm-pulse (?:model report|check-config)|"
                   r"\b(?:CRM|API|README|SLA|Salesforce|Opportunity History|To Stage|Edit Date|HubSpot|amoCRM|"
                   r"Kommo|Odoo|kind)\b")


def test_every_reason_line_reads_in_russian_without_english_left():
    """Each line a scan can give for a check it skipped or did in part, through the Russian path
    of the scan's line and the digest's brief footer: no English word is left in it (a regex of _RU_REASONS
    that stopped matching its English source after an edit leaves the English in the Russian)."""
    from messages.digest import Checks, _reason, unchecked_text

    lines = _reason_lines()
    assert len(lines) >= 25, lines
    left = {}
    for line in sorted(lines):
        brief = unchecked_text(Checks.of(["stalled_deal", "manager_load"], {"stalled_deal": line},
                                         {"manager_load": [line]}), "ru", brief=True)
        ru = _reason(line, "ru") + " | " + brief
        words = re.findall(r"[A-Za-z]{2,}", _KEPT.sub(" ", ru))
        if words:
            left[line] = (ru, words)
    assert not left, "\n\n".join(f"{en}\n-> {ru}\n   English left: {w}" for en, (ru, w) in left.items())


# --- the words of today's detectors' facts, as their readers get them ---------------------------

def _one_line(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


def _created_drop(missed: int, still_open: int) -> Insight:
    """A manager's new deals' 30-day win rate fell (the horizon a setting, so "within 30 days" is
    said); `missed` of the recent deals were not won in time, `still_open` of them are open."""
    drop = samples.conversion_drop_kinds()["conversion_drop_created"]
    return replace(drop, facts={**drop.facts, "kind": "segment_drop", "rest_baseline_rate": 0.22,
                                "rest_recent_rate": 0.24, "recent_missed": missed, "recent_missed_open": still_open,
                                "segment": {"dimension": "manager", "segment": "Ильяс Турсынов", "segment_id": "m7"}})


def test_a_stopped_managers_deals_are_said_open_not_lost_nor_never_won():
    """His 42 recent deals were not won within 30 days and all are open: "так и не выиграны (42 из
    42 ещё открыты)" said "never" of deals that may yet be won, and "42 of 42" for "all"."""
    ru, en = (_one_line(_text(_created_drop(42, 42), lang)) for lang in ("ru", "en"))
    assert "которые не были выиграны за 30 дней (все 42 ещё открыты): что в них пошло иначе?" in ru, ru
    assert "that were not won within 30 days (all 42 are still open): what went differently?" in en, en
    ru, en = (_one_line(_text(_created_drop(42, 30), lang)) for lang in ("ru", "en"))
    assert "которые не были выиграны за 30 дней (ещё открыто: 30 из 42)" in ru, ru
    assert "that were not won within 30 days (still open: 30 of 42)" in en, en
    # most of them lost: lost, as before
    ru, en = (_one_line(_text(_created_drop(42, 10), lang)) for lang in ("ru", "en"))
    assert "которые были проиграны: что" in ru and "that were lost: what" in en, (ru, en)


def _abandoned(by_stage: dict[str, int]) -> Insight:
    a = samples.stalled_abandoned()
    return replace(a, facts={**a.facts, "deals": sum(by_stage.values()), "by_stage": by_stage})


def test_abandoned_deals_by_stage_name_a_fifth_stage_and_count_more_as_other_stages():
    """A pipeline of five stages: "на других этапах — 3" hid one stage's name behind a plural; it
    is named. Six or more: four are named and the rest counted with how many stages they are."""
    five = {"Первичный контакт": 54, "Согласование договора": 9, "Счёт выставлен": 8, "Выявление потребности": 3,
            "Коммерческое предложение": 3}
    ru, en = (_one_line(_text(_abandoned(five), lang)) for lang in ("ru", "en"))
    assert "«Выявление потребности» — 3, «Коммерческое предложение» — 3." in ru, ru
    assert "“Выявление потребности”: 3, “Коммерческое предложение”: 3." in en, en
    seven = {**five, "Оплата": 2, "Отгрузка": 1}
    ru, en = (_one_line(_text(_abandoned(seven), lang)) for lang in ("ru", "en"))
    assert "«Выявление потребности» — 3, ещё на 3 этапах — 6." in ru, ru
    assert "“Выявление потребности”: 3, 3 other stages: 6." in en, en


def test_a_deal_that_never_moved_was_last_touched_when_created_and_its_limit_is_the_default():
    one = samples.stalled_deal()
    made = replace(one, facts={**one.facts, "last_touch_kind": "created", "limit_source": "default",
                               "no_history": True, "learned_days": None, "limit_moves": 0})
    ru, en = (_one_line(_text(made, lang)) for lang in ("ru", "en"))
    assert "Последнее действие — создание сделки," in ru and "Last activity: deal created," in en, (ru, en)
    assert ("В данных нет истории этапов, поэтому обычный срок этого этапа неизвестен и действует срок по "
            "умолчанию — 9 рабочих дней; эта сделка без движения уже 23 рабочих дня.") in ru, ru
    assert ("The data has no stage history, so this stage's usual pace is unknown and the default limit "
            "applies: 9 working days; this one has waited 23 working days.") in en, en


def test_a_directors_footer_on_a_web_export_says_what_is_missing_in_two_sentences():
    """The reviewer's amoCRM web export (no leads, no emails, no stage history) as a director's
    footer: one parenthesis per check, no TOML key, the pointer to check-config for the admin."""
    from detectors.conversion_drop import STAGE_PAIRS
    from detectors.manager_load import LEADS_NEED

    from types import SimpleNamespace

    deals_only = SimpleNamespace(origins={"deals": "amocrm_export_leads.csv"}, has=lambda t: t != "leads")
    checks = Checks.of(["lead_sla", "silent_client", "conversion_drop", "manager_load"],
                       {"lead_sla": "needs leads.csv (table not provided)",
                        "silent_client": "needs emails.csv, email_opens.csv (table not provided)"},
                       {"conversion_drop": [STAGE_PAIRS.line(deals_only)], "manager_load": [LEADS_NEED.line(deals_only)]})
    ru, en = (unchecked_text(checks, lang, brief=True) for lang in ("ru", "en"))
    assert ru == ("не проверено: SLA по заявкам (нет таблицы leads.csv); молчащие клиенты (нет таблиц emails.csv, "
                  "email_opens.csv). Проверено не полностью: конверсия по этапам (конверсия между этапами: в данных "
                  "нет истории этапов); загрузка менеджеров (новые заявки по менеджерам: нет таблицы leads.csv). "
                  "Подробности для администратора бота — в crm-pulse check-config"), ru
    assert en == ("not checked: lead SLA (no leads.csv); silent clients (no emails.csv, email_opens.csv). Partly "
                  "checked: conversion by stage (stage-to-stage conversion: the data has no stage history); manager "
                  "load (new leads per manager: no leads.csv). Details for the bot's admin: crm-pulse check-config"), en
