"""The phone line end to end: signed Twilio webhooks in, TwiML and Twilio REST requests out."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import httpx
import pytest
from twilio.request_validator import RequestValidator

from cases.models import Case, Notification, User
from hotline.channels import voice
from hotline.channels.telephony import TwilioTelephony
from hotline.models import CallEvent, CallLog
from tests.conftest import act
from tests.hotline.channels.test_telephony import FakeCarrier

SID = "AC" + "1" * 32
TOKEN = "twilio-voice-token"
PUBLIC = "https://hotline.example.cn"
HOTLINE = "+8673112345"
# 2026-06-10 is a Wednesday and a workday; 10:00 and 20:00 in Shanghai.
WORK_TIME = datetime(2026, 6, 10, 2, 0, tzinfo=timezone.utc)
EVENING = datetime(2026, 6, 10, 12, 0, tzinfo=timezone.utc)


class Line:
    """The app as Twilio sees it: signed posts to the public URL, a carrier recording REST calls."""

    def __init__(self, app, client: httpx.AsyncClient, carrier: FakeCarrier):
        self.app, self.client, self.carrier = app, client, carrier

    async def post(self, path: str, params: dict[str, str], *, query: str = "", token: str = TOKEN) -> httpx.Response:
        target = path + (f"?{query}" if query else "")
        signature = RequestValidator(token).compute_signature(PUBLIC + target, params)
        return await self.client.post(target, data=params, headers={"X-Twilio-Signature": signature})


@pytest.fixture
async def line(app, settings, monkeypatch):
    from hotline.jobs import Services
    from hotline.web.app import create_app

    # The session app owns the database connections; this one is never started.
    configured = create_app(replace(
        settings, public_base_url=PUBLIC, twilio_account_sid=SID, twilio_auth_token=TOKEN,
        twilio_from_number=HOTLINE, auto_route=True,
    ))
    carrier = FakeCarrier()
    configured.state.telephony = TwilioTelephony(SID, TOKEN, HOTLINE, http_client=carrier)
    configured.state.jobs = Services(settings=configured.state.settings, sla=configured.state.sla,
                                     routing=app.state.routing)
    monkeypatch.setattr(voice, "clock", lambda: WORK_TIME)
    transport = httpx.ASGITransport(app=configured, client=("54.172.60.2", 443))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as c:
        yield Line(configured, c, carrier)


@pytest.fixture
async def only_these_agents():
    """Agents taking calls are global; a test that rings one switches the others off meanwhile."""
    before = list(await User.filter(accepts_calls=True).values_list("id", flat=True))
    await User.filter(id__in=before).update(accepts_calls=False)

    async def take_calls(person, phone: str) -> User:
        user = await User.get(username=person.username)
        await User.filter(id=user.id).update(accepts_calls=True, phone=phone)
        return await User.get(id=user.id)

    yield take_calls
    await User.filter(accepts_calls=True).update(accepts_calls=False)
    await User.filter(id__in=before).update(accepts_calls=True)


def new_call(caller: str | None = None) -> dict[str, str]:
    return {
        "CallSid": "CA" + uuid.uuid4().hex, "AccountSid": SID, "From": caller or random_mobile(),
        "To": HOTLINE, "CallStatus": "ringing", "Direction": "inbound",
    }


def random_mobile() -> str:
    return f"+86139{secrets.randbelow(10**8):08d}"


def twiml(r: httpx.Response) -> ElementTree.Element:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    return ElementTree.fromstring(r.text)


def spoken(root: ElementTree.Element) -> str:
    return " ".join(e.text or "" for e in root.iter("Say"))


async def events(call_sid: str) -> list[str]:
    row = await CallLog.get(call_sid=call_sid)
    return list(await CallEvent.filter(call_id=row.id).order_by("id").values_list("event", flat=True))


# ---- the menu and intake by speech -------------------------------------------------------------


async def test_a_call_is_announced_as_recorded_and_offered_the_menu(line):
    call = new_call()

    root = twiml(await line.post("/twilio/voice", call))

    assert "本次通话将被录音" in spoken(root)
    gather = root.find("Gather")
    assert gather.get("input") == "speech dtmf" and gather.get("numDigits") == "1"
    assert gather.get("language") == "cmn-CN" and gather.get("action") == PUBLIC + "/twilio/voice/menu"
    assert root.find("Say").get("language") == "zh-CN"
    row = await CallLog.get(call_sid=call["CallSid"])
    assert (row.direction, row.from_number, row.to_number) == ("inbound", call["From"], HOTLINE)
    assert await events(call["CallSid"]) == ["incoming"]


async def test_a_spoken_problem_becomes_a_case_that_is_routed_like_any_other(line):
    call = new_call()
    speech = "岳麓区橘子洲街道某小区的路灯坏了一个月，晚上出行很不安全，希望尽快修好。"

    await line.post("/twilio/voice", call)
    ask = twiml(await line.post("/twilio/voice/menu", {**call, "Digits": "1"}))
    done = twiml(await line.post("/twilio/voice/problem", {**call, "SpeechResult": speech, "Confidence": "0.91"}))

    assert ask.find("Gather").get("input") == "speech"
    assert ask.find("Gather").get("action") == PUBLIC + "/twilio/voice/problem"
    case = await Case.get(source_id=f"twilio-call:{call['CallSid']}")
    assert (case.channel, case.content, case.caller_phone) == ("phone", speech, call["From"])
    assert case.details["call_sid"] == call["CallSid"]
    said = spoken(done)
    assert voice.spoken(case.number) in said and " ".join(case.query_code) in said
    assert done.find("Hangup") is not None
    # Read digit by digit: 20260610-000001 → 二 零 二 六 零 六 幺 零 零 零 零 零 零 幺.
    assert voice.spoken("20260610-000001") == "二 零 二 六 零 六 幺 零 零 零 零 零 零 幺"
    row = await CallLog.get(call_sid=call["CallSid"])
    assert row.case_id == case.id and row.speech_text == speech and row.purpose == "intake"
    assert await events(call["CallSid"]) == ["incoming", "menu", "problem", "case_created"]
    # The case core queued the acceptance SMS to the caller.
    assert await Notification.exists(case_id=case.id, template="case_accepted", address=call["From"])
    for _ in range(100):
        await case.refresh_from_db()
        if case.routing_state == "done":
            break
        await asyncio.sleep(0.05)
    assert case.routing_state == "done" and case.status != "received"


async def test_the_menu_understands_spoken_choices():
    assert voice.menu_choice("", "我要查询进度") == "2"
    assert voice.menu_choice(None, "转人工") == "0"
    assert voice.menu_choice("", "反映问题") == "1"
    assert voice.menu_choice("9", "") == ""


async def test_a_retried_webhook_never_makes_a_second_case_or_call_log(line):
    call = new_call()
    speech = "五一路上的井盖缺失，很危险。"

    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "1"})
    first = twiml(await line.post("/twilio/voice/problem", {**call, "SpeechResult": speech}))
    second = twiml(await line.post("/twilio/voice/problem", {**call, "SpeechResult": speech}))

    assert await CallLog.filter(call_sid=call["CallSid"]).count() == 1
    assert await Case.filter(source_id=f"twilio-call:{call['CallSid']}").count() == 1
    assert spoken(first) == spoken(second)
    assert await Notification.filter(case__source_id=f"twilio-call:{call['CallSid']}", template="case_accepted").count() == 1


async def test_silence_is_asked_about_once_then_the_caller_may_leave_a_voicemail(line):
    call = new_call()
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "1"})

    again = twiml(await line.post("/twilio/voice/problem", {**call, "SpeechResult": ""}))
    record = twiml(await line.post("/twilio/voice/problem", call))

    assert "没有听清" in spoken(again) and again.find("Gather") is not None
    assert record.find("Record") is not None
    assert not await Case.exists(source_id=f"twilio-call:{call['CallSid']}")
    assert (await CallLog.get(call_sid=call["CallSid"])).purpose == "voicemail"


async def test_a_menu_without_an_answer_is_repeated_once_then_goes_to_a_person(line, only_these_agents):
    call = new_call()
    await line.post("/twilio/voice", call)

    again = twiml(await line.post("/twilio/voice/menu", call))
    then = twiml(await line.post("/twilio/voice/menu", call))

    assert "没有听清" in spoken(again) and again.find("Gather") is not None
    # Nobody takes calls in this test: the person is reached by voicemail.
    assert then.find("Record") is not None


# ---- voicemail ------------------------------------------------------------------------------------


async def test_after_hours_a_voicemail_becomes_a_case_with_the_recording(line, monkeypatch):
    monkeypatch.setattr(voice, "clock", lambda: EVENING)
    call = new_call()
    rec = "RE" + uuid.uuid4().hex
    url = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}"

    await line.post("/twilio/voice", call)
    record = twiml(await line.post("/twilio/voice/menu", {**call, "Digits": "0"}))
    r = record.find("Record")
    assert "非工作时间" in spoken(record)
    assert r.get("action") == PUBLIC + "/twilio/voice/voicemail"
    assert r.get("recordingStatusCallback") == PUBLIC + "/twilio/voice/recording"
    assert r.get("maxLength") == "120"

    done = twiml(await line.post("/twilio/voice/voicemail", {**call, "RecordingUrl": url, "RecordingDuration": "17"}))
    callback = await line.post("/twilio/voice/recording", {
        "AccountSid": SID, "CallSid": call["CallSid"], "RecordingSid": rec, "RecordingUrl": url,
        "RecordingStatus": "completed", "RecordingDuration": "17", "RecordingChannels": "1",
    })

    assert callback.status_code == 204
    case = await Case.get(source_id=f"twilio-call:{call['CallSid']}")
    assert case.status == "received" and case.caller_phone == call["From"]
    assert case.details["recording_url"] == url and case.details["call_sid"] == call["CallSid"]
    assert case.details["recording_sid"] == rec
    assert voice.spoken(case.number) in spoken(done)
    row = await CallLog.get(call_sid=call["CallSid"])
    assert (row.recording_sid, row.recording_url, row.case_id) == (rec, url, case.id)
    assert row.retain_until == EVENING + timedelta(days=180)
    assert row.transcript == ""  # Twilio cannot transcribe Chinese; the ASR seam returns None
    assert await Case.filter(source_id=f"twilio-call:{call['CallSid']}").count() == 1


async def test_a_voicemail_whose_recording_callback_comes_first_still_makes_one_case(line, monkeypatch):
    monkeypatch.setattr(voice, "clock", lambda: EVENING)
    call = new_call()
    rec = "RE" + uuid.uuid4().hex
    url = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "0"})
    status = {"AccountSid": SID, "CallSid": call["CallSid"], "RecordingSid": rec, "RecordingUrl": url,
              "RecordingStatus": "completed", "RecordingDuration": "9"}

    await line.post("/twilio/voice/recording", status)
    await line.post("/twilio/voice/recording", status)
    await line.post("/twilio/voice/voicemail", {**call, "RecordingUrl": url, "RecordingDuration": "9"})

    assert await Case.filter(source_id=f"twilio-call:{call['CallSid']}").count() == 1
    assert await CallLog.filter(call_sid=call["CallSid"]).count() == 1


async def test_an_empty_voicemail_makes_no_case(line, monkeypatch):
    monkeypatch.setattr(voice, "clock", lambda: EVENING)
    call = new_call()
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "0"})

    root = twiml(await line.post("/twilio/voice/voicemail", {**call, "RecordingUrl": "", "RecordingDuration": "0"}))

    assert root.find("Hangup") is not None
    assert not await Case.exists(source_id=f"twilio-call:{call['CallSid']}")


# ---- progress lookup -----------------------------------------------------------------------------------


async def test_progress_is_read_only_to_the_number_that_registered_the_case(line, make_case):
    mobile = f"139{secrets.randbelow(10**8):08d}"
    case = await make_case(caller_phone=mobile)
    digits = case["number"].replace("-", "")

    own = new_call(caller="+86" + mobile)
    await line.post("/twilio/voice", own)
    ask = twiml(await line.post("/twilio/voice/menu", {**own, "Digits": "2"}))
    found = twiml(await line.post("/twilio/voice/lookup", {**own, "Digits": digits}))

    stranger = new_call()
    await line.post("/twilio/voice", stranger)
    await line.post("/twilio/voice/menu", {**stranger, "Digits": "2"})
    hidden = twiml(await line.post("/twilio/voice/lookup", {**stranger, "Digits": digits}))
    unknown = twiml(await line.post("/twilio/voice/lookup", {**stranger, "Digits": "20000101000001"}))

    assert ask.find("Gather").get("input") == "dtmf" and ask.find("Gather").get("numDigits") == "14"
    assert "待受理" in spoken(found) and voice.spoken(case["number"]) in spoken(found)
    assert "没有查询到" in spoken(hidden) and "待受理" not in spoken(hidden)
    assert voice.spoken(case["number"]) not in spoken(hidden)
    # Someone else's case and no case at all sound the same.
    assert spoken(hidden) == spoken(unknown)


async def test_lookups_are_limited_per_call(line):
    call = new_call()
    await line.post("/twilio/voice", call)
    for _ in range(3):
        await line.post("/twilio/voice/lookup", {**call, "Digits": "20000101000001"})

    root = twiml(await line.post("/twilio/voice/lookup", {**call, "Digits": "20000101000001"}))

    assert "上限" in spoken(root) and root.find("Hangup") is not None


# ---- signatures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/voice/problem", "/twilio/voice/recording", "/twilio/voice/status"])
async def test_unsigned_or_forged_webhooks_are_refused_and_write_nothing(line, path):
    call = {**new_call(), "SpeechResult": "测试", "RecordingUrl": "https://example.com/r", "RecordingStatus": "completed"}
    forged = RequestValidator("someone-elses").compute_signature(PUBLIC + path, call)
    internal = RequestValidator(TOKEN).compute_signature("http://10.0.0.5:8000" + path, call)

    unsigned = await line.client.post(path, data=call)
    wrong_token = await line.client.post(path, data=call, headers={"X-Twilio-Signature": forged})
    wrong_url = await line.client.post(path, data=call, headers={"X-Twilio-Signature": internal})
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, call)
    tampered = await line.client.post(path, data={**call, "From": "+8613000000000"}, headers={"X-Twilio-Signature": signature})

    assert [r.status_code for r in (unsigned, wrong_token, wrong_url, tampered)] == [403] * 4
    assert not await CallLog.exists(call_sid=call["CallSid"])
    assert not await Case.exists(source_id=f"twilio-call:{call['CallSid']}")


async def test_voice_webhooks_are_refused_when_twilio_is_not_configured(client):
    call = new_call()
    signature = RequestValidator(TOKEN).compute_signature("http://127.0.0.1:8000/twilio/voice", call)

    r = await client.post("/twilio/voice", data=call, headers={"X-Twilio-Signature": signature})

    assert r.status_code == 403 and not await CallLog.exists(call_sid=call["CallSid"])


# ---- agents ---------------------------------------------------------------------------------------------------


async def test_in_working_hours_the_caller_queues_and_the_first_free_agent_is_rung(line, world, only_these_agents):
    agent = await only_these_agents(world.agent, "+8613700137000")
    call = new_call()
    await line.post("/twilio/voice", call)

    root = twiml(await line.post("/twilio/voice/menu", {**call, "Digits": "0"}))

    enqueue = root.find("Enqueue")
    assert enqueue.text == "agents"
    assert enqueue.get("waitUrl") == PUBLIC + "/twilio/voice/hold"
    assert enqueue.get("action") == PUBLIC + "/twilio/voice/queue-done"
    [ring] = line.carrier.requests_to("Calls.json", "POST")
    assert ring["data"]["To"] == "+8613700137000" and ring["data"]["From"] == HOTLINE
    assert ring["data"]["Url"] == f"{PUBLIC}/twilio/voice/agent-answer?caller={call['CallSid']}"
    leg = await CallLog.get(agent_id=agent.id, purpose="transfer", direction="outbound")
    assert leg.to_number == "+8613700137000"
    assert (await CallLog.get(call_sid=call["CallSid"])).purpose == "transfer"
    assert await events(call["CallSid"]) == ["incoming", "menu", "enqueued", "agent_dialed"]

    # The agent answers: their leg dials the queue, and the talk is recorded.
    answered = twiml(await line.post(
        "/twilio/voice/agent-answer",
        {"CallSid": leg.call_sid, "AccountSid": SID, "From": HOTLINE, "To": "+8613700137000", "CallStatus": "in-progress"},
        query=f"caller={call['CallSid']}",
    ))
    dial = answered.find("Dial")
    assert dial.find("Queue").text == "agents"
    assert dial.find("Queue").get("url") == PUBLIC + "/twilio/voice/dequeued"
    assert dial.get("record") == "record-from-answer-dual"

    # While that agent's leg is live, holding music does not ring anyone else.
    await line.post("/twilio/voice/status", {"CallSid": leg.call_sid, "AccountSid": SID, "CallStatus": "in-progress",
                                             "Direction": "outbound-api"})
    await line.post("/twilio/voice/hold", {**call, "QueueTime": "20", "QueuePosition": "1"})
    assert len(line.carrier.requests_to("Calls.json", "POST")) == 1


async def test_an_agent_who_does_not_answer_is_followed_by_the_next_one(line, world, only_these_agents):
    await only_these_agents(world.agent, "+8613700137001")
    call = new_call()
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "0"})
    assert len(line.carrier.requests_to("Calls.json", "POST")) == 1
    leg = await CallLog.get(to_number="+8613700137001", purpose="transfer", status="queued")
    await only_these_agents(world.dispatcher, "+8613700137002")

    await line.post("/twilio/voice/status", {"CallSid": leg.call_sid, "AccountSid": SID, "CallStatus": "no-answer",
                                             "Direction": "outbound-api"})
    hold = twiml(await line.post("/twilio/voice/hold", {**call, "QueueTime": "40", "QueuePosition": "2"}))

    assert "前面还有1位" in spoken(hold)
    calls = line.carrier.requests_to("Calls.json", "POST")
    assert [c["data"]["To"] for c in calls] == ["+8613700137001", "+8613700137002"]
    await leg.refresh_from_db()
    assert leg.status == "no-answer" and leg.ended_at is not None


async def test_a_caller_who_waits_too_long_leaves_a_voicemail(line, world, only_these_agents):
    await only_these_agents(world.agent, "+8613700137003")
    call = new_call()
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "0"})

    leave = twiml(await line.post("/twilio/voice/hold", {**call, "QueueTime": "121"}))
    record = twiml(await line.post("/twilio/voice/queue-done", {**call, "QueueResult": "leave", "QueueTime": "121"}))

    assert leave.find("Leave") is not None
    assert record.find("Record") is not None
    assert (await CallLog.get(call_sid=call["CallSid"])).purpose == "voicemail"
    assert "overflow" in await events(call["CallSid"])


async def test_with_nobody_taking_calls_the_caller_goes_straight_to_voicemail(line, only_these_agents):
    call = new_call()
    await line.post("/twilio/voice", call)

    root = twiml(await line.post("/twilio/voice/menu", {**call, "Digits": "0"}))

    assert root.find("Record") is not None and root.find("Enqueue") is None
    assert not line.carrier.requests_to("Calls.json")


async def test_agents_see_the_callers_earlier_cases(line, world, make_case):
    mobile = f"139{secrets.randbelow(10**8):08d}"
    older = await make_case(caller_phone=mobile, title="路灯不亮")
    newer = await make_case(caller_phone=mobile, title="噪音扰民")
    await make_case(caller_phone=f"139{secrets.randbelow(10**8):08d}", title="别人的事")
    call = new_call(caller="+86" + mobile)
    await line.post("/twilio/voice", call)

    r = await line.client.get(f"/api/calls/{call['CallSid']}/caller", headers=world.agent.headers)
    handler = await line.client.get(f"/api/calls/{call['CallSid']}/caller", headers=world.zjj.headers)
    unknown = await line.client.get(f"/api/calls/CA{uuid.uuid4().hex}/caller", headers=world.dispatcher.headers)

    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["number"] for c in body["cases"]] == [newer["number"], older["number"]]
    assert body["cases"][0]["status_label"] == "待受理" and body["cases"][1]["title"] == "路灯不亮"
    assert handler.status_code == 403 and unknown.status_code == 404


# ---- call status ---------------------------------------------------------------------------------------------------


async def test_status_callbacks_end_the_call_and_never_go_backwards(line):
    call = new_call()
    await line.post("/twilio/voice", call)

    await line.post("/twilio/voice/status", {**call, "CallStatus": "in-progress"})
    done = await line.post("/twilio/voice/status", {**call, "CallStatus": "completed", "CallDuration": "95"})
    await line.post("/twilio/voice/status", {**call, "CallStatus": "ringing"})

    row = await CallLog.get(call_sid=call["CallSid"])
    assert done.status_code == 204
    assert row.status == "completed" and row.ended_at is not None


# ---- the confidential bridge ------------------------------------------------------------------------------------------


async def dispatched_case(client, make_case, world, mobile: str) -> str:
    number = (await make_case(caller_phone=mobile, confidential=True))["number"]
    r = await act(client, world.dispatcher, number, "dispatch", {"lead_unit_id": world.units["zjj"]})
    assert r.status_code == 200, r.text
    return number


async def test_the_unit_calls_the_citizen_through_the_hotline_without_seeing_the_number(line, client, world, make_case):
    mobile = f"139{secrets.randbelow(10**8):08d}"
    number = await dispatched_case(client, make_case, world, mobile)
    handler = await User.get(username=world.zjj.username)
    await User.filter(id=handler.id).update(phone="13600136000")

    r = await line.client.post(f"/api/cases/{number}/call-citizen", headers=world.zjj.headers)

    assert r.status_code == 202, r.text
    assert mobile not in r.text and mobile[-8:] not in r.text
    [ring] = line.carrier.requests_to("Calls.json", "POST")
    # The app rings the handler's own phone, from the hotline number; the citizen is not in the request.
    assert ring["data"]["To"] == "+8613600136000" and ring["data"]["From"] == HOTLINE
    assert ring["data"]["Url"] == f"{PUBLIC}/twilio/voice/bridge?case={number}"
    assert mobile not in json.dumps(ring["data"])
    leg = await CallLog.get(call_sid=r.json()["call_sid"])
    assert (leg.purpose, leg.direction, leg.to_number, leg.agent_id) == ("bridge", "outbound", "13600136000", handler.id)
    assert mobile not in f"{leg.from_number}{leg.to_number}"

    # The handler answers: only now, and only to Twilio, is the citizen's number dialled.
    root = twiml(await line.post(
        "/twilio/voice/bridge", {"CallSid": leg.call_sid, "AccountSid": SID, "From": HOTLINE,
                                 "To": "+8613600136000", "CallStatus": "in-progress"},
        query=f"case={number}",
    ))
    dial = root.find("Dial")
    assert dial.get("callerId") == HOTLINE
    assert dial.find("Number").text == "+86" + mobile
    events_payloads = await CallEvent.filter(call_id=leg.id).values_list("payload", flat=True)
    assert mobile not in json.dumps(events_payloads)


async def test_the_bridge_twiml_refuses_a_call_that_was_not_started_for_that_case(line, client, world, make_case):
    number = await dispatched_case(client, make_case, world, f"139{secrets.randbelow(10**8):08d}")
    stray = new_call()
    await line.post("/twilio/voice", stray)

    root = twiml(await line.post("/twilio/voice/bridge", stray, query=f"case={number}"))

    assert root.find("Dial") is None and root.find("Hangup") is not None


async def test_only_a_handler_of_the_unit_on_the_case_may_bridge(line, client, world, make_case):
    number = await dispatched_case(client, make_case, world, f"139{secrets.randbelow(10**8):08d}")
    await User.filter(username__in=[world.jtj.username, world.zjj2.username]).update(phone="13600136001")

    other_unit = await line.client.post(f"/api/cases/{number}/call-citizen", headers=world.jtj.headers)
    agent = await line.client.post(f"/api/cases/{number}/call-citizen", headers=world.agent.headers)
    no_phone = await line.client.post(f"/api/cases/{number}/call-citizen", headers=world.zjj.headers)

    assert other_unit.status_code == 404 and agent.status_code == 403
    assert no_phone.status_code == 409 and "电话" in no_phone.json()["message"]
    assert not line.carrier.requests_to("Calls.json")


async def test_without_twilio_the_bridge_is_refused_with_a_clear_message(client, world, make_case):
    number = await dispatched_case(client, make_case, world, f"139{secrets.randbelow(10**8):08d}")
    await User.filter(username=world.zjj2.username).update(phone="13600136002")

    r = await client.post(f"/api/cases/{number}/call-citizen", headers=world.zjj2.headers)

    assert r.status_code == 503 and r.json()["message"] == "未配置电话线路，暂不能外呼"


# ---- the browser softphone token ------------------------------------------------------------------------------------------


async def test_the_softphone_token_needs_its_settings(client, world):
    r = await client.post("/api/voice/token", headers=world.agent.headers)

    assert r.status_code == 503 and "TWILIO_API_KEY" in r.json()["message"]


async def test_agents_get_a_voice_token_for_the_twiml_app(app, settings, world):
    from hotline.web.app import create_app

    configured = create_app(replace(settings, twilio_account_sid=SID, twilio_api_key="SK" + "2" * 32,
                                    twilio_api_secret="s" * 40, twilio_twiml_app_sid="AP" + "3" * 32))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=configured), base_url="http://t") as c:
        r = await c.post("/api/voice/token", headers=world.agent.headers)
        handler = await c.post("/api/voice/token", headers=world.zjj.headers)

    assert r.status_code == 200, r.text
    payload = r.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP" + "3" * 32
    assert claims["grants"]["voice"]["incoming"]["allow"] is True
    assert claims["grants"]["identity"] == r.json()["identity"]
    assert handler.status_code == 403


async def test_an_agents_browser_takes_the_next_caller_from_the_queue(line, world):
    agent = await User.get(username=world.agent.username)
    handler = await User.get(username=world.zjj.username)
    leg = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": SID, "From": f"client:user-{agent.id}", "To": ""}
    stranger = {**leg, "CallSid": "CA" + uuid.uuid4().hex, "From": f"client:user-{handler.id}"}

    root = twiml(await line.post("/twilio/voice/softphone", leg))
    refused = twiml(await line.post("/twilio/voice/softphone", stranger))

    assert root.find("Dial").find("Queue").text == "agents"
    row = await CallLog.get(call_sid=leg["CallSid"])
    assert (row.agent_id, row.purpose) == (agent.id, "transfer")
    assert refused.find("Dial") is None and not await CallLog.exists(call_sid=stranger["CallSid"])


async def test_a_withheld_number_makes_a_case_without_a_phone(line):
    call = new_call(caller="+266696687")
    await line.post("/twilio/voice", call)
    await line.post("/twilio/voice/menu", {**call, "Digits": "1"})

    await line.post("/twilio/voice/problem", {**call, "SpeechResult": "匿名反映：某路口红绿灯不亮。"})

    case = await Case.get(source_id=f"twilio-call:{call['CallSid']}")
    assert case.caller_phone == "" and not await Notification.exists(case_id=case.id, template="case_accepted")


# ---- which caller an agent got, and the cases made during the call ------------------------------------------------


async def queue_hands_over(line, caller: dict[str, str], agent_leg_sid: str) -> ElementTree.Element:
    """What Twilio does when an agent's leg dials the queue: it asks the Queue url about the caller it takes."""
    return twiml(await line.post("/twilio/voice/dequeued", {
        **caller, "CallStatus": "in-progress", "QueueSid": "QU" + "0" * 32, "QueueTime": "12",
        "DequeingCallSid": agent_leg_sid,
    }))


