"""Who is calling: bearer tokens for integrations, sessions (with CSRF) for the web."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

from cases.actors import Actor
from cases.models import User
from hotline.auth import actor_for, user_for_token
from hotline.web.framework import ApiError


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def start_session(request: Request, user: User) -> str:
    request.session.clear()
    csrf = secrets.token_urlsafe(24)
    request.session.update({"uid": user.id, "ver": user.session_version, "csrf": csrf})
    return csrf


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not supplied or not hmac.compare_digest(expected, supplied):
        raise ApiError(403, "csrf", "CSRF 校验失败，请刷新页面后重试")


async def session_user(request: Request) -> User | None:
    uid = request.session.get("uid")
    if not uid:
        return None
    user = await User.get_or_none(id=uid, is_active=True)
    # A password change bumps session_version and ends every older session.
    if user is None or user.session_version != request.session.get("ver"):
        request.session.clear()
        return None
    return user


async def authenticate(request: Request, unsafe: bool) -> tuple[User, Actor]:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated", "认证信息格式错误")
        user = await user_for_token(token.strip())
        if user is None:
            raise ApiError(401, "unauthenticated", "令牌无效或已撤销")
    else:
        user = await session_user(request)
        if user is None:
            raise ApiError(401, "unauthenticated", "请先登录")
        if unsafe:
            check_csrf(request, request.headers.get("x-csrf-token"))
    return user, await actor_for(user)
