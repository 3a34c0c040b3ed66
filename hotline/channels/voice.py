"""What a phone call does to the system: call logs, cases from calls, agents, recordings.

The webhooks in ``hotline/web/twilio_voice.py`` decide what the caller hears;
this module decides what is written. Every write is keyed on a provider id
(CallSid, RecordingSid), because providers retry webhooks: a retried request
finds the call log, the case and the recording it made the first time.

A call makes at most one case: its ``source_id`` is ``twilio-call:<CallSid>``,
whether it came from the caller's spoken problem or from a voicemail.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.exceptions import IntegrityError

from cases import states, timers
from cases.actors import SYSTEM
from cases.intake import create_case
from cases.models import Case, User
from cases.sla import SHANGHAI, WorkCalendar
from hotline.channels.telephony import PHONE, Telephony, TelephonyError, e164, phone_variants
from hotline.models import CallEvent, CallLog
from hotline.settings import Settings, parse_working_hours

log = logging.getLogger("hotline.voice")

AGENT_QUEUE = "agents"
# Call statuses in which a line is still busy; a log stuck in one of them
# (its final status callback lost) stops counting after BUSY_FOR.
ACTIVE = ("queued", "initiated", "ringing", "in-progress")
FINAL = ("completed", "busy", "failed", "no-answer", "canceled")
BUSY_FOR = timedelta(hours=2)
_RANK = {"ringing": 1, "queued": 0, "initiated": 0, "in-progress": 2, **{s: 3 for s in FINAL}}
CALL_SID = re.compile(r"^[A-Za-z0-9]{2,52}$")
PURGE_BATCH = 100
_RECORDING_SID = re.compile(r"/Recordings/(RE[0-9a-fA-F]{32})")

UNTRANSCRIBED = "（电话留言，录音待转写，请收听录音后补充诉求内容）"
# 1 幺, as numbers are read on the phone in China.
_DIGITS = dict(zip("0123456789", "零幺二三四五六七八九", strict=True))


def clock() -> datetime:
    """The clock of the call flow (tests replace it to land in or out of working hours)."""
    return datetime.now(timezone.utc)


def spoken(text: str) -> str:
    """A case number or query code read one character at a time."""
    return " ".join(_DIGITS.get(ch, ch) for ch in text if ch != "-")


# What Twilio puts in From when the caller's number is withheld or unknown.
WITHHELD = frozenset({"+266696687", "+86282452253", "+8656696", "+7378742833", "+2562533"})


def caller_number(params: dict[str, str]) -> str:
    """The caller's number as the case stores it, or "" (withheld, a browser client, junk)."""
    number = (params.get("From") or "").strip()
    return number if PHONE.match(number) and number not in WITHHELD else ""


# ---- call logs -----------------------------------------------------------------------------


async def upsert_call(params: dict[str, str], *, direction: str = "inbound", purpose: str = "intake",
                      agent_id: int | None = None, case_id: int | None = None) -> CallLog:
    """The call's log row, made the first time its CallSid is seen and found every time after."""
    sid = params["CallSid"]
    row = await CallLog.get_or_none(call_sid=sid)
    if row is not None:
        return row
    try:
        return await CallLog.create(
            call_sid=sid, direction=direction, purpose=purpose,
            from_number=(params.get("From") or "")[:32], to_number=(params.get("To") or "")[:32],
            status=(params.get("CallStatus") or "ringing")[:16], agent_id=agent_id, case_id=case_id,
        )
    except IntegrityError:
        # The same webhook, retried while the first was still running.
        return await CallLog.get(call_sid=sid)


async def event(call: CallLog, name: str, payload: dict[str, Any] | None = None) -> None:
    await CallEvent.create(call_id=call.id, event=name[:32], payload=payload or {})


async def count_events(call: CallLog, name: str) -> int:
    return await CallEvent.filter(call_id=call.id, event=name).count()


async def set_purpose(call: CallLog, purpose: str) -> None:
    if call.purpose != purpose:
        call.purpose = purpose
        await CallLog.filter(id=call.id).update(purpose=purpose)


async def update_status(params: dict[str, str]) -> CallLog | None:
    """A status callback: the status only moves forward, and a final one sets ended_at."""
    status = (params.get("CallStatus") or "").strip()
    if status not in _RANK:
        return None
    direction = "inbound" if params.get("Direction", "inbound") == "inbound" else "outbound"
    call = await upsert_call(params, direction=direction, purpose="intake" if direction == "inbound" else "transfer")
    if status == call.status or _RANK[status] < _RANK.get(call.status, 0) or call.status in FINAL:
        return call
    changes: dict[str, Any] = {"status": status}
    if status in FINAL:
        changes["ended_at"] = clock()
    await CallLog.filter(id=call.id).update(**changes)
    await event(call, "status", {"status": status, "duration": params.get("CallDuration", "")})
    for key, value in changes.items():
        setattr(call, key, value)
    return call


