"""manager_load: one team's work is unevenly spread; who is over, who is under, and the plan (director)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Span, Words, name, template

def accusative(ctx: Ctx, n: int, word: str) -> str:
    """A count as the object of "передайте / направьте": "1 сделку", "3 сделки", "5 сделок"."""
    return ctx.count(n, word, case="accs")


def times(ctx: Ctx, ratio: float) -> str:
    """'в 2,1 раза' / '2.1×' for how many times more (or fewer)."""
    if ctx.lang == "ru":
        return "в " + ctx.count(round(ratio, 1), "time")
    return f"{ctx.num(round(ratio, 1))}×"


def readable(x: float) -> float:
    """Counts read as whole numbers once they are not tiny: 12.6 -> 13, 2.5 stays 2.5."""
    return round(x) if abs(x) >= 10 else round(x, 1)


def _person(ctx: Ctx, row: dict) -> Line:
    """'Ольга Ким — 46 (в 2,2 раза больше медианы)'; a part-timer's load per full-time person too."""
    ratio = float(row["ratio"])
    cap = float(row.get("capacity") or 1)
    value: Line = ctx.t("{v}", "{v}", v=ctx.num(row["value"]))
    if abs(cap - 1) > 1e-9:
        value = ctx.t("{v} при ставке {c}, это {l} на полную ставку", "{v} at {c} FTE, i.e. {l} per full-time person",
                      v=ctx.num(row["value"]), c=ctx.num(cap), l=ctx.num(readable(float(row["load"]))))
    if ratio >= 1:
        how = ctx.t("{x} больше медианы", "{x} the median", x=times(ctx, ratio))
    elif ratio > 0:
        how = ctx.t("{x} меньше медианы", "{x} of the median", x=times(ctx, 1 / ratio) if ctx.lang == "ru" else ctx.pct(ratio))
    else:
        how = ctx.t("ни одной", "none at all")
    return ctx.t("{m} — {v} ({h})", "{m} — {v} ({h})", m=name(row["manager_name"]), v=value, h=how)


def _joined(lines: list[Line], sep: str = ", ") -> Line:
    out: Line = ()
    for k, ln in enumerate(lines):
        out += ((Span(sep),) if k else ()) + ln
    return out


def _metric_lines(ctx: Ctx, metric: str, m: dict, over: list[dict], under: list[dict],
                  active_days: int = 0) -> list[Line]:
    median = ctx.num(readable(float(m["team_median"])))
    if metric == "open_deals" and active_days:
        # Only deals with a touch in the window count as load (detectors.manager_load): say so,
        # or a director who counts a manager's open deals in the CRM finds 136 where we said 42.
        head = ctx.t("Открытые сделки с движением за {d}: медиана команды — {med} на полную ставку.",
                     "Open deals with any activity in the {d}: the team median is {med} per full-time person.",
                     d=ctx.count(active_days, "day", case="accs", before=ctx.s("последний", "last")), med=median)
    elif metric == "new_leads":
        head = ctx.t("Новые заявки за {d}: медиана команды — {med} на полную ставку.",
                     "New leads in the {d}: the team median is {med} per full-time person.",
                     d=ctx.count(int(m.get("window_days") or 0), "day", case="accs", before=ctx.s("последний", "last")),
                     med=median)
    else:
        head = ctx.t("Открытые сделки: медиана команды — {med} на полную ставку.",
                     "Open deals: the team median is {med} per full-time person.", med=median)
    out = [head]
    if over:
        out.append(ctx.t("Больше обычного: {p}.", "Over: {p}.", p=_joined([_person(ctx, r) for r in over])))
    if under:
        out.append(ctx.t("Меньше обычного: {p}.", "Under: {p}.", p=_joined([_person(ctx, r) for r in under])))
    return out


