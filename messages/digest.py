"""A recipient's digest for one run: header, the items that matter most, "and N more".

Order: every item is ranked by severity, then money at stake compared only within one currency
(no exchange rates: an amount counts by where it stands among this digest's amounts in the same
currency, so 50,000 USD is not ranked below 60,000 KZT for being a smaller number); the top
`max_items` are kept (so the most important always makes the cut) and shown grouped by detector, the group with
the most important item first. A manager's stalled deals become one item listing the deals,
oldest first; each deal keeps its own compact row of buttons (snooze 1 day / 7 days, done,
details) so a person can act on one deal without touching the others.

A persisting item that did not get worse (the notification log's "repeat_interval") is not
sent in full again: it is one "still open" line at the end, at most MAX_STILL_OPEN of them and
"and N more". "Nothing new" is said only when every enabled check could run; otherwise the
digest names what could not be checked (Checks), so silence is never mistaken for all clear.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Iterable
from zoneinfo import ZoneInfo

from detectors.insight import SEVERITY_RANK, Insight
from messages import i18n, maturity
from messages.model import Button
from messages.render import Ctx, Line, RenderedInsight, Span, name, render_insight
from messages.templates.stalled_deal import compact_line

MAX_DEALS_IN_GROUP = 10  # more would make a wall of text; the rest are counted
MAX_STILL_OPEN = 5  # "still open" reminder lines in one digest; the rest are one "and N more" line


@dataclass
class DigestItem:
    detector: str
    severity: str
    title: Line
    body: list[Line]
    action: Line | None
    buttons: list[list[Button]]  # worded labels, numbered like the item ("2 · ⏰ 1 день")
    fingerprints: list[str]
    money: float = 0.0


@dataclass
class Digest:
    lang: str
    day: date  # the run's date in the recipient's timezone
    header: Line
    subheader: Line | None
    items: list[DigestItem] = field(default_factory=list)
    more: int = 0  # items left out beyond max_items
    total: int = 0
    footer: Line | None = None  # "and 7 more: /insights"
    quiet: bool = False  # nothing to report, and the recipient asked to hear that
    note: Line | None = None  # a director's pointer to the maturity check
    still_open: Line | None = None  # one-line reminders of unchanged items (one block)
    reminded: list[str] = field(default_factory=list)  # fingerprints of the reminders shown
    unchecked: Line | None = None  # what the scan could not check, when that matters here

    def closing(self) -> list[Line]:
        """The lines after the items, in order: "and N more", the still-open reminders, what
        could not be checked, then the note."""
        return [line for line in (self.footer, self.still_open, self.unchecked, self.note) if line]


def _tz(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None or isinstance(tz, tzinfo):
        return tz
    return ZoneInfo(tz)


# Digest button words: (ru, en). Short enough for three buttons in a row of a phone's
# Telegram keyboard with the item's number in front ("2 · ⏰ 1 день"), yet words, like the
# single alerts' buttons (messages.render.insight_buttons), not bare emoji.
COMPACT_LABELS: dict[str, tuple[str, str]] = {
    "snooze_1d": ("⏰ 1 день", "⏰ 1 day"),
    "snooze_7d": ("⏰ 7 дней", "⏰ 7 days"),
    "done": ("✅ Сделано", "✅ Done"),
    "useful": ("👍 Полезно", "👍 Useful"),
    "notuseful": ("👎 Не полезно", "👎 Not useful"),
    "details": ("ℹ️ Подробнее", "ℹ️ Details"),
}


def compact_buttons(number: str, fingerprint: str, lang: str, *, feedback: bool = True) -> list[list[Button]]:
    """One item's buttons, each label led by the item's number so a digest of several items
    says which one a button acts on. A grouped deal (feedback=False) gets two rows of two:
    four worded buttons do not fit in one row."""
    ru = lang == "ru"

    def b(key: str, action: str) -> Button:
        return Button(f"{number} · {COMPACT_LABELS[key][0 if ru else 1]}", action)

    snooze = [b("snooze_1d", f"snooze:{fingerprint}:1d"), b("snooze_7d", f"snooze:{fingerprint}:7d")]
    if not feedback:
        return [snooze, [b("done", f"done:{fingerprint}"), b("details", f"details:{fingerprint}")]]
    return [snooze + [b("done", f"done:{fingerprint}")],
            [b("useful", f"useful:{fingerprint}"), b("notuseful", f"notuseful:{fingerprint}"),
             b("details", f"details:{fingerprint}")]]


@dataclass
class _Candidate:
    """An item before numbering: one rendered insight, or a manager's stalled deals."""

    detector: str
    severity_rank: int
    money: float
    rendered: RenderedInsight | None = None
    deals: list[Insight] | None = None
    manager_name: str | None = None
    amounts: dict[str | None, float] = field(default_factory=dict)  # money at stake per currency
    standing: float = 0.0  # set by _rank: where its money stands within its currency (_standings)

    @property
    def fingerprints(self) -> list[str]:
        if self.deals is not None:
            return [d.fingerprint for d in self.deals]
        return [self.rendered.fingerprint] if self.rendered is not None else []


