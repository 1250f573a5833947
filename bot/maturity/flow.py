"""The maturity check as a chat conversation, channel-neutral.

bot.handlers passes maturity events here (`/maturity`, `/cancel`, button actions "mq:...",
free text while a check is open) and sends back what `handle` returns. The state of a
half-answered check lives in MaturityStore, not in memory, so a restarted bot (a new
MaturityFlow on the same database) carries on from the same question.

Telegram: each next question edits the message the button was on (edit_message_id), so the
chat shows one message walking through the questions and then turning into the result.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.engine import Engine

from bot.channels.base import Inbound, OutgoingMessage
from bot.maturity.data_hints import DataHint, data_hints
from bot.maturity.questionnaire import QUESTIONS
from bot.maturity.scoring import score
from bot.maturity.store import HistoryEntry, MaturityStore, Session
from crm.data import CrmData
from messages import maturity as words
from messages.i18n import pick_language

log = logging.getLogger(__name__)

HISTORY_WORDS = {"history", "история"}
DEPARTMENT_WORDS = {"sales": "sales", "продажи": "sales", "service": "service", "сервис": "service"}
TEAM_ROLES = {"director", "admin"}
# A check left untouched this long is dropped: a person's free text a week later is not an answer.
SESSION_TTL = timedelta(hours=24)


def _command(text: str, channel: str) -> tuple[str | None, str]:
    """'/maturity@bot History' -> ('maturity', 'history'); Slack '/pulse maturity' and 'maturity' too."""
    words_ = text.strip().split()
    if not words_:
        return None, ""
    if words_[0].lower() == "/pulse":
        words_ = words_[1:]
        if not words_:
            return None, ""
        words_[0] = "/" + words_[0].lstrip("/")
    head = words_[0].lower()
    if head.startswith("/"):
        head = head[1:].split("@", 1)[0]
    elif channel != "slack" or head not in ("maturity", "cancel"):
        return None, ""
    return head, " ".join(words_[1:]).strip().lower()


def _fmt(channel: str) -> str:
    return channel if channel in ("telegram", "slack") else "plain"


class MaturityFlow:
    def __init__(self, engine_or_url: Engine | str, data_provider: Callable[[], CrmData | None],
                 now: Callable[[], datetime], *, default_language: str = "ru", prefix: str = "") -> None:
        self.store = MaturityStore(engine_or_url, prefix=prefix)
        self.data_provider = data_provider
        self.now = now
        self.default_language = default_language

    def is_active(self, person_id: str) -> bool:
        """True while the person has a check open (then their free text belongs here)."""
        return self._session(str(person_id)) is not None

    def _session(self, person_id: str) -> Session | None:
        """The person's open check, unless it was abandoned longer than SESSION_TTL ago."""
        session = self.store.get_session(person_id)
        if session is not None and self.now() - session.updated_at > SESSION_TTL:
            self.store.delete_session(person_id)
            return None
        return session

    async def handle(self, inbound: Inbound, person: Any) -> list[OutgoingMessage] | None:
        """Replies for a maturity event, or None when the event is not for the maturity flow."""
        pid = str(person.id)
        if inbound.action is not None:
            if not inbound.action.startswith("mq:"):
                return None
            return await self._on_action(inbound, person, inbound.action.split(":")[1:])
        cmd, arg = _command(inbound.text or "", inbound.channel)
        if cmd == "maturity":
            return self._on_maturity(inbound, person, arg)
        if cmd == "cancel":
            return self._cancel(inbound, person, edit=False)
        if cmd is not None or not (inbound.text or "").strip():
            return None  # another command: not ours, even mid-check
        session = self._session(pid)
        if session is None:
            return None
        typed = inbound.text.strip().rstrip(".)")
        q = QUESTIONS[session.step]
        if typed.isdigit() and 1 <= int(typed) <= len(q.options):
            return await self._answer(inbound, person, session, int(typed), edit=False)
        note = words.reminder_text(q.id, q.option_ids(), session.lang)
        return [self._question_message(inbound, session, edit=False, note=note)]

    # -- commands
    def _lang(self, inbound: Inbound, person: Any) -> str:
        return pick_language(getattr(person, "language", None), inbound.language_code, self.default_language)

    def _on_maturity(self, inbound: Inbound, person: Any, arg: str) -> list[OutgoingMessage]:
        lang = self._lang(inbound, person)
        if arg in HISTORY_WORDS:
            return [self._reply(inbound, self._history_payload(person, lang, _fmt(inbound.channel)))]
        department = None
        if arg:
            department = DEPARTMENT_WORDS.get(arg)
            if department is None:
                text = words.ui("unknown_department", lang, value=arg)
                return [self._reply(inbound, words.format_note(text, _fmt(inbound.channel)))]
        now = self.now()
        session = Session(person_id=str(person.id), channel=inbound.channel, chat_id=inbound.chat_id, lang=lang,
                          started_at=now, updated_at=now, department=department)
        self.store.save_session(session)  # a new /maturity starts over, replacing an open check
        return [self._question_message(inbound, session, edit=False, intro=True)]

    def _cancel(self, inbound: Inbound, person: Any, *, edit: bool) -> list[OutgoingMessage]:
        session = self._session(str(person.id))
        lang = session.lang if session else self._lang(inbound, person)
        key = "cancelled" if session is not None and self.store.delete_session(str(person.id)) else "nothing_to_cancel"
        return [self._reply(inbound, words.format_note(words.ui(key, lang), _fmt(inbound.channel)), edit=edit)]

    # -- buttons
    async def _on_action(self, inbound: Inbound, person: Any, args: list[str]) -> list[OutgoingMessage]:
        if args == ["cancel"]:
            return self._cancel(inbound, person, edit=True)
        session = self._session(str(person.id))
        if session is None:
            lang = self._lang(inbound, person)  # the old question turns into the note, buttons gone
            return [self._reply(inbound, words.format_note(words.ui("expired", lang), _fmt(inbound.channel)), edit=True)]
        if args == ["back"]:
            if session.answers:
                session.answers.pop(list(session.answers)[-1])
                session.updated_at = self.now()
                self.store.save_session(session)
            return [self._question_message(inbound, session, edit=True)]
        if len(args) == 2 and all(a.isdigit() for a in args):
            q_no, a_no = int(args[0]), int(args[1])
            q = QUESTIONS[session.step]
            if q_no == session.step + 1 and 1 <= a_no <= len(q.options):
                return await self._answer(inbound, person, session, a_no, edit=True)
        # A stale button (pressed twice, or on an older question): show where we are.
        return [self._question_message(inbound, session, edit=True)]

    async def _answer(self, inbound: Inbound, person: Any, session: Session, option_no: int,
                      *, edit: bool) -> list[OutgoingMessage]:
        q = QUESTIONS[session.step]
        session.answers[q.id] = q.options[option_no - 1].id
        session.updated_at = self.now()
        if session.step < len(QUESTIONS):
            self.store.save_session(session)
            return [self._question_message(inbound, session, edit=edit)]
        return [await self._finish(inbound, person, session, edit=edit)]

    async def _finish(self, inbound: Inbound, person: Any, session: Session, *, edit: bool) -> OutgoingMessage:
        result = score(session.answers)
        now = self.now()
        hints = await asyncio.to_thread(self._hints, now)
        self.store.complete(HistoryEntry(
            person_id=str(person.id), person_name=getattr(person, "name", None),
            person_role=str(getattr(person, "role", "") or ""), completed_at=now, answers=dict(session.answers),
            level=result.level, label=result.label, hints=[h.to_dict() for h in hints],
            department=session.department, lang=session.lang,
        ))
        payload = words.format_result(result, hints, session.lang, _fmt(inbound.channel), department=session.department)
        return self._reply(inbound, payload, edit=edit)

    def _hints(self, now: datetime) -> list[DataHint]:
        """What the CRM data says; a data source that fails must not cost the person their result."""
        try:
            data = self.data_provider()
        except Exception as exc:  # the source is the admin's problem; the check still completes
            log.warning("maturity: CRM data unavailable for the data hints: %s", exc)
            data = None
        return data_hints(data, now)

    # -- messages
    def _question_message(self, inbound: Inbound, session: Session, *, edit: bool, intro: bool = False,
                          note: str | None = None) -> OutgoingMessage:
        q = QUESTIONS[session.step]
        payload = words.format_question(q.id, session.step + 1, len(QUESTIONS), q.option_ids(), session.lang,
                                        _fmt(inbound.channel), department=session.department,
                                        with_intro=intro, note=note)
        return self._reply(inbound, payload, edit=edit)

    def _reply(self, inbound: Inbound, payload: dict[str, Any], *, edit: bool = False) -> OutgoingMessage:
        return OutgoingMessage(
            channel=inbound.channel, address=inbound.chat_id, payload=payload,
            dedup_key=f"maturity:{inbound.channel}:{inbound.user_id}:{uuid.uuid4().hex}",
            edit_message_id=inbound.message_id if edit and inbound.message_id else None,
        )

    def _history_payload(self, person: Any, lang: str, fmt: str) -> dict[str, Any]:
        pid = str(person.id)
        roles = {str(getattr(person, "role", "") or "")} | set(getattr(person, "roles", None) or ())
        team = bool(roles & TEAM_ROLES)
        entries = self.store.history(None if team else pid)
        groups: dict[tuple[str, str | None], list[HistoryEntry]] = {}
        for e in entries:
            groups.setdefault((e.person_id, e.department), []).append(e)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] != pid, kv[0][0], kv[0][1] or ""))
        rows = [(None if who == pid else (es[-1].person_name or who), dept,
                 [(e.completed_at, e.label) for e in es]) for (who, dept), es in ordered]
        return words.format_history(rows, lang, self.now(), fmt)


__all__ = ["MaturityFlow"]
