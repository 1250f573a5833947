"""PNG charts drawn from an insight's facts, where a picture says it faster than words.

conversion_drop -> conversion per week with the baseline and recent periods shaded, their
dates and average rates in the legend; manager_load -> load per manager against the team's
normal band, the team named, everyone the item names coloured; loss_reasons (shift) -> share
of each loss reason before and after, with the two periods' dates and deal counts and each
bar's share and count. Each chart is drawn as a Figure first (`chart_figure`, which tests
read: legend, texts, colours) and then saved as PNG. matplotlib's object API with the Agg canvas (no
pyplot global state, safe in a bot's threads), DejaVu Sans (ships with matplotlib, has
Cyrillic), large fonts for a phone, ~1000 px wide, well under 200 KB.
"""
from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Callable

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from detectors.insight import Insight
from messages import i18n

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 5.4, 112  # ~1008 x 605 px
FONT = {"family": "DejaVu Sans", "size": 15}
BASE_COLOR, RECENT_COLOR, ACCENT, GREY = "#4C78A8", "#E45756", "#F58518", "#9E9E9E"
# Every label is CRM text: a loss reason "Дорого $$" or a stage "$_$" must print as typed, not go
# to mathtext (which raises on it) or to LaTeX. Set for the process and again around each chart
# (tick labels are made at draw time, and someone may reset rcParams in between).
SAFE_TEXT = {"text.parse_math": False, "text.usetex": False}
matplotlib.rcParams.update(SAFE_TEXT)


