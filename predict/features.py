"""Features of a deal AS OF a snapshot moment, from the canonical tables, and nothing later.

A model trained on what a deal looked like when it was already won learns nothing useful: it
must see each closed deal as it was while still open. So every feature here is computed from
events dated at or before the snapshot `at` (stage entries, activities done, emails sent,
opens, the client's earlier deals closed), and outcomes (`outcome_after`) only from closings
after it. Columns the source did not give (CrmData.has_column) are simply not features: without
done activities or emails there are no touches to count, so touches_14d and days_since_touch
are not features either (counted from stage changes alone, a deal the manager calls daily
looked untouched).

Two things the canonical tables keep only as they are now, not as they were: the amount and
the deal's source/region/manager. They are used as they are (CRMs rarely change them). An
amount of 0 is one nobody filled in, as an empty one (detectors.columns.filled_amounts): the
model sees it as missing (the logistic model with a missing-indicator beside the median, the
boosting natively), never as a small deal. One guard: an amount that the CRM fills in only at
closing (0 or empty on every lost deal, set on won ones; Maven's close_value) would be the
outcome itself, so it is dropped and said so (`Prepared.dropped`).

A stage-history row at the stage the deal was already at is an edit (Salesforce writes one for
every amount or close-date change), not an entry: it is neither a move, nor a touch, nor a
restart of the time at the stage (crm.stages.stage_repeats).

A stage history derived from the deals table (crm.stages.derive_history) dates the current
stage at creation: the stage a deal reached in the end would leak into every earlier snapshot,
so with a derived history the stage is not a feature.

Everything is vectorised: events of each kind are one sorted int64 array of
(deal or client code << 32 + second), so "the last stage entry before `at`" or "touches in the
14 days before `at`" for all deals at once is two searchsorted calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from crm.data import CrmData
from crm.stages import stage_repeats
from detectors.columns import NEVER, filled_amounts, positions, to_ns

DAY = 86_400
SHIFT = np.int64(32)
_LOW = np.int64((1 << 32) - 1)
NOT_CLOSED = np.int64((1 << 32) - 2)  # seconds: "never closed" (open now)
UNKNOWN_STAGE = "(unknown)"

AMOUNT_UNFILLED = "the amount is empty or 0 on every deal: nobody fills it in"
NUMERIC = ("stage_pos", "days_at_stage", "days_open", "stage_moves", "amount", "touches_14d",
           "days_since_touch", "replies_30d", "opens_30d", "client_won", "client_lost")
CATEGORICAL = ("stage", "source", "region", "manager_id")


def _seconds(col: pd.Series) -> np.ndarray:
    """UTC seconds since the epoch; missing -> -1. Must fit in 32 bits (dates 1970..2106).

    In place on to_ns's fresh array: on ten million opens each extra temporary costs more
    than the division."""
    out = to_ns(col)
    missing = out == NEVER
    np.floor_divide(out, 1_000_000_000, out=out)
    out[missing] = -1
    if (out >= NOT_CLOSED).any():
        raise ValueError("a timestamp after 2106 in the data: cannot be a CRM date")
    return out


def seconds_of(at: datetime | pd.Timestamp) -> int:
    ts = pd.Timestamp(at)
    if ts.tzinfo is None:
        raise ValueError("the snapshot moment must be timezone-aware")
    return int(ts.value // 1_000_000_000)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable"): equal keys keep their order in the table (the later
    of two stages entered at the same second is the deal's stage).

    A plain argsort and then the few runs of equal keys put back in table order: 2.5 times
    faster than a stable sort on five million stage entries, the same permutation."""
    order = np.argsort(keys)
    ranked = keys[order]
    tie = ranked[1:] == ranked[:-1]
    if tie.any():
        at = np.flatnonzero(np.concatenate([tie, [False]]) | np.concatenate([[False], tie]))
        order[at] = order[at][np.lexsort((order[at], ranked[at]))]
    return order


