"""The case lifecycle over the JSON API: the whole loop, refusals, roles, races and privacy.

Every lifecycle action is ``POST /api/cases/{number}/{action-with-dashes}``.
Refused requests must leave the case exactly as it was: same version, no new
history row.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from cases import states
from cases.models import Case, CaseAssignment, CaseEvent, PhoneReveal, User
from cases.sla import Limit, TimeUnit, WorkCalendar
from tests.conftest import act, new_case_body

# ---- helpers ------------------------------------------------------------------------------


async def actor_of(person):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=person.username))


async def get_case(client, person, number: str) -> httpx.Response:
    return await client.get(f"/api/cases/{number}", headers=person.headers)


async def events_of(client, person, number: str) -> list[dict]:
    r = await client.get(f"/api/cases/{number}/events", headers=person.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def snapshot(number: str) -> tuple[int, int]:
    """The case's version and its number of history rows, read straight from the database."""
    case = await Case.get(number=number)
    return case.version, await CaseEvent.filter(case_id=case.id).count()


async def row_totals() -> tuple[int, int]:
    return await Case.all().count(), await CaseEvent.all().count()


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def dispatched(client, world, make_case):
    """A new case dispatched to 住建局 as lead, optionally with co-units; returns its number."""

    async def make(lead: str = "zjj", co: tuple[str, ...] = (), **case_fields) -> str:
        number = (await make_case(**case_fields))["number"]
        body = {"lead_unit_id": world.units[lead], "co_unit_ids": [world.units[u] for u in co]}
        r = await act(client, world.dispatcher, number, "dispatch", body)
        assert r.status_code == 200, r.text
        return number

    return make


@pytest.fixture
def signed(client, world, dispatched):
    async def make(lead: str = "zjj", co: tuple[str, ...] = (), **case_fields) -> str:
        number = await dispatched(lead, co, **case_fields)
        r = await act(client, world.people[lead], number, "sign")
        assert r.status_code == 200, r.text
        return number

    return make


# ---- 1. the whole loop -----------------------------------------------------------------------


async def test_a_case_walks_from_intake_through_a_refused_return_and_a_rehandle_to_closing(
    client, world, make_case
):
    number = (await make_case())["number"]
    zjj, jtj = world.units["zjj"], world.units["jtj"]
    unsatisfied = {"contacted": True, "resolved": "unresolved", "satisfaction": "unsatisfied"}
    satisfied = {"contacted": True, "resolved": "resolved", "satisfaction": "satisfied"}
    script = [
        # who, action, body, from, to
        ("dispatcher", "dispatch", {"lead_unit_id": zjj, "co_unit_ids": [jtj]}, "received", "dispatched"),
        ("zjj", "sign", {}, "dispatched", "in_progress"),
        ("jtj", "sign", {}, "in_progress", "in_progress"),
        ("zjj", "request_return", {"reason_code": "not_our_function"}, "in_progress", "return_requested"),
        ("dispatcher", "reject_return", {"note": "属于住建职能"}, "return_requested", "in_progress"),
        ("zjj", "reply", {"text": "已安排维修。"}, "in_progress", "replied"),
        ("agent", "record_callback", unsatisfied, "replied", "rehandle_pending"),
        ("dispatcher", "rehandle", {}, "rehandle_pending", "in_progress"),
        ("zjj", "reply", {"text": "灯已修好。"}, "in_progress", "replied"),
        ("agent", "record_callback", satisfied, "replied", "callback_done"),
        ("agent", "close", {}, "callback_done", "closed"),
    ]
    for who, action, body, _, to in script:
        r = await act(client, world.people[who], number, action, body)
        assert r.status_code == 200, f"{who} {action}: {r.text}"
        assert r.json()["status"] == to, f"{who} {action}"

    case = (await get_case(client, world.agent, number)).json()
    assert case["status"] == "closed"
    assert case["return_count"] == 0
    assert case["rehandle_count"] == 1
    assert case["callback_satisfaction"] == "satisfied"
    assert case["closed_at"] is not None

    events = await events_of(client, world.dispatcher, number)
    assert [e["action"] for e in events] == ["create"] + [step[1] for step in script]
    assert (events[0]["from_status"], events[0]["to_status"]) == ("", "received")
    assert events[0]["actor_name"] == "agent用户" and events[0]["actor_role"] == "agent"
    for event, (who, action, _, before, after) in zip(events[1:], script, strict=True):
        assert (event["from_status"], event["to_status"]) == (before, after), action
        assert event["actor_name"] == f"{who}用户", action
        assert event["actor_role"] == world.people[who].role, action
    times = [at(e["created_at"]) for e in events]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    assert events[4]["payload"]["reason_code"] == "not_our_function"
    assert events[3]["unit_id"] == jtj


