"""The background work, as plain async functions: timers, routing, the outbox.

The same functions run in the arq worker (``hotline/queue.py``) and, in the
embedded mode without Redis, on an interval inside the web process. None of
them needs the queue to be right: deadlines, routing still owed and messages
still to send all live in the database, so any pass catches up on what an
earlier one missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cases import timers
from cases.errors import CaseError
from cases.models import Case
from cases.sweep import sweep
from hotline.settings import Settings
from hotline.sla_provider import SlaProvider, load_policy_file

log = logging.getLogger("hotline.jobs")

ROUTE_BATCH = 20


@dataclass
class Services:
    """What the jobs need, built once per process."""

    settings: Settings
    sla: SlaProvider
    routing: Any = None  # hotline.routing_service.RoutingService, when auto-routing is on
    sender: Any = None  # hotline.channels.sms sender
    enqueue: Any = None  # async (name, *args, job_id) -> None, when a queue exists

    @classmethod
    def build(cls, settings: Settings, *, routing=None, sla: SlaProvider | None = None) -> "Services":
        from hotline.channels.sms import make_sender

        if sla is None:
            sla = SlaProvider(load_policy_file(settings.sla_policies_file),
                              timers.Ladder(warn_share=settings.warn_share))
        return cls(settings=settings, sla=sla, routing=routing, sender=make_sender(settings))

    # -- routing ---------------------------------------------------------------

    async def route_soon(self, case: Case) -> None:
        """Route a new case now: through the queue when there is one, else in this process."""
        if self.enqueue is not None:
            try:
                await self.enqueue("route_case", case.id, job_id=f"route:{case.id}")
                return
            except Exception as exc:  # Redis down: the sweep routes it later
                log.warning("could not queue routing of %s (%s); the sweep will route it", case.number, exc)
                return
        await route_case(self, case.id)


async def route_case(services: Services, case_id: int) -> str:
    """Route one case still owed a decision; safe to run twice or concurrently."""
    if services.routing is None or not services.settings.auto_route:
        return "routing off"
    case = await Case.get_or_none(id=case_id)
    if case is None or case.routing_state != "pending":
        return "nothing to do"
    try:
        await services.routing.route_case(case, await services.sla.get())
    except CaseError as exc:
        # Another worker routed it first, or a person acted: either way it is decided.
        log.info("routing skipped %s: %s", case.number, exc.message)
        return "skipped"
    except Exception:
        log.exception("routing failed for case %s", case.number)
        return "failed"
    return "routed"


async def route_missed(services: Services, now: datetime | None = None) -> int:
    if services.routing is None or not services.settings.auto_route:
        return 0
    now = now or datetime.now(timezone.utc)
    # The intake fast path routes at once; a case still owed a decision two
    # passes later was missed (a crash, Redis down), and this pass routes it.
    grace = timedelta(seconds=2 * services.settings.sweep_seconds)
    ids = await Case.filter(routing_state="pending", status="received",
                            created_at__lte=now - grace).order_by("id").limit(ROUTE_BATCH).values_list("id", flat=True)
    routed = 0
    for case_id in ids:
        routed += await route_case(services, case_id) == "routed"
    return routed


# -- the periodic pass -----------------------------------------------------------


async def tick(services: Services, now: datetime | None = None) -> dict[str, Any]:
    """One pass of the periodic work: callbacks, deadlines, routing owed, hand-offs and their results, the outbox.

    Each part runs even if another fails, so a broken SMS account or a partner
    that is down never stops the deadline sweep.
    """
    from hotline.callbacks import run_callbacks, telephony_for
    from hotline.channels.telephony import make_telephony
    from hotline.channels.voice import purge_recordings
    from hotline.outbox import send_pending
    from hotline.partners import deliver_pending, report_results

    started = time.perf_counter()
    ctx = await services.sla.get()
    out: dict[str, Any] = {}

    async def part(name: str, work) -> None:
        try:
            out[name] = await work
        except Exception:
            log.exception("periodic pass: %s failed", name)
            out[name] = "failed"

    # Callbacks first: an attempt started now moves callback_due before the sweep looks at it.
    await part("callbacks", run_callbacks(services, now))
    await part("sweep", _sweep_dict(ctx, now, services.settings.sweep_batch))
    await part("routed", route_missed(services, now))
    await part("handoffs", deliver_pending(services.settings, now, sla_context=ctx))
    await part("partner_results", report_results(services.settings, now))
    if services.sender is not None:
        await part("outbox", send_pending(services.sender, services.settings, now=now))
    telephony = telephony_for(services) or make_telephony(services.settings)
    await part("recordings", purge_recordings(telephony, now))
    out["seconds"] = round(time.perf_counter() - started, 3)
    sweep_out = out.get("sweep")
    busy = (isinstance(sweep_out, dict) and sweep_out.get("acted")) or out.get("routed") or \
        "failed" in out.values() or any((out.get("outbox") or {}).values() if isinstance(out.get("outbox"), dict) else ())
    if busy:
        log.info("tick: %s", out)
    return out


async def _sweep_dict(ctx, now, batch) -> dict[str, Any]:
    return (await sweep(ctx, now=now, batch=batch)).to_dict()


class Ticker:
    """The embedded mode's stand-in for the worker: ``tick`` on an interval in this process."""

    def __init__(self, services: Services, interval: float):
        self.services = services
        self.interval = interval
        self._task: asyncio.Task | None = None
        self.passes = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hotline-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await tick(self.services)
            except Exception:  # one failed pass must not stop the timers for good
                log.exception("periodic pass failed")
            self.passes += 1
            await asyncio.sleep(self.interval)
