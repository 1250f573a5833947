"""win_forecast: the won amount expected this month and next (director, weekly report)."""
from __future__ import annotations

import calendar

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, template

_RU_MONTHS = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
              "ноябрь", "декабрь"]


def month_name(ctx: Ctx, ym: str) -> str:
    year, month = (int(x) for x in ym.split("-"))
    return ctx.s(f"{_RU_MONTHS[month - 1]} {year}", f"{calendar.month_name[month]} {year}")


def _value(ctx: Ctx, f: dict, x: float) -> str:
    if f.get("unit") == "amount":
        return ctx.money(float(x), f.get("currency"))
    return ctx.count(round(float(x)), "deal")


@template("win_forecast")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    first = f["months"][0]
    title = ctx.t("Прогноз выигрыша на {m}: {v}", "Won forecast for {m}: {v}",
                  m=month_name(ctx, first["month"]), v=_value(ctx, f, first["expected"]))
    body: list[Line] = []
    for k, m in enumerate(f["months"]):
        label = month_name(ctx, m["month"]).capitalize() + (ctx.s(" (до конца месяца)", " (rest of the month)") if k == 0 else "")
        body.append(ctx.t("{m}: ожидается {v} (с вероятностью 80% от {lo} до {hi}); взвешенная воронка — {w}.",
                          "{m}: {v} expected (80% likely between {lo} and {hi}); weighted pipeline: {w}.",
                          m=label, v=_value(ctx, f, m["expected"]),
                          lo=_value(ctx, f, m["low"]), hi=_value(ctx, f, m["high"]),
                          w=_value(ctx, f, m["weighted_pipeline"])))
    body.append(ctx.t("Из открытых сейчас сделок ({n}); новые сделки месяца в прогноз не входят.",
                      "From the deals open now ({n}); deals created later in the month are not in it.",
                      n=ctx.num(int(f.get("open_deals") or 0))))
    if f.get("by") == "stage_baseline":
        body.append(ctx.t("Модель по истории компании пока не точнее доли выигранных на каждом этапе, поэтому прогноз "
                          "построен по этим долям.",
                          "On the company's own history the model is not yet better than each stage's win rate, "
                          "so the forecast uses those rates."))
    action = ctx.t("Сравните с планом месяца; если прогноз ниже, разберите с менеджерами крупные сделки, "
                   "которые могут закрыться в этом месяце.",
                   "Compare it with the month's plan; if it falls short, go through the large deals that could "
                   "close this month with the managers.")
    # the model's reason is English (predict/): shown only in English details, never mixed into Russian
    details = [ctx.t("", "How: {r}", r=str(f["model_reason"]))] if f.get("model_reason") and ctx.lang == "en" else []
    return Words(title=title, body=body, action=action, details=details)