# ---- 2. illegal moves are refused with 409 and the current state ------------------------------


async def assert_refused_naming_the_state(r: httpx.Response, state: str) -> None:
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["current_state"] == state
    assert f"「{states.LABELS[state]}」" in body["message"], body["message"]


async def test_replying_before_signing_is_refused_naming_the_state(client, world, dispatched):
    number = await dispatched()
    before = await snapshot(number)
    r = await act(client, world.zjj, number, "reply", {"text": "已处理"})
    await assert_refused_naming_the_state(r, "dispatched")
    assert await snapshot(number) == before


async def test_closing_a_case_still_in_progress_is_refused_naming_the_state(client, world, signed):
    number = await signed()
    before = await snapshot(number)
    r = await act(client, world.agent, number, "close")
    await assert_refused_naming_the_state(r, "in_progress")
    assert await snapshot(number) == before


async def test_approving_an_extension_nobody_asked_for_is_refused_naming_the_state(client, world, signed):
    number = await signed()
    before = await snapshot(number)
    r = await act(client, world.dispatcher, number, "approve_extension")
    await assert_refused_naming_the_state(r, "in_progress")
    assert await snapshot(number) == before


async def test_signing_while_a_return_awaits_the_centre_is_refused_naming_the_state(
    client, world, dispatched
):
    number = await dispatched()
    assert (
        await act(client, world.zjj, number, "request_return", {"reason_code": "duplicate"})
    ).status_code == 200
    r = await act(client, world.zjj, number, "sign")
    await assert_refused_naming_the_state(r, "return_requested")


async def test_signing_twice_is_refused_naming_the_state(client, world, signed):
    number = await signed()
    before = await snapshot(number)
    r = await act(client, world.zjj2, number, "sign")
    await assert_refused_naming_the_state(r, "in_progress")
    assert await snapshot(number) == before


async def test_a_handler_cannot_sign_a_case_before_it_is_dispatched_to_its_unit(client, world, make_case):
    # Before dispatch the case is nobody's: to a handler it does not exist.
    number = (await make_case())["number"]
    before = await snapshot(number)
    r = await act(client, world.zjj, number, "sign")
    assert r.status_code == 404, r.text
    assert await snapshot(number) == before


async def test_asking_for_a_return_after_the_two_working_day_window_is_refused_naming_the_state(
    client, world, make_case
):
    from cases.lifecycle import perform

    number = (await make_case())["number"]
    long_ago = datetime.now(timezone.utc) - timedelta(days=20)
    await perform(
        number,
        "dispatch",
        await actor_of(world.dispatcher),
        {"lead_unit_id": world.units["zjj"]},
        now=long_ago,
    )
    assert (await act(client, world.zjj, number, "sign")).status_code == 200
    before = await snapshot(number)
    r = await act(client, world.zjj, number, "request_return", {"reason_code": "not_our_function"})
    await assert_refused_naming_the_state(r, "in_progress")
    assert "退单期限" in r.json()["message"]
    assert await snapshot(number) == before


# ---- 3. roles and units --------------------------------------------------------------------------


async def test_a_handler_cannot_read_another_units_case(client, world, dispatched):
    number = await dispatched("zjj")
    assert (await get_case(client, world.jtj, number)).status_code == 404
    r = await client.get(f"/api/cases/{number}/events", headers=world.jtj.headers)
    assert r.status_code == 404
    assert (await get_case(client, world.zjj, number)).status_code == 200


