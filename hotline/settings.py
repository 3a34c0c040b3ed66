"""Settings, read from the environment only, with embedded defaults.

With nothing set the system runs on a SQLite file in the current directory,
without Redis and without a Twilio account.
"""

from __future__ import annotations

import os
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


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {raw!r}")
    return value


def _positive(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


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
            secure_cookies=public.startswith("https://"),
            routing_threshold=_float(env, "HOTLINE_ROUTING_THRESHOLD", 0.75),
            auto_route=env.get("HOTLINE_AUTO_ROUTE", "1") not in ("0", "false", "no"),
            sla_policies_file=Path(env["HOTLINE_SLA_POLICIES"]) if env.get("HOTLINE_SLA_POLICIES") else None,
            warn_share=_float(env, "HOTLINE_WARN_SHARE", 0.75),
            sweep_seconds=_positive(env, "HOTLINE_SWEEP_SECONDS", 30.0),
            sweep_batch=int(_positive(env, "HOTLINE_SWEEP_BATCH", 50)),
            outbox_log=Path(env.get("HOTLINE_OUTBOX_LOG", "outbox.log")),
            embedded_sweep=env.get("HOTLINE_EMBEDDED_SWEEP", "1") not in ("0", "false", "no"),
        )

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)
