"""What the charts say, read from the matplotlib figure (legend, texts, colours), not pixels:
every dashed line is in the legend, the loss chart has its periods, counts and values, the load
chart names the team and colours everyone the item names."""
from __future__ import annotations

import copy

from matplotlib.colors import to_hex

from detectors.insight import Insight
from messages import samples
from messages.charts import ACCENT, BASE_COLOR, RECENT_COLOR, chart_figure


def legend_texts(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text().replace("\xa0", " ") for lg in legends for t in lg.get_texts()]  # count() keeps 58 and its noun together


def test_every_line_of_the_conversion_chart_is_in_its_legend_with_its_value():
    fig = chart_figure(samples.conversion_drop(), "ru")
    ax = fig.axes[0]
    labels = legend_texts(fig)
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 2
    for ln in dashed + [ln for ln in ax.lines if ln.get_linestyle() == "-"]:
        assert ln.get_label() in labels, ln.get_label()
    assert "в среднем раньше: 48%" in labels and "в среднем сейчас: 31%" in labels
    assert "раньше: 1 авг. – 21 окт." in labels and "сейчас: 22 окт. – 20 нояб." in labels
    en = legend_texts(chart_figure(samples.conversion_drop(), "en"))
    assert "average before: 48%" in en and "average now: 31%" in en and "before: 1 Aug – 21 Oct" in en


def test_the_loss_chart_shows_its_periods_counts_and_every_bars_value():
    insight = samples.loss_reasons()
    fig = chart_figure(insight, "ru")
    labels = legend_texts(fig)
    assert labels == ["раньше: 1 июл. – 28 окт., 214 сделок", "сейчас: 29 окт. – 27 нояб., 58 сделок"]
    texts = {t.get_text().strip() for t in fig.axes[0].texts}
    for r in insight.facts["reasons"]:
        for side in ("baseline", "recent"):
            assert f"{round(r[f'{side}_share'] * 100)}% ({r[f'{side}_n']})" in texts, (r["reason"], side)
    en = legend_texts(chart_figure(insight, "en"))
    assert en == ["before: 1 Jul – 28 Oct, 214 deals", "now: 29 Oct – 27 Nov, 58 deals"]


def bar_colours(fig) -> list[dict[str, str]]:
    """Per panel: person's name on the axis -> bar colour."""
    out = []
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    for ax in fig.axes:
        bars = ax.containers[0]
        out.append({name: to_hex(bar.get_facecolor()) for name, bar in zip(names, bars)})
    return out


def test_the_load_chart_names_the_team_and_explains_its_colours():
    fig = chart_figure(samples.manager_load(), "ru")
    assert fig._suptitle.get_text() == "Команда «Алматы»: нагрузка на полную ставку"
    labels = legend_texts(fig)
    assert "выше нормы или отдаёт" in labels and "ниже нормы или получает" in labels
    no_team = copy.deepcopy(samples.manager_load())
    no_team.facts["team"] = None
    assert chart_figure(no_team, "en")._suptitle.get_text() == "The whole team: load per full-time person"


def test_the_load_chart_colours_everyone_the_item_names_in_every_panel():
    """Данияр takes leads only (the deals plan does not name him): coloured on both panels, as
    are Ольга (over) and Арман (under); the two nobody names stay plain."""
    base = samples.manager_load()
    facts = copy.deepcopy(base.facts)
    facts["plan"]["open_deals"] = [m for m in facts["plan"]["open_deals"] if m["to_manager_id"] != "m2"]
    for row in facts["metrics"]["open_deals"]["loads"]:
        if row["manager_id"] == "m2":
            row["role"] = None
    insight = Insight(base.detector, base.severity, base.audience, base.subject, facts, base.evidence)
    for panel in bar_colours(chart_figure(insight, "ru")):
        assert panel["Ольга Ким"] == to_hex(RECENT_COLOR)
        assert panel["Арман Жумабеков"] == to_hex(ACCENT)
        assert panel["Данияр Ахметов"] == to_hex(ACCENT)
        assert panel["Сергей Волков"] == panel["Айгерим Сапарова"] == to_hex(BASE_COLOR)


def test_the_load_chart_colours_the_named_people_from_facts_without_per_bar_roles():
    """Facts stored before the per-bar roles (a scan kept in the state database): the over,
    under and plan lists still colour the right people."""
    base = samples.manager_load()
    facts = copy.deepcopy(base.facts)
    for panel in facts["metrics"].values():
        for row in panel["loads"]:
            row.pop("role")
    insight = Insight(base.detector, base.severity, base.audience, base.subject, facts, base.evidence)
    for panel in bar_colours(chart_figure(insight, "en")):
        assert panel["Ольга Ким"] == to_hex(RECENT_COLOR)
        assert panel["Арман Жумабеков"] == panel["Данияр Ахметов"] == to_hex(ACCENT)
        assert panel["Сергей Волков"] == to_hex(BASE_COLOR)
