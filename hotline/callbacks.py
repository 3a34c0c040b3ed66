"""回访: the callback survey after a reply, by SMS, IVR call or an agent.

The day after the lead unit replies (``Case.callback_due``, set by the
``reply`` transition) the scheduler starts an attempt: it records the attempt
through the case core (``record_callback`` with ``contacted`` false), which
counts it, moves ``callback_due`` a day on and queues the ``callback_survey``
SMS in the same transaction; then, when Twilio is configured, it places an
IVR call whose TwiML lives at ``/twilio/callback/ivr/{case_id}``. The case
version's compare-and-set lets only one scheduler start a given attempt, so a
re-run or a second worker never texts or calls twice.

The citizen answers by replying with one digit (``SURVEY_DIGITS``), by
keypad on the IVR call, or to an agent on the ``/callbacks`` screen; each
answer is ``record_callback`` with ``contacted`` true, which closes the
callback or re-opens the case for re-handling. After
``HOTLINE_CALLBACK_ATTEMPTS`` attempts and one more day without an answer the
callback is recorded as unreachable (``callback_unreachable``).

Citizens are only ever texted or called at hours in ``HOTLINE_CALLBACK_HOURS``;
confidential callers are surveyed like everyone else (only about their own case).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tortoise.expressions import Q

from cases import states as s
from cases.actors import SYSTEM, Actor
from cases.errors import CaseError
from cases.lifecycle import SlaContext, perform
from cases.models import Case, Notification
from cases.sla import SHANGHAI
from hotline.models import CallLog
from hotline.settings import Settings, parse_working_hours

log = logging.getLogger("hotline.callbacks")

# The SMS reply scheme, as the callback_survey template explains it.
SURVEY_DIGITS: dict[str, tuple[str, str]] = {
    "1": ("resolved", "satisfied"),
    "2": ("resolved", "basically"),
    "3": ("resolved", "unsatisfied"),
    "4": ("unresolved", "unsatisfied"),
}
SURVEY_HELP = "请只回复一个数字：1已解决满意 2已解决基本满意 3已解决不满意 4未解决。"
# The IVR asks two questions; each keypad digit means one answer.
IVR_RESOLVED = {"1": "resolved", "2": "partly", "3": "unresolved"}
IVR_SATISFACTION = {"1": "satisfied", "2": "basically", "3": "unsatisfied"}

RESOLVED_LABELS = {"resolved": "已解决", "partly": "部分解决", "unresolved": "未解决", "unreachable": "无法联系"}
SATISFACTION_LABELS = {"satisfied": "满意", "basically": "基本满意", "unsatisfied": "不满意"}

IVR_PATH = "/twilio/callback/ivr/{case_id}"
# Inbound survey SMS are logged in call_log under this purpose, keyed by MessageSid.
SMS_PURPOSE = "survey_sms"
IVR_PURPOSE = "survey"
MAX_PASSES = 20


def parse_sms_answer(body: str) -> tuple[str, str] | None:
    """One digit 1-4, alone (full-width digits and trailing punctuation allowed), else None."""
    text = unicodedata.normalize("NFKC", body or "").strip()
    text = re.sub(r"[\s。.！!，,、]+$", "", text)
    return SURVEY_DIGITS.get(text)


def in_calling_hours(settings: Settings, now: datetime) -> bool:
    start, end = parse_working_hours(settings.callback_hours)
    local = now.astimezone(SHANGHAI)
    minute = local.hour * 60 + local.minute
    return start <= minute < end


def ivr_url(settings: Settings, case_id: int) -> str:
    return settings.public_base_url.rstrip("/") + IVR_PATH.format(case_id=case_id)


@dataclass
class Stats:
    started: int = 0
    called: int = 0
    unreachable: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def __bool__(self) -> bool:
        return any(self.__dict__.values())


def telephony_for(services: Any):
    """The outbound-call provider: the services' own (tests inject one), else from settings."""
    telephony = getattr(services, "telephony", None)
    if telephony is None and services.settings.twilio_configured:
        from hotline.channels.telephony import make_telephony

        telephony = make_telephony(services.settings)
        services.telephony = telephony
    return telephony


async def run_callbacks(services: Any, now: datetime | None = None) -> dict[str, int]:
    """The periodic pass (from ``hotline.jobs.tick``)."""
    stats = await schedule(services.settings, await services.sla.get(), telephony=telephony_for(services),
                           now=now, batch=services.settings.sweep_batch)
    if stats:
        log.info("callbacks: %s", stats.to_dict())
    return stats.to_dict()


