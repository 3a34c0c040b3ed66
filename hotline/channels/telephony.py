"""The one interface telephony sits behind: calls, recordings, SMS and webhook signatures.

Twilio is the implementation shipped; a domestic carrier or a SIP trunk can be
added as another class with the same four methods, chosen in
``make_telephony``. Without any provider configured, ``LocalTelephony`` keeps
the system usable: SMS goes to the local log file, outbound calls are refused
politely and webhooks are never trusted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Protocol

import requests
from starlette.requests import Request
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.request_validator import RequestValidator

from hotline.channels.sms import LocalSms, SendResult, TwilioSms
from hotline.settings import Settings

log = logging.getLogger("hotline.telephony")

# Every call's progress, as Twilio reports it to the status callback.
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")


class TelephonyError(Exception):
    """The provider refused or could not be reached; ``message`` is fit to show staff."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status


class TelephonyUnavailable(TelephonyError):
    """No provider is configured for outbound calls."""


class Telephony(Protocol):
    from_number: str

    def verify(self, request_url: str, params: dict, signature: str) -> bool: ...

    async def call(self, to: str, twiml_url: str, *, status_callback: str | None = None) -> str: ...

    async def delete_recording(self, recording_sid: str) -> None: ...

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult: ...


class TwilioTelephony:
    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 http_client: HttpClient | None = None):
        self.from_number = from_number
        self._validator = RequestValidator(auth_token)
        # One SDK client for SMS and voice: the SMS sender already builds it with a timeout.
        self.sms = TwilioSms(account_sid, auth_token, from_number, http_client=http_client)
        self.client = self.sms.client

    def verify(self, request_url: str, params: dict, signature: str) -> bool:
        return bool(signature) and self._validator.validate(request_url, params, signature)

    async def call(self, to: str, twiml_url: str, *, status_callback: str | None = None) -> str:
        extra = {}
        if status_callback:
            extra = {"status_callback": status_callback, "status_callback_method": "POST",
                     "status_callback_event": list(CALL_EVENTS)}
        try:
            # The SDK's client is synchronous: keep it off the event loop.
            created = await asyncio.to_thread(
                self.client.calls.create, to=to, from_=self.from_number, url=twiml_url, method="POST", **extra,
            )
        except TwilioRestException as exc:
            raise TelephonyError(f"外呼失败：{exc.code or ''} {exc.msg}".strip(), status=exc.status) from None
        except (TwilioException, OSError, requests.RequestException) as exc:
            raise TelephonyError(f"外呼失败：{type(exc).__name__}") from None
        return created.sid

    async def delete_recording(self, recording_sid: str) -> None:
        try:
            await asyncio.to_thread(self.client.recordings(recording_sid).delete)
        except TwilioRestException as exc:
            if exc.status == 404:
                return  # already gone: what deletion wanted
            raise TelephonyError(f"删除录音失败：{exc.code or ''} {exc.msg}".strip(), status=exc.status) from None
        except (TwilioException, OSError, requests.RequestException) as exc:
            raise TelephonyError(f"删除录音失败：{type(exc).__name__}") from None

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        return await self.sms.send(to, body, status_callback=status_callback)


class LocalTelephony:
    """For installs without a provider: no calls, SMS to the local log, no webhook trusted."""

    from_number = ""

    def __init__(self, outbox_log: Path):
        self.sms = LocalSms(outbox_log)

    def verify(self, request_url: str, params: dict, signature: str) -> bool:
        # No shared secret, so nothing can prove a request came from a carrier.
        return False

    async def call(self, to: str, twiml_url: str, *, status_callback: str | None = None) -> str:
        log.info("outbound call to %s refused: no telephony provider configured", mask(to))
        raise TelephonyUnavailable("未配置电话线路，暂不能外呼")

    async def delete_recording(self, recording_sid: str) -> None:
        # A recording lives at the provider it came from: claiming it deleted
        # without one would blank the row and leave the audio behind.
        raise TelephonyUnavailable("未配置电话线路，无法删除录音")

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        return await self.sms.send(to, body, status_callback=status_callback)


def make_telephony(settings: Settings, http_client: HttpClient | None = None) -> TwilioTelephony | LocalTelephony:
    if settings.twilio_configured:
        return TwilioTelephony(settings.twilio_account_sid, settings.twilio_auth_token,
                               settings.twilio_from_number, http_client=http_client)
    return LocalTelephony(settings.outbox_log)


# ---- webhooks ----------------------------------------------------------------------------


def public_url(settings: Settings, request: Request) -> str:
    """The URL the provider called: behind a proxy ``request.url`` is not it."""
    url = settings.public_base_url.rstrip("/") + request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{url}?{query}" if query else url


async def verified_params(request: Request, settings: Settings) -> dict[str, str] | None:
    """The webhook's form fields when Twilio's signature over them is valid, else None."""
    signature = request.headers.get("x-twilio-signature", "")
    if not settings.twilio_configured or not signature:
        return None
    try:
        # Twilio posts a few dozen plain fields; anything else cannot carry a valid signature.
        async with request.form(max_files=0, max_fields=200) as form:
            params = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    except Exception:  # a malformed body is no more trustworthy than a bad signature
        return None
    if not RequestValidator(settings.twilio_auth_token).validate(public_url(settings, request), params, signature):
        return None
    return params


# ---- numbers ---------------------------------------------------------------------------------

PHONE = re.compile(r"^\+?[0-9][0-9\-]{4,19}$")


def national(number: str) -> str:
    """A Chinese number as dialled at home (13800138000, 07318888888); others unchanged."""
    n = re.sub(r"[\s\-()]", "", number or "")
    for prefix in ("+86", "0086"):
        if n.startswith(prefix):
            rest = n[len(prefix):]
            return rest if rest.startswith("1") else "0" + rest.lstrip("0")
    return n


def e164(number: str) -> str:
    """What a carrier dials: +8613800138000 for a number stored in national form."""
    n = national(number)
    if n.startswith("+"):
        return n
    if n.startswith("00"):
        return "+" + n[2:]
    return "+86" + (n[1:] if n.startswith("0") else n)


def phone_variants(number: str) -> list[str]:
    """The spellings one number may be stored under (cases from agents hold national form)."""
    if not number:
        return []
    n = national(number)
    if n.startswith("+"):
        return [n]
    full = e164(n)
    return list(dict.fromkeys([number, n, full, full[1:]]))


def mask(number: str) -> str:
    return number[:3] + "****" + number[-4:] if len(number) >= 8 else "****"
