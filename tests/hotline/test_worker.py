"""Timers in real processes: the arq worker, two workers, a killed worker, Redis going away, no Redis at all.

The worker and web processes are started as ``hotline worker`` / ``hotline
serve`` on the session's database. Deadlines a few seconds away come from a
short policy used when the test dispatches; the worker only reads the stored
deadlines. Tests that stop Redis start their own ``redis-server`` on a free
port; the machine's shared Redis is only used through a database number of
its own (``TEST_REDIS_URL``), flushed before and after each test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cases import sla
from cases.lifecycle import SlaContext, perform
from cases.models import Case, CaseEvent, Notification, User
from cases.timers import STEPS
from routing.models import RoutingDecision
from tests.conftest import IN_CI, free_port, new_case_body

TEMPLATE_OF = {"warn": "deadline_warning", "overdue": "overdue", "supervise": "supervision", "escalate": "escalation"}

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
HOTLINE = shutil.which("hotline") or str(Path(sys.executable).parent / "hotline")
# sign 4 s, reply 8 s: warn/overdue/supervise at 3/4/5 s and 6/8/10 s, escalate at 16 s.
SHORT = SlaContext(policies={
    **sla.DEFAULT_POLICIES,
    "urgent": sla.Policy("urgent", "紧急", sla.Limit.parse("4s"), sla.Limit.parse("1h"), sla.Limit.parse("8s")),
})
LADDERS = {"sign": STEPS[:3], "reply": STEPS}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def redis_url():
    if not _reachable(REDIS_URL):
        message = f"needs Redis at {REDIS_URL} (set TEST_REDIS_URL): it is not reachable"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    _flush(REDIS_URL)
    yield REDIS_URL
    _flush(REDIS_URL)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, which the test may stop and start again."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("needs redis-server on PATH to stop and restart Redis")
    port = free_port()
    server = _RedisServer(binary, port, tmp_path)
    server.start()
    yield server
    server.stop()


class _RedisServer:
    def __init__(self, binary: str, port: int, workdir: Path):
        self.binary, self.port, self.workdir = binary, port, workdir
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: _reachable(self.url), 10, "private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _wait_for(check, seconds: float, message: str, every: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(message)


async def _await(check, seconds: float, message: str, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(message)


class Processes:
    """``hotline`` subprocesses with their logs, all killed at the end of the test."""

    def __init__(self, database_url: str, tmp_path: Path):
        self.database_url = database_url
        self.tmp = tmp_path
        self.outbox_log = tmp_path / "outbox.log"
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "DATABASE_URL": self.database_url, "SECRET_KEY": "worker-test",
               "HOTLINE_AUTO_ROUTE": "0", "HOTLINE_SWEEP_SECONDS": "1",
               "HOTLINE_OUTBOX_LOG": str(self.outbox_log),
               "HOTLINE_STORAGE_DIR": str(self.tmp / "attachments")}
        env.pop("REDIS_URL", None)
        env.update(extra)
        return env

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        log = tempfile.NamedTemporaryFile(prefix="hotline-", suffix=".log", dir=self.tmp, delete=False)
        proc = subprocess.Popen([HOTLINE, *args], env=self.env(**env), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((proc, Path(log.name)))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.args}\n{path.read_text(errors='replace')[-3000:]}" for p, path in self.procs)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def sms_lines(self) -> list[dict]:
        if not self.outbox_log.exists():
            return []
        return [json.loads(line) for line in self.outbox_log.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def processes(database_url, tmp_path):
    p = Processes(database_url, tmp_path)
    yield p
    p.stop_all()


async def actor(world, who):
    from hotline.auth import actor_for

    return await actor_for(await User.get(username=world.people[who].username))


@pytest.fixture
async def handlers_with_phones(world):
    for i, user in enumerate(await User.filter(unit_id=world.units["zjj"], role="handler").order_by("id")):
        user.phone = f"1390000{int(world.suffix, 16) % 1000:03d}{i}"
        await user.save()


async def dispatched_cases(make_case, world, n: int, *, ctx=SHORT, at=None) -> list[str]:
    dispatcher = await actor(world, "dispatcher")
    numbers = []
    for _ in range(n):
        number = (await make_case(urgency="urgent"))["number"]
        await perform(number, "dispatch", dispatcher, {"lead_unit_id": world.units["zjj"]},
                      sla_context=ctx, now=at)
        numbers.append(number)
    return numbers


async def steps_by_case(numbers) -> dict[str, list[tuple[str, str]]]:
    """Every step each case went through: taken, or passed over by a late pass."""
    ids = dict(await Case.filter(number__in=numbers).values_list("id", "number"))
    out: dict[str, list] = {n: [] for n in numbers}
    for event in await CaseEvent.filter(case_id__in=list(ids), action="timer").order_by("id"):
        for s in event.payload["steps"]:
            out[ids[event.case_id]] += [(s["stage"], k) for k in (*s["skipped"], s["step"])]
    return out


async def assert_sms_sent_once(processes: Processes, numbers) -> None:
    ids = await Case.filter(number__in=numbers).values_list("id", flat=True)

    async def all_sent():
        return not await Notification.filter(case_id__in=list(ids), channel="sms", status__in=["pending", "sending"]).exists()

    await _await(all_sent, 30, "the outbox was not emptied\n" + processes.logs())
    expected = await Notification.filter(case_id__in=list(ids), channel="sms").values_list("address", "body")
    assert all(status == "sent" for status in await Notification.filter(
        case_id__in=list(ids), channel="sms").values_list("status", flat=True))
    written = Counter((m["to"], m["body"]) for m in processes.sms_lines() if any(n in m["body"] for n in numbers))
    assert sorted(written) == sorted(expected)
    assert set(written.values()) == {1}, "a message was sent twice"


async def test_the_worker_takes_every_step_of_every_ladder_once(processes, redis_url, make_case, world,
                                                                   handlers_with_phones):
    worker = processes.start("worker", REDIS_URL=redis_url)
    numbers = await dispatched_cases(make_case, world, 3)

    async def escalated():
        steps = await steps_by_case(numbers)
        return all(("reply", "escalate") in s for s in steps.values())

    await _await(escalated, 60, "no escalation within a minute\n" + processes.logs())
    assert worker.poll() is None
    for number, steps in (await steps_by_case(numbers)).items():
        assert Counter(steps) == Counter((stage, step) for stage, ladder in LADDERS.items() for step in ladder), number
        case = await Case.get(number=number)
        assert case.supervision_level == 2 and case.light == "red" and case.next_due_at is None
    await assert_sms_sent_once(processes, numbers)
    # A step passed over by a late pass is recorded but not announced: each
    # announced step tells the unit once per handler.
    for number in numbers:
        case = await Case.get(number=number)
        announced = Counter(
            TEMPLATE_OF[s["step"]] for e in await CaseEvent.filter(case_id=case.id, action="timer")
            for s in e.payload["steps"])
        sent = Counter(await Notification.filter(case_id=case.id, recipient_kind="user", user__role="handler")
                       .exclude(template="dispatched").values_list("template", flat=True))
        assert sent == Counter({t: n * 2 for t, n in announced.items() if t != "escalation"}), number


async def test_worker_check_reports_a_running_worker(processes, redis_url):
    check = subprocess.run([HOTLINE, "worker", "--check"], env=processes.env(REDIS_URL=redis_url),
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1
    processes.start("worker", REDIS_URL=redis_url)

    def healthy():
        return subprocess.run([HOTLINE, "worker", "--check"], env=processes.env(REDIS_URL=redis_url),
                              capture_output=True, timeout=30).returncode == 0

    _wait_for(healthy, 30, "worker never reported healthy\n" + processes.logs(), every=1)


def test_the_worker_refuses_to_start_without_redis(processes):
    out = subprocess.run([HOTLINE, "worker"], env=processes.env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "REDIS_URL" in out.stderr


async def test_two_workers_never_act_or_send_twice(processes, redis_url, make_case, world, handlers_with_phones):
    processes.start("worker", REDIS_URL=redis_url, HOTLINE_SWEEP_BATCH="3")
    processes.start("worker", REDIS_URL=redis_url, HOTLINE_SWEEP_BATCH="3")
    numbers = await dispatched_cases(make_case, world, 12)

    async def escalated():
        steps = await steps_by_case(numbers)
        return all(("reply", "escalate") in s for s in steps.values())

    await _await(escalated, 90, "no escalation within 90 s\n" + processes.logs())
    for number, steps in (await steps_by_case(numbers)).items():
        assert Counter(steps) == Counter((stage, step) for stage, ladder in LADDERS.items() for step in ladder), number
    await assert_sms_sent_once(processes, numbers)


async def test_a_worker_killed_mid_sweep_leaves_every_due_step_to_be_taken_exactly_once(
        processes, redis_url, make_case, world, handlers_with_phones):
    # Dispatched an hour ago on the real policy: each case owes one step now
    # (签收 supervision, passing over the warning and the overdue flag).
    numbers = await dispatched_cases(make_case, world, 150, ctx=SlaContext(),
                                     at=datetime.now(timezone.utc) - timedelta(hours=1))
    ids = await Case.filter(number__in=numbers).values_list("id", flat=True)

    async def taken():
        return await CaseEvent.filter(case_id__in=list(ids), action="timer").count()

    first = processes.start("worker", REDIS_URL=redis_url, HOTLINE_SWEEP_BATCH="2")
    await _await(taken, 60, "the first worker took no step\n" + processes.logs(), every=0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    done_when_killed = await taken()
    assert 0 < done_when_killed < len(numbers), "the kill did not land in the middle of the sweep"

    processes.start("worker", REDIS_URL=redis_url)

    async def all_taken():
        return await taken() >= len(numbers)

    await _await(all_taken, 90, "the second worker did not finish\n" + processes.logs())
    for number, steps in (await steps_by_case(numbers)).items():
        assert steps == [("sign", "warn"), ("sign", "overdue"), ("sign", "supervise")], number
    await assert_sms_sent_once(processes, numbers)


async def test_intake_keeps_working_while_redis_is_down_and_routing_catches_up(
        processes, private_redis, database_url):
    port = free_port()
    env = {"REDIS_URL": private_redis.url, "HOTLINE_AUTO_ROUTE": "1"}
    processes.start("serve", "--port", str(port), **env)
    processes.start("worker", **env)
    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _up(base), 60, "web server did not start\n" + processes.logs(), every=0.3)
    token = await _agent_token()
    private_redis.stop()

    numbers = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(5):
            started = time.monotonic()
            r = await http.post("/api/cases", json=new_case_body(), timeout=10)
            assert r.status_code == 201, r.text
            assert time.monotonic() - started < 3, "intake waited on the missing Redis"
            numbers.append(r.json()["number"])
    assert set(await Case.filter(number__in=numbers).values_list("routing_state", flat=True)) == {"pending"}

    private_redis.start()

    async def routed():
        return set(await Case.filter(number__in=numbers).values_list("routing_state", flat=True)) == {"done"}

    await _await(routed, 90, "routing did not catch up after Redis came back\n" + processes.logs())
    for number in numbers:
        case = await Case.get(number=number)
        assert await RoutingDecision.filter(case_id=case.id).count() == 1
        assert case.status in ("dispatched", "pending_dispatch")


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _agent_token() -> str:
    from cases.models import User
    from hotline.auth import hash_password, issue_token

    user = await User.create(username=f"redis_agent_{os.getpid()}_{time.monotonic_ns()}", role="agent",
                             password_hash=hash_password("x" * 12))
    return await issue_token(user, "test")


async def test_without_redis_the_web_process_keeps_the_deadlines(processes, make_case, world):
    port = free_port()
    processes.start("serve", "--port", str(port), HOTLINE_EMBEDDED_SWEEP="1")
    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _up(base), 60, "web server did not start\n" + processes.logs(), every=0.3)
    assert httpx.get(base + "/healthz").json()["timers"] == "embedded"
    numbers = await dispatched_cases(make_case, world, 2)

    async def escalated():
        steps = await steps_by_case(numbers)
        return all(("reply", "escalate") in s for s in steps.values())

    await _await(escalated, 60, "the embedded sweep did not escalate\n" + processes.logs())
    for steps in (await steps_by_case(numbers)).values():
        assert Counter(steps) == Counter((stage, step) for stage, ladder in LADDERS.items() for step in ladder)
