"""The console channel prints what would be sent, readable whatever the payload's platform."""
from __future__ import annotations

import io

from bot.channels.base import OutgoingMessage
from bot.channels.console import ConsoleChannel


async def test_telegram_html_is_printed_as_plain_text_with_button_labels():
    out = io.StringIO()
    channel = ConsoleChannel(out)
    receipt = await channel.send(OutgoingMessage("telegram", "Ольга", {
        "text": "<b>Сделка «Ромашка»</b> стоит 20 дней &amp; без звонков",
        "buttons": [[{"label": "Отложить", "action": "snooze:fp:1d"},
                     {"label": "Готово", "action": "done:fp"}]]}))
    text = out.getvalue()
    assert "to Ольга via telegram" in text
    assert "Сделка «Ромашка» стоит 20 дней & без звонков" in text and "<b>" not in text
    assert "[Отложить]  [Готово]" in text
    assert receipt.message_id == "1" and len(channel.sent) == 1


async def test_slack_buttons_and_a_chart_are_shown(tmp_path):
    out = io.StringIO()
    channel = ConsoleChannel(out, chart_dir=tmp_path)
    await channel.send(OutgoingMessage("slack", "C1", {"text": "Conversion fell", "blocks": [
        {"type": "actions", "elements": [{"type": "button", "action_id": "useful:fp",
                                          "text": {"type": "plain_text", "text": "Useful"}}]}]},
        photo_png=b"\x89PNG-bytes", dedup_key="digest:C1:2026-10-01"))
    text = out.getvalue()
    assert "Conversion fell" in text and "[Useful]" in text
    [png] = tmp_path.glob("*.png")
    assert png.read_bytes() == b"\x89PNG-bytes" and str(png) in text


async def test_an_edit_says_which_message_it_replaces():
    out = io.StringIO()
    await ConsoleChannel(out).send(OutgoingMessage("console", "me", {"text": "Q2"},
                                                   edit_message_id="7"))
    assert "replaces message 7" in out.getvalue()
