"""lead_sla: a lead waited too long for a manager or for a first reply."""
from __future__ import annotations

from detectors.insight import Insight
from messages.render import Ctx, Line, Words, name, template


def lead_origin(ctx: Ctx, f: dict) -> Line:
    parts: Line = ()
    if f.get("lead_source"):
        parts += ctx.t("источник «{s}»", "source “{s}”", s=name(f["lead_source"]))
    if f.get("lead_region"):
        parts += (ctx.t(", ", ", ") if parts else ()) + ctx.t("регион «{r}»", "region “{r}”", r=name(f["lead_region"]))
    return parts


def lead_id(insight: Insight) -> object:
    return insight.subject.get("lead_id") or (insight.evidence.get("lead_ids") or ["?"])[0]


def hours(value: float) -> float:
    """6.5 stays 6.5; 22.8 reads better as 23."""
    return round(float(value), 1) if float(value) < 10 else round(float(value))


def data_end(ctx: Ctx, f: dict, *, backlog: bool = False) -> list[Line]:
    """The line for leads judged at the data's end, an hour or more before now (an export read
    late): the wait counts only up to then, and a reply given since is not in the export yet.
    A list of leads also says why newer ones are missing: their target passed after that."""
    if not f.get("data_end"):
        return []
    at = ctx.moment(f["data_end"])
    if backlog:
        return [ctx.t("Ожидание посчитано до последней записи в выгрузке ({w}): что было позже, в ней не видно, "
                      "а заявки, чей срок вышел после этого, проверим по следующей выгрузке.",
                      "The wait is counted up to the export's newest record ({w}): anything later is not in it, "
                      "and leads due after that will be checked with the next export.", w=at)]
    return [ctx.t("Ожидание посчитано до последней записи в выгрузке ({w}): что было позже, в ней не видно.",
                  "The wait is counted up to the export's newest record ({w}): anything later is not in it.", w=at)]


def backlog(insight: Insight, ctx: Ctx) -> Words:
    """One recipient's waiting leads, longest wait first: how many, which, what to do."""
    f = insight.facts
    n, sla = ctx.count(f["leads"], "lead"), ctx.count(hours(f["sla_hours"]), "working_hour")
    who = f.get("manager_name") or f.get("manager_id")
    left = f.get("owner_left")  # why the owner is not working (detectors.people), as stalled_deal says it
    if f.get("owner_gone") and left == "no_contact":
        title = ctx.t("Заявки записаны на пользователя без контактов с клиентами ({m}): {n}",
                      "Leads still written to {m}, who records no contact with clients: {n}", m=name(f["owner_gone"]), n=n)
        action = ctx.t("Передайте эти заявки работающим менеджерам и уберите этого пользователя из распределения заявок в CRM.",
                       "Reassign them to working managers and take this user out of the CRM's lead distribution.")
    elif f.get("owner_gone") and left == "idle":
        title = ctx.t("Заявки записаны на сотрудника без работы в CRM ({m}): {n}",
                      "Leads still written to {m}, who has done no work in the CRM: {n}", m=name(f["owner_gone"]), n=n)
        action = ctx.t("Передайте эти заявки работающим менеджерам и уберите сотрудника из распределения заявок в CRM.",
                       "Reassign them to working managers and take this person out of the CRM's lead distribution.")
    elif f.get("owner_gone"):
        # the name in brackets: "на сотрудника Иван Петров" would leave it undeclined
        title = ctx.t("Заявки записаны на сотрудника, который больше не работает ({m}): {n}",
                      "Leads still written to {m}, who no longer works here: {n}", m=name(f["owner_gone"]), n=n)
        action = ctx.t("Передайте эти заявки работающим менеджерам и уберите сотрудника из распределения заявок в CRM.",
                       "Reassign them to working managers and take this person out of the CRM's lead distribution.")
    elif f["kind"] == "unassigned":
        title = ctx.t("Заявки без менеджера дольше нормы ({s}): {n}", "Leads with no manager past the target ({s}): {n}",
                      s=sla, n=n)
        action = ctx.t("Назначьте менеджеров, начиная с первой: чем дольше ждёт заявка, тем меньше шанс на сделку.",
                       "Assign managers, starting with the first: the longer a lead waits, the lower the chance of a deal.")
    elif ctx.you:
        title = ctx.t("Заявки ждут вашего ответа дольше нормы ({s}): {n}", "Leads waiting for your reply past the target ({s}): {n}",
                      s=sla, n=n)
        action = ctx.t("Ответьте, начиная с первой: с каждым часом шанс на сделку падает.",
                       "Reply, starting with the first: every hour lowers the chance of a deal.")
    else:
        whose = ctx.person(who, "gent")
        if whose is not None:
            title = ctx.t("Заявки ждут ответа менеджера {m} дольше нормы ({s}): {n}",
                          "Leads waiting for a reply from {m} past the target ({s}): {n}", m=whose, s=sla, n=n)
        else:
            title = ctx.t("Заявки ждут ответа дольше нормы ({s}), менеджер: {m}: {n}",
                          "Leads waiting for a reply from {m} past the target ({s}): {n}", m=name(who), s=sla, n=n)
        action = ctx.t("Проверьте, справляется ли менеджер с потоком заявок, или передайте часть другим.",
                       "Check whether the manager keeps up with the leads, or hand some to others.")
    listed: Line = ()
    for k, lead in enumerate(f["listed"]):
        listed += (ctx.t(", ", ", ") if k else ()) + ctx.t("{id} ({h})", "{id} ({h})", id=name(lead["lead_id"]),
                                                          h=ctx.count(hours(lead["working_hours_waited"]), "working_hour"))
    body = [ctx.t("Дольше всех ждут: ", "Waiting longest: ") + listed
            + (ctx.t("; и ещё {k}.", "; and {n} more.", k=ctx.count(f["leads"] - len(f["listed"]), "lead"),
                     n=str(f["leads"] - len(f["listed"])))
               if f["leads"] > len(f["listed"]) else ctx.t(".", "."))]
    window = ctx.count(int(f.get("active_window_days") or 90), "day", case="accs", before="последний")
    if f.get("owner_gone") and left == "no_contact":
        body.insert(0, ctx.t("За {d} ни этот пользователь, ни кто-либо по его сделкам не записал ни звонка, ни встречи, "
                             "ни письма, а CRM всё ещё отдаёт ему новые заявки: ответить на них некому. "
                             "Норма назначения — {s}.",
                             "No call, meeting or email by them or on their deals is recorded in {d}, yet the CRM "
                             "still gives them new leads: nobody will answer these. The target to assign a lead is {s}.",
                             d=window, s=sla))
    elif f.get("owner_gone") and left == "idle":
        body.insert(0, ctx.t("За {d} у этого сотрудника нет ни сделки, ни задачи, ни письма, а CRM всё ещё числит за ним "
                             "заявки: ответить на них некому. Норма назначения — {s}.",
                             "They have had no deal, task or email in {d}, yet leads are still written to them: nobody "
                             "will answer these. The target to assign a lead is {s}.", d=window, s=sla))
    elif f.get("owner_gone"):
        body.insert(0, ctx.t("Этого сотрудника нет среди работающих менеджеров, а CRM всё ещё отдаёт ему новые заявки: "
                             "ответить на них некому. Норма назначения — {s}.",
                             "They are not among the working managers, yet the CRM still gives them new leads: "
                             "nobody will answer these. The target to assign a lead is {s}.", s=sla))
    if f.get("owner_gone") and f.get("escalated_leads"):
        body.append(ctx.t("Норма превышена сильно: {k}.", "Well past the target: {k}.",
                          k=ctx.count(f["escalated_leads"], "lead")))
    if f.get("escalated_leads") and ctx.you and f["kind"] != "unassigned":
        body.append(ctx.t("Норма превышена сильно у {k} — руководитель видит и этот список.",
                          "{k} are well past the target, so the head of sales sees this list too.",
                          k=ctx.count(f["escalated_leads"], "lead", case="gent")))
    return Words(title=title, body=body + data_end(ctx, f, backlog=True), action=action)


