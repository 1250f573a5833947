"""conversion_drop: a stage-to-stage conversion rate fell (director)."""
from __future__ import annotations

from detectors.insight import Insight
from messages import i18n
from messages.render import Ctx, Line, Words, name, template

DIMENSIONS = {
    "source": ("источник", "source"),
    "manager": ("менеджер", "manager"),
    "region": ("регион", "region"),
    "segment": ("сегмент", "segment"),
    "team": ("команда", "team"),
}


def quoted(ctx: Ctx, value: object) -> Line:
    return ctx.t("«{v}»", "“{v}”", v=name(value))


def stage_to(ctx: Ctx, f: dict) -> Line:
    """«Переговоры», or "a won deal" when the target is the win itself."""
    if f.get("to_won"):
        return ctx.t("выигранную сделку", "a won deal")
    return quoted(ctx, f["to_stage"])


def segment_label(ctx: Ctx, driver: dict) -> Line:
    dim = str(driver.get("dimension", ""))
    ru, en = DIMENSIONS.get(dim, (dim, dim))
    if dim == "manager":  # a person's name reads without quotes
        return ctx.t("{d} {v}", "{d} {v}", d=ctx.s(ru, en), v=name(driver["segment"]))
    return ctx.t("{d} {v}", "{d} {v}", d=ctx.s(ru, en), v=quoted(ctx, driver["segment"]))


def cohort(ctx: Ctx, f: dict) -> Line:
    """When the recent cohort entered the stage. Not "the last N days": the detector waits
    horizon_days for every deal to have its chance, so the cohort ends a month before now."""
    if f.get("recent_start") and f.get("recent_end"):
        return ctx.t("с {a} по {b}", "between {a} and {b}", a=i18n.day_month(f["recent_start"], ctx.lang),
                     b=i18n.day_month(f["recent_end"], ctx.lang))
    return ctx.t("недавно", "recently")


@template("conversion_drop")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    src, dst = quoted(ctx, f["from_stage"]), stage_to(ctx, f)
    before, after = ctx.pct(f["baseline_rate"]), ctx.pct(f["recent_rate"])
    numbers = dict(a=src, b=dst, x=before, y=after, when=cohort(ctx, f),
                   n=ctx.count(f["recent_n"], "deal"), m=ctx.num(f["baseline_n"]))
    if f.get("to_won"):
        title = ctx.t("Сделки после {a} стали реже выигрываться: {x} → {y}", "Win rate after {a} fell: {x} → {y}", **numbers)
        body = [ctx.t("Из сделок, дошедших до {a} {when}, выиграно {y} вместо {x} ({n} против {m} раньше).",
                      "Of the deals that reached {a} {when}, {y} were won instead of {x} ({n} vs {m} before).",
                      **numbers)]
    else:
        title = ctx.t("Конверсия {a} → {b} упала: {x} → {y}", "Conversion {a} → {b} fell: {x} → {y}", **numbers)
        body = [ctx.t("Конверсия из {a} в {b} упала с {x} до {y} у сделок, дошедших до {a} {when} ({n} против {m} раньше).",
                      "Conversion from {a} to {b} fell from {x} to {y} for deals that reached {a} {when} ({n} vs {m} before).",
                      **numbers)]
    drivers = sorted(f.get("drivers") or [], key=lambda d: -float(d.get("share_of_drop", 0)))
    stuck = (ctx.t("проигранных после {a}", "lost after {a}", a=src) if f.get("to_won")
             else ctx.t("застрявших на {a}", "that stopped at {a}", a=src))
    if drivers:
        top = drivers[0]
        body.append(ctx.t("Сильнее всего — {who}: {x} → {y}.", "Hit hardest: {who}, {x} → {y}.",
                          who=segment_label(ctx, top), x=ctx.pct(top["baseline_rate"]), y=ctx.pct(top["recent_rate"])))
        if len(drivers) > 1:
            nxt = drivers[1]
            body.append(ctx.t("Затем — {who}: {x} → {y}.", "Then {who}, {x} → {y}.",
                              who=segment_label(ctx, nxt), x=ctx.pct(nxt["baseline_rate"]), y=ctx.pct(nxt["recent_rate"])))
        action = ctx.t("Стоит разобрать несколько последних сделок ({who}), {s}: что в них пошло иначе?",
                       "Go through a few recent deals ({who}) {s}: what went differently?",
                       who=segment_label(ctx, top), s=stuck)
    else:
        action = ctx.t("Стоит разобрать несколько последних сделок, {s}: что в них пошло иначе?",
                       "Go through a few recent deals {s}: what went differently?", s=stuck)
    details = []
    if f.get("baseline_start") and f.get("recent_start"):
        details.append(ctx.t("Периоды: раньше {p1} ({n1}), сейчас {p2} ({n2}).",
                             "Periods: before {p1} ({n1}), now {p2} ({n2}).",
                             p1=ctx.period(f["baseline_start"], f["baseline_end"]), n1=ctx.count(f["baseline_n"], "deal"),
                             p2=ctx.period(f["recent_start"], f["recent_end"]), n2=ctx.count(f["recent_n"], "deal")))
    if f.get("horizon_days") and f.get("to_won"):
        details.append(ctx.t("Сделка считается выигранной, если её выиграли не позже чем через {d} после входа на этап.",
                             "A deal counts as won if it was won within {d}.", d=ctx.count(f["horizon_days"], "day")))
    elif f.get("horizon_days"):
        details.append(ctx.t("Сделка считается перешедшей, если дошла до следующего этапа за {d}.",
                             "A deal counts as converted if it reached the next stage within {d}.",
                             d=ctx.count(f["horizon_days"], "day")))
    for d in drivers[2:5]:
        details.append(ctx.t("Также: {who}: {x} → {y}.", "Also: {who}, {x} → {y}.",
                             who=segment_label(ctx, d), x=ctx.pct(d["baseline_rate"]), y=ctx.pct(d["recent_rate"])))
    return Words(title=title, body=body, action=action, details=details)
