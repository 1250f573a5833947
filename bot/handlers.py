"""What the bot answers when a person writes or presses a button, channel-neutral.

Inbound (bot.channels.base) -> list of OutgoingMessage. Only people listed in the config are
served; anyone else gets a polite refusal showing their id (so the admin can add them) and
nothing more. Every button acts only on insights the person may see: a forged callback with
someone else's fingerprint changes nothing. Unknown input gets a short help, never silence.
In a team chat a button acts for the team only when a director presses it (on_team_button);
answers meant for one person there are shown to them alone (OutgoingMessage.private_to).
"""
from __future__ import annotations

import dataclasses
import html
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from bot.channels.base import Inbound, OutgoingMessage
from bot.config import Config, Recipient
from bot.delivery import (WEEKLY_DETECTORS, decisions, insight_payload, preview, target_language, target_timezone,
                          text_payload)
from bot.notify_log import Policy
from bot.routing import insights_for
from bot.state import StateStore
from detectors.insight import Audience, Insight

log = logging.getLogger("crm_pulse.handlers")
UTC = timezone.utc

COMMANDS = ("start", "help", "insights", "digest", "snoozed", "lang", "preview", "stats", "scan", "maturity", "cancel")
ADMIN_COMMANDS = ("preview", "stats", "scan")
SNOOZE_DAYS = {"1d": 1, "7d": 7}

