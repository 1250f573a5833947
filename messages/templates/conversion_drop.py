"""conversion_drop: conversion fell at a stage, in one segment, or the deal mix moved (director).

Three kinds (facts["kind"]): "drop" (the stage pair fell; drivers only when the detector found
segments that fell significantly more than the rest), "segment_drop" (one segment fell while
the rest held), "mix_shift" (segments held, more deals come from one that converts worse).
"""
from __future__ import annotations

from detectors.insight import Insight
from messages import i18n
from messages.render import Ctx, Line, Span, Words, name, template

# dimension -> (ru nominative, en, ru genitive "сделок ...", ru accusative "на ...", ru "в остальных ...",
#               ru "внутри каждого ...")
DIMENSIONS = {
    "source": ("источник", "source", "источника", "источник", "источниках", "Внутри каждого источника"),
    "manager": ("менеджер", "manager", "менеджера", "менеджера", "у остальных менеджеров", "У каждого менеджера"),
    "region": ("регион", "region", "региона", "регион", "регионах", "В каждом регионе"),
    "segment": ("сегмент", "segment", "сегмента", "сегмент", "сегментах", "Внутри каждого сегмента"),
    "team": ("команда", "team", "команды", "команду", "командах", "В каждой команде"),
}


def _dim(dimension: object) -> tuple[str, str, str, str, str, str]:
    d = str(dimension or "")
    return DIMENSIONS.get(d, (d, d, d, d, d, f"Внутри каждого значения «{d}»"))


def quoted(ctx: Ctx, value: object) -> Line:
    return ctx.t("«{v}»", "“{v}”", v=name(value))


def stage_to(ctx: Ctx, f: dict) -> Line:
    """«Переговоры», or "a won deal" when the target is the win itself."""
    if f.get("to_won"):
        return ctx.t("выигранную сделку", "a won deal")
    return quoted(ctx, f["to_stage"])


def stage_of(ctx: Ctx, stage: object, case: str = "gent") -> Line:
    """A stage after a Russian preposition: "до этапа «Переговоры»", "на этапе «КП отправлено»".
    A quoted CRM name cannot be declined, so "этап" takes the case ("до «Переговоры»" is wrong)."""
    word = {"gent": "этапа", "loct": "этапе"}[case]
    return ctx.t("{w} «{v}»", "“{v}”", w=word, v=name(stage))


def within(ctx: Ctx, f: dict) -> Line:
    """" within 30 days" / " за 30 дней" when the horizon is a setting that cuts deals short (many take longer)
    or a default: "17% were won" then means won within 30 days, and on a slow pipeline most of
    the recent deals are still open (Maven, 2 October 2017: 71% open; their final win rate did
    not fall), so the title and the cost must not say "won" alone. A learned horizon covers
    most deals that convert at all and needs no qualifier."""
    d = _capped(f)
    if not d:
        return ()
    return ctx.t(" за {d}", " within {d}", d=ctx.count(d, "day", case="accs"))


def _capped(f: dict) -> int:
    """The horizon in days when the words must name it (see `within`), else 0."""
    d = f.get("horizon_days")
    return int(d) if d and f.get("horizon_source") in ("max", "default") else 0


_CASES = {0: "nomn", 2: "gent", 3: "accs"}  # index into DIMENSIONS -> the Russian case of the value


def _value(ctx: Ctx, seg: dict, case: str = "nomn") -> Line:
    """A segment's value: a stage or source in quotes (no case needed), a manager's name declined
    ("сделок менеджера Тимура Бекмуханова"), or in brackets when it cannot be declined."""
    if seg.get("dimension") == "manager":  # a person's name reads without quotes
        declined = ctx.person(seg["segment"], case)
        if declined is None:
            return ctx.t("({v})", "{v}", v=name(seg["segment"]))
        return (declined,)
    return quoted(ctx, seg["segment"])


def segment_label(ctx: Ctx, seg: dict, case: int = 0) -> Line:
    """"источник «Сайт»" (case 0 nominative, 3 accusative: "на менеджера Айгерим")."""
    forms = _dim(seg.get("dimension"))
    return ctx.t("{d} {v}", "{d} {v}", d=ctx.s(forms[case], forms[1]), v=_value(ctx, seg, _CASES.get(case, "nomn")))




