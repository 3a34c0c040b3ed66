"""The timer sweep on PostgreSQL: 1,000,000 open cases, 1 % of them due.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/sweep.py
    # options: --cases 1000000 --due-share 0.01 --idle-runs 20 --batch 50 --quick --no-add-index

What it does, in one run:

1. creates a private database ``hotline_bench_sweep_<random>`` on the server
   named by ``DATABASE_URL``, migrates it with ``hotline.db.migrate``, adds a
   centre and 8 departments with 2 handlers each, then bulk-loads the cases
   with asyncpg ``copy_records_to_table`` straight into ``"case"``: all
   ``in_progress`` (dispatched, signed, contacted, lead unit set, reply clock
   running, budgets of the default policies: 24 h, 7 d, 15 d, 2 d), so the
   reply clock is the only one running. ``next_due_at`` is that clock's warn
   step (75 % of the budget), as ``cases.timers.schedule`` would store it:
   in the future for 99 %, already passed (reply deadline still ahead) for
   the due 1 %. No ``case_assignment`` rows: the timer action reads the case
   only (the system actor has no unit) and its notifications look up the lead
   unit's users. ``ANALYZE`` afterwards;
2. prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the sweep's own claim query
   (``cases.sweep._CLAIM_PG``), also as the generic plan a prepared statement
   switches to, and says whether it reads an index on ``next_due_at``;
3. due pass: times one ``sweep()`` call that handles every due case, then
   checks exactly one ``timer`` history row per due case and none for any
   other case, two ``deadline_warning`` notifications per case (the lead
   unit's two handlers, distinct keys), and the new schedule on each case;
4. idle pass: after that, with nothing due, times ``sweep()`` ``--idle-runs``
   times (min / median / p95);
5. if the migrated schema has no index on ``next_due_at`` the script says so,
   creates one (what the model's ``db_index=True`` asks for) and repeats 2-4
   on fresh due cases, so one run shows the schema as migrated and as meant
   (``--no-add-index`` skips this);
6. baseline, same run: a hand-written asyncpg sweep over another set of due
   cases, writing the same rows (claim a batch of 50 ``FOR UPDATE SKIP
   LOCKED`` in one transaction; per case ``UPDATE … WHERE id AND version``,
   one ``case_event`` row, two ``notification`` rows), checked the same way;
7. drops the database (also on failure).

Besides wall time it prints the CPU used per case by this process (Python,
tortoise) and by the PostgreSQL backends serving this database, and the
statements sent per case (asyncpg calls counted in this process): on this
noisy machine those are steadier than cases/s.

The last line printed is one JSON object (``open_cases``, ``due_cases``,
``idle_sweep_ms``, ``due_sweep_s``, ``index_used``, ...). Headline keys
describe the schema as migrated; ``*_with_index`` keys the run after the
script added the missing index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

DEPARTMENTS = ["市住建局", "市城管局", "市生态环境局", "市交通运输局", "市市场监管局", "市人社局", "市教育局", "市卫健委"]
HANDLERS_PER_UNIT = 2
CATEGORIES = ["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"]
CONTENTS = [
    "小区楼道灯坏了一个月没人修，多次向物业反映无果。",
    "夜间施工噪音扰民，凌晨两点还在打桩。",
    "路边餐馆油烟直排，楼上住户无法开窗。",
    "公司拖欠三个月工资，要求尽快发放。",
    "公交站台遮雨棚破损，下雨天无处避雨。",
]
# urgency: (share, reply budget, sign budget, contact budget) — the default policies'
# reply limits in elapsed time (7d/15d/24h are calendar time; consult's 2wd taken as 2 d).
URGENCY_MIX = [
    ("general", 0.70, timedelta(days=7), timedelta(days=1), timedelta(days=1)),
    ("complex", 0.15, timedelta(days=15), timedelta(days=1), timedelta(days=1)),
    ("urgent", 0.05, timedelta(hours=24), timedelta(minutes=30), timedelta(hours=2)),
    ("utilities", 0.05, timedelta(hours=24), timedelta(hours=1), timedelta(hours=4)),
    ("consult", 0.05, timedelta(days=2), timedelta(days=1), None),
]
# Nothing that is not due at seeding falls due during the run (the 1M run takes minutes).
FUTURE_MARGIN = timedelta(hours=2)
QUERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
SHANGHAI_OFFSET = timedelta(hours=8)


def refuse(message: str) -> None:
    print(f"bench/sweep.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---- measuring ------------------------------------------------------------------------------


class Statements:
    """Counts asyncpg calls made by this process (each is one statement, most one round trip)."""

    n = 0

    @classmethod
    def install(cls) -> None:
        from asyncpg.connection import Connection

        for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            original = getattr(Connection, name)

            def wrapped(self, *a, _original=original, **k):
                cls.n += 1
                return _original(self, *a, **k)

            setattr(Connection, name, wrapped)


def _proc_cpu(pid: int | str) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Meter:
    """Wall time, this process's CPU, CPU of the PostgreSQL backends of our database, statements."""

    def __init__(self, admin: asyncpg.Connection, dbname: str):
        self.admin, self.dbname = admin, dbname

    async def _backends(self) -> dict[int, float]:
        pids = await self.admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.dbname)
        return {r["pid"]: _proc_cpu(r["pid"]) for r in pids}

    async def start(self) -> None:
        self.pg0 = await self._backends()
        self.st0 = Statements.n
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    async def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu0
        statements = Statements.n - self.st0
        pg1 = await self._backends()
        pg = sum(pg1[p] - self.pg0.get(p, 0.0) for p in pg1)
        return {"wall_s": wall, "py_cpu_s": cpu, "pg_cpu_s": pg, "statements": statements}


