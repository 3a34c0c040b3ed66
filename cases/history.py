"""The append-only history: the one way a CaseEvent row is written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cases.actors import Actor
from cases.models import CaseEvent


async def record(
    conn,
    case_id: int,
    actor: Actor,
    action: str,
    from_status: str,
    to_status: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> CaseEvent:
    """Append one history row inside the caller's transaction.

    ``at`` is the action's own time, as stored on the case (signed_at,
    replied_at …); replaying deadlines from the history relies on it.
    """
    extra = {"created_at": at} if at is not None else {}
    return await CaseEvent.create(
        case_id=case_id,
        action=action,
        actor_id=actor.user_id,
        actor_name=actor.name,
        actor_role=actor.role,
        unit_id=actor.unit_id,
        from_status=from_status,
        to_status=to_status,
        payload=payload,
        using_db=conn,
        **extra,
    )