# ---- menu ------------------------------------------------------------------------------------

_SPOKEN_CHOICES = (
    ("1", ("1", "一", "幺", "反映", "咨询", "投诉", "问题", "举报", "求助")),
    ("2", ("2", "二", "两", "查询", "进度", "查")),
    ("0", ("0", "零", "人工", "话务", "客服", "转接")),
)


def menu_choice(digits: str | None, speech: str | None) -> str:
    """"1", "2", "0", or "" when the caller pressed or said nothing the menu offers."""
    digits = (digits or "").strip()
    if digits in ("1", "2", "0"):
        return digits
    text = (speech or "").strip()
    for choice, words in _SPOKEN_CHOICES:
        if any(word in text for word in words):
            return choice
    return ""


async def menu_misses(call: CallLog) -> int:
    """How many times the menu heard no choice on this call."""
    payloads = await CallEvent.filter(call_id=call.id, event="menu").values_list("payload", flat=True)
    return sum(1 for pl in payloads if isinstance(pl, dict) and not pl.get("choice"))


def in_working_hours(settings: Settings, calendar: WorkCalendar, at: datetime) -> bool:
    local = at.astimezone(SHANGHAI)
    if not calendar.is_workday(local.date()):
        return False
    start, end = parse_working_hours(settings.working_hours)
    return start <= local.hour * 60 + local.minute < end


# ---- cases from calls --------------------------------------------------------------------------


async def transcribe(recording_url: str) -> str | None:
    """The seam for a speech-recognition service: the text of a recording, or None.

    Twilio's own transcription does not cover Chinese, so nothing is wired in
    here; a deployment with an ASR service (iFlytek, Alibaba Cloud, a local
    Whisper) replaces this function. The voicemail case then carries the text;
    without it the case says a recording waits and an agent listens to it.
    """
    return None


async def case_from_call(call: CallLog, params: dict[str, str], settings: Settings, *,
                         speech: str = "", recording_url: str = "", recording_sid: str = "",
                         ladder: timers.Ladder | None = None) -> tuple[Case, bool]:
    """The call's one case (made on the first try, found on every retry); returns (case, created)."""
    if speech:
        title, content = speech[:30], speech[:4000]
    else:
        transcript = ((await transcribe(recording_url) if recording_url else None) or "").strip()
        if transcript:
            await CallLog.filter(id=call.id).update(transcript=transcript)
        title = "电话留言"
        content = transcript[:4000] or UNTRANSCRIBED
    # Routing reads the words: a voicemail nobody has transcribed waits in 待受理
    # for an agent to listen to, instead of being classified on a placeholder.
    route = settings.auto_route and content != UNTRANSCRIBED
    data = {
        "channel": "phone", "request_type": "consult", "title": title, "content": content,
        "caller_phone": caller_number(params) or caller_number({"From": call.from_number}),
        "source_id": f"twilio-call:{call.call_sid}",
    }
    case, created = await create_case(data, SYSTEM, ladder=ladder, route=route)
    details = {"call_sid": call.call_sid}
    if recording_url:
        details["recording_url"] = recording_url
    if recording_sid:
        details["recording_sid"] = recording_sid
    merged = {**(case.details or {}), **details}
    if merged != case.details:
        # Intake takes no channel details, so they are added to the new row here.
        await Case.filter(id=case.id).update(details=merged)
        case.details = merged
    if call.case_id != case.id:
        await CallLog.filter(id=call.id).update(case_id=case.id)
        call.case_id = case.id
    if created:
        await event(call, "case_created", {"number": case.number})
    return case, created


async def store_recording(call: CallLog, settings: Settings, recording_url: str, recording_sid: str = "") -> None:
    """Keep the recording's address until the retention period ends."""
    changes: dict[str, Any] = {}
    if recording_url and call.recording_url != recording_url:
        changes["recording_url"] = recording_url[:500]
    if recording_sid and call.recording_sid != recording_sid:
        if not await CallLog.filter(recording_sid=recording_sid).exclude(id=call.id).exists():
            changes["recording_sid"] = recording_sid[:64]
    if call.retain_until is None:
        changes["retain_until"] = clock() + timedelta(days=settings.recording_retention_days)
    if changes:
        await CallLog.filter(id=call.id).update(**changes)
        for key, value in changes.items():
            setattr(call, key, value)


