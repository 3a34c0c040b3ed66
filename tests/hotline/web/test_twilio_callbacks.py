"""回访 webhooks: citizens answer the survey by SMS digits or IVR keypresses; signed requests only."""

from __future__ import annotations

import secrets
from xml.etree import ElementTree

import httpx
import pytest
from twilio.request_validator import RequestValidator

from cases import states as s
from cases.models import Case
from hotline.callbacks import schedule
from hotline.models import CallEvent, CallLog
from tests.hotline.test_callbacks import (
    PUBLIC,
    TOKEN,
    FakeTwilioHttp,
    callback_events,
    new_phone,
    replied_case,
    twilio_settings,
)

SMS_PATH = "/twilio/sms/incoming"


@pytest.fixture
def tsettings(settings):
    return twilio_settings(settings)


@pytest.fixture
async def twilio_client(app, tsettings):
    from hotline.web.app import create_app

    # Sharing the session app's database: entering this app's lifespan would close it on the way out.
    configured = create_app(tsettings)
    transport = httpx.ASGITransport(app=configured, client=("54.172.60.1", 443))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as c:
        yield c


@pytest.fixture
def surveyed_case(app, client, world, make_case, tsettings):
    """A replied case whose first survey attempt (SMS + IVR call) has started."""

    async def make(phone: str | None = None, **fields) -> Case:
        case = await replied_case(client, world, make_case, caller_phone=phone or new_phone(), **fields)
        from hotline.channels.telephony import make_telephony

        telephony = make_telephony(tsettings, http_client=FakeTwilioHttp())
        await schedule(tsettings, await app.state.sla.get(), telephony=telephony, now=case.callback_due)
        await case.refresh_from_db()
        assert case.callback_attempts == 1
        return case

    return make


async def post_signed(client: httpx.AsyncClient, path: str, params: dict[str, str], *,
                      token: str = TOKEN) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return await client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def sms(phone: str, body: str, sid: str | None = None) -> dict[str, str]:
    sid = sid or "SM" + secrets.token_hex(16)
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "2" * 32, "From": "+86" + phone,
            "To": "+15005550006", "Body": body, "NumMedia": "0"}


def message_text(r: httpx.Response) -> str:
    root = ElementTree.fromstring(r.text)
    return "".join(m.text or "" for m in root.iter("Message"))


async def answers(case: Case) -> list:
    return [e for e in await callback_events(case) if e.payload.get("contacted")]


# ---- SMS answers -----------------------------------------------------------------------------


