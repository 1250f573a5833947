"""lead_sla: a new lead left without a manager, or without an answer, beyond the SLA.

Time is counted in working hours of the company calendar ([calendar] in config, shared with
stalled_deal; see working_hours.py), from the lead's creation: the client has been waiting
since then, whoever was assigned. What we report, and why:
- only leads still waiting at `now`: that is what someone can fix today. A lead answered
  late is history (the backtest and the director's stats show it), not an alert;
- only leads created in the last `lookback_days` (default 7): an unanswered lead from last
  spring is an abandoned record, not a waiting client, and would flood the first run;
- one insight per lead: "unassigned" while nobody owns it (goes to the director: there is no
  manager yet), then "unanswered" once assigned (goes to the manager);
- escalated (severity critical, the director sees it too) once the wait reaches
  `escalate_after_hours` working hours;
- more than `max_leads_each` waiting leads of one kind for one recipient are one backlog item
  (subject and facts `backlog`: how many, the longest waits, how many escalated), not one item
  per lead: a busy inbox that falls behind flooded the manager and, through escalation, the
  director;
- the waiting leads still written to one person who left are ONE director item about that
  person, however few (subject `written_to`): the CRM's round robin keeps giving them a lead a
  day or two, never more than `max_leads_each` at once, so each was its own item, escalated and
  sent at once as critical (73 of 91 director items on a HubSpot export). The fix is one, in the
  CRM: reassign them and take the person out of the distribution.
A lead counts as assigned at `assigned_at`, or at creation when it has a manager but no
assignment time (the CRM assigned it automatically). A lead written to someone who is no working
manager as of the day judged (detectors.people.Workforce, the one notion stalled_deal and
manager_load use: active = false; no deal, lead, activity or email in active_window_days; given
deals but no call, task or email by them or on their deals in that window while most people
given deals record theirs, as a CRM's shared account or a person who left unmarked and is still
in the round robin; or in no managers file: the CRM keeps a fired user's name) has nobody to
answer it: it is "unassigned", for the director, naming that person and why (facts
`owner_left`); it was a manager item nobody received. A replay asks who works once per day,
from what existed by then. An owner cell that names
nobody ("No owner", «Без ответственного», the `[source.fill] manager_id` constant:
crm.owners) is no owner at all: "not assigned to anyone", never "No owner has not
answered" nor "assigned to No owner, who left". Leads whose status is in
`ignore_statuses` (spam, duplicates) or `handled_statuses` (converted into a deal, closed:
somebody clearly worked on it) are skipped, and so are the CRMs' own words for "no lead" and
"someone worked on it" (crm.lead_words: a HubSpot `subscriber`, a `customer`, Bitrix24's
«Обработан»; amoCRM's closed 142/143 and a lead its custom pipeline moved past the first stage,
lead_words.worked_stages), whatever the lists say: a contacts export made every ownerless subscriber and
customer an "unassigned lead". Statuses compare ignoring case, spaces, `_` and `-`.

What happens after the data ends is unknown, not "not done": an export taken at T and scanned
at now = T + 3 hours (fresh enough to run) has no answer for the leads created in the hour
before T (they came after the export), and at `now` every one of them looked unanswered past
its SLA. So a lead is judged at the data's end, min(now, the export's newest record), not at
`now`: waiting and the working hours waited are counted up to it, and a lead whose deadline
passes after it is not judged yet (the next export judges it). A scan at a past `now` (a
backtest's day, `preview --now`) sees data complete up to it, so it is cut at `now` (the
export's newest record overall, not the newest before `now`: on a quiet weekend that would
hold back every lead of it). A live source (a connector's synced store, a SQL database:
CrmData.live) is complete up to the read and judged at `now`: a quiet morning with no record
yet is no sign that the data ended, and the lead nobody answered then is the one to raise.
When the data ends an hour or more before `now`, facts["data_end"] holds it and the words say
"as of".

An absent column is never read as "not done yet" (NEEDS): without `first_response_at` nobody
can tell an answered lead from a waiting one, so "unanswered" is not checked; without
`assigned_at` and `manager_id`, "unassigned" is not checked either. Each skipped part is one
line in scan and check-config, never a flood of false breaches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pydantic import Field

from crm import lead_words, owners
from crm.data import CrmData
from detectors.insight import Audience, Insight, make_fingerprint
from detectors.registry import DetectorSpec, Need, register
from detectors.columns import NEVER, iso_utc, positions, to_ns
from detectors.people import Workforce, shared_workforce
from detectors.stats import ts_ns
from detectors.working_hours import WorkCalendar, default_calendar

NAME = "lead_sla"
NEED_OWNER = Need(("leads.assigned_at", "leads.manager_id"), part="leads without a manager")
NEED_ANSWER = Need(("leads.first_response_at",), part="unanswered leads")
# Neither part can run without one of these: the whole detector is skipped with one line.
NEED_ANY = Need(("leads.assigned_at", "leads.manager_id", "leads.first_response_at"))
# A backlog item (more than max_leads_each waiting leads) lists the first MAX_LISTED.
MAX_LISTED = 5
_DAY_NS = 86_400 * 1_000_000_000
_HOUR_NS = 3_600 * 1_000_000_000
# the data ending this long before `now` is said in the words ("as of 17:05"): a live sync's
# few minutes are not worth a line
_SAY_END_NS = _HOUR_NS


class LeadSlaSpec(DetectorSpec):
    assign_sla_hours: float = Field(1.0, gt=0, description="working hours to give a new lead a manager")
    response_sla_hours: float = Field(2.0, gt=0, description="working hours from creation to the first answer")
    escalate_after_hours: float = Field(8.0, gt=0, description="working hours of waiting after which the director is told")
    lookback_days: int = Field(7, ge=1, description="only leads created within this many days are checked")
    # the digest budget is 5 items a day per person, for every detector together
    max_leads_each: int = Field(3, ge=1, description=(
        "more waiting leads of one kind than this for one recipient are one backlog item"))
    ignore_statuses: list[str] = Field(default_factory=lambda: ["spam", "junk", "duplicate"])
    handled_statuses: list[str] = Field(
        default_factory=lambda: ["converted", "qualified", "won", "lost", "closed", "конвертирован",
                                 "сконвертирован", "успешно реализовано", "закрыто и не реализовано", "закрыт",
                                 "качественный лид", "некачественный лид"],  # Bitrix24's closing lead stages
        description="lead statuses that mean someone worked on it (compared case-insensitively)")

    # The company calendar, shared with stalled_deal: filled by bot/config.py from [calendar]
    # and the config's timezone (not a [detectors.lead_sla] key); excluded from dumps.
    calendar: WorkCalendar = Field(default_factory=default_calendar, exclude=True)
    # Who is working: filled by bot/config.py from [detectors.manager_load] active_window_days
    # (one notion of "working" for every detector; not a [detectors.lead_sla] key).
    active_window_days: int = Field(90, ge=1, le=730, exclude=True)





def _opt(v: object) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


@dataclass
class LeadSlaState:
    spec: LeadSlaSpec
    calendar: WorkCalendar
    columns: dict[str, pd.Series]  # lead columns the facts need; only the rows behind insights are read
    created: np.ndarray
    created_w: np.ndarray  # working ns since the calendar anchor at creation
    assigned: np.ndarray  # effective assignment time, NEVER if never
    responded: np.ndarray
    ignored: np.ndarray
    has_owner: np.ndarray  # the lead's manager_id names someone (not an owner cell naming nobody)
    owner_row: np.ndarray  # the lead's owner's row in workforce.people (-1: in no managers file)
    workforce: Workforce  # who is working on a day (detectors.people: stalled_deal's and manager_load's notion)
    check_owner: bool  # assignment is known (NEED_OWNER met)
    check_answer: bool  # first answers are known (NEED_ANSWER met)
    manager_names: dict[str, str]
    # lead row -> (lead_id, source, region, manager_id), read on the lead's first insight and
    # reused by every later day of a replay; (row, kind) -> fingerprint likewise
    static: dict[int, tuple[str, str | None, str | None, str | None]] = field(default_factory=dict)
    fingerprints: dict[tuple[int, str], str] = field(default_factory=dict)
    # the export's newest record (ns) that a replay's day is cut at; None: a live source, judged at now
    data_end: int | None = None


def prepare(data: CrmData, spec: LeadSlaSpec, now: datetime | None = None) -> LeadSlaState:
    """The day-independent part. With `now` (one scan) who is working is read for that day
    alone; without it (a replay) it is answered per day (detectors.people.Workforce)."""
    leads = data.leads
    assert leads is not None
    leads = leads.reset_index(drop=True)
    cal = spec.calendar
    created = to_ns(leads["created_at"])
    assigned = to_ns(leads["assigned_at"])
    owner = leads["manager_id"].astype("string")
    # "No owner", «Без ответственного», the configured fill constant: nobody, not a person who left
    nobody = owners.names_nobody(data, owner)
    if nobody.any():
        owner = owner.mask(nobody)
        leads = leads.assign(manager_id=owner)
    who = shared_workforce(data, spec.active_window_days, None if now is None else ts_ns(now))
    has_manager = np.asarray(owner.notna(), dtype=bool)
    owner_row = np.where(has_manager, positions(owner, who.people), -1)
    assigned = np.where((assigned == NEVER) & has_manager, created, assigned)
    assigned = np.where(nobody, NEVER, assigned)  # assigned to nobody is not assigned
    ignore = (lead_words.keys([*spec.ignore_statuses, *spec.handled_statuses]) | lead_words.NOT_A_LEAD
              | lead_words.ANSWERED | lead_words.NOT_CONVERTED | lead_words.worked_stages(data.stages))
    ignore.discard("")
    ignored = np.asarray(lead_words.status_keys(leads["status"]).isin(ignore), dtype=bool)
    return LeadSlaState(
        spec=spec, calendar=cal, created=created,
        columns={c: leads[c] for c in ("lead_id", "source", "region", "manager_id")},
        created_w=cal.working_ns_since_anchor(leads["created_at"]),
        assigned=assigned, responded=to_ns(leads["first_response_at"]), ignored=ignored,
        has_owner=has_manager, owner_row=owner_row, workforce=who,
        check_owner=NEED_OWNER.met(data), check_answer=NEED_ANSWER.met(data),
        manager_names={str(k): str(v) for k, v in zip(data.managers["manager_id"], data.managers["name"])},
        data_end=None if data.live else _newest_ns(data),
    )


def _newest_ns(data: CrmData) -> int | None:
    """The newest record of the whole export (ns, to the minute below): where a replay stops
    judging. Records after it are unknown, not "not done"."""
    from crm.freshness import freshness
    newest = freshness(data, datetime(2200, 1, 1, tzinfo=timezone.utc)).newest
    return None if newest is None else int(newest.floor("min").value)


def detect_at(state: LeadSlaState, now: datetime, *, with_evidence: bool = True) -> list[Insight]:
    """The leads waiting beyond the SLA at the data's end: `now`, or the export's newest record
    when `now` is after it (a live source: always `now`). `with_evidence=False` leaves evidence
    empty (a backtest only counts and dedups)."""
    spec = state.spec
    now_ns = pd.Timestamp(now).tz_convert("UTC").value
    recent = (state.created != NEVER) & (state.created <= now_ns) & (state.created > now_ns - spec.lookback_days * _DAY_NS)
    if not (state.check_owner or state.check_answer):
        return []
    cut = now_ns if state.data_end is None else min(now_ns, state.data_end)
    waiting = recent & ~state.ignored & ((state.responded == NEVER) | (state.responded > cut)) & (state.created <= cut)
    if not waiting.any():
        return []
    gone = _gone(state, now_ns, waiting)
    cut_ts = pd.Timestamp(cut, tz="UTC")
    cut_w = int(state.calendar.working_ns_since_anchor(pd.DatetimeIndex([cut_ts]))[0])
    waited_h = (cut_w - state.created_w) / _HOUR_NS
    unassigned = (state.assigned == NEVER) | (state.assigned > cut) | (gone != "")  # nobody to answer it
    late_assign = waiting & unassigned & (waited_h > spec.assign_sla_hours) & state.check_owner
    late_answer = waiting & ~unassigned & (waited_h > spec.response_sla_hours) & state.check_answer
    rows = np.concatenate([np.flatnonzero(late_assign), np.flatnonzero(late_answer)])
    kinds = ["unassigned"] * int(late_assign.sum()) + ["unanswered"] * int(late_answer.sum())
    _fill_static(state, rows)
    said_end = iso_utc(cut) if now_ns - cut >= _SAY_END_NS else None
    out = [_insight(state, i, kind, waited, created, with_evidence, said_end, why)
           for i, kind, waited, created, why in zip(rows.tolist(), kinds, waited_h[rows].tolist(),
                                                    state.created[rows].tolist(), gone[rows].tolist())]
    out.sort(key=lambda x: (-x.facts["working_hours_waited"], x.subject["lead_id"]))
    return _backlogs(out, with_evidence, spec.max_leads_each)


def _gone(state: LeadSlaState, now_ns: int, rows: np.ndarray) -> np.ndarray:
    """Per lead (only `rows` filled): why its owner cannot answer it as of `now_ns`: "unknown"
    (in no managers file), "inactive", "idle" or "no_contact" (detectors.people.Workforce, as
    stalled_deal and manager_load read them that day), "" for a working owner or none. One
    Workforce answer per day, looked up by each lead's owner row."""
    out = np.full(len(state.owner_row), "", dtype=object)
    mine = rows & state.has_owner
    out[mine & (state.owner_row < 0)] = "unknown"
    who = state.workforce.at(now_ns)
    if who is None:  # prepared for one scan, asked about another day: the flag alone
        why = np.where(state.workforce.inactive, "inactive", "").astype(object)
    else:
        why = who.why_not()
    known = mine & (state.owner_row >= 0)
    out[known] = why[state.owner_row[known]]
    return out


