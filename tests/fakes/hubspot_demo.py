"""A company in the canonical contract (the demo) put into a FakeHubSpot the way HubSpot would
hold it: managers as owners (team = primary team, inactive = archived owner), clients as
companies (each with one contact whose address the emails go to), stages as the default
pipeline's stages plus closedwon / closedlost, deals with their `dealstage` history, calls,
meetings, tasks and notes as engagements, emails as email engagements and their opens as v1
OPEN events of the recipient, leads as lead records whose stage history holds the first
response (New -> Attempting). What HubSpot has no place for (a manager's capacity and region)
is left out, as it would be.
Returns the id maps (canonical id -> HubSpot id) so a test can compare the two sides."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from crm.data import CrmData
from tests.fakes.hubspot_server import FakeHubSpot, iso

SOURCE_PROP, REGION_PROP, SEGMENT_PROP = "lead_channel", "sales_region", "industry_segment"


@dataclass
class IdMaps:
    users: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)
    deals: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    leads: dict[str, str] = field(default_factory=dict)


def _ms(value) -> int | None:
    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).value // 1_000_000)


def _val(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def mailbox(client_id: str) -> str:
    return f"{client_id.lower()}@client.example"


def load_into(fake: FakeHubSpot, data: CrmData) -> IdMaps:
    ids = IdMaps()
    currencies = data.deals["currency"].dropna().unique()
    if len(currencies):
        fake.currency = str(currencies[0])
    for i, m in enumerate(data.managers.itertuples(index=False), start=1):
        oid = str(200 + i)
        ids.users[m.manager_id] = oid
        first, _, last = str(m.name).partition(" ")
        fake.add_owner(oid, first, last, _val(m.email), team=_val(m.team), archived=not bool(m.active))
    stage_id = {stage: f"stage{k}" for k, stage in enumerate(data.stages)}
    fake.add_pipeline("default", "Продажи", [(sid, stage) for stage, sid in stage_id.items()])

    for i, c in enumerate(data.clients.itertuples(index=False), start=1):
        cid = str(10_000 + i)
        ids.clients[c.client_id] = cid
        fake.put("companies", cid, {"name": c.name, "hubspot_owner_id": ids.users.get(c.manager_id),
                                    REGION_PROP: _val(c.region), SEGMENT_PROP: _val(c.segment)}, 0)
        fake.put("contacts", str(50_000 + i), {"firstname": "Contact", "lastname": c.name,
                                               "email": mailbox(c.client_id)}, 0)
        fake.associate("contacts", str(50_000 + i), "companies", cid)

    history = data.stage_history.sort_values(["deal_id", "entered_at"], kind="stable")
    entries = {d: g for d, g in history.groupby("deal_id", sort=False)}
    for i, d in enumerate(data.deals.itertuples(index=False), start=1):
        did = str(i)
        ids.deals[d.deal_id] = did
        steps = entries.get(d.deal_id)
        changes = [] if steps is None else [(stage_id[s], _ms(t)) for s, t in zip(steps["stage"], steps["entered_at"])]
        closed = _ms(d.closed_at) if d.status in ("won", "lost") else None
        if d.status in ("won", "lost"):
            changes.append(("closedwon" if d.status == "won" else "closedlost", closed))
        current = changes[-1][0] if changes else stage_id[d.stage]
        times = [t for t in [_ms(d.created_at), closed] + [t for _, t in changes] if t is not None]
        fake.put("deals", did, {
            "dealname": _val(d.title), "amount": _val(d.amount), "deal_currency_code": _val(d.currency),
            "dealstage": current, "pipeline": "default", "createdate": iso(_ms(d.created_at)),
            "closedate": iso(closed), "hubspot_owner_id": ids.users[d.manager_id],
            "closed_lost_reason": _val(d.loss_reason) if d.status == "lost" else None,
            SOURCE_PROP: _val(d.source), REGION_PROP: _val(d.region)}, max(times),
            history={"dealstage": changes} if changes else None)
        company = ids.clients.get(d.client_id)
        if company:
            fake.associate("deals", did, "companies", company)

    if data.activities is not None:
        for k, a in enumerate(data.activities.itertuples(index=False), start=1):
            aid = str(1_000_000 + k)
            done, due = _ms(a.done_at), _ms(a.due_at)
            owner = ids.users.get(a.manager_id)
            if a.type == "call":
                obj, props = "calls", {"hs_timestamp": iso(done or due),
                                       "hs_call_status": "COMPLETED" if done else "SCHEDULED"}
            elif a.type == "meeting":
                obj, props = "meetings", {"hs_timestamp": iso(due or done), "hs_meeting_start_time": iso(due or done),
                                          "hs_meeting_end_time": iso(done) if done else None,
                                          "hs_meeting_outcome": "COMPLETED" if done else "SCHEDULED"}
            elif a.type == "task":
                obj, props = "tasks", {"hs_timestamp": iso(due or done),
                                       "hs_task_status": "COMPLETED" if done else "NOT_STARTED",
                                       "hs_task_completion_date": iso(done)}
            elif done is not None:  # an email logged as an activity, or a note
                obj, props = "notes", {"hs_timestamp": iso(done)}
            else:
                continue
            fake.put(obj, aid, {**props, "hubspot_owner_id": owner}, max(t for t in (done, due, 0) if t is not None))
            if isinstance(a.deal_id, str) and a.deal_id in ids.deals:
                fake.associate(obj, aid, "deals", ids.deals[a.deal_id])
            if isinstance(a.client_id, str) and a.client_id in ids.clients:
                fake.associate(obj, aid, "companies", ids.clients[a.client_id])

    sent_at: dict[str, int] = {}
    if data.emails is not None:
        for k, e in enumerate(data.emails.itertuples(index=False), start=1):
            eid = str(2_000_000 + k)
            ids.emails[e.email_id] = eid
            at = _ms(e.sent_at)
            sent_at[e.email_id] = at
            fake.put("emails", eid, {
                "hs_timestamp": iso(at), "hs_email_direction": "INCOMING_EMAIL" if e.direction == "in" else "EMAIL",
                "hs_email_subject": _val(e.subject), "hubspot_owner_id": ids.users.get(e.manager_id),
                "hs_email_to_email": mailbox(e.client_id) if e.direction == "out" else None}, at)
            fake.associate("emails", eid, "companies", ids.clients[e.client_id])
            if isinstance(e.deal_id, str) and e.deal_id in ids.deals:
                fake.associate("emails", eid, "deals", ids.deals[e.deal_id])
    if data.email_opens is not None and data.emails is not None:
        client_of = dict(zip(data.emails.email_id, data.emails.client_id))
        for k, o in enumerate(data.email_opens.itertuples(index=False), start=1):
            fake.open_event(f"open-{k}", mailbox(client_of[o.email_id]), _ms(o.opened_at), sent_at[o.email_id])
    if data.leads is not None:
        statuses = sorted({str(x) for x in data.leads.status.dropna()} - {"new"})
        fake.add_lead_pipeline("lead-pipeline-id", "Leads", [("new-stage-id", "new"), ("attempting-stage-id", "attempting")]
                               + [(f"{x}-stage-id", x) for x in statuses])
        for k, lead in enumerate(data.leads.itertuples(index=False), start=1):
            lid = str(3_000_000 + k)
            ids.leads[lead.lead_id] = lid
            created, answered = _ms(lead.created_at), _ms(lead.first_response_at)
            steps = [("new-stage-id", created)]
            if answered is not None:
                steps.append(("attempting-stage-id", answered))
            if _val(lead.status) not in (None, "new"):
                steps.append((f"{lead.status}-stage-id", steps[-1][1] + 60_000))
            fake.put("leads", lid, {
                "hs_lead_name": f"Lead {lead.lead_id}", "createdate": iso(created),
                "hubspot_owner_id": ids.users.get(lead.manager_id) if isinstance(lead.manager_id, str) else None,
                "hubspot_owner_assigneddate": iso(_ms(lead.assigned_at)), "hs_pipeline": "lead-pipeline-id",
                "hs_pipeline_stage": steps[-1][0], SOURCE_PROP: _val(lead.source), REGION_PROP: _val(lead.region)},
                steps[-1][1], history={"hs_pipeline_stage": steps})
    return ids
