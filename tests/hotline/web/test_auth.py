"""Who may call the API: sessions with CSRF, passwords, throttling and bearer tokens."""

from __future__ import annotations

import json
from base64 import b64decode
from dataclasses import replace

import httpx
import itsdangerous

from tests.conftest import new_case_body
from tests.hotline.web.conftest import session_login

COOKIE = "hotline_session"
NEW_PASSWORD = "a-better-secret-7"


# ---- sessions and CSRF -------------------------------------------------------------------


async def test_logging_in_returns_a_csrf_token_and_sets_a_session_cookie(client, world):
    r = await session_login(client, world.agent.username, world.agent.password)

    assert r.status_code == 200
    assert len(r.json()["csrf_token"]) >= 20
    assert r.json()["user"]["username"] == world.agent.username
    assert COOKIE in r.cookies
    assert "httponly" in r.headers["set-cookie"].lower()
    assert (await client.get("/api/me")).json()["username"] == world.agent.username


async def test_a_session_write_without_the_csrf_header_is_refused_and_writes_nothing(client, world, login, row_counts):
    await login(world.agent)
    before = await row_counts()

    r = await client.post("/api/cases", json=new_case_body())

    assert r.status_code == 403
    assert r.json()["error"] == "csrf"
    assert await row_counts() == before


async def test_a_session_write_with_a_wrong_csrf_header_is_refused(client, world, login, row_counts):
    await login(world.agent)
    before = await row_counts()

    r = await client.post("/api/cases", json=new_case_body(), headers={"X-CSRF-Token": "guessed"})

    assert r.status_code == 403
    assert await row_counts() == before


async def test_a_session_write_with_the_csrf_header_works(client, world, login, row_counts):
    csrf = await login(world.agent)
    cases, events = await row_counts()

    r = await client.post("/api/cases", json=new_case_body(), headers={"X-CSRF-Token": csrf})

    assert r.status_code == 201, r.text
    assert await row_counts() == (cases + 1, events + 1)


async def test_a_session_read_needs_no_csrf_header(client, world, login):
    await login(world.agent)
    assert (await client.get("/api/cases")).status_code == 200


async def test_logging_out_ends_the_session(client, world, login):
    await login(world.agent)

    r = await client.delete("/api/session")

    assert r.status_code == 200
    assert (await client.get("/api/me")).status_code == 401