def _backlogs(out: list[Insight], with_evidence: bool, most: int) -> list[Insight]:
    """More than `most` (max_leads_each) waiting leads of one kind for one recipient (a manager's
    unanswered leads, the director's unassigned ones) are one backlog item, longest wait first:
    a manager who falls behind on a busy inbox got one item per lead, 7 a day, and the director
    each of them again once escalated. The leads written to one person who left are one item
    however few: a lead or two a day from the CRM's round robin stayed under `most` and each was
    the director's critical alert. `out` is sorted longest wait first."""
    groups: dict[tuple[str, str | None, str | None], list[Insight]] = {}
    for ins in out:
        gone = ins.facts.get("owner_gone_id")  # one group per person who left, whatever the count
        groups.setdefault((ins.facts["kind"], ins.audience.manager_id, gone), []).append(ins)
    kept = []
    for (kind, manager_id, gone), items in groups.items():
        if gone is None and len(items) <= most:
            kept += items
            continue
        subject = ({"kind": kind, "written_to": gone} if gone is not None else
                   {"kind": kind, "backlog": True, **({"manager_id": manager_id} if manager_id else {})})
        grouped = _grouped(items, subject, with_evidence)
        if gone is not None:
            # Its longest wait rises and falls as the CRM gives the person new leads and old ones
            # leave the lookback (12 -> 44 -> 30 h in a week), so it is no measure of "worse": the
            # dedup's +24 h sent the same person again as a second critical. Listed, not measured.
            del grouped.facts["working_hours_waited"]
        kept.append(grouped)
    kept.sort(key=lambda x: (-_longest(x), str(x.subject.get("lead_id") or "")))
    return kept


