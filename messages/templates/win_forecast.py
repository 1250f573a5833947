"""win_forecast: the won amount expected this month and next, and the deals likely to close
(director, weekly report). The second item lists a few deals, each with the similar past deals
behind its chance ("похожа на 40 прошлых сделок, из них выиграно 32 (80%)")."""
from __future__ import annotations

import calendar

from detectors.insight import Insight
from messages.methods import method_name
from messages.render import Ctx, Line, Words, name, template

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
    if f.get("kind") == "likely_to_close":
        return likely_words(f, ctx)
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
    body += _no_amount_lines(f, ctx)
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


def _no_amount_lines(f: dict, ctx: Ctx) -> list[Line]:
    """Open deals with no amount (empty or 0: a budget nobody filled in) are not in a sum of money:
    say how many of the open deals just named, and about how many of them are expected won; or
    why the forecast counts deals."""
    k, n = int(f.get("no_amount") or 0), int(f.get("open_deals") or 0)
    if not k:
        return []
    if f.get("unit") == "amount":
        won = round(float(f["months"][0].get("expected_no_amount") or 0))
        said = ctx.t("У {k} из них сумма не указана (пусто или 0): в суммы выше они не входят",
                     "{k} of them have no amount (empty or 0): they are not in the sums above", k=ctx.num(k))
        if not won:
            return [said + ctx.t(", и до конца месяца из них, скорее всего, не выиграют ни одной.",
                                 ", and none of them is likely to be won by the month's end.")]
        return [said + ctx.t("; до конца месяца из них ожидается выиграть около {w}.",
                             "; about {w} of them are expected to be won by the month's end.",
                             w=ctx.count(won, "deal", case="gent") if ctx.lang == "ru" else ctx.num(won))]
    if k >= n:
        return [ctx.t("Ни у одной из них не указана сумма (пусто или 0), поэтому прогноз — в сделках, а не в деньгах.",
                      "None of them has an amount (empty or 0), so the forecast counts deals, not money.")]
    return [ctx.t("У {k} из них сумма не указана (пусто или 0), поэтому прогноз — в сделках, а не в деньгах.",
                  "{k} of them have no amount (empty or 0), so the forecast counts deals, not money.", k=ctx.num(k))]


def likely_words(f: dict, ctx: Ctx) -> Words:
    deals = f.get("deals") or []
    title = ctx.t("Сделки, которые, скорее всего, будут выиграны: {n}", "Deals that look likely to close: {n}",
                  n=ctx.num(len(deals)))
    body: list[Line] = []
    for d in deals:
        line: Line = ctx.t("«{t}»", "“{t}”", t=name(d.get("deal_title") or d.get("deal_id") or "?"))
        if d.get("manager_name") or d.get("manager_id"):
            line += ctx.t(" ({m})", " ({m})", m=name(d.get("manager_name") or d.get("manager_id")))
        if isinstance(d.get("amount"), (int, float)) and d["amount"] > 0:
            line += ctx.t(", {v}", ", {v}", v=ctx.money(float(d["amount"]), f.get("currency")))
        if d.get("stage"):
            line += ctx.t(", этап «{s}»", ", stage “{s}”", s=name(d["stage"]))
        line += ctx.t(": шанс {p}, на этом этапе обычно {b}.", ": win chance {p}, {b} usual at this stage.",
                      p=ctx.pct(float(d["p_win"])), b=ctx.pct(float(d["stage_win_rate"])))
        n, won = int(d.get("similar_n") or 0), int(d.get("similar_won") or 0)
        if n:
            line += ctx.t(" Похожа на {n} прошлых сделок, из них выиграно {w} ({p}).",
                          " It looks like {n} past deals, of which {w} were won ({p}).",
                          n=ctx.num(n), w=ctx.num(won), p=ctx.pct(won / n))
        body.append(line)
    more = int(f.get("candidates") or 0) - len(deals)
    if more > 0:
        body.append(ctx.t("И ещё таких сделок: {n}.", "And {n} more such deals.", n=ctx.num(more)))
    if f.get("unit") == "amount" and float(f.get("above_pipeline") or 0) > 0:
        body.append(ctx.t("По этим сделкам модель ждёт на {v} больше, чем взвешенная воронка.",
                          "The model expects {v} more from these deals than the weighted pipeline does.",
                          v=ctx.money(float(f["above_pipeline"]), f.get("currency"))))
    action = ctx.t("Учтите их в прогнозе месяца и помогите менеджерам довести их до оплаты: не дайте им остыть.",
                   "Count them in the month's forecast and help the managers get them signed before they cool down.")
    details = [ctx.t("Шанс не ниже {c} и выше доли выигранных на этапе хотя бы на {l}; модель: {k}.",
                     "Chance at least {c} and at least {l} above the stage's win rate; model: {k}.",
                     c=ctx.pct(float(f.get("min_chance") or 0)), l=ctx.pct(float(f.get("min_lift") or 0)),
                     k=name(method_name(str(f.get("model") or "?"), ctx.lang)))]
    return Words(title=title, body=body, action=action, details=details, money=float(f.get("above_pipeline") or 0))
