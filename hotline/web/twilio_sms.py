"""Twilio's delivery reports for the SMS the outbox sent (the status callback).

Twilio signs every request with the account's auth token; the signature
covers the public URL Twilio called, which behind a proxy is not the URL this
process sees, so it is checked against ``PUBLIC_BASE_URL``. Callbacks may
arrive twice and out of order: a status only ever moves forward, and
``delivered`` and ``failed`` are final.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cases.models import Notification
from hotline.channels.telephony import verified_params
from hotline.outbox import DELIVERED, FAILED, SENDING, SENT, STATUS_CALLBACK_PATH
from hotline.settings import Settings

log = logging.getLogger("hotline.twilio")

# Twilio's MessageStatus values, as this system's notification statuses.
_STATUS = {
    "accepted": SENT,
    "scheduled": SENT,
    "queued": SENT,
    "sending": SENT,
    "sent": SENT,
    "delivered": DELIVERED,
    "read": DELIVERED,
    "undelivered": FAILED,
    "failed": FAILED,
}
# The statuses a row may leave for each new one: never backwards, never out of a final one.
_MAY_COME_FROM = {
    SENT: (SENDING,),
    DELIVERED: (SENDING, SENT),
    FAILED: (SENDING, SENT),
}


async def sms_status(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    params = await verified_params(request, settings)
    if params is None:
        return PlainTextResponse("forbidden", status_code=403)
    sid = params.get("MessageSid", "")
    new = _STATUS.get(params.get("MessageStatus", ""))
    if not sid or new is None:
        # Nothing this system tracks; an error answer would only make Twilio retry.
        return Response(status_code=204)
    changes: dict[str, object] = {"status": new, "updated_at": datetime.now(timezone.utc)}
    if new == FAILED:
        status, code = params["MessageStatus"], params.get("ErrorCode", "")
        changes["error"] = (f"{status} ErrorCode {code}" if code else status)[:300]
    updated = await Notification.filter(provider_id=sid[:64], status__in=_MAY_COME_FROM[new]).update(**changes)
    if not updated:
        log.debug("twilio status %s for %s changed nothing", params.get("MessageStatus"), sid)
    return Response(status_code=204)


def routes() -> list[Route]:
    return [Route(STATUS_CALLBACK_PATH, sms_status, methods=["POST"])]