def others(ctx: Ctx, seg: dict) -> Line:
    """"в остальных источниках" / "everywhere else"."""
    plural = _dim(seg.get("dimension"))[4]
    ru = plural if plural.startswith("у ") else "в остальных " + plural
    return ctx.t("{x}", "everywhere else", x=ru)


def cohort(ctx: Ctx, f: dict) -> Line:
    """When the recent cohort entered the stage. Not "the last N days": the detector waits one
    horizon for every deal to have its chance, so the cohort ends that long before now."""
    if f.get("recent_start") and f.get("recent_end"):
        return ctx.t("с {a} по {b}", "between {a} and {b}", a=i18n.day_month(f["recent_start"], ctx.lang),
                     b=i18n.day_month(f["recent_end"], ctx.lang))
    return ctx.t("недавно", "recently")


def _created(f: dict) -> bool:
    return f.get("basis") == "created" or f.get("from_stage") is None


def _cohort_sentence(ctx: Ctx, f: dict, x: Line, y: Line, seg: dict | None = None) -> Line:
    """Of the deals [of segment S] that reached A between ..., Y reached B instead of X (n vs m before)."""
    of = ()
    if seg is not None:
        forms = _dim(seg.get("dimension"))
        of = ctx.t(" {g} {v}", " from {d} {v}", g=forms[2], d=forms[1], v=_value(ctx, seg, "gent"))
    n = dict(a=quoted(ctx, f.get("from_stage")), b=stage_to(ctx, f), x=x, y=y, when=cohort(ctx, f),
             n=ctx.count(f["recent_n"], "deal"), m=ctx.num(f["baseline_n"]), of=of)
    n["w"] = within(ctx, f)
    if not _created(f):
        n["ag"] = stage_of(ctx, f["from_stage"])
        n["bg"] = stage_to(ctx, f) if f.get("to_won") else stage_of(ctx, f["to_stage"])
    if _created(f):
        return ctx.t("Из сделок{of}, созданных {when}, выиграно{w} {y} вместо {x} ({n} против {m} раньше).",
                     "Of the deals{of} created {when}, {y} were won{w} instead of {x} ({n} vs {m} before).", **n)
    if f.get("to_won"):
        return ctx.t("Из сделок{of}, дошедших до {ag} {when}, выиграно{w} {y} вместо {x} ({n} против {m} раньше).",
                     "Of the deals{of} that reached {a} {when}, {y} were won{w} instead of {x} ({n} vs {m} before).", **n)
    return ctx.t("Из сделок{of}, дошедших до {ag} {when}, до {bg} дошли{w} {y} вместо {x} ({n} против {m} раньше).",
                 "Of the deals{of} that reached {a} {when}, {y} reached {b}{w} instead of {x} ({n} vs {m} before).", **n)


def _what(ctx: Ctx, f: dict) -> Line:
    """"конверсия «A» → «B»" / "выигрыш после «A»" / "выигрыш новых сделок"."""
    if _created(f):
        return ctx.t("доля выигранных новых сделок", "the win rate of new deals")
    if f.get("to_won"):
        return ctx.t("доля выигранных после {a}", "the win rate after {a}", a=stage_of(ctx, f["from_stage"]))
    return ctx.t("конверсия {a} → {b}", "conversion {a} → {b}", a=quoted(ctx, f["from_stage"]), b=stage_to(ctx, f))


