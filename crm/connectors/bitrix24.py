"""Bitrix24 (REST through an inbound webhook) -> the local store -> the canonical tables.

What maps to what:
- user.get (active and inactive) -> managers; team = the first department (department.get,
  when the webhook has the `department` scope; otherwise no team);
- crm.category.list (entityTypeId 2) -> pipelines; crm.status.list `DEAL_STAGE` /
  `DEAL_STAGE_<category>` -> stages in order (SEMANTICS S = won, F = lost are not stages: a
  closed deal keeps the last stage it was in; the failure stage's name is the loss reason
  when a pipeline has several failure stages); `SOURCE` -> source names; `STATUS` -> lead statuses;
- crm.deal.list -> deals (client = the deal's company, else its contact; amount = OPPORTUNITY;
  closed_at = when the deal entered its final stage; `source`, `region`, `loss_reason` from
  the UF_CRM_* fields named in `[source.custom_fields.deals]`; pipeline = the category's name,
  its id when the portal serves no names, engine.label_pipelines);
- crm.stagehistory.list (entityTypeId 2) -> stage_history (TYPE_ID 1 is the creation entry);
- crm.activity.list -> activities (1 meeting, 2 call, 3 task, 6 to-do) and emails (TYPE_ID 4,
  DIRECTION 1 in / 2 out); activities of a lead give the lead's first response;
- crm.lead.list -> leads (status: the status name; S semantics -> "converted", F -> "junk");
- crm.company.list / crm.contact.list -> clients.
Bitrix24 exposes no email opens through REST: email_opens is not synced, and silent_client
says so. Nor does a lead record when it was assigned (assigned_at stays empty: lead_sla
counts from creation).

Incremental: deals, leads, companies and contacts by `>=DATE_MODIFY`, activities by
`>=LAST_UPDATED`, stage history by `>=CREATED_TIME`, each from the saved cursor minus
`overlap_minutes`. Lists come 50 records a page (`start`, `next`, `total`); after the first
page the rest are fetched by `batch`, 50 pages (2,500 records) a request. Users, departments,
pipelines and stages, read whole every sync, share one batch.

Deletions: REST has no "deleted since" list, so the full ID lists of deals, leads, activities,
companies and contacts (`select: ["ID"]`, 2,500 IDs a request) are compared with the store
(deals on every sync, the others every `deletion_check_minutes`, 0 = each sync): what is gone
is removed, and what the store lacks (offset paging skips a record when one before it is
deleted mid-read) is fetched by ID.

Users, stages and deals are required; stage history, activities, leads, companies and contacts
are optional: a list the portal does not serve is skipped and said once (OPTIONAL), and never
read as empty. Paging follows the portal: the step is its `next`, no `total` means one page
at a time, no `batch` means one command at a time.
"""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit

import pandas as pd
import requests

from crm.connectors import engine
from crm.errors import DataError
from crm.redact import mask
from crm.source_config import SourceConfig

log = logging.getLogger(__name__)

KIND = "bitrix24"
PAGE = 50  # Bitrix24 returns 50 records a page, whatever is asked
BATCH = 50  # commands in one `batch` request (Bitrix24's maximum)
DEAL, LEAD, CONTACT, COMPANY = 2, 1, 3, 4  # entity type ids (activities' OWNER_TYPE_ID)
MEETING, CALL, TASK, EMAIL = 1, 2, 3, 4  # activity TYPE_ID
LIMIT_ERRORS = ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT")
AUTH_ERRORS = ("INVALID_CREDENTIALS", "NO_AUTH_FOUND", "expired_token", "invalid_token", "WRONG_AUTH_TYPE")

OnSecret = Callable[[list[str]], None]


# --- the webhook ------------------------------------------------------------------------------

def webhook_url(source: SourceConfig) -> str:
    """The webhook URL the requests go to (ending in "/"): the one in the environment, on the
    host of `base_url` when one is given (a proxy, a test server)."""
    name = source.webhook_env
    value = os.environ.get(name or "", "").strip()
    if not value:
        raise DataError(f"environment variable {name} (named in [source] webhook_env) is not set",
                        fix=f"create an inbound webhook in Bitrix24 (Developer resources -> Other -> Inbound "
                        f"webhook) and `export {name}='https://yourcompany.bitrix24.ru/rest/1/<code>/'`")
    parts = urlsplit(value)
    segments = [p for p in parts.path.split("/") if p]
    if parts.scheme not in ("http", "https") or not parts.hostname or len(segments) < 3 or segments[-3] != "rest" \
            or not segments[-2].isdigit():
        raise DataError(f"environment variable {name} does not hold a Bitrix24 inbound webhook URL",
                        fix="copy the whole URL Bitrix24 shows for the webhook, like "
                        "https://yourcompany.bitrix24.ru/rest/1/<code>/ (without a method name at the end)")
    path = "/" + "/".join(segments) + "/"
    if source.base_url:
        return source.base_url.rstrip("/") + path
    return f"{parts.scheme}://{parts.netloc}{path}"