def _groupable(ins: Insight) -> bool:
    """One manager's stalled deal (not the "abandoned" summary): grouped with the others."""
    return ins.detector == "stalled_deal" and bool(ins.audience.manager_id) and ins.facts.get("kind") != "abandoned"


def _candidates(insights: list[Insight], ctx: Ctx) -> list[_Candidate]:
    stalled: dict[str, list[Insight]] = {}
    for ins in insights:
        if _groupable(ins):
            stalled.setdefault(ins.audience.manager_id, []).append(ins)
    out: list[_Candidate] = []
    grouped = {mid for mid, deals in stalled.items() if len(deals) > 1}
    for ins in insights:
        if _groupable(ins) and ins.audience.manager_id in grouped:
            continue
        r = render_insight(ins, ctx.lang, now=ctx.now, you=ctx.you)
        out.append(_Candidate(ins.detector, r.severity_rank, r.money, rendered=r,
                              amounts={_currency(ins): r.money} if r.money > 0 else {}))
    for mid in sorted(grouped):
        deals = sorted(stalled[mid], key=lambda i: -float(i.facts.get("days_idle") or 0))
        amounts: dict[str | None, float] = {}
        for d in deals:
            if _money(d) > 0:
                amounts[_currency(d)] = amounts.get(_currency(d), 0.0) + _money(d)
        out.append(_Candidate(
            "stalled_deal", max(SEVERITY_RANK[d.severity] for d in deals),
            sum(float(d.facts.get("amount") or 0) for d in deals), deals=deals,
            manager_name=deals[0].facts.get("manager_name"), amounts=amounts))
    return out


def _currency(ins: Insight) -> str | None:
    code = ins.facts.get("currency")
    return str(code).strip().upper() or None if code else None


def _standings(amounts: list[dict[str | None, float]]) -> list[float]:
    """Money compared without exchange rates: per currency, the share of this digest's amounts
    in that currency that an amount is at least as large as (the largest 1.0); an item counts by
    its best currency, no money is 0. With one currency this orders exactly as the amounts do."""
    by_currency: dict[str | None, list[float]] = {}
    for per in amounts:
        for cur, value in per.items():
            if value > 0:
                by_currency.setdefault(cur, []).append(value)
    for values in by_currency.values():
        values.sort()

    def share(cur: str | None, value: float) -> float:
        values = by_currency[cur]
        return bisect.bisect_right(values, value) / len(values)

    return [max((share(c, v) for c, v in per.items() if v > 0), default=0.0) for per in amounts]


def _settled(c: _Candidate, settled: set[str]) -> bool:
    return bool(c.fingerprints) and set(c.fingerprints) <= settled


def _rank(candidates: list[_Candidate], settled: set[str] | None = None) -> list[_Candidate]:
    """Most important first; items the person already snoozed or marked done (`settled`) after
    every open one."""
    settled = settled or set()
    for c, standing in zip(candidates, _standings([c.amounts for c in candidates])):
        c.standing = standing
    return sorted(candidates, key=lambda c: (_settled(c, settled), -c.severity_rank, -c.standing))


def _group_by_detector(kept: list[_Candidate], settled: set[str] | None = None) -> list[_Candidate]:
    settled = settled or set()
    order: list[tuple[bool, str]] = []
    for c in kept:
        if (_settled(c, settled), c.detector) not in order:
            order.append((_settled(c, settled), c.detector))
    return [c for k in order for c in kept if (_settled(c, settled), c.detector) == k]


@dataclass(frozen=True)
class Mark:
    """What the person already did about an item, shown in their full list (/insights):
    kind "snoozed" (with until) or "done"."""

    kind: str
    until: datetime | None = None


def _local(when: datetime, ctx: Ctx) -> datetime:
    return when.astimezone(ctx.now.tzinfo) if ctx.now is not None and ctx.now.tzinfo else when


def _mark_line(mark: Mark, ctx: Ctx) -> Line:
    if mark.kind == "snoozed" and mark.until is not None:
        local = _local(mark.until, ctx)
        when = f"{i18n.day_month(local, ctx.lang)}, {local:%H:%M}"
        return ctx.t("⏸ Отложено до {d}: в сводку до этого не попадёт.",
                     "⏸ Snoozed until {d}: not in your digest before then.", d=when)
    return ctx.t("✅ Отмечено как сделанное: напомню, только если станет хуже.",
                 "✅ Marked done: I'll bring it up only if it gets worse.")


