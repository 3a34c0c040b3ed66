"""The telephony interface: Twilio through the real SDK and a recorded fake HTTP client, the local stand-in, retention."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

from hotline.channels.sms import LocalSms, TwilioSms
from hotline.channels.telephony import (
    LocalTelephony,
    TelephonyError,
    TelephonyUnavailable,
    TwilioTelephony,
    e164,
    make_telephony,
    national,
    phone_variants,
)
from hotline.settings import Settings

SID = "AC" + "0" * 32
TOKEN = "test-auth-token"
HOTLINE = "+15005550006"
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}"


class FakeCarrier(HttpClient):
    """Twilio's REST API as a recording: answers each request by method and resource."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, dict | None]] | None = None,
                 raises: Exception | None = None):
        super().__init__(logging.getLogger("tests.twilio"), is_async=False)
        self.answers = answers or {}
        self.raises = raises
        self.calls: list[dict] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        self.calls.append({"method": method, "url": url, "data": dict(data or {}), "auth": auth})
        if self.raises is not None:
            raise self.raises
        resource = url.rsplit("/", 1)[-1]
        for (m, suffix), (status, payload) in self.answers.items():
            if m == method and resource.endswith(suffix):
                return Response(status, json.dumps(payload) if payload is not None else "")
        if method == "POST" and resource == "Calls.json":
            return Response(201, json.dumps({"sid": "CA" + uuid.uuid4().hex, "status": "queued"}))
        if method == "DELETE":
            return Response(204, "")
        return Response(201, json.dumps({"sid": "SM" + uuid.uuid4().hex, "status": "queued"}))

    def requests_to(self, resource: str, method: str | None = None) -> list[dict]:
        return [c for c in self.calls if c["url"].endswith(resource) and (method is None or c["method"] == method)]


def twilio(http: FakeCarrier) -> TwilioTelephony:
    return TwilioTelephony(SID, TOKEN, HOTLINE, http_client=http)


async def test_a_call_is_a_post_to_twilios_calls_resource_with_the_twiml_url():
    http = FakeCarrier({("POST", "Calls.json"): (201, {"sid": "CA" + "b" * 32, "status": "queued"})})

    sid = await twilio(http).call("+8613900139000", "https://hotline.example.cn/twilio/voice/bridge?case=1",
                                  status_callback="https://hotline.example.cn/twilio/voice/status")

    assert sid == "CA" + "b" * 32
    [call] = http.calls
    assert call["method"] == "POST" and call["url"] == f"{API}/Calls.json"
    assert call["data"]["To"] == "+8613900139000" and call["data"]["From"] == HOTLINE
    assert call["data"]["Url"] == "https://hotline.example.cn/twilio/voice/bridge?case=1"
    assert call["data"]["StatusCallback"] == "https://hotline.example.cn/twilio/voice/status"
    assert call["auth"] == (SID, TOKEN)


async def test_a_refused_call_raises_with_twilios_reason():
    http = FakeCarrier({("POST", "Calls.json"): (400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})})

    with pytest.raises(TelephonyError) as caught:
        await twilio(http).call("123", "https://hotline.example.cn/x")

    assert "21211" in caught.value.message and caught.value.status == 400


async def test_a_network_failure_while_calling_raises_a_telephony_error():
    http = FakeCarrier(raises=requests.ConnectionError("refused"))

    with pytest.raises(TelephonyError):
        await twilio(http).call("+8613900139000", "https://hotline.example.cn/x")


async def test_deleting_a_recording_is_a_delete_of_the_recording_resource():
    http = FakeCarrier()

    await twilio(http).delete_recording("RE" + "c" * 32)

    [call] = http.calls
    assert call["method"] == "DELETE" and call["url"] == f"{API}/Recordings/RE{'c' * 32}.json"


async def test_a_recording_already_gone_counts_as_deleted():
    http = FakeCarrier({("DELETE", ".json"): (404, {"code": 20404, "message": "not found", "status": 404})})

    await twilio(http).delete_recording("RE" + "c" * 32)


async def test_a_failed_deletion_raises_so_it_is_tried_again():
    http = FakeCarrier({("DELETE", ".json"): (500, {"code": 20500, "message": "error", "status": 500})})

    with pytest.raises(TelephonyError):
        await twilio(http).delete_recording("RE" + "c" * 32)


async def test_sms_goes_through_the_existing_sender():
    http = FakeCarrier()
    telephony = twilio(http)

    result = await telephony.send_sms("+8613800138000", "【12345】测试")

    assert isinstance(telephony.sms, TwilioSms) and result.ok
    assert http.requests_to("Messages.json")[0]["data"]["Body"] == "【12345】测试"


def test_it_verifies_twilio_signatures_over_url_and_params():
    url, params = "https://hotline.example.cn/twilio/voice?x=1", {"CallSid": "CA1", "From": "+8613800138000"}
    good = RequestValidator(TOKEN).compute_signature(url, params)
    telephony = twilio(FakeCarrier())

    assert telephony.verify(url, params, good)
    assert not telephony.verify(url, {**params, "From": "+8613900000000"}, good)
    assert not telephony.verify(url, params, "")


