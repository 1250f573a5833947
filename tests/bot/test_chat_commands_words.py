"""What a person reads after /scan, /preview, /stats, /insights, /digest and /help: one language,
words instead of codes, and /insights visibly different from /digest."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.channels.base import Inbound
from tests.bot.conftest import E2E_T0 as T0

LATIN_CODE = re.compile(r"\b(first|unchanged|worse|repeat_interval|snoozed|suppressed|stalled_deal|silent_client|"
                        r"conversion_drop|manager_load|lead_sla|loss_reasons)\b")


def tg(user, text=None, action=None, chat=None):
    return Inbound("telegram", str(user), str(chat if chat is not None else user), text=text, action=action)


def text_of(msgs):
    return "\n".join(str(m.payload.get("text", "")) for m in msgs)


@pytest.fixture
def p(pulse):
    return pulse("\n[telegram]\nenabled = true\n[delivery]\ncritical_immediately = false\n")


async def test_scan_answers_in_the_askers_language_only(p):
    ru = text_of(await p.handlers.handle(tg(900, "/scan")))  # Dina: the config's Russian
    assert ru == "Проверка готова. Найдено пунктов: 7."
    p.store.set_language("dina", "en", T0)
    en = text_of(await p.handlers.handle(tg(900, "/scan")))
    assert en == "Scan done: 7\u00a0items found."
    assert not re.search("[А-Яа-я]", en)


async def test_preview_in_russian_has_no_english_codes(p):
    await p.jobs.run_scan()
    anna_item = p.scenario[0]
    p.store.record_sent("anna", anna_item, T0 - timedelta(hours=1), "first")
    text = text_of(await p.handlers.handle(tg(900, "/preview")))
    assert "Анна (anna): в сводке 0 из 1 (без изменений: 1)" in text
    assert "Борис (boris): в сводке 2 из 2 (новые: 2)" in text
    assert not LATIN_CODE.search(text), text
    p.store.set_language("dina", "en", T0)
    text = text_of(await p.handlers.handle(tg(900, "/preview")))
    assert "Анна (anna): 0 of 1 in the digest (unchanged: 1)" in text
    assert "Борис (boris): 2 of 2 in the digest (new: 2)" in text


async def test_stats_names_checks_as_people_know_them(p):
    await p.jobs.run_scan()
    p.store.record_sent("anna", p.scenario[0], T0, "first")
    p.store.record_feedback("anna", p.scenario[0].fingerprint, "silent_client", True, T0)
    text = text_of(await p.handlers.handle(tg(900, "/stats")))
    assert "Молчащие клиенты: отправлено 1, полезно 1" in text
    assert not LATIN_CODE.search(text), text


async def test_insights_is_the_full_list_with_marks_and_digest_is_the_days_digest(p):
    await p.jobs.run_scan()
    boris_deal, escalated = p.scenario[1].fingerprint, p.scenario[2].fingerprint
    await p.handlers.handle(tg(102, action=f"snooze:{boris_deal}:7d"))  # Boris reads English
    await p.handlers.handle(tg(102, action=f"done:{escalated}"))

    digest = text_of(await p.handlers.handle(tg(102, "/digest")))
    assert "Сделка Бориса" not in digest  # both are settled: the day's digest leaves them out
    assert "Nothing needs your attention right now." in digest

    full = text_of(await p.handlers.handle(tg(102, "/insights")))
    assert full.startswith("<b>Борис, everything as of 1 October: 1\u00a0item</b>")
    assert "snoozed (1) and done (1) last, marked" in full
    # his two stalled deals are one item; each deal line says what he did about it
    assert re.search(r"“Горящая сделка Бориса”.* — ✅ done\n", full)
    assert re.search(r"“Сделка Бориса”.* — ⏸ snoozed until 8 October\n", full)

    # a single item gets a line of its own, with the hour in the person's timezone (Almaty)
    anna = p.scenario[0].fingerprint
    await p.handlers.handle(tg(101, action=f"snooze:{anna}:1d"))
    full = text_of(await p.handlers.handle(tg(101, "/insights")))
    assert full.startswith("<b>Анна, всё, что видно на 1 октября: 1\u00a0пункт</b>")
    assert "⏸ Отложено до 2 октября, 09:00: в сводку до этого не попадёт." in full
    assert "Аннин Клиент" in full
    assert text_of(await p.handlers.handle(tg(101, "/digest"))) == "Сейчас ничего не требует вашего внимания."

    # unsnoozed, the item is open again: no mark, and /digest shows it under the digest's heading
    await p.handlers.handle(tg(101, action=f"unsnooze:{anna}"))
    full = text_of(await p.handlers.handle(tg(101, "/insights")))
    assert "⏸" not in full and "✅ Отмечено" not in full and "Аннин Клиент" in full
    digest = text_of(await p.handlers.handle(tg(101, "/digest")))
    assert digest.startswith("<b>Анна, сводка на 1 октября: 1\u00a0пункт</b>") and "Аннин Клиент" in digest


async def test_help_says_how_insights_differs_from_digest(p):
    text = text_of(await p.handlers.handle(tg(101, "/help")))
    assert "/digest — сводка на сегодня: что требует внимания, без отложенного и сделанного" in text
    assert "/insights — всё, что нашла последняя проверка" in text and "с пометкой" in text


def _company_data():
    """A small CRM: two deals of one client, an email, a call, a lead."""
    import pandas as pd

    from crm.data import CrmData

    ts = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    return CrmData(
        managers=pd.DataFrame({"manager_id": ["m1"], "name": ["Анна"]}),
        deals=pd.DataFrame({"deal_id": ["d03408", "d03409"], "client_id": ["c7", "c7"], "manager_id": ["m1", "m1"],
                            "title": ["Поставка труб", None], "stage": ["Переговоры"] * 2, "status": ["open"] * 2,
                            "created_at": [ts("2026-08-01"), ts("2026-08-02")]}),
        stage_history=pd.DataFrame({"deal_id": ["d03408"], "stage": ["Переговоры"], "entered_at": [ts("2026-08-01")]}),
        stages=["Переговоры"],
        clients=pd.DataFrame({"client_id": ["c7"], "name": ["ТОО Ромашка"]}),
        emails=pd.DataFrame({"email_id": ["e1"], "client_id": ["c7"], "direction": ["out"],
                             "sent_at": [ts("2026-09-20T08:00")], "subject": ["Коммерческое предложение"]}),
        activities=pd.DataFrame({"activity_id": ["a15032"], "deal_id": ["d03408"], "client_id": ["c7"],
                                 "type": ["call"], "due_at": [pd.NaT], "done_at": [ts("2026-09-28T09:00")]}),
        leads=pd.DataFrame({"lead_id": ["L-9"], "created_at": [ts("2026-09-30T05:00")], "source": ["сайт"]}),
    )


async def test_details_name_deals_clients_emails_and_calls_instead_of_ids(chat_config, sqlite_store):
    from bot.handlers import Handlers
    from detectors.insight import Audience, Insight

    item = Insight("stalled_deal", "warning", Audience("manager", "m1"), {"deal_id": "d03408"},
                   {"deal_title": "Поставка труб", "client_name": "ТОО Ромашка", "days_idle": 30},
                   {"deal_ids": ["d03408", "d03409", "d-gone"], "activity_ids": ["a15032"], "email_ids": ["e1"],
                    "lead_ids": ["L-9"], "client_ids": ["c7"]})
    sqlite_store.save_scan([item], T0, T0)
    data = _company_data()
    bot = Handlers(chat_config, sqlite_store, clock=lambda: T0, data_provider=lambda: data)
    text = text_of(await bot.handle(tg(101, action=f"details:{item.fingerprint}")))
    assert "Сделки: «Поставка труб» — ТОО Ромашка; сделка клиента ТОО Ромашка; d-gone" in text
    assert "Действия: звонок 28 сентября — «Поставка труб»" in text
    assert "Письма: «Коммерческое предложение», 20 сентября, ТОО Ромашка" in text
    assert "Заявки: заявка от 30 сентября (сайт)" in text
    assert "Клиенты: ТОО Ромашка" in text
    assert "a15032" not in text and "e1" not in text.replace("Подробнее", "")

    sqlite_store.set_language("anna", "en", T0)
    text = text_of(await bot.handle(tg(101, action=f"details:{item.fingerprint}")))
    assert "Deals: “Поставка труб” — ТОО Ромашка; a deal of ТОО Ромашка; d-gone" in text
    assert "Activities: call 28 September — “Поставка труб”" in text

    # before the first scan in this process there is no data to name them: the ids, as a last resort
    bare = Handlers(chat_config, sqlite_store, clock=lambda: T0)
    text = text_of(await bare.handle(tg(101, action=f"details:{item.fingerprint}")))
    assert "Deals: d03408, d03409, d-gone" in text
