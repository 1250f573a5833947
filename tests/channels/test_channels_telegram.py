"""The real python-telegram-bot stack against the fake Bot API server."""
from __future__ import annotations

import aiohttp
import pytest

from bot.channels.base import OutgoingMessage, PermanentFailure, RetryLater
from bot.channels.telegram import CAPTION_LIMIT, TelegramChannel
from tests.channels.conftest import TOKEN, Recorder, fast_limiter, free_port, wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.sendloop import deliver_all
from tests.fakes.telegram_server import FakeTelegramServer

PNG = b"\x89PNG\r\n\x1a\n" + b"chart" * 50
BUTTONS = [[{"label": "Отложить на день", "action": "snooze:fp1:1d"},
            {"label": "Готово", "action": "done:fp1"}],
           [{"label": "👍", "action": "useful:fp1"}]]


def digest(address: str, text: str, **kw) -> OutgoingMessage:
    return OutgoingMessage("telegram", address, {"text": text, "buttons": BUTTONS}, **kw)


async def test_digest_text_goes_as_html_with_inline_buttons(tg_server, tg_channel):
    receipt = await tg_channel.send(digest("42", "<b>Сводка</b> на сегодня"))
    [got] = tg_server.messages["42"]
    assert got.method == "sendMessage"
    assert got.text == "<b>Сводка</b> на сегодня" and got.parse_mode == "HTML"
    assert got.buttons == [[{"text": "Отложить на день", "callback_data": "snooze:fp1:1d"},
                            {"text": "Готово", "callback_data": "done:fp1"}],
                           [{"text": "👍", "callback_data": "useful:fp1"}]]
    assert receipt.message_id == str(got.message_id)


async def test_chart_with_short_text_is_one_photo_with_caption_and_buttons(tg_server, tg_channel):
    await tg_channel.send(digest("42", "Конверсия упала", photo_png=PNG))
    [got] = tg_server.messages["42"]
    assert (got.method, got.photo, got.text) == ("sendPhoto", PNG, "Конверсия упала")
    assert got.buttons[0][0]["callback_data"] == "snooze:fp1:1d"


async def test_chart_with_long_text_is_photo_then_text_and_retry_does_not_repeat_photo(
        tg_server, tg_channel):
    long_text = "x" * (CAPTION_LIMIT + 10)
    message = digest("42", long_text, photo_png=PNG, dedup_key="d1")
    tg_server.faults.fail_next("500", method="sendMessage")
    with pytest.raises(RetryLater):
        await tg_channel.send(message)
    receipt = await tg_channel.send(message)
    sent = tg_server.messages["42"]
    assert [m.method for m in sent] == ["sendPhoto", "sendMessage"]
    assert sent[1].text == long_text and sent[1].buttons
    assert receipt.message_id == str(sent[1].message_id)
    assert receipt.extra["photo_message_id"] == str(sent[0].message_id)


async def test_edit_in_place_changes_the_earlier_message(tg_server, tg_channel):
    first = await tg_channel.send(digest("42", "Вопрос 1 из 5"))
    again = await tg_channel.send(OutgoingMessage(
        "telegram", "42", {"text": "Вопрос 2 из 5", "buttons": []},
        edit_message_id=first.message_id))
    assert again.message_id == first.message_id
    [only] = tg_server.messages["42"]
    assert only.text == "Вопрос 2 из 5" and not only.buttons
    # Pressing the same button twice must not turn into an error for the user.
    await tg_channel.send(OutgoingMessage("telegram", "42", {"text": "Вопрос 2 из 5"},
                                          edit_message_id=first.message_id))


@pytest.mark.parametrize("where, expected", [("blocked", "blocked"), ("missing", "chat not found")])
async def test_blocked_or_unknown_chat_is_a_permanent_failure(tg_server, tg_channel, where,
                                                              expected):
    (tg_server.blocked_chats if where == "blocked" else tg_server.missing_chats).add("13")
    with pytest.raises(PermanentFailure) as info:
        await tg_channel.send(digest("13", "hi"))
    assert expected in info.value.reason.lower()
    assert tg_server.messages.get("13") is None


@pytest.mark.parametrize("fault", ["429", "500", "drop"])
async def test_transient_faults_are_retry_later(tg_server, tg_channel, fault):
    tg_server.faults.fail_next(fault, method="sendMessage")
    with pytest.raises(RetryLater) as info:
        await tg_channel.send(digest("42", "hi"))
    if fault == "429":
        assert info.value.after_seconds == 1
    assert tg_server.texts("42") == []
    await tg_channel.send(digest("42", "hi"))
    assert tg_server.texts("42") == ["hi"]


