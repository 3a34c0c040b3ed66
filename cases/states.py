"""Case states and their Chinese labels."""

from __future__ import annotations

RECEIVED = "received"
PENDING_DISPATCH = "pending_dispatch"
DISPATCHED = "dispatched"
IN_PROGRESS = "in_progress"
RETURN_REQUESTED = "return_requested"
REPLIED = "replied"
REHANDLE_PENDING = "rehandle_pending"
CALLBACK_DONE = "callback_done"
CLOSED = "closed"
REJECTED = "rejected"
TRANSFERRED_OUT = "transferred_out"
MERGED = "merged"
# 跨省诉求首接责任制: handed to a partner hotline, awaiting its confirmation, then tracked.
HANDOFF_PENDING = "handoff_pending"
HANDED_OFF = "handed_off"

LABELS = {
    RECEIVED: "待受理",
    PENDING_DISPATCH: "待派单",
    DISPATCHED: "待签收",
    IN_PROGRESS: "办理中",
    RETURN_REQUESTED: "退单审核中",
    REPLIED: "已答复待回访",
    REHANDLE_PENDING: "待重办",
    CALLBACK_DONE: "已回访待归档",
    CLOSED: "已办结",
    REJECTED: "不予受理",
    TRANSFERRED_OUT: "已转出",
    MERGED: "已并单",
    HANDOFF_PENDING: "转办待确认",
    HANDED_OFF: "已转办跟踪",
}

ALL = tuple(LABELS)
TERMINAL = frozenset({CLOSED, REJECTED, TRANSFERRED_OUT, MERGED})
OPEN = frozenset(ALL) - TERMINAL
# States in which a unit is working the case.
WITH_UNIT = frozenset({DISPATCHED, IN_PROGRESS, RETURN_REQUESTED, REHANDLE_PENDING})
