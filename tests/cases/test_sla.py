"""SLA deadlines on the real PRC calendar.

Every 2026 date asserted here was checked against chinesecalendar 1.11
(`chinese_calendar.is_workday`). Its 2026 schedule matches the published one:
  Spring Festival: Sat 02-14 make-up workday, 02-15..02-23 off.
  Mid-Autumn / National Day: Sat 09-19 a normal weekend day, Sun 09-20 make-up
  workday, 09-25..09-27 off, 10-01..10-07 off, Sat 10-10 make-up workday,
  Sun 10-11 off.
The package has no data for 2027.
"""

from datetime import date, datetime, timedelta, timezone

import chinese_calendar
import pytest

from cases.sla import (
    CALLBACK_DELAY,
    DEFAULT_POLICIES,
    MAX_EXTENSION,
    RETURN_WINDOW,
    SHANGHAI,
    Deadline,
    Limit,
    Policy,
    TimeUnit,
    WorkCalendar,
    elapsed_share,
    extend,
    load_policies,
    stage_deadlines,
    within,
)


def sh(y, m, d, h=0, mi=0):
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


WD = TimeUnit.WORKING_DAYS
CAL = WorkCalendar()

SPRING_FESTIVAL_DISPATCH = sh(2026, 2, 13, 15)  # Friday
MID_AUTUMN_DISPATCH = sh(2026, 9, 18, 10)  # Friday


def test_the_calendar_facts_these_tests_rely_on_are_what_the_package_says():
    assert chinese_calendar.is_workday(date(2026, 2, 14))
    assert not any(chinese_calendar.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert not chinese_calendar.is_workday(date(2026, 9, 19))
    assert chinese_calendar.is_workday(date(2026, 9, 20))
    assert not chinese_calendar.is_workday(date(2026, 9, 25))
    assert not any(chinese_calendar.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 10))
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))


# --- Spring Festival 2026 -------------------------------------------------


def test_a_case_dispatched_on_friday_before_spring_festival_is_due_one_workday_later_on_the_makeup_saturday():
    assert CAL.add(SPRING_FESTIVAL_DISPATCH, Limit(1, WD)) == Deadline(sh(2026, 2, 14, 15), False)


def test_a_case_dispatched_on_friday_before_spring_festival_is_due_two_workdays_later_after_the_holiday():
    assert CAL.add(SPRING_FESTIVAL_DISPATCH, Limit(2, WD)) == Deadline(sh(2026, 2, 24, 15), False)


def test_it_runs_the_general_reply_limit_in_calendar_days_straight_through_the_holiday():
    deadlines = stage_deadlines(DEFAULT_POLICIES["general"], SPRING_FESTIVAL_DISPATCH, CAL)
    assert deadlines == {
        "sign": Deadline(sh(2026, 2, 14, 15), False),
        "contact": Deadline(sh(2026, 2, 14, 15), False),
        "reply": Deadline(sh(2026, 2, 20, 15), False),
    }


def test_the_return_window_from_a_spring_festival_dispatch_ends_on_the_first_day_back():
    assert CAL.add(SPRING_FESTIVAL_DISPATCH, RETURN_WINDOW).at == sh(2026, 2, 24, 15)
    assert within(sh(2026, 2, 20, 9), SPRING_FESTIVAL_DISPATCH, RETURN_WINDOW, CAL)
    assert within(sh(2026, 2, 24, 15), SPRING_FESTIVAL_DISPATCH, RETURN_WINDOW, CAL)
    assert not within(sh(2026, 2, 24, 15, 1), SPRING_FESTIVAL_DISPATCH, RETURN_WINDOW, CAL)


def test_a_case_opened_during_the_holiday_starts_its_clock_on_the_first_day_back():
    assert CAL.add(sh(2026, 2, 16, 10), Limit(1, WD)).at == sh(2026, 2, 25, 0)


# --- Mid-Autumn and National Day 2026 ------------------------------------


def test_a_case_dispatched_on_friday_18_september_is_due_on_the_makeup_sunday():
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(1, WD)) == Deadline(sh(2026, 9, 20, 10), False)


def test_a_case_dispatched_on_friday_18_september_is_due_two_workdays_later_on_monday():
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(2, WD)).at == sh(2026, 9, 21, 10)


