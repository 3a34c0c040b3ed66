"""Twilio's SMS status callback: signed requests only, and a status never moves backwards."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import pytest
from twilio.request_validator import RequestValidator

from cases.models import Notification

TOKEN = "twilio-test-token"
PUBLIC = "https://hotline.example.cn"
PATH = "/twilio/sms/status"


@pytest.fixture
async def twilio_client(app, settings):
    from hotline.web.app import create_app

    # The database is the one the session app already started: entering this
    # app's lifespan too would close the session's connections on the way out.
    configured = create_app(replace(
        settings, public_base_url=PUBLIC, twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN, twilio_from_number="+15005550006",
    ))
    transport = httpx.ASGITransport(app=configured, client=("54.172.60.1", 443))
    # The address this process sees differs from the public one, as behind a proxy.
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as c:
        yield c


async def sent_sms(status: str = "sent") -> Notification:
    return await Notification.create(
        key=f"twilio-test:{uuid.uuid4().hex}", recipient_kind="citizen", channel="sms",
        address="13800138000", template="case_accepted", body="【12345】您的诉求已受理",
        status=status, attempts=1, provider_id=f"SM{uuid.uuid4().hex}",
    )


def callback(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": "AC" + "1" * 32, "To": "+8613800138000", "From": "+15005550006", **extra}


async def post_signed(client: httpx.AsyncClient, params: dict[str, str], *, query: str = "",
                      token: str = TOKEN, url: str | None = None) -> httpx.Response:
    target = PATH + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url or PUBLIC + target, params)
    return await client.post(target, data=params, headers={"X-Twilio-Signature": signature})


async def test_it_rejects_an_unsigned_status_callback(twilio_client):
    row = await sent_sms()

    r = await twilio_client.post(PATH, data=callback(row.provider_id, "delivered"))

    await row.refresh_from_db()
    assert r.status_code == 403 and row.status == "sent"


async def test_it_rejects_a_signature_made_with_another_token(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback(row.provider_id, "delivered"), token="someone-elses")

    await row.refresh_from_db()
    assert r.status_code == 403 and row.status == "sent"


async def test_it_rejects_a_signature_over_tampered_parameters(twilio_client):
    row = await sent_sms()
    params = callback(row.provider_id, "delivered")
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + PATH, params)

    r = await twilio_client.post(PATH, data={**params, "MessageStatus": "failed"},
                                 headers={"X-Twilio-Signature": signature})

    await row.refresh_from_db()
    assert r.status_code == 403 and row.status == "sent"


async def test_it_checks_the_signature_against_the_public_url_not_the_one_it_sees(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback(row.provider_id, "delivered"), url="http://10.0.0.5:8000" + PATH)

    assert r.status_code == 403


async def test_it_refuses_callbacks_when_twilio_is_not_configured(client):
    params = callback("SM" + "0" * 32, "delivered")
    signature = RequestValidator(TOKEN).compute_signature("http://127.0.0.1:8000" + PATH, params)

    r = await client.post(PATH, data=params, headers={"X-Twilio-Signature": signature})

    assert r.status_code == 403


async def test_a_signed_delivery_report_marks_the_message_delivered(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback(row.provider_id, "delivered"))

    await row.refresh_from_db()
    assert r.status_code == 204 and r.content == b""
    assert row.status == "delivered"


async def test_the_query_string_is_part_of_what_is_signed(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback(row.provider_id, "delivered"), query="attempt=2")

    await row.refresh_from_db()
    assert r.status_code == 204 and row.status == "delivered"


async def test_an_undelivered_report_marks_the_message_failed_with_twilios_error_code(twilio_client):
    row = await sent_sms()

    await post_signed(twilio_client, callback(row.provider_id, "undelivered", ErrorCode="30003"))

    await row.refresh_from_db()
    assert row.status == "failed" and "30003" in row.error


async def test_a_retried_callback_changes_nothing_the_second_time(twilio_client):
    row = await sent_sms()
    params = callback(row.provider_id, "delivered")

    first = await post_signed(twilio_client, params)
    await row.refresh_from_db()
    after_first = (row.status, row.error, row.attempts)
    second = await post_signed(twilio_client, params)

    await row.refresh_from_db()
    assert first.status_code == second.status_code == 204
    assert (row.status, row.error, row.attempts) == after_first == ("delivered", "", 1)


async def test_a_late_sent_report_does_not_undo_delivered(twilio_client):
    row = await sent_sms()

    await post_signed(twilio_client, callback(row.provider_id, "delivered"))
    await post_signed(twilio_client, callback(row.provider_id, "sent"))
    await post_signed(twilio_client, callback(row.provider_id, "queued"))

    await row.refresh_from_db()
    assert row.status == "delivered"


async def test_failed_and_delivered_are_final(twilio_client):
    failed, delivered = await sent_sms(), await sent_sms()

    await post_signed(twilio_client, callback(failed.provider_id, "failed", ErrorCode="30006"))
    await post_signed(twilio_client, callback(failed.provider_id, "delivered"))
    await post_signed(twilio_client, callback(delivered.provider_id, "delivered"))
    await post_signed(twilio_client, callback(delivered.provider_id, "undelivered", ErrorCode="30003"))

    await failed.refresh_from_db()
    await delivered.refresh_from_db()
    assert (failed.status, delivered.status) == ("failed", "delivered")
    assert "30006" in failed.error and delivered.error == ""


async def test_a_report_for_an_unknown_message_is_acknowledged_and_ignored(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback("SM" + uuid.uuid4().hex, "failed", ErrorCode="30003"))

    await row.refresh_from_db()
    assert r.status_code == 204 and row.status == "sent"


async def test_a_status_this_system_does_not_track_is_acknowledged_and_ignored(twilio_client):
    row = await sent_sms()

    r = await post_signed(twilio_client, callback(row.provider_id, "receiving"))

    await row.refresh_from_db()
    assert r.status_code == 204 and row.status == "sent"