async def test_a_handler_cannot_act_on_another_units_case(client, world, dispatched):
    number = await dispatched("zjj")
    before = await snapshot(number)
    for action, body in [
        ("sign", {}),
        ("request_return", {"reason_code": "other"}),
        ("reply", {"text": "x"}),
    ]:
        r = await act(client, world.jtj, number, action, body)
        assert r.status_code == 404, (action, r.text)
    assert await snapshot(number) == before


async def test_a_co_unit_signs_and_replies_only_its_own_assignment(client, world, dispatched):
    number = await dispatched("zjj", co=("jtj",))
    zjj, jtj = world.units["zjj"], world.units["jtj"]

    r = await act(client, world.jtj, number, "sign")
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["status"] == "dispatched"  # the lead has not signed yet
    assert case["signed_at"] is None
    by_unit = {a["unit_id"]: a for a in case["assignments"]}
    assert by_unit[jtj]["status"] == "signed" and by_unit[zjj]["status"] == "dispatched"

    assert (await act(client, world.zjj, number, "sign")).status_code == 200
    r = await act(client, world.jtj, number, "reply", {"text": "协办意见：已配合调查。"})
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["status"] == "in_progress"  # a co-unit's reply does not answer the citizen
    assert case["reply_text"] == ""
    by_unit = {a["unit_id"]: a for a in case["assignments"]}
    assert by_unit[jtj]["status"] == "replied"
    assert by_unit[jtj]["reply_text"] == "协办意见：已配合调查。"
    assert by_unit[zjj]["status"] == "signed"


async def test_a_co_unit_cannot_ask_for_a_return_only_the_lead_can(client, world, dispatched):
    number = await dispatched("zjj", co=("jtj",))
    before = await snapshot(number)
    r = await act(client, world.jtj, number, "request_return", {"reason_code": "not_our_function"})
    assert r.status_code == 403, r.text
    assert await snapshot(number) == before


async def test_an_agent_cannot_approve_a_return(client, world, dispatched):
    number = await dispatched()
    assert (
        await act(client, world.zjj, number, "request_return", {"reason_code": "duplicate"})
    ).status_code == 200
    before = await snapshot(number)
    r = await act(client, world.agent, number, "approve_return")
    assert r.status_code == 403, r.text
    assert await snapshot(number) == before
    assert (await get_case(client, world.agent, number)).json()["status"] == "return_requested"


async def test_a_district_reads_its_streets_case_but_cannot_act_on_it(client, world, dispatched):
    number = await dispatched("street")
    r = await get_case(client, world.district, number)
    assert r.status_code == 200, r.text
    assert r.json()["read_only"] is True
    assert (await get_case(client, world.street, number)).json()["read_only"] is False

    before = await snapshot(number)
    for action, body in [("sign", {}), ("request_return", {"reason_code": "not_our_territory"})]:
        r = await act(client, world.district, number, action, body)
        assert r.status_code == 403, (action, r.text)
    assert await snapshot(number) == before


async def test_a_street_cannot_read_its_districts_case(client, world, dispatched):
    number = await dispatched("district")
    assert (await get_case(client, world.street, number)).status_code == 404


async def test_the_case_list_shows_a_handler_only_its_own_units_cases(client, world, dispatched):
    ours = await dispatched("zjj")
    theirs = await dispatched("jtj")
    shared = await dispatched("jtj", co=("zjj",))
    r = await client.get("/api/cases", params={"limit": 200}, headers=world.zjj.headers)
    assert r.status_code == 200, r.text
    listed = {c["number"] for c in r.json()["items"]}
    assert listed == {ours, shared}
    assert r.json()["total"] == 2
    assert theirs in {
        c["number"]
        for c in (await client.get("/api/cases", params={"limit": 200}, headers=world.jtj.headers)).json()[
            "items"
        ]
    }


# ---- 4. two handlers at once ---------------------------------------------------------------------


