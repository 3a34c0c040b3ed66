"""Provisional deadlines in a year nobody has published, and the admin's one-time fix.

chinese_calendar knows nothing of 2027, so a case dispatched in late December
2026 gets deadlines guessed on a Monday-to-Friday week. Once an admin enters
2027's holidays (here: 元旦, Friday 2027-01-01) and marks the year entered,
one recompute moves the deadlines and records it in each case's history.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from cases.calendar_store import load_calendar
from cases.lifecycle import SlaContext, perform
from cases.models import CalendarOverride, CalendarYear, Case, CaseEvent, User
from cases.sla import SHANGHAI


def sh(y, m, d, h=0, mi=0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


NEW_YEAR = "2027-01-01"


async def _forget_2027(app) -> None:
    await CalendarOverride.filter(day__gte=date(2027, 1, 1), day__lte=date(2027, 12, 31)).delete()
    await CalendarYear.filter(year=2027).delete()
    app.state.sla.invalidate()


@pytest.fixture
async def unpublished_2027(app):
    """2027 as the package leaves it: unknown. Whatever a test enters is removed afterwards."""
    await _forget_2027(app)
    yield
    await _forget_2027(app)


async def actor_of(person):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=person.username))


async def as_stored(number: str) -> Case:
    return await Case.get(number=number)


@pytest.fixture
def perform_now(world):
    """perform() as one of the world's people, at a given time, with the stored calendar."""

    async def run(who: str, number: str, action: str, body: dict | None = None, *, now: datetime) -> Case:
        ctx = SlaContext(calendar=await load_calendar())
        return await perform(
            number, action, await actor_of(world.people[who]), body, now=now, sla_context=ctx
        )

    return run


