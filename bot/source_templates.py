"""The [source] block `crm-pulse init --crm <kind>` writes in place of the example's files source.

One entry per CRM API connector, all in SOURCE_TEMPLATES: aligning a block with its connector's
keys (crm/source_config.py) is one edit here. Secrets are never in the file: each block names the
environment variable that holds them.
"""
from __future__ import annotations

import re

SOURCE_TEMPLATES: dict[str, str] = {
    "amocrm": '''\
# amoCRM / Kommo (docs/connectors.md): `crm-pulse sync` copies what changed into a local store
# that every command then reads; `crm-pulse sync --check` proves the token and lists pipelines.
kind = "amocrm"
base_url = "https://yourcompany.amocrm.ru"   # or https://yourcompany.kommo.com
# The NAME of the environment variable holding a long-lived token (export it before running);
# for OAuth instead: client_id_env, client_secret_env, refresh_token_env and redirect_uri.
token_env = "CRM_PULSE_AMOCRM_TOKEN"
# pipelines = ["Продажи"]                     # ids or names; all when left out
# store = "crm-store"                         # the synced store's folder, next to this file
# store_url_env = "CRM_PULSE_STORE_URL"       # PostgreSQL instead: the variable holding its URL
# overlap_minutes = 10                        # each sync goes back this far (clock skew)
# requests_per_second = 7                     # at most this many in any second (amoCRM: 7)
# Custom field names -> contract columns (deals: source, region; clients: region, segment):
# [source.custom_fields.deals]
# source = "Источник"
''',
    "bitrix24": '''\
# Bitrix24 (docs/connect-bitrix24.md): `crm-pulse sync` copies what changed into a local store
# that every command reads; `crm-pulse sync --check` proves the webhook and lists pipelines.
kind = "bitrix24"
# The NAME of the environment variable holding the inbound webhook URL
# (https://<portal>/rest/<user>/<code>/, scopes crm and user): the URL is the secret, never put it here.
webhook_env = "CRM_PULSE_BITRIX24_WEBHOOK"
# pipelines = ["Продажи"]                     # pipeline (category) ids or names; all when left out
# store = "crm-store"                         # the synced store's folder, next to this file
# store_url_env = "CRM_PULSE_STORE_URL"       # PostgreSQL instead: the variable holding its URL
# requests_per_second = 2                     # Bitrix24's leaky bucket drains 2 a second
# deletion_check_minutes = 0                  # compare all ID lists for deletions (0 = each sync; deals: each sync always)
# [source.custom_fields.deals]                # field codes -> contract columns
# region = "UF_CRM_1712345678"
''',
    "hubspot": '''\
# HubSpot: `crm-pulse sync` copies what changed into a local store that every command reads.
kind = "hubspot"
base_url = "https://api.hubapi.com"
# The NAME of the environment variable holding the private app's access token.
token_env = "CRM_PULSE_HUBSPOT_TOKEN"
''',
    "pipedrive": '''\
# Pipedrive (docs/connect-pipedrive.md): `crm-pulse sync` copies what changed into a local store
# that every command reads; `crm-pulse sync --check` proves the token and lists pipelines.
kind = "pipedrive"
base_url = "https://yourcompany.pipedrive.com"   # your company address
# The NAME of the environment variable holding the API token (Personal preferences -> API).
token_env = "CRM_PULSE_PIPEDRIVE_TOKEN"
# pipelines = ["Продажи"]                     # ids or names; all when left out
# store = "crm-store"                         # the synced store's folder, next to this file
# store_url_env = "CRM_PULSE_STORE_URL"       # PostgreSQL instead: the variable holding its URL
# requests_per_second = 7                     # under every plan's limit (20+ per 2 s)
# Custom field names -> contract columns (deals: source, region; clients: region, segment):
# [source.custom_fields.deals]
# source = "Источник"
''',
}

_HEADER = re.compile(r"^\s*\[")


def with_source(example: str, crm: str) -> str:
    """`example` (config.example.toml's text) with its [source] section replaced by the CRM's
    block; every other section, and the comment above the next one, left as it is."""
    lines = example.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "[source]"), None)
    if start is None:
        raise ValueError("the example config has no [source] section")
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])
                and not lines[i].strip().startswith("[source.")), len(lines))
    while end > start + 1 and lines[end - 1].lstrip().startswith("#"):
        end -= 1  # the next section's own comment stays with it
    return "".join(lines[:start + 1]) + SOURCE_TEMPLATES[crm] + "\n" + "".join(lines[end:]).lstrip("\n")
