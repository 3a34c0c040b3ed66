"""The case lifecycle core, driven through ``perform()`` with a chosen clock.

The HTTP walk and the role checks live in tests/hotline/web/test_api_cases.py;
here are the rules that need time travel, a lost race, or the database itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.expressions import F

from cases import states
from cases.actors import ROLES, SYSTEM_ROLE
from cases.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound
from cases.lifecycle import TRANSITIONS, perform
from cases.models import Case, CaseAssignment, CaseEvent, PhoneReveal, User
from cases.sla import SHANGHAI

# SQLite's RAISE(ABORT) arrives as tortoise's IntegrityError; PostgreSQL's RAISE
# EXCEPTION (SQLSTATE P0001) is not translated by tortoise and arrives as asyncpg's.
REFUSED_BY_THE_DATABASE: tuple[type[BaseException], ...] = (OperationalError, IntegrityError)
try:
    from asyncpg.exceptions import RaiseError

    REFUSED_BY_THE_DATABASE += (RaiseError,)
except ImportError:  # pragma: no cover - asyncpg comes with tortoise-orm[asyncpg]
    pass


def sh(y, m, d, h=0, mi=0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


async def actor_of(person):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=person.username))


@pytest.fixture
def case_number(make_case):
    async def make(**fields) -> str:
        return (await make_case(**fields))["number"]

    return make


@pytest.fixture
def as_(world):
    """``await as_("zjj")`` is the Actor of the test world's 住建局 handler."""

    async def get(who: str):
        return await actor_of(world.people[who])

    return get


async def dispatch(number, as_, world, now, lead="zjj", co=(), **extra) -> Case:
    body = {"lead_unit_id": world.units[lead], "co_unit_ids": [world.units[u] for u in co], **extra}
    return await perform(number, "dispatch", await as_("dispatcher"), body, now=now)


async def history(number: str) -> list[CaseEvent]:
    return await CaseEvent.filter(case__number=number).order_by("id")


# ---- the table itself ---------------------------------------------------------------------------


def test_every_transition_moves_between_known_states_for_known_roles():
    for action, t in TRANSITIONS.items():
        assert t.sources and t.sources <= set(states.ALL), action
        assert t.target is None or t.target in states.ALL, action
        assert t.roles and t.roles <= set(ROLES) | {SYSTEM_ROLE}, action
        assert t.label and t.scope in ("case", "unit", "lead"), action
        assert not (t.sources & states.TERMINAL) or action in ("flag_unreasonable", "review_unreasonable"), (
            action
        )


async def test_an_unknown_action_is_not_found(case_number, as_):
    with pytest.raises(NotFound):
        await perform(await case_number(), "approve_everything", await as_("dispatcher"))


# ---- the return window ----------------------------------------------------------------------------


async def test_a_return_may_be_asked_for_until_two_working_days_after_dispatch_and_not_a_minute_later(
    case_number, as_, world
):
    friday = sh(2026, 12, 4, 10)  # the window runs over the weekend to Tuesday 10:00
    on_time, late = await case_number(), await case_number()
    for number in (on_time, late):
        case = await dispatch(number, as_, world, friday)
        assert case.return_until == sh(2026, 12, 8, 10)
        await perform(number, "sign", await as_("zjj"), now=friday + timedelta(hours=1))

    case = await perform(
        on_time,
        "request_return",
        await as_("zjj"),
        {"reason_code": "not_our_function"},
        now=sh(2026, 12, 8, 10),
    )
    assert case.status == "return_requested"

    with pytest.raises(IllegalTransition) as refused:
        await perform(
            late,
            "request_return",
            await as_("zjj"),
            {"reason_code": "not_our_function"},
            now=sh(2026, 12, 8, 10, 1),
        )
    assert refused.value.status_code == 409
    assert refused.value.detail["current_state"] == "in_progress"
    assert "「办理中」" in refused.value.message and "退单期限" in refused.value.message
    assert (await Case.get(number=late)).status == "in_progress"


