"""Routing wired into intake, on a real database with the shipped model."""

from __future__ import annotations

import pytest

from cases import states
from cases.models import Case, CaseEvent, Unit
from routing.catalogue_store import import_csv
from routing.models import RoutingDecision, RoutingExample
from tests.conftest import act, new_case_body


@pytest.fixture
async def catalogue(world):
    names = {k: (await Unit.get(id=v)).name for k, v in world.units.items()}
    await import_csv(
        "position,enabled,category,request_type,division_code,keywords,lead,co_units,note\n"
        f"10,1,,,,燃气、天然气,{names['zjj']},,\n"
        f"20,1,交通运输,,,,{names['jtj']},,\n"
        f"30,1,城乡建设,,,,{names['zjj']},{names['jtj']},\n"
    )
    return names


async def create(client, world, **overrides):
    r = await client.post("/api/cases", json=new_case_body(**overrides), headers=world.agent.headers)
    assert r.status_code == 201, r.text
    return r.json()["number"]


async def route(app, number):
    app.state.routing.invalidate_catalogue()
    case = await Case.get(number=number)
    return await app.state.routing.route_case(case, await app.state.sla.get())


async def test_a_typical_complaint_is_dispatched_directly_to_the_catalogue_unit(app, client, world, catalogue):
    number = await create(
        client, world, title="出租车司机拒载还绕路多收费",
        content="昨晚在火车站打出租车，司机拒载，后来上了一辆又故意绕路，多收了三十多元，请交通运输部门查处。",
        address="",
    )
    decision = await route(app, number)
    case = await Case.get(number=number)
    assert decision.category == "交通运输"
    assert case.status == states.DISPATCHED and case.lead_unit_id == world.units["jtj"]
    assert case.category_l1 == "交通运输"
    events = await CaseEvent.filter(case_id=case.id).order_by("id").values_list("action", "actor_role", "payload")
    assert [e[0] for e in events] == ["create", "classify", "dispatch"]
    assert events[1][1] == "system" and events[1][2]["model_version"]
    assert (await RoutingDecision.get(case_id=case.id)).auto_dispatched


async def test_a_keyword_rule_catches_a_matter_the_classifier_was_never_taught(app, client, world, catalogue):
    number = await create(client, world, title="", content="楼道里天然气味道很重，担心泄漏，请尽快派人来看看。", address="")
    await route(app, number)
    case = await Case.get(number=number)
    assert case.lead_unit_id == world.units["zjj"]


async def test_an_unclear_message_waits_for_the_dispatcher_with_suggestions(app, client, world, catalogue):
    number = await create(client, world, title="", content="你好，请问一下这个事情应该找谁？", address="")
    decision = await route(app, number)
    case = await Case.get(number=number)
    assert not decision.auto
    assert case.status == states.PENDING_DISPATCH
    r = await client.get(f"/api/cases/{number}/routing", headers=world.dispatcher.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["auto_dispatched"] is False and len(body["alternatives"]) == 3
    assert "派单员" in body["reason"]


async def test_a_dispatchers_correction_becomes_a_training_example(app, client, world, catalogue):
    number = await create(
        client, world, title="网约车司机态度恶劣", content="网约车司机态度恶劣，乘客问路被骂，还多收费。", address=""
    )
    await route(app, number)
    case = await Case.get(number=number)
    if case.status == states.DISPATCHED:
        # Send it back through a return, then re-dispatch elsewhere (退单 → 改派).
        assert (await act(client, world.jtj, number, "request_return", {"reason_code": "not_our_function"})).status_code == 200
        assert (await act(client, world.dispatcher, number, "approve_return")).status_code == 200
    r = await act(client, world.dispatcher, number, "dispatch", {"lead_unit_id": world.units["zjj"], "category_l1": "城乡建设"})
    assert r.status_code == 200, r.text
    example = await RoutingExample.get(case_id=case.id)
    assert example.lead_unit_id == world.units["zjj"] and example.category == "城乡建设"
    assert example.source in ("approved_return", "dispatcher_change")


async def test_a_reworded_complaint_at_the_same_place_is_offered_as_a_duplicate(app, client, world, catalogue):
    first = await create(client, world, title="望月湖小区下水道堵塞", content="岳麓区望月湖街道望月湖小区门口下水道堵塞，污水漫到路面，臭气熏天。", address="岳麓区望月湖街道")
    await route(app, first)
    again = await create(client, world, title="下水道又堵了", content="望月湖小区门口的下水道又堵了，污水流到马路上，很臭，请处理。", address="岳麓区望月湖街道")
    other = await create(client, world, title="广场舞噪音", content="望月湖小区广场舞音响太吵，晚上十点还在跳，影响休息。", address="岳麓区望月湖街道")
    for n in (again, other):
        await route(app, n)
    r = await client.get(f"/api/cases/{again}/duplicates", headers=world.agent.headers)
    assert r.status_code == 200, r.text
    assert first in [c["number"] for c in r.json()]
    r = await client.get(f"/api/cases/{other}/duplicates", headers=world.agent.headers)
    assert first not in [c["number"] for c in r.json()]


@pytest.mark.parametrize("content", ["😀😀😀", "岳麓区望月湖街道", "啊" * 4000])
async def test_odd_input_gets_a_decision_not_a_crash(app, client, world, catalogue, content):
    number = await create(client, world, title="", content=content, address="")
    decision = await route(app, number)
    assert 0 <= decision.confidence <= 1
    assert (await Case.get(number=number)).status in (states.PENDING_DISPATCH, states.DISPATCHED)


async def test_the_case_page_shows_the_dispatcher_routings_suggestions(app, client, world, catalogue):
    import re

    number = await create(client, world, title="", content="你好，请问一下这个事情应该找谁？", address="")
    await route(app, number)
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await client.post("/login", data={"csrf_token": token, "username": world.dispatcher.username, "password": world.dispatcher.password})
    assert r.status_code == 303
    page = await client.get(f"/cases/{number}")
    assert page.status_code == 200
    assert "智能派单建议" in page.text and "派单员" in page.text