def test_it_skips_the_mid_autumn_friday():
    # Workdays after 09-18: 20, 21, 22, 23, 24, then 28 (25-27 are Mid-Autumn).
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(5, WD)).at == sh(2026, 9, 24, 10)
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(6, WD)).at == sh(2026, 9, 28, 10)


def test_ten_workdays_from_18_september_cross_national_day():
    # 20, 21, 22, 23, 24, 28, 29, 30, 10-08, 10-09.
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(10, WD)) == Deadline(sh(2026, 10, 9, 10), False)


def test_the_eleventh_workday_is_the_makeup_saturday_after_national_day():
    assert CAL.add(MID_AUTUMN_DISPATCH, Limit(11, WD)).at == sh(2026, 10, 10, 10)


def test_a_case_opened_on_a_normal_sunday_is_due_at_the_end_of_monday():
    assert CAL.add(sh(2026, 3, 8, 10), Limit(1, WD)).at == sh(2026, 3, 10, 0)


def test_a_case_opened_on_the_saturday_before_a_makeup_sunday_starts_its_clock_on_sunday():
    assert CAL.add(sh(2026, 9, 19, 10), Limit(1, WD)).at == sh(2026, 9, 21, 0)


# --- 2027: not yet published ---------------------------------------------


def test_a_deadline_landing_in_unpublished_2027_is_provisional_and_counts_monday_to_friday():
    # 29, 30, 31 Dec, Fri 1 Jan (guessed workday), Mon 4 Jan.
    assert CAL.add(sh(2026, 12, 28, 10), Limit(5, WD)) == Deadline(sh(2027, 1, 4, 10), True)


def test_a_deadline_that_stays_in_2026_is_not_provisional():
    assert CAL.add(sh(2026, 12, 28, 10), Limit(3, WD)) == Deadline(sh(2026, 12, 31, 10), False)


def test_entering_2027_makes_the_deadline_final_and_new_years_day_moves_it():
    entered = WorkCalendar(overrides={date(2027, 1, 1): False}, override_years=[2027])
    assert entered.add(sh(2026, 12, 28, 10), Limit(5, WD)) == Deadline(sh(2027, 1, 5, 10), False)


def test_it_knows_which_days_are_provisional():
    assert CAL.is_provisional(date(2027, 1, 4))
    assert not CAL.is_provisional(date(2026, 12, 31))
    assert not WorkCalendar(override_years=[2027]).is_provisional(date(2027, 1, 4))
    assert not WorkCalendar(overrides={date(2027, 1, 4): True}).is_provisional(date(2027, 1, 4))


def test_a_case_opened_in_2027_is_provisional_even_for_a_short_limit():
    assert CAL.add(sh(2027, 3, 1, 9), Limit(1, WD)) == Deadline(sh(2027, 3, 2, 9), True)


# --- overrides -----------------------------------------------------------


def test_overrides_win_over_the_package_for_a_published_year():
    no_makeup_saturday = WorkCalendar(overrides={date(2026, 2, 14): False})
    assert not no_makeup_saturday.is_workday(date(2026, 2, 14))
    assert no_makeup_saturday.add(SPRING_FESTIVAL_DISPATCH, Limit(1, WD)).at == sh(2026, 2, 24, 15)

    office_open_on_monday = WorkCalendar(overrides={date(2026, 2, 16): True})
    assert office_open_on_monday.add(SPRING_FESTIVAL_DISPATCH, Limit(2, WD)).at == sh(2026, 2, 16, 15)


def test_it_refuses_to_scan_forever_when_overrides_leave_no_workdays():
    day, all_off = date(2027, 1, 1), {}
    while day < date(2030, 6, 1):
        all_off[day] = False
        day += timedelta(days=1)
    calendar = WorkCalendar(overrides=all_off)
    with pytest.raises(ValueError, match="working days"):
        calendar.add(sh(2026, 12, 31, 10), Limit(1, WD))


def test_it_rejects_a_datetime_as_an_override_key():
    with pytest.raises(ValueError, match="date"):
        WorkCalendar(overrides={datetime(2026, 2, 14): False})


# --- elapsed-time units --------------------------------------------------


