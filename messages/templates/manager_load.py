"""manager_load: a manager carries far more or far fewer deals/leads than the team (director)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, name, template

METRIC_NOUN = {"open_deals": "open_deal", "new_leads": "new_lead"}


def times(ctx: Ctx, ratio: float) -> str:
    """'в 2,1 раза' / '2.1×' for how many times more (or fewer)."""
    if ctx.lang == "ru":
        return "в " + ctx.count(round(ratio, 1), "time")
    return f"{ctx.num(round(ratio, 1))}×"


def readable(x: float) -> float:
    """Counts of deals read as whole numbers once they are not tiny: 12.6 -> 13, 2.5 stays 2.5."""
    return round(x) if abs(x) >= 10 else round(x, 1)


def metric_words(ctx: Ctx, metric: str) -> str:
    return {"open_deals": ctx.s("открытых сделок", "open deals"),
            "new_leads": ctx.s("новых заявок", "new leads")}[metric]


@template("manager_load")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    who, metric = name(f["manager_name"]), str(f["metric"])
    what = metric_words(ctx, metric)
    median = float(f["team_median"])
    load = float(f["load"])
    over = f["direction"] == "over"
    ratio = float(f.get("ratio") or (load / median if median else 0))
    factor = ratio if over else (1 / ratio if ratio else 0)
    if over:
        title = ctx.t("{m}: {w} {x} больше, чем обычно в команде", "{m} has {x} the team's usual {w}",
                      m=who, w=what, x=times(ctx, factor))
    elif factor:
        title = ctx.t("{m}: {w} {x} меньше, чем обычно в команде", "{m} has only {x} of the team's usual {w}",
                      m=who, w=what, x=times(ctx, factor) if ctx.lang == "ru" else ctx.pct(ratio))
    else:
        title = ctx.t("{m}: нет {w}", "{m} has no {w}", m=who, w=what)
    value = ctx.count(f["value"], METRIC_NOUN.get(metric, "deal"))
    window: Line = ()
    if metric == "new_leads" and f.get("window_days"):
        window = ctx.t(" за последние {d}", " in the last {d}", d=ctx.count(f["window_days"], "day"))
    capacity = float(f.get("capacity") or 1)
    cap: Line = ()
    if abs(capacity - 1) > 1e-9:
        cap = ctx.t(" (ставка {c} — это {l} на полную ставку)", " (at {c} FTE that is {l} per full-time person)",
                    c=ctx.num(capacity), l=ctx.num(round(load, 1)))
    body = [ctx.t("{v}{w}{c}; у типичного менеджера в команде — {med}.", "{v}{w}{c}; a typical teammate has {med}.",
                  v=value, w=window, c=cap, med=ctx.num(readable(median)))]
    if f.get("band_low") is not None and f.get("band_high") is not None:
        body.append(ctx.t("Нормальный разброс в команде — от {lo} до {hi}.", "The normal range in the team is {lo} to {hi}.",
                          lo=ctx.num(readable(float(f["band_low"]) * median)),
                          hi=ctx.num(readable(float(f["band_high"]) * median))))
    s = f.get("suggestion") or {}
    if s.get("count") and s.get("from_manager_name") and s.get("to_manager_name"):
        if s.get("kind") == "route_leads":
            action = ctx.t("Перенаправьте следующие {n}: {a} → {b}.", "Route the next {n}: {a} → {b}.",
                           n=ctx.count(s["count"], "lead"), a=name(s["from_manager_name"]), b=name(s["to_manager_name"]))
        else:
            action = ctx.t("Передайте {n}: {a} → {b}.", "Hand over {n}: {a} → {b}.",
                           n=ctx.count(s["count"], "deal"), a=name(s["from_manager_name"]), b=name(s["to_manager_name"]))
    elif over:
        action = ctx.t("Проверьте, успевает ли {m} вести все сделки, и перераспределите часть.",
                       "Check whether {m} can keep up, and move some of the work to others.", m=who)
    else:
        action = ctx.t("Узнайте у {m}, в чём дело: не хватает заявок или сделки не заводятся в CRM?",
                       "Ask {m} what is going on: too few leads, or deals not entered in the CRM?", m=who)
    details = []
    if f.get("team"):
        details.append(ctx.t("Команда: {t}.", "Team: {t}.", t=name(f["team"])))
    return Words(title=title, body=body, action=action, details=details)