def _figure(label_chars: int = 5) -> tuple[Figure, object]:
    """Fixed margins (the left one sized to the longest y label): an automatic layout engine
    would double the drawing time."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    left = min(0.45, 0.04 + 0.0135 * label_chars)
    fig.subplots_adjust(left=left, right=0.96, top=0.9, bottom=0.1)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=FONT["size"] - 1)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _short(text: object, limit: int = 28) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _q(lang: str, text: object) -> str:
    return f"«{_short(text)}»" if lang == "ru" else f"“{_short(text)}”"


def _period_label(word: tuple[str, str], start: object, end: object, lang: str) -> str:
    """"раньше: 1 авг. – 21 окт." / "before: 1 Aug – 21 Oct" (the word alone without dates)."""
    text = word[0] if lang == "ru" else word[1]
    if start and end:
        text += f": {i18n.format_short_date(str(start)[:10], lang)} – {i18n.format_short_date(str(end)[:10], lang)}"
    return text


def conversion_chart(insight: Insight, lang: str) -> bytes | None:
    fig = conversion_figure(insight, lang)
    return None if fig is None else _png(fig)


def conversion_figure(insight: Insight, lang: str) -> Figure | None:
    """Weekly conversion of the insight's cohort (the segment's, for a drop in one segment),
    baseline and recent periods shaded; weeks without deals are left out of the line. The
    legend says what each shade (dates) and each dashed line (the period's rate) is."""
    f = insight.facts
    weekly = [w for w in (f.get("weekly") or []) if w.get("rate") is not None]
    if len(weekly) < 2:
        return None
    weeks = [date.fromisoformat(str(w["week_start"])[:10]) for w in weekly]
    rates = [float(w["rate"]) for w in weekly]
    fig, ax = _figure()
    for start, end, color, label in (
        (f.get("baseline_start"), f.get("baseline_end"), BASE_COLOR, ("раньше", "before")),
        (f.get("recent_start"), f.get("recent_end"), RECENT_COLOR, ("сейчас", "now")),
    ):
        if start and end:
            ax.axvspan(date.fromisoformat(str(start)[:10]), date.fromisoformat(str(end)[:10]) + timedelta(days=1),
                       color=color, alpha=0.12, lw=0, label=_period_label(label, start, end, lang))
    ax.plot(weeks, rates, color="#333333", lw=2.5, marker="o", ms=6, label="по неделям" if lang == "ru" else "per week")
    for rate, color, label in ((f.get("baseline_rate"), BASE_COLOR, ("в среднем раньше", "average before")),
                               (f.get("recent_rate"), RECENT_COLOR, ("в среднем сейчас", "average now"))):
        if isinstance(rate, (int, float)):
            ax.axhline(rate, color=color, lw=1.5, ls="--",
                       label=f"{label[0] if lang == 'ru' else label[1]}: {i18n.percent(float(rate), lang)}")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, min(1.0, max(rates + [float(f.get("baseline_rate") or 0)]) * 1.25 + 0.02))
    shown = weeks[:: -(-len(weeks) // 6) or 1]  # at most 6 dates: more collide on a phone-width axis
    ax.set_xticks(shown)
    ax.set_xticklabels([i18n.format_short_date(w, lang) for w in shown])
    ru = lang == "ru"
    # a horizon the words name ("30-day win rate") is named here too: the weekly points are
    # deals won within it, not deals won (messages.templates.conversion_drop.within)
    capped = int(f.get("horizon_days") or 0) if f.get("horizon_source") in ("max", "default") else 0
    ru_within = f" за {i18n.count(capped, 'day', 'ru', case='accs')}" if capped else ""
    en_days = f"{capped}-day " if capped else ""
    if f.get("basis") == "created" or (f.get("from_stage") is None and f.get("to_won")):
        title = (f"Доля новых сделок, выигранных{ru_within}, по неделям" if ru
                 else f"Weekly {en_days}win rate of new deals")
    else:
        dst = ("выигрыш" if ru else "won") if f.get("to_won") else _q(lang, f.get("to_stage"))
        title = (f"Конверсия {_q(lang, f.get('from_stage'))} → {dst}{ru_within} по неделям" if ru
                 else f"Weekly {en_days}conversion {_q(lang, f.get('from_stage'))} → {dst}")
    seg = f.get("segment") if f.get("kind") == "segment_drop" else None
    if isinstance(seg, dict) and seg.get("segment") is not None:
        title += f", {_short(seg['segment'], 20)}"
    ax.set_title(title, fontdict=FONT, loc="left")
    ax.legend(loc="lower left", ncol=2, fontsize=FONT["size"] - 4, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _named_roles(f: dict) -> dict[str, str]:
    """manager_id -> role for everyone the item names, in any metric: over, under, and whoever
    the plan moves work from (giver) or to (taker). A person over on leads stays coloured on
    the deals panel too: the reader looks for the same names in both."""
    roles: dict[str, str] = {}
    for moves in (f.get("plan") or {}).values():
        for m in moves or []:
            roles.setdefault(str(m.get("from_manager_id")), "giver")
            roles.setdefault(str(m.get("to_manager_id")), "taker")
    for panel in (f.get("metrics") or {}).values():
        for r in panel.get("loads") or []:
            if r.get("role") in ("giver", "taker"):
                roles.setdefault(str(r["manager_id"]), r["role"])
    for side in ("over", "under"):  # over/under outrank giver/taker
        for r in f.get(side) or []:
            roles[str(r["manager_id"])] = side
    for panel in (f.get("metrics") or {}).values():
        for r in panel.get("loads") or []:
            if r.get("role") in ("over", "under"):
                roles[str(r["manager_id"])] = r["role"]
    return roles


def load_chart(insight: Insight, lang: str) -> bytes | None:
    fig = load_figure(insight, lang)
    return None if fig is None else _png(fig)


def load_figure(insight: Insight, lang: str) -> Figure | None:
    """One panel per metric the item names (open deals, new leads), load per full-time person
    against the team's normal band, the team named in the title; every person the item names
    (over/under, and everyone the plan gives from or to, in any metric) is coloured, the rest
    grey-blue, and the legend says what the colours mean."""
    f = insight.facts
    metrics = [m for m in ("open_deals", "new_leads") if (f.get("metrics") or {}).get(m, {}).get("loads")]
    if not metrics:
        return None
    panels = [f["metrics"][m] for m in metrics]
    first = panels[0]["loads"]
    order = [r["manager_id"] for r in sorted(first, key=lambda r: (float(r["load"]), str(r["manager_id"])))]
    label = {r["manager_id"]: _short(r.get("manager_name") or r.get("manager_id"), 22) for p in panels for r in p["loads"]}
    names = [label[i] for i in order]
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    left = min(0.45, 0.04 + 0.0135 * max(len(n) for n in names))
    fig.subplots_adjust(left=left, right=0.97, top=0.8, bottom=0.1, wspace=0.12)
    over_c, under_c = RECENT_COLOR, ACCENT
    role_color = {"over": over_c, "giver": over_c, "under": under_c, "taker": under_c}
    named = _named_roles(f)
    ax0 = None
    for k, (metric, panel) in enumerate(zip(metrics, panels)):
        ax = fig.add_subplot(1, len(panels), k + 1, sharey=ax0)
        ax0 = ax0 or ax
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=FONT["size"] - 1)
        rows = {r["manager_id"]: r for r in panel["loads"]}
        values = [float(rows[i]["load"]) if i in rows else 0.0 for i in order]
        colors = [role_color.get((rows.get(i) or {}).get("role") or named.get(str(i)), BASE_COLOR) for i in order]
        median = float(panel.get("team_median") or 0)
        lo, hi = panel.get("band_low_load"), panel.get("band_high_load")
        if lo is not None and hi is not None:
            ax.axvspan(float(lo), float(hi), color=GREY, alpha=0.18, lw=0,
                       label="обычный разброс" if lang == "ru" else "normal range")
        ax.axvline(median, color="#333333", lw=1.5, ls="--", label="медиана" if lang == "ru" else "median")
        ax.barh(names, values, color=colors, height=0.6)
        for y, v in enumerate(values):
            ax.text(v, y, " " + i18n.number(round(v), lang), va="center", fontsize=FONT["size"] - 3)
        if k:
            ax.tick_params(labelleft=False)
        # only deals touched within active_window_days count as load: the panel says so, as
        # the item's words do (messages.templates.manager_load)
        active = int(f.get("active_window_days") or 0)
        if lang == "ru":
            title = ("Новые заявки" if metric == "new_leads" else "Открытые сделки" +
                     (f" (движение за {i18n.count(active, 'day', 'ru', case='accs')})" if active else ""))
        else:
            title = ("New leads" if metric == "new_leads" else "Open deals" +
                     (f" (activity in {i18n.count(active, 'day', 'en')})" if active else ""))
        ax.set_title(title, fontdict={**FONT, "size": FONT["size"] - 1}, loc="left")
        ax.set_xlim(0, max(values + [float(hi or 0)]) * 1.18)
    team = f.get("team")
    if lang == "ru":
        who = f"Команда {_q(lang, team)}" if team else "Вся команда"
        fig.suptitle(f"{who}: нагрузка на полную ставку", x=0.02, ha="left", fontsize=FONT["size"] - 1,
                     fontfamily=FONT["family"])
    else:
        who = f"Team {_q(lang, team)}" if team else "The whole team"
        fig.suptitle(f"{who}: load per full-time person", x=0.02, ha="left", fontsize=FONT["size"] - 1,
                     fontfamily=FONT["family"])
    handles, labels = ax0.get_legend_handles_labels()
    shown_roles = set(named.values())
    if shown_roles & {"over", "giver"}:
        handles.append(Patch(color=over_c))
        labels.append("выше нормы или отдаёт" if lang == "ru" else "above normal or gives")
    if shown_roles & {"under", "taker"}:
        handles.append(Patch(color=under_c))
        labels.append("ниже нормы или получает" if lang == "ru" else "below normal or takes")
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 0.93), ncol=len(handles),
               fontsize=FONT["size"] - 5, frameon=False, columnspacing=1.2, handlelength=1.5)
    return fig


