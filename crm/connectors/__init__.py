"""CRM API connectors: each syncs one CRM's records into the local store that crm.load reads.

Network code lives only here (and in bot/channels). A connector module exposes
`sync(source, base_dir, ...) -> SyncReport`, `check(source, base_dir) -> CheckReport` and
`raw_tables(con, source) -> {canonical table: DataFrame}` (how its stored records become the
canonical tables). The engine (crm.connectors.engine) is dlt loading into an embedded DuckDB
file, or PostgreSQL when `[source] store_url_env` names its URL (engine.Store).
"""
from __future__ import annotations

import importlib
from types import ModuleType

# kind in [source] -> the module that syncs it
CONNECTORS = {"amocrm": "crm.connectors.amocrm", "bitrix24": "crm.connectors.bitrix24",
              "hubspot": "crm.connectors.hubspot", "pipedrive": "crm.connectors.pipedrive"}


def connector(kind: str) -> ModuleType:
    """The connector module for a [source] kind (imported only when asked for: dlt is heavy)."""
    return importlib.import_module(CONNECTORS[kind])
