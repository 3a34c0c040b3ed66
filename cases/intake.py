"""Creating a case: the one way a citizen's matter enters the system."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from cases import history, notifications, timers
from cases import states as s
from cases.actors import Actor
from cases.errors import invalid_from
from cases.models import Case
from cases.numbering import new_query_code, next_case_number
from cases.payloads import NewCase

# GB/T 33358: web submissions are accepted within 2 hours.
ACCEPT_WITHIN = timedelta(hours=2)


def validate_new_case(data: Any) -> NewCase:
    try:
        return NewCase.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None


async def create_case(
    data: NewCase | dict, actor: Actor, *, now: datetime | None = None,
    ladder: timers.Ladder | None = None, route: bool = False,
) -> tuple[Case, bool]:
    """Create the case and its first history row; returns (case, created).

    A repeated ``source_id`` (a retried webhook, a double-clicked form) returns
    the existing case instead of making a second one.
    """
    new = data if isinstance(data, NewCase) else validate_new_case(data)
    if new.source_id:
        existing = await Case.get_or_none(source_id=new.source_id)
        if existing:
            return existing, False
    now = now or datetime.now(timezone.utc)
    number = await next_case_number(now)
    fields = new.model_dump()
    clock = {"status": s.RECEIVED, "created_at": now, "accept_due": now + ACCEPT_WITHIN}
    next_due_at, light = timers.schedule(clock, now, ladder or timers.Ladder())
    try:
        async with in_transaction() as conn:
            case = await Case.create(
                number=number,
                query_code=new_query_code(),
                status=s.RECEIVED,
                accept_due=clock["accept_due"],
                next_due_at=next_due_at,
                light=light,
                routing_state="pending" if route else "",
                created_by_id=actor.user_id,
                created_at=now,
                using_db=conn,
                **fields,
            )
            payload = {"channel": new.channel, "request_type": new.request_type}
            await history.record(conn, case.id, actor, "create", "", s.RECEIVED, payload, at=now)
            messages = await notifications.for_change(conn, case, "create", payload, "", s.RECEIVED)
            await notifications.enqueue(conn, case, case.version, messages)
    except IntegrityError:
        if new.source_id:
            existing = await Case.get_or_none(source_id=new.source_id)
            if existing:
                return existing, False
        raise
    return case, True
