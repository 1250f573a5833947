"""No secret in any log line: the bot runs for real (python-telegram-bot and slack-bolt against the
fake servers, scans, digests, commands) at INFO and at DEBUG, and neither the stream crm-pulse
writes nor anything a later handler (caplog) receives holds a token, signing secret or password."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import string
import time
import urllib.parse
from types import SimpleNamespace

import aiohttp
import pytest

from bot.app import serve
from bot.config import parse_config
from bot.logsafe import (
    REDACTOR,
    config_secret_values,
    configure_logging,
    redact,
    register_config_secrets,
    reset_logging,
)
from tests.bot.conftest import CONFIG_TOML
from tests.channels.conftest import free_port, wait_for
from tests.fakes.faults import FaultPlan
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, FakeSlackServer
from tests.fakes.telegram_server import FakeTelegramServer

TG_TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
TG_KEY = TG_TOKEN.split(":", 1)[1]
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK_SECRET = "wh-Secret-0123456789"
DB_PASSWORD = "Pa55w0rd-Xq9"
DB_URL = f"postgresql+psycopg://crm:{DB_PASSWORD}@127.0.0.1:1/crm"
SECRETS = (TG_TOKEN, TG_KEY, BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, DB_PASSWORD, DB_URL)


@pytest.fixture(autouse=True)
def _clean_logging():
    yield
    reset_logging()


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


# ---- the filter itself ---------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    f"HTTP Request: POST https://api.telegram.org/bot{TG_TOKEN}/getUpdates \"HTTP/1.1 200 OK\"",
    f"Set Bot API URL: https://api.telegram.org/bot{TG_TOKEN}",
    f"{{'Authorization': 'Bearer {BOT_TOKEN}', 'Content-Type': 'application/json'}}",
    f"token={APP_TOKEN}&channel=C1",
    f"cannot connect to {DB_URL}: connection refused",
    f"postgresql://crm@db/crm?sslmode=require&password={DB_PASSWORD}",
])
def test_shapes_of_secrets_are_masked_without_being_configured(line):
    out = redact(line)
    assert not _leaks(out), out
    assert "***" in out


def test_random_tokens_of_each_kind_are_masked():
    rng = random.Random(11)
    alphabet = string.ascii_letters + string.digits + "_-"
    for _ in range(300):
        tg = f"{rng.randint(10**6, 10**10)}:{''.join(rng.choice(alphabet) for _ in range(35))}"
        sl = rng.choice(["xoxb", "xoxp", "xapp", "xoxe.xoxp", "xoxa"]) + "-" + "-".join(
            "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(8, 24)))
            for _ in range(3))
        for template in ("url /bot{t}/sendMessage", "got {t}.", "'{t}'", "{t}"):
            for token, key in ((tg, tg.split(":", 1)[1]), (sl, sl.split("-", 1)[1])):
                out = redact(template.format(t=token))
                assert key not in out, out


def test_ordinary_lines_are_left_alone():
    for line in ("scan: 7 insight(s), 2 critical sent at once, skipped: none",
                 "delivery: digest -> anna: 3 item(s) (first, first, worse), 0 held back",
                 "next run at 2026-10-01 09:00:00+05:00", "fingerprint 3f9a2c4e5d6b7a81",
                 "crm-pulse running: channels telegram, slack, state sqlite:////tmp/state.db"):
        assert redact(line) == line


def test_configured_values_are_masked_literally(monkeypatch):
    monkeypatch.setenv("MY_SIGNING", SIGNING_SECRET)
    monkeypatch.setenv("MY_DB", DB_URL)
    cfg = parse_config(CONFIG_TOML + '\n[slack]\nsigning_secret_env = "MY_SIGNING"\n'
                       '[source]\nkind = "sql"\nurl_env = "MY_DB"\n'
                       '[source.tables]\nmanagers = "m"\ndeals = "d"\nstage_history = "h"\n')
    values = config_secret_values(cfg)
    assert SIGNING_SECRET in values and DB_URL in values and DB_PASSWORD in values
    register_config_secrets(cfg)
    line = f"signature check with {SIGNING_SECRET} failed; the password {DB_PASSWORD} was refused"
    assert not _leaks(redact(line))


def test_an_exception_traceback_is_masked_for_every_handler(caplog):
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("crm_pulse.test")
    try:
        raise ConnectionError(f"could not reach https://api.telegram.org/bot{TG_TOKEN}/getMe")
    except ConnectionError:
        log.exception("start failed for %s", f"bot{TG_TOKEN}")
    assert "start failed" in stream.getvalue() and "ConnectionError" in stream.getvalue()
    assert not _leaks(stream.getvalue()) and not _leaks(caplog.text)
    assert not _leaks("".join(r.getMessage() + (r.exc_text or "") for r in caplog.records))


def test_python_warnings_in_the_service_go_through_the_filter():
    import warnings

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # ResourceWarning is ignored by default
        warnings.warn(f"unclosed connection to https://api.telegram.org/bot{TG_TOKEN}/getMe", ResourceWarning)
    assert "unclosed connection" in stream.getvalue() and not _leaks(stream.getvalue())


def test_httpx_is_quiet_by_default_and_logging_is_restored_afterwards():
    before = logging.getLogger().level, logging.getLogger("httpx").level
    configure_logging("DEBUG", stream=io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
    reset_logging()
    assert (logging.getLogger().level, logging.getLogger("httpx").level) == before
    assert logging.getLogRecordFactory() is logging.LogRecord


# ---- the running bot -----------------------------------------------------------------------

def _signed(body: str) -> dict[str, str]:
    import hashlib
    import hmac

    ts = str(int(time.time()))
    sig = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={sig}",
            "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("slack_mode", ["socket", "http"])
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_the_running_bot_logs_no_secret(level, slack_mode, tmp_path, monkeypatch, caplog, scenario):
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_TOKEN", TG_TOKEN)
    monkeypatch.setenv("CRM_PULSE_TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("CRM_PULSE_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CRM_PULSE_SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("CRM_PULSE_SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("CRM_DB_URL", DB_URL)
    port = free_port()
    calls = {"n": 0}

    def scan(config, now):
        calls["n"] += 1
        if calls["n"] == 1:  # the way a driver fails: the URL, password and all, in the message
            raise ConnectionError(f"connection to {DB_URL} failed: Connection refused")
        return SimpleNamespace(insights=scenario, data=None, skipped={})

    stream = io.StringIO()
    async with FakeTelegramServer(faults=FaultPlan()) as tg, FakeSlackServer() as sl:
        cfg = parse_config(
            CONFIG_TOML + f'\n[telegram]\nenabled = true\nbase_url = "{tg.base_url}"\n'
            f'[slack]\nenabled = true\nmode = "{slack_mode}"\nbase_url = "{sl.base_url}"\nport = {port}\n'
            f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n'
            '[source]\nkind = "sql"\nurl_env = "CRM_DB_URL"\n'
            '[source.tables]\nmanagers = "managers"\ndeals = "deals"\nstage_history = "stage_history"\n',
            base_dir=tmp_path)
        configure_logging(level, stream=stream)
        register_config_secrets(cfg)
        caplog.set_level(level)
        if level == "DEBUG":  # worst case: someone turned the HTTP clients' own logs on
            for name in ("httpx", "httpcore"):
                logging.getLogger(name).setLevel(logging.DEBUG)
        stop = asyncio.Event()
        # no catch-up digest at start: after today's digest time it scanned a second time at once,
        # so `calls["n"] == 1` below was sometimes never seen (a failure that depended on the hour)
        task = asyncio.create_task(serve(cfg, stop=stop, scan_fn=scan, catch_up=False))
        try:
            await wait_for(lambda: calls["n"] == 1 and tg.calls["getUpdates"] >= 1, timeout=15)
            if slack_mode == "socket":
                await sl.wait_socket()
            tg.push_text(900, "/scan")  # Dina is an admin: the second scan works and sends
            await wait_for(lambda: tg.texts(102) and tg.texts(-100500), timeout=20)
            if slack_mode == "socket":
                await sl.push_envelope("slash_commands", {
                    "command": "/pulse", "text": "help", "user_id": "U102", "channel_id": "C777",
                    "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t2",
                    "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
            else:
                body = urllib.parse.urlencode({
                    "command": "/pulse", "text": "help", "user_id": "U102", "channel_id": "D102",
                    "team_id": "T0TEST", "api_app_id": "A0TEST", "trigger_id": "t3",
                    "response_url": "http://127.0.0.1:1/unused", "token": "legacy"})
                url = f"http://127.0.0.1:{port}/slack/events"
                async with aiohttp.ClientSession() as http:
                    async with http.post(url, data=body, headers={**_signed(body), "X-Slack-Signature": "v0=bad"}) as r:
                        assert r.status == 401
                    async with http.post(url, data=body, headers=_signed(body)) as r:
                        assert r.status == 200
            await wait_for(lambda: len(sl.texts("D102")) >= 2, timeout=20)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    out = stream.getvalue()
    captured = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "crm-pulse running" in out and "scan failed" in out and "ConnectionError" in out
    assert "127.0.0.1:1/crm" in out  # the failure is still told, just without the password
    assert not _leaks(out), [ln for ln in out.splitlines() if _leaks(ln)][:3]
    assert not _leaks(captured)
    assert "HTTP Request:" not in out or level == "DEBUG"  # httpx stays quiet unless asked
    if level == "DEBUG":  # the filter had real work: PTB's own lines carried the token
        assert "/bot***/" in out
    json.dumps(out)  # the log is text a journal can store
    assert REDACTOR.redact(TG_TOKEN) == "***"


def test_the_short_commands_print_warnings_as_before_but_masked():
    """`scan`, `check-config`...: logging's own last-resort output (the message, WARNING and up),
    now through the filter. In a fresh process, where no handler is configured."""
    import subprocess
    import sys

    code = ("import logging; from bot.logsafe import configure_logging; "
            "configure_logging(None, fmt='%(message)s', as_last_resort=True); "
            f"logging.getLogger('x').info('quiet {TG_TOKEN}'); "
            f"logging.getLogger('httpx').warning('GET https://api.telegram.org/bot{TG_TOKEN}/getMe failed')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stderr == "GET https://api.telegram.org/bot***/getMe failed\n"


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_crm_pulse_run_as_a_process_prints_no_secret(level, tmp_path):
    """The real entry point (`python -m bot.cli run`) in its own process against the fake servers:
    everything it writes to stdout and stderr, at INFO and at DEBUG."""
    import os
    import signal
    import sys

    async with FakeTelegramServer(faults=FaultPlan()) as tg, FakeSlackServer() as sl:
        (tmp_path / "export").mkdir()
        cfg = tmp_path / "config.toml"
        cfg.write_text(CONFIG_TOML + f'\n[telegram]\nenabled = true\nbase_url = "{tg.base_url}"\n'
                       f'[slack]\nenabled = true\nbase_url = "{sl.base_url}"\n'
                       '[state]\nurl_env = "CRM_PULSE_STATE_URL"\n[source]\npath = "export"\n', encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CRM_PULSE_TELEGRAM_TOKEN": TG_TOKEN,
               "CRM_PULSE_SLACK_BOT_TOKEN": BOT_TOKEN, "CRM_PULSE_SLACK_APP_TOKEN": APP_TOKEN,
               "CRM_PULSE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "CRM_PULSE_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "CRM_PULSE_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--config", str(cfg), "--log-level", level,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        try:
            await wait_for(lambda: tg.calls["getUpdates"] >= 1 and sl.calls["apps.connections.open"] >= 1,
                           timeout=60)
            tg.push_text(900, "/help")
            await wait_for(lambda: bool(tg.texts(900)), timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text[-2000:]
    assert "crm-pulse running" in text
    assert not _leaks(text), [ln for ln in text.splitlines() if _leaks(ln)][:3]
    if level == "DEBUG":
        assert "***" in text  # PTB's own DEBUG lines carried the token, masked
