"""`crm-pulse stats` and the admin /stats command: is each detector worth its messages?

Per detector: how many insights were sent, how many people pressed useful / not useful and the
useful share, so thresholds are tuned on evidence; plus messages that failed for good, with
the reason (user blocked the bot, channel archived), which are otherwise invisible.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from bot.state import StateStore, db_reason, db_where, missing_sqlite_file


@dataclass
class DetectorStats:
    detector: str
    sent: int = 0
    useful: int = 0
    not_useful: int = 0

    @property
    def useful_share(self) -> float | None:
        votes = self.useful + self.not_useful
        return self.useful / votes if votes else None


@dataclass
class Stats:
    detectors: list[DetectorStats] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (recipient, channel, reason)


def collect_stats(store: StateStore, *, failed_limit: int = 20) -> Stats:
    from bot.outbox import Outbox

    sent = store.sent_counts()
    votes = store.feedback_counts()
    names = sorted(set(sent) | set(votes))
    rows = [DetectorStats(n, sent.get(n, 0), *votes.get(n, (0, 0))) for n in names]
    box = Outbox(store)
    failed = [(r.recipient, r.channel, r.last_error or "") for r in box.failed(limit=failed_limit)]
    return Stats(rows, box.counts(), failed)


def format_stats(stats: Stats, lang: str = "en", *, codes: bool = True) -> str:
    """The report in `lang`; each check by its human name (messages.digest.CHECK_NAMES), with
    its config key in brackets when `codes` (the terminal, where the admin edits config.toml),
    without in chat."""
    from messages.digest import check_name

    ru = lang == "ru"
    lines = ["Полезность по проверкам:" if ru else "Usefulness per check:"]
    if not stats.detectors:
        lines.append("  пока ничего не отправлено" if ru else "  nothing sent yet")
    for d in stats.detectors:
        share = "—" if d.useful_share is None else f"{d.useful_share:.0%}"
        label = check_name(d.detector, lang)
        label = label[:1].upper() + label[1:] + (f" [{d.detector}]" if codes else "")
        lines.append(f"  {label}: " + (
            f"отправлено {d.sent}, полезно {d.useful}, бесполезно {d.not_useful}, доля полезных {share}" if ru else
            f"sent {d.sent}, useful {d.useful}, not useful {d.not_useful}, useful share {share}"))
    o = stats.outbox
    lines.append("")
    lines.append((f"Сообщения: отправлено {o.get('sent', 0)}, в очереди {o.get('pending', 0)}, не доставлено {o.get('failed', 0)}"
                  if ru else f"Messages: sent {o.get('sent', 0)}, pending {o.get('pending', 0)}, failed {o.get('failed', 0)}"))
    if stats.failed:
        lines.append("Не доставлено (последние):" if ru else "Failed for good (latest):")
        for recipient, channel, reason in stats.failed:
            lines.append(f"  {recipient} ({channel}): {reason}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.toml", help="config file (default: config.toml)")
    parser.add_argument("--lang", choices=("ru", "en"), default=None, help="language of the report (default: the config's)")


def run(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        url = config.state_url()
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    missing = missing_sqlite_file(url)
    if missing is not None:  # opening would create an empty database next to the config
        ru = (args.lang or config.language) == "ru"
        print(f"Пока ничего не отправлено: бот ещё не запускался с этим конфигом (нет файла {missing})." if ru else
              f"Nothing sent yet: the bot has not run with this config (no state file {missing}).")
        return 0
    try:
        store = StateStore.open(url)
    except Exception as e:  # the state database cannot be opened: say where and why
        where = db_where(url)
        reason = db_reason(e)
        print(f"cannot open the state database {where}: {reason}", file=sys.stderr)
        return 2
    try:
        print(format_stats(collect_stats(store), args.lang or config.language))
    finally:
        store.close()
    return 0
