"""lead_score: a manager's new leads, best first, each with the trait behind its chance (manager;
new leads without a manager: director)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, name, template

_TRAITS = {  # feature -> (ru, en) wording of the trait
    "source": ("источник «{v}»", "source “{v}”"),
    "region": ("регион «{v}»", "region “{v}”"),
}
_VALUES = {
    "daypart": {"night": ("пришла ночью", "came in at night"), "morning": ("пришла утром", "came in the morning"),
                "afternoon": ("пришла днём", "came in the afternoon"), "evening": ("пришла вечером", "came in the evening")},
    "weekend": {"weekend": ("пришла в выходной", "came in at the weekend"), "weekday": ("пришла в будний день", "came in on a weekday")},
}


def trait(ctx: Ctx, reason: dict) -> Line | None:
    feature, value = reason.get("feature"), reason.get("value")
    if feature in _TRAITS:
        ru, en = _TRAITS[feature]
        return ctx.t(ru, en, v=name(value))
    words = _VALUES.get(feature, {}).get(value)
    return ctx.t(*words) if words else None


@template("lead_score")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    leads = f.get("leads") or []
    if ctx.you:
        title = ctx.t("Кому позвонить первым: {n} из новых заявок", "Whom to call first: {n} of your new leads",
                      n=ctx.num(len(leads)))
    else:
        title = ctx.t("Новые заявки без менеджера: кому позвонить первым", "New leads without a manager: whom to call first") \
            if not f.get("manager_id") else \
            ctx.t("Кому позвонить первым ({m}): {n} из новых заявок", "Whom to call first ({m}): {n} of the new leads",
                  m=name(f.get("manager_name") or f["manager_id"]), n=ctx.num(len(leads)))
    body: list[Line] = []
    base = float(f.get("base_rate") or 0)
    for k, lead in enumerate(leads, 1):
        line: Line = ctx.t("{k}. Заявка {id} ({w}): шанс {p}", "{k}. Lead {id} ({w}): chance {p}",
                           k=str(k), id=name(lead["lead_id"]), w=ctx.when(lead["created_at"]), p=ctx.pct(float(lead["p"])))
        reason = lead.get("reason")
        why = trait(ctx, reason) if reason else None
        if why:
            line += ctx.t(" — {t}: из {n} таких прошлых заявок сконвертировано {r}",
                          " — {t}: {r} of {n} such past leads converted",
                          t=why, n=ctx.num(int(reason["n"])), r=ctx.pct(float(reason["rate"])))
        body.append(line + ctx.t(".", "."))
    body.append(ctx.t("В среднем сконвертировано {b} заявок; новых заявок за {d}: {n}.",
                      "On average {b} of leads convert; new leads in the last {d}: {n}.",
                      b=ctx.pct(base), d=ctx.count(int(f.get("lookback_days") or 7), "day"), n=ctx.num(int(f.get("new_leads") or 0))))
    action = ctx.t("Начните с первой заявки в списке: у неё больше всего шансов стать сделкой.",
                   "Start with the first lead on the list: it is the likeliest to become a deal.") if ctx.you else \
        ctx.t("Проследите, чтобы заявки с самым высоким шансом взяли в работу первыми.",
              "Make sure the leads with the highest chance are picked up first.")
    details = [ctx.t("", "How: {r}", r=str(f["model_reason"]))] if f.get("model_reason") and ctx.lang == "en" else []
    return Words(title=title, body=body, action=action, details=details)
