"""A fake amoCRM / Kommo API v4 on 127.0.0.1 serving the documented shapes.

Serves /api/v4/{account,users,leads/pipelines,leads,leads/unsorted,events,leads/notes,tasks,
companies,contacts} with `page`/`limit` paging (limit <= 250, events <= 100), `_links.next.href`,
HTTP 204 for an empty page, `filter[updated_at][from]` / `filter[created_at][from]` /
`filter[type]` / `filter[entity]` (comma-separated lists), deletions as the documented
`*_deleted` events, "Неразобранное" (accept moves the lead on, decline deletes it), and
`/oauth2/access_token` (grant_type=refresh_token: a new access AND refresh token each time, the
old refresh token dies). Faults: `expire_access()` makes the current access token answer 401,
`throttle_next(n, retry_after)` answers the next n API calls with 429 + Retry-After.
Every API call is recorded in `calls` as (path, query) so tests can say what was asked.

Variants (what another, equally documented amoCRM may do; the connector must not care):
`unserved` {path: status} answers those paths with an error (404: not served); `link_host`
writes another host into `_links` (amoCRM writes its own); `next_links = False` leaves
`_links.next` out (the client pages by number); `empty_page` "204" | "empty" (200 with an
empty `_embedded` list) | "bare" (200 `{}`) | "blank" (200, no body); `max_limit` caps a page
below the asked limit; `type_filter` "comma" (a comma-separated `filter[type]`) | "array" (only
`filter[type][]` / `filter[type][0]`: a comma is part of the name); `deletion_style` "events"
(`*_deleted`) | "entity_deleted" (one `entity_deleted` type with the entity type) | "bin" (no
event: the lead is only listed under `with=only_deleted`); `deletion_clock` a fixed
`created_at` for deletion events (a server whose event clock is not the records' clock);
`token_body` "json" (amoCRM's docs) | "form" (OAuth 2.0's form only) for /oauth2/access_token.

The connector is synchronous (requests), so the server runs on its own event loop in a thread:
`with ThreadedServer(FakeAmoCRM(...)) as fake: ...`.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from tests.fakes.local_server import LocalServer

WON, LOST = 142, 143


class FakeAmoCRM(LocalServer):
    def __init__(self, *, token: str | None = "long-lived-token-0123456789",
                 client_id: str = "client-id-abc", client_secret: str = "client-secret-xyz-987",
                 refresh_token: str = "refresh-token-initial-555") -> None:
        self.long_lived = token
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.access_tokens: set[str] = set()
        self.issued = 0
        self.account = {"id": 5135160, "name": "Test account", "currency": "KZT"}
        self.groups: list[dict] = []
        self.users: list[dict] = []
        self.pipelines: list[dict] = []
        self.leads: dict[int, dict] = {}
        self.events: list[dict] = []
        self.notes: list[dict] = []
        self.tasks: list[dict] = []
        self.companies: dict[int, dict] = {}
        self.contacts: dict[int, dict] = {}
        self.unsorted: dict[str, dict] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.status_429: list[int] = []  # Retry-After of each queued 429
        self.answered_429 = 0
        self.unauthorized = 0
        self._event_seq = 0
        self.on_call: Any = None  # called with (path, query) before an API call is answered
        self.per_second: float | None = None  # amoCRM's limit (about 7/s): 429 beyond it
        self.over_limit = 0
        self._recent: list[float] = []
        # benchmarks/sync.py: remember each filtered, sorted listing until the account changes
        # through a method below (tests that edit the dicts directly leave it off)
        self.memo_pages = False
        self._memo: dict[tuple, list[dict]] = {}
        self.recycle: dict[int, dict] = {}  # deleted leads (with=only_deleted)
        self.unserved: dict[str, int] = {}
        self.link_host: str | None = None
        self.next_links = True
        self.empty_page = "204"
        self.max_limit: int | None = None
        self.type_filter = "comma"
        self.deletion_style = "events"
        self.deletion_clock: int | None = None
        self.token_body = "json"

    # --- building the account ------------------------------------------------------------
    def add_pipeline(self, pid: int, name: str, statuses: list[tuple[int, str]], sort: int = 1,
                     incoming: tuple[int, str] | None = None) -> None:
        """`incoming`: the "Неразобранное" status (type 1) in front, when the pipeline takes
        incoming leads; the other statuses are type 0, 142/143 closing them."""
        head = [incoming] if incoming else []
        rows = [{"id": sid, "name": sname, "sort": 10 * (i + 1), "type": 1 if incoming and i == 0 else 0,
                 "pipeline_id": pid} for i, (sid, sname) in enumerate(head + statuses)]
        rows += [{"id": WON, "name": "Успешно реализовано", "sort": 10000, "type": 0, "pipeline_id": pid},
                 {"id": LOST, "name": "Закрыто и не реализовано", "sort": 11000, "type": 0, "pipeline_id": pid}]
        self.pipelines.append({"id": pid, "name": name, "sort": sort, "is_main": not self.pipelines,
                               "is_archive": False, "_embedded": {"statuses": rows}})

    def add_user(self, uid: int, name: str, email: str | None = None, group_id: int | None = None,
                 active: bool = True) -> None:
        self.users.append({"id": uid, "name": name, "email": email, "lang": "ru",
                           "rights": {"is_admin": False, "is_free": False, "is_active": active,
                                      "group_id": group_id, "role_id": None}})

    def put_lead(self, lead: dict) -> None:
        self._memo.clear()
        lead.setdefault("is_deleted", False)
        lead.setdefault("_embedded", {"tags": [], "companies": [], "contacts": [], "loss_reason": []})
        self.leads[lead["id"]] = lead

    def status_change(self, lead_id: int, at: int, before: tuple[int, int], after: tuple[int, int]) -> None:
        self._memo.clear()
        self._event_seq += 1
        self.events.append({
            "id": f"ev{self._event_seq:08d}", "type": "lead_status_changed", "entity_id": lead_id,
            "entity_type": "lead", "created_by": 0, "created_at": at, "account_id": self.account["id"],
            "value_after": [{"lead_status": {"id": after[1], "pipeline_id": after[0]}}],
            "value_before": [{"lead_status": {"id": before[1], "pipeline_id": before[0]}}],
        })

    def event(self, kind: str, entity_type: str, entity_id: int, at: int, *, before: list | None = None,
              after: list | None = None, by: int = 0) -> None:
        self._memo.clear()
        self._event_seq += 1
        self.events.append({"id": f"ev{self._event_seq:08d}", "type": kind, "entity_id": entity_id,
                            "entity_type": entity_type, "created_by": by, "created_at": at,
                            "account_id": self.account["id"], "value_after": after or [],
                            "value_before": before or []})

    def _deleted(self, entity: str, entity_id: int, at: int) -> None:
        """The trace a deletion leaves, in this server's `deletion_style`."""
        at = self.deletion_clock if self.deletion_clock is not None else at
        if self.deletion_style == "events":
            self.event(f"{entity}_deleted", entity, entity_id, at)
        elif self.deletion_style == "entity_deleted":
            self.event("entity_deleted", entity, entity_id, at)

    def delete_lead(self, lead_id: int, at: int) -> None:
        lead = self.leads.pop(lead_id)
        self.recycle[lead_id] = {"id": lead_id, "updated_at": at, "is_deleted": True,
                                 "account_id": self.account["id"]}
        self._deleted("lead", lead_id, at)

    def delete_contact(self, contact_id: int, at: int) -> None:
        del self.contacts[contact_id]
        self._deleted("contact", contact_id, at)

    def delete_company(self, company_id: int, at: int) -> None:
        del self.companies[company_id]
        self._deleted("company", company_id, at)

    def delete_task(self, task_id: int, at: int) -> None:
        self.tasks = [t for t in self.tasks if t["id"] != task_id]
        self._deleted("task", task_id, at)

    def delete_note(self, note_id: int, at: int) -> None:
        """Only a text note leaves a trace (common_note_deleted on the lead it was on); amoCRM
        has no deletion event for call or mail notes: those simply vanish."""
        note = next(n for n in self.notes if n["id"] == note_id)
        self.notes.remove(note)
        if note["note_type"] == "common":
            self.event("common_note_deleted", "lead", note["entity_id"], at, before=[{"note": {"id": note_id}}])

    def change_responsible(self, lead_id: int, at: int, before: int, after: int) -> None:
        self.leads[lead_id].update(responsible_user_id=after, updated_at=max(at, self.leads[lead_id]["updated_at"]))
        self.event("entity_responsible_changed", "lead", lead_id, at,
                   before=[{"responsible_user": {"id": before}}], after=[{"responsible_user": {"id": after}}])

    def outgoing(self, kind: str, lead_id: int, at: int, by: int = 0) -> None:
        """outgoing_chat_message / outgoing_call / outgoing_mail / outgoing_sms on a lead."""
        self.event(kind, "lead", lead_id, at, by=by)

    # --- "Неразобранное" (incoming leads) -------------------------------------------------
    def add_unsorted(self, uid: str, lead: dict, *, category: str = "forms", source_name: str = "Форма на сайте") -> None:
        """An incoming lead: its lead sits in the pipeline's incoming (type 1) status."""
        pipeline = next(p for p in self.pipelines if p["id"] == lead["pipeline_id"])
        incoming = next(st for st in pipeline["_embedded"]["statuses"] if st["type"] == 1)
        lead["status_id"] = incoming["id"]
        self.put_lead(lead)
        self.unsorted[uid] = {
            "uid": uid, "source_uid": f"src-{uid}", "source_name": source_name, "category": category,
            "pipeline_id": lead["pipeline_id"], "created_at": lead["created_at"], "account_id": self.account["id"],
            "metadata": {"form_id": "1", "form_name": source_name, "form_page": "https://example.kz",
                         "form_sent_at": lead["created_at"]},
            "_embedded": {"leads": [{"id": lead["id"]}], "contacts": [], "companies": []}}

    def accept_unsorted(self, uid: str, at: int, user_id: int, status_id: int) -> None:
        """POST .../unsorted/{uid}/accept: the lead moves on to `status_id`, `user_id` owns it."""
        item = self.unsorted.pop(uid)
        lead = self.leads[item["_embedded"]["leads"][0]["id"]]
        pid = lead["pipeline_id"]
        self.status_change(lead["id"], at, (pid, lead["status_id"]), (pid, status_id))
        if lead["responsible_user_id"] != user_id:
            self.change_responsible(lead["id"], at, lead["responsible_user_id"], user_id)
        lead.update(status_id=status_id, updated_at=at)

    def decline_unsorted(self, uid: str, at: int) -> None:
        """POST .../unsorted/{uid}/decline: the lead is deleted."""
        item = self.unsorted.pop(uid)
        self.delete_lead(item["_embedded"]["leads"][0]["id"], at)

    # --- faults --------------------------------------------------------------------------
    def expire_access(self) -> None:
        self.access_tokens.clear()

    def throttle_next(self, n: int = 1, retry_after: int = 1) -> None:
        self.status_429 += [retry_after] * n

    # --- HTTP ----------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth2/access_token", self._token)
        app.router.add_get("/api/v4/{path:.*}", self._api)

    def api_calls(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.calls if p == path]

    async def _token(self, request: web.Request) -> web.Response:
        if self.token_body == "form":  # a server that reads the token request as OAuth 2.0's form only
            if request.content_type != "application/x-www-form-urlencoded":
                return web.json_response({"title": "Bad Request", "status": 400, "hint": "form expected"}, status=400)
            body = dict(await request.post())
        else:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"title": "Bad Request", "status": 400, "hint": "JSON expected"}, status=400)
        if (body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret
                or body.get("grant_type") != "refresh_token" or body.get("refresh_token") not in self.refresh_tokens):
            return web.json_response({"title": "Unauthorized", "status": 400, "hint": "Refresh token has been revoked"},
                                     status=400)
        self.refresh_tokens.discard(body["refresh_token"])
        self.issued += 1
        access, refresh = f"access-{self.issued:04d}-tok", f"refresh-{self.issued:04d}-tok"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return web.json_response({"token_type": "Bearer", "expires_in": 86400,
                                  "access_token": access, "refresh_token": refresh})

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        return token is not None and (token == self.long_lived or token in self.access_tokens)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        query = dict(request.query)
        if not self._authorised(request):
            self.unauthorized += 1
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        if self.per_second is not None:
            now = time.monotonic()
            self._recent = [t for t in self._recent if now - t < 1.0]
            if len(self._recent) >= self.per_second:
                self.over_limit += 1
                return web.json_response({"title": "Too Many Requests", "status": 429}, status=429,
                                         headers={"Retry-After": "1"})
            self._recent.append(now)
        if self.status_429:
            self.answered_429 += 1
            return web.json_response({"title": "Too Many Requests", "status": 429}, status=429,
                                     headers={"Retry-After": str(self.status_429.pop(0))})
        self.calls.append((path, query))
        if self.on_call is not None:
            self.on_call(path, query)
        if path in self.unserved:
            return web.json_response({"title": "Not found", "status": self.unserved[path]},
                                     status=self.unserved[path])
        if path == "account":
            body = dict(self.account)
            if "users_groups" in query.get("with", ""):
                body["_embedded"] = {"users_groups": self.groups}
            return web.json_response(body)
        if path == "leads/pipelines":
            return web.json_response({"_total_items": len(self.pipelines), "_embedded": {"pipelines": self.pipelines}})
        # path -> (key in _embedded, the rows (computed only for the path asked), cursor, max limit)
        tables: dict[str, tuple[str, Any, str, int]] = {
            "users": ("users", lambda: self.users, "", 250),
            "leads": ("leads", lambda: sorted((self.recycle if "only_deleted" in query.get("with", "") else
                                               self.leads).values(), key=lambda r: r["id"]), "updated_at", 250),
            "events": ("events", lambda: self._events(request.query), "created_at", 100),
            "leads/notes": ("notes", lambda: self.notes, "updated_at", 250),
            "tasks": ("tasks", lambda: self.tasks, "updated_at", 250),
            "companies": ("companies", lambda: sorted(self.companies.values(), key=lambda r: r["id"]), "updated_at", 250),
            "contacts": ("contacts", lambda: sorted(self.contacts.values(), key=lambda r: r["id"]), "updated_at", 250),
            "leads/unsorted": ("unsorted", lambda: sorted(self.unsorted.values(), key=lambda r: (r["created_at"], r["uid"])),
                               "", 250),
        }
        if path not in tables:
            return web.json_response({"title": "Not found", "status": 404}, status=404)
        key, listing, cursor, max_limit = tables[path]

        def filtered() -> list[dict]:
            rows = listing()
            if cursor and f"filter[{cursor}][from]" in query:
                since = int(query[f"filter[{cursor}][from]"])
                rows = [r for r in rows if int(r.get(cursor) or 0) >= since]
            return rows

        if self.memo_pages:
            memo_key = (path, tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "limit"))))
            if memo_key not in self._memo:
                self._memo[memo_key] = filtered()
            rows = self._memo[memo_key]
        else:
            rows = filtered()
        limit = min(int(query.get("limit", 50)), max_limit, self.max_limit or max_limit)
        page = int(query.get("page", 1))
        chunk = rows[(page - 1) * limit: page * limit]
        if not chunk:
            if self.empty_page == "empty":
                return web.json_response({"_page": page, "_links": {}, "_embedded": {key: []}})
            if self.empty_page == "bare":
                return web.json_response({})
            if self.empty_page == "blank":
                return web.Response(status=200)
            return web.Response(status=204)
        base = f"{self.link_host or f'http://127.0.0.1:{self.port}'}/api/v4/{path}"

        def href(p: int) -> str:
            params = {**query, "page": str(p), "limit": str(limit)}
            from urllib.parse import urlencode
            return base + "?" + urlencode(params)

        links: dict[str, Any] = {"self": {"href": href(page)}}
        if page * limit < len(rows) and self.next_links:
            links["next"] = {"href": href(page + 1)}
        return web.json_response({"_page": page, "_links": links, "_embedded": {key: chunk}})

    def _events(self, query: Any) -> list[dict]:
        kinds, entities = self._listed(query, "filter[type]"), self._listed(query, "filter[entity]")
        rows = [e for e in self.events if (not kinds or e["type"] in kinds)
                and (not entities or e["entity_type"] in entities)]
        return sorted(rows, key=lambda e: (-e["created_at"], e["id"]))  # newest first, as amoCRM


    def _listed(self, query: Any, name: str) -> list[str]:
        """A filter's values: `name[]` / `name[0]` arrays, and a plain `name` string (split on
        commas unless this server takes arrays only)."""
        values = [v for k, v in query.items() if k == name + "[]" or (k.startswith(name + "[") and k[len(name) + 1:-1].isdigit())]
        for v in query.getall(name, []):
            values += v.split(",") if self.type_filter == "comma" else [v]
        return values


class ThreadedServer:
    """Run a LocalServer on its own event loop in a daemon thread (for synchronous clients)."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Any:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
