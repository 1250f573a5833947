"""Logging that cannot leak a secret: one redacting filter for every line crm-pulse logs.

httpx logs every Bot API call at INFO with the token in the URL (`/bot<token>/getUpdates`), PTB
logs "Set Bot API URL" at DEBUG, and an exception text may carry a database URL with its
password. Whoever reads the journal must not get the bot. So every log record is rewritten
before any handler formats it: bot tokens, Slack tokens, passwords in URLs, secret query
parameters and Authorization headers by their shape, and the values of every environment
variable the config names (`*_env` keys: tokens, signing and webhook secrets, database URLs)
literally, wherever they appear.

Shapes are crm.redact.mask's (one mask for the whole project: config checks, connection
errors, logs); the configured values are this module's addition. The one `REDACTOR` sits on the handlers `configure_logging` installs and in the log record
factory, so a handler added later by anyone (a journald handler, pytest's caplog) gets the
redacted record too. httpx/httpcore are set to WARNING: one line per HTTP call is noise even
when masked.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import unquote

MASK = "***"
MIN_SECRET_LEN = 4  # a configured "secret" shorter than this would mask half of every line

_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@")
_WEBHOOK_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+/rest/\d+/([^/\s]+)")  # Bitrix24


def _by_shape(text: str) -> str:
    """Secrets by their shape, whoever configured them: the project's one mask (crm.redact)."""
    from crm.redact import mask

    return mask(text)


class SecretRedactor(logging.Filter):
    """Masks secrets in a record's message, exception text and stack; never drops a record."""

    def __init__(self) -> None:
        super().__init__()
        self._values: dict[str, str] = {}  # secret -> what is shown instead
        self._literal: re.Pattern[str] | None = None

    def add_values(self, values: Iterable[str | None]) -> None:
        """Mask these exact strings from now on (a secret read from the environment). A URL keeps
        its scheme, host and database in view, so a failure still says where: only the password goes."""
        for v in values:
            v = (v or "").strip()
            if len(v) >= MIN_SECRET_LEN:
                shaped = _by_shape(v)  # a token or URL keeps its public part (bot id, host)
                self._values[v] = shaped if shaped != v else MASK
        if self._values:
            ordered = sorted(self._values, key=len, reverse=True)  # a longer secret before its prefix
            self._literal = re.compile("|".join(re.escape(v) for v in ordered))

    def clear_values(self) -> None:
        self._values.clear()
        self._literal = None

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._literal is not None:
            text = self._literal.sub(lambda m: self._values[m.group(0)], text)
        return _by_shape(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_crm_pulse_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in some library: keep its raw parts, still masked
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._crm_pulse_redacted = True
        return True


REDACTOR = SecretRedactor()
_base_factory: Any = None
_installed: list[logging.Handler] = []
_root_level: int | None = None  # the root level before configure_logging, restored by reset
_noisy_levels: dict[str, int] = {}


def redact(text: str) -> str:
    """A line for stderr or a chat reply, with every known secret masked (same rules as the log)."""
    return REDACTOR.redact(text)


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    REDACTOR.filter(record)
    return record


def install_record_factory() -> None:
    """Redact each record as it is made, so handlers crm-pulse did not install get it masked too."""
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)


def configure_logging(level: str | int | None = "INFO", *, stream: TextIO | None = None,
                      fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s",
                      as_last_resort: bool = False) -> logging.Handler | None:
    """The process's log handler on the root logger, with the redacting filter; returns it.
    level None leaves the root logger's level as it is (WARNING unless someone set it).
    as_last_resort: stand in for logging's own last-resort handler (WARNING and up, only when
    no handler is configured), so the short CLI commands print what they printed before."""
    global _root_level
    root = logging.getLogger()
    if _root_level is None:
        _root_level = root.level
    for old in _installed:  # configured twice in one process: one handler, not two
        root.removeHandler(old)
    _installed.clear()
    handler: logging.Handler | None = None
    if not (as_last_resort and root.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(fmt))
        handler.addFilter(REDACTOR)
        if as_last_resort:
            handler.setLevel(logging.WARNING)
        else:  # the service: Python warnings (a library's ResourceWarning with a URL) go through the filter too
            logging.captureWarnings(True)
        root.addHandler(handler)
    if level is not None:
        root.setLevel(level if isinstance(level, int) else getattr(logging, str(level).upper(), logging.INFO))
    for noisy in ("httpx", "httpcore"):  # one INFO line per HTTP call, with the URL in it
        _noisy_levels.setdefault(noisy, logging.getLogger(noisy).level)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for h in root.handlers:  # handlers someone configured before us
        if REDACTOR not in h.filters:
            h.addFilter(REDACTOR)
    install_record_factory()
    if handler is not None:
        _installed.append(handler)
    return handler


def reset_logging() -> None:
    """Undo configure_logging (tests; the service configures once for its lifetime)."""
    global _base_factory, _root_level
    root = logging.getLogger()
    if _installed:
        logging.captureWarnings(False)
    for h in _installed:
        root.removeHandler(h)
    if _root_level is not None:
        root.setLevel(_root_level)
        _root_level = None
    _installed.clear()
    for h in root.handlers:
        h.removeFilter(REDACTOR)
    for name, level in _noisy_levels.items():
        logging.getLogger(name).setLevel(level)
    _noisy_levels.clear()
    if _base_factory is not None:
        logging.setLogRecordFactory(_base_factory)
        _base_factory = None
    REDACTOR.clear_values()


def _env_names(node: Any, seen: set[int] | None = None) -> list[str]:
    """Every `*_env` value in the config tree (pydantic models, dicts, lists)."""
    from pydantic import BaseModel

    seen = seen if seen is not None else set()
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[str] = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name, None)
            if name.endswith("_env") and isinstance(value, str):
                out.append(value)
            else:
                out += _env_names(value, seen)
    elif isinstance(node, dict):
        for key, value in node.items():
            if str(key).endswith("_env") and isinstance(value, str):
                out.append(value)
            else:
                out += _env_names(value, seen)
    elif isinstance(node, (list, tuple)):
        for value in node:
            out += _env_names(value, seen)
    return out


def config_secret_values(config: Any) -> list[str]:
    """The values of the environment variables the config names, and the passwords inside any
    that are URLs (an error message may quote the password alone, or URL-decoded), and the
    code of a Bitrix24 webhook URL."""
    values: list[str] = []
    for name in dict.fromkeys(_env_names(config)):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        values.append(value)
        m = _URL_PASSWORD.match(value)
        if m:
            password = value[len(m.group(1)) + 1:m.end() - 1]
            values += [password, unquote(password)]
        hook = _WEBHOOK_CODE.match(value)
        if hook:  # a Bitrix24 webhook: its code alone may be quoted too (a path in a debug line)
            values.append(hook.group(1))
    return values


def register_config_secrets(config: Any) -> None:
    """Mask the config's secrets in every log line from now on."""
    REDACTOR.add_values(config_secret_values(config))
