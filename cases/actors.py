"""Who is acting: the slice of a user the case core needs to decide permissions."""

from __future__ import annotations

from dataclasses import dataclass, field

AGENT, DISPATCHER, HANDLER, LEADER, ADMIN = "agent", "dispatcher", "handler", "leader", "admin"
CENTRE_ROLES = frozenset({AGENT, DISPATCHER, LEADER, ADMIN})
# Roles that may see a confidential caller's number (each reveal is logged).
PHONE_ROLES = frozenset({AGENT, DISPATCHER})


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    name: str
    role: str
    unit_id: int | None = None
    # Units whose cases this actor may read but not act on (a district's streets).
    readonly_unit_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def sees_all_cases(self) -> bool:
        return self.role in CENTRE_ROLES or self.role == SYSTEM_ROLE


SYSTEM_ROLE = "system"
SYSTEM = Actor(user_id=None, name="系统", role=SYSTEM_ROLE)

ROLES = (AGENT, DISPATCHER, HANDLER, LEADER, ADMIN)
# Only a handler acts for a unit; other roles may belong to one for reporting.
ROLES_WITH_UNIT = frozenset({HANDLER})