TEXTS: dict[str, dict[str, str]] = {
    "refuse": {
        "ru": "Извините, я работаю только с сотрудниками из списка в настройках. Ваш id: {id} "
              "({channel}). Передайте его администратору, чтобы он добавил вас.",
        "en": "Sorry, I only talk to people listed in my configuration. Your id: {id} ({channel}). "
              "Send it to your admin so they can add you.",
    },
    "start": {
        "ru": "Здравствуйте, {name}! Я присылаю короткую сводку по CRM: что требует внимания, откуда это "
              "известно и что сделать.",
        "en": "Hello, {name}! I send a short CRM digest: what needs attention, how we know, and what to do.",
    },
    "help": {
        "ru": "Команды:\n{p}digest — сводка на сегодня: что требует внимания, без отложенного и сделанного\n"
              "{p}insights — всё, что нашла последняя проверка; отложенное (до какого числа) и сделанное — "
              "с пометкой\n{p}snoozed — что отложено\n{p}lang ru|en — язык\n"
              "{p}maturity — проверка зрелости автоматизации",
        "en": "Commands:\n{p}digest — today's digest: what needs attention, without what you snoozed or did\n"
              "{p}insights — everything the latest scan found, snoozed (until when) and done items marked\n"
              "{p}snoozed — what you snoozed\n{p}lang ru|en — language\n{p}maturity — automation maturity check",
    },
    "help_admin": {
        "ru": "Для администратора:\n{p}preview — что уйдёт при следующей сводке и кому\n{p}stats — полезность "
              "по проверкам и ошибки отправки\n{p}scan — проверить CRM сейчас",
        "en": "For admins:\n{p}preview — what the next digest would send, to whom\n{p}stats — usefulness per "
              "check and failed messages\n{p}scan — scan the CRM now",
    },
    "short_help": {
        "ru": "Не понял. Напишите {p}help — там список команд.",
        "en": "I didn't get that. Type {p}help for the list of commands.",
    },
    "admin_only": {"ru": "Эта команда только для администраторов.", "en": "This command is for admins only."},
    "no_scan": {"ru": "Данных ещё нет: первая проверка CRM пока не прошла.",
                "en": "No data yet: the first CRM scan has not run."},
    "nothing": {"ru": "Сейчас ничего не требует вашего внимания.", "en": "Nothing needs your attention right now."},
    "no_snoozed": {"ru": "Отложенного нет.", "en": "Nothing is snoozed."},
    "snoozed_head": {"ru": "Отложено:", "en": "Snoozed:"},
    "snoozed_item": {"ru": "{title} — до {until}", "en": "{title} — until {until}"},
    "unsnooze": {"ru": "Вернуть", "en": "Unsnooze"},
    "lang_set": {"ru": "Язык: русский.", "en": "Language: English."},
    "lang_usage": {"ru": "Напишите {p}lang ru или {p}lang en.", "en": "Type {p}lang ru or {p}lang en."},
    "snoozed_ok": {"ru": "Отложено до {until}.", "en": "Snoozed until {until}."},
    "unsnoozed_ok": {"ru": "Снова слежу за этим.", "en": "Watching this again."},
    "not_snoozed": {"ru": "Это не было отложено.", "en": "That was not snoozed."},
    "done_ok": {"ru": "Отмечено как сделанное. Напомню, только если станет хуже.",
                "en": "Marked as done. I'll only bring it up again if it gets worse."},
    "useful_ok": {"ru": "Спасибо, учту.", "en": "Thanks, noted."},
    "stale": {"ru": "Этот пункт уже неактуален.", "en": "This item is no longer current."},
    "scan_off": {"ru": "Проверка по команде недоступна в этом режиме.", "en": "Scanning on demand is not available here."},
    "scan_busy": {"ru": "Проверка уже идёт, подождите.", "en": "A scan is already running, please wait."},
    "preview_head": {"ru": "Если бы сводка ушла сейчас:", "en": "If the digest went out now:"},
    "preview_line": {"ru": "{who}: в сводке {send} из {total}", "en": "{who}: {send} of {total} in the digest"},
    "preview_reminders": {"ru": " + напоминаний «ещё открыто»: {n}", "en": " + {n} “still open” reminder(s)"},
    "preview_nobody": {"ru": "Никому ничего не уйдёт.", "en": "Nobody would get anything."},
    "preview_checks_unknown": {"ru": "Что не удалось проверить, станет известно после первой проверки CRM с запуска бота.",
                               "en": "What could not be checked is known after the first CRM scan since the bot started."},
    "preview_all_checked": {"ru": "Все включённые проверки ({n}) отработали полностью.",
                            "en": "Every enabled check ({n}) ran in full."},
    "maturity_off": {"ru": "Проверка зрелости сейчас недоступна.", "en": "The maturity check is not available right now."},
    # buttons in a team chat (a [[channels]] group): shown only to who pressed, except team_*
    "refuse_button": {
        "ru": "Эти кнопки — для сотрудников из настроек бота. Ваш id: {id} ({channel}): передайте его администратору.",
        "en": "These buttons are for people listed in the bot's settings. Your id: {id} ({channel}): send it to your admin.",
    },
    "group_not_yours": {
        "ru": "В чате команды отложить пункт или отметить сделанным может руководитель (для всех) или менеджер, "
              "о котором пункт (для себя). Оценить «полезно» может каждый.",
        "en": "In the team chat, a director (for everyone) or the manager the item is about (for themselves) may "
              "snooze it or mark it done. Anyone may rate it useful.",
    },
    "group_details_sent": {"ru": "Подробности — в личном чате со мной.", "en": "Details are in your private chat with me."},
    "own_snoozed": {"ru": "Отложено для вас до {until}. Для всей команды пункт откладывает руководитель.",
                    "en": "Snoozed for you until {until}. A director snoozes it for the whole team."},
    "own_done": {"ru": "Отмечено сделанным для вас. Для всей команды это отмечает руководитель.",
                 "en": "Marked done for you. A director marks it done for the whole team."},
    "team_snoozed": {"ru": "⏸ Отложено для всей команды до {until} ({who}): {title}",
                     "en": "⏸ Snoozed for the whole team until {until} ({who}): {title}"},
    "team_done": {"ru": "✅ Отмечено сделанным для всей команды ({who}): {title}. Напомню, только если станет хуже.",
                  "en": "✅ Marked done for the whole team ({who}): {title}. I'll bring it up only if it gets worse."},
}


def t(key: str, lang: str, **kw: Any) -> str:
    return TEXTS[key][lang].format(**kw)


def parse_command(text: str) -> tuple[str | None, str]:
    """'/lang@PulseBot en' -> ('lang', 'en'); Slack '/pulse snoozed' and bare 'snoozed' too."""
    s = (text or "").strip()
    if s.lower().startswith("/pulse"):
        s = s[len("/pulse"):].strip()
        if not s:
            return "help", ""
    slash = s.startswith("/")
    s = s.lstrip("/")
    word, _, arg = s.partition(" ")
    word = word.split("@")[0].lower()
    if word in COMMANDS:
        return word, arg.strip()
    if slash:
        return "?", arg.strip()  # an unknown /command
    return None, s