def _longest(ins: Insight) -> float:
    """The longest wait behind an item: its own, or the first listed lead's."""
    f = ins.facts
    return f["working_hours_waited"] if "working_hours_waited" in f else f["listed"][0]["working_hours_waited"]


def _grouped(items: list[Insight], subject: dict, with_evidence: bool) -> Insight:
    """One item for `items` (longest wait first): how many, the first MAX_LISTED, how many escalated."""
    escalated = sum(1 for i in items if i.facts["escalated"])
    facts = {**items[0].facts, "backlog": True, "leads": len(items), "escalated_leads": escalated,
             "escalated": escalated > 0, "lead_id": items[0].subject["lead_id"],
             "listed": [{"lead_id": i.subject["lead_id"], "working_hours_waited": i.facts["working_hours_waited"]}
                        for i in items[:MAX_LISTED]]}
    return Insight(
        detector=NAME, severity="critical" if escalated else "warning", audience=items[0].audience,
        subject=subject, facts=facts, fingerprint=make_fingerprint(NAME, subject),
        evidence={"lead_ids": [i.subject["lead_id"] for i in items]} if with_evidence else {})


def _fill_static(state: LeadSlaState, rows: np.ndarray) -> None:
    """The lead cells the facts need, for leads not seen before, each column read once for all."""
    new = np.asarray([i for i in rows.tolist() if i not in state.static], dtype=np.int64)
    if not len(new):
        return
    cells = [state.columns[c].take(new).tolist() for c in ("lead_id", "source", "region", "manager_id")]
    for i, lead_id, source, region, manager in zip(new.tolist(), *cells):
        state.static[i] = (str(lead_id), _opt(source), _opt(region), _opt(manager))