def _title(ctx: Ctx, f: dict, x: Line, y: Line) -> Line:
    kind = f.get("kind", "drop")
    what = _what(ctx, f)
    if kind == "segment_drop":
        seg = segment_label(ctx, f["segment"])
        prep = "For" if f["segment"].get("dimension") == "manager" else "In"
        return ctx.t("{seg}: {w} упала с {x} до {y}", "{prep} {seg}, {w} fell: {x} → {y}",
                     seg=_upper(ctx, seg) if ctx.lang == "ru" else seg, prep=prep, w=what, x=x, y=y)
    if kind == "mix_shift":
        return ctx.t("{W} снизилась из-за состава сделок: {x} → {y}", "{W} is lower because the deal mix changed: {x} → {y}",
                     W=_upper(ctx, what), x=x, y=y)
    d = _capped(f)
    if d:  # "30-day win rate": not "the win rate fell" while most recent deals are still open
        w = within(ctx, f)
        days = ctx.num(d)
        if _created(f):
            return ctx.t("Новые сделки стали реже выигрываться{w} после создания: {x} → {y}",
                         "{d}-day win rate of new deals fell: {x} → {y}", w=w, d=days, x=x, y=y)
        if f.get("to_won"):
            return ctx.t("Сделки после {a} стали реже выигрываться{w}: {x} → {y}", "{d}-day win rate after {a} fell: {x} → {y}",
                         a=stage_of(ctx, f["from_stage"]), w=w, d=days, x=x, y=y)
        return ctx.t("{W}{w} упала: {x} → {y}", "{d}-day {what} fell: {x} → {y}",
                     W=_upper(ctx, what), what=what, w=w, d=days, x=x, y=y)
    if _created(f):
        return ctx.t("Новые сделки стали реже выигрываться: {x} → {y}", "Win rate of new deals fell: {x} → {y}", x=x, y=y)
    if f.get("to_won"):
        return ctx.t("Сделки после {a} стали реже выигрываться: {x} → {y}", "Win rate after {a} fell: {x} → {y}",
                     a=stage_of(ctx, f["from_stage"]), x=x, y=y)
    return ctx.t("{W} упала: {x} → {y}", "{W} fell: {x} → {y}", W=_upper(ctx, what), x=x, y=y)


def _upper(ctx: Ctx, what: Line) -> Line:
    """The line with its first letter capitalised (only our own words are touched, never a CRM name)."""
    if not what or what[0].kind == "name" or not what[0].text:
        return what
    first = what[0]
    return (Span(first.text[:1].upper() + first.text[1:], first.kind),) + tuple(what[1:])


def _cost(ctx: Ctx, f: dict) -> Line | None:
    lost = f.get("lost_per_month")
    if not isinstance(lost, (int, float)) or lost <= 0:
        return None
    k = ctx.num(round(float(lost)))
    w = within(ctx, f)
    if f.get("to_won"):
        return ctx.t("Цена: примерно {k} в месяц — столько сделок раньше были бы выиграны{w}.",
                     "Cost: about {k} deals a month that would have been won{w} before.", k=k, w=w)
    return ctx.t("Цена: примерно {k} в месяц — столько сделок раньше дошли бы до {b}{w}.",
                 "Cost: about {k} deals a month that would have reached {b}{w} before.", k=k, w=w,
                 b=stage_of(ctx, f["to_stage"]))


def _stuck(ctx: Ctx, f: dict) -> Line:
    missed, still_open = f.get("recent_missed"), f.get("recent_missed_open")
    if (_created(f) or f.get("to_won")) and isinstance(missed, int) and isinstance(still_open, int) \
            and still_open * 2 > missed:
        # most of them are still open, not lost (a manager who stopped working leaves them so); "not
        # won within 30 days", not "never won": some of the rest were won later
        w = within(ctx, f)
        if still_open == missed > 1:
            return ctx.t("которые не были выиграны{w} (все {n} ещё открыты)", "that were not won{w} (all {n} are still open)",
                         w=w, n=ctx.num(missed))
        return ctx.t("которые не были выиграны{w} (ещё открыто: {o} из {n})", "that were not won{w} (still open: {o} of {n})",
                     w=w, o=ctx.num(still_open), n=ctx.num(missed))
    if _created(f):
        return ctx.t("которые были проиграны", "that were lost")  # "recent deals lost recently" said it twice
    src = stage_of(ctx, f["from_stage"])
    return (ctx.t("проигранных после {a}", "lost after {a}", a=src) if f.get("to_won")
            else ctx.t("застрявших на {a}", "that stopped at {a}", a=stage_of(ctx, f["from_stage"], "loct")))


def _dims_list(ctx: Ctx, dims: list) -> str:
    words = [ctx.s(_dim(d)[0], _dim(d)[1]) for d in dims]
    if len(words) <= 1:
        return words[0] if words else ""
    return ", ".join(words[:-1]) + ctx.s(" или ", " or ") + words[-1]


