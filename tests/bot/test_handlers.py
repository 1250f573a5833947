"""Handlers: commands and buttons from a chat, channel-neutral, refusing strangers."""
from datetime import datetime, timedelta, timezone

import pytest

from bot.channels.base import Inbound, OutgoingMessage
from bot.handlers import Handlers, parse_command

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def bot(chat_config, sqlite_store, scenario):
    sqlite_store.save_scan(scenario, NOW, NOW)
    return Handlers(chat_config, sqlite_store, clock=lambda: NOW)


def tg(user, text=None, action=None, lang=None):
    return Inbound("telegram", str(user), str(user), text=text, action=action, language_code=lang)


def text_of(msgs):
    return "\n".join(str(m.payload.get("text", "")) + str(m.payload.get("blocks", "")) for m in msgs)


@pytest.mark.parametrize("raw,expected", [
    ("/snoozed", ("snoozed", "")), ("/lang@PulseBot en", ("lang", "en")), ("/pulse snoozed", ("snoozed", "")),
    ("snoozed", ("snoozed", "")), ("/pulse", ("help", "")), ("/frobnicate", ("?", "")), ("hello there", (None, "hello there")),
    ("  /INSIGHTS  ", ("insights", "")),
])
def test_parse_command(raw, expected):
    assert parse_command(raw) == expected


async def test_unknown_user_refused_with_their_id_only(bot):
    out = await bot.handle(tg(555, "/insights", lang="en"))
    assert len(out) == 1 and out[0].address == "555"
    t = out[0].payload["text"]
    assert "555" in t and "Sorry" in t
    assert "Сделка" not in t and "Аннин" not in t
    out = await bot.handle(tg(556, action="details:whatever"))
    assert "556" in out[0].payload["text"] and "Извините" in out[0].payload["text"]


async def test_insights_show_only_my_own(bot):
    out = await bot.handle(tg(101, "/insights"))
    assert "Аннин Клиент" in text_of(out) and "Бориса" not in text_of(out)
    out = await bot.handle(Inbound("slack", "U102", "D1", text="/pulse insights"))
    assert "Сделка Бориса" in text_of(out) and "Аннин" not in text_of(out)
    assert all(m.channel == "slack" and "blocks" in m.payload for m in out)


async def test_buttons_cannot_touch_someone_elses_insight(bot, scenario):
    anna_fp = scenario[0].fingerprint
    out = await bot.handle(tg(102, action=f"details:{anna_fp}"))
    assert "Аннин" not in text_of(out)
    out = await bot.handle(tg(102, action=f"snooze:{anna_fp}:7d"))
    assert bot.store.snoozed("boris", NOW) == [] and bot.store.snoozed("anna", NOW) == []


async def test_snooze_then_snoozed_list_then_unsnooze(bot, scenario):
    fp = scenario[1].fingerprint
    out = await bot.handle(tg(102, action=f"snooze:{fp}:7d"))
    assert "08.10" in text_of(out)  # until 8 October, in Almaty time
    assert [e.fingerprint for e in bot.store.snoozed("boris", NOW)] == [fp]
    out = await bot.handle(tg(102, "/snoozed"))
    assert out[0].payload["buttons"] == [[{"label": "1 · Unsnooze", "action": f"unsnooze:{fp}"}]]  # boris reads English
    out = await bot.handle(tg(102, action=f"unsnooze:{fp}"))
    assert bot.store.snoozed("boris", NOW) == []


async def test_digest_again_hides_snoozed_and_done(bot, scenario):
    await bot.handle(tg(102, action=f"done:{scenario[1].fingerprint}"))
    out = await bot.handle(tg(102, "/digest"))
    assert "Горящая сделка Бориса" in text_of(out) and "Сделка Бориса" not in text_of(out).replace("Горящая сделка Бориса", "")


async def test_useful_is_stored_per_detector(bot, scenario):
    await bot.handle(tg(101, action=f"useful:{scenario[0].fingerprint}"))
    await bot.handle(tg(102, action=f"notuseful:{scenario[1].fingerprint}"))
    assert bot.store.feedback_counts() == {"silent_client": (1, 0), "stalled_deal": (0, 1)}


async def test_details_view(bot, scenario):
    out = await bot.handle(tg(101, action=f"details:{scenario[0].fingerprint}"))
    assert "Аннин Клиент" in text_of(out) and out[0].payload["buttons"]


async def test_lang_switch_is_remembered(bot):
    out = await bot.handle(tg(101, "/lang en"))
    assert out[0].payload["text"] == "Language: English."
    out = await bot.handle(tg(101, "/help"))
    assert "Commands:" in out[0].payload["text"]
    out = await bot.handle(tg(101, "/lang de"))
    assert "/lang ru" in out[0].payload["text"]


async def test_admin_commands_only_for_admins(bot):
    out = await bot.handle(tg(101, "/stats"))
    assert "только для администраторов" in out[0].payload["text"]
    out = await bot.handle(tg(900, "/preview"))
    assert "Анна (anna): в сводке 1 из 1 (новые: 1)" in out[0].payload["text"]
    out = await bot.handle(tg(900, "/stats"))
    assert "Полезность" in out[0].payload["text"]
    out = await bot.handle(tg(900, "/scan"))
    assert "недоступна" in out[0].payload["text"]
    calls = []

    async def scan_now(lang):
        calls.append(lang)
        return "Scan done: 7 insights"
    bot.scan_now = scan_now
    out = await bot.handle(Inbound("slack", "UADMIN", "D9", text="scan"))
    assert calls == ["ru"] and "Scan done" in text_of(out)


async def test_unknown_command_and_free_text_get_short_help(bot):
    for text in ("/frobnicate", "привет"):
        out = await bot.handle(tg(101, text))
        assert "/help" in out[0].payload["text"]
    out = await bot.handle(Inbound("slack", "U102", "D1", text="what?"))
    assert "/pulse help" in text_of(out)


