"""The outbox as administrators see it: every message, its delivery status and why it failed.

Shared by ``GET /api/notifications`` and the ``/admin/outbox`` page. Message
bodies are left out (a citizen's carries the query code that opens the case)
and citizens' numbers are masked: finding out why a message failed needs
neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cases.actors import ADMIN
from cases.models import Notification
from cases.notifications import TEMPLATE_LABELS
from hotline.outbox import STATUS_LABELS
from hotline.web.api import api
from hotline.web.framework import Call
from hotline.web.schemas import QueryInt

PER_PAGE = 50
CHANNEL_LABELS = {"sms": "短信", "inbox": "站内消息"}
RECIPIENT_LABELS = {"citizen": "群众", "user": "工作人员"}
NotificationStatus = Literal[tuple(STATUS_LABELS)]  # type: ignore[valid-type]


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: NotificationStatus | None = None
    page: Annotated[int, Field(ge=1, le=100_000), QueryInt] = 1


class NotificationOut(BaseModel):
    id: int
    created_at: datetime
    updated_at: datetime
    case_number: str | None
    template: str
    template_label: str
    recipient_kind: str
    recipient: str
    channel: str
    channel_label: str
    status: str
    status_label: str
    attempts: int
    next_attempt_at: datetime | None
    error: str


class NotificationList(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[NotificationOut]


def mask_phone(number: str) -> str:
    """138****8000: enough to tell numbers apart, not enough to call."""
    if len(number) >= 7:
        return number[:3] + "****" + number[-4:]
    return "****" if number else ""


def _recipient(n: Notification) -> str:
    if n.recipient_kind == "user" and n.user is not None:
        return n.user.display_name or n.user.username
    return mask_phone(n.address)


async def list_notifications(status: str | None = None, page: int = 1) -> NotificationList:
    qs = Notification.all()
    if status:
        qs = qs.filter(status=status)
    total = await qs.count()
    rows = await qs.select_related("case", "user").order_by("-id").offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    items = [
        NotificationOut(
            id=n.id,
            created_at=n.created_at,
            updated_at=n.updated_at,
            case_number=n.case.number if n.case is not None else None,
            template=n.template,
            template_label=TEMPLATE_LABELS.get(n.template, n.template),
            recipient_kind=n.recipient_kind,
            recipient=_recipient(n),
            channel=n.channel,
            channel_label=CHANNEL_LABELS.get(n.channel, n.channel),
            status=n.status,
            status_label=STATUS_LABELS.get(n.status, n.status),
            attempts=n.attempts,
            next_attempt_at=n.next_attempt_at,
            error=n.error,
        )
        for n in rows
    ]
    return NotificationList(total=total, page=page, per_page=PER_PAGE, items=items)


@api.add("GET", "/api/notifications", "消息发送记录（短信与站内消息）", query=NotificationQuery, response=NotificationList, roles=frozenset({ADMIN}), tag="admin")
async def notifications(call: Call):
    return await list_notifications(call.query.status, call.query.page)
