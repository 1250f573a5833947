"""stalled_deal: a deal idle longer than its stage's limit (manager), or a manager's deals that
look abandoned (one hygiene item).

The limit is worded by where it came from (facts `limit_source`): a learned limit is an
observation ("80% of deals move on from this stage within 9 working days"), a configured or
default one is a setting ("the limit set for this stage is 7 working days"). A configured
number is never presented as what deals usually do.
"""
from __future__ import annotations

from detectors.insight import Insight
from messages import i18n
from messages.render import Ctx, Line, Words, name, template

TOUCH_KINDS = {
    "stage_change": ("смена этапа", "stage change"),
    "created": ("создание сделки", "deal created"),
    "call": ("звонок", "call"),
    "meeting": ("встреча", "meeting"),
    "email": ("письмо", "email"),
    "task": ("задача", "task"),
}


def deal_name(f: dict) -> object:
    return f.get("deal_title") or f.get("deal_id") or "?"


def amount(ctx: Ctx, f: dict) -> str | None:
    if isinstance(f.get("amount"), (int, float)) and f["amount"] > 0:
        return ctx.money(f["amount"], f.get("currency"))
    return None


def _days(ctx: Ctx, n: object) -> str:
    return ctx.count(int(n or 0), "working_day")


def compact_line(ctx: Ctx, f: dict) -> Line:
    """One deal in a grouped list: «title» — client · amount · «stage» N working days (limit M)."""
    line = ctx.t("«{t}»", "“{t}”", t=name(deal_name(f)))
    if f.get("client_name"):
        line += ctx.t(" — {c}", " — {c}", c=name(f["client_name"]))
    money = amount(ctx, f)
    if money:
        line += ctx.t(" · {m}", " · {m}", m=money)
    if f.get("limit_source") == "learned" and not f.get("limit_bound"):
        limit = ctx.t("обычно до {l}", "usually within {l}", l=ctx.num(f["stage_limit_days"]))
    else:
        limit = ctx.t("срок {l}", "limit {l}", l=ctx.num(f["stage_limit_days"]))
    line += ctx.t(" · «{s}» {d} ({l})", " · “{s}” {d} ({l})", s=name(f["stage"]), d=_days(ctx, f["days_idle"]), l=limit)
    return line


def _window(ctx: Ctx, f: dict) -> Line:
    days = int(f.get("learn_days") or 365)
    if days == 365:
        return ctx.t("за последний год", "in the last year")
    return ctx.t("за {d}", "in the {d}", d=ctx.count(days, "day", case="accs", before=ctx.s("последний", "last")))


def limit_line(ctx: Ctx, f: dict) -> Line:
    """Where the stage's limit comes from, in words that match: an observation or a setting."""
    limit, waited = _days(ctx, f["stage_limit_days"]), _days(ctx, f["days_idle"])
    source = f.get("limit_source")
    if source == "learned":
        share = ctx.pct(float(f.get("limit_quantile") or 0.8))
        moves, window = ctx.num(int(f.get("limit_moves") or 0)), _window(ctx, f)
        if f.get("limit_bound") == "max":
            rest = ctx.pct(1 - float(f.get("limit_quantile") or 0.8))
            return ctx.t("Больше {r} сделок стоят на этом этапе дольше, чем {l} (ушли с этапа {w}: {n}), "
                         "поэтому срок — максимум из настроек, {l}; эта без движения уже {d}.",
                         "More than {r} of deals stay at this stage longer than {l} ({n} moved on {w}), "
                         "so the limit is the configured maximum, {l}; this one has waited {d}.",
                         r=rest, l=limit, n=moves, w=window, d=waited)
        learned = _days(ctx, f.get("learned_days") or 0)
        if f.get("limit_bound") == "min":
            return ctx.t("{p} сделок уходят с этого этапа за {k} или быстрее (ушли {w}: {n}); "
                         "срок не короче минимума из настроек, {l}; эта без движения уже {d}.",
                         "{p} of deals that move on from this stage do so within {k} ({n} {w}); "
                         "the limit is the configured minimum, {l}; this one has waited {d}.",
                         p=share, k=learned, n=moves, w=window, l=limit, d=waited)
        return ctx.t("{p} сделок уходят с этого этапа за {l} или быстрее (ушли {w}: {n}); "
                     "эта без движения уже {d}.",
                     "{p} of deals that move on from this stage do so within {l} ({n} {w}); "
                     "this one has waited {d}.", p=share, l=limit, n=moves, w=window, d=waited)
    if source == "configured":
        return ctx.t("Срок для этого этапа задан в настройках — {l}; эта сделка без движения уже {d}.",
                     "The limit set for this stage is {l}; this one has waited {d}.", l=limit, d=waited)
    if f.get("no_history"):
        # "the data", not "the export": a SQL source can lack the history too
        return ctx.t("В данных нет истории этапов, поэтому обычный срок этого этапа неизвестен и действует срок "
                     "по умолчанию — {l}; эта сделка без движения уже {d}.",
                     "The data has no stage history, so this stage's usual pace is unknown and the default "
                     "limit applies: {l}; this one has waited {d}.", l=limit, d=waited)
    return ctx.t("Истории пока мало, чтобы узнать обычный срок этого этапа (переходов с него: {n}, нужно {m}), "
                 "поэтому действует срок по умолчанию — {l}; эта сделка без движения уже {d}.",
                 "There is too little history to learn this stage's usual pace ({n} moves on, {m} needed), "
                 "so the default limit applies: {l}; this one has waited {d}.",
                 n=ctx.num(int(f.get("limit_moves") or 0)), m=ctx.num(int(f.get("min_moves") or 0)), l=limit, d=waited)


