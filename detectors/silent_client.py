"""silent_client: a client who stopped answering our emails but still reads them.

Such a client is still interested but stuck (a budget, a boss, a competitor's offer): a call
works better than a sixth email. The rule, per client, as of `now`:
- unanswered: our outbound emails sent after the client's last inbound email (their last
  reply); the oldest of them was sent at least `silence_days` ago;
- human opens of those emails: opens at least `min_seconds_after_send` after sending, since
  privacy proxies and mail scanners "open" every email within seconds of delivery;
- the human opens fall on at least `min_open_days` distinct days (company timezone) and the
  last one is within `last_open_within_days` of `now`.
Clients who never opened, who replied, or who only had a machine open stay silent.

Split into `prepare` (joins opens to emails once: the expensive part on 10M opens) and
`detect_at` (cheap array masks per `now`) so that backtest replays days without redoing joins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from crm import owners as owner_words
from crm.data import CrmData
from detectors.insight import Audience, Insight, make_fingerprint
from detectors.registry import DetectorSpec, register
from detectors.columns import NEVER, iso_utc, positions, to_ns
from detectors.people import shared_workforce, working_at
from detectors.stats import ts_ns
from detectors.working_hours import check_timezone

NAME = "silent_client"
_DAY_NS = 86_400 * 1_000_000_000


class SilentClientSpec(DetectorSpec):
    silence_days: int = Field(14, ge=1, description="days since the oldest unanswered email we sent")
    min_open_days: int = Field(2, ge=1, description="distinct days with a human open since the last reply")
    last_open_within_days: int = Field(7, ge=1, description="the last human open is at most this old")
    min_seconds_after_send: int = Field(60, ge=0, description="opens sooner than this after sending are machines")
    timezone: str = Field("Asia/Almaty", description="what counts as one day for open days")
    # Who is working: filled by bot/config.py from [detectors.manager_load] active_window_days
    # (one notion of "working" for every detector; not a [detectors.silent_client] key).
    active_window_days: int = Field(90, ge=1, le=730, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)


def _opt_str(v: object) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v)


@dataclass
class SilentClientState:
    spec: SilentClientSpec
    client_ids: pd.Series  # code -> client_id
    client_row: np.ndarray  # code -> row in the clients table, -1 if absent
    clients: pd.DataFrame | None
    manager_names: dict[str, str]
    nobody: frozenset[str]  # owner cells that name nobody besides crm.owners.NO_OWNER
    e_id: pd.Series  # string columns stay pandas: only the few rows behind insights are read
    e_client: np.ndarray  # int codes
    e_sent: np.ndarray  # int64 ns
    e_out: np.ndarray  # bool
    e_subject: pd.Series
    e_manager: pd.Series
    data: CrmData  # who is working on a day is asked of it (detectors.people.working_at) once something fires
    scan_ns: int | None  # the day of a single scan (prepare's `now`), None for a replay
    o_row: np.ndarray  # email row of each human open of an outbound email
    o_time: np.ndarray  # int64 ns
    o_day: np.ndarray  # local calendar day number of each such open (spec.timezone)
    o_client: np.ndarray  # client code of each such open
    # Replays call detect_at many times: from the second call on, opens are kept sorted by
    # email (e_open_start/end: each email's range of opens) so a day reads only the opens of
    # its unanswered emails; what does not change per day
    # about a client (id, name, owner, fingerprint) is read once, on its first insight.
    calls: int = 0
    opens_sorted: bool = False
    e_open_start: np.ndarray | None = None
    e_open_end: np.ndarray | None = None
    # ... and emails are walked in time order (e_by_time), keeping the day before's last reply
    # and first unanswered email per client (as of `upto`), see _silence_replay
    e_by_time: np.ndarray | None = None
    upto: int = NEVER
    last_reply: np.ndarray | None = None
    first_unanswered: np.ndarray | None = None
    static: dict[int, tuple[str, str | None, str | None, str]] = field(default_factory=dict)
    email_cells: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)


def prepare(data: CrmData, spec: SilentClientSpec, now: datetime | None = None) -> SilentClientState:
    """Join opens to emails once and drop machine opens.

    Without `now` nothing here depends on it (a replay asks about many days). With `now` (a
    single scan) only opens of emails unanswered at `now` by clients silent long enough are
    joined: the rest cannot make anyone silent then, and a lookup into those few emails is
    several times cheaper than into all of them. `detect_at` gives the same answer either way.
    """
    emails, opens = data.emails, data.email_opens
    assert emails is not None and opens is not None
    client_codes, client_ids = pd.factorize(emails["client_id"], sort=True)
    client_ids = pd.Series(client_ids)
    clients = data.clients
    client_row = positions(client_ids, clients["client_id"]) if clients is not None else np.full(len(client_ids), -1)
    e_sent = to_ns(emails["sent_at"])
    e_sent[client_codes < 0] = NEVER  # an email without a client cannot make anyone silent
    e_out = np.asarray(emails["direction"] == "out", dtype=bool)
    e_client = np.maximum(client_codes, 0).astype(np.int64)
    o_time = to_ns(opens["opened_at"])
    if now is None:
        row = positions(opens["email_id"], emails["email_id"])
    else:
        row = _join_relevant(opens["email_id"], o_time, emails["email_id"], e_client, e_sent, e_out,
                             len(client_ids), ts_ns(now), spec)
    known = row >= 0
    row, o_time = row[known], o_time[known]
    sent = e_sent[row]
    human = e_out[row] & (sent != NEVER) & (o_time != NEVER) & (o_time - sent >= spec.min_seconds_after_send * 1_000_000_000)
    subj = emails["subject"] if "subject" in emails.columns else pd.Series([None] * len(emails), dtype=object)
    mgr = emails["manager_id"] if "manager_id" in emails.columns else pd.Series([None] * len(emails), dtype=object)
    return SilentClientState(
        spec=spec,
        client_ids=client_ids,
        client_row=client_row,
        clients=clients,
        manager_names={k: str(v) for k, v in zip(data.managers["manager_id"], data.managers["name"])},
        nobody=owner_words.nobody(data),
        e_id=emails["email_id"],
        e_client=e_client,
        e_sent=e_sent,
        e_out=e_out,
        e_subject=subj,
        e_manager=mgr,
        data=data,
        scan_ns=None if now is None else ts_ns(now),
        o_row=row[human].astype(np.int64),
        o_time=o_time[human],
        o_day=_local_day(o_time[human], spec.timezone),
        o_client=e_client[row[human]],
    )


def _local_day(ns: np.ndarray, tz: str) -> np.ndarray:
    """Day numbers (days since 1970-01-01 on the local calendar) of UTC nanosecond instants."""
    local = pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz).tz_localize(None)
    return local.asi8 // _DAY_NS


def _sort_opens(state: SilentClientState) -> None:
    """Order opens by email once, so a day reads only the opens of its unanswered emails."""
    order = np.argsort(state.o_row, kind="stable")
    for name in ("o_row", "o_time", "o_day", "o_client"):
        setattr(state, name, getattr(state, name)[order])
    emails = np.arange(len(state.e_sent))
    state.e_open_start = np.searchsorted(state.o_row, emails, side="left")
    state.e_open_end = np.searchsorted(state.o_row, emails, side="right")
    sent = np.flatnonzero(state.e_sent != NEVER)
    state.e_by_time = sent[np.argsort(state.e_sent[sent], kind="stable")]
    state.opens_sorted = True


def _relevant_opens(state: SilentClientState, unanswered: np.ndarray, candidate: np.ndarray,
                    now_ns: int) -> np.ndarray:
    """Positions of the human opens, up to now, of unanswered emails of candidate clients.

    Opens sorted by email (a replay): gather the opens of those few emails only; else one
    mask over all opens (a single scan, whose prepare already dropped most of them).
    """
    if not state.opens_sorted:
        keep = state.o_time <= now_ns
        keep &= unanswered[state.o_row]
        keep &= candidate[state.o_client]
        return np.flatnonzero(keep)
    rows = np.flatnonzero(unanswered & candidate[state.e_client])
    start, end = state.e_open_start[rows], state.e_open_end[rows]
    lens = end - start
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.repeat(start - (np.cumsum(lens) - lens), lens) + np.arange(total)
    return idx[state.o_time[idx] <= now_ns]


def detect_at(state: SilentClientState, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The silent clients at `now`. `with_evidence=False` leaves evidence empty and reads no
    email ids but those needed to break a tie for the latest email (a backtest only counts)."""
    spec = state.spec
    state.calls += 1
    if state.calls > 1 and not state.opens_sorted:
        _sort_opens(state)
    now_ns = ts_ns(now)
    n = len(state.client_ids)
    if state.opens_sorted:
        last_reply, unanswered, first_unanswered, candidate = _silence_replay(state, now_ns)
    else:
        last_reply, unanswered, first_unanswered, candidate = _silence(
            state.e_client, state.e_sent, state.e_out, n, now_ns, spec)
    if not candidate.any():
        return []
    keep = _relevant_opens(state, unanswered, candidate, now_ns)
    times, days, clients = state.o_time[keep], state.o_day[keep], state.o_client[keep]
    if len(times) == 0:
        return []
    last_open = np.full(n, NEVER, dtype=np.int64)
    np.maximum.at(last_open, clients, times)
    open_count = np.bincount(clients, minlength=n)
    # Distinct (client, local day) pairs, counted only for clients whose last open is recent
    # enough to fire (the rest cannot fire, whatever their count).
    recent = candidate & (last_open >= now_ns - spec.last_open_within_days * _DAY_NS)
    if not recent.any():
        return []
    sub = recent[clients]
    open_days = _distinct_days(clients[sub], days[sub], recent)
    fire = recent & (open_days >= spec.min_open_days)
    fired = np.flatnonzero(fire)
    if len(fired) == 0:
        return []
    # The unanswered emails of each fired client, grouped once (not one scan of all emails per
    # client) in (client, sent) order; string cells are read only for the rows behind insights.
    e_rows = np.flatnonzero(unanswered & fire[state.e_client])
    e_rows = e_rows[np.lexsort((state.e_sent[e_rows], state.e_client[e_rows]))]
    ends = np.append(np.flatnonzero(np.diff(state.e_client[e_rows])) + 1, len(e_rows))
    starts = np.append(0, ends[:-1])
    if with_evidence:
        # Already in sent order; only groups with emails sent at the same instant are
        # re-sorted, ties going by id.
        ids = [str(x) for x in state.e_id.take(e_rows).tolist()]  # ids are never missing
        evidence = [ids[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        latest = e_rows[ends - 1]
        sent = state.e_sent[e_rows]
        same = np.flatnonzero((state.e_client[e_rows[1:]] == state.e_client[e_rows[:-1]]) & (sent[1:] == sent[:-1]))
        for g in np.unique(np.searchsorted(ends, same + 1, side="right")).tolist():
            a, b = int(starts[g]), int(ends[g])
            order = sorted(range(a, b), key=lambda j: (sent[j], ids[j]))
            evidence[g] = [ids[j] for j in order]
            latest[g] = e_rows[order[-1]]
    else:
        latest = _latest(state, e_rows, starts, ends)
        evidence = [None] * len(fired)
    subjects, senders = _email_cells(state, latest)
    _fill_static(state, fired)
    counts = (ends - starts).tolist()
    silent = (now_ns - first_unanswered[fired]).tolist()
    # the client's owner (or last sender) not working as of `now` (detectors.people: marked
    # inactive, idle, no contact; stalled_deal's notion) would read nothing: the director's
    who = (shared_workforce(state.data, spec.active_window_days, now_ns).at(now_ns) if now_ns == state.scan_ns
           else working_at(state.data, spec.active_window_days, now_ns))
    assert who is not None
    away = who.not_working()
    out = []
    for k, (code, reply, opens, o_days, last) in enumerate(zip(
            fired.tolist(), last_reply[fired].tolist(), open_count[fired].tolist(),
            open_days[fired].tolist(), last_open[fired].tolist())):
        out.append(_insight(state, code, evidence[k], counts[k], subjects[k], senders[k], silent[k],
                            reply, opens, o_days, last, away))
    return out


def _latest(state: SilentClientState, e_rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per group of `e_rows` (sorted by client, then sent), the latest email: last sent, and
    among emails sent at that same instant the greatest id, as the evidence order has it."""
    latest = e_rows[ends - 1]
    sent = state.e_sent[e_rows]
    tied = np.flatnonzero((ends - starts >= 2) & (sent[ends - 1] == sent[np.maximum(ends - 2, 0)]))
    for g in tied.tolist():
        a, b = int(starts[g]), int(ends[g])
        rows = e_rows[a:b][sent[a:b] == sent[b - 1]]
        ids = [str(x) for x in state.e_id.take(rows).tolist()]
        latest[g] = rows[max(range(len(rows)), key=ids.__getitem__)]
    return latest


def _email_cells(state: SilentClientState, rows: np.ndarray) -> tuple[list, list]:
    """Subject and sender of emails (rows), each read once per replay and then remembered."""
    new = np.asarray([r for r in rows.tolist() if r not in state.email_cells], dtype=np.int64)
    for r, subject, sender in zip(new.tolist(), _cells(state.e_subject, new), _cells(state.e_manager, new)):
        state.email_cells[r] = (subject, sender)
    cells = [state.email_cells[r] for r in rows.tolist()]
    return [c[0] for c in cells], [c[1] for c in cells]


def _fill_static(state: SilentClientState, codes: np.ndarray) -> None:
    """Client id, name, owner and fingerprint of clients not seen before, each column read once."""
    new = np.asarray([c for c in codes.tolist() if c not in state.static], dtype=np.int64)
    if not len(new):
        return
    client_ids = [str(v) for v in _cells(state.client_ids, new)]
    names = owners = [None] * len(new)
    if state.clients is not None and len(state.clients):
        crow = state.client_row[new]
        names = [v if r >= 0 else None for v, r in zip(_cells(state.clients["name"], np.maximum(crow, 0)), crow)]
        if "manager_id" in state.clients.columns:
            owners = [v if r >= 0 else None for v, r in zip(_cells(state.clients["manager_id"], np.maximum(crow, 0)), crow)]
            # an owner that names nobody («Не назначен»): the last sender hears it, or the director
            said = owner_words.no_owner(pd.Series(owners, dtype=object), state.nobody)
            owners = [None if s else v for v, s in zip(owners, said)]
    for code, client_id, name, owner in zip(new.tolist(), client_ids, names, owners):
        state.static[code] = (client_id, name, owner, make_fingerprint(NAME, {"client_id": client_id}))


def _join_relevant(open_email: pd.Series, o_time: np.ndarray, email_id: pd.Series, e_client: np.ndarray,
                   e_sent: np.ndarray, e_out: np.ndarray, n: int, now_ns: int, spec: SilentClientSpec) -> np.ndarray:
    """Email row of each open that can matter at `now` (-1 for the rest), in two cheap lookups.

    Only unanswered emails of clients silent long enough can matter, and only for clients with
    a human open within `last_open_within_days`: first the opens of that short window find
    those clients, then all opens are looked up among their unanswered emails alone.
    """
    _, unanswered, _, candidate = _silence(e_client, e_sent, e_out, n, now_ns, spec)
    relevant = np.flatnonzero(unanswered & candidate[e_client])
    window = np.flatnonzero((o_time <= now_ns) & (o_time >= now_ns - spec.last_open_within_days * _DAY_NS))
    found = _lookup(open_email.take(window), email_id, relevant)
    hit = found >= 0
    human = o_time[window[hit]] - e_sent[found[hit]] >= spec.min_seconds_after_send * 1_000_000_000
    active = np.zeros(n, dtype=bool)
    active[e_client[found[hit][human]]] = True
    return _lookup(open_email, email_id, relevant[active[e_client[relevant]]])


def _lookup(values: pd.Series, email_id: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Row (among `rows` of the emails table) of each value's email, -1 where not among them."""
    if len(rows) == 0 or len(values) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    found = positions(values, email_id.take(rows))
    return np.where(found >= 0, rows[np.maximum(found, 0)], -1)


def _silence(e_client: np.ndarray, e_sent: np.ndarray, e_out: np.ndarray, n: int, now_ns: int,
             spec: SilentClientSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per client: last reply and first unanswered email up to now, and who is silent long enough.

    Returns (last_reply per client, unanswered mask per email, first_unanswered per client,
    candidate mask per client).
    """
    sent_ok = (e_sent != NEVER) & (e_sent <= now_ns)
    # The client's last reply: their latest inbound email up to now.
    last_reply = np.full(n, NEVER, dtype=np.int64)
    inbound = sent_ok & ~e_out
    np.maximum.at(last_reply, e_client[inbound], e_sent[inbound])
    # Our emails since then are unanswered.
    unanswered = sent_ok & e_out & (e_sent > last_reply[e_client])
    first_unanswered = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_unanswered, e_client[unanswered], e_sent[unanswered])
    candidate = first_unanswered <= now_ns - spec.silence_days * _DAY_NS
    return last_reply, unanswered, first_unanswered, candidate


def _silence_replay(state: SilentClientState, now_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_silence` for a replay: walking forward in time, only the emails sent since the day
    before are applied (a step back starts over from the first email).

    A new reply resets the client's first unanswered email to the first of ours after it;
    any other client keeps its first unanswered email, or gets its first one among the new.
    """
    n = len(state.client_ids)
    order = state.e_by_time
    assert order is not None
    times = state.e_sent[order]
    if state.last_reply is None or state.first_unanswered is None or now_ns < state.upto:
        state.last_reply = np.full(n, NEVER, dtype=np.int64)
        state.first_unanswered = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        state.upto = NEVER
    lo = 0 if state.upto == NEVER else int(np.searchsorted(times, state.upto, side="right"))
    hi = int(np.searchsorted(times, now_ns, side="right"))
    last_reply, first_unanswered = state.last_reply, state.first_unanswered
    if hi > lo:
        rows = order[lo:hi]
        client, sent, out = state.e_client[rows], state.e_sent[rows], state.e_out[rows]
        replied = client[~out]
        np.maximum.at(last_reply, replied, sent[~out])
        first_unanswered[replied] = np.iinfo(np.int64).max
        ours = out & (sent > last_reply[client])
        np.minimum.at(first_unanswered, client[ours], sent[ours])
    state.upto = now_ns
    unanswered = (state.e_sent != NEVER) & (state.e_sent <= now_ns) & state.e_out & (state.e_sent > last_reply[state.e_client])
    candidate = first_unanswered <= now_ns - state.spec.silence_days * _DAY_NS
    return last_reply, unanswered, first_unanswered, candidate


def _distinct_days(clients: np.ndarray, days: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Per client, the number of distinct days among its opens (unsorted input).

    A bitmap over (candidate client, day) when it fits in 64 MB (one scatter, no sort),
    else a hash-unique of (client, day) keys.
    """
    n = len(candidate)
    d0 = int(days.min())
    span = int(days.max()) - d0 + 1
    compact = np.cumsum(candidate) - 1  # client code -> index among candidates
    n_cand = int(candidate.sum())
    if n_cand * span <= 64 * 2**20:
        seen = np.zeros(n_cand * span, dtype=bool)
        seen[compact[clients] * span + (days - d0)] = True
        out = np.zeros(n, dtype=np.int64)
        out[candidate] = seen.reshape(n_cand, span).sum(axis=1)
        return out
    pairs = np.unique(clients * span + (days - d0))
    return np.bincount(pairs // span, minlength=n)


def _cells(col: pd.Series, rows: np.ndarray) -> list:
    """Python values (None for missing) of a string column at some rows, in one take."""
    return [_opt_str(v) for v in col.take(rows).tolist()] if len(rows) else []


def _insight(state: SilentClientState, code: int, email_ids: list[str] | None, unanswered: int,
             last_subject: str | None, last_sender: str | None, silent_ns: int,
             last_reply: int, human_opens: int, open_days: int, last_open: int,
             away: dict[str, str] | None = None) -> Insight:
    client_id, name, owner, fp = state.static[code]
    manager_id = owner or last_sender
    left = (away or {}).get(manager_id) if manager_id else None
    facts = {
        "client_name": name or client_id,
        "manager_id": manager_id,
        "manager_name": state.manager_names.get(manager_id) if manager_id else None,
        "days_silent": silent_ns // _DAY_NS,
        "last_reply_at": iso_utc(last_reply),
        "unanswered_emails": unanswered,
        "human_opens": human_opens,
        "open_days": open_days,
        "last_open_at": iso_utc(last_open),
        "last_email_subject": last_subject,
    }
    if left:  # "inactive" | "idle" | "no_contact": nobody reads it there
        facts["owner_left"] = left
    audience = Audience("manager", manager_id) if manager_id and not left else Audience("director")
    return Insight(
        detector=NAME, severity="warning", audience=audience, subject={"client_id": client_id},
        facts=facts, evidence={"email_ids": email_ids} if email_ids is not None else {}, fingerprint=fp,
    )


@register(NAME, SilentClientSpec, ("emails", "email_opens"),
          "a client who stopped answering our emails but keeps opening them: call instead of writing")
def detect(data: CrmData, spec: SilentClientSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, now), now)