def php_query(params: dict[str, Any]) -> str:
    """Parameters as PHP's http_build_query writes them (filter[>DATE_MODIFY]=...,
    select[0]=ID): the form a `batch` command takes."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif value is None:
            pairs.append((prefix, ""))
        elif isinstance(value, bool):
            pairs.append((prefix, "Y" if value else "N"))
        else:
            pairs.append((prefix, str(value)))

    walk("", params)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


class BitrixError(Exception):
    """An error Bitrix24 answered with (`error` / `error_description`), with the HTTP status."""

    def __init__(self, code: str, description: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code, self.description, self.status = code, description, status


class Api:
    """The webhook client: one throttled, retrying session (engine.http_session: 429 and 5xx,
    QUERY_LIMIT_EXCEEDED comes as 503, are waited out), plain calls and `batch`; counts the
    requests it sends."""

    def __init__(self, source: SourceConfig, on_secret: OnSecret | None = None, backoff: float = 1.0) -> None:
        self.url = webhook_url(source)
        code = self.url.rstrip("/").rsplit("/", 1)[-1]
        (on_secret or (lambda values: None))([self.url, code])
        self.throttle = engine.Throttle(source.requests_per_second)
        self.session = engine.http_session(backoff=backoff)
        self.backoff = backoff
        self.no_batch = False

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict:
        """One method; the whole answer ({"result", "total", "next"})."""
        url = self.url + method + ".json"
        query = php_query(params or {})
        if method != "batch" and query and len(query) <= QUERY_IN_URL:
            url += "?" + query  # the parameters also in the URL, for a server that reads only those
        for attempt in range(engine.MAX_ATTEMPTS):
            self.throttle.wait()
            response = self.session.post(url, json=params or {}, timeout=60)
            try:
                body = response.json()
            except ValueError:
                body = {}
            error = body.get("error") if isinstance(body, dict) else None
            if error in LIMIT_ERRORS and attempt + 1 < engine.MAX_ATTEMPTS:
                time.sleep(self.backoff * 2 ** attempt)  # the bucket drains: wait, then again
                continue
            if error or response.status_code >= 400:
                raise BitrixError(str(error or f"HTTP {response.status_code}"),
                                  str(body.get("error_description") or "") if isinstance(body, dict) else "",
                                  response.status_code)
            return body if isinstance(body, dict) else {"result": body}
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], tolerate: tuple[str, ...] | bool = ()
              ) -> dict[str, dict]:
        """Up to 50 commands in one request: {key: {"result", "total", "next"}}. A command that
        hits an operation limit is sent again in the next batch; an error in `tolerate` (True:
        any error) comes back as {"error": code} for its key; any other error raises. A portal
        (or a proxy) without `batch` gets the commands one by one."""
        if self.no_batch:
            return self._one_by_one(commands, tolerate)
        out: dict[str, dict] = {}
        pending = dict(commands)
        for attempt in range(engine.MAX_ATTEMPTS):
            if not pending:
                break
            try:
                body = self.call("batch", {"halt": 0, "cmd": {k: f"{m}?{php_query(p)}" for k, (m, p) in pending.items()}})
            except BitrixError as exc:
                if exc.code not in ("ERROR_METHOD_NOT_FOUND", "HTTP 404", "HTTP 405", "HTTP 501"):
                    raise
                log.warning("Bitrix24: `batch` is not served (%s): the commands go one by one, slower", exc.code)
                self.no_batch = True
                out.update(self._one_by_one(pending, tolerate))
                return out
            result = body.get("result") or {}
            results, errors = result.get("result") or {}, result.get("result_error") or {}
            totals, nexts = result.get("result_total") or {}, result.get("result_next") or {}
            if isinstance(errors, list):  # PHP serialises an empty map as []
                errors = {}
            unanswered = {k: pending[k] for k in pending
                          if k not in errors and not (isinstance(results, dict) and k in results)}
            if unanswered and len(unanswered) == len(pending):
                # a server that did not read the commands (they travel in the body): one by one
                log.warning("Bitrix24: `batch` answered none of its %d command(s): sending them one by one",
                            len(unanswered))
                out.update(self._one_by_one(unanswered, tolerate))
                for k in unanswered:
                    del pending[k]
            for key in list(pending):
                if key in errors:
                    err = errors[key] or {}
                    if err.get("error") in LIMIT_ERRORS:
                        continue
                    if tolerate is True or err.get("error") in tolerate:
                        out[key] = {"result": None, "total": None, "next": None, "error": err.get("error")}
                        del pending[key]
                        continue
                    raise BitrixError(str(err.get("error")), str(err.get("error_description") or ""))
                out[key] = {"result": results.get(key) if isinstance(results, dict) else None,
                            "total": totals.get(key) if isinstance(totals, dict) else None,
                            "next": nexts.get(key) if isinstance(nexts, dict) else None}
                del pending[key]
            if pending:
                time.sleep(self.backoff * 2 ** attempt)
        if pending:
            raise BitrixError("QUERY_LIMIT_EXCEEDED", f"{len(pending)} batch command(s) kept hitting the limit")
        return out

    def _one_by_one(self, commands: dict[str, tuple[str, dict[str, Any]]], tolerate: tuple[str, ...] | bool
                    ) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for key, (method, params) in commands.items():
            try:
                body = self.call(method, params)
            except BitrixError as exc:
                if tolerate is True or exc.code in tolerate:
                    out[key] = {"result": None, "total": None, "next": None, "error": exc.code}
                    continue
                raise
            out[key] = {"result": body.get("result"), "total": body.get("total"), "next": body.get("next")}
        return out

    def pages(self, method: str, params: dict[str, Any], items: Callable[[Any], list[dict]] = lambda r: r
              ) -> Iterator[list[dict]]:
        """Every page of a list method: the first alone (it says the total and the page size,
        `next`), then the rest by `batch`, 50 pages a request, in order. A reply without a
        total is paged one `next` at a time."""
        first = self.call(method, {**params, "start": 0})
        yield list(items(first.get("result")) or [])
        yield from self._rest(method, params, first, items)

    def _rest(self, method: str, params: dict[str, Any], first: dict, items: Callable[[Any], list[dict]]
              ) -> Iterator[list[dict]]:
        nxt, total = _int(first.get("next")), _int(first.get("total"))
        if nxt is None:
            return
        if total is None:  # no total: follow `next` page by page
            while nxt is not None:
                answer = self.call(method, {**params, "start": nxt})
                rows = list(items(answer.get("result")) or [])
                if not rows:
                    return
                yield rows
                following = _int(answer.get("next"))
                nxt = following if following is not None and following > nxt else None
            return
        starts = list(range(nxt, total, nxt))  # the page size is what the portal used (50)
        for i in range(0, len(starts), BATCH):
            chunk = starts[i:i + BATCH]
            answers = self.batch({f"p{s}": (method, {**params, "start": s}) for s in chunk})
            for s in chunk:
                yield list(items(answers[f"p{s}"]["result"]) or [])


    def lists(self, commands: dict[str, tuple[str, dict[str, Any]]], tolerate: tuple[str, ...] | bool = ()
              ) -> Iterator[tuple[str, list[dict] | None, str | None]]:
        """Every page of several list methods that do not depend on each other: the first pages
        of all in one batch, then the rest of all, 50 pages a request. Yields (key, records,
        None) per page in order, or (key, None, error code) once for a tolerated error."""
        firsts = self.batch({k: (m, {**p, "start": 0}) for k, (m, p) in commands.items()}, tolerate)
        rest: list[tuple[str, int]] = []
        for key in commands:
            answer = firsts[key]
            if answer.get("error"):
                yield key, None, str(answer["error"])
                continue
            yield key, _items(answer["result"]), None
            nxt, total = _int(answer.get("next")), _int(answer.get("total"))
            if nxt is not None and total is None:  # no total: page by `next`, alone
                for rows in self._rest(commands[key][0], commands[key][1], answer, _items):
                    yield key, rows, None
            elif nxt is not None:
                rest += [(key, start) for start in range(nxt, total, nxt)]
        for i in range(0, len(rest), BATCH):
            chunk = rest[i:i + BATCH]
            answers = self.batch({f"{k}_{start}": (commands[k][0], {**commands[k][1], "start": start})
                                  for k, start in chunk}, tolerate)
            for k, start in chunk:
                answer = answers[f"{k}_{start}"]
                if answer.get("error"):
                    yield k, None, str(answer["error"])
                else:
                    yield k, _items(answer["result"]), None


# --- records as stored (flat rows; timestamps as unix seconds) ---------------------------------

def ts(value: Any) -> int | None:
    """Bitrix24's ISO 8601 time (with the portal's offset) as unix seconds."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _custom(record: dict) -> str | None:
    """The UF_* fields, as JSON text (read with json_extract)."""
    out = {k: v for k, v in record.items() if k.startswith("UF_") and v not in (None, "", [])}
    return json.dumps(out, ensure_ascii=False) if out else None


