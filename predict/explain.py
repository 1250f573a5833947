"""Why the model gives a deal the chance it gives: similar past deals and the factors that move it.

A manager trusts "this deal looks like 40 past deals, 32 of them won" more than "p = 0.8".
Similar deals are the closed deals at the same stage that the model saw as most alike (the
chance it gave them at the time nearest this deal's; the features, log-scaled and standardised,
break ties), one snapshot per deal, and their win count is what actually happened to them. So
the count is the chance said in deals, and a check of it: were the model's 10% deals won 1 in 10? Factors are what-ifs: the deal's chance again with one feature set to what
is typical for closed deals at its stage; the features whose change moves the chance most are
the ones named.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predict.features import CATEGORICAL
from predict.model import WinModel


# Still features, never named as "what pulls it down": who owns the deal is not something the
# owner can change today, and "the manager" as a reason reads as blame, not as advice.
NOT_A_REASON = frozenset({"manager_id", "stage_pos"})


@dataclass(frozen=True)
class Similar:
    n: int
    won: int
    deal_ids: list[str]


@dataclass(frozen=True)
class Factor:
    feature: str
    value: object  # the deal's value
    typical: object  # typical at its stage among closed deals
    effect: float  # chance now minus chance with the typical value (negative: it pulls the chance down)


class Explainer:
    def __init__(self, model: WinModel):
        if not model.usable or model.train_rows is None:
            raise ValueError(f"no model to explain: {model.reason}")
        self.model = model
        rows = model.train_rows
        self.numeric = [c for c in model.features if c not in CATEGORICAL]
        x = np.log1p(rows[self.numeric].astype(float).clip(lower=0).to_numpy())
        self.center = np.nanmedian(x, axis=0)
        self.scale = np.nanstd(x, axis=0)
        self.scale[~(self.scale > 0)] = 1.0
        self.x = self._scaled(rows)
        self.stage = rows["stage"].astype(str).to_numpy() if "stage" in rows else np.full(len(rows), "")
        self.deal_ids = rows["deal_id"].astype(str).to_numpy()
        self.won = rows["won"].to_numpy(int)
        self.p = model.train_p if model.train_p is not None else model.proba(rows)
        self.typical: dict[str, dict[str, object]] = {}
        for stage in np.unique(self.stage):
            part = rows[self.stage == stage]
            t: dict[str, object] = {c: float(part[c].median()) for c in self.numeric if part[c].notna().any()}
            for c in model.features:
                if c in CATEGORICAL and c != "stage" and part[c].notna().any():
                    t[c] = part[c].mode().iloc[0]
            self.typical[stage] = t

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.log1p(frame[self.numeric].astype(float).clip(lower=0).to_numpy())
        x = (x - self.center) / self.scale
        return np.nan_to_num(x, nan=0.0)

    def _chance(self, row: pd.DataFrame) -> float:
        """The model's chance for this one-row frame: its `p_win` when predict.model.score gave it
        (the same number: a row's chance does not depend on the rows scored with it), else predicted."""
        if "p_win" in row:
            return float(row["p_win"].iloc[0])
        return float(self.model.proba(row)[0])

    def similar(self, row: pd.DataFrame, k: int = 40) -> Similar:
        """The `k` closed deals at the same stage that looked most like this one to the model (the
        chance it gave them at the time closest to this deal's chance now; features break ties),
        one snapshot each, and how many of them were won: what the chance means, in deals."""
        stage = str(row["stage"].iloc[0]) if "stage" in row else ""
        pool = np.flatnonzero(self.stage == stage) if stage else np.arange(len(self.x))
        if not len(pool):
            pool = np.arange(len(self.x))
        p = self._chance(row)
        gap = np.abs(_logit(self.p[pool]) - _logit(p))
        d = ((self.x[pool] - self._scaled(row)[0]) ** 2).mean(1)
        order = pool[np.lexsort((d, np.round(gap, 2)))]
        _, first = np.unique(self.deal_ids[order], return_index=True)
        picked = order[np.sort(first)][:k]
        return Similar(int(len(picked)), int(self.won[picked].sum()), self.deal_ids[picked].tolist())

    def factors(self, row: pd.DataFrame, top: int = 3) -> list[Factor]:
        """The features whose typical value would change this deal's chance most."""
        stage = str(row["stage"].iloc[0]) if "stage" in row else ""
        typical = self.typical.get(stage) or next(iter(self.typical.values()), {})
        base = self._chance(row)
        names = [c for c in typical if c in row and c not in NOT_A_REASON]
        if not names:
            return []
        alt = pd.concat([row] * len(names), ignore_index=True)
        for i, c in enumerate(names):
            alt.loc[i, c] = typical[c]
        p = self.model.proba(alt)
        out = [Factor(c, _plain(row[c].iloc[0]), _plain(typical[c]), base - float(p[i])) for i, c in enumerate(names)]
        out = [f for f in out if abs(f.effect) >= 0.01 and f.value != f.typical]
        return sorted(out, key=lambda f: -abs(f.effect))[:top]


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _plain(v: object) -> object:
    if isinstance(v, (np.floating, float)):
        return None if v != v else round(float(v), 2)
    if isinstance(v, np.integer):
        return int(v)
    return None if v is None or v is pd.NA else str(v)