async def schedule(settings: Settings, ctx: SlaContext, *, telephony: Any = None,
                   now: datetime | None = None, batch: int = 50) -> Stats:
    """Start every callback attempt due at ``now`` and close those out of attempts."""
    now = now or datetime.now(timezone.utc)
    limit = settings.callback_attempts
    calling = in_calling_hours(settings, now)
    stats = Stats()
    seen: set[int] = set()
    for _ in range(MAX_PASSES):
        due = Case.filter(status=s.REPLIED, callback_due__lte=now).exclude(id__in=list(seen) or [0])
        out_of_attempts = Q(callback_attempts__gte=limit)
        # Outside calling hours only the bookkeeping runs; nobody is texted at night.
        # Without a number nobody can be surveyed automatically: agents see those on /callbacks.
        due = due.filter(out_of_attempts | Q(~Q(caller_phone=""), callback_attempts__lt=limit)) if calling \
            else due.filter(out_of_attempts)
        cases = await due.order_by("callback_due", "id").limit(batch)
        for case in cases:
            seen.add(case.id)
            try:
                if case.callback_attempts >= limit:
                    await perform(case.number, "callback_unreachable", SYSTEM, {
                        "note": f"自动回访{case.callback_attempts}次均未联系上市民，记为无法联系",
                    }, sla_context=ctx, now=now)
                    stats.unreachable += 1
                else:
                    await _start_attempt(settings, ctx, case, limit, telephony, now, stats)
            except CaseError as exc:
                # Another worker or an agent acted on it first.
                log.info("callback skipped %s: %s", case.number, exc.message)
            except Exception:
                stats.failed += 1
                log.exception("callback failed for case %s", case.number)
        if len(cases) < batch:
            break
    return stats


async def _start_attempt(settings: Settings, ctx: SlaContext, case: Case, limit: int, telephony: Any,
                         now: datetime, stats: Stats) -> None:
    attempt = case.callback_attempts + 1
    calling = telephony is not None and settings.twilio_configured
    how = "发送回访短信并拨打语音回访电话" if calling else "发送回访短信"
    # The attempt, its SMS and the next day's retry commit together or not at all;
    # a second scheduler loses the version compare-and-set and stops here.
    await perform(case.number, "record_callback", SYSTEM,
                  {"contacted": False, "note": f"自动回访第{attempt}次（共{limit}次）：{how}"},
                  sla_context=ctx, now=now)
    stats.started += 1
    if not calling:
        return
    from hotline.channels.telephony import TelephonyError, e164

    to = e164(case.caller_phone)
    try:
        sid = await telephony.call(to, ivr_url(settings, case.id))
    except TelephonyError as exc:
        # The SMS of this attempt is already queued; the next attempt calls again.
        log.warning("callback call for %s failed: %s", case.number, exc.message)
        return
    await CallLog.create(call_sid=sid[:64], direction="outbound", purpose=IVR_PURPOSE, to_number=to[:32],
                         from_number=(settings.twilio_from_number or "")[:32], status="queued", case_id=case.id)
    stats.called += 1


# ---- answers -------------------------------------------------------------------------------


async def pending_survey_case(phone: str) -> Case | None:
    """The caller's case most recently sent a survey that still waits for its answer."""
    from hotline.channels.telephony import phone_variants

    variants = phone_variants(phone)
    if not variants:
        return None
    row = await Notification.filter(template="callback_survey", address__in=variants,
                                    case__status=s.REPLIED).order_by("-id").first()
    if row is None or row.case_id is None:
        return None
    return await Case.get_or_none(id=row.case_id)


async def record_answer(number: str, resolved: str, satisfaction: str, *, via: str,
                        actor: Actor = SYSTEM, ctx: SlaContext | None = None,
                        now: datetime | None = None, note: str = "") -> Case:
    """The citizen was reached and answered: close the callback, or re-open for re-handling."""
    text = note or (f"{via}：{RESOLVED_LABELS.get(resolved, resolved)}，"
                    f"{SATISFACTION_LABELS.get(satisfaction, satisfaction)}")
    return await perform(number, "record_callback", actor,
                         {"contacted": True, "resolved": resolved, "satisfaction": satisfaction, "note": text},
                         sla_context=ctx, now=now)