def loss_chart(insight: Insight, lang: str) -> bytes | None:
    fig = loss_figure(insight, lang)
    return None if fig is None else _png(fig)


def loss_figure(insight: Insight, lang: str) -> Figure | None:
    """Share of lost deals per reason, before and now; the legend names each period's dates
    and how many lost deals it had, each bar ends with its share and count."""
    f = insight.facts
    reasons = f.get("reasons") or []
    if f.get("kind") == "data_quality" or not reasons:
        return None
    rows = sorted(reasons, key=lambda r: float(r["recent_share"]))
    names = [_short(r["reason"], 26) for r in rows]
    ys = list(range(len(rows)))
    fig, ax = _figure(max(len(n) for n in names))
    for side, dy, color, word in (("baseline", 0.2, GREY, ("раньше", "before")),
                                  ("recent", -0.2, RECENT_COLOR, ("сейчас", "now"))):
        label = _period_label(word, f.get(f"{side}_start"), f.get(f"{side}_end"), lang)
        total = f.get(f"{side}_n")
        if isinstance(total, (int, float)):
            label += f", {i18n.count(total, 'deal', lang)}"
        shares = [float(r[f"{side}_share"]) for r in rows]
        ax.barh([y + dy for y in ys], shares, height=0.4, color=color, label=label)
        for y, share, r in zip(ys, shares, rows):
            n = r.get(f"{side}_n")
            text = i18n.percent(share, lang) + (f" ({i18n.number(n, lang)})" if isinstance(n, (int, float)) else "")
            ax.text(share, y + dy, " " + text, va="center", fontsize=FONT["size"] - 5)
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    top = max([float(r["baseline_share"]) for r in rows] + [float(r["recent_share"]) for r in rows] + [0.01])
    ax.set_xlim(0, min(1.0, top) * 1.3)  # room for the value labels after the longest bar
    ax.set_ylim(-0.7, len(rows) - 0.3 + 0.5 * max(1, len(rows)) ** 0.5)  # room for the legend above the bars
    ax.set_title("Причины проигрыша: доля проигранных сделок (число)" if lang == "ru"
                 else "Why deals were lost: share of lost deals (count)", fontdict=FONT, loc="left")
    ax.legend(loc="upper right", fontsize=FONT["size"] - 4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


FIGURES: dict[str, Callable[[Insight, str], Figure | None]] = {
    "conversion_drop": conversion_figure,
    "manager_load": load_figure,
    "loss_reasons": loss_figure,
}
CHARTS: dict[str, Callable[[Insight, str], bytes | None]] = {
    "conversion_drop": conversion_chart,
    "manager_load": load_chart,
    "loss_reasons": loss_chart,
}


def chart_figure(insight: Insight, lang: str) -> Figure | None:
    """The chart as a matplotlib Figure (what chart_for saves), or None as chart_for."""
    draw = FIGURES.get(insight.detector)
    if draw is None:
        return None
    with matplotlib.rc_context(SAFE_TEXT):
        return draw(insight, i18n.check_lang(lang))


def chart_for(insight: Insight, lang: str) -> bytes | None:
    """A PNG for the insight, or None when its detector has no chart or the facts lack the series."""
    with matplotlib.rc_context(SAFE_TEXT):  # tick labels are drawn while saving: keep it around both
        fig = chart_figure(insight, lang)
        return None if fig is None else _png(fig)
