"""The working calendar as stored: package data plus the admins' override table.

Deadlines reaching a year that neither the calendar package nor the override
table covers are provisional. Once an admin has entered that year, open
provisional deadlines are recomputed by one explicit admin action, recorded in
each case's history.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from tortoise.transactions import in_transaction

from cases import history, sla
from cases import states as s
from cases.actors import Actor
from cases.models import CalendarOverride, CalendarYear, Case, CaseAssignment, CaseEvent


async def load_calendar() -> sla.WorkCalendar:
    overrides = {o.day: o.is_workday for o in await CalendarOverride.all()}
    years = await CalendarYear.all().values_list("year", flat=True)
    return sla.WorkCalendar(overrides=overrides, override_years=years)


async def set_override(day: date, is_workday: bool, note: str = "") -> None:
    await CalendarOverride.update_or_create(
        defaults={"is_workday": is_workday, "note": note}, day=day
    )


async def mark_year_entered(year: int, actor: Actor) -> None:
    await CalendarYear.get_or_create(defaults={"entered_by_id": actor.user_id}, year=year)


async def calendar_status(now: datetime, calendar: sla.WorkCalendar) -> dict:
    """What admins must be warned about: uncovered years and the cases they touch."""
    this_year = now.year
    uncovered = [
        y for y in (this_year, this_year + 1) if calendar.is_provisional(date(y, 6, 30))
    ]
    count = await Case.filter(deadlines_provisional=True, status__in=list(s.OPEN)).count()
    return {"provisional_years": uncovered, "open_provisional_cases": count}


def _replay_deadlines(case: Case, events: list[CaseEvent], ctx) -> dict:
    """Recompute a case's stored deadlines from the events that set them."""
    policy = ctx.policies.get(case.urgency) or ctx.policies["general"]
    cal: sla.WorkCalendar = ctx.calendar
    changes: dict = {}
    provisional = False
    # Only a case that is with a unit has dispatch deadlines; a returned case
    # keeps its old dispatched_at but must not get that dispatch's deadlines back.
    if case.dispatched_at and case.lead_unit_id is not None:
        due = sla.stage_deadlines(policy, case.dispatched_at, cal)
        until = cal.add(case.dispatched_at, sla.RETURN_WINDOW)
        changes.update(
            sign_due=due["sign"].at,
            contact_due=due["contact"].at if due["contact"] else None,
            reply_due=due["reply"].at,
            return_until=until.at,
        )
        provisional = until.provisional or any(d and d.provisional for d in due.values())
        reply_start = case.dispatched_at
        for ev in events:
            if ev.action == "rehandle" and ev.created_at >= reply_start:
                reply_start = ev.created_at
        reply = cal.add(reply_start, policy.reply)
        provisional = provisional or reply.provisional
        for ev in events:
            if ev.action == "approve_extension" and ev.created_at >= reply_start:
                moved = sla.extend(
                    reply.at, sla.Limit(ev.payload["days"], sla.TimeUnit.WORKING_DAYS), cal
                )
                reply = moved
                provisional = provisional or moved.provisional
        changes["reply_due"] = reply.at
    if case.replied_at and case.status == s.REPLIED:
        cb = cal.add(case.replied_at, sla.CALLBACK_DELAY)
        changes["callback_due"] = cb.at
    changes["deadlines_provisional"] = provisional
    return changes


async def recompute_provisional(actor: Actor, ctx) -> int:
    """Recompute open provisional deadlines with the current calendar, once each."""
    done = 0
    ids = await Case.filter(deadlines_provisional=True, status__in=list(s.OPEN)).values_list(
        "id", flat=True
    )
    for case_id in ids:
        async with in_transaction() as conn:
            case = await Case.get(id=case_id).using_db(conn)
            if not case.deadlines_provisional:
                continue
            events = await CaseEvent.filter(case_id=case_id).using_db(conn).order_by("id")
            changes = _replay_deadlines(case, events, ctx)
            before = {k: getattr(case, k) for k in changes}
            if before == changes:
                continue  # the calendar still says the same: no write, no history noise
            won = await Case.filter(id=case_id, version=case.version).using_db(conn).update(
                **changes, version=case.version + 1, updated_at=utcnow()
            )
            if not won:
                continue  # changed meanwhile; the next run picks it up if still provisional
            if "sign_due" in changes:
                await CaseAssignment.filter(case_id=case_id, active=True).using_db(conn).update(
                    sign_due=changes["sign_due"], contact_due=changes["contact_due"]
                )
                # The lead's reply clock is the case's; co-units keep the dispatch one.
                await CaseAssignment.filter(case_id=case_id, active=True, role="lead").using_db(
                    conn
                ).update(reply_due=changes["reply_due"])
                dispatch_reply = sla.stage_deadlines(
                    ctx.policies.get(case.urgency) or ctx.policies["general"],
                    case.dispatched_at,
                    ctx.calendar,
                )["reply"].at
                await CaseAssignment.filter(case_id=case_id, active=True, role="co").using_db(
                    conn
                ).update(reply_due=dispatch_reply)
            await history.record(
                conn, case_id, actor, "recompute_deadlines", case.status, case.status,
                {k: {"before": _iso(before[k]), "after": _iso(v)} for k, v in changes.items()},
            )
            done += 1
    return done


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
