"""A fake HubSpot API on 127.0.0.1 serving the documented CRM v3 shapes.

Serves `/account-info/v3/details`, `/crm/v3/owners` (`archived`), `/crm/v3/pipelines/deals`,
`POST /crm/v3/objects/<type>/search` (filterGroups with GTE/GT/EQ on a property, one sort,
`limit` <= 100, `after`, and the 10,000-result cap: an `after` at or past `search_cap` is a
400), `POST /crm/v3/objects/<type>/batch/read` (`propertiesWithHistory`, at most 50 inputs then,
else 100; unknown ids -> 207 with errors), `GET /crm/v3/objects/<type>?archived=true`,
`POST /crm/v4/associations/<from>/<to>/batch/read` and `/email/public/v1/events`
(`eventType`, `startTimestamp`, `offset`/`hasMore`). Every property value is text, times in
ISO 8601 as HubSpot writes them; the search never returns archived records.

Faults: a wrong token answers 401 (INVALID_AUTHENTICATION); `throttle_next(n)` answers the next
n calls with HubSpot's 429 (`policyName` SECONDLY, no Retry-After); `per_second` /
`search_per_second` answer 429 beyond HubSpot's limits; `daily_limit_hit` answers the DAILY 429;
`missing_scope` maps an object type to the scope its 403 names. Every API call is recorded in
`calls` as (method, path, query or JSON body).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from tests.fakes.local_server import LocalServer

MODIFIED = {"contacts": "lastmodifieddate"}  # every other object: hs_lastmodifieddate


def iso(ms: int | None) -> str | None:
    """Epoch ms as HubSpot writes a datetime property."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))