def test_an_urgent_case_must_be_signed_within_30_minutes():
    deadlines = stage_deadlines(DEFAULT_POLICIES["urgent"], SPRING_FESTIVAL_DISPATCH, CAL)
    assert deadlines["sign"] == Deadline(sh(2026, 2, 13, 15, 30), False)
    assert deadlines["contact"].at == sh(2026, 2, 13, 17)
    assert deadlines["reply"].at == sh(2026, 2, 14, 15)


def test_hours_and_minutes_run_through_holidays():
    assert CAL.add(sh(2026, 2, 16, 9), Limit.parse("24h")).at == sh(2026, 2, 17, 9)
    assert CAL.add(sh(2026, 10, 1, 23, 50), Limit.parse("30min")).at == sh(2026, 10, 2, 0, 20)


def test_a_consult_case_has_no_first_contact_deadline_and_replies_in_workdays():
    deadlines = stage_deadlines(DEFAULT_POLICIES["consult"], SPRING_FESTIVAL_DISPATCH, CAL)
    assert deadlines["contact"] is None
    assert deadlines["reply"].at == sh(2026, 2, 24, 15)


def test_the_callback_is_due_the_day_after_the_reply():
    assert CAL.add(sh(2026, 2, 20, 11), CALLBACK_DELAY).at == sh(2026, 2, 21, 11)


# --- time zones ----------------------------------------------------------


def test_it_counts_days_in_shanghai_and_returns_shanghai_time():
    deadline = CAL.add(datetime(2026, 2, 13, 7, tzinfo=timezone.utc), Limit(1, WD))
    assert deadline.at == sh(2026, 2, 14, 15)
    assert deadline.at.tzinfo is SHANGHAI


def test_a_utc_friday_evening_is_already_the_makeup_saturday_in_shanghai():
    # 17:00 UTC Friday = 01:00 Saturday 02-14 in Shanghai, a workday, so the
    # next workday is the first one after Spring Festival.
    deadline = CAL.add(datetime(2026, 2, 13, 17, tzinfo=timezone.utc), Limit(1, WD))
    assert deadline.at == sh(2026, 2, 24, 1)


def test_elapsed_results_are_in_shanghai_too():
    deadline = CAL.add(datetime(2026, 2, 13, 7, tzinfo=timezone.utc), Limit.parse("2h"))
    assert deadline.at.tzinfo is SHANGHAI
    assert (deadline.at.hour, deadline.at.minute) == (17, 0)


def test_it_rejects_naive_datetimes():
    naive = datetime(2026, 2, 13, 15)
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add(naive, Limit(1, WD))
    with pytest.raises(ValueError, match="timezone-aware"):
        within(naive, SPRING_FESTIVAL_DISPATCH, RETURN_WINDOW, CAL)
    with pytest.raises(ValueError, match="timezone-aware"):
        elapsed_share(naive, SPRING_FESTIVAL_DISPATCH, sh(2026, 2, 20, 15))


# --- Limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, limit",
    [
        ("30min", Limit(30, TimeUnit.MINUTES)),
        ("2h", Limit(2, TimeUnit.HOURS)),
        ("7d", Limit(7, TimeUnit.CALENDAR_DAYS)),
        ("1wd", Limit(1, TimeUnit.WORKING_DAYS)),
    ],
)
def test_limit_parse_round_trips(text, limit):
    assert Limit.parse(text) == limit
    assert str(limit) == text


@pytest.mark.parametrize("junk", ["", "0d", "-1h", "3x", "d", "1.5h", "wd1", "1 wd", None])
def test_limit_parse_rejects_junk(junk):
    with pytest.raises(ValueError):
        Limit.parse(junk)


def test_a_limit_must_be_a_positive_integer():
    with pytest.raises(ValueError):
        Limit(0, TimeUnit.HOURS)
    with pytest.raises(ValueError):
        Limit(True, TimeUnit.HOURS)
    with pytest.raises(ValueError):
        Limit(1, "fortnights")
    assert Limit(1, "hours").unit is TimeUnit.HOURS


# --- policies ------------------------------------------------------------


