"""`crm-pulse diagnose`: the maturity check in the terminal.

Interactive (one question at a time, numbers to answer, b = back, q = quit) or scripted with
`--answers 1,2,1,1,2`; `--data DIR` or `--demo` adds what the CRM data says next to the
answers. Exit codes: 0 ok, 2 usage error (bad answers, missing folder), 3 data error.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TextIO

from bot.maturity.data_hints import DataHint, data_hints
from bot.maturity.questionnaire import QUESTIONS, AnswerError, parse_answers
from bot.maturity.scoring import score
from crm.data import CrmData
from messages import maturity as words

EXIT_OK, EXIT_USAGE, EXIT_DATA = 0, 2, 3

PROMPT = {"ru": "Ответ (номер; b — назад, q — выйти): ", "en": "Answer (number; b = back, q = quit): "}
NOT_AN_OPTION = {"ru": "Нужен номер от 1 до {n}.", "en": "Please type a number from 1 to {n}."}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    numbering = "; ".join(
        f"{words.TOPICS[q.id]['en'].lower()}: " + " | ".join(
            f"{i}={words.option_label(q.id, o, 'en').lower()}" for i, o in enumerate(q.option_ids(), 1))
        for q in QUESTIONS)
    parser.add_argument("--answers", metavar="N,N,N,N,N",
                        help=f"the five answers as option numbers, e.g. 1,2,1,1,2 (skips the questions). {numbering}")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR", help="a folder of CRM exports in the canonical format, for the data hints")
    source.add_argument("--demo", action="store_true", help="use the demo company's data for the data hints")
    parser.add_argument("--lang", choices=["ru", "en"], default="ru", help="language of the questions and the result")
    parser.add_argument("--department", choices=["sales", "service"], help="run the check for one department")
    parser.add_argument("--timezone", default="UTC", help="timezone of naive timestamps in --data files (IANA)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for scripts")


def run(args: argparse.Namespace, *, ask: Callable[[str], str] = input, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    lang = args.lang
    try:
        answers = parse_answers(args.answers) if args.answers else None
    except AnswerError as e:
        print(f"crm-pulse diagnose: --answers: {e}", file=err)
        return EXIT_USAGE
    if not _known_timezone(args.timezone):
        print(f"crm-pulse diagnose: --timezone: unknown timezone {args.timezone!r}; use an IANA name "
              "such as Asia/Almaty or Europe/Moscow", file=err)
        return EXIT_USAGE

    loaded = _load(args, err)
    if isinstance(loaded, int):
        return loaded
    data, now = loaded

    if answers is None:
        answers = _interview(lang, args.department, ask, out)
        print(file=out)
        if answers is None:
            print(words.ui("cancelled", lang).split(".")[0] + ".", file=out)
            return EXIT_OK
    result = score(answers)
    hints: list[DataHint] = data_hints(data, now) if data is not None else []
    if args.format == "json":
        doc = {**result.to_dict(), "answers": answers, "department": args.department,
               "hints": [h.to_dict() for h in hints], "text": words.result_text(result, hints, lang, department=args.department)}
        print(json.dumps(doc, ensure_ascii=False, indent=2), file=out)
    else:
        print(words.result_text(result, hints, lang, department=args.department), file=out)
    return EXIT_OK


def _known_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _load(args: argparse.Namespace, err: TextIO) -> tuple[CrmData | None, datetime] | int:
    """(data, now) for the hints, or an exit code after saying what is wrong."""
    if args.demo:
        from crm.demo import generate_demo

        demo = generate_demo()
        return demo.data, demo.now
    now = datetime.now(timezone.utc)
    if not args.data:
        return None, now
    from crm.errors import DataError
    from crm.load import load_folder

    folder = Path(args.data)
    if not folder.is_dir():
        print(f"crm-pulse diagnose: --data: folder not found: {folder}", file=err)
        return EXIT_USAGE
    try:
        loaded = load_folder(folder, timezone=args.timezone, now=now)
    except DataError as e:
        print(f"data error: {e}", file=err)
        return EXIT_DATA
    for w in loaded.warnings:
        print(f"warning: {w}", file=err)
    return loaded.data, now


def _interview(lang: str, department: str | None, ask: Callable[[str], str], out: TextIO) -> dict[str, str] | None:
    """Ask the five questions; None when the person quits (q, /cancel, end of input)."""
    answers: dict[str, str] = {}
    while len(answers) < len(QUESTIONS):
        i = len(answers)
        q = QUESTIONS[i]
        payload = words.format_question(q.id, i + 1, len(QUESTIONS), q.option_ids(), lang, "plain",
                                        department=department, with_intro=i == 0 and not answers)
        print("\n" + payload["text"], file=out)
        while True:
            try:
                reply = ask(PROMPT[lang]).strip().lower()
            except EOFError:
                return None
            if reply in ("q", "quit", "/cancel", "выйти", "й"):
                return None
            if reply in ("b", "back", "назад", "и"):
                if answers:
                    answers.pop(list(answers)[-1])
                break
            if reply.isdigit() and 1 <= int(reply) <= len(q.options):
                answers[q.id] = q.options[int(reply) - 1].id
                break
            print(NOT_AN_OPTION[lang].format(n=len(q.options)), file=out)
    return answers
