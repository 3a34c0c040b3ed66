"""Partner hotlines on the web: the directory API, hand-off tracking, signed intake and 话务直转.

- ``/api/partners``: the directory (admins edit; the centre reads).
- ``/api/handoffs``: hand-offs out and in, with their delivery state; a
  refused one can be queued again once the partner fixed its side.
- ``POST /partners/intake``: a partner hands a case to this centre, signed
  with the secret both share (see ``hotline/partners.py``).
- ``POST /api/cases/{number}/transfer-call``: an agent hands the case over
  and, given the live call's SID, moves the caller to the partner's line:
  Twilio fetches ``/twilio/voice/transfer/{code}``, which dials the partner
  and whispers the case summary to the partner's agent before connecting.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

import requests
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import Dial, VoiceResponse

from cases.actors import ADMIN, AGENT, DISPATCHER, LEADER
from cases.errors import InvalidInput
from cases.lifecycle import perform
from cases.models import Case, Handoff, PartnerHotline
from hotline import partners as core
from hotline.models import CallLog
from hotline.channels import voice
from hotline.channels.telephony import verified_params
from hotline.web import schemas as sc
from hotline.web.api import NUMBER_PARAM, api, case_out, visible_case
from hotline.web.framework import ApiError, Call
from hotline.web.schemas import QueryInt

log = logging.getLogger("hotline.partners.web")

CENTRE_READ = frozenset({AGENT, DISPATCHER, LEADER, ADMIN})
CODE_PARAM = {"code": {"type": "string", "pattern": core.CODE_PATTERN}}
ID_PARAM = {"handoff_id": {"type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991}}
TRANSFER_PATH = "/twilio/voice/transfer/{code}"
WHISPER_PATH = "/twilio/voice/whisper"
# A whispered summary longer than this keeps the citizen waiting on the line.
WHISPER_MAX_CHARS = 300


# ---- the directory -----------------------------------------------------------------------


class PartnerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    phone: str
    intake_url: str
    secret_env: str
    is_active: bool
    # Whether the named variable is set in this process (its value is never shown).
    secret_configured: bool


def partner_out(p: PartnerHotline) -> PartnerOut:
    return PartnerOut(code=p.code, name=p.name, phone=p.phone, intake_url=p.intake_url,
                      secret_env=p.secret_env, is_active=p.is_active,
                      secret_configured=core.secret_for(p) is not None)


class PartnerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "inactive"] | None = None


def _complete(fields: core.PartnerFields) -> None:
    try:
        fields.check_complete()
    except ValueError as exc:
        raise InvalidInput(str(exc), field="intake_url") from None


@api.add("GET", "/api/partners", "合作热线名录", query=PartnerQuery, response=PartnerOut, response_list=True,
         roles=CENTRE_READ, tag="partners")
async def list_partners(call: Call):
    qs = PartnerHotline.all()
    if call.query.status is not None:
        qs = qs.filter(is_active=call.query.status == "active")
    return [partner_out(p) for p in await qs.order_by("code")]


@api.add("POST", "/api/partners", "新增合作热线", body=core.NewPartner, response=PartnerOut, status=201,
         roles=frozenset({ADMIN}), tag="partners")
async def create_partner(call: Call):
    _complete(call.body)
    if await PartnerHotline.exists(code=call.body.code):
        raise ApiError(409, "exists", "合作热线代码已存在")
    return partner_out(await PartnerHotline.create(**call.body.model_dump()))


@api.add("PUT", "/api/partners/{code}", "修改合作热线", body=core.PartnerFields, response=PartnerOut,
         path_params=CODE_PARAM, roles=frozenset({ADMIN}), tag="partners")
async def update_partner(call: Call):
    _complete(call.body)
    partner = await PartnerHotline.get_or_none(code=call.path["code"])
    if partner is None:
        raise ApiError(404, "not_found", "合作热线不存在")
    partner.update_from_dict(call.body.model_dump())
    await partner.save()
    return partner_out(partner)


# ---- hand-offs -------------------------------------------------------------------------------


class HandoffQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal[tuple(core.STATUS_LABELS)] | None = None  # type: ignore[valid-type]
    direction: Literal["out", "in"] | None = None
    number: sc.CaseNumber | None = None
    limit: Annotated[int, Field(ge=1, le=200), QueryInt] = 50


class HandoffOut(BaseModel):
    id: int
    case_number: str
    partner_code: str
    partner_name: str
    direction: str
    status: str
    status_label: str
    partner_ref: str
    attempts: int
    next_attempt_at: datetime | None
    error: str
    created_at: datetime
    confirmed_at: datetime | None


def handoff_out(h: Handoff) -> HandoffOut:
    return HandoffOut(id=h.id, case_number=h.case.number, partner_code=h.partner.code, partner_name=h.partner.name,
                      direction=h.direction, status=h.status, status_label=core.STATUS_LABELS.get(h.status, h.status),
                      partner_ref=h.partner_ref, attempts=h.attempts, next_attempt_at=h.next_attempt_at,
                      error=h.error, created_at=h.created_at, confirmed_at=h.confirmed_at)


@api.add("GET", "/api/handoffs", "转办记录（推送状态与对方工单号）", query=HandoffQuery, response=HandoffOut,
         response_list=True, roles=CENTRE_READ, tag="partners")
async def list_handoffs(call: Call):
    q = call.query
    qs = Handoff.all()
    if q.status:
        qs = qs.filter(status=q.status)
    if q.direction:
        qs = qs.filter(direction=q.direction)
    if q.number:
        qs = qs.filter(case__number=q.number)
    return [handoff_out(h) for h in await qs.select_related("case", "partner").order_by("-id").limit(q.limit)]


@api.add("POST", "/api/handoffs/{handoff_id}/retry", "重新推送被拒的转办", response=HandoffOut,
         path_params=ID_PARAM, roles=frozenset({DISPATCHER, ADMIN}), tag="partners", responses={409: None})
async def retry_handoff(call: Call):
    handoff_id = int(call.path["handoff_id"])
    if not await Handoff.exists(id=handoff_id):
        raise ApiError(404, "not_found", "转办记录不存在")
    if not await core.retry_failed(handoff_id):
        raise ApiError(409, "not_failed", "只有推送被拒的转办可以重新推送")
    return handoff_out(await Handoff.filter(id=handoff_id).select_related("case", "partner").get())


# ---- 话务直转: moving a live call to the partner ------------------------------------------------


class TransferCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partner_code: Annotated[str, StringConstraints(pattern=core.CODE_PATTERN)]
    summary: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")]
    # The live call to move; without it only the hand-off is recorded (the agent transfers by hand).
    call_sid: Annotated[str, StringConstraints(pattern=r"^CA[0-9a-f]{32}$")] | None = None
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


class TransferCallOut(BaseModel):
    case: sc.CaseOut
    call_redirected: bool
    # Why the call could not be moved (the hand-off is recorded all the same).
    error: str = ""


def _telephony(call: Call):
    from hotline.channels.telephony import make_telephony

    injected = getattr(call.state, "telephony", None)
    if injected is not None:
        return injected
    # Tests put a fake Twilio HttpClient here.
    return make_telephony(call.state.settings, http_client=getattr(call.state, "twilio_http", None))


@api.add("POST", "/api/cases/{number}/transfer-call", "话务直转：转办并将来电转接至合作热线",
         body=TransferCallIn, response=TransferCallOut, path_params=NUMBER_PARAM,
         roles=frozenset({AGENT, DISPATCHER}), tag="partners")
async def transfer_call(call: Call):
    b: TransferCallIn = call.body
    settings = call.state.settings
    case = await visible_case(call.actor, call.path["number"])
    partner = await PartnerHotline.get_or_none(code=b.partner_code, is_active=True)
    if partner is None:
        raise InvalidInput("合作热线不存在或已停用", field="partner_code")
    telephony, live_sid = None, b.call_sid
    if b.call_sid:
        # The browser softphone knows only the agent's own leg: move the caller it is talking to.
        row = await CallLog.get_or_none(call_sid=b.call_sid)
        caller = await voice.caller_of(row) if row is not None else None
        if caller is not None:
            live_sid = caller.call_sid
        if not partner.phone:
            raise InvalidInput("该合作热线没有电话号码，不能转接来电", field="partner_code")
        telephony = _telephony(call)
        if not hasattr(telephony, "client"):
            raise ApiError(409, "no_telephony", "未配置电话线路，不能转接来电")
    sla_ctx = await call.state.sla.get()
    case = await perform(case.number, "handoff", call.actor,
                         {"partner_code": partner.code, "summary": b.summary.strip(), "note": b.note.strip()},
                         sla_context=sla_ctx)
    redirected, error = False, ""
    if telephony is not None:
        url = transfer_url(settings, partner.code, case.number)
        try:
            await asyncio.to_thread(telephony.client.calls(live_sid).update, url=url, method="POST")
            redirected = True
        except TwilioRestException as exc:
            error = f"转接失败：{exc.code or ''} {exc.msg}".strip()[:300]
        except (TwilioException, OSError, requests.RequestException) as exc:
            error = f"转接失败：{type(exc).__name__}"
        if error:
            log.warning("case %s: could not move call %s to %s: %s", case.number, live_sid, partner.code, error)
    return TransferCallOut(case=await case_out(case, call.actor), call_redirected=redirected, error=error)


def transfer_url(settings, code: str, number: str) -> str:
    return settings.public_base_url.rstrip("/") + TRANSFER_PATH.format(code=code) + "?" + urlencode({"case": number})


def _say(target, text: str, settings) -> None:
    target.say(text, voice=getattr(settings, "voice_say_voice", "alice"),
               language=getattr(settings, "voice_say_language", "zh-CN"))


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _forbidden() -> Response:
    return Response("forbidden", status_code=403, media_type="text/plain")


async def voice_transfer(request: Request) -> Response:
    """TwiML for the moved call: tell the caller, dial the partner, whisper the summary first."""
    settings = request.app.state.settings
    if await verified_params(request, settings) is None:
        return _forbidden()
    code = request.path_params["code"]
    number = request.query_params.get("case", "")
    partner = await PartnerHotline.get_or_none(code=code, is_active=True) if len(code) <= 32 else None
    r = VoiceResponse()
    if partner is None or not partner.phone:
        _say(r, "抱歉，暂时无法转接，我们会尽快联系您。", settings)
        return _twiml(r)
    _say(r, f"正在为您转接{partner.name}，请稍候。", settings)
    whisper = settings.public_base_url.rstrip("/") + WHISPER_PATH + "?" + urlencode({"case": number[:20], "partner": code})
    done = settings.public_base_url.rstrip("/") + TRANSFER_PATH.format(code=code) + "/done?" + urlencode({"case": number[:20]})
    # Our number as caller ID: a confidential caller's own number is not passed on.
    dial = Dial(caller_id=settings.twilio_from_number, action=done, method="POST", timeout=30)
    dial.number(dialable(partner.phone), url=whisper, method="POST")
    r.append(dial)
    return _twiml(r)


async def voice_transfer_done(request: Request) -> Response:
    """After the dial: hang up if they talked, otherwise give the caller the partner's number."""
    settings = request.app.state.settings
    params = await verified_params(request, settings)
    if params is None:
        return _forbidden()
    r = VoiceResponse()
    if params.get("DialCallStatus") != "completed":
        code = request.path_params["code"]
        partner = await PartnerHotline.get_or_none(code=code) if len(code) <= 32 else None
        phone = f"，您也可以直接拨打{partner.phone}" if partner and partner.phone else ""
        _say(r, f"对方热线暂时无人接听，您的诉求已转交对方办理{phone}。感谢您的来电。", settings)
    r.hangup()
    return _twiml(r)