@template("lead_sla")
def words(insight: Insight, ctx: Ctx) -> Words:
    f = insight.facts
    if f.get("backlog"):
        return backlog(insight, ctx)
    waited, sla = ctx.count(hours(f["working_hours_waited"]), "working_hour"), ctx.count(hours(f["sla_hours"]), "working_hour")
    lead = name(lead_id(insight))
    origin = lead_origin(ctx, f)
    came = ctx.t("Заявка {id}", "Lead {id}", id=lead)
    if origin:
        came += ctx.t(" ({o})", " ({o})", o=origin)
    came += ctx.t(" пришла {w}", " came in {w}", w=ctx.when(f["created_at"]))
    if f["kind"] == "unassigned":
        title = ctx.t("Заявка без менеджера уже {h}", "A lead has had no manager for {h}", h=waited)
        if f.get("owner_gone"):
            # the name in brackets, as the backlog says it: "на сотрудника Иван Петров" left it undeclined
            body = [came + ctx.t(" и записана на сотрудника, которого нет среди работающих менеджеров ({m}): "
                                 "ответить некому. Норма — {s}.",
                                 " and is assigned to {m}, who is not among the working managers: nobody will answer "
                                 "it. The target is {s}.", m=name(f["owner_gone"]), s=sla)]
        else:
            body = [came + ctx.t(" и до сих пор никому не назначена. Норма — {s}.",
                                 " and is still not assigned to anyone. The target is {s}.", s=sla)]
        action = ctx.t("Назначьте менеджера сейчас: чем дольше ждёт заявка, тем меньше шанс на сделку.",
                       "Assign a manager now: the longer a lead waits, the lower the chance of a deal.")
    else:
        if ctx.you:
            title = ctx.t("Заявка ждёт вашего ответа уже {h}", "A lead has waited {h} for your reply", h=waited)
        else:
            who = f.get("manager_name") or f.get("manager_id")
            whose = ctx.person(who, "gent")
            if whose is not None:
                title = ctx.t("Заявка ждёт ответа менеджера {m} уже {h}", "A lead has waited {h} for a reply from {m}",
                              h=waited, m=whose)
            else:  # a name we cannot decline is shown in a construction that needs no case
                title = ctx.t("Заявка ждёт ответа уже {h} (менеджер: {m})", "A lead has waited {h} for a reply from {m}",
                              h=waited, m=name(who))
        body = [came + ctx.t("; ответить нужно было не позже чем через {s} после поступления.", "; a first reply was due within {s}.", s=sla)]
        action = ctx.t("Свяжитесь с клиентом прямо сейчас: с каждым часом шанс на сделку падает.",
                       "Contact them right now: every hour lowers the chance of a deal.") if ctx.you else \
            ctx.t("Проверьте, что с заявкой кто-то работает, или передайте её другому менеджеру.",
                  "Check that someone is on it, or hand it to another manager.")
    if f.get("escalated") and ctx.you and f["kind"] != "unassigned":
        body.append(ctx.t("Норма превышена сильно — руководитель тоже видит эту заявку.",
                          "This is well past the target, so the head of sales sees it too."))
    return Words(title=title, body=body + data_end(ctx, f), action=action)
