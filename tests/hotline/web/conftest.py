"""Helpers shared by the web tests: logging in through the API and counting rows."""

from __future__ import annotations

import secrets

import httpx
import pytest


@pytest.fixture
async def client(app):
    """Like the suite's client, but from its own address: failed logins here throttle no one else."""
    ip = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(ip, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def session_login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/session", json={"username": username, "password": password})


@pytest.fixture
def login(client):
    """Log ``client`` in with a session cookie; returns the CSRF token."""

    async def do(person, password: str | None = None) -> str:
        r = await session_login(client, person.username, password or person.password)
        assert r.status_code == 200, r.text
        return r.json()["csrf_token"]

    return do


@pytest.fixture
def row_counts():
    """How many cases and case events exist, to prove a refused request wrote nothing."""
    from cases.models import Case, CaseEvent

    async def count() -> tuple[int, int]:
        return await Case.all().count(), await CaseEvent.all().count()

    return count
