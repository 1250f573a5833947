"""The Russian corpus: every template that counts something or names a person, rendered with
1, 2, 5, 11, 21, 22 and 25 (and a few numbers Babel groups or writes with a comma), each phrase
checked against forms written out by hand here, not computed by the code under test.

A reader notices "Передайте 1 сделка" or "ждёт ответа менеджера Тимур Бекмуханов" at once; these
tests are what keeps such phrases out of every message we send.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.maturity.data_hints import DataHint
from detectors.insight import Audience, Insight
from messages import i18n, maturity, russian, samples
from messages.digest import Checks, build_digest, nothing_found_text
from messages.render import plain, render_insight

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
COUNTS = (1, 2, 5, 11, 21, 22, 25)


def forms(text: str) -> dict[int, str]:
    """"сделку | сделки | сделок | ..." -> {1: "сделку", 2: "сделки", ...}, in the order of COUNTS."""
    words = [w.strip() for w in text.split("|")]
    assert len(words) == len(COUNTS), text
    return dict(zip(COUNTS, words))


def flat(text: str) -> str:
    """Babel's grouping and our number-noun joins are no-break spaces; compare with plain ones."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def words_of(insight: Insight, *, you: bool = True) -> str:
    r = render_insight(insight, "ru", now=NOW, you=you)
    lines = [plain(r.title), *(plain(b) for b in r.body)]
    if r.action:
        lines.append(plain(r.action))
    lines += [plain(d) for d in r.details]
    return flat("\n".join(lines))


def digest_words(digest) -> str:
    lines = [plain(digest.header)]
    for item in digest.items:
        lines += [plain(item.title), *(plain(b) for b in item.body), plain(item.action) if item.action else ""]
    lines += [plain(x) for x in digest.closing()]
    return flat("\n".join(lines))


# --- counted nouns: (case id, insight or text for n, phrase with {n} and {w}, the forms) ---------

def _plan(n: int, metric: str) -> Insight:
    ins = samples.manager_load()
    ins.facts["plan"] = {metric: [{"from_manager_id": "m3", "from_manager_name": "Ольга Ким", "to_manager_id": "m5",
                                   "to_manager_name": "Арман Жумабеков", "count": n}]}
    return ins


def _with(insight: Insight, **facts) -> Insight:
    insight.facts.update(facts)
    return insight


def _window(n: int) -> Insight:
    ins = samples.manager_load()
    ins.facts["metrics"]["new_leads"]["window_days"] = n
    return ins


def _hint(**facts) -> str:
    base = {"leads_n": 40, "window_start": "2026-11-01", "window_end": "2026-11-18", "assigned_share": 1.0,
            "median_minutes": 2.0, "fast_share": 1.0, "fast_minutes": 5.0, "managers_n": 4, "evenness_cv": 0.05,
            "signature": "automatic"}
    return flat(maturity.hint_text(DataHint("lead_distribution", "lead_assignment", {**base, **facts}), "ru"))


def _stalled_group(extra: int, role: str) -> str:
    deals = [samples.stalled_deal(deal_id=f"D-{k}", days=20 + k) for k in range(10 + extra)]
    return digest_words(build_digest(deals, lang="ru", now=NOW, recipient_role=role))


def _digest_of(n: int) -> str:
    leads = [Insight(detector="lead_sla", severity="warning", audience=Audience("manager", "m2"),
                     subject={"lead_id": f"L-{k}", "kind": "unanswered"}, facts=dict(samples.lead_sla().facts))
             for k in range(n)]
    return digest_words(build_digest(leads, lang="ru", now=NOW, max_items=3, recipient_role="manager"))


DEAL_ACCS = "сделку | сделки | сделок | сделок | сделку | сделки | сделок"
DEAL_NOMN = "сделка | сделки | сделок | сделок | сделка | сделки | сделок"
DAY = "день | дня | дней | дней | день | дня | дней"
LAST_DAYS = "последний {n} день | последние {n} дня | последние {n} дней | последние {n} дней | последний {n} день | " \
            "последние {n} дня | последние {n} дней"
