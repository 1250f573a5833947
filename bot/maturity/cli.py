"""`crm-pulse diagnose`: the maturity check in the terminal.

Interactive (one question at a time, numbers to answer, b = back, q = quit, Ctrl-C stops in the
chosen language; going back shows the earlier answer; text wrapped to the terminal's width) or
scripted with `--answers 1,2,1,1,2`; `--department service` asks in the service department's
words (the data hints, which read the sales pipeline, are left out there); `--config FILE`, `--data DIR` or `--demo` adds what the CRM data says
next to the answers (a mapped export is read through the config's [source]). Exit codes: 0 ok, 2 usage error (bad answers, missing folder), 3 data error.
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

EXIT_OK, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 2, 3, 130

PROMPT = {"ru": "Ответ (номер; b — назад, q — выйти): ", "en": "Answer (number; b = back, q = quit): "}
NOT_AN_OPTION = {"ru": "Нужен номер от 1 до {n}.", "en": "Please type a number from 1 to {n}."}
NOTHING_BEFORE = {"ru": "Это первый вопрос: назад некуда.", "en": "This is the first question: there is nothing before it."}
EARLIER = {"ru": "Ваш прежний ответ: {n}. {label} (Enter — оставить его).",
           "en": "Your earlier answer: {n}. {label} (press Enter to keep it)."}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    numbering = "; ".join(
        f"{words.TOPICS[q.id]['en'].lower()}: " + " | ".join(
            f"{i}={words.option_label(q.id, o, 'en').lower()}" for i, o in enumerate(q.option_ids(), 1))
        for q in QUESTIONS)
    parser.add_argument("--answers", metavar="N,N,N,N,N",
                        help=f"the five answers as option numbers, e.g. 1,2,1,1,2 (skips the questions). {numbering}")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR", help="a folder of CRM exports for the data hints: canonical files, "
                        "or an export your config maps (with --config, or the config.toml inside DIR)")
    source.add_argument("--demo", action="store_true", help="use the demo company's data for the data hints")
    parser.add_argument("--config", metavar="FILE", help="config.toml: the data hints read its [source] (with --data DIR: "
                        "its mapping applied to the files in DIR); its language and timezone are the defaults")
    parser.add_argument("--lang", choices=["ru", "en"], help="language of the questions and the result (default: the config's, else ru)")
    parser.add_argument("--department", choices=["sales", "service"],
                        help="run the check for one department; service is asked in its own words (requests, agents)")
    parser.add_argument("--timezone", help="timezone of naive timestamps in the data (IANA; default: the config's, else UTC)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for scripts")


def run(args: argparse.Namespace, *, ask: Callable[[str], str] = input, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    said = {"lang": args.lang or "ru"}  # the language chosen so far, for a Ctrl-C at any point
    try:
        return _run(args, ask, out, err, said)
    except KeyboardInterrupt:  # "^C" is the terminal's echo: start a clean line, say it in their language
        print(file=out)
        print(_shown(_stopped(said["lang"]), out), file=out)
        return EXIT_INTERRUPTED


def _shown(text: str, out: TextIO) -> str:
    """Text for `out`: wrapped to the terminal's width when `out` is a terminal (a bullet's
    second line under its text), as it is for a pipe or a file (a script, `less`, an editor)."""
    from messages.terminal import terminal_safe, terminal_width, wrap_text

    isatty = getattr(out, "isatty", None)
    return wrap_text(text, terminal_width()) if callable(isatty) and isatty() else terminal_safe(text)


def _stopped(lang: str) -> str:
    """"The check is stopped and the answers are not saved." (without the chat's /maturity)."""
    return words.ui("cancelled", lang).split(".")[0] + "."


def _run(args: argparse.Namespace, ask: Callable[[str], str], out: TextIO, err: TextIO,
         said: dict[str, str]) -> int:
    config = _config(args, err)
    if isinstance(config, int):
        return config
    lang = said["lang"] = args.lang or (config.language if config is not None else "ru")
    args.timezone = args.timezone or (config.timezone if config is not None else "UTC")
    try:
        answers = parse_answers(args.answers) if args.answers else None
    except AnswerError as e:
        print(f"crm-pulse diagnose: --answers: {e}", file=err)
        return EXIT_USAGE
    if not _known_timezone(args.timezone):
        print(f"crm-pulse diagnose: --timezone: unknown timezone {args.timezone!r}; use an IANA name "
              "such as Asia/Almaty or Europe/Moscow", file=err)
        return EXIT_USAGE

    loaded = _load(args, err, config)
    if isinstance(loaded, int):
        return loaded
    data, now = loaded

    if answers is None:
        answers = _interview(lang, args.department, ask, out)
        print(file=out)
        if answers is None:
            print(_shown(_stopped(lang), out), file=out)
            return EXIT_OK
    result = score(answers)
    hints: list[DataHint] = data_hints(data, now, model_rule=_model_rule(config)) if data is not None else []
    # The result leaves the sales pipeline's hints out for service and says so (messages.maturity).
    text = words.result_text(result, hints, lang, department=args.department)
    if args.format == "json":
        shown = [] if args.department == "service" else hints
        doc = {**result.to_dict(), "answers": answers, "department": args.department,
               "hints": [h.to_dict() for h in shown], "text": text}
        print(json.dumps(doc, ensure_ascii=False, indent=2), file=out)
    else:
        print(_shown(text, out), file=out)
    return EXIT_OK


def _known_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _model_rule(config):
    """The minimum history the config's [detectors.deal_risk] sets (None: no config, the defaults)."""
    if config is None:
        return None
    from predict.model import HistoryRule

    spec = config.detector_specs()["deal_risk"]
    return HistoryRule(spec.min_closed_deals, spec.min_won, spec.min_lost)


def _config(args: argparse.Namespace, err: TextIO):
    """The Config the data hints read (--config FILE, or DIR/config.toml for --data DIR), None
    for canonical files or no data, or an exit code after saying what is wrong."""
    from bot.config import ConfigError, load_config

    path = Path(args.config) if args.config else None
    if path is None and args.data and (Path(args.data) / "config.toml").is_file():
        path = Path(args.data) / "config.toml"  # an export with its mapping beside it (demo --export writes one)
    here = Path("config.toml")
    if path is None and not args.demo and here.is_file():
        # as scan and explain: ./config.toml is the default; with --data DIR only when it maps DIR
        if not args.data or _source_folder(here) == Path(args.data).resolve():
            path = here
    if path is None:
        return None
    if args.demo:
        print("crm-pulse diagnose: --demo and --config: choose one source for the data hints", file=err)
        return EXIT_USAGE
    if not path.is_file():
        print(f"crm-pulse diagnose: --config: config file not found: {path} (create one with `crm-pulse init`)", file=err)
        return EXIT_USAGE
    try:
        return load_config(path)
    except ConfigError as e:
        print(str(e), file=err)
        return EXIT_USAGE


def _source_folder(path: Path) -> Path | None:
    """The folder a config's [source] reads, without validating the rest of the config."""
    import tomllib

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")).get("source") or {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    folder = raw.get("path", ".") if isinstance(raw, dict) else None
    return (path.resolve().parent / folder).resolve() if isinstance(folder, str) else None


def _load(args: argparse.Namespace, err: TextIO, config=None) -> tuple[CrmData | None, datetime] | int:
    """(data, now) for the hints, or an exit code after saying what is wrong."""
    if args.demo:
        from crm.demo import generate_demo

        demo = generate_demo()
        return demo.data, demo.now
    now = datetime.now(timezone.utc)
    if not args.data and config is None:
        return None, now
    from crm.errors import DataError
    from crm.load import load_crm, load_folder

    folder = Path(args.data) if args.data else None
    if folder is not None and not folder.is_dir():
        print(f"crm-pulse diagnose: --data: folder not found: {folder}", file=err)
        return EXIT_USAGE
    try:
        if config is None:
            loaded = load_folder(folder, timezone=args.timezone, now=now)
        else:  # the config's mapping; --data DIR only says where its files are
            source = config.source if folder is None else config.source.model_copy(update={"path": str(folder.resolve())})
            loaded = load_crm(source, timezone=args.timezone, base_dir=config.base_dir, now=now)
    except DataError as e:
        print(f"data error: {e}", file=err)
        if config is None:
            print("If this folder is an export your config.toml maps (its [source] columns and files), "
                  "add --config FILE.", file=err)
        return EXIT_DATA
    for w in loaded.warnings:
        print(f"warning: {w}", file=err)
    return loaded.data, now


def _interview(lang: str, department: str | None, ask: Callable[[str], str], out: TextIO) -> dict[str, str] | None:
    """Ask the five questions; None when the person quits (q, /cancel, end of input). Going
    back shows the answer given before (Enter keeps it); "b" on the first question says there
    is nothing before it instead of drawing the same question again."""
    answers: dict[str, str] = {}
    earlier: dict[str, str] = {}  # answers taken back with "b", shown when their question comes again
    intro = True
    while len(answers) < len(QUESTIONS):
        i = len(answers)
        q = QUESTIONS[i]
        payload = words.format_question(q.id, i + 1, len(QUESTIONS), q.option_ids(), lang, "plain",
                                        department=department, with_intro=intro, surface="terminal")
        intro = False
        print("\n" + _shown(payload["text"].rstrip("\n"), out), file=out)
        before = earlier.get(q.id)
        if before is not None:
            n = q.option_ids().index(before) + 1
            print(_shown(EARLIER[lang].format(n=n, label=words.option_label(q.id, before, lang)), out), file=out)
        while True:
            try:
                reply = ask(PROMPT[lang]).strip().lower()
            except EOFError:
                return None
            if reply in ("q", "quit", "/cancel", "выйти", "й"):
                return None
            if reply in ("b", "back", "назад", "и"):
                if not answers:
                    print(_shown(NOTHING_BEFORE[lang], out), file=out)
                    continue
                last = list(answers)[-1]
                earlier[last] = answers.pop(last)
                break
            if reply == "" and before is not None:
                answers[q.id] = before
                break
            if reply.isdigit() and 1 <= int(reply) <= len(q.options):
                answers[q.id] = q.options[int(reply) - 1].id
                break
            print(_shown(NOT_AN_OPTION[lang].format(n=len(q.options)), out), file=out)
    return answers
