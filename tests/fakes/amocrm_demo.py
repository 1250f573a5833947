"""A company in the canonical contract (the demo) put into a FakeAmoCRM the way amoCRM would
hold it: managers as users in groups (their team), clients as companies, stages as one
pipeline's statuses behind its "Неразобранное", deals as leads (won/lost as statuses 142/143),
stage entries as `lead_status_changed` events, calls as call notes, meetings and tasks as
tasks, emails tied to a deal as amomail notes.

Leads: amoCRM keeps a lead and its deal as ONE record, so a lead the demo converted into a deal
is that deal (created when the deal was: the demo's hour or two between the request and the
deal, and the answer given in it, have no place). A lead still waiting is an incoming lead in
"Неразобранное": without a manager it is still there; with one it was accepted by that
manager when the demo assigned it, so it is a deal in the first stage. Junk leads were
declined: amoCRM deletes those. What amoCRM has no place for (email opens, capacity and region
of a manager, emails and activities without a deal) is left out, as it would be.
Returns the id maps (canonical id -> amoCRM id) so a test can compare the two sides."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from crm.data import CrmData
from tests.fakes.amocrm_server import LOST, WON, FakeAmoCRM

PIPELINE = 2000
INCOMING = 99  # the pipeline's "Неразобранное"
SOURCE_FIELD, REGION_FIELD, SEGMENT_FIELD = "Источник", "Регион", "Сегмент"


@dataclass
class IdMaps:
    users: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    deals: dict[str, int] = field(default_factory=dict)
    leads: dict[str, int] = field(default_factory=dict)  # the waiting ones (others are deals or gone)
    accepted: list[int] = field(default_factory=list)  # leads amoCRM holds as deals the demo has not


def _ts(value) -> int | None:
    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).timestamp())


def _cf(**named: object) -> list[dict]:
    return [{"field_id": i + 1, "field_name": name, "values": [{"value": value}]}
            for i, (name, value) in enumerate(named.items()) if value is not None and not pd.isna(value)]


def load_into(fake: FakeAmoCRM, data: CrmData) -> IdMaps:
    ids = IdMaps()
    teams = {t: 50 + i for i, t in enumerate(sorted(data.managers["team"].dropna().unique()))}
    fake.groups = [{"id": gid, "name": name} for name, gid in teams.items()]
    for i, m in enumerate(data.managers.itertuples(index=False), start=1):
        ids.users[m.manager_id] = i
        fake.add_user(i, m.name, m.email, group_id=teams.get(m.team), active=bool(m.active))
    status_of = {stage: 100 + k for k, stage in enumerate(data.stages)}
    fake.add_pipeline(PIPELINE, "Продажи", [(sid, stage) for stage, sid in status_of.items()],
                      incoming=(INCOMING, "Неразобранное"))
    for i, c in enumerate(data.clients.itertuples(index=False), start=1):
        ids.clients[c.client_id] = 10_000 + i
        fake.companies[10_000 + i] = {
            "id": 10_000 + i, "name": c.name, "responsible_user_id": ids.users.get(c.manager_id),
            "updated_at": 0, "custom_fields_values": _cf(**{REGION_FIELD: c.region, SEGMENT_FIELD: c.segment})}

    history = data.stage_history.sort_values(["deal_id", "entered_at"], kind="stable")
    entries = {d: g for d, g in history.groupby("deal_id", sort=False)}
    for i, d in enumerate(data.deals.itertuples(index=False), start=1):
        ids.deals[d.deal_id] = i
        steps = entries.get(d.deal_id)
        stages = [] if steps is None else list(zip(steps["stage"], steps["entered_at"]))
        times = [_ts(d.created_at), _ts(d.closed_at)] + [_ts(t) for _, t in stages]
        status = {"won": WON, "lost": LOST}.get(d.status, status_of[d.stage])
        company = ids.clients.get(d.client_id)
        fake.put_lead({
            "id": i, "name": d.title, "price": d.amount, "responsible_user_id": ids.users[d.manager_id],
            "status_id": status, "pipeline_id": PIPELINE, "created_at": _ts(d.created_at),
            "updated_at": max(t for t in times if t is not None), "closed_at": _ts(d.closed_at),
            "custom_fields_values": _cf(**{SOURCE_FIELD: d.source, REGION_FIELD: d.region}),
            "_embedded": {"tags": [], "companies": [{"id": company}] if company else [], "contacts": [],
                          "loss_reason": [{"id": 1, "name": d.loss_reason}] if isinstance(d.loss_reason, str) else []},
        })
        for (before, _), (after, at) in zip(stages, stages[1:]):
            fake.status_change(i, _ts(at), (PIPELINE, status_of[before]), (PIPELINE, status_of[after]))
        if d.status in ("won", "lost") and stages:
            fake.status_change(i, _ts(d.closed_at), (PIPELINE, status_of[stages[-1][0]]), (PIPELINE, status))

    if data.leads is not None:
        _load_waiting_leads(fake, data, ids, status_of[data.stages[0]])

    note_id = 1
    if data.activities is not None:
        for k, a in enumerate(data.activities.itertuples(index=False), start=1):
            lead = ids.deals.get(a.deal_id)
            if lead is None:
                continue
            user = ids.users.get(a.manager_id)
            done, due = _ts(a.done_at), _ts(a.due_at)
            if a.type in ("call", "email", "note") and done is not None:
                note_type = "call_out" if a.type == "call" else "common"
                fake.notes.append({"id": note_id, "entity_id": lead, "note_type": note_type, "created_by": user,
                                   "responsible_user_id": user, "created_at": done, "updated_at": done,
                                   "params": {}})
                note_id += 1
            elif a.type in ("meeting", "task"):
                fake.tasks.append({"id": k, "entity_id": lead, "entity_type": "leads",
                                   "task_type_id": 2 if a.type == "meeting" else 1, "responsible_user_id": user,
                                   "is_completed": done is not None, "complete_till": due or done,
                                   "created_at": done or due, "updated_at": done or due})
    if data.emails is not None:
        for e in data.emails.itertuples(index=False):
            lead = ids.deals.get(e.deal_id)
            if lead is None:
                continue
            user = ids.users.get(e.manager_id)
            at = _ts(e.sent_at)
            fake.notes.append({"id": note_id, "entity_id": lead, "note_type": "amomail_message",
                               "created_by": user, "responsible_user_id": user, "created_at": at,
                               "updated_at": at, "params": {"income": e.direction == "in", "subject": e.subject}})
            note_id += 1
    return ids


def _load_waiting_leads(fake: FakeAmoCRM, data: CrmData, ids: IdMaps, first_status: int) -> None:
    """The demo's leads still waiting (status "new") as incoming leads; see the module docstring."""
    waiting = data.leads[data.leads["status"] == "new"]
    next_id = max(ids.deals.values(), default=0) + 1
    for k, lead in enumerate(waiting.itertuples(index=False)):
        lead_id = next_id + k
        ids.leads[lead.lead_id] = lead_id
        at = _ts(lead.created_at)
        uid = f"demo-{lead.lead_id}"
        fake.add_unsorted(uid, {
            "id": lead_id, "name": f"Заявка {lead.lead_id}", "price": 0, "responsible_user_id": 1,
            "pipeline_id": PIPELINE, "created_at": at, "updated_at": at, "closed_at": None,
            "custom_fields_values": _cf(**{SOURCE_FIELD: lead.source, REGION_FIELD: lead.region}),
            "_embedded": {"tags": [], "companies": [], "contacts": [], "loss_reason": []},
        })
        if isinstance(lead.manager_id, str):
            assigned = _ts(lead.assigned_at) or at
            fake.accept_unsorted(uid, assigned, user_id=ids.users[lead.manager_id], status_id=first_status)
            ids.accepted.append(lead_id)
