"""The maturity flow behind bot-core's real Handlers (bot.handlers), as the running bot wires it."""
from __future__ import annotations

from pathlib import Path

import pytest
from maturity_helpers import Clock

from bot.channels.base import Inbound

handlers_mod = pytest.importorskip("bot.handlers", reason="bot.handlers (engineer bot-core) not importable")

CONFIG = """
language = "en"
[[recipients]]
id = "boss"
name = "Aigul"
role = "director"
telegram_id = 1
[[recipients]]
id = "m1"
name = "Bolat"
role = "manager"
manager_id = "m1"
telegram_id = 2
language = "ru"
"""


@pytest.fixture
def handlers(tmp_path, clock):
    from bot.config import parse_config
    from bot.state import StateStore

    config = parse_config(CONFIG, source_name="test.toml", base_dir=Path(tmp_path))
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield handlers_mod.Handlers(config, store, clock=clock)
    store.close()


def ev(user: str, *, text: str | None = None, action: str | None = None, message_id: str | None = None) -> Inbound:
    return Inbound("telegram", user, user, text=text, action=action, message_id=message_id)


async def test_a_director_runs_the_check_through_the_bots_handlers(handlers):
    [q1] = await handlers.handle(ev("1", text="/maturity"))
    assert "Question 1 of 5" in q1.payload["text"]
    [reminder] = await handlers.handle(ev("1", text="hmm"))
    assert "Please choose an answer" in reminder.payload["text"]
    for q, a in [(1, 1), (2, 1), (3, 1), (4, 2)]:
        await handlers.handle(ev("1", action=f"mq:{q}:{a}", message_id="7"))
    [result] = await handlers.handle(ev("1", action="mq:5:2", message_id="7"))
    assert result.edit_message_id == "7" and "Level 2: connected systems and rules" in result.payload["text"]
    [hist] = await handlers.handle(ev("1", text="/maturity history"))
    assert "Aigul" not in hist.payload["text"] and "level 2 now" in hist.payload["text"]


async def test_a_managers_language_and_own_history_only(handlers):
    await handlers.handle(ev("1", text="/maturity"))
    for q in range(1, 6):
        await handlers.handle(ev("1", action=f"mq:{q}:1", message_id="7"))
    [q1] = await handlers.handle(ev("2", text="/maturity"))
    assert "Вопрос 1 из 5" in q1.payload["text"]
    [hist] = await handlers.handle(ev("2", text="/cancel"))
    assert "Проверка прервана" in hist.payload["text"]
    [hist] = await handlers.handle(ev("2", text="/maturity history"))
    assert "Проверок ещё не было" in hist.payload["text"]  # the director's check is not theirs to see
