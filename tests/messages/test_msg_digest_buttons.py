"""Digest buttons carry words, as single alerts do: "2 · ⏰ 1 день", not "2 · ⏰ 1 д" or "2 · 👍"."""
from __future__ import annotations

import re

import pytest
from msg_helpers import NOW, stalled

from messages import samples, slack, telegram
from messages.digest import build_digest
from messages.model import parse_action

WORDS = {
    "ru": {"snooze": {"⏰ 1 день", "⏰ 7 дней"}, "done": {"✅ Сделано"}, "useful": {"👍 Полезно"},
           "notuseful": {"👎 Не полезно"}, "details": {"ℹ️ Подробнее"}},
    "en": {"snooze": {"⏰ 1 day", "⏰ 7 days"}, "done": {"✅ Done"}, "useful": {"👍 Useful"},
           "notuseful": {"👎 Not useful"}, "details": {"ℹ️ Details"}},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_digest_button_says_in_words_what_it_does(lang):
    deals = [stalled("D-1", "Поставка", 40, 1_000_000), stalled("D-2", "Лицензии", 20, 500_000)]
    digest = build_digest(deals + list(samples.all_samples().values()), lang=lang, now=NOW, tz="Asia/Almaty")
    payloads = telegram.format_digest(digest)
    labels = [(b["label"], b["action"]) for p in payloads for row in p["buttons"] for b in row]
    assert labels
    for label, action in labels:
        number, _, words = label.partition(" · ")
        assert re.fullmatch(r"\d+(\.\d+)?", number), label
        assert words in WORDS[lang][parse_action(action)[0]], label
        assert len(label) <= 18, f"{label!r} would be cut on a phone's keyboard"
    # three buttons per row at most, so every label is readable on a phone
    assert max(len(row) for p in payloads for row in p["buttons"]) == 3
    # the same words reach Slack
    texts = [e["text"]["text"] for m in slack.format_digest(digest) for b in m["blocks"]
             if b["type"] == "actions" for e in b["elements"]]
    assert sorted(texts) == sorted(label for label, _ in labels)


def test_a_grouped_deal_keeps_all_four_actions_in_two_readable_rows():
    deals = [stalled("D-1", "Поставка", 40, 1_000_000), stalled("D-2", "Лицензии", 20, 500_000)]
    digest = build_digest(deals, lang="ru", now=NOW, tz="Asia/Almaty")
    [group] = digest.items
    assert [[b.label for b in row] for row in group.buttons[:2]] == [
        ["1.1 · ⏰ 1 день", "1.1 · ⏰ 7 дней"], ["1.1 · ✅ Сделано", "1.1 · ℹ️ Подробнее"]]
