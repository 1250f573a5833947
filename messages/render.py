"""One neutral rendering of an Insight that Telegram, Slack and the terminal each format.

Words are lines of Spans. A Span says what its text is, not how it looks: "text" is our own
wording, "strong" our own emphasised wording, "name" anything that came from the CRM (client,
deal, stage, manager names, ids). Formatters escape every span for their platform and
additionally neutralise "name" spans (no Slack mention, no link, no markup can come from CRM
data), so templates never think about escaping.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Callable, Literal, Union

from detectors.insight import Insight
from messages import i18n
from messages.escape import unicode_safe
from messages.model import Button

log = logging.getLogger(__name__)

SpanKind = Literal["text", "strong", "name"]
MAX_NAME_CHARS = 120  # a 10,000-character deal title must not eat a whole message
_BIDI_RISKY = {"R", "AL", "RLE", "RLO", "LRE", "LRO", "RLI", "LRI", "FSI", "PDF", "PDI"}


@dataclass(frozen=True)
class Span:
    text: str
    kind: SpanKind = "text"

    def __post_init__(self) -> None:
        # every formatter measures or encodes span text: a lone surrogate would make it raise
        safe = unicode_safe(self.text)
        if safe is not self.text:
            object.__setattr__(self, "text", safe)


Line = tuple[Span, ...]
Piece = Union[str, Span, Line, int, float]


def name(value: Any, limit: int = MAX_NAME_CHARS) -> Span:
    """A CRM string shown exactly as written (only shortened when absurdly long, one line)."""
    text = "" if value is None else str(value)
    text = " ".join(text.split()) if "\n" in text or "\r" in text else text.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if any(unicodedata.bidirectional(ch) in _BIDI_RISKY for ch in text):
        text = "\u2068" + text + "\u2069"  # isolate: Hebrew/Arabic or a stray U+202E cannot flip our words
    return Span(text, "name")


def strong(text: str) -> Span:
    return Span(text, "strong")


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def line(template: str, **values: Piece) -> Line:
    """'Сделка «{title}» стоит {days}' + values -> Line; CRM values stay separate Spans."""
    spans: list[Span] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > pos:
            spans.append(Span(template[pos:match.start()]))
        spans.extend(_as_spans(values[match.group(1)]))
        pos = match.end()
    if pos < len(template):
        spans.append(Span(template[pos:]))
    return tuple(spans)


def _as_spans(value: Piece) -> Line:
    if isinstance(value, Span):
        return (value,)
    if isinstance(value, tuple):
        return value
    return (Span(str(value)),)


def fit_lines(lines: list[str], limit: int, length: Callable[[str], int] = len, *, keep_last: bool = False) -> list[str]:
    """Drop whole lines (never part of one, so no tag or escape is cut) until the text fits.

    The first line (the title) always stays; with keep_last the last one (the thing to do)
    stays too and lines are dropped from just before it. A dropped run is shown as "…".
    """
    kept = list(lines)
    tail = [kept.pop()] if keep_last and len(kept) > 1 else []
    dropped = False
    while len(kept) > 1 and length("\n".join(kept + ["…"] + tail)) > limit:
        kept.pop()
        dropped = True
    out = kept + (["…"] if dropped else []) + tail
    if length("\n".join(out)) > limit and tail:  # the title and the action alone are too long
        return fit_lines(kept + (["…"] if dropped else []), limit, length)
    return out


def plain(ln: Line) -> str:
    return "".join(span.text for span in ln)


@dataclass
class Words:
    """What a template produces: title, what happened + the numbers, one thing to do, details."""

    title: Line
    body: list[Line]
    action: Line | None = None
    details: list[Line] = field(default_factory=list)
    money: float = 0.0  # amount at stake, for ordering a digest


@dataclass
class RenderedInsight:
    detector: str
    fingerprint: str
    severity: str
    lang: str
    title: Line
    body: list[Line]
    action: Line | None
    details: list[Line]
    buttons: list[list[Button]]
    money: float = 0.0

    @property
    def severity_rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.severity]


@dataclass(frozen=True)
class Ctx:
    """What a template needs besides the insight: language, the clock (if any), who reads it."""

    lang: str
    now: datetime | None = None
    you: bool = True  # manager-facing texts say "you"; False when a director reads them
    tz: tzinfo | None = None  # the company's timezone for dates (else that of `now`, if any)

    def t(self, ru: str, en: str, **values: Piece) -> Line:
        return line(ru if self.lang == "ru" else en, **values)

    def s(self, ru: str, en: str) -> str:
        return ru if self.lang == "ru" else en

    def count(self, n: float, word: str, case: str = "nomn", before: str = "") -> str:
        """"5 сделок"; `case` is the Russian case the phrase stands in ("accs" after "Передайте")."""
        return i18n.count(n, word, self.lang, case=case, before=before)

    def person(self, value: Any, case: str) -> Span | None:
        """A person's name from the CRM declined into a Russian `case` ("ответа Тимура
        Бекмуханова"), or None when it cannot be (a company, a Latin name): the template then
        says it without a case ("менеджер: Тимур Бекмуханов"). English: the name as written."""
        if value is None or str(value).strip() == "":
            return None
        if self.lang != "ru" or case == "nomn":
            return name(value)
        from messages import russian

        declined = russian.person(str(value), case)
        return None if declined is None else name(declined)

    def num(self, x: float) -> str:
        return i18n.number(x, self.lang)

    def pct(self, rate: float) -> str:
        return i18n.percent(rate, self.lang)

    def money(self, amount: float, currency: str | None) -> str:
        return i18n.money(amount, currency, self.lang)

    @property
    def zone(self) -> tzinfo | None:
        return self.tz or (self.now.tzinfo if self.now is not None else None)

    def date(self, value: str) -> str:
        return i18n.day_month(value, self.lang, tz=self.zone)

    def moment(self, value: str) -> str:
        """"18 ноября, 11:28" / "18 November, 11:28" in the company's timezone: a moment whose hour
        matters (data that ends this morning), where "18 ноября" alone says nothing on the 18th."""
        when = i18n.parse_when(value)
        if not isinstance(when, datetime):
            return self.date(value)
        local = when.astimezone(self.zone) if self.zone is not None and when.tzinfo is not None else when
        return f"{i18n.day_month(local, self.lang)}, {local:%H:%M}"

    def period(self, start: str, end: str) -> str:
        return i18n.period(start, end, self.lang)

    def when(self, value: str) -> str:
        """Relative ("3 дня назад") when the clock is known, else the date."""
        if self.now is not None:
            return i18n.ago(value, self.now, self.lang)
        return self.date(value)


Template = Callable[[Insight, Ctx], Words]
TEMPLATES: dict[str, Template] = {}


def template(detector: str) -> Callable[[Template], Template]:
    def wrap(fn: Template) -> Template:
        TEMPLATES[detector] = fn
        return fn
    return wrap


def insight_buttons(fingerprint: str, lang: str) -> list[list[Button]]:
    """The buttons every insight carries (the bot wires their actions)."""
    ru = lang == "ru"
    return [
        [Button("⏰ Отложить на 1 день" if ru else "⏰ Snooze 1 day", f"snooze:{fingerprint}:1d"),
         Button("⏰ На 7 дней" if ru else "⏰ 7 days", f"snooze:{fingerprint}:7d"),
         Button("✅ Сделано" if ru else "✅ Done", f"done:{fingerprint}")],
        [Button("👍 Полезно" if ru else "👍 Useful", f"useful:{fingerprint}"),
         Button("👎 Не полезно" if ru else "👎 Not useful", f"notuseful:{fingerprint}"),
         Button("ℹ️ Подробнее" if ru else "ℹ️ Details", f"details:{fingerprint}")],
    ]


def render_insight(insight: Insight, lang: str, *, now: datetime | None = None, you: bool = True,
                   refs: dict[str, dict[str, dict[str, str]]] | None = None,
                   tz: tzinfo | None = None) -> RenderedInsight:
    """Insight -> neutral words in `lang`. An unknown detector, or facts a template cannot use,
    get the generic rendering from facts instead of an error: a message is better than none.
    `refs` (bot.explain.evidence_refs) lets the details name the evidence (deal titles, client
    names) instead of showing CRM ids."""
    from messages import templates  # noqa: F401  (registers every template)

    ctx = Ctx(i18n.check_lang(lang), now, you, tz)
    fn = TEMPLATES.get(insight.detector)
    words: Words
    if fn is None:
        words = generic_words(insight, ctx)
    else:
        try:
            words = fn(insight, ctx)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("template %s could not use facts of %s (%s); generic rendering used",
                        insight.detector, insight.fingerprint, exc)
            words = generic_words(insight, ctx)
    return RenderedInsight(
        detector=insight.detector, fingerprint=insight.fingerprint, severity=insight.severity, lang=ctx.lang,
        title=words.title, body=words.body, action=words.action,
        details=words.details + common_details(insight, ctx, refs), buttons=insight_buttons(insight.fingerprint, ctx.lang),
        money=words.money,
    )


def insight_text(insight: Insight, lang: str, *, now: datetime | None = None, tz: tzinfo | None = None) -> str:
    """Plain text of one insight (title, what happened, what to do): the JSON "text" field."""
    r = render_insight(insight, lang, now=now, tz=tz)
    lines = [plain(r.title), *(plain(b) for b in r.body)]
    if r.action:
        lines.append(plain(r.action))
    return "\n".join(lines)


def _scalar(value: Any, ctx: Ctx) -> str | None:
    if isinstance(value, bool):
        return ctx.s("да", "yes") if value else ctx.s("нет", "no")
    if isinstance(value, (int, float)):
        return ctx.num(value) if isinstance(value, int) or abs(value) >= 1 else i18n.number(value, ctx.lang, digits=3)
    if isinstance(value, str):
        return value
    return None


def generic_words(insight: Insight, ctx: Ctx) -> Words:
    """Any insight, any facts: the detector's name and its simple facts as "key: value" lines."""
    title = (name(insight.detector.replace("_", " ").capitalize()),)
    body: list[Line] = []
    for key, value in insight.facts.items():
        shown = _scalar(value, ctx)
        if shown is not None and len(body) < 8:
            body.append((name(key.replace("_", " ")), Span(": "), name(shown)))
    return Words(title=title, body=body)


