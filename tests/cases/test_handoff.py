"""Hand-offs to partner hotlines in the case core: 转办待确认 → 已转办跟踪 → 已办结, and the clock meanwhile."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest

from cases import states as s
from cases.actors import SYSTEM
from cases.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from cases.intake import create_case
from cases.lifecycle import SlaContext, perform
from cases.models import Case, CaseEvent, Handoff, Notification, PartnerHotline, User
from cases.sla import SHANGHAI
from cases.sweep import sweep

CTX = SlaContext()


async def actor_of(person):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=person.username))


async def partner(*, intake_url: str = "", active: bool = True, phone: str = "021-12345") -> PartnerHotline:
    return await PartnerHotline.create(code=f"t-{secrets.token_hex(4)}", name="上海市12345市民服务热线",
                                       phone=phone, intake_url=intake_url,
                                       secret_env="HOTLINE_PARTNER_NOT_SET_IN_TESTS", is_active=active)


async def new_case(world, at: datetime, **fields) -> str:
    body = {"channel": "phone", "request_type": "help", "content": "在上海缴纳的社保想转回长沙，不知道怎么办。",
            "caller_name": "李女士", "caller_phone": "13900139000", **fields}
    case, _ = await create_case(body, await actor_of(world.agent), now=at)
    return case.number


def handoff_body(p: PartnerHotline) -> dict:
    return {"partner_code": p.code, "summary": "市民咨询上海社保转移至长沙的办理流程，需上海方面确认缴费记录。"}


async def test_a_handoff_waits_for_the_partners_confirmation_for_one_working_day(world):
    p = await partner(intake_url="https://12345.sh.example.cn/partners/intake")
    monday = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    number = await new_case(world, monday)

    case = await perform(number, "handoff", await actor_of(world.agent), handoff_body(p), now=monday)

    assert case.status == s.HANDOFF_PENDING and s.LABELS[case.status] == "转办待确认"
    assert case.handoff_started_at == monday
    assert case.handoff_due == monday + timedelta(days=1)
    assert case.details["partner"] == p.code
    assert case.light == "green" and case.next_due_at is not None
    [row] = await Handoff.filter(case_id=case.id)
    assert (row.direction, row.status, row.partner_id) == ("out", "pending", p.id)
    assert row.payload["summary"].startswith("市民咨询上海社保")


async def test_a_partner_without_an_intake_api_is_handed_the_case_by_phone(world):
    p = await partner()
    number = await new_case(world, datetime.now(timezone.utc))

    await perform(number, "handoff", await actor_of(world.dispatcher), handoff_body(p))

    assert (await Handoff.get(case__number=number)).status == "phone"


async def test_a_handoff_over_a_weekend_is_due_on_the_next_working_day(world):
    p = await partner()
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=SHANGHAI)
    number = await new_case(world, friday)

    case = await perform(number, "handoff", await actor_of(world.agent), handoff_body(p), now=friday)

    assert case.handoff_due.astimezone(SHANGHAI) == datetime(2026, 11, 30, 16, 0, tzinfo=SHANGHAI)


async def test_an_unknown_or_inactive_partner_is_refused_and_nothing_changes(world):
    inactive = await partner(active=False)
    number = await new_case(world, datetime.now(timezone.utc))
    agent = await actor_of(world.agent)

    for code in (inactive.code, "no-such-partner"):
        with pytest.raises(InvalidInput) as err:
            await perform(number, "handoff", agent, {"partner_code": code, "summary": "摘要"})
        assert err.value.detail["field"] == "partner_code"
    case = await Case.get(number=number)
    assert case.status == s.RECEIVED and case.version == 1
    assert not await Handoff.filter(case_id=case.id).exists()


async def test_only_the_centre_hands_a_case_over_and_only_before_dispatch(world):
    p = await partner()
    number = await new_case(world, datetime.now(timezone.utc))
    with pytest.raises(Forbidden):
        await perform(number, "handoff", await actor_of(world.leader), handoff_body(p))
    await perform(number, "dispatch", await actor_of(world.dispatcher), {"lead_unit_id": world.units["zjj"]})
    with pytest.raises(IllegalTransition) as err:
        await perform(number, "handoff", await actor_of(world.agent), handoff_body(p))
    assert "待签收" in err.value.message


async def test_confirming_stops_the_clock_and_keeps_the_partners_reference(world):
    p = await partner(intake_url="https://12345.sh.example.cn/partners/intake")
    t0 = datetime.now(timezone.utc)
    number = await new_case(world, t0)
    await perform(number, "handoff", await actor_of(world.agent), handoff_body(p), now=t0)

    case = await perform(number, "confirm_handoff", await actor_of(world.agent),
                         {"partner_ref": "SH20261125000123", "note": "电话确认，对方坐席工号 1024"},
                         now=t0 + timedelta(hours=1))

    assert case.status == s.HANDED_OFF and s.LABELS[case.status] == "已转办跟踪"
    assert case.details == {"partner": p.code, "partner_ref": "SH20261125000123"}
    assert case.handoff_due is None and case.next_due_at is None and case.light == ""
    row = await Handoff.get(case_id=case.id)
    assert (row.status, row.partner_ref) == ("confirmed", "SH20261125000123")
    event = await CaseEvent.filter(case_id=case.id, action="confirm_handoff").first()
    assert event.payload["via"] == "phone"


async def test_the_system_confirms_an_electronic_receipt_but_a_handler_cannot_confirm(world):
    p = await partner()
    number = await new_case(world, datetime.now(timezone.utc))
    await perform(number, "handoff", await actor_of(world.agent), handoff_body(p))
    with pytest.raises(NotFound):  # a unit does not even see a case that was never dispatched to it
        await perform(number, "confirm_handoff", await actor_of(world.zjj), {"partner_ref": "X1"})

    case = await perform(number, "confirm_handoff", SYSTEM, {"partner_ref": "X1", "via": "api"})

    assert case.status == s.HANDED_OFF


async def test_the_partners_result_closes_the_case(world):
    p = await partner()
    number = await new_case(world, datetime.now(timezone.utc))
    agent = await actor_of(world.agent)
    await perform(number, "handoff", agent, handoff_body(p))
    with pytest.raises(IllegalTransition):
        await perform(number, "finish_handoff", agent, {"result": "太早了"})
    await perform(number, "confirm_handoff", agent, {"partner_ref": "SH-1"})

    case = await perform(number, "finish_handoff", agent, {"result": "上海市社保中心已办理转移，市民已确认。"})

    assert case.status == s.CLOSED and case.close_reason == "handed_off"
    assert case.reply_text.startswith("上海市社保中心")


async def test_an_unconfirmed_handoff_climbs_the_ladder_to_escalation_of_the_centres_leaders(world):
    p = await partner()
    # Long enough ago that only this test's case (and other stale ones) is due when swept.
    t0 = datetime.now(timezone.utc) - timedelta(days=40)
    number = await new_case(world, t0)
    case = await perform(number, "handoff", await actor_of(world.agent), handoff_body(p), now=t0)
    budget = case.handoff_due - t0

    async def steps():
        events = await CaseEvent.filter(case_id=case.id, action="timer").order_by("id")
        return [(st["stage"], st["step"]) for e in events for st in e.payload["steps"]]

    for share in (0.75, 1.0, 1.25, 2.0):
        await sweep(CTX, now=t0 + budget * share + timedelta(seconds=1))

    assert await steps() == [("handoff", "warn"), ("handoff", "overdue"), ("handoff", "supervise"),
                             ("handoff", "escalate")]
    case = await Case.get(id=case.id)
    assert case.status == s.HANDOFF_PENDING and case.light == "red" and case.supervision_level == 2
    assert case.next_due_at is None  # the top of the ladder: nothing more to do but confirm
    leader = await User.get(username=world.leader.username)
    dispatcher = await User.get(username=world.dispatcher.username)
    escalated = set(await Notification.filter(case_id=case.id, template="escalation").values_list("user_id", flat=True))
    assert {leader.id, dispatcher.id} <= escalated
    overdue = set(await Notification.filter(case_id=case.id, template="overdue").values_list("user_id", flat=True))
    assert dispatcher.id in overdue and leader.id not in overdue
    body = await Notification.filter(case_id=case.id, template="escalation", user_id=leader.id).first()
    assert "转办确认" in body.body and "李女士" not in body.body and "13900139000" not in body.body