def _plan_person(ctx: Ctx, who: str, load: dict | None) -> Line:
    """A giver or taker the lines above do not name gets their count ("Данияр Ахметов (сейчас
    15)"): otherwise a director cannot see why the plan picked them."""
    if not load or load.get("role") not in ("giver", "taker"):
        return ctx.t("{m}", "{m}", m=name(who))
    cap = float(load.get("capacity") or 1)
    if abs(cap - 1) > 1e-9:
        return ctx.t("{m} (сейчас {v} при ставке {c})", "{m} (now {v} at {c} FTE)",
                     m=name(who), v=ctx.num(load["value"]), c=ctx.num(cap))
    return ctx.t("{m} (сейчас {v})", "{m} (now {v})", m=name(who), v=ctx.num(load["value"]))


def _plan_line(ctx: Ctx, metric: str, moves: list[dict], loads: list[dict]) -> Line:
    word = "deal" if metric == "open_deals" else "next_lead"
    by_id = {r["manager_id"]: r for r in loads}
    parts = [ctx.t("{n}: {a} → {b}", "{n}: {a} → {b}", n=accusative(ctx, int(x["count"]), word),
                   a=_plan_person(ctx, x["from_manager_name"], by_id.get(x["from_manager_id"])),
                   b=_plan_person(ctx, x["to_manager_name"], by_id.get(x["to_manager_id"]))) for x in moves]
    if metric == "open_deals":
        return ctx.t("Передайте {p}.", "Hand over {p}.", p=_joined(parts, "; "))
    return ctx.t("Направьте {p}.", "Route the next {p}.", p=_joined(parts, "; "))


@template("manager_load")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    team = f.get("team")
    if team:
        title = ctx.t("Команда {t}: нагрузка распределена неравномерно", "Team {t}: work is unevenly spread",
                      t=name(team))
    else:
        title = ctx.t("Нагрузка в команде распределена неравномерно", "Work is unevenly spread across the team")
    metrics = f.get("metrics") or {}
    body: list[Line] = []
    for metric in ("open_deals", "new_leads"):
        over = [r for r in f.get("over") or [] if r["metric"] == metric]
        under = [r for r in f.get("under") or [] if r["metric"] == metric]
        if (over or under) and metric in metrics:
            body += _metric_lines(ctx, metric, metrics[metric], over, under, int(f.get("active_window_days") or 0))
    persist = int(f.get("persist_days") or 0)
    window = int(f.get("outside_band_days_before") or 0)
    if persist and window > persist:
        body.append(ctx.t("Так было и {d} назад, и {w} назад; случайным разбросом это не объяснить (точный тест с поправкой на число сравнений).",
                          "It was so {d} ago and {w} ago as well, and it is not chance (an exact test, corrected for the number of comparisons).",
                          d=ctx.count(persist, "day"), w=ctx.count(window, "day")))
    elif persist:
        body.append(ctx.t("Так было и {d} назад; случайным разбросом это не объяснить (точный тест с поправкой на число сравнений).",
                          "It was so {d} ago as well, and it is not chance (an exact test, corrected for the number of comparisons).",
                          d=ctx.count(persist, "day")))
    else:
        body.append(ctx.t("Случайным разбросом это не объяснить (точный тест с поправкой на число сравнений).",
                          "It is not chance (an exact test, corrected for the number of comparisons)."))
    plan = f.get("plan") or {}
    steps = [_plan_line(ctx, metric, plan[metric], (metrics.get(metric) or {}).get("loads") or [])
             for metric in ("open_deals", "new_leads") if plan.get(metric)]
    if steps:
        action = _joined(steps, " ")
    else:
        action = ctx.t("Проверьте, как в команде распределяются сделки и заявки, и выровняйте нагрузку.",
                       "Check how deals and leads are assigned in the team, and even out the load.")
    details: list[Line] = []
    if steps:
        details.append(ctx.t("План выравнивает нагрузку до средней по команде: каждый отдаёт не больше своего избытка и получает не больше, чем ему не хватает.",
                             "The plan moves people towards the team's average load: nobody gives more than their excess or receives more than they lack."))
    return Words(title=title, body=body, action=action, details=details)