STAT_KEYS = ("p_value", "q_value")
EVIDENCE_LABELS = {"deal_ids": ("Сделки", "Deals"), "email_ids": ("Письма", "Emails"), "lead_ids": ("Заявки", "Leads"),
                   "activity_ids": ("Действия", "Activities"), "client_ids": ("Клиенты", "Clients")}


def stat(label: str, value: float, lang: str = "en") -> str:
    """"p = 0,0037" (ru) / "p = 0.0037" (en)."""
    from messages.methods import p_shown

    return p_shown(label, value, lang)


ACTIVITY_WORDS = {"call": ("звонок", "call"), "meeting": ("встреча", "meeting"), "task": ("задача", "task"),
                  "email": ("письмо", "email"), "note": ("заметка", "note")}


def _quoted(text: str, ctx: Ctx) -> str:
    return ctx.s(f"«{text}»", f"“{text}”")


def _on(at: str | None, ctx: Ctx) -> str | None:
    try:
        return ctx.date(at) if at else None
    except ValueError:
        return None


def evidence_label(key: str, ref: dict[str, str], ctx: Ctx) -> str | None:
    """One piece of evidence as people know it: «Поставка труб» — ТОО Ромашка; «КП», 12 мая;
    звонок 3 мая — «Поставка труб»; заявка от 2 мая (сайт). None when there is nothing to say."""
    client, when = ref.get("client"), _on(ref.get("at"), ctx)
    if key == "deal_ids":
        if ref.get("title"):
            return _quoted(ref["title"], ctx) + (f" — {client}" if client else "")
        return ctx.s(f"сделка клиента {client}", f"a deal of {client}") if client else None
    if key == "client_ids":
        return client
    if key == "email_ids":
        head = _quoted(ref["subject"], ctx) if ref.get("subject") else ctx.s("письмо", "email")
        tail = ", ".join(x for x in (when, client) if x)
        return f"{head}, {tail}" if tail else (head if ref.get("subject") else None)
    if key == "activity_ids":
        kind = ref.get("type")
        ru, en = ACTIVITY_WORDS.get(kind or "", (kind or "действие", kind or "activity"))
        about = _quoted(ref["deal"], ctx) if ref.get("deal") else client
        text = " ".join(x for x in (ctx.s(ru, en), when) if x)
        return f"{text} — {about}" if about else (text if when or kind else None)
    if key == "lead_ids":
        if not when:
            return None
        text = ctx.s(f"заявка от {when}", f"lead of {when}")
        return text + (f" ({ref['source']})" if ref.get("source") else "")
    return None


