"""amoCRM / Kommo (API v4) -> the local store -> the canonical tables.

What maps to what (amoCRM's "leads" are the contract's deals):
- users -> managers (team from the user's group, active from rights.is_active);
- pipelines' statuses -> stages in pipeline order; 142 / 143 are the won / lost statuses, not
  stages: a closed deal keeps the last stage it was in; "Неразобранное" (the incoming status,
  type 1) is not a stage either: a lead waiting there is not yet a deal;
- leads -> deals (client = the lead's company, else its main contact; amount = price; the
  account currency; loss_reason by name; `source` / `region` from custom fields named in
  `[source.custom_fields.deals]`; pipeline = the pipeline's name, engine.label_pipelines);
- `lead_status_changed` events -> stage_history (plus the entry into the first stage at
  creation, or at acceptance for a lead that came in through "Неразобранное");
- lead notes: calls -> activities, `amomail_message` -> emails (incoming or outgoing); tasks ->
  activities (type 2 = meeting, others = task; done when completed);
- companies (and contacts of leads without a company) -> clients;
- leads (the contract's table): every amoCRM lead that started at the head of its pipeline
  (in "Неразобранное" or the first stage), lead_id = its deal_id (one record in amoCRM);
  `/leads/unsorted` gives the incoming ones' source (form, chat, call, mail); owner and
  assignment from the acceptance and `entity_responsible_changed` events, the first answer from
  outgoing call / mail / SMS notes, `outgoing_*` events (chats too) and completed tasks (_leads).
amoCRM records no email opens: email_opens is not synced, and silent_client says so.

Deletions: `lead_deleted`, `contact_deleted`, `company_deleted`, `task_deleted` and
`common_note_deleted` events, `entity_deleted` events (named in shared/crm_api, read by their
entity type), leads in the recycle bin (`with=only_deleted`) and `is_deleted` on a lead,
contact or company remove the record from the store (a declined incoming lead is deleted by
amoCRM, so it goes too). Not detectable: a deleted call, mail or SMS note (amoCRM has no event
for it). A restored record comes back with the next sync that sees it updated after its deletion.

Incremental: leads, notes, tasks, companies and contacts by `filter[updated_at][from]`, events by
`filter[created_at][from]` and one `filter[type]` a request, each from the saved cursor minus
`overlap_minutes`; the incoming leads' list (no such filter) whole each sync; pages of 250
(events: 100) by the page number `_links.next.href` names (sent to base_url), or the next
number after a full page; HTTP 204, no body or an empty `_embedded` is an empty page.
Users, pipelines and leads are required; every other part amoCRM does not serve is skipped
and said once (OPTIONAL).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import requests
from requests.auth import AuthBase

from crm.connectors import engine
from crm.connectors.tokens import TokenFile, Tokens
from crm.errors import DataError
from crm.redact import mask
from crm.source_config import SourceConfig

log = logging.getLogger(__name__)

KIND = "amocrm"
WON, LOST = 142, 143
PAGE = 250
EVENTS_PAGE = 100
TOKEN_FILE = "amocrm_tokens.json"
CALL_NOTES = ("call_in", "call_out")
MAIL_NOTE = "amomail_message"
INCOMING = 1  # status type of a pipeline's "Неразобранное" (incoming leads): not a sales stage
# Event types (amoCRM v4 /events, "Типы событий"). Deletions that leave a trace: leads,
# contacts, companies, tasks, text notes; other notes (calls, mail) have no *_deleted event.
DELETION_EVENTS = ("lead_deleted", "contact_deleted", "company_deleted", "task_deleted", "common_note_deleted")
RESPONSIBLE_EVENT = "entity_responsible_changed"
RESPONSE_EVENTS = ("outgoing_call", "outgoing_mail", "outgoing_chat_message", "outgoing_sms")
RESPONSE_NOTES = ("call_out", "sms_out")  # plus outgoing amomail_message notes

OnSecret = Callable[[list[str]], None]


# --- credentials --------------------------------------------------------------------------

def _env(name: str | None, key: str) -> str:
    value = os.environ.get(name or "", "").strip()
    if not value:
        raise DataError(f"environment variable {name} (named in [source] {key}) is not set",
                        fix=f"export {name}='<the value from amoCRM>' before running crm-pulse")
    return value


class AmoAuth(AuthBase):
    """Bearer auth for every request, the throttle before each, and the OAuth refresh on 401.

    With a long-lived token there is nothing to refresh. With OAuth the tokens come from the
    token file (or, the first time, the refresh token in the environment); an expired access
    token is refreshed before use, and a 401 refreshes once and sends the request again. The
    new refresh token is written to the file before anything else happens.
    """

    def __init__(self, source: SourceConfig, folder: Path, throttle: engine.Throttle,
                 session: requests.Session, on_secret: OnSecret | None) -> None:
        self.source, self.throttle, self.session = source, throttle, session
        self.on_secret = on_secret or (lambda values: None)
        self.file = TokenFile(folder / TOKEN_FILE)
        self.long_lived: str | None = None
        self.tokens: Tokens | None = None
        if source.token_env:
            self.long_lived = _env(source.token_env, "token_env")
        else:
            self.tokens = self.file.load() or Tokens(
                "", _env(source.refresh_token_env, "refresh_token_env"), 0.0)
            self.on_secret([self.tokens.access_token, self.tokens.refresh_token])
        self.refreshes = 0

    def _access(self) -> str:
        if self.long_lived:
            return self.long_lived
        assert self.tokens is not None
        if not self.tokens.access_token or (self.tokens.expires_at and time.time() > self.tokens.expires_at - 60):
            self.refresh()
        return self.tokens.access_token

    def refresh(self) -> None:
        """POST /oauth2/access_token with grant_type=refresh_token; store the new pair first.

        One process refreshes at a time (a lock file next to the tokens): `run` and a manual
        `crm-pulse sync` share the token file, and amoCRM accepts each refresh token once, so a
        process that finds the file already holding newer tokens takes those instead. When the
        stored refresh token is refused and the environment holds a different one (the admin
        authorised the integration again), that one is tried once."""
        import fcntl

        assert self.tokens is not None
        self.file.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file.path.with_name(self.file.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = self.file.load()
            if stored is not None and stored.refresh_token != self.tokens.refresh_token and (
                    not stored.expires_at or time.time() < stored.expires_at - 60):
                self.tokens = stored  # another process refreshed while we waited
                self.on_secret([stored.access_token, stored.refresh_token])
                return
            self._refresh_locked()
        finally:
            os.close(fd)  # releases the lock

    def _refresh_locked(self) -> None:
        assert self.tokens is not None
        response = self._exchange(self.tokens.refresh_token)
        if response.status_code != 200:
            given = _env(self.source.refresh_token_env, "refresh_token_env")
            if given != self.tokens.refresh_token:
                response = self._exchange(given)
        if response.status_code != 200:
            raise DataError(
                f"amoCRM refused to refresh the access token (HTTP {response.status_code})",
                fix="the refresh token is no longer valid (unused for 3 months, or used elsewhere): "
                "authorise the integration again and put the new refresh token in "
                f"${self.source.refresh_token_env} (it replaces the one stored in {self.file.path})",
            )
        data = response.json()
        tokens = Tokens(str(data["access_token"]), str(data["refresh_token"]),
                        time.time() + float(data.get("expires_in") or 0))
        self.on_secret([tokens.access_token, tokens.refresh_token])
        self.file.save(tokens)
        self.tokens = tokens
        self.refreshes += 1
        log.info("amoCRM: access token refreshed, new refresh token stored in %s", self.file.path)

    def _exchange(self, refresh_token: str) -> requests.Response:
        body = {
            "client_id": _env(self.source.client_id_env, "client_id_env"),
            "client_secret": _env(self.source.client_secret_env, "client_secret_env"),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "redirect_uri": self.source.redirect_uri or "",
        }
        self.throttle.wait()
        response = self.session.post(_url(self.source, "/oauth2/access_token"), json=body, timeout=60)
        if response.status_code in (400, 415, 422):
            # amoCRM's docs send JSON; OAuth 2.0 (RFC 6749) sends a form: a server that reads
            # only forms refuses the JSON without spending the refresh token, so ask again
            self.throttle.wait()
            response = self.session.post(_url(self.source, "/oauth2/access_token"), data=body, timeout=60)
        return response

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.throttle.wait()
        request.headers["Authorization"] = f"Bearer {self._access()}"
        request.register_hook("response", self._on_401)
        return request

    def _on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or self.long_lived or getattr(response.request, "_amo_retried", False):
            return response
        if response.request.headers.get("Authorization") == f"Bearer {self._access()}":
            self.refresh()  # else the token was refreshed since this request was prepared: just resend
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        again = response.request.copy()
        again.headers["Authorization"] = f"Bearer {self._access()}"
        again._amo_retried = True  # type: ignore[attr-defined]
        self.throttle.wait()
        new = response.connection.send(again, **kwargs)
        new.history.append(response)
        new.request = again
        return new


def _url(source: SourceConfig, path: str) -> str:
    assert source.base_url is not None
    return source.base_url.rstrip("/") + path


# --- the client -----------------------------------------------------------------------------

class Api:
    """RESTClient + auth + throttle for one sync; counts the requests it sends."""

    def __init__(self, source: SourceConfig, folder: Path, on_secret: OnSecret | None = None,
                 backoff: float = 1.0) -> None:
        from dlt.sources.helpers.rest_client import RESTClient

        self.source = source
        self.throttle = engine.Throttle(source.requests_per_second)
        session = engine.http_session(backoff=backoff)
        self.auth = AmoAuth(source, folder, self.throttle, session, on_secret)
        self.client = RESTClient(base_url=_url(source, "/api/v4"), auth=self.auth, session=session,
                                 headers={"Accept": "application/hal+json"})

    def pages(self, path: str, selector: str, params: dict[str, Any]) -> Iterator[list[dict]]:
        """Every page of a list, in order.

        amoCRM links the next page (`_links.next.href`); only the link's page number is taken
        and sent to `base_url` with our own parameters, because the link names amoCRM's own
        host, which a proxy or a test server is not. A reply without a next link but with a
        full page (or a `_page_count` beyond this page) goes on to the next page number. An
        empty page ends the list in each of its forms: HTTP 204, no body, no or an empty
        `_embedded`."""
        limit = int(params.get("limit") or 0)
        page, query, url = int(params.get("page") or 1), dict(params), path
        followed: set[str] = set()
        while True:
            body = _body(self.client.get(url, params=query))
            rows = _dig(body, selector)
            if not rows:
                return
            yield rows
            href = _dig_str(body, "_links.next.href")
            target = urlsplit(href) if href else None
            numbers = parse_qs(target.query).get("page") if target else None
            if numbers and numbers[0].isdigit():
                if int(numbers[0]) <= page:
                    return  # a link back to this page (or before): the list is over
                page = int(numbers[0])
                query, url = {**params, "page": page}, path
            elif target is not None:  # a link without a page number: follow it, on our host
                if href in followed:
                    return
                followed.add(href)
                url, query = _url(self.source, target.path) + ("?" + target.query if target.query else ""), {}
            elif (limit and len(rows) >= limit) or int(body.get("_page_count") or 0) > page:
                page += 1
                query, url = {**params, "page": page}, path
            else:
                return

    def one(self, path: str, params: dict[str, Any] | None = None) -> dict:
        return _body(self.client.get(path, params=params or {}))


def _body(response: requests.Response) -> dict:
    """A reply's JSON object: {} for 204 or an empty body; HTTPError for an error status or a
    body that is not a JSON object (a proxy's error page)."""
    if response.status_code >= 400:
        response.raise_for_status()
    if response.status_code == 204 or not response.content.strip():
        return {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise requests.HTTPError(f"{response.status_code} reply that is not a JSON object for url: "
                                 f"{response.url.split('?')[0]}", response=response)
    return body


def _dig(body: Any, path: str) -> list[dict]:
    """The records at a dotted path ("_embedded.leads"); [] where a level is missing or empty
    (PHP writes an empty map as [])."""
    node = body
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return [r for r in node if isinstance(r, dict)] if isinstance(node, list) else []


def _dig_str(body: Any, path: str) -> str | None:
    node = body
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) and node else None


# --- records as stored (flat rows; timestamps stay unix seconds) ----------------------------

def _custom(record: dict) -> str | None:
    """{field name: first value} of custom_fields_values, as JSON text (read with json_extract)."""
    fields = record.get("custom_fields_values") or []
    out = {}
    for f in fields:
        values = f.get("values") or []
        if values and f.get("field_name"):
            out[str(f["field_name"])] = values[0].get("value")
    return json.dumps(out, ensure_ascii=False) if out else None


def _first_id(items: list[dict] | None, prefer_main: bool = False) -> int | None:
    items = items or []
    if prefer_main:
        main = [c for c in items if c.get("is_main")]
        items = main or items
    return int(items[0]["id"]) if items else None


def lead_row(r: dict) -> dict:
    emb = r.get("_embedded") or {}
    emb = emb if isinstance(emb, dict) else {}  # PHP writes an empty map as []
    reasons = emb.get("loss_reason") or []
    reasons = [reasons] if isinstance(reasons, dict) else reasons
    return {
        "id": r["id"], "name": r.get("name"), "price": r.get("price"),
        "responsible_user_id": r.get("responsible_user_id"), "status_id": r.get("status_id"),
        "pipeline_id": r.get("pipeline_id"), "created_at": r.get("created_at"),
        "updated_at": r.get("updated_at"), "closed_at": r.get("closed_at"),
        "is_deleted": bool(r.get("is_deleted")),
        "loss_reason": reasons[0].get("name") if reasons else None,
        "company_id": _first_id(emb.get("companies")),
        "contact_id": _first_id(emb.get("contacts"), prefer_main=True),
        "custom_fields": _custom(r),
    }


def status_event_row(r: dict) -> dict:
    after = ((r.get("value_after") or [{}])[0] or {}).get("lead_status") or {}
    before = ((r.get("value_before") or [{}])[0] or {}).get("lead_status") or {}
    return {
        "id": str(r["id"]), "lead_id": r["entity_id"], "created_at": r["created_at"],
        "status_before": before.get("id"), "pipeline_before": before.get("pipeline_id"),
        "status_after": after.get("id"), "pipeline_after": after.get("pipeline_id"),
    }


def deletion_row(r: dict) -> dict:
    """A `*_deleted` event: what was deleted. For a note that is the note in value_before (the
    event's entity is the lead the note was on); otherwise the event's entity itself."""
    note = ((r.get("value_before") or [{}])[0] or {}).get("note") or {}
    kind = r.get("type")
    if kind == ENTITY_DELETED and ENTITY_TYPES.get(str(r.get("entity_type"))):
        kind = ENTITY_TYPES[str(r.get("entity_type"))] + "_deleted"  # read as the documented type
    return {"id": str(r["id"]), "type": kind, "entity_type": r.get("entity_type"),
            "entity_id": r.get("entity_id"), "note_id": note.get("id"), "created_at": r["created_at"]}


def lead_event_row(r: dict) -> dict:
    """A responsible-user change or an outgoing call / mail / chat message / SMS on a lead."""
    after = ((r.get("value_after") or [{}])[0] or {}).get("responsible_user") or {}
    return {"id": str(r["id"]), "type": r.get("type"), "lead_id": r["entity_id"],
            "created_at": r["created_at"], "created_by": r.get("created_by"), "responsible_after": after.get("id")}


def unsorted_row(r: dict) -> dict:
    """An incoming lead waiting in "Неразобранное" (its lead is a normal amoCRM lead)."""
    emb = r.get("_embedded") or {}
    return {"uid": str(r["uid"]), "lead_id": _first_id(emb.get("leads")), "category": r.get("category"),
            "source_name": r.get("source_name"), "pipeline_id": r.get("pipeline_id"),
            "created_at": r.get("created_at")}


def note_row(r: dict) -> dict:
    params = r.get("params") or {}
    return {
        "id": r["id"], "lead_id": r.get("entity_id"), "note_type": r.get("note_type"),
        "created_at": r.get("created_at"), "updated_at": r.get("updated_at"),
        "created_by": r.get("created_by"), "responsible_user_id": r.get("responsible_user_id"),
        "income": bool(params.get("income")) if "income" in params else None,
        "subject": params.get("subject"),
    }


def task_row(r: dict) -> dict:
    return {
        "id": r["id"], "entity_id": r.get("entity_id"), "entity_type": r.get("entity_type"),
        "task_type_id": r.get("task_type_id"), "responsible_user_id": r.get("responsible_user_id"),
        "is_completed": bool(r.get("is_completed")), "complete_till": r.get("complete_till"),
        "created_at": r.get("created_at"), "updated_at": r.get("updated_at"),
    }


def party_row(r: dict) -> dict:
    return {"id": r["id"], "name": r.get("name"), "responsible_user_id": r.get("responsible_user_id"),
            "updated_at": r.get("updated_at"), "is_deleted": bool(r.get("is_deleted")),
            "custom_fields": _custom(r)}


def user_row(r: dict) -> dict:
    rights = r.get("rights") or {}
    return {"id": r["id"], "name": r.get("name"), "email": r.get("email"),
            "is_active": bool(rights.get("is_active", True)), "group_id": rights.get("group_id")}


def status_rows(pipeline: dict) -> list[dict]:
    statuses = (pipeline.get("_embedded") or {}).get("statuses") or []
    return [{"pipeline_id": pipeline["id"], "pipeline_name": pipeline.get("name"),
             "pipeline_sort": pipeline.get("sort"), "is_archive": bool(pipeline.get("is_archive")),
             "id": s["id"], "name": s.get("name"), "sort": s.get("sort"), "type": s.get("type")}
            for s in statuses]


_cols = engine.column_hints


LEAD_COLS = _cols(id="bigint", name="text", price="double", responsible_user_id="bigint",
                  status_id="bigint", pipeline_id="bigint", created_at="bigint", updated_at="bigint",
                  closed_at="bigint", is_deleted="bool", loss_reason="text", company_id="bigint",
                  contact_id="bigint", custom_fields="text")
LEAD_COLS["is_deleted"]["hard_delete"] = True  # a lead that comes back is_deleted is removed
EVENT_COLS = _cols(id="text", lead_id="bigint", created_at="bigint", status_before="bigint",
                   pipeline_before="bigint", status_after="bigint", pipeline_after="bigint")
DELETION_COLS = _cols(id="text", type="text", entity_type="text", entity_id="bigint", note_id="bigint",
                      created_at="bigint")
LEAD_EVENT_COLS = _cols(id="text", type="text", lead_id="bigint", created_at="bigint", created_by="bigint",
                        responsible_after="bigint")
UNSORTED_COLS = _cols(uid="text", lead_id="bigint", category="text", source_name="text", pipeline_id="bigint",
                      created_at="bigint")
NOTE_COLS = _cols(id="bigint", lead_id="bigint", note_type="text", created_at="bigint",
                  updated_at="bigint", created_by="bigint", responsible_user_id="bigint",
                  income="bool", subject="text")
TASK_COLS = _cols(id="bigint", entity_id="bigint", entity_type="text", task_type_id="bigint",
                  responsible_user_id="bigint", is_completed="bool", complete_till="bigint",
                  created_at="bigint", updated_at="bigint")
PARTY_COLS = _cols(id="bigint", name="text", responsible_user_id="bigint", updated_at="bigint",
                   is_deleted="bool", custom_fields="text")
PARTY_COLS["is_deleted"]["hard_delete"] = True
USER_COLS = _cols(id="bigint", name="text", email="text", is_active="bool", group_id="bigint")
STATUS_COLS = _cols(pipeline_id="bigint", pipeline_name="text", pipeline_sort="bigint",
                    is_archive="bool", id="bigint", name="text", sort="bigint", type="bigint")
ACCOUNT_COLS = _cols(id="bigint", name="text", currency="text")
GROUP_COLS = _cols(id="bigint", name="text")


# --- the dlt source ---------------------------------------------------------------------------

# What a sync can do without, and what is lost when amoCRM (or a proxy, or a server that is not
# quite amoCRM) does not serve it: said once, and the rest is synced. Users, pipelines and leads
# are required: without them there is nothing to scan, and the sync fails with the reason.
OPTIONAL: dict[str, str] = {
    "account": "the account (/api/v4/account): deals get no currency and managers no team",
    "unsorted": "incoming leads (/api/v4/leads/unsorted): a lead's source comes only from the custom "
                "field named in [source.custom_fields.deals] source",
    "notes": "lead notes (/api/v4/leads/notes): no calls and no emails; stalled_deal counts no call "
             "or email as a touch, lead_sla no call, mail or SMS note as an answer",
    "tasks": "tasks (/api/v4/tasks): no meetings or tasks; stalled_deal counts no meeting or done "
             "task as a touch, lead_sla no completed task as an answer",
    "companies": "companies (/api/v4/companies): deals keep their company id, clients have no name, "
                 "region or segment",
    "contacts": "contacts (/api/v4/contacts): clients that are contacts have no name, region or segment",
    "deleted_leads": "deleted leads (/api/v4/leads?with=only_deleted): a deleted lead leaves the store "
                     "only through a lead_deleted event",
    "status_events": "stage changes (/api/v4/events, lead_status_changed): the stage history is derived "
                     "from the leads' creation; conversion_drop measures conversion from outcomes only, "
                     "stalled_deal counts time in a stage from the lead's creation",
    "lead_deleted": "lead deletions (events lead_deleted): a deleted lead stays in the insights unless "
                    "amoCRM lists it under with=only_deleted",
    "contact_deleted": "contact deletions (events contact_deleted): a deleted contact stays a client",
    "company_deleted": "company deletions (events company_deleted): a deleted company stays a client",
    "task_deleted": "task deletions (events task_deleted): a deleted task stays an activity",
    "common_note_deleted": "note deletions (events common_note_deleted): a deleted text note stays",
    RESPONSIBLE_EVENT: "owner changes (events entity_responsible_changed): lead_sla takes a lead as "
                       "assigned at its acceptance or creation",
    "outgoing_call": "outgoing calls (events outgoing_call): lead_sla sees answers only in notes, "
                     "tasks and the other outgoing events",
    "outgoing_mail": "outgoing mail (events outgoing_mail): lead_sla sees answers only in notes, tasks "
                     "and the other outgoing events",
    "outgoing_chat_message": "outgoing chat messages (events outgoing_chat_message): lead_sla does not "
                             "count a chat answer",
    "outgoing_sms": "outgoing SMS (events outgoing_sms): lead_sla sees answers only in notes, tasks and "
                    "the other outgoing events",
}
# Not in amoCRM's list of event types, but named in shared/crm_api/README.md: asked for too (one
# request a sync); a server that refuses the name is not a missing part.
ENTITY_DELETED = "entity_deleted"
ENTITY_TYPES = {"lead": "lead", "leads": "lead", "contact": "contact", "contacts": "contact",
                "company": "company", "companies": "company", "task": "task", "tasks": "task"}

_said: set[str] = set()  # missing parts already logged by this process (said once, not every sync)


def _optional(part: str, pages: Iterator[list[dict]], missing: dict[str, str]) -> Iterator[list[dict]]:
    """The pages of an optional part; when its first request fails (404, 204 is just empty, any
    error status, a reply that is not JSON) the part is noted as missing and the sync goes on.
    A failure after rows came is raised: those rows and the part's cursor are not committed."""
    started = False
    try:
        for rows in pages:
            started = True
            yield rows
    except requests.HTTPError as exc:
        if started:
            raise
        status = exc.response.status_code if exc.response is not None else None
        reason = f"HTTP {status}" if status else mask(str(exc).splitlines()[0])
        if part == ENTITY_DELETED:
            log.debug("amoCRM: events of type %s not served (%s)", part, reason)
            return
        missing[part] = f"{OPTIONAL[part]} [{reason}]"
        if part not in _said:
            _said.add(part)
            log.warning("amoCRM: not synced: %s", missing[part])


def _incremental(api: Api, name: str, path: str, selector: str, cursor: str, mapper: Callable,
                 columns: dict, overlap: int, *, page: int = PAGE, params: dict | None = None,
                 primary_key: str = "id", table: str | None = None, part: str | None = None,
                 missing: dict[str, str] | None = None, since: str | None = None,
                 keep: Callable[[dict], bool] | None = None) -> Any:
    """A list read from its saved cursor (`filter[<since or cursor>][from]` = cursor - overlap)
    and merged by primary key. `part`: optional, see _optional; `keep`: records to store (a
    server that ignores a filter sends the others too)."""
    import dlt

    def records(cur=dlt.sources.incremental(cursor, initial_value=0, lag=overlap)) -> Iterator[list[dict]]:
        query = {"limit": page, **(params or {})}
        start = int(cur.start_value or 0)
        if start > 0:
            query[f"filter[{since or cursor}][from]"] = start
        pages = api.pages(path, selector, query)
        if part is not None:
            pages = _optional(part, pages, missing if missing is not None else {})
        for rows in pages:
            yield [mapper(r) for r in rows if keep is None or keep(r)]

    return dlt.resource(records, name=name, table_name=table or name, primary_key=primary_key,
                        write_disposition="merge", columns=columns)


def _is_lead_event(r: dict) -> bool:
    return ENTITY_TYPES.get(str(r.get("entity_type") or "lead")) == "lead"


def deleted_lead_row(r: dict) -> dict:
    """A lead in amoCRM's recycle bin (`with=only_deleted`: its id, `updated_at` = when it was
    deleted, is_deleted), stored as its deletion."""
    return {"id": f"only_deleted-{r['id']}-{r.get('updated_at') or 0}", "type": "lead_deleted",
            "entity_type": "lead", "entity_id": r["id"], "note_id": None, "created_at": r.get("updated_at") or 0}


def source(api: Api, overlap_seconds: int, missing: dict[str, str] | None = None,
           known_deletions: set[str] | None = None) -> Any:
    """Every amoCRM resource the canonical tables are built from; optional parts amoCRM does not
    serve are noted in `missing` (part -> what is lost and why); deletions already stored
    (`known_deletions`, by id) are not stored again."""
    import dlt

    missing = missing if missing is not None else {}
    known = known_deletions or set()

    def new_deletion(r: dict) -> bool:
        return str(r.get("id")) not in known

    def users() -> Iterator[list[dict]]:
        seen: set[Any] = set()  # a page repeated by a server that ignores `page` is not two managers
        for rows in api.pages("users", "_embedded.users", {"limit": PAGE}):
            fresh = [r for r in rows if r.get("id") not in seen]
            seen.update(r.get("id") for r in fresh)
            yield [user_row(r) for r in fresh]

    def statuses() -> Iterator[list[dict]]:
        for rows in api.pages("leads/pipelines", "_embedded.pipelines", {}):
            yield [s for p in rows for s in status_rows(p)]

    def unsorted() -> Iterator[list[dict]]:
        """Everything waiting in "Неразобранное" now (the list has no modified-time filter: read
        whole each sync). Merged, not replaced: an accepted lead leaves the list, and its source
        (form, chat, call, mail) is kept from the syncs that saw it waiting."""
        for rows in _optional("unsorted", api.pages("leads/unsorted", "_embedded.unsorted", {"limit": PAGE}), missing):
            yield [unsorted_row(r) for r in rows if r.get("uid")]

    account_data: dict = {}

    def fetch_account() -> dict:
        if not account_data:
            def one() -> Iterator[list[dict]]:
                yield [api.one("account", {"with": "users_groups"})]
            for rows in _optional("account", one(), missing):
                account_data.update(rows[0])
            account_data.setdefault("_fetched", True)
        return account_data

    def account() -> Iterator[dict]:
        data = fetch_account()
        if "account" not in missing:
            yield {"id": data.get("id"), "name": data.get("name"), "currency": data.get("currency")}

    def groups() -> Iterator[list[dict]]:
        found = (fetch_account().get("_embedded") or {}).get("users_groups") or []
        yield [{"id": g["id"], "name": g.get("name")} for g in found if isinstance(g, dict) and "id" in g]

    def events(group: str, kind: str, mapper: Callable, columns: dict, entity: str | None,
               keep: Callable[[dict], bool] | None = None, name: str | None = None) -> Any:
        """One event type a request: amoCRM's docs give `filter[type]` as a string or an array,
        and a single value reads the same in every form (a comma-separated list does not)."""
        params = {"filter[type]": kind, **({"filter[entity]": entity} if entity else {})}
        return _incremental(api, name or f"{group}_{kind}", "events", "_embedded.events", "created_at", mapper,
                            columns, overlap_seconds, page=EVENTS_PAGE, params=params, table=group,
                            part=kind if kind != "lead_status_changed" else "status_events",
                            missing=missing, keep=lambda r: r.get("type", kind) == kind and (keep is None or keep(r)))

    @dlt.source(name=KIND, max_table_nesting=0)
    def amocrm() -> list[Any]:
        return [
            dlt.resource(users, name="users", primary_key="id", write_disposition="replace", columns=USER_COLS),
            dlt.resource(statuses, name="statuses", primary_key=("pipeline_id", "id"),
                         write_disposition="replace", columns=STATUS_COLS),
            dlt.resource(account, name="account", write_disposition="replace", columns=ACCOUNT_COLS),
            dlt.resource(groups, name="users_groups", write_disposition="replace", columns=GROUP_COLS),
            _incremental(api, "leads", "leads", "_embedded.leads", "updated_at", lead_row, LEAD_COLS,
                         overlap_seconds, params={"with": "contacts,loss_reason", "order[id]": "asc"}),
            _incremental(api, "deleted_leads", "leads", "_embedded.leads", "created_at", deleted_lead_row,
                         DELETION_COLS, overlap_seconds, params={"with": "only_deleted"}, table="deletions",
                         since="updated_at", part="deleted_leads", missing=missing,
                         keep=lambda r: deleted_lead_row(r)["id"] not in known),
            events("status_events", "lead_status_changed", status_event_row, EVENT_COLS, "lead",
                   _is_lead_event, name="status_events"),
            *(events("deletions", kind, deletion_row, DELETION_COLS, None, new_deletion)
              for kind in (*DELETION_EVENTS, ENTITY_DELETED)),
            *(events("lead_events", kind, lead_event_row, LEAD_EVENT_COLS, "lead", _is_lead_event)
              for kind in (RESPONSIBLE_EVENT, *RESPONSE_EVENTS)),
            dlt.resource(unsorted, name="unsorted", primary_key="uid", write_disposition="merge",
                         columns=UNSORTED_COLS),
            _incremental(api, "notes", "leads/notes", "_embedded.notes", "updated_at", note_row,
                         NOTE_COLS, overlap_seconds, part="notes", missing=missing),
            _incremental(api, "tasks", "tasks", "_embedded.tasks", "updated_at", task_row,
                         TASK_COLS, overlap_seconds, part="tasks", missing=missing),
            _incremental(api, "companies", "companies", "_embedded.companies", "updated_at",
                         party_row, PARTY_COLS, overlap_seconds, part="companies", missing=missing),
            _incremental(api, "contacts", "contacts", "_embedded.contacts", "updated_at",
                         party_row, PARTY_COLS, overlap_seconds, part="contacts", missing=missing),
        ]

    return amocrm()


def sync(source_config: SourceConfig, base_dir: Path | None, *, on_secret: OnSecret | None = None,
         backoff: float = 1.0) -> engine.SyncReport:
    """Take what changed since the last sync (everything the first time) into the store, then
    remove what was deleted in amoCRM. Raises DataError (credentials, store) or the HTTP error."""
    started = time.monotonic()
    store = engine.open_store(source_config, base_dir)
    api = Api(source_config, store.folder, on_secret, backoff=backoff)
    pipe = store.pipeline(KIND)
    missing: dict[str, str] = {}
    try:
        rows = engine.run(pipe, source(api, int(source_config.overlap_minutes * 60), missing,
                                       _known_deletions(store)))
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    deleted = _apply_deletions(store)
    return engine.SyncReport(KIND, rows=rows, requests=api.throttle.count, deleted=deleted,
                             seconds=time.monotonic() - started, missing=dict(sorted(missing.items())))


def _http_error(exc: requests.HTTPError, source_config: SourceConfig) -> DataError:
    status = exc.response.status_code if exc.response is not None else None
    line = mask(str(exc).splitlines()[0])
    if status in (401, 403):
        return DataError(f"amoCRM refused the credentials ({line})",
                         fix="check the token in the environment variables named in [source] "
                         "and that the integration still has access to the account")
    return DataError(f"amoCRM answered with an error ({line})",
                     fix=f"check [source] base_url = {source_config.base_url!r}; a temporary "
                     "error is retried by the next sync")


# deletion event type -> (stored table, the event column holding its id)
DELETES = {"lead_deleted": ("leads", "entity_id"), "contact_deleted": ("contacts", "entity_id"),
           "company_deleted": ("companies", "entity_id"), "task_deleted": ("tasks", "entity_id"),
           "common_note_deleted": ("notes", "note_id")}


def _apply_deletions(store: engine.Store) -> int:
    """Records deleted in amoCRM leave the store: those whose deletion is newer than their last
    update, or that were last loaded before the sync that first saw the deletion (a server
    whose event clock is behind its records' clock; each deletion is stored once, see
    `_known_deletions`). One restored and changed since is loaded again, after the deletion,
    and stays. A deleted lead's events, notes and tasks are no longer read (raw_tables joins
    them on the leads)."""
    s = store.dataset(KIND)
    con = store.connect()
    try:
        have = engine.tables(con, s)
        if "deletions" not in have:
            return 0
        gone = 0
        for event, (table, column) in DELETES.items():
            if table not in have:
                continue
            row = con.execute(
                f"DELETE FROM {s}.{table} t USING {s}.deletions d "
                f"WHERE d.type = ? AND d.{column} = t.id AND (d.created_at >= t.updated_at "
                f"OR CAST(t._dlt_load_id AS DOUBLE PRECISION) < CAST(d._dlt_load_id AS DOUBLE PRECISION))",
                [event]).fetchone()
            gone += int(row[0]) if row else 0
        return gone
    finally:
        con.close()


def _known_deletions(store: engine.Store) -> set[str]:
    """The deletion events already stored: not merged again when the overlap reads them twice,
    so a deletion's load stays the sync that first saw it (see _apply_deletions)."""
    if not store.exists(KIND):
        return set()
    s = store.dataset(KIND)
    con = store.connect()
    try:
        if "deletions" not in engine.tables(con, s):
            return set()
        return {str(r[0]) for r in con.execute(f"SELECT id FROM {s}.deletions").fetchall()}
    finally:
        con.close()


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)  # our own constants, never user text


