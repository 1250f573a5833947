"""Routing: managers see only their own, directors team-level plus escalations, channels no deals."""
from bot.routing import route


def _titles(items):
    return sorted(i.subject.get("deal_id") or i.subject.get("client_id") or i.detector for i in items)


def test_each_recipient_gets_exactly_their_share(config, scenario):
    r = route(scenario, config)
    assert set(r) == {"anna", "boris", "dina", "root", "sales-team"}
    assert _titles(r["anna"]) == ["C-ANNA"]
    assert _titles(r["boris"]) == ["D-BORIS", "D-ESC"]
    assert _titles(r["dina"]) == ["D-ESC", "conversion_drop", "lead_sla", "loss_reasons", "manager_load"]
    assert r["root"] == []  # admin-only: commands, no insights
    assert _titles(r["sales-team"]) == ["conversion_drop", "loss_reasons", "manager_load"]


def test_manager_never_sees_another_managers_items(config, scenario, mk):
    # a director-audience insight that names a manager is still not sent to that manager
    tricky = mk("manager_load", role="director", manager_id="m1", subject={"manager_id": "m1", "metric": "open_deals"})
    r = route(scenario + [tricky], config)
    for i in r["anna"]:
        assert i.audience.role == "manager" and i.audience.manager_id == "m1"
    for i in r["boris"]:
        assert i.audience.manager_id == "m2"


def test_route_agrees_with_the_per_person_rule(config, scenario, mk):
    from bot.routing import insights_for

    extra = [mk("stalled_deal", manager_id="m1", subject={"deal_id": "x1"}, escalated=True),
             mk("lead_sla", role="director", manager_id=None, subject={"lead_id": "L9", "kind": "unassigned"})]
    r = route(scenario + extra, config)
    for person in config.recipients:
        assert r[person.id] == insights_for(person, scenario + extra)