def _short_mark(mark: Mark, ctx: Ctx) -> Line:
    """The mark after one deal's line in a group: " — ⏸ отложено до 5 декабря"."""
    if mark.kind == "snoozed" and mark.until is not None:
        return ctx.t(" — ⏸ отложено до {d}", " — ⏸ snoozed until {d}", d=i18n.day_month(_local(mark.until, ctx), ctx.lang))
    return ctx.t(" — ✅ сделано", " — ✅ done")


def _stalled_group_item(c: _Candidate, number: int, ctx: Ctx, marks: dict[str, Mark] | None = None) -> DigestItem:
    deals = c.deals or []
    n = len(deals)
    if ctx.you:
        title = ctx.t("Сделки без движения дольше срока этапа: {n}", "Deals idle past their stage's limit: {n}", n=str(n))
    else:
        title = ctx.t("Сделки без движения дольше срока этапа — {m}: {n}", "Deals idle past their stage's limit, {m}: {n}",
                      m=name(c.manager_name or deals[0].audience.manager_id), n=str(n))
    body: list[Line] = []
    buttons: list[list[Button]] = []
    for k, deal in enumerate(deals[:MAX_DEALS_IN_GROUP], start=1):
        mark = (marks or {}).get(deal.fingerprint)
        body.append(ctx.t("{k}) ", "{k}) ", k=f"{number}.{k}") + compact_line(ctx, deal.facts)
                    + (_short_mark(mark, ctx) if mark else ()))
        buttons += compact_buttons(f"{number}.{k}", deal.fingerprint, ctx.lang, feedback=False)
    if n > MAX_DEALS_IN_GROUP:
        body.append(ctx.t("…и ещё {k}.", "…and {k} more.", k=ctx.count(n - MAX_DEALS_IN_GROUP, "deal")))
    currencies = {d.facts.get("currency") for d in deals if d.facts.get("amount")}
    if c.money > 0 and len(currencies) == 1:
        body.append(ctx.t("Всего на кону {m}.", "{m} at stake in total.", m=ctx.money(c.money, currencies.pop())))
    if ctx.you:
        action = ctx.t("Начните с первой: договоритесь с клиентом о следующем шаге или закройте сделку как проигранную.",
                       "Start with the first: agree the next step with the client, or close the deal as lost.")
    else:
        whom = ctx.person(c.manager_name, "accs")
        if whom is not None:
            action = ctx.t("Спросите {m} о следующих шагах, начиная с первой сделки.",
                           "Ask {m} about next steps, starting with the first deal.", m=whom)
        else:
            action = ctx.t("Спросите менеджера о следующих шагах, начиная с первой сделки.",
                           "Ask the manager about next steps, starting with the first deal.")
    severity = next(k for k, v in SEVERITY_RANK.items() if v == c.severity_rank)
    return DigestItem("stalled_deal", severity, title, body, action, buttons, [d.fingerprint for d in deals], c.money)


def _item(c: _Candidate, number: int, ctx: Ctx, marks: dict[str, Mark] | None = None) -> DigestItem:
    if c.deals is not None:
        return _stalled_group_item(c, number, ctx, marks)
    r = c.rendered
    assert r is not None
    mark = (marks or {}).get(r.fingerprint)
    body = ([_mark_line(mark, ctx)] + list(r.body)) if mark else r.body
    return DigestItem(r.detector, r.severity, r.title, body, r.action,
                      compact_buttons(str(number), r.fingerprint, ctx.lang), [r.fingerprint], r.money)


# --- a team chat's digest ------------------------------------------------------------------

TEAM_BUTTONS_NOTE = {
    "ru": "Кнопки в этом чате: руководитель откладывает пункт или отмечает сделанным для всей команды, "
          "менеджер, о котором пункт, — только для себя; оценить «полезно» может каждый.",
    "en": "Buttons in this chat: a director snoozes an item or marks it done for the whole team, the manager "
          "it is about only for themselves; anyone may rate it useful.",
}


def for_team_chat(digest: Digest) -> Digest:
    """A team chat's digest says what its buttons do there (bot.handlers.on_team_button),
    in place of the director's pointer to the maturity check."""
    if digest.items:
        digest.note = (Span(TEAM_BUTTONS_NOTE[digest.lang]),)
    return digest


# --- what could not be checked ---------------------------------------------------------------

