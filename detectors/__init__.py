"""Detectors: pure functions from CrmData and a clock to Insights.

Importing this package registers every detector module.
"""
from detectors.insight import Audience, Insight, make_fingerprint
from detectors.registry import REGISTRY, DetectorSpec, ScanResult, run_detectors

# Each detector module registers itself on import; keep this list complete.
from detectors import (  # noqa: E402,F401
    conversion_drop,
    deal_risk,
    lead_score,
    lead_sla,
    loss_reasons,
    manager_load,
    silent_client,
    stalled_deal,
    win_forecast,
)

__all__ = ["Audience", "Insight", "make_fingerprint", "REGISTRY", "DetectorSpec", "ScanResult", "run_detectors"]