def common_details(insight: Insight, ctx: Ctx, refs: dict[str, dict[str, dict[str, str]]] | None = None) -> list[Line]:
    """The evidence behind the words: statistics, method, and the deals, clients, emails behind
    it by name (from `refs`); an id only where the data names nothing. Shown under "details"."""
    f = insight.facts
    out: list[Line] = []
    stats = [stat(k.replace("_value", ""), f[k], ctx.lang) for k in STAT_KEYS if isinstance(f.get(k), (int, float))]
    if isinstance(f.get("method"), str):
        from messages.methods import method_words

        stats.append(ctx.s("метод: ", "method: ") + method_words(f["method"], ctx.lang, overdispersion=f.get("overdispersion")))
    if stats:
        out.append(ctx.t("Статистика: {s}", "Statistics: {s}", s=name("; ".join(stats), limit=400)))
    for kind, ids in insight.evidence.items():
        if not ids:
            continue
        fallback = kind.removesuffix("_ids").replace("_", " ").capitalize()
        ru, en = EVIDENCE_LABELS.get(kind, (fallback, fallback))
        known = (refs or {}).get(kind, {})
        labels = [evidence_label(kind, known[str(i)], ctx) if str(i) in known else None for i in ids[:10]]
        if not any(labels):  # nothing named: the ids, as the last resort
            shown = ", ".join(str(i) for i in ids[:10]) + (f" (+{len(ids) - 10})" if len(ids) > 10 else "")
            out.append(ctx.t("{k}: {ids}", "{k}: {ids}", k=ctx.s(ru, en), ids=name(shown, limit=400)))
            continue
        spans: list[Span] = []
        for n, (i, label) in enumerate(zip(ids[:10], labels)):
            spans += ([Span("; ")] if n else []) + [name(label or str(i), limit=100)]
        if len(ids) > 10:
            spans.append(Span(ctx.s(f"; и ещё {len(ids) - 10}", f"; and {len(ids) - 10} more")))
        out.append(ctx.t("{k}: ", "{k}: ", k=ctx.s(ru, en)) + tuple(spans))
    out.append(ctx.t("Код: {fp}", "ID: {fp}", fp=name(insight.fingerprint)))
    return out
