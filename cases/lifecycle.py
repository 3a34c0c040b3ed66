"""The 工单 lifecycle as one table-driven state machine.

Every state change goes through :func:`perform`: it checks the actor's role and
unit, validates the payload, applies the action's effect, writes the case with
a compare-and-set on its version column and appends the history row, all in
one transaction. Web handlers, the CLI and background jobs all call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ValidationError
from tortoise.transactions import in_transaction

from cases import history, notifications, sla, timers
from cases import payloads as p
from cases import states as s
from cases.actors import AGENT, DISPATCHER, HANDLER, LEADER, SYSTEM_ROLE, Actor
from cases.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    invalid_from,
)
from cases.models import Case, CaseAssignment, Handoff, PartnerHotline, Unit
from cases.visibility import visible_cases


@dataclass(frozen=True)
class SlaContext:
    """What deadline maths needs: the policy table and the working calendar."""

    policies: dict[str, sla.Policy] = field(default_factory=lambda: dict(sla.DEFAULT_POLICIES))
    calendar: sla.WorkCalendar = field(default_factory=sla.WorkCalendar)
    ladder: timers.Ladder = field(default_factory=timers.Ladder)


@dataclass
class Step:
    """One action in progress: its inputs, and the changes its effect asks for."""

    case: Case
    actor: Actor
    payload: Any
    now: datetime
    sla: SlaContext
    conn: Any
    assignment: CaseAssignment | None
    changes: dict[str, Any] = field(default_factory=dict)
    after: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    event_payload: dict[str, Any] = field(default_factory=dict)
    target: str | None = None


Effect = Callable[[Step], Awaitable[None]]


@dataclass(frozen=True)
class Transition:
    action: str
    label: str
    sources: frozenset[str]
    target: str | None  # None: the state stays, or the effect decides
    roles: frozenset[str]
    payload: type[BaseModel]
    effect: Effect
    # "case": centre roles act on any case; "unit"/"lead": a handler acts
    # through its unit's active assignment (the lead assignment for "lead").
    scope: str = "case"


TRANSITIONS: dict[str, Transition] = {}


def transition(action, label, sources, target, roles, payload, scope="case"):
    def register(effect: Effect) -> Effect:
        TRANSITIONS[action] = Transition(
            action, label, frozenset(sources), target, frozenset(roles), payload, effect, scope
        )
        return effect

    return register


CENTRE = {AGENT, DISPATCHER}
# Automatic routing may accept, classify and dispatch (直派), nothing else.
CENTRE_OR_ROUTING = CENTRE | {SYSTEM_ROLE}


# ---- intake decisions -----------------------------------------------------------


@transition("accept", "受理", {s.RECEIVED}, s.PENDING_DISPATCH, CENTRE_OR_ROUTING, p.NoteOnly)
async def _accept(step: Step) -> None:
    step.event_payload["note"] = step.payload.note


@transition("answer_on_spot", "直接办结", {s.RECEIVED}, s.CLOSED, CENTRE, p.AnswerOnSpot)
async def _answer_on_spot(step: Step) -> None:
    step.changes.update(
        reply_text=step.payload.answer,
        replied_at=step.now,
        closed_at=step.now,
        close_reason="answered_on_spot",
    )


@transition("reject", "不予受理", {s.RECEIVED, s.PENDING_DISPATCH}, s.REJECTED, CENTRE, p.Reject)
async def _reject(step: Step) -> None:
    step.changes.update(
        close_reason="out_of_scope",
        out_of_scope_channel=step.payload.proper_channel,
        reply_text=step.payload.reason,
        closed_at=step.now,
    )


@transition(
    "transfer_out", "转出", {s.RECEIVED, s.PENDING_DISPATCH}, s.TRANSFERRED_OUT, CENTRE, p.TransferOut
)
async def _transfer_out(step: Step) -> None:
    step.changes.update(close_reason=f"transfer_{step.payload.target}", closed_at=step.now)


@transition(
    "classify",
    "分类定属地",
    {s.RECEIVED, s.PENDING_DISPATCH},
    None,
    {DISPATCHER, SYSTEM_ROLE},
    p.Classify,
)
async def _classify(step: Step) -> None:
    pl: p.Classify = step.payload
    if step.actor.role == SYSTEM_ROLE and step.case.routing_state == "done":
        # Automatic routing decides once; a second worker or a retried job stops here.
        raise IllegalTransition("工单已分类，不再自动分类", current_state=step.case.status)
    step.changes["routing_state"] = "done"
    step.changes.update(
        category_l1=pl.category_l1,
        category_l2=pl.category_l2,
        category_l3=pl.category_l3,
        keywords=" ".join(pl.keywords),
        routing_confidence=pl.confidence,
    )
    # A place the agent typed in stays unless routing found one.
    if pl.district_code:
        step.changes["district_code"] = pl.district_code
        step.changes["street_code"] = pl.street_code
    step.event_payload.update(pl.model_dump())


# ---- dispatch and the unit's work ---------------------------------------------


@transition(
    "dispatch", "派单", {s.RECEIVED, s.PENDING_DISPATCH}, s.DISPATCHED, CENTRE_OR_ROUTING, p.Dispatch
)
async def _dispatch(step: Step) -> None:
    pl: p.Dispatch = step.payload
    unit_ids = [pl.lead_unit_id, *pl.co_unit_ids]
    units = await Unit.filter(id__in=unit_ids, is_active=True).using_db(step.conn)
    missing = set(unit_ids) - {u.id for u in units}
    if missing:
        raise InvalidInput(f"承办单位不存在或已停用: {sorted(missing)}", field="lead_unit_id")
    urgency = pl.urgency or step.case.urgency
    if pl.category_l1:
        step.changes.update(
            category_l1=pl.category_l1, category_l2=pl.category_l2, category_l3=pl.category_l3
        )
    policy = step.sla.policies.get(urgency)
    if policy is None:
        raise InvalidInput(f"没有时限规则: {urgency}", field="urgency")
    due = sla.stage_deadlines(policy, step.now, step.sla.calendar)
    until = step.sla.calendar.add(step.now, sla.RETURN_WINDOW)
    provisional = until.provisional or any(d and d.provisional for d in due.values())
    step.changes.update(
        lead_unit_id=pl.lead_unit_id,
        urgency=urgency,
        dispatched_at=step.now,
        reply_started_at=step.now,
        sign_due=due["sign"].at,
        contact_due=due["contact"].at if due["contact"] else None,
        reply_due=due["reply"].at,
        return_until=until.at,
        deadlines_provisional=provisional,
        signed_at=None,
        contacted_at=None,
        replied_at=None,
    )

    async def write_assignments():
        for unit_id in unit_ids:
            await CaseAssignment.create(
                case_id=step.case.id,
                unit_id=unit_id,
                role="lead" if unit_id == pl.lead_unit_id else "co",
                status="dispatched",
                dispatched_at=step.now,
                sign_due=due["sign"].at,
                contact_due=due["contact"].at if due["contact"] else None,
                reply_due=due["reply"].at,
                using_db=step.conn,
            )

    step.after.append(write_assignments)
    step.event_payload.update(
        lead_unit_id=pl.lead_unit_id,
        co_unit_ids=pl.co_unit_ids,
        urgency=urgency,
        sign_due=due["sign"].at.isoformat(),
        reply_due=due["reply"].at.isoformat(),
        provisional=provisional,
        note=pl.note,
    )


def _update_assignment(step: Step, **values) -> None:
    a = step.assignment
    assert a is not None

    async def write():
        await CaseAssignment.filter(id=a.id).using_db(step.conn).update(**values)

    step.after.append(write)


@transition(
    "sign", "签收", {s.DISPATCHED, s.IN_PROGRESS}, None, {HANDLER}, p.NoteOnly, scope="unit"
)
async def _sign(step: Step) -> None:
    a = step.assignment
    if a.status != "dispatched":
        raise IllegalTransition("本单位已签收该工单", current_state=step.case.status)
    _update_assignment(step, status="signed", signed_at=step.now)
    if a.role == "lead":
        if step.case.status != s.DISPATCHED:
            raise IllegalTransition("工单已签收", current_state=step.case.status)
        step.target = s.IN_PROGRESS
        step.changes["signed_at"] = step.now
    step.event_payload["assignment_role"] = a.role


@transition(
    "record_contact", "联系市民", {s.IN_PROGRESS}, None, {HANDLER}, p.RecordContact, scope="unit"
)
async def _record_contact(step: Step) -> None:
    if step.assignment.status == "dispatched":
        raise IllegalTransition("请先签收工单", current_state=step.case.status)
    at = step.payload.contacted_at or step.now
    if at.tzinfo is None:
        raise InvalidInput("contacted_at 必须带时区", field="contacted_at")
    if at > step.now + timedelta(minutes=5):
        raise InvalidInput("联系时间不能晚于当前时间", field="contacted_at")
    if at < step.assignment.dispatched_at:
        raise InvalidInput("联系时间不能早于派单时间", field="contacted_at")
    _update_assignment(step, contacted_at=at)
    if step.assignment.role == "lead":
        step.changes["contacted_at"] = at
    step.event_payload.update(note=step.payload.note, contacted_at=at.isoformat())


@transition("reply", "答复", {s.IN_PROGRESS}, None, {HANDLER}, p.Reply, scope="unit")
async def _reply(step: Step) -> None:
    a = step.assignment
    if a.status == "dispatched":
        raise IllegalTransition("请先签收工单", current_state=step.case.status)
    if a.status == "replied":
        raise IllegalTransition("本单位已答复", current_state=step.case.status)
    _update_assignment(step, status="replied", replied_at=step.now, reply_text=step.payload.text)
    if a.role == "lead":
        step.target = s.REPLIED
        callback = step.sla.calendar.add(step.now, sla.CALLBACK_DELAY)
        step.changes.update(
            reply_text=step.payload.text, replied_at=step.now, callback_due=callback.at
        )
    step.event_payload.update(text=step.payload.text, assignment_role=a.role)


# ---- returns and extensions ----------------------------------------------------


@transition(
    "request_return",
    "申请退单",
    {s.DISPATCHED, s.IN_PROGRESS},
    s.RETURN_REQUESTED,
    {HANDLER},
    p.RequestReturn,
    scope="lead",
)
async def _request_return(step: Step) -> None:
    if step.case.return_until is None or step.now > step.case.return_until:
        raise IllegalTransition("已超过退单期限（派单后2个工作日）", current_state=step.case.status)
    step.changes["return_reason"] = step.payload.reason_code
    step.event_payload.update(
        reason_code=step.payload.reason_code,
        reason=p.RETURN_REASON_LABELS[step.payload.reason_code],
        note=step.payload.note,
    )


@transition(
    "approve_return", "同意退单", {s.RETURN_REQUESTED}, s.PENDING_DISPATCH, {DISPATCHER}, p.NoteOnly
)
async def _approve_return(step: Step) -> None:
    case = step.case
    step.changes.update(
        lead_unit_id=None,
        return_count=case.return_count + 1,
        sign_due=None,
        contact_due=None,
        reply_due=None,
        return_until=None,
        callback_due=None,
        # No deadlines are left, so none is provisional; otherwise the calendar
        # recompute would bring back the old dispatch's deadlines.
        deadlines_provisional=False,
        extension_requested_days=None,
        extension_due=None,
    )

    async def deactivate():
        await CaseAssignment.filter(case_id=case.id, active=True).using_db(step.conn).update(
            active=False, status="returned"
        )

    step.after.append(deactivate)
    step.event_payload.update(reason_code=case.return_reason, note=step.payload.note)


@transition("reject_return", "驳回退单", {s.RETURN_REQUESTED}, None, {DISPATCHER}, p.NoteOnly)
async def _reject_return(step: Step) -> None:
    step.target = s.IN_PROGRESS if step.case.signed_at else s.DISPATCHED
    step.changes["return_reason"] = ""
    step.event_payload.update(note=step.payload.note)


@transition(
    "request_extension",
    "申请延期",
    {s.IN_PROGRESS},
    None,
    {HANDLER},
    p.RequestExtension,
    scope="lead",
)
async def _request_extension(step: Step) -> None:
    case = step.case
    if case.extension_requested_days:
        raise IllegalTransition("已有待审批的延期申请", current_state=case.status)
    if case.reply_due is None or step.now >= case.reply_due:
        raise IllegalTransition("延期须在答复期限前申请", current_state=case.status)
    # The centre rules within one working day, and always before the reply deadline.
    ruling = min(step.sla.calendar.add(step.now, sla.Limit(1, sla.TimeUnit.WORKING_DAYS)).at, case.reply_due)
    step.changes.update(
        extension_requested_days=step.payload.days,
        extension_reason=step.payload.reason,
        extension_requested_at=step.now,
        extension_due=ruling,
    )
    step.event_payload.update(days=step.payload.days, reason=step.payload.reason)


async def _require_pending_extension(step: Step) -> int:
    days = step.case.extension_requested_days
    if not days:
        raise IllegalTransition("没有待审批的延期申请", current_state=step.case.status)
    return days


@transition("approve_extension", "批准延期", {s.IN_PROGRESS}, None, {DISPATCHER}, p.NoteOnly)
async def _approve_extension(step: Step) -> None:
    days = await _require_pending_extension(step)
    moved = sla.extend(
        step.case.reply_due, sla.Limit(days, sla.TimeUnit.WORKING_DAYS), step.sla.calendar
    )
    step.changes.update(
        reply_due=moved.at,
        deadlines_provisional=step.case.deadlines_provisional or moved.provisional,
        extension_requested_days=None,
        extension_due=None,
        extension_count=step.case.extension_count + 1,
    )
    case_id = step.case.id

    async def move_lead_deadline():
        await CaseAssignment.filter(case_id=case_id, active=True, role="lead").using_db(
            step.conn
        ).update(reply_due=moved.at)

    step.after.append(move_lead_deadline)
    step.event_payload.update(days=days, reply_due=moved.at.isoformat(), note=step.payload.note)


@transition("reject_extension", "驳回延期", {s.IN_PROGRESS}, None, {DISPATCHER}, p.NoteOnly)
async def _reject_extension(step: Step) -> None:
    days = await _require_pending_extension(step)
    step.changes.update(extension_requested_days=None, extension_due=None)
    step.event_payload.update(days=days, note=step.payload.note)


# ---- callback, re-handling and closing -----------------------------------------


# SYSTEM_ROLE: a citizen's own rating (web, SMS, IVR) is recorded by the system actor.
@transition("record_callback", "回访", {s.REPLIED}, None, CENTRE | {SYSTEM_ROLE}, p.CallbackResult)
async def _record_callback(step: Step) -> None:
    pl: p.CallbackResult = step.payload
    due = step.case.callback_due
    if step.actor.role == SYSTEM_ROLE and not pl.contacted and due is not None and step.now < due:
        # The scheduler starts an attempt only when due; one that read the case
        # before another scheduler's attempt moved callback_due stops here.
        raise IllegalTransition("回访尚未到期", current_state=step.case.status)
    step.changes.update(
        callback_attempts=step.case.callback_attempts + 1,
        callback_contacted=pl.contacted,
        callback_resolved=pl.resolved,
        callback_satisfaction=pl.satisfaction,
    )
    if pl.contacted:
        failed = pl.resolved == "unresolved" or pl.satisfaction == "unsatisfied"
        step.target = s.REHANDLE_PENDING if failed else s.CALLBACK_DONE
    else:
        # An attempt that did not reach the citizen: the next one is due a day
        # later (hotline/callbacks.py retries on callback_due, once a day).
        step.changes["callback_due"] = step.sla.calendar.add(step.now, sla.CALLBACK_DELAY).at
    step.event_payload.update(pl.model_dump())


@transition("callback_unreachable", "回访无法联系", {s.REPLIED}, s.CALLBACK_DONE, CENTRE | {SYSTEM_ROLE}, p.NoteOnly)
async def _callback_unreachable(step: Step) -> None:
    # Policy: after the configured attempts (HOTLINE_CALLBACK_ATTEMPTS) without
    # an answer the callback ends as 无法联系 and the case waits to be archived;
    # it is not re-handled, because nobody said the problem remains.
    attempts = step.case.callback_attempts
    if attempts < 1:
        raise IllegalTransition("尚未回访过市民，不能记为无法联系", current_state=step.case.status)
    step.changes.update(callback_contacted=False, callback_resolved="unreachable",
                        callback_satisfaction="", callback_due=None)
    step.event_payload.update(attempts=attempts, resolved="unreachable",
                              note=step.payload.note or f"回访{attempts}次均未联系上市民，记为无法联系")


@transition("rehandle", "重办", {s.REHANDLE_PENDING}, s.IN_PROGRESS, {DISPATCHER}, p.NoteOnly)
async def _rehandle(step: Step) -> None:
    case = step.case
    if case.lead_unit_id is None:
        raise IllegalTransition("工单没有主办单位，请重新派单", current_state=case.status)
    policy = step.sla.policies.get(case.urgency) or step.sla.policies["general"]
    reply = step.sla.calendar.add(step.now, policy.reply)
    step.changes.update(
        rehandle_count=case.rehandle_count + 1,
        reply_due=reply.at,
        reply_started_at=step.now,
        deadlines_provisional=reply.provisional,
        replied_at=None,
        callback_due=None,
    )

    async def reopen_lead():
        await CaseAssignment.filter(case_id=case.id, active=True, role="lead").using_db(
            step.conn
        ).update(status="signed", replied_at=None, reply_due=reply.at)

    step.after.append(reopen_lead)
    step.event_payload.update(reply_due=reply.at.isoformat(), note=step.payload.note)


@transition("close", "归档办结", {s.CALLBACK_DONE}, s.CLOSED, CENTRE, p.NoteOnly)
async def _close(step: Step) -> None:
    step.changes.update(closed_at=step.now, close_reason=step.case.close_reason or "handled")
    step.event_payload["note"] = step.payload.note


@transition(
    "merge",
    "并单",
    {s.RECEIVED, s.PENDING_DISPATCH, s.DISPATCHED, s.IN_PROGRESS},
    s.MERGED,
    CENTRE,
    p.Merge,
)
async def _merge(step: Step) -> None:
    primary = await Case.get_or_none(number=step.payload.primary_number).using_db(step.conn)
    if primary is None:
        raise InvalidInput("主工单不存在", field="primary_number")
    if primary.id == step.case.id:
        raise InvalidInput("不能并入自身", field="primary_number")
    if primary.status in s.TERMINAL:
        raise InvalidInput(
            f"主工单状态为「{s.LABELS[primary.status]}」，不能并入", field="primary_number"
        )
    step.changes.update(merged_into_id=primary.id, closed_at=step.now, close_reason="merged")
    case_id = step.case.id

    async def release_units():
        await CaseAssignment.filter(case_id=case_id, active=True).using_db(step.conn).update(
            active=False
        )

    step.after.append(release_units)
    step.event_payload.update(primary_number=primary.number, note=step.payload.note)


# ---- hand-offs to partner hotlines (跨省诉求首接责任制) ------------------------------


@transition("handoff", "转办外省市热线", {s.RECEIVED, s.PENDING_DISPATCH}, s.HANDOFF_PENDING, CENTRE, p.Handoff)
async def _handoff(step: Step) -> None:
    partner = await PartnerHotline.get_or_none(code=step.payload.partner_code, is_active=True).using_db(step.conn)
    if partner is None:
        raise InvalidInput("合作热线不存在或已停用", field="partner_code")
    due = step.sla.calendar.add(step.now, sla.HANDOFF_CONFIRM)
    # The first centre keeps the case: it stays open with its own deadline
    # until the partner confirms receipt.
    step.changes.update(handoff_started_at=step.now, handoff_due=due.at,
                        details={**(step.case.details or {}), "partner": partner.code})
    case = step.case

    async def queue_delivery():
        await Handoff.create(
            case_id=case.id, partner_id=partner.id, direction="out",
            # Electronic delivery only where the partner has an intake API.
            status="pending" if partner.intake_url else "phone",
            key=f"out:{case.id}:{case.version + 1}",
            payload={"summary": step.payload.summary}, using_db=step.conn,
        )

    step.after.append(queue_delivery)
    step.event_payload.update(partner=partner.code, partner_name=partner.name, summary=step.payload.summary,
                              confirm_due=due.at.isoformat(), note=step.payload.note)


@transition("confirm_handoff", "确认转办接收", {s.HANDOFF_PENDING}, s.HANDED_OFF, CENTRE_OR_ROUTING, p.ConfirmHandoff)
async def _confirm_handoff(step: Step) -> None:
    pl: p.ConfirmHandoff = step.payload
    step.changes.update(handoff_due=None, details={**(step.case.details or {}), "partner_ref": pl.partner_ref})
    case_id = step.case.id
    now = step.now

    async def mark_confirmed():
        await Handoff.filter(case_id=case_id, direction="out").exclude(status="confirmed").using_db(
            step.conn).update(status="confirmed", partner_ref=pl.partner_ref, confirmed_at=now)

    step.after.append(mark_confirmed)
    step.event_payload.update(partner_ref=pl.partner_ref, via=pl.via, note=pl.note)


@transition("finish_handoff", "转办办结", {s.HANDED_OFF}, s.CLOSED, CENTRE_OR_ROUTING, p.FinishHandoff)
async def _finish_handoff(step: Step) -> None:
    step.changes.update(reply_text=step.payload.result, replied_at=step.now, closed_at=step.now,
                        close_reason="handed_off")
    step.event_payload["result"] = step.payload.result


# ---- flags ----------------------------------------------------------------------


@transition(
    "supervise",
    "督办",
    s.WITH_UNIT | {s.REPLIED},
    None,
    {DISPATCHER, LEADER},
    p.Supervise,
)
async def _supervise(step: Step) -> None:
    step.changes["supervision_level"] = max(step.case.supervision_level, step.payload.level)
    step.event_payload.update(level=step.payload.level, note=step.payload.note)


@transition(
    "flag_unreasonable",
    "申请认定不合理诉求",
    s.WITH_UNIT | {s.REPLIED, s.CALLBACK_DONE, s.CLOSED},
    None,
    {DISPATCHER, HANDLER},
    p.FlagUnreasonable,
)
async def _flag_unreasonable(step: Step) -> None:
    if step.actor.role == HANDLER and step.assignment is None:
        raise Forbidden("只有承办单位可以申请")
    if step.case.unreasonable == "pending":
        raise IllegalTransition("已在审核中", current_state=step.case.status)
    step.changes["unreasonable"] = "pending"
    step.event_payload["reason"] = step.payload.reason


@transition(
    "review_unreasonable",
    "审核不合理诉求",
    s.WITH_UNIT | {s.REPLIED, s.CALLBACK_DONE, s.CLOSED},
    None,
    {DISPATCHER, LEADER},
    p.ReviewUnreasonable,
)
async def _review_unreasonable(step: Step) -> None:
    if step.case.unreasonable != "pending":
        raise IllegalTransition("没有待审核的不合理诉求申请", current_state=step.case.status)
    step.changes["unreasonable"] = "upheld" if step.payload.upheld else "dismissed"
    step.event_payload.update(upheld=step.payload.upheld, note=step.payload.note)


# ---- timers ----------------------------------------------------------------------


class NothingDue(IllegalTransition):
    """The sweep looked at a case whose next step is not due (yet, or any more)."""


@transition("timer", "时限提醒", s.OPEN, None, {SYSTEM_ROLE}, p.NoteOnly)
async def _timer(step: Step) -> None:
    case = step.case
    due = timers.due_steps(case_view(case), step.now, step.sla.ladder)
    if not due:
        raise NothingDue("没有到期的时限节点", current_state=case.status)
    step.changes["timer_marks"] = timers.mark(case.timer_marks or {}, due)
    level = case.supervision_level
    for d in due:
        if d.step == timers.SUPERVISE:
            level = max(level, 1)
        elif d.step == timers.ESCALATE:
            level = max(level, 2)
    step.changes["supervision_level"] = level
    step.event_payload["steps"] = [d.to_dict() for d in due]
    step.event_payload["labels"] = [
        f"{timers.STAGE_LABELS.get(d.stage, d.stage)}{timers.STEP_LABELS[d.step]}" for d in due
    ]


_VIEW_FIELDS = (
    "status", "created_at", "accept_due", "dispatched_at", "signed_at", "sign_due", "contacted_at",
    "contact_due", "replied_at", "reply_due", "reply_started_at", "callback_due",
    "extension_requested_days", "extension_requested_at", "extension_due", "timer_marks",
    "handoff_started_at", "handoff_due",
    "rehandle_count", "return_count",
)


def case_view(case: Case, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields the timers read, with pending changes applied."""
    view = {name: getattr(case, name) for name in _VIEW_FIELDS}
    if changes:
        view.update((k, v) for k, v in changes.items() if k in view)
    return view


