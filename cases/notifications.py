"""What to tell whom when a case changes: templates, recipients and the outbox write.

Messages are planned inside the transaction of the change they report and
written to the outbox (``Notification``) with a key made of the case, the
case version the change produced, the template and the recipient. The
version compare-and-set in ``perform`` lets only one writer produce a given
version, so a re-run job or a retried request can never queue a message twice.

Citizens get messages only about their own case, at the number they gave.
Unit messages carry the case number, category and deadlines, never the
caller's name or number, so confidential callers stay unnamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from cases import timers
from cases.actors import DISPATCHER, HANDLER, LEADER
from cases.models import Case, Notification, Unit, User
from cases.sla import SHANGHAI

TEMPLATES: dict[str, str] = {
    "case_accepted": "【12345】您的诉求已受理，工单号{number}，查询码{query_code}。可凭工单号和查询码查询办理进度。",
    "dispatched": "【12345】新工单{number}（{category}）已派至{unit}，请于{sign_due}前签收、{reply_due}前答复。",
    "deadline_warning": "【12345】工单{number}的{stage}时限将于{due}到期，请抓紧办理。",
    "overdue": "【12345】催办：工单{number}的{stage}已超过时限（{due}），请立即办理。",
    "supervision": "【12345】督办：工单{number}的{stage}已超时（时限{due}），已列入督办，请立即办理并反馈。",
    "escalation": "【12345】提级督办：工单{number}{reason}，请单位负责人督促办理。",
    "reply_ready": "【12345】您反映的问题（工单号{number}）已有答复，可凭查询码{query_code}查看，我们将进行回访。",
    # The digits are parsed by hotline/callbacks.py (SURVEY_DIGITS); keep both in step.
    "callback_survey": "【12345】工单{number}已答复，请回复一个数字评价：1已解决满意 2已解决基本满意 3已解决不满意 4未解决。",
    "case_closed": "【12345】您的工单{number}已办结，感谢您对12345热线的支持。",
}
TEMPLATE_LABELS = {
    "case_accepted": "受理告知",
    "dispatched": "派单通知",
    "deadline_warning": "时限预警",
    "overdue": "超时催办",
    "supervision": "督办",
    "escalation": "提级督办",
    "reply_ready": "答复告知",
    "callback_survey": "回访评价",
    "case_closed": "办结告知",
}
_STEP_TEMPLATE = {
    timers.WARN: "deadline_warning",
    timers.OVERDUE: "overdue",
    timers.SUPERVISE: "supervision",
    timers.ESCALATE: "escalation",
}


def render(template: str, **values: Any) -> str:
    return TEMPLATES[template].format(**values)


def local_time(at: datetime | None) -> str:
    if at is None:
        return "—"
    t = at.astimezone(SHANGHAI)
    return f"{t.month}月{t.day}日{t:%H:%M}"


@dataclass(frozen=True)
class Message:
    template: str
    body: str
    recipient_kind: str  # citizen, user
    address: str = ""  # a phone number, for SMS
    user_id: int | None = None

    @property
    def channel(self) -> str:
        return "sms" if self.address else "inbox"

    @property
    def recipient(self) -> str:
        return f"u{self.user_id}" if self.user_id is not None else f"c{self.address}"


def _to_citizen(case: Case, template: str, **extra: Any) -> list[Message]:
    if not case.caller_phone:
        return []
    body = render(template, number=case.number, query_code=case.query_code, **extra)
    return [Message(template, body, "citizen", address=case.caller_phone)]


async def _users(conn, *, roles: Iterable[str], unit_ids: Iterable[int] | None = None,
                 centre: bool = False) -> list[User]:
    q = User.filter(role__in=list(roles), is_active=True)
    if unit_ids is not None:
        q = q.filter(unit_id__in=list(unit_ids))
    elif centre:
        centre_units = await Unit.filter(kind="centre").using_db(conn).values_list("id", flat=True)
        users = await q.using_db(conn).order_by("id")
        return [u for u in users if u.unit_id is None or u.unit_id in centre_units]
    return await q.using_db(conn).order_by("id")


def _to_users(users: Iterable[User], template: str, body: str) -> list[Message]:
    return [Message(template, body, "user", address=u.phone, user_id=u.id) for u in users]


async def for_change(conn, case: Case, action: str, payload: dict[str, Any],
                     from_status: str, to_status: str) -> list[Message]:
    """The messages a lifecycle action produces; ``case`` already holds its new values."""
    if action == "create":
        return _to_citizen(case, "case_accepted")
    if action == "dispatch":
        unit_ids = [case.lead_unit_id, *payload.get("co_unit_ids", [])]
        units = {u.id: u.name for u in await Unit.filter(id__in=unit_ids).using_db(conn)}
        out: list[Message] = []
        for unit_id in unit_ids:
            body = render("dispatched", number=case.number, category=case.category_l1 or "未分类",
                          unit=units.get(unit_id, ""), sign_due=local_time(case.sign_due),
                          reply_due=local_time(case.reply_due))
            out += _to_users(await _users(conn, roles=[HANDLER], unit_ids=[unit_id]), "dispatched", body)
        return out
    if action == "reply" and to_status != from_status:
        return _to_citizen(case, "reply_ready")
    if action == "record_callback" and payload.get("contacted") is False:
        return _to_citizen(case, "callback_survey")
    if action in ("close", "answer_on_spot"):
        return _to_citizen(case, "case_closed")
    if action == "timer":
        out = []
        for step in payload.get("steps", []):
            out += await _for_step(conn, case, step)
        return out
    return []


async def _for_step(conn, case: Case, step: dict[str, Any]) -> list[Message]:
    stage, kind = step["stage"], step["step"]
    template = _STEP_TEMPLATE[kind]
    due = datetime.fromisoformat(step["due"]) if step.get("due") else None
    label = timers.STAGE_LABELS.get(stage, stage)
    if kind == timers.ESCALATE:
        reason = {"rehandle": f"已重办{case.rehandle_count}次", "returns": f"已被{case.return_count}个单位退回"}
        body = render(template, number=case.number,
                      reason=reason.get(stage, f"{label}严重超时（时限{local_time(due)}）"))
    else:
        body = render(template, number=case.number, stage=label, due=local_time(due))
    if stage not in timers.UNIT_STAGES and stage not in timers.EVENT_STAGES:
        # The centre's own clocks: accepting, the callback, ruling on an
        # extension, a partner's confirmation; escalation reaches its leaders.
        roles = [DISPATCHER, LEADER] if kind == timers.ESCALATE else [DISPATCHER]
        return _to_users(await _users(conn, roles=roles, centre=True), template, body)
    unit = [case.lead_unit_id] if case.lead_unit_id else []
    users: list[User] = []
    if kind in (timers.WARN, timers.OVERDUE, timers.SUPERVISE) and unit:
        users += await _users(conn, roles=[HANDLER], unit_ids=unit)
    if kind in (timers.SUPERVISE, timers.ESCALATE) and unit:
        users += await _users(conn, roles=[LEADER], unit_ids=unit)
    if kind == timers.ESCALATE:
        users += await _users(conn, roles=[LEADER, DISPATCHER], centre=True)
    return _to_users(users, template, body)


async def enqueue(conn, case: Case, version: int, messages: list[Message]) -> None:
    seen: set[str] = set()
    rows = []
    for m in messages:
        key = f"{case.id}:{version}:{m.template}:{m.recipient}"
        if key in seen:
            continue
        seen.add(key)
        rows.append(dict(
            key=key, case_id=case.id, recipient_kind=m.recipient_kind, user_id=m.user_id,
            channel=m.channel, address=m.address, template=m.template, body=m.body,
            # In-app messages need no sender: they are delivered by being written.
            status="pending" if m.channel == "sms" else "delivered",
        ))
    if not rows:
        return
    # One plain statement per message, without building model objects: every
    # new case queues one, and intake is the hottest path (bench/intake.py).
    now = datetime.now(timezone.utc)
    columns = ("key", "case_id", "recipient_kind", "user_id", "channel", "address", "template", "body",
               "status", "attempts", "error", "created_at", "updated_at")
    if conn.capabilities.dialect == "postgres":
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    else:
        marks = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{Notification._meta.db_table}" ({", ".join(columns)}) VALUES ({marks})'
    for row in rows:
        await conn.execute_query(sql, [row["key"], row["case_id"], row["recipient_kind"], row["user_id"],
                                       row["channel"], row["address"], row["template"], row["body"],
                                       row["status"], 0, "", now, now])
