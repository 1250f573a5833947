"""What the words claim must be what the numbers are (the truth audit of issue 9 on the Maven
export and the demo): each test plants the situation a reader misread and checks the sentence."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from messages import samples, terminal
from messages.render import insight_text, plain, render_insight

ALMATY = ZoneInfo("Asia/Almaty")


def _text(insight, lang: str, **kw) -> str:
    r = render_insight(insight, lang, **kw)
    text = "\n".join([plain(r.title), *(plain(b) for b in r.body), plain(r.action or ()),
                      *(plain(d) for d in r.details)])
    return text.replace("\u00a0", " ")  # counts keep their noun on the line with a no-break space


def test_a_moment_is_dated_on_the_company_calendar_not_in_utc():
    """An open at 01:54 on 15 November in Almaty is 20:54 UTC on the 14th: the manager was
    told "most recently 14 November" for an email opened that morning."""
    ins = samples.silent_client()
    ins.facts["last_open_at"] = "2026-11-14T20:54:00+00:00"
    for lang, day in (("en", "15 November"), ("ru", "15 ноября")):
        scan_text = terminal.format_insight(ins, lang, tz=ALMATY).replace("\u00a0", " ")  # crm-pulse scan: no clock, a zone
        assert day in scan_text, scan_text
        json_text = insight_text(ins, lang, tz=ALMATY).replace("\u00a0", " ")
        assert day in json_text
        # a digest or an alert: the reader's local clock carries the zone
        local_now = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc).astimezone(ALMATY)
        details = "\n".join(plain(d) for d in render_insight(ins, lang, now=local_now).details).replace("\u00a0", " ")
        assert day in details
    # without a zone nothing is invented: the timestamp's own date
    assert "14 November" in terminal.format_insight(ins, "en").replace("\u00a0", " ")
    # what `crm-pulse scan` prints: the config's timezone reaches the words
    from bot.cli import format_insights_text  # noqa: PLC0415

    scan = format_insights_text([ins], "en", datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc), tz="Asia/Almaty")
    assert "most recently 15 November" in scan.replace("\u00a0", " ")


def test_silent_client_title_says_what_its_number_counts():
    """days_silent runs from our oldest unanswered email; the client's last reply is older. "Silent
    for 28 days" beside "last replied 17 October" (32 days before) contradicted itself."""
    ins = samples.silent_client()
    ins.facts.update(days_silent=28, last_reply_at="2026-10-17T06:30:00+00:00")
    en, ru = _text(ins, "en"), _text(ins, "ru")
    assert "has not answered your emails for 28 days but reads them" in en and "silent for" not in en
    assert "28 дней не отвечает на ваши письма, но читает их" in ru and "молчит" not in ru
    director = _text(ins, "ru", you=False)
    assert "28 дней не отвечает на письма менеджера Данияра Ахметова" in director


def test_open_deals_counted_as_load_are_named_with_their_window():
    """manager_load counts only open deals touched within active_window_days; Vicki Laflamme
    (Maven, 1 December 2017) had 136 open deals and the item said "Open deals: 42"."""
    ins = samples.manager_load()
    assert ins.facts["active_window_days"] == 90
    en, ru = _text(ins, "en"), _text(ins, "ru")
    assert "Open deals with any activity in the last 90 days: the team median is" in en
    assert "Открытые сделки с движением за последние 90 дней: медиана команды —" in ru
    ins.facts["active_window_days"] = 30
    assert "in the last 30 days" in _text(ins, "en")


def _win_rate_drop(source: str):
    ins = samples.conversion_drop()
    ins.facts.update(kind="drop", basis="created", from_stage=None, to_stage="won", to_won=True, drivers=[],
                     horizon_days=30, horizon_source=source)
    return ins


def test_a_capped_horizon_is_in_the_title_and_the_cost():
    """With the horizon at the configured maximum (most wins take longer) "17% were won" is
    "won within 30 days": on Maven (2 October 2017) 71% of the recent deals were still open and
    their final win rate had not fallen (46% vs 46%), yet the item said "Win rate fell" and
    "37 deals a month that would have been won"."""
    capped = _win_rate_drop("max")
    en, ru = _text(capped, "en"), _text(capped, "ru")
    assert en.startswith("30-day win rate of new deals fell: 48% → 31%")
    assert "were won within 30 days instead of" in en
    assert "would have been won within 30 days before" in en
    assert ru.startswith("Новые сделки стали реже выигрываться за 30 дней после создания: 48% → 31%")
    assert "выиграно за 30 дней 31% вместо 48%" in ru
    assert "раньше были бы выиграны за 30 дней" in ru
    learned = _text(_win_rate_drop("learned"), "en")  # the usual time: "won" needs no qualifier
    assert learned.startswith("Win rate of new deals fell") and "within 30 days instead" not in learned
    pair = samples.conversion_drop()
    pair.facts.update(horizon_days=21, horizon_source="max")
    assert _text(pair, "en").startswith("21-day conversion “КП отправлено” → “Переговоры” fell")
    assert _text(pair, "ru").startswith("Конверсия «КП отправлено» → «Переговоры» за 21 день упала")


def test_russian_stage_names_after_a_preposition_go_with_the_word_stage():
    """"до «Переговоры»" puts a nominative after "до"; a quoted CRM name cannot be declined,
    so "этап" takes the case: "до этапа «Переговоры»", "на этапе «КП отправлено»"."""
    ru = _text(samples.conversion_drop(), "ru")
    assert "дошедших до этапа «КП отправлено»" in ru and "до этапа «Переговоры» дошли" in ru
    assert "застрявших на этапе «КП отправлено»" in ru
    assert "до «" not in ru and "на «" not in ru


def test_russian_loss_reason_after_a_preposition_goes_with_the_word_reason():
    """"Всё чаще проигрываем из-за «Сроки поставки»": "из-за" wants a genitive the quoted value
    cannot take; "по причине «Сроки поставки»" reads right."""
    ru = _text(samples.loss_reasons(), "ru")
    assert ru.startswith("Всё чаще проигрываем по причине «Дорого»")
    assert "сделки, проигранные по причине «Дорого»" in ru and "из-за «" not in ru


def test_the_charts_name_the_same_windows_as_the_words():
    """The chart beside an item must not say "Open deals" or "win rate" where the words (and
    the numbers) mean open deals with activity in 90 days and deals won within 30 days."""
    from messages.charts import chart_figure  # noqa: PLC0415  (matplotlib: only where charts are drawn)

    def titles(fig) -> list[str]:
        return [ax.get_title(loc="left").replace("\u00a0", " ") for ax in fig.axes]

    assert "Open deals (activity in 90 days)" in titles(chart_figure(samples.manager_load(), "en"))
    assert "Открытые сделки (движение за 90 дней)" in titles(chart_figure(samples.manager_load(), "ru"))
    capped = _win_rate_drop("max")
    assert titles(chart_figure(capped, "en"))[0] == "Weekly 30-day win rate of new deals"
    assert titles(chart_figure(capped, "ru"))[0] == "Доля новых сделок, выигранных за 30 дней, по неделям"
    assert titles(chart_figure(_win_rate_drop("learned"), "en"))[0] == "Weekly win rate of new deals"
