"""A recipient's digest for one run: header, the items that matter most, "and N more".

Order: every item is ranked by severity, then money at stake; the top `max_items` are kept
(so the most important always makes the cut) and shown grouped by detector, the group with
the most important item first. A manager's stalled deals become one item listing the deals,
oldest first; each deal keeps its own compact row of buttons (snooze 1 day / 7 days, done,
details) so a person can act on one deal without touching the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

from detectors.insight import SEVERITY_RANK, Insight
from messages import i18n, maturity
from messages.model import Button
from messages.render import Ctx, Line, RenderedInsight, Span, name, render_insight
from messages.templates.stalled_deal import compact_line

MAX_DEALS_IN_GROUP = 10  # more would make a wall of text; the rest are counted


@dataclass
class DigestItem:
    detector: str
    severity: str
    title: Line
    body: list[Line]
    action: Line | None
    buttons: list[list[Button]]  # compact labels, numbered like the item ("2 · ⏰ 1 д")
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

    def closing(self) -> list[Line]:
        """The lines after the items, in order: the "and N more" line, then the note."""
        return [line for line in (self.footer, self.note) if line]


def _tz(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None or isinstance(tz, tzinfo):
        return tz
    return ZoneInfo(tz)


def compact_buttons(number: str, fingerprint: str, lang: str, *, feedback: bool = True) -> list[list[Button]]:
    ru = lang == "ru"
    rows = [[Button(f"{number} · ⏰ 1 д" if ru else f"{number} · ⏰ 1d", f"snooze:{fingerprint}:1d"),
             Button(f"{number} · ⏰ 7 д" if ru else f"{number} · ⏰ 7d", f"snooze:{fingerprint}:7d"),
             Button(f"{number} · ✅", f"done:{fingerprint}")]]
    if feedback:
        rows.append([Button(f"{number} · 👍", f"useful:{fingerprint}"),
                     Button(f"{number} · 👎", f"notuseful:{fingerprint}"),
                     Button(f"{number} · ℹ️", f"details:{fingerprint}")])
    else:
        rows[0].append(Button(f"{number} · ℹ️", f"details:{fingerprint}"))
    return rows


@dataclass
class _Candidate:
    """An item before numbering: one rendered insight, or a manager's stalled deals."""

    detector: str
    severity_rank: int
    money: float
    rendered: RenderedInsight | None = None
    deals: list[Insight] | None = None
    manager_name: str | None = None


def _candidates(insights: list[Insight], ctx: Ctx) -> list[_Candidate]:
    stalled: dict[str, list[Insight]] = {}
    for ins in insights:
        if ins.detector == "stalled_deal" and ins.audience.manager_id and ins.facts.get("kind") != "abandoned":
            stalled.setdefault(ins.audience.manager_id, []).append(ins)
    out: list[_Candidate] = []
    grouped = {mid for mid, deals in stalled.items() if len(deals) > 1}
    for ins in insights:
        if ins.detector == "stalled_deal" and ins.audience.manager_id in grouped and ins.facts.get("kind") != "abandoned":
            continue
        r = render_insight(ins, ctx.lang, now=ctx.now, you=ctx.you)
        out.append(_Candidate(ins.detector, r.severity_rank, r.money, rendered=r))
    for mid in sorted(grouped):
        deals = sorted(stalled[mid], key=lambda i: -float(i.facts.get("days_idle") or 0))
        out.append(_Candidate(
            "stalled_deal", max(SEVERITY_RANK[d.severity] for d in deals),
            sum(float(d.facts.get("amount") or 0) for d in deals), deals=deals,
            manager_name=deals[0].facts.get("manager_name")))
    return out


def _rank(candidates: list[_Candidate]) -> list[_Candidate]:
    return sorted(candidates, key=lambda c: (-c.severity_rank, -c.money))


def _group_by_detector(kept: list[_Candidate]) -> list[_Candidate]:
    order: list[str] = []
    for c in kept:
        if c.detector not in order:
            order.append(c.detector)
    return [c for det in order for c in kept if c.detector == det]


def _stalled_group_item(c: _Candidate, number: int, ctx: Ctx) -> DigestItem:
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
        body.append(ctx.t("{k}) ", "{k}) ", k=f"{number}.{k}") + compact_line(ctx, deal.facts))
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
        action = ctx.t("Спросите менеджера о следующих шагах, начиная с первой сделки.",
                       "Ask the manager about next steps, starting with the first deal.")
    severity = next(k for k, v in SEVERITY_RANK.items() if v == c.severity_rank)
    return DigestItem("stalled_deal", severity, title, body, action, buttons, [d.fingerprint for d in deals], c.money)


def _item(c: _Candidate, number: int, ctx: Ctx) -> DigestItem:
    if c.deals is not None:
        return _stalled_group_item(c, number, ctx)
    r = c.rendered
    assert r is not None
    return DigestItem(r.detector, r.severity, r.title, r.body, r.action,
                      compact_buttons(str(number), r.fingerprint, ctx.lang), [r.fingerprint], r.money)


def build_digest(insights: list[Insight], *, lang: str, now: datetime, tz: str | tzinfo | None = None,
                 max_items: int = 10, recipient_name: str | None = None, all_quiet: bool = False,
                 recipient_role: str | None = None) -> Digest | None:
    """The digest one recipient gets for one run, or None when there is nothing to send.

    `recipient_role="director"` makes manager-facing items speak about the manager ("his
    deal") instead of to them ("your deal"), for escalated items a director receives. Left
    None, a digest holding any director-audience insight is taken to be a director's.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    zone = _tz(tz)
    local_now = now.astimezone(zone) if zone is not None else now
    if recipient_role is None:  # routing gives director-audience insights only to directors
        you = not any(i.audience.role == "director" for i in insights)
    else:
        you = recipient_role != "director"
    ctx = Ctx(i18n.check_lang(lang), local_now, you=you)
    day = local_now.date()
    greeting = ctx.t("{n}, ", "{n}, ", n=name(recipient_name)) if recipient_name else ()
    when = i18n.day_month(day, ctx.lang)
    if not insights:
        if not all_quiet:
            return None
        header = greeting + (ctx.t("сводка на {d}: всё спокойно, нового ничего нет.",
                                   "your digest for {d}: all quiet, nothing new.", d=when) if greeting else
                             ctx.t("Сводка на {d}: всё спокойно, нового ничего нет.",
                                   "Digest for {d}: all quiet, nothing new.", d=when))
        return Digest(ctx.lang, day, header, None, quiet=True)

    ranked = _rank(_candidates(insights, ctx))
    kept = _group_by_detector(ranked[:max_items])
    more = len(ranked) - len(kept)
    items = [_item(c, k, ctx) for k, c in enumerate(kept, start=1)]
    total = len(ranked)
    count = ctx.count(total, "item")
    header = greeting + (ctx.t("сводка на {d}: {n}", "your digest for {d}: {n}", d=when, n=count) if greeting else
                         ctx.t("Сводка на {d}: {n}", "Digest for {d}: {n}", d=when, n=count))
    subheader = ctx.t("Самое важное — первым.", "Most important first.") if total > 1 else None
    footer = ctx.t("И ещё {n}: /insights", "And {n} more: /insights", n=str(more)) if more else None
    note = (Span(maturity.digest_hint(ctx.lang)),) if not you else None
    return Digest(ctx.lang, day, header, subheader, items, more, total, footer, note=note)
