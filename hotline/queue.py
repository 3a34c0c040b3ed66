"""The only module that knows arq: the worker's settings, enqueueing, the health check.

arq is at-least-once and keeps little state: a killed worker's jobs are lost
or re-run. Nothing here relies on a job running exactly once: the periodic
``tick`` finds its work in the database, and the jobs are idempotent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from arq import create_pool, cron
from arq.connections import ArqRedis, RedisSettings
from arq.worker import check_health, run_worker
from redis.exceptions import RedisError

from hotline.settings import Settings

log = logging.getLogger("hotline.queue")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A tick over a large backlog stops at its batch limit; the next one continues.
JOB_TIMEOUT = 120
HEALTH_CHECK_INTERVAL = 10
RESTART_SECONDS = 2


def redis_settings(url: str) -> RedisSettings:
    # Fail fast: the web process falls back on the sweep when Redis is away.
    return dataclasses.replace(RedisSettings.from_dsn(url), conn_timeout=1, conn_retries=0)


def _cron_fields(seconds: float) -> dict[str, Any]:
    step = max(1, int(seconds))
    if step < 60:
        return {"second": set(range(0, 60, step))}
    minutes = max(1, step // 60)
    return {"second": 0, "minute": set(range(0, 60, minutes)) if minutes < 60 else 0}


# After a failed enqueue the web process stops trying for this long, so an
# outage costs intake nothing; the sweep routes what was not queued.
BREAKER_SECONDS = 10.0


class QueueUnavailable(Exception):
    pass


class Queue:
    """Enqueueing from the web process; connects lazily and tolerates Redis being down."""

    def __init__(self, url: str):
        self.url = url
        self._pool: ArqRedis | None = None
        self._lock = asyncio.Lock()
        self._down_until = 0.0

    async def _get(self) -> ArqRedis:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(redis_settings(self.url), retry=0)
        return self._pool

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None:
        if time.monotonic() < self._down_until:
            raise QueueUnavailable("Redis was unreachable moments ago")
        try:
            pool = await asyncio.wait_for(self._get(), timeout=2)
            await asyncio.wait_for(pool.enqueue_job(name, *args, _job_id=job_id), timeout=2)
        except Exception:
            self._down_until = time.monotonic() + BREAKER_SECONDS
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


# -- the worker ---------------------------------------------------------------------


async def _startup(ctx: dict) -> None:
    from tortoise import Tortoise

    from hotline.db import tortoise_config
    from hotline.jobs import Services
    from hotline.routing_service import RoutingService

    settings: Settings = ctx["settings"]
    await Tortoise.init(config=tortoise_config(settings.database_url))
    routing = RoutingService(settings) if settings.auto_route else None
    if routing is not None:
        await routing.start()
    ctx["services"] = Services.build(settings, routing=routing)
    log.info("worker ready (sweep every %ss)", settings.sweep_seconds)


async def _shutdown(ctx: dict) -> None:
    from tortoise import Tortoise

    await Tortoise.close_connections()


async def tick_job(ctx: dict) -> dict:
    from hotline.jobs import tick

    return await tick(ctx["services"])


async def route_case(ctx: dict, case_id: int) -> str:
    from hotline.jobs import route_case as route

    return await route(ctx["services"], case_id)


def worker_settings(settings: Settings) -> dict[str, Any]:
    return {
        "functions": [route_case],
        "cron_jobs": [
            # unique: with several workers, one runs each tick; SKIP LOCKED and
            # compare-and-set make a second one harmless anyway.
            cron(tick_job, name="tick", run_at_startup=True, unique=True, timeout=JOB_TIMEOUT,
                 keep_result=0, **_cron_fields(settings.sweep_seconds)),
        ],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": _startup,
        "on_shutdown": _shutdown,
        "ctx": {"settings": settings},
        "timezone": SHANGHAI,
        "job_timeout": JOB_TIMEOUT,
        "keep_result": 0,
        "max_tries": 3,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "handle_signals": True,
    }


def run(settings: Settings) -> None:
    """Run the worker; if Redis goes away, wait for it and start again.

    arq's worker stops on a lost connection. Restarting here keeps a deadline
    sweep going without relying on a process supervisor.
    """
    while True:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            run_worker(worker_settings(settings))  # type: ignore[arg-type]
            return
        except (OSError, RedisError) as exc:
            log.warning("worker lost Redis (%s); starting again in %ss", exc, RESTART_SECONDS)
            time.sleep(RESTART_SECONDS)


def healthy(settings: Settings) -> bool:
    """True when a worker wrote its health record within the last check interval."""
    cfg = worker_settings(settings)
    return check_health(cfg) == 0  # type: ignore[arg-type]
