"""Service-level deadlines for 12345 hotline cases.

Working-day limits follow the PRC statutory calendar, where legal holidays
are days off and 调休 make-up days can put work on a Saturday or Sunday.
Pure functions only: admin calendar entries and policy config are passed in.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A working-day scan longer than this means the calendar has no workdays
# left (e.g. an override table marking a whole year off), not a long limit.
_SCAN_CAP_DAYS = 3 * 366


class TimeUnit(str, Enum):
    # Seconds exist for drills and tests of the timers; real policies use the rest.
    SECONDS = "seconds"
    HOURS = "hours"
    MINUTES = "minutes"
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"
    # 当日办结: the end of the N-th calendar day, counting the start day as the first.
    END_OF_DAY = "end_of_day"


_SUFFIX = {
    TimeUnit.SECONDS: "s",
    TimeUnit.MINUTES: "min",
    TimeUnit.HOURS: "h",
    TimeUnit.CALENDAR_DAYS: "d",
    TimeUnit.WORKING_DAYS: "wd",
    TimeUnit.END_OF_DAY: "eod",
}
_UNIT_BY_SUFFIX = {suffix: unit for unit, suffix in _SUFFIX.items()}
_LIMIT_RE = re.compile(r"(\d+)(s|min|h|d|wd|eod)")

# Units that are plain elapsed time and therefore run through holidays.
_ELAPSED = {
    TimeUnit.SECONDS: timedelta(seconds=1),
    TimeUnit.MINUTES: timedelta(minutes=1),
    TimeUnit.HOURS: timedelta(hours=1),
    TimeUnit.CALENDAR_DAYS: timedelta(days=1),
}


@dataclass(frozen=True)
class Limit:
    amount: int
    unit: TimeUnit

    def __post_init__(self) -> None:
        # bool is an int subclass; Limit(True, ...) is always a bug.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError(f"limit amount must be an integer, got {self.amount!r}")
        if self.amount <= 0:
            raise ValueError(f"limit amount must be positive, got {self.amount}")
        # Accept the plain string value so config and ORM rows can pass "hours".
        object.__setattr__(self, "unit", TimeUnit(self.unit))

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Parse "30min", "2h", "7d" (calendar days) or "1wd" (working days)."""
        match = _LIMIT_RE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"invalid limit {text!r}; expected e.g. '30min', '2h', '7d', '1wd'")
        return cls(int(match.group(1)), _UNIT_BY_SUFFIX[match.group(2)])

    def __str__(self) -> str:
        return f"{self.amount}{_SUFFIX[self.unit]}"


@dataclass(frozen=True)
class Deadline:
    at: datetime
    # True when the date relied on a guessed (Mon–Fri) calendar for a year
    # nobody has published yet; it may move once the State Council announces it.
    provisional: bool


@dataclass(frozen=True)
class Policy:
    kind: str
    label: str
    sign: Limit
    contact: Limit | None
    reply: Limit


DEFAULT_POLICIES: dict[str, Policy] = {
    p.kind: p
    for p in (
        Policy("urgent", "紧急", Limit.parse("30min"), Limit.parse("2h"), Limit.parse("24h")),
        Policy("utilities", "水电气热", Limit.parse("1h"), Limit.parse("4h"), Limit.parse("24h")),
        Policy("general", "一般", Limit.parse("1wd"), Limit.parse("1wd"), Limit.parse("7d")),
        Policy("complex", "复杂疑难", Limit.parse("1wd"), Limit.parse("1wd"), Limit.parse("15d")),
        Policy("consult", "咨询转办", Limit.parse("1wd"), None, Limit.parse("2wd")),
        # 办不成事 window: someone on site (first contact) within 30 minutes, then
        # simple matters the same day, complex 5 WD, special 10 WD, a reasoned no 3 WD.
        Policy("window_simple", "办不成事·简单", Limit.parse("30min"), Limit.parse("30min"), Limit.parse("1eod")),
        Policy("window_complex", "办不成事·复杂", Limit.parse("30min"), Limit.parse("30min"), Limit.parse("5wd")),
        Policy("window_special", "办不成事·特殊", Limit.parse("30min"), Limit.parse("30min"), Limit.parse("10wd")),
        Policy("window_refusal", "办不成事·不予办理", Limit.parse("30min"), Limit.parse("30min"), Limit.parse("3wd")),
    )
}

RETURN_WINDOW = Limit(2, TimeUnit.WORKING_DAYS)
MAX_EXTENSION = Limit(10, TimeUnit.WORKING_DAYS)
CALLBACK_DELAY = Limit(1, TimeUnit.CALENDAR_DAYS)
# 首接责任制: a partner hotline confirms receipt of a hand-off within this.
HANDOFF_CONFIRM = Limit(1, TimeUnit.WORKING_DAYS)

_POLICY_FIELDS = ("label", "sign", "contact", "reply")


