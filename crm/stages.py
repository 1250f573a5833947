"""The pipeline order, and a stand-in stage history when the CRM export has none.

Order comes from the stages table, else from config, else from the data: the median
position at which deals first enter each stage. A derived history is honest about what it
knows: each deal entered the first stage (and its current stage) when it was created.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from crm.errors import DataWarning
from crm.normalize import STR, UTC_NS, lower_text


def resolve_stages(
    stages: pd.DataFrame | None,
    configured: list[str] | None,
    history: pd.DataFrame | None,
    deals: pd.DataFrame,
    probability: tuple[str, dict[str, float]] | None = None,
) -> tuple[list[str], list[DataWarning]]:
    """Pipeline order, first stage first, and a warning when it had to be guessed.
    `probability`: (column, stage -> its deals' median probability) from stage_probabilities."""
    if stages is not None and len(stages):
        ordered = stages.sort_values(["position", "stage"], kind="stable")
        return list(dict.fromkeys(ordered["stage"].tolist())), []
    if configured:
        return list(configured), []
    if history is not None and len(history):
        return order_from_history(history), []
    names = guess_order(deals)
    known = known_order(names)
    if known is not None:
        crm, ordered = known
        return ordered, [DataWarning(
            "stage_order_known", "stages", len(ordered),
            f"no stages table, no [source] stages and no stage history: the stages are {crm}'s "
            f"default ones, taken in its order: {' -> '.join(ordered)}; if your pipeline orders them "
            "otherwise, set `stages = [...]` in [source], first stage first",
        )]
    if probability is not None:
        column, by_stage = probability
        names = sorted(names, key=lambda st: by_stage.get(st, float("inf")))  # stable: ties keep the age order
        shown = " -> ".join(f"{st} ({by_stage[st]:g})" if st in by_stage else st for st in names[:_SHOWN])
        return names, [DataWarning(
            "stage_order_guessed", "stages", len(names),
            "no stages table, no [source] stages and no stage history: pipeline order guessed "
            f"from the deals' {column!r} (each stage's median probability of its deals neither at 0 nor at "
            "100, lowest first), which can be "
            f"wrong: {shown}{' -> ...' if len(names) > _SHOWN else ''}; set `stages = [...]` in [source] "
            "with every stage in your pipeline's order, first stage first",
        )]
    # The whole guess, not five of it as "e.g.": an admin copied those into `stages` and lost
    # the rest, or kept a wrong order that then warned no more.
    return names, [DataWarning(
        "stage_order_guessed", "stages", len(names),
        "no stages table, no [source] stages and no stage history: pipeline order guessed "
        "from the age of the open deals at each stage (younger deals at earlier stages), "
        f"which can be wrong: {' -> '.join(names[:_SHOWN])}{' -> ...' if len(names) > _SHOWN else ''}; "
        "set `stages = [...]` in [source] with every stage in your pipeline's order, first stage first",
    )]


_SHOWN = 30  # stages named in the guessed-order warning

# Pipelines a CRM sets up by default, in order. Deals at only these stages are ordered by the
# list: the guess from the open deals' age put Salesforce's "Value Proposition" before "Needs
# Analysis" on a calm company (their deals move on within days of each other).
DEFAULT_PIPELINES: dict[str, tuple[str, ...]] = {
    "Salesforce": ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
                   "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
                   "Negotiation/Review"),
    "HubSpot": ("Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
                "Decision Maker Bought-In", "Contract Sent"),
}


def known_order(names: list[str]) -> tuple[str, list[str]] | None:
    """(the CRM, `names` in its default order) when at least three stages are given and every
    one is a stage of that CRM's default pipeline (any case); else None."""
    if len(names) < 3:
        return None
    for crm, pipeline in DEFAULT_PIPELINES.items():
        rank = {s.casefold(): i for i, s in enumerate(pipeline)}
        if all(str(n).casefold() in rank for n in names):
            return crm, sorted(names, key=lambda n: rank[str(n).casefold()])
    return None


# Headers of a deal's win probability, which CRMs set from the stage (Zoho's "Probability (%)":
# Qualification 10 ... Negotiation/Review 90): lower-case, spaces/_/- as one space.
PROBABILITY_NAMES = ("probability (%)", "probability", "deal probability", "probability %", "win probability",
                     "вероятность", "вероятность (%)", "вероятность, %")


