"""The chat flow driven with Inbound events, as bot.handlers would, on a real SQLite file."""
from __future__ import annotations

from datetime import timedelta

import pytest
from maturity_helpers import Person, make_data, make_leads, tg

from bot.maturity.flow import MaturityFlow
from bot.maturity.store import MaturityStore


def make_flow(db_url, clock, data=None, **kw) -> MaturityFlow:
    return MaturityFlow(db_url, lambda: data, clock, **kw)


def one(replies):
    assert replies is not None and len(replies) == 1
    return replies[0]


def actions(msg) -> list[str]:
    return [b["action"] for row in msg.payload["buttons"] for b in row]


async def answer_all(flow, person, picks, *, msg_id="55"):
    last = None
    for q, a in enumerate(picks, 1):
        last = one(await flow.handle(tg(person.id, action=f"mq:{q}:{a}", message_id=msg_id), person))
    return last


async def test_five_answers_give_the_result_and_every_question_edits_the_same_message(db_url, clock):
    data = make_data(leads=make_leads(40, minutes=1.0, managers=["m1", "m2", "m3"]))
    flow = make_flow(db_url, clock, data)
    boss = Person("100", "director", "en", "Aigul")

    first = one(await flow.handle(tg("100", text="/maturity"), boss))
    assert first.edit_message_id is None  # the first question is a new message
    assert "Question 1 of 5" in first.payload["text"]
    assert "How many systems" in first.payload["text"]
    assert actions(first) == ["mq:1:1", "mq:1:2", "mq:1:3", "mq:cancel"]
    assert first.address == "chat100" and first.channel == "telegram"

    second = one(await flow.handle(tg("100", action="mq:1:1", message_id="55"), boss))
    assert second.edit_message_id == "55"
    assert "Question 2 of 5" in second.payload["text"]
    assert actions(second) == ["mq:2:1", "mq:2:2", "mq:back", "mq:cancel"]

    for q, a in [(2, 1), (3, 1), (4, 2)]:
        msg = one(await flow.handle(tg("100", action=f"mq:{q}:{a}", message_id="55"), boss))
        assert msg.edit_message_id == "55" and f"Question {q + 1} of 5" in msg.payload["text"]
    result = one(await flow.handle(tg("100", action="mq:5:1", message_id="55"), boss))
    text = result.payload["text"]
    assert result.edit_message_id == "55"
    assert "Level 2 with elements of level 3" in text
    assert "Next steps" in text and "lead scoring" in text
    assert "not a grade" in text  # the caveat
    assert "looks like automatic distribution by rules" in text  # what the data says, next to the answer
    assert result.payload["buttons"] == []

    history = MaturityStore(db_url).history("100")
    assert [(h.label, h.answers["recommendations"], h.person_name) for h in history] == [("2+", "no", "Aigul")]
    assert [h["kind"] for h in history[0].hints][:2] == ["crm_coverage", "lead_assignment"]
    assert not flow.is_active("100")


