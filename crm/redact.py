"""One place that decides what of a URL, an env value or a driver's message may be shown.

Everything that can carry a secret to output (config checks, connection errors, logs) passes
through `mask()`; anything that is shown as "the name of an environment variable" passes
through `env_name()`. No third-party imports, so crm/ and bot/ (and `init`) can use it freely.
"""
from __future__ import annotations

import re

HIDDEN = "***"

# scheme://user:password@host  and, without a scheme, user:password@host
# (the password runs to the LAST @ before the host: an unencoded @ in it is not shown either)
_URL_PASSWORD = re.compile(
    r"(?P<pre>(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^\s:/@'\"<>]*:)(?P<secret>[^\s/'\"<>]+)(?=@[^\s@/'\"<>]*)")
# password=..., ?token=..., &api_key=..., sslpassword='...', "secret": "..." (JSON)
_SECRET_KEYS = (r"password|passwd|pwd|pass|passphrase|secret|client_secret|signing_secret|"
                r"token|access_token|refresh_token|auth_token|bot_token|app_token|api_?key|apikey|"
                r"sslpassword|sslkey|private_?key|authorization|auth|credentials?")
_KEY_VALUE = re.compile(
    rf"(?P<pre>(?<![A-Za-z0-9])(?:(?:{_SECRET_KEYS})\s*=\s*|[\"'](?:{_SECRET_KEYS})[\"']\s*:\s*))"
    r"(?P<secret>'[^']*'|\"[^\"]*\"|[^\s&;,'\"#]+)",
    re.IGNORECASE,
)
# Tokens with a known shape: Telegram bot tokens (also inside /bot<token>/), Slack, GitHub,
# bearer headers.
_TOKENS = re.compile(
    r"(?<![0-9])\d{5,12}:[A-Za-z0-9_-]{30,}"
    r"|xox[abposre]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
)
# A Bitrix24 inbound webhook carries its secret in the path: https://<portal>/rest/<user id>/<code>/
# (the code: 10+ letters and digits, at least one digit, then "/"; "/rest/1/department.get" is a
# method, "/rest/2/transactions/" some other API; a code without digits is masked as a configured value).
_WEBHOOK_CODE = re.compile(r"(?P<pre>/rest/\d+/)(?P<secret>(?=[A-Za-z]*\d)[A-Za-z0-9]{10,})(?=[/\s'\"?#]|$)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def mask(text: object) -> str:
    """`text` with every secret-looking part replaced by ***: URL passwords (with or without a
    scheme), password/token/secret/key parameters, tokens of known shapes, and the code in a
    Bitrix24 webhook path (`/rest/1/***/`)."""
    out = str(text)
    out = _TOKENS.sub(HIDDEN, out)
    out = _KEY_VALUE.sub(lambda m: m.group("pre") + HIDDEN, out)
    out = _URL_PASSWORD.sub(lambda m: m.group("pre") + HIDDEN, out)
    out = _WEBHOOK_CODE.sub(lambda m: m.group("pre") + HIDDEN, out)
    return out


def has_secret(text: str) -> bool:
    """True when `mask` would hide something in `text` (a password in a URL, a token...)."""
    return mask(text) != text


def looks_random(value: str) -> bool:
    """A value that is more likely a key or token than a name a person chose: long, without
    word separators, mixing digits with letters or upper with lower case, or all hex."""
    if len(value) < 16 or "_" in value.strip("_"):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    mixed_case = any(c.islower() for c in value) and any(c.isupper() for c in value)
    return (has_digit and has_alpha) or mixed_case or bool(re.fullmatch(r"[0-9a-fA-F]+", value))


def is_env_name(value: str | None) -> bool:
    """A plausible environment variable NAME (not a secret pasted where the name belongs)."""
    return bool(value) and bool(_ENV_NAME.fullmatch(value)) and not looks_random(value) \
        and not has_secret(value)


def env_name(value: str | None) -> str:
    """How to show a configured variable name: itself, or a placeholder when it looks like a
    secret (a token or URL pasted into a `*_env` key must not be printed back)."""
    if value is None:
        return "(none)"
    if is_env_name(value):
        return value
    return "<hidden: this does not look like a variable name; is the secret itself written there?>"
