"""`crm-pulse explain FINGERPRINT`: the full evidence behind one insight.

An admin or director who doubts an alert gets everything it was built from: the facts, the
statistical test and its numbers where there is one, and the CRM rows behind it (deals,
emails with their opens, leads, activities) as small tables taken from the loaded data.
`format_evidence` is also what `crm-pulse scan --explain` prints under each insight.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from crm.data import CrmData
from detectors.insight import Insight
from messages.escape import terminal_safe

MAX_ROWS = 20
MIN_PREFIX = 6  # shortest fingerprint prefix accepted
# evidence key -> (table, id column, columns shown)
EVIDENCE_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "deal_ids": ("deals", "deal_id", ("deal_id", "title", "client_id", "manager_id", "stage", "status", "amount",
                                      "currency", "created_at", "closed_at", "loss_reason", "source")),
    "email_ids": ("emails", "email_id", ("email_id", "client_id", "manager_id", "direction", "sent_at", "subject")),
    "lead_ids": ("leads", "lead_id", ("lead_id", "created_at", "source", "region", "manager_id", "assigned_at",
                                      "first_response_at", "status")),
    "activity_ids": ("activities", "activity_id", ("activity_id", "deal_id", "client_id", "manager_id", "type",
                                                   "due_at", "done_at")),
}
TEST_KEYS = ("method", "p_value", "q_value", "baseline_rate", "recent_rate", "baseline_n", "recent_n",
             "band_low", "band_high", "ratio", "team_median")


class NotFound(LookupError):
    pass


def find_insight(insights: list[Insight], fingerprint: str) -> Insight:
    """The insight with this fingerprint (or a unique prefix of at least 6 characters)."""
    fp = fingerprint.strip().lower()
    exact = [i for i in insights if i.fingerprint == fp]
    if exact:
        return exact[0]
    matches = [i for i in insights if len(fp) >= MIN_PREFIX and i.fingerprint.startswith(fp)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise NotFound(f"fingerprint prefix {fingerprint!r} matches {len(matches)} insights: "
                       + ", ".join(i.fingerprint for i in matches[:5]) + "; give more characters")
    short = f"; a prefix needs at least {MIN_PREFIX} characters" if len(fp) < MIN_PREFIX else ""
    raise NotFound(f"no insight with fingerprint {fingerprint!r} in this scan ({len(insights)} insight(s) found){short}")


def fingerprint_problem(fingerprint: str) -> str | None:
    """Why this cannot be a fingerprint (16 hex characters, or a prefix of 6+), said before any data is loaded."""
    fp = fingerprint.strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", fp):
        return (f"{fingerprint!r} is not a fingerprint: fingerprints are 16 characters 0-9 and a-f, "
                "like 61ece94a5439b707 (copy one from `crm-pulse scan --format json` or the details button)")
    if len(fp) < MIN_PREFIX or len(fp) > 16:
        return (f"{fingerprint!r} has {len(fp)} characters: give the whole fingerprint (16 characters) "
                f"or a unique prefix of at least {MIN_PREFIX}")
    return None


def _cell(v: Any, tz: str | None = None) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return ""
    if isinstance(v, pd.Timestamp):
        if tz and v.tzinfo is not None:
            v = v.tz_convert(tz)
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, pd.Timedelta):
        secs = int(v.total_seconds())
        if abs(secs) < 120:
            return f"{secs} s"
        days, rest = divmod(secs, 86_400)
        return (f"{days} d " if days else "") + f"{rest // 3600} h {rest % 3600 // 60:02d} min"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"
    return str(v)


def evidence_rows(insight: Insight, data: CrmData | None) -> dict[str, pd.DataFrame]:
    """evidence key -> the CRM rows behind it (in evidence order); emails also get their opens."""
    out: dict[str, pd.DataFrame] = {}
    if data is None:
        return out
    for key, ids in insight.evidence.items():
        spec = EVIDENCE_TABLES.get(key)
        table = data.table(spec[0]) if spec else None
        if spec is None or table is None or not ids:
            continue
        _, id_col, cols = spec
        rows = table[table[id_col].isin(ids)]
        order = {v: n for n, v in enumerate(ids)}
        rows = rows.iloc[rows[id_col].map(order).argsort()][[c for c in cols if c in table.columns]]
        if key == "email_ids" and data.email_opens is not None:
            opens = data.email_opens[data.email_opens["email_id"].isin(ids)].groupby("email_id")["opened_at"]
            rows = rows.assign(opens=rows["email_id"].map(opens.size()).fillna(0).astype(int),
                               first_open_after=(rows["email_id"].map(opens.min()) - rows["sent_at"]))
        out[key] = rows.reset_index(drop=True)
    return out


REF_LIMIT = 10  # ids per evidence key that the chat's "details" names


def _text_or_none(v: Any) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    text = str(v).strip()
    return text or None


def _names(table: pd.DataFrame | None, id_col: str, name_col: str, ids: set[str]) -> dict[str, str]:
    if table is None or not ids or id_col not in table.columns or name_col not in table.columns:
        return {}
    rows = table[table[id_col].isin(ids)]
    out: dict[str, str] = {}
    for k, v in zip(rows[id_col], rows[name_col]):
        name = _text_or_none(v)
        if name is not None:
            out[str(k)] = name
    return out


def evidence_refs(insight: Insight, data: CrmData | None, limit: int = REF_LIMIT) -> dict[str, dict[str, dict[str, str]]]:
    """evidence key -> id -> what people call it, for the first `limit` ids of each key: a deal's
    title and client, a client's name, an email's subject and date, an activity's type, date and
    deal, a lead's date and source (messages.render words them). What the chat's "details" shows
    instead of bare ids. Empty without data; an id the data does not hold is left out, so it is
    shown as the id: the last resort."""
    if data is None:
        return {}
    trimmed = Insight(insight.detector, insight.severity, insight.audience, insight.subject, insight.facts,
                      {k: [str(x) for x in v[:limit]] for k, v in insight.evidence.items()}, insight.fingerprint)
    rows = {k: df.to_dict("records") for k, df in evidence_rows(trimmed, data).items()}
    client_ids = {str(r["client_id"]) for recs in rows.values() for r in recs if _text_or_none(r.get("client_id"))}
    client_ids |= set(trimmed.evidence.get("client_ids", []))
    clients = _names(data.clients, "client_id", "name", client_ids)
    deal_ids = {str(r["deal_id"]) for r in rows.get("activity_ids", []) if _text_or_none(r.get("deal_id"))}
    deals = _names(data.deals, "deal_id", "title", deal_ids)
    out: dict[str, dict[str, dict[str, str]]] = {}
    for key, recs in rows.items():
        id_col = EVIDENCE_TABLES[key][1]
        refs: dict[str, dict[str, str]] = {}
        for r in recs:
            client = clients.get(str(r.get("client_id")))
            fields = {
                "deal_ids": {"title": r.get("title"), "client": client},
                "email_ids": {"subject": r.get("subject"), "at": r.get("sent_at"), "client": client},
                "lead_ids": {"at": r.get("created_at"), "source": r.get("source")},
                "activity_ids": {"type": r.get("type"), "at": r.get("done_at") if _text_or_none(r.get("done_at"))
                                 else r.get("due_at"), "deal": deals.get(str(r.get("deal_id"))), "client": client},
            }.get(key, {})
            ref = {k: t for k, v in fields.items() if (t := _text_or_none(v)) is not None}
            if ref:
                refs[str(r[id_col])] = ref
        if refs:
            out[key] = refs
    named = {cid: {"client": clients[cid]} for cid in trimmed.evidence.get("client_ids", []) if cid in clients}
    if named:
        out["client_ids"] = named
    return out


def _table(df: pd.DataFrame, tz: str | None = None) -> list[str]:
    shown = df.head(MAX_ROWS)
    # cells made terminal-safe before their widths are measured, so the columns stay aligned
    cells = [[terminal_safe(str(c)) for c in shown.columns]] + [[terminal_safe(_cell(v, tz)) for v in row]
                                                               for row in shown.itertuples(index=False)]
    widths = [min(max(len(r[i]) for r in cells), 40) for i in range(len(cells[0]))]
    lines = ["  " + "  ".join(c[:w].ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    if len(df) > MAX_ROWS:
        lines.append(f"  ... and {len(df) - MAX_ROWS} more")
    return lines


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (dict, list)) else str(v)


def _worded(value: Any, lang: str) -> Any:
    """Facts with their statistical method and model identifiers ("fisher_exact_one_sided",
    "boosting") in words of `lang` (messages.methods), at any depth (a driver's, the mix's):
    the text is read by people; the JSON keeps the identifiers."""
    from messages.methods import method_name, method_words

    if isinstance(value, list):
        return [_worded(v, lang) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _worded(v, lang) for k, v in value.items()}
    if isinstance(value.get("method"), str):
        out["method"] = method_words(value["method"], lang, overdispersion=value.get("overdispersion"))
    if isinstance(value.get("model"), str):
        out["model"] = method_name(value["model"], lang)
    return out


def format_evidence(insight: Insight, data: CrmData | None, lang: str = "en", *, tz: str | None = None) -> str:
    """Facts, the test and the rows behind one insight, as indented plain text; the rows' times
    in `tz` (the config's timezone), else UTC; methods in words of `lang`."""
    facts = _worded(insight.facts, lang)
    lines = [f"  fingerprint: {insight.fingerprint}",
             f"  detector: {insight.detector}   severity: {insight.severity}   audience: {insight.audience.role}"
             + (f" {insight.audience.manager_id}" if insight.audience.manager_id else ""),
             "  subject: " + ", ".join(f"{k}={v}" for k, v in insight.subject.items())]
    test = {k: facts[k] for k in TEST_KEYS if k in facts}
    if test:
        lines.append("  test: " + ", ".join(f"{k}={_value(v)}" for k, v in test.items()))
    lines.append("  facts:")
    for k, v in facts.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append(f"    {k}:")
            lines += ["    " + line for line in _table(pd.DataFrame(v))]
        else:
            lines.append(f"    {k}: {_value(v)}")
    rows = evidence_rows(insight, data)
    if rows:
        lines.append(f"  (times in {tz or 'UTC'})")
    for key, ids in insight.evidence.items():
        lines.append(f"  {key} ({len(ids)}):")
        if key in rows and len(rows[key]):
            lines += _table(rows[key], tz)
            missing = len(ids) - len(rows[key])
            if missing > 0:
                lines.append(f"  ({missing} id(s) not found in the data)")
        else:
            lines.append("  " + ", ".join(map(str, ids[:MAX_ROWS])) + (f" ... (+{len(ids) - MAX_ROWS})" if len(ids) > MAX_ROWS else ""))
    # facts, subject and ids quote CRM strings: nothing in them may drive the admin's terminal
    return terminal_safe("\n".join(lines))


def explanation_dict(insight: Insight, data: CrmData | None, text: str | None) -> dict[str, Any]:
    out = insight.to_dict(text=text)
    out["evidence_rows"] = {
        k: json.loads(df.head(MAX_ROWS).to_json(orient="records", date_format="iso", force_ascii=False, default_handler=str))
        for k, df in evidence_rows(insight, data).items()
    }
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fingerprint", help="the insight's fingerprint (from scan --format json, or the details button); a unique prefix of 6+ characters will do")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="config.toml: data source and thresholds (default: ./config.toml)")
    src.add_argument("--data", metavar="DIR", help="a folder of canonical CSV/XLSX/Parquet files (default thresholds)")
    p.add_argument("--now", metavar="TS", help="scan as if it were this moment (ISO; default: now)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--lang", choices=["ru", "en"], help="language of the text (default: the config's)")


def _text(insight: Insight, lang: str, now: datetime, tz: str) -> str | None:
    try:
        from messages.render import insight_text
    except ImportError:
        return None
    return insight_text(insight, lang, now=now, tz=ZoneInfo(tz))


def run(args: argparse.Namespace) -> int:
    from bot import pipeline
    from bot.cli import config_or_default, load_for, print_warnings, err, local_time, parse_now

    problem = fingerprint_problem(args.fingerprint)
    if problem:
        err(f"crm-pulse explain: {problem}")
        return 2
    config = config_or_default(args.config, args.data)
    now = parse_now(args.now, config.timezone)
    lang = args.lang or config.language
    data, warnings = load_for(args, config, now)
    print_warnings(warnings)
    outcome = pipeline.scan(config, now, data=data)
    try:
        insight = find_insight(outcome.insights, args.fingerprint)
    except NotFound as e:
        err(f"crm-pulse explain: {e} at {local_time(now, config.timezone)}.")
        err("Fingerprints come from `crm-pulse scan --format json`; the situation may have been resolved since, "
            "or the scan moment differs (pass --now).")
        return 3
    text = _text(insight, lang, now, config.timezone)
    if args.format == "json":
        sys.stdout.write(json.dumps(explanation_dict(insight, outcome.data, text), ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        if text:
            print(terminal_safe(text))
            print()
        print(format_evidence(insight, outcome.data, lang, tz=config.timezone))
    return 0