async def test_free_text_mid_way_gets_a_reminder_and_keeps_the_question(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("7", "manager", "ru")
    await flow.handle(tg("7", text="/maturity"), p)
    await flow.handle(tg("7", action="mq:1:3", message_id="9"), p)

    reply = one(await flow.handle(tg("7", text="а можно попроще?"), p))
    assert "выберите ответ кнопкой" in reply.payload["text"]
    assert "1 — Автоматически, по правилам" in reply.payload["text"]
    assert "Вопрос 2 из 5" in reply.payload["text"]
    assert actions(reply)[:2] == ["mq:2:1", "mq:2:2"]
    assert flow.store.get_session("7").answers == {"systems": "three_plus"}

    # a typed option number is taken as the answer
    nxt = one(await flow.handle(tg("7", text="2"), p))
    assert "Вопрос 3 из 5" in nxt.payload["text"]
    assert flow.store.get_session("7").answers["lead_distribution"] == "manual"


async def test_free_text_without_an_open_check_is_not_ours(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("7")
    assert await flow.handle(tg("7", text="hello"), p) is None
    assert await flow.handle(tg("7", text="/help"), p) is None
    assert await flow.handle(tg("7", action="snooze:abc:1d"), p) is None


async def test_back_returns_to_the_previous_question_and_forgets_its_answer(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("1")
    await flow.handle(tg("1", text="/maturity"), p)
    await flow.handle(tg("1", action="mq:1:2", message_id="3"), p)
    await flow.handle(tg("1", action="mq:2:1", message_id="3"), p)
    back = one(await flow.handle(tg("1", action="mq:back", message_id="3"), p))
    assert "Question 2 of 5" in back.payload["text"] and back.edit_message_id == "3"
    assert flow.store.get_session("1").answers == {"systems": "two"}
    # a stale button from question 3 only shows the current question again
    stale = one(await flow.handle(tg("1", action="mq:3:1", message_id="3"), p))
    assert "Question 2 of 5" in stale.payload["text"]
    assert flow.store.get_session("1").answers == {"systems": "two"}


async def test_cancel_by_command_and_by_button(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("1", language="ru")
    await flow.handle(tg("1", text="/maturity"), p)
    msg = one(await flow.handle(tg("1", text="/cancel"), p))
    assert "Проверка прервана" in msg.payload["text"]
    assert not flow.is_active("1")
    assert "нечего отменять" in one(await flow.handle(tg("1", text="/cancel"), p)).payload["text"]

    await flow.handle(tg("1", text="/maturity"), p)
    msg = one(await flow.handle(tg("1", action="mq:cancel", message_id="4"), p))
    assert msg.edit_message_id == "4" and "Проверка прервана" in msg.payload["text"]
    # the old question's buttons no longer do anything but say so
    late = one(await flow.handle(tg("1", action="mq:1:1", message_id="4"), p))
    assert "уже завершена или прервана" in late.payload["text"] and late.edit_message_id == "4"
    assert late.payload["buttons"] == []
    assert MaturityStore(flow.store.engine).history() == []


async def test_a_restart_mid_way_resumes_on_the_same_database(db_url, clock):
    p = Person("42", language="en")
    flow = make_flow(db_url, clock)
    await flow.handle(tg("42", text="/maturity"), p)
    await answer_all(flow, p, [1, 1], msg_id="8")
    del flow  # the bot process goes away

    restarted = make_flow(db_url, clock)
    assert restarted.is_active("42")
    msg = one(await restarted.handle(tg("42", text="what now?"), p))
    assert "Question 3 of 5" in msg.payload["text"]
    for q, a in [(3, 1), (4, 1), (5, 1)]:
        msg = one(await restarted.handle(tg("42", action=f"mq:{q}:{a}", message_id="8"), p))
    assert "Level 3: the system learns and advises" in msg.payload["text"]
    assert "No CRM data is available" in msg.payload["text"]


async def test_history_shows_the_trend_directors_see_the_team_managers_only_themselves(db_url, clock):
    flow = make_flow(db_url, clock)
    boss = Person("1", "director", "en", "Aigul")
    mgr = Person("2", "manager", "en", "Bolat")
    clock.now = clock.now.replace(month=3, day=10)
    await flow.handle(tg("1", text="/maturity"), boss)
    await answer_all(flow, boss, [3, 2, 2, 2, 2])
    await flow.handle(tg("2", text="/maturity"), mgr)
    await answer_all(flow, mgr, [1, 1, 1, 2, 2])
    clock.now = clock.now.replace(month=11, day=18)
    await flow.handle(tg("1", text="/maturity"), boss)
    await answer_all(flow, boss, [1, 1, 1, 2, 2])

    team = one(await flow.handle(tg("1", text="/maturity history"), boss)).payload["text"]
    assert "level 1 in March → level 2 now (18 November)" in team
    assert "Bolat" in team and "level 2 now (10 March)" in team
    own = one(await flow.handle(tg("2", text="/maturity history"), mgr)).payload["text"]
    assert "Bolat" not in own and "level 1 in March" not in own
    assert "level 2 now (10 March)" in own


async def test_department_runs_are_separate_and_named(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("1", language="ru")
    first = one(await flow.handle(tg("1", text="/maturity service"), p))
    assert "сервис" in first.payload["text"]
    result = await answer_all(flow, p, [3, 2, 2, 2, 2])
    assert "сервис" in result.payload["text"] and "Уровень 1" in result.payload["text"]
    assert MaturityStore(db_url).history("1")[0].department == "service"
    bad = one(await flow.handle(tg("1", text="/maturity marketing"), p))
    assert "marketing" in bad.payload["text"] and not flow.is_active("1")


async def test_slack_gets_blocks_with_buttons_and_commands_without_a_slash(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("U1", language="en")
    msg = one(await flow.handle(tg("U1", text="maturity", channel="slack"), p))
    blocks = msg.payload["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == ["mq:1:1", "mq:1:2", "mq:1:3", "mq:cancel"]
    assert len({b["action_id"] for b in buttons}) == len(buttons)
    assert "How many systems" in msg.payload["text"]
    msg = one(await flow.handle(tg("U1", text="/pulse maturity history", channel="slack"), p))
    assert "No checks yet" in msg.payload["text"] or "No checks yet" in str(msg.payload["blocks"])


async def test_a_failing_data_source_does_not_cost_the_result(db_url, clock):
    def broken():
        raise RuntimeError("deals.csv: cannot read")

    flow = MaturityFlow(db_url, broken, clock)
    p = Person("1", language="en")
    await flow.handle(tg("1", text="/maturity"), p)
    result = await answer_all(flow, p, [1, 1, 1, 1, 1])
    assert "Level 3" in result.payload["text"] and "No CRM data is available" in result.payload["text"]


async def test_crm_text_is_escaped_in_telegram_html(db_url, clock):
    flow = make_flow(db_url, clock)
    evil = Person("1", "director", "en", "<b>Boss</b> & co")
    await flow.handle(tg("1", text="/maturity"), evil)
    await answer_all(flow, evil, [1, 1, 1, 1, 1])
    text = one(await flow.handle(tg("1", text="/maturity history"), evil)).payload["text"]
    assert "<b>Boss</b>" not in text
    other = Person("2", "director", "en")
    text = one(await flow.handle(tg("2", text="/maturity history"), other)).payload["text"]
    assert "&lt;b&gt;Boss&lt;/b&gt; &amp; co" in text


async def test_an_abandoned_check_expires_after_a_day(db_url, clock):
    flow = make_flow(db_url, clock)
    p = Person("1", language="en")
    await flow.handle(tg("1", text="/maturity"), p)
    await flow.handle(tg("1", action="mq:1:1", message_id="3"), p)
    clock.now += timedelta(hours=23)
    assert flow.is_active("1")
    clock.now += timedelta(hours=2)
    assert await flow.handle(tg("1", text="hello again"), p) is None  # free text is not an answer any more
    assert not flow.is_active("1")
    late = one(await flow.handle(tg("1", action="mq:2:1", message_id="3"), p))
    assert "already finished or been stopped" in late.payload["text"]


async def test_service_in_chat_leaves_out_the_sales_hints_and_says_so(db_url, clock):
    """/maturity service: the answers are about requests, the data hints read the sales
    pipeline, so the result leaves them out and says why, as `diagnose --department service` does."""
    data = make_data(leads=make_leads(40, minutes=1.0, managers=["m1", "m2", "m3"]))
    flow = make_flow(db_url, clock, data)
    boss = Person("100", "director", "en", "Aigul")
    one(await flow.handle(tg("100", text="/maturity service"), boss))
    text = (await answer_all(flow, boss, [1, 1, 1, 2, 1])).payload["text"]
    assert "not shown for service" in text
    assert "looks like automatic distribution by rules" not in text
    one(await flow.handle(tg("100", text="/maturity"), boss))
    sales = (await answer_all(flow, boss, [1, 1, 1, 2, 1])).payload["text"]
    assert "looks like automatic distribution by rules" in sales and "not shown for service" not in sales