def _columns(con: Any, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [KIND, table]).fetchall()}


def _tables(con: Any) -> set[str]:
    return engine.tables(con, KIND)


# --- check -------------------------------------------------------------------------------------

def check(source_config: SourceConfig, base_dir: Path | None, *,
          on_secret: OnSecret | None = None) -> dict[str, Any]:
    """Prove the credentials: the account, its pipelines (with statuses) and its users."""
    folder = engine.store_folder(source_config.store, base_dir)
    api = Api(source_config, folder, on_secret)
    try:
        try:
            account = api.one("account")
        except requests.HTTPError:  # optional (see OPTIONAL): the pipelines and users prove the token
            account = {"name": urlsplit(source_config.base_url or "").hostname}
        pipelines = [p for rows in api.pages("leads/pipelines", "_embedded.pipelines", {}) for p in rows]
        users = [u for rows in api.pages("users", "_embedded.users", {"limit": PAGE}) for u in rows]
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    return {
        "account": account.get("name"),
        "pipelines": [{"id": p["id"], "name": p.get("name"), "included": _included(p, source_config),
                       "statuses": [s.get("name") for s in (p.get("_embedded") or {}).get("statuses") or []]}
                      for p in pipelines],
        "users": [{"id": u["id"], "name": u.get("name"),
                   "active": bool((u.get("rights") or {}).get("is_active", True))} for u in users],
    }


