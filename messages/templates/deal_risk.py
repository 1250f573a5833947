"""deal_risk: a large deal whose win chance fell sharply (manager).

Said the way a manager checks it: the chance then and now, what happened to similar past
deals ("похожа на 40 прошлых сделок, из них выиграно 32"), and the two or three things that
pull it down compared with what is typical at its stage. Model names and Brier scores stay
in the details.
"""
from __future__ import annotations

from detectors.insight import Insight
from messages.methods import method_name
from messages.render import Ctx, Line, Words, name, template

# feature -> (ru, en) wording of "value (typically t)"; {v} the deal's value, {t} the typical one
_DAYS = {"days_since_touch": ("без касаний {v}", "no touch for {v}"),
         "days_at_stage": ("на этапе {v}", "at this stage for {v}"),
         "days_open": ("в работе {v}", "open for {v}")}
_COUNTS = {"touches_14d": ("касаний за 14 дней: {v}", "touches in 14 days: {v}"),
           "replies_30d": ("ответов клиента за 30 дней: {v}", "client replies in 30 days: {v}"),
           "opens_30d": ("открытий писем за 30 дней: {v}", "email opens in 30 days: {v}"),
           "client_won": ("выигранных сделок с клиентом раньше: {v}", "deals won with this client before: {v}"),
           "client_lost": ("проигранных сделок с клиентом раньше: {v}", "deals lost with this client before: {v}"),
           "stage_moves": ("смен этапа: {v}", "stage changes: {v}")}
_NAMES = {"source": ("источник {v}", "source {v}"), "region": ("регион {v}", "region {v}")}


def factor_line(ctx: Ctx, f: dict) -> Line | None:
    feature, v, t = f.get("feature"), f.get("value"), f.get("typical")
    if feature in _DAYS:
        ru, en = _DAYS[feature]
        return ctx.t(ru + " (обычно {t})", en + " (typically {t})",
                     v=ctx.count(round(float(v or 0)), "day"), t=ctx.count(round(float(t or 0)), "day"))
    if feature in _COUNTS:
        ru, en = _COUNTS[feature]
        return ctx.t(ru + " (обычно {t})", en + " (typically {t})", v=ctx.num(round(float(v or 0))),
                     t=ctx.num(round(float(t or 0))))
    if feature == "amount" and v is None:  # empty or 0: nobody filled the budget in
        return ctx.t("сумма не указана (обычно {t})", "no amount filled in (typically {t})", t=ctx.num(float(t or 0)))
    if feature == "amount":
        return ctx.t("сумма {v} (обычно {t})", "amount {v} (typically {t})", v=ctx.num(float(v or 0)), t=ctx.num(float(t or 0)))
    if feature in _NAMES and v is not None:
        ru, en = _NAMES[feature]
        return ctx.t(ru, en, v=name(v))
    return None


@template("deal_risk")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    deal = name(f.get("deal_title") or f.get("deal_id") or "?")
    was, now = ctx.pct(float(f["p_before"])), ctx.pct(float(f["p_now"]))
    title = ctx.t("Сделка «{d}» под угрозой: шанс {a} → {b}", "Deal “{d}” at risk: win chance {a} → {b}", d=deal, a=was, b=now)
    body: list[Line] = []
    first: Line = ()
    if f.get("client_name"):
        first += ctx.t("Клиент {c}", "Client {c}", c=name(f["client_name"]))
    if isinstance(f.get("amount"), (int, float)) and f["amount"] > 0:
        money = ctx.money(f["amount"], f.get("currency"))
        first += ctx.t(", сумма {m}", ", {m}", m=money) if first else ctx.t("Сумма {m}", "Amount {m}", m=money)
    if f.get("stage"):
        first += ctx.t(", этап «{s}»", ", stage “{s}”", s=name(f["stage"])) if first else \
            ctx.t("Этап «{s}»", "Stage “{s}”", s=name(f["stage"]))
    if first:
        body.append(first + ctx.t(".", "."))
    fell = ctx.t("Шанс выиграть упал за {d}: было {a}, стало {b}", "The chance of winning fell over {d}: {a} then, {b} now",
                 d=ctx.count(int(f.get("lookback_days") or 7), "day"), a=was, b=now)
    idle = round(float(f.get("days_since_touch") or 0))
    if idle >= 2:  # "no touch for 1 day" is no news
        fell += ctx.t("; нет касаний {n}", "; no touch for {n}", n=ctx.count(idle, "day"))
    body.append(fell + ctx.t(".", "."))
    n, won = int(f.get("similar_n") or 0), int(f.get("similar_won") or 0)
    if n:
        body.append(ctx.t("Похожа на {n} прошлых сделок, из них выиграно {w} ({p}).",
                          "It looks like {n} past deals, of which {w} were won ({p}).",
                          n=ctx.num(n), w=ctx.num(won), p=ctx.pct(won / n)))
    pulls = [fac for fac in (f.get("factors") or []) if float(fac.get("effect") or 0) < 0]
    pieces = [p for p in (factor_line(ctx, fac) for fac in pulls) if p is not None][:3]
    parts: Line = ()
    for piece in pieces:
        parts += (ctx.t("; ", "; ") if parts else ()) + piece
    if parts:
        body.append(ctx.t("Что тянет вниз: ", "What pulls it down: ") + parts + ctx.t(".", "."))
    if ctx.you and not f.get("owner_left"):
        action = ctx.t("Свяжитесь с клиентом сегодня и договоритесь о следующем шаге — или честно закройте сделку.",
                       "Get in touch with the client today and agree the next step, or close the deal honestly.")
    elif f.get("owner_left"):  # the owner does not work their deals (detectors.people): nobody to ask
        action = ctx.t("Сделка записана на сотрудника, который сейчас не работает со сделками ({m}): передайте её "
                       "работающему менеджеру.",
                       "The deal is written to {m}, who is not working deals now: hand it to a working manager.",
                       m=name(f.get("manager_name") or f.get("manager_id") or "?"))
    else:
        action = ctx.t("Спросите менеджера ({m}), что происходит со сделкой и какой следующий шаг.",
                       "Ask {m} what is happening with this deal and what the next step is.",
                       m=name(f.get("manager_name") or f.get("manager_id") or "?"))
    details = [ctx.t("Шанс по одному этапу (доля выигранных на этом этапе): {r}; модель: {k}.",
                     "The stage alone (share won at this stage): {r}; model: {k}.",
                     r=ctx.pct(float(f.get("stage_win_rate") or 0)), k=name(method_name(str(f.get("model") or "?"), ctx.lang)))]
    return Words(title=title, body=body, action=action, details=details, money=float(f.get("amount") or 0))