async def test_an_approved_return_takes_the_case_back_from_the_unit_and_clears_its_deadlines(
    case_number, as_, world
):
    number = await case_number()
    dispatched_on = sh(2026, 12, 31, 10)  # deadlines reach 2027: provisional
    case = await dispatch(number, as_, world, dispatched_on)
    assert case.deadlines_provisional is True
    await perform(
        number,
        "request_return",
        await as_("zjj"),
        {"reason_code": "not_our_function"},
        now=dispatched_on + timedelta(hours=1),
    )
    case = await perform(
        number, "approve_return", await as_("dispatcher"), now=dispatched_on + timedelta(hours=2)
    )

    assert case.status == "pending_dispatch"
    case = await Case.get(number=number)
    assert case.lead_unit_id is None
    assert (case.sign_due, case.reply_due, case.return_until) == (None, None, None)
    assert case.deadlines_provisional is False
    assert case.return_count == 1
    old = await CaseAssignment.get(case_id=case.id, unit_id=world.units["zjj"])
    assert (old.active, old.status) == (False, "returned")
    with pytest.raises(NotFound):  # the unit no longer sees it
        await perform(number, "sign", await as_("zjj"), now=dispatched_on + timedelta(hours=3))

    case = await dispatch(number, as_, world, dispatched_on + timedelta(hours=3), lead="jtj")
    assert case.status == "dispatched" and case.lead_unit_id == world.units["jtj"]
    case = await perform(number, "sign", await as_("jtj"), now=dispatched_on + timedelta(hours=4))
    assert case.status == "in_progress"


async def test_a_refused_return_goes_back_to_waiting_for_a_signature_if_nobody_had_signed(
    case_number, as_, world
):
    number = await case_number()
    monday = sh(2026, 12, 7, 9)
    await dispatch(number, as_, world, monday)
    await perform(number, "request_return", await as_("zjj"), {"reason_code": "wrong_category"}, now=monday)
    case = await perform(number, "reject_return", await as_("dispatcher"), now=monday + timedelta(hours=1))
    assert case.status == "dispatched"
    assert case.return_reason == ""
    assert case.return_count == 0


# ---- replies, callbacks, rehandling -----------------------------------------------------------


async def test_a_callback_that_did_not_reach_the_citizen_keeps_the_case_waiting_for_another(
    case_number, as_, world
):
    number = await case_number()
    t0 = sh(2026, 12, 7, 9)
    await dispatch(number, as_, world, t0)
    await perform(number, "sign", await as_("zjj"), now=t0)
    case = await perform(number, "reply", await as_("zjj"), {"text": "已处理"}, now=t0 + timedelta(hours=2))
    assert case.callback_due == t0 + timedelta(days=1, hours=2)
    case = await perform(
        number, "record_callback", await as_("agent"), {"contacted": False}, now=t0 + timedelta(days=1)
    )
    assert case.status == "replied"
    assert case.callback_attempts == 1


async def test_a_rehandle_gives_the_lead_a_fresh_reply_deadline_counted_from_the_rehandle(
    case_number, as_, world
):
    number = await case_number()
    t0 = sh(2026, 12, 7, 9)
    await dispatch(number, as_, world, t0, co=("jtj",))
    await perform(number, "sign", await as_("zjj"), now=t0)
    await perform(number, "reply", await as_("zjj"), {"text": "已处理"}, now=t0 + timedelta(hours=2))
    unhappy = {"contacted": True, "resolved": "partly", "satisfaction": "unsatisfied"}
    await perform(number, "record_callback", await as_("agent"), unhappy, now=t0 + timedelta(days=1))
    rehandled = t0 + timedelta(days=1, hours=1)
    case = await perform(number, "rehandle", await as_("dispatcher"), now=rehandled)

    assert case.status == "in_progress"
    assert case.rehandle_count == 1
    assert case.reply_due == rehandled + timedelta(days=7)
    assert case.replied_at is None and case.callback_due is None
    lead = await CaseAssignment.get(case__number=number, role="lead")
    assert (lead.status, lead.replied_at, lead.reply_due) == ("signed", None, rehandled + timedelta(days=7))
    case = await perform(
        number, "reply", await as_("zjj"), {"text": "已彻底解决"}, now=rehandled + timedelta(hours=1)
    )
    assert case.status == "replied"


async def test_a_contact_time_before_the_dispatch_is_refused(case_number, as_, world):
    number = await case_number()
    t0 = sh(2026, 12, 7, 9)
    await dispatch(number, as_, world, t0)
    await perform(number, "sign", await as_("zjj"), now=t0)
    with pytest.raises(InvalidInput) as refused:
        await perform(
            number,
            "record_contact",
            await as_("zjj"),
            {"contacted_at": (t0 - timedelta(days=1)).isoformat()},
            now=t0,
        )
    assert refused.value.detail["field"] == "contacted_at"
    case = await perform(
        number,
        "record_contact",
        await as_("zjj"),
        {"contacted_at": t0.isoformat()},
        now=t0 + timedelta(hours=1),
    )
    assert case.contacted_at == t0


async def test_a_read_only_district_cannot_even_flag_its_streets_case(case_number, as_, world):
    number = await case_number()
    await dispatch(number, as_, world, sh(2026, 12, 7, 9), lead="street")
    version = (await Case.get(number=number)).version
    with pytest.raises(Forbidden):
        await perform(number, "flag_unreasonable", await as_("district"), {"reason": "重复诉求"})
    assert (await Case.get(number=number)).version == version


