"""The dispatch catalogue (派单目录): ordered rules from a case's facts to its units.

Pure logic: the rules, the case's facts and the map of territorial units come
in as plain values, so the rule order and fallbacks are tested without a
database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where a rule sends the case: a fixed unit, or the territorial unit of the place.
LEAD_DISTRICT = "district"
LEAD_STREET = "street"


@dataclass(frozen=True)
class Rule:
    id: int
    position: int
    lead: str  # "unit:<id>", "district" or "street"
    category: str = ""  # "城乡建设" or "城乡建设/城市建设和市政管理[/城管执法]": a path prefix
    request_type: str = ""
    division_code: str = ""  # prefix of the case's street or district code
    keywords: tuple[str, ...] = ()
    co_unit_ids: tuple[int, ...] = ()
    enabled: bool = True
    note: str = ""

    @property
    def lead_unit_id(self) -> int | None:
        return int(self.lead.split(":", 1)[1]) if self.lead.startswith("unit:") else None


@dataclass(frozen=True)
class Facts:
    category: tuple[str, ...] = ()  # (l1, l2, l3), as far as known
    request_type: str = ""
    district_code: str = ""
    street_code: str = ""
    text: str = ""


@dataclass(frozen=True)
class Route:
    lead_unit_id: int | None  # None: nobody matched; the dispatcher decides
    co_unit_ids: tuple[int, ...] = ()
    rule_id: int | None = None
    via: str = "centre"  # rule / district / centre
    reason: str = ""
    keywords: tuple[str, ...] = field(default_factory=tuple)


def parse_lead(value: str) -> str:
    """Normalise a lead written by an admin; raises ValueError with the reason."""
    value = value.strip()
    if value in (LEAD_DISTRICT, LEAD_STREET):
        return value
    if value.startswith("unit:") and value[5:].isdigit() and int(value[5:]) > 0:
        return value
    raise ValueError(f"lead must be unit:<id>, district or street, got {value!r}")


def _category_matches(rule: str, category: tuple[str, ...]) -> bool:
    if not rule:
        return True
    wanted = tuple(part for part in rule.split("/") if part)
    return category[: len(wanted)] == wanted


def _place_code(facts: Facts) -> str:
    return facts.street_code or facts.district_code


def _lead_for(rule: Rule, facts: Facts, territory: dict[str, int]) -> int | None:
    if rule.lead_unit_id is not None:
        return rule.lead_unit_id
    if rule.lead == LEAD_STREET and facts.street_code:
        return territory.get(facts.street_code)
    if rule.lead in (LEAD_DISTRICT, LEAD_STREET) and facts.district_code:
        # A street-level rule without a known street still reaches the district.
        return territory.get(facts.district_code)
    return None


def route(rules: list[Rule], facts: Facts, territory: dict[str, int]) -> Route:
    """First matching rule wins; then the district government of the place; then the centre.

    Functional matters are never pushed down to a street unless a rule says
    ``street``: the district fallback stops at the district.
    """
    text = facts.text
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if not rule.enabled:
            continue
        if not _category_matches(rule.category, facts.category):
            continue
        if rule.request_type and rule.request_type != facts.request_type:
            continue
        if rule.division_code and not _place_code(facts).startswith(rule.division_code):
            continue
        hits = tuple(k for k in rule.keywords if k and k in text)
        if rule.keywords and not hits:
            continue
        lead = _lead_for(rule, facts, territory)
        if lead is None:
            continue  # the rule names the place's unit, but the place is unknown
        co = tuple(u for u in rule.co_unit_ids if u != lead)
        reason = f"派单目录第{rule.position}条" + (f"（关键词：{'、'.join(hits)}）" if hits else "")
        return Route(lead, co, rule.id, "rule", reason, hits)
    if facts.district_code and facts.district_code in territory:
        return Route(territory[facts.district_code], (), None, "district", "无匹配目录，按属地派区县")
    return Route(None, (), None, "centre", "无匹配目录且属地不明，转派单员")