async def case_for_caller(number: str, caller: str) -> Case | None:
    """The case with this number, only when it was registered from the calling number."""
    variants = phone_variants(caller)
    if not variants or not re.fullmatch(r"[0-9]{8}-[0-9]{6}", number):
        return None
    return await Case.filter(number=number, caller_phone__in=variants).first()


async def caller_history(phone: str, limit: int = 20) -> list[Case]:
    variants = phone_variants(phone)
    if not variants:
        return []
    return await Case.filter(caller_phone__in=variants).order_by("-id").limit(limit)


def status_label(case: Case) -> str:
    return states.LABELS.get(case.status, case.status)


# ---- agents ------------------------------------------------------------------------------------


async def agents_on_duty() -> list[User]:
    """Everyone taking calls now, in a stable order."""
    return await User.filter(accepts_calls=True, is_active=True).order_by("id")


async def available_agent(tried: set[int] = frozenset()) -> User | None:
    """The first agent with a phone who is not on a queued call already.

    Agents already rung for this caller (and who did not answer) come last,
    so a caller is not offered to the same unanswered phone again and again.
    """
    agents = [u for u in await agents_on_duty() if u.phone]
    if not agents:
        return None
    busy = set(await CallLog.filter(
        purpose="transfer", direction="outbound", status__in=ACTIVE,
        agent_id__in=[u.id for u in agents], started_at__gte=clock() - BUSY_FOR,
    ).values_list("agent_id", flat=True))
    free = sorted((u for u in agents if u.id not in busy), key=lambda u: (u.id in tried, u.id))
    return free[0] if free else None


async def _dialed(caller: CallLog) -> list[dict]:
    payloads = await CallEvent.filter(call_id=caller.id, event="agent_dialed").values_list("payload", flat=True)
    return [p for p in payloads if isinstance(p, dict)]


async def agent_leg_active(caller: CallLog) -> bool:
    """Whether an agent's phone is already ringing (or talking) for this caller."""
    sids = [p["call_sid"] for p in await _dialed(caller) if p.get("call_sid")]
    if not sids:
        return False
    return await CallLog.filter(call_sid__in=sids, status__in=ACTIVE, started_at__gte=clock() - BUSY_FOR).exists()


async def dial_agent(telephony: Telephony, settings: Settings, caller: CallLog) -> str | None:
    """Ring the first available agent's phone; answering bridges them to the queue."""
    agent = await available_agent({p.get("agent_id") for p in await _dialed(caller)})
    if agent is None:
        if not await count_events(caller, "no_agent_available"):
            # Once per call: the wait URL asks again every few seconds.
            await event(caller, "no_agent_available")
        return None
    base = settings.public_base_url.rstrip("/")
    try:
        sid = await telephony.call(
            e164(agent.phone), f"{base}/twilio/voice/agent-answer?caller={caller.call_sid}",
            status_callback=f"{base}/twilio/voice/status",
        )
    except TelephonyError as exc:
        log.warning("could not ring agent %s for %s: %s", agent.id, caller.call_sid, exc.message)
        await event(caller, "agent_dial_failed", {"agent_id": agent.id, "error": exc.message[:200]})
        return None
    await upsert_call({"CallSid": sid, "From": telephony.from_number, "To": agent.phone, "CallStatus": "queued"},
                      direction="outbound", purpose="transfer", agent_id=agent.id)
    await event(caller, "agent_dialed", {"agent_id": agent.id, "call_sid": sid})
    return sid


async def dial_agent_quietly(telephony: Telephony, settings: Settings, caller: CallLog) -> None:
    """``dial_agent`` for a background task: a failure is logged, the caller waits or overflows."""
    try:
        await dial_agent(telephony, settings, caller)
    except Exception:
        log.exception("dialling an agent for %s failed", caller.call_sid)


# ---- which caller an agent is talking to ------------------------------------------------------------


async def connect_agent(caller_sid: str, agent_leg_sid: str) -> CallLog | None:
    """The queue handed ``caller_sid`` to the agent's leg ``agent_leg_sid``: remember who talks to whom.

    This is the only moment the provider says which waiting caller an agent
    got (the queue picks the longest waiting one, not necessarily the caller
    whose wait made the app ring that agent), so the console, the case an
    agent creates and a transfer to a partner all start from this link.
    """
    caller = await CallLog.get_or_none(call_sid=caller_sid)
    leg = await CallLog.get_or_none(call_sid=agent_leg_sid) if CALL_SID.match(agent_leg_sid or "") else None
    if caller is None or leg is None or leg.id == caller.id:
        return caller
    if leg.peer_id != caller.id:
        await CallLog.filter(id=leg.id).update(peer_id=caller.id)
        await event(caller, "agent_connected", {"agent_id": leg.agent_id, "call_sid": leg.call_sid})
        if caller.agent_id is None and leg.agent_id is not None:
            await CallLog.filter(id=caller.id, agent_id=None).update(agent_id=leg.agent_id)
    return caller


