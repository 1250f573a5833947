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
            "kind": "drop", "basis": "stage_entry",
            "from_stage": "КП отправлено", "to_stage": "Переговоры", "to_won": False,
            "baseline_rate": 0.48, "recent_rate": 0.31, "baseline_n": 640, "recent_n": 212,
            "baseline_converted": 307, "recent_converted": 66, "relative_drop": 0.3542, "lost_per_month": 39.0,
            "baseline_start": "2026-08-01", "baseline_end": "2026-10-21",
            "recent_start": "2026-10-22", "recent_end": "2026-11-20",
            "horizon_days": 12, "horizon_source": "learned", "horizon_quantile": 0.9, "horizon_movers": 410,
            "p_value": 0.00004, "q_value": 0.0003, "method": "fisher_exact_one_sided", "overdispersion": 2.3, "tests_in_run": 5,
            "segments_checked": ["source", "manager", "region"],
            "drivers": [
                {"dimension": "source", "segment": "Сайт", "segment_id": "Сайт", "baseline_rate": 0.41, "recent_rate": 0.18,
                 "baseline_n": 210, "recent_n": 80, "rest_baseline_rate": 0.51, "rest_recent_rate": 0.39,
                 "share_of_drop": 0.62, "q_value": 0.0001},
                {"dimension": "manager", "segment": "Айгерим Сапарова", "segment_id": "m1", "baseline_rate": 0.52,
                 "recent_rate": 0.35, "baseline_n": 150, "recent_n": 51, "rest_baseline_rate": 0.47,
                 "rest_recent_rate": 0.44, "share_of_drop": 0.29, "q_value": 0.004},
            ],
            "weekly": weekly,
        },
        evidence={"deal_ids": ["D-1042", "D-1057", "D-1063"]},
    )


