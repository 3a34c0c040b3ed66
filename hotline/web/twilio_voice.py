"""The phone line: Twilio's voice webhooks (TwiML) and the voice endpoints of the API.

A call enters at ``POST /twilio/voice`` and moves through the menu:
1 tells the problem in speech and gets a case in 待受理; 2 hears the status
of a case registered from the same number; 0 queues for an agent in working
hours, or leaves a voicemail (also a case) outside them or after waiting too
long. Each webhook checks Twilio's signature before anything else (403 and
nothing written), finds or makes the call's log row by CallSid and writes one
call event per step; what is written lives in ``hotline/channels/voice.py``.

Agents answer on their own phones (``User.phone`` with ``accepts_calls``: the
app rings the first free one, and answering dials the queue) or in the
browser: ``POST /api/voice/token`` gives the Twilio Voice JS SDK a token, and
the TwiML App (``TWILIO_TWIML_APP_SID``) must have its Voice URL set to
``PUBLIC_BASE_URL/twilio/voice/softphone``, which connects the browser to the
caller who has waited longest. Every voice URL is configured in Twilio as
``PUBLIC_BASE_URL/twilio/voice`` (the number's "A call comes in" webhook) and
``PUBLIC_BASE_URL/twilio/voice/status`` (its status callback).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Awaitable, Callable
from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.twiml.voice_response import VoiceResponse

from cases import states
from cases.actors import AGENT, DISPATCHER, HANDLER, LEADER
from cases.errors import Forbidden, NotFound
from cases.models import Case, CaseAssignment, User
from hotline.channels import voice
from hotline.channels.telephony import (
    TelephonyError,
    TelephonyUnavailable,
    e164,
    make_telephony,
    verified_params,
)
from hotline.models import CallLog
from hotline.settings import Settings
from hotline.web.api import NUMBER_PARAM, api, visible_case
from hotline.web.framework import ApiError, Call

log = logging.getLogger("hotline.voice")

BASE = "/twilio/voice"
TOKEN_TTL_SECONDS = 3600
# Who may answer hotline calls in the browser (leaders on their duty days too).
SOFTPHONE_ROLES = frozenset({AGENT, DISPATCHER, LEADER})


def telephony_for(app):
    """The app's telephony, made once (tests put one with a fake HTTP client in its place)."""
    telephony = getattr(app.state, "telephony", None)
    if telephony is None:
        telephony = app.state.telephony = make_telephony(app.state.settings)
    return telephony


def _url(settings: Settings, path: str, **query: str) -> str:
    return settings.public_base_url.rstrip("/") + BASE + path + (f"?{urlencode(query)}" if query else "")


def _twiml(vr: VoiceResponse, background: BackgroundTask | None = None) -> Response:
    return Response(str(vr), media_type="text/xml", background=background)