def load_policies(data: Mapping[str, Mapping]) -> dict[str, Policy]:
    """Build the policy table from config, e.g.
    {"general": {"label": "一般", "sign": "1wd", "contact": "1wd", "reply": "7d"}}.

    Kinds not mentioned keep their defaults; a known kind may override only
    some fields. A new kind must give label, sign and reply; its contact
    defaults to none. "contact": None means no first-contact deadline.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"policy config must be a mapping of kind -> fields, got {type(data).__name__}")
    policies = dict(DEFAULT_POLICIES)
    for kind, spec in data.items():
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"policy kind must be a non-empty string, got {kind!r}")
        if not isinstance(spec, Mapping):
            raise ValueError(f"policy {kind!r}: expected a mapping of fields, got {type(spec).__name__}")
        unknown = set(spec) - set(_POLICY_FIELDS)
        if unknown:
            raise ValueError(f"policy {kind!r}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")

        base = DEFAULT_POLICIES.get(kind)
        values = {}
        for field in _POLICY_FIELDS:
            if field in spec:
                values[field] = _policy_field(kind, field, spec[field])
            elif base is not None:
                values[field] = getattr(base, field)
            elif field == "contact":
                values[field] = None
            else:
                raise ValueError(f"policy {kind!r}: missing field {field!r}")
        policies[kind] = Policy(kind=kind, **values)
    return policies


def _policy_field(kind: str, field: str, value):
    if field == "label":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"policy {kind!r}: field 'label' must be a non-empty string, got {value!r}")
        return value
    if value is None and field == "contact":
        return None
    if isinstance(value, Limit):
        return value
    try:
        return Limit.parse(value)
    except ValueError as exc:
        raise ValueError(f"policy {kind!r}: field {field!r}: {exc}") from None


@functools.lru_cache(maxsize=None)
def _package_knows(year: int) -> bool:
    # chinese_calendar's coverage is whole years; probing once per year keeps
    # exceptions out of the day-by-day loops.
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _package_workday(d: date) -> bool | None:
    """The published schedule for d, or None if the package has no data for its year."""
    if not _package_knows(d.year):
        return None
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        return None


class WorkCalendar:
    def __init__(
        self,
        overrides: Mapping[date, bool] | None = None,
        override_years: Iterable[int] = (),
    ) -> None:
        self._overrides: dict[date, bool] = {}
        for d, is_workday in (overrides or {}).items():
            # A datetime key would never match the date lookups below.
            if not isinstance(d, date) or isinstance(d, datetime):
                raise ValueError(f"calendar override key must be a date, got {d!r}")
            self._overrides[d] = bool(is_workday)
        self._override_years = frozenset(int(y) for y in override_years)

    def is_workday(self, d: date) -> bool:
        if d in self._overrides:
            return self._overrides[d]
        published = _package_workday(d)
        if published is not None:
            return published
        return d.weekday() < 5

    def is_provisional(self, d: date) -> bool:
        # A day an admin entered explicitly is authoritative even in a year
        # that is otherwise unknown.
        if d in self._overrides or d.year in self._override_years:
            return False
        return _package_workday(d) is None

    def add(self, start: datetime, limit: Limit) -> Deadline:
        local = _to_shanghai(start, "start")
        if limit.unit == TimeUnit.END_OF_DAY:
            day = local.date() + timedelta(days=limit.amount - 1)
            end = datetime.combine(day, time(23, 59, 59), tzinfo=SHANGHAI)
            return Deadline(end, provisional=False)
        if limit.unit in _ELAPSED:
            # Arithmetic in UTC so the result is true elapsed time in any zone.
            at = start.astimezone(timezone.utc) + limit.amount * _ELAPSED[limit.unit]
            return Deadline(at.astimezone(SHANGHAI), provisional=False)
        return self._add_working_days(local, limit.amount)

    def _add_working_days(self, local: datetime, n: int) -> Deadline:
        day, clock = local.date(), local.time()
        # The start day's status shapes the result, so a guessed start counts too.
        provisional = self.is_provisional(day)
        remaining = n
        if not self.is_workday(day):
            # A case opened on a day off starts its clock at 00:00 of the next
            # workday; that day is the start, not one of the N counted days.
            clock = time(0)
            remaining += 1
        for _ in range(_SCAN_CAP_DAYS):
            day += timedelta(days=1)
            provisional = provisional or self.is_provisional(day)
            if self.is_workday(day):
                remaining -= 1
                if remaining == 0:
                    return Deadline(datetime.combine(day, clock, tzinfo=SHANGHAI), provisional)
        raise ValueError(
            f"no {n} working days within {_SCAN_CAP_DAYS} days of {local.date()}; "
            "check the calendar overrides"
        )


def stage_deadlines(policy: Policy, start: datetime, calendar: WorkCalendar) -> dict[str, Deadline | None]:
    return {
        "sign": calendar.add(start, policy.sign),
        "contact": calendar.add(start, policy.contact) if policy.contact is not None else None,
        "reply": calendar.add(start, policy.reply),
    }


def extend(deadline: datetime, limit: Limit, calendar: WorkCalendar) -> Deadline:
    """Move an approved extension's reply deadline by `limit` from the old deadline."""
    if limit.unit == MAX_EXTENSION.unit and limit.amount > MAX_EXTENSION.amount:
        raise ValueError(f"extension {limit} exceeds the maximum of {MAX_EXTENSION}")
    return calendar.add(deadline, limit)


def within(now: datetime, start: datetime, limit: Limit, calendar: WorkCalendar) -> bool:
    """Whether `now` is still inside the window; the deadline instant itself counts as inside."""
    _to_shanghai(now, "now")
    return now <= calendar.add(start, limit).at


def elapsed_share(now: datetime, start: datetime, due: datetime) -> float:
    """Share of the time budget used: 0 before start, 1 at the deadline, >1 when overdue."""
    for name, value in (("now", now), ("start", start), ("due", due)):
        _to_shanghai(value, name)
    budget = due - start
    if budget <= timedelta(0):
        raise ValueError(f"due {due.isoformat()} must be after start {start.isoformat()}")
    return max(0.0, (now - start) / budget)


def _to_shanghai(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(SHANGHAI)
