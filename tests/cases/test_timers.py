"""The timer ladder as plain functions: which clocks run, which step is due, when to look next."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cases import states as s
from cases import timers
from cases.sla import SHANGHAI

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)
LADDER = timers.Ladder()


def dispatched(**extra):
    case = {
        "status": s.DISPATCHED,
        "created_at": T0,
        "dispatched_at": T0,
        "reply_started_at": T0,
        "sign_due": T0 + timedelta(hours=8),
        "contact_due": T0 + timedelta(hours=8),
        "reply_due": T0 + timedelta(hours=80),
        "timer_marks": {},
    }
    case.update(extra)
    return case


def steps(case, now):
    return [(d.stage, d.step) for d in timers.due_steps(case, now, LADDER)]


def test_nothing_is_due_before_three_quarters_of_the_budget():
    assert steps(dispatched(), T0 + timedelta(hours=5, minutes=59)) == []


def test_the_sign_clock_warns_at_three_quarters_and_turns_red_at_the_deadline():
    assert steps(dispatched(), T0 + timedelta(hours=6)) == [("sign", "warn")]
    assert steps(dispatched(), T0 + timedelta(hours=8)) == [("sign", "overdue")]


def test_a_late_sweep_takes_only_the_highest_step_and_names_the_ones_passed_over():
    [due] = timers.due_steps(dispatched(), T0 + timedelta(hours=11), LADDER)
    assert (due.stage, due.step, due.skipped) == ("sign", "supervise", ("warn", "overdue"))


def test_a_step_once_marked_is_not_due_again():
    case = dispatched()
    due = timers.due_steps(case, T0 + timedelta(hours=6), LADDER)
    case["timer_marks"] = timers.mark({}, due)
    assert steps(case, T0 + timedelta(hours=7)) == []
    assert steps(case, T0 + timedelta(hours=8)) == [("sign", "overdue")]


def test_a_moved_deadline_starts_its_ladder_afresh():
    case = dispatched(status=s.IN_PROGRESS, signed_at=T0, contacted_at=T0)
    case["timer_marks"] = timers.mark({}, timers.due_steps(case, T0 + timedelta(hours=61), LADDER))
    assert steps(case, T0 + timedelta(hours=62)) == []
    case["reply_due"] = T0 + timedelta(hours=160)  # an approved extension
    assert steps(case, T0 + timedelta(hours=62)) == []
    assert steps(case, T0 + timedelta(hours=120)) == [("reply", "warn")]


def test_only_the_reply_clock_climbs_to_escalation():
    case = dispatched(status=s.IN_PROGRESS, signed_at=T0, contacted_at=T0)
    assert steps(case, T0 + timedelta(hours=160)) == [("reply", "escalate")]
    case = dispatched()
    # sign stops at 督办; the reply clock (80 h) is not even warned at 20 h
    assert steps(case, T0 + timedelta(hours=20)) == [("sign", "supervise")]


def test_the_centres_own_clocks_stop_at_overdue():
    received = {"status": s.RECEIVED, "created_at": T0, "accept_due": T0 + timedelta(hours=2)}
    assert steps(received, T0 + timedelta(days=3)) == [("accept", "overdue")]
    replied = {"status": s.REPLIED, "replied_at": T0, "callback_due": T0 + timedelta(days=1)}
    assert steps(replied, T0 + timedelta(days=9)) == [("callback", "overdue")]


def test_a_pending_extension_request_runs_the_centres_ruling_clock():
    case = dispatched(status=s.IN_PROGRESS, signed_at=T0, contacted_at=T0, extension_requested_days=3,
                      extension_requested_at=T0, extension_due=T0 + timedelta(hours=4))
    assert ("extension", "overdue") in steps(case, T0 + timedelta(hours=4))


@pytest.mark.parametrize("field,limit", [("rehandle_count", 3), ("return_count", 3)])
def test_counts_escalate_once(field, limit):
    case = {"status": s.PENDING_DISPATCH, field: limit - 1}
    assert steps(case, T0) == []
    case[field] = limit
    stage = "rehandle" if field == "rehandle_count" else "returns"
    assert steps(case, T0) == [(stage, "escalate")]
    case["timer_marks"] = timers.mark({}, timers.due_steps(case, T0, LADDER))
    assert steps(case, T0) == []


def test_closed_cases_have_no_clock_and_no_light():
    assert timers.schedule({"status": s.CLOSED, "rehandle_count": 5}, T0, LADDER) == (None, "")


def test_the_schedule_is_the_next_untaken_step_and_the_light_follows_the_steps_taken():
    case = dispatched()
    assert timers.schedule(case, T0, LADDER) == (T0 + timedelta(hours=6), "green")
    case["timer_marks"] = timers.mark({}, timers.due_steps(case, T0 + timedelta(hours=6), LADDER))
    assert timers.schedule(case, T0, LADDER) == (T0 + timedelta(hours=8), "yellow")
    case["timer_marks"] = timers.mark(case["timer_marks"], timers.due_steps(case, T0 + timedelta(hours=8), LADDER))
    assert timers.schedule(case, T0, LADDER) == (T0 + timedelta(hours=10), "red")


def test_a_pending_count_escalation_is_due_now():
    assert timers.schedule({"status": s.IN_PROGRESS, "rehandle_count": 3}, T0, LADDER)[0] == T0


def test_the_ladder_refuses_shares_out_of_order():
    with pytest.raises(ValueError):
        timers.Ladder(warn_share=1.2)
    with pytest.raises(ValueError):
        timers.Ladder(supervise_share=2.5, escalate_share=2.0)


def test_the_window_tiers_put_someone_on_site_within_half_an_hour_and_close_simple_matters_the_same_day():
    from cases import sla

    policy = sla.DEFAULT_POLICIES["window_simple"]
    due = sla.stage_deadlines(policy, T0, sla.WorkCalendar())
    assert due["contact"].at == T0 + timedelta(minutes=30)
    assert due["reply"].at == datetime(2026, 11, 25, 23, 59, 59, tzinfo=SHANGHAI)
    case = dispatched(status=s.IN_PROGRESS, signed_at=T0, sign_due=due["sign"].at,
                      contact_due=due["contact"].at, reply_due=due["reply"].at)
    assert steps(case, T0 + timedelta(minutes=30)) == [("contact", "overdue")]
    complex_due = sla.stage_deadlines(sla.DEFAULT_POLICIES["window_complex"], T0, sla.WorkCalendar())
    assert complex_due["reply"].at == datetime(2026, 12, 2, 9, 0, tzinfo=SHANGHAI)  # 5 working days
