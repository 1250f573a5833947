"""A company in the canonical contract (the demo) put into a FakeBitrix24 the way Bitrix24 would
hold it: managers as users in departments (their team), clients as companies, stages as the
default pipeline's stages (won = a success stage, lost = a failure stage), deals with their
stage history, calls, meetings and tasks as activities of the deal, emails as email activities
(TYPE_ID 4), leads with their first answer as an outgoing call on the lead, sources as SOURCE
statuses, region / segment / loss reason as UF_CRM_* fields. What Bitrix24 has no place for
(email opens, a manager's capacity and region, when a lead was assigned) is left out, as it
would be; the demo's "email" and "note" activities become other (note) activities.
Returns the id maps (canonical id -> Bitrix24 id) so a test can compare the two sides."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from crm.data import CrmData
from tests.fakes.bitrix24_server import FakeBitrix24

REGION_FIELD, SEGMENT_FIELD, LOSS_FIELD = "UF_CRM_REGION", "UF_CRM_SEGMENT", "UF_CRM_LOSS_REASON"
LEAD_STATUSES = {"new": ("NEW", "Не обработан", None), "converted": ("CONVERTED", "Качественный лид", "S"),
                 "junk": ("JUNK", "Некачественный лид", "F")}


@dataclass
class IdMaps:
    users: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    deals: dict[str, int] = field(default_factory=dict)
    leads: dict[str, int] = field(default_factory=dict)


def _iso(value) -> str | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.isoformat()


def _text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def load_into(fake: FakeBitrix24, data: CrmData) -> IdMaps:
    ids = IdMaps()
    teams = {t: 50 + i for i, t in enumerate(sorted(data.managers["team"].dropna().unique()))}
    fake.departments = [{"ID": str(did), "NAME": name} for name, did in teams.items()]
    for i, m in enumerate(data.managers.itertuples(index=False), start=1):
        ids.users[m.manager_id] = i
        first, _, last = str(m.name).partition(" ")
        fake.add_user(i, first, last, m.email, department=teams.get(m.team), active=bool(m.active))
    code = {stage: f"S{k}" for k, stage in enumerate(data.stages, start=1)}
    fake.add_category(0, "Продажи", [(c, stage, None) for stage, c in code.items()]
                      + [("WON", "Сделка успешна", "S"), ("LOSE", "Сделка провалена", "F")])
    sources = {s: f"SRC{k}" for k, s in enumerate(sorted(set(data.deals["source"].dropna())
                                                         | set(data.leads["source"].dropna())), start=1)}
    for k, (name, sid) in enumerate(sources.items(), start=1):
        fake.add_status("SOURCE", sid, name, 10 * k)
    for k, (sid, name, semantics) in enumerate(LEAD_STATUSES.values(), start=1):
        fake.add_status("STATUS", sid, name, 10 * k, semantics)
    for i, c in enumerate(data.clients.itertuples(index=False), start=1):
        ids.clients[c.client_id] = 10_000 + i
        fake.companies[10_000 + i] = {"ID": str(10_000 + i), "TITLE": c.name, "DATE_MODIFY": "2020-01-01T00:00:00+00:00",
                                      "ASSIGNED_BY_ID": str(ids.users.get(c.manager_id, 0)),
                                      REGION_FIELD: _text(c.region), SEGMENT_FIELD: _text(c.segment)}

    history = data.stage_history.sort_values(["deal_id", "entered_at"], kind="stable")
    entries = {d: g for d, g in history.groupby("deal_id", sort=False)}
    for i, d in enumerate(data.deals.itertuples(index=False), start=1):
        ids.deals[d.deal_id] = i
        steps = entries.get(d.deal_id)
        stages = [] if steps is None else list(zip(steps["stage"], steps["entered_at"]))
        times = [t for t in [d.created_at, d.closed_at, *[t for _, t in stages]] if t is not None and not pd.isna(t)]
        final = {"won": "WON", "lost": "LOSE"}.get(d.status)
        fake.put_deal({
            "ID": i, "TITLE": d.title, "STAGE_ID": final or code[d.stage], "OPPORTUNITY": f"{d.amount:.2f}",
            "CURRENCY_ID": d.currency, "ASSIGNED_BY_ID": ids.users[d.manager_id], "DATE_CREATE": _iso(d.created_at),
            "DATE_MODIFY": _iso(max(times)), "MOVED_TIME": _iso(stages[-1][1] if stages else d.created_at),
            "COMPANY_ID": ids.clients.get(d.client_id, 0), "CONTACT_ID": 0,
            "SOURCE_ID": sources.get(d.source) if isinstance(d.source, str) else None,
            REGION_FIELD: _text(d.region), LOSS_FIELD: _text(d.loss_reason)})
        for k, (stage, entered) in enumerate(stages):
            fake.enter_stage(i, code[stage], _iso(entered), type_id=1 if k == 0 else 2)
        if final:
            fake.enter_stage(i, final, _iso(d.closed_at))

    act_id = 0

    def activity(**fields) -> None:
        nonlocal act_id
        act_id += 1
        fake.activities[act_id] = {"ID": str(act_id), **{k: v for k, v in fields.items() if v is not None}}

    for a in data.activities.itertuples(index=False):
        deal, user = ids.deals.get(a.deal_id), ids.users.get(a.manager_id)
        owner = (deal, "2") if deal else (ids.clients.get(a.client_id), "4")
        if owner[0] is None:
            continue
        done, due = _iso(a.done_at), _iso(a.due_at)
        type_id = {"call": "2", "meeting": "1", "task": "3"}.get(a.type, "6")
        activity(OWNER_ID=str(owner[0]), OWNER_TYPE_ID=owner[1], TYPE_ID=type_id,
                 PROVIDER_ID={"2": "VOXIMPLANT_CALL", "1": "CRM_MEETING", "3": "CRM_TASKS_TASK"}.get(type_id, "REST_APP"),
                 SUBJECT="", CREATED=due or done, START_TIME=done or due, END_TIME=done or due, DEADLINE=due,
                 COMPLETED="Y" if done else "N", DIRECTION="2", RESPONSIBLE_ID=str(user or 0),
                 LAST_UPDATED=done or due)
    for e in data.emails.itertuples(index=False):
        deal = ids.deals.get(e.deal_id)
        owner = (deal, "2") if deal else (ids.clients.get(e.client_id), "4")
        if owner[0] is None:
            continue
        at = _iso(e.sent_at)
        activity(OWNER_ID=str(owner[0]), OWNER_TYPE_ID=owner[1], TYPE_ID="4", PROVIDER_ID="CRM_EMAIL",
                 PROVIDER_TYPE_ID="EMAIL", SUBJECT=_text(e.subject) or "", CREATED=at, START_TIME=at, END_TIME=at,
                 COMPLETED="Y", DIRECTION="1" if e.direction == "in" else "2",
                 RESPONSIBLE_ID=str(ids.users.get(e.manager_id, 0)), LAST_UPDATED=at)
    for i, lead in enumerate(data.leads.itertuples(index=False), start=1):
        ids.leads[lead.lead_id] = i
        created = _iso(lead.created_at)
        fake.leads[i] = {"ID": str(i), "TITLE": f"Лид {i}", "STATUS_ID": LEAD_STATUSES[lead.status][0],
                         "STATUS_SEMANTIC_ID": LEAD_STATUSES[lead.status][2] or "P",
                         "SOURCE_ID": sources.get(lead.source), "ASSIGNED_BY_ID": str(ids.users.get(lead.manager_id, 0)),
                         "DATE_CREATE": created, "DATE_MODIFY": _iso(lead.first_response_at) or created,
                         REGION_FIELD: _text(lead.region)}
        answered = _iso(lead.first_response_at)
        if answered:
            activity(OWNER_ID=str(i), OWNER_TYPE_ID="1", TYPE_ID="2", PROVIDER_ID="VOXIMPLANT_CALL", CREATED=answered,
                     START_TIME=answered, END_TIME=answered, COMPLETED="Y", DIRECTION="2",
                     RESPONSIBLE_ID=str(ids.users.get(lead.manager_id, 0)), LAST_UPDATED=answered)
    return ids