async def test_a_timeout_is_retry_later():
    async with FakeTelegramServer(faults=FaultPlan(slow_seconds=1.0)) as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url, rate_limiter=fast_limiter(),
                                  timeout=0.3)
        try:
            server.faults.fail_next("slow", method="sendMessage")
            with pytest.raises(RetryLater):
                await channel.send(digest("42", "hi"))
        finally:
            await channel.stop()


async def test_menu_commands_are_published_in_both_languages_and_admins_get_more(tg_server,
                                                                                tg_bot):
    default = tg_server.commands['{"type": "default"}|']
    russian = tg_server.commands['{"type": "default"}|ru']
    names = [c["command"] for c in default]
    assert names == ["start", "help", "insights", "digest", "snoozed", "lang", "maturity",
                     "cancel"]
    assert [c["command"] for c in russian] == names
    assert russian[2]["description"] != default[2]["description"]
    admin = tg_server.commands['{"chat_id": 900, "type": "chat"}|']
    assert {"preview", "stats", "scan"} <= {c["command"] for c in admin}


async def test_a_command_arrives_as_inbound_and_the_reply_is_sent(tg_server, tg_bot):
    tg_server.push_text(42, "/lang@crm_pulse_test_bot en", language_code="ru")
    await wait_for(lambda: tg_server.texts("42") == ["got /lang en"])
    [inbound] = tg_bot.recorder.inbound
    assert (inbound.channel, inbound.user_id, inbound.chat_id) == ("telegram", "42", "42")
    assert inbound.text == "/lang en" and inbound.language_code == "ru"


async def test_free_text_arrives_as_inbound(tg_server, tg_bot):
    tg_server.push_text(42, "привет")
    await wait_for(lambda: tg_server.texts("42") == ["got привет"])


async def test_in_a_group_only_commands_reach_the_handler(tg_server, tg_bot):
    tg_server.push_text(42, "коллеги, кто звонил клиенту?", chat_id=-100500)
    tg_server.push_text(42, "/help@some_other_bot", chat_id=-100500)
    tg_server.push_text(42, "/insights@crm_pulse_test_bot", chat_id=-100500)
    await wait_for(lambda: tg_server.texts(-100500) == ["got /insights"])
    assert [i.text for i in tg_bot.recorder.inbound] == ["/insights"]
    assert tg_bot.recorder.inbound[0].chat_id == "-100500"


async def test_a_button_press_arrives_with_its_action_and_is_answered(tg_server, tg_bot):
    receipt = await tg_bot.send(digest("42", "Сделка стоит 20 дней"))
    tg_server.push_button(42, "snooze:fp1:7d", message_id=int(receipt.message_id))
    await wait_for(lambda: len(tg_server.texts("42")) == 2)
    [inbound] = tg_bot.recorder.inbound
    assert inbound.action == "snooze:fp1:7d" and inbound.text is None
    assert inbound.message_id == receipt.message_id and inbound.chat_id == "42"
    assert len(tg_server.callback_answers) == 1
    assert tg_server.texts("42")[1] == "got snooze:fp1:7d"


async def test_a_failing_handler_is_logged_and_the_bot_keeps_working(tg_server, tg_bot, caplog):
    calls = []

    async def flaky(inbound):
        calls.append(inbound)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return []

    tg_bot.on_inbound = flaky
    tg_server.push_text(42, "/digest")
    tg_server.push_text(42, "/help")
    await wait_for(lambda: len(calls) == 2)
    assert "failed" in caplog.text


async def test_webhook_accepts_the_secret_token_and_rejects_a_wrong_one(tg_server):
    recorder = Recorder()
    port = free_port()
    channel = TelegramChannel(TOKEN, base_url=tg_server.base_url, on_inbound=recorder,
                              mode="webhook", webhook_url="https://bot.example/telegram",
                              secret_token="s3cret-Token_1", listen="127.0.0.1", port=port,
                              rate_limiter=fast_limiter(), timeout=2.0)
    await channel.start()
    try:
        assert tg_server.webhook["url"] == "https://bot.example/telegram"
        assert tg_server.webhook["secret_token"] == "s3cret-Token_1"
        update = tg_server.update_payload({"message": {
            "message_id": 1, "date": 0, "chat": {"id": 42, "type": "private"},
            "from": {"id": 42, "is_bot": False, "first_name": "A"}, "text": "/digest",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}]}})
        url = f"http://127.0.0.1:{port}/telegram"
        async with aiohttp.ClientSession() as http:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
            async with http.post(url, json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
                                 ) as response:
                assert response.status == 200
        await wait_for(lambda: len(recorder.inbound) == 1)
        assert recorder.inbound[0].text == "/digest"
    finally:
        await channel.stop()


