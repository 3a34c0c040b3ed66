"""The SLA context for the running process: configured policies plus the stored calendar.

The calendar is read from the database at most once a minute, and at once
after an admin edits it in this process; other processes catch up within a
minute.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cases import sla, timers
from cases.calendar_store import load_calendar
from cases.lifecycle import SlaContext

REFRESH_SECONDS = 60


def load_policy_file(path: Path | None) -> dict[str, sla.Policy]:
    if path is None:
        return dict(sla.DEFAULT_POLICIES)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read SLA policy file {path}: {exc}") from exc
    return sla.load_policies(data)


class SlaProvider:
    def __init__(self, policies: dict[str, sla.Policy], ladder: timers.Ladder | None = None):
        self.policies = policies
        self.ladder = ladder or timers.Ladder()
        self._context: SlaContext | None = None
        self._loaded_at = 0.0

    async def get(self) -> SlaContext:
        if self._context is None or time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self._context = SlaContext(
                policies=self.policies, calendar=await load_calendar(), ladder=self.ladder
            )
            self._loaded_at = time.monotonic()
        return self._context

    def invalidate(self) -> None:
        self._context = None
