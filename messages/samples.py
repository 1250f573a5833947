"""One realistic, fixed Insight per detector, with the agreed facts.

Used by the golden-file tests, the chart benchmark and anyone who wants to preview wording
without running detectors on data.
"""
from __future__ import annotations

from detectors.insight import Audience, Insight


def conversion_drop() -> Insight:
    weekly = [{"week_start": f"2026-{m:02d}-{d:02d}", "rate": r, "n": n} for (m, d, r, n) in [
        (8, 3, 0.50, 52), (8, 10, 0.47, 55), (8, 17, 0.49, 50), (8, 24, 0.46, 58), (8, 31, 0.48, 53),
        (9, 7, 0.50, 49), (9, 14, 0.47, 51), (9, 21, 0.49, 56), (9, 28, 0.45, 54), (10, 5, 0.48, 57),
        (10, 12, 0.47, 52), (10, 19, 0.49, 53), (10, 26, 0.36, 50), (11, 2, 0.31, 55), (11, 9, 0.29, 52),
        (11, 16, 0.28, 55)]]
    return Insight(
        detector="conversion_drop", severity="critical", audience=Audience("director"),
        subject={"from_stage": "КП отправлено", "to_stage": "Переговоры"},
        facts={
            "from_stage": "КП отправлено", "to_stage": "Переговоры", "to_won": False,
            "baseline_rate": 0.48, "recent_rate": 0.31, "baseline_n": 640, "recent_n": 212,
            "baseline_start": "2026-08-01", "baseline_end": "2026-10-21",
            "recent_start": "2026-10-22", "recent_end": "2026-11-20", "horizon_days": 21,
            "p_value": 0.00004, "q_value": 0.0003, "method": "two-proportion z-test, BH",
            "drivers": [
                {"dimension": "source", "segment": "Сайт", "baseline_rate": 0.41, "recent_rate": 0.18,
                 "baseline_n": 210, "recent_n": 80, "share_of_drop": 0.62},
                {"dimension": "manager", "segment": "Айгерим Сапарова", "baseline_rate": 0.52, "recent_rate": 0.35,
                 "baseline_n": 150, "recent_n": 51, "share_of_drop": 0.21},
            ],
            "weekly": weekly,
        },
        evidence={"deal_ids": ["D-1042", "D-1057", "D-1063"]},
    )


def silent_client() -> Insight:
    return Insight(
        detector="silent_client", severity="warning", audience=Audience("manager", "m2"),
        subject={"client_id": "C-311"},
        facts={
            "client_name": "ТОО «Алтын Строй»", "manager_id": "m2", "manager_name": "Данияр Ахметов",
            "days_silent": 21, "last_reply_at": "2026-11-06T10:15:00+05:00", "unanswered_emails": 3,
            "human_opens": 7, "open_days": 4, "last_open_at": "2026-11-26T18:40:00+05:00",
            "last_email_subject": "КП на поставку арматуры",
        },
        evidence={"email_ids": ["E-9001", "E-9014", "E-9020"]},
    )


def manager_load() -> Insight:
    return Insight(
        detector="manager_load", severity="warning", audience=Audience("director"),
        subject={"manager_id": "m3", "metric": "open_deals"},
        facts={
            "metric": "open_deals", "manager_name": "Ольга Ким", "team": "Алматы", "value": 46, "capacity": 1.0,
            "load": 46.0, "team_median": 21.0, "ratio": 2.19, "direction": "over", "p_value": 0.001,
            "band_low": 0.6, "band_high": 1.5,
            "suggestion": {"kind": "move_deals", "count": 12, "from_manager_id": "m3", "from_manager_name": "Ольга Ким",
                           "to_manager_id": "m5", "to_manager_name": "Арман Жумабеков"},
            "team_loads": [
                {"manager_id": "m1", "manager_name": "Айгерим Сапарова", "load": 22.0, "capacity": 1.0},
                {"manager_id": "m2", "manager_name": "Данияр Ахметов", "load": 19.0, "capacity": 1.0},
                {"manager_id": "m3", "manager_name": "Ольга Ким", "load": 46.0, "capacity": 1.0},
                {"manager_id": "m4", "manager_name": "Сергей Волков", "load": 24.0, "capacity": 0.5},
                {"manager_id": "m5", "manager_name": "Арман Жумабеков", "load": 11.0, "capacity": 1.0},
            ],
        },
        evidence={"deal_ids": ["D-2001", "D-2002"]},
    )