def deal_row(r: dict) -> dict:
    return {
        "id": int(r["ID"]), "title": r.get("TITLE"), "category_id": int(r.get("CATEGORY_ID") or 0),
        "stage_id": r.get("STAGE_ID"), "stage_semantic_id": r.get("STAGE_SEMANTIC_ID"),
        "opportunity": _float(r.get("OPPORTUNITY")), "currency_id": r.get("CURRENCY_ID"),
        "assigned_by_id": _int(r.get("ASSIGNED_BY_ID")), "date_create": ts(r.get("DATE_CREATE")),
        "modified": ts(r.get("DATE_MODIFY")), "closed": r.get("CLOSED") == "Y",
        "moved_time": ts(r.get("MOVED_TIME")), "source_id": r.get("SOURCE_ID") or None,
        "company_id": _int(r.get("COMPANY_ID")), "contact_id": _int(r.get("CONTACT_ID")),
        "custom_fields": _custom(r),
    }


def history_row(r: dict) -> dict:
    return {"id": int(r["ID"]), "owner_id": int(r["OWNER_ID"]), "type_id": _int(r.get("TYPE_ID")),
            "created": ts(r.get("CREATED_TIME")), "category_id": int(r.get("CATEGORY_ID") or 0),
            "stage_semantic_id": r.get("STAGE_SEMANTIC_ID"), "stage_id": r.get("STAGE_ID")}


def activity_row(r: dict) -> dict:
    return {
        "id": int(r["ID"]), "owner_id": _int(r.get("OWNER_ID")), "owner_type_id": _int(r.get("OWNER_TYPE_ID")),
        "type_id": _int(r.get("TYPE_ID")), "provider_id": r.get("PROVIDER_ID"), "subject": r.get("SUBJECT"),
        "created": ts(r.get("CREATED")), "start_time": ts(r.get("START_TIME")), "end_time": ts(r.get("END_TIME")),
        "deadline": ts(r.get("DEADLINE")), "completed": r.get("COMPLETED") == "Y",
        "direction": _int(r.get("DIRECTION")), "responsible_id": _int(r.get("RESPONSIBLE_ID")),
        "modified": ts(r.get("LAST_UPDATED")),
    }


def lead_row(r: dict) -> dict:
    return {
        "id": int(r["ID"]), "title": r.get("TITLE"), "status_id": r.get("STATUS_ID"),
        "status_semantic_id": r.get("STATUS_SEMANTIC_ID"), "source_id": r.get("SOURCE_ID") or None,
        "assigned_by_id": _int(r.get("ASSIGNED_BY_ID")), "date_create": ts(r.get("DATE_CREATE")),
        "modified": ts(r.get("DATE_MODIFY")), "custom_fields": _custom(r),
    }


def company_row(r: dict) -> dict:
    return {"id": int(r["ID"]), "name": r.get("TITLE"), "assigned_by_id": _int(r.get("ASSIGNED_BY_ID")),
            "modified": ts(r.get("DATE_MODIFY")), "custom_fields": _custom(r)}


def contact_row(r: dict) -> dict:
    name = " ".join(str(r.get(k) or "").strip() for k in ("NAME", "SECOND_NAME", "LAST_NAME")).split()
    return {"id": int(r["ID"]), "name": " ".join(name) or None, "assigned_by_id": _int(r.get("ASSIGNED_BY_ID")),
            "modified": ts(r.get("DATE_MODIFY")), "custom_fields": _custom(r)}


