"""A fake Pipedrive API on 127.0.0.1 serving the documented shapes (v2 and the v1 endpoints v2
lacks), built from /work/shared/crm_api/pipedrive and the vendor's API reference.

v2 lists (`/api/v2/{deals,deals/archived,stages,pipelines,activities,persons,organizations}`): `limit` <= 500
(default 100), an opaque `cursor` and `additional_data.next_cursor` (null on the last page),
`updated_since` (RFC3339, update_time >= it), `sort_by` id|update_time|add_time with
`sort_direction`; deals take `status` (comma separated; default all but deleted; `deleted`
lists the deals deleted in the last 30 days, `is_deleted` true). v1: `/api/v1/users`,
`/users/me`, `/leads` (`start`/`limit`, `archived_status`), `/deals/{id}/flow` (`items`
filter, `start`/`limit`), `/deals/{id}/mailMessages`, `/{deal,person,organization}Fields`, with
`additional_data.pagination.more_items_in_collection` / `next_start` (flow and mail: the same
keys directly in `additional_data`, as the published schemas have it); an empty v1 list is
`"data": null`, as Pipedrive sends it.

Auth: the `x-api-token` header (a token in the query string is refused here, so a test notices
a connector putting it where logs would show it); a wrong token answers 401 the way Pipedrive
does. Limits: `per_window` requests per `window` seconds (Pipedrive: 20-120 per 2 s by plan),
429 with Retry-After and x-ratelimit-* beyond; `throttle_next(n, retry_after, header)` answers
the next n calls 429 (with Retry-After, or only x-ratelimit-reset); `budget_spent` answers every
call 429 with a Retry-After until midnight (the daily token budget).
Every API call is recorded in `calls` as (path, query). The connector is synchronous: tests run
the fake with tests.fakes.amocrm_server.ThreadedServer.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from tests.fakes.local_server import LocalServer

DAY = 86400


def iso(seconds: int | None) -> str | None:
    """RFC3339 as v2 writes it."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(seconds: int | None) -> str | None:
    """`YYYY-MM-DD HH:MM:SS` (UTC) as v1 writes it."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _since(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakePipedrive(LocalServer):
    def __init__(self, *, token: str = "pd-api-token-9f8e7d6c5b4a3210", company: str = "Test company") -> None:
        self.token = token
        self.company = company
        self.now = int(time.time())  # "today" for the 30 days deleted deals are listed
        self.users: list[dict] = []
        self.pipelines: list[dict] = []
        self.stages: list[dict] = []
        self.deals: dict[int, dict] = {}
        self.deleted_at: dict[int, int] = {}
        self.flows: dict[int, list[dict]] = {}
        self.mails: dict[int, list[dict]] = {}
        self.activities: dict[int, dict] = {}
        self.persons: dict[int, dict] = {}
        self.organizations: dict[int, dict] = {}
        self.leads: list[dict] = []
        self.fields: dict[str, list[dict]] = {"dealFields": [], "personFields": [], "organizationFields": []}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.unauthorized = 0
        self.status_429: list[tuple[int, str]] = []
        self.answered_429 = 0
        self.budget_spent = False
        self.per_window: int | None = None
        self.window = 2.0
        self.over_limit = 0
        self._recent: list[float] = []
        self._change_seq = 1000
        self.on_call: Any = None  # called with (path, query) before a call is answered

    # --- building the company ------------------------------------------------------------
    def add_user(self, uid: int, name: str, email: str | None = None, active: bool = True) -> None:
        self.users.append({"id": uid, "name": name, "email": email, "active_flag": active, "is_admin": 0,
                           "role_id": 1, "created": "2023-01-01 00:00:00", "modified": "2024-01-01 00:00:00",
                           "timezone_name": "Europe/Berlin"})

    def add_pipeline(self, pid: int, name: str, stages: list[tuple[int, str]], order_nr: int = 1) -> None:
        self.pipelines.append({"id": pid, "name": name, "order_nr": order_nr, "is_deleted": False,
                               "is_deal_probability_enabled": False, "add_time": "2023-01-01T00:00:00Z",
                               "update_time": "2023-06-01T00:00:00Z"})
        for i, (sid, sname) in enumerate(stages, start=1):
            self.stages.append({"id": sid, "order_nr": i, "name": sname, "is_deleted": False,
                                "deal_probability": 100, "pipeline_id": pid, "is_deal_rot_enabled": False,
                                "days_to_rotten": None, "add_time": "2023-01-01T00:00:00Z",
                                "update_time": "2023-06-01T00:00:00Z"})

    def put_deal(self, deal: dict) -> None:
        """A deal as v2 returns it; times given as unix seconds are written as RFC3339."""
        row = {"person_id": None, "org_id": None, "value": 0, "currency": "EUR", "status": "open",
               "is_deleted": False, "is_archived": False, "probability": None, "lost_reason": None,
               "close_time": None, "won_time": None, "lost_time": None, "stage_change_time": None,
               "expected_close_date": None, "label_ids": [], "origin": "ManuallyCreated", "channel": None,
               "email_messages_count": 0, "custom_fields": {}, **deal}
        for key in ("add_time", "update_time", "close_time", "won_time", "lost_time", "stage_change_time"):
            if isinstance(row.get(key), int):
                row[key] = iso(row[key])
        self.deals[row["id"]] = row

    def move(self, deal_id: int, at: int, old_stage: int, new_stage: int, user_id: int = 1) -> None:
        """A stage change: a dealChange in the deal's flow, and the deal's stage and times."""
        self._change_seq += 1
        self.flows.setdefault(deal_id, []).append({
            "object": "dealChange", "timestamp": v1_time(at),
            "data": {"id": self._change_seq, "item_id": deal_id, "user_id": user_id, "field_key": "stage_id",
                     "old_value": str(old_stage), "new_value": str(new_stage), "is_bulk_update_flag": None,
                     "log_time": v1_time(at), "change_source": "app", "additional_data": {}}})
        deal = self.deals[deal_id]
        deal.update(stage_id=new_stage, stage_change_time=iso(at))
        if _since(deal["update_time"]) < at:
            deal["update_time"] = iso(at)

    def other_change(self, deal_id: int, at: int, field_key: str, old: Any, new: Any) -> None:
        """A flow entry that is not a stage change (the connector must leave it out)."""
        self._change_seq += 1
        self.flows.setdefault(deal_id, []).append({
            "object": "dealChange", "timestamp": v1_time(at),
            "data": {"id": self._change_seq, "item_id": deal_id, "user_id": 1, "field_key": field_key,
                     "old_value": old, "new_value": new, "log_time": v1_time(at), "additional_data": {}}})

    def add_mail(self, deal_id: int, mail: dict) -> None:
        sent = {"sent_flag": 1, "read_flag": 1, "mail_tracking_status": None, "mail_link_tracking_enabled_flag": 0,
                "from": [{"email_address": "rep@example.com", "name": "Rep"}],
                "to": [{"email_address": "client@example.org", "name": "Client"}], "snippet": "", **mail}
        for key in ("message_time", "add_time", "update_time"):
            if isinstance(sent.get(key), int):
                sent[key] = v1_time(sent[key])
        self.mails.setdefault(deal_id, []).append({"object": "mailMessage", "timestamp": sent["message_time"],
                                                   "data": sent})
        self.deals[deal_id]["email_messages_count"] = len(self.mails[deal_id])

    def delete_deal(self, deal_id: int, at: int) -> None:
        self.deals[deal_id].update(is_deleted=True, status="deleted", update_time=iso(at))
        self.deleted_at[deal_id] = at

    # --- faults ---------------------------------------------------------------------------
    def throttle_next(self, n: int = 1, retry_after: int = 1, header: str = "Retry-After") -> None:
        self.status_429 += [(retry_after, header)] * n

    # --- HTTP -----------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/{version:v[12]}/{path:.*}", self._api)

    def api_calls(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.calls if p == path]

    def _limit_headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {"x-ratelimit-limit": str(self.per_window or 40), "x-ratelimit-remaining": str(max(0, remaining)),
                "x-ratelimit-reset": str(reset)}

    @staticmethod
    def _too_many(headers: dict[str, str]) -> web.Response:
        return web.json_response({"success": False, "error": "Request over limit", "errorCode": 429},
                                 status=429, headers=headers)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        version, path = request.match_info["version"], request.match_info["path"].strip("/")
        query = dict(request.query)
        if "api_token" in query or request.headers.get("x-api-token") != self.token:
            self.unauthorized += 1
            return web.json_response({"success": False, "error": "unauthorized access", "errorCode": 401,
                                      "error_info": "Please check developers.pipedrive.com"}, status=401)
        if self.budget_spent:
            self.answered_429 += 1
            midnight = DAY - int(time.time()) % DAY
            return self._too_many({"Retry-After": str(midnight), **self._limit_headers(0, midnight)})
        if self.per_window is not None:
            now = time.monotonic()
            self._recent = [t for t in self._recent if now - t < self.window]
            if len(self._recent) >= self.per_window:
                self.over_limit += 1
                return self._too_many({"Retry-After": "2", **self._limit_headers(0, 2)})
            self._recent.append(now)
        if self.status_429:
            self.answered_429 += 1
            seconds, header = self.status_429.pop(0)
            headers = self._limit_headers(0, seconds)
            if header == "Retry-After":
                headers["Retry-After"] = str(seconds)
            return self._too_many(headers)
        key = f"{version}/{path}"
        self.calls.append((key, query))
        if self.on_call is not None:
            self.on_call(key, query)
        headers = self._limit_headers((self.per_window or 40) - 1, 2)
        if version == "v2":
            return self._v2(path, query, headers)
        return self._v1(path, query, headers)

    # v2: cursor pages -------------------------------------------------------------------------
    def _v2(self, path: str, query: dict[str, str], headers: dict[str, str]) -> web.Response:
        if path in ("deals", "deals/archived"):
            rows = [d for d in self._deals(query.get("status")) if d["is_archived"] == (path == "deals/archived")]
        elif path in ("stages", "pipelines"):
            rows = list(getattr(self, path))
        elif path in ("activities", "persons", "organizations"):
            rows = list(getattr(self, path).values())
        else:
            return web.json_response({"success": False, "error": "Not found", "errorCode": 404}, status=404)
        if "updated_since" in query:
            since = _since(query["updated_since"])
            rows = [r for r in rows if _since(r["update_time"]) >= since]
        sort_by = query.get("sort_by", "id")
        rows.sort(key=lambda r: (r[sort_by] if sort_by == "id" else _since(r[sort_by]), r["id"]),
                  reverse=query.get("sort_direction") == "desc")
        limit = int(query.get("limit", 100))
        if not 1 <= limit <= 500:
            return web.json_response({"success": False, "error": "limit must be between 1 and 500",
                                      "errorCode": 400}, status=400)
        offset = json.loads(base64.b64decode(query["cursor"]))["offset"] if "cursor" in query else 0
        chunk = rows[offset: offset + limit]
        more = offset + limit < len(rows)
        cursor = base64.b64encode(json.dumps({"offset": offset + limit}).encode()).decode() if more else None
        return web.json_response({"success": True, "data": chunk, "additional_data": {"next_cursor": cursor}},
                                 headers=headers)

    def _deals(self, status: str | None) -> list[dict]:
        wanted = set((status or "open,won,lost").split(","))
        out = []
        for d in self.deals.values():
            if d["is_deleted"]:
                if "deleted" in wanted and self.now - self.deleted_at.get(d["id"], self.now) <= 30 * DAY:
                    out.append(d)
            elif d["status"] in wanted or "all_not_deleted" in wanted:
                out.append(d)
        return out

    # v1: start/limit pages --------------------------------------------------------------------
    def _v1(self, path: str, query: dict[str, str], headers: dict[str, str]) -> web.Response:
        parts = path.split("/")
        if path == "users":
            return web.json_response({"success": True, "data": self.users}, headers=headers)
        if path == "users/me":
            me = dict(self.users[0]) if self.users else {"id": 1, "name": "Admin"}
            me.update(company_name=self.company, company_domain="testcompany")
            return web.json_response({"success": True, "data": me}, headers=headers)
        if path == "leads":
            archived = query.get("archived_status", "not_archived")
            rows = [r for r in self.leads if archived == "all" or r["is_archived"] == (archived == "archived")]
        elif path in self.fields:
            rows = self.fields[path]
        elif len(parts) == 3 and parts[0] == "deals" and parts[2] in ("flow", "mailMessages"):
            deal = int(parts[1])
            if deal not in self.deals or self.deals[deal]["is_deleted"]:
                return web.json_response({"success": False, "error": "Deal not found", "errorCode": 404}, status=404)
            if parts[2] == "flow":
                rows = self.flows.get(deal, [])
                if "items" in query:
                    rows = [r for r in rows if r["object"] in query["items"].split(",")]
                rows = sorted(rows, key=lambda r: r["timestamp"], reverse=True)  # newest first, as the app shows it
            else:
                rows = self.mails.get(deal, [])
        else:
            return web.json_response({"success": False, "error": "Not found", "errorCode": 404}, status=404)
        start, limit = int(query.get("start", 0)), int(query.get("limit", 100))
        chunk = rows[start: start + limit]
        more = start + limit < len(rows)
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        # the samples nest the paging state in additional_data.pagination; the published
        # schemas of the per-deal lists put it in additional_data itself: serve both forms
        extra = pagination if parts[-1] in ("flow", "mailMessages") else {"pagination": pagination}
        return web.json_response({"success": True, "data": chunk or None, "additional_data": extra},
                                 headers=headers)