def _horizon(ctx: Ctx, f: dict) -> Line | None:
    """How long a deal was given, and where that number comes from (learned or a setting)."""
    d = f.get("horizon_days")
    if not d:
        return None
    days = ctx.count(d, "day")
    if _created(f):
        rule = ctx.t("Сделка считается выигранной, если её выиграли не позже чем через {d} после создания",
                     "A deal counts as won if it was won within {d} of its creation", d=days)
    elif f.get("to_won"):
        rule = ctx.t("Сделка считается выигранной, если её выиграли не позже чем через {d} после входа на этап",
                     "A deal counts as won if it was won within {d} of reaching the stage", d=days)
    else:
        rule = ctx.t("Сделка считается перешедшей, если дошла до следующего этапа за {d}",
                     "A deal counts as converted if it moved on within {d}", d=days)
    source = f.get("horizon_source")
    q = f.get("horizon_quantile")
    if source == "learned" and isinstance(q, (int, float)) and f.get("to_won"):
        why = ctx.t(": по вашим данным {q} выигранных сделок выиграны за это время.",
                    ": in your data {q} of won deals were won within that time.", q=ctx.pct(q))
    elif source == "learned" and isinstance(q, (int, float)):
        why = ctx.t(": по вашим данным {q} сделок, которые вообще переходят дальше, успевают за это время.",
                    ": in your data {q} of the deals that move on at all do so within that time.", q=ctx.pct(q))
    elif source == "min":
        why = ctx.t(" (нижняя граница из настроек: обычно сделки успевают быстрее).",
                    " (the lower bound from the settings: deals usually manage faster).")
    elif source == "max":
        why = ctx.t(" (верхняя граница из настроек: многим сделкам нужно больше).",
                    " (the upper bound from the settings: many deals take longer).")
    elif source == "default":
        why = ctx.t(" (из настроек: данных мало, чтобы узнать обычный срок).",
                    " (from the settings: too little data to learn the usual time).")
    else:
        why = ctx.t(".", ".")
    return ctx.t("{r}{w}", "{r}{w}", r=rule, w=why)


