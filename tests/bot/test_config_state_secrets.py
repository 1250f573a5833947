"""[state] url errors never echo a password, and every *_env key refuses a pasted secret at
config load by the project's one rule (crm.redact.is_env_name)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, parse_config

PASSWORD = "Hunter2pw"


def _problems(toml: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(toml, source_name="t.toml")
    return str(exc.value)


@pytest.mark.parametrize("url", [
    f"postgres//bot:{PASSWORD}@db/x",                       # no scheme separator: unparseable
    f"bot:{PASSWORD}@db/x",                                  # no scheme at all
    f"postgresql+psycopg://bot:{PASSWORD}@db/x",             # a password in the file
    f"postgresql+psycopg://bot@db/x?password={PASSWORD}",    # a password as a query parameter
    f"sqlit://bot:{PASSWORD}@db/x",                          # wrong dialect, with a password
])
def test_state_url_errors_never_echo_the_password(url):
    text = _problems(f'[state]\nurl = "{url}"\n')
    assert "state.url" in text and PASSWORD not in text


@pytest.mark.parametrize("key,value", [
    ("state.url_env", "aB3dE5fG7hJ9kL1mN3pQ"),                      # random-looking: a key, not a name
    ("state.url_env", "xoxb-1234567890-abcdefghijkl"),
    ("telegram.token_env", "123456789:AAHunter2SecretHunter2SecretHunter2Sec"),
    ("slack.bot_token_env", "0123456789abcdef0123456789abcdef"),    # hex
    ("slack.signing_secret_env", "postgresql://u:pw@h/db"),
])
def test_a_pasted_secret_is_refused_at_load_without_echo(key, value):
    section, field = key.split(".")
    text = _problems(f'[{section}]\n{field} = "{value}"\n')
    assert key in text and value not in text and "NAME of an environment variable" in text


@pytest.mark.parametrize("name", ["CRM_PULSE_STATE_URL", "STATE_URL", "DATABASE_URL", "MY_BOT_TOKEN_2"])
def test_ordinary_names_are_accepted(name):
    assert parse_config(f'[state]\nurl_env = "{name}"\n', source_name="t.toml").state.url_env == name


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=24, max_size=48)
       .filter(lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)))
def test_random_keys_are_never_taken_for_names_nor_echoed(secret):
    text = _problems(f'[telegram]\ntoken_env = "{secret}"\n')
    assert secret not in text