def stage_probabilities(frame: pd.DataFrame, columns: dict[str, str],
                        values: dict[str, dict[str, str]]) -> tuple[str, dict[str, float]] | None:
    """(column, stage -> median probability) when the deals file has a probability column the
    config does not read: the age of the open deals at each stage guessed the order wrongly on
    most Zoho exports (5-6 stages, a few dozen open deals, deals left behind at one stage),
    while the CRM itself orders its stages by probability. None when there is no such column
    or it does not tell at least two stages apart."""
    from crm.normalize import _header_key

    stage = columns.get("stage") or ("stage" if "stage" in frame.columns else None)
    found = [c for c in frame.columns if _header_key(c) in PROBABILITY_NAMES and c not in columns.values()]
    if stage is None or stage not in frame.columns or not found:
        return None
    column = min(found, key=lambda c: PROBABILITY_NAMES.index(_header_key(c)))
    text = frame[column].astype("string").str.strip().str.rstrip("%").str.replace(",", ".", regex=False)
    number = pd.to_numeric(text, errors="coerce")
    # 0 and 100 are closed deals' (Odoo leaves a lost deal at the stage it was lost at, with 0:
    # at every stage most deals were lost, so every median was 0 and the order was the age guess's)
    number = number.where((number > 0) & (number < 100))
    names = frame[stage].astype("string").str.strip()
    names = names.map(lambda v: values.get("stage", {}).get(v, v) if isinstance(v, str) else v)
    medians = number.groupby(names).median().dropna()
    if medians.nunique() < 2:
        return None
    return str(column), {str(k): float(v) for k, v in medians.items()}


def guess_order(deals: pd.DataFrame) -> list[str]:
    """Stages by the median creation time of the open deals at them, youngest first: a deal
    moves on as it ages, so the deals sitting at the first stage are the newest. (The order
    of first appearance put the stages of the oldest, furthest-moved deals first.) Stages
    with no open deal (deleted since, or only closed deals) come last, in order of appearance;
    won/lost, the statuses a closing stage maps to, are no stages."""
    real = deals.dropna(subset=["stage"])
    real = real[~lower_text(real["stage"]).isin(CLOSING).to_numpy(dtype=bool)]
    appearance = real.sort_values("created_at", kind="stable")["stage"].drop_duplicates().tolist()
    if "status" not in real.columns:
        return appearance
    open_ = real[(real["status"] == "open").to_numpy(dtype=bool, na_value=False)]
    median = open_.groupby("stage", sort=False)["created_at"].median().sort_values(ascending=False, kind="stable")
    ordered = [str(s) for s in median.index]
    return ordered + [s for s in appearance if s not in set(ordered)]