def user_row(r: dict) -> dict:
    name = " ".join(str(r.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).split()
    departments = r.get("UF_DEPARTMENT") or []
    return {"id": int(r["ID"]), "name": " ".join(name) or r.get("EMAIL") or f"user {r['ID']}",
            "email": r.get("EMAIL") or None, "active": r.get("ACTIVE") in (True, "Y", "true", 1, "1"),
            "department_id": _int(departments[0]) if departments else None}


def status_row(r: dict) -> dict:
    semantics = r.get("SEMANTICS") or ((r.get("EXTRA") or {}).get("SEMANTICS") if isinstance(r.get("EXTRA"), dict) else None)
    semantics = {"success": "S", "failure": "F", "apology": "F", "process": None}.get(str(semantics), semantics)
    return {"entity_id": r.get("ENTITY_ID"), "status_id": r.get("STATUS_ID"), "name": r.get("NAME"),
            "sort": _int(r.get("SORT")) or 0, "semantics": semantics or None,
            "category_id": int(r.get("CATEGORY_ID") or 0)}


_cols = engine.column_hints
DEAL_COLS = _cols(id="bigint", title="text", category_id="bigint", stage_id="text", stage_semantic_id="text",
                  opportunity="double", currency_id="text", assigned_by_id="bigint", date_create="bigint",
                  modified="bigint", closed="bool", moved_time="bigint", source_id="text", company_id="bigint",
                  contact_id="bigint", custom_fields="text")
HISTORY_COLS = _cols(id="bigint", owner_id="bigint", type_id="bigint", created="bigint", category_id="bigint",
                     stage_semantic_id="text", stage_id="text")
ACTIVITY_COLS = _cols(id="bigint", owner_id="bigint", owner_type_id="bigint", type_id="bigint", provider_id="text",
                      subject="text", created="bigint", start_time="bigint", end_time="bigint", deadline="bigint",
                      completed="bool", direction="bigint", responsible_id="bigint", modified="bigint")
LEAD_COLS = _cols(id="bigint", title="text", status_id="text", status_semantic_id="text", source_id="text",
                  assigned_by_id="bigint", date_create="bigint", modified="bigint", custom_fields="text")
PARTY_COLS = _cols(id="bigint", name="text", assigned_by_id="bigint", modified="bigint", custom_fields="text")
USER_COLS = _cols(id="bigint", name="text", email="text", active="bool", department_id="bigint")
STATUS_COLS = _cols(entity_id="text", status_id="text", name="text", sort="bigint", semantics="text",
                    category_id="bigint")
CATEGORY_COLS = _cols(id="bigint", name="text", sort="bigint")
DEPARTMENT_COLS = _cols(id="bigint", name="text")

# resource -> (list method, its record mapper, stored columns, the modified-time field, entityTypeId)
INCREMENTAL: dict[str, tuple[str, Callable[[dict], dict], dict, str]] = {
    "deals": ("crm.deal.list", deal_row, DEAL_COLS, "DATE_MODIFY"),
    "stage_history": ("crm.stagehistory.list", history_row, HISTORY_COLS, "CREATED_TIME"),
    "activities": ("crm.activity.list", activity_row, ACTIVITY_COLS, "LAST_UPDATED"),
    "leads": ("crm.lead.list", lead_row, LEAD_COLS, "DATE_MODIFY"),
    "companies": ("crm.company.list", company_row, PARTY_COLS, "DATE_MODIFY"),
    "contacts": ("crm.contact.list", contact_row, PARTY_COLS, "DATE_MODIFY"),
}
CURSOR = {"stage_history": "created"}  # the stored column each resource's cursor follows (else "modified")
# what every sync reads whole, in one shared batch (key -> list method and parameters)
REFERENCE: dict[str, tuple[str, dict[str, Any]]] = {
    "active_users": ("user.get", {"FILTER": {"ACTIVE": True}}),
    "inactive_users": ("user.get", {"FILTER": {"ACTIVE": False}}),
    "departments": ("department.get", {}),
    "categories": ("crm.category.list", {"entityTypeId": DEAL}),
    "statuses": ("crm.status.list", {"order": {"SORT": "ASC"}}),
}
# what the deletion check compares: store table -> list method
SWEPT = {"deals": "crm.deal.list", "leads": "crm.lead.list", "activities": "crm.activity.list",
         "companies": "crm.company.list", "contacts": "crm.contact.list"}
QUERY_IN_URL = 2000  # a call's parameters go in the URL too (PHP style) up to this length
EVERY_SYNC = ("deals",)  # compared on every sync whatever deletion_check_minutes says


def _items(result: Any) -> list[dict]:
    """A list method's records: a list, or {"items": [...]} (stagehistory), or {"categories": [...]}."""
    if isinstance(result, dict):
        for key in ("items", "categories"):
            if key in result:
                return list(result[key] or [])
        return list(result.values())
    return list(result or [])


def _uf_wanted(source_config: SourceConfig, *tables: str) -> bool:
    return any(source_config.custom_fields.get(t) for t in tables)


def _params(name: str, source_config: SourceConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"order": {"ID": "ASC"}}
    if name == "stage_history":
        return {"entityTypeId": DEAL, **params}
    wanted = {"deals": ("deals",), "leads": ("leads",), "companies": ("clients",), "contacts": ("clients",)}
    if _uf_wanted(source_config, *wanted.get(name, ())):
        params["select"] = ["*", "UF_*"]
    return params


# --- the dlt source ---------------------------------------------------------------------------

# What a sync can do without, and what is lost when the portal (or a server that is not quite
# Bitrix24) does not serve it: said once, and the rest is synced. Users, stages and deals are
# required: without them there is nothing to scan, and the sync fails with the reason.
OPTIONAL: dict[str, str] = {
    "stage_history": "stage history (crm.stagehistory.list): the stage history is derived from the deals' "
                     "creation; conversion_drop measures conversion from outcomes only, stalled_deal counts "
                     "time in a stage from the deal's creation",
    "activities": "activities (crm.activity.list): no calls, meetings, tasks or emails; stalled_deal counts "
                  "only stage changes as touches, lead_sla sees no answers",
    "leads": "leads (crm.lead.list): no leads; lead_sla, lead_score and manager_load's new-leads part are skipped",
    "companies": "companies (crm.company.list): clients that are companies have no name, region or segment",
    "contacts": "contacts (crm.contact.list): clients that are contacts have no name, region or segment",
    "departments": "departments (department.get; the webhook's `department` scope): managers have no team",
    "categories": "pipelines (crm.category.list, crm.dealcategory.list): their names are unknown; name "
                  "pipelines in [source] pipelines by id (0 = the default pipeline)",
}
_said: set[str] = set()  # missing parts already logged by this process (said once, not every sync)


def _note_missing(part: str, exc: BitrixError | str, missing: dict[str, str]) -> None:
    missing[part] = f"{OPTIONAL[part]} [{exc.code if isinstance(exc, BitrixError) else exc}]"
    if part not in _said:
        _said.add(part)
        log.warning("Bitrix24: not synced: %s", missing[part])


def _incremental(api: Api, name: str, source_config: SourceConfig, overlap: int,
                 missing: dict[str, str] | None = None) -> Any:
    import dlt

    method, mapper, columns, field = INCREMENTAL[name]
    base = _params(name, source_config)
    cursor = CURSOR.get(name, "modified")

    def records(cur=dlt.sources.incremental(cursor, initial_value=0, lag=overlap)) -> Iterator[list[dict]]:
        """The list from the cursor. An optional list whose first page fails (the method not
        found, not allowed, any error) is noted as missing; a failure after rows came is raised
        (neither those rows nor the cursor are committed)."""
        params = dict(base)
        start = int(cur.start_value or 0)
        if start > 0:
            params["filter"] = {f">={field}": iso(start)}
        started = False
        try:
            for rows in api.pages(method, params, _items):
                started = True
                yield [mapper(r) for r in rows if isinstance(r, dict) and r.get("ID") is not None]
        except BitrixError as exc:
            if started or name not in OPTIONAL or exc.code in LIMIT_ERRORS or exc.code in AUTH_ERRORS:
                raise
            _note_missing(name, exc, missing if missing is not None else {})

    return dlt.resource(records, name=name, primary_key="id", write_disposition="merge", columns=columns)


def source(api: Api, source_config: SourceConfig, missing: dict[str, str] | None = None) -> Any:
    """Every Bitrix24 resource the canonical tables are built from; optional lists the portal
    does not serve are noted in `missing` (part -> what is lost and why)."""
    import dlt

    overlap = int(source_config.overlap_minutes * 60)

    reference: dict[str, list[list[dict]] | str] = {}

    missing = missing if missing is not None else {}

    def fetched(key: str, optional: bool = False) -> list[list[dict]] | str:
        """The reference lists (users, departments, pipelines, stages) come in one batch: the
        first resource to need one fetches them all. A list the sync cannot do without raises
        its error; an optional one returns the error code."""
        if not reference:
            for name, rows, error in api.lists(REFERENCE, tolerate=True):
                if error is not None:
                    reference[name] = error
                else:
                    pages = reference.setdefault(name, [])
                    assert isinstance(pages, list)
                    pages.append(rows or [])
        found = reference.get(key, [])
        if isinstance(found, str) and not optional:
            raise BitrixError(found, f"{REFERENCE[key][0]} failed")
        return found

    def users() -> Iterator[list[dict]]:
        seen: set[Any] = set()  # a portal that ignores the ACTIVE filter lists everyone twice
        for key in ("active_users", "inactive_users"):  # user.get returns active users unless asked
            for rows in fetched(key):
                fresh = [r for r in rows if r.get("ID") not in seen]  # type: ignore[union-attr]
                seen.update(r.get("ID") for r in fresh)
                yield [user_row(r) for r in fresh]

    def departments() -> Iterator[list[dict]]:
        pages = fetched("departments", optional=True)
        if isinstance(pages, str):
            _note_missing("departments", pages, missing)
            return
        for rows in pages:
            yield [{"id": int(d["ID"]), "name": d.get("NAME")} for d in rows]

    def categories() -> Iterator[list[dict]]:
        pages = fetched("categories", optional=True)
        if isinstance(pages, str):  # an older on-premise portal: the deprecated method, without pipeline 0
            try:
                default = api.call("crm.dealcategory.default.get").get("result") or {}
                pages = [[{"id": 0, "name": default.get("NAME"), "sort": 0}], *api.pages("crm.dealcategory.list", {})]
            except BitrixError as exc:
                if exc.code in LIMIT_ERRORS or exc.code in AUTH_ERRORS:
                    raise
                _note_missing("categories", f"{pages}, {exc.code}", missing)
                return
        for rows in pages:
            yield [{"id": int(c.get("id", c.get("ID", 0)) or 0), "name": c.get("name", c.get("NAME")),
                    "sort": _int(c.get("sort", c.get("SORT"))) or 0} for c in rows]

    def statuses() -> Iterator[list[dict]]:
        for rows in fetched("statuses"):
            yield [status_row(r) for r in rows
                   if str(r.get("ENTITY_ID", "")).startswith("DEAL_STAGE") or r.get("ENTITY_ID") in ("STATUS", "SOURCE")]

    @dlt.source(name=KIND, max_table_nesting=0)
    def bitrix24() -> list[Any]:
        return [
            dlt.resource(users, name="users", primary_key="id", write_disposition="replace", columns=USER_COLS),
            dlt.resource(departments, name="departments", write_disposition="replace", columns=DEPARTMENT_COLS),
            dlt.resource(categories, name="categories", write_disposition="replace", columns=CATEGORY_COLS),
            dlt.resource(statuses, name="statuses", write_disposition="replace", columns=STATUS_COLS),
            *(_incremental(api, name, source_config, overlap, missing) for name in INCREMENTAL),
        ]

    return bitrix24()


def sync(source_config: SourceConfig, base_dir: Path | None, *, on_secret: OnSecret | None = None,
         backoff: float = 1.0, now: float | None = None) -> engine.SyncReport:
    """Take what changed since the last sync (everything the first time) into the store, then,
    when the ID check is due, remove what is no longer in Bitrix24 and fetch what the store
    lacks. Raises DataError (webhook, permissions, store) or what stopped the load."""
    started = time.monotonic()
    store = engine.open_store(source_config, base_dir)
    api = Api(source_config, on_secret, backoff=backoff)
    pipe = store.pipeline(KIND)
    parts: dict[str, str] = {}
    try:
        rows = engine.run(pipe, source(api, source_config, parts))
        deleted, missing = _check_ids(api, store, source_config, time.time() if now is None else now, parts)
        if missing:
            for table, n in engine.run(pipe, _missing_source(api, source_config, missing)).items():
                rows[table] = rows.get(table, 0) + n
    except (BitrixError, requests.RequestException) as exc:
        raise _error(exc, source_config) from None
    return engine.SyncReport(KIND, rows=rows, requests=api.throttle.count, deleted=deleted,
                             seconds=time.monotonic() - started, missing=dict(sorted(parts.items())))


def _error(exc: Exception, source_config: SourceConfig) -> DataError:
    line = mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, BitrixError) and (exc.code in ("insufficient_scope", "ACCESS_DENIED") or exc.status == 403):
        return DataError(f"the Bitrix24 webhook may not read this ({line})",
                         fix="edit the inbound webhook in Bitrix24 and tick the scopes crm and user "
                         "(department too, for teams); its user needs read access to all deals, leads and contacts")
    if isinstance(exc, BitrixError) and (exc.code in AUTH_ERRORS or exc.status == 401):
        return DataError(f"Bitrix24 refused the webhook ({line})",
                         fix=f"the webhook was deleted or its URL is mistyped: create an inbound webhook again "
                         f"(Developer resources -> Other -> Inbound webhook) and put its URL in "
                         f"${source_config.webhook_env}")
    where = source_config.base_url or "the portal in the webhook URL"
    return DataError(f"Bitrix24 answered with an error ({line})",
                     fix=f"check {where} and ${source_config.webhook_env}; a temporary error is retried by the next sync")