def abandoned_words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    n = int(f["deals"])
    if f.get("owner_inactive"):
        return _left_behind_words(f, n, ctx)
    if ctx.you:
        title = ctx.t("Сделки, похожие на заброшенные: {n}", "Deals that look abandoned: {n}", n=ctx.num(n))
    else:
        title = ctx.t("Сделки, похожие на заброшенные, — {m}: {n}", "Deals that look abandoned, {m}: {n}",
                      m=name(f.get("manager_name") or f.get("manager_id") or "?"), n=ctx.num(n))
    body = [ctx.t("Каждая стоит без движения более чем в {k} дольше срока своего этапа или дольше, чем {a}.",
                  "Each has been idle more than {k} its stage's limit, or longer than {a}.",
                  k=ctx.count(float(f["abandon_factor"]), "time"), a=_days(ctx, f["abandon_after_days"]))]
    stages = list((f.get("by_stage") or {}).items())
    if len(stages) > 1:
        parts: Line = ()
        shown = stages if len(stages) <= 5 else stages[:4]  # a fifth stage takes no more room than "the rest"
        for k, (stage, count) in enumerate(shown):
            parts += (ctx.t(", ", ", ") if k else ()) + ctx.t("«{s}» — {c}", "“{s}”: {c}", s=name(stage), c=ctx.num(count))
        rest = stages[len(shown):]
        if rest:  # the stages left out are counted, so the parts add up to the title's number
            parts += ctx.t(", ещё на {k} — {c}", ", {n} other {s}: {c}", k=ctx.count(len(rest), "stage", case="loct"),
                           n=ctx.num(len(rest)), s=i18n.noun(len(rest), "stage", "en"),
                           c=ctx.num(sum(int(count) for _stage, count in rest)))
        body.append(ctx.t("По этапам: ", "By stage: ") + parts + ctx.t(".", "."))
    body += _oldest_and_amount(f, ctx)
    if ctx.you:
        action = ctx.t("Пройдите по списку: закройте как проигранные те, что уже не живы, а по живым назначьте "
                       "следующий шаг.", "Go through them: close the dead ones as lost, and give the live ones a next step.")
    else:
        who = f.get("manager_name") or f.get("manager_id") or "?"
        whom = ctx.person(who, "accs")
        if whom is not None:
            action = ctx.t("Попросите {m} разобрать эти сделки: закрыть неживые, по живым назначить шаг.",
                           "Ask {m} to clean these up: close the dead ones, give the live ones a next step.", m=whom)
        else:  # a name we cannot decline stays in brackets, where no case is needed
            action = ctx.t("Попросите менеджера ({m}) разобрать эти сделки: закрыть неживые, по живым назначить шаг.",
                           "Ask {m} to clean these up: close the dead ones, give the live ones a next step.", m=name(who))
    return Words(title=title, body=body, action=action, money=0.0)