@template("conversion_drop")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    kind = f.get("kind", "drop")
    before, after = ctx.pct(f["baseline_rate"]), ctx.pct(f["recent_rate"])
    title = _title(ctx, f, before, after)
    body: list[Line] = []
    details: list[Line] = []
    stuck = _stuck(ctx, f)
    drivers = list(f.get("drivers") or [])

    if kind == "segment_drop":
        seg = f["segment"]
        body.append(_cohort_sentence(ctx, f, before, after, seg=seg))
        if f.get("rest_baseline_rate") is not None and f.get("rest_recent_rate") is not None:
            body.append(ctx.t("{o}: {x} → {y}, так что падение именно здесь.", "Everywhere else: {x} → {y}, so the drop is confined to {seg}.",
                              o=_upper(ctx, others(ctx, seg)), seg=segment_label(ctx, seg),
                              x=ctx.pct(f["rest_baseline_rate"]), y=ctx.pct(f["rest_recent_rate"])))
        action = ctx.t("Стоит разобрать несколько последних сделок ({who}), {s}: что в них пошло иначе?",
                       "Go through a few recent deals ({who}) {s}: what went differently?",
                       who=segment_label(ctx, seg), s=stuck)
    elif kind == "mix_shift":
        mix = f["mix"]
        forms = _dim(mix.get("dimension"))
        body.append(_cohort_sentence(ctx, f, before, after))
        body.append(ctx.t("{w} конверсия почти не изменилась: при прежнем составе сделок была бы {adj}.",
                          "{each} {d} conversion held: with the old mix it would be {adj}.",
                          w=forms[5], d=forms[1], adj=ctx.pct(mix["rate_at_baseline_mix"]),
                          each="For each" if mix.get("dimension") == "manager" else "Within each"))
        body.append(ctx.t("Но больше сделок теперь приходится на {seg} ({sb} → {sr} всех сделок), а у них конверсия {r}.",
                          "But more deals now come from {seg} ({sb} → {sr} of all deals), which converts at {r}.",
                          seg=segment_label(ctx, mix, case=3), sb=ctx.pct(mix["baseline_share"]),
                          sr=ctx.pct(mix["recent_share"]), r=ctx.pct(mix["segment_rate"])))
        action = ctx.t("Это не провал этапа, а другой поток сделок. Если рост числа сделок {g} {v} не планировали, "
                       "проверьте, откуда идут сделки; если планировали, учтите их конверсию в плане.",
                       "This is not a failing stage but a different flow of deals. If the growth of {d} {v} was not "
                       "planned, check where deals come from; if it was, plan with its conversion in mind.",
                       g=forms[2], d=forms[1], v=_value(ctx, mix, "gent"))
    else:
        body.append(_cohort_sentence(ctx, f, before, after))
        if drivers:
            top = drivers[0]
            rest = ""
            if top.get("rest_baseline_rate") is not None and top.get("rest_recent_rate") is not None:
                rest = ctx.t(", {o} {x} → {y}", "; everywhere else {x} → {y}", o=others(ctx, top),
                             x=ctx.pct(top["rest_baseline_rate"]), y=ctx.pct(top["rest_recent_rate"]))
            body.append(ctx.t("Падение сосредоточено: {who} — {x} → {y}{rest}.", "Concentrated in {who}: {x} → {y}{rest}.",
                              who=segment_label(ctx, top), x=ctx.pct(top["baseline_rate"]), y=ctx.pct(top["recent_rate"]),
                              rest=rest))
            if len(drivers) > 1:
                nxt = drivers[1]
                body.append(ctx.t("И отдельно от этого — {who}: {x} → {y}.", "Separately from that, {who}: {x} → {y}.",
                                  who=segment_label(ctx, nxt), x=ctx.pct(nxt["baseline_rate"]), y=ctx.pct(nxt["recent_rate"])))
            action = ctx.t("Стоит разобрать несколько последних сделок ({who}), {s}: что в них пошло иначе?",
                           "Go through a few recent deals ({who}) {s}: what went differently?",
                           who=segment_label(ctx, top), s=stuck)
        else:
            # Not "across the board": no driver means no segment fell *significantly* more, not that
            # all fell alike (a source at 20% of deals falling 14% -> 5% on 42 deals names no driver,
            # and "the drop is across the board" sent the director after a common cause).
            if f.get("segments_checked"):
                body.append(ctx.t("Ни один {d} не просел заметно сильнее остальных.",
                                  "No {d} fell markedly more than the rest.", d=_dims_list(ctx, f["segments_checked"])))
            action = ctx.t("Стоит искать общую причину (цены, условия, скрипт) и разобрать несколько последних сделок, {s}: "
                           "что в них пошло иначе?",
                           "Look for a common cause (prices, terms, script) and go through a few recent deals {s}: "
                           "what went differently?", s=stuck)
    mix = f.get("mix")
    if kind == "drop" and isinstance(mix, dict) and mix.get("segment") is not None:
        body.append(ctx.t("Отчасти это состав сделок: больше сделок теперь приходится на {seg} ({sb} → {sr}), а у них "
                          "конверсия {r}; при прежнем составе было бы {adj}.",
                          "Part of it is the mix: more deals now come from {seg} ({sb} → {sr}), which converts at {r}; "
                          "with the old mix it would be {adj}.",
                          seg=segment_label(ctx, mix, case=3), sb=ctx.pct(mix["baseline_share"]),
                          sr=ctx.pct(mix["recent_share"]), r=ctx.pct(mix["segment_rate"]),
                          adj=ctx.pct(mix["rate_at_baseline_mix"])))
    cost = _cost(ctx, f) if kind != "mix_shift" else None
    if cost is not None:
        body.append(cost)

    if f.get("baseline_start") and f.get("recent_start"):
        details.append(ctx.t("Периоды: раньше {p1} ({n1}), сейчас {p2} ({n2}).",
                             "Periods: before {p1} ({n1}), now {p2} ({n2}).",
                             p1=ctx.period(f["baseline_start"], f["baseline_end"]), n1=ctx.count(f["baseline_n"], "deal"),
                             p2=ctx.period(f["recent_start"], f["recent_end"]), n2=ctx.count(f["recent_n"], "deal")))
    horizon = _horizon(ctx, f)
    if horizon is not None:
        details.append(horizon)
    for d in drivers[2:5]:
        details.append(ctx.t("Также: {who}: {x} → {y}.", "Also: {who}, {x} → {y}.",
                             who=segment_label(ctx, d), x=ctx.pct(d["baseline_rate"]), y=ctx.pct(d["recent_rate"])))
    return Words(title=title, body=body, action=action, details=details)
