"""Intake throughput: ``POST /api/cases`` of the real app vs a bare starlette + asyncpg endpoint.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/intake.py [--seconds 10]

What it does, in one run:

1. creates a private database ``hotline_bench_<random>`` on the server named by
   ``DATABASE_URL``, migrates it with ``hotline.db.migrate`` and makes an agent
   user and a bearer token with the application's own functions;
2. starts the full application as a real process (``hotline serve``) and the
   bare endpoint as another real process (``python bench/intake.py --serve-bare
   PORT DSN``: starlette + an asyncpg pool of the same size as tortoise's
   default, one endpoint inserting the same ``case`` row and one ``case_event``
   row in one transaction), both single-process uvicorn with the same settings
   (the ones ``hotline serve`` uses: uvicorn's defaults, access log on);
3. drives each with 32 concurrent httpx clients: a warm-up, then a fixed
   duration, in interleaved rounds (full, bare, bare, full, ...) so that both
   share the machine's noise;
4. checks that every request got 201 and that the rows in the database match
   the requests that succeeded, then drops the database.

The load generator runs on the same machine as both servers and PostgreSQL and
shares its CPUs with them; the per-request CPU cost of each server process is
printed beside the throughput because it is much less sensitive to that noise.

The last line printed is one JSON object (``full_rps``, ``bare_rps``,
``ratio``, ``full_p99_ms``, ``bare_p99_ms``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The project root ahead of bench/ on the path: bench/routing.py must not stand in for the routing package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_SCHEMES = ("postgres", "postgresql", "asyncpg")
BENCH_USERNAME = "bench_agent"
# Bare-endpoint case numbers start here, so the two servers' rows can be told
# apart when counting (the full path's daily counter never gets near it).
BARE_SEQ_BASE = 900_000
TORTOISE_POOL_MAX = 5  # tortoise's asyncpg default (minsize=1, maxsize=5); the bare pool matches it

CASE_BODY = {
    "channel": "phone",
    "request_type": "complaint",
    "title": "小区楼道灯不亮",
    "content": "岳麓区橘子洲街道某小区3栋楼道灯坏了一个月没人修，多次向物业反映无果。",
    "caller_name": "张先生",
    "caller_phone": "13800138000",
    "address": "岳麓区橘子洲街道某小区3栋",
    "urgency": "general",
}


# ---- DATABASE_URL ---------------------------------------------------------------------------


def refuse(message: str) -> None:
    print(f"bench/intake.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def postgres_url_from_env() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        refuse(
            "DATABASE_URL is not set. This benchmark needs PostgreSQL, e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/intake.py"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in POSTGRES_SCHEMES:
        refuse(
            f"DATABASE_URL must name a PostgreSQL server "
            f"({'://, '.join(POSTGRES_SCHEMES)}://), got a {scheme or 'schemeless'}:// URL. "
            "The benchmark does not run on SQLite."
        )
    return url


def with_database(url: str, name: str) -> str:
    """The same server and options as ``url``, database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def asyncpg_dsn(url: str) -> str:
    """A DSN asyncpg accepts: postgresql:// scheme, no tortoise-only query options."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", query=""))


# ---- the bare server ---------------------------------------------------------------------

CASE_COLUMNS = (
    "number", "query_code", "version", "status", "channel", "request_type",
    "category_l1", "category_l2", "category_l3", "title", "content",
    "caller_name", "caller_phone", "confidential", "address", "district_code", "street_code",
    "urgency", "lead_unit_id", "accept_due", "sign_due", "contact_due", "reply_due",
    "return_until", "callback_due", "deadlines_provisional", "dispatched_at", "signed_at",
    "contacted_at", "replied_at", "closed_at", "reply_text", "close_reason",
    "out_of_scope_channel", "return_reason", "extension_requested_days", "extension_reason",
    "callback_contacted", "callback_resolved", "callback_satisfaction", "callback_attempts",
    "return_count", "rehandle_count", "extension_count", "supervision_level", "unreasonable",
    "merged_into_id", "source_id", "created_by_id", "created_at", "updated_at",
    "keywords", "routing_confidence",
    "light", "next_due_at", "timer_marks", "routing_state", "details",
)  # fmt: skip
INSERT_CASE = (
    f'INSERT INTO "case" ({", ".join(CASE_COLUMNS)}) '
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(CASE_COLUMNS) + 1))}) RETURNING *"
)
INSERT_NOTIFICATION = (
    "INSERT INTO notification (key, case_id, recipient_kind, channel, address, template, body, "
    "status, attempts, error, created_at, updated_at) "
    "VALUES ($1, $2, 'citizen', 'sms', $3, 'case_accepted', $4, 'pending', 0, '', $5, $5)"
)
INSERT_EVENT = (
    "INSERT INTO case_event (case_id, action, actor_id, actor_name, actor_role, unit_id, "
    "from_status, to_status, payload, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
)


def bare_app(dsn: str):
    """Starlette + asyncpg: the least a server can do to take in one case, its history row and its outbox row."""
    from zoneinfo import ZoneInfo

    import asyncpg
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    shanghai = ZoneInfo("Asia/Shanghai")
    alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
    state: dict = {"seq": BARE_SEQ_BASE}

    @asynccontextmanager
    async def lifespan(app):
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=TORTOISE_POOL_MAX)
        actor = await pool.fetchrow(
            'SELECT id, display_name, username, role FROM "user" WHERE username = $1', BENCH_USERNAME
        )
        if actor is None:
            raise RuntimeError(
                f"user {BENCH_USERNAME} not found: run bench/intake.py, not --serve-bare alone"
            )
        # Continue after any bare case already there (a restarted server on the same database).
        last = await pool.fetchval("SELECT max(split_part(number, '-', 2)::int) FROM \"case\"")
        state.update(pool=pool, actor=actor, seq=max(BARE_SEQ_BASE, last or 0))
        yield
        await pool.close()

    async def healthz(request):
        await state["pool"].fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def create_case(request):
        body = json.loads(await request.body())
        content = str(body.get("content", "")).strip()
        if not content:
            return JSONResponse({"error": "invalid", "message": "content"}, status_code=422)
        now = datetime.now(timezone.utc)
        state["seq"] += 1
        number = f"{now.astimezone(shanghai):%Y%m%d}-{state['seq']:06d}"
        actor = state["actor"]
        row = {c: None for c in CASE_COLUMNS}
        row.update(
            number=number,
            query_code="".join(secrets.choice(alphabet) for _ in range(6)),
            version=1,
            status="received",
            channel=body.get("channel", "agent"),
            request_type=body.get("request_type", "consult"),
            category_l1="", category_l2="", category_l3="",
            title=body.get("title", ""),
            content=content,
            caller_name=body.get("caller_name", ""),
            caller_phone=body.get("caller_phone", ""),
            confidential=bool(body.get("confidential", False)),
            address=body.get("address", ""),
            district_code=body.get("district_code", ""),
            street_code=body.get("street_code", ""),
            urgency=body.get("urgency", "general"),
            accept_due=now + timedelta(hours=2),
            deadlines_provisional=False,
            reply_text="", close_reason="", out_of_scope_channel="", return_reason="",
            extension_reason="", callback_resolved="", callback_satisfaction="",
            callback_attempts=0, return_count=0, rehandle_count=0, extension_count=0,
            supervision_level=0, unreasonable="", keywords="",
            # The timers' schedule (the accept clock's warning) and the outbox
            # row telling the caller their number, as the app writes them.
            light="green", next_due_at=now + timedelta(minutes=90), timer_marks="{}",
            routing_state="", details="{}",
            created_by_id=actor["id"],
            created_at=now,
            updated_at=now,
        )  # fmt: skip
        async with state["pool"].acquire() as conn:
            async with conn.transaction():
                case = await conn.fetchrow(INSERT_CASE, *row.values())
                await conn.fetchval(
                    INSERT_EVENT,
                    case["id"], "create", actor["id"], actor["display_name"] or actor["username"],
                    actor["role"], None, "", "received",
                    json.dumps({"channel": case["channel"], "request_type": case["request_type"]},
                               separators=(",", ":")),
                    now,
                )  # fmt: skip
                if case["caller_phone"]:
                    await conn.execute(
                        INSERT_NOTIFICATION, f"{case['id']}:1:case_accepted:c{case['caller_phone']}",
                        case["id"], case["caller_phone"],
                        f"【12345】您的诉求已受理，工单号{number}，查询码{case['query_code']}。", now,
                    )
        out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in case.items()}
        return JSONResponse(out, status_code=201)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/api/cases", create_case, methods=["POST"])],
        lifespan=lifespan,
    )


def serve_bare(port: int, dsn: str, access_log: bool) -> None:
    import uvicorn

    # The same uvicorn settings as ``hotline serve`` (hotline/cli.py): defaults plus proxy_headers.
    uvicorn.run(bare_app(dsn), host="127.0.0.1", port=port, proxy_headers=True, access_log=access_log)


# ---- machine facts -------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process named postgres (all databases: other users' load shows up too)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = proc_cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def postgres_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # Backends that exited in between are lost (an undercount), never negative.
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v) - idle) / CLK_TCK, sum(v) / CLK_TCK
    except (OSError, ValueError):
        return 0.0, 0.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- load --------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[k]


class Target:
    def __init__(self, name: str, base: str, pid: int, headers: dict[str, str]):
        self.name, self.base, self.pid, self.headers = name, base, pid, headers
        self.created = 0  # every 201, warm-ups included: compared with the rows at the end
        self.failed = 0
        self.failures: list[str] = []  # the first few, for the report
        self.latencies: list[float] = []  # measured phases only, seconds
        self.measured_requests = 0
        self.measured_seconds = 0.0
        self.server_cpu = 0.0
        self.client_cpu = 0.0
        self.pg_cpu = 0.0
        self.machine_busy = 0.0
        self.machine_total = 0.0
        self.rounds: list[dict] = []


async def drive(clients: list, target: Target, seconds: float) -> tuple[int, float, list[float]]:
    """One worker per client posts cases back to back for ``seconds``; returns (ok, elapsed, latencies)."""
    body = json.dumps(CASE_BODY, ensure_ascii=False).encode()
    headers = {**target.headers, "content-type": "application/json"}
    url = target.base + "/api/cases"
    latencies: list[float] = []
    ok = 0
    deadline = time.perf_counter() + seconds

    def failed(message: str) -> None:
        target.failed += 1
        if len(target.failures) < 5:
            target.failures.append(message)

    async def worker(client):
        nonlocal ok
        while time.perf_counter() < deadline:
            if target.failed > 1000:
                return  # a broken server: stop hammering it, the run is invalid anyway
            t0 = time.perf_counter()
            try:
                r = await client.post(url, content=body, headers=headers)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                failed(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 201:
                ok += 1
            else:
                failed(f"HTTP {r.status_code}: {r.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - start
    target.created += ok
    return ok, elapsed, latencies


async def run_round(target: Target, concurrency: int, warmup: float, seconds: float, round_no: int) -> None:
    import httpx

    # One client (and so one keep-alive connection) per worker: a single httpx.AsyncClient
    # shared by 32 workers spends ~3x more CPU per request in its connection pool and
    # became the bottleneck (measured: 270 vs 640 bare cases/s on 2 CPUs).
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30.0)
            )
            for _ in range(concurrency)
        ]
        if warmup > 0:
            await drive(clients, target, warmup)
        s0, c0, p0 = proc_cpu_seconds(target.pid), time.process_time(), postgres_cpu()
        b0, t0 = machine_busy_seconds()
        ok, elapsed, latencies = await drive(clients, target, seconds)
        s1, c1, p1 = proc_cpu_seconds(target.pid), time.process_time(), postgres_cpu()
        b1, t1 = machine_busy_seconds()
    target.latencies += latencies
    target.measured_requests += ok
    target.measured_seconds += elapsed
    target.server_cpu += s1 - s0
    target.client_cpu += c1 - c0
    target.pg_cpu += postgres_cpu_delta(p0, p1)
    target.machine_busy += b1 - b0
    target.machine_total += t1 - t0
    lat = sorted(latencies)
    rnd = {
        "round": round_no,
        "rps": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "server_cpu_ms_per_req": (s1 - s0) / ok * 1000 if ok else float("nan"),
    }
    target.rounds.append(rnd)
    print(
        f"  round {round_no} {target.name:<4}: {rnd['rps']:7.1f} cases/s  p50 {rnd['p50_ms']:6.1f} ms  "
        f"p99 {rnd['p99_ms']:6.1f} ms  server CPU {rnd['server_cpu_ms_per_req']:.2f} ms/req  "
        f"({ok} requests in {elapsed:.1f} s)",
        flush=True,
    )


def summary(t: Target) -> dict:
    lat = sorted(t.latencies)
    n = t.measured_requests or 1
    secs = t.measured_seconds or 1
    return {
        "rps": t.measured_requests / secs,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "requests": t.measured_requests,
        "seconds": t.measured_seconds,
        "server_cpu_ms_per_req": t.server_cpu / n * 1000,
        "server_cores": t.server_cpu / secs,
        "loadgen_cores": t.client_cpu / secs,
        "postgres_cores": t.pg_cpu / secs,
        "machine_busy_pct": 100 * t.machine_busy / t.machine_total if t.machine_total else float("nan"),
    }


# ---- setup and teardown ----------------------------------------------------------------------


async def create_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def prepare(url: str) -> tuple[int, str]:
    """Migrate the private database; create the agent and its token. Returns (user id, token)."""
    from tortoise import Tortoise

    from cases.models import User
    from hotline.auth import hash_password, issue_token
    from hotline.db import migrate, tortoise_config
    from hotline.settings import Settings

    await migrate(Settings(database_url=url))
    await Tortoise.init(config=tortoise_config(url))
    try:
        user = await User.create(
            username=BENCH_USERNAME,
            display_name="压测话务员",
            role="agent",
            password_hash=hash_password(secrets.token_urlsafe(16) + "-1a"),
        )
        token = await issue_token(user, "bench")
        return user.id, token
    finally:
        await Tortoise.close_connections()


async def server_facts(dsn: str) -> dict:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return {
            "postgres": (await conn.fetchval("SHOW server_version")).split()[0],
            "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
        }
    finally:
        await conn.close()


async def count_rows(dsn: str, user_id: int) -> dict[str, int]:
    import asyncpg

    is_bare = f"split_part(number, '-', 2)::int >= {BARE_SEQ_BASE}"
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "full_cases": await conn.fetchval(
                f'SELECT count(*) FROM "case" WHERE created_by_id = $1 AND NOT ({is_bare})', user_id
            ),
            "bare_cases": await conn.fetchval(
                f'SELECT count(*) FROM "case" WHERE created_by_id = $1 AND {is_bare}', user_id
            ),
            "all_cases": await conn.fetchval('SELECT count(*) FROM "case"'),
            "events": await conn.fetchval(
                "SELECT count(*) FROM case_event WHERE action = 'create' AND actor_id = $1", user_id
            ),
            "cases_without_one_event": await conn.fetchval(
                'SELECT count(*) FROM "case" c WHERE (SELECT count(*) FROM case_event e '
                "WHERE e.case_id = c.id AND e.action = 'create') <> 1"
            ),
        }
    finally:
        await conn.close()


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {base} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                time.sleep(0.5)
                if proc.poll() is not None:  # something else answered on that port
                    raise RuntimeError(
                        f"server {base} exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                    )
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server {base} did not become healthy:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---- the benchmark ---------------------------------------------------------------------------


def run(args) -> int:
    url = postgres_url_from_env()
    admin_dsn = asyncpg_dsn(url)
    name = f"hotline_bench_{secrets.token_hex(4)}"
    bench_url = with_database(url, name)
    bench_dsn = asyncpg_dsn(bench_url)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    full_proc = bare_proc = None
    created_db = False
    try:
        import httpx
        import starlette
        import tortoise
        import uvicorn

        asyncio.run(create_database(admin_dsn, name))
        created_db = True
        user_id, token = asyncio.run(prepare(bench_url))
        facts = asyncio.run(server_facts(bench_dsn))

        full_port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "HOTLINE_STORAGE_DIR": str(workdir / "attachments"),
            # Intake is what is measured; routing (classify, place, dispatch) is a
            # separate stage run after the response, measured with --with-routing.
            "HOTLINE_AUTO_ROUTE": "1" if args.with_routing else "0",
        }
        hotline_cmd = shutil.which("hotline", path=str(Path(sys.executable).parent)) or shutil.which(
            "hotline"
        )
        if not hotline_cmd:
            refuse("the `hotline` command is not installed (pip install -e .)")
        full_log, bare_log = workdir / "full.log", workdir / "bare.log"
        full_proc = start(
            [hotline_cmd, "serve", "--host", "127.0.0.1", "--port", str(full_port)], env, full_log
        )
        bare_cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port), bench_dsn]
        if not args.bare_access_log:
            bare_cmd.append("--no-access-log")
        bare_proc = start(bare_cmd, env, bare_log)
        full_base, bare_base = f"http://127.0.0.1:{full_port}", f"http://127.0.0.1:{bare_port}"
        wait_healthy(full_base, full_proc, full_log)
        wait_healthy(bare_base, bare_proc, bare_log)

        full = Target("full", full_base, full_proc.pid, {"authorization": f"Bearer {token}"})
        bare = Target("bare", bare_base, bare_proc.pid, {})
        # One request each, checked field by field, before any timing.
        for t in (full, bare):
            r = httpx.post(t.base + "/api/cases", json=CASE_BODY, headers=t.headers, timeout=30)
            if r.status_code != 201:
                raise RuntimeError(f"{t.name}: first request got {r.status_code}: {r.text[:500]}")
            got = r.json()
            wrong = {k: got.get(k) for k, v in CASE_BODY.items() if got.get(k) != v}
            if wrong or got.get("status") != "received" or not got.get("number"):
                raise RuntimeError(f"{t.name}: unexpected response {got}")
            t.created += 1

        cpus = os.cpu_count()
        print("bench/intake.py: POST /api/cases, full application vs bare starlette + asyncpg")
        print(
            f"  machine: {cpus} CPUs ({cpu_model()}), Linux {platform.release()}, "
            f"Python {platform.python_version()}, PostgreSQL {facts['postgres']} "
            f"(synchronous_commit={facts['synchronous_commit']})"
        )
        print(
            f"  software: starlette {starlette.__version__}, tortoise-orm {tortoise.__version__}, "
            f"uvicorn {uvicorn.__version__} (single process, asyncio loop, default HTTP parser), "
            f"httpx {httpx.__version__}"
        )
        print(
            f"  load: {args.concurrency} concurrent clients, {args.rounds} round(s) per server, "
            f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per round, interleaved"
        )
        print(
            f"  full: `hotline serve` (uvicorn defaults, access log on, routing {'on' if args.with_routing else 'off'}); bare: uvicorn with the same settings, "
            f"access log {'on' if args.bare_access_log else 'OFF'}; pools: tortoise default and asyncpg, "
            f"max {TORTOISE_POOL_MAX} connections each"
        )
        print(
            f"  NOTE: the load generator (httpx, this process) shares the {cpus} CPUs with both servers "
            "and PostgreSQL; figures are for this machine only"
        )

        for rnd in range(1, args.rounds + 1):
            order = (full, bare) if rnd % 2 else (bare, full)  # ABBA: drift hits both alike
            for t in order:
                asyncio.run(run_round(t, args.concurrency, args.warmup, args.seconds, rnd))

        rows = asyncio.run(count_rows(bench_dsn, user_id))
        fs, bs = summary(full), summary(bare)
        problems = []
        for t, key in ((full, "full_cases"), (bare, "bare_cases")):
            if t.failed:
                problems.append(f"{t.name}: {t.failed} failed requests, first: {t.failures[0]}")
            if rows[key] != t.created:
                problems.append(
                    f"{t.name}: {t.created} requests got 201 but {rows[key]} cases are in the database"
                )
        if rows["all_cases"] != full.created + bare.created:
            problems.append(
                f"{rows['all_cases']} cases in the database, {full.created + bare.created} created"
            )
        if rows["events"] != rows["all_cases"] or rows["cases_without_one_event"]:
            problems.append(
                f"history: {rows['events']} create events for {rows['all_cases']} cases, "
                f"{rows['cases_without_one_event']} cases without exactly one event"
            )
        ratio = fs["rps"] / bs["rps"] if bs["rps"] else 0.0

        print()
        print(f"  {'':<5}{'cases/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU ms/req':>16}"
              f"{'srv cores':>11}{'loadgen cores':>15}{'pg cores':>10}{'machine busy':>14}")  # fmt: skip
        for label, s in (("full", fs), ("bare", bs)):
            print(
                f"  {label:<5}{s['rps']:9.1f}{s['p50_ms']:9.1f}{s['p99_ms']:9.1f}{s['server_cpu_ms_per_req']:16.2f}"
                f"{s['server_cores']:11.2f}{s['loadgen_cores']:15.2f}{s['postgres_cores']:10.2f}"
                f"{s['machine_busy_pct']:13.0f}%"
            )
        print(
            f"  ratio full/bare: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}); "
            f"server CPU per case: full {fs['server_cpu_ms_per_req'] / bs['server_cpu_ms_per_req']:.1f}x bare"
        )
        print(
            f"  validated: {full.created} + {bare.created} requests got 201, database holds "
            f"{rows['full_cases']} + {rows['bare_cases']} cases and {rows['events']} create events"
            + (" -- see PROBLEM below" if problems else " (all match)")
        )
        for p in problems:
            print(f"  PROBLEM: {p}")
        result = {
            "full_rps": round(fs["rps"], 1),
            "bare_rps": round(bs["rps"], 1),
            "ratio": round(ratio, 3),
            "full_p50_ms": round(fs["p50_ms"], 1),
            "full_p99_ms": round(fs["p99_ms"], 1),
            "bare_p50_ms": round(bs["p50_ms"], 1),
            "bare_p99_ms": round(bs["p99_ms"], 1),
            "full_server_cpu_ms_per_req": round(fs["server_cpu_ms_per_req"], 2),
            "bare_server_cpu_ms_per_req": round(bs["server_cpu_ms_per_req"], 2),
            "full_requests": fs["requests"],
            "bare_requests": bs["requests"],
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "cpus": cpus,
            "postgres": facts["postgres"],
            "valid": not problems,
            "routing": bool(args.with_routing),
        }
        print(json.dumps(result, ensure_ascii=False))
        return 1 if problems else 0
    finally:
        stop(full_proc)
        stop(bare_proc)
        if created_db:
            try:
                asyncio.run(drop_database(admin_dsn, name))
            except Exception as exc:  # noqa: BLE001 - say so, never hide the original error
                print(f"bench/intake.py: could not drop database {name}: {exc}", file=sys.stderr)
        if args.keep_logs:
            print(f"server logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round and server (10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each round (2)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per server (2)")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent clients (32)")
    ap.add_argument(
        "--no-bare-access-log", dest="bare_access_log", action="store_false",
        help="turn the bare server's access log off (the full server's cannot be: `hotline serve` "
        "has no option for it); shows what access logging costs",
    )  # fmt: skip
    ap.add_argument(
        "--with-routing",
        action="store_true",
        help="let the full server route each new case in-process after answering (off by default)",
    )
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    ap.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS)
    ap.add_argument("--no-access-log", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1], access_log=not args.no_access_log)
        return 0
    if args.rounds < 1 or args.seconds <= 0 or args.concurrency < 1:
        ap.error("--rounds, --seconds and --concurrency must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
