"""Passwords, API tokens, login throttling and turning a user into an Actor."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cases.actors import ROLES_WITH_UNIT, Actor
from cases.models import Unit, User
from hotline.models import ApiToken, LoginAttempt

_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" like a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password")

MIN_PASSWORD_LENGTH = 10
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 30


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少 {MIN_PASSWORD_LENGTH} 位"
    if len(password) > 128:
        return "密码过长"
    if password.isdigit() or password.isalpha():
        return "密码须同时包含字母和数字或符号"
    return None


def verify_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and bool(
            user and user.is_active
        )
    except (VerificationError, InvalidHashError):
        return False


class Throttled(Exception):
    pass


async def authenticate(username: str, password: str, ip: str) -> User | None:
    """Check a login, refusing to even try once too many recent failures piled up."""
    if "\x00" in username:
        # No account is named so, and PostgreSQL cannot even store it as an attempt.
        return None
    since = datetime.now(timezone.utc) - THROTTLE_WINDOW
    if (
        await LoginAttempt.filter(username=username, created_at__gte=since).count()
        >= MAX_FAILURES_PER_USER
        or await LoginAttempt.filter(ip=ip, created_at__gte=since).count() >= MAX_FAILURES_PER_IP
    ):
        raise Throttled()
    user = await User.get_or_none(username=username)
    if verify_password(user, password):
        await LoginAttempt.filter(username=username).delete()
        return user
    await LoginAttempt.create(username=username[:64], ip=ip[:64])
    return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(user: User, name: str) -> str:
    token = "hl_" + secrets.token_urlsafe(32)
    await ApiToken.create(user=user, name=name, token_hash=_token_hash(token))
    return token


async def user_for_token(token: str) -> User | None:
    # One query with a join: this runs on every API call made with a token.
    row = await ApiToken.get_or_none(token_hash=_token_hash(token), revoked=False).select_related("user")
    if row is None or not row.user.is_active:
        return None
    return row.user


async def actor_for(user: User) -> Actor:
    readonly: frozenset[int] = frozenset()
    if user.unit_id is not None:
        unit = await Unit.get(id=user.unit_id)
        if unit.kind == "territorial":
            # A district government oversees its streets' cases, read-only.
            readonly = frozenset(await Unit.filter(parent_id=unit.id).values_list("id", flat=True))
    return Actor(
        user_id=user.id,
        name=user.display_name or user.username,
        role=user.role,
        unit_id=user.unit_id if user.role in ROLES_WITH_UNIT else None,
        readonly_unit_ids=readonly,
    )