CHECK_NAMES: dict[str, tuple[str, str]] = {
    "conversion_drop": ("конверсия по этапам", "conversion by stage"),
    "stalled_deal": ("зависшие сделки", "stalled deals"),
    "lead_sla": ("SLA по заявкам", "lead SLA"),
    "silent_client": ("молчащие клиенты", "silent clients"),
    "manager_load": ("загрузка менеджеров", "manager load"),
    "loss_reasons": ("причины проигрышей", "loss reasons"),
    "deal_risk": ("сделки под угрозой", "deals at risk"),
    "win_forecast": ("прогноз выигрыша", "won forecast"),
    "lead_score": ("кому звонить первым", "leads to call first"),
}


@dataclass(frozen=True)
class Checks:
    """What one scan could check: the detectors enabled in config, those of them that did not
    run (or could say nothing on this data), and the parts of running ones an absent column
    switched off. Built from pipeline.ScanOutcome.skipped / .partial."""

    enabled: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # enabled detector -> why it did not run
    partial: dict[str, list[str]] = field(default_factory=dict)  # running detector -> parts not checked

    @classmethod
    def of(cls, names: Iterable[str], skipped: dict[str, str], partial: dict[str, list[str]],
           disabled: Iterable[str] = ()) -> "Checks":
        """`names`: every registered detector; `disabled`: those switched off in config (not
        checks the admin expects, so neither counted nor listed)."""
        off = set(disabled)
        enabled = tuple(n for n in names if n not in off)
        return cls(enabled, {n: skipped[n] for n in enabled if n in skipped},
                   {n: list(partial[n]) for n in enabled if partial.get(n) and n not in skipped})

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.partial

    @property
    def ran(self) -> int:
        return len(self.enabled) - len(self.skipped)


