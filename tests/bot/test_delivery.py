"""Delivery: decide against the log, one digest per recipient, recorded with the outbox write."""
import json
from datetime import datetime, timedelta, timezone

from bot.delivery import addresses, deliver, deliver_critical, in_quiet_hours, preview
from bot.outbox import Outbox

UTC = timezone.utc
NOW = datetime(2026, 10, 1, 4, 0, tzinfo=UTC)  # 09:00 in Almaty


def _all_text(box, recipient):
    import json
    return "\n".join(json.dumps(r.payload, ensure_ascii=False) for r in box.rows(recipient=recipient))


def test_each_recipient_gets_their_digest_and_nobody_elses_clients(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    report = deliver(scenario, chat_config, sqlite_store, box, NOW, charts=True)
    anna, boris, dina = _all_text(box, "anna"), _all_text(box, "boris"), _all_text(box, "dina")
    assert "Аннин Клиент" in anna and "Сделка Бориса" not in anna and "Горящая" not in anna
    assert "Сделка Бориса" in boris and "Аннин Клиент" not in boris
    assert "Горящая сделка Бориса" in dina and "Аннин Клиент" not in dina
    # loss reasons wait for the weekly report
    assert all("loss_reasons" not in r for r in (anna, boris))
    assert {r.channel for r in box.rows(recipient="boris")} == {"telegram", "slack"}
    assert {r.address for r in box.rows(recipient="anna")} == {"101"}
    assert box.rows(recipient="root") == []
    assert report.reasons["anna"] == [(scenario[0].fingerprint, "first")]
    # the director gets charts for team-level items
    assert any(r.photo for r in box.rows(recipient="dina"))
    team = _all_text(box, "sales-team")
    assert "Горящая" not in team and "Сделка Бориса" not in team


def test_next_run_sends_nothing_unchanged_then_repeats_after_interval(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    deliver(scenario, chat_config, sqlite_store, box, NOW, charts=False)
    n = len(box.rows())
    report = deliver(scenario, chat_config, sqlite_store, box, NOW + timedelta(days=1), charts=False)
    assert len(box.rows()) == n
    assert dict(report.held["anna"]) == {scenario[0].fingerprint: "unchanged"}
    report = deliver(scenario, chat_config, sqlite_store, box, NOW + timedelta(days=7), charts=False)
    assert report.reasons["anna"] == [(scenario[0].fingerprint, "repeat_interval")]


def test_worse_is_sent_again_and_gone_is_closed(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    deliver(scenario, chat_config, sqlite_store, box, NOW, charts=False)
    worse = [i for i in scenario]
    worse[0] = type(worse[0]).from_dict({**worse[0].to_dict(), "facts": {**worse[0].facts, "days_silent": 27}})
    report = deliver(worse, chat_config, sqlite_store, box, NOW + timedelta(days=1), charts=False)
    assert report.reasons["anna"] == [(scenario[0].fingerprint, "worse")]
    report = deliver(worse[1:], chat_config, sqlite_store, box, NOW + timedelta(days=2), charts=False)
    assert report.closed["anna"] == [scenario[0].fingerprint]
    assert sqlite_store.log_entry("anna", scenario[0].fingerprint).state == "closed"


def test_snoozed_and_done_are_held_back(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    boris_deal = scenario[1]
    sqlite_store.snooze("boris", boris_deal, NOW + timedelta(days=1), NOW - timedelta(hours=1))
    report = deliver(scenario, chat_config, sqlite_store, box, NOW, charts=False)
    assert (boris_deal.fingerprint, "snoozed") in report.held["boris"]
    sqlite_store.mark_done("anna", scenario[0], NOW)
    report = deliver(scenario, chat_config, sqlite_store, box, NOW + timedelta(days=30), charts=False)
    assert (scenario[0].fingerprint, "suppressed") in report.held["anna"]


def test_more_than_max_items_records_only_what_was_shown(sqlite_store, chat_config, mk):
    many = [mk("stalled_deal", manager_id="m1", subject={"deal_id": f"d{k}"}, deal_title=f"deal {k}",
               client_name="X", manager_name="Анна", stage="S", amount=1000.0 * k, currency="KZT", days_idle=20,
               stage_limit_days=14, last_touch_at=None, last_touch_kind="call", escalated=False)
            for k in range(15)]
    many += [mk("silent_client", manager_id="m1", subject={"client_id": f"c{k}"}, client_name=f"C{k}",
                manager_id_=None, days_silent=10 + k, unanswered_emails=1, human_opens=2, open_days=2,
                last_open_at="2026-09-30T10:00:00+05:00", last_reply_at=None, last_email_subject=None,
                manager_name="Анна") for k in range(12)]
    box = Outbox(sqlite_store)
    report = deliver(many, chat_config, sqlite_store, box, NOW, charts=False)
    shown = set(report.sent["anna"])
    assert 0 < len(shown) < len(many)
    later = deliver(many, chat_config, sqlite_store, box, NOW + timedelta(hours=1), charts=False)
    assert set(later.sent["anna"]).isdisjoint(shown) and later.sent["anna"]


def test_same_run_twice_enqueues_once(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    deliver(scenario, chat_config, sqlite_store, box, NOW, charts=False)
    n = len(box.rows())
    sqlite_store.close_missing("anna", set(), NOW)  # force "first" again: the same run key is still refused
    deliver(scenario, chat_config, sqlite_store, box, NOW, charts=False)
    assert len(box.rows()) == n


def test_critical_goes_at_once_unless_quiet_hours(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    night = datetime(2026, 10, 1, 18, 0, tzinfo=UTC)  # 23:00 in Almaty: Dina's quiet hours
    assert in_quiet_hours(chat_config.recipient("dina"), night, chat_config)
    assert not in_quiet_hours(chat_config.recipient("dina"), NOW, chat_config)
    report = deliver_critical(scenario, chat_config, sqlite_store, box, night)
    assert "dina" not in report.sent and "boris" in report.sent
    report = deliver_critical(scenario, chat_config, sqlite_store, box, NOW)
    assert set(report.sent["dina"]) == {scenario[2].fingerprint, scenario[3].fingerprint}
    # already sent: the digest does not repeat it
    digest = deliver(scenario, chat_config, sqlite_store, box, NOW + timedelta(minutes=5), charts=False)
    assert (scenario[2].fingerprint, "unchanged") in digest.held["boris"]


def test_console_when_no_chat_is_enabled(config):
    assert addresses(config.recipient("anna"), config) == [("console", "anna")]


def test_preview_counts_without_recording(sqlite_store, chat_config, scenario):
    plan = preview(scenario, chat_config, sqlite_store, NOW)
    assert plan["anna"] == {"send": 1, "reminders": 0, "due": 1, "total": 1, "reasons": {"first": 1}}
    assert sqlite_store.log_entries("anna") == {}


def test_weekly_report_sends_loss_reasons_to_directors(sqlite_store, chat_config, scenario):
    box = Outbox(sqlite_store)
    report = deliver(scenario, chat_config, sqlite_store, box, NOW, only_detectors={"loss_reasons"}, exclude_detectors=(),
                     kind="weekly", charts=False)
    assert report.sent["dina"] == [scenario[6].fingerprint]
    assert report.sent["anna"] == []


def test_resolved_note_only_when_enabled_and_only_for_what_was_sent(sqlite_store, config_toml, scenario):
    from bot.config import parse_config

    cfg = parse_config(config_toml + "\n[telegram]\nenabled = true\n[delivery]\nresolved_notes = true\n")
    box = Outbox(sqlite_store)
    deliver(scenario, cfg, sqlite_store, box, NOW, charts=False)
    before = len(box.rows(recipient="anna"))
    deliver(scenario[1:], cfg, sqlite_store, box, NOW + timedelta(days=1), charts=False)
    rows = box.rows(recipient="anna")
    assert len(rows) == before + 1
    assert rows[-1].payload["text"].startswith("✅ Больше не актуально:") and "Аннин Клиент" in rows[-1].payload["text"]
    # Boris had nothing close: no note
    assert not any("актуально" in r.payload.get("text", "") for r in box.rows(recipient="boris"))


def test_a_burst_of_critical_alerts_is_capped_the_rest_wait_for_the_digest(sqlite_store, chat_config, mk):
    burst = [mk("stalled_deal", manager_id="m1", severity="critical", subject={"deal_id": f"d{k}"},
                deal_title=f"deal {k}", client_name="X", manager_name="Анна", stage="S", amount=1000.0 * k,
                currency="KZT", days_idle=40, stage_limit_days=7, last_touch_at=None, last_touch_kind="call",
                escalated=False) for k in range(6)]
    box = Outbox(sqlite_store)
    report = deliver_critical(burst, chat_config, sqlite_store, box, NOW)
    assert report.sent["anna"] == [burst[5].fingerprint, burst[4].fingerprint, burst[3].fingerprint]
    digest = deliver(burst, chat_config, sqlite_store, box, NOW + timedelta(minutes=1), charts=False)
    assert set(digest.sent["anna"]) == {b.fingerprint for b in burst[:3]}


def test_unreachable_recipient_is_warned_and_nothing_is_marked_sent(sqlite_store, config_toml, scenario, caplog):
    from bot.config import parse_config

    cfg = parse_config(config_toml + "\n[slack]\nenabled = true\n")  # Anna has only a Telegram id
    with caplog.at_level("WARNING", logger="crm_pulse.delivery"):
        report = deliver(scenario, cfg, sqlite_store, Outbox(sqlite_store), NOW, charts=False)
    assert report.sent["anna"] == [] and sqlite_store.log_entries("anna") == {}
    assert "anna has no address on an enabled channel" in caplog.text
    assert report.sent["boris"]  # Boris has a Slack id


def test_a_critical_alert_nobody_could_receive_stays_due(sqlite_store, config_toml, mk):
    from bot.config import parse_config

    alert = mk("stalled_deal", manager_id="m1", severity="critical", subject={"deal_id": "d9"}, deal_title="deal 9",
               client_name="X", manager_name="Анна", stage="S", amount=5000.0, currency="KZT", days_idle=40,
               stage_limit_days=7, last_touch_at=None, last_touch_kind="call", escalated=False)
    slack_only = parse_config(config_toml + "\n[slack]\nenabled = true\n")  # Anna has only a Telegram id
    box = Outbox(sqlite_store)
    report = deliver_critical([alert], slack_only, sqlite_store, box, NOW)
    assert report.sent["anna"] == [] and report.messages["anna"] == 0
    assert sqlite_store.log_entries("anna") == {}
    # once Anna is reachable, the alert still counts as new
    with_telegram = parse_config(config_toml + "\n[telegram]\nenabled = true\n")
    report = deliver_critical([alert], with_telegram, sqlite_store, box, NOW + timedelta(minutes=5))
    assert report.reasons["anna"] == [(alert.fingerprint, "first")] and report.messages["anna"] == 1


def _digest_text(box, recipient, since_id=0):
    return "\n".join(r.payload["text"] for r in box.rows(recipient=recipient) if r.id > since_id and r.channel == "telegram")


def test_unchanged_item_comes_back_as_a_one_line_reminder_and_a_worse_one_in_full(sqlite_store, chat_config):
    """Boris's two stalled deals are sent in full on day 0. A week later one is unchanged (the
    repeat interval passed) and one got 7 days worse: the worse one in full again, the unchanged
    one as one "still open" line at the end, without its advice, and recorded as sent."""
    from messages import samples

    for n, (lang, still, last) in enumerate((("ru", "Ещё открыто: сделка «Тихая сделка»", "(сообщали 7 дней назад)"),
                              ("en", "Still open: deal “Тихая сделка”", "(last sent 7 days ago)"))):
        t0 = NOW + timedelta(days=30 * n)  # each language on its own days (the outbox keys digests by time)
        config = chat_config
        sqlite_store.set_language("boris", lang, t0)  # Boris's /lang choice
        box = Outbox(sqlite_store)
        quiet = samples.stalled_deal(deal_id=f"D-QUIET-{lang}", title="Тихая сделка", manager_id="m2", days=20)
        worse = samples.stalled_deal(deal_id=f"D-WORSE-{lang}", title="Худшая сделка", manager_id="m2", days=20)
        deliver([quiet, worse], config, sqlite_store, box, t0, charts=False)
        first = _digest_text(box, "boris")
        assert "Тихая сделка" in first and "Худшая сделка" in first
        mark = max(r.id for r in box.rows())
        later = t0 + timedelta(days=7)
        worse7 = samples.stalled_deal(deal_id=f"D-WORSE-{lang}", title="Худшая сделка", manager_id="m2", days=27)
        report = deliver([quiet, worse7], config, sqlite_store, box, later, charts=False)
        assert dict(report.reasons["boris"]) == {quiet.fingerprint: "repeat_interval", worse7.fingerprint: "worse"}
        text = _digest_text(box, "boris", mark)
        # the worse deal in full: its title, its numbers and what to do
        assert "Худшая сделка" in text and "27" in text and "👉" in text
        # the unchanged one: exactly one line, after the full item
        [line] = [ln for ln in text.splitlines() if "Тихая сделка" in ln]
        assert line.startswith(still) and line.endswith(last)
        assert text.index("Худшая сделка") < text.index(still)
        assert sqlite_store.log_entry("boris", quiet.fingerprint).last_sent == later  # reminded: quiet another week
        assert all(f"done:{quiet.fingerprint}" not in json.dumps(r.payload) for r in box.rows(recipient="boris")
                   if r.id > mark)


def test_many_reminders_are_capped_with_and_n_more(sqlite_store, chat_config):
    from messages import samples
    from messages.digest import MAX_STILL_OPEN

    sqlite_store.set_language("boris", "ru", NOW)
    box = Outbox(sqlite_store)
    deals = [samples.stalled_deal(deal_id=f"D-{k}", title=f"Сделка {k}", manager_id="m2", days=20, amount=1000 * (k + 1))
             for k in range(MAX_STILL_OPEN + 3)]
    deliver(deals, chat_config, sqlite_store, box, NOW, charts=False)
    mark = max(r.id for r in box.rows())
    report = deliver(deals, chat_config, sqlite_store, box, NOW + timedelta(days=7), charts=False)
    text = _digest_text(box, "boris", mark)
    assert f"Ещё открыто ({MAX_STILL_OPEN + 3}):" in text and "…и ещё 3: /insights" in text
    assert sum(ln.startswith("• ") for ln in text.splitlines()) == MAX_STILL_OPEN
    # the largest amounts first; only the lines shown are recorded, the other 3 stay due
    assert "Сделка 7" in text and "Сделка 0" not in text
    assert len(report.reasons["boris"]) == MAX_STILL_OPEN


def test_a_quiet_digest_says_what_could_not_be_checked(sqlite_store, chat_config):
    from messages.digest import Checks

    anna = chat_config.recipient("anna").model_copy(update={"all_quiet": True})  # asked to hear "all quiet"
    config = chat_config.model_copy(update={"recipients": [anna if r.id == "anna" else r for r in chat_config.recipients]})
    box = Outbox(sqlite_store)
    checks = Checks.of(["stalled_deal", "lead_sla", "silent_client"], {"lead_sla": "needs leads.csv (table not provided)"}, {})
    deliver([], config, sqlite_store, box, NOW, charts=False, checks=checks, only_targets=["anna"])
    text = _digest_text(box, "anna")
    assert "всё спокойно" not in text
    assert "ничего не найдено по 2\u00a0проверкам из 3" in text and "Не проверено: SLA по заявкам (нет таблицы leads.csv)." in text
    box2_mark = max(r.id for r in box.rows())
    deliver([], config, sqlite_store, box, NOW + timedelta(days=1), charts=False, only_targets=["anna"],
            checks=Checks.of(["stalled_deal", "lead_sla"], {}, {}))
    assert "всё спокойно" in _digest_text(box, "anna", box2_mark)


def test_a_backlog_reminded_with_more_leads_says_how_many_there_were(sqlite_store, chat_config):
    """A lead backlog is reminded, not resent in full, while fewer than twice as many leads wait
    (bot.notify_log BACKLOG): 6 leads, a week later 11. "Ещё открыто, без изменений: ... 11
    заявок" called 6 -> 11 unchanged; the line says the count when it was sent."""
    from dataclasses import replace

    from messages import samples

    lead = samples.lead_sla()
    for n, (lang, line) in enumerate((("ru", "11 заявок (сообщали 7 дней назад, тогда их было 6)"),
                                      ("en", "11 leads (last sent 7 days ago, when there were 6)"))):
        t0 = NOW + timedelta(days=30 * n)
        sqlite_store.set_language("boris", lang, t0)
        box = Outbox(sqlite_store)

        def backlog(leads: int):
            return replace(lead, severity="warning", audience=replace(lead.audience, manager_id="m2"),
                           subject={"kind": "unanswered", "backlog": True, "manager_id": "m2", "lang": lang},
                           facts={**lead.facts, "kind": "unanswered", "manager_id": "m2", "backlog": True,
                                  "leads": leads, "escalated_leads": 0,
                                  "listed": [{"lead_id": f"L-{k}", "working_hours_waited": 9} for k in range(5)]})
        deliver([backlog(6)], chat_config, sqlite_store, box, t0, charts=False)
        mark = max(r.id for r in box.rows())
        report = deliver([backlog(11)], chat_config, sqlite_store, box, t0 + timedelta(days=7), charts=False)
        assert list(dict(report.reasons["boris"]).values()) == ["repeat_interval"]
        text = " ".join(_digest_text(box, "boris", mark).split())
        assert line in text, text
