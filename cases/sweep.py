"""The sweep: find cases whose next timer step is due and take it, exactly once.

Deadlines live in the database (``case.next_due_at``, kept by ``perform``),
so a sweep needs nothing but the clock: after a crash, a restart or a Redis
outage the next pass catches up. Two sweeps never act twice on one case:

- on PostgreSQL a batch is claimed with ``FOR UPDATE SKIP LOCKED`` in one
  transaction, so a second worker skips the rows the first one holds, and each
  case is handled in a savepoint so one bad case cannot undo the batch;
- everywhere, each step goes through ``perform``, whose compare-and-set on the
  case version lets only one writer win, and whose history row and outbox
  messages commit with the change or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tortoise import connections
from tortoise.transactions import in_transaction

from cases import timers
from cases.actors import SYSTEM
from cases.errors import CaseError
from cases.lifecycle import NothingDue, SlaContext, case_view, perform
from cases.models import Case

log = logging.getLogger("cases.sweep")

# A case that fails for an unexpected reason is looked at again after this,
# instead of blocking every pass.
RETRY_FAILED_AFTER = timedelta(minutes=5)
_CLAIM_PG = (
    'SELECT "number" FROM "case" WHERE "next_due_at" <= $1 '
    'ORDER BY "next_due_at" LIMIT $2 FOR UPDATE SKIP LOCKED'
)


@dataclass
class SweepStats:
    looked_at: int = 0
    acted: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    lost_races: int = 0
    failed: int = 0

    def to_dict(self) -> dict:
        return {"looked_at": self.looked_at, "acted": self.acted, "steps": dict(self.steps),
                "lost_races": self.lost_races, "failed": self.failed}


def _is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


async def sweep(
    ctx: SlaContext,
    *,
    now: datetime | None = None,
    batch: int = 50,
    max_batches: int = 1000,
) -> SweepStats:
    """One pass over every case due at ``now``; returns what it did."""
    now = now or datetime.now(timezone.utc)
    stats = SweepStats()
    postgres = _is_postgres()
    for _ in range(max_batches):
        if postgres:
            async with in_transaction() as conn:
                rows = await conn.execute_query_dict(_CLAIM_PG, [now, batch])
                for row in rows:
                    await _take(row["number"], ctx, now, stats, conn)
        else:
            # SQLite has one writer at a time; short per-case transactions keep
            # the web process's writes flowing while a long pass runs.
            rows = await Case.filter(next_due_at__lte=now).order_by("next_due_at").limit(batch).values("number")
            for row in rows:
                await _take(row["number"], ctx, now, stats, None)
        if len(rows) < batch:
            break
    return stats


async def _take(number: str, ctx: SlaContext, now: datetime, stats: SweepStats, conn) -> None:
    stats.looked_at += 1
    try:
        case = await perform(number, "timer", SYSTEM, {}, sla_context=ctx, now=now)
    except NothingDue:
        await _reschedule(number, ctx, now, conn)
        return
    except CaseError as exc:
        # Another writer changed the case first; its perform rescheduled it.
        stats.lost_races += 1
        log.info("sweep skipped %s: %s", number, exc.message)
        return
    except Exception:
        stats.failed += 1
        log.exception("sweep failed on case %s", number)
        await Case.filter(number=number).using_db(conn).update(next_due_at=now + RETRY_FAILED_AFTER)
        return
    stats.acted += 1
    for step in case.last_event_payload.get("steps", ()):
        name = f"{step['stage']}:{step['step']}"
        stats.steps[name] = stats.steps.get(name, 0) + 1


async def _reschedule(number: str, ctx: SlaContext, now: datetime, conn) -> None:
    """The stored schedule was stale (the case moved on): store the right one, without history."""
    case = await Case.get_or_none(number=number).using_db(conn)
    if case is None:
        return
    next_due, light = timers.schedule(case_view(case), now, ctx.ladder)
    if next_due is not None and next_due <= now:
        log.error("case %s: schedule %s is due but no step is; looking again later", number, next_due)
        next_due = now + RETRY_FAILED_AFTER
    await Case.filter(id=case.id, version=case.version).using_db(conn).update(next_due_at=next_due, light=light)