def _included(pipeline: dict, source_config: SourceConfig) -> bool:
    return engine.included(pipeline["id"], pipeline.get("name"), source_config.pipelines)


# --- the store as canonical tables ---------------------------------------------------------------

def raw_tables(con: Any, source_config: SourceConfig) -> dict[str, pd.DataFrame]:
    """The canonical tables (with canonical column names, raw values) from the synced records.

    Only leads in the included pipelines count; their history, notes and tasks follow them.
    Closed leads take the last real stage from their history (142/143 are statuses). A lead
    waiting in "Неразобранное" (the incoming status) is a lead, not yet a deal; that status is
    not a stage (accepting moves the lead into the first stage).
    """
    have = _tables(con)
    if not {"users", "leads", "statuses"} <= have:
        raise DataError("the synced store has no amoCRM leads, users or pipelines yet",
                        fix="run `crm-pulse sync --config <your config>` until it ends without an error")
    s = KIND
    pipes = con.execute(f"SELECT DISTINCT pipeline_id, pipeline_name FROM {s}.statuses").fetchall()
    engine.check_wanted(pipes, source_config.pipelines, "amoCRM")
    included = [int(pid) for pid, name in pipes if _included({"id": pid, "name": name}, source_config)]
    con.execute("CREATE OR REPLACE TEMP TABLE inc AS SELECT UNNEST(?::BIGINT[]) AS pipeline_id", [included])
    engine.label_pipelines(con, pipes)
    # a store synced before status types were kept has no incoming statuses until the next sync
    typed = "type" in _columns(con, "statuses")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE incoming AS SELECT pipeline_id, id FROM {s}.statuses
                    WHERE {"type = " + str(INCOMING) if typed else "false"}""")
    cf = source_config.custom_fields

    def value(table: str, column: str, prefix: str = "l") -> str:
        name = cf.get(table, {}).get(column)
        if not name:
            return "CAST(NULL AS VARCHAR)"
        path = "$." + json.dumps(name, ensure_ascii=False)
        return f"json_extract_string({prefix}.custom_fields, '{path.replace(chr(39), chr(39) * 2)}')"

    def field(table: str, column: str, alias: str, prefix: str = "l") -> str:
        return f"{value(table, column, prefix)} AS {alias}"

    ev = "status_events" in have
    notes = "notes" in have
    tasks = "tasks" in have
    companies = "companies" in have
    contacts = "contacts" in have
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lead_all AS
        SELECT l.*, CASE WHEN l.company_id IS NOT NULL THEN CAST(l.company_id AS VARCHAR)
                         WHEN l.contact_id IS NOT NULL THEN 'contact-' || CAST(l.contact_id AS VARCHAR) END AS client,
               (l.pipeline_id, l.status_id) IN (SELECT (pipeline_id, id) FROM incoming) AS waiting
        FROM {s}.leads l JOIN inc USING (pipeline_id) WHERE NOT coalesce(l.is_deleted, false)""")
    con.execute("CREATE OR REPLACE TEMP TABLE lead AS SELECT * EXCLUDE (waiting) FROM lead_all WHERE NOT waiting")
    events = (f"SELECT e.* FROM {s}.status_events e JOIN lead_all l ON l.id = e.lead_id" if ev else
              "SELECT NULL::VARCHAR id, NULL::BIGINT lead_id, NULL::BIGINT created_at, NULL::BIGINT status_before, "
              "NULL::BIGINT pipeline_before, NULL::BIGINT status_after, NULL::BIGINT pipeline_after WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ev AS {events}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE opening AS  -- a pipeline's first stage
        SELECT pipeline_id, arg_min(id, sort) AS status FROM {s}.statuses
        WHERE id NOT IN ({WON}, {LOST}) AND (pipeline_id, id) NOT IN (SELECT (pipeline_id, id) FROM incoming)
        GROUP BY pipeline_id""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE first_status AS  -- where each lead started
        WITH first_ev AS (
            SELECT lead_id, arg_min(status_before, created_at) AS status, arg_min(pipeline_before, created_at) AS pipeline
            FROM ev GROUP BY lead_id)
        SELECT l.id AS lead_id, coalesce(f.pipeline, l.pipeline_id) AS pipeline_id,
               coalesce(f.status, CASE WHEN l.status_id IN ({won}, {lost}) THEN o.status ELSE l.status_id END) AS status_id,
               l.created_at
        FROM lead_all l LEFT JOIN first_ev f ON f.lead_id = l.id
        LEFT JOIN opening o ON o.pipeline_id = l.pipeline_id""".format(won=WON, lost=LOST))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hist AS
        WITH entries AS (
            SELECT f.lead_id, f.pipeline_id, f.status_id, f.created_at AS entered, '' AS ev_id
            FROM first_status f JOIN lead l ON l.id = f.lead_id
            UNION ALL
            SELECT e.lead_id, e.pipeline_after, e.status_after, e.created_at, e.id FROM ev e JOIN lead l ON l.id = e.lead_id)
        SELECT e.lead_id, st.name AS stage, e.entered, e.ev_id
        FROM entries e JOIN {s}.statuses st ON st.pipeline_id = e.pipeline_id AND st.id = e.status_id
        WHERE e.status_id NOT IN ({WON}, {LOST})
          AND (e.pipeline_id, e.status_id) NOT IN (SELECT (pipeline_id, id) FROM incoming)""")
    out: dict[str, pd.DataFrame] = {}
    out["managers"] = con.execute(f"""
        SELECT CAST(u.id AS VARCHAR) AS manager_id, u.name, u.email,
               {"g.name" if "users_groups" in have else "NULL::VARCHAR"} AS team, u.is_active AS active
        FROM {s}.users u {f"LEFT JOIN {s}.users_groups g ON g.id = u.group_id" if "users_groups" in have else ""}
        ORDER BY u.id""").df()
    out["stages"] = con.execute(f"""
        SELECT name AS stage, ROW_NUMBER() OVER (ORDER BY pipeline_sort, pipeline_id, sort, id) AS position
        FROM {s}.statuses JOIN inc USING (pipeline_id) WHERE id NOT IN ({WON}, {LOST})
          AND (pipeline_id, id) NOT IN (SELECT (pipeline_id, id) FROM incoming)""").df()
    currency = "(SELECT any_value(currency) FROM {s}.account)".format(s=s) if "account" in have else "NULL"
    out["deals"] = con.execute(f"""
        WITH last_stage AS (SELECT lead_id, arg_max(stage, entered) AS stage FROM hist GROUP BY lead_id)
        SELECT CAST(l.id AS VARCHAR) AS deal_id, l.client AS client_id,
               CAST(l.responsible_user_id AS VARCHAR) AS manager_id, l.name AS title, l.price AS amount,
               {currency} AS currency,
               CASE WHEN l.status_id IN ({WON}, {LOST}) THEN ls.stage ELSE st.name END AS stage,
               CASE l.status_id WHEN {WON} THEN 'won' WHEN {LOST} THEN 'lost' ELSE 'open' END AS status,
               to_timestamp(l.created_at) AS created_at,
               CASE WHEN l.status_id IN ({WON}, {LOST}) THEN to_timestamp(l.closed_at) END AS closed_at,
               CASE WHEN l.status_id = {LOST} THEN l.loss_reason END AS loss_reason,
               {field("deals", "source", "source")}, {field("deals", "region", "region")},
               coalesce(pl.pipeline, CAST(l.pipeline_id AS VARCHAR)) AS pipeline
        FROM lead l
        LEFT JOIN {s}.statuses st ON st.pipeline_id = l.pipeline_id AND st.id = l.status_id
        LEFT JOIN pipeline_label pl ON pl.pipeline_id = CAST(l.pipeline_id AS VARCHAR)
        LEFT JOIN last_stage ls ON ls.lead_id = l.id
        ORDER BY l.id""").df()
    if ev:  # else amoCRM served no stage changes: the loader derives the history and says so
        out["stage_history"] = con.execute("""
            SELECT CAST(lead_id AS VARCHAR) AS deal_id, stage, to_timestamp(entered) AS entered_at
            FROM hist ORDER BY entered, lead_id, ev_id""").df()
    parts = []
    if companies:
        parts.append(f"""SELECT CAST(c.id AS VARCHAR) AS client_id, c.name,
            CAST(c.responsible_user_id AS VARCHAR) AS manager_id,
            {field("clients", "region", "region", "c")}, {field("clients", "segment", "segment", "c")}
            FROM {s}.companies c WHERE NOT coalesce(c.is_deleted, false)""")
    if contacts:
        parts.append(f"""SELECT 'contact-' || CAST(c.id AS VARCHAR) AS client_id, c.name,
            CAST(c.responsible_user_id AS VARCHAR) AS manager_id,
            {field("clients", "region", "region", "c")}, {field("clients", "segment", "segment", "c")}
            FROM {s}.contacts c WHERE NOT coalesce(c.is_deleted, false)
              AND c.id IN (SELECT contact_id FROM lead WHERE company_id IS NULL)""")
    if parts:
        out["clients"] = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1").df()
    acts = []
    if tasks:
        acts.append(f"""SELECT 'task-' || CAST(t.id AS VARCHAR) AS activity_id, CAST(l.id AS VARCHAR) AS deal_id,
            l.client AS client_id, CAST(t.responsible_user_id AS VARCHAR) AS manager_id,
            CASE t.task_type_id WHEN 2 THEN 'meeting' ELSE 'task' END AS type,
            to_timestamp(t.complete_till) AS due_at,
            CASE WHEN t.is_completed THEN to_timestamp(t.updated_at) END AS done_at
            FROM {s}.tasks t JOIN lead l ON t.entity_type = 'leads' AND t.entity_id = l.id""")
    if notes:
        acts.append(f"""SELECT 'note-' || CAST(n.id AS VARCHAR) AS activity_id, CAST(l.id AS VARCHAR) AS deal_id,
            l.client AS client_id, CAST(coalesce(n.responsible_user_id, n.created_by) AS VARCHAR) AS manager_id,
            CASE WHEN n.note_type IN ('call_in', 'call_out') THEN 'call' ELSE 'note' END AS type,
            NULL::TIMESTAMPTZ AS due_at, to_timestamp(n.created_at) AS done_at
            FROM {s}.notes n JOIN lead l ON l.id = n.lead_id WHERE n.note_type <> '{MAIL_NOTE}'""")
        out["emails"] = con.execute(f"""
            SELECT CAST(n.id AS VARCHAR) AS email_id, l.client AS client_id,
                   CAST(coalesce(n.responsible_user_id, n.created_by) AS VARCHAR) AS manager_id,
                   CAST(l.id AS VARCHAR) AS deal_id, CASE WHEN n.income THEN 'in' ELSE 'out' END AS direction,
                   to_timestamp(n.created_at) AS sent_at, n.subject
            FROM {s}.notes n JOIN lead l ON l.id = n.lead_id
            WHERE n.note_type = '{MAIL_NOTE}' AND l.client IS NOT NULL ORDER BY n.created_at, n.id""").df()
    if acts:
        out["activities"] = con.execute(" UNION ALL ".join(acts) + " ORDER BY 1").df()
    out["leads"] = _leads(con, have, value("deals", "source"), value("deals", "region"))
    return out


