"""Which deadline clocks run on a case, and which steps of the ladder are due.

Pure functions over a mapping of case fields, so the sweep, ``perform`` and
the tests share one definition. Each clock climbs a ladder of steps:

    warn (黄灯, a share of the budget) → overdue (红灯 + 催办, at the deadline)
    → supervise (督办, one step later) → escalate (提级督办, a further limit)

The centre's own clocks (accept, callback, extension ruling) stop at overdue;
the units' clocks (sign, contact, reply) go on to 督办, and the reply clock to
提级督办. ``timer_marks`` remembers, per clock, the deadline it was measured
against and the highest step taken: a step is never taken twice, and a moved
deadline (an approved extension, a re-handle) starts its ladder afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from cases import states as s

WARN, OVERDUE, SUPERVISE, ESCALATE = "warn", "overdue", "supervise", "escalate"
STEPS = (WARN, OVERDUE, SUPERVISE, ESCALATE)
STEP_LABELS = {WARN: "黄灯预警", OVERDUE: "红灯超时催办", SUPERVISE: "自动督办", ESCALATE: "提级督办"}
STAGE_LABELS = {
    "accept": "受理派单",
    "sign": "签收",
    "contact": "联系市民",
    "reply": "答复",
    "callback": "回访",
    "extension": "延期审批",
    "handoff": "转办确认",
    "rehandle": "多次重办",
    "returns": "多次退单",
}
# Clocks that measure a unit's work, and how far up the ladder each goes.
_TOP_STEP = {
    "accept": OVERDUE,
    "callback": OVERDUE,
    "extension": OVERDUE,
    # An unconfirmed hand-off escalates like any other overdue case.
    "handoff": ESCALATE,
    "sign": SUPERVISE,
    "contact": SUPERVISE,
    "reply": ESCALATE,
}
UNIT_STAGES = frozenset({"sign", "contact", "reply"})
# Escalations that follow from counts, not from time.
EVENT_STAGES = ("rehandle", "returns")


@dataclass(frozen=True)
class Ladder:
    """Where each step falls, as a share of the clock's budget (start → deadline)."""

    warn_share: float = 0.75
    supervise_share: float = 1.25
    escalate_share: float = 2.0
    # 提级督办 when a case is re-handled this many times, or returned by this many units.
    rehandle_limit: int = 3
    returns_limit: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.warn_share < 1:
            raise ValueError(f"warn share must be between 0 and 1, got {self.warn_share}")
        if not 1 < self.supervise_share < self.escalate_share:
            raise ValueError("supervise share must exceed 1 and be below the escalate share")

    def share(self, step: str) -> float:
        return {WARN: self.warn_share, OVERDUE: 1.0, SUPERVISE: self.supervise_share,
                ESCALATE: self.escalate_share}[step]


@dataclass(frozen=True)
class Clock:
    stage: str
    start: datetime
    due: datetime

    @property
    def steps(self) -> tuple[str, ...]:
        return STEPS[: STEPS.index(_TOP_STEP[self.stage]) + 1]

    def at(self, step: str, ladder: Ladder) -> datetime:
        budget = self.due - self.start
        if budget.total_seconds() <= 0:
            # A deadline at or before its start: every step falls due at once.
            return self.due
        return self.start + budget * ladder.share(step)


@dataclass(frozen=True)
class DueStep:
    stage: str
    step: str
    due: datetime | None  # the clock's deadline; None for count-based escalation
    skipped: tuple[str, ...] = ()  # lower steps passed over because the sweep came late

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "step": self.step,
            "due": self.due.isoformat() if self.due else None,
            "skipped": list(self.skipped),
        }


