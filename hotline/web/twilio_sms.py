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
from twilio.request_validator import RequestValidator

from cases.models import Notification
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


def _signed_url(settings: Settings, request: Request) -> str:
    url = settings.public_base_url.rstrip("/") + request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{url}?{query}" if query else url


async def sms_status(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    signature = request.headers.get("x-twilio-signature", "")
    if not settings.twilio_configured or not signature:
        return PlainTextResponse("forbidden", status_code=403)
    # Twilio posts a few dozen plain fields; anything else cannot carry a valid signature.
    async with request.form(max_files=0, max_fields=200) as form:
        params = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    if not RequestValidator(settings.twilio_auth_token).validate(_signed_url(settings, request), params, signature):
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