def _leads(con: Any, have: set[str], source: str, region: str) -> pd.DataFrame:
    """Leads: every amoCRM lead that started at the head of its pipeline (in "Неразобранное" or
    the first stage; one created further down was not an incoming request). amoCRM keeps a lead
    and its deal as one record, so lead_id = deal_id and created_at is the lead's creation.

    - manager_id / assigned_at: none while it waits in "Неразобранное" (nobody took it); then
      the earlier of its acceptance (leaving the incoming status) and the first change of the
      responsible user; neither (created with its owner): lead_sla counts it assigned at creation;
    - first_response_at: the first outgoing call, mail, chat message or SMS (notes and events;
      not amoCRM's own, created_by 0: a Salesbot greeting is no answer) or completed task on it;
    - status: new (incoming status or first stage), converted (moved on), won, lost.
    """
    s = KIND
    responses = []
    if "notes" in have:
        responses.append(f"""SELECT lead_id, created_at AS ts FROM {s}.notes
            WHERE note_type IN ({_quoted(RESPONSE_NOTES)}) OR (note_type = '{MAIL_NOTE}' AND NOT coalesce(income, false))""")
    if "tasks" in have:
        responses.append(f"""SELECT entity_id, updated_at FROM {s}.tasks
            WHERE entity_type = 'leads' AND is_completed""")
    owner = "SELECT NULL::BIGINT lead_id, NULL::BIGINT ts WHERE false"
    if "lead_events" in have:
        # created_by 0 is amoCRM itself (a Salesbot greeting, an auto-reply): not a person's answer
        responses.append(f"""SELECT lead_id, created_at FROM {s}.lead_events
            WHERE type IN ({_quoted(RESPONSE_EVENTS)}) AND coalesce(created_by, 0) <> 0""")
        owner = f"SELECT lead_id, created_at FROM {s}.lead_events WHERE type = '{RESPONSIBLE_EVENT}'"
    answered = " UNION ALL ".join(responses) or "SELECT NULL::BIGINT lead_id, NULL::BIGINT ts WHERE false"
    unsorted, unsorted_join = "NULL::VARCHAR", ""
    if "unsorted" in have:
        unsorted = "u.source_name"
        unsorted_join = (f"LEFT JOIN (SELECT lead_id, any_value(source_name) AS source_name FROM {s}.unsorted "
                         "GROUP BY lead_id) u ON u.lead_id = l.id")
    return con.execute(f"""
        WITH accepted AS (
            SELECT lead_id, min(created_at) AS ts FROM ev
            WHERE (pipeline_before, status_before) IN (SELECT (pipeline_id, id) FROM incoming) GROUP BY lead_id),
        handed AS (SELECT lead_id, min(ts) AS ts FROM ({owner}) o(lead_id, ts) GROUP BY lead_id),
        answer AS (SELECT lead_id, min(ts) AS ts FROM ({answered}) a(lead_id, ts) GROUP BY lead_id)
        SELECT CAST(l.id AS VARCHAR) AS lead_id, to_timestamp(l.created_at) AS created_at,
               coalesce({source}, {unsorted}) AS source, {region} AS region,
               CASE WHEN NOT l.waiting THEN CAST(l.responsible_user_id AS VARCHAR) END AS manager_id,
               CASE WHEN NOT l.waiting THEN to_timestamp(least(acc.ts, h.ts)) END AS assigned_at,
               to_timestamp(a.ts) AS first_response_at,
               CASE WHEN l.status_id = {WON} THEN 'won' WHEN l.status_id = {LOST} THEN 'lost'
                    WHEN l.waiting OR l.status_id = o.status THEN 'new' ELSE 'converted' END AS status
        FROM lead_all l
        JOIN first_status f ON f.lead_id = l.id
        LEFT JOIN opening o ON o.pipeline_id = l.pipeline_id
        LEFT JOIN opening fo ON fo.pipeline_id = f.pipeline_id
        LEFT JOIN accepted acc ON acc.lead_id = l.id
        LEFT JOIN handed h ON h.lead_id = l.id
        LEFT JOIN answer a ON a.lead_id = l.id
        {unsorted_join}
        WHERE f.status_id = fo.status OR (f.pipeline_id, f.status_id) IN (SELECT (pipeline_id, id) FROM incoming)
        ORDER BY l.created_at, l.id""").df()