async def test_a_reply_of_3_reopens_the_case_for_rehandling(twilio_client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(twilio_client, SMS_PATH, sms(case.caller_phone, "3"))

    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "重新办理" in message_text(r)
    await case.refresh_from_db()
    assert case.status == s.REHANDLE_PENDING
    assert (case.callback_contacted, case.callback_resolved, case.callback_satisfaction) == (True, "resolved", "unsatisfied")
    [answer] = await answers(case)
    assert answer.actor_role == "system" and "短信回访" in answer.payload["note"]


async def test_a_reply_of_1_finishes_the_callback(twilio_client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(twilio_client, SMS_PATH, sms(case.caller_phone, "１"))

    assert "感谢您的评价" in message_text(r)
    await case.refresh_from_db()
    assert case.status == s.CALLBACK_DONE
    assert (case.callback_resolved, case.callback_satisfaction) == ("resolved", "satisfied")


async def test_a_retried_sms_webhook_records_once(twilio_client, surveyed_case):
    phone = new_phone()
    older, newer = await surveyed_case(phone), await surveyed_case(phone)
    params = sms(phone, "1")

    first = await post_signed(twilio_client, SMS_PATH, params)
    retry = await post_signed(twilio_client, SMS_PATH, params)

    assert first.status_code == retry.status_code == 200
    assert message_text(first) == message_text(retry)
    await older.refresh_from_db()
    await newer.refresh_from_db()
    # The most recent survey gets the answer; the retry does not spill over to the other case.
    assert (newer.status, older.status) == (s.CALLBACK_DONE, s.REPLIED)
    assert len(await answers(newer)) == 1 and await answers(older) == []
    log = await CallLog.get(call_sid=params["MessageSid"])
    assert (log.purpose, log.status, log.case_id) == ("survey_sms", "recorded", newer.id)


async def test_an_unclear_reply_explains_the_digits_and_changes_nothing(twilio_client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(twilio_client, SMS_PATH, sms(case.caller_phone, "还行吧"))

    assert "1已解决满意" in message_text(r) and "4未解决" in message_text(r)
    await case.refresh_from_db()
    assert case.status == s.REPLIED and await answers(case) == []


async def test_an_answer_without_a_pending_survey_gets_a_polite_reply(twilio_client, client, world, make_case):
    phone = new_phone()
    # Replied, but the day for its survey has not come: nothing is pending.
    case = await replied_case(client, world, make_case, caller_phone=phone)

    r = await post_signed(twilio_client, SMS_PATH, sms(phone, "1"))

    assert "没有待评价的工单" in message_text(r)
    await case.refresh_from_db()
    assert case.status == s.REPLIED and case.callback_attempts == 0


async def test_a_bad_signature_is_refused_and_records_nothing(twilio_client, surveyed_case):
    case = await surveyed_case()
    params = sms(case.caller_phone, "3")

    unsigned = await twilio_client.post(SMS_PATH, data=params)
    forged = await post_signed(twilio_client, SMS_PATH, params, token="someone-elses")

    assert unsigned.status_code == forged.status_code == 403
    await case.refresh_from_db()
    assert case.status == s.REPLIED and await answers(case) == []
    assert not await CallLog.exists(call_sid=params["MessageSid"])


async def test_without_twilio_configured_the_webhook_is_refused(client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(client, SMS_PATH, sms(case.caller_phone, "1"))

    assert r.status_code == 403


# ---- the IVR survey call ------------------------------------------------------------------------


def call(case: Case, **extra: str) -> dict[str, str]:
    return {"CallSid": extra.pop("CallSid", "CA" + secrets.token_hex(16)), "AccountSid": "AC" + "2" * 32,
            "From": "+15005550006", "To": "+86" + case.caller_phone, "CallStatus": "in-progress",
            "Direction": "outbound-api", **extra}


def gather(r: httpx.Response) -> ElementTree.Element:
    root = ElementTree.fromstring(r.text)
    [node] = root.iter("Gather")
    return node


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC)
    return url[len(PUBLIC):]


async def test_the_ivr_records_the_answer_keyed_in(twilio_client, surveyed_case):
    case = await surveyed_case()
    sid = (await CallLog.get(case_id=case.id, purpose="survey")).call_sid

    start = await post_signed(twilio_client, f"/twilio/callback/ivr/{case.id}", call(case, CallSid=sid))
    ask = gather(start)
    assert ask.get("input") == "dtmf" and "是否已解决" in "".join(ask.itertext())
    resolved = await post_signed(twilio_client, path_of(ask.get("action")), call(case, CallSid=sid, Digits="1"))
    ask = gather(resolved)
    assert "是否满意" in "".join(ask.itertext())
    done = await post_signed(twilio_client, path_of(ask.get("action")), call(case, CallSid=sid, Digits="2"))

    assert "感谢您的评价" in done.text and "<Hangup" in done.text
    await case.refresh_from_db()
    assert case.status == s.CALLBACK_DONE
    assert (case.callback_contacted, case.callback_resolved, case.callback_satisfaction) == (True, "resolved", "basically")
    [answer] = await answers(case)
    assert "语音回访" in answer.payload["note"]
    log = await CallLog.get(call_sid=sid)
    assert log.status == "surveyed"
    assert [e.event for e in await CallEvent.filter(call_id=log.id).order_by("id")] == ["survey_prompt", "survey_answer"]

    retried = await post_signed(twilio_client, path_of(ask.get("action")), call(case, CallSid=sid, Digits="2"))
    assert "回访已经完成" in retried.text and len(await answers(case)) == 1


async def test_an_unresolved_answer_by_keypad_reopens_the_case(twilio_client, surveyed_case):
    case = await surveyed_case()
    path = f"/twilio/callback/ivr/{case.id}/answer?q=satisfaction&resolved=unresolved"

    await post_signed(twilio_client, path, call(case, Digits="3"))

    await case.refresh_from_db()
    assert case.status == s.REHANDLE_PENDING and case.callback_resolved == "unresolved"


async def test_no_keypress_records_nothing_the_attempt_stays_counted(twilio_client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(twilio_client, f"/twilio/callback/ivr/{case.id}", call(case))

    # After the Gather times out, Twilio reads on: a goodbye, and the call ends.
    assert "未收到您的按键" in r.text and r.text.index("</Gather>") < r.text.index("未收到您的按键")
    await case.refresh_from_db()
    assert case.status == s.REPLIED and case.callback_attempts == 1 and await answers(case) == []


async def test_a_wrong_key_asks_again(twilio_client, surveyed_case):
    case = await surveyed_case()

    r = await post_signed(twilio_client, f"/twilio/callback/ivr/{case.id}/answer?q=resolved", call(case, Digits="9"))

    assert "按键无效" in "".join(gather(r).itertext())
    await case.refresh_from_db()
    assert case.status == s.REPLIED


async def test_the_ivr_refuses_unsigned_requests(twilio_client, surveyed_case):
    case = await surveyed_case()
    path = f"/twilio/callback/ivr/{case.id}/answer?q=satisfaction&resolved=resolved"
    params = call(case, Digits="1")
    # Signed for another query string: the signature covers the whole URL.
    signature = RequestValidator(TOKEN).compute_signature(
        PUBLIC + f"/twilio/callback/ivr/{case.id}/answer?q=satisfaction&resolved=unresolved", params)

    unsigned = await twilio_client.post(path, data=params)
    tampered = await twilio_client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    assert unsigned.status_code == tampered.status_code == 403
    await case.refresh_from_db()
    assert case.status == s.REPLIED and await answers(case) == []


async def test_a_call_about_a_finished_callback_just_says_goodbye(twilio_client, surveyed_case):
    case = await surveyed_case()
    await post_signed(twilio_client, SMS_PATH, sms(case.caller_phone, "1"))

    r = await post_signed(twilio_client, f"/twilio/callback/ivr/{case.id}", call(case))

    assert "回访已经完成" in r.text and "<Gather" not in r.text
    r = await post_signed(twilio_client, "/twilio/callback/ivr/99999999999", call(case))
    assert r.status_code in (200, 404)