def _insight(state: LeadSlaState, i: int, kind: str, waited: float, created: int, with_evidence: bool = True,
             data_end: str | None = None, gone: str = "") -> Insight:
    spec = state.spec
    lead_id, source, region, lead_manager = state.static[i]
    manager_id = lead_manager if kind == "unanswered" else None
    escalated = waited >= spec.escalate_after_hours
    facts = {
        "kind": kind,
        "lead_source": source,
        "lead_region": region,
        "created_at": iso_utc(created),
        "working_hours_waited": round(waited, 1),
        "sla_hours": spec.assign_sla_hours if kind == "unassigned" else spec.response_sla_hours,
        "manager_id": manager_id,
        "manager_name": state.manager_names.get(manager_id) if manager_id else None,
        # the owner the CRM still shows on a lead nobody can answer (not working, or in no managers file)
        "owner_gone": state.manager_names.get(lead_manager, lead_manager) if gone else None,
        "escalated": escalated,
    }
    if gone:  # whom to group it under: one item per person not working (_backlogs), and why
        facts["owner_gone_id"] = lead_manager
        facts["owner_left"] = gone  # "unknown" | "inactive" | "idle" | "no_contact" (stalled_deal's words)
        facts["active_window_days"] = spec.active_window_days  # the window "idle" and "no contact" are judged over
    if data_end is not None:  # judged as of the data's end, an hour or more before now
        facts["data_end"] = data_end
    audience = Audience("manager", manager_id) if manager_id else Audience("director")
    subject = {"lead_id": lead_id, "kind": kind}
    fp = state.fingerprints.get((i, kind))
    if fp is None:
        fp = state.fingerprints[(i, kind)] = make_fingerprint(NAME, subject)
    return Insight(
        detector=NAME, severity="critical" if escalated else "warning", audience=audience,
        subject=subject, facts=facts, evidence={"lead_ids": [lead_id]} if with_evidence else {}, fingerprint=fp,
    )


@register(NAME, LeadSlaSpec, ("leads",),
          "a new lead without a manager or without an answer beyond the SLA, in working hours",
          needs=(NEED_ANY, NEED_OWNER, NEED_ANSWER))
def detect(data: CrmData, spec: LeadSlaSpec, now: datetime) -> list[Insight]:
    return detect_at(prepare(data, spec, now), now)
