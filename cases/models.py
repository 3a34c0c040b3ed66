"""Database models of the case core.

Every foreign key says what happens on delete: RESTRICT almost everywhere,
because a case's history must outlive any reorganisation of units or users.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.exceptions import OperationalError
from tortoise.models import Model

from cases.actors import ROLES  # noqa: F401  (the roles a User may hold)

RESTRICT = fields.RESTRICT

UNIT_KINDS = ("functional", "territorial", "centre")
CHANNELS = ("phone", "web", "window", "agent", "duty_day", "partner", "sms")
REQUEST_TYPES = ("consult", "help", "complaint", "report", "suggestion", "praise")
URGENCIES = (
    "urgent", "utilities", "general", "complex", "consult",
    "window_simple", "window_complex", "window_special", "window_refusal",
)


class Unit(Model):
    """承办单位: a department, a district government, a street/town or the centre."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    kind = fields.CharField(max_length=16)
    division_code = fields.CharField(max_length=12, null=True, db_index=True)
    parent: fields.ForeignKeyNullableRelation[Unit] = fields.ForeignKeyField(
        "hotline.Unit", related_name="children", null=True, on_delete=RESTRICT
    )
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "unit"


class User(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=64, default="")
    role = fields.CharField(max_length=16)
    unit: fields.ForeignKeyNullableRelation[Unit] = fields.ForeignKeyField(
        "hotline.Unit", related_name="users", null=True, on_delete=RESTRICT
    )
    password_hash = fields.CharField(max_length=255)
    # Mobile number for deadline and supervision SMS, and the phone an agent
    # answers queued calls on; empty means in-app only.
    phone = fields.CharField(max_length=32, default="")
    # An agent taking calls now (on a phone or in the browser).
    accepts_calls = fields.BooleanField(default=False)
    # Bumped on password change so existing sessions stop working.
    session_version = fields.IntField(default=1)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user"


