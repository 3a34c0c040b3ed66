"""Combining the classifier, the place and the catalogue into one dispatch decision.

Pure logic: the classifier's prediction and the resolved place come in as
values, so thresholds and fallbacks are tested without models or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.catalogue import Facts, Route, Rule, route

DEFAULT_THRESHOLD = 0.75
# A place guess below this is not trusted to pick a territorial unit on its own.
PLACE_TRUST = 0.5
KEYWORD_RULE_CONFIDENCE = 0.9


@dataclass(frozen=True)
class CategoryGuess:
    label: str
    probability: float
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlaceGuess:
    district_code: str = ""
    street_code: str = ""
    confidence: float = 0.0


@dataclass(frozen=True)
class Alternative:
    category: str
    probability: float
    lead_unit_id: int | None
    words: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "probability": round(self.probability, 4),
            "lead_unit_id": self.lead_unit_id,
            "words": list(self.words),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Decision:
    category: str
    confidence: float
    place: PlaceGuess
    route: Route
    auto: bool
    reason: str
    alternatives: tuple[Alternative, ...] = field(default_factory=tuple)


def _uses_place(rule: Rule | None, r: Route) -> bool:
    if r.via == "district":
        return True
    return rule is not None and (rule.lead_unit_id is None or bool(rule.division_code))


def decide(
    guesses: list[CategoryGuess],
    place: PlaceGuess,
    rules: list[Rule],
    territory: dict[str, int],
    *,
    text: str,
    request_type: str,
    threshold: float = DEFAULT_THRESHOLD,
) -> Decision:
    """Route on the best category; dispatch directly only when every input is trusted."""
    trusted_place = place if place.confidence >= PLACE_TRUST else PlaceGuess()
    by_id = {r.id: r for r in rules}

    def route_for(category: str) -> Route:
        facts = Facts(
            category=(category,) if category else (),
            request_type=request_type,
            district_code=trusted_place.district_code,
            street_code=trusted_place.street_code,
            text=text,
        )
        return route(rules, facts, territory)

    alternatives = []
    for g in guesses[:3]:
        r = route_for(g.label)
        alternatives.append(Alternative(g.label, g.probability, r.lead_unit_id, g.words, r.reason))
    best = guesses[0] if guesses else CategoryGuess("", 0.0)
    chosen = route_for(best.label)
    rule = by_id.get(chosen.rule_id) if chosen.rule_id else None
    confidence = best.probability
    if rule is not None and rule.keywords and not rule.category:
        # An admin's keyword rule decides on its own, whatever the classifier thinks.
        confidence = max(confidence, KEYWORD_RULE_CONFIDENCE)
    if _uses_place(rule, chosen):
        confidence *= min(1.0, 0.5 + place.confidence / 2)
    auto = chosen.lead_unit_id is not None and confidence >= threshold
    if chosen.lead_unit_id is None:
        reason = chosen.reason
    elif auto:
        reason = f"直派：{chosen.reason}，置信度 {confidence:.0%}"
    else:
        reason = f"置信度 {confidence:.0%} 低于直派阈值 {threshold:.0%}，转派单员确认（建议：{chosen.reason}）"
    return Decision(best.label, round(confidence, 4), trusted_place, chosen, auto, reason, tuple(alternatives))
