"""A company in the canonical contract (the demo) put into a FakePipedrive the way Pipedrive would
hold it: managers as users, clients as organizations (region and segment as custom fields),
stages as one pipeline's stages, deals as v2 deals (source and region as custom fields), stage
entries as `dealChange` items of each deal's flow, emails as the deal's mail messages (an opened
tracked email says only "opened", updated at its first open), activities as v2 activities, and
leads not yet converted as leads (a lead's first answer as a done call on it). An opened
tracked email is marked "opened" (updated at its first open), which is all Pipedrive keeps.

What Pipedrive has no place for is left out or reduced, as it would be: a manager's team,
region and capacity; the time a lead was assigned; leads converted into deals (Pipedrive's
leads list no longer has them); the times of email opens; seconds of an activity's due time.
`as_pipedrive_holds_it` applies the same reductions to the canonical data, so a test compares
the synced store with what Pipedrive could have held.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from crm.data import CrmData
from tests.fakes.pipedrive_server import FakePipedrive, iso, v1_time

PIPELINE = 1
SOURCE_FIELD, REGION_FIELD, SEGMENT_FIELD = "Источник", "Регион", "Сегмент"
KEYS = {SOURCE_FIELD: "5a0c1e7f" * 5, REGION_FIELD: "9b3d2c4e" * 5, SEGMENT_FIELD: "1f2e3d4c" * 5}
ARCHIVED = ("junk", "spam", "duplicate")  # lead statuses Pipedrive users archive


@dataclass
class IdMaps:
    users: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    deals: dict[str, int] = field(default_factory=dict)
    emails: dict[str, int] = field(default_factory=dict)
    activities: dict[str, int] = field(default_factory=dict)


def _ts(value) -> int | None:
    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).timestamp())


def _enum(name: str, values) -> tuple[dict, dict[str, int]]:
    labels = sorted({str(v) for v in values if isinstance(v, str)})
    ids = {label: 100 + i for i, label in enumerate(labels)}
    return ({"id": 40 + list(KEYS).index(name), "key": KEYS[name], "name": name, "field_type": "enum",
             "options": [{"id": i, "label": label} for label, i in ids.items()]}, ids)


def _emptied(column: pd.Series) -> pd.Series:
    """The column with every cell empty, of its own type (as the loader reads an absent one)."""
    return column.where(pd.Series(False, index=column.index))


def as_pipedrive_holds_it(data: CrmData) -> CrmData:
    """The canonical data reduced to what Pipedrive can hold (see the module docstring)."""
    from dataclasses import replace

    leads = data.leads[data.leads.status != "converted"].copy()
    leads["assigned_at"] = pd.NaT
    leads["region"] = _emptied(leads["region"])
    leads["status"] = leads["status"].map(lambda s: "closed" if s in ARCHIVED else "open")
    activities = data.activities.copy()
    activities["due_at"] = activities["due_at"].dt.floor("min")
    managers = data.managers.copy()
    managers["team"], managers["region"] = _emptied(managers["team"]), _emptied(managers["region"])
    managers["capacity"] = 1.0
    return replace(data, leads=leads, email_opens=None, activities=activities, managers=managers)


def load_into(fake: FakePipedrive, data: CrmData) -> IdMaps:
    ids = IdMaps()
    for i, m in enumerate(data.managers.itertuples(index=False), start=1):
        ids.users[m.manager_id] = i
        fake.add_user(i, m.name, m.email, active=bool(m.active))
    stage_of = {stage: 100 + k for k, stage in enumerate(data.stages)}
    fake.add_pipeline(PIPELINE, "Продажи", [(sid, stage) for stage, sid in stage_of.items()])

    region_field, regions = _enum(REGION_FIELD, pd.concat([data.deals.region, data.clients.region]))
    source_field, sources = _enum(SOURCE_FIELD, data.deals.source)
    fake.fields["dealFields"] = [source_field, region_field]
    fake.fields["organizationFields"] = [{**region_field}, {"id": 60, "key": KEYS[SEGMENT_FIELD],
                                                             "name": SEGMENT_FIELD, "field_type": "varchar"}]
    for i, c in enumerate(data.clients.itertuples(index=False), start=1):
        ids.clients[c.client_id] = 10_000 + i
        custom = {}
        if isinstance(c.region, str):
            custom[KEYS[REGION_FIELD]] = regions[c.region]
        if isinstance(c.segment, str):
            custom[KEYS[SEGMENT_FIELD]] = c.segment
        fake.organizations[10_000 + i] = {"id": 10_000 + i, "name": c.name, "owner_id": ids.users.get(c.manager_id),
                                          "update_time": iso(0), "is_deleted": False, "custom_fields": custom}

    history = data.stage_history.sort_values(["deal_id", "entered_at"], kind="stable")
    entries = {d: g for d, g in history.groupby("deal_id", sort=False)}
    for i, d in enumerate(data.deals.itertuples(index=False), start=1):
        ids.deals[d.deal_id] = i
        steps = entries.get(d.deal_id)
        stages = [] if steps is None else list(zip(steps["stage"], steps["entered_at"]))
        first = stage_of[stages[0][0]] if stages else stage_of[d.stage]
        custom = {}
        if isinstance(d.source, str):
            custom[KEYS[SOURCE_FIELD]] = sources[d.source]
        if isinstance(d.region, str):
            custom[KEYS[REGION_FIELD]] = regions[d.region]
        closed = _ts(d.closed_at)
        fake.put_deal({"id": i, "title": d.title, "value": d.amount, "currency": d.currency,
                       "owner_id": ids.users[d.manager_id], "org_id": ids.clients.get(d.client_id),
                       "pipeline_id": PIPELINE, "stage_id": first, "status": d.status,
                       "add_time": _ts(d.created_at), "update_time": closed or _ts(d.created_at),
                       "close_time": closed, "won_time": closed if d.status == "won" else None,
                       "lost_time": closed if d.status == "lost" else None,
                       "lost_reason": d.loss_reason if isinstance(d.loss_reason, str) else None,
                       "custom_fields": custom})
        for (before, _), (after, at) in zip(stages, stages[1:]):
            fake.move(i, _ts(at), stage_of[before], stage_of[after], user_id=ids.users[d.manager_id])

    if data.emails is not None:
        first_open = {} if data.email_opens is None else \
            data.email_opens.groupby("email_id")["opened_at"].min().map(_ts).to_dict()
        for k, e in enumerate(data.emails.itertuples(index=False), start=1):
            deal = ids.deals.get(e.deal_id)
            if deal is None:
                continue
            sent, opened = _ts(e.sent_at), first_open.get(e.email_id)
            out = e.direction == "out"
            fake.add_mail(deal, {"id": k, "user_id": ids.users.get(e.manager_id), "subject": e.subject,
                                 "sent_flag": 1 if out else 0, "message_time": sent, "add_time": sent,
                                 "update_time": opened if out and opened is not None else sent,
                                 "mail_link_tracking_enabled_flag": 1 if out else 0,
                                 "mail_tracking_status": ("opened" if opened is not None else "not opened")
                                 if out else None})
            ids.emails[e.email_id] = k

    if data.activities is not None:
        for k, a in enumerate(data.activities.itertuples(index=False), start=1):
            deal = ids.deals.get(a.deal_id)
            if deal is None:
                continue
            ids.activities[a.activity_id] = k
            due, done = _ts(a.due_at), _ts(a.done_at)
            due_text = v1_time(due) if due is not None else None
            fake.activities[k] = {
                "id": k, "type": a.type, "owner_id": ids.users.get(a.manager_id), "deal_id": deal, "lead_id": None,
                "org_id": ids.clients.get(a.client_id), "person_id": None, "done": done is not None,
                "due_date": due_text[:10] if due_text else None, "due_time": due_text[11:16] if due_text else None,
                "marked_as_done_time": iso(done), "update_time": iso(done or due or 0), "is_deleted": False}

    if data.leads is not None:
        k = 900_000
        for lead in data.leads.itertuples(index=False):
            if lead.status == "converted":
                continue  # Pipedrive's leads list no longer holds a lead once it is a deal
            created = _ts(lead.created_at)
            fake.leads.append({
                "id": lead.lead_id, "title": f"Lead {lead.lead_id}", "owner_id": ids.users.get(lead.manager_id),
                "creator_id": 1, "person_id": None, "organization_id": None,
                "source_name": lead.source if isinstance(lead.source, str) else None,
                "is_archived": lead.status in ARCHIVED, "value": None,
                "add_time": iso(created), "update_time": iso(created)})
            answered = _ts(lead.first_response_at)
            if answered is not None:
                k += 1
                fake.activities[k] = {
                    "id": k, "type": "call", "owner_id": ids.users.get(lead.manager_id), "deal_id": None,
                    "lead_id": lead.lead_id, "org_id": None, "person_id": None, "done": True,
                    "due_date": None, "due_time": None, "marked_as_done_time": iso(answered),
                    "update_time": iso(answered), "is_deleted": False}
    return ids