# ---- the database -----------------------------------------------------------------------------


async def seed_units(conn: asyncpg.Connection, now: datetime) -> dict[int, list[int]]:
    centre = await conn.fetchval(
        "INSERT INTO unit (name, kind, is_active, created_at) VALUES ('12345热线中心', 'centre', true, $1) RETURNING id", now)
    await conn.execute(
        'INSERT INTO "user" (username, display_name, role, unit_id, password_hash, session_version, is_active, created_at, phone) '
        "VALUES ('bench_dispatcher', '派单员', 'dispatcher', $1, 'x', 1, true, $2, '13700000000')", centre, now)
    handlers: dict[int, list[int]] = {}
    for d, name in enumerate(DEPARTMENTS):
        unit = await conn.fetchval(
            "INSERT INTO unit (name, kind, is_active, created_at) VALUES ($1, 'functional', true, $2) RETURNING id", name, now)
        handlers[unit] = []
        for h in range(HANDLERS_PER_UNIT):
            uid = await conn.fetchval(
                'INSERT INTO "user" (username, display_name, role, unit_id, password_hash, session_version, is_active, created_at, phone) '
                "VALUES ($1, $2, 'handler', $3, 'x', 1, true, $4, $5) RETURNING id",
                f"bench_h{d}_{h}", f"{name}经办{h + 1}", unit, now, f"139{d:04d}{h:04d}")
            handlers[unit].append(uid)
    return handlers


