"""HubSpot (CRM v3, private-app token) -> the local store -> the canonical tables.

What maps to what:
- owners (`/crm/v3/owners`, and `archived=true` for people who left) -> managers (team = the
  owner's primary team, active = not archived);
- deal pipelines' stages (`/crm/v3/pipelines/deals`) -> stages in pipeline order; a stage with
  `metadata.isClosed` is a status, not a stage: probability 1 = won, otherwise lost. A closed
  deal keeps the last open stage it was in;
- deals -> deals (client = the deal's first associated company, else its first contact as
  `contact-<id>`; amount; `deal_currency_code`, else the account's currency;
  `closed_lost_reason`; `source` / `region` from the properties named in
  `[source.custom_fields.deals]`; pipeline = the pipeline's label, engine.label_pipelines);
- the `dealstage` property history (`propertiesWithHistory=dealstage`) -> stage_history: every
  value the deal's stage took, with its timestamp;
- emails (`/crm/v3/objects/emails`: `hs_email_direction` INCOMING_EMAIL = in, else out) ->
  emails; calls, meetings, tasks and notes -> activities;
- OPEN events of emails sent through HubSpot (`/email/public/v1/events?eventType=OPEN`) ->
  email_opens. The v1 events carry the recipient and the time of the send, not the CRM email's
  id: an open is given to the latest outgoing email to that recipient sent at or before it.
  Without the `content` scope opens are skipped (a warning), not the whole sync;
- companies -> clients (contacts only for deals and emails without a company);
- leads (the leads object of Sales Hub Professional / Enterprise) -> leads: manager = owner,
  assigned = `hubspot_owner_assigneddate`, first response = the first time the lead left its
  pipeline's first stage (HubSpot moves it from New to Attempting when outreach is logged; from
  the `hs_pipeline_stage` history), status = the label of its current stage, `source` /
  `region` from `[source.custom_fields.leads]`. An account without leads (403/404) syncs the
  rest with a warning; `lead_sla` then says it needs leads.
A manager's capacity and region are not in HubSpot.

Incremental: deals, companies, emails, leads and the engagements through the search endpoint
(`POST /crm/v3/objects/<type>/search`, `hs_lastmodifieddate GTE` the saved cursor minus
`overlap_minutes`, sorted by it, 100 a query). The window moves with every page: the next query
starts at the newest change seen (a full page within one millisecond is paged by id), so the
search's 10,000-result cap is never reached and a record changed during the sync cannot shift
another out of the pages, as `after` offsets would. The deals (and leads) found are then read
in batches of 50 with their stage history, and their companies and contacts with the v4
associations batch endpoint. Opens by `startTimestamp`.

Deletions: deals, emails and leads that are archived (deleted) in HubSpot are listed with
`archived=true` at every sync and leave the store. A deleted company, engagement or contact
stays until it is next changed (HubSpot's search never returns archived records), and opens are
never deleted. A deal restored from the recycle bin comes back at the next sync.

Limits: at most `requests_per_second` requests in any second, and at most 4 searches a second
(HubSpot allows 5); a 429 is waited out (its Retry-After, else the interval of the limit it
names); the daily limit stops the sync with a clear error instead of retrying for hours.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import requests
from requests.auth import AuthBase

from crm.connectors import engine
from crm.errors import DataError
from crm.redact import mask
from crm.source_config import SourceConfig

log = logging.getLogger(__name__)

KIND = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"
PAGE = 100  # search, list and associations pages
HISTORY_BATCH = 50  # batch read with propertiesWithHistory
SEARCH_PER_SECOND = 4.0  # HubSpot: 5 search requests a second per account
OWNERS_PAGE = 500
EVENTS_PAGE = 1000

OnSecret = Callable[[list[str]], None]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

DEAL_PROPS = ("dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate",
              "createdate", "hs_lastmodifieddate", "hubspot_owner_id", "closed_lost_reason")
EMAIL_PROPS = ("hs_timestamp", "hs_email_direction", "hs_email_subject", "hubspot_owner_id",
               "hs_email_to_email", "hs_email_status", "hs_lastmodifieddate")
COMPANY_PROPS = ("name", "hubspot_owner_id", "hs_lastmodifieddate")
LEAD_PROPS = ("hs_lead_name", "createdate", "hubspot_owner_id", "hubspot_owner_assigneddate", "hs_pipeline",
              "hs_pipeline_stage", "hs_lastmodifieddate")
CONTACT_PROPS = ("firstname", "lastname", "email", "hubspot_owner_id")
# engagement object -> (activity type, its properties)
ENGAGEMENTS = {
    "calls": ("call", ("hs_timestamp", "hubspot_owner_id", "hs_call_status", "hs_lastmodifieddate")),
    "meetings": ("meeting", ("hs_timestamp", "hubspot_owner_id", "hs_meeting_start_time",
                             "hs_meeting_end_time", "hs_meeting_outcome", "hs_lastmodifieddate")),
    "tasks": ("task", ("hs_timestamp", "hubspot_owner_id", "hs_task_status", "hs_task_completion_date",
                       "hs_lastmodifieddate")),
    "notes": ("note", ("hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate")),
}


# --- values as HubSpot writes them ---------------------------------------------------------

def ms(value: Any) -> int | None:
    """A HubSpot time (ISO 8601 text, or milliseconds as a number or text) as epoch ms."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:  # HubSpot writes UTC
        stamp = stamp.replace(tzinfo=timezone.utc)
    return (stamp - EPOCH) // timedelta(milliseconds=1)


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _changed_at(record: dict, modified: str, default: int) -> int:
    return ms((record.get("properties") or {}).get(modified)) or default


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# --- the client --------------------------------------------------------------------------------

