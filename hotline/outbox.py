"""Sending the outbox: the SMS rows the case core wrote, each claimed, sent and recorded.

Delivery is at least once. A row is claimed (``pending`` → ``sending``) before
it is sent and its outcome recorded after, outside any transaction, because
the provider's answer can take seconds. A sender that dies between sending and
recording leaves the row in ``sending``; after ``STUCK_AFTER`` it goes back to
``pending`` and is sent again, so a crash at the wrong moment can deliver a
message twice, but never loses one.

Two senders never send the same row in normal operation:

- on PostgreSQL a batch is claimed in one ``UPDATE ... WHERE id IN (SELECT ...
  FOR UPDATE SKIP LOCKED)``, so a concurrent sender skips the rows being
  claimed and sees them as ``sending`` once the claim commits;
- on SQLite each candidate is claimed with a compare-and-set on its status, and
  only the sender whose update changed the row sends it.

Failures are either permanent (a bad number, an unsubscribed recipient: never
retried) or transient (network, rate limit, provider outage: retried with
exponential backoff up to ``MAX_ATTEMPTS``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tortoise import connections
from tortoise.expressions import F, Q

from cases.models import Notification
from hotline.channels.sms import ERROR_MAX, SendResult, SmsSender
from hotline.settings import Settings

log = logging.getLogger("hotline.outbox")

PENDING, SENDING, SENT, DELIVERED, FAILED = "pending", "sending", "sent", "delivered", "failed"
STATUS_LABELS = {
    PENDING: "待发送",
    SENDING: "发送中",
    SENT: "已发送",
    DELIVERED: "已送达",
    FAILED: "发送失败",
}
MAX_ATTEMPTS = 5
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
# Longer than any batch can take (20 sends × the HTTP timeout), so a slow but
# live sender never has its rows taken back and sent a second time.
STUCK_AFTER = timedelta(minutes=10)
STATUS_CALLBACK_PATH = "/twilio/sms/status"
MAX_BATCHES = 100

_CLAIM_PG = """
UPDATE "notification" SET "status" = 'sending', "attempts" = "attempts" + 1, "updated_at" = $1
WHERE "status" = 'pending' AND "id" IN (
    SELECT "id" FROM "notification"
    WHERE "channel" = 'sms' AND "status" = 'pending'
      AND ("next_attempt_at" IS NULL OR "next_attempt_at" <= $1)
    ORDER BY "id" LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING "id", "address", "body", "attempts"
"""


@dataclass
class _Claimed:
    id: int
    address: str
    body: str
    attempts: int


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th try failed."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


async def send_pending(sender: SmsSender, settings: Settings, *, now: datetime | None = None,
                       batch: int = 20) -> dict[str, int]:
    """Send every SMS due at ``now``, ``batch`` rows per claim; returns what happened."""
    now = now or datetime.now(timezone.utc)
    figures = {"sent": 0, "failed": 0, "retried": 0, "recovered": await _recover_stuck(now)}
    callback = settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
    postgres = connections.get("default").capabilities.dialect == "postgres"
    for _ in range(MAX_BATCHES):
        claimed = await (_claim_pg(now, batch) if postgres else _claim_sqlite(now, batch))
        for row in claimed:
            await _send_one(sender, row, callback, now, figures)
        # Every row sent here leaves the due set (sent, failed or backed off),
        # so a short claim means nothing due is left.
        if len(claimed) < batch:
            break
    return figures


async def _recover_stuck(now: datetime) -> int:
    n = await Notification.filter(channel="sms", status=SENDING, updated_at__lt=now - STUCK_AFTER).update(
        status=PENDING, next_attempt_at=None, updated_at=now
    )
    if n:
        log.warning("outbox: %d message(s) stuck in 'sending' were queued again", n)
    return n


async def _claim_pg(now: datetime, batch: int) -> list[_Claimed]:
    rows = await connections.get("default").execute_query_dict(_CLAIM_PG, [now, batch])
    return sorted((_Claimed(**r) for r in rows), key=lambda c: c.id)


async def _claim_sqlite(now: datetime, batch: int) -> list[_Claimed]:
    due = Notification.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), channel="sms", status=PENDING
    )
    candidates = await due.order_by("id").limit(batch).values("id", "address", "body", "attempts")
    claimed = []
    for c in candidates:
        won = await Notification.filter(id=c["id"], status=PENDING).update(
            status=SENDING, attempts=F("attempts") + 1, updated_at=now
        )
        if won:  # 0: another sender claimed it between the select and this update
            claimed.append(_Claimed(c["id"], c["address"], c["body"], c["attempts"] + 1))
    return claimed


async def _send_one(sender: SmsSender, row: _Claimed, callback: str, now: datetime,
                    figures: dict[str, int]) -> None:
    try:
        result = await sender.send(row.address, row.body, status_callback=callback)
    except Exception as exc:  # a sender bug must not strand the rest of the batch in 'sending'
        log.exception("outbox: sender raised on notification %s", row.id)
        result = SendResult(False, error=f"{type(exc).__name__}: {exc}")
    mine = Notification.filter(id=row.id, status=SENDING)
    error = result.error[:ERROR_MAX]
    if result.ok:
        outcome = "sent"
        changed = await mine.update(status=SENT, provider_id=result.provider_id, error="",
                                    next_attempt_at=None, updated_at=now)
    elif result.permanent or row.attempts >= MAX_ATTEMPTS:
        outcome = "failed"
        changed = await mine.update(status=FAILED, error=error, next_attempt_at=None, updated_at=now)
        log.warning("outbox: notification %s failed after %d attempt(s): %s", row.id, row.attempts, error)
    else:
        outcome = "retried"
        changed = await mine.update(status=PENDING, error=error, next_attempt_at=now + backoff(row.attempts),
                                    updated_at=now)
    if not changed:
        # The row was taken back as stuck while this send was under way; the
        # sender that now holds it records its own outcome.
        log.warning("outbox: notification %s changed hands before its result (%s) was recorded", row.id, outcome)
    figures[outcome] += 1