async def case_columns(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'case' ORDER BY ordinal_position")


async def seed_cases(conn: asyncpg.Connection, n: int, due: set[int], unit_ids: list[int], now: datetime,
                     rnd: random.Random) -> dict:
    """COPY ``n`` in-progress cases; index ``i`` in ``due`` gets its reply warning already due."""
    from cases import timers

    ladder = timers.Ladder()
    cols = await case_columns(conn)
    names = [c["column_name"] for c in cols]
    base = {name: None for name in names}
    base.update(
        query_code="", version=1, status="in_progress", channel="phone", request_type="complaint",
        category_l2="", category_l3="", title="", caller_name="市民", confidential=False, address="",
        deadlines_provisional=False, reply_text="", close_reason="", out_of_scope_channel="", return_reason="",
        extension_reason="", callback_resolved="", callback_satisfaction="", callback_attempts=0, return_count=0,
        rehandle_count=0, extension_count=0, supervision_level=0, unreasonable="", keywords="", light="green",
        routing_state="done", timer_marks="{}",
    )
    per_row = {"id", "number", "query_code", "category_l1", "content", "caller_phone", "district_code", "street_code",
               "urgency", "lead_unit_id", "created_at", "accept_due", "dispatched_at", "reply_started_at", "sign_due",
               "contact_due", "reply_due", "return_until", "signed_at", "contacted_at", "updated_at", "next_due_at",
               "routing_confidence"}
    # Every NOT NULL column (none has a database default) must get a value here.
    missing = [c["column_name"] for c in cols
               if c["is_nullable"] == "NO" and base[c["column_name"]] is None and c["column_name"] not in per_row]
    if missing:
        raise RuntimeError(f"seed gives no value for NOT NULL columns {missing}")
    pos = {name: i for i, name in enumerate(names)}
    template = [base[name] for name in names]
    weights = [m[1] for m in URGENCY_MIX]
    per_day: dict[str, int] = {}
    sample_checks = []
    started = time.perf_counter()
    chunk: list[tuple] = []
    copied = 0
    for i in range(n):
        urgency, _, budget, sign_limit, contact_limit = rnd.choices(URGENCY_MIX, weights)[0]
        if i in due:
            # warn step (75 %) passed, deadline still ahead
            age = rnd.uniform(0.75 * budget.total_seconds() + 600, (budget - FUTURE_MARGIN).total_seconds())
        else:
            age = rnd.uniform(3600, (0.75 * budget - FUTURE_MARGIN).total_seconds())
        dispatched = now - timedelta(seconds=age)
        created = dispatched - timedelta(seconds=rnd.uniform(300, 7200))
        reply_due = dispatched + budget
        next_due = timers.Clock("reply", dispatched, reply_due).at(timers.WARN, ladder)
        local_day = (created + SHANGHAI_OFFSET).strftime("%Y%m%d")
        seq = per_day[local_day] = per_day.get(local_day, 0) + 1
        district = rnd.choice(("430102", "430103", "430104", "430105", "430111"))
        row = list(template)
        signed = dispatched + timedelta(seconds=age * 0.2)
        contacted = dispatched + timedelta(seconds=age * 0.4)
        for name, value in (
            ("id", i + 1), ("number", f"{local_day}-{seq:06d}"),
            ("query_code", "".join(rnd.choice(QUERY_ALPHABET) for _ in range(6))),
            ("category_l1", rnd.choice(CATEGORIES)), ("content", rnd.choice(CONTENTS)),
            ("caller_phone", f"138{i:08d}"), ("district_code", district),
            ("street_code", f"{district}{rnd.randrange(1, 20):03d}"), ("urgency", urgency),
            ("lead_unit_id", rnd.choice(unit_ids)), ("created_at", created),
            ("accept_due", created + timedelta(minutes=30)), ("dispatched_at", dispatched),
            ("reply_started_at", dispatched), ("sign_due", dispatched + sign_limit),
            ("contact_due", dispatched + contact_limit if contact_limit else None),
            ("reply_due", reply_due), ("return_until", dispatched + timedelta(days=2)),
            ("signed_at", signed), ("contacted_at", contacted), ("updated_at", contacted),
            ("next_due_at", next_due), ("routing_confidence", 0.9),
        ):
            row[pos[name]] = value
        if i % max(1, n // 500) == 0:
            sample_checks.append(dict(zip(names, row)))
        chunk.append(tuple(row))
        if len(chunk) == 50_000:
            await conn.copy_records_to_table("case", records=chunk, columns=names)
            copied += len(chunk)
            chunk = []
            if copied % 200_000 == 0:
                print(f"  … {copied:,} cases copied ({time.perf_counter() - started:.0f} s)", flush=True)
    if chunk:
        await conn.copy_records_to_table("case", records=chunk, columns=names)
    await conn.execute("SELECT setval('case_id_seq', $1)", n)
    # The stored schedule must be what perform would have stored.
    for row in sample_checks:
        row["timer_marks"] = {}
        expected, light = timers.schedule(row, now, ladder)
        if expected != row["next_due_at"] or light != "green":
            raise RuntimeError(f"seeded schedule of {row['number']} differs from timers.schedule: {expected} {light}")
    return {"seconds": time.perf_counter() - started}


async def arm(conn: asyncpg.Connection, ids: list[int], now: datetime) -> None:
    """Move these cases' whole history back so the reply warning is due (80 % of the budget gone)."""
    from cases import timers

    ladder = timers.Ladder()
    rows = await conn.fetch(
        'SELECT id, created_at, accept_due, dispatched_at, signed_at, contacted_at, sign_due, contact_due, '
        'return_until, reply_due, updated_at, reply_started_at FROM "case" WHERE id = ANY($1::int[])', ids)
    records = []
    for r in rows:
        budget = r["reply_due"] - r["reply_started_at"]
        shift = (now - 0.8 * budget) - r["reply_started_at"]
        moved = {k: (r[k] + shift if r[k] is not None else None) for k in r.keys() if k != "id"}
        next_due = timers.Clock("reply", moved["reply_started_at"], moved["reply_due"]).at(timers.WARN, ladder)
        records.append((r["id"], moved["created_at"], moved["accept_due"], moved["dispatched_at"], moved["signed_at"],
                        moved["contacted_at"], moved["sign_due"], moved["contact_due"], moved["return_until"],
                        moved["reply_due"], moved["updated_at"], moved["reply_started_at"], next_due))
    await conn.executemany(
        'UPDATE "case" SET created_at=$2, accept_due=$3, dispatched_at=$4, signed_at=$5, contacted_at=$6, sign_due=$7, '
        'contact_due=$8, return_until=$9, reply_due=$10, updated_at=$11, reply_started_at=$12, next_due_at=$13 '
        "WHERE id=$1", records)


async def next_due_indexes(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'case'")
    return [r["indexname"] for r in rows if re.search(r'USING btree \("?next_due_at"?[,)]', r["indexdef"])]


def tortoise_index_name(table: str, field: str) -> str:
    """The name tortoise gives a ``db_index=True`` column's index."""
    from tortoise.migrations.schema_editor.base import BaseSchemaEditor

    return f"idx_{table[:11]}_{field[:7]}_{BaseSchemaEditor._make_hash(table, field, length=6)}"


async def explain(conn: asyncpg.Connection, batch: int, indexes: list[str]) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the sweep's claim query, rolled back; and its generic plan."""
    from cases.sweep import _CLAIM_PG

    now = utcnow()
    tr = conn.transaction()
    await tr.start()
    try:
        plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + _CLAIM_PG, now, batch)]
        # What a prepared statement runs after its fifth execution, if PostgreSQL prefers the generic plan.
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE bench_claim(timestamptz, bigint) AS " + _CLAIM_PG)
        generic = [r[0] for r in await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim('{now.isoformat()}', {batch})")]
    finally:
        await tr.rollback()
    await conn.execute("DEALLOCATE bench_claim")

    def verdict(lines: list[str]) -> tuple[bool, str]:
        scan = next((l.strip().lstrip("-> ").strip() for l in lines if "Scan" in l and ('"case"' in l or " on case" in l)), "")
        uses = any(("Index Scan" in l or "Index Only Scan" in l) and any(ix in l for ix in indexes) for l in lines)
        seq = any("Seq Scan on" in l and ("case" in l) for l in lines)
        return uses and not seq, scan

    used, key = verdict(plan)
    used_generic, key_generic = verdict(generic)
    ms = next((float(l.split(":")[1].split()[0]) for l in plan if l.startswith("Execution Time")), None)
    return {"plan": plan, "generic": generic, "index_used": used and used_generic, "key_line": key,
            "key_line_generic": key_generic, "execution_ms": ms}


# ---- the passes ------------------------------------------------------------------------------


async def watermarks(conn: asyncpg.Connection) -> tuple[int, int]:
    e = await conn.fetchval("SELECT coalesce(max(id), 0) FROM case_event")
    n = await conn.fetchval("SELECT coalesce(max(id), 0) FROM notification")
    return e, n


async def verify(conn: asyncpg.Connection, ids: list[int], marks: tuple[int, int]) -> list[str]:
    """Problems with what one pass wrote for these due cases (empty list: all as expected)."""
    due = len(ids)
    problems = []
    ev = await conn.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE action = 'timer') AS timer, count(DISTINCT case_id) AS cases, "
        "count(*) FILTER (WHERE case_id = ANY($2::int[])) AS ours FROM case_event WHERE id > $1", marks[0], ids)
    if not (ev["n"] == ev["timer"] == ev["cases"] == ev["ours"] == due):
        problems.append(f"history: {dict(ev)}, expected {due} timer rows, one per due case")
    no = await conn.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT n.key) AS keys, count(DISTINCT (n.case_id, n.user_id, n.template)) AS uniq, "
        "count(*) FILTER (WHERE n.template = 'deadline_warning' AND u.role = 'handler' AND u.unit_id = c.lead_unit_id) AS right "
        'FROM notification n JOIN "case" c ON c.id = n.case_id JOIN "user" u ON u.id = n.user_id WHERE n.id > $1', marks[1])
    expected = due * HANDLERS_PER_UNIT
    if not (no["n"] == no["keys"] == no["uniq"] == no["right"] == expected):
        problems.append(f"notifications: {dict(no)}, expected {expected} (2 handlers of the lead unit per case, no duplicates)")
    cs = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE light = 'yellow' AND timer_marks->'reply'->>'step' = 'warn' "
        "AND next_due_at = reply_due AND version = 2) AS ok FROM \"case\" WHERE id = ANY($1::int[])", ids)
    if cs["ok"] != due:
        problems.append(f"cases: {cs['ok']} of {due} show the warn step taken (yellow, marks, next_due_at = reply_due, version 2)")
    left = await conn.fetchval('SELECT count(*) FROM "case" WHERE next_due_at <= $1', utcnow())
    if left:
        problems.append(f"{left} cases still due after the pass")
    return problems