def _oldest_and_amount(f: dict, ctx: Ctx) -> list[Line]:
    """The lines under a grouped item (abandoned, left behind): its oldest deals and their amount."""
    lines: list[Line] = [ctx.t("Дольше всех:", "The oldest:")] if f.get("examples") else []
    for ex in f.get("examples") or []:
        line = ctx.t("«{t}»", "“{t}”", t=name(deal_name(ex)))
        if ex.get("client_name"):
            line += ctx.t(" — {c}", " — {c}", c=name(ex["client_name"]))
        lines.append(line + ctx.t(" · «{s}» {d}", " · “{s}” {d}", s=name(ex["stage"]), d=_days(ctx, ex["days_idle"])))
    money = amount(ctx, f)
    if money and f.get("no_amount"):  # a budget nobody filled in (amoCRM/Kommo write 0): not in the sum
        lines.append(ctx.t("Сумма по ним в CRM — {m} (у {k} из них суммы нет).",
                           "Their amount in the CRM: {m} (no amount on {k} of them).", m=money, k=ctx.num(f["no_amount"])))
    elif money:
        lines.append(ctx.t("Сумма по ним в CRM — {m}.", "Their amount in the CRM: {m}.", m=money))
    return lines


def _left_behind_words(f: dict, n: int, ctx: Ctx) -> Words:
    """Stalled deals of a manager the CRM marks inactive, who left, whom the managers table lacks,
    or of nobody (owner cells such as «Без ответственного»): the director hands them over."""
    who = name(f.get("manager_name") or f.get("manager_id") or "?")
    if f.get("owner_gone") == "nobody":
        words: Line = ()
        for w in (f.get("owner_words") or [])[:3]:  # the CRM's own words, as written there
            words += (ctx.t(", ", ", ") if words else ()) + ctx.t("«{w}»", "“{w}”", w=name(w))
        title = ctx.t("Сделки без ответственного стоят без движения: {n}",
                      "Stalled deals with no owner: {n}", n=ctx.num(n))
        body = [ctx.t("В CRM у них нет ответственного ({w}), так что о них никто не узнаёт.",
                      "The CRM names nobody as their owner ({w}), so nobody hears about them.", w=words)
                if words else ctx.t("В CRM у них нет ответственного, так что о них никто не узнаёт.",
                                    "The CRM names nobody as their owner, so nobody hears about them.")]
    elif f.get("owner_gone") == "unknown":
        title = ctx.t("Сделки без менеджера из списка ({m}) стоят без движения: {n}",
                      "Stalled deals whose owner is not a listed manager ({m}): {n}", m=who, n=ctx.num(n))
        body = [ctx.t("В CRM их ответственный — {m}, но в таблице менеджеров такого нет, так что о них никто не узнаёт.",
                      "The CRM names {m} as their owner, but the managers table has no such person, so nobody hears "
                      "about them.", m=who)]
    elif f.get("owner_gone") == "idle":
        title = ctx.t("Сделки менеджера без работы в CRM ({m}) стоят без движения: {n}",
                      "Stalled deals of a manager with no work in the CRM ({m}): {n}", m=who, n=ctx.num(n))
        body = [ctx.t("За {d} у этого менеджера нет ни сделки, ни задачи, ни письма, а его открытые сделки стоят "
                      "дольше срока своего этапа: похоже, он больше не работает.",
                      "This manager has had no deal, task or email in {d}, and their open deals have been idle "
                      "longer than their stages' limits: they seem to have left.",
                      d=ctx.count(int(f.get("active_window_days") or 90), "day", case="accs", before="последний"))]
    elif f.get("owner_gone") == "no_contact":
        title = ctx.t("Сделки, по которым {m} не ведёт контактов, стоят без движения: {n}",
                      "Stalled deals of {m}, who records no contact with clients: {n}", m=who, n=ctx.num(n))
        body = [ctx.t("Сделки на {m} заводятся, но за {d} по ним нет ни звонка, ни встречи, ни письма: похоже, это "
                      "общий пользователь CRM, и эти сделки никто не ведёт.",
                      "Deals are given to {m}, but no call, meeting or email of theirs is recorded in {d}: it looks "
                      "like a shared CRM user, and nobody works these deals.",
                      m=who, d=ctx.count(int(f.get("active_window_days") or 90), "day", case="accs", before="последний"))]
    else:
        title = ctx.t("Сделки неактивного менеджера ({m}) стоят без движения: {n}",
                      "Stalled deals of an inactive manager ({m}): {n}", m=who, n=ctx.num(n))
        body = [ctx.t("В CRM этот менеджер отмечен неактивным, а его открытые сделки стоят дольше срока своего этапа.",
                      "The CRM marks this manager inactive, and their open deals have been idle longer than their "
                      "stages' limits.")]
    body += _oldest_and_amount(f, ctx)
    action = ctx.t("Передайте живые сделки работающим менеджерам, остальные закройте как проигранные.",
                   "Hand the live deals to working managers and close the rest as lost.")
    return Words(title=title, body=body, action=action, money=0.0)