_RU_REASONS = [  # registry/pipeline wording -> Russian; anything else is shown as written
    (re.compile(r"^disabled in config$"), "отключено в настройках"),
    (re.compile(r"needs (\S+?\.csv), (\S+?\.csv) \(table not provided\)"), r"нет таблиц \1, \2"),
    (re.compile(r"needs (\S+?\.csv) \(table not provided\)"), r"нет таблицы \1"),
    (re.compile(r"column (\S+) in (\S+) \(absent or empty in ([^)]+)\)"), r"колонка \1 в \3 (её нет или она пуста)"),
    (re.compile(r"(\S+?\.csv) with an? (\S+) column \(table not provided\)"), r"таблица \1 с колонкой \2 (таблицы нет)"),
    (re.compile(r": not checked, needs "), ": не проверено, нужна "),
    # a digest's brief forms (_BRIEF)
    (re.compile(r": needs "), ": нужна "),
    (re.compile(r": the data has no stage history$"), ": в данных нет истории этапов"),
    (re.compile(r"^needs "), "нужна "),
    (re.compile(r"\) or (колонка|таблица) "), r") или \1 "),
    # bot.pipeline.stale_line: the time-based detectors skipped on stale data
    (re.compile(r"^the data is ([\d.]+) days old, (\d+) working days without a record \(newest (.+?) in (.+?); "
                r"limit \[source\] stale_after_days = ([\d.]+) working days\): idle deals, waiting leads and "
                r"silent clients are not judged on it - export fresh data$"),
     lambda m: (f"данные устарели: последняя запись — {m[3]} в {m[4]}, {i18n.count(float(m[1]), 'day', 'ru')} "
                f"назад, рабочих дней без записей: {m[2]} (предел [source] stale_after_days = {m[5]}); "
                "зависшие сделки, заявки без ответа и молчащих клиентов по ним не оценить — выгрузите свежие данные")),
    (re.compile(r"^the data has no dated records up to now, so idle time cannot be judged$"),
     "в данных нет записей с датой до этого момента, поэтому простой не оценить"),
    # the detectors' own skip_reason lines (a deals-only export, as HubSpot's and Pipedrive's web
    # UIs give it, hits the stalled_deal one on every scan)
    # ... and on a web-UI export whose deals file has a last-modified column (stalled_deal names it)
    (re.compile(r'^no stage history, activities or emails: when a deal was last touched is unknown; the deals '
                r'column "(.+?)" can stand in: read the deals file again as activities \((\[source\.files\] .+); '
                r'see the README, web-UI exports\)$'),
     r'нет истории этапов, активностей и писем: неизвестно, когда сделки трогали в последний раз; подойдёт '
     r'колонка «\1» из файла сделок: прочитайте его ещё раз как активности (\2; подробнее — в README)'),
    (re.compile(r"^no stage history, activities or emails: when a deal was last touched is unknown "
                r"\(provide (\S+), (\S+) or (\S+)\)$"),
     r"нет истории этапов, активностей и писем: неизвестно, когда сделки трогали в последний раз "
     r"(выгрузите \1, \2 или \3)"),
    (re.compile(r"^no lost deal has a loss_reason \(([\d,]+) lost deals in (.+)\): "
                r"record why deals are lost to get loss-reason insights$"),
     r"ни у одной проигранной сделки нет причины проигрыша (loss_reason; проиграно \1 в \2): "
     r"записывайте причину, чтобы получать разбор причин"),
    # conversion_drop: an export without lost deals (Odoo's default list hides them as archived)
    (re.compile(r"^no lost deal among ([\d,]+) won deals in (.+?): the export leaves lost deals out, and "
                r"conversion read from it would be near 100%; export the lost deals too .*$"),
     lambda m: (f"в {m[2]} нет ни одной проигранной сделки, только выигранные ({i18n.number(int(m[1].replace(',', '')), 'ru')}): "
                "в выгрузку не попали проигранные, и конверсия по ней была бы около 100%; выгрузите и их "
                "(Odoo убирает проигранные сделки в архив: перед выгрузкой включите в списке фильтр проигранных или "
                'архивных записей и укажите [source.columns.deals] active = "Активно")')),
    (re.compile(r"^no pipeline stages known \(provide stages\.csv or source\.stages in config\)$"),
     "этапы воронки неизвестны (выгрузите stages.csv или задайте stages в [source])"),
    # the parts a Need switches off (detectors' `Need(part=...)`), as they open a partial line
    (re.compile(r"^leads without a manager: "), "заявки без менеджера: "),
    (re.compile(r"^unanswered leads: "), "заявки без ответа: "),
    (re.compile(r"^new leads per manager \(new_leads\): "), "новые заявки по менеджерам (new_leads): "),
    (re.compile(r"^calls, meetings and done tasks as touches: "), "звонки, встречи и выполненные задачи как касания: "),
    (re.compile(r"^stage-to-stage conversion: "), "конверсия между этапами: "),
    (re.compile(r"^conversion to won: "), "конверсия в выигрыш: "),
    # conversion_drop._RealHistory.line (after ": not checked, needs " became Russian above)
    (re.compile(r"нужна a real stage history \(stage_history\.csv; it was derived from (.+?)\); "
                r"conversion to won is measured from deal outcomes instead; a web-UI export has no stage "
                r"history: the CRM's API gives it \(\[source\] kind: (.+?)\), or a stage history report "
                r"\(Salesforce: Opportunity History, its To Stage and Edit Date; HubSpot: the \"Date entered\" "
                r"columns of the stages, added to the deals export; amoCRM / Kommo: the events list \(Analytics → "
                r"Events list\) as \[source\.files\] stage_history\)"),
     r"нужна настоящая история этапов (stage_history.csv; сейчас она выведена из \1); "
     r"конверсию в выигрыш считаем по итогам сделок; в выгрузке из веб-интерфейса CRM истории этапов нет, "
     r"её даёт API CRM ([source] kind: \2) или отчёт об истории этапов (Salesforce: Opportunity History, "
     r"его To Stage и Edit Date; HubSpot: колонки «Date entered» этапов, добавленные в выгрузку сделок; "
     r"amoCRM / Kommo: «Аналитика → Список событий» как [source.files] stage_history)"),
    # deal_risk's skip_reason (predict.model): too little history, or a model no better than the stage
    (re.compile(r"^not enough history to predict: (\d+) closed deals with a closing date \((\d+) won, (\d+) lost\); "
                r"needs at least (\d+) closed with >= (\d+) won and >= (\d+) lost: .*$"),
     r"мало истории для прогноза: закрытых сделок с датой закрытия \1 (выиграно \2, проиграно \3); "
     r"нужно не меньше \4, из них выигранных \5 и проигранных \6"),
    # lead_score's skip_reason (predict.leads)
    (re.compile(r"^not enough lead outcomes to score leads: (\d+) leads with an outcome \((\d+) converted, (\d+) not\); "
                r"needs at least (\d+) with >= (\d+) converted and >= (\d+) not: .*$"),
     r"мало заявок с итогом для оценки: \1 (сконвертировано \2, нет \3); нужно не меньше \4, "
     r"из них сконвертированных \5 и несконвертированных \6"),
    (re.compile(r"^no lead status says (converted|not converted) \((\d+) converted, (\d+) not; statuses that say "
                r"neither: (.+)\): list yours in \[detectors\.lead_score\] converted_statuses and not_converted_statuses$"),
     lambda m: (f"ни один статус заявки не означает «{'сконвертирована' if m[1] == 'converted' else 'не сконвертирована'}» "
                f"(сконвертировано {m[2]}, нет {m[3]}; статусы без итога: {m[4]}): перечислите свои в "
                "[detectors.lead_score] converted_statuses и not_converted_statuses")),
    (re.compile(r"^not enough lead outcomes on both sides of the backtest cutoff.*$"),
     "мало заявок с итогом, чтобы проверить оценку на прошлом"),
    (re.compile(r"^the lead model does not beat the base rate on the backtest: .*$"),
     "оценка заявок по истории компании не точнее средней конверсии, поэтому не используется"),
    (re.compile(r"^not enough history (to backtest|before the backtest cutoff).*$"),
     "мало истории, чтобы проверить прогноз на прошлом (подробнее: crm-pulse model report)"),
    (re.compile(r"^the model does not beat the stage-only baseline on the backtest: .*$"),
     "прогноз по истории компании не точнее доли выигранных по этапу, поэтому не используется "
     "(подробнее: crm-pulse model report)"),
]