async def browser_leg(line, user: User) -> dict[str, str]:
    leg = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": SID, "From": f"client:user-{user.id}", "To": "",
           "CallStatus": "in-progress"}
    root = twiml(await line.post("/twilio/voice/softphone", leg))
    assert root.find("Dial").find("Queue").get("url") == PUBLIC + "/twilio/voice/dequeued"
    return leg


async def test_the_queue_tells_which_caller_an_agents_browser_got_and_the_console_follows_it(line, world, make_case):
    mobile = f"139{secrets.randbelow(10**8):08d}"
    earlier = await make_case(caller_phone=mobile, title="井盖缺失")
    agent = await User.get(username=world.agent.username)
    caller = new_call(caller="+86" + mobile)
    await line.post("/twilio/voice", caller)
    await line.post("/twilio/voice/menu", {**caller, "Digits": "0"})
    leg = await browser_leg(line, agent)
    before = await line.client.get(f"/api/calls/{leg['CallSid']}/caller", headers=world.agent.headers)

    root = await queue_hands_over(line, caller, leg["CallSid"])

    assert "正在为您接通话务员" in spoken(root)
    assert before.json()["caller_phone"] == "" and before.json()["cases"] == []
    r = await line.client.get(f"/api/calls/{leg['CallSid']}/caller", headers=world.agent.headers)
    assert r.json()["caller_phone"] == caller["From"] and r.json()["caller_call_sid"] == caller["CallSid"]
    assert [c["number"] for c in r.json()["cases"]] == [earlier["number"]]
    current = (await line.client.get("/api/calls/current", headers=world.agent.headers)).json()
    assert current == {"on_call": True, "call_sid": leg["CallSid"], "caller_call_sid": caller["CallSid"],
                       "caller_phone": caller["From"]}
    assert (await line.client.get("/api/calls/current", headers=world.dispatcher.headers)).json() == {
        "on_call": False, "call_sid": "", "caller_call_sid": "", "caller_phone": ""}
    assert (await CallLog.get(call_sid=caller["CallSid"])).agent_id == agent.id
    assert "agent_connected" in await events(caller["CallSid"])

    # A retried Queue url changes nothing; the caller hanging up ends the agent's current call.
    await queue_hands_over(line, caller, leg["CallSid"])
    assert (await events(caller["CallSid"])).count("agent_connected") == 1
    await line.post("/twilio/voice/status", {**caller, "CallStatus": "completed", "CallDuration": "95"})
    assert (await line.client.get("/api/calls/current", headers=world.agent.headers)).json()["on_call"] is False