def test_the_default_table_matches_the_service_standard():
    table = {
        kind: (p.label, str(p.sign), p.contact and str(p.contact), str(p.reply))
        for kind, p in DEFAULT_POLICIES.items()
    }
    assert table == {
        "urgent": ("紧急", "30min", "2h", "24h"),
        "utilities": ("水电气热", "1h", "4h", "24h"),
        "general": ("一般", "1wd", "1wd", "7d"),
        "complex": ("复杂疑难", "1wd", "1wd", "15d"),
        "consult": ("咨询转办", "1wd", None, "2wd"),
        "window_simple": ("办不成事·简单", "30min", "30min", "1eod"),
        "window_complex": ("办不成事·复杂", "30min", "30min", "5wd"),
        "window_special": ("办不成事·特殊", "30min", "30min", "10wd"),
        "window_refusal": ("办不成事·不予办理", "30min", "30min", "3wd"),
    }


def test_load_policies_reads_config_and_falls_back_to_defaults_for_missing_kinds():
    policies = load_policies({"general": {"label": "一般", "sign": "2h", "contact": "1wd", "reply": "5wd"}})
    assert policies["general"] == Policy("general", "一般", Limit.parse("2h"), Limit.parse("1wd"), Limit.parse("5wd"))
    assert policies["urgent"] == DEFAULT_POLICIES["urgent"]


def test_load_policies_lets_a_known_kind_override_one_field_and_drop_contact():
    policies = load_policies({"complex": {"contact": None}})
    assert policies["complex"].contact is None
    assert policies["complex"].reply == DEFAULT_POLICIES["complex"].reply


def test_load_policies_accepts_a_new_kind():
    policies = load_policies({"petition": {"label": "信访", "sign": "1wd", "reply": "30d"}})
    assert policies["petition"] == Policy("petition", "信访", Limit(1, WD), None, Limit(30, TimeUnit.CALENDAR_DAYS))


@pytest.mark.parametrize(
    "data, kind, field",
    [
        ({"general": {"reply": "7x"}}, "general", "reply"),
        ({"urgent": {"sign": "0min"}}, "urgent", "sign"),
        ({"urgent": {"sign": None}}, "urgent", "sign"),
        ({"general": {"label": ""}}, "general", "label"),
        ({"general": {"replay": "7d"}}, "general", "replay"),
        ({"petition": {"label": "信访", "sign": "1wd"}}, "petition", "reply"),
    ],
)
def test_load_policies_errors_name_the_kind_and_field(data, kind, field):
    with pytest.raises(ValueError) as excinfo:
        load_policies(data)
    assert kind in str(excinfo.value) and field in str(excinfo.value)


def test_load_policies_rejects_a_kind_that_is_not_a_mapping():
    with pytest.raises(ValueError, match="general"):
        load_policies({"general": "7d"})


# --- extensions, windows, traffic light ----------------------------------


def test_an_approved_extension_moves_the_reply_deadline_in_workdays():
    # Reply due Friday 09-18 10:00; ten more workdays land after National Day.
    assert extend(MID_AUTUMN_DISPATCH, MAX_EXTENSION, CAL) == Deadline(sh(2026, 10, 9, 10), False)


def test_an_extension_beyond_ten_workdays_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        extend(MID_AUTUMN_DISPATCH, Limit(11, WD), CAL)


def test_within_is_true_before_the_deadline_and_false_after():
    start = sh(2026, 3, 2, 9)  # Monday
    assert within(sh(2026, 3, 3, 9), start, RETURN_WINDOW, CAL)
    assert within(sh(2026, 3, 4, 9), start, RETURN_WINDOW, CAL)
    assert not within(sh(2026, 3, 4, 9, 1), start, RETURN_WINDOW, CAL)


def test_elapsed_share_reports_the_budget_used():
    start, due = sh(2026, 3, 2, 0), sh(2026, 3, 2, 10)
    assert elapsed_share(start, start, due) == 0.0
    assert elapsed_share(sh(2026, 3, 2, 7, 30), start, due) == pytest.approx(0.75)
    assert elapsed_share(due, start, due) == 1.0
    assert elapsed_share(sh(2026, 3, 2, 12), start, due) == pytest.approx(1.2)
    assert elapsed_share(sh(2026, 3, 1, 12), start, due) == 0.0


def test_elapsed_share_needs_a_due_after_start():
    with pytest.raises(ValueError):
        elapsed_share(sh(2026, 3, 2, 1), sh(2026, 3, 2, 10), sh(2026, 3, 2, 10))