class Prompt:
    """Builds the answer in the configured language and voice."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.vr = VoiceResponse()

    def say(self, text: str, into=None) -> None:
        (into or self.vr).say(text, language=self.settings.voice_say_language,
                              voice=self.settings.voice_say_voice or None)

    def menu(self, lead: str = "") -> None:
        s = self.settings
        gather = self.vr.gather(
            input="speech dtmf", num_digits=1, action=_url(s, "/menu"), method="POST",
            language=s.voice_language, timeout=6, speech_timeout="auto",
            hints="一,二,零,反映问题,查询进度,人工服务",
        )
        self.say(lead + "反映问题或咨询，请按1；查询工单办理进度，请按2；人工服务，请按0。", gather)
        # No answer: the menu handler hears an empty choice and asks again once.
        self.vr.redirect(_url(s, "/menu"), method="POST")

    def ask_problem(self, lead: str = "") -> None:
        s = self.settings
        gather = self.vr.gather(
            input="speech", action=_url(s, "/problem"), method="POST", language=s.voice_language,
            timeout=8, speech_timeout="auto", max_speech_time=60,
        )
        self.say(lead + "请在提示音后说出您要反映的问题，包括发生的地点和具体情况，说完请稍等。", gather)
        self.vr.redirect(_url(s, "/problem"), method="POST")

    def ask_case_number(self) -> None:
        s = self.settings
        gather = self.vr.gather(input="dtmf", num_digits=14, finish_on_key="#", timeout=10,
                                action=_url(s, "/lookup"), method="POST")
        self.say("请输入14位工单编号，不含横线，输入完毕请按井号键。", gather)
        self.vr.redirect(_url(s, "/lookup"), method="POST")

    def voicemail(self, lead: str = "") -> None:
        s = self.settings
        self.say(lead + "请在提示音后留言，说明您的问题、发生地点和联系方式，说完请按井号键或直接挂机。")
        self.vr.record(
            action=_url(s, "/voicemail"), method="POST", max_length=s.voicemail_max_seconds,
            finish_on_key="#", play_beep=True, timeout=8,
            recording_status_callback=_url(s, "/recording"), recording_status_callback_method="POST",
            recording_status_callback_event="completed",
        )
        self.say("没有收到您的留言。感谢您的来电，再见。")
        self.vr.hangup()

    def goodbye(self, text: str = "感谢您的来电，再见。") -> None:
        self.say(text)
        self.vr.hangup()


Handler = Callable[[Request, Settings, dict[str, str]], Awaitable[Response]]


def webhook(handler: Handler):
    """Signature first: an unsigned or forged request gets 403 and writes nothing."""

    async def endpoint(request: Request) -> Response:
        settings: Settings = request.app.state.settings
        params = await verified_params(request, settings)
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        if not voice.CALL_SID.match(params.get("CallSid", "")):
            return PlainTextResponse("CallSid missing", status_code=400)
        return await handler(request, settings, params)

    endpoint.__name__ = handler.__name__
    return endpoint


# ---- the caller's journey -------------------------------------------------------------------


async def incoming(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    call = await voice.upsert_call(params, direction="inbound", purpose="intake")
    await voice.event(call, "incoming", {"to": params.get("To", "")[:32]})
    p = Prompt(settings)
    p.say("本次通话将被录音。您好，这里是12345政务服务便民热线。")
    p.menu()
    return _twiml(p.vr)


async def menu(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    call = await voice.upsert_call(params)
    choice = voice.menu_choice(params.get("Digits"), params.get("SpeechResult"))
    await voice.event(call, "menu", {"choice": choice, "speech": (params.get("SpeechResult") or "")[:100]})
    p = Prompt(settings)
    if choice == "1":
        await voice.set_purpose(call, "intake")
        p.ask_problem()
    elif choice == "2":
        await voice.set_purpose(call, "lookup")
        p.ask_case_number()
    elif choice == "0":
        return await to_agent(request, settings, call, p)
    elif await voice.menu_misses(call) < 2:
        p.menu("对不起，没有听清。")
    else:
        # Two menus without an answer: a person is the better help.
        return await to_agent(request, settings, call, p)
    return _twiml(p.vr)


async def problem(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    call = await voice.upsert_call(params)
    speech = (params.get("SpeechResult") or "").strip()
    p = Prompt(settings)
    if not speech:
        misses = await voice.count_events(call, "problem_empty")
        await voice.event(call, "problem_empty")
        if misses == 0:
            p.ask_problem("对不起，没有听清。")
        else:
            await voice.set_purpose(call, "voicemail")
            p.voicemail("仍然没有听清，请留言。")
        return _twiml(p.vr)
    if call.speech_text != speech[:4000]:
        await CallLog.filter(id=call.id).update(speech_text=speech[:4000])
    await voice.event(call, "problem", {"confidence": params.get("Confidence", "")})
    case, created = await voice.case_from_call(call, params, settings, speech=speech,
                                               ladder=request.app.state.sla.ladder)
    p.say(f"您的诉求已受理。工单编号是：{voice.spoken(case.number)}。查询码是：{' '.join(case.query_code)}。"
          "我们会以短信告知，请注意查收。")
    p.goodbye()
    return _twiml(p.vr, _route_later(request, case, created))


def _route_later(request: Request, case: Case, created: bool) -> BackgroundTask | None:
    jobs = getattr(request.app.state, "jobs", None)
    if not created or jobs is None or case.routing_state != "pending":
        # Without the app's services (no lifespan) the sweep routes it later.
        return None
    return BackgroundTask(jobs.route_soon, case)


MAX_LOOKUPS = 3


async def lookup(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    call = await voice.upsert_call(params)
    digits = re.sub(r"[^0-9]", "", params.get("Digits") or "")
    done = await voice.count_events(call, "lookup")
    p = Prompt(settings)
    if done >= MAX_LOOKUPS:
        p.goodbye("查询次数已达上限。感谢您的来电，再见。")
        return _twiml(p.vr)
    case = None
    if len(digits) == 14:
        case = await voice.case_for_caller(f"{digits[:8]}-{digits[8:]}", params.get("From") or call.from_number)
    await voice.event(call, "lookup", {"found": case is not None})
    if case is not None:
        p.say(f"工单{voice.spoken(case.number)}，当前状态：{voice.status_label(case)}。")
    else:
        # The same words whether the case does not exist or belongs to another number.
        p.say("没有查询到该工单。请核对工单编号，并使用登记时的电话号码来电查询。")
    if done + 1 < MAX_LOOKUPS:
        gather = p.vr.gather(input="speech dtmf", num_digits=1, action=_url(settings, "/menu"), method="POST",
                             language=settings.voice_language, timeout=5)
        p.say("查询其他工单请按2，人工服务请按0，结束通话请挂机。", gather)
    p.goodbye()
    return _twiml(p.vr)


async def to_agent(request: Request, settings: Settings, call: CallLog, p: Prompt) -> Response:
    calendar = (await request.app.state.sla.get()).calendar
    if not voice.in_working_hours(settings, calendar, voice.clock()):
        await voice.event(call, "off_hours")
        await voice.set_purpose(call, "voicemail")
        p.voicemail(f"现在是非工作时间，人工服务时间为工作日{settings.working_hours}。")
        return _twiml(p.vr)
    if not await voice.agents_on_duty():
        await voice.event(call, "no_agents")
        await voice.set_purpose(call, "voicemail")
        p.voicemail("话务员暂时无法接听。")
        return _twiml(p.vr)
    await voice.set_purpose(call, "transfer")
    await voice.event(call, "enqueued", {"queue": voice.AGENT_QUEUE})
    p.say("正在为您转接人工服务，请稍候。")
    p.vr.enqueue(voice.AGENT_QUEUE, action=_url(settings, "/queue-done"), method="POST",
                 wait_url=_url(settings, "/hold"), wait_url_method="POST")
    ring = BackgroundTask(voice.dial_agent_quietly, telephony_for(request.app), settings, call)
    return _twiml(p.vr, ring)


async def agent(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    call = await voice.upsert_call(params)
    return await to_agent(request, settings, call, Prompt(settings))


async def hold(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The queue's wait URL, requested again each time its answer has played."""
    call = await voice.upsert_call(params)
    p = Prompt(settings)
    try:
        waited = int(params.get("QueueTime") or 0)
    except ValueError:
        waited = 0
    if waited >= settings.queue_max_wait_seconds:
        await voice.event(call, "overflow", {"waited": waited})
        p.vr.leave()
        return _twiml(p.vr)
    ring = None
    if not await voice.agent_leg_active(call):
        # The agent rung last did not answer (or none was free): try the next one.
        ring = BackgroundTask(voice.dial_agent_quietly, telephony_for(request.app), settings, call)
    position = params.get("QueuePosition") or ""
    ahead = f"您前面还有{int(position) - 1}位来电。" if position.isdigit() and int(position) > 1 else ""
    p.say(f"话务员正忙，请您稍候，我们将按顺序为您接通。{ahead}")
    p.vr.pause(length=10)
    return _twiml(p.vr, ring)


