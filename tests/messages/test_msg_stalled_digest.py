"""A manager's digest: stalled deals grouped into one item, the abandoned-deals hygiene item beside
it (not one of the grouped deals), and the group's words do not call a configured limit usual."""
from __future__ import annotations

from msg_helpers import NOW, stalled

from messages import samples
from messages.digest import build_digest
from messages.render import plain


def test_abandoned_item_stands_apart_from_the_stalled_group():
    insights = [samples.stalled_deal(), stalled("D-1201", "Монтаж вентиляции", 41, 3_000_000),
                stalled("D-1210", "Кабель ВВГнг", 16, 850_000), samples.stalled_abandoned()]
    digest = build_digest(insights, lang="ru", now=NOW, tz="Asia/Almaty", recipient_name="Данияр")
    stalled_items = [i for i in digest.items if i.detector == "stalled_deal"]
    assert len(stalled_items) == 2
    group = next(i for i in stalled_items if len(i.fingerprints) == 3)
    hygiene = next(i for i in stalled_items if len(i.fingerprints) == 1)
    assert plain(group.title) == "Сделки без движения дольше срока этапа: 3"
    assert plain(hygiene.title) == "Сделки, похожие на заброшенные: 41"
    assert hygiene.fingerprints == [samples.stalled_abandoned().fingerprint]
    rows = " ".join(plain(line) for line in group.body).replace("\xa0", " ")
    assert "(обычно до 9)" in rows  # the learned limit of samples.stalled_deal
    assert rows.count("(срок 14)") == 2  # msg_helpers.stalled: a limit without a learned source