@template("stalled_deal")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    if f.get("kind") == "abandoned":
        return abandoned_words(insight, ctx)
    deal, stage, days = name(deal_name(f)), name(f["stage"]), _days(ctx, f["days_idle"])
    who = f.get("manager_name") or f.get("manager_id")
    whose = None if ctx.you else ctx.person(who, "gent")
    if whose is not None:  # a director reads whose deal it is first
        title = ctx.t("Сделка «{t}» менеджера {m} стоит {d} на этапе «{s}»", "{m}'s deal “{t}” has been idle for {d} at “{s}”",
                      t=deal, s=stage, d=days, m=whose)
    else:
        title = ctx.t("Сделка «{t}» стоит {d} на этапе «{s}»", "Deal “{t}” has been idle for {d} at “{s}”", t=deal, s=stage, d=days)
    first: Line = ()
    if not ctx.you and who and whose is None:  # the name could not be declined: say it without a case
        first += ctx.t("Менеджер: {n}", "Manager: {n}", n=name(who))
    if f.get("client_name"):
        first += ctx.t("; клиент {c}", "; client {c}", c=name(f["client_name"])) if first else \
            ctx.t("Клиент {c}", "Client {c}", c=name(f["client_name"]))
    money = amount(ctx, f)
    if money:
        first += ctx.t(", сумма {m}", ", {m}", m=money) if first else ctx.t("Сумма {m}", "Amount {m}", m=money)
    body = [first + ctx.t(".", ".")] if first else []
    body.append(limit_line(ctx, f))
    if f.get("last_touch_at"):
        ru, en = TOUCH_KINDS.get(str(f.get("last_touch_kind")), ("действие", "activity"))
        body.append(ctx.t("Последнее действие — {k}, {w}.", "Last activity: {k}, {w}.",
                          k=ctx.s(ru, en), w=ctx.when(f["last_touch_at"])))
    if f.get("escalated") and ctx.you:
        body.append(ctx.t("Срок превышен сильно — сделка попала и в сводку руководителя.",
                          "This is well past the limit, so it is also in the head of sales' digest."))
    elif f.get("escalated"):
        body.append(ctx.t("Срок превышен сильно, поэтому сделка пришла и вам, руководителю; менеджер тоже её видит.",
                          "This is well past the limit, so it was escalated to you; the manager sees it too."))
    if ctx.you:
        action = ctx.t("Договоритесь с клиентом о следующем шаге сегодня — или закройте сделку как проигранную.",
                       "Agree the next step with the client today, or close the deal as lost.")
    else:
        whom = ctx.person(who, "gent")
        if whom is not None:
            action = ctx.t("Уточните у {m} следующий шаг по сделке и срок.", "Ask {m} what the next step is and by when.",
                           m=whom)
        else:  # a name we cannot decline stays in brackets, where no case is needed
            action = ctx.t("Уточните у менеджера ({m}) следующий шаг по сделке и срок.",
                           "Ask {m} what the next step is and by when.", m=name(who or "?"))
    return Words(title=title, body=body, action=action, money=float(f.get("amount") or 0))
