"""A Bitrix24 deals list writes «Дата завершения» as a date (25.03.2026): the same company exported
with the close time and without it must give conversion_drop the same horizons, the same drop and
the same backtest, and no negative time to close (tests/scenarios/_bitrix24_export.py's company)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from _bitrix24_export import DEALS, OPEN_STAGES, Bitrix24Export, _csv, _local, build
from _export_factory import DIRECTOR, Effect, files, head
from test_bitrix24_ui_export import END, NOW, spec

from bot.backtest import backtest
from bot.config import load_config
from crm.load import load_crm
from detectors.conversion_drop import detect, prepare


def _export(folder: Path, b: Bitrix24Export, timed_close: bool):
    """The deals list as the UI writes it; `timed_close`: «Дата завершения» of a closed deal with
    its time (what the CRM knows), instead of the date alone."""
    built = build(b)
    tz = ZoneInfo(b.tz)
    if timed_close:
        for row, truth in zip(built["deals"], built["truth"]["tables"]["deals"]):
            if truth["closed_at"]:
                row["Дата завершения"] = _local(truth["closed_at"], tz)
    folder.mkdir(parents=True)
    _csv(folder / "DEAL_20261120.csv", built["deals"], b.encoding)
    config = folder.parent / f"{folder.name}.toml"
    config.write_text(head("ru", b.tz, "KZT", folder.name) + files(deals="DEAL_20261120.csv") + DEALS + OPEN_STAGES
                      + DIRECTOR, encoding="utf-8")
    cfg = load_config(config)
    data = load_crm(cfg.source, timezone=cfg.timezone, base_dir=folder.parent, now=NOW).data
    return data, cfg.detector_specs()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    b = Bitrix24Export(spec(4, effect=Effect("uniform", stage=1, at=END - timedelta(days=56), factor=0.45)))
    root = tmp_path_factory.mktemp("b24")
    return {kind: _export(root / kind, b, kind == "timed") for kind in ("timed", "dated")}


def test_no_deal_closes_before_it_was_created_on_a_date_only_export(exports):
    """4.8% of the deals "closed before they were created" (created at 14:00, closed that day)."""
    data, specs = exports["dated"]
    deals = data.deals
    closed = deals["status"].isin(["won", "lost"])
    assert closed.sum() > 2000
    assert (deals.loc[closed, "closed_at"] >= deals.loc[closed, "created_at"]).all()
    prepared = prepare(data, specs["conversion_drop"], as_of=int(NOW.timestamp() * 1e9))
    for pair in prepared.pairs:
        moved = pair.moved_after[pair.moved_after != np.iinfo(np.int64).max]
        assert moved.min() >= 0  # time from creation to winning


def test_the_learned_horizon_the_drop_and_a_backtest_are_those_of_the_timed_export(exports):
    """Reading the date as "that day", no earlier than the creation (not its end, not noon), keeps
    conversion_drop's learned horizon within the day the export drops, and the drop it finds and
    the backtest's count what they are when the export has the close times. (The end of the day
    made 2-10 closes future records, added a day to every horizon and lost a planted drop on a
    held-out seed.)"""
    seen = {}
    for kind, (data, specs) in exports.items():
        spec_ = specs["conversion_drop"]
        prepared = prepare(data, spec_, as_of=int(NOW.timestamp() * 1e9))
        found = detect(data, spec_, NOW)
        report = backtest(data, {"conversion_drop": spec_}, NOW - timedelta(days=28), NOW)
        seen[kind] = ([(p.horizon_days, p.horizon_source) for p in prepared.pairs],
                      sorted(i.fingerprint for i in found), len(report.alerts))
    (h_dated, found, alerts), (h_timed, found_timed, alerts_timed) = seen["dated"], seen["timed"]
    assert [s for _d, s in h_dated] == [s for _d, s in h_timed] == ["learned"]
    assert abs(h_dated[0][0] - h_timed[0][0]) <= 1
    assert found == found_timed and found  # the planted drop, found either way
    assert abs(alerts - alerts_timed) <= 1 and alerts
