"""Database configuration and migrations.

One tortoise app label, ``hotline``, gathers the models of every package; the
migrations ship inside this package so a plain ``pip install .`` can migrate.
"""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

from hotline.settings import Settings

MODEL_MODULES = ["cases.models", "hotline.models"]


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": database_url},
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
