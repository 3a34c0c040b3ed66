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
