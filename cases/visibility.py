"""Who may see which case, and how much of the caller they may see."""

from __future__ import annotations

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
    case_ids = CaseAssignment.filter(unit_id__in=unit_ids, active=True).values("case_id")
    return Case.filter(id__in=case_ids)


def mask_phone(phone: str) -> str:
    if not phone:
        return ""
    if len(phone) <= 4:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7 if len(phone) > 7 else 1) + phone[-4:]


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