def check_name(detector: str, lang: str) -> str:
    ru, en = CHECK_NAMES.get(detector, (detector.replace("_", " "),) * 2)
    return ru if lang == "ru" else en


def _reason(text: str, lang: str) -> str:
    if lang != "ru":
        return text
    for pattern, repl in _RU_REASONS:
        text = pattern.sub(repl, text)
    return text


def unchecked_text(checks: Checks, lang: str, brief: bool = False) -> str | None:
    """'not checked: lead SLA (needs leads.csv (table not provided)); partly: ...', or None.

    `brief` (a digest, read every day by people who do not run the loader): each reason says what
    is missing (_BRIEF), its first clause without long asides (how an admin gets the data: the
    CRM's API, which report, which TOML key), the skipped and the partly checked as two
    sentences, and, when advice was cut, where the admin finds it (check-config). In full, a
    director's footer on a web-UI amoCRM export was about 600 characters in every digest."""
    if checks.complete:
        return None
    ru = lang == "ru"
    cut = False

    def why(x: str) -> str:
        nonlocal cut
        if not brief:
            return _reason(x, lang)
        for pattern, repl in _BRIEF + (_EN_BRIEF if not ru else []):
            x, n = pattern.subn(repl, x)
            cut = cut or bool(n and pattern in _ADVICE)
        x = _KEY_ASIDE.sub("", _reason(x, lang))
        short = _short(x)
        cut = cut or short != x
        return short

    parts = []
    if checks.skipped:
        shown = "; ".join(f"{check_name(n, lang)} ({why(r)})" for n, r in checks.skipped.items())
        parts.append(("не проверено: " if ru else "not checked: ") + shown)
    if checks.partial:
        shown = "; ".join(f"{check_name(n, lang)} ({'; '.join(why(x) for x in lines)})"
                          for n, lines in checks.partial.items())
        parts.append(("проверено не полностью: " if ru else "partly checked: ") + shown)
    if not brief:
        return "; ".join(parts)
    text = ". ".join(_cap(p) if k else p for k, p in enumerate(parts))
    if cut:
        text += (". Подробности для администратора бота — в crm-pulse check-config" if ru
                 else ". Details for the bot's admin: crm-pulse check-config")
    return text


# A digest's reason (brief): what is missing, in the words of the checks it is listed under.
_BRIEF = [
    # under "partly checked" each part's own "not checked" says it twice
    (re.compile(r": not checked, needs "), ": needs "),
    # a stage history derived from the deals is no stage history to the reader (nor "not real");
    # where to get one is the admin's (in _ADVICE: check-config is named)
    (_HISTORY_ADVICE := re.compile(r": needs a real stage history \(stage_history\.csv; it was derived from "
                                   r"[^)]*\);.*$"), ": the data has no stage history"),
    # a table that is not there: its column does not matter to the reader
    (re.compile(r"(\S+?\.csv) with an? \S+ column \(table not provided\)"
                r"(?: or \1 with an? \S+ column \(table not provided\))*"), r"\1 (table not provided)"),
]
_ADVICE = {_HISTORY_ADVICE}  # _BRIEF rewrites that leave out how to get the data
# a TOML key as an aside ("new leads per manager (new_leads)") is the admin's word
_KEY_ASIDE = re.compile(r" \([a-z]+(?:_[a-z]+)+\)")
_EN_BRIEF = [  # "(needs leads.csv (table not provided))": one parenthesis, as the Russian says it
    (re.compile(r"needs ((?:\S+?\.csv, )*\S+?\.csv) \(table not provided\)"), r"no \1"),
    (re.compile(r"column (\S+) in \S+ \(absent or empty in ([^)]+)\)"), r"column \1 in \2 (absent or empty)"),
]


_LONG_ASIDE = 40  # characters: a parenthesis longer than this is advice, not the reason


