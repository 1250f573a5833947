"""loss_reasons: the mix of reasons deals are lost for shifted, or reasons are not recorded (director)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, name, template


def _totals(ctx: Ctx, f: dict) -> Line:
    """How many deals were lost in each period, how many of them name a reason, and how long
    each period is: the periods differ in length, and the shares are of named reasons only."""
    if f.get("recent_lost") is None or not f.get("recent_days"):  # facts of an older version
        return ctx.t("Проигранных сделок с названной причиной: {n}, в прошлом периоде — {m}.",
                     "{n} lost with a named reason, vs {m} in the previous period.",
                     n=ctx.s(ctx.num(f["recent_n"]), ctx.count(f["recent_n"], "deal")), m=ctx.num(f["baseline_n"]))
    # Russian: "сделок проиграно: 31", not "проиграно 31 сделка" (the verb would agree with 31)
    return ctx.t("Проигранных сделок за {d}: {N} (причина названа у {n}), за {D} до этого: {M} (у {m}).",
                 "Lost: {N} in the {d} ({n} with a named reason), {M} in the {D} before ({m}).",
                 N=ctx.s(ctx.num(f["recent_lost"]), ctx.count(f["recent_lost"], "deal")), n=ctx.num(f["recent_n"]),
                 d=ctx.count(int(f["recent_days"]), "day", case="accs", before=ctx.s("последний", "last")),
                 M=ctx.num(f["baseline_lost"]), m=ctx.num(f["baseline_n"]),
                 D=ctx.count(int(f["baseline_days"]), "day", case="accs"))


def shift(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    reasons = list(f.get("reasons") or [])
    top_name = f.get("top_rising") or max(reasons, key=lambda r: r["recent_share"] - r["baseline_share"])["reason"]
    top = next((r for r in reasons if r["reason"] == top_name), None)
    reason = ctx.t("«{r}»", "“{r}”", r=name(top_name))
    # "из-за «Сроки поставки»" puts a nominative after "из-за"; a quoted CRM value cannot be
    # declined, so "по причине «…»" carries the case
    title = ctx.t("Всё чаще проигрываем по причине {r}", "More deals are lost to {r}", r=reason)
    body = []
    if top is not None:
        body.append(ctx.t(
            "С {a} по {b} причина {r} — у {x} проигранных сделок с названной причиной, раньше было {y}.",
            "From {a} to {b}, {r} was the reason for {x} of lost deals with a named reason, up from {y}.",
            a=ctx.date(f["recent_start"]), b=ctx.date(f["recent_end"]), r=reason,
            x=ctx.pct(top["recent_share"]), y=ctx.pct(top["baseline_share"])))
    others = sorted((r for r in reasons if r["reason"] != top_name),
                    key=lambda r: -abs(r["recent_share"] - r["baseline_share"]))[:2]
    for r in others:
        body.append(ctx.t("{r}: {y} → {x}.", "{r}: {y} → {x}.", r=ctx.t("«{n}»", "“{n}”", n=name(r["reason"])),
                          x=ctx.pct(r["recent_share"]), y=ctx.pct(r["baseline_share"])))
    body.append(_totals(ctx, f))
    action = ctx.t("Разберите с командой 3–4 последние сделки, проигранные по причине {r}: что можно было сделать иначе?",
                   "Go through 3–4 recent deals lost to {r} with the team: what could have been done differently?", r=reason)
    details = [ctx.t("Периоды: раньше {p1}, сейчас {p2}.", "Periods: before {p1}, now {p2}.",
                     p1=ctx.period(f["baseline_start"], f["baseline_end"]), p2=ctx.period(f["recent_start"], f["recent_end"]))]
    for r in reasons:
        details.append(ctx.t("{r}: {y} ({bn}) → {x} ({rn}).", "{r}: {y} ({bn}) → {x} ({rn}).",
                             r=ctx.t("«{n}»", "“{n}”", n=name(r["reason"])), y=ctx.pct(r["baseline_share"]),
                             bn=ctx.num(r.get("baseline_n", 0)), x=ctx.pct(r["recent_share"]), rn=ctx.num(r.get("recent_n", 0))))
    return Words(title=title, body=body, action=action, details=details)


def data_quality(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    title = ctx.t("У {x} проигранных сделок не указана причина", "{x} of lost deals have no loss reason",
                  x=ctx.pct(f["missing_share"]))
    body = [ctx.t("Причина не указана у {m} из {n}. Без неё не видно, почему мы проигрываем.",
                  "{m} of {n} have none, so we cannot see why deals are lost.",
                  m=ctx.num(f["missing_n"]), n=ctx.count(f["lost_n"], "lost_deal", case="gent"))]
    action = ctx.t("Сделайте причину отказа обязательной при закрытии сделки как проигранной.",
                   "Make the loss reason a required field when a deal is closed as lost.")
    details = [ctx.t("Порог: {t} сделок без причины.", "Threshold: {t} of deals without a reason.", t=ctx.pct(f["threshold"]))]
    return Words(title=title, body=body, action=action, details=details)


@template("loss_reasons")
def words(insight: Insight, ctx: Ctx) -> Words:
    kind = insight.facts.get("kind") or insight.subject.get("kind")
    if kind == "data_quality":
        return data_quality(insight, ctx)
    return shift(insight, ctx)