def stalled_deal(deal_id: str = "D-1188", title: str = "Поставка арматуры А500С, 40 т", days: int = 23,
                 amount: float = 12_400_000, manager_id: str = "m2") -> Insight:
    return Insight(
        detector="stalled_deal", severity="warning", audience=Audience("manager", manager_id),
        subject={"deal_id": deal_id},
        facts={
            "deal_title": title, "client_name": "ТОО «Алтын Строй»", "manager_id": manager_id,
            "manager_name": "Данияр Ахметов", "stage": "Переговоры", "amount": amount, "currency": "KZT",
            "kind": "stalled", "days_idle": days, "calendar_days_idle": days * 7 // 5, "stage_limit_days": 9,
            "limit_source": "learned", "limit_quantile": 0.8, "limit_moves": 214, "learn_days": 365, "learned_days": 9, "limit_bound": None,
            "last_touch_at": "2026-11-05T12:00:00+05:00", "last_touch_kind": "call", "escalated": False,
        },
        evidence={"deal_ids": [deal_id], "activity_ids": ["A-77120"]},
    )


def lead_sla() -> Insight:
    return Insight(
        detector="lead_sla", severity="warning", audience=Audience("manager", "m2"),
        subject={"lead_id": "L-5531", "kind": "unanswered"},
        facts={
            "kind": "unanswered", "lead_source": "Сайт", "lead_region": "Астана",
            "created_at": "2026-11-27T09:20:00+05:00", "working_hours_waited": 6.5, "sla_hours": 2,
            "manager_id": "m2", "manager_name": "Данияр Ахметов", "escalated": False,
        },
        evidence={"lead_ids": ["L-5531"]},
    )


def loss_reasons() -> Insight:
    return Insight(
        detector="loss_reasons", severity="warning", audience=Audience("director"),
        subject={"kind": "shift"},
        facts={
            "kind": "shift", "recent_start": "2026-10-29", "recent_end": "2026-11-27",
            "baseline_start": "2026-07-01", "baseline_end": "2026-10-28", "recent_n": 58, "baseline_n": 214,
            "p_value": 0.002,
            "reasons": [
                {"reason": "Дорого", "baseline_share": 0.22, "recent_share": 0.43, "baseline_n": 47, "recent_n": 25},
                {"reason": "Выбрали конкурента", "baseline_share": 0.31, "recent_share": 0.26, "baseline_n": 66, "recent_n": 15},
                {"reason": "Нет бюджета", "baseline_share": 0.28, "recent_share": 0.19, "baseline_n": 60, "recent_n": 11},
                {"reason": "Не выходит на связь", "baseline_share": 0.19, "recent_share": 0.12, "baseline_n": 41, "recent_n": 7},
            ],
            "top_rising": "Дорого",
        },
        evidence={"deal_ids": ["D-0950", "D-0977"]},
    )


def all_samples() -> dict[str, Insight]:
    return {"conversion_drop": conversion_drop(), "silent_client": silent_client(), "manager_load": manager_load(),
            "stalled_deal": stalled_deal(), "lead_sla": lead_sla(), "loss_reasons": loss_reasons()}


