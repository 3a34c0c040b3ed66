"""Who may see which case, and how much of the caller they may see."""

from __future__ import annotations

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from cases.actors import PHONE_ROLES, Actor
from cases.models import Case, CaseAssignment


def visible_cases(actor: Actor) -> QuerySet[Case]:
    """The cases this actor may read.

    The centre sees every case; a handler sees the cases on which its unit has
    an active assignment, plus (read-only) those of the units it oversees.
    """
    if actor.sees_all_cases:
        return Case.all()
    unit_ids = {actor.unit_id, *actor.readonly_unit_ids} - {None}
    if not unit_ids:
        return Case.filter(id=-1)
    # A bare ValuesQuery is not accepted by ``__in`` in tortoise 1.x; Subquery is.
    case_ids = CaseAssignment.filter(unit_id__in=unit_ids, active=True).values("case_id")
    return Case.filter(id__in=Subquery(case_ids))


def mask_phone(phone: str) -> str:
    """138****8000 for a mobile; shorter numbers (landlines) keep at most 2 + 2 digits.

    Showing the first 3 and last 4 of a 7- or 8-digit landline would show all of it.
    """
    if not phone:
        return ""
    n = len(phone)
    if n >= 11:
        head, tail = 3, 4
    elif n >= 8:
        head, tail = 2, 2
    else:
        head, tail = 0, 0
    return phone[:head] + "*" * (n - head - tail) + phone[n - tail :]


def caller_view(actor: Actor, case: Case) -> dict[str, str]:
    """The caller's name and phone as this actor may see them.

    A confidential caller's number is masked for everyone; agents and
    dispatchers can reveal it through a logged action. Units never learn a
    confidential caller's name.
    """
    if not case.confidential:
        return {"caller_name": case.caller_name, "caller_phone": case.caller_phone}
    name = case.caller_name if actor.role in PHONE_ROLES else "保密"
    return {"caller_name": name, "caller_phone": mask_phone(case.caller_phone)}


def may_reveal_phone(actor: Actor) -> bool:
    return actor.role in PHONE_ROLES
