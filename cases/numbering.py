"""Human-readable case numbers (``20261122-000173``) and citizens' query codes."""

from __future__ import annotations

import secrets
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from cases.models import CaseNumberCounter
from cases.sla import SHANGHAI

# No 0/O, 1/I/L: the code is read out over the phone.
QUERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_query_code() -> str:
    return "".join(secrets.choice(QUERY_ALPHABET) for _ in range(6))


async def next_case_number(now: datetime) -> str:
    """Issue the next number of the day in its own short transaction.

    Kept apart from the case insert so the counter row is locked only for an
    instant; a rolled-back intake leaves a gap, which is harmless.
    """
    day = now.astimezone(SHANGHAI).strftime("%Y%m%d")
    for _ in range(5):
        try:
            async with in_transaction() as conn:
                bumped = await CaseNumberCounter.filter(day=day).using_db(conn).update(
                    last_seq=F("last_seq") + 1
                )
                if not bumped:
                    await CaseNumberCounter.create(day=day, last_seq=1, using_db=conn)
                row = await CaseNumberCounter.get(day=day).using_db(conn)
                return f"{day}-{row.last_seq:06d}"
        except IntegrityError:
            continue  # another process created the day's row first; bump it instead
    raise RuntimeError("could not issue a case number")
