"""A critical escalated deal goes out at once to its manager and to the director. Each reads words
meant for them: the manager is told what to do with their client, the director whose deal it is
and what to ask of that manager (as the director's digest already does)."""
from datetime import datetime, timezone

from bot.config import parse_config
from bot.delivery import deliver_critical
from bot.outbox import Outbox
from messages import samples
from tests.bot.conftest import CONFIG_TOML

NOW = datetime(2026, 10, 1, 4, 0, tzinfo=timezone.utc)  # 09:00 in Almaty, outside Dina's quiet hours


def _escalated(manager_name: str):
    deal = samples.stalled_deal(manager_id="m2")
    deal.facts.update(escalated=True, manager_name=manager_name)
    deal.severity = "critical"
    return deal


def _telegram_texts(box, recipient):
    return [r.payload["text"] for r in box.rows(recipient=recipient) if r.channel == "telegram"]


def test_the_director_is_told_whose_deal_it_is_and_the_manager_what_to_do(sqlite_store, chat_config):
    box = Outbox(sqlite_store)
    deal = _escalated("Тимур Бекмуханов")
    report = deliver_critical([deal], chat_config, sqlite_store, box, NOW)
    assert report.sent["dina"] == [deal.fingerprint] and report.sent["boris"] == [deal.fingerprint]

    (director,) = _telegram_texts(box, "dina")  # Dina reads Russian
    assert "менеджера Тимура Бекмуханова стоит 23\u00a0рабочих дня" in director  # whose deal, first line
    assert "Уточните у Тимура Бекмуханова следующий шаг" in director
    assert "пришла и вам, руководителю" in director
    assert "Договоритесь с клиентом" not in director and "сводку руководителя" not in director

    (manager,) = _telegram_texts(box, "boris")  # Boris reads English and is spoken to
    assert "Agree the next step with the client today" in manager
    assert "Тимур" not in manager and "escalated to you" not in manager


def test_in_english_too_and_with_a_name_that_cannot_be_declined(sqlite_store, chat_config):
    toml = CONFIG_TOML.replace('role = "director"', 'role = "director"\nlanguage = "en"') + "\n[telegram]\nenabled = true\n"
    config = parse_config(toml, source_name="test.toml")
    box = Outbox(sqlite_store)
    deliver_critical([_escalated("Timur Bekmukhanov")], config, sqlite_store, box, NOW)
    (director,) = _telegram_texts(box, "dina")
    assert "Timur Bekmukhanov's deal “Поставка арматуры А500С, 40 т” has been idle" in director
    assert "Ask Timur Bekmukhanov what the next step is" in director
    assert "escalated to you" in director and "Agree the next step" not in director

    company = samples.stalled_deal(deal_id="D-2", manager_id="m2")  # not a person's name: said without a case
    company.facts.update(escalated=True, manager_name="ООО Ромашка")
    company.severity = "critical"
    deliver_critical([company], chat_config, sqlite_store, box, NOW)
    (text,) = [t for t in _telegram_texts(box, "dina") if "Ромашка" in t]
    assert "Менеджер: ООО Ромашка" in text and "Уточните у менеджера (ООО Ромашка)" in text



async def test_the_details_button_speaks_to_whoever_presses_it(sqlite_store, chat_config):
    """The director's Details on the escalated deal reads like the director's alert, the
    manager's like the manager's: one insight, two readers."""
    from bot.channels.base import Inbound
    from bot.handlers import Handlers

    deal = _escalated("Тимур Бекмуханов")
    sqlite_store.save_scan([deal], NOW, NOW)
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW)
    (director,) = await bot.handle(Inbound("telegram", "900", "900", action=f"details:{deal.fingerprint}"))
    assert "Уточните у Тимура Бекмуханова" in director.payload["text"]
    assert "Договоритесь с клиентом" not in director.payload["text"]
    (manager,) = await bot.handle(Inbound("telegram", "102", "102", action=f"details:{deal.fingerprint}"))
    assert "Agree the next step with the client" in manager.payload["text"]