async def test_without_a_provider_calls_are_refused_politely_and_nothing_is_trusted(tmp_path):
    local = LocalTelephony(tmp_path / "outbox.log")
    params = {"CallSid": "CA1"}

    with pytest.raises(TelephonyUnavailable) as caught:
        await local.call("+8613900139000", "https://hotline.example.cn/x")
    with pytest.raises(TelephonyUnavailable):
        await local.delete_recording("RE" + "c" * 32)
    result = await local.send_sms("13800138000", "本地短信")

    assert "未配置电话线路" in caught.value.message
    assert not local.verify("https://x", params, RequestValidator(TOKEN).compute_signature("https://x", params))
    assert isinstance(local.sms, LocalSms) and result.ok
    assert "本地短信" in (tmp_path / "outbox.log").read_text(encoding="utf-8")


def test_twilio_is_used_only_when_it_is_configured(tmp_path):
    base = Settings(database_url="sqlite://:memory:", outbox_log=tmp_path / "o.log")
    configured = Settings(database_url="sqlite://:memory:", twilio_account_sid=SID, twilio_auth_token=TOKEN,
                          twilio_from_number=HOTLINE)

    assert isinstance(make_telephony(base), LocalTelephony)
    assert isinstance(make_telephony(configured, http_client=FakeCarrier()), TwilioTelephony)


def test_chinese_numbers_are_matched_in_every_spelling():
    assert national("+8613800138000") == "13800138000"
    assert national("+867318888888") == "07318888888"
    assert e164("13800138000") == "+8613800138000"
    assert e164("0731-8888888") == "+867318888888"
    assert e164("+14155550100") == "+14155550100"
    assert set(phone_variants("+8613800138000")) >= {"13800138000", "+8613800138000", "8613800138000"}
    assert set(phone_variants("13800138000")) >= {"13800138000", "+8613800138000"}
    assert phone_variants("") == []


def test_working_hours_are_checked_when_settings_are_read():
    assert Settings.from_env({"HOTLINE_WORKING_HOURS": "09:00-24:00"}).working_hours == "09:00-24:00"
    assert Settings.from_env({}).working_hours == "08:30-17:30"
    assert Settings.from_env({}).recording_retention_days == 180
    with pytest.raises(ValueError, match="HOTLINE_WORKING_HOURS"):
        Settings.from_env({"HOTLINE_WORKING_HOURS": "17:30-08:30"})


# ---- retention ---------------------------------------------------------------------------------


async def recorded_call(*, retain_until: datetime, case_id: int | None = None):
    from hotline.models import CallLog

    rec = "RE" + uuid.uuid4().hex
    return await CallLog.create(
        call_sid="CA" + uuid.uuid4().hex, direction="inbound", purpose="voicemail", status="completed",
        recording_sid=rec, recording_url=f"{API}/Recordings/{rec}", transcript="留言内容",
        retain_until=retain_until, case_id=case_id,
    )


async def test_expired_recordings_are_deleted_at_twilio_and_blanked(app):
    from hotline.channels.voice import purge_recordings

    now = datetime.now(timezone.utc)
    expired = await recorded_call(retain_until=now - timedelta(days=1))
    kept = await recorded_call(retain_until=now + timedelta(days=30))
    http = FakeCarrier()

    await purge_recordings(twilio(http), now)

    await expired.refresh_from_db()
    await kept.refresh_from_db()
    assert http.requests_to(f"Recordings/{expired.recording_sid}.json", "DELETE")
    assert not http.requests_to(f"Recordings/{kept.recording_sid}.json")
    assert (expired.recording_url, expired.transcript) == ("", "")
    assert expired.recording_deleted_at is not None
    assert kept.recording_url and kept.recording_deleted_at is None


async def test_a_recording_twilio_would_not_delete_is_kept_for_the_next_pass(app):
    from hotline.channels.voice import purge_recordings

    now = datetime.now(timezone.utc)
    row = await recorded_call(retain_until=now - timedelta(days=1))
    failing = FakeCarrier({("DELETE", f"{row.recording_sid}.json"): (503, {"code": 20503, "message": "down", "status": 503})})

    await purge_recordings(twilio(failing), now)
    await row.refresh_from_db()
    assert row.recording_url and row.recording_deleted_at is None

    await purge_recordings(twilio(FakeCarrier()), now)
    await row.refresh_from_db()
    assert row.recording_url == "" and row.recording_deleted_at is not None


async def test_purging_a_recording_also_drops_its_address_from_the_case(app, make_case):
    from cases.models import Case
    from hotline.channels.voice import purge_recordings

    number = (await make_case())["number"]
    case = await Case.get(number=number)
    now = datetime.now(timezone.utc)
    row = await recorded_call(retain_until=now - timedelta(days=1), case_id=case.id)
    await Case.filter(id=case.id).update(details={"call_sid": row.call_sid, "recording_url": row.recording_url})

    await purge_recordings(twilio(FakeCarrier()), now)

    await case.refresh_from_db()
    assert "recording_url" not in case.details and case.details["call_sid"] == row.call_sid
