"""Sending the outbox on the test database: once per message, with retries and recovery.

The database is shared by the whole session, so other tests' messages may be
pending too: every test gives its messages numbers of their own and asserts
only about those.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from cases.models import Notification
from hotline.channels.sms import LocalSms, SendResult
from hotline.outbox import MAX_ATTEMPTS, backoff, send_pending


class FakeSender:
    """Succeeds unless told otherwise for a number; records every send."""

    def __init__(self):
        self.calls: list[tuple[str, str, str | None]] = []
        self.script: dict[str, list[SendResult]] = {}

    async def send(self, to, body, *, status_callback=None):
        self.calls.append((to, body, status_callback))
        await asyncio.sleep(0)  # let a concurrent sender run in between
        queued = self.script.get(to)
        if queued:
            return queued.pop(0)
        return SendResult(True, provider_id=f"SM{uuid.uuid4().hex}")

    def sent_to(self, number: str) -> int:
        return sum(1 for to, _, _ in self.calls if to == number)


def new_number() -> str:
    return f"139{secrets.randbelow(10**8):08d}"


async def queue_sms(number: str | None = None, **fields) -> Notification:
    return await Notification.create(
        key=f"outbox-test:{uuid.uuid4().hex}", recipient_kind="citizen", channel="sms",
        address=number or new_number(), template="case_accepted", body="【12345】您的诉求已受理", **fields,
    )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def test_a_new_cases_acceptance_sms_is_sent_once_and_marked_sent(app, settings, make_case):
    number = new_number()
    case = await make_case(caller_phone=number)
    sender = FakeSender()

    figures = await send_pending(sender, settings, batch=100)
    again = FakeSender()
    await send_pending(again, settings, batch=100)

    row = await Notification.get(case__number=case["number"], template="case_accepted")
    assert sender.sent_to(number) == 1 and again.sent_to(number) == 0
    assert row.status == "sent" and row.provider_id.startswith("SM") and row.attempts == 1 and row.error == ""
    assert case["query_code"] in next(body for to, body, _ in sender.calls if to == number)
    assert figures["sent"] >= 1


async def test_the_sender_is_told_where_twilio_should_report_delivery(app, settings):
    row = await queue_sms()
    sender = FakeSender()

    await send_pending(sender, settings, batch=100)

    [callback] = {cb for to, _, cb in sender.calls if to == row.address}
    assert callback == settings.public_base_url + "/twilio/sms/status"


async def test_a_permanent_error_is_recorded_and_never_retried(app, settings):
    row = await queue_sms()
    sender = FakeSender()
    sender.script[row.address] = [SendResult(False, permanent=True, error="21211 The 'To' number is not valid")]

    figures = await send_pending(sender, settings, batch=100)
    await send_pending(sender, settings, now=utcnow() + timedelta(days=1), batch=100)

    await row.refresh_from_db()
    assert sender.sent_to(row.address) == 1
    assert (row.status, row.attempts, row.error) == ("failed", 1, "21211 The 'To' number is not valid")
    assert row.provider_id is None and row.next_attempt_at is None
    assert figures["failed"] >= 1


async def test_a_transient_error_backs_off_and_then_succeeds(app, settings):
    row = await queue_sms()
    sender = FakeSender()
    sender.script[row.address] = [SendResult(False, error="20503 Service unavailable")]
    t0 = utcnow()

    await send_pending(sender, settings, now=t0, batch=100)
    await row.refresh_from_db()
    assert (row.status, row.attempts, row.error) == ("pending", 1, "20503 Service unavailable")
    assert abs(row.next_attempt_at - (t0 + timedelta(seconds=30))) < timedelta(milliseconds=1)

    await send_pending(sender, settings, now=t0 + timedelta(seconds=10), batch=100)
    assert sender.sent_to(row.address) == 1  # not yet due

    await send_pending(sender, settings, now=t0 + timedelta(seconds=31), batch=100)
    await row.refresh_from_db()
    assert sender.sent_to(row.address) == 2
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")
    assert row.provider_id is not None and row.next_attempt_at is None


def test_the_backoff_doubles_from_thirty_seconds_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]


async def test_a_message_that_keeps_failing_gives_up_after_the_last_attempt(app, settings):
    row = await queue_sms(attempts=MAX_ATTEMPTS - 1)
    sender = FakeSender()
    sender.script[row.address] = [SendResult(False, error="ConnectionError timeout")]

    figures = await send_pending(sender, settings, batch=100)

    await row.refresh_from_db()
    assert (row.status, row.attempts, row.error) == ("failed", MAX_ATTEMPTS, "ConnectionError timeout")
    assert figures["failed"] >= 1


async def test_a_sender_that_raises_does_not_strand_the_message(app, settings):
    row = await queue_sms()

    class Broken(FakeSender):
        async def send(self, to, body, *, status_callback=None):
            if to == row.address:
                raise RuntimeError("bug in a sender")
            return await super().send(to, body, status_callback=status_callback)

    await send_pending(Broken(), settings, batch=100)

    await row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error == "RuntimeError: bug in a sender"


async def test_two_concurrent_senders_send_each_message_exactly_once(app, settings):
    rows = [await queue_sms() for _ in range(30)]
    sender = FakeSender()

    results = await asyncio.gather(*(send_pending(sender, settings, batch=4) for _ in range(2)))

    assert all(sender.sent_to(r.address) == 1 for r in rows)
    statuses = await Notification.filter(id__in=[r.id for r in rows]).values_list("status", "attempts")
    assert set(statuses) == {("sent", 1)}
    assert sum(f["sent"] for f in results) == len(sender.calls)


async def test_four_senders_racing_on_one_batch_still_send_each_message_once(app, settings):
    # On PostgreSQL each sender claims on its own pooled connection, so the
    # claims really run at the same time and SKIP LOCKED does the separating.
    rows = [await queue_sms() for _ in range(12)]
    senders = [FakeSender() for _ in range(4)]

    await asyncio.gather(*(send_pending(s, settings, batch=3) for s in senders))

    for r in rows:
        assert sum(s.sent_to(r.address) for s in senders) == 1


async def test_a_message_stuck_in_sending_is_sent_again(app, settings):
    now = utcnow()
    stuck = await queue_sms(status="sending", attempts=1)
    busy = await queue_sms(status="sending", attempts=1)
    await Notification.filter(id=stuck.id).update(updated_at=now - timedelta(minutes=11))
    await Notification.filter(id=busy.id).update(updated_at=now - timedelta(minutes=5))
    sender = FakeSender()

    figures = await send_pending(sender, settings, now=now, batch=100)

    await stuck.refresh_from_db()
    await busy.refresh_from_db()
    assert figures["recovered"] >= 1
    assert sender.sent_to(stuck.address) == 1 and (stuck.status, stuck.attempts) == ("sent", 2)
    # Five minutes is a slow send, not a dead sender: leave it to its owner.
    assert sender.sent_to(busy.address) == 0 and busy.status == "sending"


async def test_in_app_messages_are_not_sent_as_sms(app, settings):
    row = await Notification.create(
        key=f"outbox-test:{uuid.uuid4().hex}", recipient_kind="user", channel="inbox", address="",
        template="dispatched", body="新工单", status="pending",
    )
    sender = FakeSender()

    await send_pending(sender, settings, batch=100)

    await row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 0


async def test_the_local_backend_writes_each_message_to_the_log_file(app, settings, tmp_path):
    row = await queue_sms()
    log = tmp_path / "outbox.log"

    await send_pending(LocalSms(log), settings, batch=100)

    await row.refresh_from_db()
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    mine = [line for line in lines if line["to"] == row.address]
    assert len(mine) == 1 and mine[0]["body"] == row.body
    assert row.status == "sent" and row.provider_id.startswith("local-")


@pytest.fixture(autouse=True)
async def _no_leftovers(app):
    """Leave none of this module's messages pending for later tests' senders."""
    yield
    await Notification.filter(key__startswith="outbox-test:", status__in=["pending", "sending"]).update(status="failed")
