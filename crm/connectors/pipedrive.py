"""Pipedrive (API v2, v1 where v2 has no endpoint) -> the local store -> the canonical tables.

What maps to what:
- users (`/api/v1/users`) -> managers (active from `active_flag`; Pipedrive has no team or
  region on a user);
- pipelines and stages (`/api/v2/pipelines`, `/api/v2/stages`) -> stages in pipeline order;
  won and lost are a deal's status in Pipedrive, not stages, so a closed deal keeps its stage;
- deals (`/api/v2/deals` and `/api/v2/deals/archived`) -> deals (an archived deal that is
  still open was set aside in Pipedrive and is left out, so it is not chased as stalled;
  client = the deal's organization, else its person as `person-<id>`; amount = value; currency per deal; loss_reason = lost_reason; closed_at =
  close_time; `source` / `region` from custom fields named in `[source.custom_fields.deals]`,
  an option's id read as its label through the stored field definitions; pipeline = the
  pipeline's name, engine.label_pipelines);
- the deal's flow (`/api/v1/deals/{id}/flow`, `dealChange` of `stage_id`) -> stage_history,
  plus the entry into the first stage at creation. The flow is per deal, so it is asked for
  only for deals that changed since the cursor and ever moved (`stage_change_time` set), in
  batches of DETAIL_BATCH deals each committed with its progress mark: a first sync of a big
  account cut short (by the daily budget, an error, a kill) goes on from its last batch;
- mail messages of a deal (`/api/v1/deals/{id}/mailMessages`, only for changed deals that have
  mail) -> emails (`sent_flag` 1 = out, else in). Email opens are NOT given: Pipedrive's open
  tracking says only whether a tracked email was opened (`mail_tracking_status`), not when or
  how often, and silent_client's question ("keeps opening our emails after going silent") needs
  the times; a made-up time (the message's last update) would raise false alarms. The status is
  kept in the store (`mail_messages.tracking_status`), and silent_client is skipped with "needs
  email_opens". (`read_flag` is whether WE read a message in our mailbox: not an open either.)
- activities (`/api/v2/activities`) -> activities (call -> call, meeting/lunch -> meeting,
  email -> email, others -> task; due = due_date + due_time in UTC, done = marked_as_done_time);
- organizations and persons (`/api/v2/organizations`, `/api/v2/persons`) -> clients (persons
  only for deals without an organization);
- leads (`/api/v1/leads`, archived too) -> leads (source = source_name; status "closed" for an
  archived lead: someone dealt with it, so lead_sla does not chase it; else "open";
  first_response_at = the first done activity on the lead). Pipedrive records no assignment
  time: a lead counts as assigned at creation when it has an owner. A lead converted into a deal
  leaves Pipedrive's leads list, so leads holds only leads not (yet) converted: manager_load's
  new_leads counts those.

Incremental: deals, activities, organizations and persons by `updated_since` (RFC3339), from
the saved cursor minus `overlap_minutes`, `sort_by=update_time`, pages of 500 following
`additional_data.next_cursor`. Users, pipelines, stages, custom field definitions and leads
(v1 has no modified-since filter for leads; `start`/`limit` paging) are read whole each sync.
Deletions: each sync lists the deals deleted in Pipedrive (`status=deleted`: the last 30 days,
whatever the cursor) and removes them from the store; organizations, persons and activities
returned with `is_deleted` leave it too. A deal deleted more than 30 days before the next sync,
and an activity or person deleted without coming back in a changed-records page, cannot be
detected: a full resync (delete the store folder) clears them. A mail linked to a deal that did
not otherwise change is read when the deal next changes (there is no account-wide "mail
changed since" list).

Limits: at most `requests_per_second` requests go out (Pipedrive allows 20-120 per 2 s by plan);
a 429 is waited out (Retry-After, else x-ratelimit-reset); a wait longer than the engine's
longest (the daily token budget is spent) ends the sync with a clear error, and the next sync
resumes from the last complete one.
"""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
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

KIND = "pipedrive"
PAGE = 500  # v2 and v1 leads allow up to 500 a page
V1_PAGE = 100  # flow and mail messages
DETAIL_BATCH = 500  # deals whose flow and mail are fetched (and committed) together
TOKEN_HEADER = "x-api-token"
ACTIVITY_TYPES = {"call": "call", "meeting": "meeting", "lunch": "meeting", "email": "email"}
FIELD_ENDPOINTS = {"deals": "dealFields", "organizations": "organizationFields", "persons": "personFields"}

OnSecret = Callable[[list[str]], None]