def running_clocks(c: Mapping[str, Any]) -> list[Clock]:
    """The clocks running on a case in its current state."""
    status = c.get("status")
    clocks: list[Clock] = []

    def add(stage: str, start, due) -> None:
        if start is not None and due is not None:
            clocks.append(Clock(stage, start, due))

    if status in (s.RECEIVED, s.PENDING_DISPATCH):
        add("accept", c.get("created_at"), c.get("accept_due"))
    if status == s.DISPATCHED and c.get("signed_at") is None:
        add("sign", c.get("dispatched_at"), c.get("sign_due"))
    if status == s.IN_PROGRESS and c.get("contacted_at") is None:
        add("contact", c.get("dispatched_at"), c.get("contact_due"))
    if status in (s.DISPATCHED, s.IN_PROGRESS, s.RETURN_REQUESTED) and c.get("replied_at") is None:
        add("reply", c.get("reply_started_at") or c.get("dispatched_at"), c.get("reply_due"))
    if status == s.REPLIED:
        add("callback", c.get("replied_at"), c.get("callback_due"))
    if status == s.HANDOFF_PENDING:
        add("handoff", c.get("handoff_started_at"), c.get("handoff_due"))
    if status == s.IN_PROGRESS and c.get("extension_requested_days"):
        add("extension", c.get("extension_requested_at"), c.get("extension_due"))
    return clocks


def _taken(marks: Mapping[str, Any], clock: Clock) -> int:
    """How many steps of this clock's ladder were already taken for its current deadline."""
    mark = marks.get(clock.stage)
    if not isinstance(mark, Mapping) or _parse(mark.get("due")) != clock.due:
        return 0
    step = mark.get("step")
    return STEPS.index(step) + 1 if step in STEPS else 0


def _parse(value: Any) -> datetime | None:
    # Compared as instants: the database may hand back the deadline in another zone.
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _event_escalations(c: Mapping[str, Any], marks: Mapping[str, Any], ladder: Ladder) -> list[str]:
    if c.get("status") in s.TERMINAL:
        return []
    done = set(marks.get("escalated_for") or ())
    found = []
    if (c.get("rehandle_count") or 0) >= ladder.rehandle_limit and "rehandle" not in done:
        found.append("rehandle")
    if (c.get("return_count") or 0) >= ladder.returns_limit and "returns" not in done:
        found.append("returns")
    return found


def due_steps(c: Mapping[str, Any], now: datetime, ladder: Ladder) -> list[DueStep]:
    """For each clock, the highest step whose time has come and that was not taken yet."""
    marks = c.get("timer_marks") or {}
    found: list[DueStep] = []
    for clock in running_clocks(c):
        taken = _taken(marks, clock)
        reached = [step for step in clock.steps if clock.at(step, ladder) <= now]
        if len(reached) > taken:
            found.append(DueStep(clock.stage, reached[-1], clock.due, tuple(reached[taken:-1])))
    for stage in _event_escalations(c, marks, ladder):
        found.append(DueStep(stage, ESCALATE, None))
    return found


def mark(marks: Mapping[str, Any], steps: list[DueStep]) -> dict[str, Any]:
    """The marks after taking these steps."""
    out = {k: (dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, list) else v)
           for k, v in marks.items()}
    for d in steps:
        if d.due is None:
            out["escalated_for"] = sorted({*out.get("escalated_for", ()), d.stage})
        else:
            out[d.stage] = {"due": d.due.isoformat(), "step": d.step}
    return out


def schedule(c: Mapping[str, Any], now: datetime, ladder: Ladder) -> tuple[datetime | None, str]:
    """When the sweep must next look at this case, and the light it shows now.

    The light follows the steps taken, so a list shows what the sweep has acted
    on: 红 after the overdue step, 黄 after the warning, 绿 while clocks run.
    """
    marks = c.get("timer_marks") or {}
    clocks = running_clocks(c)
    upcoming: list[datetime] = []
    light = "green" if clocks else ""
    for clock in clocks:
        taken = _taken(marks, clock)
        if taken < len(clock.steps):
            upcoming.append(clock.at(clock.steps[taken], ladder))
        if taken >= 2:
            light = "red"
        elif taken == 1 and light != "red":
            light = "yellow"
    if _event_escalations(c, marks, ladder):
        upcoming.append(now)
    return (min(upcoming) if upcoming else None), light
