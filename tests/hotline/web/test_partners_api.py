"""The partner directory API, hand-off tracking, signed intake and 话务直转 (moving a live call)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator

from cases import states as s
from cases.models import Case, CaseEvent, Handoff, PartnerHotline
from hotline import partners
from tests.conftest import act

SECRET = "intake-test-secret"


# ---- the directory ------------------------------------------------------------------------------


def entry(**overrides) -> dict:
    body = {"code": f"hz-{secrets.token_hex(3)}", "name": "杭州市12345政务服务热线", "phone": "0571-12345",
            "intake_url": "https://12345.hangzhou.example.cn/partners/intake",
            "secret_env": "HOTLINE_PARTNER_HANGZHOU"}
    body.update(overrides)
    return body


async def test_an_admin_adds_a_partner_and_agents_and_dispatchers_read_the_directory(client, world, monkeypatch):
    monkeypatch.setenv("HOTLINE_PARTNER_HANGZHOU", "s3cret")
    body = entry()

    r = await client.post("/api/partners", json=body, headers=world.admin.headers)

    assert r.status_code == 201, r.text
    assert r.json() == {**body, "is_active": True, "secret_configured": True}
    assert "s3cret" not in r.text
    for who in (world.agent, world.dispatcher):
        listed = await client.get("/api/partners", headers=who.headers)
        assert listed.status_code == 200 and body["code"] in [p["code"] for p in listed.json()]


async def test_only_admins_edit_the_directory_and_units_do_not_read_it(client, world):
    assert (await client.post("/api/partners", json=entry(), headers=world.agent.headers)).status_code == 403
    assert (await client.get("/api/partners", headers=world.zjj.headers)).status_code == 403


@pytest.mark.parametrize("field, value", [
    ("secret_env", "SECRET_KEY"),  # only HOTLINE_PARTNER_* may be named
    ("secret_env", "DATABASE_URL"),
    ("intake_url", "http://12345.hangzhou.example.cn/intake"),  # plain http beyond this machine
    ("intake_url", "ftp://12345.hangzhou.example.cn/intake"),
    ("intake_url", "https://user:pw@12345.hangzhou.example.cn/intake"),
    ("code", "Hangzhou 12345"),
    ("phone", "call us"),
    ("name", "   "),
])
async def test_bad_directory_entries_are_refused(client, world, field, value):
    r = await client.post("/api/partners", json=entry(**{field: value}), headers=world.admin.headers)

    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


async def test_an_intake_api_needs_a_secret_and_a_partner_needs_a_way_to_reach_it(client, world):
    no_secret = await client.post("/api/partners", json=entry(secret_env=""), headers=world.admin.headers)
    unreachable = await client.post("/api/partners", json=entry(phone="", intake_url="", secret_env=""),
                                    headers=world.admin.headers)

    assert no_secret.status_code == 422 and "密钥" in no_secret.json()["message"]
    assert unreachable.status_code == 422


async def test_a_partner_code_is_unique_and_an_entry_can_be_changed_and_deactivated(client, world):
    body = entry()
    await client.post("/api/partners", json=body, headers=world.admin.headers)
    assert (await client.post("/api/partners", json=body, headers=world.admin.headers)).status_code == 409

    changed = {k: v for k, v in body.items() if k != "code"} | {"phone": "0571-12345-1", "is_active": False}
    r = await client.put(f"/api/partners/{body['code']}", json=changed, headers=world.admin.headers)

    assert r.status_code == 200 and r.json()["phone"] == "0571-12345-1" and r.json()["is_active"] is False
    active = await client.get("/api/partners?status=active", headers=world.agent.headers)
    assert body["code"] not in [p["code"] for p in active.json()]
    missing = await client.put("/api/partners/no-such-line", json=changed, headers=world.admin.headers)
    assert missing.status_code == 404


# ---- signed intake --------------------------------------------------------------------------------


@pytest.fixture
async def sender(monkeypatch):
    """A partner registered with us, whose secret our environment holds."""
    env = f"HOTLINE_PARTNER_IN{secrets.token_hex(3).upper()}"
    monkeypatch.setenv(env, SECRET)
    return await PartnerHotline.create(code=f"nj-{secrets.token_hex(3)}", name="南京市12345政务服务便民热线",
                                       phone="025-12345", secret_env=env)


def handoff_in(ref: str | None = None, **overrides) -> dict:
    body = {"reference": ref or f"NJ{secrets.token_hex(5)}", "sender": "nj",
            "summary": "市民在长沙购房，咨询南京公积金异地贷款证明的办理。", "title": "公积金异地贷款证明",
            "request_type": "consult", "category": ["城乡建设", "住房公积金"], "address": "长沙市岳麓区",
            "caller": {"name": "王先生", "phone": "13700137000"}, "future_field": "ignored"}
    body.update(overrides)
    return body


async def post_intake(client, partner, body, *, secret: str = SECRET, at: float | None = None,
                      sender_code: str | None = None, signature: str | None = None) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = partners.signed_headers(secret.encode(), sender_code or partner.code, raw, at=at)
    if signature is not None:
        headers[partners.SIGNATURE_HEADER] = signature
    return await client.post(partners.INTAKE_PATH, content=raw, headers=headers)


async def test_a_partners_handoff_becomes_a_case_and_is_answered_with_our_number(client, sender, world):
    body = handoff_in()

    r = await post_intake(client, sender, body)

    assert r.status_code == 201, r.text
    case = await Case.get(number=r.json()["reference"])
    assert case.channel == "partner" and case.status == s.RECEIVED
    assert case.source_id == f"partner:{sender.code}:{body['reference']}"
    assert case.details["partner"] == sender.code and case.details["partner_reference"] == body["reference"]
    assert case.caller_phone == "13700137000" and "南京公积金" in case.content
    [row] = await Handoff.filter(case_id=case.id)
    assert (row.direction, row.status, row.partner_ref) == ("in", "received", body["reference"])
    listed = await client.get(f"/api/handoffs?number={case.number}", headers=world.agent.headers)
    assert listed.json()[0]["direction"] == "in" and listed.json()[0]["partner_code"] == sender.code


async def test_a_retried_delivery_makes_one_case(client, sender, row_counts):
    body = handoff_in()
    first = await post_intake(client, sender, body)
    cases, _ = await row_counts()

    again = await post_intake(client, sender, body, at=time.time() + 1)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert (await row_counts())[0] == cases
    assert await Handoff.filter(partner_id=sender.id, direction="in").count() == 1


async def test_a_partners_case_is_routed_like_any_other(app, settings, sender):
    from types import SimpleNamespace

    from hotline.web.app import create_app

    routed = []

    async def route_soon(case):
        routed.append(case.number)

    routing = create_app(replace(settings, auto_route=True))
    routing.state.jobs = SimpleNamespace(route_soon=route_soon)
    transport = httpx.ASGITransport(app=routing, client=("198.18.0.7", 443))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await post_intake(c, sender, handoff_in())

    assert r.status_code == 201
    assert routed == [r.json()["reference"]]
    assert (await Case.get(number=r.json()["reference"])).routing_state == "pending"


@pytest.mark.parametrize("tamper, status, error", [
    ({"secret": "wrong"}, 401, "bad_signature"),
    ({"signature": "sha256=" + "0" * 64}, 401, "bad_signature"),
    ({"at": time.time() - 301}, 401, "stale"),
    ({"at": time.time() + 3600}, 401, "stale"),
    ({"sender_code": "12345-9999"}, 401, "unknown_sender"),
    ({"sender_code": "../../etc"}, 401, "unknown_sender"),
])
async def test_a_forged_stale_or_unknown_delivery_is_refused_and_writes_nothing(
        client, sender, row_counts, tamper, status, error):
    before = await row_counts()

    r = await post_intake(client, sender, handoff_in(), **tamper)

    assert (r.status_code, r.json()["error"]) == (status, error)
    assert await row_counts() == before


async def test_an_unsigned_delivery_is_refused(client, row_counts):
    before = await row_counts()
    r = await client.post(partners.INTAKE_PATH, json=handoff_in())
    assert r.status_code == 401 and await row_counts() == before


async def test_a_replayed_request_is_refused(client, sender, row_counts):
    body = handoff_in()
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = partners.signed_headers(SECRET.encode(), sender.code, raw)
    assert (await client.post(partners.INTAKE_PATH, content=raw, headers=headers)).status_code == 201
    before = await row_counts()

    replay = await client.post(partners.INTAKE_PATH, content=raw, headers=headers)

    assert (replay.status_code, replay.json()["error"]) == (401, "replayed")
    assert await row_counts() == before


async def test_an_inactive_or_unconfigured_partner_is_refused(client, sender, row_counts, monkeypatch):
    before = await row_counts()
    monkeypatch.delenv(sender.secret_env)
    unconfigured = await post_intake(client, sender, handoff_in())
    await PartnerHotline.filter(id=sender.id).update(is_active=False)
    inactive = await post_intake(client, sender, handoff_in())

    assert (unconfigured.status_code, unconfigured.json()["error"]) == (403, "partner_not_configured")
    assert (inactive.status_code, inactive.json()["error"]) == (403, "partner_inactive")
    assert await row_counts() == before


@pytest.mark.parametrize("body", [
    handoff_in(summary=""),
    handoff_in(reference="有空格 的号"),
    handoff_in(request_type="gossip"),
    handoff_in(caller={"name": "x", "phone": "not a phone"}),
    handoff_in(summary="含\u0000空字符"),
])
async def test_a_signed_but_invalid_handoff_is_refused_with_422(client, sender, row_counts, body):
    before = await row_counts()
    r = await post_intake(client, sender, body)
    assert r.status_code == 422, r.text
    assert await row_counts() == before


async def test_a_signed_body_that_is_not_json_is_a_400(client, sender):
    raw = b"{not json"
    headers = partners.signed_headers(SECRET.encode(), sender.code, raw)
    r = await client.post(partners.INTAKE_PATH, content=raw, headers=headers)
    assert r.status_code == 400


# ---- hand-off tracking -------------------------------------------------------------------------


async def test_a_refused_handoff_can_be_queued_again_by_a_dispatcher(client, world, make_case, sender):
    await PartnerHotline.filter(id=sender.id).update(intake_url="https://12345.nanjing.example.cn/intake")
    number = (await make_case())["number"]
    await act(client, world.agent, number, "handoff", {"partner_code": sender.code, "summary": "跨省诉求"})
    row = await Handoff.get(case__number=number)
    not_failed = await client.post(f"/api/handoffs/{row.id}/retry", headers=world.dispatcher.headers)
    await Handoff.filter(id=row.id).update(status="failed", error="HTTP 401: bad_signature")

    by_agent = await client.post(f"/api/handoffs/{row.id}/retry", headers=world.agent.headers)
    r = await client.post(f"/api/handoffs/{row.id}/retry", headers=world.dispatcher.headers)

    assert not_failed.status_code == 409 and by_agent.status_code == 403
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["error"] == ""
    failed = await client.get("/api/handoffs?status=failed&direction=out", headers=world.agent.headers)
    assert row.id not in [h["id"] for h in failed.json()]
    assert (await client.post("/api/handoffs/999999999/retry", headers=world.admin.headers)).status_code == 404


async def test_handoff_confirm_and_finish_are_lifecycle_actions_of_the_api(client, world, make_case, sender):
    number = (await make_case())["number"]

    steps = [
        ("handoff", {"partner_code": sender.code, "summary": "跨省诉求"}, s.HANDOFF_PENDING),
        ("confirm_handoff", {"partner_ref": "NJ-1", "via": "phone"}, s.HANDED_OFF),
        ("finish_handoff", {"result": "南京方面已办结并回访。"}, s.CLOSED),
    ]
    for action, body, status in steps:
        r = await act(client, world.agent, number, action, body)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status


# ---- 话务直转 --------------------------------------------------------------------------------------

SID = "AC" + "3" * 32
TOKEN = "twilio-transfer-token"
PUBLIC = "https://hotline.example.cn"
CALL_SID = "CA" + "b" * 32


class FakeTwilioHttp(HttpClient):
    def __init__(self, status: int = 200, payload: dict | None = None):
        super().__init__(logging.getLogger("tests.twilio"), is_async=False)
        self.status = status
        self.payload = payload if payload is not None else {"sid": CALL_SID, "status": "in-progress"}
        self.calls: list[dict] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        self.calls.append({"method": method, "url": url, "data": dict(data or {})})
        return TwilioResponse(self.status, json.dumps(self.payload))


@pytest.fixture
def twilio_app(app, settings):
    from hotline.web.app import create_app

    configured = create_app(replace(settings, public_base_url=PUBLIC, twilio_account_sid=SID,
                                    twilio_auth_token=TOKEN, twilio_from_number="+15005550006"))
    configured.state.twilio_http = FakeTwilioHttp()
    return configured


@pytest.fixture
async def twilio_client(twilio_app):
    transport = httpx.ASGITransport(app=twilio_app, client=("54.172.60.1", 443))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as c:
        yield c


async def signed(client, path: str, params: dict, *, token: str = TOKEN) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return await client.post(path, data=params, headers={"X-Twilio-Signature": signature})


async def test_an_agent_moves_the_live_call_to_the_partner_and_the_handoff_is_recorded(
        twilio_app, twilio_client, world, make_case, sender):
    number = (await make_case())["number"]
    summary = "市民咨询南京公积金异地贷款证明，已说明在长沙购房。"

    r = await twilio_client.post(f"/api/cases/{number}/transfer-call", headers=world.agent.headers,
                                 json={"partner_code": sender.code, "summary": summary, "call_sid": CALL_SID})

    assert r.status_code == 200, r.text
    assert r.json()["call_redirected"] is True and r.json()["case"]["status"] == s.HANDOFF_PENDING
    [update] = twilio_app.state.twilio_http.calls
    assert update["method"] == "POST"
    assert update["url"] == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls/{CALL_SID}.json"
    target = urlsplit(update["data"]["Url"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{PUBLIC}/twilio/voice/transfer/{sender.code}"
    assert parse_qs(target.query) == {"case": [number]}
    event = await CaseEvent.filter(case__number=number, action="handoff").first()
    assert event.payload["summary"] == summary and event.payload["partner"] == sender.code


async def test_a_transfer_from_the_agents_browser_leg_moves_the_caller_it_is_talking_to(
        twilio_app, twilio_client, world, make_case, sender):
    from hotline.channels import voice
    from hotline.models import CallLog

    caller_sid, leg_sid = "CA" + secrets.token_hex(16), "CA" + secrets.token_hex(16)
    await CallLog.create(call_sid=caller_sid, direction="inbound", purpose="transfer", from_number="+8613800138000",
                         status="in-progress")
    await CallLog.create(call_sid=leg_sid, direction="outbound", purpose="transfer", status="in-progress")
    await voice.connect_agent(caller_sid, leg_sid)
    number = (await make_case())["number"]

    r = await twilio_client.post(f"/api/cases/{number}/transfer-call", headers=world.agent.headers,
                                 json={"partner_code": sender.code, "summary": "跨省", "call_sid": leg_sid})

    assert r.status_code == 200 and r.json()["call_redirected"] is True
    [update] = twilio_app.state.twilio_http.calls
    assert update["url"].endswith(f"/Calls/{caller_sid}.json")


async def test_the_transfer_twiml_dials_the_partner_and_whispers_the_summary_first(
        twilio_client, world, make_case, sender):
    number = (await make_case(confidential=True))["number"]
    summary = "市民咨询南京公积金异地贷款证明。"
    await act(twilio_client, world.agent, number, "handoff", {"partner_code": sender.code, "summary": summary})
    path = f"/twilio/voice/transfer/{sender.code}?case={number}"

    r = await signed(twilio_client, path, {"CallSid": CALL_SID, "From": "+8613800138000"})

    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "正在为您转接南京市12345" in r.text
    assert 'callerId="+15005550006"' in r.text and "13800138000" not in r.text
    assert ">+862512345</Number>" in r.text
    whisper = f"/twilio/voice/whisper?case={number}&amp;partner={sender.code}"
    assert f'url="{PUBLIC}{whisper}"' in r.text

    spoken = await signed(twilio_client, f"/twilio/voice/whisper?case={number}&partner={sender.code}",
                          {"CallSid": "CA" + "c" * 32})
    assert spoken.status_code == 200
    assert f"工单号{number}" in spoken.text and summary.rstrip("。") in spoken.text
    assert 'language="zh-CN"' in spoken.text


async def test_after_the_dial_the_caller_hears_the_partners_number_if_nobody_answered(twilio_client, sender):
    path = f"/twilio/voice/transfer/{sender.code}/done?case=20261125-000001"

    unanswered = await signed(twilio_client, path, {"CallSid": CALL_SID, "DialCallStatus": "no-answer"})
    talked = await signed(twilio_client, path, {"CallSid": CALL_SID, "DialCallStatus": "completed"})

    assert "025-12345" in unanswered.text and "<Hangup" in unanswered.text
    assert "<Say" not in talked.text and "<Hangup" in talked.text


async def test_unsigned_or_wrongly_signed_voice_webhooks_are_refused(twilio_client, sender):
    for path in (f"/twilio/voice/transfer/{sender.code}", "/twilio/voice/whisper",
                 f"/twilio/voice/transfer/{sender.code}/done"):
        assert (await twilio_client.post(path, data={"CallSid": CALL_SID})).status_code == 403
        assert (await signed(twilio_client, path, {"CallSid": CALL_SID}, token="forged")).status_code == 403


async def test_without_a_phone_line_the_call_cannot_be_moved_and_nothing_is_written(
        client, world, make_case, sender, row_counts):
    number = (await make_case())["number"]
    before = await row_counts()

    r = await client.post(f"/api/cases/{number}/transfer-call", headers=world.agent.headers,
                          json={"partner_code": sender.code, "summary": "跨省", "call_sid": CALL_SID})

    assert r.status_code == 409 and await row_counts() == before
    recorded = await client.post(f"/api/cases/{number}/transfer-call", headers=world.agent.headers,
                                 json={"partner_code": sender.code, "summary": "跨省，坐席手动转接"})
    assert recorded.status_code == 200 and recorded.json()["call_redirected"] is False
    assert recorded.json()["case"]["status"] == s.HANDOFF_PENDING


async def test_twilios_refusal_to_move_the_call_is_reported_but_the_handoff_stands(
        twilio_app, twilio_client, world, make_case, sender):
    twilio_app.state.twilio_http = FakeTwilioHttp(404, {"code": 20404, "message": "The requested resource was not found",
                                                        "status": 404})
    number = (await make_case())["number"]

    r = await twilio_client.post(f"/api/cases/{number}/transfer-call", headers=world.agent.headers,
                                 json={"partner_code": sender.code, "summary": "跨省", "call_sid": CALL_SID})

    assert r.status_code == 200
    assert r.json()["call_redirected"] is False and "20404" in r.json()["error"]
    assert (await Case.get(number=number)).status == s.HANDOFF_PENDING


async def test_a_handler_cannot_transfer_calls(client, world, make_case, sender):
    number = (await make_case())["number"]
    r = await client.post(f"/api/cases/{number}/transfer-call", headers=world.zjj.headers,
                          json={"partner_code": sender.code, "summary": "跨省"})
    assert r.status_code == 403