async def test_an_expired_session_cookie_is_refused(client, world, login, settings):
    await login(world.agent)
    cookie = client.cookies[COOKIE]
    payload = itsdangerous.TimestampSigner(settings.secret_key).unsign(cookie)
    assert json.loads(b64decode(payload))["uid"]

    class Yesterday(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - settings.session_max_age - 60

    stale = Yesterday(settings.secret_key).sign(payload).decode()
    client.cookies.clear()

    client.cookies.set(COOKIE, stale)
    assert (await client.get("/api/me")).status_code == 401
    client.cookies.set(COOKIE, cookie)
    assert (await client.get("/api/me")).status_code == 200


async def test_a_session_ends_after_session_max_age(app, settings, world):
    import asyncio

    from hotline.web.app import create_app

    # The same database (the session app already started it), a one-second session.
    short = create_app(replace(settings, session_max_age=1))
    transport = httpx.ASGITransport(app=short, client=("203.0.113.10", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await session_login(c, world.agent.username, world.agent.password)).status_code == 200
        assert (await c.get("/api/me")).status_code == 200
        await asyncio.sleep(2.1)
        assert (await c.get("/api/me")).status_code == 401


async def test_a_forged_session_cookie_is_refused(client, world, login):
    await login(world.admin)
    forged = itsdangerous.TimestampSigner("not-the-secret").sign(client.cookies[COOKIE].split(".")[0])
    client.cookies.clear()
    client.cookies.set(COOKIE, forged.decode())

    assert (await client.get("/api/me")).status_code == 401


# ---- passwords and throttling ------------------------------------------------------------


async def test_a_wrong_password_is_refused_with_401(client, world):
    r = await session_login(client, world.agent.username, "wrong-password-1")

    assert r.status_code == 401
    assert COOKIE not in r.cookies


async def test_an_unknown_user_gets_the_same_401_as_a_wrong_password(client, world):
    r = await session_login(client, "nobody_" + world.suffix, "wrong-password-1")

    assert r.status_code == 401
    assert r.json()["error"] == "bad_credentials"


async def test_after_five_failures_even_the_right_password_is_throttled(client, world):
    for _ in range(5):
        assert (await session_login(client, world.zjj.username, "wrong-password-1")).status_code == 401

    r = await session_login(client, world.zjj.username, world.zjj.password)

    assert r.status_code == 429
    assert COOKIE not in r.cookies


async def test_a_success_before_the_fifth_failure_resets_the_count(client, world):
    for _ in range(4):
        await session_login(client, world.jtj.username, "wrong-password-1")
    assert (await session_login(client, world.jtj.username, world.jtj.password)).status_code == 200
    for _ in range(4):
        await session_login(client, world.jtj.username, "wrong-password-1")

    assert (await session_login(client, world.jtj.username, world.jtj.password)).status_code == 200


async def test_changing_the_password_needs_the_current_one(client, world, login):
    csrf = await login(world.leader)

    r = await client.post(
        "/api/me/password",
        json={"current_password": "not-my-password-1", "new_password": NEW_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )

    assert r.status_code == 422
    assert r.json()["field"] == "current_password"
    assert (await session_login(client, world.leader.username, world.leader.password)).status_code == 200


async def test_a_weak_new_password_is_refused(client, world, login):
    csrf = await login(world.leader)

    for weak in ("short1", "onlyletterslong", "12345678901234"):
        r = await client.post(
            "/api/me/password",
            json={"current_password": world.leader.password, "new_password": weak},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 422, weak
        assert r.json()["field"] == "new_password"


async def test_changing_the_password_ends_older_sessions_and_the_new_one_works(app, client, world, login):
    await login(world.dispatcher)
    old_cookie = client.cookies[COOKIE]
    # A second browser, logged in as the same person before the change.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.11", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        assert (await session_login(other, world.dispatcher.username, world.dispatcher.password)).status_code == 200
        csrf = (await session_login(client, world.dispatcher.username, world.dispatcher.password)).json()["csrf_token"]

        r = await client.post(
            "/api/me/password",
            json={"current_password": world.dispatcher.password, "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )

        assert r.status_code == 200, r.text
        assert (await other.get("/api/me")).status_code == 401
    # The browser that changed it stays logged in, with a fresh cookie.
    assert (await client.get("/api/me")).status_code == 200
    client.cookies.clear()
    client.cookies.set(COOKIE, old_cookie)
    assert (await client.get("/api/me")).status_code == 401
    client.cookies.clear()
    assert (await session_login(client, world.dispatcher.username, world.dispatcher.password)).status_code == 401
    assert (await session_login(client, world.dispatcher.username, NEW_PASSWORD)).status_code == 200


async def test_a_password_change_by_bearer_token_needs_no_csrf(client, world):
    r = await client.post(
        "/api/me/password",
        json={"current_password": world.zjj2.password, "new_password": NEW_PASSWORD},
        headers=world.zjj2.headers,
    )

    assert r.status_code == 200
    assert (await session_login(client, world.zjj2.username, NEW_PASSWORD)).status_code == 200


# ---- bearer tokens --------------------------------------------------------------------------


async def test_a_bearer_token_identifies_its_user(client, world):
    r = await client.get("/api/me", headers=world.street.headers)

    assert r.status_code == 200
    assert r.json()["username"] == world.street.username


async def test_an_unknown_bearer_token_is_refused(client, world):
    r = await client.get("/api/me", headers={"Authorization": "Bearer hl_" + "x" * 43})

    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated"


async def test_a_revoked_bearer_token_is_refused(client, world):
    from hotline.auth import _token_hash
    from hotline.models import ApiToken

    await ApiToken.filter(token_hash=_token_hash(world.district.token)).update(revoked=True)

    assert (await client.get("/api/me", headers=world.district.headers)).status_code == 401


async def test_a_deactivated_users_token_is_refused(client, world):
    from cases.models import User

    await User.filter(username=world.jtj.username).update(is_active=False)

    assert (await client.get("/api/me", headers=world.jtj.headers)).status_code == 401


async def test_malformed_authorization_headers_are_refused(client, world):
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", world.agent.token, "Token " + world.agent.token):
        r = await client.get("/api/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["error"] == "unauthenticated"


async def test_no_credentials_at_all_is_refused(client):
    assert (await client.get("/api/cases")).status_code == 401


async def test_a_bad_bearer_token_is_refused_even_with_a_valid_session(client, world, login):
    csrf = await login(world.agent)

    r = await client.post(
        "/api/cases", json=new_case_body(), headers={"Authorization": "Bearer nope", "X-CSRF-Token": csrf}
    )

    assert r.status_code == 401


async def test_a_token_can_be_issued_and_then_used(client, world):
    r = await client.post("/api/tokens", json={"name": "工单同步"}, headers=world.admin.headers)

    assert r.status_code == 201
    token = r.json()["token"]
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == world.admin.username


async def test_the_role_decides_who_may_write(client, world):
    r = await client.post("/api/cases", json=new_case_body(), headers=world.leader.headers)

    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
