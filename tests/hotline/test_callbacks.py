"""回访 scheduling: one survey attempt a day by SMS (and IVR call), then unreachable.

Outbound Twilio requests go through the real SDK and a fake HTTP client.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from twilio.http import HttpClient
from twilio.http.response import Response

from cases import states as s
from cases.models import Case, CaseEvent, Notification
from cases.sla import SHANGHAI
from hotline.callbacks import parse_sms_answer, schedule
from hotline.channels.sms import make_sender
from hotline.channels.telephony import make_telephony
from hotline.jobs import Services, tick
from hotline.models import CallLog
from tests.conftest import act

SID = "AC" + "2" * 32
TOKEN = "twilio-callback-token"
FROM = "+15005550006"
PUBLIC = "https://hotline.example.cn"


class FakeTwilioHttp(HttpClient):
    """Answers every request as Twilio would accept it, and records what was asked."""

    def __init__(self):
        super().__init__(logging.getLogger("tests.twilio"), is_async=False)
        self.calls: list[dict] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        self.calls.append({"method": method, "url": url, "data": dict(data or {})})
        prefix = "CA" if url.endswith("/Calls.json") else "SM"
        return Response(201, json.dumps({"sid": prefix + secrets.token_hex(16), "status": "queued"}))

    def placed(self, url_suffix: str) -> list[dict]:
        return [c["data"] for c in self.calls if c["url"].endswith("/Calls.json")
                and c["data"].get("Url", "").endswith(url_suffix)]

    def surveys_texted(self, to: str) -> list[dict]:
        return [c["data"] for c in self.calls if c["url"].endswith("/Messages.json") and c["data"]["To"] == to
                and "请回复一个数字" in c["data"]["Body"]]


def twilio_settings(settings, **extra):
    return replace(settings, public_base_url=PUBLIC, twilio_account_sid=SID, twilio_auth_token=TOKEN,
                   twilio_from_number=FROM, callback_hours="00:00-24:00", **extra)


def new_phone() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


async def replied_case(client, world, make_case, **fields) -> Case:
    """A case the lead unit has answered: waiting for its callback (已答复待回访)."""
    number = (await make_case(**fields))["number"]
    r = await act(client, world.dispatcher, number, "dispatch", {"lead_unit_id": world.units["zjj"]})
    assert r.status_code == 200, r.text
    assert (await act(client, world.zjj, number, "sign")).status_code == 200
    r = await act(client, world.zjj, number, "reply", {"text": "路灯已修复。"})
    assert r.status_code == 200 and r.json()["status"] == s.REPLIED, r.text
    return await Case.get(number=number)


async def surveys(case: Case) -> list[Notification]:
    return await Notification.filter(case_id=case.id, template="callback_survey").order_by("id")


async def callback_events(case: Case) -> list[CaseEvent]:
    return await CaseEvent.filter(case_id=case.id, action__in=["record_callback", "callback_unreachable"]).order_by("id")


def sh(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


# ---- the digits ------------------------------------------------------------------------------


def test_a_reply_is_one_digit_from_one_to_four_and_nothing_else():
    assert parse_sms_answer("1") == ("resolved", "satisfied")
    assert parse_sms_answer(" ２。") == ("resolved", "basically")
    assert parse_sms_answer("3") == ("resolved", "unsatisfied")
    assert parse_sms_answer("4\n") == ("unresolved", "unsatisfied")
    for unclear in ("", "5", "12", "满意", "1 2", "0"):
        assert parse_sms_answer(unclear) is None, unclear


# ---- scheduling ---------------------------------------------------------------------------------


async def test_a_tick_past_callback_due_texts_and_calls_the_citizen_once(app, client, world, make_case, settings):
    phone = new_phone()
    case = await replied_case(client, world, make_case, caller_phone=phone)
    tsettings = twilio_settings(settings)
    http = FakeTwilioHttp()
    services = Services.build(tsettings, sla=app.state.sla)
    services.sender = make_sender(tsettings, http_client=http)
    services.telephony = make_telephony(tsettings, http_client=http)

    await tick(services, now=case.callback_due - timedelta(minutes=1))
    assert await surveys(case) == [] and http.placed(f"/ivr/{case.id}") == []

    now = case.callback_due + timedelta(minutes=1)
    await tick(services, now=now)
    await tick(services, now=now + timedelta(minutes=1))
    await tick(services, now=now + timedelta(hours=3))

    [sms] = await surveys(case)
    assert sms.address == phone and "1已解决满意" in sms.body and case.number in sms.body
    assert sms.status == "sent" and len(http.surveys_texted(phone)) == 1
    [call] = http.placed(f"/ivr/{case.id}")
    assert call["To"] == "+86" + phone and call["From"] == FROM
    assert call["Url"] == f"{PUBLIC}/twilio/callback/ivr/{case.id}"
    log = await CallLog.get(case_id=case.id, purpose="survey")
    assert log.direction == "outbound" and log.to_number == "+86" + phone
    await case.refresh_from_db()
    assert case.status == s.REPLIED and case.callback_attempts == 1
    assert case.callback_due == now + timedelta(days=1)
    [event] = await callback_events(case)
    assert "自动回访第1次（共3次）" in event.payload["note"]


async def test_without_twilio_the_survey_goes_by_sms_only(app, client, world, make_case, settings):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    ctx = await app.state.sla.get()
    local = replace(settings, callback_hours="00:00-24:00")

    stats = await schedule(local, ctx, now=case.callback_due)

    assert stats.started >= 1 and len(await surveys(case)) == 1
    assert not await CallLog.exists(case_id=case.id)


async def test_two_schedulers_at_once_start_one_attempt(app, client, world, make_case, settings):
    import asyncio

    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    ctx = await app.state.sla.get()
    http = FakeTwilioHttp()
    tsettings = twilio_settings(settings)
    telephony = make_telephony(tsettings, http_client=http)

    await asyncio.gather(*(schedule(tsettings, ctx, telephony=telephony, now=case.callback_due) for _ in range(3)))

    assert len(await surveys(case)) == 1 and len(http.placed(f"/ivr/{case.id}")) == 1
    await case.refresh_from_db()
    assert case.callback_attempts == 1


async def test_it_retries_once_a_day_and_records_unreachable_after_the_last_attempt(
    app, client, world, make_case, settings
):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    ctx = await app.state.sla.get()
    local = replace(settings, callback_hours="00:00-24:00", callback_attempts=2)
    first = case.callback_due

    await schedule(local, ctx, now=first)
    await schedule(local, ctx, now=first + timedelta(hours=23))
    assert len(await surveys(case)) == 1
    await schedule(local, ctx, now=first + timedelta(days=1))
    assert len(await surveys(case)) == 2
    await case.refresh_from_db()
    assert (case.status, case.callback_attempts) == (s.REPLIED, 2)

    await schedule(local, ctx, now=first + timedelta(days=2))

    await case.refresh_from_db()
    assert case.status == s.CALLBACK_DONE
    assert (case.callback_contacted, case.callback_resolved, case.callback_satisfaction) == (False, "unreachable", "")
    assert case.callback_due is None
    assert len(await surveys(case)) == 2
    last = (await callback_events(case))[-1]
    assert last.action == "callback_unreachable" and last.to_status == s.CALLBACK_DONE
    assert last.payload["note"] == "自动回访2次均未联系上市民，记为无法联系"


async def test_nobody_is_texted_or_called_at_night_but_the_survey_starts_in_the_morning(
    app, client, world, make_case, settings
):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    ctx = await app.state.sla.get()
    local = replace(settings, callback_hours="09:00-20:00")
    night = sh(2030, 3, 5, 23, 30)
    await Case.filter(id=case.id).update(callback_due=night - timedelta(hours=1))

    await schedule(local, ctx, now=night)
    assert await surveys(case) == []

    await schedule(local, ctx, now=sh(2030, 3, 6, 9, 0))
    assert len(await surveys(case)) == 1


async def test_a_confidential_caller_is_surveyed_about_their_own_case_only(app, client, world, make_case, settings):
    phone = new_phone()
    case = await replied_case(client, world, make_case, caller_phone=phone, confidential=True)
    ctx = await app.state.sla.get()

    await schedule(replace(settings, callback_hours="00:00-24:00"), ctx, now=case.callback_due)

    [sms] = await surveys(case)
    assert sms.address == phone and sms.recipient_kind == "citizen" and case.number in sms.body
    assert "路灯已修复" not in sms.body


async def test_a_case_without_a_number_is_left_to_the_agents(app, client, world, make_case, settings):
    case = await replied_case(client, world, make_case, caller_phone="")
    ctx = await app.state.sla.get()

    await schedule(replace(settings, callback_hours="00:00-24:00"), ctx, now=case.callback_due + timedelta(days=5))

    await case.refresh_from_db()
    assert case.status == s.REPLIED and case.callback_attempts == 0 and await surveys(case) == []