async def test_two_handlers_of_one_unit_signing_at_the_same_moment_leave_one_winner(
    client, world, dispatched, live_server
):
    numbers = [await dispatched("zjj") for _ in range(10)]
    async with (
        httpx.AsyncClient(base_url=live_server, timeout=20) as one,
        httpx.AsyncClient(base_url=live_server, timeout=20) as other,
    ):
        for number in numbers:
            results = await asyncio.gather(
                one.post(f"/api/cases/{number}/sign", json={}, headers=world.zjj.headers),
                other.post(f"/api/cases/{number}/sign", json={}, headers=world.zjj2.headers),
            )
            codes = sorted(r.status_code for r in results)
            assert codes == [200, 409], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 409).json()
            assert loser["error"] in ("conflict", "illegal_transition")
            assert loser["current_state"] in ("dispatched", "in_progress")

    for number in numbers:
        case = await Case.get(number=number)
        assert case.status == "in_progress"
        assert await CaseEvent.filter(case_id=case.id, action="sign").count() == 1
        lead = await CaseAssignment.get(case_id=case.id, role="lead")
        assert lead.status == "signed"


# ---- 5. bad input writes nothing -----------------------------------------------------------------


async def test_malformed_json_in_an_action_is_a_400_and_writes_nothing(client, world, dispatched):
    number = await dispatched()
    totals = await row_totals()
    r = await client.post(
        f"/api/cases/{number}/sign",
        content=b'{"note": "x",',
        headers={**world.zjj.headers, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_json"
    assert await row_totals() == totals
    assert (await Case.get(number=number)).status == "dispatched"


async def test_an_unknown_field_in_an_action_is_a_422_naming_it_and_writes_nothing(client, world, dispatched):
    number = await dispatched()
    totals = await row_totals()
    r = await act(
        client, world.zjj, number, "request_return", {"reason_code": "other", "approve_myself": True}
    )
    assert r.status_code == 422, r.text
    assert "approve_myself" in [e["field"] for e in r.json()["errors"]]
    assert await row_totals() == totals


async def test_a_new_case_with_an_unknown_field_is_a_422_naming_it_and_writes_nothing(client, world):
    totals = await row_totals()
    r = await client.post("/api/cases", json=new_case_body(secret_flag=1), headers=world.agent.headers)
    assert r.status_code == 422, r.text
    assert "secret_flag" in [e["field"] for e in r.json()["errors"]]
    assert await row_totals() == totals


async def test_a_body_over_64_kib_is_a_413_and_writes_nothing(client, world, dispatched):
    number = await dispatched()
    totals = await row_totals()
    big = json.dumps({"text": "长" * 30_000})  # 90 000 bytes of UTF-8
    assert len(big.encode()) > 64 * 1024
    r = await client.post(
        f"/api/cases/{number}/sign",
        content=big.encode(),
        headers={**world.zjj.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    r = await client.post(
        "/api/cases",
        content=json.dumps(new_case_body(content="长" * 30_000)).encode(),
        headers={**world.agent.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert await row_totals() == totals


WRONG_TYPES = [
    ("dispatch", {"lead_unit_id": "1"}, "lead_unit_id"),  # a string for an integer
    ("dispatch", {"lead_unit_id": 1.5}, "lead_unit_id"),
    ("dispatch", {"lead_unit_id": None}, "lead_unit_id"),
    ("dispatch", {"lead_unit_id": [1]}, "lead_unit_id"),
    ("dispatch", {"lead_unit_id": 1, "co_unit_ids": "2"}, "co_unit_ids"),
    ("record_callback", {"contacted": "yes"}, "contacted"),  # a string for a boolean
    ("record_callback", {"contacted": 1}, "contacted"),
    ("merge", {"primary_number": 20261125}, "primary_number"),  # a number for a string
]


async def test_a_value_of_the_wrong_type_is_a_422_naming_the_field_and_writes_nothing(
    client, world, make_case
):
    number = (await make_case())["number"]
    totals = await row_totals()
    for action, body, field in WRONG_TYPES:
        r = await act(client, world.dispatcher, number, action, body)
        assert r.status_code == 422, (body, r.text)
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), (body, r.text)
    assert await row_totals() == totals


async def test_a_new_case_with_a_number_for_its_content_is_a_422_and_writes_nothing(client, world):
    totals = await row_totals()
    r = await client.post("/api/cases", json=new_case_body(content=12345), headers=world.agent.headers)
    assert r.status_code == 422, r.text
    assert "content" in [e["field"] for e in r.json()["errors"]]
    assert await row_totals() == totals


# ---- 6. confidential callers -----------------------------------------------------------------------

SECRET_PHONE = "13912345678"


@pytest.fixture
async def confidential(dispatched):
    return await dispatched("zjj", caller_name="李女士", caller_phone=SECRET_PHONE, confidential=True)


async def test_a_handler_sees_neither_the_name_nor_the_number_of_a_confidential_caller(
    client, world, confidential
):
    case = (await get_case(client, world.zjj, confidential)).json()
    assert case["caller_name"] == "保密"
    assert case["caller_phone"] == "139****5678"
    listed = (await client.get("/api/cases", headers=world.zjj.headers)).json()["items"]
    row = next(c for c in listed if c["number"] == confidential)
    assert (row["caller_name"], row["caller_phone"]) == ("保密", "139****5678")
    history = json.dumps(await events_of(client, world.zjj, confidential), ensure_ascii=False)
    assert SECRET_PHONE not in history and "李女士" not in history


async def test_an_agent_sees_a_masked_number_until_a_logged_reveal(client, world, confidential):
    case = (await get_case(client, world.agent, confidential)).json()
    assert case["caller_name"] == "李女士"
    assert case["caller_phone"] == "139****5678"
    case_id = (await Case.get(number=confidential)).id
    assert await PhoneReveal.filter(case_id=case_id).count() == 0

    r = await client.post(
        f"/api/cases/{confidential}/reveal-phone", json={"reason": "回访核实"}, headers=world.agent.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["caller_phone"] == SECRET_PHONE
    reveals = await PhoneReveal.filter(case_id=case_id)
    agent = await User.get(username=world.agent.username)
    assert [(x.user_id, x.reason) for x in reveals] == [(agent.id, "回访核实")]


async def test_a_handler_may_not_reveal_a_confidential_number(client, world, confidential):
    r = await client.post(
        f"/api/cases/{confidential}/reveal-phone", json={"reason": "想联系"}, headers=world.zjj.headers
    )
    assert r.status_code == 403, r.text
    assert SECRET_PHONE not in r.text
    assert await PhoneReveal.filter(case__number=confidential).count() == 0


async def test_searching_by_phone_as_a_handler_does_not_find_a_confidential_case(
    client, world, confidential, dispatched
):
    open_case = await dispatched("zjj", caller_phone=SECRET_PHONE)
    r = await client.get("/api/cases", params={"phone": SECRET_PHONE}, headers=world.zjj.headers)
    assert r.status_code == 200, r.text
    assert [c["number"] for c in r.json()["items"]] == [open_case]
    r = await client.get(
        "/api/cases", params={"phone": SECRET_PHONE, "limit": 200}, headers=world.agent.headers
    )
    assert confidential in {c["number"] for c in r.json()["items"]}


async def test_a_short_confidential_landline_number_is_not_shown_in_full(client, world, dispatched):
    for phone in ["88881234", "8881234", "0731-8888123", "12345"]:
        number = await dispatched("zjj", caller_phone=phone, confidential=True)
        for person in (world.zjj, world.agent):
            shown = (await get_case(client, person, number)).json()["caller_phone"]
            digits = sum(ch.isdigit() for ch in phone)
            assert sum(ch.isdigit() for ch in shown) <= digits - 4, (phone, shown)


# ---- 7. extensions ---------------------------------------------------------------------------------


async def test_an_approved_extension_moves_the_reply_deadline_by_working_days(client, world, signed):
    number = await signed("zjj", co=("jtj",))
    old_due = at((await get_case(client, world.zjj, number)).json()["reply_due"])

    r = await act(client, world.jtj, number, "request_extension", {"days": 3, "reason": "需协调"})
    assert r.status_code == 403, r.text  # only the lead unit asks
    r = await act(client, world.zjj, number, "request_extension", {"days": 11, "reason": "需协调"})
    assert r.status_code == 422, r.text
    assert "days" in [e["field"] for e in r.json()["errors"]]

    r = await act(client, world.zjj, number, "request_extension", {"days": 3, "reason": "需多部门协调"})
    assert r.status_code == 200, r.text
    assert r.json()["extension_requested_days"] == 3
    r = await act(client, world.zjj, number, "request_extension", {"days": 2, "reason": "再延"})
    assert r.status_code == 409, r.text  # one request at a time

    assert (await act(client, world.zjj, number, "approve_extension")).status_code == 403
    r = await act(client, world.dispatcher, number, "approve_extension", {"note": "同意"})
    assert r.status_code == 200, r.text
    case = r.json()
    expected = WorkCalendar().add(old_due, Limit(3, TimeUnit.WORKING_DAYS)).at
    assert at(case["reply_due"]) == expected
    assert expected - old_due >= timedelta(days=3)
    assert case["extension_count"] == 1
    assert case["extension_requested_days"] is None
    lead = next(a for a in case["assignments"] if a["role"] == "lead")
    assert at(lead["reply_due"]) == expected
    events = await events_of(client, world.dispatcher, number)
    assert events[-1]["action"] == "approve_extension" and events[-1]["payload"]["days"] == 3


async def test_a_rejected_extension_leaves_the_deadline_and_clears_the_request(client, world, signed):
    number = await signed()
    old_due = (await get_case(client, world.zjj, number)).json()["reply_due"]
    assert (
        await act(client, world.zjj, number, "request_extension", {"days": 10, "reason": "需协调"})
    ).status_code == 200
    r = await act(client, world.dispatcher, number, "reject_extension", {"note": "可按期办结"})
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["extension_requested_days"] is None
    assert case["reply_due"] == old_due
    assert case["extension_count"] == 0
    # Nothing is pending any more, so a second ruling is refused.
    assert (await act(client, world.dispatcher, number, "reject_extension")).status_code == 409


# ---- 8. merging duplicates ---------------------------------------------------------------------------


async def test_a_duplicate_merges_into_its_primary_case(client, world, make_case):
    primary = (await make_case())["number"]
    duplicate = (await make_case())["number"]
    r = await act(client, world.agent, duplicate, "merge", {"primary_number": primary})
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["status"] == "merged"
    assert case["merged_into_id"] == (await Case.get(number=primary)).id
    assert case["close_reason"] == "merged"
    assert (await events_of(client, world.agent, duplicate))[-1]["payload"]["primary_number"] == primary
    assert (await get_case(client, world.agent, primary)).json()["status"] == "received"


async def test_a_dispatched_duplicate_leaves_its_units_queues_when_merged(
    client, world, make_case, dispatched
):
    primary = (await make_case())["number"]
    duplicate = await dispatched("zjj")
    assert (
        await act(client, world.dispatcher, duplicate, "merge", {"primary_number": primary})
    ).status_code == 200
    assert not await CaseAssignment.filter(case__number=duplicate, active=True).exists()


async def test_a_case_cannot_merge_into_itself_or_a_finished_or_missing_case(client, world, make_case):
    number = (await make_case())["number"]
    closed, merged, primary = [(await make_case())["number"] for _ in range(3)]
    r = await act(client, world.agent, closed, "answer_on_spot", {"answer": "已当场答复。"})
    assert r.json()["status"] == "closed"
    assert (await act(client, world.agent, merged, "merge", {"primary_number": primary})).status_code == 200

    before = await snapshot(number)
    for target in (number, closed, merged, "19990101-999999"):
        r = await act(client, world.agent, number, "merge", {"primary_number": target})
        assert r.status_code == 422, (target, r.text)
        assert r.json()["field"] == "primary_number"
    assert await snapshot(number) == before
    # The same case can still merge into an open one.
    assert (await act(client, world.agent, number, "merge", {"primary_number": primary})).status_code == 200
