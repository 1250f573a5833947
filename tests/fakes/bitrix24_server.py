"""A fake Bitrix24 portal on 127.0.0.1 answering REST calls through an inbound webhook.

`POST|GET /rest/<user>/<code>/<method>.json` with the parameters as JSON, a form or a query
string (PHP style: `filter[>=DATE_MODIFY]=...`, `select[0]=ID`). Serves user.get,
department.get, crm.category.list, crm.status.list, crm.deal.list, crm.lead.list,
crm.contact.list, crm.company.list, crm.activity.list, crm.stagehistory.list and batch (up
to 50 commands, `result` / `result_error` / `result_total` / `result_next`), in the shapes of
../shared/crm_api/bitrix24: 50 records a page by `start`, `next` while more are left, `total`;
filters with the prefixes =, !, >, >=, <, <= (times compared as instants, numbers as numbers),
lists as "any of"; `order`, `select` (UF_* only when asked).

Faults: a wrong webhook code answers 401 INVALID_CREDENTIALS (`revoke()` kills the current
one, as deleting the webhook does); `per_second` turns on the leaky bucket (capacity
`bucket`, draining `per_second` a second): beyond it HTTP 503 {"error": "QUERY_LIMIT_EXCEEDED"};
`throttle_next(n, status)` answers the next n requests with that limit error (503, or 429 with
Retry-After). `calls` records every method run (also inside batch) as (method, params);
`requests` counts HTTP requests answered with data, `served` the records each list method
returned.

Variants (what another, equally documented portal may do; the connector must not care):
`missing_methods` answer ERROR_METHOD_NOT_FOUND (also inside batch); `batch_served = False`
answers `batch` itself so; `page_size` other than 50; `totals = False` leaves `total` (and
`result_total`) out, so only `next` says there is more; `user_filter = False` ignores
user.get's ACTIVE filter (everyone in every answer); `params_from = "query"` reads parameters
from the URL's query string only (a body, JSON or form, is not read: a batch gets no commands).
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.local_server import LocalServer

PAGE = 50
STANDARD_STAGES = [("NEW", "Новая", None), ("PREPARATION", "Подготовка документов", None),
                   ("WON", "Сделка успешна", "S"), ("LOSE", "Сделка провалена", "F")]


def php_parse(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0]=x` pairs -> {"a": {"b": {"0": "x"}}} (lists stay maps with "0", "1" keys)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        rest = re.findall(r"\[([^\]]*)\]", key[len(head):])
        node = out
        path = [head, *rest]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _as_list(value: Any) -> list:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _instant(value: Any) -> float | None:
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        parsed = datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, (list, dict)):
        hit = any(_compare(left, "=", r) for r in _as_list(right))
        return not hit if op == "!" else hit
    a, b = _instant(left), _instant(right)
    if a is None or b is None:
        try:
            a, b = float(left), float(right)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            a, b = str(left if left is not None else ""), str(right)  # type: ignore[assignment]
            if isinstance(left, bool) or str(right) in ("true", "false", "Y", "N", "True", "False"):
                a = str(left in (True, "Y", "true", "True")).lower()  # type: ignore[assignment]
                b = str(right in (True, "Y", "true", "True", "1")).lower()  # type: ignore[assignment]
    if op in ("=", ""):
        return a == b
    if op == "!":
        return a != b
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]  # type: ignore[operator]


def matches(record: dict, flt: dict[str, Any]) -> bool:
    for key, want in (flt or {}).items():
        m = re.match(r"^(>=|<=|>|<|=|!|@)?(.+)$", key)
        op, field = (m.group(1) or "="), m.group(2)
        op = "=" if op == "@" else op
        if not _compare(record.get(field), op, want):
            return False
    return True


class FakeBitrix24(LocalServer):
    def __init__(self, *, user_id: int = 1, code: str = "k3y7f00b4rw3bh00k") -> None:
        self.user_id, self.code = user_id, code
        self.users: list[dict] = []
        self.departments: list[dict] = []
        self.categories: list[dict] = [{"id": 0, "name": "Общая", "sort": 100, "entityTypeId": 2, "isDefault": "Y"}]
        self.statuses: list[dict] = []
        self.deals: dict[int, dict] = {}
        self.leads: dict[int, dict] = {}
        self.contacts: dict[int, dict] = {}
        self.companies: dict[int, dict] = {}
        self.activities: dict[int, dict] = {}
        self.history: list[dict] = []
        self.calls: list[tuple[str, dict]] = []
        self.served: Counter[str] = Counter()  # records answered per method
        self.requests = 0
        self.unauthorized = 0
        self.on_call: Any = None  # called with (method, params) before a method is answered
        self.per_second: float | None = None
        self.bucket = 50
        self.over_limit = 0
        self._level, self._drained_at = 0.0, time.monotonic()
        self.queued: list[tuple[int, int | None]] = []  # (status, Retry-After) of queued limit errors
        self.answered_limit = 0
        self._history_seq = 0
        self.department_scope = True
        self.without_scope: set[str] = set()  # methods the webhook's scopes do not allow
        self.missing_methods: set[str] = set()  # methods an older portal does not have
        self.batch_served = True
        self.page_size = PAGE
        self.totals = True
        self.user_filter = True
        self.params_from = "any"

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/rest/{self.user_id}/{self.code}/"

    # --- building the portal ---------------------------------------------------------------
    def add_user(self, uid: int, name: str, last_name: str = "", email: str | None = None,
                 department: int | None = None, active: bool = True) -> None:
        self.users.append({"ID": str(uid), "ACTIVE": active, "NAME": name, "LAST_NAME": last_name,
                           "EMAIL": email or "", "UF_DEPARTMENT": [department] if department else [],
                           "USER_TYPE": "employee"})

    def add_category(self, cid: int, name: str, stages: list[tuple[str, str, str | None]], sort: int = 200) -> None:
        """A pipeline and its stages (STATUS_ID without the C<id>: prefix, name, semantics)."""
        if cid == 0:
            self.categories[0]["name"] = name
        else:
            self.categories.append({"id": cid, "name": name, "sort": sort, "entityTypeId": 2, "isDefault": "N"})
        entity = "DEAL_STAGE" if cid == 0 else f"DEAL_STAGE_{cid}"
        self.statuses = [s for s in self.statuses if s["ENTITY_ID"] != entity]
        for i, (sid, sname, semantics) in enumerate(stages):
            self.add_status(entity, sid if cid == 0 else f"C{cid}:{sid}", sname, 10 * (i + 1), semantics,
                            category=cid)

    def add_status(self, entity: str, status_id: str, name: str, sort: int, semantics: str | None = None,
                   category: int | None = None) -> None:
        extra = {"SEMANTICS": {"S": "success", "F": "failure"}.get(semantics or "", "process"), "COLOR": "#39A8EF"}
        self.statuses.append({"ID": str(len(self.statuses) + 100), "ENTITY_ID": entity, "STATUS_ID": status_id,
                              "NAME": name, "NAME_INIT": name, "SORT": str(sort), "SYSTEM": "N",
                              "CATEGORY_ID": None if category is None else str(category),
                              "SEMANTICS": semantics, "EXTRA": extra})

    def semantic(self, stage_id: str) -> str:
        for s in self.statuses:
            if s["STATUS_ID"] == stage_id and s["ENTITY_ID"].startswith("DEAL_STAGE"):
                return s["SEMANTICS"] or "P"
        raise KeyError(stage_id)

    def put_deal(self, deal: dict) -> None:
        deal = {k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in deal.items()}
        deal.setdefault("CATEGORY_ID", "0")
        deal["STAGE_SEMANTIC_ID"] = self.semantic(deal["STAGE_ID"])
        deal["CLOSED"] = "Y" if deal["STAGE_SEMANTIC_ID"] in ("S", "F") else "N"
        deal.setdefault("DATE_MODIFY", deal.get("DATE_CREATE"))
        self.deals[int(deal["ID"])] = deal

    def enter_stage(self, deal_id: int, stage_id: str, at: str, type_id: int | None = None) -> None:
        self._history_seq += 1
        deal = self.deals[deal_id]
        semantic = self.semantic(stage_id)
        self.history.append({"ID": self._history_seq, "TYPE_ID": type_id or (3 if semantic in ("S", "F") else 2),
                             "OWNER_ID": deal_id, "CREATED_TIME": at, "CATEGORY_ID": int(deal["CATEGORY_ID"]),
                             "STAGE_SEMANTIC_ID": semantic, "STAGE_ID": stage_id})

    def move_deal(self, deal_id: int, stage_id: str, at: str, **changes: Any) -> None:
        """What a manager moving the deal does: a new stage, a history entry, a newer DATE_MODIFY."""
        deal = self.deals[deal_id]
        deal.update({k: str(v) for k, v in changes.items()}, STAGE_ID=stage_id, DATE_MODIFY=at, MOVED_TIME=at)
        deal["STAGE_SEMANTIC_ID"] = self.semantic(stage_id)
        deal["CLOSED"] = "Y" if deal["STAGE_SEMANTIC_ID"] in ("S", "F") else "N"
        self.enter_stage(deal_id, stage_id, at)

    # --- faults ----------------------------------------------------------------------------
    def revoke(self) -> None:
        self.code = "deleted-" + self.code

    def throttle_next(self, n: int = 1, status: int = 503, retry_after: int | None = None) -> None:
        self.queued += [(status, retry_after)] * n

    # --- HTTP --------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/rest/{user}/{code}/{method}", self._rest)

    def method_calls(self, method: str) -> list[dict]:
        return [p for m, p in self.calls if m == method]

    def _limited(self) -> web.Response | None:
        if self.queued:
            status, retry_after = self.queued.pop(0)
            self.answered_limit += 1
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return web.json_response({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
                                     status=status, headers=headers)
        if self.per_second is None:
            return None
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._drained_at) * self.per_second)
        self._drained_at = now
        if self._level + 1 > self.bucket:
            self.over_limit += 1
            return web.json_response({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
                                     status=503)
        self._level += 1
        return None

    async def _rest(self, request: web.Request) -> web.Response:
        if request.match_info["user"] != str(self.user_id) or request.match_info["code"] != self.code:
            self.unauthorized += 1
            return web.json_response({"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"},
                                     status=401)
        limited = self._limited()
        if limited is not None:
            return limited
        method = request.match_info["method"].removesuffix(".json")
        params: dict[str, Any] = php_parse(list(request.query.items()))
        if request.method == "POST" and request.can_read_body and self.params_from != "query":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(php_parse(list((await request.post()).items())))  # type: ignore[arg-type]
        self.requests += 1
        self._sorted: dict[int, list[dict]] = {}
        if method == "batch" and not self.batch_served:
            return web.json_response({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
                                     status=404)
        if method == "batch":
            return web.json_response({"result": self._batch(params), "time": {"start": time.time()}})
        body, status = self._run(method, params)
        return web.json_response(body, status=status)

    def _batch(self, params: dict) -> dict:
        cmd = params.get("cmd") or {}
        if len(cmd) > 50:
            raise web.HTTPBadRequest(text=json.dumps({"error": "ERROR_BATCH_LENGTH_EXCEEDED"}))
        out: dict[str, Any] = {"result": {}, "result_error": {}, "result_total": {}, "result_next": {}, "result_time": {}}
        for key, line in cmd.items():
            method, _, query = str(line).partition("?")
            body, status = self._run(method, php_parse(parse_qsl(query, keep_blank_values=True)))
            if status != 200:
                out["result_error"][key] = body
                continue
            out["result"][key] = body["result"]
            if "total" in body:
                out["result_total"][key] = body["total"]
            if "next" in body:
                out["result_next"][key] = body["next"]
        return {k: (v if v else []) for k, v in out.items()}  # PHP: an empty map is []

    def _run(self, method: str, params: dict) -> tuple[dict, int]:
        self.calls.append((method, params))
        if self.on_call is not None:
            self.on_call(method, params)
        lists = {
            "crm.deal.list": lambda: self._by_id(self.deals),
            "crm.lead.list": lambda: self._by_id(self.leads),
            "crm.contact.list": lambda: self._by_id(self.contacts),
            "crm.company.list": lambda: self._by_id(self.companies),
            "crm.activity.list": lambda: self._by_id(self.activities),
            "crm.status.list": lambda: sorted(self.statuses, key=lambda r: (r["ENTITY_ID"], int(r["SORT"]))),
            "user.get": lambda: self.users,
            "department.get": lambda: self.departments,
        }
        if method in self.without_scope or (method == "department.get" and not self.department_scope):
            return {"error": "insufficient_scope", "error_description": "The request requires higher privileges"}, 401
        if method in self.missing_methods:
            return {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}, 404
        if method in lists:
            flt = params.get("filter") or params.get("FILTER") or {}
            if method == "user.get" and "ACTIVE" not in flt:
                flt = {**flt, "ACTIVE": True}  # Bitrix24: active users unless asked
            if method == "user.get" and not self.user_filter:
                flt = {k: v for k, v in flt.items() if k != "ACTIVE"}
            rows = lists[method]()
            if flt:
                rows = [r for r in rows if matches(r, flt)]
            order = params.get("order") or {}
            if order.get("ID") == "DESC":
                rows = rows[::-1]
            body, status = self._page(rows, params)
            select = _as_list(params.get("select") or [])
            if select and "*" not in select:
                body["result"] = [{k: v for k, v in r.items() if k in select} for r in body["result"]]
            elif "UF_*" not in select:
                body["result"] = [{k: v for k, v in r.items() if not k.startswith("UF_CRM")} for r in body["result"]]
            self.served[method] += len(body["result"])
            return body, status
        if method == "crm.dealcategory.list":  # the deprecated form: no pipeline 0, upper-case keys
            rows = [{"ID": str(c["id"]), "NAME": c["name"], "SORT": str(c["sort"])} for c in self.categories if c["id"]]
            return self._page(rows, params)
        if method == "crm.dealcategory.default.get":
            return {"result": {"ID": 0, "NAME": self.categories[0]["name"]}}, 200
        if method == "crm.category.list":
            if str(params.get("entityTypeId")) != "2":
                return {"error": "NOT_FOUND", "error_description": "entityTypeId"}, 400
            return {"result": {"categories": self.categories}, "total": len(self.categories)}, 200
        if method == "crm.stagehistory.list":
            if str(params.get("entityTypeId")) != "2":
                return {"error": "ENTITY_TYPE_NOT_SUPPORTED", "error_description": "entityTypeId"}, 400
            flt = params.get("filter") or {}
            rows = [r for r in self.history if matches(r, flt)] if flt else self.history  # kept in ID order
            body = self._page(rows, params)[0]
            self.served[method] += len(body["result"])
            body["result"] = {"items": body["result"]}
            return body, 200
        return {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}, 404

    def _by_id(self, table: dict[int, dict]) -> list[dict]:
        """The records in ID order, sorted once per HTTP request (a batch asks for 50 pages)."""
        key = id(table)
        if key not in self._sorted:
            self._sorted[key] = sorted(table.values(), key=lambda r: int(r["ID"]))
        return self._sorted[key]

    def _page(self, rows: list[dict], params: dict) -> tuple[dict, int]:
        start, size = int(params.get("start") or 0), self.page_size
        chunk = rows[start:start + size]
        body: dict[str, Any] = {"result": chunk}
        if self.totals:
            body["total"] = len(rows)
        if start + size < len(rows):
            body["next"] = start + size
        return body, 200
