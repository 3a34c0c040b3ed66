"""The periodic pass: one failing part never stops the others."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import hotline.partners
from hotline.jobs import Services, tick


async def test_a_failing_part_of_the_pass_does_not_stop_the_deadline_sweep(app, settings, monkeypatch):
    async def partner_down(*args, **kwargs):
        raise ConnectionError("partner hotline unreachable")

    monkeypatch.setattr(hotline.partners, "deliver_pending", partner_down)
    services = Services.build(settings, sla=app.state.sla)

    out = await tick(services, now=datetime.now(timezone.utc) - timedelta(days=1))

    assert out["handoffs"] == "failed"
    assert isinstance(out["sweep"], dict) and "acted" in out["sweep"]
    assert isinstance(out["outbox"], dict)