async def test_start_greets_and_lists_admin_commands_for_admins(bot):
    out = await bot.handle(tg(900, "/start"))
    assert "Дина" in out[0].payload["text"] and "/preview" in out[0].payload["text"]
    out = await bot.handle(tg(101, "/start"))
    assert "/preview" not in out[0].payload["text"]


class StandInFlow:
    """Stands in for bot.maturity.flow.MaturityFlow: records what it was handed."""

    def __init__(self):
        self.seen = []
        self.active = set()

    def is_active(self, person_id):
        return person_id in self.active

    async def handle(self, inbound, person):
        self.seen.append((inbound.text or inbound.action, person.id))
        if inbound.text == "/maturity":
            self.active.add(person.id)
        return [OutgoingMessage(inbound.channel, inbound.chat_id, {"text": "Q1", "buttons": []})]


async def test_maturity_events_go_to_the_flow(chat_config, sqlite_store):
    flow = StandInFlow()
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW, maturity=flow)
    assert text_of(await bot.handle(tg(900, "/help"))).startswith("Команды")  # not maturity
    assert flow.seen == []
    await bot.handle(tg(900, "/maturity"))
    await bot.handle(tg(900, action="mq:1:2"))
    await bot.handle(tg(900, "3"))  # free text while a check is open
    await bot.handle(tg(101, "3"))  # free text without a check: short help, not the flow
    await bot.handle(tg(900, "/cancel"))
    assert flow.seen == [("/maturity", "dina"), ("mq:1:2", "dina"), ("3", "dina"), ("/cancel", "dina")]


async def test_a_broken_handler_answers_not_crashes(chat_config, sqlite_store):
    class Broken(StandInFlow):
        async def handle(self, inbound, person):
            raise RuntimeError("boom")
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW, maturity=Broken())
    out = await bot.handle(tg(900, "/maturity"))
    assert "/help" in out[0].payload["text"]


async def test_real_maturity_flow_starts(chat_config, sqlite_store):
    pytest.importorskip("bot.maturity.flow")
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW)
    out = await bot.handle(tg(900, "/maturity"))
    assert out and out[0].address == "900" and out[0].payload.get("buttons")


async def test_asked_in_a_group_the_answer_goes_to_the_persons_own_chat(bot):
    out = await bot.handle(Inbound("telegram", "101", "-100500", text="/insights"))
    assert out and all(m.address == "101" for m in out)
    assert "Аннин Клиент" in text_of(out)


async def test_asked_in_a_slack_channel_the_answer_goes_to_the_persons_dm(bot):
    out = await bot.handle(Inbound("slack", "U102", "C777", text="/pulse insights"))
    assert out and all(m.address == "U102" for m in out)


async def test_a_button_on_an_item_that_left_the_scan_acts_only_for_whom_it_was_sent(bot, scenario):
    fp = scenario[0].fingerprint
    bot.store.record_sent("anna", scenario[0], NOW, "first")
    later = NOW + timedelta(hours=1)
    bot.store.save_scan(scenario[1:], later, later)  # Anna's client is no longer in the scan
    out = await bot.handle(tg(101, action=f"done:{fp}"))
    assert out[0].payload["text"].startswith("Отмечено как сделанное")
    assert bot.store.log_entry("anna", fp).suppressed
    out = await bot.handle(tg(102, action=f"done:{fp}"))  # Boris was never sent it
    assert out[0].payload["text"] == "This item is no longer current."
    assert bot.store.log_entry("boris", fp) is None


def test_a_long_slack_button_list_stays_within_block_kit_limits():
    """/snoozed with 60 items must still be one valid Slack message (at most 50 blocks,
    25 elements per actions block) with every unsnooze button present."""
    from bot.channels.base import Inbound
    from bot.handlers import Handlers

    rows = [[{"label": f"Вернуть {n}", "action": f"unsnooze:{n:016x}"}] for n in range(60)]
    msg = Handlers.reply(Inbound("slack", "U1", "D1", text="/pulse snoozed"), "Отложено: 60", rows)
    blocks = msg.payload["blocks"]
    assert len(blocks) <= 50
    actions = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert all(len(b["elements"]) <= 25 for b in blocks if b["type"] == "actions")
    assert [e["value"] for e in actions] == [r[0]["action"] for r in rows]
    assert len({e["action_id"] for e in actions}) == 60


async def test_preview_says_what_the_latest_scan_could_not_check(chat_config, sqlite_store, scenario):
    from messages.digest import Checks

    sqlite_store.save_scan(scenario, NOW, NOW)
    checks = Checks.of(["stalled_deal", "lead_sla", "silent_client"], {"lead_sla": "needs leads.csv (table not provided)"},
                       {"stalled_deal": ["idle time: not checked, needs column done_at in activities (absent or empty in activities.csv)"]})
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW, checks_provider=lambda: checks)
    text = (await bot.handle(tg(900, "/preview")))[0].payload["text"]
    assert "Анна (anna): в сводке 1 из 1 (новые: 1)" in text
    assert "Не проверено: SLA по заявкам (нет таблицы leads.csv)" in text
    assert "проверено не полностью: зависшие сделки (idle time: не проверено, нужна колонка done_at в activities.csv" in text
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW, checks_provider=lambda: Checks.of(["stalled_deal"], {}, {}))
    assert "Все включённые проверки (1) отработали полностью." in (await bot.handle(tg(900, "/preview")))[0].payload["text"]
    bot = Handlers(chat_config, sqlite_store, clock=lambda: NOW)  # no scan in this process yet
    assert "после первой проверки CRM" in (await bot.handle(tg(900, "/preview")))[0].payload["text"]
