"""Issue 11 item 8: no secret from a URL, an env value or a driver message reaches output."""
from __future__ import annotations

import string
from pathlib import Path

import pytest
from crm_exports import DEALS, HISTORY, MANAGERS, write
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm.errors import DataError
from crm.load import load_crm
from crm.redact import env_name, has_secret, is_env_name, mask
from crm.source_config import SourceConfig

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
SECRET = st.text(string.ascii_letters + string.digits + "!$%^*()-_+~.", min_size=6, max_size=30)


@pytest.mark.parametrize(("text", "secret"), [
    ("postgresql+psycopg://crm:s3cretPW@db.local/crm", "s3cretPW"),
    ("crm:s3cretPW@db.local/crm", "s3cretPW"),                        # no scheme
    ("//crm:s3cretPW@db.local/crm", "s3cretPW"),
    ("postgresql://crm:p@ss@word@db/crm", "ss@word"),                 # unencoded @ in it
    ("postgresql://crm@db/crm?password=s3cretPW&sslmode=require", "s3cretPW"),
    ("postgresql://crm@db/crm?sslmode=require&sslpassword=s3cretPW", "s3cretPW"),
    ("mysql://db/crm?user=crm&PASSWORD=s3cretPW", "s3cretPW"),
    ("host=db user=crm password='s3cret PW' dbname=crm", "s3cret PW"),
    ("https://api.example/x?token=s3cretPW", "s3cretPW"),
    ("https://api.example/x?api_key=s3cretPW", "s3cretPW"),
    (f"POST https://api.telegram.org/bot{TG_TOKEN}/getUpdates", TG_TOKEN.split(":")[1]),
    ("xoxb-1111-2222-aBcDeFgHiJkL", "aBcDeFgHiJkL"),
    ("xapp-1-A111-222-abcdef0123", "abcdef0123"),
    ('{"client_secret": "s3cretPW"}', "s3cretPW"),
])
def test_mask_hides_every_secret_shape(text, secret):
    shown = mask(text)
    assert secret not in shown and "***" in shown and has_secret(text)


@pytest.mark.parametrize("text", [
    "sqlite:///crm.db", "postgresql+psycopg://crm@db.local:5432/crm?sslmode=require",
    "deals.csv, row 2, column 'amount': not a number", "10:30 at the office, a@b.kz",
    "password authentication failed for user \"crm\"", "contains a password: put the URL in env",
])
def test_mask_leaves_ordinary_text_alone(text):
    assert mask(text) == text and not has_secret(text)


@settings(max_examples=200, deadline=None)
@given(user=st.text(string.ascii_lowercase, min_size=1, max_size=8), password=SECRET,
       scheme=st.sampled_from(["postgresql+psycopg://", "postgresql://", "mysql+pymysql://", "", "//"]),
       host=st.sampled_from(["db", "10.0.0.5:5432", "db.example.kz"]))
def test_hypothesis_no_url_password_survives_mask(user, password, scheme, host):
    assume(password not in f"{scheme}{user}@{host}/crm?password=")
    for url in (f"{scheme}{user}:{password}@{host}/crm", f"{scheme}{user}@{host}/crm?password={password}"):
        assert password not in mask(url)


@pytest.mark.parametrize(("name", "ok"), [
    ("CRM_PULSE_TELEGRAM_TOKEN", True), ("TOKEN", True), ("slack_token", True),
    ("abcdef0123456789abcdef0123456789", False), ("8f7a9c0e1d2b3a4f5e6d7c8b9a0f1e2d", False),
    ("AbCdEfGhIjKlMnOpQrSt", False), (TG_TOKEN, False), ("xoxb-1-2-abc", False),
    ("postgresql://crm:pw@db/crm", False), ("", False),
])
def test_env_names_versus_pasted_secrets(name, ok):
    assert is_env_name(name) is ok
    assert (env_name(name) == name) is ok


@pytest.mark.parametrize("url", [
    "crm:s3cretPW@db.local/crm",                                    # no scheme: urlsplit sees none
    "postgresql+psycopg://crm@db.local/crm?password=s3cretPW",
    "postgresql+psycopg://crm@db.local/crm?sslmode=require&sslpassword=s3cretPW",
])
def test_source_url_with_a_secret_anywhere_is_refused_without_echo(url):
    with pytest.raises(ValidationError) as err:
        SourceConfig(kind="sql", url=url, tables={"deals": "deals"})
    assert "s3cretPW" not in str(err.value.errors()[0]["msg"])
    assert "url_env" in str(err.value.errors()[0]["msg"])


def test_a_secret_that_looks_like_a_name_is_refused_as_url_env():
    with pytest.raises(ValidationError) as err:
        SourceConfig(kind="sql", url_env="abcdef0123456789abcdef0123456789", tables={"deals": "d"})
    assert "abcdef0123456789" not in err.value.errors()[0]["msg"]


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://crm@127.0.0.1:1/crm?password=s3cretPW",     # connection refused
    "postgresql+psycopg://crm:s3cretPW@127.0.0.1:1/crm",
    "crm:s3cretPW@127.0.0.1/crm",                                      # unparseable
    "postgresql+psycopg://crm:s3cretPW@127.0.0.1:port/crm",            # bad port: was a ValueError
    "nosuchdb+nodriver://crm:s3cretPW@127.0.0.1/crm",
])
def test_connection_errors_never_print_the_password(monkeypatch, url):
    monkeypatch.setenv("CRM_TEST_DB_URL", url)
    with pytest.raises(DataError) as err:
        load_crm(SourceConfig(kind="sql", url_env="CRM_TEST_DB_URL",
                              tables={"managers": "m", "deals": "d", "stage_history": "h"}))
    assert "s3cretPW" not in str(err.value)


def test_check_config_never_prints_a_secret_pasted_as_a_variable_name(tmp_path, capsys, monkeypatch):
    from bot.cli import main

    write(tmp_path / "crm", {"managers.csv": MANAGERS, "deals.csv": DEALS, "stage_history.csv": HISTORY})
    pasted = "abcdef0123456789abcdef0123456789"
    config = Path(tmp_path / "config.toml")
    config.write_text('[source]\npath = "crm"\n[slack]\nenabled = true\nmode = "http"\n'
                      f'bot_token_env = "CRM_PULSE_SLACK_BOT_TOKEN"\nsigning_secret_env = "{pasted}"\n',
                      encoding="utf-8")
    monkeypatch.delenv("CRM_PULSE_SLACK_BOT_TOKEN", raising=False)
    code = main(["check-config", str(config), "--now", "2026-03-10T09:00:00+00:00"])
    out = capsys.readouterr()
    assert pasted[:6] not in out.out + out.err
    # refused at config load (crm.redact.is_env_name), with the key and what to do, never echoed
    assert code == 2, out.err
    assert "slack.signing_secret_env: must be the NAME of an environment variable" in out.err
    assert "environment variable CRM_PULSE_SLACK_SIGNING_SECRET" in out.err and "***" not in out.err
