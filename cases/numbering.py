"""Human-readable case numbers (``20261122-000173``) and citizens' query codes."""

from __future__ import annotations

import secrets
from datetime import datetime

from tortoise import connections

from cases.sla import SHANGHAI

# No 0/O, 1/I/L: the code is read out over the phone.
QUERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

_UPSERT = (
    "INSERT INTO case_number_counter (day, last_seq) VALUES ({p1}, 1) "
    "ON CONFLICT (day) DO UPDATE SET last_seq = case_number_counter.last_seq + 1 "
    "RETURNING last_seq"
)


def new_query_code() -> str:
    return "".join(secrets.choice(QUERY_ALPHABET) for _ in range(6))


async def next_case_number(now: datetime) -> str:
    """Issue the next number of the day with one atomic statement.

    Kept apart from the case insert (autocommit) so the day's counter row is
    locked only for an instant; a rolled-back intake leaves a gap, which is
    harmless. The upsert also settles two processes creating the day's row.
    """
    day = now.astimezone(SHANGHAI).strftime("%Y%m%d")
    conn = connections.get("default")
    placeholder = "$1" if conn.capabilities.dialect == "postgres" else "?"
    rows = await conn.execute_query_dict(_UPSERT.format(p1=placeholder), [day])
    return f"{day}-{rows[0]['last_seq']:06d}"
