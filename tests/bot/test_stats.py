"""stats: sent / useful / not useful per detector, and messages that failed for good."""
import argparse
from datetime import datetime, timezone

from bot.channels.base import OutgoingMessage
from bot.outbox import Outbox
from bot.state import StateStore
from bot.stats import collect_stats, format_stats, run

NOW = datetime(2026, 10, 1, 4, 0, tzinfo=timezone.utc)


async def test_stats_per_detector_and_failures(sqlite_store, mk, fake_channel):
    a = mk("silent_client", subject={"client_id": "c1"}, days_silent=20)
    b = mk("stalled_deal", subject={"deal_id": "d1"}, days_idle=20)
    for who in ("anna", "boris", "dina"):
        sqlite_store.record_sent(who, a, NOW, "first")
    sqlite_store.record_sent("anna", b, NOW, "first")
    sqlite_store.record_feedback("anna", a.fingerprint, "silent_client", True, NOW)
    sqlite_store.record_feedback("boris", a.fingerprint, "silent_client", True, NOW)
    sqlite_store.record_feedback("dina", a.fingerprint, "silent_client", False, NOW)
    box = Outbox(sqlite_store)
    box.enqueue("anna", [OutgoingMessage("telegram", "101", {"text": "x"}, dedup_key="k1")])
    await box.drain({"telegram": fake_channel(script=["perm"])})
    s = collect_stats(sqlite_store)
    rows = {d.detector: d for d in s.detectors}
    assert (rows["silent_client"].sent, rows["silent_client"].useful, rows["silent_client"].not_useful) == (3, 2, 1)
    assert abs(rows["silent_client"].useful_share - 2 / 3) < 1e-9
    assert rows["stalled_deal"].useful_share is None
    text = format_stats(s, "en")
    assert "Silent clients [silent_client]: sent 3, useful 2, not useful 1, useful share 67%" in text
    assert "Stalled deals [stalled_deal]: sent 1, useful 0, not useful 0, useful share —" in text
    assert "anna (telegram): Forbidden: bot was blocked by the user" in text
    assert "доля полезных 67%" in format_stats(s, "ru")
    # in chat: the check's name a manager or director knows, no config key
    chat = format_stats(s, "ru", codes=False)
    assert "Молчащие клиенты: отправлено 3, полезно 2, бесполезно 1" in chat
    assert "Зависшие сделки: отправлено 1" in chat
    assert "silent_client" not in chat and "stalled_deal" not in chat


def test_stats_command_reads_the_configured_state(tmp_path, capsys, mk):
    db = tmp_path / "state.db"
    store = StateStore.open(f"sqlite:///{db}")
    store.record_sent("anna", mk("stalled_deal", days_idle=3), NOW, "first")
    store.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text('[state]\nurl = "sqlite:///state.db"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(cfg), lang="en")) == 0
    assert "Stalled deals [stalled_deal]: sent 1" in capsys.readouterr().out
    assert run(argparse.Namespace(config=str(tmp_path / "missing.toml"), lang=None)) == 2


def test_stats_on_a_fresh_config_creates_no_state_file(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[state]\nurl = "sqlite:///crm-pulse-state.db"\n', encoding="utf-8")
    assert run(argparse.Namespace(config=str(cfg), lang="en")) == 0
    assert "Nothing sent yet: the bot has not run with this config" in capsys.readouterr().out
    assert not (tmp_path / "crm-pulse-state.db").exists()
    cfg.write_text("", encoding="utf-8")  # the default state url
    assert run(argparse.Namespace(config=str(cfg), lang="ru")) == 0
    assert "бот ещё не запускался с этим конфигом" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
