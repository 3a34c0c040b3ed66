"""The SMS senders, with the real Twilio SDK talking to a recorded fake HTTP client."""

from __future__ import annotations

import asyncio
import json
import logging

import requests
from twilio.http import HttpClient
from twilio.http.response import Response

from hotline.channels.sms import LocalSms, SendResult, TwilioSms, make_sender
from hotline.settings import Settings

SID = "AC" + "0" * 32
TOKEN = "test-auth-token"
FROM = "+15005550006"
CALLBACK = "https://hotline.example.cn/twilio/sms/status"


class FakeTwilioHttp(HttpClient):
    """Answers every request with one canned response (or raises), and records the calls."""

    def __init__(self, status: int = 201, payload: dict | None = None, raises: Exception | None = None):
        super().__init__(logging.getLogger("tests.twilio"), is_async=False)
        self.status, self.raises = status, raises
        self.payload = payload if payload is not None else {"sid": "SM" + "a" * 32, "status": "queued"}
        self.calls: list[dict] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        self.calls.append({"method": method, "url": url, "data": dict(data or {}), "auth": auth})
        if self.raises is not None:
            raise self.raises
        return Response(self.status, json.dumps(self.payload))


def twilio(http: FakeTwilioHttp) -> TwilioSms:
    return TwilioSms(SID, TOKEN, FROM, http_client=http)


async def test_it_posts_the_message_to_twilios_messages_resource():
    http = FakeTwilioHttp()

    result = await twilio(http).send("+8613800138000", "【12345】您的诉求已受理", status_callback=CALLBACK)

    assert result == SendResult(True, provider_id="SM" + "a" * 32)
    [call] = http.calls
    assert call["method"] == "POST"
    assert call["url"] == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    assert call["data"] == {
        "To": "+8613800138000", "From": FROM, "Body": "【12345】您的诉求已受理", "StatusCallback": CALLBACK,
    }
    assert call["auth"] == (SID, TOKEN)


async def test_it_leaves_out_the_status_callback_when_there_is_none():
    http = FakeTwilioHttp()

    await twilio(http).send("+8613800138000", "hi")

    assert "StatusCallback" not in http.calls[0]["data"]


async def test_an_invalid_number_is_a_permanent_failure_with_twilios_code():
    http = FakeTwilioHttp(400, {"code": 21211, "message": "The 'To' number 123 is not a valid phone number.",
                                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})

    result = await twilio(http).send("123", "hi")

    assert not result.ok and result.permanent
    assert result.error == "21211 The 'To' number 123 is not a valid phone number."


async def test_an_unsubscribed_recipient_is_a_permanent_failure():
    http = FakeTwilioHttp(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400})

    result = await twilio(http).send("+8613800138000", "hi")

    assert result.permanent and result.error.startswith("21610 ")


async def test_an_outage_at_twilio_is_a_transient_failure():
    http = FakeTwilioHttp(503, {"code": 20503, "message": "Service unavailable", "status": 503})

    result = await twilio(http).send("+8613800138000", "hi")

    assert not result.ok and not result.permanent
    assert "20503" in result.error


async def test_rate_limiting_is_a_transient_failure():
    http = FakeTwilioHttp(429, {"code": 20429, "message": "Too Many Requests", "status": 429})

    result = await twilio(http).send("+8613800138000", "hi")

    assert not result.ok and not result.permanent


async def test_bad_credentials_wait_for_the_operator_instead_of_failing_every_message():
    http = FakeTwilioHttp(401, {"code": 20003, "message": "Authenticate", "status": 401})

    result = await twilio(http).send("+8613800138000", "hi")

    assert not result.ok and not result.permanent


async def test_a_network_error_is_a_transient_failure():
    http = FakeTwilioHttp(raises=requests.ConnectionError("connection refused"))

    result = await twilio(http).send("+8613800138000", "hi")

    assert not result.ok and not result.permanent
    assert result.error.startswith("ConnectionError")


async def test_error_text_is_cut_to_fit_the_column():
    http = FakeTwilioHttp(400, {"code": 21211, "message": "x" * 1000, "status": 400})

    result = await twilio(http).send("123", "hi")

    assert len(result.error) == 300


async def test_the_local_backend_appends_one_json_line_per_message(tmp_path):
    log = tmp_path / "sub" / "outbox.log"
    sender = LocalSms(log)

    results = await asyncio.gather(*(sender.send(f"1380013{i:04d}", f"第{i}条 短信") for i in range(50)))

    assert all(r.ok and r.provider_id.startswith("local-") for r in results)
    assert len({r.provider_id for r in results}) == 50
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 50
    assert {line["to"] for line in lines} == {f"1380013{i:04d}" for i in range(50)}
    assert all(set(line) >= {"time", "to", "body"} for line in lines)


def test_the_sender_is_twilio_only_when_all_of_its_settings_are_there(tmp_path):
    base = Settings(database_url="sqlite://:memory:", outbox_log=tmp_path / "o.log")
    configured = Settings(database_url="sqlite://:memory:", twilio_account_sid=SID, twilio_auth_token=TOKEN,
                          twilio_from_number=FROM)
    half = Settings(database_url="sqlite://:memory:", twilio_account_sid=SID, twilio_auth_token=TOKEN)

    assert isinstance(make_sender(base), LocalSms)
    assert make_sender(base).path == tmp_path / "o.log"
    assert isinstance(make_sender(half), LocalSms)
    assert isinstance(make_sender(configured, http_client=FakeTwilioHttp()), TwilioSms)
