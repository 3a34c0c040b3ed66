"""Property-based tests of the whole JSON API, generated from its own OpenAPI document.

Schemathesis sends valid and deliberately invalid requests to every operation
and checks that the server never fails (5xx), never accepts data its own
document forbids, answers only with documented status codes and matches the
documented response schemas.

The target is a real server (``hotline serve``) in a subprocess, on a private
database of the same kind as the rest of the suite: the fuzzer creates units,
users, tokens and calendar overrides at random, which must not leak into the
other tests, and the server's tortoise connections must not share the test
session's event loop.

FUZZ_EXAMPLES=200 FUZZ_RANDOM=1 raises the budget and varies the data for a
deeper run; by default the run is derandomized so a failure reproduces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from hotline.settings import sqlite_url
from tests.conftest import PG_URL, _pg_admin_url, _pg_execute, free_port

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
DETERMINISTIC = os.environ.get("FUZZ_RANDOM", "") not in ("1", "true", "yes")
PASSWORD = "fuzz-password-42"
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]


def _hotline() -> str:
    return str(Path(sys.executable).parent / "hotline")


def _run_async(coro) -> None:
    # A thread of its own, so no event loop of the test session is touched.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@dataclass
class FuzzTarget:
    base: str
    tokens: dict[str, str]
    case_number: str
    log: Path | None = None

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _token(c: httpx.Client, username: str) -> str:
    r = c.post("/api/session", json={"username": username, "password": PASSWORD})
    r.raise_for_status()
    csrf = r.json()["csrf_token"]
    r = c.post("/api/tokens", json={"name": "fuzz"}, headers={"X-CSRF-Token": csrf})
    r.raise_for_status()
    c.delete("/api/session")
    c.cookies.clear()
    return r.json()["token"]


def _populate(base: str) -> FuzzTarget:
    """An admin, a dispatcher and a unit's handler, and one case dispatched to that unit."""
    with httpx.Client(base_url=base, timeout=30) as c:
        admin = {"Authorization": f"Bearer {_token(c, 'fuzz_admin')}"}
        centre = c.post("/api/units", json={"name": "热线中心", "kind": "centre"}, headers=admin).json()
        unit = c.post("/api/units", json={"name": "市住建局", "kind": "functional", "parent_id": centre["id"]}, headers=admin)
        unit.raise_for_status()
        unit_id = unit.json()["id"]
        for username, role, unit_for in (("fuzz_dispatcher", "dispatcher", None), ("fuzz_handler", "handler", unit_id)):
            body = {"username": username, "role": role, "password": PASSWORD, "unit_id": unit_for}
            c.post("/api/users", json=body, headers=admin).raise_for_status()
        tokens = {"admin": admin["Authorization"][7:], "dispatcher": _token(c, "fuzz_dispatcher"), "handler": _token(c, "fuzz_handler")}
        case = c.post("/api/cases?route=false", json={"content": "路灯不亮", "caller_phone": "13800138000"}, headers=admin)
        case.raise_for_status()
        number = case.json()["number"]
        r = c.post(
            f"/api/cases/{number}/dispatch",
            json={"lead_unit_id": unit_id},
            headers={"Authorization": f"Bearer {tokens['dispatcher']}"},
        )
        r.raise_for_status()
    return FuzzTarget(base, tokens, number)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    if PG_URL:
        name = f"hotline_fuzz_{secrets.token_hex(4)}"
        _, admin_url = _pg_admin_url(PG_URL)
        _run_async(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
        url = urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))
    else:
        url = sqlite_url(tmp / "fuzz.sqlite3")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "fuzz-secret",
        "HOTLINE_STORAGE_DIR": str(tmp / "attachments"),
        # The embedded timers run here too; their SMS go to a file of the test's own.
        "HOTLINE_OUTBOX_LOG": str(tmp / "outbox.log"),
    }
    proc = None
    log = tempfile.NamedTemporaryFile(prefix="fuzz-server-", suffix=".log", delete=False)
    try:
        subprocess.run([_hotline(), "migrate"], env=env, check=True, capture_output=True)
        subprocess.run(
            [_hotline(), "createuser", "fuzz_admin", "--role", "admin"],
            env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )
        port = free_port()
        proc = subprocess.Popen([_hotline(), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("fuzz server did not start: " + Path(log.name).read_text())
            time.sleep(0.2)
        target = _populate(base)
        target.log = Path(log.name)
        yield target
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if PG_URL:
            _run_async(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _schema(*, max_examples: int):
    """The document the server publishes, built from the same endpoint registry.

    Loaded at collection time (no server needed) so each operation is its own test.
    """
    import hotline
    from hotline.web.api import api

    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": "all",  # positive and negative data
                "max-examples": max_examples,
                "deterministic": DETERMINISTIC,
                "database": "none",
            },
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        }
    )
    return schemathesis.openapi.from_dict(api.openapi(TITLE, hotline.__version__), config=config)


TITLE = "12345 热线工单系统 API"
admin_api = _schema(max_examples=MAX_EXAMPLES)
handler_api = _schema(max_examples=max(5, MAX_EXAMPLES // 2)).include(tag=["cases", "lifecycle", "auth"])


def test_the_server_publishes_the_document_under_test(fuzz_target):
    import hotline
    from hotline.web.api import api

    served = httpx.get(fuzz_target.base + "/api/openapi.json").json()

    assert served == api.openapi(TITLE, hotline.__version__)


def _call(case, fuzz_target: FuzzTarget, who: str) -> None:
    try:
        case.call_and_validate(base_url=fuzz_target.base, headers=fuzz_target.headers(who), checks=CHECKS, timeout=30)
    except Exception:
        # The server's own log tells why it answered 5xx.
        tail = fuzz_target.log.read_text()[-3000:]
        print(f"---- server log (tail) ----\n{tail}")
        raise


@admin_api.parametrize()
def test_the_api_holds_its_contract_for_an_admin(case, fuzz_target):
    _call(case, fuzz_target, "admin")


@handler_api.parametrize()
def test_the_api_holds_its_contract_for_a_units_handler(case, fuzz_target):
    _call(case, fuzz_target, "handler")