async def queue_done(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The Enqueue action: the caller left the queue, talked to an agent or hung up."""
    call = await voice.upsert_call(params)
    result = (params.get("QueueResult") or "")[:32]
    await voice.event(call, "queue_result", {"result": result, "waited": params.get("QueueTime", "")})
    p = Prompt(settings)
    if result in ("leave", "queue-full", "error", "system-error"):
        await voice.set_purpose(call, "voicemail")
        p.voicemail("话务员暂时无法接听。")
    else:
        p.vr.hangup()
    return _twiml(p.vr)


async def agent_answer(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The agent picked up the phone the app rang: connect them to the caller waiting longest."""
    call = await voice.upsert_call(params, direction="outbound", purpose="transfer")
    caller_sid = request.query_params.get("caller", "")[:64]
    await voice.event(call, "agent_answered", {"caller": caller_sid})
    caller = await CallLog.get_or_none(call_sid=caller_sid) if caller_sid else None
    if caller is not None:
        await voice.event(caller, "agent_answered", {"agent_id": call.agent_id, "call_sid": call.call_sid})
    p = Prompt(settings)
    p.say("12345热线来电，正在为您接通。")
    dial = p.vr.dial(record="record-from-answer-dual", recording_status_callback=_url(settings, "/recording"),
                     recording_status_callback_method="POST", recording_status_callback_event="completed")
    dial.queue(voice.AGENT_QUEUE, url=_url(settings, "/dequeued"), method="POST")
    return _twiml(p.vr)


async def softphone(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The TwiML App's voice URL: an agent's browser connects and takes the longest-waiting caller."""
    identity = (params.get("From") or "").removeprefix("client:")
    user_id = identity.removeprefix("user-")
    user = await User.get_or_none(id=int(user_id), is_active=True) if user_id.isdigit() and len(user_id) < 10 else None
    p = Prompt(settings)
    if user is None or user.role not in SOFTPHONE_ROLES:
        p.goodbye("该账号不能接听热线来电。")
        return _twiml(p.vr)
    call = await voice.upsert_call(params, direction="outbound", purpose="transfer", agent_id=user.id)
    await voice.event(call, "softphone_connected", {"user_id": user.id})
    dial = p.vr.dial(record="record-from-answer-dual", recording_status_callback=_url(settings, "/recording"),
                     recording_status_callback_method="POST", recording_status_callback_event="completed")
    dial.queue(voice.AGENT_QUEUE, url=_url(settings, "/dequeued"), method="POST")
    return _twiml(p.vr)


async def dequeued(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The queue's ``url``: played to the caller an agent's leg just took, before they are joined."""
    caller = await voice.connect_agent(params["CallSid"], params.get("DequeingCallSid", ""))
    if caller is not None:
        await voice.set_purpose(caller, "transfer")
    p = Prompt(settings)
    p.say("正在为您接通话务员。")
    return _twiml(p.vr)


async def voicemail(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The Record action: a message was left (or the caller pressed # at once)."""
    call = await voice.upsert_call(params)
    url = (params.get("RecordingUrl") or "").strip()
    p = Prompt(settings)
    if not url or (params.get("RecordingDuration") or "1").strip() == "0":
        await voice.event(call, "voicemail_empty")
        p.goodbye("没有收到您的留言。感谢您的来电，再见。")
        return _twiml(p.vr)
    sid = (params.get("RecordingSid") or "").strip()
    await voice.store_recording(call, settings, url, sid)
    await voice.event(call, "voicemail", {"duration": params.get("RecordingDuration", "")})
    case, created = await voice.case_from_call(call, params, settings, recording_url=url, recording_sid=sid,
                                               ladder=request.app.state.sla.ladder)
    p.say(f"您的留言已记录，工单编号是：{voice.spoken(case.number)}。查询码是：{' '.join(case.query_code)}。")
    p.goodbye()
    return _twiml(p.vr, _route_later(request, case, created))


async def recording(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The recording status callback: keep the address; a voicemail becomes a case here too."""
    if (params.get("RecordingStatus") or "completed") != "completed":
        return Response(status_code=204)
    call = await voice.upsert_call(params)
    url = (params.get("RecordingUrl") or "").strip()
    sid = (params.get("RecordingSid") or "").strip()
    if not url:
        return Response(status_code=204)
    await voice.store_recording(call, settings, url, sid)
    await voice.event(call, "recording", {"recording_sid": sid[:64], "duration": params.get("RecordingDuration", "")})
    background = None
    if call.purpose == "voicemail" and (params.get("RecordingDuration") or "1").strip() != "0":
        # Whichever of the Record action and this callback comes first makes the case.
        case, created = await voice.case_from_call(call, params, settings, recording_url=url, recording_sid=sid,
                                                   ladder=request.app.state.sla.ladder)
        background = _route_later(request, case, created)
    return Response(status_code=204, background=background)


async def status(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    await voice.update_status(params)
    return Response(status_code=204)


async def bridge(request: Request, settings: Settings, params: dict[str, str]) -> Response:
    """The handler answered the app's call: now dial the citizen, showing the hotline's number."""
    number = request.query_params.get("case", "")
    case = await Case.get_or_none(number=number) if re.fullmatch(r"[0-9]{8}-[0-9]{6}", number) else None
    call = await voice.upsert_call(params, direction="outbound", purpose="bridge",
                                   case_id=case.id if case else None)
    p = Prompt(settings)
    if case is None or not case.caller_phone or call.purpose != "bridge" or call.case_id != case.id:
        await voice.event(call, "bridge_refused")
        p.goodbye("无法接通市民，请稍后再试。")
        return _twiml(p.vr)
    await voice.event(call, "bridge_dial", {"case": case.number})
    p.say("正在为您接通市民，请稍候。")
    dial = p.vr.dial(caller_id=settings.twilio_from_number, timeout=30, answer_on_bridge=True)
    dial.number(e164(case.caller_phone))
    return _twiml(p.vr)


def routes() -> list[Route]:
    steps = {
        "": incoming, "/menu": menu, "/problem": problem, "/lookup": lookup, "/agent": agent,
        "/hold": hold, "/queue-done": queue_done, "/agent-answer": agent_answer,
        "/voicemail": voicemail, "/recording": recording, "/status": status, "/bridge": bridge,
        "/softphone": softphone, "/dequeued": dequeued,
    }
    return [Route(BASE + path, webhook(handler), methods=["POST"]) for path, handler in steps.items()]


# ---- the API: caller history, the confidential bridge, softphone tokens ----------------------------


class CallerCase(BaseModel):
    number: str
    title: str
    status: str
    status_label: str
    channel: str
    created_at: datetime


class CallerOut(BaseModel):
    call_sid: str
    caller_call_sid: str  # the citizen's call: call_sid itself, or the caller an agent's leg is talking to
    caller_phone: str
    cases: list[CallerCase]


class BridgeOut(BaseModel):
    call_sid: str
    status: str
    message: str


class VoiceTokenOut(BaseModel):
    token: str
    identity: str
    ttl: int


CALL_SID_PARAM = {"call_sid": {"type": "string", "pattern": r"^CA[0-9a-fA-F]{32}$"}}


@api.add("GET", "/api/calls/{call_sid}/caller", "来电人历史工单（坐席接听时查看）", response=CallerOut, path_params=CALL_SID_PARAM, roles=SOFTPHONE_ROLES, tag="voice")
async def caller_for_call(call: Call):
    row = await CallLog.get_or_none(call_sid=call.path["call_sid"])
    if row is None:
        raise NotFound("通话不存在")
    # An agent's leg (browser or own phone) stands for the caller it is connected to.
    caller = await voice.caller_of(row)
    phone = voice.caller_phone(caller) if caller is not None else ""
    cases = await voice.caller_history(phone)
    return CallerOut(
        call_sid=row.call_sid, caller_call_sid=caller.call_sid if caller is not None else "", caller_phone=phone,
        cases=[CallerCase(number=c.number, title=c.title or c.content[:30], status=c.status,
                          status_label=states.LABELS.get(c.status, c.status), channel=c.channel,
                          created_at=c.created_at) for c in cases],
    )


class CurrentCallOut(BaseModel):
    on_call: bool
    call_sid: str = ""  # the agent's own leg
    caller_call_sid: str = ""
    caller_phone: str = ""


@api.add("GET", "/api/calls/current", "我当前接听的来电（坐席用本人电话或网页软电话接听时）", response=CurrentCallOut, roles=SOFTPHONE_ROLES, tag="voice")
async def my_current_call(call: Call):
    found = await voice.current_call(call.user.id)
    if found is None:
        return CurrentCallOut(on_call=False)
    leg, caller = found
    return CurrentCallOut(on_call=True, call_sid=leg.call_sid, caller_call_sid=caller.call_sid,
                          caller_phone=voice.caller_phone(caller))


@api.add("POST", "/api/cases/{number}/call-citizen", "保密外呼：先呼叫承办人本人电话，接听后转接市民（不显示市民号码）", response=BridgeOut, status=202, path_params=NUMBER_PARAM, roles=frozenset({HANDLER}), tag="voice", responses={409: None, 502: None, 503: None})
async def call_citizen(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    if not await CaseAssignment.exists(case_id=case.id, unit_id=call.actor.unit_id, active=True):
        raise Forbidden("只有承办本工单的单位可以联系市民")
    if case.status in states.TERMINAL:
        raise ApiError(409, "case_closed", "工单已结束，不能再外呼")
    if not case.caller_phone:
        raise ApiError(409, "no_caller_phone", "该工单没有市民电话")
    if not call.user.phone:
        raise ApiError(409, "no_own_phone", "请先登记您本人的电话号码，系统会先呼叫您")
    telephony = telephony_for(call.request.app)
    try:
        row = await voice.start_bridge(telephony, call.state.settings, case, call.user)
    except TelephonyUnavailable:
        raise ApiError(503, "telephony_unavailable", "未配置电话线路，暂不能外呼") from None
    except TelephonyError as exc:
        log.warning("bridge for %s failed: %s", case.number, exc.message)
        raise ApiError(502, "telephony_error", "外呼失败，请稍后再试") from None
    # Nothing about the citizen's number goes back: the unit only learns that its phone will ring.
    return BridgeOut(call_sid=row.call_sid, status="calling",
                     message="系统正在呼叫您登记的电话，接听后将自动转接市民，对方号码不会显示。")


@api.add("POST", "/api/voice/token", "网页软电话令牌（Twilio Voice JS SDK）", response=VoiceTokenOut, roles=SOFTPHONE_ROLES, tag="voice", responses={503: None})
async def voice_token(call: Call):
    s: Settings = call.state.settings
    if not (s.twilio_account_sid and s.twilio_api_key and s.twilio_api_secret and s.twilio_twiml_app_sid):
        raise ApiError(503, "softphone_unavailable", "未配置网页软电话（需要 TWILIO_API_KEY、TWILIO_API_SECRET 和 TWILIO_TWIML_APP_SID）")
    identity = f"user-{call.user.id}"
    token = AccessToken(s.twilio_account_sid, s.twilio_api_key, s.twilio_api_secret,
                        identity=identity, ttl=TOKEN_TTL_SECONDS)
    token.add_grant(VoiceGrant(outgoing_application_sid=s.twilio_twiml_app_sid, incoming_allow=True))
    jwt = token.to_jwt()
    return VoiceTokenOut(token=jwt if isinstance(jwt, str) else jwt.decode(), identity=identity, ttl=TOKEN_TTL_SECONDS)

