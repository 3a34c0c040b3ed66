"""Settings, read from the environment only, with embedded defaults.

With nothing set the system runs on a SQLite file in the current directory,
without Redis and without a Twilio account.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path | None:
    # Only meaningful in a source checkout: ../shared/data beside the repository.
    candidate = REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def sqlite_url(path: str | Path) -> str:
    # busy_timeout lets concurrent writers wait instead of failing at once.
    return f"sqlite://{Path(path).resolve()}?busy_timeout=5000"


def _number(env: dict[str, str], name: str, default: float, ok, says: str) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise ValueError(f"{name} must be {says}, got {raw!r}")
    return value


def _float(env: dict[str, str], name: str, default: float) -> float:
    return _number(env, name, default, lambda v: 0 <= v <= 1, "a number between 0 and 1")


def _positive(env: dict[str, str], name: str, default: float) -> float:
    return _number(env, name, default, lambda v: v > 0, "a positive number")


def parse_working_hours(text: str) -> tuple[int, int]:
    """"08:30-17:30" as minutes after midnight; the end may be 24:00."""
    match = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})-([0-9]{1,2}):([0-9]{2})", text.strip())
    if match:
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 < 60 and m2 < 60 and start < end <= 24 * 60:
            return start, end
    raise ValueError(f"HOTLINE_WORKING_HOURS must look like 08:30-17:30, got {text!r}")


def _working_hours(text: str) -> str:
    parse_working_hours(text)
    return text.strip()


def _callback_hours(text: str) -> str:
    try:
        parse_working_hours(text)
    except ValueError:
        raise ValueError(f"HOTLINE_CALLBACK_HOURS must look like 09:00-20:00, got {text!r}") from None
    return text.strip()


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None = None
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    region: str = "4301"
    data_dir: Path | None = None
    storage_dir: Path = Path("attachments")
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    # Voice (hotline/web/twilio_voice.py): speech recognition and spoken prompts.
    voice_language: str = "cmn-CN"
    voice_say_language: str = "zh-CN"
    voice_say_voice: str = "alice"
    # Agents answer queued calls in these hours (Asia/Shanghai) on workdays.
    working_hours: str = "08:30-17:30"
    queue_max_wait_seconds: int = 120
    voicemail_max_seconds: int = 120
    recording_retention_days: int = 180
    # Browser softphone (Twilio Voice JS SDK) tokens.
    twilio_api_key: str | None = None
    twilio_api_secret: str | None = None
    twilio_twiml_app_sid: str | None = None
    session_max_age: int = 8 * 3600
    secure_cookies: bool = False
    max_body_bytes: int = 64 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    sla_policies_file: Path | None = None
    routing_threshold: float = 0.75
    auto_route: bool = True
    # Timers: the yellow light's share of each budget, how often the sweep runs
    # and how many cases one claim takes.
    warn_share: float = 0.75
    sweep_seconds: float = 30.0
    sweep_batch: int = 50
    # Without Redis the web process runs the periodic work itself.
    embedded_sweep: bool = True
    # Where the local SMS backend writes messages when Twilio is not configured.
    outbox_log: Path = Path("outbox.log")
    # Citizens' public forms: accepted submissions per IP and per phone, and failed
    # case look-ups per IP and per case number, within one window of seconds.
    citizen_submit_limit: int = 5
    citizen_lookup_limit: int = 10
    citizen_rate_window: float = 600.0
    # This centre's code in partner hotlines' directories (X-Hotline-Sender on hand-offs).
    centre_code: str = "12345-4301"
    # 回访 (hotline/callbacks.py): automatic survey attempts, one a day, before the
    # callback is recorded as unreachable; and the hours (Asia/Shanghai) in which
    # citizens may be texted or called for it.
    callback_attempts: int = 3
    callback_hours: str = "09:00-20:00"
    secret_key_is_ephemeral: bool = field(default=False, compare=False)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        secret = env.get("SECRET_KEY", "")
        ephemeral = not secret
        if ephemeral:
            # Safe default: a random key means sessions do not survive a restart,
            # which is better than a guessable key shipped in the source.
            secret = secrets.token_urlsafe(32)
        data_dir = env.get("HOTLINE_DATA_DIR")
        region = env.get("HOTLINE_REGION", "4301").strip()
        if not region.isdigit() or len(region) not in (2, 4, 6):
            raise ValueError(
                f"HOTLINE_REGION must be a division code of 2, 4 or 6 digits, got {region!r}"
            )
        public = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        return cls(
            database_url=env.get("DATABASE_URL") or sqlite_url("hotline.sqlite3"),
            redis_url=env.get("REDIS_URL") or None,
            secret_key=secret,
            secret_key_is_ephemeral=ephemeral,
            public_base_url=public,
            region=region,
            data_dir=Path(data_dir) if data_dir else _default_data_dir(),
            storage_dir=Path(env.get("HOTLINE_STORAGE_DIR", "attachments")),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_from_number=env.get("TWILIO_FROM_NUMBER") or None,
            voice_language=env.get("HOTLINE_VOICE_LANGUAGE") or "cmn-CN",
            voice_say_language=env.get("HOTLINE_VOICE_SAY_LANGUAGE") or "zh-CN",
            voice_say_voice=env.get("HOTLINE_VOICE_SAY_VOICE") or "alice",
            working_hours=_working_hours(env.get("HOTLINE_WORKING_HOURS") or "08:30-17:30"),
            queue_max_wait_seconds=int(_positive(env, "HOTLINE_QUEUE_MAX_WAIT_SECONDS", 120)),
            voicemail_max_seconds=int(_positive(env, "HOTLINE_VOICEMAIL_MAX_SECONDS", 120)),
            recording_retention_days=int(_positive(env, "HOTLINE_RECORDING_RETENTION_DAYS", 180)),
            twilio_api_key=env.get("TWILIO_API_KEY") or None,
            twilio_api_secret=env.get("TWILIO_API_SECRET") or None,
            twilio_twiml_app_sid=env.get("TWILIO_TWIML_APP_SID") or None,
            secure_cookies=public.startswith("https://"),
            routing_threshold=_float(env, "HOTLINE_ROUTING_THRESHOLD", 0.75),
            auto_route=env.get("HOTLINE_AUTO_ROUTE", "1") not in ("0", "false", "no"),
            sla_policies_file=Path(env["HOTLINE_SLA_POLICIES"]) if env.get("HOTLINE_SLA_POLICIES") else None,
            warn_share=_float(env, "HOTLINE_WARN_SHARE", 0.75),
            sweep_seconds=_positive(env, "HOTLINE_SWEEP_SECONDS", 30.0),
            sweep_batch=int(_positive(env, "HOTLINE_SWEEP_BATCH", 50)),
            outbox_log=Path(env.get("HOTLINE_OUTBOX_LOG", "outbox.log")),
            embedded_sweep=env.get("HOTLINE_EMBEDDED_SWEEP", "1") not in ("0", "false", "no"),
            centre_code=env.get("HOTLINE_CENTRE_CODE", "").strip() or f"12345-{region}",
            callback_attempts=max(1, int(_positive(env, "HOTLINE_CALLBACK_ATTEMPTS", 3))),
            callback_hours=_callback_hours(env.get("HOTLINE_CALLBACK_HOURS") or "09:00-20:00"),
            citizen_submit_limit=max(1, int(_positive(env, "HOTLINE_CITIZEN_SUBMIT_LIMIT", 5))),
            citizen_lookup_limit=max(1, int(_positive(env, "HOTLINE_CITIZEN_LOOKUP_LIMIT", 10))),
            citizen_rate_window=_positive(env, "HOTLINE_CITIZEN_RATE_WINDOW", 600.0),
        )

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)