async def due_pass(label: str, admin_meter: Meter, conn: asyncpg.Connection, ids: list[int], batch: int) -> dict:
    from cases.lifecycle import SlaContext
    from cases.sweep import sweep

    marks = await watermarks(conn)
    await admin_meter.start()
    stats = await sweep(SlaContext(), now=utcnow(), batch=batch)
    m = await admin_meter.stop()
    problems = verify_stats(stats.to_dict(), len(ids)) + await verify(conn, ids, marks)
    return report_pass(label, m, len(ids), problems, stats.to_dict())


def verify_stats(stats: dict, due: int) -> list[str]:
    ok = (stats["looked_at"] == stats["acted"] == due and not stats["failed"] and not stats["lost_races"]
          and stats["steps"] == {"reply:warn": due})
    return [] if ok else [f"sweep stats {stats}, expected {due} reply:warn steps"]


def report_pass(label: str, m: dict, due: int, problems: list[str], stats: dict | None = None) -> dict:
    rate = due / m["wall_s"]
    print(f"  {label}: {due:,} cases in {m['wall_s']:.2f} s = {rate:,.0f} cases/s; per case "
          f"{m['wall_s'] / due * 1000:.2f} ms wall, {m['py_cpu_s'] / due * 1000:.2f} ms Python CPU, "
          f"{m['pg_cpu_s'] / due * 1000:.2f} ms PostgreSQL CPU, {m['statements'] / due:.1f} statements")
    if stats is not None:
        print(f"    sweep stats: {stats}")
    for p in problems:
        print(f"    PROBLEM: {p}")
    if not problems:
        print(f"    checked: {due:,} timer history rows, one per due case; {due * HANDLERS_PER_UNIT:,} deadline_warning "
              "notifications to the lead unit's handlers, distinct keys; every case yellow, warn marked, next step at its deadline")
    return {**m, "due": due, "cases_per_s": rate, "problems": problems}


