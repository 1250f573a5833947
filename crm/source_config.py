"""`[source]` in config.toml: where the CRM data is and how its names map onto the contract.

Every table and column named here must be a canonical one (crm.schema); a typo is an error
with the nearest known name, because a silently ignored mapping changes results.
"""
from __future__ import annotations

import difflib
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crm.redact import has_secret, is_env_name
from crm.schema import TABLES, VALUE_SETS, yes_no_words

Scalar = str | bool | int | float
# What `base_url` looks like for each CRM API kind (in error messages).
BASE_URL_EXAMPLES = {"amocrm": "https://yourcompany.amocrm.ru or https://yourcompany.kommo.com",
                     "pipedrive": "https://yourcompany.pipedrive.com"}


def nearest(name: str, known: list[str] | tuple[str, ...]) -> str | None:
    """The known name a typo most likely meant, if any is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """' (did you mean `x`?)' for the nearest known name, or the list of known names."""
    close = nearest(name, known)
    if close:
        return f" (did you mean `{close}`?)"
    return " (known: " + ", ".join(known) + ")"


def _table_problem(table: str) -> str | None:
    if table not in TABLES:
        return f"{table}: unknown table{did_you_mean(table, tuple(TABLES))}"
    return None


# [source.values] keys that are no canonical column: what an export's own column means.
# stage_history.event: the wording of a deal's stage change in amoCRM's events list (crm.events_list).
EXTRA_VALUE_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {("stage_history", "event"): ("stage", "other")}


def _column_problem(table: str, column: str, extra: bool = False) -> str | None:
    if extra and (table, column) in EXTRA_VALUE_COLUMNS:
        return None
    names = [c.name for c in TABLES[table].columns]
    if column not in names:
        return f"{table}.{column}: unknown column of {table}{did_you_mean(column, names)}"
    return None


def _key(name: object) -> str:
    """A TOML key as the admin wrote it: bare when it can be, quoted otherwise."""
    text = str(name)
    return text if text.replace("_", "").replace("-", "").isascii() and text.replace("_", "").replace("-", "").isalnum() \
        else '"' + text.replace('"', '\\"') + '"'


def date_format_problem(fmt: str) -> str | None:
    """Why a strptime format cannot read dates (no day, month or year; a stray %), or None."""
    from datetime import datetime

    sample = datetime(2026, 2, 26, 19, 58, 7)
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as e:
        return f"{fmt!r} is not a date format this loader can use ({e}); write it like \"%d-%m-%Y %H:%M\""
    if back.date() != sample.date():
        return (f"{fmt!r} does not hold a whole date (it needs the day %d, month %m and year %Y), "
                "e.g. \"%d-%m-%Y %H:%M\"")
    return None


def _files_problem(table: str, given: str | list[str]) -> str | None:
    """An empty name, an empty list or a name listed twice: each a typo that would read too
    little or the same rows twice."""
    names = [given] if isinstance(given, str) else given
    if not names or any(not str(n).strip() for n in names):
        return f"{table}: must not be empty" if isinstance(given, str) or not names else \
            f"{table}: a file name in the list is empty"
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    if twice:
        return f"{table}: {twice[0]!r} is listed twice"
    return None


def _raise_all(problems: list[str]) -> None:
    """One error listing every typo in the section, not just the first."""
    if problems:
        raise ValueError("; ".join(problems))


class SourceConfig(BaseModel):
    """Where to read the CRM data and how to translate its names into the canonical ones.

    - `files`: table -> file name inside `path` (default: `<table>.csv|.xlsx|.parquet`), or a
      glob pattern (`"deals_*.csv"`), or a list of names and patterns (`["calls.csv",
      "tasks.csv"]`): a table exported as several files (HubSpot's calls and tasks, a deals
      export split by month because the CRM caps an export's rows); crm.several_files.
    - `columns`: table -> {canonical column: their column}; one of their columns may feed
      several canonical ones (Maven's `deal_stage` is both `stage` and `status`).
    - `values`: table -> canonical column -> {their value: canonical value}.
    - `fill`: table -> {canonical column: constant} used where a cell is empty or the column
      is absent (e.g. `currency = "USD"`); every filled cell is reported as a warning.
    - `date_formats`: table -> strptime format for all its date columns, or table -> {column:
      format}, for dates the usual formats do not read (`26-02-2018 19:58`); tried first.
    - `tables` (kind "sql"): table -> a table name or a SELECT statement.
    - `stages`: the stage order when the data has no stages table.
    - `pipelines` (files and sql too): keep the deals of these pipelines only (names or ids as
      the deals' `pipeline` column writes them; crm.validate.keep_pipelines); empty = all.
    - `max_file_mb`: a larger export file is refused with a clear error instead of filling memory.
    - kind "amocrm" (a CRM API, crm.connectors; docs/connectors.md): `base_url` (the account
      address), the NAMES of the environment variables holding the secrets (`token_env` for a
      long-lived token, or `client_id_env` + `client_secret_env` + `refresh_token_env` and
      `redirect_uri` for OAuth), `pipelines` to include (ids or names; empty = all), `store`
      (the synced store's folder, relative to the config file), `custom_fields` (table ->
      {canonical column: CRM field name}), `overlap_minutes` (each incremental sync goes back
      this far for clock skew) and `requests_per_second` (at most this many in any second).
    - kind "hubspot" (docs/connect-hubspot.md): `token_env` names the variable holding the
      private app's access token; `base_url` defaults to https://api.hubapi.com; the other API
      keys as for amoCRM (custom_fields name HubSpot property names).
    - kind "bitrix24" (docs/connect-bitrix24.md): `webhook_env` names the variable holding the
      whole inbound webhook URL (its path is the secret); `base_url` is optional (taken from the
      webhook; give it to reach the portal through a proxy); `deletion_check_minutes`: how often
      the full ID lists are compared to find deleted records (0 = every sync; the deals' IDs
      are compared on every sync whatever it says); `custom_fields`
      name Bitrix24 field codes (UF_CRM_...).
    - every CRM API kind: `store_url_env` names the variable holding a PostgreSQL URL to sync into
      that database instead of the local DuckDB file (`store` then keeps only dlt's working
      folder and token files); `store_schema` is the schema there (default: the kind).
    - kind "pipedrive": the same keys; `base_url` is the company address
      (https://yourcompany.pipedrive.com) and `token_env` names the API token's variable (no OAuth).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["files", "sql", "amocrm", "bitrix24", "hubspot", "pipedrive"] = "files"
    path: str | None = None
    files: dict[str, str | list[str]] = {}
    columns: dict[str, dict[str, str]] = {}
    values: dict[str, dict[str, dict[str, str]]] = {}
    fill: dict[str, dict[str, Scalar]] = {}
    # How dates are written where the usual formats do not read them: per file (`deals =
    # "%d-%m-%Y %H:%M"`: every date column of deals) or per column (`deals.created_at = ...`).
    date_formats: dict[str, str | dict[str, str]] = {}
    url_env: str | None = None
    url: str | None = None
    tables: dict[str, str] = {}
    stages: list[str] | None = None
    # Data is stale when more working days than this (of the company calendar) passed since its
    # newest record: stalled deals, lead SLAs and silent clients are not judged on it, and
    # admins are told once (crm.freshness, bot.pipeline.stale_line).
    stale_after_days: float = Field(3.0, gt=0, le=3650, allow_inf_nan=False)
    # Files larger than this are refused before reading (memory: about 3x the file size).
    max_file_mb: float = Field(default=1024, gt=0, le=1_000_000, allow_inf_nan=False)
    # CRM APIs (kind "amocrm"): see the class docstring.
    base_url: str | None = None
    token_env: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None
    refresh_token_env: str | None = None
    redirect_uri: str | None = None
    pipelines: list[int | str] = []
    store: str = "crm-store"
    custom_fields: dict[str, dict[str, str]] = {}
    overlap_minutes: float = Field(10.0, ge=0, le=24 * 60, allow_inf_nan=False)
    requests_per_second: float = Field(7.0, gt=0, le=100, allow_inf_nan=False)
    webhook_env: str | None = None
    # The synced store in PostgreSQL instead of the local DuckDB file: the NAME of the environment
    # variable holding its URL, and the schema (default: the CRM kind). crm.connectors.engine.
    store_url_env: str | None = None
    store_schema: str | None = None
    deletion_check_minutes: float = Field(0.0, ge=0, le=7 * 24 * 60, allow_inf_nan=False)

    @field_validator("files", "tables")
    @classmethod
    def _known_tables(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        problems = [_table_problem(t) or _files_problem(t, v) for t, v in value.items()]
        _raise_all([p for p in problems if p])
        return value

    def files_for(self, table: str) -> list[str] | None:
        """The names and glob patterns `[source.files]` gives for a table, in the order written
        (None: not named, the default `<table>.csv` is looked for)."""
        given = self.files.get(table)
        if given is None:
            return None
        return [given] if isinstance(given, str) else list(given)

    @field_validator("columns", "values", "fill", "custom_fields")
    @classmethod
    def _known_columns(cls, value: dict, info) -> dict:
        problems = []
        for table, cols in value.items():
            problem = _table_problem(table)
            problems += [problem] if problem else [_column_problem(table, c, info.field_name == "values") for c in cols]
        _raise_all([p for p in problems if p])
        return value

    @field_validator("values")
    @classmethod
    def _canonical_targets(cls, value: dict) -> dict:
        """Each mapping's right-hand side must be a value the column accepts: `"В работе" =
        "opened"` is a config typo, said here at its key, not later as an unknown data value."""
        problems = []
        for table, cols in value.items():
            for column, mapping in cols.items():
                allowed = VALUE_SETS.get((table, column)) or EXTRA_VALUE_COLUMNS.get((table, column))
                kind = TABLES[table].column(column).kind if table in TABLES and column in {
                    c.name for c in TABLES[table].columns} else None
                for theirs, ours in mapping.items():
                    target = str(ours).strip().lower()
                    if allowed is not None and target not in allowed:
                        problems.append(f"{table}.{column}.{_key(theirs)}: {str(ours)!r} is not "
                                        f"{'an' if column[0] in 'aeiou' else 'a'} {column} "
                                        f"crm-pulse knows{did_you_mean(target, allowed).replace(' (known:', ' (use one of:')}")
                    elif kind == "bool" and target not in frozenset().union(*yes_no_words(column)):
                        problems.append(f"{table}.{column}.{_key(theirs)}: {str(ours)!r} is not a yes/no value "
                                        "(use \"true\" or \"false\")")
        _raise_all(problems)
        return value

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, value: dict) -> dict:
        problems = []
        for table, given in value.items():
            problem = _table_problem(table)
            if problem:
                problems.append(problem)
                continue
            dated = [c.name for c in TABLES[table].columns if c.kind == "datetime"]
            formats = given.items() if isinstance(given, dict) else [(None, given)]
            for column, fmt in formats:
                path = f"{table}.{column}" if column else table
                if column is not None and column not in dated:
                    problems.append(f"{path}: not a date column of {table}{did_you_mean(column, dated)}")
                    continue
                problem = date_format_problem(fmt)
                if problem:
                    problems.append(f"{path}: {problem}")
        _raise_all(problems)
        return value

    def date_formats_for(self, table: str) -> dict[str, str]:
        """Canonical date column -> the strptime format its cells are written in."""
        given = self.date_formats.get(table)
        if given is None:
            return {}
        if isinstance(given, dict):
            return dict(given)
        return {c.name: given for c in TABLES[table].columns if c.kind == "datetime"}

    @field_validator("stages")
    @classmethod
    def _stages_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [s.strip() for s in value]
        if not cleaned or any(not s for s in cleaned):
            raise ValueError("stages: must be a non-empty list of stage names")
        seen = [s for i, s in enumerate(cleaned) if s in cleaned[:i]]
        if seen:
            raise ValueError(f"stages: {seen[0]!r} is listed twice")
        return cleaned

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        # has_secret also sees `user:pw@host` without a scheme and `?password=` / `?token=`
        if password or has_secret(value):
            raise ValueError(
                "url: contains a password: put the whole URL in an environment variable "
                "and name it in `url_env` instead"
            )
        return value

    @field_validator("store_schema")
    @classmethod
    def _store_schema(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"store_schema: {value!r} is not a schema name crm-pulse can use: lower-case "
                             "letters, digits and _, starting with a letter, at most 63 characters (like \"crm_amocrm\")")
        return value

    @field_validator("token_env", "client_id_env", "client_secret_env", "refresh_token_env", "webhook_env",
                     "store_url_env")
    @classmethod
    def _api_env_names(cls, value: str | None, info) -> str | None:
        """A token pasted where its variable's NAME belongs: refuse, never echo it."""
        if value is not None and not is_env_name(value):
            raise ValueError(
                f"{info.field_name}: must be the NAME of an environment variable (like "
                "CRM_PULSE_AMOCRM_TOKEN), not the secret itself")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url: must be the account address, like https://yourcompany.amocrm.ru "
                             "(Bitrix24: https://yourcompany.bitrix24.ru; HubSpot: https://api.hubapi.com, the default; "
                             "Pipedrive: https://yourcompany.pipedrive.com)")
        if parts.password or has_secret(value):
            raise ValueError("base_url: contains a secret: put it in an environment variable and name that "
                             "variable in token_env (amoCRM) or webhook_env (Bitrix24, the whole webhook URL)")
        return value.rstrip("/")

    @field_validator("url_env")
    @classmethod
    def _env_name_not_secret(cls, value: str | None) -> str | None:
        """The URL (with its password) or a token pasted where the variable's NAME belongs: refuse,
        never echo it."""
        if value is not None and not is_env_name(value):
            raise ValueError(
                "url_env: must be the NAME of an environment variable (like CRM_PULSE_CRM_DB_URL), "
                "not the URL itself: `export CRM_PULSE_CRM_DB_URL='<the URL>'` and write "
                "url_env = \"CRM_PULSE_CRM_DB_URL\""
            )
        return value

    @model_validator(mode="after")
    def _sql_keys_need_kind_sql(self) -> "SourceConfig":
        """url/url_env/tables under kind "files" would be silently ignored: say so instead."""
        if self.kind == "files":
            stray = [k for k in ("url", "url_env", "tables") if getattr(self, k)]
            if stray:
                named = " and ".join(stray)
                raise ValueError(
                    f"{named} only appl{'ies' if len(stray) == 1 else 'y'} to kind = \"sql\", but kind is \"files\" "
                    "(the default): add kind = \"sql\" to [source] to read a database, or remove "
                    f"{named} to read the files in `path`"
                )
        return self

    @model_validator(mode="after")
    def _api_keys_need_api_kind(self) -> "SourceConfig":
        """API keys under kind files/sql would be silently ignored, and the reverse: say so."""
        api_keys = ("base_url", "token_env", "client_id_env", "client_secret_env", "refresh_token_env",
                    "redirect_uri", "custom_fields", "webhook_env", "store_url_env", "store_schema")
        if self.kind in ("files", "sql"):
            stray = [k for k in api_keys if getattr(self, k)]
            if stray:
                raise ValueError(f"{', '.join(stray)}: only for a CRM API source (kind = \"amocrm\", \"bitrix24\", "
                                 f"\"hubspot\" or \"pipedrive\"), "
                                 f"but kind is \"{self.kind}\"")
            return self
        stray = [k for k in ("path", "url", "url_env", "tables") if getattr(self, k)]
        if stray:
            raise ValueError(f"{', '.join(stray)}: not used by kind = \"{self.kind}\" (it reads the synced "
                             "store in `store`); remove them")
        if self.store_schema and not self.store_url_env:
            raise ValueError("store_schema: only for a PostgreSQL store: set store_url_env to the NAME of the "
                             "environment variable holding its URL, or remove store_schema (the local DuckDB "
                             "file has one schema per CRM)")
        if self.kind == "bitrix24":
            return self._bitrix24_keys()
        if self.webhook_env:
            raise ValueError(f'webhook_env: only for kind = "bitrix24" (kind is "{self.kind}")')
        if self.kind == "hubspot":
            return self._hubspot_auth()
        if not self.base_url:
            raise ValueError(f'kind "{self.kind}" needs `base_url`, the account address '
                             f"({BASE_URL_EXAMPLES.get(self.kind, 'https://...')})")
        oauth = (self.client_id_env, self.client_secret_env, self.refresh_token_env)
        if self.kind == "pipedrive":
            if any(oauth) or self.redirect_uri:
                raise ValueError('kind "pipedrive" signs in with an API token only: give token_env '
                                 "and remove client_id_env, client_secret_env, refresh_token_env, redirect_uri")
            if not self.token_env:
                raise ValueError('kind "pipedrive" needs token_env, the NAME of the environment variable '
                                 "holding your API token (like CRM_PULSE_PIPEDRIVE_TOKEN)")
            return self
        if self.token_env and any(oauth):
            raise ValueError("give either token_env (a long-lived token) or client_id_env, "
                             "client_secret_env and refresh_token_env (OAuth), not both")
        if not self.token_env and not all(oauth):
            missing = [k for k, v in zip(("client_id_env", "client_secret_env", "refresh_token_env"), oauth) if not v]
            raise ValueError(f'kind "{self.kind}" needs token_env (a long-lived token) or OAuth: '
                             f"missing {', '.join(missing)}")
        return self

    def _hubspot_auth(self) -> "SourceConfig":
        """HubSpot signs in with a private app's token only; its API lives at one address."""
        oauth = [k for k in ("client_id_env", "client_secret_env", "refresh_token_env", "redirect_uri") if getattr(self, k)]
        if oauth:
            raise ValueError(f"{', '.join(oauth)}: not used by kind = \"hubspot\" (it signs in with a private "
                             "app's access token): set token_env and remove them")
        if not self.token_env:
            raise ValueError('kind "hubspot" needs token_env, the NAME of the environment variable holding '
                             "the private app's access token (like CRM_PULSE_HUBSPOT_TOKEN)")
        if not self.base_url:
            self.base_url = "https://api.hubapi.com"
        return self

    def _bitrix24_keys(self) -> "SourceConfig":
        """Bitrix24 signs in with an inbound webhook URL (the whole URL is the secret), nothing else;
        its leaky bucket drains about 2 requests a second, the default pace unless one is given."""
        stray = [k for k in ("token_env", "client_id_env", "client_secret_env", "refresh_token_env", "redirect_uri")
                 if getattr(self, k)]
        if stray:
            raise ValueError(f"{', '.join(stray)}: not used by kind = \"bitrix24\", which signs in with an inbound "
                             "webhook: name the variable holding the webhook URL in webhook_env instead")
        if not self.webhook_env:
            raise ValueError('kind "bitrix24" needs webhook_env, the NAME of the environment variable holding the '
                             "inbound webhook URL (https://yourcompany.bitrix24.ru/rest/1/<code>/), e.g. "
                             'webhook_env = "CRM_PULSE_BITRIX24_WEBHOOK"')
        if "requests_per_second" not in self.model_fields_set:
            self.requests_per_second = 2.0
        return self

    @model_validator(mode="after")
    def _sql_needs_url(self) -> "SourceConfig":
        if self.kind == "sql":
            if not (self.url or self.url_env):
                raise ValueError(
                    'kind "sql" needs `url_env` (the environment variable holding an '
                    "SQLAlchemy URL) or `url` (for password-less URLs such as sqlite)"
                )
            if not self.tables:
                raise ValueError(
                    'kind "sql" needs `[source.tables]`: a table name or SELECT for deals at least '
                    "(and managers and stage_history where you have them)"
                )
        return self