async def voice_whisper(request: Request) -> Response:
    """Played to the partner's agent only, before the caller is connected."""
    settings = request.app.state.settings
    if await verified_params(request, settings) is None:
        return _forbidden()
    number = request.query_params.get("case", "")
    summary = ""
    case = await Case.get_or_none(number=number) if re.fullmatch(r"[0-9]{8}-[0-9]{6}", number) else None
    if case is not None:
        handoff = await Handoff.filter(case_id=case.id, direction="out").order_by("-id").first()
        if handoff is not None:
            summary = (handoff.payload or {}).get("summary", "")
    r = VoiceResponse()
    if summary:
        text = summary if len(summary) <= WHISPER_MAX_CHARS else summary[:WHISPER_MAX_CHARS] + "……"
        _say(r, f"这是12345热线转来的来电，工单号{number}。诉求摘要：{text}。即将为您接通。", settings)
    else:
        _say(r, "这是12345热线转来的来电，即将为您接通。", settings)
    return _twiml(r)


def dialable(phone: str) -> str:
    """A directory number as Twilio dials it: 021-12345 → +862112345; short lines stay as they are."""
    n = phone.replace("-", "")
    if n.startswith("+"):
        return n
    if n.startswith("0") and len(n) > 5:
        return "+86" + n[1:]
    return n