def _now() -> datetime:
    return datetime.now(UTC)


ScanNow = Callable[[str], Awaitable[str]]  # (the asker's language) -> the answer in it


class Handlers:
    """Callable as a channel's `on_inbound`."""

    def __init__(self, config: Config, store: StateStore, *, clock: Callable[[], datetime] = _now,
                 scan_now: ScanNow | None = None, maturity: Any = None,
                 data_provider: Callable[[], Any] | None = None,
                 checks_provider: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.scan_now = scan_now
        self._maturity = maturity
        self.data_provider = data_provider or (lambda: None)
        # messages.digest.Checks of the latest scan in this process (bot.scheduler.PulseJobs), or None
        self.checks_provider = checks_provider or (lambda: None)

    async def __call__(self, inbound: Inbound) -> list[OutgoingMessage]:
        return await self.handle(inbound)

    # ------------------------------------------------------------------ entry
    async def handle(self, inbound: Inbound) -> list[OutgoingMessage]:
        person = self.config.find_person(inbound.channel, inbound.user_id)
        in_group = ((inbound.channel == "telegram" and inbound.chat_id != inbound.user_id)
                    or (inbound.channel == "slack" and inbound.chat_id[:1] in ("C", "G")))
        if person is None:
            from messages.i18n import pick_language
            lang = pick_language(None, inbound.language_code, self.config.language)
            log.info("refused unknown %s user %s", inbound.channel, inbound.user_id)
            who = {"id": inbound.user_id, "channel": inbound.channel.capitalize()}
            if in_group:  # the refusal is for them alone, never posted to the group
                return [self.private(inbound, t("refuse_button" if inbound.action else "refuse", lang, **who))]
            return [self.reply(inbound, t("refuse", lang, **who))]
        team = self.team_chat(inbound) if in_group and inbound.action and not inbound.action.startswith("mq:") else None
        if team is not None:
            try:
                return self.on_team_button(inbound, person, team, self.lang(person, inbound))
            except Exception:  # a person gets a short answer, the log gets the traceback
                log.exception("team button %r from %s failed", inbound.action, person.id)
                return [self.private(inbound, t("stale", self.lang(person, inbound)))]
        if in_group:
            # asked in a group: a person's insights are private, so the answer goes to their own chat
            inbound = dataclasses.replace(inbound, chat_id=inbound.user_id, message_id=None)
        lang = self.lang(person, inbound)
        try:
            maturity = await self._maybe_maturity(inbound, person)
            if maturity is not None:
                return maturity
            if inbound.action:
                return await self.on_action(inbound, person, lang)
            return await self.on_text(inbound, person, lang)
        except Exception:  # a person gets a short answer, the log gets the traceback
            log.exception("handling %r from %s failed", inbound.text or inbound.action, person.id)
            return [self.reply(inbound, t("short_help", lang, p=self._prefix(inbound)))]

    def lang(self, person: Recipient, inbound: Inbound | None = None) -> str:
        from messages.i18n import pick_language

        own = self.store.language(person.id) or person.language
        return pick_language(own, inbound.language_code if inbound else None, self.config.language)

    # ------------------------------------------------------------------ maturity
    def maturity_flow(self) -> Any:
        if self._maturity is None:
            from bot.maturity.flow import MaturityFlow  # imported only when the check is used

            self._maturity = MaturityFlow(self.store.engine, self.data_provider, self.clock,
                                          default_language=self.config.language, prefix=self.store.prefix)
        return self._maturity

    async def _maybe_maturity(self, inbound: Inbound, person: Recipient) -> list[OutgoingMessage] | None:
        is_mq = bool(inbound.action and inbound.action.startswith("mq:"))
        cmd, _ = parse_command(inbound.text or "") if inbound.text and not inbound.action else (None, "")
        if not (is_mq or cmd in ("maturity", "cancel") or (cmd is None and inbound.text)):
            return None
        try:
            flow = self.maturity_flow()
        except ImportError:
            if is_mq or cmd == "maturity":
                return [self.reply(inbound, t("maturity_off", self.lang(person, inbound)))]
            return None
        if cmd is None and not is_mq and not flow.is_active(person.id):
            return None  # free text outside a check: our short help
        lang_person = _PersonView(person, self.store.language(person.id) or person.language)
        return await flow.handle(inbound, lang_person)

    # ------------------------------------------------------------------ commands
    async def on_text(self, inbound: Inbound, person: Recipient, lang: str) -> list[OutgoingMessage]:
        cmd, arg = parse_command(inbound.text or "")
        p = self._prefix(inbound)
        if cmd in ADMIN_COMMANDS and not person.is_admin:
            return [self.reply(inbound, t("admin_only", lang))]
        if cmd == "start":
            return [self.reply(inbound, t("start", lang, name=person.display_name) + "\n\n" + self.help_text(person, lang, p))]
        if cmd == "help":
            return [self.reply(inbound, self.help_text(person, lang, p))]
        if cmd == "insights":
            return self.cmd_insights(inbound, person, lang, everything=True)
        if cmd == "digest":
            return self.cmd_insights(inbound, person, lang, everything=False)
        if cmd == "snoozed":
            return [self.cmd_snoozed(inbound, person, lang)]
        if cmd == "lang":
            choice = arg.lower().strip()
            if choice not in ("ru", "en"):
                return [self.reply(inbound, t("lang_usage", lang, p=p))]
            self.store.set_language(person.id, choice, self.clock())
            return [self.reply(inbound, t("lang_set", choice))]
        if cmd == "preview":
            return [self.cmd_preview(inbound, lang)]
        if cmd == "stats":
            from bot.stats import collect_stats, format_stats
            return [self.reply(inbound, format_stats(collect_stats(self.store), lang, codes=False))]
        if cmd == "scan":
            if self.scan_now is None:
                return [self.reply(inbound, t("scan_off", lang))]
            return [self.reply(inbound, await self.scan_now(lang))]
        return [self.reply(inbound, t("short_help", lang, p=p))]

    def help_text(self, person: Recipient, lang: str, p: str) -> str:
        text = t("help", lang, p=p)
        if person.is_admin:
            text += "\n\n" + t("help_admin", lang, p=p)
        return text

    def _latest(self) -> tuple[datetime, list[Insight]] | None:
        latest = self.store.latest_scan()
        if latest is None:
            return None
        _, data_now, insights = latest
        return data_now, insights

    def visible(self, person: Recipient) -> dict[str, Insight]:
        """The person's insights from the latest scan, by fingerprint (the only ones buttons may touch)."""
        latest = self._latest()
        if latest is None:
            return {}
        return {i.fingerprint: i for i in insights_for(person, latest[1])}

    def cmd_insights(self, inbound: Inbound, person: Recipient, lang: str, *, everything: bool) -> list[OutgoingMessage]:
        from bot.delivery import digest_payloads
        from messages.digest import Mark, build_digest

        latest = self._latest()
        if latest is None:
            return [self.reply(inbound, t("no_scan", lang))]
        data_now, insights = latest
        items = insights_for(person, insights)
        policy = Policy.from_config(self.config.delivery)
        decided = decisions(self.store, person.id, items, self.clock(), policy)
        marks: dict[str, Mark] | None = None
        if everything:  # the full list: every item, what the person snoozed or did marked so
            entries = self.store.log_entries(person.id)
            marks = {}
            for i, d in decided:
                if d.reason == "snoozed":
                    marks[i.fingerprint] = Mark("snoozed", entries[i.fingerprint].snoozed_until)
                elif d.reason == "suppressed":
                    marks[i.fingerprint] = Mark("done")
        else:  # the day's digest: without what is snoozed, done or weekly
            items = [i for i, d in decided if d.reason not in ("snoozed", "suppressed")
                     and i.detector not in WEEKLY_DETECTORS]
        digest = build_digest(items, lang=lang, now=data_now, tz=target_timezone(person, self.config),
                              max_items=self.config.delivery.max_items * (3 if everything else 1),
                              recipient_name=person.name or None, recipient_role=person.role
                              if person.role != "admin" else "director", marks=marks)
        if digest is None:
            return [self.reply(inbound, t("nothing", lang))]
        return [OutgoingMessage(inbound.channel, inbound.chat_id, payload)
                for payload in digest_payloads(inbound.channel, digest)]

    def cmd_snoozed(self, inbound: Inbound, person: Recipient, lang: str) -> OutgoingMessage:
        from messages.render import insight_text

        now = self.clock()
        entries = self.store.snoozed(person.id, now)
        if not entries:
            return self.reply(inbound, t("no_snoozed", lang))
        visible = self.visible(person)
        tz = target_timezone(person, self.config)
        lines, buttons = [t("snoozed_head", lang)], []
        for n, e in enumerate(entries, start=1):
            insight = visible.get(e.fingerprint)
            title = insight_text(insight, lang).split("\n")[0] if insight else e.detector
            until = e.snoozed_until.astimezone(tz).strftime("%d.%m %H:%M")
            lines.append(f"{n}. " + t("snoozed_item", lang, title=title, until=until))
            buttons.append([{"label": f"{n} · {t('unsnooze', lang)}", "action": f"unsnooze:{e.fingerprint}"}])
        return self.reply(inbound, "\n".join(lines), buttons)

    def cmd_preview(self, inbound: Inbound, lang: str) -> OutgoingMessage:
        """Per recipient: items the next digest would show in full and "still open" reminders;
        then what the latest scan could not check, so "nothing to send" is not read as all clear."""
        from messages.digest import unchecked_text

        latest = self._latest()
        if latest is None:
            return self.reply(inbound, t("no_scan", lang))
        from bot.delivery import targets
        from bot.preview import preview_reasons

        plan = preview(latest[1], self.config, self.store, self.clock())
        everyone = targets(self.config)
        lines = [t("preview_head", lang)]
        for tid, info in plan.items():
            reasons = preview_reasons(info["reasons"], lang)  # bot.preview: the CLI's twin says it alike
            name = getattr(everyone.get(tid), "name", "") or ""
            who = f"{name} ({tid})" if name and name != tid else tid
            lines.append(t("preview_line", lang, who=who, send=info["send"], total=info["total"])
                         + (t("preview_reminders", lang, n=info["reminders"]) if info.get("reminders") else "")
                         + (f" ({reasons})" if reasons else ""))
        if not any(info["send"] or info.get("reminders") for info in plan.values()):
            lines.append(t("preview_nobody", lang))
        checks = self.checks_provider()
        if checks is None:
            lines.append(t("preview_checks_unknown", lang))
        else:
            missing = unchecked_text(checks, lang)
            lines.append(missing[:1].upper() + missing[1:] + "." if missing
                         else t("preview_all_checked", lang, n=len(checks.enabled)))
        return self.reply(inbound, "\n".join(lines))

    # ------------------------------------------------------------------ buttons
    async def on_action(self, inbound: Inbound, person: Recipient, lang: str) -> list[OutgoingMessage]:
        from messages.model import parse_action

        try:
            verb, args = parse_action(inbound.action or "")
        except ValueError:
            return [self.reply(inbound, t("short_help", lang, p=self._prefix(inbound)))]
        if not args:
            return [self.reply(inbound, t("stale", lang))]
        fp = args[0]
        now = self.clock()
        if verb == "unsnooze":
            ok = self.store.unsnooze(person.id, fp)
            return [self.reply(inbound, t("unsnoozed_ok" if ok else "not_snoozed", lang))]
        latest = self._latest()  # read once: the scan is every insight of the company
        insight = self._insight_for_button(person, fp, latest)
        if insight is None:
            return [self.reply(inbound, t("stale", lang))]
        if verb == "snooze":
            days = SNOOZE_DAYS.get(args[1] if len(args) > 1 else "1d", 1)
            until = now + timedelta(days=days)
            self.store.snooze(person.id, insight, until, now)
            local = until.astimezone(target_timezone(person, self.config)).strftime("%d.%m %H:%M")
            return [self.reply(inbound, t("snoozed_ok", lang, until=local))]
        if verb == "done":
            self.store.mark_done(person.id, insight, now)
            return [self.reply(inbound, t("done_ok", lang))]
        if verb in ("useful", "notuseful"):
            self.store.record_feedback(person.id, fp, insight.detector, verb == "useful", now)
            return [self.reply(inbound, t("useful_ok", lang))]
        if verb == "details":
            data_now = latest[0] if latest else now
            return [OutgoingMessage(inbound.channel, inbound.chat_id,
                                    insight_payload(inbound.channel, insight, lang,
                                                    data_now.astimezone(target_timezone(person, self.config)), details=True,
                                                    refs=self.evidence_refs(insight), role=person.role))]
        return [self.reply(inbound, t("short_help", lang, p=self._prefix(inbound)))]

    def evidence_refs(self, insight: Insight) -> dict[str, Any]:
        """The deals, clients, emails behind an insight by name, from the latest scan's data in
        this process; {} (the ids are shown) before the first scan or when the lookup fails."""
        data = self.data_provider()
        if data is None:
            return {}
        from bot.explain import evidence_refs
        try:
            return evidence_refs(insight, data)
        except Exception:  # odd data costs the names, never the details themselves
            log.warning("details of %s: evidence not named, ids shown", insight.fingerprint, exc_info=True)
            return {}

    def _insight_for_button(self, person: Recipient, fp: str,
                            latest: tuple[datetime, list[Insight]] | None) -> Insight | None:
        """The insight a button refers to, only if this person may see it: from the latest scan,
        or (for an item that already left the scan) from what the log says we sent them."""
        if latest is not None:
            insight = next((i for i in insights_for(person, latest[1]) if i.fingerprint == fp), None)
            if insight is not None:
                return insight
        entry = self.store.log_entry(person.id, fp)
        if entry is None:
            return None
        return Insight(detector=entry.detector, severity=entry.last_severity,  # type: ignore[arg-type]
                       audience=Audience("manager" if person.role == "manager" else "director", person.manager_id),
                       subject={}, facts=entry.last_facts, fingerprint=fp)

    # ------------------------------------------------------------------ buttons in a team chat
    def team_chat(self, inbound: Inbound) -> Any:
        """The [[channels]] entry (a team group) this chat is, or None."""
        for ch in self.config.channels:
            if inbound.channel == "telegram" and ch.telegram_chat_id == inbound.chat_id:
                return ch
            if inbound.channel == "slack" and ch.slack_channel_id == inbound.chat_id:
                return ch
        return None

    def _team_insight(self, team: Any, fp: str) -> Insight | None:
        """The team chat's item behind a button: in the latest scan, or (after it left the scan)
        as the team chat's notification log remembers it."""
        from bot.routing import for_team_channel

        latest = self._latest()
        if latest is not None:
            found = next((i for i in latest[1] if i.fingerprint == fp and for_team_channel(i)), None)
            if found is not None:
                return found
        entry = self.store.log_entry(team.id, fp)
        if entry is None:
            return None
        return Insight(detector=entry.detector, severity=entry.last_severity,  # type: ignore[arg-type]
                       audience=Audience("director"), subject={}, facts=entry.last_facts, fingerprint=fp)

    @staticmethod
    def is_owner(person: Recipient, insight: Insight) -> bool:
        """The manager a team item is about: its audience or subject names their manager_id, or
        it is a segment of one manager (conversion_drop's dimension "manager")."""
        if person.role != "manager" or not person.manager_id:
            return False
        about = {insight.audience.manager_id, insight.subject.get("manager_id"), insight.facts.get("manager_id")}
        if insight.subject.get("dimension") == "manager":
            about.add(insight.subject.get("segment"))
        return str(person.manager_id) in {str(m) for m in about if m}

    def on_team_button(self, inbound: Inbound, person: Recipient, team: Any, lang: str) -> list[OutgoingMessage]:
        """What a button under a team chat's digest means. A director acts for the whole team
        (the team chat's log, and their own): the group is told who did what. The manager the
        item is about acts for themselves only. Anyone listed may rate it useful. Everything
        else, and every answer meant for one person, is shown to that person alone."""
        from messages.model import parse_action
        from messages.render import insight_text

        try:
            verb, args = parse_action(inbound.action or "")
        except ValueError:
            return [self.private(inbound, t("short_help", lang, p=self._prefix(inbound)))]
        insight = self._team_insight(team, args[0]) if args and verb != "unsnooze" else None
        if insight is None:
            return [self.private(inbound, t("stale", lang))]
        now = self.clock()
        if verb in ("useful", "notuseful"):
            self.store.record_feedback(person.id, insight.fingerprint, insight.detector, verb == "useful", now)
            return [self.private(inbound, t("useful_ok", lang))]
        director = person.role == "director"
        if not (director or self.is_owner(person, insight)):
            return [self.private(inbound, t("group_not_yours", lang))]
        if verb == "details":
            data_now = (self._latest() or (now, []))[0]
            own_chat = OutgoingMessage(inbound.channel, inbound.user_id, insight_payload(
                inbound.channel, insight, lang, data_now.astimezone(target_timezone(person, self.config)),
                details=True, refs=self.evidence_refs(insight),
                role=person.role))
            return [own_chat, self.private(inbound, t("group_details_sent", lang))]
        if verb not in ("snooze", "done"):
            return [self.private(inbound, t("short_help", lang, p=self._prefix(inbound)))]
        until = now + timedelta(days=SNOOZE_DAYS.get(args[1] if len(args) > 1 else "1d", 1))
        if not director:  # the manager the item is about: for themselves
            if verb == "snooze":
                self.store.snooze(person.id, insight, until, now)
                local = until.astimezone(target_timezone(person, self.config)).strftime("%d.%m %H:%M")
                return [self.private(inbound, t("own_snoozed", lang, until=local))]
            self.store.mark_done(person.id, insight, now)
            return [self.private(inbound, t("own_done", lang))]
        # a director: for the team chat, and for themselves where they get the item too
        mine = insight.fingerprint in self.visible(person)
        team_lang = target_language(team, self.store, self.config)
        title = insight_text(insight, team_lang).split("\n")[0]
        if verb == "snooze":
            self.store.snooze(team.id, insight, until, now)
            if mine:
                self.store.snooze(person.id, insight, until, now)
            local = until.astimezone(target_timezone(team, self.config)).strftime("%d.%m %H:%M")
            note = t("team_snoozed", team_lang, until=local, who=person.display_name, title=title)
        else:
            self.store.mark_done(team.id, insight, now)
            if mine:
                self.store.mark_done(person.id, insight, now)
            note = t("team_done", team_lang, who=person.display_name, title=title)
        return [OutgoingMessage(inbound.channel, inbound.chat_id, text_payload(inbound.channel, note))]

    # ------------------------------------------------------------------ replies
    def private(self, inbound: Inbound, text: str) -> OutgoingMessage:
        """An answer only the person who wrote or pressed sees (see OutgoingMessage.private_to)."""
        return dataclasses.replace(self.reply(inbound, text), private_to=inbound.user_id)

    @staticmethod
    def _prefix(inbound: Inbound) -> str:
        return "/pulse " if inbound.channel == "slack" else "/"

    @staticmethod
    def reply(inbound: Inbound, text: str, buttons: list[list[dict[str, str]]] | None = None) -> OutgoingMessage:
        """A plain answer in the channel's payload shape."""
        buttons = buttons or []
        if inbound.channel == "telegram":
            payload: dict[str, Any] = {"text": html.escape(text, quote=False), "buttons": buttons}
        elif inbound.channel == "slack":
            from messages.model import Button
            from messages.slack import ActionIds, actions_blocks, format_text
            # Buttons packed 25 to an actions block, so a long /snoozed list stays far under
            # Slack's 50-block limit instead of one block per row. The text may quote CRM
            # names (/snoozed titles): neutralised, verbatim, no mention or link from it.
            rows = [[Button(b["label"], b["action"]) for b in row] for row in buttons]
            payload = format_text(text)
            payload["blocks"] += actions_blocks(rows, ActionIds())
        else:
            payload = {"text": text, "buttons": buttons}
        return OutgoingMessage(inbound.channel, inbound.chat_id, payload)


class _PersonView:
    """The recipient as the maturity flow sees it: id, name, role and the effective language."""

    def __init__(self, person: Recipient, language: str | None) -> None:
        self._p = person
        self.language = language

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)