class Case(Model):
    """诉求工单: one citizen matter and the record of its whole process."""

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=20, unique=True)
    query_code = fields.CharField(max_length=8)
    version = fields.IntField(default=1)
    status = fields.CharField(max_length=24, db_index=True)
    channel = fields.CharField(max_length=16)
    request_type = fields.CharField(max_length=16)
    category_l1 = fields.CharField(max_length=64, default="")
    category_l2 = fields.CharField(max_length=64, default="")
    category_l3 = fields.CharField(max_length=64, default="")
    title = fields.CharField(max_length=200, default="")
    content = fields.TextField()
    caller_name = fields.CharField(max_length=64, default="")
    caller_phone = fields.CharField(max_length=32, default="", db_index=True)
    confidential = fields.BooleanField(default=False)
    address = fields.CharField(max_length=300, default="")
    district_code = fields.CharField(max_length=12, default="", db_index=True)
    street_code = fields.CharField(max_length=12, default="", db_index=True)
    urgency = fields.CharField(max_length=16, default="general")
    lead_unit: fields.ForeignKeyNullableRelation[Unit] = fields.ForeignKeyField(
        "hotline.Unit", related_name="led_cases", null=True, on_delete=RESTRICT
    )
    # Deadlines, each stored when its stage starts and never recomputed by timers.
    accept_due = fields.DatetimeField(null=True)
    sign_due = fields.DatetimeField(null=True, db_index=True)
    contact_due = fields.DatetimeField(null=True)
    reply_due = fields.DatetimeField(null=True, db_index=True)
    return_until = fields.DatetimeField(null=True)
    callback_due = fields.DatetimeField(null=True)
    deadlines_provisional = fields.BooleanField(default=False, db_index=True)
    # Start of the running reply clock: the dispatch, or the latest re-handle.
    reply_started_at = fields.DatetimeField(null=True)
    extension_requested_at = fields.DatetimeField(null=True)
    # The centre's deadline to rule on a pending extension request.
    extension_due = fields.DatetimeField(null=True)
    # Timers: the next instant the sweep must look at this case (null when no
    # clock runs), the light shown in lists, and per clock the deadline and the
    # highest step already taken, so a step is never taken twice.
    next_due_at = fields.DatetimeField(null=True, db_index=True)
    light = fields.CharField(max_length=8, default="")
    timer_marks = fields.JSONField(default=dict)
    dispatched_at = fields.DatetimeField(null=True)
    signed_at = fields.DatetimeField(null=True)
    contacted_at = fields.DatetimeField(null=True)
    replied_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    reply_text = fields.TextField(default="")
    close_reason = fields.CharField(max_length=32, default="")
    out_of_scope_channel = fields.CharField(max_length=200, default="")
    # Pending requests awaiting the centre.
    return_reason = fields.CharField(max_length=32, default="")
    extension_requested_days = fields.IntField(null=True)
    extension_reason = fields.CharField(max_length=500, default="")
    # 回访 results of the latest callback.
    callback_contacted = fields.BooleanField(null=True)
    callback_resolved = fields.CharField(max_length=16, default="")
    callback_satisfaction = fields.CharField(max_length=16, default="")
    callback_attempts = fields.IntField(default=0)
    return_count = fields.IntField(default=0)
    rehandle_count = fields.IntField(default=0)
    extension_count = fields.IntField(default=0)
    supervision_level = fields.IntField(default=0)
    unreasonable = fields.CharField(max_length=16, default="")  # "", pending, upheld, dismissed
    merged_into: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="merged_cases", null=True, on_delete=RESTRICT
    )
    source_id = fields.CharField(max_length=64, null=True, unique=True)
    # Channel-specific intake details: the 办不成事 window's answers, a call's
    # CallSid and recording, a partner's reference.
    details = fields.JSONField(default=dict)
    # 转办待确认: a hand-off to a partner hotline must be confirmed by this time.
    handoff_started_at = fields.DatetimeField(null=True)
    handoff_due = fields.DatetimeField(null=True)
    # 关键词: the issue words routing extracted, kept for duplicate search.
    keywords = fields.TextField(default="")
    routing_confidence = fields.FloatField(null=True)
    # "pending": automatic routing still owes this case a decision, "done": it
    # was classified (by routing or a dispatcher), "": nobody asked for routing.
    routing_state = fields.CharField(max_length=8, default="", db_index=True)
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="created_cases", null=True, on_delete=RESTRICT
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "case"
        # Duplicate search blocks by place and category among recent cases.
        indexes = (
            ("street_code", "category_l1", "created_at"),
            ("district_code", "category_l1", "created_at"),
        )


class Notification(Model):
    """The outbox: one message to send, written in the transaction of the change it reports.

    The idempotency key is derived from the case and the history version that
    caused it, so re-running a job can never queue a message twice.
    """

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=128, unique=True)
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="notifications", null=True, on_delete=RESTRICT
    )
    recipient_kind = fields.CharField(max_length=16)  # citizen, user
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="notifications", null=True, on_delete=RESTRICT
    )
    channel = fields.CharField(max_length=8)  # sms, inbox
    address = fields.CharField(max_length=32, default="")
    template = fields.CharField(max_length=32)
    body = fields.TextField()
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    provider_id = fields.CharField(max_length=64, null=True, unique=True)
    error = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notification"
        indexes = (("status", "next_attempt_at"),)