async def test_under_faults_every_message_arrives_once_in_order():
    faults = FaultPlan(share=0.3, slow_seconds=0.15, seed=5,
                       methods=frozenset({"sendMessage", "sendPhoto"}))
    async with FakeTelegramServer(faults=faults) as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url,
                                  rate_limiter=fast_limiter(max_retries=0), timeout=1.0)
        try:
            messages = [digest(str(chat), f"{chat}-{i}", dedup_key=f"{chat}-{i}",
                               photo_png=PNG if i == 0 else None)
                        for i in range(8) for chat in (101, 102, 103, 104, 105)]
            report = await deliver_all(channel, messages)
        finally:
            await channel.stop()
    assert set(faults.injected) == {"429", "500", "slow", "drop"}
    assert report.retries >= 5 and not report.failed
    for chat in (101, 102, 103, 104, 105):
        assert server.texts(chat) == [f"{chat}-{i}" for i in range(8)]


async def test_a_slow_request_from_one_person_does_not_hold_up_another(tg_server, tg_bot):
    import asyncio

    release = asyncio.Event()
    order: list[str] = []

    async def handler(inbound):
        order.append(f"start {inbound.chat_id} {inbound.text}")
        if inbound.text == "/scan":
            await release.wait()
        order.append(f"end {inbound.chat_id} {inbound.text}")
        return []

    tg_bot.on_inbound = handler
    tg_server.push_text(1, "/scan")
    tg_server.push_text(1, "/help")  # same chat: waits for /scan, keeps its order
    tg_server.push_text(2, "/digest")  # another person: answered meanwhile
    await wait_for(lambda: "end 2 /digest" in order)
    assert "start 1 /help" not in order
    release.set()
    await wait_for(lambda: "end 1 /help" in order)
    assert order.index("end 1 /scan") < order.index("start 1 /help")


async def test_html_telegram_refuses_is_sent_as_plain_text_rather_than_lost(tg_server, tg_channel):
    await tg_channel.send(digest("42", "Итого: 5 < 7, <b>план</b> выполнен<br>Молодцы"))
    [got] = tg_server.messages["42"]
    assert got.text == "Итого: 5 < 7, план выполнен\nМолодцы" and got.parse_mode is None
    assert got.buttons  # the buttons still come with it


async def test_an_admin_who_never_wrote_to_the_bot_does_not_stop_it_starting(tg_server):
    tg_server.missing_chats.add("901")
    recorder = Recorder()
    channel = TelegramChannel(TOKEN, base_url=tg_server.base_url, on_inbound=recorder,
                              rate_limiter=fast_limiter(), timeout=2.0, poll_timeout=1,
                              admin_chat_ids=[900, 901])
    await channel.start()
    try:
        tg_server.push_text(5, "/help")
        await wait_for(lambda: tg_server.texts(5) == ["got /help"])
        assert '{"chat_id": 900, "type": "chat"}|ru' in tg_server.commands
    finally:
        await channel.stop()


async def test_a_wrong_token_stops_start_clearly_but_queued_messages_only_wait():
    async with FakeTelegramServer(token="999:RIGHT") as server:
        channel = TelegramChannel(TOKEN, base_url=server.base_url, rate_limiter=fast_limiter(),
                                  timeout=2.0, poll_timeout=1)
        with pytest.raises(PermanentFailure, match="token"):
            await channel.start()
        with pytest.raises(RetryLater, match="token"):
            await channel.send(digest("42", "hi"))
        assert server.messages == {}


async def test_webhook_start_problems_are_clear_failures(tg_server):
    bad_secret = TelegramChannel(TOKEN, base_url=tg_server.base_url, mode="webhook",
                                 webhook_url="https://bot.example/telegram",
                                 secret_token="has spaces!", port=free_port(),
                                 rate_limiter=fast_limiter())
    with pytest.raises(PermanentFailure, match="secret"):
        await bad_secret.start()
    await bad_secret.stop()

    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = TelegramChannel(TOKEN, base_url=tg_server.base_url, mode="webhook",
                               webhook_url="https://bot.example/telegram", secret_token="ok",
                               listen="127.0.0.1", port=taken.getsockname()[1],
                               rate_limiter=fast_limiter())
        with pytest.raises(PermanentFailure, match="cannot listen"):
            await busy.start()
        await busy.stop()
