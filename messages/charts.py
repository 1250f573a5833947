"""PNG charts drawn from an insight's facts, where a picture says it faster than words.

conversion_drop -> conversion per week with the baseline and recent periods shaded;
manager_load -> load per manager against the team's normal band; loss_reasons (shift) ->
share of each loss reason before and after. matplotlib's object API with the Agg canvas (no
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


def conversion_chart(insight: Insight, lang: str) -> bytes | None:
    """Weekly conversion of the insight's cohort (the segment's, for a drop in one segment),
    baseline and recent periods shaded; weeks without deals are left out of the line."""
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
                       color=color, alpha=0.12, lw=0, label=label[0] if lang == "ru" else label[1])
    ax.plot(weeks, rates, color="#333333", lw=2.5, marker="o", ms=6)
    for rate, color in ((f.get("baseline_rate"), BASE_COLOR), (f.get("recent_rate"), RECENT_COLOR)):
        if isinstance(rate, (int, float)):
            ax.axhline(rate, color=color, lw=1.5, ls="--")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, min(1.0, max(rates + [float(f.get("baseline_rate") or 0)]) * 1.25 + 0.02))
    shown = weeks[:: -(-len(weeks) // 6) or 1]  # at most 6 dates: more collide on a phone-width axis
    ax.set_xticks(shown)
    ax.set_xticklabels([i18n.format_short_date(w, lang) for w in shown])
    ru = lang == "ru"
    if f.get("basis") == "created" or (f.get("from_stage") is None and f.get("to_won")):
        title = "Доля выигранных новых сделок по неделям" if ru else "Weekly win rate of new deals"
    else:
        dst = ("выигрыш" if ru else "won") if f.get("to_won") else _q(lang, f.get("to_stage"))
        title = (f"Конверсия {_q(lang, f.get('from_stage'))} → {dst} по неделям" if ru
                 else f"Weekly conversion {_q(lang, f.get('from_stage'))} → {dst}")
    seg = f.get("segment") if f.get("kind") == "segment_drop" else None
    if isinstance(seg, dict) and seg.get("segment") is not None:
        title += f", {_short(seg['segment'], 20)}"
    ax.set_title(title, fontdict=FONT, loc="left")
    ax.legend(loc="lower left", fontsize=FONT["size"] - 2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def load_chart(insight: Insight, lang: str) -> bytes | None:
    """One panel per metric the item names (open deals, new leads), load per full-time person
    against the team's normal band; every person the item names (over/under, and everyone the
    plan gives from or to) is coloured, the rest grey-blue."""
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
    fig.subplots_adjust(left=left, right=0.97, top=0.84, bottom=0.1, wspace=0.12)
    over_c, under_c = RECENT_COLOR, ACCENT
    role_color = {"over": over_c, "giver": over_c, "under": under_c, "taker": under_c}
    ax0 = None
    for k, (metric, panel) in enumerate(zip(metrics, panels)):
        ax = fig.add_subplot(1, len(panels), k + 1, sharey=ax0)
        ax0 = ax0 or ax
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=FONT["size"] - 1)
        rows = {r["manager_id"]: r for r in panel["loads"]}
        values = [float(rows[i]["load"]) if i in rows else 0.0 for i in order]
        colors = [role_color.get((rows.get(i) or {}).get("role"), BASE_COLOR) for i in order]
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
        if lang == "ru":
            title = "Новые заявки" if metric == "new_leads" else "Открытые сделки"
        else:
            title = "New leads" if metric == "new_leads" else "Open deals"
        ax.set_title(title, fontdict={**FONT, "size": FONT["size"] - 1}, loc="left")
        ax.set_xlim(0, max(values + [float(hi or 0)]) * 1.18)
    fig.suptitle("На полную ставку; цветом — кого касается план" if lang == "ru"
                 else "Per full-time person; coloured: the people the plan names",
                 x=0.02, ha="left", fontsize=FONT["size"] - 2, fontfamily=FONT["family"])
    handles, labels = ax0.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=FONT["size"] - 4, frameon=False)
    return _png(fig)


def loss_chart(insight: Insight, lang: str) -> bytes | None:
    f = insight.facts
    reasons = f.get("reasons") or []
    if f.get("kind") == "data_quality" or not reasons:
        return None
    rows = sorted(reasons, key=lambda r: float(r["recent_share"]))
    names = [_short(r["reason"], 26) for r in rows]
    ys = list(range(len(rows)))
    fig, ax = _figure(max(len(n) for n in names))
    ax.barh([y + 0.2 for y in ys], [float(r["baseline_share"]) for r in rows], height=0.4, color=GREY,
            label="раньше" if lang == "ru" else "before")
    ax.barh([y - 0.2 for y in ys], [float(r["recent_share"]) for r in rows], height=0.4, color=RECENT_COLOR,
            label="сейчас" if lang == "ru" else "now")
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title("Причины проигрыша: доля сделок" if lang == "ru" else "Why deals were lost: share of lost deals",
                 fontdict=FONT, loc="left")
    ax.legend(loc="lower right", fontsize=FONT["size"] - 2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


CHARTS: dict[str, Callable[[Insight, str], bytes | None]] = {
    "conversion_drop": conversion_chart,
    "manager_load": load_chart,
    "loss_reasons": loss_chart,
}


def chart_for(insight: Insight, lang: str) -> bytes | None:
    """A PNG for the insight, or None when its detector has no chart or the facts lack the series."""
    draw = CHARTS.get(insight.detector)
    if draw is None:
        return None
    with matplotlib.rc_context(SAFE_TEXT):
        return draw(insight, i18n.check_lang(lang))