# ---- the one entry point ----------------------------------------------------------


def _naming_state(exc: IllegalTransition, status: str) -> IllegalTransition:
    """Make every refusal say which state the case is in, as the generic one does."""
    label = s.LABELS.get(status, status)
    if f"「{label}」" not in exc.message:
        exc.message = f"{exc.message}（工单当前状态为「{label}」）"
        exc.args = (exc.message,)
    exc.detail.setdefault("current_state", status)
    return exc


def validate_payload(action: str, data: Any) -> BaseModel:
    t = TRANSITIONS.get(action)
    if t is None:
        raise NotFound(f"未知操作: {action}")
    try:
        return t.payload.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid_from(exc) from None


async def _active_assignment(case: Case, actor: Actor, conn) -> CaseAssignment | None:
    if actor.unit_id is None:
        return None
    return await CaseAssignment.get_or_none(
        case_id=case.id, unit_id=actor.unit_id, active=True
    ).using_db(conn)


async def perform(
    number: str,
    action: str,
    actor: Actor,
    data: Any = None,
    *,
    sla_context: SlaContext | None = None,
    now: datetime | None = None,
) -> Case:
    """Apply one lifecycle action to the case with this number, or raise a CaseError."""
    t = TRANSITIONS.get(action)
    if t is None:
        raise NotFound(f"未知操作: {action}")
    payload = validate_payload(action, data)
    now = now or datetime.now(timezone.utc)
    ctx = sla_context or SlaContext()
    async with in_transaction() as conn:
        case = await visible_cases(actor).filter(number=number).using_db(conn).first()
        if case is None:
            raise NotFound(f"工单 {number} 不存在")
        if actor.role not in t.roles:
            raise Forbidden(f"当前角色不能执行「{t.label}」")
        assignment = await _active_assignment(case, actor, conn)
        if t.scope in ("unit", "lead") or actor.role == HANDLER:
            # Read-only visibility (a district over its streets) never allows acting.
            if assignment is None and t.action != "flag_unreasonable":
                raise Forbidden("本单位不是该工单的承办单位")
            if t.scope == "lead" and assignment.role != "lead":
                raise Forbidden(f"只有主办单位可以{t.label}")
        if case.status not in t.sources:
            raise IllegalTransition(
                f"工单当前状态为「{s.LABELS[case.status]}」，不能{t.label}",
                current_state=case.status,
            )
        step = Step(case, actor, payload, now, ctx, conn, assignment)
        try:
            await t.effect(step)
        except IllegalTransition as exc:
            raise _naming_state(exc, case.status) from None
        from_status = case.status
        to_status = step.target or t.target or from_status
        changes = {**step.changes, "status": to_status, "version": case.version + 1, "updated_at": now}
        # Every change may start or stop a clock, so the sweep's schedule follows it here.
        changes["next_due_at"], changes["light"] = timers.schedule(case_view(case, changes), now, ctx.ladder)
        won = await Case.filter(id=case.id, version=case.version).using_db(conn).update(**changes)
        if not won:
            current = await Case.filter(id=case.id).using_db(conn).first().values_list("status", flat=True)
            current = current or case.status
            raise Conflict(
                f"工单已被他人更新（当前状态为「{s.LABELS.get(current, current)}」），请刷新后重试",
                current_state=current,
            )
        for write in step.after:
            await write()
        await history.record(conn, case.id, actor, action, from_status, to_status, step.event_payload, at=now)
        for name, value in changes.items():
            setattr(case, name, value)
        messages = await notifications.for_change(conn, case, action, step.event_payload, from_status, to_status)
        await notifications.enqueue(conn, case, changes["version"], messages)
    # Callers such as the sweep report what the action recorded.
    case.last_event_payload = step.event_payload
    return case