def conversion_drop_kinds() -> dict[str, Insight]:
    """conversion_drop's other kinds: a drop in one segment, a mix shift, a drop with no driver,
    the win rate of new deals when stage history is derived."""
    base = conversion_drop()
    segment = Insight(
        detector="conversion_drop", severity="critical", audience=Audience("director"),
        subject={"from_stage": "Новая", "to_stage": "Квалификация", "dimension": "source", "segment": "Instagram"},
        facts={**base.facts, "kind": "segment_drop", "from_stage": "Новая", "to_stage": "Квалификация",
               "baseline_rate": 0.70, "recent_rate": 0.14, "baseline_n": 46, "recent_n": 21,
               "baseline_converted": 32, "recent_converted": 3, "relative_drop": 0.8, "lost_per_month": 12.6,
               "horizon_days": 7, "horizon_source": "min", "p_value": 0.000025, "q_value": 0.0009,
               "segment": {"dimension": "source", "segment": "Instagram", "segment_id": "Instagram"},
               "rest_baseline_rate": 0.62, "rest_recent_rate": 0.61, "rest_baseline_n": 340, "rest_recent_n": 150,
               "method": "fisher_exact_one_sided+segment_vs_rest_drop_difference_and_ratio_lr", "overdispersion": 1.0,
               "drivers": []},
        evidence={"deal_ids": ["D-2210", "D-2214"]},
    )
    mix = Insight(
        detector="conversion_drop", severity="warning", audience=Audience("director"),
        subject={"from_stage": "КП отправлено", "to_stage": "Переговоры", "kind": "mix_shift"},
        facts={**base.facts, "kind": "mix_shift", "baseline_rate": 0.48, "recent_rate": 0.37, "lost_per_month": 25.0,
               "drivers": [],
               "mix": {"dimension": "source", "segment": "Выставка", "segment_id": "Выставка", "baseline_share": 0.12,
                       "recent_share": 0.41, "segment_rate": 0.15, "segment_baseline_rate": 0.16,
                       "segment_recent_rate": 0.14, "rate_at_baseline_mix": 0.47, "within_segment_p_value": 0.31,
                       "method": "cochran_mantel_haenszel_one_sided"}},
        evidence={"deal_ids": ["D-3101"]},
    )
    uniform = Insight(
        detector="conversion_drop", severity="warning", audience=Audience("director"),
        subject={"from_stage": "КП отправлено", "to_stage": "Переговоры"},
        facts={**base.facts, "recent_rate": 0.36, "lost_per_month": 27.5, "drivers": [], "horizon_source": "max",
               "horizon_days": 30},
        evidence={"deal_ids": ["D-1042"]},
    )
    created = Insight(
        detector="conversion_drop", severity="critical", audience=Audience("director"),
        subject={"cohort": "created", "to_stage": "won"},
        facts={**base.facts, "basis": "created", "from_stage": None, "to_stage": "won", "to_won": True,
               "baseline_rate": 0.099, "recent_rate": 0.075, "baseline_n": 3676, "recent_n": 1134,
               "lost_per_month": 29.6, "horizon_days": 30, "horizon_source": "max", "drivers": []},
        evidence={"deal_ids": ["D-4001"]},
    )
    return {"conversion_drop_segment": segment, "conversion_drop_mix_shift": mix,
            "conversion_drop_uniform": uniform, "conversion_drop_created": created}


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
    """Almaty: Ольга is over on deals and leads, Арман under on both; one plan per metric."""
    def person(mid, nm, metric, value, load, median, ratio, cap=1.0):
        return {"manager_id": mid, "manager_name": nm, "metric": metric, "value": value, "capacity": cap,
                "load": load, "team_median": median, "ratio": ratio, "p_value": 0.0004, "q_value": 0.003}

    def move(a, an, b, bn, n):
        return {"from_manager_id": a, "from_manager_name": an, "to_manager_id": b, "to_manager_name": bn, "count": n}

    olga, arman, sergey, aigerim = "Ольга Ким", "Арман Жумабеков", "Сергей Волков", "Айгерим Сапарова"
    return Insight(
        detector="manager_load", severity="warning", audience=Audience("director"),
        subject={"team": "Алматы"},
        facts={
            "team": "Алматы", "team_size": 5,
            "over": [person("m3", olga, "new_leads", 61, 61.0, 33.0, 1.85),
                     person("m3", olga, "open_deals", 46, 46.0, 21.0, 2.19)],
            "under": [person("m5", arman, "new_leads", 6, 12.0, 33.0, 0.36, cap=0.5),
                      person("m5", arman, "open_deals", 11, 11.0, 21.0, 0.52)],
            "plan": {
                "open_deals": [move("m3", olga, "m5", arman, 12), move("m3", olga, "m2", "Данияр Ахметов", 4)],
                "new_leads": [move("m3", olga, "m5", arman, 11), move("m3", olga, "m2", "Данияр Ахметов", 2)],
            },
            "metrics": {
                "open_deals": {"team_median": 21.0, "fair_share": 23.6, "band_low_load": 12.6, "band_high_load": 33.6,
                               "team_total": 110, "loads": [
                                   {"manager_id": "m3", "manager_name": olga, "value": 46, "capacity": 1.0, "load": 46.0, "role": "over"},
                                   {"manager_id": "m4", "manager_name": sergey, "value": 12, "capacity": 0.5, "load": 24.0, "role": None},
                                   {"manager_id": "m1", "manager_name": aigerim, "value": 22, "capacity": 1.0, "load": 22.0, "role": None},
                                   {"manager_id": "m2", "manager_name": "Данияр Ахметов", "value": 19, "capacity": 1.0, "load": 19.0, "role": "taker"},
                                   {"manager_id": "m5", "manager_name": arman, "value": 11, "capacity": 1.0, "load": 11.0, "role": "under"},
                               ]},
                "new_leads": {"team_median": 33.0, "fair_share": 35.6, "band_low_load": 19.8, "band_high_load": 52.8,
                              "team_total": 160, "window_days": 28, "loads": [
                                  {"manager_id": "m3", "manager_name": olga, "value": 61, "capacity": 1.0, "load": 61.0, "role": "over"},
                                  {"manager_id": "m1", "manager_name": aigerim, "value": 40, "capacity": 1.0, "load": 40.0, "role": None},
                                  {"manager_id": "m4", "manager_name": sergey, "value": 20, "capacity": 0.5, "load": 40.0, "role": None},
                                  {"manager_id": "m2", "manager_name": "Данияр Ахметов", "value": 33, "capacity": 1.0, "load": 33.0, "role": "taker"},
                                  {"manager_id": "m5", "manager_name": arman, "value": 6, "capacity": 0.5, "load": 12.0, "role": "under"},
                              ]},
            },
            "band_low": 0.6, "band_high": 1.6, "fdr": 0.05, "tests": 10, "method": "conditional_poisson_binomial",
            "persist_days": 7, "outside_band_days_before": 28, "active_window_days": 90, "max_distance": 1.19, "p_value": 0.0004, "q_value": 0.003,
        },
        evidence={"deal_ids": ["D-2001", "D-2002"], "lead_ids": ["L-7001"]},
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
            "recent_lost": 64, "baseline_lost": 231, "recent_days": 30, "baseline_days": 120,
            "p_value": 0.002, "statistic": 14.2, "method": "chi_square",
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
    under = manager_load()  # only someone under-loaded, leads only, no team column: teammates above the fair share give
    under = Insight(detector="manager_load", severity="critical", audience=Audience("director"),
                    subject={"team": ""},
                    facts={**under.facts, "team": None, "over": [], "under": [under.facts["under"][0]],
                           "metrics": {"new_leads": {**under.facts["metrics"]["new_leads"], "loads": [
                               {**r, "role": {"m1": "giver", "m5": "under"}.get(r["manager_id"])}
                               for r in under.facts["metrics"]["new_leads"]["loads"]]}},
                           "plan": {"new_leads": [{"from_manager_id": "m1", "from_manager_name": "Айгерим Сапарова",
                                                   "to_manager_id": "m5", "to_manager_name": "Арман Жумабеков",
                                                   "count": 1}]}},
                    evidence={"lead_ids": ["L-7001"]})
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