async def idle_pass(runs: int) -> dict:
    from cases.lifecycle import SlaContext
    from cases.sweep import sweep

    ctx = SlaContext()
    await sweep(ctx, now=utcnow())  # warm-up, not counted
    times, looked = [], 0
    st0 = Statements.n
    for _ in range(runs):
        t = time.perf_counter()
        stats = await sweep(ctx, now=utcnow())
        times.append((time.perf_counter() - t) * 1000)
        looked += stats.looked_at
    return {"min": min(times), "median": statistics.median(times), "p95": pct(times, 95), "max": max(times),
            "looked_at": looked, "statements": (Statements.n - st0) / runs}


async def bare_sweep(conn: asyncpg.Connection, batch: int, handlers: dict[int, list[int]]) -> int:
    """The same rows as the timer action writes for a reply warning, hand-written with asyncpg."""
    claim = ('SELECT id, number, version, status, reply_due, lead_unit_id FROM "case" WHERE "next_due_at" <= $1 '
             'ORDER BY "next_due_at" LIMIT $2 FOR UPDATE SKIP LOCKED')
    update = ('UPDATE "case" SET timer_marks = $1, supervision_level = supervision_level, version = $2, '
              "updated_at = $3, next_due_at = $4, light = 'yellow' WHERE id = $5 AND version = $6")
    event = ("INSERT INTO case_event (case_id, action, actor_id, actor_name, actor_role, unit_id, from_status, to_status, "
             "payload, created_at) VALUES ($1, 'timer', NULL, '系统', 'system', NULL, $2, $2, $3, $4)")
    note = ("INSERT INTO notification (key, case_id, recipient_kind, user_id, channel, address, template, body, status, "
            "attempts, error, created_at, updated_at) VALUES ($1, $2, 'user', $3, 'sms', $4, 'deadline_warning', $5, "
            "'pending', 0, '', $6, $6)")
    phones = {}
    for unit, uids in handlers.items():
        for uid in uids:
            phones[uid] = await conn.fetchval('SELECT phone FROM "user" WHERE id = $1', uid)
    now = utcnow()
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(claim, now, batch)
            for r in rows:
                due = r["reply_due"].isoformat()
                marks = json.dumps({"reply": {"due": due, "step": "warn"}}, separators=(",", ":"))
                status = await conn.execute(update, marks, r["version"] + 1, now, r["reply_due"], r["id"], r["version"])
                if status != "UPDATE 1":
                    continue
                payload = json.dumps({"note": "", "steps": [{"stage": "reply", "step": "warn", "due": due, "skipped": []}],
                                      "labels": ["答复黄灯预警"]}, ensure_ascii=False, separators=(",", ":"))
                await conn.execute(event, r["id"], r["status"], payload, now)
                body = f"【12345】工单{r['number']}的答复时限将于{due}到期，请抓紧办理。"
                await conn.executemany(note, [(f"{r['id']}:{r['version'] + 1}:deadline_warning:u{uid}", r["id"], uid,
                                               phones[uid], body, now) for uid in handlers[r["lead_unit_id"]]])
                done += 1
        if len(rows) < batch:
            return done