async def enter_2027(client, world) -> None:
    r = await client.put(
        f"/api/calendar/days/{NEW_YEAR}",
        json={"is_workday": False, "note": "元旦"},
        headers=world.admin.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post("/api/calendar/years/2027", headers=world.admin.headers)
    assert r.status_code == 200, r.text


async def recompute(client, world) -> int:
    r = await client.post("/api/calendar/recompute", headers=world.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["recomputed"]


async def recompute_events(number: str) -> list[CaseEvent]:
    return await CaseEvent.filter(case__number=number, action="recompute_deadlines").order_by("id")


async def test_entering_next_years_holidays_fixes_provisional_deadlines_once(
    client, world, make_case, perform_now, unpublished_2027
):
    r = await client.get("/api/calendar", headers=world.admin.headers)
    assert r.status_code == 200, r.text
    assert 2027 in r.json()["provisional_years"]  # today is in 2026: next year is not published

    number = (await make_case())["number"]
    thursday = sh(2026, 12, 31, 10)
    await perform_now("dispatcher", number, "dispatch", {"lead_unit_id": world.units["zjj"]}, now=thursday)
    case = await as_stored(number)
    assert case.deadlines_provisional is True
    # Guessed: Friday 2027-01-01 counted as a working day.
    assert case.sign_due == sh(2027, 1, 1, 10)
    assert case.return_until == sh(2027, 1, 4, 10)
    assert case.reply_due == thursday + timedelta(days=7)  # calendar days: not guessed
    assert (await client.get("/api/calendar", headers=world.admin.headers)).json()[
        "open_provisional_cases"
    ] >= 1

    await enter_2027(client, world)
    calendar = (await client.get("/api/calendar", headers=world.admin.headers)).json()
    assert 2027 not in calendar["provisional_years"]
    assert 2027 in calendar["entered_years"]
    assert {"day": NEW_YEAR, "is_workday": False, "note": "元旦"} in calendar["overrides"]

    assert await recompute(client, world) >= 1
    case = await as_stored(number)
    assert case.deadlines_provisional is False
    assert case.sign_due == sh(2027, 1, 4, 10)  # 元旦 off, then the weekend
    assert case.contact_due == sh(2027, 1, 4, 10)
    assert case.return_until == sh(2027, 1, 5, 10)
    assert case.reply_due == thursday + timedelta(days=7)
    lead = (await client.get(f"/api/cases/{number}", headers=world.dispatcher.headers)).json()["assignments"][
        0
    ]
    assert datetime.fromisoformat(lead["sign_due"]) == sh(2027, 1, 4, 10)

    [event] = await recompute_events(number)
    assert event.actor_role == "admin"
    assert event.from_status == event.to_status == "dispatched"
    assert event.payload["sign_due"]["before"] == sh(2027, 1, 1, 10).isoformat()
    assert datetime.fromisoformat(event.payload["sign_due"]["after"]) == sh(2027, 1, 4, 10)
    assert event.payload["deadlines_provisional"] == {"before": True, "after": False}

    version = (await as_stored(number)).version
    await recompute(client, world)
    assert len(await recompute_events(number)) == 1
    assert (await as_stored(number)).version == version


async def test_recomputing_before_the_year_is_entered_changes_nothing_and_writes_no_history(
    client, world, make_case, perform_now, unpublished_2027
):
    number = (await make_case())["number"]
    await perform_now(
        "dispatcher", number, "dispatch", {"lead_unit_id": world.units["zjj"]}, now=sh(2026, 12, 31, 10)
    )
    before = await as_stored(number)
    await recompute(client, world)
    after = await as_stored(number)
    assert after.version == before.version
    assert after.deadlines_provisional is True
    assert await recompute_events(number) == []


async def test_a_rehandled_and_extended_case_is_recomputed_from_the_rehandle_not_the_dispatch(
    client, world, make_case, perform_now, unpublished_2027
):
    number = (await make_case(urgency="consult"))["number"]  # reply within 2 working days
    t0 = sh(2026, 12, 1, 10)
    await perform_now("dispatcher", number, "dispatch", {"lead_unit_id": world.units["zjj"]}, now=t0)
    await perform_now("zjj", number, "sign", now=t0 + timedelta(hours=1))
    await perform_now("zjj", number, "reply", {"text": "已答复"}, now=t0 + timedelta(days=1))
    unhappy = {"contacted": True, "resolved": "unresolved", "satisfaction": "unsatisfied"}
    await perform_now("agent", number, "record_callback", unhappy, now=t0 + timedelta(days=2))
    rehandled = sh(2026, 12, 31, 10)
    case = await perform_now("dispatcher", number, "rehandle", now=rehandled)
    assert case.reply_due == sh(2027, 1, 4, 10)  # Fri 01-01 guessed as a working day
    assert case.deadlines_provisional is True
    await perform_now(
        "zjj",
        number,
        "request_extension",
        {"days": 2, "reason": "需协调"},
        now=rehandled + timedelta(hours=1),
    )
    case = await perform_now("dispatcher", number, "approve_extension", now=rehandled + timedelta(hours=2))
    assert case.reply_due == sh(2027, 1, 6, 10)

    await enter_2027(client, world)
    assert await recompute(client, world) >= 1
    case = await as_stored(number)
    assert case.deadlines_provisional is False
    # 元旦 off: rehandle + 2 WD = Tue 01-05, extended by 2 WD = Thu 01-07.
    assert case.reply_due == sh(2027, 1, 7, 10)
    assert case.sign_due == sh(2026, 12, 2, 10)  # the dispatch's own deadlines stay


async def test_a_returned_case_gets_no_deadlines_back_from_a_recompute(
    client, world, make_case, perform_now, unpublished_2027
):
    number = (await make_case())["number"]
    t0 = sh(2026, 12, 31, 10)
    await perform_now("dispatcher", number, "dispatch", {"lead_unit_id": world.units["zjj"]}, now=t0)
    await perform_now(
        "zjj", number, "request_return", {"reason_code": "not_our_function"}, now=t0 + timedelta(hours=1)
    )
    await perform_now("dispatcher", number, "approve_return", now=t0 + timedelta(hours=2))

    await enter_2027(client, world)
    await recompute(client, world)
    case = await as_stored(number)
    assert case.status == "pending_dispatch"
    assert (case.sign_due, case.reply_due, case.return_until) == (None, None, None)
    assert await recompute_events(number) == []


async def test_only_an_admin_may_edit_the_calendar_or_recompute(client, world, unpublished_2027):
    for person in (world.dispatcher, world.agent, world.zjj):
        r = await client.put(
            f"/api/calendar/days/{NEW_YEAR}", json={"is_workday": False}, headers=person.headers
        )
        assert r.status_code == 403, r.text
        assert (await client.post("/api/calendar/recompute", headers=person.headers)).status_code == 403
    assert not await CalendarOverride.exists(day=date(2027, 1, 1))