# --- deletions (and records a shifted page skipped) ---------------------------------------------

def _check_ids(api: Api, store: engine.Store, source_config: SourceConfig, now: float,
               parts: dict[str, str] | None = None) -> tuple[int, dict[str, list[int]]]:
    """Compare the full ID lists with the store, remove what Bitrix24 no longer has, and return
    the IDs it has that the store lacks (a record deleted while pages were read shifts the later
    pages by one, so offset paging can skip one that no later incremental sync would see again).
    Deals are compared on every sync (a deleted deal must not stay in the insights, and their
    ID list is cheap: 2,500 IDs a request); the other lists when `deletion_check_minutes` have
    passed since the last full check. A list the portal did not serve (`parts`, or an error
    now) is left as it is: never read as empty.

    The check's time is written in the same transaction as the deletions, so an interrupted
    check is simply done again next time. The store is opened only around the reads and the
    transaction: `scan` can read it while the ID lists are fetched. The SQL is valid in DuckDB
    and PostgreSQL alike (the store may be either: engine.Store)."""
    s = store.dataset(KIND)
    con = store.connect()
    try:
        have = engine.tables(con, s)
        row = con.execute(f"SELECT max(checked_at) FROM {s}.deletion_checks").fetchone() \
            if "deletion_checks" in have else None
    finally:
        con.close()
    last = float(row[0] or 0) if row else 0.0
    full = not last or now - last >= source_config.deletion_check_minutes * 60
    tables = [t for t in SWEPT if t in have and t not in (parts or {}) and (full or t in EVERY_SYNC)]
    present = _all_ids(api, tables)
    gone, missing = 0, {}
    con = store.connect()
    try:
        con.execute("BEGIN TRANSACTION")
        for table, ids in present.items():
            con.execute("DROP TABLE IF EXISTS present")
            con.execute("CREATE TEMP TABLE present AS SELECT UNNEST(?::BIGINT[]) AS id", [ids])
            found = con.execute(f"DELETE FROM {s}.{table} WHERE id NOT IN (SELECT id FROM present)").fetchone()
            gone += int(found[0]) if found else 0
            lacking = [int(r[0]) for r in con.execute(
                f"SELECT id FROM present WHERE id NOT IN (SELECT id FROM {s}.{table}) ORDER BY id").fetchall()]
            if lacking:
                missing[table] = lacking
        if full:
            con.execute(f"CREATE TABLE IF NOT EXISTS {s}.deletion_checks (checked_at DOUBLE PRECISION)")
            con.execute(f"DELETE FROM {s}.deletion_checks")
            con.execute(f"INSERT INTO {s}.deletion_checks VALUES (?)", [now])
        con.execute("COMMIT")
    finally:
        con.close()
    if gone:
        log.info("Bitrix24: %d record(s) deleted in the CRM removed from the store", gone)
    if missing:
        log.info("Bitrix24: fetching %d record(s) the store lacks",  sum(len(v) for v in missing.values()))
    return gone, missing