async def caller_of(row: CallLog) -> CallLog | None:
    """The citizen's call behind a call log row: itself for a caller, its peer for an agent's leg."""
    if row.peer_id is not None:
        return await CallLog.get_or_none(id=row.peer_id)
    if row.direction == "outbound" and row.purpose == "transfer":
        return None  # an agent's leg not connected to anyone (yet)
    return row


def caller_phone(row: CallLog) -> str:
    return row.from_number if row.direction == "inbound" else row.to_number


async def current_call(user_id: int) -> tuple[CallLog, CallLog] | None:
    """(agent's leg, caller's call) of the call this agent is on now, if any."""
    legs = await CallLog.filter(
        agent_id=user_id, purpose="transfer", direction="outbound", peer_id__not_isnull=True,
        started_at__gte=clock() - BUSY_FOR,
    ).exclude(status__in=FINAL).order_by("-id").limit(3)
    for leg in legs:
        caller = await CallLog.get_or_none(id=leg.peer_id)
        if caller is not None and caller.status not in FINAL:
            return leg, caller
    return None


async def link_case(call_sid: str, case: Case, user_id: int) -> CallLog | None:
    """An agent made ``case`` during this call: the citizen's call log points at it.

    A call that raised several problems keeps the first case on its row; each
    case made during it is named in the call's events.
    """
    row = await CallLog.get_or_none(call_sid=call_sid)
    caller = await caller_of(row) if row is not None else None
    if caller is None:
        return None
    if caller.case_id is None:
        await CallLog.filter(id=caller.id, case_id=None).update(case_id=case.id)
    await event(caller, "case_linked", {"case": case.number, "user_id": user_id})
    return caller


# ---- the confidential bridge ---------------------------------------------------------------------


async def start_bridge(telephony: Telephony, settings: Settings, case: Case, user: User) -> CallLog:
    """Ring the handler's own phone; answering dials the citizen from the hotline's number.

    The citizen's number travels only from this process to the provider, in
    the TwiML of the handler's call: the unit sees the hotline number, and the
    call log keeps the handler's number, not the citizen's.
    """
    base = settings.public_base_url.rstrip("/")
    sid = await telephony.call(
        e164(user.phone), f"{base}/twilio/voice/bridge?case={case.number}",
        status_callback=f"{base}/twilio/voice/status",
    )
    call = await upsert_call({"CallSid": sid, "From": telephony.from_number, "To": user.phone, "CallStatus": "queued"},
                             direction="outbound", purpose="bridge", agent_id=user.id, case_id=case.id)
    await event(call, "bridge_requested", {"user_id": user.id, "case": case.number})
    return call


# ---- retention -----------------------------------------------------------------------------------


async def purge_recordings(telephony: Telephony, now: datetime | None = None, *, batch: int = PURGE_BATCH) -> int:
    """Delete recordings past their retention date at the provider, then blank their rows.

    A row is blanked only after the provider confirmed the deletion (or said
    the recording was already gone), so a failure is retried on the next pass.
    """
    at = now or clock()
    rows = await CallLog.filter(retain_until__lte=at, recording_deleted_at=None).order_by("id").limit(batch)
    purged = 0
    for row in rows:
        sid = row.recording_sid
        if not sid:
            found = _RECORDING_SID.search(row.recording_url or "")
            sid = found.group(1) if found else None
        if sid:
            try:
                await telephony.delete_recording(sid)
            except TelephonyError as exc:
                log.info("recording %s of call %s kept for now: %s", sid, row.call_sid, exc.message)
                continue
        done = await CallLog.filter(id=row.id, recording_deleted_at=None).update(
            recording_url="", transcript="", recording_deleted_at=at)
        if done and row.case_id:
            case = await Case.get_or_none(id=row.case_id)
            if case is not None and "recording_url" in (case.details or {}):
                details = {k: v for k, v in case.details.items() if k != "recording_url"}
                details["recording_deleted_at"] = at.isoformat()
                await Case.filter(id=case.id).update(details=details)
        purged += done
    if purged:
        log.info("deleted %d recordings past their retention date", purged)
    return purged