class TokenAuth(AuthBase):
    """The private-app token as a Bearer header on every request, after the throttle (searches
    also wait for the stricter search throttle)."""

    def __init__(self, token: str, throttle: engine.Throttle, search: engine.Throttle) -> None:
        self.token, self.throttle, self.search = token, throttle, search

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if (request.path_url or "").split("?")[0].endswith("/search"):
            self.search.wait()
        self.throttle.wait()
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def wait_for_limit(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """HubSpot's 429 names the limit it hit (`policyName`) and sends no Retry-After: give the
    retry the wait that limit needs (the secondly one: a second; the ten-second one: what
    X-HubSpot-RateLimit-Interval-Milliseconds says). The daily limit is not waited out: the
    sync stops with the reason and the next scheduled sync tries again."""
    if response.status_code != 429 or response.headers.get("Retry-After"):
        return
    try:
        policy = str((response.json() or {}).get("policyName") or "")
    except ValueError:
        policy = ""
    if policy.upper() == "DAILY":
        raise DataError("HubSpot's daily API limit for this account is used up",
                        fix="the limit resets at midnight in the account's time zone; the next "
                        "scheduled sync continues from where this one stopped")
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    wait = 1.0
    if interval and interval.isdigit() and policy.upper() != "SECONDLY":
        wait = max(1.0, int(interval) / 1000)
    response.headers["Retry-After"] = str(int(wait))


class Api:
    """RESTClient + token + throttles for one sync; counts the requests it sends."""

    def __init__(self, source: SourceConfig, on_secret: OnSecret | None = None, backoff: float = 1.0) -> None:
        from dlt.sources.helpers.rest_client import RESTClient

        token = os.environ.get(source.token_env or "", "").strip()
        if not token:
            raise DataError(f"environment variable {source.token_env} (named in [source] token_env) is not set",
                            fix=f"export {source.token_env}='<the access token of your HubSpot private app>' "
                            "(docs/connect-hubspot.md)")
        (on_secret or (lambda values: None))([token])
        self.source = source
        self.throttle = engine.Throttle(source.requests_per_second)
        self.search_throttle = engine.Throttle(min(SEARCH_PER_SECOND, source.requests_per_second))
        session = engine.http_session(backoff=backoff)
        session.hooks["response"].append(wait_for_limit)
        self.client = RESTClient(base_url=source.base_url or DEFAULT_BASE_URL, session=session,
                                 auth=TokenAuth(token, self.throttle, self.search_throttle),
                                 headers={"Accept": "application/json"})

    def pages(self, path: str, params: dict[str, Any], selector: str = "results") -> Iterator[list[dict]]:
        """GET pages following `paging.next.after`."""
        from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

        for page in self.client.paginate(path, params=params, data_selector=selector,
                                         paginator=JSONResponseCursorPaginator(cursor_path="paging.next.after",
                                                                               cursor_param="after")):
            yield list(page)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict:
        response = self.client.get(path, params=params or {})
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> dict:
        """POST; 207 (a batch with some inputs not found) is an answer, not an error."""
        response = self.client.post(path, json=body)
        response.raise_for_status()
        return response.json()

    # --- search: a moving window instead of `after` paging ---------------------------------
    def changed(self, obj: str, properties: tuple[str, ...], since: int,
                modified: str = "hs_lastmodifieddate") -> Iterator[list[dict]]:
        """Every record of `obj` modified at or after `since` (epoch ms), oldest first, a page
        at a time (each record once per call).

        Each query asks for the oldest changes from the newest change seen so far on, instead of
        paging one query with `after`: a query cannot page past 10,000 results, and a record
        changed while a query is paged moves to its end and shifts every later record a place
        forward, so the offset would skip one. Records at the boundary millisecond come again
        and are dropped here; a full page in one millisecond (a bulk import) is paged by id."""
        lower, seen = since, set()  # seen: ids already given whose change time is `lower`
        while True:
            rows = self._search(obj, properties, modified,
                                [{"propertyName": modified, "operator": "GTE", "value": str(lower)}], modified)
            fresh = [r for r in rows if str(r["id"]) not in seen]
            if fresh:
                yield fresh
            if len(rows) < PAGE:
                return
            newest = max(_changed_at(r, modified, lower) for r in rows)
            if newest > lower:
                lower, seen = newest, {str(r["id"]) for r in rows if _changed_at(r, modified, lower) == newest}
                continue
            seen |= {str(r["id"]) for r in rows}  # all changed at `lower`
            last_id = "0"
            while True:  # the whole page changed at `lower`: page that millisecond by id
                rows = self._search(obj, properties, modified, [
                    {"propertyName": modified, "operator": "EQ", "value": str(lower)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": last_id}], "hs_object_id")
                fresh = [r for r in rows if str(r["id"]) not in seen]
                if fresh:
                    yield fresh
                if len(rows) < PAGE:
                    break
                last_id = str(max(int(r["id"]) for r in rows))
            lower, seen = lower + 1, set()

    def _search(self, obj: str, properties: tuple[str, ...], modified: str, filters: list[dict],
                sort: str) -> list[dict]:
        body = {"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": sorted({*properties, modified}), "limit": PAGE}
        return self.post(f"/crm/v3/objects/{obj}/search", body).get("results") or []

    def read(self, obj: str, ids: list[str], properties: tuple[str, ...],
             history: tuple[str, ...] = ()) -> dict[str, dict]:
        """Records by id (batch read; 50 a request with history, else 100)."""
        size = HISTORY_BATCH if history else PAGE
        out: dict[str, dict] = {}
        for i in range(0, len(ids), size):
            body: dict[str, Any] = {"inputs": [{"id": x} for x in ids[i:i + size]], "properties": list(properties)}
            if history:
                body["propertiesWithHistory"] = list(history)
            for r in self.post(f"/crm/v3/objects/{obj}/batch/read", body).get("results") or []:
                out[str(r["id"])] = r
        return out

    def associated(self, obj: str, to: str, ids: list[str]) -> dict[str, list[str]]:
        """{id: ids of the `to` records associated with it} (v4 associations batch read)."""
        out: dict[str, list[str]] = {}
        for i in range(0, len(ids), PAGE):
            data = self.post(f"/crm/v4/associations/{obj}/{to}/batch/read",
                             {"inputs": [{"id": x} for x in ids[i:i + PAGE]]})
            for r in data.get("results") or []:
                out[str((r.get("from") or {}).get("id"))] = [str(t["toObjectId"]) for t in r.get("to") or []]
        return out


# --- records as stored (flat rows; times as epoch ms) ----------------------------------------

def _custom(props: dict, names: list[str]) -> str | None:
    found = {n: props.get(n) for n in names if props.get(n) not in (None, "")}
    return json.dumps(found, ensure_ascii=False) if found else None


def _first(ids: list[str] | None) -> str | None:
    return ids[0] if ids else None


def deal_row(r: dict, companies: list[str] | None, contacts: list[str] | None,
             contact: dict | None, custom: list[str]) -> dict:
    p = r.get("properties") or {}
    history = ((r.get("propertiesWithHistory") or {}).get("dealstage")) or []
    changes = sorted(({"value": h.get("value"), "timestamp": ms(h.get("timestamp"))} for h in history
                      if h.get("value")), key=lambda h: (h["timestamp"] or 0))
    row = {
        "id": str(r["id"]), "name": _text(p.get("dealname")), "amount": _num(p.get("amount")),
        "currency": _text(p.get("deal_currency_code")), "stage_id": _text(p.get("dealstage")),
        "pipeline_id": _text(p.get("pipeline")), "owner_id": _text(p.get("hubspot_owner_id")),
        "created_at": ms(p.get("createdate")) or ms(r.get("createdAt")), "closed_at": ms(p.get("closedate")),
        "updated_at": ms(p.get("hs_lastmodifieddate")) or ms(r.get("updatedAt")),
        "loss_reason": _text(p.get("closed_lost_reason")),
        "company_id": _first(companies), "contact_id": _first(contacts),
        "stage_history": json.dumps(changes) if changes else None, "custom_fields": _custom(p, custom),
    }
    row.update(_contact_fields(contact))
    return row


def _contact_fields(contact: dict | None) -> dict:
    p = (contact or {}).get("properties") or {}
    name = " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x) or _text(p.get("email"))
    return {"contact_name": name, "contact_owner_id": _text(p.get("hubspot_owner_id"))}


def email_row(r: dict, deals: list[str] | None, companies: list[str] | None, contacts: list[str] | None,
              contact: dict | None) -> dict:
    p = r.get("properties") or {}
    row = {
        "id": str(r["id"]), "sent_at": ms(p.get("hs_timestamp")) or ms(r.get("createdAt")),
        "direction": "in" if p.get("hs_email_direction") == "INCOMING_EMAIL" else "out",
        "subject": _text(p.get("hs_email_subject")), "owner_id": _text(p.get("hubspot_owner_id")),
        "to_email": (_text(p.get("hs_email_to_email")) or "").split(";")[0].strip().lower() or None,
        "updated_at": ms(p.get("hs_lastmodifieddate")) or ms(r.get("updatedAt")),
        "deal_id": _first(deals), "company_id": _first(companies), "contact_id": _first(contacts),
    }
    row.update(_contact_fields(contact))
    return row


def engagement_row(obj: str, r: dict, deals: list[str] | None, companies: list[str] | None) -> dict:
    """A call, meeting, task or note as an activity: when it was due and when it was done."""
    kind = ENGAGEMENTS[obj][0]
    p = r.get("properties") or {}
    at = ms(p.get("hs_timestamp"))
    due = done = None
    if kind == "call":
        done = at if (p.get("hs_call_status") or "COMPLETED") == "COMPLETED" else None
    elif kind == "meeting":
        due = ms(p.get("hs_meeting_start_time")) or at
        if (p.get("hs_meeting_outcome") or "").upper() == "COMPLETED":
            done = ms(p.get("hs_meeting_end_time")) or due
    elif kind == "task":
        due = at
        if (p.get("hs_task_status") or "") == "COMPLETED":
            done = ms(p.get("hs_task_completion_date")) or ms(p.get("hs_lastmodifieddate"))
    else:
        done = at
    return {"id": str(r["id"]), "type": kind, "owner_id": _text(p.get("hubspot_owner_id")),
            "due_at": due, "done_at": done, "deal_id": _first(deals), "company_id": _first(companies),
            "updated_at": ms(p.get("hs_lastmodifieddate")) or ms(r.get("updatedAt"))}


def company_row(r: dict, custom: list[str]) -> dict:
    p = r.get("properties") or {}
    return {"id": str(r["id"]), "name": _text(p.get("name")), "owner_id": _text(p.get("hubspot_owner_id")),
            "updated_at": ms(p.get("hs_lastmodifieddate")) or ms(r.get("updatedAt")),
            "custom_fields": _custom(p, custom)}


def owner_row(r: dict, archived: bool) -> dict:
    teams = r.get("teams") or []
    primary = [t for t in teams if t.get("primary")] or teams
    name = " ".join(x for x in (r.get("firstName"), r.get("lastName")) if x) or r.get("email") or str(r["id"])
    return {"id": str(r["id"]), "name": name, "email": _text(r.get("email")),
            "team": _text(primary[0].get("name")) if primary else None, "active": not archived}


def stage_rows(pipeline: dict) -> list[dict]:
    rows = []
    for s in pipeline.get("stages") or []:
        meta = s.get("metadata") or {}
        closed = str(meta.get("isClosed", "false")).lower() == "true"
        probability = _num(meta.get("probability"))
        rows.append({"pipeline_id": str(pipeline["id"]), "pipeline_label": pipeline.get("label"),
                     "pipeline_order": pipeline.get("displayOrder"), "id": str(s["id"]), "label": s.get("label"),
                     "display_order": s.get("displayOrder"), "is_closed": closed,
                     "status": ("won" if probability is not None and probability >= 1.0 else "lost") if closed else "open"})
    return rows


def open_event_row(e: dict) -> dict:
    sent = (e.get("sentBy") or {}).get("created")
    return {"id": str(e["id"]), "opened_at": ms(e.get("created")), "recipient": (e.get("recipient") or "").lower() or None,
            "sent_at": ms(sent)}


def lead_row(r: dict, custom: list[str]) -> dict:
    p = r.get("properties") or {}
    history = ((r.get("propertiesWithHistory") or {}).get("hs_pipeline_stage")) or []
    changes = sorted(({"value": h.get("value"), "timestamp": ms(h.get("timestamp"))} for h in history
                      if h.get("value")), key=lambda h: (h["timestamp"] or 0))
    return {"id": str(r["id"]), "created_at": ms(p.get("createdate")) or ms(r.get("createdAt")),
            "owner_id": _text(p.get("hubspot_owner_id")), "assigned_at": ms(p.get("hubspot_owner_assigneddate")),
            "pipeline_id": _text(p.get("hs_pipeline")), "stage_id": _text(p.get("hs_pipeline_stage")),
            "stage_history": json.dumps(changes) if changes else None, "custom_fields": _custom(p, custom),
            "updated_at": ms(p.get("hs_lastmodifieddate")) or ms(r.get("updatedAt"))}


@contextmanager
def optional(what: str, scope: str, said: set[str]) -> Iterator[None]:
    """A part HubSpot may refuse without the rest being wrong: the leads object exists only in
    newer Sales Hub accounts, opens need a marketing scope. A 403/404 there skips that part with
    one warning per sync (`said` holds the scopes already named); the detector that needs it
    then says so."""
    try:
        yield
    except requests.HTTPError as exc:
        if exc.response is None or exc.response.status_code not in (403, 404):
            raise
        if scope not in said:
            said.add(scope)
            log.warning("HubSpot: %s are not synced: the account has none, or the private app lacks the "
                        "`%s` scope (HTTP %s)", what, scope, exc.response.status_code)


_cols = engine.column_hints


DEAL_COLS = _cols(id="text", name="text", amount="double", currency="text", stage_id="text", pipeline_id="text",
                  owner_id="text", created_at="bigint", closed_at="bigint", updated_at="bigint",
                  loss_reason="text", company_id="text", contact_id="text", stage_history="text",
                  custom_fields="text", contact_name="text", contact_owner_id="text")
EMAIL_COLS = _cols(id="text", sent_at="bigint", direction="text", subject="text", owner_id="text",
                   to_email="text", updated_at="bigint", deal_id="text", company_id="text", contact_id="text",
                   contact_name="text", contact_owner_id="text")
ENGAGEMENT_COLS = _cols(id="text", type="text", owner_id="text", due_at="bigint", done_at="bigint",
                        deal_id="text", company_id="text", updated_at="bigint")
COMPANY_COLS = _cols(id="text", name="text", owner_id="text", updated_at="bigint", custom_fields="text")
OWNER_COLS = _cols(id="text", name="text", email="text", team="text", active="bool")
STAGE_COLS = _cols(pipeline_id="text", pipeline_label="text", pipeline_order="bigint", id="text", label="text",
                   display_order="bigint", is_closed="bool", status="text")
OPEN_COLS = _cols(id="text", opened_at="bigint", recipient="text", sent_at="bigint")
ARCHIVE_COLS = _cols(id="text", archived_at="bigint")
LEAD_COLS = _cols(id="text", created_at="bigint", owner_id="text", assigned_at="bigint", pipeline_id="text",
                  stage_id="text", stage_history="text", custom_fields="text", updated_at="bigint")
LEAD_STAGE_COLS = _cols(pipeline_id="text", id="text", label="text", display_order="bigint")
ACCOUNT_COLS = _cols(portal_id="bigint", currency="text", time_zone="text")


# --- the dlt source ---------------------------------------------------------------------------

def _custom_names(source_config: SourceConfig, table: str) -> list[str]:
    return sorted({str(v) for v in source_config.custom_fields.get(table, {}).values()})


def source(api: Api, source_config: SourceConfig) -> Any:
    """Every HubSpot resource the canonical tables are built from."""
    import dlt

    overlap = int(source_config.overlap_minutes * 60 * 1000)
    deal_custom = _custom_names(source_config, "deals")
    company_custom = _custom_names(source_config, "clients")
    lead_custom = _custom_names(source_config, "leads")
    refused: set[str] = set()  # scopes HubSpot refused in this sync (each said once)

    def cursor() -> Any:
        return dlt.sources.incremental("updated_at", initial_value=0, lag=overlap)

    def contacts_of(rows: list[dict], companies: dict[str, list[str]], contacts: dict[str, list[str]]) -> dict[str, dict]:
        """The contacts that stand in for a missing company (their names make the client)."""
        wanted = sorted({contacts[r["id"]][0] for r in rows if not companies.get(r["id"]) and contacts.get(r["id"])})
        return api.read("contacts", wanted, CONTACT_PROPS) if wanted else {}

    def deals(cur=cursor()) -> Iterator[list[dict]]:
        props = DEAL_PROPS + tuple(deal_custom)
        for found in api.changed("deals", ("hs_lastmodifieddate",), int(cur.start_value or 0)):
            ids = [str(r["id"]) for r in found]
            full = api.read("deals", ids, props, history=("dealstage",))
            companies = api.associated("deals", "companies", ids)
            contacts = api.associated("deals", "contacts", ids)
            people = contacts_of(found, companies, contacts)
            yield [deal_row(full[i], companies.get(i), contacts.get(i),
                            people.get(_first(contacts.get(i)) or "") if not companies.get(i) else None, deal_custom)
                   for i in ids if i in full]

    def emails(cur=cursor()) -> Iterator[list[dict]]:
        for found in api.changed("emails", EMAIL_PROPS, int(cur.start_value or 0)):
            ids = [str(r["id"]) for r in found]
            linked = api.associated("emails", "deals", ids)
            companies = api.associated("emails", "companies", ids)
            contacts = api.associated("emails", "contacts", ids)
            people = contacts_of(found, companies, contacts)
            yield [email_row(r, linked.get(str(r["id"])), companies.get(str(r["id"])), contacts.get(str(r["id"])),
                             people.get(_first(contacts.get(str(r["id"]))) or "")
                             if not companies.get(str(r["id"])) else None) for r in found]

    def engagements(obj: str) -> Callable:
        def records(cur=cursor()) -> Iterator[list[dict]]:
            for found in api.changed(obj, ENGAGEMENTS[obj][1], int(cur.start_value or 0)):
                ids = [str(r["id"]) for r in found]
                linked = api.associated(obj, "deals", ids)
                companies = api.associated(obj, "companies", ids)
                yield [engagement_row(obj, r, linked.get(str(r["id"])), companies.get(str(r["id"]))) for r in found]
        return records

    def companies(cur=cursor()) -> Iterator[list[dict]]:
        for found in api.changed("companies", COMPANY_PROPS + tuple(company_custom), int(cur.start_value or 0)):
            yield [company_row(r, company_custom) for r in found]

    def opens(cur=dlt.sources.incremental("opened_at", initial_value=0, lag=overlap)) -> Iterator[list[dict]]:
        from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

        params = {"eventType": "OPEN", "limit": EVENTS_PAGE}
        if int(cur.start_value or 0) > 0:
            params["startTimestamp"] = int(cur.start_value)
        paginator = JSONResponseCursorPaginator(cursor_path="offset", cursor_param="offset", has_more_path="hasMore")
        with optional("email opens", "content", refused):
            for page in api.client.paginate("/email/public/v1/events", params=params, data_selector="events",
                                            paginator=paginator):
                yield [open_event_row(e) for e in page if e.get("type", "OPEN") == "OPEN"]

    def leads(cur=cursor()) -> Iterator[list[dict]]:
        with optional("leads", "crm.objects.leads.read", refused):
            props = LEAD_PROPS + tuple(lead_custom)
            for found in api.changed("leads", ("hs_lastmodifieddate",), int(cur.start_value or 0)):
                ids = [str(r["id"]) for r in found]
                full = api.read("leads", ids, props, history=("hs_pipeline_stage",))
                yield [lead_row(full[i], lead_custom) for i in ids if i in full]

    def lead_stages() -> Iterator[list[dict]]:
        with optional("leads", "crm.objects.leads.read", refused):
            data = api.get("/crm/v3/pipelines/leads")
            yield [{"pipeline_id": str(p["id"]), "id": str(st["id"]), "label": st.get("label"),
                    "display_order": st.get("displayOrder")} for p in data.get("results") or [] for st in p.get("stages") or []]

    def owners() -> Iterator[list[dict]]:
        for archived in (False, True):
            for rows in api.pages("/crm/v3/owners", {"limit": OWNERS_PAGE, "archived": str(archived).lower()}):
                yield [owner_row(r, archived) for r in rows]

    def stages() -> Iterator[list[dict]]:
        data = api.get("/crm/v3/pipelines/deals")
        yield [s for p in data.get("results") or [] for s in stage_rows(p)]

    def archive(obj: str, optional_scope: str | None = None) -> Callable:
        def listing() -> Iterator[list[dict]]:
            for rows in api.pages(f"/crm/v3/objects/{obj}", {"archived": "true", "limit": PAGE}):
                yield [{"id": str(r["id"]), "archived_at": ms(r.get("archivedAt")) or ms(r.get("updatedAt"))}
                       for r in rows]

        def records() -> Iterator[list[dict]]:
            if optional_scope is None:
                yield from listing()
                return
            with optional(obj, optional_scope, refused):
                yield from listing()
        return records

    def account() -> Iterator[dict]:
        data = api.get("/account-info/v3/details")
        yield {"portal_id": data.get("portalId"), "currency": _text(data.get("companyCurrency")),
               "time_zone": _text(data.get("timeZone"))}

    def merged(fn: Callable, name: str, columns: dict) -> Any:
        return dlt.resource(fn, name=name, primary_key="id", write_disposition="merge", columns=columns)

    def replaced(fn: Callable, name: str, columns: dict, key: Any = "id") -> Any:
        return dlt.resource(fn, name=name, primary_key=key, write_disposition="replace", columns=columns)

    @dlt.source(name=KIND, max_table_nesting=0)
    def hubspot() -> list[Any]:
        return [
            replaced(account, "account", ACCOUNT_COLS, key=None),
            replaced(owners, "owners", OWNER_COLS),
            replaced(stages, "stages", STAGE_COLS, key=("pipeline_id", "id")),
            merged(deals, "deals", DEAL_COLS),
            replaced(archive("deals"), "deals_archived", ARCHIVE_COLS),
            merged(companies, "companies", COMPANY_COLS),
            merged(emails, "emails", EMAIL_COLS),
            replaced(archive("emails"), "emails_archived", ARCHIVE_COLS),
            replaced(archive("leads", optional_scope="crm.objects.leads.read"), "leads_archived", ARCHIVE_COLS),
            merged(opens, "email_opens", OPEN_COLS),
            merged(leads, "leads", LEAD_COLS),
            replaced(lead_stages, "lead_stages", LEAD_STAGE_COLS, key=("pipeline_id", "id")),
            *[merged(engagements(obj), obj, ENGAGEMENT_COLS) for obj in ENGAGEMENTS],
        ]

    return hubspot()


def sync(source_config: SourceConfig, base_dir: Path | None, *, on_secret: OnSecret | None = None,
         backoff: float = 1.0) -> engine.SyncReport:
    """Take what changed since the last sync (everything the first time) into the store, then
    remove the deals and emails archived in HubSpot. Raises DataError (credentials, limits,
    store) or the HTTP error."""
    started = time.monotonic()
    store = engine.open_store(source_config, base_dir)
    api = Api(source_config, on_secret, backoff=backoff)
    pipe = store.pipeline(KIND)
    try:
        rows = engine.run(pipe, source(api, source_config))
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    deleted = _apply_deletions(store)
    return engine.SyncReport(KIND, rows=rows, requests=api.throttle.count, deleted=deleted,
                             seconds=time.monotonic() - started)


def _http_error(exc: requests.HTTPError, source_config: SourceConfig) -> DataError:
    response = exc.response
    status = response.status_code if response is not None else None
    line = mask(str(exc).splitlines()[0])
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if status == 401:
        return DataError(f"HubSpot refused the access token ({line})",
                         fix=f"check ${source_config.token_env}: the private app's access token "
                         "(Settings -> Integrations -> Private Apps -> your app -> Auth); a rotated "
                         "token must be exported again")
    if status == 403:
        scopes = sorted({s for e in body.get("errors") or [] for s in
                         ((e.get("context") or {}).get("requiredGranularScopes") or [])})
        need = ", ".join(scopes) if scopes else "the scopes listed in docs/connect-hubspot.md"
        return DataError(f"HubSpot's private app may not read this ({line})",
                         fix=f"give the private app the scopes {need} (Private Apps -> your app -> Scopes), "
                         "then sync again")
    return DataError(f"HubSpot answered with an error ({line})",
                     fix=f"check [source] base_url = {source_config.base_url!r}; a temporary "
                     "error is retried by the next sync")


def _apply_deletions(store: engine.Store) -> int:
    """Deals and emails archived in HubSpot (after their last change we hold) leave the store."""
    s = store.dataset(KIND)
    con = store.connect()
    try:
        have, gone = engine.tables(con, s), 0
        for table in ("deals", "emails", "leads"):
            if {table, f"{table}_archived"} <= have:
                n = con.execute(f"DELETE FROM {s}.{table} t USING {s}.{table}_archived a "
                                "WHERE a.id = t.id AND coalesce(a.archived_at, 0) >= coalesce(t.updated_at, 0)").fetchone()
                gone += int(n[0]) if n else 0
        return gone
    finally:
        con.close()


def _tables(con: Any) -> set[str]:
    return engine.tables(con, KIND)


# --- check -------------------------------------------------------------------------------------

def check(source_config: SourceConfig, base_dir: Path | None, *,
          on_secret: OnSecret | None = None) -> dict[str, Any]:
    """Prove the token: the account, its deal pipelines (with stages) and its owners, and that
    every object the sync reads can be read (one record of each): a missing scope is named now,
    not at the first sync. Leads and opens are optional: their absence is said on the account line."""
    api = Api(source_config, on_secret)
    refused: set[str] = set()
    try:
        account = api.get("/account-info/v3/details")
        pipelines = api.get("/crm/v3/pipelines/deals").get("results") or []
        owners = [(r, archived) for archived in (False, True)
                  for rows in api.pages("/crm/v3/owners", {"limit": OWNERS_PAGE, "archived": str(archived).lower()})
                  for r in rows]
        for obj in ("deals", "companies", "contacts", "emails", *ENGAGEMENTS):
            api.get(f"/crm/v3/objects/{obj}", {"limit": 1})
        with optional("leads", "crm.objects.leads.read", refused):
            api.get("/crm/v3/objects/leads", {"limit": 1})
        with optional("email opens", "content", refused):
            api.get("/email/public/v1/events", {"eventType": "OPEN", "limit": 1})
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    without = {"crm.objects.leads.read": "leads", "content": "email opens"}
    missing = "; ".join(f"no {without[scope]} (scope {scope})" for scope in sorted(refused))
    return {
        "account": f"HubSpot portal {account.get('portalId')}" + (f" ({missing})" if missing else ""),
        "pipelines": [{"id": p["id"], "name": p.get("label"), "included": _included(p["id"], p.get("label"), source_config),
                       "statuses": [s.get("label") for s in sorted(p.get("stages") or [], key=lambda s: s.get("displayOrder") or 0)]}
                      for p in sorted(pipelines, key=lambda p: p.get("displayOrder") or 0)],
        "users": [{"id": o["id"], "name": owner_row(o, archived)["name"], "active": not archived} for o, archived in owners],
    }


def _included(pid: Any, label: Any, source_config: SourceConfig) -> bool:
    return engine.included(pid, label, source_config.pipelines)


# --- the store as canonical tables ---------------------------------------------------------------

def _ts(column: str) -> str:
    return f"make_timestamptz({column} * 1000)"


def raw_tables(con: Any, source_config: SourceConfig) -> dict[str, pd.DataFrame]:
    """The canonical tables (canonical column names, raw values) from the synced records.

    Only deals in the included pipelines count; emails and activities tied to another deal are
    left out with it. Closed deals take the last open stage from their history."""
    have = _tables(con)
    if not {"owners", "deals", "stages"} <= have:
        raise DataError("the synced store has no HubSpot deals, owners or pipelines yet",
                        fix="run `crm-pulse sync --config <your config>` until it ends without an error")
    s = KIND
    pipes = con.execute(f"SELECT DISTINCT pipeline_id, pipeline_label FROM {s}.stages").fetchall()
    engine.check_wanted(pipes, source_config.pipelines, "HubSpot")
    included = [str(pid) for pid, label in pipes if _included(pid, label, source_config)]
    con.execute("CREATE OR REPLACE TEMP TABLE hs_inc AS SELECT UNNEST(?::VARCHAR[]) AS pipeline_id", [included])
    engine.label_pipelines(con, pipes)
    cf = source_config.custom_fields

    def field(table: str, column: str, alias: str, prefix: str) -> str:
        name = cf.get(table, {}).get(column)
        if not name:
            return f"CAST(NULL AS VARCHAR) AS {alias}"
        path = "$." + json.dumps(name, ensure_ascii=False)
        return f"json_extract_string({prefix}.custom_fields, '{path.replace(chr(39), chr(39) * 2)}') AS {alias}"

    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hs_deal AS
        SELECT d.*, CASE WHEN d.company_id IS NOT NULL THEN d.company_id
                         WHEN d.contact_id IS NOT NULL THEN 'contact-' || d.contact_id END AS client
        FROM {s}.deals d JOIN hs_inc USING (pipeline_id)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hs_hist AS
        WITH changes AS (
            SELECT d.id AS deal_id, unnest(from_json(d.stage_history, '[{{"value":"VARCHAR","timestamp":"BIGINT"}}]'),
                   recursive := true)
            FROM hs_deal d WHERE d.stage_history IS NOT NULL),
        entries AS (
            SELECT deal_id, value AS stage_id, timestamp AS entered FROM changes
            UNION ALL  -- a deal without history (not read with it): its current stage since creation
            SELECT id, stage_id, created_at FROM hs_deal WHERE stage_history IS NULL),
        opening AS (
            SELECT pipeline_id, arg_min(id, display_order) AS stage_id FROM {s}.stages
            WHERE NOT is_closed GROUP BY pipeline_id),
        first_open AS (  -- a deal that was closed from the start entered its pipeline's first stage
            SELECT d.id AS deal_id, o.stage_id, d.created_at AS entered FROM hs_deal d
            JOIN opening o USING (pipeline_id)
            WHERE NOT EXISTS (SELECT 1 FROM entries e JOIN {s}.stages st ON st.id = e.stage_id
                              WHERE e.deal_id = d.id AND NOT st.is_closed))
        SELECT e.deal_id, any_value(st.label) AS stage, e.entered
        FROM (SELECT * FROM entries UNION ALL SELECT * FROM first_open) e
        JOIN {s}.stages st ON st.id = e.stage_id
        WHERE NOT st.is_closed
        GROUP BY e.deal_id, e.stage_id, e.entered""")
    out: dict[str, pd.DataFrame] = {}
    out["managers"] = con.execute(f"""
        SELECT id AS manager_id, any_value(name) AS name, any_value(email) AS email, any_value(team) AS team,
               bool_or(active) AS active
        FROM {s}.owners GROUP BY id ORDER BY id""").df()
    out["stages"] = con.execute(f"""
        SELECT label AS stage, ROW_NUMBER() OVER (ORDER BY pipeline_order, pipeline_id, display_order, id) AS position
        FROM {s}.stages JOIN hs_inc USING (pipeline_id) WHERE NOT is_closed""").df()
    currency = f"(SELECT any_value(currency) FROM {s}.account)" if "account" in have else "NULL"
    out["deals"] = con.execute(f"""
        WITH last_stage AS (SELECT deal_id, arg_max(stage, entered) AS stage FROM hs_hist GROUP BY deal_id)
        SELECT d.id AS deal_id, d.client AS client_id, d.owner_id AS manager_id, d.name AS title,
               d.amount, coalesce(d.currency, {currency}) AS currency,
               CASE WHEN st.is_closed THEN ls.stage ELSE st.label END AS stage,
               coalesce(st.status, 'open') AS status,
               {_ts("d.created_at")} AS created_at,
               CASE WHEN st.is_closed THEN {_ts("d.closed_at")} END AS closed_at,
               CASE WHEN st.status = 'lost' THEN d.loss_reason END AS loss_reason,
               {field("deals", "source", "source", "d")}, {field("deals", "region", "region", "d")},
               coalesce(pl.pipeline, d.pipeline_id) AS pipeline
        FROM hs_deal d
        LEFT JOIN {s}.stages st ON st.id = d.stage_id
        LEFT JOIN pipeline_label pl ON pl.pipeline_id = d.pipeline_id
        LEFT JOIN last_stage ls ON ls.deal_id = d.id
        ORDER BY d.id""").df()
    out["stage_history"] = con.execute(f"""
        SELECT deal_id, stage, {_ts("entered")} AS entered_at FROM hs_hist ORDER BY entered, deal_id, stage""").df()

    emails = "emails" in have
    parts = []
    if "companies" in have:
        parts.append(f"""SELECT c.id AS client_id, c.name, c.owner_id AS manager_id,
            {field("clients", "region", "region", "c")}, {field("clients", "segment", "segment", "c")}
            FROM {s}.companies c""")
    contact_sources = ["SELECT contact_id, contact_name, contact_owner_id FROM hs_deal WHERE company_id IS NULL"]
    if emails:
        contact_sources.append(f"SELECT contact_id, contact_name, contact_owner_id FROM {s}.emails WHERE company_id IS NULL")
    parts.append(f"""SELECT 'contact-' || contact_id, any_value(contact_name), any_value(contact_owner_id),
        NULL::VARCHAR, NULL::VARCHAR FROM ({" UNION ALL ".join(contact_sources)})
        WHERE contact_id IS NOT NULL GROUP BY contact_id""")
    out["clients"] = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1").df()

    # emails and activities: those on an included deal, or on no deal at all
    def on_included(alias: str) -> str:
        return f"({alias}.deal_id IS NULL OR {alias}.deal_id IN (SELECT id FROM hs_deal))"

    if emails:
        out["emails"] = con.execute(f"""
            SELECT e.id AS email_id,
                   coalesce(e.company_id, 'contact-' || e.contact_id, d.client) AS client_id,
                   e.owner_id AS manager_id, e.deal_id, e.direction, {_ts("e.sent_at")} AS sent_at, e.subject
            FROM {s}.emails e LEFT JOIN hs_deal d ON d.id = e.deal_id
            WHERE {on_included("e")} AND coalesce(e.company_id, e.contact_id, d.client) IS NOT NULL
            ORDER BY e.sent_at, e.id""").df()
        if "email_opens" in have:
            out["email_opens"] = con.execute(f"""
                WITH sent AS (SELECT id, to_email, sent_at FROM {s}.emails e
                              WHERE e.direction = 'out' AND e.to_email IS NOT NULL AND {on_included("e")})
                SELECT m.id AS email_id, {_ts("o.opened_at")} AS opened_at
                FROM {s}.email_opens o ASOF JOIN sent m
                  ON m.to_email = o.recipient AND coalesce(o.sent_at, o.opened_at) >= m.sent_at
                ORDER BY o.opened_at, m.id""").df()
    if {"leads", "lead_stages"} <= have:
        out["leads"] = con.execute(f"""
            WITH opening AS (SELECT pipeline_id, arg_min(id, display_order) AS stage_id
                             FROM {s}.lead_stages GROUP BY pipeline_id),
            changes AS (
                SELECT l.id AS lead_id, l.pipeline_id,
                       unnest(from_json(l.stage_history, '[{{"value":"VARCHAR","timestamp":"BIGINT"}}]'), recursive := true)
                FROM {s}.leads l WHERE l.stage_history IS NOT NULL),
            answered AS (  -- the first time a lead left its pipeline's first stage (New -> Attempting)
                SELECT c.lead_id, min(c.timestamp) AS at FROM changes c
                JOIN opening o USING (pipeline_id) WHERE c.value <> o.stage_id GROUP BY c.lead_id)
            SELECT l.id AS lead_id, {_ts("l.created_at")} AS created_at,
                   {field("leads", "source", "source", "l")}, {field("leads", "region", "region", "l")},
                   l.owner_id AS manager_id, {_ts("l.assigned_at")} AS assigned_at,
                   {_ts("a.at")} AS first_response_at, st.label AS status
            FROM {s}.leads l LEFT JOIN answered a ON a.lead_id = l.id
            LEFT JOIN {s}.lead_stages st ON st.pipeline_id = l.pipeline_id AND st.id = l.stage_id
            ORDER BY l.created_at, l.id""").df()
    acts = [f"""SELECT a.id AS activity_id, a.deal_id, coalesce(a.company_id, d.client) AS client_id,
                       a.owner_id AS manager_id, a.type, {_ts("a.due_at")} AS due_at, {_ts("a.done_at")} AS done_at
                FROM {s}.{obj} a LEFT JOIN hs_deal d ON d.id = a.deal_id WHERE {on_included("a")}"""
            for obj in ENGAGEMENTS if obj in have]
    if acts:
        out["activities"] = con.execute(" UNION ALL ".join(acts) + " ORDER BY 1").df()
    return out
