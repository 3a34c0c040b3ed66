"""Models owned by the web application: API tokens and login attempts."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ApiToken(Model):
    """A bearer token for an integration (only its SHA-256 is stored)."""

    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("hotline.User", related_name="tokens", on_delete=fields.RESTRICT)
    name = fields.CharField(max_length=64)
    token_hash = fields.CharField(max_length=64, unique=True)
    revoked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


class LoginAttempt(Model):
    """Failed logins, kept so repeated guessing can be throttled across processes."""

    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, db_index=True)
    ip = fields.CharField(max_length=64, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "login_attempt"


class CallLog(Model):
    """One telephone call, inbound or outbound, and what became of it."""

    id = fields.BigIntField(primary_key=True)
    call_sid = fields.CharField(max_length=64, unique=True)
    direction = fields.CharField(max_length=8)  # inbound, outbound
    # intake, lookup, voicemail, survey, bridge, transfer
    purpose = fields.CharField(max_length=16, default="intake")
    from_number = fields.CharField(max_length=32, default="")
    to_number = fields.CharField(max_length=32, default="")
    status = fields.CharField(max_length=16, default="ringing")
    case = fields.ForeignKeyField("hotline.Case", related_name="calls", null=True, on_delete=fields.RESTRICT)
    agent = fields.ForeignKeyField("hotline.User", related_name="calls", null=True, on_delete=fields.RESTRICT)
    # An agent's leg: the caller's call it was bridged to (set when the queue hands the caller over).
    peer = fields.ForeignKeyField("hotline.CallLog", related_name="legs", null=True, on_delete=fields.SET_NULL)
    speech_text = fields.TextField(default="")
    recording_sid = fields.CharField(max_length=64, null=True, unique=True)
    recording_url = fields.CharField(max_length=500, default="")
    transcript = fields.TextField(default="")
    # Recordings and transcripts are deleted after this (HOTLINE_RECORDING_RETENTION_DAYS).
    retain_until = fields.DatetimeField(null=True, db_index=True)
    recording_deleted_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "call_log"


class CallEvent(Model):
    """What happened during a call, in order: menu choices, queueing, bridging, hang-up."""

    id = fields.BigIntField(primary_key=True)
    call = fields.ForeignKeyField("hotline.CallLog", related_name="events", on_delete=fields.RESTRICT)
    event = fields.CharField(max_length=32)
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "call_event"
        indexes = (("call_id", "id"),)



class RateLimit(Model):
    """Uses of one public-page allowance in one window, shared by every web process."""

    id = fields.BigIntField(primary_key=True)
    # The limiter's name and the caller's address or phone number, e.g. "submit:ip:203.0.113.9".
    key = fields.CharField(max_length=160)
    # Epoch second the window opens: a plain integer compares alike on SQLite and PostgreSQL.
    window_start = fields.BigIntField(db_index=True)
    count = fields.IntField(default=0)

    class Meta:
        table = "rate_limit"
        unique_together = (("key", "window_start"),)
