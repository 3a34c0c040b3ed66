"""The sweep on a real database: each due step is taken once, recorded, and told to the right people."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from cases.lifecycle import SlaContext, perform
from cases.models import Case, CaseEvent, Notification, User
from cases.sweep import sweep

CTX = SlaContext()


async def actor(world, who):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=world.people[who].username))


@pytest.fixture
def urgent_case(make_case, world):
    """An urgent case dispatched to 住建局 at T0: sign 30 min, contact 2 h, reply 24 h."""

    async def make(**fields):
        number = (await make_case(urgency="urgent", **fields))["number"]
        t0 = datetime.now(timezone.utc)
        await perform(number, "dispatch", await actor(world, "dispatcher"),
                      {"lead_unit_id": world.units["zjj"]}, now=t0)
        return number, t0

    return make


async def timer_events(number):
    case = await Case.get(number=number)
    return [e.payload for e in await CaseEvent.filter(case_id=case.id, action="timer").order_by("id")]


async def steps_taken(number):
    return [(s["stage"], s["step"]) for p in await timer_events(number) for s in p["steps"]]


async def test_the_sign_clock_warns_then_turns_red_then_is_supervised(urgent_case, world):
    number, t0 = await urgent_case()
    await sweep(CTX, now=t0 + timedelta(minutes=22))
    assert await steps_taken(number) == []
    await sweep(CTX, now=t0 + timedelta(minutes=23))
    assert await steps_taken(number) == [("sign", "warn")]
    case = await Case.get(number=number)
    assert case.light == "yellow" and case.next_due_at == t0 + timedelta(minutes=30)
    await sweep(CTX, now=t0 + timedelta(minutes=30))
    await sweep(CTX, now=t0 + timedelta(minutes=38))
    assert await steps_taken(number) == [("sign", "warn"), ("sign", "overdue"), ("sign", "supervise")]
    case = await Case.get(number=number)
    assert case.light == "red" and case.supervision_level == 1


async def test_a_second_pass_at_the_same_time_does_nothing(urgent_case):
    number, t0 = await urgent_case()
    later = t0 + timedelta(minutes=31)
    first = await sweep(CTX, now=later)
    again = await sweep(CTX, now=later)
    assert first.acted >= 1 and again.acted == 0
    assert await steps_taken(number) == [("sign", "overdue")]


async def test_two_concurrent_sweeps_take_each_step_once(urgent_case):
    numbers = [(await urgent_case())[0] for _ in range(6)]
    later = datetime.now(timezone.utc) + timedelta(minutes=31)
    a, b = await asyncio.gather(sweep(CTX, now=later, batch=2), sweep(CTX, now=later, batch=2))
    for number in numbers:
        assert await steps_taken(number) == [("sign", "overdue")]
    case_ids = [c.id for c in await Case.filter(number__in=numbers)]
    keys = await Notification.filter(case_id__in=case_ids, template="overdue").values_list("key", flat=True)
    assert len(keys) == len(set(keys)) == 6 * 2  # two 住建局 handlers per case


async def test_a_late_sweep_records_the_steps_it_passed_over(urgent_case):
    number, t0 = await urgent_case()
    await sweep(CTX, now=t0 + timedelta(hours=1))
    [event] = await timer_events(number)
    assert event["steps"] == [{"stage": "sign", "step": "supervise", "due": event["steps"][0]["due"],
                               "skipped": ["warn", "overdue"]}]
    assert event["labels"] == ["签收自动督办"]


async def test_warnings_go_to_the_units_handlers_and_supervision_to_its_leader_too(urgent_case, world):
    leader = await User.create(username=f"zjj_leader_{world.suffix}", role="leader", unit_id=world.units["zjj"],
                               password_hash="x", phone="13900000001")
    number, t0 = await urgent_case()
    case = await Case.get(number=number)
    await sweep(CTX, now=t0 + timedelta(minutes=23))
    warned = await Notification.filter(case_id=case.id, template="deadline_warning")
    assert {n.user_id for n in warned} == {
        u.id for u in await User.filter(unit_id=world.units["zjj"], role="handler")}
    await sweep(CTX, now=t0 + timedelta(minutes=40))
    supervised = await Notification.filter(case_id=case.id, template="supervision")
    assert leader.id in {n.user_id for n in supervised}
    sms = [n for n in supervised if n.user_id == leader.id][0]
    assert sms.channel == "sms" and sms.address == "13900000001" and sms.status == "pending"
    assert number in sms.body and "督办" in sms.body


async def test_unit_messages_never_name_a_confidential_caller(urgent_case):
    number, t0 = await urgent_case(confidential=True, caller_name="李秘密", caller_phone="13711112222")
    await sweep(CTX, now=t0 + timedelta(hours=1))
    case = await Case.get(number=number)
    for n in await Notification.filter(case_id=case.id, recipient_kind="user"):
        assert "李秘密" not in n.body and "13711112222" not in n.body


async def test_the_reply_clock_escalates_to_the_centre_when_long_overdue(urgent_case, world):
    number, t0 = await urgent_case()
    await perform(number, "sign", await actor(world, "zjj"), now=t0 + timedelta(minutes=5))
    await perform(number, "record_contact", await actor(world, "zjj"), {}, now=t0 + timedelta(minutes=6))
    await sweep(CTX, now=t0 + timedelta(hours=49))
    assert await steps_taken(number) == [("reply", "escalate")]
    case = await Case.get(number=number)
    assert case.supervision_level == 2
    centre_leader = world.people["leader"].username
    recipients = await Notification.filter(case_id=case.id, template="escalation").values_list("user__username", flat=True)
    assert centre_leader in recipients


async def test_an_approved_extension_moves_the_reply_ladder(urgent_case, world):
    number, t0 = await urgent_case()
    zjj = await actor(world, "zjj")
    await perform(number, "sign", zjj, now=t0 + timedelta(minutes=5))
    await perform(number, "record_contact", zjj, {}, now=t0 + timedelta(minutes=6))
    await sweep(CTX, now=t0 + timedelta(hours=19))
    assert await steps_taken(number) == [("reply", "warn")]
    await perform(number, "request_extension", zjj, {"days": 3, "reason": "需协调多个部门现场核查"},
                  now=t0 + timedelta(hours=20))
    await perform(number, "approve_extension", await actor(world, "dispatcher"), now=t0 + timedelta(hours=21))
    case = await Case.get(number=number)
    assert case.light == "green" and case.next_due_at > t0 + timedelta(hours=24)
    await sweep(CTX, now=t0 + timedelta(hours=25))
    assert await steps_taken(number) == [("reply", "warn")]


async def test_a_third_rehandle_escalates_once(urgent_case, world):
    number, t0 = await urgent_case()
    zjj, dispatcher, agent = await actor(world, "zjj"), await actor(world, "dispatcher"), await actor(world, "agent")
    t = t0 + timedelta(minutes=1)
    await perform(number, "sign", zjj, now=t)
    unhappy = {"contacted": True, "resolved": "unresolved", "satisfaction": "unsatisfied"}
    for _ in range(3):
        await perform(number, "reply", zjj, {"text": "已处理"}, now=t)
        await perform(number, "record_callback", agent, unhappy, now=t)
        await perform(number, "rehandle", dispatcher, now=t)
    case = await Case.get(number=number)
    assert case.rehandle_count == 3 and case.next_due_at == t
    await sweep(CTX, now=t)
    await sweep(CTX, now=t + timedelta(seconds=1))
    assert [s for s in await steps_taken(number) if s[0] == "rehandle"] == [("rehandle", "escalate")]
    assert (await Case.get(number=number)).supervision_level == 2


async def test_a_closed_case_leaves_the_sweep(make_case, world):
    number = (await make_case())["number"]
    case = await Case.get(number=number)
    assert case.next_due_at is not None and case.light == "green"
    await perform(number, "answer_on_spot", await actor(world, "agent"), {"answer": "已当场解答政策问题"})
    case = await Case.get(number=number)
    assert case.next_due_at is None and case.light == ""


async def test_citizens_hear_about_their_own_case(make_case, world):
    number = (await make_case(caller_phone="13655556666"))["number"]
    await perform(number, "answer_on_spot", await actor(world, "agent"), {"answer": "已当场解答政策问题"})
    case = await Case.get(number=number)
    sent = await Notification.filter(case_id=case.id).order_by("id")
    assert [(n.template, n.address) for n in sent] == [
        ("case_accepted", "13655556666"), ("case_closed", "13655556666")]
    assert case.query_code in sent[0].body
