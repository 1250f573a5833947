"""Per-detector wording, ru and en side by side, one module per detector.

Each module registers `@template("<detector>")`: a function (Insight, Ctx) -> Words that says
what happened, the numbers that prove it, and one thing to do, in words a salesperson uses.
Statistics (p, q, method) go only into `details`.
"""
from messages.templates import (  # noqa: F401  (import registers)
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
