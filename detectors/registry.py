"""The detector registry: name -> (spec model, detect function, tables it needs).

A detector module calls `register(...)` at import; `detectors/__init__.py` imports every
module so the registry is complete. `run_detectors` is what scan, demo, backtest and the bot
all call, so a detector behaves the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from crm.data import CrmData
from detectors.insight import Insight


class DetectorSpec(BaseModel):
    """Base of every detector's typed spec. Unknown keys are errors (a typo silently changes behaviour)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


DetectFn = Callable[[CrmData, Any, datetime], list[Insight]]


@dataclass(frozen=True)
class Detector:
    name: str
    spec: type[DetectorSpec]
    detect: DetectFn
    requires: tuple[str, ...]  # CrmData tables beyond the required three, e.g. ("emails", "email_opens")
    summary: str  # one line for --help and check-config


REGISTRY: dict[str, Detector] = {}


def register(name: str, spec: type[DetectorSpec], requires: tuple[str, ...], summary: str) -> Callable[[DetectFn], DetectFn]:
    def wrap(fn: DetectFn) -> DetectFn:
        if name in REGISTRY:
            raise ValueError(f"detector {name!r} registered twice")
        REGISTRY[name] = Detector(name, spec, fn, requires, summary)
        return fn
    return wrap


@dataclass
class ScanResult:
    insights: list[Insight] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> one clear line why


def missing_tables(data: CrmData, det: Detector) -> list[str]:
    return [t for t in det.requires if not data.has(t)]


def run_detectors(data: CrmData, specs: dict[str, DetectorSpec], now: datetime) -> ScanResult:
    """Run every enabled detector; a detector whose tables are absent is skipped with a reason."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = ScanResult()
    for name, det in REGISTRY.items():
        spec = specs.get(name) or det.spec()
        if not spec.enabled:
            result.skipped[name] = "disabled in config"
            continue
        missing = missing_tables(data, det)
        if missing:
            result.skipped[name] = "needs " + ", ".join(f"{t}.csv" for t in missing) + " (table not provided)"
            continue
        result.insights.extend(det.detect(data, spec, now))
    return result
