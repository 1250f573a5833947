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


def dies_at(real: Any, n: int, where: str) -> Any:
    """`real` (a connector's row function), raising RuntimeError("killed in the middle of
    `where`") at its n-th call: a sync that dies mid-way, to be resumed with `real` put back."""
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            raise RuntimeError(f"killed in the middle of {where}")
        return real(*args, **kwargs)

    return wrapped


def sync_in_child(kind: str, source: Any, setup: str = "") -> Any:
    """`<kind>.sync(source)` in a child process (a subprocess.Popen), for a test to SIGKILL
    mid-way; `setup`: Python lines run before the sync (e.g. a faster rate limit)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    code = (f"import sys\nfrom crm.connectors import {kind}\nfrom crm.source_config import SourceConfig\n{setup}\n"
            f"{kind}.sync(SourceConfig.model_validate_json(sys.argv[1]), None)\n")
    return subprocess.Popen([sys.executable, "-c", code, source.model_dump_json()], env=env)


def sigkill_when(fake: Any, child: Any, hit: Any, timeout: float = 60) -> None:
    """SIGKILL `child` (sync_in_child) at the first call the fake CRM server gets for which
    `hit(*call)` is true, and wait for it to die: a sync killed at a known point."""
    import signal
    import time

    def on_call(*call: Any) -> None:
        if hit(*call):
            child.send_signal(signal.SIGKILL)
            time.sleep(0.2)

    fake.on_call = on_call
    try:
        assert child.wait(timeout) == -signal.SIGKILL
    finally:
        fake.on_call = None


def assert_pipelines_pooled_then_kept(source: Any, *, service: str, sales: str, said: tuple[str, ...],
                                      kept: tuple[tuple[list, str], ...], crm: str, typo: str,
                                      close: str | None = None) -> None:
    """A store synced with every pipeline (`source.pipelines` empty): deal 5000 is in `service`,
    the rest in `sales`; the load says they are pooled (each of `said` in its one warning) and
    suggests keeping `sales`; each `kept` ([pipelines], name) keeps that pipeline's deals, said
    nothing; a `typo` is an error naming the CRM's pipelines (and `close`, the nearest)."""
    import pytest

    from crm.errors import DataError
    from crm.load import load_crm

    result = load_crm(source)
    deals = result.data.deals.set_index("deal_id")
    assert deals.loc["5000", "pipeline"] == service and set(deals.drop(index="5000").pipeline) == {sales}
    pooled = [str(w) for w in result.warnings if w.code == "several_pipelines"]
    assert len(pooled) == 1 and all(part in pooled[0] for part in said), pooled
    assert f'[source] pipelines = ["{sales}"]' in pooled[0]
    for wanted, name in kept:
        one = load_crm(source.model_copy(update={"pipelines": wanted}))
        assert set(one.data.deals.pipeline) == {name}
        assert "several_pipelines" not in {w.code for w in one.warnings}
    # a pipeline nobody has (a typo) is an error naming the pipelines there are, not an empty company
    with pytest.raises(DataError, match=f"no {crm} pipeline is '{typo}'") as err:
        load_crm(source.model_copy(update={"pipelines": [typo]}))
    assert "crm-pulse sync --check" in str(err.value)
    if close:
        assert f"did you mean `{close}`" in str(err.value)