class BudgetSpent(Exception):
    """Pipedrive asked to wait longer than a sync should (the daily token budget is spent)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Pipedrive asks to wait {seconds:.0f} s before the next request")
        self.seconds = seconds


# --- the client -----------------------------------------------------------------------------

class TokenAuth(AuthBase):
    """The API token in the `x-api-token` header (never in the URL, where logs would show it),
    the throttle before every request, and Pipedrive's 429 translated for the retrying client:
    x-ratelimit-reset becomes Retry-After when Retry-After is missing, and a wait longer than
    the engine would sit through becomes BudgetSpent instead of six long retries."""

    def __init__(self, source: SourceConfig, throttle: engine.Throttle, on_secret: OnSecret | None) -> None:
        name = source.token_env
        self.token = os.environ.get(name or "", "").strip()
        if not self.token:
            raise DataError(f"environment variable {name} (named in [source] token_env) is not set",
                            fix=f"export {name}='<your Pipedrive API token>' (Pipedrive: your name at the "
                            "top right -> Personal preferences -> API) before running crm-pulse")
        (on_secret or (lambda values: None))([self.token])
        self.throttle = throttle

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.throttle.wait()
        request.headers[TOKEN_HEADER] = self.token
        request.register_hook("response", _rate_limited)
        return request


def _rate_limited(response: requests.Response, **kwargs: Any) -> requests.Response:
    if response.status_code != 429:
        return response
    wait = response.headers.get("Retry-After") or response.headers.get("x-ratelimit-reset")
    try:
        seconds = float(wait) if wait is not None else None
    except ValueError:
        seconds = None
    if seconds is not None and seconds > engine.MAX_RETRY_DELAY:
        raise BudgetSpent(seconds)
    if seconds is not None and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(int(seconds + 0.999))
    return response


def _v1_paginator(limit: int) -> Any:
    """v1 paging by `start`/`limit`. Pipedrive's samples nest the state in
    additional_data.pagination, some of its schemas put it in additional_data itself: both are
    read, and `next_start` is followed when given."""
    from dlt.sources.helpers.rest_client.paginators import BasePaginator

    class V1Paginator(BasePaginator):
        def __init__(self) -> None:
            super().__init__()
            self.start = 0

        def init_request(self, request: Any) -> None:
            request.params = {**(request.params or {}), "start": self.start, "limit": limit}

        def update_state(self, response: Any, data: list | None = None) -> None:
            extra = response.json().get("additional_data") or {}
            state = extra.get("pagination") or extra
            self._has_next_page = bool(state.get("more_items_in_collection"))
            if self._has_next_page:
                self.start = int(state.get("next_start") or self.start + limit)

        def update_request(self, request: Any) -> None:
            request.params = {**(request.params or {}), "start": self.start, "limit": limit}

    return V1Paginator()


class Api:
    """RESTClient + token + throttle for one sync; counts the requests it sends."""

    def __init__(self, source: SourceConfig, on_secret: OnSecret | None = None, backoff: float = 1.0) -> None:
        from dlt.sources.helpers.rest_client import RESTClient

        assert source.base_url is not None
        self.throttle = engine.Throttle(source.requests_per_second)
        self.client = RESTClient(base_url=source.base_url.rstrip("/"), session=engine.http_session(backoff=backoff),
                                 auth=TokenAuth(source, self.throttle, on_secret),
                                 headers={"Accept": "application/json"})

    def pages(self, path: str, params: dict[str, Any], paginator: Any) -> Iterator[list[dict]]:
        for page in self.client.paginate(path, params=params, data_selector="data", paginator=paginator):
            yield [r for r in page if r is not None]

    def v2(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict]]:
        """A v2 list: `limit` 500, `cursor` from additional_data.next_cursor until it is null."""
        from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

        return self.pages(f"/api/v2/{path}", {"limit": PAGE, **(params or {})},
                           JSONResponseCursorPaginator(cursor_path="additional_data.next_cursor",
                                                       cursor_param="cursor"))

    def v1(self, path: str, params: dict[str, Any] | None = None, page: int = V1_PAGE) -> Iterator[list[dict]]:
        """A v1 list: `start`/`limit` while more_items_in_collection."""
        return self.pages(f"/api/v1/{path}", dict(params or {}), _v1_paginator(page))

    def one(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.client.get(path, params=params or {})
        response.raise_for_status()
        return response.json().get("data")


# --- records as stored (flat rows; timestamps become unix seconds) ---------------------------

def unix(value: Any) -> int | None:
    """Pipedrive writes times as RFC3339 (v2), `YYYY-MM-DD HH:MM:SS` in UTC (v1) or with
    milliseconds (leads): all become unix seconds."""
    if value in (None, ""):
        return None
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp())


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(value: Any) -> int | None:
    """v1 sometimes nests a linked record ({"value": 3, "name": ...}) where v2 gives its id."""
    if isinstance(value, dict):
        value = value.get("value", value.get("id"))
    return int(value) if value not in (None, "") else None


def _custom(record: dict) -> str | None:
    values = record.get("custom_fields") or {}
    return json.dumps(values, ensure_ascii=False) if values else None


def deal_row(r: dict) -> dict:
    return {
        "id": r["id"], "title": r.get("title"), "value": r.get("value"), "currency": r.get("currency"),
        "owner_id": _id(r.get("owner_id")), "org_id": _id(r.get("org_id")), "person_id": _id(r.get("person_id")),
        "pipeline_id": r.get("pipeline_id"), "stage_id": r.get("stage_id"), "status": r.get("status"),
        "add_time": unix(r.get("add_time")), "update_time": unix(r.get("update_time")),
        "close_time": unix(r.get("close_time") or r.get("won_time") or r.get("lost_time")),
        "stage_change_time": unix(r.get("stage_change_time")), "lost_reason": r.get("lost_reason"),
        "email_messages_count": r.get("email_messages_count"), "is_archived": bool(r.get("is_archived")),
        "is_deleted": bool(r.get("is_deleted")) or r.get("status") == "deleted",
        "custom_fields": _custom(r),
    }


def stage_change_rows(deal_id: int, items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        d = item.get("data") or {}
        if item.get("object") != "dealChange" or d.get("field_key") != "stage_id":
            continue
        out.append({"id": d["id"], "deal_id": deal_id, "log_time": unix(d.get("log_time") or item.get("timestamp")),
                    "old_stage": _id(d.get("old_value")), "new_stage": _id(d.get("new_value")),
                    "user_id": d.get("user_id")})
    return out


def mail_rows(deal_id: int, items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        m = item.get("data") if item.get("object") == "mailMessage" else item
        if not m or "id" not in m:
            continue
        sender = (m.get("from") or [{}])[0] or {}
        out.append({"id": m["id"], "deal_id": deal_id, "user_id": m.get("user_id"),
                    "sent_flag": bool(m.get("sent_flag")), "from_address": sender.get("email_address"),
                    "subject": m.get("subject"), "message_time": unix(m.get("message_time") or m.get("add_time")),
                    "update_time": unix(m.get("update_time")), "tracking_status": m.get("mail_tracking_status")})
    return out


def activity_row(r: dict) -> dict:
    due = None
    if r.get("due_date"):
        due = unix(f"{r['due_date']} {r.get('due_time') or '00:00'}")
    person = _id(r.get("person_id"))
    if person is None:
        primary = [p for p in r.get("participants") or [] if p.get("primary")]
        person = _id(primary[0].get("person_id")) if primary else None
    return {"id": r["id"], "type": r.get("type"), "owner_id": _id(r.get("owner_id") or r.get("user_id")),
            "deal_id": _id(r.get("deal_id")), "lead_id": r.get("lead_id"), "org_id": _id(r.get("org_id")),
            "person_id": person, "done": bool(r.get("done")), "due_time": due,
            "done_time": unix(r.get("marked_as_done_time")) if r.get("done") else None,
            "update_time": unix(r.get("update_time")), "is_deleted": bool(r.get("is_deleted"))}


def party_row(r: dict) -> dict:
    return {"id": r["id"], "name": r.get("name"), "owner_id": _id(r.get("owner_id")),
            "org_id": _id(r.get("org_id")), "update_time": unix(r.get("update_time")),
            "is_deleted": bool(r.get("is_deleted")), "custom_fields": _custom(r)}


def lead_row(r: dict) -> dict:
    return {"id": str(r["id"]), "title": r.get("title"), "owner_id": _id(r.get("owner_id")),
            "source_name": r.get("source_name"), "is_archived": bool(r.get("is_archived")),
            "add_time": unix(r.get("add_time")), "update_time": unix(r.get("update_time"))}


def user_row(r: dict) -> dict:
    return {"id": r["id"], "name": r.get("name"), "email": r.get("email"),
            "active_flag": bool(r.get("active_flag", True))}


def field_row(entity: str, r: dict) -> dict:
    options = {str(o["id"]): o.get("label") for o in r.get("options") or [] if "id" in o}
    return {"entity": entity, "key": r.get("key"), "name": r.get("name"), "field_type": r.get("field_type"),
            "options": json.dumps(options, ensure_ascii=False) if options else None}


_c = engine.column_hints
DEAL_COLS = _c(id="bigint", title="text", value="double", currency="text", owner_id="bigint", org_id="bigint",
               person_id="bigint", pipeline_id="bigint", stage_id="bigint", status="text", add_time="bigint",
               update_time="bigint", close_time="bigint", stage_change_time="bigint", lost_reason="text",
               email_messages_count="bigint", is_archived="bool", is_deleted="bool", custom_fields="text")
DEAL_COLS["is_deleted"]["hard_delete"] = True  # a deal that comes back deleted leaves the store
CHANGE_COLS = _c(id="bigint", deal_id="bigint", log_time="bigint", old_stage="bigint", new_stage="bigint",
                 user_id="bigint")
MAIL_COLS = _c(id="bigint", deal_id="bigint", user_id="bigint", sent_flag="bool", from_address="text",
               subject="text", message_time="bigint", update_time="bigint", tracking_status="text")
ACTIVITY_COLS = _c(id="bigint", type="text", owner_id="bigint", deal_id="bigint", lead_id="text", org_id="bigint",
                   person_id="bigint", done="bool", due_time="bigint", done_time="bigint", update_time="bigint",
                   is_deleted="bool")
ACTIVITY_COLS["is_deleted"]["hard_delete"] = True
PARTY_COLS = _c(id="bigint", name="text", owner_id="bigint", org_id="bigint", update_time="bigint",
                is_deleted="bool", custom_fields="text")
PARTY_COLS["is_deleted"]["hard_delete"] = True
LEAD_COLS = _c(id="text", title="text", owner_id="bigint", source_name="text", is_archived="bool",
               add_time="bigint", update_time="bigint")
USER_COLS = _c(id="bigint", name="text", email="text", active_flag="bool")
PIPELINE_COLS = _c(id="bigint", name="text", order_nr="bigint", is_deleted="bool")
STAGE_COLS = _c(id="bigint", name="text", order_nr="bigint", pipeline_id="bigint", is_deleted="bool")
DELETION_COLS = _c(id="bigint", update_time="bigint")
PROGRESS_COLS = _c(update_time="bigint", id="bigint")
FIELD_COLS = _c(entity="text", key="text", name="text", field_type="text", options="text")


# --- the dlt source ---------------------------------------------------------------------------

def _changed_since(api: Api, name: str, paths: tuple[str, ...], mapper: Callable, columns: dict,
                   overlap: int) -> Any:
    """v2 lists (deals: the archived ones are a list of their own) read from the saved cursor
    (minus the overlap) by `updated_since`."""
    import dlt

    def records(cur=dlt.sources.incremental("update_time", initial_value=0, lag=overlap)) -> Iterator[list[dict]]:
        start = int(cur.start_value or 0)
        query = {"sort_by": "update_time", "sort_direction": "asc"}
        if start > 0:
            query["updated_since"] = rfc3339(start)
        for path in paths:
            for rows in api.v2(path, query):
                yield [mapper(r) for r in rows]

    return dlt.resource(records, name=name, primary_key="id", write_disposition="merge", columns=columns)


def source(api: Api, overlap_seconds: int) -> Any:
    """Every Pipedrive resource the canonical tables are built from."""
    import dlt

    def users() -> Iterator[list[dict]]:
        from dlt.sources.helpers.rest_client.paginators import SinglePagePaginator

        for rows in api.pages("/api/v1/users", {}, SinglePagePaginator()):
            yield [user_row(r) for r in rows]

    def pipelines() -> Iterator[list[dict]]:
        for rows in api.v2("pipelines"):
            yield [{"id": p["id"], "name": p.get("name"), "order_nr": p.get("order_nr"),
                    "is_deleted": bool(p.get("is_deleted"))} for p in rows]

    def stages() -> Iterator[list[dict]]:
        for rows in api.v2("stages"):
            yield [{"id": s["id"], "name": s.get("name"), "order_nr": s.get("order_nr"),
                    "pipeline_id": s.get("pipeline_id"), "is_deleted": bool(s.get("is_deleted"))} for s in rows]

    def fields() -> Iterator[list[dict]]:
        for entity, endpoint in FIELD_ENDPOINTS.items():
            for rows in api.v1(endpoint, page=PAGE):
                yield [field_row(entity, r) for r in rows if r.get("key")]

    def leads() -> Iterator[list[dict]]:
        for rows in api.v1("leads", {"archived_status": "all"}, page=PAGE):
            yield [lead_row(r) for r in rows]

    def deleted_deals() -> Iterator[list[dict]]:
        """Every deal deleted in the last 30 days (what Pipedrive lists), whatever the cursor:
        whether deleting a deal moves its update_time is not documented, and the list is short."""
        for rows in api.v2("deals", {"status": "deleted"}):
            yield [{"id": r["id"], "update_time": unix(r.get("update_time"))} for r in rows]

    deals = _changed_since(api, "deals", ("deals", "deals/archived"), deal_row, DEAL_COLS, overlap_seconds)

    @dlt.source(name=KIND, max_table_nesting=0)
    def pipedrive() -> list[Any]:
        return [
            dlt.resource(users, name="users", primary_key="id", write_disposition="replace", columns=USER_COLS),
            dlt.resource(pipelines, name="pipelines", primary_key="id", write_disposition="replace",
                         columns=PIPELINE_COLS),
            dlt.resource(stages, name="stages", primary_key="id", write_disposition="replace", columns=STAGE_COLS),
            dlt.resource(fields, name="fields", write_disposition="replace", columns=FIELD_COLS),
            dlt.resource(leads, name="leads", primary_key="id", write_disposition="replace", columns=LEAD_COLS),
            deals,
            dlt.resource(deleted_deals, name="deal_deletions", primary_key="id", write_disposition="replace",
                         columns=DELETION_COLS),
            _changed_since(api, "activities", ("activities",), activity_row, ACTIVITY_COLS, overlap_seconds),
            _changed_since(api, "organizations", ("organizations",), party_row, PARTY_COLS, overlap_seconds),
            _changed_since(api, "persons", ("persons",), party_row, PARTY_COLS, overlap_seconds),
        ]

    return pipedrive()


def details(api: Api, batch: list[dict]) -> Any:
    """The per-deal records of one batch of stored deals, and the batch's end as the progress
    mark (loaded with them, so both are committed together or not at all)."""
    import dlt

    def stage_changes() -> Iterator[list[dict]]:
        """The flow of each deal that ever moved (one never moved is still in the stage it was
        created in: no request needed)."""
        for deal in batch:
            if deal["stage_change_time"] is not None:
                for items in api.v1(f"deals/{deal['id']}/flow", {"items": "dealChange"}):
                    yield stage_change_rows(deal["id"], items)

    def mail_messages() -> Iterator[list[dict]]:
        for deal in batch:
            if deal["email_messages_count"] != 0:
                for items in api.v1(f"deals/{deal['id']}/mailMessages"):
                    yield mail_rows(deal["id"], items)

    def progress() -> Iterator[dict]:
        yield {"update_time": batch[-1]["update_time"], "id": batch[-1]["id"]}

    @dlt.source(name=KIND, max_table_nesting=0)
    def pipedrive() -> list[Any]:
        return [
            dlt.resource(stage_changes, name="stage_changes", primary_key="id", write_disposition="merge",
                         columns=CHANGE_COLS),
            dlt.resource(mail_messages, name="mail_messages", primary_key="id", write_disposition="merge",
                         columns=MAIL_COLS),
            dlt.resource(progress, name="detail_progress", write_disposition="replace", columns=PROGRESS_COLS),
        ]

    return pipedrive()


def _next_batch(store: engine.Store, after: tuple[int, int] | None, overlap: int) -> tuple[list[dict], tuple[int, int]]:
    """The next DETAIL_BATCH stored deals in (update_time, id) order after `after`; None means
    "where the last committed batch ended, minus the overlap" (the start of a sync)."""
    s = store.dataset(KIND)
    con = store.connect(read_only=True)
    try:
        have = engine.tables(con, s)
        if after is None:
            mark = con.execute(f"SELECT update_time, id FROM {s}.detail_progress").fetchone() \
                if "detail_progress" in have else None
            after = (int(mark[0]) - overlap, -1) if mark else (-(2 ** 62), -1)
        if "deals" not in have:
            return [], after
        rows = con.execute(f"""
            SELECT id, update_time, stage_change_time, email_messages_count FROM {s}.deals
            WHERE update_time > ? OR (update_time = ? AND id > ?)
            ORDER BY update_time, id LIMIT {DETAIL_BATCH}""", [after[0], after[0], after[1]]).fetchall()
    finally:
        con.close()
    batch = [{"id": int(i), "update_time": int(t), "stage_change_time": sc, "email_messages_count": mc}
             for i, t, sc, mc in rows]
    return batch, ((batch[-1]["update_time"], batch[-1]["id"]) if batch else after)


def sync(source_config: SourceConfig, base_dir: Path | None, *, on_secret: OnSecret | None = None,
         backoff: float = 1.0) -> engine.SyncReport:
    """Take what changed since the last sync (everything the first time) into the store; deals
    deleted in Pipedrive leave it. Raises DataError (credentials, budget, store) or the HTTP error."""
    started = time.monotonic()
    store = engine.open_store(source_config, base_dir)
    api = Api(source_config, on_secret, backoff=backoff)
    pipe = store.pipeline(KIND)
    before = _deal_ids(store)
    overlap = int(source_config.overlap_minutes * 60)
    rows: dict[str, int] = {}
    try:
        rows.update(engine.run(pipe, source(api, overlap)))
        _apply_deletions(store)
        # The flow and mail of each changed deal, in committed batches: a first sync of a big
        # account (one or two requests per deal) that is stopped by the daily budget, an error or
        # a kill goes on from its last batch next time instead of starting over.
        after = None
        while True:
            batch, after = _next_batch(store, after, overlap)
            if not batch:
                break
            for table, n in engine.run(pipe, details(api, batch)).items():
                rows[table] = rows.get(table, 0) + n
            if len(batch) < DETAIL_BATCH:
                break
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    except BudgetSpent as exc:
        raise DataError(f"Pipedrive's API limit is spent ({exc})",
                        fix="the daily token budget resets at midnight (UTC); the next sync resumes where "
                        "this one stopped (the lists from the last complete sync, the per-deal history "
                        "from its last finished batch). Sync less often if this repeats") from None
    deleted = len(before - _deal_ids(store))
    if deleted:
        log.info("Pipedrive: %d deal(s) deleted in Pipedrive removed from the store", deleted)
    return engine.SyncReport(KIND, rows=rows, requests=api.throttle.count, deleted=deleted,
                             seconds=time.monotonic() - started)


def _apply_deletions(store: engine.Store) -> None:
    """Deals Pipedrive lists as deleted leave the store (their flow, mail and activities are no
    longer read: raw_tables joins on deals). Done after the load, so a sync killed before it
    leaves them to the next sync, which lists them again."""
    s = store.dataset(KIND)
    con = store.connect()
    try:
        if {"deals", "deal_deletions"} <= engine.tables(con, s):
            con.execute(f"DELETE FROM {s}.deals d USING {s}.deal_deletions x WHERE x.id = d.id")
    finally:
        con.close()


def _deal_ids(store: engine.Store) -> set[int]:
    """The deal ids in the store: those gone after a sync are the deletions it applied."""
    if not store.exists(KIND):
        return set()
    s = store.dataset(KIND)
    con = store.connect(read_only=True)
    try:
        if "deals" not in engine.tables(con, s):
            return set()
        return {int(r[0]) for r in con.execute(f"SELECT id FROM {s}.deals").fetchall()}
    finally:
        con.close()


def _http_error(exc: requests.HTTPError, source_config: SourceConfig) -> DataError:
    status = exc.response.status_code if exc.response is not None else None
    line = mask(str(exc).splitlines()[0])
    if status in (401, 403):
        return DataError(f"Pipedrive refused the API token ({line})",
                         fix=f"check ${source_config.token_env}: copy the token again from Pipedrive "
                         "(Personal preferences -> API); a token changes when it is regenerated, and a "
                         "deactivated user's token stops working")
    if status == 429:
        return DataError(f"Pipedrive kept answering 429 Too Many Requests ({line})",
                         fix="lower [source] requests_per_second; the next sync resumes from the last complete one")
    return DataError(f"Pipedrive answered with an error ({line})",
                     fix=f"check [source] base_url = {source_config.base_url!r} (your company address, "
                     "https://yourcompany.pipedrive.com); a temporary error is retried by the next sync")


# --- check -------------------------------------------------------------------------------------

def check(source_config: SourceConfig, base_dir: Path | None, *,
          on_secret: OnSecret | None = None) -> dict[str, Any]:
    """Prove the token: the company, its pipelines (with stages) and its users. Writes nothing."""
    api = Api(source_config, on_secret)
    try:
        me = api.one("/api/v1/users/me") or {}
        pipelines = [p for rows in api.v2("pipelines") for p in rows if not p.get("is_deleted")]
        stages = [s for rows in api.v2("stages") for s in rows if not s.get("is_deleted")]
        users = api.one("/api/v1/users") or []
    except requests.HTTPError as exc:
        raise _http_error(exc, source_config) from None
    except BudgetSpent as exc:
        raise DataError(f"Pipedrive's API limit is spent ({exc})", fix="try again after midnight (UTC)") from None
    by_pipeline: dict[Any, list[dict]] = {}
    for s in sorted(stages, key=lambda s: (s.get("order_nr") or 0, s["id"])):
        by_pipeline.setdefault(s.get("pipeline_id"), []).append(s)
    return {
        "account": me.get("company_name") or me.get("company_domain"),
        "pipelines": [{"id": p["id"], "name": p.get("name"), "included": _included(p, source_config),
                       "statuses": [s.get("name") for s in by_pipeline.get(p["id"], [])]}
                      for p in sorted(pipelines, key=lambda p: (p.get("order_nr") or 0, p["id"]))],
        "users": [{"id": u["id"], "name": u.get("name"), "active": bool(u.get("active_flag", True))} for u in users],
    }


def _included(pipeline: dict, source_config: SourceConfig) -> bool:
    return engine.included(pipeline["id"], pipeline.get("name"), source_config.pipelines)


# --- the store as canonical tables ---------------------------------------------------------------

def raw_tables(con: Any, source_config: SourceConfig) -> dict[str, pd.DataFrame]:
    """The canonical tables (canonical column names, raw values) from the synced records.

    Only deals in the included pipelines count; their history, emails and activities follow them.
    """
    have = engine.tables(con, KIND)
    if not {"users", "deals", "stages", "pipelines"} <= have:
        raise DataError("the synced store has no Pipedrive deals, users or stages yet",
                        fix="run `crm-pulse sync --config <your config>` until it ends without an error")
    s = KIND
    pipes = con.execute(f"SELECT id, name FROM {s}.pipelines").fetchall()
    engine.check_wanted(pipes, source_config.pipelines, "Pipedrive")
    included = [int(pid) for pid, name in pipes if _included({"id": pid, "name": name}, source_config)]
    con.execute("CREATE OR REPLACE TEMP TABLE inc AS SELECT UNNEST(?::BIGINT[]) AS pipeline_id", [included])
    engine.label_pipelines(con, pipes)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE deal AS
        SELECT d.*, CASE WHEN d.org_id IS NOT NULL THEN CAST(d.org_id AS VARCHAR)
                         WHEN d.person_id IS NOT NULL THEN 'person-' || CAST(d.person_id AS VARCHAR) END AS client
        FROM {s}.deals d JOIN inc USING (pipeline_id) WHERE NOT coalesce(d.is_deleted, false)
          AND NOT (coalesce(d.is_archived, false) AND d.status NOT IN ('won', 'lost'))
          {f"AND d.id NOT IN (SELECT id FROM {s}.deal_deletions)" if "deal_deletions" in have else ""}""")
    changes = "stage_changes" in have
    ch = (f"SELECT c.* FROM {s}.stage_changes c JOIN deal d ON d.id = c.deal_id" if changes else
          "SELECT NULL::BIGINT id, NULL::BIGINT deal_id, NULL::BIGINT log_time, NULL::BIGINT old_stage, "
          "NULL::BIGINT new_stage WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ch AS {ch}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hist AS
        WITH first_change AS (SELECT deal_id, arg_min(old_stage, (log_time, id)) AS stage FROM ch GROUP BY deal_id),
        entries AS (
            SELECT d.id AS deal_id, coalesce(f.stage, d.stage_id) AS stage_id, d.add_time AS entered, -1 AS seq
            FROM deal d LEFT JOIN first_change f ON f.deal_id = d.id
            UNION ALL
            SELECT deal_id, new_stage, log_time, id FROM ch)
        SELECT e.deal_id, st.name AS stage, e.entered, e.seq
        FROM entries e JOIN {s}.stages st ON st.id = e.stage_id JOIN inc ON inc.pipeline_id = st.pipeline_id""")
    out: dict[str, pd.DataFrame] = {}
    out["managers"] = con.execute(f"""
        SELECT CAST(id AS VARCHAR) AS manager_id, name, email, active_flag AS active
        FROM {s}.users ORDER BY id""").df()
    out["stages"] = con.execute(f"""
        SELECT st.name AS stage, ROW_NUMBER() OVER (ORDER BY p.order_nr, p.id, st.order_nr, st.id) AS position
        FROM {s}.stages st JOIN {s}.pipelines p ON p.id = st.pipeline_id JOIN inc ON inc.pipeline_id = p.id
        WHERE NOT coalesce(st.is_deleted, false)""").df()
    out["deals"] = con.execute(f"""
        SELECT CAST(d.id AS VARCHAR) AS deal_id, d.client AS client_id, CAST(d.owner_id AS VARCHAR) AS manager_id,
               d.title, d.value AS amount, d.currency, st.name AS stage,
               CASE WHEN d.status IN ('won', 'lost') THEN d.status ELSE 'open' END AS status,
               to_timestamp(d.add_time) AS created_at,
               CASE WHEN d.status IN ('won', 'lost') THEN to_timestamp(d.close_time) END AS closed_at,
               CASE WHEN d.status = 'lost' THEN d.lost_reason END AS loss_reason, d.custom_fields,
               coalesce(pl.pipeline, CAST(d.pipeline_id AS VARCHAR)) AS pipeline
        FROM deal d LEFT JOIN {s}.stages st ON st.id = d.stage_id
        LEFT JOIN pipeline_label pl ON pl.pipeline_id = CAST(d.pipeline_id AS VARCHAR) ORDER BY d.id""").df()
    out["stage_history"] = con.execute("""
        SELECT CAST(deal_id AS VARCHAR) AS deal_id, stage, to_timestamp(entered) AS entered_at
        FROM hist ORDER BY entered, deal_id, seq""").df()
    parts = []
    if "organizations" in have:
        parts.append(f"""SELECT CAST(o.id AS VARCHAR) AS client_id, o.name, CAST(o.owner_id AS VARCHAR) AS manager_id,
            o.custom_fields, 'organizations' AS entity
            FROM {s}.organizations o WHERE NOT coalesce(o.is_deleted, false)""")
    if "persons" in have:
        parts.append(f"""SELECT 'person-' || CAST(p.id AS VARCHAR), p.name, CAST(p.owner_id AS VARCHAR),
            p.custom_fields, 'persons' FROM {s}.persons p WHERE NOT coalesce(p.is_deleted, false)
              AND p.id IN (SELECT person_id FROM deal WHERE org_id IS NULL)""")
    if parts:
        out["clients"] = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1").df()
    if "mail_messages" in have:
        out["emails"] = con.execute(f"""
            SELECT CAST(m.id AS VARCHAR) AS email_id, d.client AS client_id,
                   CAST(coalesce(m.user_id, d.owner_id) AS VARCHAR) AS manager_id, CAST(d.id AS VARCHAR) AS deal_id,
                   CASE WHEN m.sent_flag THEN 'out' ELSE 'in' END AS direction,
                   to_timestamp(m.message_time) AS sent_at, m.subject
            FROM {s}.mail_messages m JOIN deal d ON d.id = m.deal_id
            WHERE d.client IS NOT NULL ORDER BY m.message_time, m.id""").df()
    if "activities" in have:
        out["activities"] = con.execute(f"""
            SELECT CAST(a.id AS VARCHAR) AS activity_id, CAST(d.id AS VARCHAR) AS deal_id,
                   coalesce(d.client, CAST(a.org_id AS VARCHAR),
                            'person-' || CAST(a.person_id AS VARCHAR)) AS client_id,
                   CAST(a.owner_id AS VARCHAR) AS manager_id,
                   CASE a.type {" ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ACTIVITY_TYPES.items())} ELSE 'task' END
                       AS type,
                   to_timestamp(a.due_time) AS due_at, to_timestamp(a.done_time) AS done_at
            FROM {s}.activities a JOIN deal d ON d.id = a.deal_id
            WHERE NOT coalesce(a.is_deleted, false) ORDER BY a.id""").df()
    if "leads" in have:
        response = (f"""(SELECT a.lead_id, min(a.done_time) AS first FROM {s}.activities a
                        WHERE a.done AND a.lead_id IS NOT NULL AND NOT coalesce(a.is_deleted, false)
                        GROUP BY a.lead_id)""" if "activities" in have else
                    "(SELECT NULL::VARCHAR lead_id, NULL::BIGINT first WHERE false)")
        out["leads"] = con.execute(f"""
            SELECT l.id AS lead_id, to_timestamp(l.add_time) AS created_at, l.source_name AS source,
                   CAST(l.owner_id AS VARCHAR) AS manager_id, to_timestamp(r.first) AS first_response_at,
                   CASE WHEN l.is_archived THEN 'closed' ELSE 'open' END AS status
            FROM {s}.leads l LEFT JOIN {response} r ON r.lead_id = l.id ORDER BY l.add_time, l.id""").df()
    _custom_columns(con, source_config, out)
    return out


def _custom_columns(con: Any, source_config: SourceConfig, out: dict[str, pd.DataFrame]) -> None:
    """`[source.custom_fields]` (canonical column -> a Pipedrive field NAME): the field's key
    from the stored field definitions, its value from each record's custom_fields, an option id
    turned into its label. The raw `custom_fields` and `entity` columns are dropped."""
    fields: dict[tuple[str, str], tuple[str, dict]] = {}
    if "fields" in engine.tables(con, KIND):
        for entity, key, name, options in con.execute(
                f"SELECT entity, key, name, options FROM {KIND}.fields").fetchall():
            fields[(entity, name)] = (key, json.loads(options) if options else {})
    wanted = {"deals": ("source", "region"), "clients": ("region", "segment")}
    for table, columns in wanted.items():
        frame = out.get(table)
        if frame is None:
            continue
        entities = frame.pop("entity") if "entity" in frame else pd.Series("deals", index=frame.index)
        raw = frame.pop("custom_fields").map(lambda text: json.loads(text) if isinstance(text, str) else {})
        for column in columns:
            name = source_config.custom_fields.get(table, {}).get(column)
            if not name:
                frame[column] = None
                continue
            frame[column] = [_field_value(values, fields.get((entity, name))) for values, entity in zip(raw, entities)]


def _field_value(values: dict, field: tuple[str, dict] | None) -> str | None:
    if field is None:
        return None
    key, options = field
    value = values.get(key)
    if isinstance(value, dict):  # monetary, address...: {"value": ..., ...}
        value = value.get("value")
    if isinstance(value, list):  # a set: several option ids
        return ", ".join(str(options.get(str(v), v)) for v in value) or None
    if value is None or value == "":
        return None
    return str(options.get(str(value), value))