def _short(reason: str) -> str:
    """A reason's first clause (up to the first "; " outside parentheses), without parenthesised
    asides longer than _LONG_ASIDE characters, holding a "; " or naming a TOML section."""
    out, depth, start = [], 0, 0
    i = 0
    while i < len(reason):
        ch = reason[i]
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                aside = reason[start:i + 1]
                if len(aside) <= _LONG_ASIDE and "; " not in aside and "[" not in aside:
                    out.append(aside)
                elif out and out[-1].endswith(" "):
                    out[-1] = out[-1].rstrip()
        elif depth == 0:
            if reason.startswith("; ", i):
                break
            out.append(ch)
        i += 1
    return "".join(out).strip()


def nothing_found_text(checks: Checks | None, lang: str) -> str:
    """The scan's "nothing needs attention", said only when every enabled check ran in full."""
    ru = lang == "ru"
    rest = unchecked_text(checks, lang) if checks is not None else None
    if rest is None:
        return "Ничего тревожного не найдено." if ru else "Nothing needs attention."
    n, k = len(checks.enabled), checks.ran  # type: ignore[union-attr]
    if k == 0:
        return (f"Ничего не удалось проверить: {rest}." if ru else f"Nothing could be checked: {rest}.")
    if ru:
        return f"Ничего не найдено по {i18n.count(k, 'check', 'ru', case='datv')} из {n}; {rest}."
    return f"Nothing found by {k} of {n} checks; {rest}."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- still-open reminders -------------------------------------------------------------------

def _lower_first(title: Line) -> Line:
    """'Сделка «X» стоит…' -> 'сделка «X» стоит…' after "Ещё открыто:"; a CRM name stays as written."""
    if not title or title[0].kind != "text" or not title[0].text:
        return title
    first = title[0].text
    if len(first) > 1 and first[1].isupper():  # an abbreviation such as "SLA"
        return title
    return (Span(first[:1].lower() + first[1:], "text"),) + tuple(title[1:])


def _still_open(reminders: list[tuple], ctx: Ctx) -> tuple[Line | None, list[str]]:
    """One block: a line per item due again and not worse ("still open: ..., last sent 1 week
    ago"), most important first, at most MAX_STILL_OPEN, then "and N more"; and the fingerprints
    shown. Each reminder is (insight, when last sent[, its facts then]): a lead backlog is
    reminded while fewer than twice as many leads wait (bot.notify_log), so its count then is
    said when it moved ("11 leads ... last sent 7 days ago, when there were 6")."""
    if not reminders:
        return None, []
    standing = _standings([{_currency(r[0]): _money(r[0])} for r in reminders])
    order = sorted(range(len(reminders)), key=lambda k: (-SEVERITY_RANK.get(reminders[k][0].severity, 0), -standing[k]))
    ranked = [reminders[k] for k in order]
    shown = ranked[:MAX_STILL_OPEN]

    def one(ins: Insight, last: datetime | None, before: dict | None = None) -> Line:
        title = _lower_first(render_insight(ins, ctx.lang, now=ctx.now, you=ctx.you).title)
        if last is None or ctx.now is None:
            return title
        ago = i18n.ago(last, ctx.now, ctx.lang)
        then = (before or {}).get("leads") if ins.detector == "lead_sla" and ins.facts.get("backlog") else None
        if isinstance(then, int) and then != ins.facts.get("leads"):
            return title + ctx.t(" (сообщали {ago}, тогда их было {n})", " (last sent {ago}, when there were {n})",
                                 ago=ago, n=ctx.num(then))
        return title + ctx.t(" (сообщали {ago})", " (last sent {ago})", ago=ago)

    if len(ranked) == 1:
        block: Line = ctx.t("Ещё открыто: ", "Still open: ") + one(*shown[0])
    else:
        # not "unchanged": a backlog's count and every wait move while not worse
        block = ctx.t("Ещё открыто ({n}):", "Still open ({n}):", n=str(len(ranked)))
        for reminder in shown:
            block += (Span("\n• "),) + one(*reminder)
        if len(ranked) > len(shown):
            block += (Span("\n"),) + ctx.t("…и ещё {n}: /insights", "…and {n} more: /insights",
                                          n=str(len(ranked) - len(shown)))
    return block, [r[0].fingerprint for r in shown]


