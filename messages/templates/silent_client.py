"""silent_client: a client stopped replying but keeps opening our emails (manager)."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Words, name, template


@template("silent_client")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    # days_silent counts from our oldest unanswered email, not from the client's last reply
    # (which the body dates): "silent for 28 days" beside "last replied 17 October" (32 days
    # ago) contradicted itself, so the title says what the number measures.
    client, days = name(f["client_name"]), ctx.count(f["days_silent"], "day")
    # a client of someone not working now (detectors.people) is the director's, never "your"
    you = ctx.you and not f.get("owner_left")
    if you:
        title = ctx.t("{c} {d} не отвечает на ваши письма, но читает их", "{c} has not answered your emails for {d} but reads them",
                      c=client, d=days)
    else:
        who = f.get("manager_name") or f.get("manager_id")
        whose = ctx.person(who, "gent")
        if whose is not None:
            title = ctx.t("{c} {d} не отвечает на письма менеджера {m}, но читает их",
                          "{c} has not answered {m}'s emails for {d} but reads them", c=client, d=days, m=whose)
        else:  # a name we cannot decline is shown in a construction that needs no case
            title = ctx.t("{c} {d} не отвечает на письма, но читает их (менеджер: {m})",
                          "{c} has not answered {m}'s emails for {d} but reads them", c=client, d=days, m=name(who))
    if f.get("last_reply_at"):
        replied = ctx.t("Последний ответ клиента — {w}", "The client last replied {w}", w=ctx.when(f["last_reply_at"]))
    else:
        replied = ctx.t("Клиент ещё ни разу не ответил", "The client has never replied")
    body = [ctx.t("{r}; без ответа {n}.", "{r}; {n} still unanswered.", r=replied,
                  n=ctx.count(f["unanswered_emails"], "email"))]
    if you:
        opens = ctx.t("Ваши письма открывали {k} за {d}", "Your emails were opened {k} over {d}",
                      k=ctx.count(f["human_opens"], "time"), d=ctx.count(f["open_days"], "day"))
    else:
        opens = ctx.t("Письма открывали {k} за {d}", "The emails were opened {k} over {d}",
                      k=ctx.count(f["human_opens"], "time"), d=ctx.count(f["open_days"], "day"))
    if f.get("last_open_at"):
        body.append(ctx.t("{o}, последний раз — {w}.", "{o}, most recently {w}.", o=opens, w=ctx.when(f["last_open_at"])))
    else:
        body.append(opens + ctx.t(".", "."))
    if f.get("last_email_subject"):
        body.append(ctx.t("Последнее письмо: «{s}».", "Last email: “{s}”.", s=name(f["last_email_subject"])))
    action = ctx.t("Интерес есть, а ответа нет: позвоните клиенту, а не пишите ещё одно письмо.",
                   "They are reading but not replying: call them instead of sending another email.")
    if f.get("owner_left"):  # the client's manager does not work now (detectors.people): the director's
        action = ctx.t("Клиент записан на сотрудника, который сейчас не работает ({m}): передайте клиента работающему "
                       "менеджеру, и пусть он позвонит, а не пишет ещё одно письмо.",
                       "The client is written to {m}, who is not working now: hand the client to a working manager "
                       "and have them call rather than send another email.",
                       m=name(f.get("manager_name") or f.get("manager_id") or "?"))
    details = []
    if f.get("last_open_at"):
        details.append(ctx.t("Последнее открытие: {d}.", "Last open: {d}.", d=ctx.date(f["last_open_at"])))
    return Words(title=title, body=body, action=action, details=details)