class CaseAssignment(Model):
    """One unit on a case: 主办 (lead) or 协办 (co-unit), each with its own clock."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="assignments", on_delete=RESTRICT
    )
    unit: fields.ForeignKeyRelation[Unit] = fields.ForeignKeyField(
        "hotline.Unit", related_name="assignments", on_delete=RESTRICT
    )
    role = fields.CharField(max_length=8)  # lead / co
    status = fields.CharField(max_length=16)  # dispatched, signed, replied, returned
    active = fields.BooleanField(default=True)
    dispatched_at = fields.DatetimeField()
    sign_due = fields.DatetimeField(null=True)
    contact_due = fields.DatetimeField(null=True)
    reply_due = fields.DatetimeField(null=True)
    signed_at = fields.DatetimeField(null=True)
    contacted_at = fields.DatetimeField(null=True)
    replied_at = fields.DatetimeField(null=True)
    reply_text = fields.TextField(default="")

    class Meta:
        table = "case_assignment"
        indexes = (("unit_id", "active"),)


class AppendOnly(Model):
    """A model whose rows are written once and never changed or removed."""

    async def save(self, *args, **kwargs):  # type: ignore[override]
        if self._saved_in_db:
            raise OperationalError(f"{type(self).__name__} rows are append-only")
        await super().save(*args, **kwargs)

    async def delete(self, *args, **kwargs):  # type: ignore[override]
        raise OperationalError(f"{type(self).__name__} rows are append-only")

    class Meta:
        abstract = True


class CaseEvent(AppendOnly):
    """Append-only history: who did what to a case, when, from which state to which."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="events", on_delete=RESTRICT
    )
    action = fields.CharField(max_length=32)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="case_events", null=True, on_delete=RESTRICT
    )
    actor_name = fields.CharField(max_length=64, default="system")
    actor_role = fields.CharField(max_length=16, default="system")
    unit: fields.ForeignKeyNullableRelation[Unit] = fields.ForeignKeyField(
        "hotline.Unit", related_name="case_events", null=True, on_delete=RESTRICT
    )
    from_status = fields.CharField(max_length=24, default="")
    to_status = fields.CharField(max_length=24, default="")
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "case_event"
        indexes = (("case_id", "id"),)


class PhoneReveal(AppendOnly):
    """Access log: each time someone saw a confidential caller's number."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="phone_reveals", on_delete=RESTRICT
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="phone_reveals", on_delete=RESTRICT
    )
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "phone_reveal"


class Attachment(Model):
    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="attachments", on_delete=RESTRICT
    )
    uploaded_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="attachments", null=True, on_delete=RESTRICT
    )
    purpose = fields.CharField(max_length=16)  # citizen / evidence
    filename = fields.CharField(max_length=200)
    content_type = fields.CharField(max_length=100)
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=200, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "attachment"


class CaseNumberCounter(Model):
    """The last case number issued on one day (Asia/Shanghai)."""

    day = fields.CharField(max_length=8, primary_key=True)
    last_seq = fields.IntField(default=0)

    class Meta:
        table = "case_number_counter"


class CalendarOverride(Model):
    """Admin-entered working-day facts for years the calendar package lacks."""

    day = fields.DateField(primary_key=True)
    is_workday = fields.BooleanField()
    note = fields.CharField(max_length=100, default="")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "calendar_override"


class CalendarYear(Model):
    """A year an admin has entered completely, so its deadlines stop being provisional."""

    year = fields.IntField(primary_key=True)
    entered_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "hotline.User", related_name="calendar_years", null=True, on_delete=RESTRICT
    )
    entered_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "calendar_year"


class PartnerHotline(Model):
    """Another 12345 centre or a specialised line (12333, 12366) cases can be handed to.

    The shared signing secret is never stored here: ``secret_env`` names the
    environment variable that holds it.
    """

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=100)
    phone = fields.CharField(max_length=32, default="")
    intake_url = fields.CharField(max_length=300, default="")
    secret_env = fields.CharField(max_length=64, default="")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "partner_hotline"


class Handoff(Model):
    """A case handed to or received from a partner hotline (跨省诉求首接责任制)."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "hotline.Case", related_name="handoffs", on_delete=RESTRICT
    )
    partner: fields.ForeignKeyRelation[PartnerHotline] = fields.ForeignKeyField(
        "hotline.PartnerHotline", related_name="handoffs", on_delete=RESTRICT
    )
    direction = fields.CharField(max_length=8)  # out, in
    # out: pending, delivered, confirmed, failed. in: received.
    status = fields.CharField(max_length=16, default="pending")
    partner_ref = fields.CharField(max_length=64, default="")
    key = fields.CharField(max_length=128, unique=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    error = fields.CharField(max_length=300, default="")
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    confirmed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "handoff"
        indexes = (("status", "next_attempt_at"),)
