"""Sending one SMS: through Twilio, or to a local log file when Twilio is not configured.

A sender only sends and says how it went; the outbox decides what a failure
means for the message (retry later or give up), from ``SendResult.permanent``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from hotline.settings import Settings

ERROR_MAX = 300
# A hung request would hold its claimed batch in 'sending'; the outbox takes
# such rows back after ten minutes, so a whole batch must finish well before.
HTTP_TIMEOUT_SECONDS = 15
# 4xx answers that are about the account or the moment, not the message:
# bad credentials (fixed by the operator), a timeout and rate limiting.
_TRANSIENT_4XX = frozenset({401, 408, 429})


@dataclass(frozen=True)
class SendResult:
    ok: bool
    provider_id: str | None = None
    permanent: bool = False
    error: str = ""


class SmsSender(Protocol):
    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult: ...


def _error_text(code: object, message: str) -> str:
    text = f"{code} {message}".strip() if code not in (None, "") else message.strip()
    return text[:ERROR_MAX]


class TwilioSms:
    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 http_client: HttpClient | None = None):
        self.from_number = from_number
        self.client = Client(account_sid, auth_token,
                             http_client=http_client or TwilioHttpClient(timeout=HTTP_TIMEOUT_SECONDS))

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        try:
            # The SDK's client is synchronous: keep it off the event loop.
            message = await asyncio.to_thread(
                self.client.messages.create,
                to=to, from_=self.from_number, body=body,
                **({"status_callback": status_callback} if status_callback else {}),
            )
        except TwilioRestException as exc:
            # The SDK prefixes every message with "Unable to create record: ".
            text = str(exc.msg).removeprefix("Unable to create record: ")
            return SendResult(False, permanent=_permanent(exc.status), error=_error_text(exc.code, text))
        except TwilioServiceException as exc:
            text = f"{exc.title}: {exc.detail}" if exc.detail else str(exc.title)
            return SendResult(False, permanent=_permanent(exc.status), error=_error_text(exc.code, text))
        except (TwilioException, OSError, requests.RequestException) as exc:
            # Never reached Twilio, or no answer: the message may be sent on a later try.
            return SendResult(False, error=_error_text(type(exc).__name__, str(exc)))
        return SendResult(True, provider_id=message.sid)


def _permanent(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX


class LocalSms:
    """Development and demo backend: each message becomes one JSON line in a file."""

    def __init__(self, path: Path):
        self.path = Path(path)

    async def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        provider_id = f"local-{uuid.uuid4().hex}"
        line = json.dumps(
            {"time": datetime.now(timezone.utc).isoformat(), "to": to, "body": body, "id": provider_id},
            ensure_ascii=False,
        ) + "\n"
        try:
            await asyncio.to_thread(self._append, line.encode("utf-8"))
        except OSError as exc:
            return SendResult(False, error=_error_text(type(exc).__name__, str(exc)))
        return SendResult(True, provider_id=provider_id)

    def _append(self, data: bytes) -> None:
        # One O_APPEND write per line, so concurrent senders never interleave a line.
        if self.path.parent != Path(""):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def make_sender(settings: Settings, http_client: HttpClient | None = None) -> TwilioSms | LocalSms:
    if settings.twilio_configured:
        return TwilioSms(settings.twilio_account_sid, settings.twilio_auth_token,
                         settings.twilio_from_number, http_client=http_client)
    return LocalSms(settings.outbox_log)