def _missing_source(api: Api, source_config: SourceConfig, missing: dict[str, list[int]]) -> Any:
    """The records the ID check found missing, by ID (50 a command, 50 commands a request),
    merged into their tables; the incremental cursors are not touched."""
    import dlt

    def fetch(name: str, ids: list[int]) -> Iterator[list[dict]]:
        method, mapper, _columns, _field = INCREMENTAL[name]
        base = _params(name, source_config)
        chunks = [ids[i:i + PAGE] for i in range(0, len(ids), PAGE)]
        for i in range(0, len(chunks), BATCH):
            answers = api.batch({f"c{k}": (method, {**base, "filter": {"ID": chunk}})
                                 for k, chunk in enumerate(chunks[i:i + BATCH], start=i)})
            for key in sorted(answers, key=lambda k: int(k[1:])):
                yield [mapper(r) for r in _items(answers[key]["result"])]

    @dlt.source(name=KIND, max_table_nesting=0)
    def bitrix24_missing() -> list[Any]:
        return [dlt.resource(fetch(name, ids), name=name, primary_key="id", write_disposition="merge",
                             columns=INCREMENTAL[name][2]) for name, ids in missing.items()]

    return bitrix24_missing()


def _all_ids(api: Api, tables: list[str]) -> dict[str, list[int]]:
    """The full ID lists of these tables' list methods (their pages share batches)."""
    ids: dict[str, set[int]] = {t: set() for t in tables}
    failed: set[str] = set()
    if not tables:
        return {}
    for table, rows, error in api.lists({t: (SWEPT[t], {"order": {"ID": "ASC"}, "select": ["ID"]}) for t in tables},
                                        tolerate=True):
        if error is not None:
            if table == "deals":  # required: its list must be readable
                raise BitrixError(error, "crm.deal.list (the ID list of deals)")
            log.warning("Bitrix24: the ID list of %s failed (%s): its deletions wait for the next sync", table, error)
            failed.add(table)
            continue
        ids[table].update(int(r["ID"]) for r in rows or [] if isinstance(r, dict) and r.get("ID") is not None)
    return {t: sorted(found) for t, found in ids.items() if t not in failed}


def _tables(con: Any) -> set[str]:
    return engine.tables(con, KIND)


# --- check -------------------------------------------------------------------------------------

def check(source_config: SourceConfig, base_dir: Path | None, *,
          on_secret: OnSecret | None = None) -> dict[str, Any]:
    """Prove the webhook: the portal, its deal pipelines (with stages) and its users."""
    api = Api(source_config, on_secret)
    wanted = {k: v for k, v in REFERENCE.items() if k != "departments"}
    found: dict[str, list[dict]] = {k: [] for k in wanted}
    try:
        for key, rows, error in api.lists(wanted, tolerate=True):
            if error is not None and key != "categories":  # pipelines' names are optional (OPTIONAL)
                raise BitrixError(error, f"{wanted[key][0]} failed")
            found[key] += rows or []
    except (BitrixError, requests.RequestException) as exc:
        raise _error(exc, source_config) from None
    stages = [status_row(s) for s in found["statuses"]]
    if not found["categories"]:  # no pipeline list served: the pipelines the stages name, by id
        found["categories"] = [{"id": cid, "name": None} for cid in sorted(
            {0 if st["entity_id"] == "DEAL_STAGE" else int(str(st["entity_id"]).rsplit("_", 1)[-1])
             for st in stages if str(st["entity_id"]).startswith("DEAL_STAGE")
             and (st["entity_id"] == "DEAL_STAGE" or str(st["entity_id"]).rsplit("_", 1)[-1].isdigit())})]
    pipelines = []
    for c in sorted(found["categories"], key=lambda c: (_int(c.get("sort")) or 0, int(c.get("id") or 0))):
        cid = int(c.get("id") or 0)
        entity = "DEAL_STAGE" if cid == 0 else f"DEAL_STAGE_{cid}"
        names = [s["name"] for s in sorted((s for s in stages if s["entity_id"] == entity), key=lambda s: s["sort"])]
        pipelines.append({"id": cid, "name": c.get("name"), "included": _included(cid, c.get("name"), source_config),
                          "statuses": names})
    users = [user_row(u) for key in ("active_users", "inactive_users") for u in found[key]]
    return {"account": urlsplit(api.url).hostname, "pipelines": pipelines,
            "users": [{"id": u["id"], "name": u["name"], "active": u["active"]} for u in users]}