def variants() -> dict[str, Insight]:
    """The other shapes a detector's insight takes (for golden files beyond one per detector)."""
    won = conversion_drop()
    won.facts.update(to_won=True, to_stage="won", drivers=[])
    lead = lead_sla()
    lead = Insight(detector="lead_sla", severity="critical", audience=Audience("director"),
                   subject={"lead_id": "L-5540", "kind": "unassigned"},
                   facts={**lead.facts, "kind": "unassigned", "manager_id": None, "manager_name": None,
                          "working_hours_waited": 22.8, "sla_hours": 1, "escalated": True,
                          "created_at": "2026-11-24T15:05:00+05:00"},
                   evidence={"lead_ids": ["L-5540"]})
    under = manager_load()
    under = Insight(detector="manager_load", severity="warning", audience=Audience("director"),
                    subject={"manager_id": "m5", "metric": "new_leads"},
                    facts={**under.facts, "metric": "new_leads", "manager_name": "Арман Жумабеков", "value": 6,
                           "capacity": 0.5, "load": 12.0, "team_median": 35.0, "ratio": 0.34, "direction": "under",
                           "window_days": 28,
                           "suggestion": {"kind": "route_leads", "count": 9, "from_manager_id": "m3",
                                          "from_manager_name": "Ольга Ким", "to_manager_id": "m5",
                                          "to_manager_name": "Арман Жумабеков"}})
    quality = Insight(detector="loss_reasons", severity="info", audience=Audience("director"),
                      subject={"kind": "data_quality"},
                      facts={"kind": "data_quality", "lost_n": 120, "missing_n": 54, "missing_share": 0.45,
                             "threshold": 0.2})
    escalated = stalled_deal()
    escalated.facts["escalated"] = True
    escalated.severity = "critical"
    configured = stalled_deal(days=12)
    configured.facts.update(stage_limit_days=7, limit_source="configured")
    for k in ("limit_quantile", "limit_moves", "learn_days", "learned_days", "limit_bound"):
        configured.facts.pop(k)
    default = stalled_deal(days=8)
    default.facts.update(stage_limit_days=5, limit_source="default", limit_moves=11, min_moves=30)
    for k in ("limit_quantile", "learn_days", "learned_days", "limit_bound"):
        default.facts.pop(k)
    capped = stalled_deal(days=34)
    capped.facts.update(stage_limit_days=30, learned_days=None, limit_bound="max")
    return {"conversion_drop_to_won": won, "lead_sla_unassigned": lead, "manager_load_under_leads": under,
            "loss_reasons_data_quality": quality, "stalled_deal_escalated": escalated,
            "stalled_deal_configured": configured, "stalled_deal_default": default, "stalled_deal_capped": capped,
            "stalled_deal_abandoned": stalled_abandoned()}


def stalled_abandoned() -> Insight:
    """A manager's deals idle far beyond their limits: one hygiene item."""
    examples = [
        {"deal_id": "D-0412", "deal_title": "Поставка цемента М500", "client_name": "ТОО «Бетон-Инвест»",
         "stage": "Переговоры", "days_idle": 212, "last_touch_at": "2026-01-20T10:00:00+05:00"},
        {"deal_id": "D-0450", "deal_title": "Кровля склада, 1 200 м²", "client_name": "ИП Ержанов",
         "stage": "КП отправлено", "days_idle": 187, "last_touch_at": "2026-02-25T16:30:00+05:00"},
        {"deal_id": "D-0533", "deal_title": "Арматура А240, 12 т", "client_name": None,
         "stage": "Переговоры", "days_idle": 121, "last_touch_at": "2026-06-01T11:00:00+05:00"},
    ]
    return Insight(
        detector="stalled_deal", severity="info", audience=Audience("manager", "m2"),
        subject={"manager_id": "m2", "kind": "abandoned"},
        facts={"kind": "abandoned", "manager_id": "m2", "manager_name": "Данияр Ахметов", "deals": 41,
               "oldest_days_idle": 212, "abandon_factor": 4.0, "abandon_after_days": 60,
               "by_stage": {"Переговоры": 29, "КП отправлено": 12}, "amount": 96_500_000.0, "currency": "KZT",
               "examples": examples, "escalated": False},
        evidence={"deal_ids": ["D-0412", "D-0450", "D-0533"]},
    )