async def test_an_agent_answering_on_their_own_phone_is_linked_to_the_caller_the_queue_gave_them(
        line, world, only_these_agents):
    agent = await only_these_agents(world.agent, "+8613700137100")
    first, second = new_call(), new_call()
    for call in (first, second):
        await line.post("/twilio/voice", call)
        await line.post("/twilio/voice/menu", {**call, "Digits": "0"})
    leg = await CallLog.get(agent_id=agent.id, purpose="transfer", direction="outbound")
    # Rung for the first caller; the queue may hand over whoever waited longest: that is the one linked.
    await line.post("/twilio/voice/agent-answer", {"CallSid": leg.call_sid, "AccountSid": SID, "From": HOTLINE,
                                                   "To": agent.phone, "CallStatus": "in-progress"},
                    query=f"caller={first['CallSid']}")
    await queue_hands_over(line, second, leg.call_sid)

    r = await line.client.get(f"/api/calls/{leg.call_sid}/caller", headers=world.agent.headers)
    assert r.json()["caller_phone"] == second["From"]
    assert (await CallLog.get(id=leg.id)).peer_id == (await CallLog.get(call_sid=second["CallSid"])).id


async def test_cases_an_agent_makes_during_a_call_are_linked_to_the_callers_call(line, world):
    agent = await User.get(username=world.agent.username)
    caller = new_call()
    await line.post("/twilio/voice", caller)
    leg = await browser_leg(line, agent)
    await queue_hands_over(line, caller, leg["CallSid"])

    def new_case(title: str, **query: str):
        return line.client.post("/api/cases", params={"route": "false", **query}, headers=world.agent.headers,
                                json={"channel": "phone", "title": title, "content": f"{title}，请尽快处理。",
                                      "caller_phone": caller["From"]})

    first = await new_case("路灯不亮", call_sid=leg["CallSid"])
    second = await new_case("噪音扰民", call_sid=caller["CallSid"])
    malformed = await new_case("乱码", call_sid="CA123")
    unknown = await new_case("别的通话", call_sid="CA" + uuid.uuid4().hex)

    assert first.status_code == second.status_code == 201
    row = await CallLog.get(call_sid=caller["CallSid"])
    assert row.case_id == (await Case.get(number=first.json()["number"])).id
    payloads = await CallEvent.filter(call_id=row.id, event="case_linked").order_by("id").values_list("payload", flat=True)
    assert [p["case"] for p in payloads] == [first.json()["number"], second.json()["number"]]
    assert malformed.status_code == 422 and not await Case.exists(title="乱码")
    assert unknown.status_code == 201 and not await CallLog.exists(case__number=unknown.json()["number"])
