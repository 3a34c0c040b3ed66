"""Database configuration and migrations.

One tortoise app label, ``hotline``, gathers the models of every package; the
migrations ship inside this package so a plain ``pip install .`` can migrate.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

from hotline.settings import Settings

MODEL_MODULES = ["cases.models", "routing.models", "hotline.models"]


def _sqlite_datetime(value: datetime) -> str:
    # SQLite compares datetimes as text. tortoise writes created rows in the
    # configured zone (+08:00) but updates and filter values as given (often
    # +00:00), and text in two zones does not sort by time; one zone does.
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.isoformat(" ")


# After tortoise's SQLite executor, which registers its own adapter on import.
import tortoise.backends.sqlite.executor  # noqa: E402,F401

sqlite3.register_adapter(datetime, _sqlite_datetime)


class _NoResetConnection(asyncpg.Connection):
    """A pooled connection that skips asyncpg's reset query on release.

    The reset (RESET ALL, UNLISTEN, advisory unlock …) is a round trip per
    query outside a transaction; this application keeps no session state on a
    connection (no SET, LISTEN, advisory locks or held cursors), so it is pure
    overhead on the intake path.
    """

    def get_reset_query(self) -> str:
        return ""


def _connection(database_url: str) -> str | dict[str, Any]:
    if not database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return database_url
    config = expand_db_url(database_url)
    config["credentials"]["connection_class"] = _NoResetConnection
    return config


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {
            "hotline": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "hotline.migrations",
            }
        },
        "use_tz": True,
        "timezone": "Asia/Shanghai",
    }


async def migrate(settings: Settings) -> None:
    """Bring the schema up to date; safe to run repeatedly (Procfile ``release``)."""
    await tortoise_migrate(config=tortoise_config(settings.database_url))
    await Tortoise.close_connections()
