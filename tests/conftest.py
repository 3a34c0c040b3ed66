"""Test harness: one migrated database per session, on SQLite or PostgreSQL.

``TEST_DATABASE_URL`` (a postgres:// URL) runs the suite on PostgreSQL: a
private database is created beside the one named, migrated, and dropped at
the end. Without it the suite runs on a temporary SQLite file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from hotline.settings import Settings, sqlite_url

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def _pg_admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path.lstrip("/") or "postgres", urlunsplit(parts._replace(path="/postgres"))


async def _pg_execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory):
    """A migrated, empty database for this test session."""
    from hotline.db import migrate

    if PG_URL:
        name = f"hotline_test_{secrets.token_hex(4)}"
        _, admin = _pg_admin_url(PG_URL)
        await _pg_execute(admin, f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))
        try:
            await migrate(Settings(database_url=url))
            yield url
        finally:
            from tortoise import Tortoise

            await Tortoise.close_connections()
            await _pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        url = sqlite_url(tmp_path_factory.mktemp("db") / "test.sqlite3")
        await migrate(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
def settings(database_url, tmp_path_factory) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        storage_dir=tmp_path_factory.mktemp("attachments"),
        max_attachment_bytes=1024 * 1024,
        # Lifecycle tests drive every step themselves; routing tests ask for it.
        auto_route=False,
        # Timer tests run the sweep themselves, with their own clock.
        embedded_sweep=False,
    )


@pytest.fixture(scope="session")
async def app(settings):
    from hotline.web.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Person:
    username: str
    password: str
    role: str
    unit_id: int | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """A small city made fresh for one test: a centre, departments, a district and its street."""

    suffix: str
    units: dict[str, int]
    people: dict[str, Person]

    def __getattr__(self, name: str) -> Person:
        try:
            return self.people[name]
        except KeyError:
            raise AttributeError(name) from None


PASSWORD = "correct-horse-42"


@pytest.fixture
async def world(app) -> World:
    from cases.models import Unit, User
    from hotline.auth import hash_password, issue_token

    sfx = secrets.token_hex(6)  # 48 bits: ~1,000 worlds per run must never collide
    centre = await Unit.create(name=f"热线中心{sfx}", kind="centre", division_code="4301")
    zjj = await Unit.create(name=f"市住建局{sfx}", kind="functional", parent_id=centre.id)
    jtj = await Unit.create(name=f"市交通局{sfx}", kind="functional", parent_id=centre.id)
    district = await Unit.create(name=f"岳麓区政府{sfx}", kind="territorial", division_code="430104")
    street = await Unit.create(
        name=f"橘子洲街道{sfx}", kind="territorial", division_code="430104001", parent_id=district.id
    )
    units = {"centre": centre.id, "zjj": zjj.id, "jtj": jtj.id, "district": district.id, "street": street.id}
    spec = {
        "admin": ("admin", None),
        "agent": ("agent", None),
        "dispatcher": ("dispatcher", None),
        "leader": ("leader", None),
        "zjj": ("handler", zjj.id),
        "zjj2": ("handler", zjj.id),
        "jtj": ("handler", jtj.id),
        "district": ("handler", district.id),
        "street": ("handler", street.id),
    }
    people = {}
    hashed = hash_password(PASSWORD)
    for key, (role, unit_id) in spec.items():
        user = await User.create(
            username=f"{key}_{sfx}", display_name=f"{key}用户", role=role, unit_id=unit_id, password_hash=hashed
        )
        people[key] = Person(user.username, PASSWORD, role, unit_id, await issue_token(user, "test"))
    return World(sfx, units, people)


def new_case_body(**overrides) -> dict:
    body = {
        "channel": "phone",
        "request_type": "complaint",
        "title": "小区楼道灯不亮",
        "content": "岳麓区橘子洲街道某小区3栋楼道灯坏了一个月没人修。",
        "caller_name": "张先生",
        "caller_phone": "13800138000",
        "address": "岳麓区橘子洲街道",
        "urgency": "general",
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_case(client, world):
    async def make(**overrides) -> dict:
        r = await client.post("/api/cases", json=new_case_body(**overrides), headers=world.agent.headers)
        assert r.status_code == 201, r.text
        return r.json()

    return make


async def act(client, person: Person, number: str, action: str, body: dict | None = None) -> httpx.Response:
    return await client.post(
        f"/api/cases/{number}/{action.replace('_', '-')}", json=body or {}, headers=person.headers
    )


# ---- a real server in a subprocess, for tests that need real concurrent requests --------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(database_url, tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "live-secret",
        # Lifecycle tests on the live server drive every step themselves.
        "HOTLINE_AUTO_ROUTE": "0",
        "HOTLINE_EMBEDDED_SWEEP": "0",
        "HOTLINE_STORAGE_DIR": str(tmp_path_factory.mktemp("live-attachments")),
    }
    log = tempfile.NamedTemporaryFile(prefix="live-server-", suffix=".log", delete=False)
    hotline_cmd = shutil.which("hotline") or str(Path(sys.executable).parent / "hotline")
    proc = subprocess.Popen(
        [hotline_cmd, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("live server did not start: " + Path(log.name).read_text())
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def require_postgres(reason: str):
    """Skip on SQLite, with the reason in the report; never silently under CI on PostgreSQL."""
    return pytest.mark.skipif(not PG_URL, reason=f"needs PostgreSQL (TEST_DATABASE_URL unset): {reason}")