def _money(ins: Insight) -> float:
    """Money at stake as the digest ranks it (what the stalled_deal template reports)."""
    if ins.detector != "stalled_deal":
        return 0.0
    try:
        return float(ins.facts.get("amount") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def build_digest(insights: list[Insight], *, lang: str, now: datetime, tz: str | tzinfo | None = None,
                 max_items: int = 10, recipient_name: str | None = None, all_quiet: bool = False,
                 recipient_role: str | None = None, still_open: list[tuple] | None = None,
                 checks: Checks | None = None, marks: dict[str, Mark] | None = None) -> Digest | None:
    """The digest one recipient gets for one run, or None when there is nothing to send.

    `insights` are shown in full; `still_open` are (insight, when it was last sent[, its facts
    then]) due again and not worse: one line each at the end. `checks` says what the scan could not check: a quiet
    digest names it instead of "all quiet", and a director's digest always carries it.

    `marks` makes it the person's full list (/insights) instead of the day's digest: every
    item the scan found for them, those they snoozed or marked done (fingerprint -> Mark)
    marked so and shown after the open ones, under a heading of its own.

    `recipient_role="director"` makes manager-facing items speak about the manager ("his
    deal") instead of to them ("your deal"), for escalated items a director receives. Left
    None, a digest holding any director-audience insight is taken to be a director's.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    reminders = list(still_open or [])
    zone = _tz(tz)
    local_now = now.astimezone(zone) if zone is not None else now
    everyone = insights + [r[0] for r in reminders]
    if recipient_role is None:  # routing gives director-audience insights only to directors
        you = not any(i.audience.role == "director" for i in everyone)
    else:
        you = recipient_role != "director"
    ctx = Ctx(i18n.check_lang(lang), local_now, you=you)
    day = local_now.date()
    greeting = ctx.t("{n}, ", "{n}, ", n=name(recipient_name)) if recipient_name else ()
    when = i18n.day_month(day, ctx.lang)
    missing = unchecked_text(checks, ctx.lang, brief=True) if checks is not None else None
    block, reminded = _still_open(reminders, ctx)
    if not insights:
        if block is None and not all_quiet:
            return None
        if block is not None:
            header = greeting + (ctx.t("сводка на {d}: нового нет.", "your digest for {d}: nothing new.", d=when)
                                 if greeting else
                                 ctx.t("Сводка на {d}: нового нет.", "Digest for {d}: nothing new.", d=when))
        elif missing is None:
            header = greeting + (ctx.t("сводка на {d}: всё спокойно, нового ничего нет.",
                                       "your digest for {d}: all quiet, nothing new.", d=when) if greeting else
                                 ctx.t("Сводка на {d}: всё спокойно, нового ничего нет.",
                                       "Digest for {d}: all quiet, nothing new.", d=when))
        else:  # silence from checks that could not run is not "all quiet"
            found = nothing_found_text(checks, ctx.lang).split(";")[0].rstrip(".:")
            found = found[:1].lower() + found[1:]
            header = greeting + (ctx.t("сводка на {d}: {f}.", "your digest for {d}: {f}.", d=when, f=found) if greeting else
                                 ctx.t("Сводка на {d}: {f}.", "Digest for {d}: {f}.", d=when, f=found))
        unchecked = ctx.t("{x}.", "{x}.", x=_cap(missing)) if missing else None
        return Digest(ctx.lang, day, header, None, quiet=block is None, still_open=block, reminded=reminded,
                      unchecked=unchecked)

    settled = set((marks or {}).keys())
    ranked = _rank(_candidates(insights, ctx), settled)
    kept = _group_by_detector(ranked[:max_items], settled)
    more = len(ranked) - len(kept)
    items = [_item(c, k, ctx, marks) for k, c in enumerate(kept, start=1)]
    total = len(ranked)
    count = ctx.count(total, "item")
    subheader = ctx.t("Самое важное — первым.", "Most important first.") if total > 1 else None
    if marks is None:
        header = greeting + (ctx.t("сводка на {d}: {n}", "your digest for {d}: {n}", d=when, n=count) if greeting else
                             ctx.t("Сводка на {d}: {n}", "Digest for {d}: {n}", d=when, n=count))
        footer = ctx.t("И ещё {n}: /insights", "And {n} more: /insights", n=str(more)) if more else None
    else:
        header = greeting + (ctx.t("всё, что видно на {d}: {n}", "everything as of {d}: {n}", d=when, n=count)
                             if greeting else ctx.t("Всё, что видно на {d}: {n}", "Everything as of {d}: {n}", d=when, n=count))
        snoozed = sum(1 for m in marks.values() if m.kind == "snoozed")
        if marks:
            subheader = ctx.t("Самое важное — первым; отложенное ({s}) и сделанное ({k}) — в конце, с пометкой.",
                              "Most important first; snoozed ({s}) and done ({k}) last, marked.",
                              s=str(snoozed), k=str(len(marks) - snoozed))
        footer = ctx.t("Не показано менее важных: {n}.", "Less important, not shown: {n}.", n=str(more)) if more else None
    note = (Span(maturity.digest_hint(ctx.lang)),) if not you else None
    unchecked = ctx.t("{x}.", "{x}.", x=_cap(missing)) if missing and not you else None
    return Digest(ctx.lang, day, header, subheader, items, more, total, footer, note=note,
                  still_open=block, reminded=reminded, unchecked=unchecked)