class FakeHubSpot(LocalServer):
    def __init__(self, *, token: str = "pat-eu1-11111111-2222-3333-4444-555555555555") -> None:
        self.token = token
        self.portal_id, self.currency = 4_242_424, "USD"
        self.owners: list[dict] = []
        self.archived_owners: list[dict] = []
        self.pipelines: list[dict] = []
        self.lead_pipelines: list[dict] = []  # empty: the account has no leads object
        # object type -> id -> {"id", "properties", "history": {prop: [{value, timestamp}]}, "archived", "archivedAt"}
        self.objects: dict[str, dict[str, dict]] = {}
        self.associations: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.events: list[dict] = []
        self.calls: list[tuple[str, str, Any]] = []
        self.search_cap = 10_000
        self.queued_429 = 0
        self.answered_429 = 0
        self.per_second: float | None = None
        self.search_per_second: float | None = None
        self.over_limit = 0
        self.daily_limit_hit = False
        self.missing_scope: dict[str, str] = {}
        self.on_call: Any = None  # called with (method, path, payload) before a call is answered
        self._recent: list[float] = []
        self._recent_search: list[float] = []

    # --- building the account ------------------------------------------------------------
    def add_owner(self, oid: str, first: str, last: str, email: str | None = None, team: str | None = None,
                  archived: bool = False) -> None:
        row = {"id": oid, "email": email, "firstName": first, "lastName": last, "userId": int(oid) + 1,
               "type": "PERSON", "teams": [{"id": f"t-{team}", "name": team, "primary": True}] if team else [],
               "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z",
               "archived": archived}
        (self.archived_owners if archived else self.owners).append(row)

    def add_pipeline(self, pid: str, label: str, stages: list[tuple[str, str]], order: int = 0,
                     won: str = "closedwon", lost: str = "closedlost") -> None:
        rows = [{"id": sid, "label": name, "displayOrder": i,
                 "metadata": {"isClosed": "false", "probability": f"{0.1 * (i + 1):.1f}"}, "archived": False}
                for i, (sid, name) in enumerate(stages)]
        rows += [{"id": won, "label": "Closed Won", "displayOrder": len(stages),
                  "metadata": {"isClosed": "true", "probability": "1.0"}, "archived": False},
                 {"id": lost, "label": "Closed Lost", "displayOrder": len(stages) + 1,
                  "metadata": {"isClosed": "true", "probability": "0.0"}, "archived": False}]
        self.pipelines.append({"id": pid, "label": label, "displayOrder": order, "archived": False, "stages": rows})

    def add_lead_pipeline(self, pid: str, label: str, stages: list[tuple[str, str]]) -> None:
        self.lead_pipelines.append({"id": pid, "label": label, "displayOrder": 0, "archived": False, "stages": [
            {"id": sid, "label": name, "displayOrder": i, "metadata": {}, "archived": False}
            for i, (sid, name) in enumerate(stages)]})

    def put(self, obj: str, oid: str, properties: dict[str, Any], modified: int,
            history: dict[str, list[tuple[str, int]]] | None = None) -> dict:
        """Create or change a record; `modified` (epoch ms) becomes its last-modified date."""
        props = {k: (None if v is None else str(v)) for k, v in properties.items()}
        props[MODIFIED.get(obj, "hs_lastmodifieddate")] = iso(modified)
        props["hs_object_id"] = str(oid)
        store = self.objects.setdefault(obj, {})
        record = store.get(str(oid))
        if record is None:
            record = store[str(oid)] = {"id": str(oid), "properties": {}, "history": {}, "archived": False}
        record["properties"].update(props)
        record["archived"] = False
        for prop, changes in (history or {}).items():
            record["history"][prop] = [{"value": v, "timestamp": iso(t), "sourceType": "CRM_UI"}
                                       for v, t in changes]
        return record

    def move_deal(self, oid: str, stage: str, at: int, **props: Any) -> None:
        record = self.objects["deals"][str(oid)]
        record["history"].setdefault("dealstage", []).append({"value": stage, "timestamp": iso(at), "sourceType": "CRM_UI"})
        self.put("deals", oid, {"dealstage": stage, **props}, at)

    def archive(self, obj: str, oid: str, at: int) -> None:
        record = self.objects[obj][str(oid)]
        record["archived"], record["archivedAt"] = True, iso(at)

    def associate(self, frm: str, fid: str, to: str, tid: str) -> None:
        self.associations.setdefault((frm, to), {}).setdefault(str(fid), []).append(str(tid))
        self.associations.setdefault((to, frm), {}).setdefault(str(tid), []).append(str(fid))

    def open_event(self, eid: str, recipient: str, opened: int, sent: int | None) -> None:
        self.events.append({"id": eid, "created": opened, "type": "OPEN", "recipient": recipient,
                            "portalId": self.portal_id, "appId": 113, "appName": "Sales",
                            "sentBy": {"id": f"sent-{eid}", "created": sent} if sent else {}})

    def throttle_next(self, n: int = 1) -> None:
        self.queued_429 += n

    def searches(self, obj: str) -> list[dict]:
        return [b for m, p, b in self.calls if m == "POST" and p == f"/crm/v3/objects/{obj}/search"]

    # --- HTTP ----------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._dispatch)

    def _error(self, status: int, message: str, **more: Any) -> web.Response:
        return web.json_response({"status": "error", "message": message,
                                  "correlationId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", **more}, status=status)

    def _limited(self, search: bool) -> web.Response | None:
        now = time.monotonic()
        for window, limit in ((self._recent, self.per_second), (self._recent_search, self.search_per_second if search else None)):
            if limit is None:
                continue
            window[:] = [t for t in window if now - t < 1.0]
            if len(window) >= limit:
                self.over_limit += 1
                return self._rate_limited()
        self._recent.append(now)
        if search:
            self._recent_search.append(now)
        return None

    def _rate_limited(self, policy: str = "SECONDLY") -> web.Response:
        return web.json_response(
            {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
             "errorType": "RATE_LIMIT", "policyName": policy, "groupName": "publicapi:private-app"},
            status=429, headers={"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0",
                                 "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"].strip("/")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Authentication credentials not found. This API supports OAuth 2.0 "
                               "authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                               category="INVALID_AUTHENTICATION")
        if self.daily_limit_hit:
            return self._rate_limited("DAILY")
        limited = self._limited(path.endswith("/search"))
        if limited is not None:
            return limited
        if self.queued_429:
            self.queued_429 -= 1
            self.answered_429 += 1
            return self._rate_limited()
        payload: Any = await request.json() if request.method == "POST" else dict(request.query)
        self.calls.append((request.method, path, payload))
        if self.on_call is not None:
            self.on_call(request.method, path, payload)
        parts = path.strip("/").split("/")
        obj = parts[3] if len(parts) > 3 and parts[:3] == ["crm", "v3", "objects"] else None
        if obj in self.missing_scope:
            scope = self.missing_scope[obj]
            return self._error(403, "This app hasn't been granted all required scopes to make this call.",
                               category="MISSING_SCOPES",
                               errors=[{"message": "One or more of the following scopes are required.",
                                        "context": {"requiredGranularScopes": [scope]}}])
        if path == "/account-info/v3/details":
            return web.json_response({"portalId": self.portal_id, "accountType": "STANDARD",
                                      "timeZone": "Asia/Almaty", "companyCurrency": self.currency,
                                      "additionalCurrencies": [], "utcOffset": "+05:00",
                                      "utcOffsetMilliseconds": 18000000, "uiDomain": "app-eu1.hubspot.com",
                                      "dataHostingLocation": "eu1"})
        if path == "/crm/v3/owners":
            rows = self.archived_owners if payload.get("archived") == "true" else self.owners
            return self._page(rows, payload, 500, "/crm/v3/owners")
        if path == "/crm/v3/pipelines/deals":
            return web.json_response({"results": self.pipelines})
        if (path == "/crm/v3/pipelines/leads" or path.startswith("/crm/v3/objects/leads")) and not self.lead_pipelines:
            # an account without the leads object (Sales Hub Starter and below)
            return self._error(403, "This app hasn't been granted all required scopes to make this call.",
                               category="MISSING_SCOPES", errors=[{"message": "One or more of the following scopes are required.",
                                                                    "context": {"requiredGranularScopes": ["crm.objects.leads.read"]}}])
        if path == "/crm/v3/pipelines/leads":
            return web.json_response({"results": self.lead_pipelines})
        if obj and len(parts) == 5 and parts[4] == "search" and request.method == "POST":
            return self._search(obj, payload)
        if obj and len(parts) == 6 and parts[4:] == ["batch", "read"] and request.method == "POST":
            return self._batch_read(obj, payload)
        if obj and len(parts) == 4 and request.method == "GET":
            archived = payload.get("archived") == "true"
            rows = [self._shape(r, payload.get("properties", "").split(",") if payload.get("properties") else [])
                    for r in sorted(self.objects.get(obj, {}).values(), key=lambda r: int(r["id"]))
                    if r["archived"] == archived]
            return self._page(rows, payload, 100, path)
        if len(parts) == 7 and parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"]:
            return self._associations(parts[3], parts[4], payload)
        if path == "/email/public/v1/events":
            if "events" in self.missing_scope:
                return self._error(403, "This app hasn't been granted all required scopes to make this call.",
                                   category="MISSING_SCOPES", errors=[{"message": "One or more of the following scopes are required.",
                                                                        "context": {"requiredGranularScopes": [self.missing_scope["events"]]}}])
            return self._events(payload)
        return self._error(404, f"Unable to route {request.method} request: {path}", category="OBJECT_NOT_FOUND")

    def _page(self, rows: list[dict], query: dict, max_limit: int, path: str) -> web.Response:
        limit = min(int(query.get("limit", 10)), max_limit)
        start = int(query.get("after") or 0)
        body: dict[str, Any] = {"results": rows[start:start + limit]}
        if start + limit < len(rows):
            nxt = str(start + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"http://127.0.0.1:{self.port}{path}?after={nxt}"}}
        return web.json_response(body)

    def _shape(self, record: dict, properties: list[str], history: list[str] = ()) -> dict:
        props = record["properties"]
        created = props.get("createdate") or props.get("hs_createdate") or iso(0)
        modified = props.get("hs_lastmodifieddate") or props.get("lastmodifieddate")
        defaults = [k for k in ("hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate") if k in props]
        out = {"id": record["id"], "properties": {k: props.get(k) for k in [*defaults, *properties]},
               "createdAt": created, "updatedAt": modified, "archived": record["archived"]}
        if record["archived"]:
            out["archivedAt"] = record.get("archivedAt")
        if history:
            out["propertiesWithHistory"] = {
                h: sorted(record["history"].get(h, []), key=lambda c: c["timestamp"], reverse=True) for h in history}
        return out

    def _matches(self, record: dict, group: dict) -> bool:
        for f in group.get("filters") or []:
            have = record["properties"].get(f["propertyName"])
            if have is None:
                return False
            numeric = f["propertyName"] == "hs_object_id"
            a = int(have) if numeric else _ms(have)
            b = int(f["value"]) if numeric else _ms(f["value"])
            op = f["operator"]
            if not ((op == "GTE" and a >= b) or (op == "GT" and a > b) or (op == "EQ" and a == b)
                    or (op == "LTE" and a <= b) or (op == "LT" and a < b)):
                return False
        return True

    def _search(self, obj: str, body: dict) -> web.Response:
        limit = int(body.get("limit", 10))
        if limit > 100:
            return self._error(400, "limit must be at most 100", category="VALIDATION_ERROR")
        start = int(body.get("after") or 0)
        if start >= self.search_cap:
            return self._error(400, f"Paging past {self.search_cap} results is not supported", category="VALIDATION_ERROR")
        groups = body.get("filterGroups") or [{}]
        rows = [r for r in self.objects.get(obj, {}).values()
                if not r["archived"] and any(self._matches(r, g) for g in groups)]
        sorts = body.get("sorts") or []
        if sorts:
            prop = sorts[0]["propertyName"]
            key = (lambda r: int(r["properties"][prop])) if prop == "hs_object_id" else (
                lambda r: (_ms(r["properties"].get(prop)) or 0, int(r["id"])))
            rows.sort(key=key, reverse=sorts[0].get("direction") == "DESCENDING")
        else:
            rows.sort(key=lambda r: int(r["id"]))
        chunk = rows[start:start + limit]
        out: dict[str, Any] = {"total": len(rows), "results": [self._shape(r, body.get("properties") or []) for r in chunk]}
        if start + limit < len(rows):
            out["paging"] = {"next": {"after": str(start + limit)}}
        return web.json_response(out)

    def _batch_read(self, obj: str, body: dict) -> web.Response:
        inputs = [str(i["id"]) for i in body.get("inputs") or []]
        history = body.get("propertiesWithHistory") or []
        cap = 50 if history else 100
        if len(inputs) > cap:
            return self._error(400, f"Batch read accepts at most {cap} inputs", category="VALIDATION_ERROR")
        store = self.objects.get(obj, {})
        found = [self._shape(store[i], body.get("properties") or [], history) for i in inputs
                 if i in store and not store[i]["archived"]]
        missing = [i for i in inputs if i not in store or store[i]["archived"]]
        out: dict[str, Any] = {"status": "COMPLETE", "results": found, "startedAt": iso(0), "completedAt": iso(0)}
        if missing:
            out["numErrors"] = 1
            out["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some records",
                              "context": {"ids": missing}}]
        return web.json_response(out, status=207 if missing else 200)

    def _associations(self, frm: str, to: str, body: dict) -> web.Response:
        links = self.associations.get((frm, to), {})
        results, errors = [], []
        for item in body.get("inputs") or []:
            fid = str(item["id"])
            if links.get(fid):
                results.append({"from": {"id": fid}, "to": [
                    {"toObjectId": int(t), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}]}
                    for t in links[fid]]})
            else:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                               "message": f"No {to} is associated with {frm[:-1]} {fid}.", "context": {"fromObjectId": [fid]}})
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(0), "completedAt": iso(0)}
        if errors:
            out.update(numErrors=len(errors), errors=errors)
        return web.json_response(out, status=207 if errors else 200)

    def _events(self, query: dict) -> web.Response:
        rows = sorted(self.events, key=lambda e: (e["created"], e["id"]))
        if query.get("eventType"):
            rows = [e for e in rows if e["type"] == query["eventType"]]
        if query.get("startTimestamp"):
            rows = [e for e in rows if e["created"] >= int(query["startTimestamp"])]
        limit = min(int(query.get("limit", 100)), 1000)
        start = int(query.get("offset") or 0)
        chunk = rows[start:start + limit]
        more = start + limit < len(rows)
        return web.json_response({"hasMore": more, "offset": str(start + limit) if more else None, "events": chunk})