def _included(category_id: Any, name: Any, source_config: SourceConfig) -> bool:
    return engine.included(category_id, name, source_config.pipelines)


# --- the store as canonical tables ---------------------------------------------------------------

def raw_tables(con: Any, source_config: SourceConfig) -> dict[str, pd.DataFrame]:
    """The canonical tables (canonical column names, raw values) from the synced records.

    Only deals in the included pipelines count; their history and activities follow them.
    Closed deals take the last in-progress stage from their history (won/lost are stages in
    Bitrix24, statuses in the contract)."""
    have = _tables(con)
    if not {"users", "deals", "statuses"} <= have:
        raise DataError("the synced store has no Bitrix24 deals, users or stages yet",
                        fix="run `crm-pulse sync --config <your config>` until it ends without an error")
    s = KIND
    cats = {int(r[0]): r[1] for r in con.execute(f"SELECT id, name FROM {s}.categories").fetchall()} \
        if "categories" in have else {}
    known = set(cats) | {int(r[0]) for r in con.execute(f"SELECT DISTINCT category_id FROM {s}.deals").fetchall()}
    engine.check_wanted([(c, cats.get(c)) for c in sorted(known)], source_config.pipelines, "Bitrix24")
    included = [c for c in sorted(known) if _included(c, cats.get(c), source_config)]
    con.execute("CREATE OR REPLACE TEMP TABLE inc AS SELECT UNNEST(?::BIGINT[]) AS category_id", [included])
    engine.label_pipelines(con, [(c, cats.get(c)) for c in sorted(known)])  # no pipeline list served: ids
    cf = source_config.custom_fields

    def value(table: str, column: str, prefix: str, fallback: str = "CAST(NULL AS VARCHAR)") -> str:
        """The UF_* field named in [source.custom_fields.<table>] <column>, else `fallback`."""
        code = cf.get(table, {}).get(column)
        if not code:
            return fallback
        path = "$." + json.dumps(code, ensure_ascii=False)
        return f"coalesce(json_extract_string({prefix}.custom_fields, '{path.replace(chr(39), chr(39) * 2)}'), {fallback})"

    def field(table: str, column: str, prefix: str, fallback: str = "CAST(NULL AS VARCHAR)") -> str:
        return f"{value(table, column, prefix, fallback)} AS {column}"

    # deal stages: ENTITY_ID DEAL_STAGE (pipeline 0) or DEAL_STAGE_<id>
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        SELECT CASE WHEN entity_id = 'DEAL_STAGE' THEN 0
                    ELSE CAST(substr(entity_id, length('DEAL_STAGE_') + 1) AS BIGINT) END AS category_id,
               status_id, name, sort, semantics
        FROM {s}.statuses WHERE entity_id LIKE 'DEAL_STAGE%'""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE deal AS
        SELECT d.*, CASE WHEN d.company_id IS NOT NULL THEN CAST(d.company_id AS VARCHAR)
                         WHEN d.contact_id IS NOT NULL THEN 'contact-' || CAST(d.contact_id AS VARCHAR) END AS client,
               coalesce(d.stage_semantic_id, st.semantics, 'P') AS semantic
        FROM {s}.deals d JOIN inc USING (category_id)
        LEFT JOIN stage st ON st.status_id = d.stage_id""")
    history = "stage_history" in have
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hist_all AS
        SELECT h.owner_id AS deal_id, h.stage_id, h.created AS entered, h.id,
               coalesce(h.stage_semantic_id, st.semantics, 'P') AS semantic
        FROM {s}.stage_history h JOIN deal d ON d.id = h.owner_id
        LEFT JOIN stage st ON st.status_id = h.stage_id""" if history else """
        CREATE OR REPLACE TEMP TABLE hist_all AS
        SELECT NULL::BIGINT deal_id, NULL::VARCHAR stage_id, NULL::BIGINT entered, NULL::BIGINT id,
               NULL::VARCHAR semantic WHERE false""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE hist AS
        WITH opening AS (  -- a pipeline's first stage: where a deal without any history started
            SELECT category_id, arg_min(status_id, sort) AS stage_id FROM stage
            WHERE coalesce(semantics, 'P') NOT IN ('S', 'F') GROUP BY category_id),
        entries AS (
            SELECT deal_id, stage_id, entered, id FROM hist_all WHERE semantic NOT IN ('S', 'F')
            UNION ALL
            SELECT d.id, CASE WHEN d.semantic IN ('S', 'F') THEN o.stage_id ELSE d.stage_id END, d.date_create, 0
            FROM deal d LEFT JOIN opening o ON o.category_id = d.category_id
            WHERE d.id NOT IN (SELECT deal_id FROM hist_all))
        SELECT e.deal_id, coalesce(st.name, e.stage_id) AS stage, e.entered, e.id  -- a deleted stage: its code
        FROM entries e LEFT JOIN stage st ON st.status_id = e.stage_id WHERE e.stage_id IS NOT NULL""")
    out: dict[str, pd.DataFrame] = {}
    departments = "departments" in have
    out["managers"] = con.execute(f"""
        SELECT CAST(u.id AS VARCHAR) AS manager_id, u.name, u.email,
               {"dep.name" if departments else "NULL::VARCHAR"} AS team, u.active
        FROM {s}.users u {f"LEFT JOIN {s}.departments dep ON dep.id = u.department_id" if departments else ""}
        ORDER BY u.id""").df()
    cat_sort = f"LEFT JOIN {s}.categories c ON c.id = st.category_id" if "categories" in have else ""
    out["stages"] = con.execute(f"""
        WITH ordered AS (
            SELECT st.name, ROW_NUMBER() OVER (ORDER BY {"coalesce(c.sort, 0)," if cat_sort else ""}
                                                        st.category_id, st.sort, st.status_id) AS position
            FROM stage st JOIN inc USING (category_id) {cat_sort}
            WHERE coalesce(st.semantics, 'P') NOT IN ('S', 'F'))
        SELECT name AS stage, min(position) AS position FROM ordered GROUP BY name ORDER BY position""").df()
    out["stages"]["position"] = range(1, len(out["stages"]) + 1)
    sources = f"(SELECT name FROM {s}.statuses WHERE entity_id = 'SOURCE' AND status_id = d.source_id LIMIT 1)"
    # several failure stages in a pipeline ("Lost: price", "Lost: went to a competitor") are the reasons
    failure_stage = """CASE WHEN (SELECT count(*) FROM stage f WHERE f.category_id = d.category_id
                                  AND f.semantics = 'F') > 1 THEN cur.name END"""
    out["deals"] = con.execute(f"""
        WITH last_stage AS (SELECT deal_id, arg_max(stage, entered) AS stage FROM hist GROUP BY deal_id),
        closing AS (SELECT deal_id, max(entered) AS at FROM hist_all WHERE semantic IN ('S', 'F') GROUP BY deal_id)
        SELECT CAST(d.id AS VARCHAR) AS deal_id, d.client AS client_id,
               CAST(d.assigned_by_id AS VARCHAR) AS manager_id, d.title, d.opportunity AS amount,
               d.currency_id AS currency,
               CASE WHEN d.semantic IN ('S', 'F') THEN ls.stage ELSE coalesce(cur.name, d.stage_id) END AS stage,
               CASE d.semantic WHEN 'S' THEN 'won' WHEN 'F' THEN 'lost' ELSE 'open' END AS status,
               to_timestamp(d.date_create) AS created_at,
               CASE WHEN d.semantic IN ('S', 'F') THEN to_timestamp(coalesce(cl.at, d.moved_time)) END AS closed_at,
               CASE WHEN d.semantic = 'F' THEN {value("deals", "loss_reason", "d", failure_stage)} END AS loss_reason,
               {field("deals", "source", "d", f"coalesce({sources}, d.source_id)")}, {field("deals", "region", "d")},
               coalesce(pl.pipeline, CAST(d.category_id AS VARCHAR)) AS pipeline
        FROM deal d
        LEFT JOIN pipeline_label pl ON pl.pipeline_id = CAST(d.category_id AS VARCHAR)
        LEFT JOIN stage cur ON cur.status_id = d.stage_id
        LEFT JOIN last_stage ls ON ls.deal_id = d.id
        LEFT JOIN closing cl ON cl.deal_id = d.id
        ORDER BY d.id""").df()
    if history:  # else the portal served no stage history: the loader derives it and says so
        out["stage_history"] = con.execute("""
            SELECT CAST(deal_id AS VARCHAR) AS deal_id, stage, to_timestamp(entered) AS entered_at
            FROM hist ORDER BY entered, deal_id, id""").df()
    parts = []
    if "companies" in have:
        parts.append(f"""SELECT CAST(c.id AS VARCHAR) AS client_id, c.name, CAST(c.assigned_by_id AS VARCHAR) AS manager_id,
            {field("clients", "region", "c")}, {field("clients", "segment", "c")} FROM {s}.companies c""")
    if "contacts" in have:
        parts.append(f"""SELECT 'contact-' || CAST(c.id AS VARCHAR) AS client_id, c.name,
            CAST(c.assigned_by_id AS VARCHAR) AS manager_id,
            {field("clients", "region", "c")}, {field("clients", "segment", "c")} FROM {s}.contacts c
            WHERE c.id IN (SELECT contact_id FROM deal WHERE company_id IS NULL)""")
    if parts:
        out["clients"] = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1").df()
    if "activities" in have:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE act AS
            SELECT a.*, d.id AS deal_id,
                   CASE a.owner_type_id WHEN {DEAL} THEN d.client WHEN {COMPANY} THEN CAST(a.owner_id AS VARCHAR)
                        WHEN {CONTACT} THEN 'contact-' || CAST(a.owner_id AS VARCHAR) END AS client
            FROM {s}.activities a LEFT JOIN deal d ON a.owner_type_id = {DEAL} AND d.id = a.owner_id
            WHERE (a.owner_type_id = {DEAL} AND d.id IS NOT NULL) OR a.owner_type_id IN ({COMPANY}, {CONTACT})""")
        out["activities"] = con.execute(f"""
            SELECT CAST(id AS VARCHAR) AS activity_id, CAST(deal_id AS VARCHAR) AS deal_id, client AS client_id,
                   CAST(responsible_id AS VARCHAR) AS manager_id,
                   CASE type_id WHEN {MEETING} THEN 'meeting' WHEN {CALL} THEN 'call' WHEN {TASK} THEN 'task'
                        ELSE CASE WHEN provider_id = 'CRM_TODO' THEN 'task' ELSE 'note' END END AS type,
                   to_timestamp(coalesce(deadline, end_time)) AS due_at,
                   CASE WHEN completed THEN to_timestamp(CASE type_id WHEN {CALL} THEN coalesce(start_time, modified)
                        WHEN {MEETING} THEN least(coalesce(end_time, modified), modified) ELSE modified END) END AS done_at
            FROM act WHERE type_id <> {EMAIL} ORDER BY id""").df()
        out["emails"] = con.execute(f"""
            SELECT CAST(id AS VARCHAR) AS email_id, client AS client_id, CAST(responsible_id AS VARCHAR) AS manager_id,
                   CAST(deal_id AS VARCHAR) AS deal_id, CASE direction WHEN 1 THEN 'in' ELSE 'out' END AS direction,
                   to_timestamp(coalesce(start_time, created)) AS sent_at, subject
            FROM act WHERE type_id = {EMAIL} AND client IS NOT NULL ORDER BY coalesce(start_time, created), id""").df()
    if "leads" in have:
        # the first answer: the earliest outgoing activity, or a call or meeting held, on the lead
        first = (f"""(SELECT min(coalesce(a.start_time, a.created)) FROM {s}.activities a
                      WHERE a.owner_type_id = {LEAD} AND a.owner_id = l.id
                        AND (a.direction = 2 OR (a.type_id IN ({MEETING}, {CALL}) AND a.completed)))"""
                 if "activities" in have else "NULL::BIGINT")
        lead_sources = f"(SELECT name FROM {s}.statuses WHERE entity_id = 'SOURCE' AND status_id = l.source_id LIMIT 1)"
        out["leads"] = con.execute(f"""
            SELECT CAST(l.id AS VARCHAR) AS lead_id, to_timestamp(l.date_create) AS created_at,
                   {field("leads", "source", "l", f"coalesce({lead_sources}, l.source_id)")},
                   {field("leads", "region", "l")}, CAST(l.assigned_by_id AS VARCHAR) AS manager_id,
                   NULL::TIMESTAMPTZ AS assigned_at, to_timestamp({first}) AS first_response_at,
                   CASE coalesce(l.status_semantic_id, st.semantics) WHEN 'S' THEN 'converted' WHEN 'F' THEN 'junk'
                        ELSE coalesce(st.name, l.status_id) END AS status
            FROM {s}.leads l
            LEFT JOIN {s}.statuses st ON st.entity_id = 'STATUS' AND st.status_id = l.status_id
            ORDER BY l.id""").df()
    return out
