"""Learning from corrections: a dispatcher's change or an approved return becomes an example."""

from __future__ import annotations

from cases.models import CaseEvent
from routing.models import RoutingDecision, RoutingExample


async def record_dispatch(case_id: int, lead_unit_id: int, category: str) -> RoutingExample | None:
    """Compare a person's dispatch with what routing proposed; keep it if they differ.

    A dispatch after an approved return (退单 → 改派) is always an example:
    the first unit was wrong, whatever routing had said.
    """
    decision = await RoutingDecision.filter(case_id=case_id).order_by("-id").first()
    last_dispatch = await CaseEvent.filter(case_id=case_id, action="dispatch").order_by("-id").first()
    returned = await CaseEvent.filter(case_id=case_id, action="approve_return").order_by("-id").first()
    # The dispatch just performed is the latest one; a return approved before it counts.
    earlier = await CaseEvent.filter(case_id=case_id, action="dispatch").exclude(
        id=last_dispatch.id if last_dispatch else 0
    ).order_by("-id").first()
    if returned and earlier and returned.id > earlier.id:
        source = "approved_return"
    elif decision and (decision.lead_unit_id != lead_unit_id or (category and decision.category != category)):
        source = "dispatcher_change"
    else:
        return None
    example, _ = await RoutingExample.get_or_create(
        case_id=case_id,
        source=source,
        lead_unit_id=lead_unit_id,
        category=category or (decision.category if decision else ""),
        defaults={
            "predicted_category": decision.category if decision else "",
            "predicted_unit_id": decision.lead_unit_id if decision else None,
        },
    )
    return example