# ---- inbound hand-offs --------------------------------------------------------------------------


async def partner_intake(request: Request) -> Response:
    """A partner hands a case to this centre; answers our case number as the reference."""
    body = await request.body()
    try:
        partner = await core.authenticate(request.headers, body)
        settings = request.app.state.settings
        case, created = await core.receive(partner, body, route=settings.auto_route)
    except core.Refused as exc:
        log.info("partner intake refused (%s): %s", exc.code, request.headers.get(core.SENDER_HEADER, "")[:40])
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)
    background = None
    if created and settings.auto_route:
        background = BackgroundTask(request.app.state.jobs.route_soon, case)
    return JSONResponse({"reference": case.number}, status_code=201 if created else 200, background=background)


async def partner_results(request: Request) -> Response:
    """A partner reports how a case we handed to it ended: our case closes with that result."""
    body = await request.body()
    try:
        partner = await core.authenticate(request.headers, body)
        case = await core.receive_result(partner, body, sla_context=await request.app.state.sla.get())
    except core.Refused as exc:
        log.info("partner result refused (%s): %s", exc.code, request.headers.get(core.SENDER_HEADER, "")[:40])
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)
    return JSONResponse({"reference": case.number, "status": case.status})


def routes() -> list[Route]:
    return [
        Route(core.INTAKE_PATH, partner_intake, methods=["POST"]),
        Route(core.RESULTS_PATH, partner_results, methods=["POST"]),
        Route(TRANSFER_PATH, voice_transfer, methods=["POST"]),
        Route(TRANSFER_PATH + "/done", voice_transfer_done, methods=["POST"]),
        Route(WHISPER_PATH, voice_whisper, methods=["POST"]),
    ]
