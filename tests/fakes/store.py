"""What a connector's synced store holds, for comparing two syncs (killed vs uninterrupted,
DuckDB vs PostgreSQL, etc.). A store is its folder (the DuckDB file in it) or an engine.Store
(either kind: a PostgreSQL one is read through its DuckDB copy, as crm.load reads it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def _open(store: Any, schema: str) -> Any:
    from crm.connectors import engine

    return (store if isinstance(store, engine.Store) else engine.Store(Path(store))).read(schema)


def store_tables(store: Any, schema: str) -> dict[str, pd.DataFrame]:
    """Every synced table of `schema` without dlt's bookkeeping columns, sorted."""
    con = _open(store, schema)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = ? AND table_name NOT LIKE '_dlt%'", [schema]).fetchall()]
        out = {}
        for name in sorted(names):
            df = con.execute(f"SELECT * FROM {schema}.{name}").df()
            df = df[[c for c in df.columns if not c.startswith("_dlt")]]
            out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
        return out
    finally:
        con.close()


def assert_same_store(left: Any, right: Any, schema: str) -> None:
    """The two stores hold the same tables with the same rows."""
    a, b = store_tables(left, schema), store_tables(right, schema)
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