@dataclass
class _Events:
    """Events keyed by owner (deal or client code) and time, sorted: key = code << 32 + second (second in [0, 2**32))."""

    keys: np.ndarray
    values: np.ndarray | None = None  # e.g. the stage code of each stage entry

    @classmethod
    def build(cls, owner: np.ndarray, sec: np.ndarray, values: np.ndarray | None = None) -> "_Events":
        keep = (owner >= 0) & (sec >= 0)
        keys = (owner[keep].astype(np.int64) << SHIFT) + sec[keep]
        if values is None:  # equal keys are interchangeable: a plain sort, several times faster than a stable argsort
            return cls(np.sort(keys))
        order = _stable_order(keys)
        return cls(keys[order], values[keep][order])

    def upto(self, owner: np.ndarray, at: int) -> np.ndarray:
        """Index one past the owner's last event at or before `at` (the count before it, too)."""
        return np.searchsorted(self.keys, (owner.astype(np.int64) << SHIFT) + np.int64(at), side="right")

    def start(self, owner: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, owner.astype(np.int64) << SHIFT, side="left")

    def count(self, owner: np.ndarray, after: int, at: int) -> np.ndarray:
        """Events of each owner in (after, at]; owners < 0 count 0."""
        n = self.upto(owner, at) - self.upto(owner, after)
        return np.where(owner >= 0, n, 0)

    def last(self, owner: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
        """(row of the owner's last event at or before `at`, whether it has one)."""
        idx = self.upto(owner, at) - 1
        has = (owner >= 0) & (idx >= self.start(owner))
        return np.where(has, idx, 0), has


SLACK = 91 * DAY  # indexed before the first moment asked about: deal_risk looks back at most 90 days
OPENS_SLACK = SLACK  # opens kept before the first window asked for


class _ByDeal:
    """Stage entries and touches (stage entries, done activities) by deal, indexed only for the
    deals asked about first and every deal still open shortly before then; all deals on a miss.

    Joining five million history rows to a million deals and sorting them was the dearest part
    of prepare, and a scan asks only about the deals open now: a tenth of a company's deals or
    fewer, with years of history. A fit asks about its oldest snapshot first, so it indexes
    nearly every deal at once. A covered deal has every event of its own, whatever `at` is
    asked later, so the features are the same as with every deal indexed."""

    def __init__(self, deal_ids: pd.Series, closed: np.ndarray, hist_ids: pd.Series | None, hist_sec: np.ndarray,
                 hist_code: np.ndarray, act_deal: np.ndarray, act_sec: np.ndarray):
        self._deal_ids, self._closed = deal_ids, closed
        self._hist_ids, self._hist_sec, self._hist_code = hist_ids, hist_sec, hist_code  # hist_ids None: no stage entries
        self._act_deal, self._act_sec = act_deal, act_sec
        self._covered: np.ndarray | None = None  # per deal: all its events are in the arrays
        self.entries = self.touches = _Events(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def at(self, rows: np.ndarray, at: int) -> tuple[_Events, _Events]:
        """(stage entries, touches) holding every event of each of `rows`."""
        if self._covered is None:
            self._index(np.flatnonzero(self._closed > at - SLACK))  # open: NOT_CLOSED; closed undated (-1): never open
        if not self._covered[rows].all():
            self._index(None)
        return self.entries, self.touches

    def _index(self, chosen: np.ndarray | None) -> None:
        n = len(self._closed)
        if chosen is not None and len(chosen) == n:
            chosen = None
        covered = np.ones(n, bool) if chosen is None else np.zeros(n, bool)
        owner = None
        if self._hist_ids is not None:
            if chosen is None:
                owner = positions(self._hist_ids, self._deal_ids)
            else:
                covered[chosen] = True
                found = positions(self._hist_ids, self._deal_ids.iloc[chosen])
                owner = np.where(found >= 0, chosen[np.maximum(found, 0)], -1) if len(chosen) else found
            entries = _Events.build(owner, self._hist_sec, self._hist_code)
            real = ~stage_repeats(entries.keys >> SHIFT, entries.values)  # an edit at the same stage: no move, no touch
            self.entries = _Events(entries.keys[real], entries.values[real])
        elif chosen is not None:
            covered[chosen] = True
        act = self._act_deal.copy()
        act[act >= 0] = np.where(covered[act[act >= 0]], act[act >= 0], -1)
        if owner is None:
            self.touches = _Events.build(act, self._act_sec)
        else:  # the real entries (their keys hold deal and second) and the activities, in one sort
            keys = self.entries.keys
            self.touches = _Events.build(np.concatenate([keys >> SHIFT, act]), np.concatenate([keys & _LOW, self._act_sec]))
        self._covered = covered
        if chosen is None:  # every deal indexed: the raw columns are not needed again, nor kept alive
            self._hist_ids = self._hist_sec = self._hist_code = self._act_deal = self._act_sec = None


class _OpensFrom:
    """Opens of outbound emails by client, joined to their emails only when first counted: the
    opens of the window asked for, of the clients with a deal open shortly before; an earlier
    window adds its opens, a client left out indexes every open of every client.

    The join matches every open's email id among the emails' (10,000,000 strings in 2,500,000 on
    the scan's company): the dearest step of prepare. A scan that reuses its fit counts opens in
    two 30-day windows (now and `lookback_days` ago) for the clients of the deals open now, so
    it joins five weeks of opens into those clients' outbound emails, not years into all; a fit
    asks for its oldest snapshot first, so it joins once, from there on. Always exact (email ids
    are unique, as the loader leaves them)."""

    def __init__(self, email_id: pd.Series, sec: np.ndarray, emails_id: pd.Series, inbound: np.ndarray,
                 e_client: np.ndarray, deal_client: np.ndarray, closed: np.ndarray, n_clients: int):
        self._email_id, self._sec, self._emails_id = email_id, sec, emails_id
        self._inbound, self._e_client = inbound, e_client
        self._deal_client, self._closed = deal_client, closed
        self._events: _Events | None = None
        self._from = -1  # the events hold every open after this second...
        self._covered = np.ones(n_clients, bool)  # ...of these clients
        self._lookup: tuple[np.ndarray, pd.Series] | None = None  # their outbound emails (rows, ids); None: all

    def _join(self, keep: np.ndarray) -> np.ndarray:
        """The client of each kept open's email; -1: an inbound email, no client, not covered."""
        ids = self._email_id if len(keep) == len(self._sec) else self._email_id.iloc[keep]
        if self._lookup is None:
            row = positions(ids, self._emails_id)
            r = np.maximum(row, 0)
            return np.where((row >= 0) & ~self._inbound[r], self._e_client[r], -1)
        wanted, subset = self._lookup  # a lookup into a few outbound emails, not all of them
        found = positions(ids, subset)
        return np.where(found >= 0, self._e_client[wanted[np.maximum(found, 0)]], -1) if len(wanted) else found

    def _start(self, after: int) -> None:
        """The first count: opens after `after`, of the clients with a deal not closed OPENS_SLACK before."""
        since = after - OPENS_SLACK
        covered = np.zeros(len(self._covered), bool)
        covered[self._deal_client[(self._closed > since) & (self._deal_client >= 0)]] = True
        keep = np.flatnonzero(self._sec > after)
        if after < 0 or since < 0 or (covered.all() and len(keep) == len(self._sec)):
            return self._everything()
        if not covered.all():
            e = self._e_client
            wanted = np.flatnonzero((e >= 0) & ~self._inbound & covered[np.maximum(e, 0)])
            self._lookup = (wanted, self._emails_id.iloc[wanted])
        self._covered, self._from = covered, after
        self._events = _Events.build(self._join(keep), self._sec[keep])

    def _extend(self, after: int) -> None:
        """An earlier window: the opens in (after, what is indexed] join the events."""
        keep = np.flatnonzero((self._sec > after) & (self._sec <= self._from))
        more = _Events.build(self._join(keep), self._sec[keep])
        self._events, self._from = _Events(np.sort(np.concatenate([self._events.keys, more.keys]))), after

    def _everything(self) -> None:
        """Every open of every client (a fit's first snapshot, a client left out); the raw
        columns are not needed again, nor kept alive."""
        self._covered[:], self._lookup, self._from = True, None, -1
        self._events = _Events.build(self._join(np.arange(len(self._sec))), self._sec)
        self._email_id = self._emails_id = self._sec = self._inbound = self._e_client = None
        self._deal_client = self._closed = None

    def count(self, owner: np.ndarray, after: int, at: int) -> np.ndarray:
        """Opens of each owner's emails in (after, at], as _Events.count."""
        if self._events is None:
            self._start(after)
        if self._from >= 0:  # not everything yet
            if after < 0 or not self._covered[owner[owner >= 0]].all():
                self._everything()
            elif after < self._from:
                self._extend(after)
        return self._events.count(owner, after, at)


@dataclass
class Prepared:
    """The deals and their dated events, indexed once, for features at many snapshots."""

    deal_ids: np.ndarray
    created: np.ndarray  # seconds
    closed: np.ndarray  # seconds; NOT_CLOSED for open deals; -1 closed at an unknown time
    won: np.ndarray  # bool: the deal's status is won
    lost: np.ndarray
    amount: np.ndarray  # float, nan unknown
    client: np.ndarray  # client code, -1 none
    cats: dict[str, np.ndarray]  # source/region/manager_id as object arrays (None missing)
    stages: list[str]  # stage order; UNKNOWN_STAGE last
    by_deal: _ByDeal  # stage entries by deal (value = stage code) and touches by deal
    client_touches: _Events | None
    replies: _Events | None
    opens: "_OpensFrom | None"
    client_won: _Events | None
    client_lost: _Events | None
    use_stage: bool
    features: tuple[str, ...]  # the columns features_at returns (besides deal_id)
    dropped: dict[str, str] = field(default_factory=dict)  # feature -> why it is not used
    history_keys: dict = field(default_factory=dict, repr=False)  # predict.model.history_key's, by (second, rule)


def amount_is_recorded_at_close(deals: pd.DataFrame) -> str | None:
    """Why the amount would leak the outcome (set only on won deals), or None.

    Maven's close_value is 0 on every lost deal: a model would learn "amount 0 = lost" and
    look perfect on paper while knowing nothing about an open deal (whose amount is empty)."""
    status = deals["status"]  # the amount column only: filtering the whole frame copied every column
    lost = deals["amount"][status.isin(["lost"]).to_numpy(bool)]
    won = deals["amount"][status.isin(["won"]).to_numpy(bool)]
    if len(lost) < 20 or len(won) < 20:
        return None
    lost_empty = float((lost.isna() | (lost == 0)).mean())
    won_empty = float((won.isna() | (won == 0)).mean())
    if lost_empty >= 0.9 and won_empty <= 0.1:
        return (f"amount is empty or 0 on {lost_empty:.0%} of lost deals but on {won_empty:.0%} of won ones: "
                "it is filled in at closing, so it would give the outcome away")
    return None


def filled_at_closing(deals: pd.DataFrame, col: str, empty: np.ndarray | None = None) -> str | None:
    """Why `col` would tell the model a deal is going to close, or None: empty on many of the
    deals open now and on (almost) none of the closed ones.

    Such a field is filled in when the deal closes (Maven's account is empty on 68% of open
    deals and on no closed one). Features read its value as it is now, so at every past
    snapshot a deal that later closed already has it and one that never closed does not: the
    model would learn "has an account -> will be won" from the future, and fail on open deals.
    `empty`: which cells count as not filled in, when not only the blank ones (an amount of 0)."""
    if col not in deals:
        return None
    status = deals["status"]
    is_open, closed = (status == "open").to_numpy(bool), status.isin(["won", "lost"]).to_numpy(bool)
    if is_open.sum() < 20 or closed.sum() < 20:
        return None
    empty = deals[col].isna().to_numpy(bool) if empty is None else empty
    open_empty, closed_empty = float(empty[is_open].mean()), float(empty[closed].mean())
    if open_empty >= 0.2 and closed_empty <= 0.02:
        return (f"{col} is empty on {open_empty:.0%} of open deals but on {closed_empty:.0%} of closed ones: "
                "it is filled in at closing, so it would tell the model which deals close")
    return None


def prepare(data: CrmData) -> Prepared:
    deals = data.deals.reset_index(drop=True)
    n = len(deals)
    deal_ids = deals["deal_id"].astype(object).to_numpy()
    created = _seconds(deals["created_at"])
    closed_raw = _seconds(deals["closed_at"]) if "closed_at" in deals else np.full(n, -1, np.int64)
    won, lost = (deals["status"] == "won").fillna(False).to_numpy(bool), (deals["status"] == "lost").fillna(False).to_numpy(bool)
    closed = np.where(won | lost, closed_raw, NOT_CLOSED)
    dropped: dict[str, str] = {}

    # Stage entries (deal code, second, stage code).
    stages = [*data.stages]
    use_stage = not data.stage_history_derived
    if not use_stage:
        dropped["stage"] = ("the stage history is derived from the deals table (each deal 'entered' its current "
                            "stage when it was created), so a deal's stage at a past date is not known")
    hist = data.stage_history
    extra = sorted({str(s) for s in pd.unique(hist["stage"].dropna())} - set(stages))
    stages = stages + extra + [UNKNOWN_STAGE]
    # a derived history is neither the stage nor a touch: not read at all
    hist_code = positions(hist["stage"], pd.Series(stages, dtype=object)) if use_stage else None  # -1 none
    hist_sec = _seconds(hist["entered_at"]) if use_stage else None

    # Touches: stage entries, done activities (of the deal; or of its client when no deal is given),
    # emails either way (by client, as stalled_deal counts them).
    act_deal, act_sec = np.zeros(0, np.int64), np.zeros(0, np.int64)
    client_codes = None
    client_touch = None
    has_client = data.has_column("deals", "client_id")
    client_leak = filled_at_closing(deals, "client_id") if has_client else None
    if client_leak:
        has_client = False
        for f in ("client_won", "client_lost", "replies_30d", "opens_30d"):
            dropped[f] = client_leak
    if has_client:
        keys = pd.Series(pd.unique(deals["client_id"].dropna().astype(str)), dtype=object)
        client = positions(deals["client_id"], keys)
        client_codes = keys
    else:
        client = np.full(n, -1, np.int64)
        if not client_leak:
            dropped["client_won"] = dropped["client_lost"] = "deals have no client_id"
    c_owner, c_sec = [], []
    acts = data.activities
    work_logged = False  # a done activity or an email can count as a touch
    if acts is not None and data.has_column("activities", "done_at"):
        work_logged = data.has_column("activities", "deal_id") or (
            client_codes is not None and data.has_column("activities", "client_id"))
        used = [c for c in ("done_at", "deal_id", "client_id") if c in acts]  # not a copy of every column
        real = acts[used][acts["type"].isin(["call", "meeting", "task", "email"]).to_numpy(bool)]
        a_sec = _seconds(real["done_at"])
        a_deal = positions(real["deal_id"], deals["deal_id"]) if data.has_column("activities", "deal_id") \
            else np.full(len(real), -1, np.int64)
        act_deal, act_sec = a_deal, a_sec
        if client_codes is not None and data.has_column("activities", "client_id"):
            a_client = positions(real["client_id"], client_codes)
            c_owner.append(np.where(a_deal < 0, a_client, -1))
            c_sec.append(a_sec)
    replies = opens = None
    emails = data.emails
    if emails is not None and client_codes is not None and len(emails):
        e_client = positions(emails["client_id"], client_codes)
        e_sec = _seconds(emails["sent_at"])
        c_owner.append(e_client)
        c_sec.append(e_sec)
        work_logged = True
        inbound = (emails["direction"] == "in").fillna(False).to_numpy(bool)
        replies = _Events.build(np.where(inbound, e_client, -1), e_sec)
        if data.email_opens is not None and len(data.email_opens):
            opens = _OpensFrom(data.email_opens["email_id"], _seconds(data.email_opens["opened_at"]),
                               emails["email_id"], inbound, e_client, client, closed, len(client_codes))
        else:
            dropped["opens_30d"] = "no email_opens table"
    elif not client_leak:
        dropped["replies_30d"] = dropped["opens_30d"] = "no emails table (or deals have no client_id)"
    if c_owner:
        client_touch = _Events.build(np.concatenate(c_owner), np.concatenate(c_sec))
    if not work_logged:  # absent is not "nobody called": the words would say "no touch for 20 days"
        dropped["touches_14d"] = dropped["days_since_touch"] = (
            "no activities with done_at (and a deal or client) and no emails: only stage changes would count "
            "as touches, and days_at_stage already says how long since the last one")
    by_deal = _ByDeal(deals["deal_id"], closed, hist["deal_id"] if use_stage else None, hist_sec, hist_code,
                      act_deal, act_sec)

    client_won = client_lost = None
    if client_codes is not None:
        client_won = _Events.build(np.where(won, client, -1), closed_raw)
        client_lost = _Events.build(np.where(lost, client, -1), closed_raw)

    amount = filled_amounts(deals["amount"]) if "amount" in deals else np.full(n, np.nan)  # 0: not filled in
    if not data.has_column("deals", "amount"):
        dropped["amount"] = "deals have no amount"
    elif np.isnan(amount).all():
        dropped["amount"] = AMOUNT_UNFILLED
    else:
        why = amount_is_recorded_at_close(deals) or filled_at_closing(deals, "amount", np.isnan(amount))
        if why:
            dropped["amount"] = why
    cats: dict[str, np.ndarray] = {}
    for col in ("source", "region", "manager_id"):
        leak = filled_at_closing(deals, col) if data.has_column("deals", col) else None
        if leak:
            dropped[col] = leak
        elif data.has_column("deals", col):
            cats[col] = deals[col].astype(object).where(deals[col].notna(), None).to_numpy()
        else:
            dropped[col] = f"deals have no {col}"
    if "region" not in cats and client_leak and data.clients is not None and data.has_column("clients", "region"):
        dropped["region"] = f"the client's region: {client_leak}"
    elif "region" not in cats and data.clients is not None and has_client and data.has_column("clients", "region"):
        row = positions(deals["client_id"], data.clients["client_id"])
        reg = data.clients["region"].astype(object).to_numpy()
        cats["region"] = np.where(row >= 0, reg[np.maximum(row, 0)], None)
        dropped.pop("region", None)
    features = [c for c in NUMERIC if c not in dropped]
    if not use_stage:
        features = [c for c in features if c not in ("stage_pos", "days_at_stage", "stage_moves")]
    features += [c for c in CATEGORICAL if c not in dropped and (c != "stage" or use_stage)]
    if replies is None:
        features = [c for c in features if c != "replies_30d"]
    if opens is None:
        features = [c for c in features if c != "opens_30d"]
    return Prepared(
        deal_ids=deal_ids, created=created, closed=closed, won=won, lost=lost, amount=amount, client=client,
        cats=cats, stages=stages, by_deal=by_deal, client_touches=client_touch,
        replies=replies, opens=opens, client_won=client_won, client_lost=client_lost, use_stage=use_stage,
        features=tuple(features), dropped=dropped,
    )


MIN_FILLED = 0.5  # share of deals with an amount before amounts are summed or ranked


def amounts_usable(prep: Prepared) -> bool:
    """The amount is a feature and filled in on at least half the deals: worth a forecast in money
    and a "large deal" filter. An amount nobody fills in (empty or 0) is no money: summed as 0, a
    company whose budgets are mostly unfilled was told "0 ₸ expected". Over all deals, not the
    open ones alone, so the backtest's months and today's forecast share one unit."""
    if "amount" not in prep.features or not len(prep.amount):
        return False
    return float(np.isfinite(prep.amount).mean()) >= MIN_FILLED


def open_at(prep: Prepared, at: int) -> np.ndarray:
    """Positions of the deals open at second `at`: created by then, not closed by then.

    A closed deal with no closing date (closed = -1) is never taken as open: when it closed
    is unknown, so any snapshot could be after its outcome."""
    return np.flatnonzero((prep.created >= 0) & (prep.created <= at) & (prep.closed > at))


def outcome_after(prep: Prepared, rows: np.ndarray, at: int, known_by: int) -> np.ndarray:
    """1 won, 0 lost, -1 not known by `known_by` (still open then), for deals open at `at`."""
    closed = prep.closed[rows]
    done = (closed > at) & (closed <= known_by)
    return np.where(done & prep.won[rows], 1, np.where(done & prep.lost[rows], 0, -1)).astype(np.int8)


def won_within(prep: Prepared, rows: np.ndarray, at: int, horizon: int) -> np.ndarray:
    """1 if the deal open at `at` was won in (at, at + horizon], else 0: lost, won later, or
    still open then. Every deal open at `at` gets a label, so none is dropped for being slow.

    Keeping only the deals whose outcome is known (outcome_after) drops the ones still open at
    the data's end: the slow and the forgotten, which are rarely won. The rows left are the
    quick closers, and a rate learned on them says more deals win than do (a censoring bias the
    stage baseline shares). A fixed horizon asks a question the data answers for every deal."""
    closed = prep.closed[rows]
    return ((closed > at) & (closed <= at + horizon) & prep.won[rows]).astype(np.int8)


def _stage_codes(prep: Prepared, rows: np.ndarray, t: int, entries: "_Events | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Each deal's stage at second `t` (index into prep.stages; the last one: unknown) and when it
    entered it. `entries`: the stage entries indexed for `rows` (prep.by_deal), fetched if not given."""
    if entries is None:
        entries = prep.by_deal.at(rows, t)[0]
    idx, has = entries.last(rows, t)
    code = np.where(has, entries.values[idx] if len(entries.keys) else 0, len(prep.stages) - 1)
    code = np.where(code < 0, len(prep.stages) - 1, code)
    entered = np.where(has, entries.keys[idx] & _LOW if len(entries.keys) else 0, prep.created[rows])
    return code, entered


def stage_at(prep: Prepared, rows: np.ndarray, t: int) -> np.ndarray | None:
    """The stage name of each deal at second `t` as features_at has it; None when the stage is not used."""
    if not prep.use_stage:
        return None
    return np.asarray(prep.stages, dtype=object)[_stage_codes(prep, np.asarray(rows, np.int64), int(t))[0]]


def features_at(prep: Prepared, at: datetime | pd.Timestamp | int, rows: np.ndarray | None = None) -> pd.DataFrame:
    """One row per deal open at `at` (or the given deal positions): its features then.

    Returns deal_id, the position `row`, and the columns in `prep.features`."""
    t = at if isinstance(at, (int, np.integer)) else seconds_of(at)
    t = int(t)
    rows = open_at(prep, t) if rows is None else np.asarray(rows, np.int64)
    out: dict[str, object] = {"deal_id": prep.deal_ids[rows], "row": rows}
    days_open = (t - prep.created[rows]) / DAY
    entries, deal_touches = prep.by_deal.at(rows, t)
    if prep.use_stage:
        code, entered = _stage_codes(prep, rows, t, entries)
        out["stage_pos"] = np.where(code == len(prep.stages) - 1, np.nan, code).astype(float)
        out["days_at_stage"] = (t - entered) / DAY
        out["stage_moves"] = (entries.upto(rows, t) - entries.start(rows)).astype(float)
        out["stage"] = np.asarray(prep.stages, dtype=object)[code]
    out["days_open"] = days_open
    if "amount" in prep.features:
        out["amount"] = prep.amount[rows]
    cl = prep.client[rows]
    touches = deal_touches.count(rows, t - 14 * DAY, t).astype(float)
    d_idx, d_has = deal_touches.last(rows, t)
    last = np.where(d_has, deal_touches.keys[d_idx] & _LOW if len(deal_touches.keys) else 0, -1)
    if prep.client_touches is not None:
        touches += prep.client_touches.count(cl, t - 14 * DAY, t)
        c_idx, c_has = prep.client_touches.last(cl, t)
        c_last = np.where(c_has, prep.client_touches.keys[c_idx] & _LOW if len(prep.client_touches.keys) else 0, -1)
        last = np.maximum(last, c_last)
    out["touches_14d"] = touches
    # Never touched: counted from creation (a deal nobody touched is as old as its silence).
    out["days_since_touch"] = (t - np.where(last >= 0, np.maximum(last, prep.created[rows]), prep.created[rows])) / DAY
    if prep.replies is not None:
        out["replies_30d"] = prep.replies.count(cl, t - 30 * DAY, t).astype(float)
    if prep.opens is not None:
        out["opens_30d"] = prep.opens.count(cl, t - 30 * DAY, t).astype(float)
    if prep.client_won is not None:
        # strictly before `at`: a deal closed at the very second of the snapshot is not history yet
        out["client_won"] = prep.client_won.count(cl, -1, t - 1).astype(float)
        out["client_lost"] = prep.client_lost.count(cl, -1, t - 1).astype(float)
    for col, values in prep.cats.items():
        if col in prep.features:
            out[col] = values[rows]
    frame = pd.DataFrame(out)
    return frame[["deal_id", "row", *prep.features]]


def snapshot_rows(prep: Prepared, snapshots: list[int], known_by: int, *, horizon: int | None = None,
                  max_rows: int | None = None, seed: int = 0, partial: bool = False) -> pd.DataFrame:
    """Training rows: each deal open at each snapshot, with its outcome.

    `horizon` (seconds): `won` is "won within the horizon" (won_within) for every deal open at
    the snapshot; a snapshot whose horizon ends after `known_by` is refused, its labels are not
    known yet, unless `partial`: then it is followed only up to `known_by` (`won`: won by then)
    and the column `follow` says for how many seconds each row was followed (predict.model's
    anchor weighs such rows by the share of wins that come that soon). Without `horizon`: the
    eventual outcome, for the deals closed by `known_by` only.
    Adds `at` (the snapshot second) and `won` (0/1). A deal open for two months appears at
    each snapshot of those months, as open deals do in the pipeline the model will score.
    With `max_rows`, a fixed-seed uniform sample of the rows keeps training time bounded; it is
    drawn before any feature is computed (a million deals open at 60 snapshots are 60 million
    rows to describe, of which 150,000 are kept)."""
    if partial and horizon is None:
        raise ValueError("partial follow-up needs a horizon: it is the horizon that is cut short")
    labelled = []
    for at in snapshots:
        rows = open_at(prep, at)
        if horizon is not None:
            if at + horizon > known_by and not (partial and at <= known_by):
                raise ValueError(f"snapshot {pd.Timestamp(at, unit='s', tz='UTC')}: its {horizon // DAY}-day horizon "
                                 f"ends after {pd.Timestamp(known_by, unit='s', tz='UTC')}, when outcomes stop being known")
            y = won_within(prep, rows, at, min(horizon, known_by - at))
        else:
            y = outcome_after(prep, rows, at, known_by)
        labelled.append((at, rows[y >= 0], y[y >= 0]))
    total = sum(len(r) for _, r, _ in labelled)
    if max_rows is not None and total > max_rows:
        pick = np.zeros(total, bool)
        pick[np.random.default_rng(seed).choice(total, max_rows, replace=False)] = True
        cut = np.cumsum([0] + [len(r) for _, r, _ in labelled])
        labelled = [(at, r[pick[a:b]], y[pick[a:b]]) for (at, r, y), a, b in zip(labelled, cut[:-1], cut[1:])]
    parts = []
    for at, keep, y in labelled:
        if not len(keep):
            continue
        f = features_at(prep, at, keep)
        f["at"] = at
        f["won"] = y
        if partial:
            f["follow"] = min(horizon, known_by - at)
        parts.append(f)
    if not parts:
        return pd.DataFrame(columns=["deal_id", "row", *prep.features, "at", "won", *(["follow"] if partial else [])])
    return pd.concat(parts, ignore_index=True)
