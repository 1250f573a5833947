"""The sync engine: dlt pipelines loading into one embedded DuckDB file per store folder.

dlt gives the connectors paging (RESTClient + paginators), retries of 429/5xx that honour
Retry-After, incremental cursors kept in the pipeline state, and merge by primary key; the
state is committed together with the loaded rows, so a sync that dies half-way leaves the
store and the cursors as they were after the last complete sync, and the next run takes it
again from there (merge makes the rows that come twice one row).

The store folder holds `crm.duckdb` (the records, one schema per CRM), `.dlt/` (dlt's working
folder and state) and the token file of an OAuth connector. PostgreSQL as the store is not
wired yet: DuckDB needs no server, and crm.load reads it read-only.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No usage reports to dlthub from a CRM sync (set before dlt is imported anywhere).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.helpers.requests.retry import Client  # noqa: E402

from crm.errors import DataError  # noqa: E402

DB_FILE = "crm.duckdb"
MAX_ATTEMPTS = 6  # per request (backoff 1+2+4+8+16 s when no Retry-After): 429/5xx/connection errors, waiting Retry-After or backing off
MAX_RETRY_DELAY = 120.0  # seconds: a longer Retry-After is cut to this


@dataclass
class SyncReport:
    """What one sync did: rows written per table, requests sent, deletions applied, and the
    optional parts the CRM did not serve (part -> what is lost without it, and why)."""

    kind: str
    rows: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    deleted: int = 0
    seconds: float = 0.0
    missing: dict[str, str] = field(default_factory=dict)


def store_folder(store: str, base_dir: Path | None) -> Path:
    """`[source] store` (relative to the config file's folder)."""
    folder = Path(store)
    if not folder.is_absolute() and base_dir is not None:
        folder = Path(base_dir) / folder
    return folder


def database_path(folder: Path) -> Path:
    return folder / DB_FILE


class Throttle:
    """At most `per_second` requests in any window of one second (plus `margin` for latency and
    clock skew), from this process; thread-safe, monotonic clock.

    A CRM's limit is per integration and counted over a window (amoCRM: 7 a second, 429
    beyond), so a sliding window lets a burst of N go out at once and waits only for what is
    left of the window: the time spent processing pages hides inside it, and the sync runs at
    the limit instead of below it (benchmarks/sync.py). A fractional rate (6.5) becomes 6
    requests per 6/6.5 s."""

    def __init__(self, per_second: float, margin: float = 0.05) -> None:
        self.limit = max(1, int(per_second)) if per_second > 0 else 0
        self.window = (self.limit / per_second + margin) if per_second > 0 else 0.0
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def wait(self) -> None:
        if not self.limit:
            with self._lock:
                self.count += 1
            return
        with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self.count += 1
                    return
                time.sleep(self.window - (now - self._sent[0]))


def http_session(timeout: float = 60.0, backoff: float = 1.0) -> Any:
    """A requests session from dlt's retrying client: 429, 5xx and dropped connections are
    retried up to MAX_ATTEMPTS times, waiting what Retry-After says (else exponential backoff)."""
    return Client(
        request_timeout=timeout, raise_for_status=False, request_max_attempts=MAX_ATTEMPTS,
        request_backoff_factor=backoff, request_max_retry_delay=MAX_RETRY_DELAY,
        respect_retry_after_header=True,
    ).session


def column_hints(**types: str) -> dict[str, dict[str, Any]]:
    """dlt column hints (name -> dlt data type, nullable): dlt creates typed columns even when
    the first page of a resource has only nulls in them."""
    return {name: {"data_type": t, "nullable": True} for name, t in types.items()}


def pipeline(folder: Path, kind: str) -> Any:
    """The dlt pipeline of one CRM in this store folder (state and cursors live in `.dlt/`)."""
    folder.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"crm_pulse_{kind}",
        pipelines_dir=str(folder / ".dlt"),
        destination=dlt.destinations.duckdb(credentials=str(database_path(folder))),
        dataset_name=kind,
    )


def run(pipe: Any, source: Any) -> dict[str, int]:
    """Load the source; rows written per table. A failure raises the exception that caused it
    (the HTTP error, the connector's DataError), not dlt's wrappers around it."""
    from dlt.extract.exceptions import ResourceExtractionError
    from dlt.pipeline.exceptions import PipelineStepFailed

    try:
        pipe.run(source, loader_file_format="parquet")
    except PipelineStepFailed as exc:
        # A failed extract commits neither rows nor cursors; a package that was extracted but not
        # loaded stays pending and the next run loads it first (with the cursors it carries).
        cause: BaseException = exc
        while isinstance(cause, (PipelineStepFailed, ResourceExtractionError)):
            nxt = cause.__cause__ or cause.__context__
            if nxt is None:
                break
            cause = nxt
        raise cause from None
    counts: dict[str, int] = {}
    trace = pipe.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        for table, n in trace.last_normalize_info.row_counts.items():
            if not table.startswith("_dlt"):
                counts[table] = counts.get(table, 0) + int(n)
    return counts


def columns(**types: str) -> dict[str, dict[str, Any]]:
    """Column hints for a resource: dlt creates typed columns even when the first page has only
    nulls (a later page's values would otherwise land in a variant column)."""
    return {name: {"data_type": t, "nullable": True} for name, t in types.items()}


def tables(con: Any, schema: str) -> set[str]:
    """The tables a connector's schema holds in the store (what was synced so far)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]).fetchall()}


def included(pipeline_id: Any, name: Any, wanted: list[int | str]) -> bool:
    """`[source] pipelines` names a pipeline by id or by name; empty means all."""
    keys = [str(p) for p in wanted]
    return not keys or str(pipeline_id) in keys or str(name) in keys


def connect_read_only(folder: Path) -> Any:
    """The store opened read-only for crm.load; a clear error when nothing was synced yet."""
    import duckdb

    path = database_path(folder)
    if not path.is_file():
        raise DataError(
            f"no synced CRM data in {folder}",
            fix="run `crm-pulse sync --config <your config>` first (it creates the store), "
            "or check [source] store",
        )
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DataError(f"cannot open the synced store {path} ({str(exc).splitlines()[0]})",
                        fix="wait for a running `crm-pulse sync` to finish, then try again") from None
