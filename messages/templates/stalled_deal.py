"""stalled_deal: a deal sits at one stage longer than that stage's limit (manager)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, name, template

TOUCH_KINDS = {
    "stage_change": ("смена этапа", "stage change"),
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


def last_touch(ctx: Ctx, f: dict) -> Line | None:
    if not f.get("last_touch_at"):
        return None
    ru, en = TOUCH_KINDS.get(str(f.get("last_touch_kind")), ("действие", "activity"))
    return ctx.t("последнее действие — {k}, {w}", "last activity: {k}, {w}", k=ctx.s(ru, en), w=ctx.when(f["last_touch_at"]))


def compact_line(ctx: Ctx, f: dict) -> Line:
    """One deal in a grouped list: «title» — client · amount · «stage» N days (limit M)."""
    line = ctx.t("«{t}»", "“{t}”", t=name(deal_name(f)))
    if f.get("client_name"):
        line += ctx.t(" — {c}", " — {c}", c=name(f["client_name"]))
    money = amount(ctx, f)
    if money:
        line += ctx.t(" · {m}", " · {m}", m=money)
    line += ctx.t(" · «{s}» {d} (норма {l})", " · “{s}” {d} (usual max {l})", s=name(f["stage"]),
                  d=ctx.count(f["days_idle"], "day"), l=ctx.num(f["stage_limit_days"]))
    return line


@template("stalled_deal")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    deal, stage, days = name(deal_name(f)), name(f["stage"]), ctx.count(f["days_idle"], "day")
    title = ctx.t("Сделка «{t}» стоит {d} на этапе «{s}»", "Deal “{t}” has been stuck at “{s}” for {d}", t=deal, s=stage, d=days)
    first: Line = ()
    if f.get("client_name"):
        first += ctx.t("Клиент {c}", "Client {c}", c=name(f["client_name"]))
    money = amount(ctx, f)
    if money:
        first += ctx.t(", сумма {m}", ", {m}", m=money) if first else ctx.t("Сумма {m}", "Amount {m}", m=money)
    if not ctx.you and f.get("manager_name"):
        first += ctx.t(", менеджер {n}", ", manager {n}", n=name(f["manager_name"])) if first else \
            ctx.t("Менеджер {n}", "Manager {n}", n=name(f["manager_name"]))
    body = [first + ctx.t(".", ".")] if first else []
    touch = last_touch(ctx, f)
    limit = ctx.t("Норма для этого этапа — {l} без движения", "Deals usually spend at most {l} at this stage",
                  l=ctx.count(f["stage_limit_days"], "day"))
    body.append(limit + (ctx.t("; ", "; ") + touch if touch else ()) + ctx.t(".", "."))
    if f.get("escalated") and ctx.you:
        body.append(ctx.t("Срок превышен сильно — сделка попала и в сводку руководителя.",
                          "This is well past the limit, so it is also in the head of sales' digest."))
    if ctx.you:
        action = ctx.t("Договоритесь с клиентом о следующем шаге сегодня — или закройте сделку как проигранную.",
                       "Agree the next step with the client today, or close the deal as lost.")
    else:
        action = ctx.t("Уточните у менеджера ({m}) следующий шаг по сделке и срок.",
                       "Ask {m} what the next step is and by when.",
                       m=name(f.get("manager_name") or f.get("manager_id") or "?"))
    return Words(title=title, body=body, action=action, money=float(f.get("amount") or 0))
