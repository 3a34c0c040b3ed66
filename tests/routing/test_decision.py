from routing.catalogue import Rule
from routing.decision import CategoryGuess, PlaceGuess, decide

TERRITORY = {"430104": 30, "430104001": 31}
RULES = [
    Rule(id=1, position=1, lead="unit:9", keywords=("燃气",)),
    Rule(id=2, position=2, lead="unit:5", category="交通运输"),
    Rule(id=3, position=3, lead="district", category="城乡建设"),
]
PLACE = PlaceGuess("430104", "430104001", 0.9)


def guesses(*pairs):
    return [CategoryGuess(label, p, ("词",)) for label, p in pairs]


def test_a_confident_prediction_is_dispatched_directly_to_the_catalogue_unit():
    d = decide(guesses(("交通运输", 0.95), ("城乡建设", 0.03)), PLACE, RULES, TERRITORY, text="公交车", request_type="complaint")
    assert d.auto and d.route.lead_unit_id == 5 and d.category == "交通运输"
    assert [a.category for a in d.alternatives] == ["交通运输", "城乡建设"]
    assert d.alternatives[1].lead_unit_id == 30


def test_a_low_confidence_case_waits_for_the_dispatcher_with_suggestions():
    d = decide(guesses(("交通运输", 0.45), ("城乡建设", 0.40)), PLACE, RULES, TERRITORY, text="", request_type="complaint")
    assert not d.auto
    assert d.route.lead_unit_id == 5  # still suggested
    assert "派单员" in d.reason


def test_an_untrusted_place_is_not_used_to_pick_a_territorial_unit():
    weak = PlaceGuess("430104", "430104001", 0.2)
    d = decide(guesses(("城乡建设", 0.99)), weak, RULES, TERRITORY, text="", request_type="complaint")
    assert d.route.lead_unit_id is None and not d.auto


def test_a_keyword_rule_routes_even_a_message_the_classifier_does_not_know():
    d = decide(guesses(("商贸旅游", 0.3)), PlaceGuess(), RULES, TERRITORY, text="小区燃气管道漏气", request_type="help")
    assert d.auto and d.route.lead_unit_id == 9


def test_a_place_based_route_is_only_as_sure_as_the_place():
    sure = decide(guesses(("城乡建设", 0.9)), PLACE, RULES, TERRITORY, text="", request_type="complaint")
    unsure = decide(guesses(("城乡建设", 0.9)), PlaceGuess("430104", "", 0.55), RULES, TERRITORY, text="", request_type="complaint")
    assert sure.confidence > unsure.confidence
    assert sure.route.lead_unit_id == 30


def test_no_prediction_at_all_goes_to_the_dispatcher():
    d = decide([], PlaceGuess(), RULES, TERRITORY, text="", request_type="consult")
    assert not d.auto and d.route.lead_unit_id is None