WORKING_DAY = "рабочий день | рабочих дня | рабочих дней | рабочих дней | рабочий день | рабочих дня | рабочих дней"
WORKING_HOUR = "рабочий час | рабочих часа | рабочих часов | рабочих часов | рабочий час | рабочих часа | рабочих часов"
TIMES = "раз | раза | раз | раз | раз | раза | раз"

CORPUS = [
    # manager_load: the plan is an order, its counts are accusative objects
    ("load: Передайте N сделку", lambda n: words_of(_plan(n, "open_deals")), "Передайте {n} {w}: Ольга Ким → Арман Жумабеков",
     DEAL_ACCS),
    ("load: Направьте N следующую заявку", lambda n: words_of(_plan(n, "new_leads")), "Направьте {n} {w}: Ольга Ким",
     "следующую заявку | следующие заявки | следующих заявок | следующих заявок | следующую заявку | "
     "следующие заявки | следующих заявок"),
    ("load: за последние N дней", lambda n: words_of(_window(n)), "Новые заявки за {w}:", LAST_DAYS),
    ("load: Так было и N дней назад", lambda n: words_of(_with(samples.manager_load(), persist_days=n,
                                                               outside_band_days_before=n + 30)),
     "Так было и {n} {w} назад", DAY),
    # stalled_deal
    ("stalled: стоит N рабочих дней", lambda n: words_of(samples.stalled_deal(days=n)), "стоит {n} {w} на этапе", WORKING_DAY),
    ("stalled: без движения уже N", lambda n: words_of(samples.stalled_deal(days=n)), "без движения уже {n} {w}.", WORKING_DAY),
    ("stalled: за N рабочих дней или быстрее",
     lambda n: words_of(_with(samples.stalled_deal(), stage_limit_days=n, learned_days=n)), "за {n} {w} или быстрее",
     WORKING_DAY),
    ("stalled: ушли за последние N дней", lambda n: words_of(_with(samples.stalled_deal(), learn_days=n)),
     "ушли за {w}: 214", LAST_DAYS),
    ("abandoned: более чем в N раз", lambda n: words_of(_with(samples.stalled_abandoned(), abandon_factor=n)),
     "более чем в {n} {w} дольше", TIMES),
    ("abandoned: дольше, чем N рабочих дней",
     lambda n: words_of(_with(samples.stalled_abandoned(), abandon_after_days=n)), "дольше, чем {n} {w}.", WORKING_DAY),
    # silent_client
    ("silent: N дней не отвечает", lambda n: words_of(_with(samples.silent_client(), days_silent=n)), "{n} {w} не отвечает на", DAY),
    ("silent: без ответа N писем", lambda n: words_of(_with(samples.silent_client(), unanswered_emails=n)),
     "без ответа {n} {w}.", "письмо | письма | писем | писем | письмо | письма | писем"),
    ("silent: открывали N раз", lambda n: words_of(_with(samples.silent_client(), human_opens=n)),
     "открывали {n} {w} за", TIMES),
    ("silent: за N дней", lambda n: words_of(_with(samples.silent_client(), open_days=n)), "раз за {n} {w}, последний", DAY),
    # lead_sla
    ("lead: ждёт уже N рабочих часов", lambda n: words_of(_with(samples.lead_sla(), working_hours_waited=n)),
     "уже {n} {w}", WORKING_HOUR),
    ("lead: через N рабочих часов", lambda n: words_of(_with(samples.lead_sla(), sla_hours=n)),
     "не позже чем через {n} {w} после", WORKING_HOUR),
    # loss_reasons: "из" takes the genitive
    ("loss: у 1 из N проигранной сделки",
     lambda n: words_of(_with(samples.variants()["loss_reasons_data_quality"], lost_n=n, missing_n=1)),
     "Причина не указана у 1 из {n} {w}.",
     "проигранной сделки | проигранных сделок | проигранных сделок | проигранных сделок | проигранной сделки | "
     "проигранных сделок | проигранных сделок"),
    # conversion_drop
    ("conversion: N сделок против", lambda n: words_of(_with(samples.conversion_drop(), recent_n=n)),
     "({n} {w} против 640 раньше)", DEAL_NOMN),
    ("conversion: дошла до следующего этапа за N дней",
     lambda n: words_of(_with(samples.conversion_drop(), horizon_days=n)), "до следующего этапа за {n} {w}", DAY),
    # digest
    ("digest: сводка на ...: N пунктов", _digest_of, "Сводка на 28 ноября: {n} {w}\n",
     "пункт | пункта | пунктов | пунктов | пункт | пункта | пунктов"),
    ("digest: …и ещё N сделок", lambda n: _stalled_group(n, "manager"), "…и ещё {n} {w}.", DEAL_NOMN),
    ("digest: ничего не найдено по N проверкам",
     lambda n: flat(nothing_found_text(Checks.of([f"check_{k}" for k in range(n + 1)], {"check_0": "disabled in config"},
                                                 {}), "ru")),
     "Ничего не найдено по {n} {w} из", "проверке | проверкам | проверкам | проверкам | проверке | проверкам | проверкам"),
    # maturity data hints
    ("maturity: N заявок", lambda n: _hint(leads_n=n), "по 18 ноября — {n} {w}, с менеджером",
     "заявка | заявки | заявок | заявок | заявка | заявки | заявок"),
    ("maturity: у N менеджеров", lambda n: _hint(managers_n=n), "(с учётом ставки) у {n} {w}: разброс",
     "менеджера | менеджеров | менеджеров | менеджеров | менеджера | менеджеров | менеджеров"),
    ("maturity: из N активностей",
     lambda n: flat(maturity.hint_text(DataHint("auto_actions", "auto_activities",
                                                {"auto_n": 1, "marked_n": n, "auto_share": 1 / n}), "ru")),
     "создала 1 из {n} {w} (",
     "активности | активностей | активностей | активностей | активности | активностей | активностей"),
]


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("case_id, render, phrase, expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_count_agrees_with_its_number(case_id, render, phrase, expected, n):
    word = forms(expected)[n]  # may hold {n} itself: "последние {n} дней", the adjective before the number
    want = phrase.replace("{w}", word).format(n=n)
    text = render(n)
    assert want in text, f"{case_id}: expected {want!r} in\n{text}"


@pytest.mark.parametrize("n, want", [
    (1021, "Передайте 1 021 сделку"),  # Babel groups the thousands; agreement follows 1021, not "021"
    (1234, "Передайте 1 234 сделки"),
    (1011, "Передайте 1 011 сделок"),
    (100, "Передайте 100 сделок"),
    (101, "Передайте 101 сделку"),
    (111, "Передайте 111 сделок"),
])
def test_agreement_uses_the_integer_not_its_formatted_text(n, want):
    assert want in words_of(_plan(n, "open_deals"))


def test_fractions_take_the_genitive_singular_and_a_rounded_number_agrees_as_shown():
    assert "уже 1,5 рабочего часа" in words_of(_with(samples.lead_sla(), working_hours_waited=1.5))
    assert "уже 6,5 рабочего часа" in words_of(samples.lead_sla())
    assert flat(i18n.count(1.04, "day", "ru")) == "1 день"  # shown as "1": read as one day
    assert flat(i18n.count(2.96, "day", "ru")) == "3 дня"
    assert flat(i18n.count(21, "deal", "ru", case="accs")) == "21 сделку"
    assert flat(i18n.count(21, "deal", "en", case="accs")) == "21 deals"
    assert i18n.noun(1234, "deal", "ru") == "сделки"  # "1 234": the grouping space is no word boundary
    assert i18n.noun(1021, "deal", "ru", case="accs") == "сделку"
    assert i18n.noun(5, "deal", "en") == "deals"


def test_english_keeps_its_own_plurals_in_the_same_places():
    r = render_insight(_plan(1, "open_deals"), "en", now=NOW)
    assert "Hand over 1 deal:" in flat(plain(r.action))
    r = render_insight(_plan(21, "open_deals"), "en", now=NOW)
    assert "Hand over 21 deals:" in flat(plain(r.action))
    r = render_insight(_window(21), "en", now=NOW)
    assert "New leads in the last 21 days" in flat(" ".join(plain(b) for b in r.body))


def test_an_unknown_noun_or_case_is_a_clear_error():
    with pytest.raises(ValueError, match="no counted noun 'dael'"):
        i18n.count(2, "dael", "ru")
    with pytest.raises(ValueError, match="Russian case must be one of"):
        i18n.count(2, "deal", "ru", case="accusative")


# --- names -----------------------------------------------------------------------------------

# (nominative, genitive, accusative): male and female, double surnames, surname first with a
# patronymic, Kazakh names the dictionary keeps unchanged, a surname that declines only for men.
NAMES = [
    ("Тимур Бекмуханов", "Тимура Бекмуханова", "Тимура Бекмуханова"),
    ("Ольга Ким", "Ольги Ким", "Ольгу Ким"),
    ("Алексей Ким", "Алексея Кима", "Алексея Кима"),
    ("Анна Римская-Корсакова", "Анны Римской-Корсаковой", "Анну Римскую-Корсакову"),
    ("Сергей Петров-Водкин", "Сергея Петрова-Водкина", "Сергея Петрова-Водкина"),
    ("Иванова Мария Петровна", "Ивановой Марии Петровны", "Иванову Марию Петровну"),
    ("Айгерим Сапарова", "Айгерим Сапаровой", "Айгерим Сапарову"),
    ("Жанна Сейткали", "Жанны Сейткали", "Жанну Сейткали"),
]
# Not a person's name we can decline: a company, Latin letters, an id, one word that is no first name.
UNKNOWN = ["ООО Ромашка", "John Smith", "m02", "Ромашка", "А. Петров"]


def _stalled(manager: str, *, escalated: bool = True) -> Insight:
    return _with(samples.stalled_deal(), manager_name=manager, escalated=escalated)


def _segment(manager: str, kind: str) -> Insight:
    ins = samples.conversion_drop_kinds()["conversion_drop_segment" if kind == "segment" else "conversion_drop_mix_shift"]
    seg = {"dimension": "manager", "segment": manager, "segment_id": "m9"}
    if kind == "segment":
        ins.facts["segment"] = seg
    else:
        ins.facts["mix"] = {**ins.facts["mix"], **seg}
    return ins


NAME_CORPUS = [
    # (case id, render(name) -> text, phrase with the declined name {gen}/{acc}, phrase for a name we cannot decline {nom})
    ("lead_sla: ждёт ответа менеджера X", lambda m: words_of(_with(samples.lead_sla(), manager_name=m), you=False),
     "Заявка ждёт ответа менеджера {gen} уже 6,5 рабочего часа", "Заявка ждёт ответа уже 6,5 рабочего часа (менеджер: {nom})"),
    ("silent_client: не отвечает на письма менеджера X",
     lambda m: words_of(_with(samples.silent_client(), manager_name=m), you=False),
     "не отвечает на письма менеджера {gen}, но читает их", "не отвечает на письма, но читает их (менеджер: {nom})"),
    ("stalled_deal: сделка менеджера X", lambda m: words_of(_stalled(m), you=False),
     "Сделка «Поставка арматуры А500С, 40 т» менеджера {gen} стоит 23 рабочих дня",
     "Сделка «Поставка арматуры А500С, 40 т» стоит 23 рабочих дня на этапе «Переговоры»\nМенеджер: {nom}; клиент"),
    ("stalled_deal: Уточните у X", lambda m: words_of(_stalled(m), you=False),
     "Уточните у {gen} следующий шаг по сделке и срок.", "Уточните у менеджера ({nom}) следующий шаг"),
    ("abandoned: Попросите X", lambda m: words_of(_with(samples.stalled_abandoned(), manager_name=m), you=False),
     "Попросите {acc} разобрать эти сделки", "Попросите менеджера ({nom}) разобрать эти сделки"),
    ("digest: Спросите X о следующих шагах",
     lambda m: digest_words(build_digest([_stalled(m, escalated=False), _stalled(m, escalated=False)], lang="ru", now=NOW,
                                         recipient_role="director")),
     "Спросите {acc} о следующих шагах", "Спросите менеджера о следующих шагах"),
    ("conversion: Из сделок менеджера X", lambda m: words_of(_segment(m, "segment")),
     "Из сделок менеджера {gen}, дошедших до", "Из сделок менеджера ({nom}), дошедших до"),
    ("conversion: приходится на менеджера X", lambda m: words_of(_segment(m, "mix")),
     "приходится на менеджера {acc} (", "приходится на менеджера ({nom}) ("),
]


@pytest.mark.parametrize("nom, gen, acc", NAMES, ids=[n[0] for n in NAMES])
@pytest.mark.parametrize("case_id, render, declined, _fallback", NAME_CORPUS, ids=[c[0] for c in NAME_CORPUS])
def test_names_are_declined_where_the_sentence_needs_a_case(case_id, render, declined, _fallback, nom, gen, acc):
    text = render(nom)
    want = declined.format(gen=gen, acc=acc)
    assert want in text, f"{case_id}: expected {want!r} in\n{text}"


@pytest.mark.parametrize("nom", UNKNOWN)
@pytest.mark.parametrize("case_id, render, _declined, fallback", NAME_CORPUS, ids=[c[0] for c in NAME_CORPUS])
def test_a_name_we_cannot_decline_is_said_without_a_case(case_id, render, _declined, fallback, nom):
    text = render(nom)
    want = fallback.format(nom=nom)
    assert want in text, f"{case_id}: expected {want!r} in\n{text}"


def test_person_reads_names_and_refuses_everything_else():
    assert russian.person("Тимур Бекмуханов", "datv") == "Тимуру Бекмуханову"
    assert russian.person("Бекмуханов Тимур", "gent") == "Бекмуханова Тимура"  # surname first
    assert russian.person("Ольга Ким", "datv") == "Ольге Ким"
    assert russian.person("  Тимур   Бекмуханов ", "gent") == "Тимура Бекмуханова"
    assert russian.person("Тимур", "gent") == "Тимура"  # a first name alone
    for other in UNKNOWN + ["", "Тимур Бекмуханов Ерланович Ким", "Тимур2"]:
        assert russian.person(other, "gent") is None, other
    with pytest.raises(ValueError, match="Russian case"):
        russian.person("Тимур Бекмуханов", "genitive")


def test_every_counted_noun_has_every_case_for_any_number():
    """A noun added to NOUNS that pymorphy3 cannot inflect fails here, not in a scan at night."""
    for word in i18n.NOUNS:
        for case in russian.CASES:
            for n in [*range(0, 130), 1001, 1_000_000, 0.5, 1.5, 2.25]:
                text = flat(i18n.count(n, word, "ru", case=case))
                assert text.startswith(flat(i18n.number(n, "ru")) + " ") and len(text.split(" ")) >= 2


def test_animate_nouns_take_the_genitive_as_an_object():
    # "Попросите 21 менеджера / 2 менеджеров / 5 менеджеров", "Назначьте 2 менеджеров"
    assert [flat(i18n.count(n, "manager", "ru", case="accs")) for n in (1, 2, 5, 21)] == \
        ["1 менеджера", "2 менеджеров", "5 менеджеров", "21 менеджера"]
    assert [flat(i18n.count(n, "week", "ru", case="ablt")) for n in (1, 2, 5)] == \
        ["1 неделей", "2 неделями", "5 неделями"]