# ---- races ------------------------------------------------------------------------------------


async def test_a_lost_race_on_the_version_column_is_a_409_that_names_the_state_and_writes_nothing(
    case_number, as_, world, monkeypatch
):
    number = await case_number()
    await dispatch(number, as_, world, sh(2026, 12, 7, 9))
    before = await Case.get(number=number)
    events = len(await history(number))
    sign = TRANSITIONS["sign"]

    async def someone_else_writes_first(step):
        # Another request commits between our read and our compare-and-set.
        await Case.filter(id=step.case.id).using_db(step.conn).update(version=F("version") + 1)
        await sign.effect(step)

    monkeypatch.setitem(TRANSITIONS, "sign", dataclasses.replace(sign, effect=someone_else_writes_first))
    with pytest.raises(Conflict) as lost:
        await perform(number, "sign", await as_("zjj"), now=sh(2026, 12, 7, 10))
    assert lost.value.status_code == 409
    assert lost.value.detail["current_state"] == "dispatched"
    assert "「待签收」" in lost.value.message

    after = await Case.get(number=number)
    assert (after.version, after.status) == (before.version, "dispatched")
    assert len(await history(number)) == events
    assert (await CaseAssignment.get(case_id=after.id, role="lead")).status == "dispatched"


async def test_two_handlers_signing_at_once_leave_exactly_one_signature(case_number, as_, world):
    zjj, zjj2 = await as_("zjj"), await as_("zjj2")
    for _ in range(10):
        number = await case_number()
        await dispatch(number, as_, world, sh(2026, 12, 7, 9))
        results = await asyncio.gather(
            perform(number, "sign", zjj, now=sh(2026, 12, 7, 10)),
            perform(number, "sign", zjj2, now=sh(2026, 12, 7, 10)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Case)]
        losers = [r for r in results if not isinstance(r, Case)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert isinstance(losers[0], (Conflict, IllegalTransition)), losers
        assert [e.action for e in await history(number)].count("sign") == 1
        assert (await Case.get(number=number)).version == winners[0].version


# ---- the history ------------------------------------------------------------------------------


async def test_the_history_records_each_action_at_the_time_it_was_performed(case_number, as_, world):
    number = await case_number()
    t0 = sh(2026, 12, 7, 9)
    await dispatch(number, as_, world, t0)
    case = await perform(number, "sign", await as_("zjj"), now=t0 + timedelta(minutes=30))
    events = await history(number)
    assert [e.action for e in events] == ["create", "dispatch", "sign"]
    assert events[1].created_at == t0 == case.dispatched_at
    assert events[2].created_at == t0 + timedelta(minutes=30) == case.signed_at
    assert events[2].actor_role == "handler" and events[2].unit_id == world.units["zjj"]


@pytest.fixture
async def an_event(case_number) -> CaseEvent:
    number = await case_number()
    return (await history(number))[0]


async def test_a_case_event_cannot_be_changed_or_deleted_through_the_orm(an_event):
    an_event.action = "tampered"
    with pytest.raises(OperationalError, match="append-only"):
        await an_event.save()
    with pytest.raises(OperationalError, match="append-only"):
        await an_event.delete()
    with pytest.raises(REFUSED_BY_THE_DATABASE, match="append-only"):
        await CaseEvent.filter(id=an_event.id).update(action="tampered")
    with pytest.raises(REFUSED_BY_THE_DATABASE, match="append-only"):
        await CaseEvent.filter(id=an_event.id).delete()
    again = await CaseEvent.get(id=an_event.id)
    assert again.action == "create"


async def test_raw_sql_cannot_rewrite_the_history_because_the_database_refuses(an_event):
    for sql in (
        "UPDATE case_event SET action = 'tampered' WHERE id = {id}",
        "DELETE FROM case_event WHERE id = {id}",
    ):
        with pytest.raises(REFUSED_BY_THE_DATABASE, match="append-only"):
            await connections.get("default").execute_script(sql.format(id=an_event.id))
    again = await CaseEvent.get(id=an_event.id)
    assert again.action == "create"


async def test_the_phone_reveal_log_is_append_only_too(case_number, world):
    number = await case_number(confidential=True)
    user = await User.get(username=world.agent.username)
    reveal = await PhoneReveal.create(case=await Case.get(number=number), user=user, reason="回访")
    with pytest.raises(REFUSED_BY_THE_DATABASE, match="append-only"):
        await connections.get("default").execute_script(f"DELETE FROM phone_reveal WHERE id = {reveal.id}")
    with pytest.raises(OperationalError, match="append-only"):
        await reveal.delete()
    assert await PhoneReveal.filter(id=reveal.id).exists()