def stage_repeats(owner: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """Of stage-history rows sorted by deal and time (ties in table order), the ones at the stage
    the same deal's previous row was already at: edits, not stage changes.

    Salesforce's Opportunity History (and amoCRM's and Bitrix24's event logs) write a row at the
    deal's stage whenever its amount or close date is edited. Read as entries, a deal edited ten
    times looked ten moves busy, and its time at the stage restarted at every edit. A move back
    (a -> b -> a) is a change and stays. `owner`: each row's deal, `stage`: its stage, as codes."""
    rep = np.zeros(len(owner), dtype=bool)
    rep[1:] = (owner[1:] == owner[:-1]) & (stage[1:] == stage[:-1])
    return rep


def order_from_history(history: pd.DataFrame) -> list[str]:
    """Stages sorted by the median step at which deals first enter them."""
    firsts = (
        history[["deal_id", "stage", "entered_at"]]
        .sort_values(["deal_id", "entered_at"], kind="stable")
        .drop_duplicates(["deal_id", "stage"], keep="first")
    )
    step = firsts.groupby("deal_id", sort=False).cumcount()
    summary = pd.DataFrame({
        "median_step": step.groupby(firsts["stage"]).median(),
        "first_seen": firsts.groupby("stage")["entered_at"].min(),
    })
    return summary.sort_values(["median_step", "first_seen"], kind="stable").index.tolist()


def derive_history(deals: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """One entry into the first stage at creation, plus the current stage if it differs. A deal
    whose stage is a closing one (mapped to won/lost, as amoCRM exports closed deals) gets only
    the first: it did not enter "won" when it was created, and its last real stage is unknown.
    The current stage is entered when `stage_changed_at` says (never before the creation), else
    at creation: a deal that moved on yesterday after weeks at the first stage is not idle since
    it was created."""
    cols = ["deal_id", "stage", "created_at"] + (["stage_changed_at"] if "stage_changed_at" in deals.columns else [])
    created = deals[cols]
    closing = lower_text(created["stage"]).isin(CLOSING).fillna(False).to_numpy(dtype=bool)
    parts = []
    if stages:
        parts.append(pd.DataFrame({
            "deal_id": created["deal_id"], "stage": stages[0],
            "entered_at": created["created_at"],
        }))
        later = created[created["stage"].notna() & (created["stage"] != stages[0]) & ~closing]
    else:
        later = created[created["stage"].notna() & ~closing]
    entered = later["created_at"]
    if "stage_changed_at" in later.columns:
        changed = later["stage_changed_at"]
        entered = changed.where(changed.notna() & (changed > entered), entered)
    parts.append(pd.DataFrame({"deal_id": later["deal_id"], "stage": later["stage"], "entered_at": entered}))
    history = pd.concat(parts, ignore_index=True)
    return pd.DataFrame({
        "deal_id": history["deal_id"].astype(STR),
        "stage": history["stage"].astype(STR),
        "entered_at": history["entered_at"].astype(UTC_NS),
    })


def derived_history_warning(n_deals: int, changed: int = 0) -> DataWarning:
    """`changed`: deals whose current stage's entry came from deals.stage_changed_at."""
    entry = ("each deal entered the first stage when it was created, and its current stage at "
             f"stage_changed_at ({changed} deal(s))" if changed else
             "each deal entered the first stage when it was created")
    return DataWarning(
        "stage_history_derived", "stage_history", n_deals,
        f"no stage history in the source: derived from deals ({entry}); conversion insights need "
        "the real history of stage changes, export it as stage_history (deal_id, stage, entered_at; amoCRM / "
        "Kommo: the events list; HubSpot: the \"Date entered\" columns in the deals export; README, web-UI exports)",
    )


CLOSING = ("won", "lost")


def snapshot_as_stage_dates(
    history: pd.DataFrame, deals: pd.DataFrame, origin: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[DataWarning]]:
    """A "history" with one row per deal at several stages is each deal's current stage and when
    it was entered (the deals file read again as stage_history, Salesforce's "Last Stage Change
    Date" as entered_at): not a history of moves. Read as one, every stage pair's conversion came
    from deals that never entered the earlier stage, and a planted drop went unsaid with no line
    saying why. Its dates become deals.stage_changed_at and the history is derived, said once.
    Returns (deals, history or None when it was a snapshot, warnings)."""
    if not len(history) or len(history) > len(deals) or history["stage"].nunique() < 2 \
            or history["deal_id"].duplicated().any():
        return deals, history, []
    entered = history.set_index("deal_id")
    at = deals["deal_id"].map(entered["entered_at"])
    same = deals["stage"].astype("string").eq(deals["deal_id"].map(entered["stage"]).astype("string")).fillna(False)
    deals = deals.copy()
    old = deals["stage_changed_at"] if "stage_changed_at" in deals.columns else pd.Series(pd.NaT, index=deals.index)
    deals["stage_changed_at"] = old.where(old.notna(), at.where(same.to_numpy(dtype=bool))).astype(UTC_NS)
    return deals, None, [DataWarning(
        "history_is_a_snapshot", "stage_history", len(history),
        f"{origin} has one row per deal: each deal's current stage and when it was entered, not the history "
        "of its moves; read as deals.stage_changed_at (map that column there: [source.columns.deals] "
        "stage_changed_at), and the stage history is derived; for conversion between stages export the "
        "history of stage changes (Salesforce: the Opportunity History report)",
    )]


def drop_closing_entries(
    history: pd.DataFrame, deals: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, list[DataWarning]]:
    """Won/lost are statuses, not stages, but CRMs log them as stages.

    Once the admin maps their closing stages to "won"/"lost" (`[source.values.stage_history.
    stage]`, `[source.values.deals.stage]`), history rows entering them are dropped and a
    closed deal's stage becomes the last real stage in its history.
    """
    warnings: list[DataWarning] = []
    closing = lower_text(history["stage"]).isin(CLOSING).fillna(False)
    if closing.any():
        history = history[~closing].reset_index(drop=True)
        warnings.append(DataWarning(
            "closing_stage_entries", "stage_history", int(closing.sum()),
            f"{int(closing.sum()):,} history row(s) enter won/lost: that is the deal's status "
            "(deals.status, closed_at), not a stage; ignored", level="note",
        ))
    at_close = lower_text(deals["stage"]).isin(CLOSING).fillna(False)
    if at_close.any():
        last = (history.sort_values("entered_at", kind="stable")
                .drop_duplicates("deal_id", keep="last").set_index("deal_id")["stage"])
        replacement = deals.loc[at_close, "deal_id"].map(last)
        known = replacement.notna()
        deals = deals.copy()
        deals.loc[replacement.index[known], "stage"] = replacement[known]
        warnings.append(DataWarning(
            "closing_stage_on_deal", "deals", int(at_close.sum()),
            f"{int(at_close.sum()):,} deal(s) have won/lost as their stage; set to the last stage "
            f"in their history ({int(known.sum()):,} found, the rest kept as they were)",
            level="note" if known.all() else "warning",
        ))
    return history, deals, warnings
