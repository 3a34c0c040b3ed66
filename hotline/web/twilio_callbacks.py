"""回访 webhooks: citizens' SMS answers to the survey, and the IVR survey call's TwiML.

Every request must carry a valid ``X-Twilio-Signature`` over ``PUBLIC_BASE_URL``
+ path + query; anything else gets 403 and changes nothing. Twilio retries
webhooks: an SMS answer is logged in ``call_log`` under its MessageSid
(purpose ``survey_sms``) and a retry is answered from that row without
recording again; an IVR answer is recorded through the case core, whose state
check refuses a second recording of the same callback.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tortoise.exceptions import IntegrityError
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from cases import states as s
from cases.errors import CaseError
from cases.models import Case
from hotline import callbacks as cb
from hotline.channels.telephony import verified_params
from hotline.models import CallEvent, CallLog
from hotline.settings import Settings

log = logging.getLogger("hotline.twilio.callbacks")

SMS_PATH = "/twilio/sms/incoming"

SMS_REPLIES = {
    "recorded": "【12345】感谢您的评价，我们已记录。",
    "rehandle": "【12345】感谢您的评价。您反映的问题将交承办单位重新办理，办理后会再次答复您。",
    "unparsed": "【12345】未能识别您的回复。" + cb.SURVEY_HELP,
    "no_survey": "【12345】您好，您目前没有待评价的工单，本条回复未作处理。如需反映问题，请拨打12345热线。",
}

IVR_INTRO = "您好，这里是12345热线回访。您的工单尾号{tail}已由承办单位答复。"
IVR_ASK_RESOLVED = "请问您反映的问题是否已解决？已解决请按1，部分解决请按2，未解决请按3。"
IVR_ASK_SATISFACTION = "请问您对办理结果是否满意？满意请按1，基本满意请按2，不满意请按3。"
IVR_WRONG_KEY = "您的按键无效。"
IVR_NO_INPUT = "未收到您的按键。我们还会以短信方式向您回访，再见。"
IVR_THANKS = "感谢您的评价，再见。"
IVR_THANKS_REHANDLE = "感谢您的评价。您反映的问题将交承办单位重新办理。再见。"
IVR_DONE = "您的工单回访已经完成，感谢您对12345热线的支持，再见。"


def _xml(twiml: Any) -> Response:
    return Response(str(twiml), media_type="application/xml")


def _forbidden() -> Response:
    return PlainTextResponse("forbidden", status_code=403)


# ---- SMS answers ------------------------------------------------------------------------


async def sms_incoming(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    params = await verified_params(request, settings)
    if params is None:
        return _forbidden()
    sid = params.get("MessageSid", "")[:64]
    sender = params.get("From", "")[:32]
    if not sid or not sender:
        return _xml(MessagingResponse())
    seen = await CallLog.get_or_none(call_sid=sid)
    if seen is not None:
        # Twilio retried a message already handled: answer as before, record nothing.
        return _sms_reply(seen.status)
    answer = cb.parse_sms_answer(params.get("Body", ""))
    case = await cb.pending_survey_case(sender)
    outcome = "no_survey" if case is None else "unparsed" if answer is None else ""
    if not outcome:
        try:
            done = await cb.record_answer(case.number, *answer, via="短信回访", ctx=await request.app.state.sla.get(),
                                          note=f"短信回访：市民回复「{answer_digit(answer)}」"
                                               f"（{cb.RESOLVED_LABELS[answer[0]]}，{cb.SATISFACTION_LABELS[answer[1]]}）")
            outcome = "rehandle" if done.status == s.REHANDLE_PENDING else "recorded"
        except CaseError as exc:
            # The same message delivered twice at once, or an agent recorded the callback first.
            log.info("sms answer %s not recorded on %s: %s", sid, case.number, exc.message)
            outcome = "no_survey"
    try:
        await CallLog.create(call_sid=sid, direction="inbound", purpose=cb.SMS_PURPOSE, from_number=sender,
                             to_number=params.get("To", "")[:32], status=outcome,
                             case_id=case.id if case else None, speech_text=params.get("Body", "")[:1600])
    except IntegrityError:
        # The same message handled at the same moment by another request: one of the two recorded it.
        if outcome in ("recorded", "rehandle"):
            return _sms_reply(outcome)
        seen = await CallLog.get_or_none(call_sid=sid)
        return _sms_reply(seen.status if seen else outcome)
    return _sms_reply(outcome)


def answer_digit(answer: tuple[str, str]) -> str:
    return next(d for d, a in cb.SURVEY_DIGITS.items() if a == answer)


def _sms_reply(outcome: str) -> Response:
    twiml = MessagingResponse()
    text = SMS_REPLIES.get(outcome)
    if text:
        twiml.message(text)
    return _xml(twiml)


# ---- the IVR survey call -------------------------------------------------------------------


def _say(node, settings: Settings, text: str) -> None:
    node.say(text, language=getattr(settings, "voice_say_language", "zh-CN"),
             voice=getattr(settings, "voice_say_voice", "alice"))


def _answer_url(settings: Settings, case_id: int, query: str) -> str:
    return cb.ivr_url(settings, case_id) + "/answer?" + query


def _ask(settings: Settings, case_id: int, question: str, query: str, prefix: str = "") -> Response:
    twiml = VoiceResponse()
    gather = twiml.gather(input="dtmf", num_digits=1, timeout=8, action=_answer_url(settings, case_id, query),
                          method="POST")
    _say(gather, settings, prefix + question)
    # Reached only when no key was pressed: the attempt stays counted, nothing is recorded.
    _say(twiml, settings, IVR_NO_INPUT)
    twiml.hangup()
    return _xml(twiml)


def _goodbye(settings: Settings, text: str) -> Response:
    twiml = VoiceResponse()
    _say(twiml, settings, text)
    twiml.hangup()
    return _xml(twiml)


async def _call_event(call_sid: str, event: str, payload: dict[str, Any], status: str | None = None) -> None:
    call = await CallLog.get_or_none(call_sid=call_sid[:64]) if call_sid else None
    if call is None:
        return
    await CallEvent.create(call_id=call.id, event=event, payload=payload)
    if status:
        await CallLog.filter(id=call.id).update(status=status)


async def _case(request: Request) -> Case | None:
    case_id = request.path_params["case_id"]
    return await Case.get_or_none(id=case_id) if 0 < case_id < 2**31 else None


async def ivr_start(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    params = await verified_params(request, settings)
    if params is None:
        return _forbidden()
    case = await _case(request)
    if case is None or case.status != s.REPLIED:
        return _goodbye(settings, IVR_DONE)
    await _call_event(params.get("CallSid", ""), "survey_prompt", {"case": case.number}, status="in-progress")
    intro = IVR_INTRO.format(tail="，".join(case.number[-4:]))
    return _ask(settings, case.id, IVR_ASK_RESOLVED, "q=resolved", prefix=intro)


async def ivr_answer(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    params = await verified_params(request, settings)
    if params is None:
        return _forbidden()
    case = await _case(request)
    if case is None or case.status != s.REPLIED:
        return _goodbye(settings, IVR_DONE)
    question = request.query_params.get("q", "")
    digits = params.get("Digits", "")
    resolved = request.query_params.get("resolved", "")
    if question == "satisfaction" and resolved in cb.IVR_RESOLVED.values():
        satisfaction = cb.IVR_SATISFACTION.get(digits)
        if satisfaction is None:
            return _ask(settings, case.id, IVR_ASK_SATISFACTION, f"q=satisfaction&resolved={resolved}",
                        prefix=IVR_WRONG_KEY)
        try:
            done = await cb.record_answer(case.number, resolved, satisfaction, via="语音回访",
                                          ctx=await request.app.state.sla.get())
        except CaseError as exc:
            # A retried request, or the citizen answered by SMS meanwhile: recorded once already.
            log.info("ivr answer on %s not recorded: %s", case.number, exc.message)
            return _goodbye(settings, IVR_DONE)
        await _call_event(params.get("CallSid", ""), "survey_answer",
                          {"case": case.number, "resolved": resolved, "satisfaction": satisfaction},
                          status="surveyed")
        return _goodbye(settings, IVR_THANKS_REHANDLE if done.status == s.REHANDLE_PENDING else IVR_THANKS)
    resolved = cb.IVR_RESOLVED.get(digits)
    if resolved is None:
        return _ask(settings, case.id, IVR_ASK_RESOLVED, "q=resolved", prefix=IVR_WRONG_KEY)
    return _ask(settings, case.id, IVR_ASK_SATISFACTION, f"q=satisfaction&resolved={resolved}")


def routes() -> list[Route]:
    return [
        Route(SMS_PATH, sms_incoming, methods=["POST"]),
        Route("/twilio/callback/ivr/{case_id:int}", ivr_start, methods=["POST"]),
        Route("/twilio/callback/ivr/{case_id:int}/answer", ivr_answer, methods=["POST"]),
    ]
