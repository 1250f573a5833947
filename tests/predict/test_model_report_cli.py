"""`crm-pulse model report` on exported files: the JSON an admin's script reads, and the plain
answer when there is too little history."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from bot.cli import main
from crm.demo import export_csv
from predict.planted import planted_company

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def test_json_report_on_a_planted_company(tmp_path, capsys):
    export_csv(planted_company(1500, NOW, seed=11), tmp_path)
    code = main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert {"auc", "brier", "ece", "baseline_brier", "forecast_error"} <= set(report)
    assert report["used"] is True and report["brier"] < report["baseline_brier"]
    assert 0.5 < report["auc"] <= 1 and 0 <= report["ece"] <= 0.1
    months = report["forecast_error"]
    assert months and {"month", "actual", "model", "weighted_pipeline", "model_error", "weighted_error"} <= set(months[0])
    # actual won amount per month is what the data says: deals open at the month's start, won within it
    assert all(m["actual"] >= 0 for m in months)
    fc = report["forecast"]
    assert fc["unit"] == "amount" and len(fc["months"]) == 2
    for m in fc["months"]:
        assert m["low"] <= m["expected"] <= m["high"]
    assert sum(r["n"] for r in report["reliability"]) == report["backtest"]["test_snapshots"]


def test_too_little_history_is_said_with_how_far_the_company_is(tmp_path, capsys):
    export_csv(planted_company(120, NOW, seed=12), tmp_path)
    code = main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z"])
    out = capsys.readouterr().out
    assert code == 0
    assert "NOT USED: not enough history to predict" in out and "needs at least 200 closed" in out
    assert "more closed" in out


def test_an_unknown_action_is_a_usage_error(capsys):
    assert main(["model", "train"]) == 2


def test_scan_with_deal_risk_enabled_gives_json_insights_explain_can_show(tmp_path, capsys):
    data = planted_company(1500, NOW, seed=13)
    export_csv(data, tmp_path)
    (tmp_path / "config.toml").write_text(
        '[source]\nkind = "files"\npath = "."\n\n[detectors.deal_risk]\nenabled = true\nlarge_quantile = 0\n'
        "min_drop = 0.1\nmax_items = 3\n", encoding="utf-8")
    code = main(["scan", "--config", str(tmp_path / "config.toml"), "--now", "2026-11-18T09:00Z", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    risks = [i for i in json.loads(captured.out) if i["detector"] == "deal_risk"]
    assert 1 <= len(risks) <= 3, captured.err
    first = risks[0]
    assert first["facts"]["p_before"] - first["facts"]["p_now"] >= 0.1
    assert "похожа" in first["text"].lower() or "looks like" in first["text"].lower()
    code = main(["explain", first["fingerprint"], "--config", str(tmp_path / "config.toml"), "--now", "2026-11-18T09:00Z"])
    shown = capsys.readouterr().out
    assert code == 0 and first["evidence"]["deal_ids"][1] in shown  # a similar past deal, listed


def test_the_report_warns_when_chances_ran_far_from_what_was_won(tmp_path, capsys):
    # the win rate falls steeply through the history: even anchored, chances run behind it
    export_csv(planted_company(1500, NOW, seed=11, drift=-4.0), tmp_path)
    assert main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    b = report["backtest"]
    assert report["ece"] > 0.05 and b["mean_chance"] > b["win_rate"] + 0.05 and b["horizon_days"] > 7
    assert main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z"]) == 0
    text = capsys.readouterr().out
    assert f"won within {b['horizon_days']:.0f} days of a snapshot" in text
    assert f"chances were off by {report['ece'] * 100:.1f} points" in text and "ranking of deals" in text
    # a steady company gets no such warning
    steady = tmp_path / "steady"
    export_csv(planted_company(1500, NOW, seed=11), steady)
    assert main(["model", "report", "--data", str(steady), "--now", "2026-11-18T09:00Z"]) == 0
    assert "ranking of deals" not in capsys.readouterr().out


def test_an_old_export_is_reported_as_of_its_newest_record_and_says_so(tmp_path, capsys):
    # An export whose last record is days (or years) behind the clock: reported as of today, every
    # deal still open in it would count as forgotten and the backtest's cutoff would fall after
    # its end. Without --now it is judged as of its own end; the admin reads why on stderr.
    export_csv(planted_company(1500, NOW, seed=11), tmp_path)
    assert main(["model", "report", "--data", str(tmp_path), "--format", "json"]) == 0  # the real clock: after NOW
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "the report is made as of that moment, not today" in captured.err and "pass --now" in captured.err
    as_of = datetime.fromisoformat(report["now"])
    assert NOW - timedelta(days=2) < as_of <= NOW
    assert report["used"] is True
    # the same numbers as asking for that moment explicitly
    assert main(["model", "report", "--data", str(tmp_path), "--format", "json", "--now", as_of.isoformat()]) == 0
    explicit = capsys.readouterr()
    assert "not today" not in explicit.err
    same = json.loads(explicit.out)
    assert (same["brier"], same["ece"], same["auc"]) == (report["brier"], report["ece"], report["auc"])
    # a fresh export is reported as of the moment asked, with no note
    assert main(["model", "report", "--data", str(tmp_path), "--format", "json", "--now", "2026-11-18T09:00Z"]) == 0
    fresh = capsys.readouterr()
    assert "not today" not in fresh.err and json.loads(fresh.out)["now"].startswith("2026-11-18T09:00")


def test_a_tiny_p_value_keeps_its_digits(tmp_path, capsys, monkeypatch):
    # Maven's model beats the baseline at p = 2.6e-10: rounded to 4 decimals it read "p = 0",
    # which no test can give
    from predict.model import Backtest

    monkeypatch.setattr(Backtest, "p_value", property(lambda self: 2.6e-10))
    export_csv(planted_company(1500, NOW, seed=11), tmp_path)
    assert main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["p_value"] == 2.6e-10
    assert main(["model", "report", "--data", str(tmp_path), "--now", "2026-11-18T09:00Z"]) == 0
    assert "one-sided p = 2.6e-10, per deal" in capsys.readouterr().out