# ---- main ----------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        mem = 0
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB, Linux {platform.release()}, load average {load:.1f}"


async def run(args, url: str) -> dict:
    from tortoise import Tortoise

    from hotline.db import migrate, tortoise_config
    from hotline.settings import Settings

    parts = urlsplit(url)
    name = f"hotline_bench_sweep_{secrets.token_hex(4)}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query=""))
    target = urlunsplit(parts._replace(path=f"/{name}"))
    target_pg = urlunsplit(urlsplit(target)._replace(scheme="postgresql", query=""))
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    out: dict = {}
    problems: list[str] = []
    conn = None
    try:
        await migrate(Settings(database_url=target))
        conn = await asyncpg.connect(target_pg)
        pg_version = (await conn.fetchval("SHOW server_version")).split()[0]
        settings = {k: await conn.fetchval(f"SHOW {k}") for k in ("shared_buffers", "synchronous_commit", "work_mem")}
        import tortoise as _t
        print(f"bench/sweep.py on {machine()}")
        print(f"  Python {sys.version.split()[0]}, PostgreSQL {pg_version} ({', '.join(f'{k}={v}' for k, v in settings.items())}), "
              f"tortoise-orm {_t.__version__}, asyncpg {asyncpg.__version__}; database {name}")

        n = args.cases
        due_n = round(n * args.due_share)
        rnd = random.Random(12345)
        now = utcnow()
        handlers = await seed_units(conn, now)
        unit_ids = sorted(handlers)
        # Three disjoint sets of due cases: due at seeding, re-armed for the run with the index, for the baseline.
        pick = rnd.sample(range(n), 3 * due_n)
        groups = [sorted(pick[k * due_n:(k + 1) * due_n]) for k in range(3)]
        print(f"  seeding {n:,} in-progress cases ({due_n:,} = {args.due_share:.1%} due) with COPY …", flush=True)
        seeded = await seed_cases(conn, n, set(groups[0]), unit_ids, now, rnd)
        t = time.perf_counter()
        await conn.execute('ANALYZE "case"')
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('\"case\"'))")
        print(f"  seeded in {seeded['seconds']:.0f} s, ANALYZE {time.perf_counter() - t:.1f} s; \"case\" with its indexes: {size}")
        counts = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE next_due_at IS NOT NULL AND status NOT IN ('closed','rejected','transferred_out','merged')) AS open, "
            "count(*) FILTER (WHERE next_due_at <= $1) AS due FROM \"case\"", utcnow())
        if counts["open"] != n or counts["due"] != due_n:
            problems.append(f"seeded {dict(counts)}, expected {n} open, {due_n} due")
        out.update(open_cases=counts["open"], due_cases=counts["due"], batch=args.batch)

        await Tortoise.init(config=tortoise_config(target))
        Statements.install()
        meter = Meter(admin, name)
        ids = [[i + 1 for i in g] for g in groups]

        indexes = await next_due_indexes(conn)
        phases = [("as migrated", "")]
        if not indexes:
            print("  NOTE: the migrated schema has NO index on \"case\".next_due_at (migration 0004 adds the column with "
                  "db_index=True, but tortoise's AddField does not create the index)")
            if not args.no_add_index:
                phases.append(("with index", "_with_index"))
        for k, (label, suffix) in enumerate(phases):
            if suffix:
                ix = tortoise_index_name("case", "next_due_at")
                t = time.perf_counter()
                await conn.execute(f'CREATE INDEX "{ix}" ON "case" ("next_due_at")')
                await conn.execute('ANALYZE "case"')
                print(f"\n  [{label}] CREATE INDEX \"{ix}\" ON \"case\" (\"next_due_at\"): {time.perf_counter() - t:.1f} s; "
                      f"re-arming {due_n:,} other cases as due")
                await arm(conn, ids[k], utcnow())
                indexes = await next_due_indexes(conn)
            else:
                print(f"\n  [{label}] indexes on next_due_at: {indexes or 'none'}")
            plan_due = await explain(conn, args.batch, indexes)
            print(f"  claim query with {due_n:,} due, EXPLAIN (ANALYZE, BUFFERS): {plan_due['key_line']} … "
                  f"{plan_due['execution_ms']} ms")
            d = await due_pass(f"due pass ({label})", meter, conn, ids[k], args.batch)
            problems += d["problems"]
            plan = await explain(conn, args.batch, indexes)
            print("  claim query with nothing due, EXPLAIN (ANALYZE, BUFFERS):")
            for line in plan["plan"]:
                print(f"      {line}")
            print(f"    generic plan (prepared statement after 5 runs): "
                  f"{' | '.join(l.strip() for l in plan['generic'] if 'Scan' in l or 'Execution' in l)}")
            print(f"    index on next_due_at used: {'yes' if plan['index_used'] else 'NO'}")
            idle = await idle_pass(args.idle_runs)
            if idle["looked_at"]:
                problems.append(f"idle passes looked at {idle['looked_at']} cases")
            verdict = "met" if idle["median"] < 50 else "MISSED"
            print(f"  idle pass ({label}), {args.idle_runs} runs: min {idle['min']:.2f} ms, median {idle['median']:.2f} ms, "
                  f"p95 {idle['p95']:.2f} ms, max {idle['max']:.2f} ms, {idle['statements']:.0f} statements "
                  f"(target median < 50 ms: {verdict})")
            out.update({
                f"idle_sweep_ms{suffix}": round(idle["median"], 2),
                f"idle_sweep_ms_min{suffix}": round(idle["min"], 2),
                f"idle_sweep_ms_p95{suffix}": round(idle["p95"], 2),
                f"due_sweep_s{suffix}": round(d["wall_s"], 2),
                f"due_cases_per_s{suffix}": round(d["cases_per_s"], 1),
                f"due_py_cpu_ms_per_case{suffix}": round(d["py_cpu_s"] / due_n * 1000, 3),
                f"due_pg_cpu_ms_per_case{suffix}": round(d["pg_cpu_s"] / due_n * 1000, 3),
                f"due_statements_per_case{suffix}": round(d["statements"] / due_n, 1),
                f"index_used{suffix}": plan["index_used"],
                f"claim_plan{suffix}": plan["key_line"],
                f"claim_ms{suffix}": plan["execution_ms"],
            })
        out["index_added_by_bench"] = len(phases) > 1

        # Baseline: the same writes, hand-written, on a third set of due cases, with the schema of the last phase.
        k = len(phases)
        await arm(conn, ids[k], utcnow())
        marks = await watermarks(conn)
        bare_conn = await asyncpg.connect(target_pg)
        await meter.start()
        done = await bare_sweep(bare_conn, args.batch, handlers)
        m = await meter.stop()
        await bare_conn.close()
        b = report_pass(f"baseline, bare asyncpg ({phases[-1][0]})", m, due_n,
                        ([] if done == due_n else [f"bare sweep handled {done}"]) + await verify(conn, ids[k], marks))
        problems += b["problems"]
        last = phases[-1][1]
        out.update(
            baseline_s=round(b["wall_s"], 2), baseline_cases_per_s=round(b["cases_per_s"], 1),
            baseline_py_cpu_ms_per_case=round(b["py_cpu_s"] / due_n * 1000, 3),
            baseline_pg_cpu_ms_per_case=round(b["pg_cpu_s"] / due_n * 1000, 3),
            baseline_statements_per_case=round(b["statements"] / due_n, 1),
            ratio_due_to_baseline=round(out[f"due_sweep_s{last}"] / b["wall_s"], 2),
        )
        print(f"  full lifecycle path / bare ({phases[-1][0]}): {out['ratio_due_to_baseline']}× the wall time, "
              f"{out[f'due_py_cpu_ms_per_case{last}'] / max(out['baseline_py_cpu_ms_per_case'], 1e-9):.1f}× the Python CPU, "
              f"{out[f'due_statements_per_case{last}']} vs {out['baseline_statements_per_case']} statements per case")
        await Tortoise.close_connections()
    finally:
        if conn is not None:
            await conn.close()
        try:
            from tortoise import Tortoise as T
            await T.close_connections()
        except Exception:
            pass
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    out.update(cpus=os.cpu_count(), postgres=pg_version, valid=not problems,
               target_met=out.get("idle_sweep_ms", 1e9) < 50 and bool(out.get("index_used")))
    for p in problems:
        print(f"PROBLEM: {p}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="timer sweep on PostgreSQL")
    ap.add_argument("--cases", type=int, default=1_000_000, help="open cases (default 1,000,000)")
    ap.add_argument("--due-share", type=float, default=0.01, help="share of them due (default 0.01)")
    ap.add_argument("--idle-runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50, help="sweep batch (HOTLINE_SWEEP_BATCH default 50)")
    ap.add_argument("--quick", action="store_true", help="20,000 cases: a smoke test in seconds")
    ap.add_argument("--no-add-index", action="store_true",
                    help="measure the schema as migrated only, even without an index on next_due_at")
    args = ap.parse_args()
    if args.quick:
        args.cases = 20_000
    if not 0 < args.due_share <= 0.3:
        refuse("--due-share must be in (0, 0.3]: three disjoint sets of due cases are taken")
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        refuse("needs DATABASE_URL=postgres://… (the sweep's claim query is PostgreSQL's)")
    figures = asyncio.run(run(args, url))
    print(json.dumps(figures, ensure_ascii=False))
    return 0 if figures["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
